"""``evaluate.py protocol=star_gate_win_rate dataset=stargate protocol.train_dir=<star-gate train run>``.

For every model m_t of the run (m0 = the base ``student``; m_t = ``iter_<t-1>/policy``), on the test split:

1. m_t asks (one conversation per pair, greedy unless ``generation.temperature`` > 0) for K turns (K drawn once per
   pair from 1..``protocol.max_turns``, the same K for every model) and the persona Roleplayer answers;
2. m_t answers after the task is repeated (``oracle_logprob.answer_context``), greedy;
   m_t is the local saved policy, or (``protocol.served_models`` + ``policy=openai``) a model on an OpenAI-compatible
   endpoint, e.g. vLLM serving the base as m0 and each ``iter_<t-1>/policy`` adapter (:func:`served_questioner_nodes`);
3. the judge (``protocol.judge``: any backend node) sees the persona, the task and the two answers (m_t's and
   m0's), in both orders; its verdicts give the paper's randomized single-order win rate and the both-order one
   (``win_rate.py``), with bootstrap 95 % intervals, overall and per K;
4. the oracle answer's summed log-prob under m0 given m_t's test conversation (when the split has oracle answers),
   and the training log-prob curve (mean over all / selected conversations per iteration) read from
   ``iter_<t>/selection.json``.

Writes ``metrics.json`` (row identity and provenance as the multiturn protocol: ``evaluation/run_provenance.py``;
plus ``train_settings`` / ``eval_settings``, digests of everything but the seeds that defines the training run and
the evaluation, so ``experiments/report.py`` averages only replicates: ``report_table.py``),
``metrics.csv``, ``results.md`` (``evaluation/tables.py``) and ``items.jsonl`` (every conversation, answer and
verdict) to the run folder; returns the metrics (``win_rate`` = the last model's single-order win rate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.chat_format import instruction_for
from clarifylab.data.loaders.stargate import TASK
from clarifylab.errors import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)

JUDGE_PROMPT = (
    "A person asked an AI assistant for help. Here is who they are:\n{persona}\n\n"
    "Their request: \"{task}\"\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\n"
    "Which response is more helpful for this particular person, given who they are? Reply with a single letter: "
    "A or B."
)
EVAL_ITERATION = -1  # draw_turns' iteration argument for the test conversations (differs from every training one)
CURVE_FILE = "selection.json"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def judge_messages(persona: str, task: str, first: str, second: str) -> list[Message]:
    """The judge's prompt: the persona, the task and the two answers (first = position A)."""
    return [{"role": "user", "content": JUDGE_PROMPT.format(persona=persona.strip(), task=task, first=first.strip(),
                                                            second=second.strip())}]


def model_dirs(train_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(t, iter_<t-1>/policy), ...]`` for every finished iteration of a star-gate run, t = 1, 2, ..."""
    root = Path(train_dir)
    found = []
    t = 0
    while (root / f"iter_{t}" / "policy").is_dir():
        found.append((t + 1, root / f"iter_{t}" / "policy"))
        t += 1
    return found


def logprob_curve(train_dir: str | Path) -> list[dict[str, Any]]:
    """Per iteration t of the run: the split and mean summed oracle log-prob under m0 of all / the selected
    conversations that m_t simulated (``iter_<t>/selection.json``)."""
    rows = []
    for directory in sorted(Path(train_dir).glob("iter_*"), key=lambda p: int(p.name.split("_")[1])):
        if (directory / CURVE_FILE).is_file():
            s = json.loads((directory / CURVE_FILE).read_text())
            rows.append({"iteration": int(s["iteration"]), "questioner": f"m{int(s['iteration'])}",
                         "split": s["split"], "logprob_all": s["logprob_all"],
                         "logprob_selected": s["logprob_selected"], "conversations": s["conversations"]})
    return rows


EVAL_BOOKKEEPING = frozenset({"name", "runner", "objective", "train_dir", "served_models"})
"""Protocol keys that do not change what is measured (where the models come from is recorded separately)."""


def settings_digest(settings: Any) -> str:
    """The first 12 hex digits of the SHA-256 of ``settings`` as canonical JSON (sorted keys): an identity key."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def train_settings(train_dir: str | Path, iterations: int) -> dict[str, Any]:
    """What a star-gate training run was, minus its seed: ``iter_0/sampling.json`` without ``seed`` / ``iteration`` /
    ``split`` (the Questioner's sampling, N, K, top-k, regularization, Roleplayer, student, training slice), the
    ``trainer`` node of the run's ``.hydra/config.yaml`` (SFT keys; None when the run has no Hydra folder) and the
    number of finished iterations. Replicate runs (seeds) agree on it; ablations do not."""
    root = Path(train_dir)
    sampling_path = root / "iter_0" / "sampling.json"
    sampling = json.loads(sampling_path.read_text()) if sampling_path.is_file() else {}
    config_path = root / ".hydra" / "config.yaml"
    trainer = (OmegaConf.to_container(OmegaConf.load(config_path), resolve=False).get("trainer")
               if config_path.is_file() else None)
    return {"sampling": {k: v for k, v in sampling.items() if k not in ("seed", "iteration", "split")},
            "trainer": trainer, "iterations": iterations}


