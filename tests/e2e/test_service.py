"""The running service and the Redmine admin's tools, against the real local Redmine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import WEBHOOK_SECRET
from tests.e2e.processes import Replica, wait_for
from tests.e2e.redmine_admin import ROOT, rails_runner, sign, signed_delivery
from tests.e2e.test_litigation_opening import assert_opened, open_file


@pytest.fixture
def served(service):
    # Webhooks only: the poll at start may run after the test's tickets exist (the other
    # start-up jobs compete with it), so it is pointed past them.
    replica = Replica(service.env | {"RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600",
                                     "RECOUVREMENT_SYNC_SINCE": "2100-01-01T00:00:00+00:00",
                                     "RECOUVREMENT_WEBHOOK_MAX_BYTES": "20000"}).wait_up()
    yield replica.url
    output = replica.stop()
    assert service.settings.redmine_api_key.get_secret_value() not in output
    assert WEBHOOK_SECRET not in output


def test_serve_refuses_bad_deliveries_and_processes_a_good_one(admin, service, clerk, gestionnaire, served):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    issue = admin.issue(lit["id"])
    body, headers = signed_delivery(issue, "issue.created", WEBHOOK_SECRET)

    ready = httpx.get(f"{served}/ready", timeout=30)
    assert ready.status_code == 200, ready.text

    wrong = httpx.post(f"{served}/webhooks/redmine", content=body,
                       headers=headers | {"X-Redmine-Signature-256": "sha256=" + "0" * 64})
    assert wrong.status_code == 401
    unsigned = httpx.post(f"{served}/webhooks/redmine", content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    for bad in (b'{"type": "issue.created", "data": ', b'[1, 2]', json.dumps({"hello": "world"}).encode(),
                json.dumps({"type": "issue.created", "data": {"issue": {"id": "7"}}}).encode()):
        response = httpx.post(f"{served}/webhooks/redmine", content=bad, headers=sign(bad, WEBHOOK_SECRET))
        assert response.status_code == 400, bad
        assert response.json()["error"]
    huge = json.dumps({"type": "issue.created", "data": {"issue": {"id": 1, "x": "a" * 30000}}}).encode()
    assert httpx.post(f"{served}/webhooks/redmine", content=huge, headers=sign(huge, WEBHOOK_SECRET)).status_code == 413

    events = service.cli("events").stdout
    assert "aucun événement" in events  # nothing stored for a refused delivery

    accepted = httpx.post(f"{served}/webhooks/redmine", content=body, headers=headers)
    assert accepted.status_code == 202

    wait_for(lambda: "parent" in admin.issue(lit["id"]) and len(admin.children(lit["id"])) == 2
             and any("Ouverture du contentieux" in n for n in admin.notes(lit["id"])), 60,
             "traitement du webhook par le service")  # the analysis note is written after the children
    assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer", cost="900,00", funds=900)
    def done_listing():
        listing = service.cli("events").stdout
        return listing if "done=1" in listing else None

    assert "redmine" in wait_for(done_listing, 30, "événement marqué traité")


WEBHOOKS_ONLY = {"RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600",
                 "RECOUVREMENT_SYNC_SINCE": "2100-01-01T00:00:00+00:00"}


def test_serve_answers_400_to_json_the_parser_cannot_take(service):
    """Issue 14: a body nested 20 000 deep and an integer of 5 000 digits were 500s (uvicorn, not only TestClient)."""
    replica = Replica(service.env | WEBHOOKS_ONLY).wait_up()  # the default body limit, 1 MiB
    try:
        deep = b'{"type": "issue.created", "data": {"issue": {"id": 1, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}}"
        long = b'{"type": "issue.created", "data": {"issue": {"id": ' + b"7" * 5_000 + b"}}}"
        for body, says in ((deep, "JSON trop imbriqué"), (long, "nombre trop long")):
            response = httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=sign(body, WEBHOOK_SECRET),
                                  timeout=30)
            assert response.status_code == 400 and says in response.json()["error"], response.text
        assert httpx.get(f"{replica.url}/health", timeout=10).status_code == 200
    finally:
        output = replica.stop()
    assert "Traceback" not in output
    assert "aucun événement" in service.cli("events").stdout


def test_serve_refuses_to_start_without_a_secret_unless_unauthenticated_is_chosen(service):
    """Issue 14: an empty secret silently turned authentication off."""
    refused = Replica(service.env | WEBHOOKS_ONLY | {"RECOUVREMENT_WEBHOOK_SECRET": " "})
    try:
        exit_code = refused.process.wait(timeout=60)
    finally:
        output = refused.stop()
    assert exit_code == 2 and "erreur : aucune authentification de webhook" in output and "Traceback" not in output

    chosen = Replica(service.env | WEBHOOKS_ONLY | {"RECOUVREMENT_WEBHOOK_SECRET": "",
                                                    "RECOUVREMENT_WEBHOOK_UNAUTHENTICATED": "true"}).wait_up()
    try:
        body = json.dumps({"type": "issue.created", "data": {"issue": {"id": 2**31 - 1}}}).encode()  # no such issue
        assert httpx.post(f"{chosen.url}/webhooks/redmine", content=body, timeout=30).status_code == 202
    finally:
        output = chosen.stop()
    assert "webhooks non authentifiés" in output


def test_redmine_check_says_precisely_what_is_missing(service):
    ok = service.cli("redmine", "check")
    assert "Redmine conforme" in ok.stdout

    service.env = service.env | {"RECOUVREMENT_TRACKERS__EXECUTION": "Exécution forcée",
                                 "RECOUVREMENT_FIELDS__DEBTORS": "Codébiteurs"}
    missing = service.cli("redmine", "check", check=False)
    assert missing.returncode == 2
    assert "tracker manquant : Exécution forcée" in missing.stdout
    assert "champ personnalisé manquant : Codébiteurs" in missing.stdout


def provision(tmp_path) -> str:
    """provision.rb on the local Redmine with the default spec (what scripts/redmine-local.sh
    does): its output."""
    spec = subprocess.run([sys.executable, "-m", "app.cli", "redmine", "spec"], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={k: v for k, v in os.environ.items()
                                                      if not k.startswith("RECOUVREMENT_")}).stdout
    spec_file = tmp_path / "schema.json"
    spec_file.write_text(spec)
    return rails_runner(str(ROOT / "integrations" / "redmine" / "provision.rb"), str(spec_file))


def test_provisioning_twice_changes_nothing(redmine_env, tmp_path):
    provision(tmp_path)
    output = provision(tmp_path)
    assert "changements : 0" in output
    assert f"SERVICE_API_KEY={redmine_env['REDMINE_SERVICE_KEY']}" in output


def test_the_service_role_has_exactly_the_permissions_the_service_uses(service, tmp_path):
    """Least privilege (issue 14): an extra permission on the service's role (shared by the
    local Redmine: restored by provisioning at the end) is reported by `redmine check` and
    removed by provisioning; `view_private_notes` is not among those the service needs."""
    role = "Automate recouvrement"
    try:
        provision(tmp_path)
        assert "Redmine conforme" in service.cli("redmine", "check").stdout
        rails_runner(f"r = Role.find_by!(name: '{role}'); r.add_permission!(:view_private_notes, :delete_issues)")
        extra = service.cli("redmine", "check", check=False)
        assert extra.returncode == 2
        assert [line for line in extra.stdout.splitlines() if "en trop" in line] == [
            f"permission en trop au rôle « {role} » : delete_issues (inutile au service : à retirer)",
            f"permission en trop au rôle « {role} » : view_private_notes (inutile au service : à retirer)"]
        assert "trop large" in extra.stderr

        output = provision(tmp_path)
        assert f"+ rôle {role} (permissions retirées : view_private_notes, delete_issues)" in output
        assert "changements : 0" in provision(tmp_path)
        assert "Redmine conforme" in service.cli("redmine", "check").stdout
    finally:
        provision(tmp_path)  # the role as the service needs it, whatever happened


def test_redmine_check_reports_roles_the_service_account_holds_beyond_its_own(admin, service):
    """Found by the red team: the service's membership given another role too (here in the
    test's own project) left `redmine check` saying "conforme" while the key could delete
    tickets."""
    roles = admin.ids("/roles.json", "roles")
    other = next(name for name in roles if name not in ("Automate recouvrement", "Équipe recouvrement"))
    memberships = admin._call("GET", f"/projects/{service.project}/memberships.json")["memberships"]
    [mine] = [m for m in memberships if m.get("user", {}).get("name") == "Automate Recouvrement"]
    assert "Redmine conforme" in service.cli("redmine", "check").stdout
    admin._call("PUT", f"/memberships/{mine['id']}.json",
                json={"membership": {"role_ids": [roles["Automate recouvrement"], roles[other]]}})
    result = service.cli("redmine", "check", check=False)
    assert result.returncode == 2 and "compte du service trop puissant" in result.stderr
    assert (f"droits en trop : le compte du service a aussi le rôle « {other} » dans le projet {service.project}"
            in result.stdout)


def test_names_from_tickets_render_as_typed_in_redmine(tmp_path):
    """A party named with Textile or Redmine markup shows as typed: no bold, link or issue link."""
    from decimal import Decimal

    from app.litigation.case import Party, PartyRole
    from app.templates import render

    tricky = 'Jean *Dupont* "site":http://evil.example #3 @x@ -del- Jean-Pierre M-1'
    text = render("litigation_opening_analysis", act="commandement de payer", in_premises=True,
                  parties=[Party(tricky, PartyRole.tenant)], cost_per_act=Decimal(300),
                  estimated_cost=Decimal(300), debt=None, funds_needed=False, funds_request_id=None, owner_task_id=4,
                  register_id=1, unassigned_register_group=None)
    source = tmp_path / "note.textile"
    source.write_text(text)
    # The file as an argument: the runner copies it where a 6.x Redmine, in its root, sees it.
    html = rails_runner('print Redmine::WikiFormatting.to_html("textile", File.read(ARGV[0]))', str(source))

    import html as html_lib

    item = next(line for line in html.splitlines() if "Dupont" in line)
    assert html_lib.unescape(item).count(tricky) == 1  # shown exactly as typed
    assert "<a " not in item and "<strong>" not in item and "<code>" not in item and "<del>" not in item
