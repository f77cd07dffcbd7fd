"""The legal watch refreshed daily at the office hour (and at start): dates passing change
the warnings of files nobody touched."""

from __future__ import annotations

import logging

from app.context import Context
from app.legal.flows import refresh_all

log = logging.getLogger(__name__)


def legal_job(ctx: Context) -> None:
    for line in refresh_all(ctx):
        log.info("contrôle légal %s", line)
