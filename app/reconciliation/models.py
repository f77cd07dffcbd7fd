"""What the service last knew of each ticket it tracks, for the daily reconciliation
(issue 16): what polling cannot see — a ticket deleted, moved to another project, or whose
relations changed (a relation does not change ``updated_on``) — is found by comparing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class TrackedIssue(Base):
    """A ticket as processing last read it. ``open``: in the project and not closed — the
    reconciliation checks the open ones (and every ticket with pending deadlines)."""

    __tablename__ = "tracked_issues"

    issue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha256 (hex, 64) of project id, tracker, closed and the related tickets' ids
    fingerprint: Mapped[str] = mapped_column(String(64))
    open: Mapped[bool] = mapped_column(Boolean)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_tracked_issues_open", "open"),)
