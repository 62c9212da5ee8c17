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

# `calsync demo` (dashboard, server and emulator together) is not built yet: until it is, this
# runs the most complete thing there is, the Google emulator with the live demo scenario.
demo: $(VENV)/.installed
	@echo "calsync demo is not built yet: starting the Google emulator (demo scenario, live)."
	@echo "Point calsync at it with CALSYNC_GOOGLE_API_URL=http://127.0.0.1:8766/ ; Ctrl-C stops it."
	$(VENV)/bin/calsync emulator --scenario demo --live --port 8766

test: $(VENV)/.installed lint typecheck pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(PACKAGES) tests
	$(VENV)/bin/ruff format --check $(PACKAGES) tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy $(PACKAGES)

pytest: $(VENV)/.installed
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
