# The two commands of README.md, and the rest. Every target sets up .venv itself on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := calsync_server calsync_tui shared

.PHONY: demo test lint typecheck pytest bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Everything offline: the emulator (demo scenario, live), the server and the dashboard; q quits.
demo: $(VENV)/.installed
	$(VENV)/bin/calsync demo

test: $(VENV)/.installed lint typecheck pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(PACKAGES) tests
	$(VENV)/bin/ruff format --check $(PACKAGES) tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy $(PACKAGES)

pytest: $(VENV)/.installed
	$(VENV)/bin/pytest

# Speed figures against their references, in one run (a few minutes): tests/bench/RESULTS.md.
bench: $(VENV)/.installed
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
