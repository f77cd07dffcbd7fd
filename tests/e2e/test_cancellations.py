"""Issue 5 end to end: fee cancellation requests (C-33 … C-37) against the real local
Redmine, through `recouvrement sync` and `recouvrement tick --now`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from app.calendar import PARIS, paris_date
from app.cancellations.request import decision_due_on
from app.config import Settings
from tests.e2e.redmine_admin import backdate, field
from tests.e2e.test_litigation_opening import open_file
from tests.e2e.test_recovery import snapshot

TITLE = "DEMANDE D'ANNULATION FRAIS dossier LOC-42/PROP-7"  # open_file's references


def group_id(admin, name):
    return admin.ids("/groups.json", "groups")[name]


def ask(admin, service, gestionnaire, subject=TITLE, justification="Accord trouvé avec le débiteur", **fields):
    values = {"Réf. locataire": "LOC-42", "Réf. propriétaire": "PROP-7", **fields}
    if justification:
        values["Justification"] = justification
    return admin.create_issue(service.project, "Annulation frais", subject, values, as_user=gestionnaire.login)


def edit(admin, issue_id, user, **values):
    ids = admin.ids("/custom_fields.json", "custom_fields")
    admin.update_issue(issue_id, as_user=user.login,
                       custom_fields=[{"id": ids[k], "value": v} for k, v in values.items()])


def received_on(admin, issue_id, changed_field=None):
    """The Paris day of the ticket's creation, or of the last journal changing a field."""
    issue = admin.issue(issue_id)
    stamp = issue["created_on"]
    if changed_field:
        field_id = str(admin.ids("/custom_fields.json", "custom_fields")[changed_field])
        stamp = [j for j in issue["journals"]
                 if any(d["property"] == "cf" and d["name"] == field_id for d in j["details"])][-1]["created_on"]
    return paris_date(datetime.fromisoformat(stamp.replace("Z", "+00:00")))


def assert_replay_creates_nothing(admin, service):
    before = snapshot(admin, service)
    service.cli("events", "retry")
    service.cli("sync")
    assert snapshot(admin, service) == before


def test_wrong_title_no_justification_then_justified(admin, service, clerk, gestionnaire):
    _, _, lit = open_file(admin, service, clerk, gestionnaire)
    req = ask(admin, service, gestionnaire, subject="annulation frais relance Dupont", justification=None)
    service.cli("sync")

    issue = admin.issue(req["id"])
    assert issue["parent"]["id"] == lit["id"]  # C-33: under the tenant's litigation file
    assert issue["assigned_to"]["id"] == gestionnaire.id  # back to its author
    assert issue.get("due_date") is None
    [note] = [n for n in admin.notes(req["id"]) if "Demande d'annulation de frais à compléter" in n]
    assert f"« {TITLE} »" in note and "Sans justification" in note
    assert "C-35" not in service.cli("deadlines").stdout  # the clock does not start

    edit(admin, req["id"], gestionnaire, Justification="Traitement comptable retardé")
    admin.update_issue(req["id"], as_user=gestionnaire.login, subject=TITLE)
    service.cli("sync")
    issue = admin.issue(req["id"])
    justified_on = received_on(admin, req["id"], "Justification")  # the day the justification was added
    assert issue["assigned_to"]["id"] == group_id(admin, "Contentieux")
    assert issue["start_date"] == justified_on.isoformat()
    assert issue["due_date"] == decision_due_on(justified_on, Settings()).isoformat()
    assert "C-35" in service.cli("deadlines").stdout
    assert_replay_creates_nothing(admin, service)


def test_accepted_goes_back_to_the_requester(admin, service, clerk, gestionnaire):
    req = ask(admin, service, gestionnaire)  # no litigation file: reminder fees, a standalone ticket
    service.cli("sync")
    issue = admin.issue(req["id"])
    assert issue.get("parent") is None and issue["assigned_to"]["id"] == group_id(admin, "Contentieux")
    edit(admin, req["id"], gestionnaire, **{"Décision": "Accordée"})  # the requester cannot grant it
    service.cli("sync")
    issue = admin.issue(req["id"])
    assert field(issue, "Décision") == "" and issue["assigned_to"]["id"] == group_id(admin, "Contentieux")
    assert any("Décision non prise en compte" in n for n in admin.notes(req["id"]))
    edit(admin, req["id"], clerk, **{"Décision": "Accordée"})
    service.cli("sync")
    issue = admin.issue(req["id"])
    assert issue["assigned_to"]["id"] == gestionnaire.id  # C-36
    assert any("Annulation accordée" in n and "Comptabilité" in n for n in admin.notes(req["id"]))
    assert "C-35" not in service.cli("deadlines").stdout
    assert_replay_creates_nothing(admin, service)


