# Two commands on a fresh Debian machine (run as root, or with sudo available):
#   make demo   the main job: local Redmine, the service, a sample litigation file
#   make test   every test, end-to-end ones against the real local Redmine included
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test unit unit-postgres e2e redmine redmine-stop venv clean

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

test: redmine
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# The unit tests again on PostgreSQL (a database per test on TEST_POSTGRES_URL's server).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
unit-postgres: venv
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(PY) -m pytest tests/unit $(PYTEST_ARGS)

e2e: redmine
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) recouvrement.db* .pytest_cache
