"""Queries on effect claims: take one, give it back, purge old ones.

One statement decides (INSERT … ON CONFLICT DO NOTHING, then a conditional UPDATE), so two
workers never both hold a key, on PostgreSQL (row lock) as on SQLite (one writer at a time)
— the pattern of ``app/leadership/service.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update

from app.claims.models import EffectClaim
from app.database import Database, insert_for

KEY_LENGTH = 250


@dataclass(frozen=True)
class Claim:
    key: str
    holder: str
    contended: bool  # claimed before (by anyone): Redmine may hold the effect since it was read


def stored_key(key: str) -> str:
    """The key as stored: a longer one keeps its start and a hash of the whole."""
    if len(key) <= KEY_LENGTH:
        return key
    return f"{key[:KEY_LENGTH - 41]}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def take(db: Database, key: str, holder: str, now: datetime, lease_seconds: float) -> Claim | None:
    """Claim the key for ``lease_seconds``: a Claim, or None while another holder's lease runs."""
    key = stored_key(key)
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.session() as session:
        created = session.scalar(
            insert_for(session)(EffectClaim).values(key=key, holder=holder, claimed_at=now, lease_until=lease_until)
            .on_conflict_do_nothing(index_elements=["key"]).returning(EffectClaim.key))
        if created is not None:
            return Claim(key, holder, contended=False)
        taken = session.execute(
            update(EffectClaim)
            .where(EffectClaim.key == key, or_(EffectClaim.lease_until.is_(None), EffectClaim.lease_until <= now))
            .values(holder=holder, claimed_at=now, lease_until=lease_until))
        return Claim(key, holder, contended=True) if taken.rowcount == 1 else None


def release(db: Database, claim: Claim) -> None:
    """The effect is made, or was not: the key is free again (its row stays, as a sign)."""
    with db.session() as session:
        session.execute(update(EffectClaim).where(EffectClaim.key == claim.key, EffectClaim.holder == claim.holder)
                        .values(lease_until=None))


def purge(db: Database, before: datetime) -> int:
    """Forget the free claims last taken before ``before``: by then no unit of work that read
    Redmine before them is still running (a unit stops writing at its lease's end)."""
    with db.session() as session:
        return session.execute(delete(EffectClaim).where(EffectClaim.lease_until.is_(None),
                                                          EffectClaim.claimed_at < before)).rowcount
