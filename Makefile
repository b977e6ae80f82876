# psgd-playground build/test entry points.
#   make venv | test | test-all | lint | format | serve | bench | clean
# Variables: PYTHON (interpreter used to create .venv), CONSTRAINTS (pip constraints
# file; set empty to install without one), PYTEST_WORKERS (pytest-xdist processes: auto = one
# per core, 0 = none, all tests in this process), PYTEST_ARGS, BENCH_ARGS.

PYTHON      ?= python3
CONSTRAINTS ?= constraints.txt
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
BENCH_ARGS  ?=

VENV  := .venv
VPY   := $(VENV)/bin/python
RUFF  := $(VENV)/bin/ruff
STAMP := $(VENV)/.installed

# `-c FILE` only when CONSTRAINTS is non-empty.
PIP_CONSTRAINTS := $(if $(strip $(CONSTRAINTS)),-c $(CONSTRAINTS),)
STAMP_DEPS := pyproject.toml $(strip $(CONSTRAINTS))
# A test file's tests share one process (its module fixtures: servers, browsers, a Ray head
# start once), and the files are spread over the workers.
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: venv test test-all lint format serve bench clean

venv: $(STAMP)

# Reinstall only when pyproject.toml or the constraints file changes.
$(STAMP): $(STAMP_DEPS)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install $(PIP_CONSTRAINTS) -e '.[dev,server,ui,bench,ray]'
	@touch $@

# `test` (what CI runs) leaves out the tests marked slow (≈ 4 min of long numerical fits,
# the soak run, memory peaks), to keep CI's whole run under 20 minutes; `test-all` runs them.
test: venv
	$(RUFF) check .
	$(RUFF) format --check .
	$(VPY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-all: venv
	$(RUFF) check .
	$(RUFF) format --check .
	$(VPY) -m pytest $(XDIST) $(PYTEST_ARGS)

lint: venv
	$(RUFF) check .
	$(RUFF) format --check .

format: venv
	$(RUFF) format .

serve: venv
	$(VENV)/bin/psgd-playground serve

bench: venv
	$(VPY) benchmarks/step_time.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
