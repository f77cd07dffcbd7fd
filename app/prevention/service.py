"""Queries on the prevention store."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, fields
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.database import Database, insert_for
from app.prevention.ledger import LedgerRow, Reject, Tenant
from app.prevention.models import (
    CaseEnd,
    DebtorKind,
    LedgerImport,
    LedgerLine,
    Letter,
    PreventionCase,
    PreventionRun,
    RefusedStep,
    PreventionRefusal,
    RunKind,
)
from app.prevention.phases import Arrears, Term


def find_import(db: Database, period: str, sha256: str) -> LedgerImport | None:
    with db.session() as session:
        return session.scalar(select(LedgerImport).where(LedgerImport.period == period, LedgerImport.sha256 == sha256))


def store_import(db: Database, filename: str, period: str, sha256: str, rows: list[LedgerRow],
                 rejects: list[Reject], now: datetime) -> LedgerImport:
    """The import and all its lines in one transaction: a crash loads nothing."""
    with db.session() as session:
        ledger = LedgerImport(filename=filename[:255], period=period, sha256=sha256, imported_at=now, rows_loaded=len(rows),
                              rows_rejected=len(rejects), rejects="\n".join(str(r) for r in rejects))
        session.add(ledger)
        session.flush()
        session.add_all(LedgerLine(import_id=ledger.id, **asdict(row)) for row in rows)
        session.flush()
        session.expunge(ledger)
        return ledger


def latest_import(db: Database, period: str, until: datetime) -> LedgerImport | None:
    """The month's last ledger imported by ``until``."""
    with db.session() as session:
        return session.scalar(select(LedgerImport)
                              .where(LedgerImport.period == period, LedgerImport.imported_at <= until)
                              .order_by(LedgerImport.imported_at.desc(), LedgerImport.id.desc()).limit(1))


def arrears(db: Database, import_id: int) -> dict[str, Arrears]:
    """Each tenant of the ledger with his unpaid terms, oldest first."""
    lines: dict[str, list[LedgerLine]] = defaultdict(list)
    with db.session() as session:
        for line in session.scalars(select(LedgerLine).where(LedgerLine.import_id == import_id)
                                    .order_by(LedgerLine.line_no)):
            lines[line.tenant_ref].append(line)
    result = {}
    for ref, rows in lines.items():
        first = rows[0]
        terms = tuple(sorted((Term(r.due_date, r.amount) for r in rows), key=lambda t: t.due_date))
        result[ref] = Arrears(**{f.name: getattr(first, f.name) for f in fields(Tenant)}, terms=terms)
    return result


# --- runs --------------------------------------------------------------------------------
def get_run(db: Database, period: str, kind: RunKind) -> PreventionRun | None:
    with db.session() as session:
        return session.scalar(select(PreventionRun).where(PreventionRun.period == period, PreventionRun.kind == kind))


def start_run(db: Database, period: str, kind: RunKind, run_on: date, import_id: int, now: datetime) -> PreventionRun:
    """The run of the period, created once (two schedulers: one row), or the one a crash left."""
    with db.session() as session:
        session.execute(insert_for(session)(PreventionRun).values(
            period=period, kind=kind, run_on=run_on, import_id=import_id, started_at=now)
            .on_conflict_do_nothing(index_elements=["period", "kind"]))
    return get_run(db, period, kind)


def finish_run(db: Database, run_id: int, summary: str, now: datetime) -> None:
    with db.session() as session:
        run = session.get(PreventionRun, run_id)
        run.finished_at, run.summary = now, summary


# --- cases -------------------------------------------------------------------------------
def open_cases(db: Database) -> dict[str, PreventionCase]:
    with db.session() as session:
        return {c.tenant_ref: c for c in session.scalars(select(PreventionCase)
                                                         .where(PreventionCase.closed_on.is_(None)))}


def previous_end(session: Session, tenant_ref: str) -> date | None:
    return session.scalar(select(PreventionCase.closed_on).where(PreventionCase.tenant_ref == tenant_ref,
                                                                 PreventionCase.closed_on.is_not(None))
                          .order_by(PreventionCase.closed_on.desc()).limit(1))


def open_case(db: Database, tenant_ref: str, kind_of, on: date) -> PreventionCase:
    """The tenant's open case, or a new one whose kind ``kind_of(previous_end)`` decides."""
    with db.session() as session:
        case = session.scalar(select(PreventionCase).where(PreventionCase.tenant_ref == tenant_ref,
                                                           PreventionCase.closed_on.is_(None)))
        if case is None:
            kind: DebtorKind = kind_of(previous_end(session, tenant_ref))
            session.execute(insert_for(session)(PreventionCase).values(tenant_ref=tenant_ref, kind=kind, opened_on=on)
                            .on_conflict_do_nothing(index_elements=["tenant_ref", "opened_on"]))
            case = session.scalar(select(PreventionCase).where(PreventionCase.tenant_ref == tenant_ref,
                                                               PreventionCase.closed_on.is_(None)))
        session.expunge(case)
        return case


def get_case(db: Database, case_id: int) -> PreventionCase:
    with db.session() as session:
        case = session.get(PreventionCase, case_id)
        session.expunge(case)
        return case


def update_case(db: Database, case_id: int, **values) -> None:
    with db.session() as session:
        case = session.get(PreventionCase, case_id)
        for name, value in values.items():
            setattr(case, name, value)


