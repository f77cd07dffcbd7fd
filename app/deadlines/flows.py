"""The deadline engine: keep the store in line with each ticket, show the next deadline
on the ticket, and fire what is due — exactly once.

The rules themselves (what a ticket calls for, what firing does) live with their domain
(``app/litigation/deadlines.py``) and reach the engine as ``DeadlineRules``.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from time import monotonic
from typing import Protocol

from app.calendar import paris_date
from app.context import Context, in_one_view
from app.deadlines import service
from app.deadlines.models import Deadline
from app.deadlines.service import Fired, Wanted
from app.effects import note_unreadable, refused, report_refusals
from integrations.redmine.interface import (
    FieldUnknown,
    Issue,
    RedmineForbidden,
    RedmineNotFound,
    RedmineRejected,
    RedmineUnavailable,
    RedmineWriteIgnored,
    SchemaMissing,
)
from integrations.redmine.scope import RedmineScope

log = logging.getLogger(__name__)


class DeadlineRules(Protocol):
    def wanted(self, ctx: Context, issue: Issue, fired: Fired) -> list[Wanted]:
        """The deadlines the ticket's current values call for (none for a closed ticket),
        given its deadlines already fired. Reads nothing else: it runs in a store transaction."""

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        """Do what the deadline calls for; idempotent (a crash mid-fire fires it again)."""


class ByTracker:
    """The ``DeadlineRules`` of a whole service: each ticket gets its tracker's rules."""

    def __init__(self, rules: dict[str, DeadlineRules]):
        self.rules = rules

    def covers(self, tracker: str) -> bool:
        return tracker in self.rules

    def wanted(self, ctx: Context, issue: Issue, fired: Fired) -> list[Wanted]:
        rules = self.rules.get(issue.tracker)
        return rules.wanted(ctx, issue, fired) if rules else []

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        rules = self.rules.get(issue.tracker)
        if rules is None:
            raise ValueError(f"ticket #{issue.id} : aucune règle d'échéance pour le tracker « {issue.tracker} »")
        return rules.fire(ctx, issue, deadline, late)


def sync(ctx: Context, rules: DeadlineRules, issue: Issue) -> list[str]:
    """Store what the ticket calls for now, and show its next deadline on it. A rule input
    the service cannot read (FieldUnknown, raised once the store is left as it was): no
    deadline is added, cancelled or moved on a guess."""
    unknown: list[FieldUnknown] = []
    applied = service.store_wanted(ctx.db, [issue.id], lambda _id, fired: _decided(ctx, rules, issue, fired, unknown),
                                   ctx.clock.now())[issue.id]
    show_on_ticket(ctx, issue, applied.upcoming)
    if unknown:
        raise unknown[0]
    return applied.changes


def _decided(ctx: Context, rules: DeadlineRules, issue: Issue, fired: Fired,
             unknown: list[FieldUnknown]) -> list[Wanted] | None:
    """What the ticket calls for; None (undecided) when a rule's input is unknown."""
    try:
        return rules.wanted(ctx, issue, fired)
    except FieldUnknown as exc:
        unknown.append(exc)
        return None


def cancel_all(ctx: Context, issue_id: int) -> list[str]:
    """A ticket that left the project or moved to a tracker without deadlines: its pending
    deadlines cancelled (issue 15), nothing written on it."""
    return service.store_wanted(ctx.db, [issue_id], lambda _id, fired: [], ctx.clock.now())[issue_id].changes


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


@dataclass
class Handled:
    """A claimed deadline fired, or found no longer called for, in its own view of Redmine;
    its ticket as that view last saw it (None: the ticket is gone), for the batch's
    bookkeeping."""

    ctx: Context  # the context of its view
    view: RedmineScope
    issue: Issue | None
    result: str | None = None  # what firing did; None: not fired


def tick(ctx: Context, rules: DeadlineRules) -> TickReport:
    """Fire every deadline due at the clock's now, claimed by batches under one lease."""
    outcomes = Counter()
    while batch := service.claim_batch(ctx.db, ctx.clock.now(), ctx.settings.deadlines.lease_seconds, CLAIM_BATCH):
        outcomes += fire_batch(ctx, rules, batch)
    return TickReport(outcomes[Outcome.fired], outcomes[Outcome.skipped], outcomes[Outcome.failed])


