"""Periodic polling of Redmine (Redmines without webhooks, and missed deliveries)."""

from __future__ import annotations

import logging

from app.context import Context
from app.inbox.flows import poll_once
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
