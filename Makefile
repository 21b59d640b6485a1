# bench: `make run` (install + the embedded benchmarks + leaderboard), `make test` (install + tests).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install run test test-slow clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python scripts/run_embedded.py

test: install
	bash scripts/install_chromium.sh
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: install
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf outputs .cache results/runs results/leaderboard.* results/schema
