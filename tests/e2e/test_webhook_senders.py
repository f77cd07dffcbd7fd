"""Issue 16 end to end: each sender's deliveries (tests/fixtures/webhooks/, byte for byte as its
code builds them) posted to a real `serve`, with the authentication its admin sets up, for
tickets of the real Redmine; the result is read in Redmine."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import WEBHOOK_SECRET
from tests.e2e.processes import Replica, wait_for
from tests.e2e.redmine_admin import field
from tests.e2e.test_deadlines import set_fields
from tests.e2e.test_litigation_opening import open_file
from tests.webhook_fixtures import delivery

TOKEN = "e2e-plugin-token-0123456789"
D = "2027-01-04"  # provision requested; the C-14 deadline falls on D+45 = 18/02/2027


@pytest.fixture
def served(service):
    """`serve` with webhooks only (no polling: every change must come from the sender)."""
    replica = Replica(service.env | {"RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600",
                                     "RECOUVREMENT_SYNC_SINCE": "2100-01-01T00:00:00+00:00",
                                     "RECOUVREMENT_WEBHOOK_TOKENS__PLUGIN": TOKEN,
                                     "RECOUVREMENT_NOW": "2027-01-04T09:00:00+01:00"}).wait_up()
    yield replica
    output = replica.stop()
    for secret in (TOKEN, WEBHOOK_SECRET, service.settings.redmine_api_key.get_secret_value()):
        assert secret not in output  # the token of the URL included (uvicorn's access log)


def send(replica, sender, action, issue, journal_id=None):
    """What each sender's admin sets up: Redmine's own webhooks sign with the secret,
    redmine_webhook posts to the URL with the token, the plugin sends it as X-Redmine-API-Key."""
    project = dict(project_id=issue["project"]["id"], project=issue.get("_identifier"))
    if sender == "redmine7":
        body, headers = delivery(sender, action, issue["id"], journal_id, secret=WEBHOOK_SECRET, **project)
        return httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=headers, timeout=30)
    body, headers = delivery(sender, action, issue["id"], journal_id, **project)
    if sender == "suer":
        return httpx.post(f"{replica.url}/webhooks/redmine/{TOKEN}", content=body, headers=headers, timeout=30)
    return httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=headers | {"X-Redmine-Api-Key": TOKEN},
                      timeout=30)


def pending_deadlines(service, issue_id: int) -> list[str]:
    return [line for line in service.cli("deadlines").stdout.splitlines() if f"#{issue_id} " in line]


@pytest.mark.parametrize("sender", ["redmine7", "suer", "guyinwonder168"])
def test_each_sender_s_created_updated_deleted_are_processed_once(admin, service, clerk, gestionnaire, served, sender):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    issue = admin.issue(lit["id"]) | {"_identifier": service.project}

    # created: the file is opened (C-2 … C-6), once however often it is sent
    first = send(served, sender, "created", issue)
    assert first.status_code == 202, first.text
    wait_for(lambda: admin.issue(lit["id"]).get("parent", {}).get("id") == reg["id"]
             and len(admin.children(lit["id"])) == 2, 60, f"ouverture du dossier ({sender})")

    # updated: the provision requested → C-14's deadline shown on the ticket
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    journal = admin.issue(lit["id"])["journals"][-1]["id"]
    assert send(served, sender, "updated", issue, journal).status_code == 202
    wait_for(lambda: field(admin.issue(lit["id"]), "Échéance") == "2027-02-18", 60, f"échéance C-14 ({sender})")
    assert pending_deadlines(service, lit["id"])
    notes, children = admin.notes(lit["id"]), len(admin.children(lit["id"]))

    # every delivery once more (the plugin's cron sends failed ones again): nothing new in Redmine
    for action, journal_id in (("created", None), ("updated", journal)):
        again = send(served, sender, action, issue, journal_id)
        # the plugin's deliveries made anew carry a new event id: a new event, processed as a no-op
        assert again.status_code == (202 if sender == "guyinwonder168" else 200), again.text
    wait_for(lambda: "pending" not in service.cli("events").stdout.splitlines()[0]
             and "processing" not in service.cli("events").stdout.splitlines()[0], 60, "file vidée")
    assert (admin.notes(lit["id"]), len(admin.children(lit["id"]))) == (notes, children)
    assert "failed" not in service.cli("events").stdout.splitlines()[0]

    admin._call("DELETE", f"/issues/{lit['id']}.json")
    if sender == "suer":  # it sends no deletion: the daily reconciliation finds it
        assert "POST /webhooks/redmine/*** HTTP" in served.output() and TOKEN not in served.output()
        assert pending_deadlines(service, lit["id"])
        assert "absent(s) de Redmine : 1" in service.cli("reconcile").stdout
    else:
        deleted = send(served, sender, "deleted", issue)
        assert deleted.status_code == 202, deleted.text  # was 400: a stack trace in Redmine's log, given up
    wait_for(lambda: not pending_deadlines(service, lit["id"]), 60, f"échéances annulées ({sender})")


def test_a_delivery_without_its_token_is_refused_and_another_project_s_ignored(admin, service, clerk, gestionnaire,
                                                                                served):
    _, _, lit = open_file(admin, service, clerk, gestionnaire)
    issue = admin.issue(lit["id"])
    body, headers = delivery("guyinwonder168", "created", lit["id"])
    assert httpx.post(f"{served.url}/webhooks/redmine", content=body, headers=headers).status_code == 401
    wrong = httpx.post(f"{served.url}/webhooks/redmine/not-the-token-0123456789", content=body, headers=headers)
    assert wrong.status_code == 401
    for mistyped in (f"/webhooks//redmine/{TOKEN}", f"/webhooks/redmine?token={TOKEN}"):  # never logged either
        assert httpx.post(f"{served.url}{mistyped}", content=body, headers=headers).status_code in (401, 404)
    body, headers = delivery("suer", "updated", lit["id"], 1, project="un-autre-projet")
    ignored = httpx.post(f"{served.url}/webhooks/redmine/{TOKEN}", content=body, headers=headers)
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
    assert "aucun événement" in service.cli("events").stdout
    assert issue["project"]["id"]  # the ticket itself was never touched
    assert "parent" not in admin.issue(lit["id"])
