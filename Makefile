# Albedo: the two commands a newcomer needs are `make run` and `make test`.
# The first interpreter that actually runs and is 3.11+ (a pyenv shim may exist but not run).
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export FLASK_APP := wsgi

.PHONY: run serve test lint stop worker migrate bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Albedo needs Python 3.11 or 3.12 (python3.12, python3.11 or python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

## run: install, migrate, seed the demo, start a worker and serve http://localhost:5000
run: $(STAMP)
	ALBEDO_PUBLIC_PORT=$${PORT:-5000} $(BIN)/flask albedo dev --port $${PORT:-5000}

## serve: the production server (gunicorn.conf.py, gevent) on $$PORT (8000), after migrating.
## DATABASE_URL / REDIS_URL from the environment; with neither, the quick start's SQLite and
## embedded Redis under instance/. Executions need a worker too (`make worker`).
serve: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn --config gunicorn.conf.py

## test: install dev dependencies and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	$(BIN)/flask db upgrade

worker: $(STAMP)
	$(BIN)/python -m jobs.worker

## stop: stop the embedded Redis the quick start left running
stop:
	-@test -x $(BIN)/flask && $(BIN)/flask albedo embedded-redis stop

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean: stop
	rm -rf $(VENV) instance .pytest_cache
