"""What every flow gets: settings, clock, database and the Redmine capability."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime

from app.clock import Clock
from app.config import Settings
from app.database import Database
from app.templates import render
from integrations.redmine.interface import Redmine
from integrations.redmine.scope import RedmineScope


@dataclass(frozen=True)
class Refusal:
    """A step Redmine refused inside a unit of work, told on the ticket it concerns, by
    default the one the work is about (``app/effects.py`` ``report_refusals``): what could
    not be done, Redmine's answer, and what to do (French)."""

    what: str
    reason: str
    todo: str
    issue_id: int | None = None  # the ticket concerned; None: the unit of work's own
    done_otherwise: bool = False  # made all the same (another assignee): nothing to try again


@dataclass
class Context:
    settings: Settings
    clock: Clock
    db: Database
    redmine: Redmine
    # The unit of work holds a claim that covers every effect it makes (a deadline's row,
    # claimed by one scheduler): its effects take no claim of their own (app/claims).
    effects_covered: bool = False
    # The refusals of the current unit of work, reported on its ticket at its end.
    refusals: list[Refusal] = field(default_factory=list)
    # The fields a rule of the current unit of work could not read (its decision waits).
    unreadable: list[str] = field(default_factory=list)
    _principals: dict[str, int | None] = field(default_factory=dict)

    def render(self, template: str, **values: object) -> str:
        """A note or description from ``ticket_templates/<template>.j2`` in the Redmine's text
        format (``redmine_text_format``), values escaped (:func:`app.templates.render`)."""
        return render(template, self.settings.redmine_text_format, **values)

    def principal(self, name: str) -> int | None:
        """A group or person of the routing configuration, by name (cached per process once
        found: one not a project member yet is looked for again next time)."""
        if self._principals.get(name) is None:
            self._principals[name] = self.redmine.principal_id(name)
        return self._principals[name]


def in_one_view(ctx: Context, lease_ends: float | None = None) -> tuple[Context, RedmineScope]:
    """The context for one unit of work (an event, a deadline's firing) and its view of
    Redmine (``integrations/redmine/scope.py``): call ``verify()`` on the view once the work
    has written what it writes. ``lease_ends`` (``time.monotonic()``): when the unit's lease
    runs out; the view stops writing earlier, by the time two Redmine calls may take (each
    cut at ``redmine_request_deadline_seconds``), or half the lease when it is shorter than
    four such calls, so that no write of it lands after another worker has taken the unit
    over."""
    writable_until = None
    if lease_ends is not None:
        margin = min(2 * ctx.settings.redmine_request_deadline_seconds, (lease_ends - time.monotonic()) / 2)
        writable_until = lease_ends - margin
    scope = RedmineScope(ctx.redmine, ctx.settings.fields.operation_key, writable_until)
    return replace(ctx, redmine=scope, refusals=[], unreadable=[]), scope


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
