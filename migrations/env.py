"""Alembic environment: run by `recouvrement migrate`, by `recouvrement serve` at start,
or by `alembic -x url=… upgrade head`."""

from alembic import context
from sqlalchemy import create_engine

import app.claims.models  # noqa: F401  (registers the tables)
import app.deadlines.models  # noqa: F401
import app.inbox.models  # noqa: F401
import app.leadership.models  # noqa: F401
import app.prevention.models  # noqa: F401
import app.reconciliation.models  # noqa: F401
from app.database import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
