"""Periodic processing of the inbox."""

from __future__ import annotations

import logging

from app.context import Context
from app.processing.flows import queue_strays, work
from integrations.redmine.interface import RedmineError

log = logging.getLogger(__name__)


def work_job(ctx: Context) -> None:
    work(ctx)


def strays_job(ctx: Context) -> None:
    """Daily: tickets with pending deadlines gone from the project's open tickets, queued."""
    try:
        strays = queue_strays(ctx)
    except RedmineError as exc:  # tried again tomorrow, and at the next start
        log.warning("rapprochement des échéances impossible : %s", exc)
        return
    if strays:
        log.info("rapprochement des échéances : %s ticket(s) relu(s) (%s)", len(strays),
                 ", ".join(f"#{i}" for i in strays))
