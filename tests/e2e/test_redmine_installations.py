"""Issue 15 end to end: the real local Redmine configured as offices configure theirs —
a field visible to the staff's role only, the service's account locked, a gestionnaire
locked, group assignment switched off, a closed or missing register, tickets moved to
another project or tracker, a private project's ticket. Each case is set through the admin
API or `rails runner` (tests/e2e/redmine_admin.py), and global settings are put back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.inbox import service as inbox
from app.inbox.models import EventState
from app.main import create_app
from app.processing.flows import work
from tests.e2e.conftest import WEBHOOK_SECRET, Service
from tests.e2e.redmine_admin import field, field_visible_only_to, set_group_assignment
from tests.e2e.test_deadlines import D, D45, mandate_losses, opened, set_fields
from tests.e2e.test_litigation_opening import open_file, post_webhook

FUNDS = "Date de réception des fonds"
STAFF_ROLE = "Équipe recouvrement"


def attachments(admin, issue_id) -> list[str]:
    issue = admin._call("GET", f"/issues/{issue_id}.json", params={"include": "attachments"})["issue"]
    return [a["filename"] for a in issue["attachments"]]


def member(admin, project: str, person, role: str) -> None:
    role_id = admin.ids("/roles.json", "roles")[role]
    admin._call("POST", f"/projects/{project}/memberships.json",
                json={"membership": {"user_id": person.id, "role_ids": [role_id]}})


def unreadable(admin, issue_id, name) -> list[str]:
    return [n for n in admin.notes(issue_id) if f"Champ illisible pour le service : {name}" in n]


def test_no_forfeiture_while_the_funds_date_is_visible_to_the_staff_only(admin, service, clerk, gestionnaire):
    """Failure 1 of issue 15: funds received on 20/01, the field hidden from the service's
    role: nothing fires at D+45, the ticket says what the service cannot read; once the
    field is visible again, C-14 is cancelled (funds in time) — never fired."""
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    assert "C-14" in service.cli("deadlines").stdout
    try:
        field_visible_only_to(FUNDS, STAFF_ROLE)
        set_fields(admin, lit["id"], **{FUNDS: "2027-01-20"})  # the staff sees and records it
        service.cli("sync", "--now", "2027-01-20T10:00:00+01:00")
        assert "C-14" in service.cli("deadlines").stdout  # not cancelled on a guess either
        assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout

        issue = admin.issue(lit["id"])
        assert not [a for a in attachments(admin, lit["id"]) if a.startswith("decheance")]
        assert mandate_losses(admin, service, mandate) == []
        assert field(issue, "Déchéance de garantie le") in ("", None)
        [note] = unreadable(admin, lit["id"], FUNDS)
        assert "Automate recouvrement" in note and "administrateur Redmine" in note
    finally:
        field_visible_only_to(FUNDS, None)
    out = service.cli("tick", "--now", "2027-02-18T08:20:00+01:00").stdout  # retried after 15 minutes
    assert "0 déclenchée" in out and "1 écartée" in out
    assert "C-14" not in service.cli("deadlines").stdout and mandate_losses(admin, service, mandate) == []
    assert len(unreadable(admin, lit["id"], FUNDS)) == 1


def test_the_service_locked_events_wait_and_complete_once_unlocked(admin, service, clerk, gestionnaire):
    """Failure 2: the service's own account locked (its key answers 401) — events wait
    without using up their attempts, /ready says why, the log names it without the key;
    unlocked, everything completes with no manual step."""
    account = admin.person(f"svc-{uuid.uuid4().hex[:6]}", "Automate", "Recouvrement")
    member(admin, service.project, account, "Automate recouvrement")
    key = admin.api_key(account)
    own = Service(service.settings.model_copy(update={"redmine_api_key": SecretStr(key)}),
                  service.env | {"RECOUVREMENT_REDMINE_API_KEY": key}, service.project)
    _, reg, lit = open_file(admin, own, clerk, gestionnaire)
    own.cli("sync", "--no-work")
    try:
        admin.set_status(account, locked=True)
        for minutes in (1, 30, 600):  # far past max_attempts' backoff
            at = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
            run = own.cli("worker", "--once", "--now", at)
            assert "401" in run.stderr and "verrouillé" in run.stderr and key not in run.stderr + run.stdout
        ctx = own.context()
        events = inbox.list_events(ctx.db)
        assert len(events) == 2  # the register's and the file's
        assert {(e.state, e.attempts) for e in events} == {(EventState.pending, 0)}
        with TestClient(create_app(ctx)) as client:
            ready = client.get("/ready")
        assert ready.status_code == 503 and "401" in ready.text and key not in ready.text
    finally:
        admin.set_status(account, locked=False)
    ctx = own.context(now=max(e.next_attempt_at for e in events))  # their backoff over
    assert work(ctx).processed == 2
    assert {e.state for e in inbox.list_events(ctx.db)} == {EventState.done}
    assert admin.issue(lit["id"])["parent"]["id"] == reg["id"]
    assert [n for n in admin.notes(lit["id"]) if "Ouverture du contentieux" in n]


def test_a_locked_gestionnaire_the_file_opens_all_the_same_tickets_to_the_litigation_group(admin, service, clerk):
    """Failure 3: Redmine refuses the register's gestionnaire as assignee ("Assignee is
    invalid"): every ticket is made, for the litigation group, saying why; the analysis is
    noted; the file says what Redmine refused."""
    locked = admin.person(f"gest-{uuid.uuid4().hex[:6]}", "Gérard", "Verrouillé")
    member(admin, service.project, locked, STAFF_ROLE)
    _, reg, lit = open_file(admin, service, clerk, locked)
    admin.set_status(locked, locked=True)  # a dedicated account: left locked
    service.cli("sync")

    group = admin.ids("/groups.json", "groups")["Contentieux"]
    made = admin.children(lit["id"])
    assert {c["tracker"]["name"] for c in made} == {"Demande de fonds", "Tâche gestionnaire"}
    for ticket in made:
        assert ticket["assigned_to"]["id"] == group
        assert "n'a pas pu être créé comme prévu" in ticket["description"]
        assert "groupe Contentieux" in ticket["description"]
    notes = admin.notes(lit["id"])
    assert admin.issue(lit["id"])["parent"]["id"] == reg["id"]
    assert [n for n in notes if "Ouverture du contentieux" in n]
    refusals = [n for n in notes if "Étapes refusées par Redmine" in n]
    assert len(refusals) == 1, notes
    refusals = refusals[0]
    assert "assignable" in refusals
    assert admin.issue(lit["id"])["assigned_to"]["id"] == group


def test_group_assignment_off_tickets_are_made_unassigned_and_say_so(admin, service, clerk, gestionnaire):
    """Failure 3 again: the register has no assignee (its tickets go to the litigation
    group) and group assignment is switched off: Redmine refuses every group."""
    mandate = f"M-{uuid.uuid4().hex[:6]}"
    admin.create_issue(service.project, "Registre des mandats", f"Mandat {mandate}", {"N° mandat": mandate})
    lit = admin.create_issue(service.project, "Contentieux", "Impayés", {
        "N° mandat": mandate, "Réf. locataire": "LOC-9", "Réf. propriétaire": "PROP-9",
        "Débiteurs": "Jean Dupont ; locataire", "Locataire dans les lieux": "1",
        "Montant de la dette": "900", "Compte propriétaire": "Débiteur"}, as_user=clerk.login)
    try:
        set_group_assignment(False)
        service.cli("sync")
    finally:
        set_group_assignment(True)
    made = admin.children(lit["id"])
    assert len(made) == 2 and all("assigned_to" not in t for t in made)
    assert all("assigné à personne" in t["description"] for t in made)
    assert [n for n in admin.notes(lit["id"]) if "Ouverture du contentieux" in n]
    assert "failed=" not in service.cli("events").stdout


def test_a_closed_register_is_said_to_the_author_and_nothing_else_is_made(admin, service, clerk, gestionnaire):
    """Failure 4: Redmine refuses an open ticket under a closed parent; the file gets the
    note naming the register, goes back to its author, and nothing is created (the C-7
    checklist included, the owner's account being in credit) until it is reopened."""
    closed = admin.ids("/issue_statuses.json", "issue_statuses")["Fermé"]
    mandate, reg, lit = open_file(admin, service, clerk, gestionnaire, account="Créditeur")
    admin.update_issue(reg["id"], status_id=closed)
    service.cli("sync")
    issue = admin.issue(lit["id"])
    assert "parent" not in issue and admin.children(lit["id"]) == []
    [note] = admin.notes(lit["id"])
    assert "Registre des mandats fermé" in note and f"#{reg['id']}" in note and mandate in note
    assert issue["assigned_to"]["id"] == clerk.id
    assert "failed=" not in service.cli("events").stdout

    admin.update_issue(reg["id"], status_id=admin.ids("/issue_statuses.json", "issue_statuses")["Nouveau"])
    service.cli("sync")
    assert admin.issue(lit["id"])["parent"]["id"] == reg["id"] and admin.children(lit["id"])


def test_a_missing_register_makes_nothing_not_even_the_c7_checklist(admin, service, clerk, gestionnaire):
    """Failure 5: "Rien d'autre n'a été créé" is true, owner's account in credit included."""
    _, _, lit = open_file(admin, service, clerk, gestionnaire, register=False, account="Créditeur")
    service.cli("sync")
    assert admin.children(lit["id"]) == []
    [note] = admin.notes(lit["id"])
    assert "introuvable" in note


def test_a_ticket_moved_to_another_project_nothing_fires_nor_is_written_there(admin, service, clerk, gestionnaire):
    """Failure 7: moved out with C-14 pending; at D+45 the tick reads it in the other project:
    cancelled, no letter, no Perte de mandat, no note there. (The daily reconciliation finds
    it before: tests/e2e/test_reconciliation.py.)"""
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    other = f"e2e-autre-{uuid.uuid4().hex[:6]}"
    admin.new_project(other, "recouvrement", [clerk, gestionnaire])  # the service can read it
    admin.update_issue(lit["id"], project_id=other, parent_issue_id="")
    journals = len(admin.issue(lit["id"])["journals"])

    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout
    assert "C-14" not in service.cli("deadlines").stdout
    assert mandate_losses(admin, service, mandate) == [] and not attachments(admin, lit["id"])
    assert len(admin.issue(lit["id"])["journals"]) == journals  # nothing written in the other project


def test_a_ticket_moved_to_a_tracker_without_deadlines_has_them_cancelled(admin, service, clerk, gestionnaire):
    _, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    admin.update_issue(lit["id"], tracker_id=admin.ids("/trackers.json", "trackers")["Tâche gestionnaire"])
    service.cli("sync", "--now", "2027-01-05T10:00:00+01:00")
    assert "C-14" not in service.cli("deadlines").stdout
    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout


def test_a_private_projects_ticket_is_ignored_as_foreign(admin, service, clerk):
    """Failure 8: a webhook sender that sends every project's changes; the service may not
    read that ticket (403): the event is done, ignored."""
    private = f"e2e-prive-{uuid.uuid4().hex[:6]}"
    admin._call("POST", "/projects.json", json={"project": {
        "name": private, "identifier": private, "is_public": False, "enabled_module_names": ["issue_tracking"],
        "tracker_ids": list(admin.ids("/trackers.json", "trackers").values())}})
    foreign = admin.create_issue(private, "Tâche gestionnaire", "Hors projet", {})
    ctx = service.context()
    with TestClient(create_app(ctx)) as client:
        assert post_webhook(client, admin, foreign["id"], secret=WEBHOOK_SECRET).status_code == 202
    work(ctx)
    [done] = inbox.list_events(ctx.db)
    assert done.state is EventState.done and "hors de la vue du service" in done.result
