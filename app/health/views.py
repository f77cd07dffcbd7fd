"""GET /health (the process answers, no job stuck) and GET /ready (database, Redmine, schema,
no job stuck); 503 with the reasons in French otherwise."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.context import Context
from app.health.heartbeats import Heartbeats
from integrations.redmine.interface import RedmineError

router = APIRouter()


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """The process answers; ``scheduler`` tells whether this replica holds the scheduler lease;
    503 with ``stuck`` (one French reason per job) when a job runs without progress."""
    leading = request.app.state.leadership.holds()
    stuck = [s.reason() for s in request.app.state.heartbeats.stuck()]
    body = {"status": "bloqué" if stuck else "ok", "scheduler": "leader" if leading else "follower"}
    return JSONResponse(body | {"stuck": stuck} if stuck else body, status_code=503 if stuck else 200)


def _readiness(ctx: Context, heartbeats: Heartbeats) -> dict[str, str]:
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
        report = ctx.redmine.check_schema()
        checks["redmine"] = "ok"
        checks["schema"] = "ok" if report.ok else "incomplet : lancer `recouvrement redmine check`"
    except RedmineError as exc:
        checks["redmine"] = str(exc)
    return checks


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(_readiness, request.app.state.ctx, request.app.state.heartbeats)
    ok = all(v == "ok" for v in checks.values()) and len(checks) == 4
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)
