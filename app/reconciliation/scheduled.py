"""The daily reconciliation of the tracked tickets (issue 16), at the office hour and at start."""

from __future__ import annotations

import logging

from app.context import Context
from app.reconciliation.flows import reconcile
from integrations.redmine.interface import RedmineError

log = logging.getLogger(__name__)


def reconcile_job(ctx: Context) -> None:
    """On the scheduler's replica; Redmine failing: tried again tomorrow, and at the next start."""
    try:
        report = reconcile(ctx)
    except RedmineError as exc:
        log.warning("rapprochement avec Redmine impossible : %s", exc)
        return
    log.info(report.summary())
