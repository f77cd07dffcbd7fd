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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from app.clock import to_utc
from app.config import Settings
from app.context import Context
from app.inbox import service
from app.inbox.models import ParsedEvent
from integrations.redmine.interface import PAGE, Issue, IssueStamp, RedmineForbidden, RedmineNotFound
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


def authenticate(body: bytes, credentials: Credentials, settings: Settings, token: str | None) -> None:
    """After the body is read: a delivery no token authenticated (``token``, the name
    ``authenticated_by_token`` gave) must carry the body's signature, when a secret is set.
    Raises IntakeError 401."""
    if token is None and settings.webhook_secret is not None:
        verify_signature(body, credentials.signature, settings.webhook_secret.get_secret_value())


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
                       project_identifier=delivery.project_identifier, changed_at=delivery.updated_on)


def dedup_key(event_type: str, issue_id: int, journal_id: int | None, body: bytes | None = None) -> str:
    """Type + issue + journal (Redmine's own webhooks carry no delivery id); an issue is
    created once; the body's hash for an update without journal, and for a deletion (Redmine
    never sends one twice; a deletion told before the real one must not hide it)."""
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


# A polled version whose second ended this long ago by the service's clock is settled: no
# change can carry its updated_on any more. Redmine and the service run on NTP-synchronised
# hosts (clocks within a second of each other), and a change Redmine stamps is committed in
# the same request, well within the minute a request is given (the service's own: 60 s,
# README "What the guarantees assume"). With polling every minute, a version is read again
# about once.
SETTLED_AFTER = timedelta(seconds=60)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class PollReport:
    changed: int  # issues Redmine listed as changed since the cursor's second
    read: int  # issues read: a new version listed, or an unsettled version read again
    queued: int  # events stored (a key already stored is not counted)


def poll_once(ctx: Context) -> PollReport:
    """Read the issues changed since the cursor and queue an event for each new change;
    no change is lost to a page that shifts or to a second shared by two changes (issue 16).

    What Redmine 5.0's list does (verified on the real one): ``updated_on`` is shown to the
    second but stored and sorted to the microsecond (SQLite, PostgreSQL), so one second's
    issues are not in id order; ``updated_on>=T`` means "after T − 1 s" (``date_clause``);
    an offset is no position: a change made between two pages moves its issue to the end
    and the next page starts one issue late. No offset is ever used:

    1. One request lists the newest PAGE issues changed since the cursor's second (S),
       newest first. Fewer than PAGE: that is all of S. Its newest second M is a time
       Redmine's clock had reached before anything else of this poll was listed or read.
    2. Otherwise S is listed again in id order, each page from the last id of the one before
       (``issue_id>=``). A change gives its issue an ``updated_on`` of now, which keeps it
       in S (or enters it), and never changes its id: no issue moves from one page to
       another, so every issue in S when this listing started is listed, at that version or
       a later one; one changed since carries an ``updated_on`` after M.
    3. A listed issue whose ``updated_on`` differs from the version stored (``polled_issues``),
       or whose stored version is not settled, is read (``get_issue``) and its event stored
       with the version read, in one transaction.
    4. The cursor then moves to M: every change before M − 1 s is recorded (the next poll
       lists S from M's second, with Redmine's ``>=`` from M − 1 s).

    Two changes in one second: a version read at second T is *settled* when Redmine had
    shown a later second before the read (its clock was past T: no change can be stamped T
    any more), or once the service's clock is SETTLED_AFTER past the end of T. A version
    not settled is read again at the next poll, listed or not (a ticket deleted or out of
    reach meanwhile is settled as it is): a different latest journal is a new event
    (``event_from_issue``'s key), then settled by the same rule. Both rules, and step 4,
    take a change to be visible in the list before one stamped a second later (Redmine
    commits a change as it stamps it).

    Raises RedmineError when Redmine fails: the cursor stays, the next poll lists the same
    changes again and does not read again the versions already recorded."""
    project = ctx.settings.project
    since = service.poll_cursor(ctx.db, project) or ctx.settings.sync_since
    since = to_utc(since) if since else None  # a naive RECOUVREMENT_SYNC_SINCE is UTC, as everywhere
    newest = ctx.redmine.newest_changed(since)
    poll = _Poll(ctx, newest[0].updated_on if newest else None)
    if len(newest) < PAGE:
        poll.take(newest[::-1])
    else:
        page = ctx.redmine.changed_page(since)
        poll.take(page)
        while len(page) == PAGE:
            page = ctx.redmine.changed_page(since, after_id=page[-1].id)
            poll.take(page)
    poll.read_unsettled()
    if newest:
        service.advance_cursor(ctx.db, project, newest[0].updated_on)
    return PollReport(changed=len(poll.listed), read=poll.read, queued=poll.queued)


class _Poll:
    """One poll's reading: the latest second Redmine has shown (``shown``, UTC, None before
    any), the issues listed, how many were read and queued."""

    def __init__(self, ctx: Context, shown: datetime | None):
        self.ctx = ctx
        self.shown = shown
        self.listed: set[int] = set()
        self.read = self.queued = 0

    def take(self, stamps: list[IssueStamp]) -> None:
        """Read and record the listed issues whose version is new or not settled."""
        self._show(s.updated_on for s in stamps)
        self.listed.update(s.id for s in stamps)
        known = service.polled_versions(self.ctx.db, [s.id for s in stamps])
        for stamp in stamps:
            version = known.get(stamp.id)
            if version is None or version.updated_on != stamp.updated_on or not version.settled:
                self._record(self.ctx.redmine.get_issue(stamp.id))

    def read_unsettled(self) -> None:
        """Read again the unsettled versions of issues this poll did not list; one Redmine
        no longer shows (404, 403) is settled as it is."""
        for issue_id in service.unsettled_issues(self.ctx.db):
            if issue_id in self.listed:
                continue
            try:
                issue = self.ctx.redmine.get_issue(issue_id)
            except (RedmineNotFound, RedmineForbidden):
                service.settle(self.ctx.db, issue_id)
                continue
            self._record(issue)

    def _record(self, issue: Issue) -> None:
        now = self.ctx.clock.now()
        settled = (self.shown is not None and self.shown > issue.updated_on) or (
            now - (issue.updated_on + _SECOND) > SETTLED_AFTER)
        self._show([issue.updated_on])
        self.read += 1
        self.queued += service.record_polled(self.ctx.db, event_from_issue(issue), issue.updated_on, settled, now)

    def _show(self, seconds: Iterable[datetime]) -> None:
        """Redmine has shown these ``updated_on``: its clock has reached them."""
        for second in seconds:
            if self.shown is None or second > self.shown:
                self.shown = second
