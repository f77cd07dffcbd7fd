"""What every flow gets: settings, clock, database and the Redmine capability."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.clock import Clock
from app.config import Settings
from app.database import Database
from integrations.redmine.interface import Redmine


@dataclass
class Context:
    settings: Settings
    clock: Clock
    db: Database
    redmine: Redmine
    _principals: dict[str, int | None] = field(default_factory=dict)

    def principal(self, name: str) -> int | None:
        """A group or person of the routing configuration, by name (cached per process)."""
        if name not in self._principals:
            self._principals[name] = self.redmine.principal_id(name)
        return self._principals[name]


def build_context(settings: Settings, now: datetime | None = None) -> Context:
    """The production wiring: the real Redmine client, the configured database, and a
    clock fixed by ``now`` (``--now``), running from ``RECOUVREMENT_NOW``, or the real one."""
    from integrations.redmine.client import RedmineClient

    return Context(
        settings=settings,
        clock=Clock(now) if now else Clock.starting_at(settings.now) if settings.now else Clock(),
        db=Database(settings.database_url),
        redmine=RedmineClient(settings),
    )
