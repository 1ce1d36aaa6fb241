# Volume Data Sync — the two quickstart commands are `make run` and `make test`.
PY      := $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= sync.toml
PORT    ?= 8501

.PHONY: run run-example check test test-fast test-corpus lint lock clean demo bench bench-matrix screenshots faults

# Create the virtualenv from the pinned locks (only when missing or when a lock changed).
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
		|| $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@# byte-compile the package as `pip install .` does in the image (an editable install does not,
	@# and with PYTHONDONTWRITEBYTECODE every process would compile it again: ~0.2 s each)
	$(BIN)/python -m compileall -q syncer
	@touch $(STAMP)

# Build the demo warehouse only when it is missing.
var/warehouse.duckdb: | $(STAMP)
	$(BIN)/syncer --config $(CONFIG) demo

demo: $(STAMP)
	$(BIN)/syncer --config $(CONFIG) demo

## make run: environment + demo warehouse if missing, then the admin app at http://localhost:$(PORT)
## (8501 unless `make run PORT=8600`).
## The startup sync (repair; sync unless the data is fresh) runs inside the app's lifespan, before the UI.
## EXAMPLE=1 make run also starts the end-user example app (examples/dashboard) on EXAMPLE_PORT (8502).
EXAMPLE_PORT ?= 8502
RUN_EXAMPLE = SYNCER_CONFIG=$(abspath $(CONFIG)) ARROW_DEFAULT_MEMORY_POOL=system $(BIN)/streamlit run \
	examples/dashboard/app.py --server.port $(EXAMPLE_PORT) --server.headless true
run: $(STAMP) var/warehouse.duckdb
	@if [ -n "$(EXAMPLE)" ]; then echo "example app: http://localhost:$(EXAMPLE_PORT)"; $(RUN_EXAMPLE) & fi; \
	SYNCER_CONFIG=$(abspath $(CONFIG)) ARROW_DEFAULT_MEMORY_POOL=system $(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

## make run-example: only the example app, reading the volume of $(CONFIG) through read_table (port EXAMPLE_PORT).
run-example: $(STAMP)
	$(RUN_EXAMPLE)

## make check: lint, format, the engine's structure (module and function sizes, no import cycle), types.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_structure.py
	$(BIN)/mypy

## make test: lint, format check + the whole test suite, slow scenarios included, the shape corpus one
## case a shape (pytest's "no tests collected", exit 5, counts as a failure).
test: check
	@$(BIN)/python -m pytest -m "not corpus" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## make test-fast: the same without the tests marked slow (crash loops, browser, production user).
test-fast: check
	@$(BIN)/python -m pytest -m "not slow and not corpus" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

## make test-corpus: the whole shape corpus (tests/test_memory_shapes.py): every shape in every format it
## supports and through the engine, each a real sync whose process tree's peak must stay under 400 MiB,
## and the longer memory cases beside it (a 300-column JSONL sync against its CSV sync).
test-corpus: .venv/.installed
	@$(BIN)/python -m pytest -m corpus tests/test_memory_shapes.py tests/test_memory_bound.py tests/test_memory.py $(PYTEST_ARGS)

## make screenshots: refresh the README's screenshots of every admin page (docs/*.png) on a throw-away
## demo, through the browser test's proxy and Chromium (/usr/bin/chromium).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

## make bench: the performance benchmark (5M and 20M rows; not part of `make test`).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## make bench-matrix: every table shape x every format against DuckDB's COPY (see README; long).
bench-matrix: $(STAMP)
	$(BIN)/python benchmarks/matrix.py $(BENCH_ARGS)
## make faults: the long fault-injection sweep (strace syscall faults at several positions per syscall,
## random libfiu I/O faults; needs the Debian packages strace and fiu-utils). Figures in README.
faults: $(STAMP)
	$(BIN)/python scripts/faults.py $(FAULTS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make lock: re-pin the dependencies from pyproject.toml into requirements*.lock. The runtime lock is
## everything the engine and the app need (the `all` extra); the reader alone needs far less (README).
lock:
	rm -rf /tmp/vds-lock && $(PY) -m venv /tmp/vds-lock
	/tmp/vds-lock/bin/pip install --quiet ".[all]"
	/tmp/vds-lock/bin/pip freeze --exclude volume-data-sync > /tmp/vds-lock.txt
	{ echo "# Runtime dependencies, fully pinned (pip freeze of a clean venv with pyproject's dependencies and the all extra)."; \
	  echo "# Regenerate: make lock"; cat /tmp/vds-lock.txt; } > requirements.lock
	/tmp/vds-lock/bin/pip install --quiet ".[all,dev]"
	{ echo "# Development and test dependencies on top of the runtime lock. Regenerate: make lock"; \
	  echo "-r requirements.lock"; /tmp/vds-lock/bin/pip freeze --exclude volume-data-sync | grep -v -i -x -F -f /tmp/vds-lock.txt; } \
	  > requirements-dev.lock

clean:
	rm -rf var .pytest_cache .ruff_cache
