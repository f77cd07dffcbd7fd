"""How Redmine events enter the inbox: webhook deliveries (verified, parsed) and polling.

Both paths produce the same event for the same change (same dedup key), so a change
seen by both is processed once. The event is only a hint "issue N changed": processing
re-reads the issue from Redmine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from itertools import accumulate

from app.clock import to_utc
from app.config import Settings
from app.context import Context
from app.inbox import service
from integrations.redmine.interface import Issue

SIGNATURE_HEADER = "X-Redmine-Signature-256"
NATIVE_TYPES = {"issue.created", "issue.updated"}
PLUGIN_ACTIONS = {"opened": "issue.created", "updated": "issue.updated"}


class IntakeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ParsedEvent:
    dedup_key: str
    source: str
    event_type: str
    issue_id: int
    journal_id: int | None


NO_SECRET = ("aucun secret de webhook : définir RECOUVREMENT_WEBHOOK_SECRET (le secret du webhook de Redmine), "
             "ou RECOUVREMENT_WEBHOOK_UNAUTHENTICATED=true pour accepter des livraisons non signées")
UNAUTHENTICATED = ("webhooks non authentifiés (RECOUVREMENT_WEBHOOK_UNAUTHENTICATED=true) : quiconque joint "
                   "le service peut y déposer des événements")


def authentication_chosen(settings: Settings) -> bool:
    """A webhook secret is set, or the unauthenticated mode is explicitly chosen: `serve`
    refuses to start otherwise (an empty secret used to turn authentication off)."""
    return settings.webhook_secret is not None or settings.webhook_unauthenticated


def authenticate(body: bytes, header: str | None, settings: Settings) -> None:
    """Checks a delivery's signature against the webhook secret; lets any delivery through
    in the unauthenticated mode only. Raises IntakeError 401: signature missing or wrong,
    or no secret set (a service started without one refuses everything)."""
    if settings.webhook_secret is not None:
        verify_signature(body, header, settings.webhook_secret.get_secret_value())
    elif not settings.webhook_unauthenticated:
        raise IntakeError(401, "livraison refusée : aucun secret configuré (RECOUVREMENT_WEBHOOK_SECRET)")


_SIGNATURE = re.compile(r"\s*sha256=[0-9a-fA-F]{64}\s*")


def check_signature_header(header: str | None, settings: Settings) -> None:
    """Before the body is read: with a secret set, a delivery without a well-formed
    ``sha256=<64 hex>`` signature is refused at once (IntakeError 401), so that an
    unauthenticated sender makes the service hold nothing in memory."""
    if settings.webhook_secret is None:
        return
    if not header:
        raise IntakeError(401, f"signature absente : en-tête {SIGNATURE_HEADER} attendu")
    if not _SIGNATURE.fullmatch(header):
        raise IntakeError(401, "signature invalide")


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """``X-Redmine-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, compared in constant time."""
    if not header:
        raise IntakeError(401, f"signature absente : en-tête {SIGNATURE_HEADER} attendu")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise IntakeError(401, "signature invalide")


MAX_ID = 2**31 - 1  # Redmine's ids are 32-bit integers, and so are the store's columns


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise IntakeError(400, f"{what} : entier positif attendu (identifiant Redmine, {MAX_ID} au plus)")
    return value


def _journal_id(journal: object) -> int | None:
    if journal is None:
        return None
    if not isinstance(journal, dict):
        raise IntakeError(400, "journal : objet attendu")
    if journal.get("id") is None:
        return None
    return _positive_int(journal.get("id"), "journal.id")


# What the standard JSON parser cannot take safely, refused before it runs: nesting past
# the interpreter's recursion limit (~1 000) raises RecursionError, an integer of more than
# 4 300 digits ValueError. Redmine's deliveries nest 6 levels (data.issue.custom_fields[].
# value[]) and its numbers are 10-digit ids or short decimals.
MAX_DEPTH = 32
MAX_DIGITS = 40
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)  # a JSON string (or its unclosed end)
_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % (MAX_DIGITS + 1))
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_LEVELS = bytes.maketrans(b"[{]}", b"\2\2\0\0")  # an opening bracket 2, a closing one 0: the level moves by v - 1


def _check_limits(body: bytes) -> None:
    """Raises IntakeError 400 when ``body`` nests deeper than MAX_DEPTH or writes a number
    with more than MAX_DIGITS digits in a row; brackets and digits inside strings are text.
    Linear in the body's size (UTF-8: no byte of a multi-byte character is ASCII)."""
    bare = _STRING.sub(b'""', body)
    if _LONG_NUMBER.search(bare):
        raise IntakeError(400, f"nombre trop long : {MAX_DIGITS} chiffres de suite au plus")
    levels = bare.translate(_LEVELS, _NOT_BRACKETS)
    if max(accumulate(levels, lambda level, v: level + v - 1, initial=0)) > MAX_DEPTH:
        raise IntakeError(400, f"JSON trop imbriqué : {MAX_DEPTH} niveaux au plus")


