# Everything a fresh machine needs, in a virtual environment of the checkout's own (.venv, made on first use; `make
# VENV= ...` uses the active Python instead). torch is pinned and installed first: a bare `torch` may pull a CUDA
# build of several GB, and 2.13.0 is the CPU wheel this project is tested with.
VENV ?= .venv
ifeq ($(VENV),)
PYTHON ?= python3
else
PYTHON := $(VENV)/bin/python
endif
PIP := $(PYTHON) -m pip

.PHONY: install demo test quick-test conformance lint docs docs-check slurm-check

$(VENV)/bin/python:
	python3 -m venv $(VENV) || (echo "Could not make a virtual environment: on Debian or Ubuntu, apt-get install python3-venv" && false)

install: $(if $(VENV),$(VENV)/bin/python)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[zoo,mujoco,box2d,extra,bench,tests]"

demo: install
	$(PYTHON) -m sb3_denoise_pg.demo

test: install
	$(PYTHON) -m pytest -n 2 --dist loadgroup --durations=10 tests

# The contributor's loop: the tests without the slow learning and fitting ones
quick-test:
	$(PYTHON) -m pytest -n 2 --dist loadgroup -m "not slow" tests

# Stable-Baselines3's own tests with DenoisePG added wherever TD3 is tested (docs/conformance.rst)
conformance: install
	$(PYTHON) tests/sb3_conformance.py -n 2 -rsx

docs: $(if $(VENV),$(VENV)/bin/python)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[docs]"
	rm -rf docs/_build
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html
	$(PYTHON) docs/check_offline.py docs/_build/html

# The built pages in a headless browser (Debian's chromium): screenshots to look at, equations typeset, figures loaded
docs-check: docs
	$(PYTHON) docs/screenshots.py docs/_build/html docs/_build/screenshots

# A tiny sweep through a real single-node SLURM started on this machine (as root; docs/benchmarks.rst, "On a cluster")
slurm-check: install
	PYTHON=$(PYTHON) bash benchmarks/slurm/check.sh

lint:
	$(PYTHON) -m ruff check sb3_denoise_pg tests benchmarks docs
	$(PYTHON) -m ruff format --check sb3_denoise_pg tests benchmarks docs
