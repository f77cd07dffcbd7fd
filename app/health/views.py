"""GET /health (the process answers) and GET /ready (database, Redmine and schema)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.context import Context
from integrations.redmine.interface import RedmineError

router = APIRouter()


@router.get("/health")
def health(request: Request) -> dict:
    """The process answers; ``scheduler`` tells whether this replica holds the scheduler lease."""
    leading = request.app.state.leadership.holds()
    return {"status": "ok", "scheduler": "leader" if leading else "follower"}


def _readiness(ctx: Context) -> dict[str, str]:
    checks: dict[str, str] = {}
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
    checks = await run_in_threadpool(_readiness, request.app.state.ctx)
    ok = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)
