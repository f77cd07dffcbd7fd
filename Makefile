# Two commands on a fresh Debian machine (run as root, or with sudo available):
#   make demo   the main job: local Redmine, the service, a sample litigation file
#   make test   every test, end-to-end ones against the real local Redmine and PostgreSQL included
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The local Redmine of `make redmine`, `e2e`, `demo`, `bench` (scripts/redmine-local.sh):
# 5.0 = Debian 12's packages on this machine; 6.0 = Debian 13's, 6.1 = Debian sid's, each in
# a Debian root built once under /var/tmp/recouvrement-redmine-VERSION (a few minutes).
REDMINE_VERSION ?= 5.0
export REDMINE_VERSION

.PHONY: demo test unit unit-postgres e2e redmine redmine-stop postgres bench venv clean

$(VENV)/.installed: pyproject.toml
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
	@python3 -m venv $(VENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,postgres]'
	@touch $@

venv: $(VENV)/.installed

redmine: venv
	PYTHON=$(PY) scripts/redmine-local.sh up

redmine-stop:
	scripts/redmine-local.sh stop

demo: redmine
	$(PY) scripts/demo.py

# Every test against Redmine 5.0 (SQLite, those of several replicas on PostgreSQL), the
# end-to-end suite against Redmine 6.1 and 6.0 too, the three at once; then the unit tests
# wholly on PostgreSQL. One line per part at the end (scripts/test-matrix.sh).
test: venv postgres
	PYTHON=$(PY) PYTEST_ARGS="$(PYTEST_ARGS)" TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) scripts/test-matrix.sh

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# PostgreSQL on 127.0.0.1:5432 (installed and started if none answers).
postgres:
	scripts/postgres-local.sh

# The unit tests on PostgreSQL (a database per test on TEST_POSTGRES_URL's server).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
unit-postgres: venv postgres
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(PY) -m pytest tests/unit $(PYTEST_ARGS)

e2e: redmine
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# Benchmarks (benchmarks/README.md): each prints its table and writes benchmarks/results/NAME.json;
# a missed target is reported, a wrong result (an event lost, a deadline not fired) fails.
bench: redmine postgres
	$(PY) -m benchmarks.b1_intake
	$(PY) -m benchmarks.b3_deadlines
	$(PY) -m benchmarks.b4_polling
	$(PY) -m benchmarks.b6_reconciliation
	$(PY) -m benchmarks.b2_orchestration

clean:
	rm -rf $(VENV) recouvrement.db* .pytest_cache