def eval_settings(cfg: Any, data_files: dict[str, str]) -> dict[str, Any]:
    """What a win-rate evaluation measured, minus its seed and the source of the models: the protocol node
    (judge, Roleplayer, turns, token limits, bootstrap) without :data:`EVAL_BOOKKEEPING`, the decoding, the sample
    (``max_examples``, ``dataset.max_tasks`` / ``max_personas`` / ``instruction``) and the data files' hashes."""
    protocol = _plain(cfg.protocol)
    d = cfg.dataset
    return {"protocol": {k: v for k, v in protocol.items() if k not in EVAL_BOOKKEEPING},
            "generation": _plain(cfg.generation), "max_examples": cfg.max_examples,
            "dataset": {"max_tasks": d.max_tasks, "max_personas": d.max_personas, "instruction": d.instruction},
            "data_sha256": sorted(data_files.values())}


def stargate_data_identity(dataset_cfg: Any, split: str) -> dict[str, Any]:
    """``data_file`` / ``data_sha256`` of the split's task file, and ``data_files``: path -> sha256 of every file the
    split is read from (tasks, personas, names, oracle answers; see ``data/loaders/stargate.py``)."""
    from clarifylab.data.loaders.stargate import GOLD_DIR, PERSONAS_DIR, TASKS_DIR
    from clarifylab.evaluation.run_provenance import file_sha256

    root = Path(str(dataset_cfg.dir))
    personas = Path(str(dataset_cfg.personas_dir)) if dataset_cfg.personas_dir else root / PERSONAS_DIR
    oracle = Path(str(dataset_cfg.oracle_dir)) / f"{split}.json" if dataset_cfg.oracle_dir else None
    if oracle is None or not oracle.is_file():
        oracle = root / GOLD_DIR / f"{split}.json"
    files = [root / TASKS_DIR / f"{split}.json", personas / f"{split}.json", personas / f"{split}_NAMES.json", oracle]
    hashes = {str(f.resolve()): file_sha256(f) for f in files if f.is_file()}
    tasks = str(files[0].resolve())
    return {"data_file": tasks, "data_sha256": hashes.get(tasks), "data_files": hashes}


SERVED_KEYS = frozenset({"model", "base_url"})
"""What a ``protocol.served_models`` entry may set: the served name and, for a model on its own server, its URL."""


