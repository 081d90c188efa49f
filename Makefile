# Everyday commands. `make test` works on a fresh machine: it installs what it needs first.
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install test test-compose lint format run seed migrate bench lock clean

$(VENV)/.installed: requirements-dev.lock pyproject.toml scripts/install.sh
	scripts/install.sh
	touch $@

install: $(VENV)/.installed

## test: the whole suite against real PostgreSQL, Redis, API and workers (one fresh database per run)
## on two pytest-xdist processes, each with a session of its own (tests/conftest.py); a module's
## tests stay together on one (--dist loadfile), for its module-scoped stack. Two, not auto: the
## machines have two cores, and each session holds 12–21 PostgreSQL connections (37 at its peak,
## measured), of max_connections=100 on a machine that others use too.
test: install
	scripts/ensure-servers.sh
	scripts/install-browser.sh
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

## test-compose: docker-compose.yml for real: built, started, used, scaled, restarted (Docker
## engine, compose v2 and 1.29, and the base images made by scripts/ensure-docker.sh)
test-compose: install
	scripts/ensure-docker.sh
	$(BIN)/pytest -m compose -o timeout=900 $(or $(PYTEST_ARGS),-v) tests/deploy/test_compose.py

## lint: ruff, mypy, and the import contracts between the layers (pyproject's [tool.importlinter])
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services harness tests bench
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## run: migrate, seed if empty, start every process against DATABASE_URL / REDIS_URL
run: install
	scripts/run.sh

## seed: seed_data --clientes 50 (set CLIENTES=N for more)
seed: install
	$(BIN)/seed_data --clientes $(or $(CLIENTES),50)

migrate: install
	$(BIN)/alembic upgrade head

## bench: benchmarks with their baselines measured in the same run (SIZE=small|large, ONLY=soak,…)
bench: install
	$(BIN)/python -m bench --size $(or $(SIZE),small) $(if $(ONLY),--only $(ONLY))

## lock: re-pin every dependency (versions and hashes, no download addresses): the development
## lock (.venv, CI) and the runtime lock (the images), the latter pinned to the former's versions
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q -o requirements-dev.lock
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -q -c requirements-dev.lock -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-output
