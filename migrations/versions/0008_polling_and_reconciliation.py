"""Polling that cannot lose a change, and the reconciliation of tracked tickets (issue 16):
the journal and settledness of each polled version; what processing last knew of each ticket;
the version of the ticket a webhook delivery tells of.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.add_column(sa.Column("changed_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("polled_issues") as batch:
        batch.add_column(sa.Column("journal_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("settled", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index("ix_polled_issues_settled", "polled_issues", ["settled"])
    op.create_table(
        "tracked_issues",
        sa.Column("issue_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_tracked_issues_open", "tracked_issues", ["open"])


def downgrade() -> None:
    op.drop_index("ix_tracked_issues_open", "tracked_issues")
    op.drop_table("tracked_issues")
    op.drop_index("ix_polled_issues_settled", "polled_issues")
    with op.batch_alter_table("polled_issues") as batch:
        batch.drop_column("settled")
        batch.drop_column("journal_id")
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_column("changed_at")
