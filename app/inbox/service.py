"""Queries on the inbox: store once, claim in order per issue, finish, retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from app.database import Database, insert_for
from app.inbox.models import EventState, InboxEvent, ParsedEvent, PollCursor, PolledIssue


@dataclass(frozen=True)
class Stored:
    event_id: int
    created: bool


def _store(session: Session, event: ParsedEvent, now: datetime) -> Stored:
    """Insert unless the dedup key exists (RETURNING tells which, on SQLite and PostgreSQL)."""
    inserted = session.scalar(
        insert_for(session)(InboxEvent)
        .values(dedup_key=event.dedup_key, source=event.source, event_type=event.event_type,
                issue_id=event.issue_id, journal_id=event.journal_id, changed_at=event.changed_at,
                received_at=now, state=EventState.pending, attempts=0, next_attempt_at=now)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(InboxEvent.id)
    )
    if inserted is not None:
        return Stored(event_id=inserted, created=True)
    existing = session.scalar(select(InboxEvent.id).where(InboxEvent.dedup_key == event.dedup_key))
    return Stored(event_id=existing, created=False)


def store_event(db: Database, event: ParsedEvent, now: datetime) -> Stored:
    """Durably store the event (committed on return); a repeated key stores nothing."""
    return store_events(db, [(event, now)])[0]


def store_events(db: Database, events: list[tuple[ParsedEvent, datetime]]) -> list[Stored]:
    """Durably store events received at once: one INSERT, one commit. A key already stored,
    or repeated among them, stores nothing (its first occurrence is the one created). On
    the table, not the model: the ORM's bulk path costs more than the INSERT itself."""
    table = InboxEvent.__table__
    rows = [dict(dedup_key=e.dedup_key, source=e.source, event_type=e.event_type, issue_id=e.issue_id,
                 journal_id=e.journal_id, changed_at=e.changed_at, received_at=now, state=EventState.pending, attempts=0,
                 next_attempt_at=now) for e, now in events]
    with db.session() as session:
        inserted = dict(session.execute(
            insert_for(session)(table).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(table.c.dedup_key, table.c.id), rows).all())
        others = {e.dedup_key for e, _ in events} - inserted.keys()
        existing = dict(session.execute(select(table.c.dedup_key, table.c.id)
                                        .where(table.c.dedup_key.in_(others))).all()) if others else {}
    stored, seen = [], set()
    for event, _ in events:
        key = event.dedup_key
        stored.append(Stored(event_id=inserted.get(key) or existing[key], created=key in inserted and key not in seen))
        seen.add(key)
    return stored


def record_polled(db: Database, event: ParsedEvent, updated_on: datetime, settled: bool, now: datetime) -> int:
    """Store a polled event and the version read — its ``updated_on`` (Redmine's, UTC, to
    the second), its latest journal (the event's) and whether it is settled — in one
    transaction, so that a crash leaves neither without the other. 1 if queued, 0 if the
    event's key was already stored."""
    with db.session() as session:
        stored = _store(session, event, now)
        row = session.get(PolledIssue, event.issue_id)
        if row is None:
            session.add(PolledIssue(issue_id=event.issue_id, updated_on=updated_on, journal_id=event.journal_id,
                                    settled=settled))
        else:
            row.updated_on, row.journal_id, row.settled = updated_on, event.journal_id, settled
        return int(stored.created)


def settle(db: Database, issue_id: int) -> None:
    """The version stored for the issue will not be read again (Redmine no longer shows the issue)."""
    with db.session() as session:
        session.execute(update(PolledIssue).where(PolledIssue.issue_id == issue_id).values(settled=True))


def poll_cursor(db: Database, project: str) -> datetime | None:
    with db.session() as session:
        row = session.get(PollCursor, project)
        return row.updated_since if row else None


def advance_cursor(db: Database, project: str, updated_on: datetime) -> None:
    with db.session() as session:
        row = session.get(PollCursor, project)
        if row is None:
            session.add(PollCursor(project=project, updated_since=updated_on))
        elif updated_on > row.updated_since:
            row.updated_since = updated_on


@dataclass(frozen=True)
class PolledVersion:
    updated_on: datetime  # Redmine's, UTC, to the second
    settled: bool


def polled_versions(db: Database, issue_ids: list[int]) -> dict[int, PolledVersion]:
    """The version stored for each of the issues that has one, by issue id."""
    if not issue_ids:
        return {}
    with db.session() as session:
        rows = session.execute(select(PolledIssue.issue_id, PolledIssue.updated_on, PolledIssue.settled)
                               .where(PolledIssue.issue_id.in_(issue_ids)))
        return {issue_id: PolledVersion(updated_on, settled) for issue_id, updated_on, settled in rows}


