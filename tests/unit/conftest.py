import os

import pytest

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
    if not admin_url or not CREATED_DATABASES:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in CREATED_DATABASES:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()
