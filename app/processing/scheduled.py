"""Periodic processing of the inbox."""

from __future__ import annotations

from app.context import Context
from app.processing.flows import work


def work_job(ctx: Context) -> None:
    work(ctx)
