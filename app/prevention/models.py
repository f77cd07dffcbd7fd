"""The prevention store: imported ledgers, tenants' arrears episodes, monthly runs and the
letters sent (P-1 … P-13). Redmine holds the phone follow-ups, phase files and hand-overs;
this store holds what Redmine cannot: the ledger, which letter went for which terms, and
what Redmine refused during a run (tried again, reported until done).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Enum, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class LedgerImport(Base):
    """One arrears ledger file, loaded whole or not at all; the same file twice in a month
    is loaded once (the same content next month is that month's ledger)."""

    __tablename__ = "ledger_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM of the import, Europe/Paris
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rows_loaded: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    rejects: Mapped[str] = mapped_column(Text)  # one "ligne N : raison" a line

    __table_args__ = (UniqueConstraint("period", "sha256", name="uq_ledger_imports_period_sha256"),)


class LedgerLine(Base):
    """One unpaid term of one tenant, as the ledger gives it (P-1: terms, not amounts)."""

    __tablename__ = "ledger_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("ledger_imports.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    tenant_ref: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(255))
    lot: Mapped[str] = mapped_column(String(60))
    agency: Mapped[str] = mapped_column(String(120))
    sector: Mapped[str] = mapped_column(String(120))
    lease_start: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(60))
    mandate_number: Mapped[str] = mapped_column(String(60))
    owner_ref: Mapped[str] = mapped_column(String(60))
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    __table_args__ = (Index("ix_ledger_lines_import_tenant", "import_id", "tenant_ref"),)


class DebtorKind(str, enum.Enum):
    """P-2."""

    new_entrant = "nouvel entrant"
    accidental = "accidentel"
    recidivist = "récidiviste"


class CaseEnd(str, enum.Enum):
    paid = "soldé"  # absent from a later ledger: leaves the process
    handed_over = "transmis au contentieux"  # P-10, P-12


class PreventionCase(Base):
    """A tenant's arrears episode, from the first run that finds him unpaid to the run that
    no longer does (or the hand-over to litigation)."""

    __tablename__ = "prevention_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_ref: Mapped[str] = mapped_column(String(60))
    kind: Mapped[DebtorKind] = mapped_column(Enum(DebtorKind, native_enum=False, length=20))
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    end: Mapped[CaseEnd | None] = mapped_column(Enum(CaseEnd, native_enum=False, length=30))
    litigation_issue_id: Mapped[int | None] = mapped_column(Integer)
    # P-5: a repayment plan accepted on a Relance impayés ticket.
    plan_issue_id: Mapped[int | None] = mapped_column(Integer)
    plan_accepted_on: Mapped[date | None] = mapped_column(Date)
    plan_months: Mapped[int | None] = mapped_column(Integer)
    plan_start_balance: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    plan_broken_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("tenant_ref", "opened_on", name="uq_prevention_cases_tenant_opened"),
                      Index("ix_prevention_cases_tenant", "tenant_ref"))


class RunKind(str, enum.Enum):
    letters = "lettres"  # the 10th: letters 1 and 2 (P-4, P-6)
    transfer = "transfert"  # the 17th: letter 3 and the hand-over (P-12)


class PreventionRun(Base):
    __tablename__ = "prevention_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    kind: Mapped[RunKind] = mapped_column(Enum(RunKind, native_enum=False, length=20))
    run_on: Mapped[date] = mapped_column(Date)
    import_id: Mapped[int] = mapped_column(ForeignKey("ledger_imports.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("period", "kind", name="uq_prevention_runs_period_kind"),)


class Letter(Base):
    """A reminder letter sent: never twice for the same tenant, phase and unpaid terms."""

    __tablename__ = "prevention_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("prevention_runs.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("prevention_cases.id"))
    tenant_ref: Mapped[str] = mapped_column(String(60))
    phase: Mapped[int] = mapped_column(Integer)
    terms_key: Mapped[str] = mapped_column(String(64))  # the unpaid terms' due dates
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("tenant_ref", "phase", "terms_key", name="uq_prevention_letters_once"),)


class RefusedStep(str, enum.Enum):
    """What Redmine may refuse for one tenant during a run (issue 15): the others go on."""

    call = "appel"  # P-4, P-6: the Relance impayés ticket
    hand_over = "transmission"  # P-10, P-12 → C-3: the Contentieux ticket
    plan_note = "plan"  # P-5: the note of a broken plan on its ticket


class PreventionRefusal(Base):
    """A step Redmine refused (422, a tracker or field missing, a write it ignored) for one
    tenant of a run: kept so that a resumed run still reports it, and so that later checks
    try the call or the hand-over again (``resolved_at`` once made, with its ticket)."""

    __tablename__ = "prevention_refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("prevention_runs.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("prevention_cases.id"))
    tenant_ref: Mapped[str] = mapped_column(String(60))
    phase: Mapped[int | None] = mapped_column(Integer)  # the letter's phase; none for a plan note
    step: Mapped[RefusedStep] = mapped_column(Enum(RefusedStep, native_enum=False, length=20))
    message: Mapped[str] = mapped_column(Text)  # Redmine's answer, as the service words it
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the last time it was refused
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issue_id: Mapped[int | None] = mapped_column(Integer)  # the ticket made once accepted

    __table_args__ = (UniqueConstraint("run_id", "tenant_ref", "step", name="uq_prevention_refusals_once"),)
