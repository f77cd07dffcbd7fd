"""The one source of "now" for every time-based rule.

Tests and the CLI (``--now``) fix it; ``RECOUVREMENT_NOW`` sets where it starts for a whole
process, from which it runs (so leases between processes still expire). No rule of the
procedure reads the time any other way.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, fixed: datetime | None = None):
        self._fixed = to_utc(fixed) if fixed else None
        self._start: tuple[datetime, float] | None = None

    @classmethod
    def starting_at(cls, moment: datetime) -> Clock:
        """A clock that reads ``moment`` now and runs from there."""
        clock = cls()
        clock._start = (to_utc(moment), time.monotonic())
        return clock

    def now(self) -> datetime:
        """Aware UTC instant."""
        if self._fixed:
            return self._fixed
        if self._start:
            origin, at = self._start
            return origin + timedelta(seconds=time.monotonic() - at)
        return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
