# Set-up and entry points. `make demo` and `make test` work on a fresh machine with only Python 3.11:
# they create .venv, install torch==2.13.0 first (the CPU build; a newer torch would pull GBs of CUDA
# packages) and then the project with its extras.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
BENCHMARKS := $(sort $(filter-out tests/benchmarks/_common.py,$(wildcard tests/benchmarks/*.py)))
OUT ?= out

.PHONY: demo test test-fast lint docs benchmarks benchmarks-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[ml,test,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/har.py --out $(OUT)/har

test: $(STAMP)
	$(MAKE) lint
	$(MAKE) docs
	$(MAKE) benchmarks-quick
	$(PY) -m pytest -n 2 --dist loadfile tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow" tests

lint: $(STAMP)
	tools/lint_layers.sh

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

benchmarks-quick: $(STAMP)
	@set -e; for script in $(BENCHMARKS); do echo "== $$script --quick"; $(PY) $$script --quick; done

benchmarks: $(STAMP)
	@set -e; for script in $(BENCHMARKS); do name=$$(basename $$script .py); echo "== $$script"; \
		$(PY) $$script --json docs/benchmarks/$$name.json; done

clean:
	rm -rf $(VENV) docs/_build docs/_generated $(OUT)
