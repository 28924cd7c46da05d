"""AmbigSQL teacher I/O: tolerant parsing of both reply layouts, the drop reasons, the seeded choice of the
ambiguity kind (presentation only for top-level ORDER BY / LIMIT) and the prompts' structure."""

from __future__ import annotations

from collections import Counter

import pytest

from clarifylab.errors import ConfigError
from clarifylab.data.builders.ambigsql_kinds import AmbiguityKind, choose_kind, presents_results, query_tables
from clarifylab.data.builders.ambigsql_parse import (Rewrite, content_words, judge_question, judge_request,
                                                  judge_rewrite, parse_line, parse_rewrite)
from clarifylab.data.builders.ambigsql_prompts import (DEMONSTRATIONS, KIND_GAPS, question_messages, request_messages,
                                                    rewrite_messages)

ORIGINAL = "How many teachers are older than 40?"


@pytest.mark.parametrize(("reply", "expected"), [
    ("Ambiguous request: How many teachers?\nClarifying question: Which teachers do you mean?",
     ("How many teachers?", "Which teachers do you mean?")),
    ("**Ambiguous request:** \"How many teachers?\"\n\n**Clarifying question:** Which ones?\nThanks!",
     ("How many teachers?", "Which ones?")),
    ("Sure!\n1. ambiguous request - Teachers?\n2. CLARIFYING QUESTION: Older than what?",
     ("Teachers?", "Older than what?")),
    ("Ambiguous request:\n  How many teachers?\nClarifying question:\nWhich age?",
     ("How many teachers?", "Which age?")),
    ("How many teachers?\nClarifying question: Which age?", ("How many teachers?", "Which age?")),
    ("Ambiguous request: A\nClarifying question: B\nAmbiguous request: C\nClarifying question: D", ("A", "B")),
    ("Ambiguous request: How many teachers?\nTask: leave out things", ("How many teachers?", None)),
    ("Intro line\nAnother line\nClarifying question: Which?", (None, "Which?")),
    ("Ambiguous request:\nClarifying question: Which?", ("", "Which?")),
    ("", (None, None)),
])
def test_parse_joint_reply(reply, expected):
    assert parse_rewrite(reply) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("Show me the teachers.", "Show me the teachers."),
    ("\n\n  Ambiguous request: 'Show me the teachers.'\nUser: more text", "Show me the teachers."),
    ("**Clarifying question:** Which teachers?", "Which teachers?"),
    ("Question: Which teachers?", "Which teachers?"),
    ("   \n  ", ""),
])
def test_parse_one_line_reply(reply, expected):
    assert parse_line(reply) == expected


def test_request_drop_reasons_in_order():
    assert judge_request("", ORIGINAL) == "empty"
    assert judge_request("how many teachers are OLDER than 40", ORIGINAL) == "identical_to_original"
    # Every content word kept (only "how"/"are"/"the" changed): nothing was left out.
    assert content_words(ORIGINAL) == {"many", "teachers", "older", "than", "40"}
    assert judge_request("The many teachers older than 40, please?", ORIGINAL) == "nothing_left_out"
    assert judge_request("How many teachers are there?", ORIGINAL) is None


def test_question_drop_reasons_in_order():
    assert judge_question("", "Teachers?", ORIGINAL) == "empty"
    assert judge_question("teachers", "Teachers?", ORIGINAL) == "question_repeats_request"
    assert judge_question("How many teachers are older than 40?", "Teachers?", ORIGINAL) == "question_repeats_request"
    assert judge_question("Which age do you mean.", "Teachers?", ORIGINAL) == "not_a_question"
    assert judge_question("Which age do you mean.", "Teachers?", ORIGINAL, require_question_mark=False) is None
    assert judge_question("Which age do you mean?", "Teachers?", ORIGINAL) is None


def test_judge_joint_reply():
    assert judge_rewrite("Ambiguous request: Teachers?\nClarifying question: Which?", ORIGINAL) == \
        Rewrite("Teachers?", "Which?", None)
    assert judge_rewrite("Ambiguous request: Teachers?", ORIGINAL).reason == "unparseable"
    assert judge_rewrite(f"Ambiguous request: {ORIGINAL}\nClarifying question: Which?", ORIGINAL).reason == \
        "identical_to_original"
    assert judge_rewrite("Ambiguous request: Teachers?\nClarifying question:", ORIGINAL).reason == "empty"
    assert judge_rewrite("Ambiguous request: Teachers?\nClarifying question: Which?", ORIGINAL).kept


