"""PostgreSQL for the tests: a fresh database per use on the test server
(``scripts/postgres-local.sh``: 127.0.0.1:5432, database ``test``), dropped at the end.

Without a server the tests that need one are skipped, except under ``make test``
(TEST_REQUIRE_POSTGRES=1), where the server is part of what is tested and its absence fails.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def new_database(admin_url: str = ADMIN_URL) -> tuple[str, str]:
    """A new empty database on the server: (its name, its URL); OperationalError without a server."""
    name = f"recouvrement_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def create_database(admin_url: str = ADMIN_URL) -> tuple[str, str]:
    """``new_database`` for a test: skipped without a server, failed under ``make test``."""
    try:
        return new_database(admin_url)
    except OperationalError as exc:
        message = f"pas de PostgreSQL sur {admin_url.rsplit('@', 1)[-1]} ({type(exc).__name__})"
        if os.environ.get("TEST_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()
