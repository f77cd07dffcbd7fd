"""Queries on what the service last knew of the tickets it tracks (``tracked_issues``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from app.database import Database, insert_for
from app.reconciliation.models import TrackedIssue


def remember(db: Database, issue_id: int, fingerprint: str, open_: bool, now: datetime) -> None:
    """Record the ticket as just read (one row per ticket, replaced): its fingerprint
    (sha256 hex, 64 characters), whether it is open (in the project, not closed), and when
    (``now``, aware UTC)."""
    with db.session() as session:
        insert = insert_for(session)(TrackedIssue).values(issue_id=issue_id, fingerprint=fingerprint, open=open_,
                                                          seen_at=now)
        session.execute(insert.on_conflict_do_update(index_elements=["issue_id"],
                                                     set_={"fingerprint": fingerprint, "open": open_, "seen_at": now}))


def forget(db: Database, issue_id: int) -> None:
    """The ticket is no longer the service's (deleted, out of sight, in another project)."""
    with db.session() as session:
        session.execute(delete(TrackedIssue).where(TrackedIssue.issue_id == issue_id))


def open_issue_ids(db: Database) -> set[int]:
    """The tickets last read open: in the project and not closed."""
    with db.session() as session:
        return set(session.scalars(select(TrackedIssue.issue_id).where(TrackedIssue.open)))


def is_open(db: Database, issue_id: int) -> bool:
    """The ticket was last read open (in the project, not closed)."""
    with db.session() as session:
        return bool(session.scalar(select(TrackedIssue.open).where(TrackedIssue.issue_id == issue_id)))


def fingerprints(db: Database, issue_ids: list[int]) -> dict[int, str]:
    """The fingerprint last recorded for each of these tickets (those never read are left out)."""
    if not issue_ids:
        return {}
    with db.session() as session:
        rows = session.execute(select(TrackedIssue.issue_id, TrackedIssue.fingerprint)
                               .where(TrackedIssue.issue_id.in_(issue_ids)))
        return {issue_id: fingerprint for issue_id, fingerprint in rows}
