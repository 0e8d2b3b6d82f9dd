# Kapsule — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is a convenience for developers.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# pytest-xdist workers; the tiers (tests/unit, tests/integration, tests/e2e) run side by side on them.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast lint lab bench recordings train-beats system-deps system-test-deps clean

help:
	@echo "make demo   install what is missing, then render the demo song into out/demo.mp4"
	@echo "make test   install what is missing, then run ruff, mypy, the layer contracts and all tests"
	@echo "make test-fast   the unit tier alone (tests/unit, about a minute): the edit loop"
	@echo "make lab    JupyterLab on notebooks/ with the project's kernel"
	@echo "make bench  run the benchmarks and print their ratios"
	@echo "make recordings  fetch the real recordings the analysis benchmark scores (not in git)"

system-deps:
	@scripts/install-system-deps.sh

system-test-deps:
	@scripts/install-system-deps.sh --test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,lab]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: system-deps $(STAMP)
	$(BIN)/kapsule demo -o out/demo.mp4 --force

test: system-test-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15

# The unit tier alone: in-process tests that need no emulator, server or browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -n $(TEST_WORKERS) --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

lab: system-deps $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name kapsule --display-name "Kapsule (.venv)"
	KAPSULE_KERNEL_NAME=kapsule \
	KAPSULE_STORAGE_URL=file://$(CURDIR)/.kapsule/data \
	KAPSULE_STATUS_URL=sqlite:///$(CURDIR)/.kapsule/jobs.db \
	KAPSULE_WORK_DIR=$(CURDIR)/.kapsule/work \
	$(BIN)/jupyter lab notebooks/

# The real recordings the analysis benchmark scores (audio licences forbid committing them): copied
# from their repositories at pinned commits into benchmarks/.cache/recordings (needs GitHub).
recordings: $(STAMP)
	$(BIN)/python benchmarks/recordings.py

bench: system-test-deps $(STAMP)
	@scripts/install-system-deps.sh --bench
	$(BIN)/python -c 'import music21, mir_eval, moviepy, mido' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/python benchmarks/analysis.py
	$(BIN)/python benchmarks/assembly.py --repeat 2

# Retrain the analysis's beat network (kapsule/analysis/beat_net.npz): renders the training
# pieces once (cached in benchmarks/.cache/beat-train), then trains on the CPU (~30 min on 2 cores).
train-beats: system-test-deps $(STAMP)
	@scripts/install-system-deps.sh --bench
	$(BIN)/python -c 'import torch, mido' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[train,bench]'
	$(BIN)/python -m training.train_beat_net

clean:
	rm -rf .kapsule out test-artifacts .pytest_cache
