"""POST /webhooks/redmine (and /webhooks/redmine/<token>): authenticate, parse, store durably,
then answer. Nothing is stored for a refused or ignored delivery; nothing is answered 2xx
before it is committed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect

from app.context import Context
from app.database import Database
from app.inbox import service
from app.inbox.flows import (
    API_KEY_HEADER,
    SIGNATURE_HEADER,
    Credentials,
    Ignored,
    IntakeError,
    authenticate,
    authenticated_by_token,
    parse_delivery,
)
from app.inbox.models import ParsedEvent

router = APIRouter()
log = logging.getLogger(__name__)


class Intake:
    """Group commit of the deliveries: those arriving while a transaction is under way are
    stored together in the next one (one commit, one fsync), and each is answered after
    the commit that holds it. The worker is woken once per group. On a database error the
    group's events are stored one by one, so that a bad one fails alone."""

    def __init__(self, db: Database, wake_worker: Callable[[], None]):
        self.db = db
        self.wake_worker = wake_worker
        self._queued: list[tuple[ParsedEvent, datetime, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def store(self, event: ParsedEvent, now: datetime) -> service.Stored:
        answer = asyncio.get_running_loop().create_future()
        self._queued.append((event, now, answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await answer

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                group, self._queued = self._queued, []
                await self._write(group)
                self.wake_worker()
        finally:
            self._writer = None

    async def _write(self, group: list[tuple[ParsedEvent, datetime, asyncio.Future]]) -> None:
        try:
            stored = await run_in_threadpool(service.store_events, self.db, [(e, now) for e, now, _ in group])
        except SQLAlchemyError as exc:
            if len(group) > 1:
                for one in group:
                    await self._write([one])
                return
            stored = [exc]
        except Exception as exc:  # a bug: every request of the group answers it (500)
            stored = [exc] * len(group)
        for (_, _, answer), result in zip(group, stored):
            if not answer.done():  # its client may have gone
                if isinstance(result, Exception):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)


def _intake(app: FastAPI) -> Intake:
    if not hasattr(app.state, "intake"):  # the event loop's thread only: no race
        app.state.intake = Intake(app.state.ctx.db, app.state.wake_worker)
    return app.state.intake


# Bodies being received at once hold at most this many times the largest body in memory:
# beyond it, 503 (Redmine's deliveries are a few kilobytes; a flood of large bodies with a
# forged signature must not exhaust the server's memory).
BODIES_IN_FLIGHT = 16


class _Bodies:
    """The bytes of the bodies being received (the event loop's thread only: no lock)."""

    def __init__(self, budget: int):
        self.budget = budget
        self.in_flight = 0


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (IntakeError 413), within the server's budget of
    bodies in flight (IntakeError 503); a client gone mid-body is IntakeError 400."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IntakeError(413, f"corps trop grand : {limit} octets au plus")
    app = request.app
    if not hasattr(app.state, "bodies"):
        app.state.bodies = _Bodies(BODIES_IN_FLIGHT * limit)
    bodies: _Bodies = app.state.bodies
    body = bytearray()
    try:
        async for chunk in request.stream():
            if bodies.in_flight + len(chunk) > bodies.budget:
                raise IntakeError(503, "trop de livraisons en cours de réception : renvoyer plus tard")
            body += chunk
            bodies.in_flight += len(chunk)
            if len(body) > limit:
                raise IntakeError(413, f"corps trop grand : {limit} octets au plus")
    except ClientDisconnect:
        raise IntakeError(400, "client déconnecté avant la fin du corps") from None
    finally:
        bodies.in_flight -= len(body)
    return bytes(body)


def _another_project(event: ParsedEvent, ctx: Context) -> bool:
    """The delivery names a project that is not the service's (its identifier, or its id once
    the service has read its own: no Redmine request here)."""
    if event.project_identifier is not None:
        return event.project_identifier != ctx.settings.project
    known = ctx.redmine.known_project_id
    return event.project_id is not None and known is not None and event.project_id != known


ANSWERS = {200: {"description": "livraison déjà reçue, ou ignorée (autre projet, autre objet)"}, 400: {}, 401: {},
           408: {}, 413: {}, 503: {}}


@router.post("/webhooks/redmine", status_code=202, responses=ANSWERS)
@router.post("/webhooks/redmine/", status_code=202, responses=ANSWERS, include_in_schema=False)
async def receive_redmine_webhook(request: Request) -> JSONResponse:
    """A delivery signed (X-Redmine-Signature-256) or carrying a token (X-Redmine-API-Key)."""
    return await _receive(request, path_token=None)


@router.post("/webhooks/redmine/{token}", status_code=202, responses=ANSWERS, include_in_schema=False)
@router.post("/webhooks/redmine/{token}/", status_code=202, responses=ANSWERS, include_in_schema=False)
async def receive_redmine_webhook_with_token(request: Request, token: str) -> JSONResponse:
    """A delivery of a sender that cannot sign, its token in the URL (never logged: the
    access log shows ``/webhooks/redmine/***``)."""
    return await _receive(request, path_token=token)


async def _receive(request: Request, path_token: str | None) -> JSONResponse:
    ctx = request.app.state.ctx
    settings = ctx.settings
    headers = request.headers
    credentials = Credentials(headers.get(SIGNATURE_HEADER), path_token, headers.get(API_KEY_HEADER))
    try:
        token = authenticated_by_token(credentials, settings)  # before the body: a sender without one costs nothing
        body = await _read_body(request, settings.webhook_max_bytes)
        authenticate(body, credentials, settings, token)
        event = parse_delivery(body, headers)
        if _another_project(event, ctx) and not await run_in_threadpool(request.app.state.tracked, event.issue_id):
            raise Ignored(f"ticket #{event.issue_id} d'un autre projet, non suivi")
    except IntakeError as exc:
        log.info("webhook refusé (%s) : %s", exc.status, exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except Ignored as exc:
        log.info("webhook ignoré : %s", exc)
        return JSONResponse({"status": "ignored", "reason": str(exc)}, status_code=200)
    except SQLAlchemyError as exc:
        return _database_down(exc)
    try:
        stored = await _intake(request.app).store(event, ctx.clock.now())
    except SQLAlchemyError as exc:
        return _database_down(exc)
    if stored.created:
        return JSONResponse({"status": "accepted", "event_id": stored.event_id}, status_code=202)
    return JSONResponse({"status": "duplicate", "event_id": stored.event_id}, status_code=200)


def _database_down(exc: SQLAlchemyError) -> JSONResponse:
    """503: the senders that retry send it again (never a 4xx for what a retry fixes)."""
    log.error("webhook non enregistré, base indisponible : %s", type(exc).__name__)
    return JSONResponse({"error": "base de données indisponible, renvoyer plus tard"}, status_code=503)
