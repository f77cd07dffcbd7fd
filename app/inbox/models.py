"""The durable inbox: every Redmine event, from a webhook or from polling, before any effect.

An event keeps what processing needs — type, issue id, journal id, source — never the
delivery's body (names, notes, amounts: personal data, issue 14); finished ones are purged
after ``retention.events_days``."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Enum, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class EventState(str, enum.Enum):
    pending = "pending"
    processing = "processing"
    done = "done"
    failed = "failed"
    dismissed = "dismissed"  # a failed event a person chose not to retry: purged like a done one


@dataclass(frozen=True)
class ParsedEvent:
    """An event as received (a webhook delivery, a poll, a reconciliation), before it is stored."""

    dedup_key: str
    source: str  # the sender (redmine, redmine_webhook, webhook_plugin), poll or internal
    event_type: str
    issue_id: int
    journal_id: int | None
    # The issue's project as a delivery names it (never stored): another project's is ignored.
    project_id: int | None = None
    project_identifier: str | None = None
    # The issue's updated_on as a delivery gives it: processed once Redmine shows that version.
    changed_at: datetime | None = None


class InboxEvent(Base):
    __tablename__ = "inbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Redmine sends no delivery id: type + issue id + journal id (hash of the body as fallback).
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # webhook | poll | internal
    event_type: Mapped[str] = mapped_column(String(40))
    issue_id: Mapped[int] = mapped_column(Integer)
    journal_id: Mapped[int | None] = mapped_column(Integer)
    # A delivery's updated_on of the issue (issue 16): a sender may post before Redmine has
    # committed; the event waits until Redmine shows that version (or a later one).
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[EventState] = mapped_column(Enum(EventState, native_enum=False, length=20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_inbox_events_state_next", "state", "next_attempt_at"),
        Index("ix_inbox_events_issue", "issue_id", "id"),
    )


class PollCursor(Base):
    """Where polling stopped: Redmine's own updated_on of the newest issue seen."""

    __tablename__ = "poll_cursor"

    project: Mapped[str] = mapped_column(String(100), primary_key=True)
    updated_since: Mapped[datetime] = mapped_column(UTCDateTime)


class PolledIssue(Base):
    """The version of each issue polling last read: its ``updated_on`` and latest journal.
    ``settled`` is False while a change in the same second (Redmine's ``updated_on`` has
    one-second resolution) could still be hidden behind that ``updated_on``: such a version
    is read again, and its journal compared, at the next poll (issue 16)."""

    __tablename__ = "polled_issues"

    issue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    updated_on: Mapped[datetime] = mapped_column(UTCDateTime)
    journal_id: Mapped[int | None] = mapped_column(Integer)
    settled: Mapped[bool] = mapped_column(Boolean, default=True)

    # Each poll reads the unsettled versions again: found without scanning every issue polled.
    __table_args__ = (Index("ix_polled_issues_settled", "settled"),)
