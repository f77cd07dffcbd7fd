"""Inbox events keep no delivery body (issue 14: personal data): the payload column, with
what earlier rows hold (names, notes, amounts), is dropped.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events") as table:  # SQLite: the table is copied without the column
        table.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("inbox_events") as table:
        table.add_column(sa.Column("payload", sa.Text(), nullable=False, server_default="{}"))
