"""run_star_gate end to end on the tiny model (composed like train.py) with a scripted Questioner and Roleplayer:
alternating splits, turns drawn once per pair, argmax selection against an independent forward, SFT from m0 with
user turns masked, and re-runs that skip finished iterations."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from pytorch_lightning import Callback

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.jsonl import read_examples
from clarifylab.methods.star_gate.recipe import iteration_split, run_star_gate
from clarifylab.methods.star_gate.simulate import draw_turns
from clarifylab.schemas.validate import validate_config
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.sft_data import tokenize_examples

register_resolvers()
WORDS = ["year", "company", "region", "product", "quarter", "market", "segment", "country"]


class ScriptedQuestioner:
    """Question k of the run, ``which <word> do you mean ?`` (words cycle); after the repeated task (the final
    answer, always greedy): a fixed answer."""

    name = model_id = "scripted-questioner"

    def __init__(self):
        self.calls = 0

    def complete(self, batch, params):
        replies = []
        for conversation in batch:
            self.calls += 1
            last = conversation[-1]["content"]
            final = "\n\n" in last  # the final answer follows the repeated task
            assert params.greedy or not final  # the final answer is always greedy
            replies.append("the answer is ten" if final else f"which {WORDS[self.calls % len(WORDS)]} do you mean ?")
        return replies


class ScriptedRoleplayer:
    name = model_id = "scripted-roleplayer"

    def complete(self, batch, params):
        assert params.greedy
        return [f"i mean the {conversation[-1]['content'].split()[1]}" for conversation in batch]


class Factory:
    def __init__(self):
        self.calls = []

    def __call__(self, model, tokenizer, iteration):
        from clarifylab.models import build_tiny_model_and_tokenizer

        base, _ = build_tiny_model_and_tokenizer(seed=0)
        same = all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), base.state_dict().values()))
        self.calls.append((iteration, same))
        return ScriptedQuestioner()


class StartWeights(Callback):
    """The model's parameters when each fit starts."""

    def __init__(self):
        self.snapshots = []

    def on_train_start(self, trainer, module):
        self.snapshots.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})


def compose_star_gate(data_dir, out, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "trainer=star-gate", "dataset=stargate", "student=tiny", "logger=csv", "hardware=cpu",
            f"dataset.dir={data_dir}", f"paths.cache_dir={out / 'cache'}", "trainer.iterations=2",
            "trainer.num_conversations=3", "trainer.batch_size=2", "trainer.max_steps=2", "trainer.max_new_tokens=4",
            "trainer.progress_bar=none", "trainer.model_summary=false", "trainer.lr=1e-2", *overrides],
            return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        cfg.output_dir = str(out)
        plain = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
                 for key in cfg if key != "hydra"}
    return OmegaConf.create(plain)


