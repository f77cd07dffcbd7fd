"""Periodic polling of Redmine (Redmines without webhooks, and missed deliveries), and the
daily purge of finished events (personal data kept no longer than needed)."""

from __future__ import annotations

import logging

from app.claims.flows import purge_claims
from app.context import Context
from app.inbox.flows import poll_once, purge_events
from integrations.redmine.interface import RedmineError

log = logging.getLogger(__name__)


def poll_job(ctx: Context) -> None:
    try:
        report = poll_once(ctx)
    except RedmineError as exc:  # Redmine down: the cursor did not move, the next run catches up
        log.warning("lecture périodique de Redmine impossible : %s", exc)
        return
    if report.queued:
        log.info("lecture périodique : %s ticket(s) modifié(s), %s événement(s) en file", report.changed, report.queued)


def purge_job(ctx: Context) -> None:
    """Daily at the office hour and at start, on the scheduler's replica (retention, GDPR)."""
    purged = purge_events(ctx)
    if purged:
        log.info("%s événement(s) traité(s) ou écarté(s) depuis plus de %s jours supprimé(s)", purged,
                 ctx.settings.retention.events_days)
    purge_claims(ctx)
