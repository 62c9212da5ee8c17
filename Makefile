# The two commands of README.md, and the rest. Every target sets up .venv itself on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := calsync_server calsync_tui shared

.PHONY: demo test lint typecheck pytest wall-clock bench soak clean

# The suite on three workers (pytest-xdist) for CI's two CPUs: two left a third of them idle
# while tests waited on their servers (2026-12-01: 1,072 s with two, 906 s with three). Demo-based
# dashboard tests share one worker (--dist loadgroup), so each session-scoped demo is built once.
PYTEST_WORKERS ?= 3
PYTEST := $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup
# The tests that build on "today" (marker wall_clock) run with the test process's wall clock
# moved (ticking) to hard instants, a third of them at each (tests/conftest.py), in the same
# run as the rest. The instants: midnight UTC on the day Europe moves its clocks forward (01:00
# in Berlin); 23:30 in Berlin at the end of that 23-hour day; 23:30 in New York at the end of
# the 25-hour day the US moved its clocks back (already Nov 2 in UTC and Berlin). Each lies in
# the past, so what a test makes "now" (a TLS certificate) is valid for the real clock too.
# Processes the tests start (calsync serve, sync, demo) keep the real clock: their tests
# (marker real_clock) run on the real clock. `make wall-clock`: every wall_clock test at every
# instant (a few minutes each).
WALL_CLOCKS := 2026-03-29T00:00:00+00:00 2026-03-29T21:30:00+00:00 2026-11-02T04:30:00+00:00

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# caldav needs niquests, whose urllib3-future wheel takes over the `urllib3` package that
# requests (MSAL, schemathesis) relies on, and re-does it at every start through a .pth file.
# Built from source with URLLIB3_NO_OVERRIDE it keeps to its own `urllib3_future` name.
$(VENV)/.installed: pyproject.toml | $(PY)
	URLLIB3_NO_OVERRIDE=1 $(PY) -m pip install -q --no-binary urllib3-future -e '.[test]'
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
	CALSYNC_TEST_WALL_CLOCKS="$(WALL_CLOCKS)" $(PYTEST)

wall-clock: $(VENV)/.installed
	@for at in $(WALL_CLOCKS); do \
		echo "== every wall_clock test, wall clock at $$at"; \
		CALSYNC_TEST_WALL_CLOCKS=$$at $(PYTEST) -m "wall_clock and not real_clock" || exit 1; \
	done

# Speed figures against their references, in one run (a few minutes): tests/bench/RESULTS.md.
bench: $(VENV)/.installed
	$(PY) -m tests.bench

# A simulated season (tests/reliability): 90 days of a mixed user's changes on every provider,
# faults on, the invariant checked every simulated day (some minutes); figures in RESULTS.md.
soak: $(VENV)/.installed
	$(PY) -m tests.reliability.soak --days 90

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
