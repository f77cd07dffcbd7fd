"""Claims on effects: the one worker allowed to make an effect with an operation key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class EffectClaim(Base):
    """One row per effect key ever claimed (``ticket/…``, ``note/…``, ``attachment/…``,
    ``relation/…``). ``lease_until`` is set while a worker makes the effect and cleared
    once it is done or abandoned; a row that exists tells the next claimant that someone
    may have made the effect since it read Redmine, so it reads Redmine again."""

    __tablename__ = "effect_claims"

    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_effect_claims_claimed_at", "claimed_at"),)
