"""GET /health (the process answers, no job stuck) and GET /ready (database, Redmine, schema,
no job stuck); 503 with the reasons in French otherwise. /ready also lists, under
``configuration``, the problems of the Redmine configuration found by the last check
(``app/health/configuration.py``, issue 15): a misconfiguration is not an outage (webhooks
must still be stored), it leaves /ready at 200.

Both answer without authentication (load balancers): /health does no I/O, and /ready runs
one check at a time, its result reused for ``READY_REUSE_SECONDS``, so that many probes
against a hung Redmine cannot tie up the server's threads (webhooks share them)."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.context import Context
from app.health.configuration import ConfigurationCheck
from app.health.heartbeats import Heartbeats
from integrations.redmine.interface import RedmineError

router = APIRouter()


READY_REUSE_SECONDS = 5.0


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """The process answers; ``scheduler`` tells whether this replica holds the scheduler lease;
    503 with ``stuck`` (one French reason per job) when a job runs without progress."""
    leading = request.app.state.leadership.holds()
    stuck = [s.reason() for s in request.app.state.heartbeats.stuck()]
    body = {"status": "bloqué" if stuck else "ok", "scheduler": "leader" if leading else "follower"}
    return JSONResponse(body | {"stuck": stuck} if stuck else body, status_code=503 if stuck else 200)


def _readiness(ctx: Context, heartbeats: Heartbeats, configuration: ConfigurationCheck) -> dict[str, str]:
    stuck = heartbeats.stuck()
    checks: dict[str, str] = {"jobs": "; ".join(s.reason() for s in stuck) if stuck else "ok"}
    try:
        with ctx.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"indisponible ({type(exc).__name__})"
    try:
        ctx.redmine.ping()
        report = configuration.report()  # checked again at most every 10 minutes while complete
        checks["redmine"] = "ok"
        checks["schema"] = ("vérification en cours" if report is None else "ok" if report.ok
                            else "incomplet : lancer `recouvrement redmine check`")
    except RedmineError as exc:
        checks["redmine"] = str(exc)
    return checks


class Readiness:
    """The readiness checks, one run at a time: while one runs, or for ``reuse_seconds``
    after it, a probe gets its result (the first probes of a run: "vérification en cours")."""

    def __init__(self, ctx: Context, heartbeats: Heartbeats, reuse_seconds: float = READY_REUSE_SECONDS,
                 configuration: ConfigurationCheck | None = None):
        self.ctx, self.heartbeats, self.reuse_seconds = ctx, heartbeats, reuse_seconds
        self.configuration = configuration or ConfigurationCheck(ctx.redmine, ctx.settings)
        self._lock = threading.Lock()
        self._running = False
        self._last: dict[str, str] | None = None
        self._last_at = 0.0

    def checks(self) -> dict[str, str]:
        with self._lock:
            if self._running or (self._last and time.monotonic() - self._last_at < self.reuse_seconds):
                return self._last or {"vérification": "en cours"}
            self._running = True
        try:
            result = _readiness(self.ctx, self.heartbeats, self.configuration)
        finally:
            with self._lock:
                self._running = False
        with self._lock:
            self._last, self._last_at = result, time.monotonic()
        return result


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    readiness = request.app.state.readiness
    checks = await run_in_threadpool(readiness.checks)
    ok = all(v == "ok" for v in checks.values()) and len(checks) == 4
    body = {"status": "ready" if ok else "not ready", "checks": checks,
            "configuration": readiness.configuration.problems()}
    return JSONResponse(body, status_code=200 if ok else 503)
