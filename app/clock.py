"""The one source of "now" for every time-based rule.

Tests and the CLI (``--now``) fix it; ``RECOUVREMENT_NOW`` fixes it for a whole process.
No rule of the procedure reads the time any other way.
"""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    def __init__(self, fixed: datetime | None = None):
        self._fixed = to_utc(fixed) if fixed else None

    @property
    def is_fixed(self) -> bool:
        return self._fixed is not None

    def now(self) -> datetime:
        """Aware UTC instant."""
        return self._fixed or datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
