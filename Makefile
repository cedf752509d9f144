# Two commands on a fresh machine with Python 3.11:  make demo  |  make test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint schemas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rrd build recipes/demo.yaml

test: $(STAMP)
	$(BIN)/ruff check retinal_reason_data tests benchmarks
	$(BIN)/python -m pytest

schemas: $(STAMP)
	$(BIN)/rrd schemas

clean:
	rm -rf $(VENV) recipes/work