def unsettled_issues(db: Database) -> list[int]:
    """Ids of the issues whose stored version is not settled, in id order."""
    with db.session() as session:
        return list(session.scalars(select(PolledIssue.issue_id).where(PolledIssue.settled.is_(False))
                                    .order_by(PolledIssue.issue_id)))


def claim_next(db: Database, now: datetime, lease_seconds: int) -> InboxEvent | None:
    """Take the oldest due event whose issue has no earlier unfinished event (order per
    issue), with a lease: a worker that dies mid-event leaves it to be taken again.
    Replicas on PostgreSQL skip the rows another is claiming (FOR UPDATE SKIP LOCKED); the
    conditional UPDATE keeps SQLite (no row locks, one writer) just as exclusive."""
    earlier = aliased(InboxEvent)
    with db.session() as session:
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.state == EventState.processing, InboxEvent.lease_until < now)
            .values(state=EventState.pending, lease_until=None)
        )
        session.commit()
        for _ in range(5):  # on SQLite another worker may win the race for a candidate
            candidate = session.scalar(
                select(InboxEvent.id)
                .where(InboxEvent.state == EventState.pending, InboxEvent.next_attempt_at <= now)
                .where(~exists().where(
                    earlier.issue_id == InboxEvent.issue_id,
                    earlier.id < InboxEvent.id,
                    earlier.state.in_([EventState.pending, EventState.processing]),
                ))
                .order_by(InboxEvent.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if candidate is None:
                return None
            claimed = session.execute(
                update(InboxEvent)
                .where(InboxEvent.id == candidate, InboxEvent.state == EventState.pending)
                .values(state=EventState.processing, attempts=InboxEvent.attempts + 1,
                        lease_until=now + timedelta(seconds=lease_seconds))
            )
            session.commit()
            if claimed.rowcount == 1:
                return session.get(InboxEvent, candidate)
        return None


def finish(db: Database, event_id: int, result: str, now: datetime, release_key: bool = False) -> None:
    """Mark the event done. ``release_key``: its change was never seen in Redmine — its key
    is freed (``<key>#abandonné-<id>``) so that the same change, delivered or polled later,
    is stored and processed."""
    values: dict = dict(state=EventState.done, result=result[:4000], last_error=None, lease_until=None,
                        finished_at=now)
    if release_key:
        values["dedup_key"] = InboxEvent.dedup_key + f"#abandonné-{event_id}"
    with db.session() as session:
        session.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(**values))


def postpone(db: Database, event_id: int, error: str, next_attempt_at: datetime, counted: bool = True) -> None:
    """Back to the queue from ``next_attempt_at``; ``counted=False``: the attempt just made
    does not count towards ``max_attempts`` (an outage of the service, not of the event)."""
    attempts = InboxEvent.attempts if counted else InboxEvent.attempts - 1
    with db.session() as session:
        session.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(
            state=EventState.pending, last_error=error[:4000], lease_until=None, next_attempt_at=next_attempt_at,
            attempts=attempts))


def fail(db: Database, event_id: int, error: str, now: datetime) -> None:
    with db.session() as session:
        session.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(
            state=EventState.failed, last_error=error[:4000], lease_until=None, finished_at=now))


def retry_failed(db: Database, now: datetime, event_ids: list[int] | None = None) -> int:
    """Put failed events back in the queue (all, or those given), attempts reset."""
    with db.session() as session:
        query = update(InboxEvent).where(InboxEvent.state == EventState.failed)
        if event_ids:
            query = query.where(InboxEvent.id.in_(event_ids))
        return session.execute(query.values(state=EventState.pending, attempts=0, next_attempt_at=now,
                                            finished_at=None)).rowcount


def dismiss(db: Database, event_ids: list[int], now: datetime) -> list[int]:
    """Mark failed events dismissed (not to be retried; purged like done ones, counted from
    now). Returns the ids dismissed; others (unknown, not failed) are left as they are."""
    with db.session() as session:
        return sorted(session.scalars(
            update(InboxEvent).where(InboxEvent.id.in_(event_ids), InboxEvent.state == EventState.failed)
            .values(state=EventState.dismissed, finished_at=now).returning(InboxEvent.id)))


def purge(db: Database, finished_before: datetime) -> int:
    """Delete the done and dismissed events finished before ``finished_before``; the count."""
    with db.session() as session:
        return session.execute(delete(InboxEvent).where(
            InboxEvent.state.in_([EventState.done, EventState.dismissed]),
            InboxEvent.finished_at < finished_before)).rowcount


def list_events(db: Database, state: EventState | None = None, limit: int = 50) -> list[InboxEvent]:
    with db.session() as session:
        query = select(InboxEvent).order_by(InboxEvent.id.desc()).limit(limit)
        if state is not None:
            query = query.where(InboxEvent.state == state)
        return list(session.scalars(query))


def count_by_state(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(select(InboxEvent.state, func.count()).group_by(InboxEvent.state))
        return {state.value: n for state, n in rows}
