"""The worker: take inbox events in order, turn each into the flow of its ticket's tracker,
and decide what a failure means (retry with backoff, or failed for a human to look at)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from app.litigation.flows import open_register, reconcile_litigation, reconcile_register
from app.effects import StepsPending, attempt, refused, report_refusals, steps_pending, what_to_do
from app.prevention.flows import reconcile_reminder_ticket
from app.reconciliation.flows import forget, remember
from app.titles.flows import reconcile_contested_injunction, reconcile_title
from app.writeoffs.flows import RULES as WRITEOFF_DEADLINES
from app.writeoffs.flows import reconcile_writeoff
from integrations.redmine.interface import (
    FieldUnknown,
    Issue,
    RedmineAccessRefused,
    RedmineForbidden,
    RedmineNotFound,
    RedmineUnavailable,
    RedmineWriteIgnored,
)

log = logging.getLogger(__name__)


def deadline_rules(settings: Settings) -> deadlines.ByTracker:
    """Which tracker's tickets carry which deadlines."""
    t = settings.trackers
    return deadlines.ByTracker({
        t.litigation: LITIGATION_DEADLINES, t.assignation: LITIGATION_DEADLINES, t.execution: LITIGATION_DEADLINES,
        t.fee_cancellation: CANCELLATION_DEADLINES,  # C-35
        t.debt_writeoff: WRITEOFF_DEADLINES,  # C-32
    })


# How long an event waits for Redmine to show the version its delivery told of: Redmine
# commits a change within its request (seconds; a request is given a minute, README "What
# the guarantees assume"), so a version still not shown after this never came (a wrong or
# forged delivery) — and the event, first of its ticket's, holds the ticket's later events.
NOT_VISIBLE_WAIT = timedelta(minutes=10)


class NotVisibleYet(Exception):
    """Redmine does not show yet the version of the ticket a delivery tells of: the sender
    posted before Redmine committed the change (redmine_webhook posts from inside the saving
    transaction), or the delivery is wrong. Nothing was done."""


def process_issue(ctx: Context, issue_id: int, lease_ends: float | None = None, *,
                  awaited: datetime | None = None, created: bool = False) -> str:
    """Re-read the issue (the event is only a hint) and run the flow of its tracker, in one
    view of Redmine (each issue read once, every write read back once, at the end) that
    stops writing before the event's lease ends (``lease_ends``, ``time.monotonic()``).

    ``awaited``: the ticket's ``updated_on`` as a delivery gave it (``created``: of its
    creation). Raises NotVisibleYet, having done nothing, while Redmine shows an older
    version (or, for a creation, no ticket); StepsPending, with what was done, when steps
    wait (a field unreadable, a step Redmine refused)."""
    viewed, view = in_one_view(ctx, lease_ends)
    result = _process_issue(viewed, issue_id, awaited, created)
    try:
        view.verify()
    except RedmineWriteIgnored as exc:  # a field hidden or read-only for the service's role
        viewed.refusals.clear()  # those before are told already
        refused(viewed, "garder ce que le service a écrit", exc, what_to_do(exc))
        result += "; " + "; ".join(report_refusals(viewed, viewed.redmine.get_issue(issue_id)))
        view.verify()
    waits = steps_pending(viewed)
    if waits:
        raise StepsPending(f"{waits} — fait : {result}")
    return result


