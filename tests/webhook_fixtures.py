"""The webhook deliveries of each sender, byte for byte as its code builds them
(``tests/fixtures/webhooks/``, README there), for a given issue and journal."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"
SENDERS = {"redmine7": ("created", "updated", "deleted"), "suer": ("created", "updated"),
           "guyinwonder168": ("created", "updated", "deleted")}
FIXTURE_ISSUE, FIXTURE_JOURNAL = "4242", "9001"
_TRANSPORT = {"host", "content-length", "accept-encoding"}  # the HTTP client's own


def delivery(sender: str, action: str, issue_id: int, journal_id: int | None = None, *, project_id: int | None = None,
             project: str | None = None, secret: str | None = None, full: bool = False,
             updated_on: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers ``sender`` sends for ``action`` on ``issue_id`` (and its journal),
    in the given project (id, identifier), the issue's ``updated_on`` set (ISO 8601); signed with ``secret`` (Redmine's own webhooks). A plugin's event id
    is new on each call (a new event), as the plugin makes one per change."""
    name = f"{action}.full.json" if full else f"{action}.json"
    body = (FIXTURES / sender / name).read_text(encoding="utf-8")
    body = body.replace(FIXTURE_ISSUE, str(issue_id)).replace(FIXTURE_JOURNAL, str(journal_id or 1))
    if project_id is not None:
        body = re.sub(r'"project":\{"id":1,', f'"project":{{"id":{project_id},', body)
    if updated_on is not None:
        body = re.sub(r'"updated_on":"[^"]*"', f'"updated_on":"{updated_on}"', body)
    if project is not None:
        body = body.replace('"identifier":"gestion"', json.dumps({"identifier": project})[1:-1].replace(": ", ":"))
    event_id = str(uuid.uuid4())
    body = re.sub(r'"event_id":"[0-9a-f-]+"', f'"event_id":"{event_id}"', body)
    headers = {k: v for k, v in json.loads((FIXTURES / sender / "headers.json").read_text()).items()
               if k.lower() not in _TRANSPORT}
    for header in list(headers):
        if header.lower() == "x-redmine-event-id":
            headers[header] = event_id
        elif header.lower() == "x-redmine-event":
            headers[header] = f"issue.{action}"
        elif header.lower() == "x-redmine-api-key":
            del headers[header]  # sent only when the admin chose a webhook user: the test says which key
        elif header.lower() == "x-redmine-signature-256":
            del headers[header]
    raw = body.encode()
    if secret is not None:
        headers["X-Redmine-Signature-256"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, headers
