"""The durable inbox and the polling cursor.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("journal_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_inbox_events_state_next", "inbox_events", ["state", "next_attempt_at"])
    op.create_index("ix_inbox_events_issue", "inbox_events", ["issue_id", "id"])
    op.create_table(
        "poll_cursor",
        sa.Column("project", sa.String(100), primary_key=True),
        sa.Column("updated_since", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "polled_issues",
        sa.Column("issue_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("updated_on", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("polled_issues")
    op.drop_table("poll_cursor")
    op.drop_index("ix_inbox_events_issue", "inbox_events")
    op.drop_index("ix_inbox_events_state_next", "inbox_events")
    op.drop_table("inbox_events")
