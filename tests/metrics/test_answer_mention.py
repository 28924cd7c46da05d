"""``match=contains``: a reply names the gold when it writes every gold value (numbers by rounded equality, text
as whole words) and no distractor of the answer's column outside the question's own words."""

import pytest

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.table_tasks import TableTask, answer_distractors
from clarifylab.metrics.answer_mention import gold_alternatives, names_answer, names_value


@pytest.mark.parametrize("reply, value, named", [
    ("The revenue was 1,200 in 2019.", "1200", True),
    ("It was 11.764 percent.", "11.76", True),      # rounded to the gold's two decimals
    ("It was 11.8 percent.", "11.76", False),
    ("Revenue fell by 12.5%.", "-12.5", True),      # sign-free
    ("It was 12.", "1200", False),
    ("The language is German.", "German", True),
    ("Germany is the answer.", "German", False),    # whole words only
    ("The class is GT 1.6.", "GT 1.6", True),
    ("The class is GT 1.3.", "GT 1.6", False),
    ("Anything.", "", False),
])
def test_names_value_on_hand_made_cases(reply, value, named):
    assert names_value(reply, value) is named


def test_a_reply_that_lists_the_column_names_no_answer():
    question = "What was the next most commonly spoken language after Russian?"
    column = ["Polish", "Yiddish", "Russian", "Ukrainian"]
    assert names_answer("After Russian it is German.", [["German"]], column, question)
    assert not names_answer("Polish; Yiddish; Russian; German; Ukrainian", [["German"]], column, question)
    # a distractor the question names ("Russian") or one overlapping a gold value does not count against it
    assert names_answer("German, then Russian.", [["German"]], column, question)
    assert names_answer("It is New York City.", [["New York City"]], ["New York"], "Which city?")


def test_every_value_of_an_alternative_must_be_named():
    assert names_answer("Both Smith and Jones won.", [["Smith", "Jones"]])
    assert not names_answer("Smith won.", [["Smith", "Jones"]])
    assert names_answer("Smith won.", [["Smith", "Jones"], ["Smith"]])


def test_gold_alternatives_read_wtq_targets_and_tatqa_raw_answers():
    assert gold_alternatives(["a, b"], {"target_values": ["a", "b"]}) == [["a", "b"]]
    assert gold_alternatives(["x"], {"goal_answer": ["span 1", "span 2"]}) == [["span 1", "span 2"]]
    assert gold_alternatives(["-12.5%"], {"goal_answer": -12.5}) == [["-12.5"]]
    assert gold_alternatives(["a", "b"], {}) == [["a"], ["b"]]


def test_answer_distractors_are_the_other_values_of_the_answer_column():
    table = (("Year", "Competition", "Venue"), ("1998", "Commonwealth Games", "Kuala Lumpur"),
             ("1999", "All-Africa Games", "Johannesburg"), ("2000", "Commonwealth Games", "Sydney"))
    example = Example(id="nt-1", task="wtq", context="", history=[Turn("user", "Last competition?")],
                      response="All-Africa Games", action=Action.ANSWER, goal=["All-Africa Games"])
    task = TableTask(example, table, (), "Last competition?", ("All-Africa Games",))
    assert answer_distractors(task) == ["Commonwealth Games"]


def test_a_reply_that_copies_what_the_user_supplied_is_no_answer():
    supplied = "The missing row reads: Language: German; Number: 77 160; percentage (%): 3.99."
    assert not names_answer("The missing row reads: Language: German; Number: 77", [["German"]], supplied=supplied)
    assert names_answer("The next language after Russian is German.", [["German"]], supplied=supplied)
    # a run inside the gold value itself is no copy
    long_gold = "Royal Academy of Dramatic Art London"
    assert names_answer(f"She studied at the {long_gold}.", [[long_gold]], supplied=f"I mean {long_gold}.")