def parse_delivery(body: bytes) -> ParsedEvent:
    """A webhook body, native (Redmine ≥ 7) or plugin format, as an inbox event.

    Raises IntakeError 400: not UTF-8 (RFC 8259), beyond the parser's limits, not JSON, not
    a Redmine issue event."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, f"JSON invalide : {exc}") from None
    _check_limits(body)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntakeError(400, f"JSON invalide : {exc}") from None
    if not isinstance(document, dict):
        raise IntakeError(400, "objet JSON attendu")

    if "type" in document and "data" in document:  # native
        event_type = document["type"]
        if not isinstance(event_type, str) or event_type not in NATIVE_TYPES:
            raise IntakeError(400, f"type d'événement non pris en charge : {str(event_type)[:40]!r}")
        data = document["data"]
        if not isinstance(data, dict):
            raise IntakeError(400, "data : objet attendu")
        issue, journal = data.get("issue"), data.get("journal")
    elif "payload" in document:  # redmine_webhook plugin
        payload = document["payload"]
        if not isinstance(payload, dict):
            raise IntakeError(400, "payload : objet attendu")
        action = payload.get("action")
        if not isinstance(action, str) or action not in PLUGIN_ACTIONS:
            raise IntakeError(400, f"action non prise en charge : {str(action)[:40]!r}")
        event_type = PLUGIN_ACTIONS[action]
        issue, journal = payload.get("issue"), payload.get("journal")
    else:
        raise IntakeError(400, "format inconnu : attendu {type, data} (webhook Redmine) ou {payload} (plugin)")

    if not isinstance(issue, dict):
        raise IntakeError(400, "issue : objet attendu")
    issue_id = _positive_int(issue.get("id"), "issue.id")
    journal_id = _journal_id(journal)
    return ParsedEvent(
        dedup_key=dedup_key(event_type, issue_id, journal_id, body),
        source="webhook",
        event_type=event_type,
        issue_id=issue_id,
        journal_id=journal_id,
    )


def dedup_key(event_type: str, issue_id: int, journal_id: int | None, body: bytes | None = None) -> str:
    """Redmine sends no delivery id: type + issue + journal; the body's hash when an update has no journal."""
    if journal_id is not None:
        return f"{event_type}:{issue_id}:{journal_id}"
    if event_type == "issue.created" or body is None:
        return f"{event_type}:{issue_id}:-"
    return f"{event_type}:{issue_id}:body-{hashlib.sha256(body).hexdigest()[:32]}"


def event_from_issue(issue: Issue) -> ParsedEvent:
    """The event polling derives from an issue as Redmine returns it: the same key as the
    webhook Redmine would have sent for its latest change."""
    journal_id = issue.last_journal_id
    event_type = "issue.created" if journal_id is None else "issue.updated"
    return ParsedEvent(dedup_key(event_type, issue.id, journal_id), "poll", event_type, issue.id, journal_id)


def purge_events(ctx: Context) -> int:
    """Delete the events done or dismissed more than ``retention.events_days`` ago; failed
    ones stay until retried or dismissed. Returns how many were deleted."""
    return service.purge(ctx.db, ctx.clock.now() - timedelta(days=ctx.settings.retention.events_days))


@dataclass(frozen=True)
class PollReport:
    changed: int
    read: int
    queued: int


def poll_once(ctx: Context) -> PollReport:
    """Read the issues updated since the cursor and queue an event for each new change.
    The cursor moves after each issue, so a crash mid-poll resumes where it stopped."""
    project = ctx.settings.project
    since = service.poll_cursor(ctx.db, project) or ctx.settings.sync_since
    since = to_utc(since) if since else None  # a naive RECOUVREMENT_SYNC_SINCE is UTC, as everywhere
    stamps = ctx.redmine.changed_since(since)
    seen = service.polled_versions(ctx.db, [s.id for s in stamps])
    read = queued = 0
    for stamp in stamps:
        if seen.get(stamp.id) != stamp.updated_on:
            issue = ctx.redmine.get_issue(stamp.id)
            read += 1
            queued += service.record_polled(ctx.db, event_from_issue(issue), issue.updated_on, ctx.clock.now())
        service.advance_cursor(ctx.db, project, stamp.updated_on)
    return PollReport(changed=len(stamps), read=read, queued=queued)
