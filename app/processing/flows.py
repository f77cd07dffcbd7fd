"""The worker: take inbox events in order, turn each into the flow of its ticket's tracker,
and decide what a failure means (retry with backoff, or failed for a human to look at)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from time import monotonic

from sqlalchemy.exc import OperationalError

from app.context import Context, in_one_view
from app.inbox import service
from app.inbox.models import InboxEvent
from app.bailiff.flows import reconcile_bailiff_file
from app.cancellations.flows import RULES as CANCELLATION_DEADLINES
from app.cancellations.flows import reconcile_cancellation
from app.config import Settings
from app.deadlines import flows as deadlines
from app.enforcement.flows import reconcile_eviction, reconcile_eviction_order, reconcile_judgment
from app.invoices.flows import reconcile_invoice
from app.litigation.deadlines import RULES as LITIGATION_DEADLINES
from app.litigation.deadlines import record_dates
from app.legal.flows import reconcile_legal
from app.litigation.flows import reconcile_litigation, reconcile_register
from app.prevention.flows import reconcile_reminder_ticket
from app.titles.flows import reconcile_contested_injunction, reconcile_title
from app.writeoffs.flows import RULES as WRITEOFF_DEADLINES
from app.writeoffs.flows import reconcile_writeoff
from integrations.redmine.interface import Issue, RedmineNotFound, RedmineUnavailable

log = logging.getLogger(__name__)


def deadline_rules(settings: Settings) -> deadlines.ByTracker:
    """Which tracker's tickets carry which deadlines."""
    t = settings.trackers
    return deadlines.ByTracker({
        t.litigation: LITIGATION_DEADLINES, t.assignation: LITIGATION_DEADLINES, t.execution: LITIGATION_DEADLINES,
        t.fee_cancellation: CANCELLATION_DEADLINES,  # C-35
        t.debt_writeoff: WRITEOFF_DEADLINES,  # C-32
    })


def process_issue(ctx: Context, issue_id: int, lease_ends: float | None = None) -> str:
    """Re-read the issue (the event is only a hint) and run the flow of its tracker, in one
    view of Redmine (each issue read once, every write read back once, at the end) that
    stops writing before the event's lease ends (``lease_ends``, ``time.monotonic()``)."""
    viewed, view = in_one_view(ctx, lease_ends)
    result = _process_issue(viewed, issue_id)
    view.verify()
    return result


def _process_issue(ctx: Context, issue_id: int) -> str:
    try:
        issue = ctx.redmine.get_issue(issue_id)
    except RedmineNotFound:
        return f"ticket #{issue_id} introuvable (supprimé, ou invisible pour le compte du service) : ignoré"
    if issue.project_id != ctx.redmine.project_id:
        return f"ticket #{issue_id} d'un autre projet : ignoré"
    t = ctx.settings.trackers
    done: list[str] = []
    if issue.tracker == t.funds_request and issue.parent_id:  # closed: the funds are there (C-6, C-7)
        done += reconcile_bailiff_file(ctx, ctx.redmine.get_issue(issue.parent_id))
    elif issue.closed:
        done.append("ticket fermé")
    elif issue.tracker == t.litigation:
        done.append(reconcile_litigation(ctx, issue))
        done += reconcile_title(ctx, issue)
        done += reconcile_bailiff_file(ctx, issue)
    elif issue.tracker == t.mandate_register:
        done.append(reconcile_register(ctx, issue))
    elif issue.tracker == t.assignation:
        done += reconcile_judgment(ctx, issue)
        done += reconcile_eviction_order(ctx, issue)
    elif issue.tracker == t.injunction:
        done += reconcile_contested_injunction(ctx, issue)
        done += reconcile_judgment(ctx, issue)
    elif issue.tracker == t.eviction:
        done += reconcile_eviction(ctx, issue)
    elif issue.tracker == t.supplier_payment:
        done += reconcile_invoice(ctx, issue)
    elif issue.tracker == t.fee_cancellation:
        done += reconcile_cancellation(ctx, issue)
    elif issue.tracker == t.debt_writeoff:
        done += reconcile_writeoff(ctx, issue)
    elif issue.tracker == t.prevention_reminder:
        done += reconcile_reminder_ticket(ctx, issue)
    rules = deadline_rules(ctx.settings)
    if rules.covers(issue.tracker):
        if any(d and d != "rien à faire" for d in done):
            issue = ctx.redmine.get_issue(issue.id)  # what was just written (a title sub-task stops C-12)
        if issue.tracker in (t.litigation, t.assignation):
            done += record_dates(ctx, issue)
        done += deadlines.sync(ctx, rules, issue)  # a closed ticket's are cancelled
    if not issue.closed:
        litigation = _litigation_of(ctx, issue)
        if litigation is not None:  # L-0 … L-16: its sub-tickets' dates count too
            done += reconcile_legal(ctx, litigation)
    return "; ".join(d for d in done if d) or f"tracker « {issue.tracker} » : rien à faire"


def _litigation_of(ctx: Context, issue: Issue) -> Issue | None:
    """The litigation ticket itself, or the one above a title, execution, eviction or fee
    cancellation ticket (two levels at most)."""
    t = ctx.settings.trackers
    for _ in range(3):
        if issue.tracker == t.litigation:
            return ctx.redmine.get_issue(issue.id)
        if issue.parent_id is None or issue.tracker not in (t.assignation, t.injunction, t.execution, t.eviction,
                                                            t.fee_cancellation):
            return None
        issue = ctx.redmine.get_issue(issue.parent_id)
    return None


def backoff(ctx: Context, attempts: int) -> timedelta:
    w = ctx.settings.worker
    return timedelta(seconds=min(w.backoff_base_seconds * 2 ** (attempts - 1), w.backoff_max_seconds))


def handle(ctx: Context, event: InboxEvent) -> None:
    now = ctx.clock.now()
    lease_ends = monotonic() + ctx.settings.worker.lease_seconds  # claimed just now
    try:
        result = process_issue(ctx, event.issue_id, lease_ends)
    except (RedmineUnavailable, OperationalError) as exc:
        # Redmine or the database down (5xx, restart): the event waits; failed only after
        # max_attempts. If the database is still down, this raises and the lease expires.
        error = str(exc) if isinstance(exc, RedmineUnavailable) else f"base de données indisponible ({type(exc).__name__})"
        if event.attempts >= ctx.settings.worker.max_attempts:
            service.fail(ctx.db, event.id, f"{error} (après {event.attempts} tentatives)", now)
        else:
            service.postpone(ctx.db, event.id, error, now + backoff(ctx, event.attempts))
        log.warning("événement %s (ticket #%s) : %s", event.id, event.issue_id, error)
    except Exception as exc:  # a refusal, a missing schema, or a bug: a human must look
        error = f"{type(exc).__name__}: {exc}"
        service.fail(ctx.db, event.id, error, now)
        log.error("événement %s (ticket #%s) en échec : %s", event.id, event.issue_id, error)
    else:
        service.finish(ctx.db, event.id, result, now)
        log.info("événement %s (ticket #%s) : %s", event.id, event.issue_id, result)


@dataclass(frozen=True)
class WorkReport:
    processed: int


def work(ctx: Context, limit: int | None = None) -> WorkReport:
    """Process the due events, one at a time, until none is left (or ``limit``)."""
    processed = 0
    while limit is None or processed < limit:
        event = service.claim_next(ctx.db, ctx.clock.now(), ctx.settings.worker.lease_seconds)
        if event is None:
            break
        handle(ctx, event)
        processed += 1
    return WorkReport(processed)
