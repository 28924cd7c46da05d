"""Prompts for the AmbigSQL teacher (ACT App. C.1): turn a clear Spider request into an ambiguous one of a
given kind, plus the clarifying question that would recover it.

Two modes (``task.mode``):

- ``two_step`` (default): call 1 (:func:`request_messages`) shows the schema, the gold SQL and the clear
  request and asks for the ambiguous request only; call 2 (:func:`question_messages`) shows the clear and the
  ambiguous request and asks for the clarifying question only. One line per reply is what SmolLM2-135M
  manages: on the first 16 planned Spider requests (seed 0) every two_step reply was usable as a line and 5
  of 16 requests were kept, while in ``joint`` mode 8 to 11 of 16 replies stopped after the first line and
  at most 1 request was kept (the other drops: copies of the clear request).
- ``joint``: one call (:func:`rewrite_messages`) whose reply must be two labelled lines::

      Ambiguous request: <text>
      Clarifying question: <text>

  Half the calls; for capable teachers (OpenAI-compatible endpoints).

Each prompt is a system instruction naming what the request must leave out (:data:`KIND_GAPS`), ``shots``
demonstrations of the same kind as (user, assistant) turns, then the target. The demonstrations were written
for this project over three made-up one-table schemas (a library, a clinic, a shop); ACT used five per kind
over Spider, which are not reproduced here.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.backends.base import Message
from clarifylab.errors import ConfigError
from clarifylab.data.builders.ambigsql_kinds import AmbiguityKind

REQUEST_LABEL = "Ambiguous request"
QUESTION_LABEL = "Clarifying question"
PROMPT_VERSION = "ambigsql-prompts-v3"
"""Changes whenever the prompts change: part of the build fingerprint, so a resumed build never mixes
outputs of two prompt versions."""

KIND_GAPS: dict[AmbiguityKind, str] = {
    AmbiguityKind.INFORMATION: "WHAT information is wanted (which columns, count or value)",
    AmbiguityKind.POPULATION: "WHICH rows or which kind of thing it is about",
    AmbiguityKind.PRESENTATION: "HOW the results are sorted or how many of them are shown",
}

REQUEST_SYSTEM = ("You rewrite a clear database request into an ambiguous one, as a real user might say it. The "
                  "ambiguous request must leave out {gap}. Reply with the ambiguous request only.")
QUESTION_SYSTEM = ("A user said an ambiguous database request that leaves out {gap}. Given what the user means "
                   "(the clear request) and what they said (the ambiguous request), write the one short question an "
                   "assistant should ask to find out what the user means. Reply with the question only.")
JOINT_SYSTEM = ("You rewrite a clear database request into an ambiguous one, as a real user might say it, and write "
                "the question an assistant should ask to find out what the user means. The ambiguous request must "
                "leave out {gap}. Reply with exactly two lines:\n"
                f"{REQUEST_LABEL}: <the ambiguous request>\n{QUESTION_LABEL}: <one short question>")

# One line per made-up schema: the demonstrations should cost few prompt tokens (a small teacher on a CPU spends
# most of its time reading the prompt).
LIBRARY = "Table book (book_id number primary key, title text, author text, year number)"
CLINIC = "Table doctor (doctor_id number primary key, name text, specialty text, city text, salary number)"
SHOP = "Table product (product_id number primary key, name text, category text, price number, stock number)"


@dataclass(frozen=True)
class Demonstration:
    """One worked rewrite: a clear request over a schema, its ambiguous version and the clarifying question."""

    schema: str
    sql: str
    clear: str
    ambiguous: str
    question: str


DEMONSTRATIONS: dict[AmbiguityKind, tuple[Demonstration, ...]] = {
    AmbiguityKind.INFORMATION: (
        Demonstration(LIBRARY, "SELECT count(*) FROM book WHERE author = 'Ann Lee'",
                      "How many books did Ann Lee write?",
                      "What about Ann Lee's books?",
                      "What would you like to know about Ann Lee's books: how many there are, or their titles?"),
        Demonstration(CLINIC, "SELECT name, city FROM doctor WHERE specialty = 'cardiology'",
                      "List the names and cities of all cardiology doctors.",
                      "Show me the cardiology doctors.",
                      "Which details of the cardiology doctors do you need, for example names, cities or salaries?"),
        Demonstration(SHOP, "SELECT avg(price) FROM product WHERE category = 'toys'",
                      "What is the average price of toys?",
                      "What about toy prices?",
                      "Do you want the average toy price, the highest or lowest one, or every price?"),
    ),
    AmbiguityKind.POPULATION: (
        Demonstration(LIBRARY, "SELECT title FROM book WHERE year < 1950",
                      "Give the titles of books published before 1950.",
                      "Give the titles of the old books.",
                      "Which books count as old: published before which year?"),
        Demonstration(CLINIC, "SELECT count(*) FROM doctor WHERE city = 'Boston' AND specialty = 'surgery'",
                      "How many surgeons work in Boston?",
                      "How many surgeons are there?",
                      "Do you mean surgeons everywhere, or only those in a certain city?"),
        Demonstration(SHOP, "SELECT name FROM product WHERE stock = 0",
                      "Which products are out of stock?",
                      "Which ones have run out?",
                      "Are you asking about the products in the shop?"),
    ),
    AmbiguityKind.PRESENTATION: (
        Demonstration(LIBRARY, "SELECT title, year FROM book ORDER BY year DESC",
                      "List book titles and years, newest first.",
                      "List book titles and years.",
                      "Should the books be sorted, for example from newest to oldest?"),
        Demonstration(CLINIC, "SELECT name FROM doctor ORDER BY salary DESC LIMIT 3",
                      "Name the three best-paid doctors.",
                      "Name some well-paid doctors.",
                      "How many doctors should I list, and ranked by salary?"),
        Demonstration(SHOP, "SELECT name, price FROM product ORDER BY price",
                      "Show product names and prices from cheapest to most expensive.",
                      "Show product names and prices.",
                      "In what order should I list the products, for example by price from lowest to highest?"),
    ),
}


def task_message(schema: str, sql: str, clear: str) -> str:
    """The user turn asking for a rewrite: schema, target SQL, clear request. (The kind's instruction is in
    the system prompt: as a last line of the user turn, SmolLM2-135M echoed it instead of answering.)"""
    return f"Schema:\n{schema}\nSQL: {sql}\nClear request: {clear}"


def pair_message(clear: str, ambiguous: str) -> str:
    """The user turn asking for a clarifying question: the clear and the ambiguous request."""
    return f"Clear request: {clear}\n{REQUEST_LABEL}: {ambiguous}"


def answer_lines(ambiguous: str, question: str) -> str:
    """The two labelled lines of a ``joint`` reply."""
    return f"{REQUEST_LABEL}: {ambiguous}\n{QUESTION_LABEL}: {question}"


def demonstrations(kind: AmbiguityKind, shots: int) -> tuple[Demonstration, ...]:
    """The first ``shots`` demonstrations of ``kind``.

    Raises:
        ConfigError: ``shots`` outside 0..3.
    """
    demos = DEMONSTRATIONS[kind]
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= len(demos):
        raise ConfigError(f"task.shots={shots!r} but there are {len(demos)} demonstrations per kind; use "
                          f"0..{len(demos)}")
    return demos[:shots]


def _conversation(system: str, turns: list[tuple[str, str]], final: str) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": system}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages + [{"role": "user", "content": final}]


def request_messages(schema: str, sql: str, clear: str, kind: AmbiguityKind, shots: int = 2) -> list[Message]:
    """``two_step`` call 1: ``[system, (user, assistant) * shots, user]`` asking for the ambiguous request.

    Args:
        schema: the linearized (possibly cut) schema.
        sql: the gold SQL.
        clear: the original, fully specified request.
        kind: which ambiguity to introduce.
        shots: demonstrations of ``kind`` shown first (0..3).
    """
    demos = demonstrations(kind, shots)
    return _conversation(REQUEST_SYSTEM.format(gap=KIND_GAPS[kind]),
                         [(task_message(d.schema, d.sql, d.clear), d.ambiguous) for d in demos],
                         task_message(schema, sql, clear))


def question_messages(clear: str, ambiguous: str, kind: AmbiguityKind, shots: int = 2) -> list[Message]:
    """``two_step`` call 2: ``[system, (user, assistant) * shots, user]`` asking for the clarifying question."""
    demos = demonstrations(kind, shots)
    return _conversation(QUESTION_SYSTEM.format(gap=KIND_GAPS[kind]),
                         [(pair_message(d.clear, d.ambiguous), d.question) for d in demos],
                         pair_message(clear, ambiguous))


def rewrite_messages(schema: str, sql: str, clear: str, kind: AmbiguityKind, shots: int = 2) -> list[Message]:
    """``joint`` mode: ``[system, (user, assistant) * shots, user]`` asking for both labelled lines (arguments
    as :func:`request_messages`)."""
    demos = demonstrations(kind, shots)
    return _conversation(JOINT_SYSTEM.format(gap=KIND_GAPS[kind]),
                         [(task_message(d.schema, d.sql, d.clear), answer_lines(d.ambiguous, d.question))
                          for d in demos],
                         task_message(schema, sql, clear))
