"""How synthetic_tables questions, clarifying questions and user replies are worded.

Question templates are keyed by (variant, removed slot); ``None`` is the fully specified wording. A
template with a slot left out never mentions that slot's value: a missing company is "the company",
a missing metric is "figure"/"number", a missing year or year pair is simply absent. Sums always say
"all companies", so "the company" (one unnamed company) stays distinguishable from a total.

A year, when named, comes before the value in a natural reply ("In 2019, Varnex reported 85."), so the
number a reply ends with is the answer (the task heuristic H reads the last number).

Fields: ``{owner}`` = "Varnex's" or "the company's", ``{entity}``, ``{metric}``, ``{denominator}``,
``{year}``, ``{start}``, ``{end}``.
"""

from __future__ import annotations

import random

from clarifylab.data.synthetic.questions import QuestionSpec, slot_value
from clarifylab.data.synthetic.table import capitalize_first

QUESTION_TEMPLATES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("lookup", None): ("What was {owner} {metric} in {year}?",
                       "In {year}, how much {metric} did {entity} report?",
                       "Give me {owner} {metric} for {year}."),
    ("lookup", "entity"): ("What was the company's {metric} in {year}?",
                           "In {year}, how much {metric} did the company report?",
                           "Give me the company's {metric} for {year}."),
    ("lookup", "metric"): ("What was {owner} figure in {year}?",
                           "In {year}, what number did {entity} report?",
                           "Give me {owner} value for {year}."),
    ("lookup", "year"): ("What was {owner} {metric} that year?",
                         "How much {metric} did {entity} report for the year?",
                         "Give me {owner} {metric} for the year."),
    ("difference", None): ("By how much did {owner} {metric} change from {start} to {end}?",
                           "What was the change in {owner} {metric} between {start} and {end}?",
                           "What is {owner} {metric} in {end} minus its {metric} in {start}?"),
    ("difference", "entity"): ("By how much did the company's {metric} change from {start} to {end}?",
                               "What was the change in the company's {metric} between {start} and {end}?",
                               "What is the company's {metric} in {end} minus its {metric} in {start}?"),
    ("difference", "metric"): ("By how much did {owner} figure change from {start} to {end}?",
                               "What was the change in {owner} number between {start} and {end}?",
                               "What is {owner} value in {end} minus its value in {start}?"),
    ("difference", "years"): ("By how much did {owner} {metric} change?",
                              "What was the change in {owner} {metric}?",
                              "How big was the change in {owner} {metric}?"),
    ("ratio_metrics", None): ("What was the ratio of {owner} {metric} to its {denominator} in {year}?",
                              "In {year}, what was {owner} {metric} divided by its {denominator}?",
                              "What was {owner} {metric}-to-{denominator} ratio in {year}?"),
    ("ratio_metrics", "entity"): ("What was the ratio of the company's {metric} to its {denominator} in {year}?",
                                  "In {year}, what was the company's {metric} divided by its {denominator}?",
                                  "What was the company's {metric}-to-{denominator} ratio in {year}?"),
    ("ratio_metrics", "year"): ("What was the ratio of {owner} {metric} to its {denominator} that year?",
                                "For the year, what was {owner} {metric} divided by its {denominator}?",
                                "What was {owner} {metric}-to-{denominator} ratio for the year?"),
    ("ratio_years", None): ("By what factor did {owner} {metric} grow from {start} to {end}?",
                            "What was {owner} {end} {metric} divided by its {start} {metric}?",
                            "What was the growth ratio of {owner} {metric} from {start} to {end}?"),
    ("ratio_years", "entity"): ("By what factor did the company's {metric} grow from {start} to {end}?",
                                "What was the company's {end} {metric} divided by its {start} {metric}?",
                                "What was the growth ratio of the company's {metric} from {start} to {end}?"),
    ("ratio_years", "metric"): ("By what factor did {owner} figure grow from {start} to {end}?",
                                "What was {owner} {end} value divided by its {start} value?",
                                "What was the growth ratio of {owner} number from {start} to {end}?"),
    ("ratio_years", "years"): ("By what factor did {owner} {metric} grow?",
                               "What was the growth ratio of {owner} {metric}?",
                               "How many times larger did {owner} {metric} get?"),
    ("sum", None): ("What was the total {metric} of all companies in {year}?",
                    "What was the combined {metric} of all companies in {year}?",
                    "Summed over all companies, what was the {metric} in {year}?"),
    ("sum", "metric"): ("What was the total of all companies in {year}?",
                        "What was the combined figure of all companies in {year}?",
                        "Summed over all companies, what was the value in {year}?"),
    ("sum", "year"): ("What was the total {metric} of all companies that year?",
                      "What was the combined {metric} of all companies for the year?",
                      "Summed over all companies, what was the {metric} for the year?"),
}

CLARIFYING_QUESTIONS = {
    "entity": "Which company do you mean: {options}?",
    "metric": "Which metric do you mean: {options}?",
    "year": "Which year do you mean: {options}?",
    "years": "Which years do you mean: {options}?",
}

REPLY_TEMPLATES = ("{Value}.", "I mean {value}.", "{Value}, please.")


def render_question(spec: QuestionSpec, rng: random.Random, removed: str | None = None) -> str:
    """The user's question for ``spec``, leaving out slot ``removed`` (``None``: fully specified).

    Raises ``ValueError`` when ``spec``'s variant cannot leave out ``removed``.
    """
    key = (spec.variant, removed)
    if key not in QUESTION_TEMPLATES:
        raise ValueError(f"no wording of a {spec.variant} question without its {removed!r} slot")
    owner = "the company's" if removed == "entity" else f"{spec.entity}'s"
    return rng.choice(QUESTION_TEMPLATES[key]).format(
        owner=owner, entity=spec.entity, metric=spec.metric, denominator=spec.denominator,
        year=spec.year, start=spec.year, end=spec.end_year)


def join_options(options: list[str]) -> str:
    """"a", "a or b", "a, b or c" — the option list of a clarifying question."""
    if len(options) < 2:
        raise ValueError(f"a clarifying question needs at least two options, got {options}")
    return ", ".join(options[:-1]) + " or " + options[-1]


def clarifying_question(slot: str, options: list[str]) -> str:
    """The gold clarifying question for a left-out ``slot``, naming every option.

    ``clarifying_question("year", ["2020", "2021", "2022"])`` -> "Which year do you mean: 2020, 2021 or 2022?"
    """
    return CLARIFYING_QUESTIONS[slot].format(options=join_options(options))


def user_reply(spec: QuestionSpec, slot: str, rng: random.Random) -> str:
    """The user's short reply giving the left-out slot ("2021.", "I mean net income.", "From 2020 to 2022.")."""
    value = slot_value(spec, slot)
    if slot == "years":
        value = f"from {value}"
    return rng.choice(REPLY_TEMPLATES).format(value=value, Value=capitalize_first(value))
