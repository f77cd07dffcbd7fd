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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from itertools import accumulate

from app.clock import to_utc
from app.config import Settings
from app.context import Context
from app.inbox import service
from integrations.redmine.interface import Issue
from integrations.redmine.webhooks import MalformedDelivery, NotAboutAnIssue, read_delivery

SIGNATURE_HEADER = "X-Redmine-Signature-256"
API_KEY_HEADER = "X-Redmine-API-Key"  # where the redmine_webhook_plugin sends the key its admin typed
EVENT_TYPES = {"created": "issue.created", "updated": "issue.updated", "deleted": "issue.deleted"}


class IntakeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Ignored(Exception):
    """A delivery acknowledged (2xx) and not stored: about something the service does not
    follow, or about an issue of another project that it does not track."""


@dataclass(frozen=True)
class ParsedEvent:
    dedup_key: str
    source: str  # the sender (redmine, redmine_webhook, webhook_plugin), poll or internal
    event_type: str
    issue_id: int
    journal_id: int | None
    # The issue's project as a delivery names it (never stored): another project's is ignored.
    project_id: int | None = None
    project_identifier: str | None = None


NO_SECRET = ("aucune authentification de webhook : définir RECOUVREMENT_WEBHOOK_SECRET (le secret des webhooks "
             "de Redmine) ou RECOUVREMENT_WEBHOOK_TOKENS__<NOM> (un jeton par expéditeur qui ne signe pas), ou "
             "RECOUVREMENT_WEBHOOK_UNAUTHENTICATED=true pour accepter des livraisons non authentifiées")
UNAUTHENTICATED = ("webhooks non authentifiés (RECOUVREMENT_WEBHOOK_UNAUTHENTICATED=true) : quiconque joint "
                   "le service peut y déposer des événements")
# A token travels in a URL path: letters, digits and "-._~" only (RFC 3986 unreserved), long
# enough not to be guessed.
TOKEN_MIN_LENGTH = 16
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{%d,200}" % TOKEN_MIN_LENGTH)
_SIGNATURE = re.compile(r"\s*sha256=[0-9a-fA-F]{64}\s*")


@dataclass(frozen=True)
class Credentials:
    """What a delivery presents: the HMAC signature header, the token of its URL path, the
    X-Redmine-API-Key header."""

    signature: str | None = None
    path_token: str | None = None
    api_key: str | None = None


def token_problems(settings: Settings) -> list[str]:
    """The configured tokens that can never be accepted, one French line each naming the
    token (never its value): `serve` refuses to start with any."""
    return [f"jeton de webhook « {name} » inutilisable : {TOKEN_MIN_LENGTH} à 200 caractères, lettres, chiffres "
            "et « - . _ ~ » seulement" for name, token in sorted(settings.webhook_tokens.items())
            if not _TOKEN.fullmatch(token.get_secret_value())]


def _tokens(settings: Settings) -> dict[str, bytes]:
    return {name: token.get_secret_value().encode() for name, token in settings.webhook_tokens.items()
            if _TOKEN.fullmatch(token.get_secret_value())}


def authentication_set(settings: Settings) -> bool:
    """A webhook secret or a usable token is set: every delivery must then present one."""
    return settings.webhook_secret is not None or bool(_tokens(settings))


def authentication_chosen(settings: Settings) -> bool:
    """Authentication set, or the unauthenticated mode explicitly chosen: `serve` refuses to
    start otherwise (an empty secret used to turn authentication off)."""
    return authentication_set(settings) or settings.webhook_unauthenticated


def authenticated_by_token(credentials: Credentials, settings: Settings) -> str | None:
    """Before the body is read. The name of the configured token the delivery presents (URL
    path or X-Redmine-API-Key), compared with every token in constant time; None when the
    signature is left to check on the body (``authenticate``), or nothing is required (the
    unauthenticated mode, with neither secret nor token set).

    Raises IntakeError 401: nothing valid presented (a wrong token and no signature to check
    instead, a malformed signature, nothing at all), or no authentication set."""
    tokens = _tokens(settings)
    secret = settings.webhook_secret
    if not authentication_set(settings):
        if settings.webhook_unauthenticated:
            return None
        raise IntakeError(401, "livraison refusée : aucune authentification configurée (RECOUVREMENT_WEBHOOK_SECRET "
                               "ou RECOUVREMENT_WEBHOOK_TOKENS__<NOM>)")
    for presented in (credentials.path_token, credentials.api_key):
        if presented:
            matches = [name for name, token in tokens.items() if hmac.compare_digest(presented.encode(), token)]
            if matches:
                return matches[0]
    if credentials.signature and secret is not None:
        if not _SIGNATURE.fullmatch(credentials.signature):
            raise IntakeError(401, "signature invalide")
        return None
    if credentials.path_token or credentials.api_key:
        raise IntakeError(401, "jeton invalide")
    raise IntakeError(401, f"authentification absente : en-tête {SIGNATURE_HEADER}, ou jeton dans l'URL "
                           f"(/webhooks/redmine/<jeton>) ou dans l'en-tête {API_KEY_HEADER}")


def authenticate(body: bytes, credentials: Credentials, settings: Settings) -> str:
    """Checks a delivery's credentials (``authenticated_by_token``, then the signature of
    the body). Returns how it was authenticated: ``signature``, ``jeton <name>`` or
    ``sans authentification``. Raises IntakeError 401."""
    name = authenticated_by_token(credentials, settings)
    if name is not None:
        return f"jeton {name}"
    if settings.webhook_secret is None:
        return "sans authentification"
    verify_signature(body, credentials.signature, settings.webhook_secret.get_secret_value())
    return "signature"


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """``X-Redmine-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, compared in constant time."""
    if not header:
        raise IntakeError(401, f"signature absente : en-tête {SIGNATURE_HEADER} attendu")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise IntakeError(401, "signature invalide")


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


def parse_delivery(body: bytes, headers: Mapping[str, str] | None = None) -> ParsedEvent:
    """A webhook body (and its headers) of any sender Redmine users run, as an inbox event.

    Raises IntakeError 400: not UTF-8 (RFC 8259), beyond the parser's limits, not JSON, not
    a known sender's delivery; Ignored: a sender's delivery about something else."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, f"JSON invalide : {exc}") from None
    _check_limits(body)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntakeError(400, f"JSON invalide : {exc}") from None
    try:
        delivery = read_delivery(document, headers if headers is not None else {})
    except MalformedDelivery as exc:
        raise IntakeError(400, str(exc)) from None
    except NotAboutAnIssue as exc:
        raise Ignored(str(exc)) from None
    event_type = EVENT_TYPES[delivery.action]
    key = (f"{delivery.sender}:{delivery.delivery_id}" if delivery.delivery_id
           else dedup_key(event_type, delivery.issue_id, delivery.journal_id, body))
    return ParsedEvent(dedup_key=key, source=delivery.sender, event_type=event_type, issue_id=delivery.issue_id,
                       journal_id=delivery.journal_id, project_id=delivery.project_id,
                       project_identifier=delivery.project_identifier)


def dedup_key(event_type: str, issue_id: int, journal_id: int | None, body: bytes | None = None) -> str:
    """Type + issue + journal (Redmine's own webhooks carry no delivery id); an issue is
    created and deleted once; the body's hash for an update without journal."""
    if journal_id is not None:
        return f"{event_type}:{issue_id}:{journal_id}"
    if event_type in ("issue.created", "issue.deleted") or body is None:
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
