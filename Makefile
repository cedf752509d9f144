# Two commands on a fresh machine with Python 3.11:  make demo  |  make test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint schemas bench-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rrd build recipes/demo.yaml

test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)  # review page tests
	$(BIN)/ruff check retinal_reason_data tests benchmarks
	$(BIN)/ruff format --check retinal_reason_data tests benchmarks
	$(BIN)/python -m pytest

schemas: $(STAMP)
	$(BIN)/rrd schemas

# Benchmarks compare with imagededup, which needs torch and torchvision: a separate environment.
bench-env: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	.venv-bench/bin/python -m pip install --quiet -e ".[bench]"

clean:
	rm -rf $(VENV) recipes/work