def fire_batch(ctx: Context, rules: DeadlineRules, batch: list[Deadline]) -> Counter[Outcome]:
    """Fire a claimed batch: each deadline against Redmine, in its own view; then, in one
    store transaction, those fired marked fired and each ticket's next deadlines stored;
    then each ticket shown its next one. Until that transaction they stay claimed: should it
    fail, they fire again, idempotently, once the lease has expired. The deadlines still
    unfired after half the lease go back to the store: the lease must not expire while this
    scheduler fires under it."""
    claimed_at = monotonic()
    fired_before = service.fired_by_issue(ctx.db, {d.issue_id for d in batch})
    outcomes: Counter[Outcome] = Counter()
    results: dict[int, str] = {}  # what firing did, by deadline id
    latest: dict[int, Handled] = {}  # by ticket: its latest view
    for n, deadline in enumerate(batch):
        if monotonic() - claimed_at > ctx.settings.deadlines.lease_seconds / 2:
            service.unclaim(ctx.db, batch[n:])
            break
        handled = fire_one(ctx, rules, deadline, fired_before[deadline.issue_id],
                           claimed_at + ctx.settings.deadlines.lease_seconds)
        if handled is None:
            outcomes[Outcome.failed] += 1
            continue
        if handled.result is None:
            outcomes[Outcome.skipped] += 1
        else:
            outcomes[Outcome.fired] += 1
            results[deadline.id] = handled.result
        latest[deadline.issue_id] = handled
    if latest:
        _record(ctx, rules, results, latest)
    for deadline in batch:
        if deadline.id in results:
            log.info("échéance %s du ticket #%s déclenchée : %s", deadline.kind, deadline.issue_id,
                     results[deadline.id])
    return outcomes


def fire_one(ctx: Context, rules: DeadlineRules, deadline: Deadline, fired: Fired,
             lease_ends: float) -> Handled | None:
    """Fire one claimed deadline if its ticket, read again, still calls for it (funds
    received, date edited… cancel it). None when it failed: it is put back, to be tried
    again later."""
    now = ctx.clock.now()
    ctx, view = in_one_view(ctx, lease_ends)  # no write once the claim may have passed to another
    ctx = replace(ctx, effects_covered=True)  # the deadline's claim is its effects' (app/claims)
    try:
        issue = ctx.redmine.get_issue(deadline.issue_id)
        if issue.project_id != ctx.redmine.project_id:  # moved out: cancelled, nothing written there
            return Handled(ctx, view, None)
        if not any((w.kind, w.due_at) == (deadline.kind, deadline.due_at) for w in rules.wanted(ctx, issue, fired)):
            return Handled(ctx, view, issue)
        late = now - deadline.due_at > timedelta(minutes=ctx.settings.deadlines.late_after_minutes)
        result = rules.fire(ctx, issue, deadline, late)
        report_refusals(ctx, issue)  # what Redmine refused on the way, done otherwise (a fallback assignee)
        view.verify()  # fired only once Redmine is seen to hold it all
        return Handled(ctx, view, ctx.redmine.get_issue(deadline.issue_id), result)  # the ticket as fired
    except (RedmineNotFound, RedmineForbidden):  # gone, or out of the service's sight
        return Handled(ctx, view, None)
    except FieldUnknown as exc:  # not fired on a guess: kept, the ticket told once, tried again
        _tell(view, deadline, lambda: note_unreadable(ctx, exc))
        _release(ctx, deadline, exc, now + timedelta(seconds=900), "en attente")
        return None
    except (RedmineRejected, RedmineWriteIgnored, SchemaMissing) as exc:  # refused: kept, told once, tried again
        refused(ctx, f"déclencher l'échéance « {deadline.label} »", exc,
                "corriger ce que Redmine indique ; l'échéance sera déclenchée au prochain essai (toutes les 15 minutes)")
        _tell(view, deadline, lambda: report_refusals(ctx, ctx.redmine.get_issue(deadline.issue_id)))
        _release(ctx, deadline, exc, now + timedelta(seconds=900), "refusée par Redmine")
        return None
    except Exception as exc:  # Redmine down or a bug: kept, retried, visible
        retry = timedelta(seconds=60 if isinstance(exc, RedmineUnavailable) else 900)
        _release(ctx, deadline, exc, now + retry, "non déclenchée")
        return None


def _tell(view: RedmineScope, deadline: Deadline, note: Callable[[], object]) -> None:
    """Write the note that says why a deadline waits; a note Redmine refuses too is logged."""
    try:
        note()
        view.verify()
    except Exception as exc:
        log.error("ticket #%s : échéance %s en attente sans note sur le ticket : %s", deadline.issue_id,
                  deadline.kind, exc)


def _release(ctx: Context, deadline: Deadline, exc: Exception, retry_at: datetime, state: str) -> None:
    service.release(ctx.db, deadline.id, f"{type(exc).__name__}: {exc}", retry_at)
    log.warning("échéance %s du ticket #%s %s : %s", deadline.kind, deadline.issue_id, state, exc)


def _record(ctx: Context, rules: DeadlineRules, results: dict[int, str], latest: dict[int, Handled]) -> None:
    """The batch's bookkeeping (one transaction), then each ticket shown its next deadline."""
    def wanted_for(issue_id: int, fired: Fired) -> list[Wanted] | None:
        handled = latest[issue_id]
        if handled.issue is None:
            return []  # a ticket gone (or moved out): none
        return _decided(handled.ctx, rules, handled.issue, fired, [])

    applied = service.store_wanted(ctx.db, latest, wanted_for, ctx.clock.now(), results)
    for issue_id, handled in latest.items():
        if handled.issue is None:
            continue
        try:
            show_on_ticket(handled.ctx, handled.issue, applied[issue_id].upcoming)
            handled.view.verify()
        except Exception as exc:  # recorded all the same: the ticket shows it at its next event
            log.warning("ticket #%s : prochaine échéance non affichée : %s", issue_id, exc)
