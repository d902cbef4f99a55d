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

.PHONY: install browser test test-slow test-all experiment bench rbms-venv gpu-kit clean

install: $(STAMP)

# The report test drives a real headless Chromium: Debian's chromium and chromium-driver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; }

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PYTHONNODEBUGRANGES: Python 3.11 formats a traceback by parsing its source line with `ast`,
# and two threads doing so at once (orbax's asyncio thread logging an exception while another
# is formatted) can fail with "SystemError: AST constructor recursion depth mismatch"
# (a CPython 3.11 race). Without column ranges in code objects, tracebacks skip that parse.
test: install browser
	PYTHONNODEBUGRANGES=1 $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile

# The tests marked slow alone (CI runs them after `make test`).
test-slow: install browser
	PYTHONNODEBUGRANGES=1 $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile -m slow

test-all: install browser
	PYTHONNODEBUGRANGES=1 $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile -m ''

experiment: install
	$(BIN)/aerbm experiment $(NAME) $(ARGS)

# The peers (PyTorch, rbms, learnergy, thrml) install into .venv on first use; MNIST is read from
# ../shared/data/mnist.npz unless ARGS has --mnist PATH. With .venv-rbms (`make rbms-venv`) the
# MNIST benchmark also trains rbms 0.6 there.
RBMS_VENV := .venv-rbms
bench: install
	$(BIN)/python -c "import torch, rbms, learnergy, thrml" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/throughput.py
	RBMS_PYTHON=$(if $(wildcard $(RBMS_VENV)/bin/python),$(RBMS_VENV)/bin/python) \
	  $(BIN)/python benchmarks/tasks.py $(ARGS)
	$(BIN)/python benchmarks/small_bound.py

# rbms 0.6 needs Python >= 3.12 (.venv may be older): a venv of its own for `make bench`. PyPI's
# torch for Linux is a CUDA build of several GB; it runs on the CPU all the same.
# The interpreter: the first Python 3.12 or 3.13 that runs, on the PATH or installed by pyenv.
RBMS_PYTHON_BIN ?= $(firstword $(foreach p,python3.12 python3.13,$(shell $(p) -c '' 2>/dev/null \
  && echo $(p))) $(wildcard $(HOME)/.pyenv/versions/3.1[23]*/bin/python3))
rbms-venv:
	@test -n "$(RBMS_PYTHON_BIN)" || { echo "rbms 0.6 needs Python 3.12 or 3.13: none found" \
	  "(set RBMS_PYTHON_BIN=/path/to/python)"; exit 1; }
	test -d $(RBMS_VENV) || $(RBMS_PYTHON_BIN) -m venv $(RBMS_VENV)
	$(RBMS_VENV)/bin/python -m pip install --quiet 'rbms>=0.6'

# What benchmarks/gpu_tasks.sh needs on a lent GPU machine beside the checkout: MNIST, copied
# into .gpu/ (ignored by git) for the device tool to carry (`carry=[".gpu"]`).
MNIST ?= ../shared/data/mnist.npz
gpu-kit:
	mkdir -p .gpu
	cp $(MNIST) .gpu/mnist.npz

clean:
	rm -rf $(VENV) $(RBMS_VENV) build *.egg-info .pytest_cache runs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
