"""The embedded default corpus ``synthetic_tables`` (SPEC §3): deterministic table QA with exact answers.

Each table (made-up companies × 2-3 metrics × 3 years, :mod:`clarifylab.data.synthetic.table`) gets
``questions_per_table`` questions of four kinds (lookup, difference, ratio, sum). A share
``ambiguous_fraction`` of them leave out one needed slot (company, metric, year or year pair): their gold
response is a clarifying question naming the options, and their one :class:`Clarification` holds the
user's reply and the exact answer. The others are answered directly. About ``multi_turn_fraction`` of
the examples start with an earlier, fully specified question about the same table and its answer.

Options for a task a small model can finish after a clarification (``make demo``): ``kinds`` picks the
question kinds (e.g. ``["lookup"]``: the answer is one cell, the user's reply names the missing company,
metric or year), ``layout="sentences"`` writes each cell as a sentence worded like the question,
``entities_per_table``/``metrics_per_table`` fix the table size and ``whole_numbers`` rounds every cell to a
whole $ million. :func:`fully_specified` turns any example into its fully specified question (to measure
whether a model can answer once nothing is missing).

Splits are by table (ids ``train-t000``, ``validation-t000``, ...), so no table is in two splits. Every
table and its questions draw from their own random stream seeded by ``(seed, split, table index)``:
the same arguments give byte-identical JSONL, and table ``i`` does not change when a split grows.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from clarifylab.data.jsonl import read_examples, write_examples
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.data.synthetic.phrasing import clarifying_question, render_question, user_reply
from clarifylab.data.synthetic.questions import (
    HISTORY_VARIANTS_LEAVING_OPEN,
    QuestionSpec,
    answer_for,
    answer_scale,
    REMOVABLE_SLOTS,
    removable_slots,
    sample_spec,
    slot_options,
    slot_value,
    variants_of,
)
from clarifylab.data.synthetic.table import LAYOUTS, SyntheticTable, generate_table
from clarifylab.errors import ConfigError, DataFormatError, DataNotFoundError
from clarifylab.io import write_json

TASK = "synthetic_tables"
SPLITS = ("train", "validation", "test")
# 50 / 10 / 15 tables × 4 questions = 200 / 40 / 60 examples: a CPU demo in minutes.
DEFAULT_TABLES_PER_SPLIT: dict[str, int] = {"train": 50, "validation": 10, "test": 15}
MANIFEST = "manifest.json"
_MAX_SAMPLING_TRIES = 200


def build_synthetic_corpus(seed: int = 0, tables_per_split: dict[str, int] | None = None,
                           questions_per_table: int = 4, ambiguous_fraction: float = 0.5,
                           multi_turn_fraction: float = 1 / 3, kinds: list[str] | None = None,
                           layout: str = "grid", entities_per_table: int | None = None,
                           metrics_per_table: int | None = None,
                           whole_numbers: bool = False) -> dict[str, list[Example]]:
    """Build the corpus in memory.

    Args:
        seed: the only source of randomness.
        tables_per_split: tables per split; missing splits take ``DEFAULT_TABLES_PER_SPLIT``.
        questions_per_table: distinct questions asked about each table.
        ambiguous_fraction: share of clarify examples; each table gets floor or ceil of
            ``ambiguous_fraction * questions_per_table`` of them (so every split is close to it).
        multi_turn_fraction: chance that an example's history starts with an earlier exchange; forced to 0
            when ``kinds`` cannot give every clarify example such a history (:func:`histories_possible`).
        kinds: question kinds to ask (``None``: all of ``KINDS``).
        layout: context text, ``"grid"`` (pipe-separated) or ``"sentences"`` (one sentence per cell).
        entities_per_table, metrics_per_table: table size (``None``: 2-3 each, drawn per table).
        whole_numbers: round every cell to a whole $ million.

    Returns:
        split name -> Examples, tables in index order, questions in order within a table.
    """
    counts = _check_params(tables_per_split, questions_per_table, ambiguous_fraction, multi_turn_fraction)
    variants = _check_design(kinds, layout, entities_per_table, metrics_per_table)
    if not histories_possible(variants):
        multi_turn_fraction = 0.0  # else only answer examples would have a history: a cue for "answer"
    corpus: dict[str, list[Example]] = {}
    for split in SPLITS:
        corpus[split] = []
        for index in range(counts[split]):
            table_id = f"{split}-t{index:03d}"
            table = generate_table(table_id, random.Random(f"{TASK}/{seed}/{table_id}/table"),
                                   entities_per_table, metrics_per_table, whole_numbers)
            rng = random.Random(f"{TASK}/{seed}/{table_id}/questions")
            corpus[split] += table_examples(table, split, rng, questions_per_table, ambiguous_fraction,
                                            multi_turn_fraction, variants, layout)
    return corpus


def table_examples(table: SyntheticTable, split: str, rng: random.Random, questions_per_table: int,
                   ambiguous_fraction: float, multi_turn_fraction: float,
                   variants: tuple[str, ...] | None = None, layout: str = "grid") -> list[Example]:
    """``questions_per_table`` Examples with distinct questions about ``table`` (of ``variants``; ``None``: all)."""
    exact = ambiguous_fraction * questions_per_table
    n_ambiguous = math.floor(exact) + (rng.random() < exact - math.floor(exact))
    ambiguous_flags = [True] * n_ambiguous + [False] * (questions_per_table - n_ambiguous)
    rng.shuffle(ambiguous_flags)
    specs: list[QuestionSpec] = []
    for _ in range(questions_per_table):
        specs.append(_sample_new(table, rng, specs, variants, f"questions_per_table={questions_per_table}"))
    return [_example(table, split, number, spec, ambiguous, rng, multi_turn_fraction, variants, layout)
            for number, (spec, ambiguous) in enumerate(zip(specs, ambiguous_flags, strict=True))]


def _example(table: SyntheticTable, split: str, number: int, spec: QuestionSpec, ambiguous: bool,
             rng: random.Random, multi_turn_fraction: float, variants: tuple[str, ...] | None = None,
             layout: str = "grid") -> Example:
    """One Example: the latest question about ``spec`` (missing a random removable slot if ``ambiguous``)."""
    answer = answer_for(table, spec)
    removed = rng.choice(removable_slots(spec)) if ambiguous else None
    question = render_question(spec, rng, removed)
    history: list[Turn] = []
    earlier: QuestionSpec | None = None
    history_variants = HISTORY_VARIANTS_LEAVING_OPEN[removed] if removed else variants
    if removed and variants is not None:
        history_variants = tuple(v for v in history_variants if v in variants)
    if rng.random() < multi_turn_fraction and history_variants != ():
        earlier = _sample_new(table, rng, [spec], history_variants, "history question")
        history = [Turn("user", render_question(earlier, rng)), Turn("assistant", answer_for(table, earlier))]
    history.append(Turn("user", question))
    meta: dict[str, Any] = {
        "split": split, "table_id": table.table_id, "kind": spec.kind, "variant": spec.variant,
        "question": spec.to_dict(), "removed_slot": removed, "scale": answer_scale(spec),
        "history_question": earlier.to_dict() if earlier else None,
    }
    if removed is None:
        return Example(id=f"{table.table_id}-q{number}", task=TASK, context=table.render(layout), history=history,
                       response=answer, action=Action.ANSWER, goal=[answer], meta=meta)
    options = slot_options(table, removed)
    meta.update(options=options, removed_value=slot_value(spec, removed))
    return Example(id=f"{table.table_id}-q{number}", task=TASK, context=table.render(layout), history=history,
                   response=clarifying_question(removed, options), action=Action.CLARIFY, goal=[answer],
                   clarifications=[Clarification(reply=user_reply(spec, removed, rng), answer=answer)], meta=meta)


def _sample_new(table: SyntheticTable, rng: random.Random, taken: list[QuestionSpec],
                variants: tuple[str, ...] | None, what: str) -> QuestionSpec:
    """A spec not in ``taken`` (rejection sampling); ``ConfigError`` if the table has too few questions."""
    for _ in range(_MAX_SAMPLING_TRIES):
        spec = sample_spec(table, rng, variants)
        if spec not in taken:
            return spec
    raise ConfigError(f"synthetic_tables: could not find a new distinct question for table {table.table_id} "
                      f"({what}); lower questions_per_table")


def histories_possible(variants: tuple[str, ...] | None) -> bool:
    """Whether every clarify question of ``variants`` can follow an earlier question that leaves its missing
    slot open. Lookups alone cannot (an earlier lookup names a company, metric and year), so a lookup-only
    corpus has no earlier exchanges at all."""
    if variants is None:
        return True
    return all(set(HISTORY_VARIANTS_LEAVING_OPEN[slot]) & set(variants)
               for variant in variants for slot in REMOVABLE_SLOTS[variant])


def fully_specified(example: Example) -> Example:
    """``example`` with its latest question asked in full (no slot left out), answered directly.

    A clarify example's last user turn is replaced by a fully specified wording of the same question
    (``meta["question"]``; the wording is drawn from a stream seeded by the example id, so it is stable),
    its gold response becomes the answer and its clarifications are dropped. An answer example is
    returned unchanged. Used to check that a model can answer once the missing slot is known.
    """
    if example.action is not Action.CLARIFY:
        return example
    spec = QuestionSpec.from_dict(example.meta["question"])
    question = render_question(spec, random.Random(f"{TASK}/fully_specified/{example.id}"), None)
    history = [*example.history[:-1], Turn("user", question)]
    meta = {**example.meta, "removed_slot": None, "fully_specified_from": example.history[-1].content}
    return Example(id=example.id, task=example.task, context=example.context, history=history,
                   response=example.goal[0], action=Action.ANSWER, goal=list(example.goal), meta=meta)


def _check_design(kinds: list[str] | None, layout: str, entities_per_table: int | None,
                  metrics_per_table: int | None) -> tuple[str, ...] | None:
    """The variants of ``kinds``, after checking the design options; ``ConfigError`` names the bad one."""
    try:
        variants = variants_of(list(kinds) if kinds is not None else None)
    except ValueError as error:
        raise ConfigError(f"synthetic_tables: {error}") from None
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic_tables: layout must be one of {list(LAYOUTS)}, got {layout!r}")
    for name, value, high in (("entities_per_table", entities_per_table, 6), ("metrics_per_table", metrics_per_table, 7)):
        if value is not None and (not isinstance(value, int) or not 2 <= value <= high):
            raise ConfigError(f"synthetic_tables: {name} must be null or an integer in 2..{high}, got {value!r}")
    return variants


def _check_params(tables_per_split: dict[str, int] | None, questions_per_table: int, ambiguous_fraction: float,
                  multi_turn_fraction: float) -> dict[str, int]:
    """Validated tables per split (defaults filled in); ``ConfigError`` names the bad option."""
    given = dict(tables_per_split or {})
    unknown = sorted(set(given) - set(SPLITS))
    if unknown:
        raise ConfigError(f"synthetic_tables: tables_per_split has unknown split(s) {unknown}; use {list(SPLITS)}")
    counts = {**DEFAULT_TABLES_PER_SPLIT, **given}
    for split, count in counts.items():
        if not isinstance(count, int) or count < 0:
            raise ConfigError(f"synthetic_tables: tables_per_split.{split} must be an integer >= 0, got {count!r}")
    if not isinstance(questions_per_table, int) or not 1 <= questions_per_table <= 20:
        raise ConfigError(f"synthetic_tables: questions_per_table must be an integer in 1..20, "
                          f"got {questions_per_table!r}")
    for name, value in (("ambiguous_fraction", ambiguous_fraction), ("multi_turn_fraction", multi_turn_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"synthetic_tables: {name} must be in [0, 1], got {value!r}")
    return counts


def write_synthetic_corpus(out_dir: str | os.PathLike[str], seed: int = 0,
                           tables_per_split: dict[str, int] | None = None, questions_per_table: int = 4,
                           ambiguous_fraction: float = 0.5, multi_turn_fraction: float = 1 / 3,
                           kinds: list[str] | None = None, layout: str = "grid",
                           entities_per_table: int | None = None, metrics_per_table: int | None = None,
                           whole_numbers: bool = False) -> dict[str, int]:
    """Build the corpus and write ``<out_dir>/{train,validation,test}.jsonl`` and ``manifest.json``.

    Files are written atomically; the manifest (seed, parameters, counts, clarify fraction per split)
    is written last. Returns split -> number of examples written.
    """
    params = {"seed": seed, "tables_per_split": _check_params(tables_per_split, questions_per_table,
                                                              ambiguous_fraction, multi_turn_fraction),
              "questions_per_table": questions_per_table, "ambiguous_fraction": ambiguous_fraction,
              "multi_turn_fraction": multi_turn_fraction,
              "kinds": list(kinds) if kinds is not None else None, "layout": layout,
              "entities_per_table": entities_per_table, "metrics_per_table": metrics_per_table,
              "whole_numbers": whole_numbers}
    corpus = build_synthetic_corpus(**params)
    out_dir = Path(out_dir)
    counts = {split: write_examples(out_dir / f"{split}.jsonl", examples) for split, examples in corpus.items()}
    clarify_fraction = {split: (sum(e.action is Action.CLARIFY for e in examples) / len(examples) if examples
                                else None) for split, examples in corpus.items()}
    write_json(out_dir / MANIFEST, {"task": TASK, "params": params, "counts": counts,
                                    "clarify_fraction": clarify_fraction})
    return counts


DESIGN_KEYS = ("kinds", "layout", "entities_per_table", "metrics_per_table", "whole_numbers")


def synthetic_design(dataset_cfg: Any) -> dict[str, Any]:
    """The task-design options of a ``dataset=synthetic_tables`` node, as :func:`write_synthetic_corpus` takes them."""
    design = {key: getattr(dataset_cfg, key) for key in DESIGN_KEYS}
    design["kinds"] = list(design["kinds"]) if design["kinds"] is not None else None
    return design


def check_synthetic_design(out_dir: str | os.PathLike[str], design: dict[str, Any]) -> None:
    """``ConfigError`` when the corpus in ``out_dir`` was written with other design options than ``design``
    (a stale corpus would silently evaluate another task). A manifest without them is the default design."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return
    params = json.loads(path.read_text())["params"]
    defaults = {"kinds": None, "layout": "grid", "entities_per_table": None, "metrics_per_table": None,
                "whole_numbers": False}
    written = {key: params.get(key, defaults[key]) for key in DESIGN_KEYS}
    if written != design:
        raise ConfigError(f"{out_dir}: the synthetic_tables corpus there was written with {written}, but the dataset "
                          f"config asks for {design}; point dataset.dir elsewhere or delete that folder")


def load_synthetic_split(out_dir: str | os.PathLike[str], split: str) -> list[Example]:
    """Read one split written by :func:`write_synthetic_corpus`.

    Raises:
        ConfigError: ``split`` is not one of ``SPLITS``.
        DataNotFoundError: the split file is missing (names it and the command that builds it).
        DataFormatError: a record is malformed or belongs to another task (names file and line).
    """
    if split not in SPLITS:
        raise ConfigError(f"synthetic_tables: unknown split {split!r}; use one of {list(SPLITS)}")
    path = Path(out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"{path}: synthetic_tables split {split!r} not found. Run "
                                f"`python generate.py task=synthetic_tables` to write it, or point the "
                                f"dataset's data directory at where it was written.")
    examples = read_examples(path)
    for line_number, example in enumerate(examples, start=1):
        if example.task != TASK:
            raise DataFormatError(f"{path}: record {line_number} (id {example.id!r}) has task "
                                  f"{example.task!r}, expected {TASK!r}")
    return examples