def _process_issue(ctx: Context, issue_id: int, awaited: datetime | None = None, created: bool = False) -> str:
    try:
        issue = ctx.redmine.get_issue(issue_id)
    except RedmineNotFound:
        if awaited is not None and created:
            raise NotVisibleYet(f"ticket #{issue_id} pas encore visible dans Redmine") from None
        return _ignored(ctx, issue_id, "introuvable (supprimé, ou invisible pour le compte du service)")
    except RedmineForbidden:
        ctx.redmine.ping()  # the service refused its own project: an outage (RedmineAccessRefused), not this ticket
        return _ignored(ctx, issue_id, "hors de la vue du service (403 : autre projet ou ticket privé)")
    if awaited is not None and issue.updated_on is not None and issue.updated_on < awaited:
        raise NotVisibleYet(f"ticket #{issue_id} : Redmine montre encore la version du {issue.updated_on:%Y-%m-%d %H:%M:%S} "
                            f"UTC, la livraison annonce celle du {awaited:%Y-%m-%d %H:%M:%S} UTC")
    rules = deadline_rules(ctx.settings)
    if issue.project_id != ctx.redmine.project_id:  # foreign, or moved out: nothing written there
        return _ignored(ctx, issue_id, "d'un autre projet")
    remember(ctx, issue)  # for the reconciliation: what polling cannot see (issue 16)
    done: list[str] = []
    for step in _steps(ctx, issue):
        done += attempt(ctx, step)
    if rules.covers(issue.tracker):
        if any(d and d != "rien à faire" for d in done):
            issue = ctx.redmine.get_issue(issue.id)  # what was just written (a title sub-task stops C-12)
        if issue.tracker in (ctx.settings.trackers.litigation, ctx.settings.trackers.assignation):
            done += attempt(ctx, lambda: record_dates(ctx, issue))
        done += attempt(ctx, lambda: deadlines.sync(ctx, rules, issue))  # a closed ticket's are cancelled
    else:  # moved to a tracker without deadlines: those of the former one end
        done += deadlines.cancel_all(ctx, issue.id)
    if not issue.closed and not _awaiting_register(ctx, issue):
        done += attempt(ctx, lambda: _legal_watch(ctx, issue))
    done += report_refusals(ctx, issue)
    return "; ".join(dict.fromkeys(d for d in done if d)) or f"tracker « {issue.tracker} » : rien à faire"


def _ignored(ctx: Context, issue_id: int, why: str) -> str:
    """A ticket gone, out of sight or of another project: nothing written; its deadlines, if
    it had any (moved out of the project), cancelled; no longer tracked."""
    forget(ctx, issue_id)
    cancelled = deadlines.cancel_all(ctx, issue_id)
    return f"ticket #{issue_id} {why} : ignoré" + (f" ({', '.join(cancelled)})" if cancelled else "")


def _steps(ctx: Context, issue: Issue) -> list[Callable[[], list[str] | str]]:
    """The flows of the ticket's tracker, each a step on its own: one refused or waiting
    for an unreadable field does not stop the others."""
    t = ctx.settings.trackers
    if issue.tracker == t.funds_request and issue.parent_id:  # closed: the funds are there (C-6, C-7)
        return [lambda: reconcile_bailiff_file(ctx, ctx.redmine.get_issue(issue.parent_id))]
    if issue.closed:
        return [lambda: "ticket fermé"]
    if issue.tracker == t.litigation:
        opening = [lambda: reconcile_litigation(ctx, issue)]
        if _awaiting_register(ctx, issue):  # C-9: nothing else until the register is there and open
            return opening
        return [*opening, lambda: reconcile_title(ctx, issue), lambda: reconcile_bailiff_file(ctx, issue)]
    by_tracker: dict[str, list[Callable[[], list[str] | str]]] = {
        t.mandate_register: [lambda: reconcile_register(ctx, issue)],
        t.assignation: [lambda: reconcile_judgment(ctx, issue), lambda: reconcile_eviction_order(ctx, issue)],
        t.injunction: [lambda: reconcile_contested_injunction(ctx, issue), lambda: reconcile_judgment(ctx, issue)],
        t.eviction: [lambda: reconcile_eviction(ctx, issue)],
        t.supplier_payment: [lambda: reconcile_invoice(ctx, issue)],
        t.fee_cancellation: [lambda: reconcile_cancellation(ctx, issue)],
        t.debt_writeoff: [lambda: reconcile_writeoff(ctx, issue)],
        t.prevention_reminder: [lambda: reconcile_reminder_ticket(ctx, issue)],
    }
    return by_tracker.get(issue.tracker, [])


def _awaiting_register(ctx: Context, issue: Issue) -> bool:
    """A litigation ticket whose mandate register is missing, ambiguous or closed (C-2, C-9)."""
    if issue.tracker != ctx.settings.trackers.litigation:
        return False
    number = issue.value(ctx.settings.fields.mandate_number)
    try:
        return bool(number) and open_register(ctx, number) is None
    except FieldUnknown:  # the registers' number unreadable: the opening says so, and waits
        return False


