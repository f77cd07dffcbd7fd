"""Periodic firing of due deadlines (and catch-up at start)."""

from __future__ import annotations

from app.context import Context
from app.deadlines.flows import tick
from app.processing.flows import deadline_rules


def tick_job(ctx: Context) -> None:
    tick(ctx, deadline_rules(ctx.settings))
