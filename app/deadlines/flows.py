"""The deadline engine: keep the store in line with each ticket, show the next deadline
on the ticket, and fire what is due — exactly once.

The rules themselves (what a ticket calls for, what firing does) live with their domain
(``app/litigation/deadlines.py``) and reach the engine as ``DeadlineRules``.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from time import monotonic
from typing import Protocol

from app.calendar import paris_date
from app.context import Context, in_one_view
from app.deadlines import service
from app.deadlines.models import Deadline
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
    return _store_and_show(ctx, issue, rules.wanted(ctx, issue))


def _store_and_show(ctx: Context, issue: Issue, wanted: list[Wanted]) -> list[str]:
    applied = service.apply_wanted(ctx.db, issue.id, wanted, ctx.clock.now())
    show_on_ticket(ctx, issue, applied.upcoming)
    return applied.changes


def show_on_ticket(ctx: Context, issue: Issue, upcoming: service.Upcoming | None) -> None:
    """Redmine derives a parent's due date from its children and silently drops one written
    on it, so the next deadline lives in two custom fields: ``Échéance`` and its motive.
    Written only when it differs from what the ticket shows."""
    f = ctx.settings.fields
    if not issue.has_field(f.deadline):
        return
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


CLAIM_BATCH = 20  # deadlines claimed at once, under one lease


class Outcome(enum.Enum):
    fired = "fired"
    skipped = "skipped"
    failed = "failed"


def tick(ctx: Context, rules: DeadlineRules) -> TickReport:
    """Fire every deadline due at the clock's now, claimed by batches under one lease. A
    batch still unfired after half its lease goes back to the store: the lease must not
    expire while this scheduler fires under it."""
    settings = ctx.settings.deadlines
    outcomes = Counter()
    while batch := service.claim_batch(ctx.db, ctx.clock.now(), settings.lease_seconds, CLAIM_BATCH):
        claimed_at = monotonic()
        for n, deadline in enumerate(batch):
            if monotonic() - claimed_at > settings.lease_seconds / 2:
                service.unclaim(ctx.db, batch[n:])
                break
            outcomes[fire_one(ctx, rules, deadline)] += 1
    return TickReport(outcomes[Outcome.fired], outcomes[Outcome.skipped], outcomes[Outcome.failed])


def fire_one(ctx: Context, rules: DeadlineRules, deadline: Deadline) -> Outcome:
    """Fire one claimed deadline if its ticket, read again, still calls for it (funds
    received, date edited… cancel it); then store and show the ticket's next deadline. A
    failure puts it back, to be tried again later."""
    settings = ctx.settings.deadlines
    now = ctx.clock.now()
    ctx, view = in_one_view(ctx)
    try:
        issue = ctx.redmine.get_issue(deadline.issue_id)
        wanted = rules.wanted(ctx, issue)
        if not any((w.kind, w.due_at) == (deadline.kind, deadline.due_at) for w in wanted):
            _store_and_show(ctx, issue, wanted)
            view.verify()
            return Outcome.skipped
        late = now - deadline.due_at > timedelta(minutes=settings.late_after_minutes)
        result = rules.fire(ctx, issue, deadline, late)
        view.verify()  # fired only once Redmine is seen to hold it all
        service.mark_fired(ctx.db, deadline.id, result, now)
        sync(ctx, rules, ctx.redmine.get_issue(deadline.issue_id))  # the next one, if any
        view.verify()
        log.info("échéance %s du ticket #%s déclenchée : %s", deadline.kind, deadline.issue_id, result)
        return Outcome.fired
    except RedmineNotFound:
        service.apply_wanted(ctx.db, deadline.issue_id, [], now)  # the ticket is gone
        return Outcome.skipped
    except Exception as exc:  # Redmine down, refusal or bug: kept, retried, visible
        retry = timedelta(seconds=60 if isinstance(exc, RedmineUnavailable) else 900)
        service.release(ctx.db, deadline.id, f"{type(exc).__name__}: {exc}", now + retry)
        log.warning("échéance %s du ticket #%s non déclenchée : %s", deadline.kind, deadline.issue_id, exc)
        return Outcome.failed
