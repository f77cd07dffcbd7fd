"""Queries on the deadline store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, or_, select, true, update
from sqlalchemy.orm import Session

from app.database import Database, UTCDateTime, insert_for
from app.deadlines.models import Deadline, DeadlineState

ACTIVE = (DeadlineState.pending, DeadlineState.firing)
# Writes that need no loaded object go to the table: the ORM's bulk INSERT/UPDATE path
# costs more than the statement itself (twice the time of a firing's bookkeeping).
TABLE = Deadline.__table__.c
_MARK_FIRED = (update(Deadline.__table__).where(TABLE.id == bindparam("deadline_id"), TABLE.state == DeadlineState.firing)
               .values(state=DeadlineState.fired, fired_at=bindparam("now", type_=UTCDateTime()),
                       result=bindparam("result"), lease_until=None, last_error=None))


@dataclass(frozen=True)
class Wanted:
    """A deadline the ticket's current values call for."""

    kind: str  # "<rule>/<name>", e.g. "C-14/provision"
    due_at: datetime
    label: str  # what happens then, in French


@dataclass(frozen=True)
class Upcoming:
    """The next active deadline of a ticket, as shown on it."""

    due_at: datetime
    label: str


@dataclass(frozen=True)
class Applied:
    changes: list[str]  # what changed, in French
    upcoming: Upcoming | None  # the ticket's next pending (or firing) deadline


Fired = dict[str, Deadline]  # an issue's latest fired deadline of each kind
# What an issue calls for, given its fired deadlines; None: undecided (a rule's input is
# unknown, issue 15): its deadlines stay as they are.
WantedFor = Callable[[int, Fired], list[Wanted] | None]

_OF_ISSUES = select(Deadline).where(Deadline.issue_id.in_(bindparam("issue_ids", expanding=True)))


def _rows_by_issue(session: Session, issue_ids: Iterable[int]) -> dict[int, list[Deadline]]:
    rows: dict[int, list[Deadline]] = {issue_id: [] for issue_id in issue_ids}
    for row in session.scalars(_OF_ISSUES, {"issue_ids": list(rows)}):
        rows[row.issue_id].append(row)
    return rows


def _latest_fired(rows: list[Deadline]) -> Fired:
    return {row.kind: row for row in sorted(rows, key=lambda r: r.due_at) if row.state == DeadlineState.fired}


def fired_kinds(db: Database, issue_id: int) -> Fired:
    """The latest fired deadline of each kind of the issue."""
    return fired_by_issue(db, [issue_id])[issue_id]


def fired_by_issue(db: Database, issue_ids: Iterable[int]) -> dict[int, Fired]:
    with db.session() as session:
        return {issue_id: _latest_fired(rows) for issue_id, rows in _rows_by_issue(session, issue_ids).items()}


def store_wanted(db: Database, issue_ids: Iterable[int], wanted_for: WantedFor, now: datetime,
                 results: dict[int, str] | None = None) -> dict[int, Applied]:
    """In one transaction: the deadlines of ``results`` (what firing did, by deadline id) marked fired,
    then the store made to match what each issue calls for now, its fired deadlines read in
    the same transaction: new deadlines pending, those no longer called for cancelled (or
    superseded by another due instant of the same kind), a cancelled one called for again
    pending again. Fired deadlines stay fired."""
    with db.session() as session:
        if results:
            session.execute(_MARK_FIRED, [{"deadline_id": deadline_id, "now": now, "result": result[:4000]}
                                          for deadline_id, result in results.items()])
        applied, added = {}, []
        for issue_id, rows in _rows_by_issue(session, issue_ids).items():
            wanted = wanted_for(issue_id, _latest_fired(rows))
            applied[issue_id], new_rows = _match(issue_id, rows, wanted, now)
            added += new_rows
        if added:  # the worker and the tick may add the same row at once: no error
            session.execute(insert_for(session)(Deadline.__table__)
                            .on_conflict_do_nothing(index_elements=["issue_id", "kind", "due_at"]), added)
    return applied