def close_paid(db: Database, present: set[str], on: date) -> list[str]:
    """P-4: a tenant absent from the ledger has paid: his case leaves the process."""
    closed = []
    with db.session() as session:
        for case in session.scalars(select(PreventionCase).where(PreventionCase.closed_on.is_(None))):
            if case.tenant_ref not in present:
                case.closed_on = on
                case.end = case.end or CaseEnd.paid
                closed.append(case.tenant_ref)
    return closed


# --- letters -----------------------------------------------------------------------------
def letter_sent(db: Database, tenant_ref: str, phase: int, terms_key: str) -> Letter | None:
    with db.session() as session:
        return session.scalar(select(Letter).where(Letter.tenant_ref == tenant_ref, Letter.phase == phase,
                                                   Letter.terms_key == terms_key))


def record_letter(db: Database, run_id: int, case_id: int, tenant_ref: str, phase: int, terms_key: str, path: str,
                  now: datetime) -> None:
    with db.session() as session:
        session.execute(insert_for(session)(Letter).values(
            run_id=run_id, case_id=case_id, tenant_ref=tenant_ref, phase=phase, terms_key=terms_key, path=path,
            created_at=now).on_conflict_do_nothing(index_elements=["tenant_ref", "phase", "terms_key"]))


def run_letters(db: Database, run_id: int) -> list[tuple[Letter, DebtorKind]]:
    """The letters of a run, with the kind of each tenant's case."""
    with db.session() as session:
        rows = session.execute(select(Letter, PreventionCase.kind).join(PreventionCase, Letter.case_id == PreventionCase.id)
                               .where(Letter.run_id == run_id).order_by(Letter.phase, Letter.tenant_ref))
        return [(letter, kind) for letter, kind in rows]


def cases_of(db: Database, tenant_ref: str | None = None) -> list[tuple[PreventionCase, list[Letter]]]:
    """Cases (all, or one tenant's) with their letters, newest first."""
    with db.session() as session:
        query = select(PreventionCase).order_by(PreventionCase.opened_on.desc(), PreventionCase.id.desc())
        if tenant_ref:
            query = query.where(PreventionCase.tenant_ref == tenant_ref)
        cases = list(session.scalars(query))
        letters = defaultdict(list)
        for letter in session.scalars(select(Letter).order_by(Letter.created_at)):
            letters[letter.case_id].append(letter)
        return [(c, letters[c.id]) for c in cases]


# --- refusals (issue 15) ------------------------------------------------------------------
MESSAGE_LENGTH = 500  # Redmine's messages are short; a longer one is cut


def record_refusal(db: Database, run_id: int, case_id: int, tenant_ref: str, phase: int | None, step: RefusedStep,
                   message: str, now: datetime) -> None:
    """The step refused for the tenant in this run: recorded once, its message and time
    those of the last refusal (a resumed run or a later check refused again)."""
    message = message if len(message) <= MESSAGE_LENGTH else message[:MESSAGE_LENGTH - 1] + "…"
    with db.session() as session:
        insert = insert_for(session)(PreventionRefusal).values(run_id=run_id, case_id=case_id, tenant_ref=tenant_ref, phase=phase,
                                                      step=step, message=message, refused_at=now)
        session.execute(insert.on_conflict_do_update(index_elements=["run_id", "tenant_ref", "step"],
                                                     set_={"message": message, "refused_at": now}))


def resolve_refusals(db: Database, case_id: int, step: RefusedStep, issue_id: int | None, now: datetime) -> None:
    """The step is done now (or no longer needed): its refusals, of any run of the case, resolved."""
    with db.session() as session:
        session.execute(update(PreventionRefusal).where(PreventionRefusal.case_id == case_id, PreventionRefusal.step == step,
                                              PreventionRefusal.resolved_at.is_(None)).values(resolved_at=now, issue_id=issue_id))


def run_refusals(db: Database, run_id: int) -> list[PreventionRefusal]:
    """The refusals of a run, resolved or not, by phase and tenant."""
    with db.session() as session:
        refusals = list(session.scalars(select(PreventionRefusal).where(PreventionRefusal.run_id == run_id)))
        session.expunge_all()
    return sorted(refusals, key=lambda r: (r.phase or 0, r.tenant_ref, r.step.value))


def unresolved_refusals(db: Database) -> set[tuple[int, RefusedStep]]:
    """(case, step) of every refusal not resolved yet, of any run."""
    with db.session() as session:
        return {(case_id, step) for case_id, step in session.execute(
            select(PreventionRefusal.case_id, PreventionRefusal.step).where(PreventionRefusal.resolved_at.is_(None)))}


# --- for the legal watch ---------------------------------------------------------------------
def latest_terms(db: Database, tenant_ref: str) -> list[tuple[date, Decimal]]:
    """The tenant's unpaid terms in the latest ledger that lists him, oldest first."""
    with db.session() as session:
        import_id = session.scalar(select(LedgerLine.import_id).where(LedgerLine.tenant_ref == tenant_ref)
                                   .order_by(LedgerLine.import_id.desc()).limit(1))
        if import_id is None:
            return []
        return [(line.due_date, line.amount) for line in session.scalars(
            select(LedgerLine).where(LedgerLine.import_id == import_id, LedgerLine.tenant_ref == tenant_ref)
            .order_by(LedgerLine.due_date))]


def last_plan_on(db: Database, tenant_ref: str) -> date | None:
    """The last repayment plan the tenant signed (P-5), if any."""
    with db.session() as session:
        return session.scalar(select(PreventionCase.plan_accepted_on)
                              .where(PreventionCase.tenant_ref == tenant_ref,
                                     PreventionCase.plan_accepted_on.is_not(None))
                              .order_by(PreventionCase.plan_accepted_on.desc()).limit(1))
