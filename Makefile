# Two commands matter (see README): `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format eval

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

# The main job on embedded defaults: SQLite + local LanceDB + bundled docs + offline answerer.
demo: setup
	$(BIN)/supportbot db upgrade
	$(BIN)/supportbot ingest --sample
	$(BIN)/supportbot chat --demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Retrieval and answer-or-refuse on every evaluation set (Flask, etcd, pytest, FastAPI, the sample),
# per split and question kind; writes docs/bench-sections/eval-sets.md. Exit 1 if a held-out target
# is missed.
eval: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/eval_sets.py --write --json bench/results/eval-sets.json
