"""The HTTP application, and the periodic jobs that `recouvrement serve` runs beside it.

APScheduler only drives periodic scans; the database is the source of truth (the inbox,
the deadline store), so a missed or doubled run loses or repeats nothing. Every replica
works the inbox; the other jobs run on the replica holding the scheduler lease
(``app/leadership``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI

from app.calendar import PARIS
from app.context import Context
from app.deadlines.scheduled import tick_job
from app.health.configuration import ConfigurationCheck
from app.health.heartbeats import Heartbeats
from app.health.views import Readiness
from app.health.views import router as health_router
from app.inbox.flows import NO_SECRET, UNAUTHENTICATED, authentication_set
from app.inbox.scheduled import poll_job, purge_job
from app.inbox.views import router as inbox_router
from app.leadership.flows import Leadership
from app.legal.scheduled import legal_job
from app.prevention.scheduled import prevention_job
from app.processing.scheduled import work_job
from app.reconciliation.flows import is_tracked
from app.reconciliation.scheduled import reconcile_job
from app.server import BodyTimeout
from app.writeoffs.scheduled import scan_job
from integrations.redmine.client import RedmineClient

log = logging.getLogger(__name__)


# The jobs of the replica holding the scheduler lease; each runs when it takes the lease.
LEADER_JOBS = ("poll", "tick", "writeoffs", "prevention", "legal", "purge", "reconcile")


def make_scheduler(ctx: Context, leadership: Leadership, heartbeats: Heartbeats) -> BackgroundScheduler:
    w = ctx.settings.worker
    scheduler = BackgroundScheduler(timezone=PARIS)
    # In-memory jobs only; coalesce and no misfire limit: a late scan simply runs once.
    common = dict(max_instances=1, coalesce=True, misfire_grace_time=None)

    def leading(job_id: str, job: Callable[[Context], None]) -> Callable[[Context], None]:
        return heartbeats.watch(job_id, leadership.only_when_leading(job))

    scheduler.add_job(heartbeats.watch("work", work_job), "interval", seconds=w.work_interval_seconds, args=[ctx],
                      id="work", **common)
    scheduler.add_job(leading("poll", poll_job), "interval", seconds=w.poll_interval_seconds, args=[ctx], id="poll",
                      **common)
    # Deadlines due while no replica ran fire when one takes the lease (catch-up), late, once.
    scheduler.add_job(leading("tick", tick_job), "interval", seconds=ctx.settings.deadlines.tick_interval_seconds,
                      args=[ctx], id="tick", **common)
    office = ctx.settings.deadlines.office_hour
    # C-31: the write-off scan; P-4, P-6, P-12: the monthly prevention runs, checked daily (each
    # done once); L-0 … L-16: the legal check of every open litigation file, as dates pass; the
    # purge of finished inbox events (retention); the reconciliation of the tracked tickets with
    # Redmine (deleted, moved, relations: what polling cannot see).
    for job_id, job in (("writeoffs", scan_job), ("prevention", prevention_job), ("legal", legal_job),
                        ("purge", purge_job), ("reconcile", reconcile_job)):
        scheduler.add_job(leading(job_id, job), "cron", hour=office.hour, minute=office.minute, args=[ctx],
                          id=job_id, **common)

    def lead() -> None:
        if leadership.renew():  # just became the leader: catch up at once
            for job_id in LEADER_JOBS:
                scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    scheduler.add_job(lead, "interval", seconds=w.leader_renew_seconds, id="lead", next_run_time=datetime.now(UTC),
                      **common)
    return scheduler


def create_app(ctx: Context, run_jobs: bool = False, check_configuration: bool | None = None) -> FastAPI:
    """``check_configuration`` (default: with the jobs, as `serve` runs): the Redmine
    configuration is checked at start, in the background, each problem logged as a WARNING
    (issue 15); the service starts whatever the result."""
    heartbeats = Heartbeats(ctx.clock, ctx.settings.worker.stuck_after_seconds)
    if isinstance(ctx.redmine, RedmineClient):  # each answer of Redmine is progress of the job that asked
        ctx.redmine.on_answer(heartbeats.beat)
    leadership = Leadership(ctx, stalled=lambda: [s.reason() for s in heartbeats.stuck(LEADER_JOBS)])
    scheduler = make_scheduler(ctx, leadership, heartbeats) if run_jobs else None
    configuration = ConfigurationCheck(ctx.redmine, ctx.settings)
    check_at_start = run_jobs if check_configuration is None else check_configuration

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not authentication_set(ctx.settings):  # at every start (`serve` refuses to start with neither)
            unauthenticated = ctx.settings.webhook_unauthenticated
            log.warning(UNAUTHENTICATED if unauthenticated else f"{NO_SECRET} ; livraisons refusées")
        if check_at_start:
            threading.Thread(target=configuration.at_start, name="configuration-check", daemon=True).start()
        if scheduler:
            scheduler.start()
        yield
        if scheduler:
            scheduler.shutdown(wait=True)
            leadership.release()

    docs = ctx.settings.api_docs
    app = FastAPI(title="Recouvrement", version="0.1.0", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(BodyTimeout, seconds=ctx.settings.http_body_timeout_seconds)
    app.state.ctx = ctx
    app.state.leadership = leadership
    app.state.heartbeats = heartbeats
    app.state.readiness = Readiness(ctx, heartbeats, configuration=configuration)

    def wake_worker() -> None:
        if scheduler and scheduler.running:
            scheduler.modify_job("work", next_run_time=datetime.now(UTC))

    app.state.wake_worker = wake_worker
    # A delivery about another project is stored only for a ticket the service tracks (moved out).
    app.state.tracked = lambda issue_id: is_tracked(ctx, issue_id)
    app.include_router(health_router)
    app.include_router(inbox_router)
    return app