def served_questioner_nodes(policy_node: Mapping[str, Any], served_models: Mapping[str, Any] | None,
                            labels: list[str], weight_ids: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The endpoint node of each model label when the models are served (``protocol.served_models`` set).

    m0 is ``policy.model`` at ``policy.base_url`` (the base model's served name); m_t (t >= 1) is
    ``served_models["m<t>"]``: a served name at ``policy.base_url`` (e.g. the vLLM LoRA module of
    ``iter_<t-1>/policy``) or ``{model: <name>, base_url: <url>}`` for a model on its own server (full fine-tuned
    weights). Each node is ``policy`` (``policy=openai``) with these keys replaced; an m_t's call cache namespace also
    carries ``weight_ids[label]`` (a hash of the saved policy's files, ``evaluation.components.policy_model_id``), so
    a retrained policy served under the same name never hits the replies cached for the old one. Returns ``{}`` when
    ``served_models`` is None (local weights).

    Raises:
        ConfigError: ``served_models`` set but ``policy`` is not an endpoint, a label has no served model, a served
            model is given for a model the run does not have, or an entry has keys other than :data:`SERVED_KEYS`.
    """
    if served_models is None:
        return {}
    if policy_node["kind"] != "openai":
        raise ConfigError("protocol.served_models is set but policy.kind is "
                          f"{policy_node['kind']!r}: add policy=openai policy.base_url=<endpoint> policy.model=<m0's "
                          "served name>")
    entries: dict[str, dict[str, Any]] = {"m0": {"model": str(policy_node["model"])}}
    for label, value in served_models.items():
        entry = dict(value) if isinstance(value, Mapping) else {"model": str(value)}
        if "model" not in entry or set(entry) - SERVED_KEYS:
            raise ConfigError(f"protocol.served_models.{label}={value!r}: give a served name or "
                              "{model: <served name>, base_url: <endpoint>}")
        entries[str(label)] = entry
    missing = [label for label in labels if label not in entries]
    extra = sorted(set(entries) - set(labels))
    if missing or extra:
        raise ConfigError(f"protocol.served_models={dict(served_models)} does not match the run's models {labels}: "
                          f"missing {missing}, unknown {extra} (m0 is policy.model)")
    namespace = policy_node["namespace"] or "policy"
    return {label: {**policy_node, **entries[label],
                    **({"namespace": f"{namespace}_{label}_{weight_ids[label]}"} if label in weight_ids else {})}
            for label in labels}


def converse_and_answer(questioner: ChatBackend, roleplayer: Any, examples: list[Any], turns: dict[str, int],
                        instruction: str | None, params: SamplingParams,
                        answer_max_new_tokens: int) -> tuple[list[list[Message]], list[str]]:
    """One conversation per pair (K turns) then the model's answer; returns (conversations, answers)."""
    from clarifylab.methods.star_gate.oracle_logprob import answer_context
    from clarifylab.methods.star_gate.simulate import questioner_prompt, simulate_conversations

    conversations = simulate_conversations(examples, questioner, roleplayer, 1, turns, params, instruction)
    by_id = {e.id: e for e in examples}
    prompts = [questioner_prompt(instruction, answer_context(c.messages, by_id[c.pair_id].meta["task"]))
               for c in conversations]
    answers = questioner.complete(prompts, SamplingParams(max_new_tokens=answer_max_new_tokens))
    return [c.messages for c in conversations], list(answers)


def run_win_rate_evaluation(cfg: DictConfig, questioner_factory: Callable[[str, Path | None], ChatBackend] | None = None,
                            roleplayer_backend: ChatBackend | None = None,
                            judge_backend: ChatBackend | None = None) -> dict[str, Any]:
    """Evaluate every m_t of ``protocol.train_dir`` against m0 (module docstring); returns the metrics.

    ``questioner_factory(label, policy_dir or None) -> ChatBackend``, ``roleplayer_backend`` and ``judge_backend``
    replace the configured models (tests).
    """
    from clarifylab.backends.accounting import UsageMeter
    from clarifylab.backends.factory import build_backend
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.data.jsonl import write_records
    from clarifylab.data.registry import load_dataset_split
    from clarifylab.env.persona_roleplayer import PersonaRoleplayer
    from clarifylab.evaluation.experiment_log import log_evaluation
    from clarifylab.evaluation.outputs import csv_row
    from clarifylab.evaluation.run_provenance import code_version, hydra_overrides, trained_run_info
    from clarifylab.evaluation.tables import markdown_table
    from clarifylab.io import write_json, write_text
    from clarifylab.methods.star_gate.oracle_logprob import answer_context, score_oracle_logprobs
    from clarifylab.methods.star_gate.recipe import load_m0, load_questioner
    from clarifylab.methods.star_gate.simulate import draw_turns
    from clarifylab.methods.star_gate.win_rate import parse_verdict, randomized_positions, win_rates

    p = cfg.protocol
    if cfg.dataset.name != "stargate":
        raise ConfigError(f"protocol=star_gate_win_rate needs dataset=stargate, got {cfg.dataset.name!r}")
    if not p.train_dir:
        raise ConfigError("protocol.train_dir is not set: pass protocol.train_dir=<the folder of a finished "
                          "`train.py trainer=star-gate` run>")
    train_dir = Path(str(p.train_dir))
    models = model_dirs(train_dir)
    if not models:
        raise DataNotFoundError(f"protocol.train_dir={train_dir} holds no iter_<t>/policy: pass the folder of a "
                                "finished `train.py trainer=star-gate` run")
    labels = ["m0", *(f"m{t}" for t, _ in models)]
    served: dict[str, dict[str, Any]] = {}
    if questioner_factory is None and p.served_models is not None:
        from clarifylab.evaluation.components import policy_model_id

        served = served_questioner_nodes(_plain(cfg.policy), _plain(p.served_models), labels,
                                         {f"m{t}": policy_model_id(d).split(":")[1] for t, d in models})
    random.seed(int(cfg.seed))
    examples = load_dataset_split(cfg.dataset, str(cfg.split), cfg.paths, max_examples=cfg.max_examples)
    if not examples:
        raise ConfigError(f"dataset split {cfg.split!r} has no pairs")
    turns = {e.id: draw_turns(e.id, int(cfg.seed), EVAL_ITERATION, int(p.max_turns)) for e in examples}
    meter = UsageMeter()
    roleplayer = PersonaRoleplayer(meter.track("roleplayer", roleplayer_backend or build_backend(
        p.roleplayer, cfg.paths.cache_dir)), max_new_tokens=int(p.roleplayer_max_new_tokens))
    judge = meter.track("judge", judge_backend or build_backend(p.judge, cfg.paths.cache_dir))
    generation = cfg.generation
    params = SamplingParams(max_new_tokens=int(p.question_max_new_tokens), temperature=float(generation.temperature),
                            top_p=float(generation.top_p), seed=int(cfg.seed))
    instruction = instruction_for(TASK, cfg.dataset.instruction)  # the system message SFT trains with
    has_oracle = all(e.response for e in examples)

    outputs: dict[str, tuple[list[list[Message]], list[str]]] = {}
    scores: dict[str, list[tuple[float, int]]] = {}
    m0_model = m0_tokenizer = None
    for t, policy_dir in [(0, None), *models]:
        label = f"m{t}"
        print(f"[star-gate eval] {label}: {len(examples)} test conversations ({policy_dir or 'base student'})",
              flush=True)
        model = tokenizer = None
        if questioner_factory is not None:
            backend = questioner_factory(label, policy_dir)
        elif label in served:  # the model on an OpenAI-compatible endpoint (protocol.served_models)
            backend = build_backend(served[label], cfg.paths.cache_dir)
        else:
            model, tokenizer = load_questioner(cfg, None if policy_dir is None else str(policy_dir))
            backend = TransformersBackend(model, tokenizer, batch_size=int(p.batch_size), progress=True)
        outputs[label] = converse_and_answer(meter.track(label, backend), roleplayer, examples, turns, instruction,
                                             params, int(p.answer_max_new_tokens))
        del model, backend
        if has_oracle and p.score_logprobs:
            if m0_model is None:
                m0_model, m0_tokenizer = load_m0(cfg)
            contexts = [answer_context(c, e.meta["task"]) for c, e in zip(outputs[label][0], examples)]
            scores[label] = score_oracle_logprobs(m0_model, m0_tokenizer, contexts, [e.response for e in examples],
                                                  batch_size=int(p.batch_size))

    positions = randomized_positions(len(examples), int(cfg.seed))
    base_answers = outputs["m0"][1]
    items: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for t, _ in models:
        label = f"m{t}"
        answers = outputs[label][1]
        prompts = [judge_messages(e.meta["persona"], e.meta["task"], a, b) for e, a, b in
                   zip(examples, answers, base_answers)]
        prompts += [judge_messages(e.meta["persona"], e.meta["task"], b, a) for e, a, b in
                    zip(examples, answers, base_answers)]
        replies = judge.complete(prompts, SamplingParams(max_new_tokens=int(p.judge_max_new_tokens)))
        model_items = []
        for k, e in enumerate(examples):
            first, second = replies[k], replies[len(examples) + k]
            model_items.append({
                "model": label, "pair_id": e.id, "turns": turns[e.id], "model_is_a": positions[k],
                "verdict_model_first": parse_verdict(first), "verdict_model_second": parse_verdict(second),
                "judge_model_first": first, "judge_model_second": second, "answer": answers[k],
                "base_answer": base_answers[k], "conversation": outputs[label][0][k],
                "base_conversation": outputs["m0"][0][k],
                "oracle_logprob": scores[label][k][0] if label in scores else None})
        items += model_items
        results[label] = win_rates(model_items, int(p.bootstrap_samples), int(cfg.seed), float(p.ci_level))

    rows = []
    for label, r in results.items():
        row = {"label": label, "single_win_rate": r["single"]["win_rate"], "single_ci_low": r["single"]["ci_low"],
               "single_ci_high": r["single"]["ci_high"], "single_n": int(r["single"]["n"]),
               "single_dropped": int(r["single"]["dropped"]), "both_win_rate": r["both"]["win_rate"],
               "both_ci_low": r["both"]["ci_low"], "both_ci_high": r["both"]["ci_high"],
               "both_strict_win_rate": r["both"]["strict_win_rate"], "wins": int(r["both"]["win"]),
               "losses": int(r["both"]["loss"]), "flips": int(r["both"]["flip"]),
               "both_dropped": int(r["both"]["dropped"])}  # counts as integers
        for k, by in r["by_turns"].items():
            row[f"single_win_rate_k{k}"] = by["single"]["win_rate"]
            row[f"both_win_rate_k{k}"] = by["both"]["win_rate"]
        rows.append(row)
    test_curve = [{"model": label, "test_logprob": sum(s for s, _ in v) / len(v)} for label, v in scores.items()]
    last = rows[-1]
    trained = trained_run_info(train_dir / "policy") if (train_dir / "policy").exists() else {}
    data = stargate_data_identity(cfg.dataset, str(cfg.split))
    trained_as = train_settings(train_dir, len(models))
    evaluated_as = eval_settings(cfg, data["data_files"])
    metrics: dict[str, Any] = {
        "label": str(cfg.label), "dataset": str(cfg.dataset.name), "split": str(cfg.split),
        "model": str(cfg.get("model") or cfg.student.get("name_or_path") or cfg.student.source),
        "approach": trained.get("approach", "star_gate"), "trainer": trained.get("trainer"),
        "train_dataset": trained.get("train_dataset"), "seed": int(cfg.seed), "protocol": str(p.name),
        **data, "n_examples": len(examples), "max_examples": cfg.max_examples, "max_turns": int(p.max_turns),
        "simulator": "persona_roleplayer", "simulator_model": getattr(roleplayer.backend, "model_id", None),
        "train_regularization": trained_as["sampling"].get("regularization"), "train_iterations": len(models),
        "train_settings": settings_digest(trained_as), "eval_settings": settings_digest(evaluated_as),
        "win_rate_model": last["label"], "win_rate": last["single_win_rate"], "win_rate_ci_low": last["single_ci_low"],
        "win_rate_ci_high": last["single_ci_high"], "win_rate_both": last["both_win_rate"],
        "win_rate_both_ci_low": last["both_ci_low"], "win_rate_both_ci_high": last["both_ci_high"],
        "win_rate_both_strict": last["both_strict_win_rate"], "flips": last["flips"],
        "by_model": rows, "by_turns": {label: r["by_turns"] for label, r in results.items()},
        "logprob_curve": logprob_curve(train_dir), "test_logprob_curve": test_curve,
        "judge_model": getattr(judge, "model_id", None), "roleplayer_model": getattr(roleplayer.backend, "model_id",
                                                                                     None),
        "questioner_models": {label: f"{served[label]['model']} @ {served[label]['base_url']}" if label in served
                              else "local" for label in labels},
        "train_dir": str(train_dir), "usage": meter.summary(), "code_version": code_version(), **hydra_overrides(),
        "train_seed": trained.get("train_seed"), "train_overrides": trained.get("train_overrides")}
    out = Path(str(cfg.output_dir))
    write_json(out / "metrics.json", metrics)
    write_text(out / "metrics.csv", csv_row({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    write_records(out / "items.jsonl", items)
    columns = ["label", "single_win_rate", "single_ci_low", "single_ci_high", "both_win_rate", "both_ci_low",
               "both_ci_high", "both_strict_win_rate", "wins", "losses", "flips", "single_dropped"]
    markdown = (f"# STaR-GATE win rates vs m0 ({cfg.dataset.name}/{cfg.split}, {len(examples)} pairs)\n\n"
                + markdown_table(rows, columns)
                + "\n## Oracle log-prob under m0 (training conversations)\n\n"
                + markdown_table(metrics["logprob_curve"], ["questioner", "split", "logprob_all", "logprob_selected"])
                + ("\n## Oracle log-prob under m0 (test conversations)\n\n"
                   + markdown_table(test_curve, ["model", "test_logprob"]) if test_curve else ""))
    write_text(out / "results.md", markdown)
    per_model = {f"{row['label']}/{key}": value for row in rows for key, value in row.items() if key != "label"}
    log_evaluation(cfg.get("logger"), {**{k: v for k, v in metrics.items() if k not in ("by_model", "by_turns")},
                                       **per_model}, [], max_rows=0)  # numbers only (W&B / CSV, as the multiturn run)
    print(markdown)
    print(f"evaluate: wrote metrics.json, metrics.csv, results.md, items.jsonl to {out}")
    return metrics
