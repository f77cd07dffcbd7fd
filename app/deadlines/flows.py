"""The deadline engine: keep the store in line with each ticket, show the next deadline
on the ticket, and fire what is due — exactly once.

The rules themselves (what a ticket calls for, what firing does) live with their domain
(``app/litigation/deadlines.py``) and reach the engine as ``DeadlineRules``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from app.calendar import paris_date
from app.context import Context
from app.deadlines import service
from app.deadlines.models import Deadline, DeadlineState
from app.deadlines.service import Wanted
from integrations.redmine.interface import Issue, RedmineNotFound, RedmineUnavailable

log = logging.getLogger(__name__)


class DeadlineRules(Protocol):
    def wanted(self, ctx: Context, issue: Issue) -> list[Wanted]:
        """The deadlines the ticket's current values call for (none for a closed ticket)."""

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        """Do what the deadline calls for; idempotent (a crash mid-fire fires it again)."""


class ByTracker:
    """The ``DeadlineRules`` of a whole service: each ticket gets its tracker's rules."""

    def __init__(self, rules: dict[str, DeadlineRules]):
        self.rules = rules

    def covers(self, tracker: str) -> bool:
        return tracker in self.rules

    def wanted(self, ctx: Context, issue: Issue) -> list[Wanted]:
        rules = self.rules.get(issue.tracker)
        return rules.wanted(ctx, issue) if rules else []

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        rules = self.rules.get(issue.tracker)
        if rules is None:
            raise ValueError(f"ticket #{issue.id} : aucune règle d'échéance pour le tracker « {issue.tracker} »")
        return rules.fire(ctx, issue, deadline, late)


def sync(ctx: Context, rules: DeadlineRules, issue: Issue) -> list[str]:
    """Store what the ticket calls for now, and show its next deadline on it."""
    changes = service.apply_wanted(ctx.db, issue.id, rules.wanted(ctx, issue), ctx.clock.now())
    show_on_ticket(ctx, issue)
    return changes


def show_on_ticket(ctx: Context, issue: Issue) -> None:
    """Redmine derives a parent's due date from its children and silently drops one written
    on it, so the next deadline lives in two custom fields: ``Échéance`` and its motive."""
    f = ctx.settings.fields
    if not issue.has_field(f.deadline):
        return
    upcoming = service.next_active(ctx.db, issue.id)
    wanted = {
        f.deadline: paris_date(upcoming.due_at).isoformat() if upcoming else "",
        f.deadline_reason: upcoming.label[:255] if upcoming else "",
    }
    if any(issue.field(name) != value for name, value in wanted.items()):
        ctx.redmine.update_issue(issue.id, custom_fields=wanted)


@dataclass(frozen=True)
class TickReport:
    fired: int
    skipped: int
    failed: int


def tick(ctx: Context, rules: DeadlineRules) -> TickReport:
    """Fire every deadline due at the clock's now. Re-reads each ticket first: a deadline
    the ticket no longer calls for (funds received, date edited…) is not fired."""
    settings = ctx.settings.deadlines
    fired = skipped = failed = 0
    while True:
        now = ctx.clock.now()
        deadline = service.claim_due(ctx.db, now, settings.lease_seconds)
        if deadline is None:
            return TickReport(fired, skipped, failed)
        try:
            issue = ctx.redmine.get_issue(deadline.issue_id)
            sync(ctx, rules, issue)
            if service.state_of(ctx.db, deadline.id) is not DeadlineState.firing:
                skipped += 1
                continue
            late = now - deadline.due_at > timedelta(minutes=settings.late_after_minutes)
            result = rules.fire(ctx, issue, deadline, late)
            service.mark_fired(ctx.db, deadline.id, result, now)
            sync(ctx, rules, ctx.redmine.get_issue(deadline.issue_id))  # the next one, if any
            fired += 1
            log.info("échéance %s du ticket #%s déclenchée : %s", deadline.kind, deadline.issue_id, result)
        except RedmineNotFound:
            service.apply_wanted(ctx.db, deadline.issue_id, [], now)  # the ticket is gone
            skipped += 1
        except Exception as exc:  # Redmine down, refusal or bug: kept, retried, visible
            retry = timedelta(seconds=60 if isinstance(exc, RedmineUnavailable) else 900)
            service.release(ctx.db, deadline.id, f"{type(exc).__name__}: {exc}", now + retry)
            failed += 1
            log.warning("échéance %s du ticket #%s non déclenchée : %s", deadline.kind, deadline.issue_id, exc)
