"""Queries on leases: take or renew one, give it back, read who holds it.

One statement decides (INSERT … ON CONFLICT DO NOTHING, then a conditional UPDATE), so two
replicas racing for a lease never both get it, on PostgreSQL (row lock) as on SQLite
(one writer at a time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update

from app.database import Database, insert_for
from app.leadership.models import Lease


def acquire(db: Database, name: str, holder: str, now: datetime, ttl_seconds: int) -> datetime | None:
    """Take the lease if free or expired, or renew it if ``holder`` has it: its new expiry,
    or None when another replica holds it."""
    expires_at = now + timedelta(seconds=ttl_seconds)
    with db.session() as session:
        created = session.scalar(
            insert_for(session)(Lease).values(name=name, holder=holder, acquired_at=now, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["name"]).returning(Lease.name))
        if created is not None:
            return expires_at
        taken = session.execute(
            update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
            .values(holder=holder, expires_at=expires_at,
                    acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now)))
        return expires_at if taken.rowcount == 1 else None


def release(db: Database, name: str, holder: str, now: datetime) -> None:
    """Give the lease back (a clean stop): another replica takes it at its next try."""
    with db.session() as session:
        session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=now))


def current(db: Database, name: str) -> Lease | None:
    with db.session() as session:
        return session.scalar(select(Lease).where(Lease.name == name))
