"""The prevention store: ledgers, arrears episodes, monthly runs, letters (issue 6).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rejects", sa.Text(), nullable=False),
        sa.UniqueConstraint("period", "sha256", name="uq_ledger_imports_period_sha256"),
    )
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("import_id", sa.Integer(), sa.ForeignKey("ledger_imports.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("tenant_ref", sa.String(60), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("lot", sa.String(60), nullable=False),
        sa.Column("agency", sa.String(120), nullable=False),
        sa.Column("sector", sa.String(120), nullable=False),
        sa.Column("lease_start", sa.Date(), nullable=True),
        sa.Column("phone", sa.String(60), nullable=False),
        sa.Column("mandate_number", sa.String(60), nullable=False),
        sa.Column("owner_ref", sa.String(60), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    )
    op.create_index("ix_ledger_lines_import_tenant", "ledger_lines", ["import_id", "tenant_ref"])
    op.create_table(
        "prevention_cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_ref", sa.String(60), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("end", sa.String(30), nullable=True),
        sa.Column("litigation_issue_id", sa.Integer(), nullable=True),
        sa.Column("plan_issue_id", sa.Integer(), nullable=True),
        sa.Column("plan_accepted_on", sa.Date(), nullable=True),
        sa.Column("plan_months", sa.Integer(), nullable=True),
        sa.Column("plan_start_balance", sa.Numeric(12, 2), nullable=True),
        sa.Column("plan_broken_on", sa.Date(), nullable=True),
        sa.UniqueConstraint("tenant_ref", "opened_on", name="uq_prevention_cases_tenant_opened"),
    )
    op.create_index("ix_prevention_cases_tenant", "prevention_cases", ["tenant_ref"])
    op.create_table(
        "prevention_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("run_on", sa.Date(), nullable=False),
        sa.Column("import_id", sa.Integer(), sa.ForeignKey("ledger_imports.id"), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.UniqueConstraint("period", "kind", name="uq_prevention_runs_period_kind"),
    )
    op.create_table(
        "prevention_letters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("prevention_runs.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("prevention_cases.id"), nullable=False),
        sa.Column("tenant_ref", sa.String(60), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("terms_key", sa.String(64), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("tenant_ref", "phase", "terms_key", name="uq_prevention_letters_once"),
    )


def downgrade() -> None:
    op.drop_table("prevention_letters")
    op.drop_table("prevention_runs")
    op.drop_index("ix_prevention_cases_tenant", "prevention_cases")
    op.drop_table("prevention_cases")
    op.drop_index("ix_ledger_lines_import_tenant", "ledger_lines")
    op.drop_table("ledger_lines")
    op.drop_table("ledger_imports")