def test_refused_without_then_with_reason_then_escalated_to_the_dg(admin, service, clerk, gestionnaire):
    req = ask(admin, service, gestionnaire)
    backdate(req["id"], 10)  # made 10 days ago: the first delay started then
    service.cli("sync")
    first = received_on(admin, req["id"])
    issue = admin.issue(req["id"])
    assert (issue["start_date"], issue["due_date"]) == (first.isoformat(),
                                                        decision_due_on(first, Settings()).isoformat())

    edit(admin, req["id"], clerk, **{"Décision": "Refusée"})  # C-37: no reason
    service.cli("sync")
    assert admin.issue(req["id"])["assigned_to"]["id"] == group_id(admin, "Contentieux")
    assert any("Refus sans motif" in n for n in admin.notes(req["id"]))

    edit(admin, req["id"], clerk, **{"Motif de la décision": "Relances fondées"})
    service.cli("sync")
    assert admin.issue(req["id"])["assigned_to"]["id"] == gestionnaire.id
    assert any("Annulation refusée" in n and "Relances fondées" in n for n in admin.notes(req["id"]))

    edit(admin, req["id"], gestionnaire, **{"Escalade DG": "1"})  # without a new justification
    service.cli("sync")
    assert any("Escalade à la DG incomplète" in n for n in admin.notes(req["id"]))
    assert field(admin.issue(req["id"]), "Décision") == "Refusée"

    edit(admin, req["id"], gestionnaire, Justification="Accord signé avec le débiteur, échéancier respecté")
    service.cli("sync")
    issue = admin.issue(req["id"])
    escalated_on = received_on(admin, req["id"], "Justification")
    assert escalated_on > first
    assert issue["assigned_to"]["id"] == group_id(admin, "DG")
    assert (field(issue, "Décision"), field(issue, "Motif de la décision")) == ("", "")
    # A first request again: a new 8-working-day delay from the escalation (C-37, C-35).
    assert (issue["start_date"], issue["due_date"]) == (escalated_on.isoformat(),
                                                        decision_due_on(escalated_on, Settings()).isoformat())
    assert any("Escalade à la DG" in n and "Relances fondées" in n for n in admin.notes(req["id"]))

    edit(admin, req["id"], clerk, **{"Décision": "Accordée"})
    service.cli("sync")
    assert admin.issue(req["id"])["assigned_to"]["id"] == gestionnaire.id
    assert any("Annulation accordée par la DG" in n.replace("*", "") for n in admin.notes(req["id"]))
    assert_replay_creates_nothing(admin, service)


def test_overdue_decision_tells_the_litigation_manager(admin, service, clerk, gestionnaire):
    req = ask(admin, service, gestionnaire)
    service.cli("sync")
    due = date.fromisoformat(admin.issue(req["id"])["due_date"])
    overdue_at = datetime.combine(due + timedelta(days=1), time(0, 0), tzinfo=PARIS)
    assert "0 déclenchée" in service.cli("tick", "--now", (overdue_at - timedelta(minutes=1)).isoformat()).stdout
    assert "1 déclenchée" in service.cli("tick", "--now", overdue_at.isoformat()).stdout
    assert "0 déclenchée" in service.cli("tick", "--now", overdue_at.isoformat()).stdout

    issue = admin.issue(req["id"])
    assert issue["assigned_to"]["id"] == group_id(admin, "Responsable contentieux")
    assert field(issue, "Hors délai") == "1"
    [note] = [n for n in admin.notes(req["id"]) if "Décision hors délai" in n]
    assert f"au plus tard le {due:%d/%m/%Y}" in note
    assert_replay_creates_nothing(admin, service)
