import os

import pytest

from tests.postgres import drop_database
from tests.unit.helpers import CREATED_DATABASES, make_context


@pytest.fixture(autouse=True)
def _no_deployment_settings(monkeypatch):
    """Unit tests see the defaults only, whatever RECOUVREMENT_* the shell exports."""
    for name in [n for n in os.environ if n.startswith("RECOUVREMENT_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases():
    """With TEST_POSTGRES_URL, the databases the run created are dropped at its end."""
    yield
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    for name in CREATED_DATABASES if admin_url else []:
        drop_database(name, admin_url)
