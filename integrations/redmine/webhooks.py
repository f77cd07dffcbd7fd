"""The webhook deliveries of the senders Redmine users run, each recognised by its body (and
headers) and read as one neutral ``Delivery`` (issue 16). Byte-for-byte examples, with the
lines of each sender's source they follow: ``tests/fixtures/webhooks/``.

- ``redmine``: Redmine's own webhooks (7.0+): ``{"type": "issue.created|updated|deleted",
  "timestamp", "data": {"issue", "journal"}}``, signed (``X-Redmine-Signature-256``) when the
  admin set a secret; never sent again.
- ``redmine_webhook``: the suer/redmine_webhook plugin (Redmine ≤ 5): ``{"payload": {"action":
  "opened|updated", "issue", "journal", "url"}}``; no signature, never sent again.
- ``webhook_plugin``: the guyinwonder168/redmine_webhook_plugin (Redmine 5.1 – 6.x):
  ``{"event_id", "event_type": "issue", "action": "created|updated|deleted", "issue",
  …}`` with ``X-Redmine-Event-ID``; no signature (optionally ``X-Redmine-API-Key``); sent
  again on 408, 429 and 5xx, given up for good on any other 4xx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_ID = 2**31 - 1  # Redmine's ids are 32-bit integers, and so are the store's columns
EVENT_ID_HEADER = "X-Redmine-Event-ID"
EVENT_HEADER = "X-Redmine-Event"  # the redmine_webhook_plugin's event; "test.test" for its admin's Test button
_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

NATIVE_ACTIONS = {"issue.created": "created", "issue.updated": "updated", "issue.deleted": "deleted"}
SUER_ACTIONS = {"opened": "created", "updated": "updated"}
PLUGIN_ACTIONS = {"created": "created", "updated": "updated", "deleted": "deleted"}


class MalformedDelivery(Exception):
    """Not a delivery of a known sender, or one whose issue cannot be read: refused for good (400)."""


class NotAboutAnIssue(Exception):
    """A well-formed delivery about something else (another object or action the service
    does not follow): acknowledged and ignored."""


@dataclass(frozen=True)
class Delivery:
    """One change of one issue, as a sender told it.

    ``action``: created | updated | deleted. ``journal_id``: the journal of this change when
    the sender gives it (None otherwise). ``project_id`` / ``project_identifier``: the
    issue's project when the body names it. ``delivery_id``: the sender's own id of the event
    (the same on each sending again), when it has one. ``updated_on``: the issue's
    ``updated_on`` in the body, when given and readable (a sender may post before Redmine has
    committed the change: the service waits until Redmine shows that version)."""

    sender: str
    action: str
    issue_id: int
    journal_id: int | None = None
    project_id: int | None = None
    project_identifier: str | None = None
    delivery_id: str | None = None
    updated_on: datetime | None = None  # the issue's, as the body gives it (UTC, to the second)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise MalformedDelivery(f"{what} : entier positif attendu (identifiant Redmine, {MAX_ID} au plus)")
    return value


def _object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedDelivery(f"{what} : objet attendu")
    return value


def _quoted(value: object) -> str:
    return repr(str(value)[:40])


def _journal_id(journal: object, what: str) -> int | None:
    if journal is None:
        return None
    journal = _object(journal, what)
    return None if journal.get("id") is None else _positive_int(journal["id"], f"{what}.id")


def _project(issue: dict) -> tuple[int | None, str | None]:
    """The project an issue's body names (id, identifier), as far as it names it."""
    project = issue.get("project")
    if not isinstance(project, dict):
        return None, None
    raw_id, identifier = project.get("id"), project.get("identifier")
    project_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 < raw_id <= MAX_ID else None
    return project_id, identifier if isinstance(identifier, str) else None


def _updated_on(issue: dict) -> datetime | None:
    """The issue's ``updated_on`` as the body gives it (ISO 8601), UTC to the second; None
    when absent or unreadable (optional: no delivery is refused for it)."""
    value = issue.get("updated_on")
    try:
        stamp = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
        return stamp.astimezone(UTC).replace(microsecond=0) if stamp is not None and stamp.tzinfo else None
    except (ValueError, OverflowError):  # not a date; or one whose UTC is out of range (year 0 or 10 000)
        return None


def read_delivery(document: object, headers: Mapping[str, str]) -> Delivery:
    """The delivery a parsed JSON body (and its headers, case-insensitive) holds.

    Raises MalformedDelivery (a sender's format not met, an id that is not a Redmine id) or
    NotAboutAnIssue (a known sender telling about something else)."""
    headers = {name.lower(): value for name, value in headers.items()}
    if headers.get(EVENT_HEADER.lower()) == "test.test":
        raise NotAboutAnIssue("livraison de test du redmine_webhook_plugin : reçue")
    if not isinstance(document, dict):
        raise MalformedDelivery("objet JSON attendu")
    if "type" in document and "data" in document:
        return _native(document)
    if "payload" in document:
        return _suer(document)
    if "event_type" in document and "action" in document:
        return _plugin(document, headers)
    raise MalformedDelivery("format inconnu : attendu {type, data} (webhook Redmine), {payload} (redmine_webhook) "
                            "ou {event_type, action} (redmine_webhook_plugin)")


def _native(document: dict) -> Delivery:
    event_type = document["type"]
    if not isinstance(event_type, str):
        raise MalformedDelivery(f"type d'événement illisible : {_quoted(event_type)}")
    if event_type not in NATIVE_ACTIONS:
        raise NotAboutAnIssue(f"type d'événement non suivi : {_quoted(event_type)}")
    data = _object(document["data"], "data")
    issue = _object(data.get("issue"), "issue")
    return Delivery("redmine", NATIVE_ACTIONS[event_type], _positive_int(issue.get("id"), "issue.id"),
                    _journal_id(data.get("journal"), "journal"), *_project(issue), updated_on=_updated_on(issue))


def _suer(document: dict) -> Delivery:
    payload = _object(document["payload"], "payload")
    action = payload.get("action")
    if not isinstance(action, str):
        raise MalformedDelivery(f"action illisible : {_quoted(action)}")
    if action not in SUER_ACTIONS:
        raise NotAboutAnIssue(f"action non suivie : {_quoted(action)}")
    issue = _object(payload.get("issue"), "issue")
    return Delivery("redmine_webhook", SUER_ACTIONS[action], _positive_int(issue.get("id"), "issue.id"),
                    _journal_id(payload.get("journal"), "journal"), *_project(issue), updated_on=_updated_on(issue))


def _plugin(document: dict, headers: Mapping[str, str]) -> Delivery:
    event_type, action = document["event_type"], document["action"]
    if not isinstance(event_type, str) or not isinstance(action, str):
        raise MalformedDelivery("event_type et action : textes attendus")
    if event_type != "issue" or action not in PLUGIN_ACTIONS:
        raise NotAboutAnIssue(f"événement non suivi : {_quoted(event_type)} {_quoted(action)}")
    issue = _object(document.get("issue"), "issue")
    delivery_id = headers.get(EVENT_ID_HEADER.lower()) or document.get("event_id")
    if delivery_id is not None and (not isinstance(delivery_id, str) or not _EVENT_ID.fullmatch(delivery_id)):
        raise MalformedDelivery(f"{EVENT_ID_HEADER} / event_id illisible : 100 caractères au plus, lettres, chiffres, "
                                "« . _ : - »")
    return Delivery("webhook_plugin", PLUGIN_ACTIONS[action], _positive_int(issue.get("id"), "issue.id"),
                    None, *_project(issue), delivery_id=delivery_id, updated_on=_updated_on(issue))
