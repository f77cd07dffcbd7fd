"""Claims on effects: exactly-once effects under concurrency (issue 14).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "effect_claims",
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_effect_claims_claimed_at", "effect_claims", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_effect_claims_claimed_at", "effect_claims")
    op.drop_table("effect_claims")