def _match(issue_id: int, rows: list[Deadline], wanted: list[Wanted] | None,
           now: datetime) -> tuple[Applied, list[dict]]:
    """The issue's stored rows changed to match ``wanted`` (flushed with the session; None:
    left as they are); what changed, and the rows to add."""
    changes: list[str] = []
    added: list[dict] = []
    stored = {(r.kind, r.due_at): r for r in rows}
    if wanted is None:
        wanted = [Wanted(r.kind, r.due_at, r.label) for r in rows if r.state in ACTIVE]
    wanted_keys = {(w.kind, w.due_at): w for w in wanted}
    wanted_kinds = {w.kind for w in wanted}
    for key, row in stored.items():
        if row.state in ACTIVE and key not in wanted_keys:
            row.state = DeadlineState.superseded if row.kind in wanted_kinds else DeadlineState.cancelled
            row.lease_until = None
            changes.append(f"{row.kind} {row.state.value}")
    new = []
    for key, w in wanted_keys.items():
        row = stored.get(key)
        if row is None:
            added.append(dict(issue_id=issue_id, kind=w.kind, due_at=w.due_at, label=w.label,
                              state=DeadlineState.pending, created_at=now, attempts=0))
            changes.append(f"{w.kind} prévue")
            new.append(w)
        elif row.state in (DeadlineState.cancelled, DeadlineState.superseded):
            row.state, row.label = DeadlineState.pending, w.label
            changes.append(f"{w.kind} rétablie")
    # Soonest first, then by id: rows added now come after those stored, in their order.
    active = [((r.due_at, 0, r.id), r) for r in stored.values() if r.state in ACTIVE]
    active += [((w.due_at, 1, n), w) for n, w in enumerate(new)]
    upcoming = min(active, key=lambda pair: pair[0], default=None)
    return Applied(changes, Upcoming(upcoming[1].due_at, upcoming[1].label) if upcoming else None), added


def claim_batch(db: Database, now: datetime, lease_seconds: int, limit: int) -> list[Deadline]:
    """Take up to ``limit`` due deadlines, soonest first, under one lease: pending ones, or
    firing ones whose lease expired (a crashed firer). FOR UPDATE SKIP LOCKED on PostgreSQL
    and the conditional UPDATE (SQLite: one writer) make two schedulers never take the same row."""
    expired = (Deadline.state == DeadlineState.firing) & (Deadline.lease_until < now)
    claimable = or_(Deadline.state == DeadlineState.pending, expired)
    # The same test row by row, as a CASE: for an OR, SQLite's planner would scan the state
    # index (every pending row) instead of looking up the candidates by id.
    still_claimable = case((Deadline.state == DeadlineState.pending, true()), else_=expired)
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.session() as session:
        for _ in range(5):
            candidates = list(session.scalars(
                select(Deadline.id)
                .where(Deadline.due_at <= now, claimable)
                .where(or_(Deadline.retry_at.is_(None), Deadline.retry_at <= now))
                .order_by(Deadline.due_at, Deadline.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ))
            if not candidates:
                return []
            claimed = list(session.scalars(
                update(Deadline)
                .where(Deadline.id.in_(candidates), still_claimable)
                .values(state=DeadlineState.firing, lease_until=lease_until, attempts=Deadline.attempts + 1)
                .returning(Deadline),
                execution_options={"synchronize_session": False},
            ))
            session.commit()
            if claimed:  # on SQLite another scheduler may have won the race for every candidate
                return sorted(claimed, key=lambda d: (d.due_at, d.id))
        return []


def unclaim(db: Database, claimed: list[Deadline]) -> None:
    """Claimed deadlines left unfired: back to pending (unless no longer under this claim's
    lease), for the next scan."""
    with db.session() as session:
        session.execute(update(Deadline.__table__)
                        .where(TABLE.id.in_([d.id for d in claimed]), TABLE.state == DeadlineState.firing,
                               TABLE.lease_until == claimed[0].lease_until)
                        .values(state=DeadlineState.pending, lease_until=None, attempts=TABLE.attempts - 1))


def release(db: Database, deadline_id: int, error: str, retry_at: datetime) -> None:
    """Firing failed: back to pending, tried again from ``retry_at``."""
    with db.session() as session:
        session.execute(update(Deadline.__table__).where(TABLE.id == deadline_id, TABLE.state == DeadlineState.firing)
                        .values(state=DeadlineState.pending, last_error=error[:4000], retry_at=retry_at,
                                lease_until=None))


def active_issue_ids(db: Database, among: Iterable[int] | None = None) -> set[int]:
    """The issues with a pending (or firing) deadline (``among`` these only, when given)."""
    query = select(Deadline.issue_id).where(Deadline.state.in_(ACTIVE)).distinct()
    if among is not None:
        query = query.where(Deadline.issue_id.in_(list(among)))
    with db.session() as session:
        return set(session.scalars(query))


def listing(db: Database, overdue_at: datetime | None = None) -> list[Deadline]:
    """Pending deadlines, soonest first; with ``overdue_at``, only those due by then."""
    with db.session() as session:
        query = select(Deadline).where(Deadline.state.in_(ACTIVE)).order_by(Deadline.due_at, Deadline.id)
        if overdue_at is not None:
            query = query.where(Deadline.due_at <= overdue_at)
        return list(session.scalars(query))