@pytest.mark.parametrize(("sql", "presents"), [
    ("SELECT name FROM teacher ORDER BY age DESC", True),
    ("SELECT name FROM teacher LIMIT 3", True),
    ("SELECT name FROM a UNION SELECT name FROM b ORDER BY name", True),
    ("SELECT name FROM a EXCEPT SELECT name FROM b LIMIT 2", True),
    ("(SELECT name FROM teacher ORDER BY age)", True),
    ("SELECT name FROM teacher WHERE age = (SELECT max(age) FROM teacher ORDER BY age LIMIT 1)", False),
    ("SELECT count(*) FROM (SELECT * FROM teacher ORDER BY age LIMIT 2)", False),
    ("SELECT name FROM teacher", False),
    ("SELECT FROM WHERE (", False),
])
def test_presentation_needs_a_top_level_order_or_limit(sql, presents):
    assert presents_results(sql) is presents


def test_query_tables_in_order():
    assert query_tables("SELECT T2.x FROM teacher AS T1 JOIN class AS T2 ON T1.id = T2.id "
                        "WHERE T1.a IN (SELECT a FROM teacher)") == ["teacher", "class"]
    assert query_tables("not sql (((") == []


def test_kind_choice_is_seeded_per_request_and_presentation_only_when_results_are_presented():
    ordered, plain = "SELECT a FROM t ORDER BY a", "SELECT a FROM t"
    ids = [f"dev-{i:05d}" for i in range(200)]
    plain_kinds = Counter(choose_kind(i, plain, seed=0) for i in ids)
    assert set(plain_kinds) == {AmbiguityKind.INFORMATION, AmbiguityKind.POPULATION}
    assert 70 < plain_kinds[AmbiguityKind.INFORMATION] < 130
    assert all(choose_kind(i, ordered) is AmbiguityKind.PRESENTATION for i in ids)
    # Deterministic, and a function of (id, seed) only.
    assert [choose_kind(i, plain, seed=0) for i in ids] == [choose_kind(i, plain, seed=0) for i in ids]
    assert [choose_kind(i, plain, seed=1) for i in ids] != [choose_kind(i, plain, seed=0) for i in ids]
    # presentation_rate 0: ordered queries draw from the two other kinds exactly like plain ones.
    assert [choose_kind(i, ordered, presentation_rate=0.0) for i in ids] == [choose_kind(i, plain) for i in ids]
    half = Counter(choose_kind(i, ordered, presentation_rate=0.5) for i in ids)[AmbiguityKind.PRESENTATION]
    assert 70 < half < 130


def test_prompts_show_demonstrations_of_the_kind_then_the_target():
    kind = AmbiguityKind.POPULATION
    messages = request_messages("Table t (a text)", "SELECT a FROM t", "List all a.", kind, shots=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert KIND_GAPS[kind] in messages[0]["content"]
    assert messages[2]["content"] == DEMONSTRATIONS[kind][0].ambiguous
    assert messages[-1]["content"] == "Schema:\nTable t (a text)\nSQL: SELECT a FROM t\nClear request: List all a."
    asking = question_messages("List all a.", "List some.", kind, shots=1)
    assert asking[2]["content"] == DEMONSTRATIONS[kind][0].question
    assert asking[-1]["content"] == "Clear request: List all a.\nAmbiguous request: List some."
    joint = rewrite_messages("S", "Q", "C", AmbiguityKind.PRESENTATION, shots=3)
    assert len(joint) == 8
    assert parse_rewrite(joint[2]["content"]) == (DEMONSTRATIONS[AmbiguityKind.PRESENTATION][0].ambiguous,
                                                  DEMONSTRATIONS[AmbiguityKind.PRESENTATION][0].question)
    assert len(request_messages("S", "Q", "C", kind, shots=0)) == 2
    with pytest.raises(ConfigError, match="task.shots=4"):
        request_messages("S", "Q", "C", kind, shots=4)


def test_every_demonstration_passes_its_own_checks():
    for kind, demos in DEMONSTRATIONS.items():
        assert len(demos) == 3
        for demo in demos:
            assert judge_request(demo.ambiguous, demo.clear) is None, (kind, demo.clear)
            assert judge_question(demo.question, demo.ambiguous, demo.clear) is None, (kind, demo.clear)
            assert presents_results(demo.sql) is (kind is AmbiguityKind.PRESENTATION), demo.sql
