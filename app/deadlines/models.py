"""The deadline store: the source of truth for every deadline of the procedure.

APScheduler only drives the periodic scan that claims due rows; a row fires once
(pending → firing under a lease → fired), whatever crashes, restarts or second workers.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class DeadlineState(str, enum.Enum):
    pending = "pending"
    firing = "firing"
    fired = "fired"
    cancelled = "cancelled"  # the ticket no longer calls for it (date cleared, funds received…)
    superseded = "superseded"  # replaced by another due instant (date edited)


class Deadline(Base):
    __tablename__ = "deadlines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(60))  # e.g. "C-14/provision"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    label: Mapped[str] = mapped_column(Text)  # what happens, in French
    state: Mapped[DeadlineState] = mapped_column(Enum(DeadlineState, native_enum=False, length=20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("issue_id", "kind", "due_at", name="uq_deadlines_issue_kind_due"),
        Index("ix_deadlines_state_due", "state", "due_at"),
    )

    @property
    def rule(self) -> str:
        return self.kind.split("/", 1)[0]
