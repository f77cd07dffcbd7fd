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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from app.clock import to_utc
from app.config import Settings
from app.context import Context
from app.inbox import service
from integrations.redmine.interface import PAGE, Issue, IssueStamp, RedmineForbidden, RedmineNotFound

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
