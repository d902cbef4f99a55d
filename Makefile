# Set-up is automatic: every target that needs the package depends on `install`,
# which creates .venv and installs the package (editable, with its dev extra) once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NAME   ?= faces
ARGS   ?=
# Test files run in parallel worker processes (pytest-xdist), a file per worker at a time
# so that module fixtures run once; most of the suite's time is XLA compilation.
WORKERS ?= 2

.PHONY: install test test-all experiment bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile

test-all: install
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile -m ''

experiment: install
	$(BIN)/aerbm experiment $(NAME) $(ARGS)

bench: install
	$(BIN)/python benchmarks/throughput.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
