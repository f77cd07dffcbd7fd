"""What Redmine refused for one tenant during a prevention run (issue 15): reported in the
run's summary and on its phase-file ticket, tried again by later checks.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prevention_refusals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("prevention_runs.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("prevention_cases.id"), nullable=False),
        sa.Column("tenant_ref", sa.String(60), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("refused_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("run_id", "tenant_ref", "step", name="uq_prevention_refusals_once"),
    )


def downgrade() -> None:
    op.drop_table("prevention_refusals")
