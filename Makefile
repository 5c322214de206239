# The two commands: `make demo` and `make test`. Both run `setup` first and are safe to run twice.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
TWIN  := $(BIN)/twin
PORT  ?= 8000

.PHONY: setup demo test lint format typecheck db-start db-stop clean

setup:
	@bash scripts/setup.sh

SIZE  ?= small
SEED  ?= 1

demo: setup
	$(TWIN) demo --size $(SIZE) --seed $(SEED) --port $(PORT)

test:
	@bash scripts/setup.sh --browser
	$(BIN)/ruff check twin tests benchmarks notebooks
	$(BIN)/ruff format --check twin tests benchmarks notebooks
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check twin tests benchmarks notebooks
	$(BIN)/ruff format --check twin tests benchmarks notebooks
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix twin tests benchmarks notebooks
	$(BIN)/ruff format twin tests benchmarks notebooks

db-start: setup
	$(TWIN) db start

db-stop:
	-$(TWIN) db stop

clean: db-stop
	rm -rf .twin
