# Two commands for a new user: `make run` serves the registry on http://localhost:8003,
# `make test` runs the whole suite on SQLite and, at the same time, on PostgreSQL when one is reachable.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
# 1 = PostgreSQL must be reachable (CI); 0 = its run is skipped with a message when it is not.
REQUIRE_POSTGRES ?= 0
PYTEST_ARGS ?=
# xdist workers per suite (pytest.ini keeps a module's live server on one worker).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

.PHONY: run test test-sqlite test-postgres lint venv bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(VENV)/bin/gunicorn --config registry_site/gunicorn.conf.py registry_site.wsgi:application

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

# The gates CI runs before the tests: lint, formatting, and no model change without its migration.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	env -u DATABASE_URL $(PY) manage.py makemigrations --check --dry-run --verbosity 0

bench: $(STAMP)
	$(PY) bench/file_transfer.py

clean:
	rm -rf $(VENV) .pytest_cache
