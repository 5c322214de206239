# The two commands: `make demo` and `make test`. Both run `setup` first and are safe to run twice.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
TWIN  := $(BIN)/twin
PORT  ?= 8000

.PHONY: setup demo city test lint format typecheck docs db-start db-stop clean

setup:
	@bash scripts/setup.sh

SIZE  ?= small
SEED  ?= 1

demo: setup
	$(TWIN) demo --size $(SIZE) --seed $(SEED) --port $(PORT)

# A real city from public files: make city OSM=city.osm.pbf DEM=dem.tif [POP=worldpop.tif]
city: setup
	@test -n "$(OSM)" -a -n "$(DEM)" || { echo "usage: make city OSM=FILE.osm.pbf DEM=DEM.tif [POP=GRID.tif] [NAME=...]"; exit 2; }
	$(TWIN) city build --osm $(OSM) --dem $(DEM) $(if $(POP),--population $(POP)) $(if $(NAME),--name "$(NAME)") --port $(PORT) --serve

test:
	@bash scripts/setup.sh --browser
	$(BIN)/ruff check twin tests benchmarks notebooks
	$(BIN)/ruff format --check twin tests benchmarks notebooks
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check twin tests benchmarks notebooks
	$(BIN)/ruff format --check twin tests benchmarks notebooks
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider tests/test_layers.py  # no wrong-way import
	$(BIN)/pytest -q -p no:cacheprovider tests/test_sql_style.py  # no f-string SQL

# The documentation site (mkdocs-material, docs/ + mkdocs.yml) into site/; any warning fails it.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

format: setup
	$(BIN)/ruff check --fix twin tests benchmarks notebooks
	$(BIN)/ruff format twin tests benchmarks notebooks

db-start: setup
	$(TWIN) db start

db-stop:
	-$(TWIN) db stop

clean: db-stop
	rm -rf .twin
