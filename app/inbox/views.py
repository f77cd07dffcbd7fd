"""POST /webhooks/redmine: verify, parse, store durably, then answer. Nothing is stored
for a refused delivery; nothing is answered 2xx before it is committed."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.inbox import service
from app.inbox.flows import SIGNATURE_HEADER, IntakeError, parse_delivery, verify_signature

router = APIRouter()
log = logging.getLogger(__name__)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IntakeError(413, f"corps trop grand : {limit} octets au plus")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise IntakeError(413, f"corps trop grand : {limit} octets au plus")
    return bytes(body)


@router.post(
    "/webhooks/redmine",
    status_code=202,
    responses={200: {"description": "livraison déjà reçue"}, 400: {}, 401: {}, 413: {}, 503: {}},
)
async def receive_redmine_webhook(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    settings = ctx.settings
    try:
        body = await _read_body(request, settings.webhook_max_bytes)
        if settings.webhook_secret is not None:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER), settings.webhook_secret.get_secret_value())
        event = parse_delivery(body)
    except IntakeError as exc:
        log.info("webhook refusé (%s) : %s", exc.status, exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    try:
        stored = await run_in_threadpool(service.store_event, ctx.db, event, ctx.clock.now())
    except SQLAlchemyError as exc:
        log.error("webhook non enregistré, base indisponible : %s", type(exc).__name__)
        return JSONResponse({"error": "base de données indisponible, renvoyer plus tard"}, status_code=503)
    request.app.state.wake_worker()
    if stored.created:
        return JSONResponse({"status": "accepted", "event_id": stored.event_id}, status_code=202)
    return JSONResponse({"status": "duplicate", "event_id": stored.event_id}, status_code=200)
