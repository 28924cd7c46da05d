"""Hand-made TAT-QA tables and scripted student / teacher backends for the teacher-student curriculum tests.

The scripted student answers from the table in its system message: it finds the row the question names and the
column (a year) the question names; a year or a column missing from the table or question is looked up in the
user's later turns ("The column '2019' holds: Revenue: 1,200; ..." / "I mean in 2019."). When it cannot answer
and its instruction lets it ask, it asks for what it misses; otherwise it says it does not know.
"""

import json
import re

from clarifylab.methods.ts.curriculum import generate_ts_curriculum
from clarifylab.methods.ts.prompts import ASK_IF_MISSING

TABLE = [["", "2019", "2018"], ["Revenue", "1,200", "1,000"], ["Cost of sales", "700", "650"],
         ["Net income", "500", "350"]]
QUESTIONS = [  # uid, question, answer
    ("q1", "What was the revenue in 2019?", "1,200"),
    ("q2", "What was the cost of sales in 2018?", "650"),
    ("q3", "What was the net income in 2019?", "500"),
    ("q4", "What was the revenue in 2018?", "1,000"),
]


def write_tatqa(path, questions=QUESTIONS, table=TABLE, uid="t1"):
    record = {"table": {"uid": uid, "table": table},
              "paragraphs": [{"uid": "p1", "order": 1, "text": "The company grew."}],
              "questions": [{"uid": q, "order": i + 1, "question": text, "answer": [answer], "derivation": "",
                             "answer_type": "span", "answer_from": "table", "rel_paragraphs": [],
                             "req_comparison": False, "scale": ""}
                            for i, (q, text, answer) in enumerate(questions)]}
    path.write_text(json.dumps([record]), encoding="utf-8")
    return path


def _table(system: str):
    block = system.split("Table:\n", 1)[1].split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.split("|")] if line.startswith("|") else line.split(" | ")
            for line in block.splitlines()]


class ScriptedStudent:
    """Answers from the table (module docstring). ``memorized``: question substrings it answers from memory
    (it 'knows' them without the table); ``stubborn``: substrings for which it ignores the user's information;
    ``asks=False``: never asks; ``sentence``: a format string its answers are written into ("It was {}.")."""

    name = "scripted"
    model_id = "scripted-student"

    def __init__(self, memorized=None, stubborn=(), fail_after=None, asks=True, sentence=None):
        self.asks, self.sentence = asks, sentence
        self.memorized = dict(memorized or {})
        self.stubborn = tuple(stubborn)
        self.calls = 0
        self.fail_after = fail_after

    def reply(self, messages):
        answer = self.answer(messages)
        return self.sentence.format(answer) if self.sentence and answer[:1].isdigit() else answer

    def answer(self, messages):
        system = messages[0]["content"]
        users = [m["content"] for m in messages[1:] if m["role"] == "user"]
        question = users[0]
        for key, answer in self.memorized.items():
            if key in question:
                return answer
        rows = _table(system)
        header = [h.strip() for h in rows[0]]
        later = " ".join(users[1:]) if not any(s in question for s in self.stubborn) else ""
        year = re.search(r"(?:19|20)\d\d", question) or re.search(r"(?:19|20)\d\d", later)
        row_label = next((r[0] for r in rows[1:] if r[0] and r[0].lower() in question.lower()), None)
        if year and row_label:
            if year.group(0) in header:
                row = next(r for r in rows[1:] if r[0] == row_label)
                return row[header.index(year.group(0))]
            given = re.search(rf"The column '{year.group(0)}' holds: (.*?)\.(?:\s|$)", later)
            if given:
                values = dict(part.split(": ", 1) for part in given.group(1).split("; "))
                if row_label in values:
                    return values[row_label]
        if self.asks and ASK_IF_MISSING in system and len(messages) == 2:
            return "Which year do you mean?" if not year else f"What are the {year.group(0)} column values?"
        return "I do not know."

    def complete(self, batch, params):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("killed")
        return [self.reply(m) for m in batch]


class ScriptedTeacher:
    """Names the year column the question mentions, says yes to every judged question, rewrites by deleting the
    span."""

    name = "scripted"
    model_id = "scripted-teacher"

    def complete(self, batch, params):
        out = []
        for messages in batch:
            text = messages[-1]["content"]
            if text.startswith("Columns:"):
                year = re.search(r"Question: .*?((?:19|20)\d\d)", text)
                out.append(year.group(1) if year else "none")
            elif text.startswith("Missing information:"):
                out.append("Yes.")
            else:
                question = re.search(r"Question: (.*)\nLeave out: (.*)\n", text)
                out.append(question.group(1).replace(question.group(2), "").replace("  ", " "))
        return out


STRATEGIES = ["column", "question"]


def build(out, tatqa_file, student=None, teacher=None, **options):
    settings = dict(identify="teacher", judge="teacher", require_original_correct=True, batch_size=1,
                    test_fraction=0.0, validation_fraction=0.0, max_sources=None)
    settings.update(options)
    ablation = {"name": "test", "strategies": settings.pop("strategies", STRATEGIES), "value_mode": "remove",
                "question_mode": settings.pop("question_mode", "rule")}
    return generate_ts_curriculum(
        str(out), {"name": "tatqa", "path": str(tatqa_file), "max_context_chars": None}, ablation, None, None,
        {"cache_dir": str(out / "cache"), "data_dir": None},
        teacher_backend=teacher or ScriptedTeacher(),
        student_backend=student or ScriptedStudent(memorized={"revenue in 2018": "1,000"}, stubborn=("net income",)),
        **settings)