def _legal_watch(ctx: Context, issue: Issue) -> list[str]:
    """L-0 … L-16 on the litigation file of the ticket: its sub-tickets' dates count too."""
    litigation = _litigation_of(ctx, issue)
    return reconcile_legal(ctx, litigation) if litigation is not None else []


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


def handle(ctx: Context, event: InboxEvent) -> str | None:
    """Process one claimed event; returns the outage that stopped it (Redmine refusing the
    service as a whole), None otherwise."""
    now = ctx.clock.now()
    lease_ends = monotonic() + ctx.settings.worker.lease_seconds  # claimed just now
    # A delivery telling of a version Redmine does not show waits for it (Redmine commits in a
    # moment); once NOT_VISIBLE_WAIT has passed the version never came as told: the ticket is
    # processed as Redmine shows it — a real change stored under the same key (delivered or
    # polled while this one waited) is not lost — and the key is freed for a later one.
    give_up_at = event.received_at + NOT_VISIBLE_WAIT
    given_up = now >= give_up_at
    awaited = event.changed_at if event.event_type != "issue.deleted" and not given_up else None
    try:
        result = process_issue(ctx, event.issue_id, lease_ends, awaited=awaited,
                               created=event.event_type == "issue.created")
    except NotVisibleYet as exc:
        service.postpone(ctx.db, event.id, str(exc), min(now + backoff(ctx, event.attempts), give_up_at))
        log.info("événement %s (ticket #%s) : %s ; nouvel essai plus tard", event.id, event.issue_id, exc)
    except RedmineAccessRefused as exc:
        # The service's key or project refused (issue 15): an outage, not this event's
        # fault. The event waits without using up its attempts; nothing is lost.
        service.postpone(ctx.db, event.id, str(exc), now + backoff(ctx, 1), counted=False)
        log.error("Redmine refuse l'accès au service ; événements en attente : %s", exc)
        return str(exc)
    except StepsPending as exc:
        # The rest is done and what waits told on the tickets (once): tried again with
        # backoff, then once a day, never failed — it completes by itself once fixed.
        wait = backoff(ctx, event.attempts) if event.attempts < ctx.settings.worker.max_attempts else timedelta(days=1)
        service.postpone(ctx.db, event.id, f"à reprendre : {exc}", now + wait)
        log.warning("événement %s (ticket #%s) en attente : %s", event.id, event.issue_id, exc)
    except (RedmineUnavailable, OperationalError) as exc:
        # Redmine or the database down (5xx, restart): the event waits; failed only after
        # max_attempts. If the database is still down, this raises and the lease expires.
        error = str(exc) if isinstance(exc, RedmineUnavailable) else f"base de données indisponible ({type(exc).__name__})"
        if event.attempts >= ctx.settings.worker.max_attempts:
            service.fail(ctx.db, event.id, f"{error} (après {event.attempts} tentatives)", now)
        else:
            service.postpone(ctx.db, event.id, error, now + backoff(ctx, event.attempts))
        log.warning("événement %s (ticket #%s) : %s", event.id, event.issue_id, error)
    except Exception as exc:  # nothing could be written (not even a note), or a bug: a human must look
        error = f"{type(exc).__name__}: {exc}"
        service.fail(ctx.db, event.id, error, now)
        log.error("événement %s (ticket #%s) en échec : %s", event.id, event.issue_id, error)
    else:
        released = given_up and event.changed_at is not None
        if released:
            result = f"version annoncée par la livraison jamais vue dans Redmine ; traité tel que Redmine le montre : {result}"
        service.finish(ctx.db, event.id, result, now, release_key=released)
        log.info("événement %s (ticket #%s) : %s", event.id, event.issue_id, result)
    return None


@dataclass(frozen=True)
class WorkReport:
    processed: int
    outage: str | None = None  # why the pass stopped early: Redmine refuses the service


def work(ctx: Context, limit: int | None = None) -> WorkReport:
    """Process the due events, one at a time, until none is left (or ``limit``); stop at
    an outage of the service's access (every other event would meet it too)."""
    processed = 0
    while limit is None or processed < limit:
        event = service.claim_next(ctx.db, ctx.clock.now(), ctx.settings.worker.lease_seconds)
        if event is None:
            break
        outage = handle(ctx, event)
        processed += 1
        if outage is not None:
            return WorkReport(processed, outage)
    return WorkReport(processed)
