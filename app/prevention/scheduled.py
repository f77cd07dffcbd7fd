"""The prevention runs (P-4, P-6, P-12), checked daily at the office hour and at start:
a run is done once, on its day or at the first chance after (catch-up)."""

from __future__ import annotations

import logging

from app.calendar import paris_date
from app.context import Context
from app.prevention.flows import run_due

log = logging.getLogger(__name__)


def prevention_job(ctx: Context) -> None:
    for report in run_due(ctx, paris_date(ctx.clock.now())):
        log.info("prévention : %s", report)
