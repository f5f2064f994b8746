# Two commands for a new user: `make run` serves the registry on http://localhost:8003 (`make run PORT=8080`
# elsewhere), `make test` runs the whole suite on SQLite and, at the same time, on PostgreSQL when one is reachable.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# Serving needs requirements.txt only; the tests and tools add requirements-dev.txt.
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.dev-stamp
PORT ?= 8003
REGISTRY_BIND ?= 127.0.0.1:$(PORT)
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
# 1 = PostgreSQL must be reachable (CI); 0 = its run is skipped with a message when it is not.
REQUIRE_POSTGRES ?= 0
PYTEST_ARGS ?=
# xdist workers per suite (pytest.ini keeps a module's live server on one worker).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

.PHONY: run demo test test-sqlite test-postgres lint venv bench bench-admin bench-mlflow bench-slow-clients compose-test clean

venv: $(STAMP)

$(RUN_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(STAMP): $(RUN_STAMP) requirements-dev.txt client/pyproject.toml
	$(PIP) -r requirements-dev.txt
	touch $@

# The server and, beside it, the webhook worker (manage.py deliver_webhooks). Both run in the background of
# one shell that waits for either: Ctrl-C or a TERM to the shell stops both, and if one of them ends the
# other is stopped too, so nothing is left running.
run: $(RUN_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@REGISTRY_BIND=$(REGISTRY_BIND) $(VENV)/bin/gunicorn --config registry_site/gunicorn.conf.py registry_site.wsgi:application & server=$$!; \
	$(PY) manage.py deliver_webhooks & worker=$$!; \
	stop() { kill -TERM $$server $$worker 2>/dev/null; wait $$server; wait $$worker; }; \
	trap 'stop; exit 130' INT; trap 'stop; exit 143' TERM; \
	while kill -0 $$server 2>/dev/null && kill -0 $$worker 2>/dev/null; do sleep 1 & wait $$!; done; \
	echo "make run: the server or the webhook worker ended; stopping the other" >&2; stop; exit 1

# The README's quick start against a running `make run` (same PORT): a sample model file, a model, a version.
demo:
	tools/demo.sh http://localhost:$(PORT)

# Both suites at once: each waits on its servers, subprocesses and database often enough that together
# they keep the cores busy. Each suite's output is printed whole when it ends; either failing fails this.
test: $(STAMP)
	@$(MAKE) --no-print-directory --jobs=2 --output-sync=target test-sqlite test-postgres

test-sqlite: $(STAMP)
	@echo "== SQLite suite"
	env -u DATABASE_URL $(PYTEST)

test-postgres: $(STAMP)
	@if $(PY) -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$(TEST_POSTGRES_URL)" 2>/dev/null; then \
		echo "== PostgreSQL suite against $(TEST_POSTGRES_URL)"; \
		DATABASE_URL="$(TEST_POSTGRES_URL)" $(PYTEST); \
	elif [ "$(REQUIRE_POSTGRES)" = "1" ]; then \
		echo "PostgreSQL at $(TEST_POSTGRES_URL) is not reachable, and REQUIRE_POSTGRES=1" >&2; exit 1; \
	else \
		echo "== PostgreSQL at $(TEST_POSTGRES_URL) is not reachable: its suite is skipped (CI requires it)"; \
	fi

# The gates CI runs before the tests: lint, formatting, the layers' import contracts and the type check
# (both configured in pyproject.toml), and no model change without its migration.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	env -u DATABASE_URL $(VENV)/bin/mypy
	env -u DATABASE_URL $(PY) manage.py makemigrations --check --dry-run --verbosity 0

bench: $(STAMP)
	$(PY) bench/file_transfer.py

# MLflow in its own virtual environment, for the side-by-side comparison (bench/compare_mlflow.py).
MLFLOW_VENV := bench/.venv-mlflow
$(MLFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet mlflow==3.17.2
	touch $@

bench-mlflow: $(STAMP) $(MLFLOW_VENV)/.installed
	$(PY) bench/compare_mlflow.py $(BENCH_ARGS)

bench-slow-clients: $(STAMP)
	$(PY) bench/slow_clients.py

# Every admin page and API read timed with 1k and 100k versions (BENCH_ARGS="--sizes 1000,100000,1000000"
# for a million) on SQLite and on PostgreSQL (BENCH_ARGS="--pg-url ..."; its tables are emptied).
bench-admin: $(STAMP)
	$(PY) bench/admin_scale.py $(BENCH_ARGS)

# The seed's docker-compose stack, built and run for real (tools/compose-test.sh says what it checks).
compose-test:
	tools/compose-test.sh

clean:
	rm -rf $(VENV) .pytest_cache