def independent_logprob(model, tokenizer, messages, oracle):
    """log p(oracle | messages) with one plain, unpadded forward and a full log-softmax."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    oracle_ids = tokenizer(oracle, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + oracle_ids])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(logps[len(prompt_ids) + k - 1, token]) for k, token in enumerate(oracle_ids))


def test_two_iterations_alternate_splits_select_the_argmax_and_train_from_m0(stargate_dir, tmp_path, capsys):
    from clarifylab.models import build_tiny_model_and_tokenizer

    out = tmp_path / "run"
    cfg = compose_star_gate(stargate_dir, out)
    factory, starts = Factory(), StartWeights()
    result = run_star_gate(cfg, extra_callbacks=[starts], questioner_factory=factory,
                           roleplayer_backend=ScriptedRoleplayer())
    # m_0 is the base model, m_1 is iteration 0's policy.
    assert factory.calls == [(0, True), (1, False)]
    assert [iteration_split(["A", "B"], t) for t in range(4)] == ["A", "B", "A", "B"]
    m0, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    m0.eval()
    for t, split in ((0, "A"), (1, "B")):
        directory = out / f"iter_{t}"
        records = [json.loads(line) for line in (directory / "conversations.jsonl").read_text().splitlines()]
        assert {r["split"] for r in records} == {split} and len(records) == 6 * 3
        tasks = json.loads((stargate_dir / "instruct-questions" / f"{split}.json").read_text())
        turns = json.loads((directory / "turns.json").read_text())["by_pair"]
        for pair_id, k in turns.items():
            assert k == draw_turns(pair_id, 0, t, 3) and 1 <= k <= 3
            pair = [r for r in records if r["pair_id"] == pair_id]
            # equal length for the pair's N conversations, ending with a Roleplayer answer
            assert {len(r["messages"]) for r in pair} == {1 + 2 * k} and all(r["turns"] == k for r in pair)
            assert all(r["messages"][-1]["role"] == "user" for r in pair)
            i, j = (int(part.split("-")[1]) for part in pair_id.split())
            assert pair[0]["messages"][0]["content"] == f"My name is {['ann', 'bob'][j]}. {tasks[i]}"
            oracle = ["the answer is one hundred", "the total is two million", "it is the first quarter"][(i + j) % 3]
            scores = []
            for r in pair:
                context = r["messages"][:-1] + [{"role": "user",
                                                 "content": r["messages"][-1]["content"] + "\n\n" + tasks[i]}]
                scores.append(independent_logprob(m0, tokenizer, context, " " + oracle))
                assert r["oracle_tokens"] == len(tokenizer(" " + oracle, add_special_tokens=False)["input_ids"])
            assert [r["score"] for r in pair] == pytest.approx(scores, abs=1e-4)
            best = max(range(len(pair)), key=lambda b: (scores[b], -b))
            assert [r["selected"] for r in pair] == [b == best for b in range(len(pair))]
        # SFT examples: one per pair, the selected conversation + m_t's answer; only assistant tokens labelled.
        examples = read_examples(directory / "sft_examples.jsonl")
        assert len(examples) == 6 and all(e.response == "the answer is ten" for e in examples)
        features = tokenize_examples(examples, tokenizer, 512, "all_assistant", "error",
                                     instruction=cfg.dataset.instruction)
        for example, feature in zip(examples, features):
            labelled = [tok for tok, lab in zip(feature["input_ids"], feature["labels"]) if lab != IGNORE_INDEX]
            assistant = [t.content for t in example.history if t.role == "assistant"] + [example.response]
            expected = []
            for content in assistant:
                expected += tokenizer(content, add_special_tokens=False)["input_ids"] + [3]  # + <|im_end|>
            assert labelled == expected  # user turns (persona answers, the task) are masked
        assert json.loads((directory / "metrics.json").read_text())["train/steps"] == 2
    # Every iteration's training starts from m0: the same base weights and a zero LoRA delta.
    assert len(starts.snapshots) == 2
    base = m0.state_dict()
    for snapshot in starts.snapshots:
        for key, value in snapshot.items():
            if "lora_B" in key:
                assert torch.count_nonzero(value) == 0
            elif "lora_" not in key:
                assert torch.equal(value, base[key.replace("base_model.model.", "").replace(".base_layer", "")])
    assert all(torch.equal(starts.snapshots[0][k], starts.snapshots[1][k]) for k in starts.snapshots[0])
    assert (out / "policy").resolve() == (out / "iter_1" / "policy").resolve()
    assert result["star_gate/iter_1/selected"] == 6.0
    assert result["star_gate/iter_0/logprob_selected"] >= result["star_gate/iter_0/logprob_all"]

    # A re-run skips both iterations.
    capsys.readouterr()
    again = Factory()
    assert run_star_gate(cfg, questioner_factory=again, roleplayer_backend=ScriptedRoleplayer()) == \
        pytest.approx(result, nan_ok=True)
    assert again.calls == [] and capsys.readouterr().out.count("skipped") == 2


def test_turns_are_reproducible_from_the_seed_and_cover_one_to_three():
    ids = [f"prompt-{i} persona-{j}" for i in range(30) for j in range(2)]
    first = [draw_turns(pid, 7, 1) for pid in ids]
    assert first == [draw_turns(pid, 7, 1) for pid in ids]
    assert set(first) == {1, 2, 3}
    assert first != [draw_turns(pid, 8, 1) for pid in ids]


def test_regularization_variants_and_missing_oracle(stargate_dir, stargate_tree, tmp_path):
    from clarifylab.errors import ConfigError

    for mode, last in (("oracle", None), ("none", "?")):
        out = tmp_path / mode
        cfg = compose_star_gate(stargate_dir, out, "trainer.iterations=1", f"trainer.regularization={mode}")
        run_star_gate(cfg, questioner_factory=Factory(), roleplayer_backend=ScriptedRoleplayer())
        examples = read_examples(out / "iter_0" / "sft_examples.jsonl")
        if mode == "oracle":
            assert all(e.response == e.goal[0] for e in examples)
        else:
            assert all(e.response.endswith(last) and e.history[-1].role == "user" for e in examples)
    bare = stargate_tree(tmp_path / "bare", oracle_splits=("test",))
    with pytest.raises(ConfigError, match="task=stargate_oracle task.split=A"):
        run_star_gate(compose_star_gate(bare, tmp_path / "x"), questioner_factory=Factory(),
                      roleplayer_backend=ScriptedRoleplayer())


class AlwaysA:
    name = model_id = "always-a"

    def __init__(self):
        self.prompts = []

    def complete(self, batch, params):
        self.prompts += batch
        return ["A"] * len(batch)


def compose_eval(data_dir, out, train_dir, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            "protocol=star_gate_win_rate", "dataset=stargate", "student=tiny", f"dataset.dir={data_dir}",
            f"paths.cache_dir={out / 'cache'}", f"protocol.train_dir={train_dir}", "protocol.bootstrap_samples=50",
            *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        validate_config(cfg)
        cfg.output_dir = str(out)
        plain = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
                 for key in cfg if key != "hydra"}
    return OmegaConf.create(plain)


def test_win_rate_protocol_with_a_position_biased_judge(stargate_dir, tmp_path):
    from clarifylab.methods.star_gate.win_rate_eval import run_win_rate_evaluation

    train = tmp_path / "train"
    run_star_gate(compose_star_gate(stargate_dir, train, "trainer.iterations=2"), questioner_factory=Factory(),
                  roleplayer_backend=ScriptedRoleplayer())
    out = tmp_path / "eval"
    judge = AlwaysA()
    labels = []

    def questioners(label, policy_dir):
        labels.append((label, None if policy_dir is None else policy_dir.parent.name))
        return ScriptedQuestioner()

    metrics = run_win_rate_evaluation(compose_eval(stargate_dir, out, train), questioner_factory=questioners,
                                      roleplayer_backend=ScriptedRoleplayer(), judge_backend=judge)
    assert labels == [("m0", None), ("m1", "iter_0"), ("m2", "iter_1")]
    assert len(judge.prompts) == 2 * 2 * 4  # 2 models x 2 orders x 4 test pairs
    assert "she has one company" in judge.prompts[0][0]["content"]  # the judge sees the persona
    for row in metrics["by_model"]:
        assert row["single_win_rate"] == 0.5 and row["flips"] == 4 and row["wins"] == row["losses"] == 0
        assert row["both_win_rate"] == 0.5 and row["both_strict_win_rate"] == 0.0
    assert metrics["win_rate"] == 0.5 and metrics["win_rate_both"] == 0.5
    curve = metrics["logprob_curve"]
    assert [(c["questioner"], c["split"]) for c in curve] == [("m0", "A"), ("m1", "B")]
    assert all(c["logprob_selected"] >= c["logprob_all"] for c in curve)
    assert [c["model"] for c in metrics["test_logprob_curve"]] == ["m0", "m1", "m2"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["win_rate"] == 0.5 and (out / "results.md").is_file()
    assert len(saved["data_files"]) == 4 and saved["data_file"].endswith("instruct-questions/test.json")
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 8 and {i["verdict_model_first"] for i in items} == {"A"}


class TableLogger:
    """A logger that takes tables (as W&B's does): records what it was given."""

    def __init__(self):
        self.tables, self.metrics = [], []

    def log_metrics(self, metrics, step=None):
        self.metrics.append((metrics, step))

    def log_table(self, key, columns=None, data=None):
        self.tables.append((key, columns, data))


def test_conversation_table_rows_and_callback_on_hand_made_records():
    from types import SimpleNamespace

    from clarifylab.methods.star_gate.conversation_table import (
        TABLE_COLUMNS,
        TABLE_KEY,
        ConversationTableCallback,
        conversation_rows,
    )

    records = [{"pair_id": "prompt-0 persona-1", "branch": b, "turns": 1, "score": -3.5 - b, "oracle_tokens": 4,
                "selected": b == 0, "iteration": 1, "split": "B", "persona": "she has one company", "task": "what",
                "messages": [{"role": "user", "content": "My name is bob. what"},
                             {"role": "assistant", "content": "which year ?"}, {"role": "user", "content": "2020"}]}
               for b in range(3)]
    rows = conversation_rows(records, max_rows=2)
    assert rows == [[1, "B", "prompt-0 persona-1", "she has one company", "what", b, 1,
                     "user: My name is bob. what\nassistant: which year ?\nuser: 2020", -3.5 - b, 4, b == 0]
                    for b in range(2)]
    assert len(rows[0]) == len(TABLE_COLUMNS)
    table, csv_like = TableLogger(), SimpleNamespace(log_metrics=lambda *a, **k: None)
    callback = ConversationTableCallback(rows, {"iteration": 1, "split": "B", "logprob_all": -4.0, "selected": 1})
    callback.on_fit_start(SimpleNamespace(is_global_zero=True, loggers=[csv_like, table]), None)
    assert table.tables == [(TABLE_KEY, TABLE_COLUMNS, rows)]
    assert table.metrics == [({"star_gate/logprob_all": -4.0, "star_gate/selected": 1.0}, 0)]
    assert callback.logged_to == ["TableLogger"]


def test_every_iteration_logs_its_conversation_table_to_an_offline_wandb_run(stargate_dir, tmp_path, monkeypatch):
    from clarifylab.errors import ConfigError
    from clarifylab.methods.star_gate.conversation_table import TABLE_COLUMNS

    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    cfg = compose_star_gate(stargate_dir, out, "logger=wandb", "trainer.table_rows=10")
    with pytest.raises(ConfigError, match="trainer.table_rows=-1"):
        run_star_gate(OmegaConf.merge(cfg, {"trainer": {"table_rows": -1}}))
    run_star_gate(cfg, questioner_factory=Factory(), roleplayer_backend=ScriptedRoleplayer())
    for t, split in ((0, "A"), (1, "B")):
        runs = list((out / f"iter_{t}" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs  # one W&B run per iteration
        tables = list(runs[0].rglob("conversations_*.table.json"))
        assert len(tables) == 1
        table = json.loads(tables[0].read_text())
        assert table["columns"] == TABLE_COLUMNS
        records = [json.loads(line) for line in (out / f"iter_{t}" / "conversations.jsonl").read_text().splitlines()]
        assert len(records) == 18 and len(table["data"]) == 10  # 6 pairs x N = 3, the first 10 rows
        for row, record in zip(table["data"], records):
            assert row[:3] == [t, split, record["pair_id"]]
            assert row[3] in ("she has one company", "he has two companies")
            assert row[4] == record["task"] and row[8] == pytest.approx(record["score"])
            assert row[10] == record["selected"]
        kept = sum(row[10] for row in table["data"][:9])
        assert kept == 3  # the first 9 rows are pairs 0..2 complete (N = 3), one conversation kept per pair


def test_win_rate_protocol_takes_served_models_from_config(stargate_dir, tmp_path, monkeypatch):
    """policy=openai + protocol.served_models: every m_t is an endpoint node (model = its served name, cache namespace
    tied to the saved weights); a mismatch with the run's models or a local policy fails before any model loads."""
    import clarifylab.backends.factory as factory
    from clarifylab.errors import ConfigError
    from clarifylab.evaluation.components import policy_model_id
    from clarifylab.methods.star_gate.win_rate_eval import run_win_rate_evaluation

    train = tmp_path / "train"
    run_star_gate(compose_star_gate(stargate_dir, train, "trainer.iterations=2"), questioner_factory=Factory(),
                  roleplayer_backend=ScriptedRoleplayer())
    endpoint = ["policy=openai", "policy.model=base-model", "policy.base_url=http://127.0.0.1:9/v1"]
    built = []

    def fake_build_backend(node, cache_dir, policy=None):
        built.append(dict(node))
        return ScriptedQuestioner()

    monkeypatch.setattr(factory, "build_backend", fake_build_backend)
    cfg = compose_eval(stargate_dir, tmp_path / "eval", train, *endpoint,
                       "protocol.served_models={m1: a1, m2: {model: a2, base_url: 'http://127.0.0.1:10/v1'}}")
    metrics = run_win_rate_evaluation(cfg, roleplayer_backend=ScriptedRoleplayer(), judge_backend=AlwaysA())
    assert [(n["kind"], n["model"], n["base_url"]) for n in built] == [
        ("openai", "base-model", "http://127.0.0.1:9/v1"), ("openai", "a1", "http://127.0.0.1:9/v1"),
        ("openai", "a2", "http://127.0.0.1:10/v1")]
    weights = [policy_model_id(train / f"iter_{t}" / "policy").split(":")[1] for t in (0, 1)]
    assert [n["namespace"] for n in built] == ["policy_openai", f"policy_openai_m1_{weights[0]}",
                                               f"policy_openai_m2_{weights[1]}"]
    assert metrics["questioner_models"] == {"m0": "base-model @ http://127.0.0.1:9/v1",
                                            "m1": "a1 @ http://127.0.0.1:9/v1", "m2": "a2 @ http://127.0.0.1:10/v1"}
    assert [row["label"] for row in metrics["by_model"]] == ["m1", "m2"]
    built.clear()
    for overrides, message in (((*endpoint, "protocol.served_models={m1: a1}"), r"missing \['m2'\]"),
                               ((*endpoint, "protocol.served_models={m1: a1, m2: a2, m3: a3}"), r"unknown \['m3'\]"),
                               ((*endpoint, "protocol.served_models={m1: a1, m2: {name: a2}}"), "served_models.m2="),
                               (("protocol.served_models={m1: a1, m2: a2}",), "policy=openai")):
        with pytest.raises(ConfigError, match=message):
            run_win_rate_evaluation(compose_eval(stargate_dir, tmp_path / "bad", train, *overrides),
                                    roleplayer_backend=ScriptedRoleplayer(), judge_backend=AlwaysA())
    assert built == []  # refused before any backend was built
