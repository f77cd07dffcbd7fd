"""The daily write-off scan (C-31), also run at start: it is idempotent."""

from __future__ import annotations

import logging

from app.context import Context
from app.writeoffs.flows import scan

log = logging.getLogger(__name__)


def scan_job(ctx: Context) -> None:
    report = scan(ctx)
    log.info("annulations de dette : %s dossier(s) examiné(s), %s éligible(s), ticket(s) ouvert(s) : %s",
             report.examined, len(report.eligible), report.opened)
