"""Issue 3 end to end: deadlines C-12, C-13/C-14, C-18/C-19 and C-26 against the real local
Redmine, time driven by `recouvrement sync/tick --now` (no test sleeps)."""

from __future__ import annotations

from datetime import datetime

from app.calendar import add_months, paris_date
from app.letters import letter_text
from tests.e2e.redmine_admin import field
from tests.e2e.test_litigation_opening import open_file

D = "2027-01-04"  # provision requested (a Monday); D+45 = 2027-02-18
D45 = "2027-02-18T08:00:00+01:00"  # due instant: 08:00 Europe/Paris


def opened(admin, service, clerk, gestionnaire, **kwargs):
    mandate, reg, lit = open_file(admin, service, clerk, gestionnaire, **kwargs)
    service.cli("sync", "--now", "2027-01-04T09:00:00+01:00")
    return mandate, reg, lit


def set_fields(admin, issue_id, **values):
    ids = admin.ids("/custom_fields.json", "custom_fields")
    admin.update_issue(issue_id, custom_fields=[{"id": ids[k], "value": v} for k, v in values.items()])


def mandate_losses(admin, service, mandate):
    issues = admin._call("GET", "/issues.json", params={"project_id": service.project, "status_id": "*",
                                                         "limit": 100})["issues"]
    return [i for i in issues if i["tracker"]["name"] == "Perte de mandat" and mandate in i["subject"]]


def test_c14_no_funds_by_d45_letter_gestionnaire_and_mandate_loss_once(admin, service, clerk, gestionnaire):
    mandate, reg, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")

    issue = admin.issue(lit["id"])
    assert field(issue, "Échéance") == "2027-02-18"  # shown on the ticket
    assert "C-14" in field(issue, "Échéance – motif")
    assert any("Demande de provision du 04/01/2027" in n and "18/02/2027" in n for n in admin.notes(lit["id"]))
    assert "C-14" in service.cli("deadlines").stdout

    assert "0 déclenchée" in service.cli("tick", "--now", "2027-02-18T07:59:00+01:00").stdout
    assert "1 déclenchée" in service.cli("tick", "--now", D45).stdout
    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout  # twice at the same instant: once

    issue = admin.issue(lit["id"])
    assert issue["assigned_to"]["id"] == gestionnaire.id
    assert field(issue, "Déchéance de garantie le") == "2027-02-18"
    assert field(issue, "Échéance") in ("", None)
    [letter] = [a for a in admin._call("GET", f"/issues/{lit['id']}.json", params={"include": "attachments"})
                ["issue"]["attachments"] if a["filename"].startswith("decheance-garantie")]
    content = admin.http.get(letter["content_url"]).content
    text = letter_text(content)
    assert "Déchéance de garantie – décharge de responsabilité" in text
    assert mandate in text and "PROP-7" in text and "04/01/2027" in text and "1\u202f500,00\u00a0€" in text
    [loss] = mandate_losses(admin, service, mandate)
    loss = admin._call("GET", f"/issues/{loss['id']}.json", params={"include": "relations"})["issue"]
    assert loss["parent"]["id"] == reg["id"] and loss["assigned_to"]["id"] == gestionnaire.id
    assert {r["issue_id"] for r in loss["relations"]} | {r["issue_to_id"] for r in loss["relations"]} >= {lit["id"]}
    notes = [n for n in admin.notes(lit["id"]) if "dépassée sans réception des fonds" in n]
    assert len(notes) == 1 and "en retard" not in notes[0]

    # Funds recorded after D+45 change nothing done, and say so.
    set_fields(admin, lit["id"], **{"Date de réception des fonds": "2027-02-19"})
    service.cli("sync", "--now", "2027-02-19T10:00:00+01:00")
    service.cli("tick", "--now", "2027-02-19T10:00:00+01:00")
    assert any("après l'échéance du 18/02/2027" in n for n in admin.notes(lit["id"]))
    assert len(mandate_losses(admin, service, mandate)) == 1


def test_c14_funds_on_d44_cancel_everything(admin, service, clerk, gestionnaire):
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    set_fields(admin, lit["id"], **{"Date de réception des fonds": "2027-02-17"})  # D+44
    service.cli("sync", "--now", "2027-02-17T10:00:00+01:00")

    assert field(admin.issue(lit["id"]), "Échéance") in ("", None)
    assert "0 déclenchée" in service.cli("tick", "--now", "2027-03-01T09:00:00+01:00").stdout
    assert mandate_losses(admin, service, mandate) == []
    assert any("avant l'échéance du 18/02/2027" in n for n in admin.notes(lit["id"]))


def test_c14_date_edited_then_cleared_and_service_down_across_the_due_instant(admin, service, clerk, gestionnaire):
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    set_fields(admin, lit["id"], **{"Date de demande de provision": "2027-01-11"})  # edited: D+45 = 25/02
    service.cli("sync", "--now", "2027-01-11T10:00:00+01:00")
    assert field(admin.issue(lit["id"]), "Échéance") == "2027-02-25"
    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout  # the old instant no longer fires

    set_fields(admin, lit["id"], **{"Date de demande de provision": ""})  # cleared
    service.cli("sync", "--now", "2027-01-12T10:00:00+01:00")
    assert field(admin.issue(lit["id"]), "Échéance") in ("", None)
    assert "aucune échéance" in service.cli("deadlines").stdout

    set_fields(admin, lit["id"], **{"Date de demande de provision": "2027-01-11"})  # back; then down for days
    service.cli("sync", "--now", "2027-01-13T10:00:00+01:00")
    assert "1 déclenchée" in service.cli("tick", "--now", "2027-03-01T09:00:00+01:00").stdout
    [note] = [n for n in admin.notes(lit["id"]) if "dépassée sans réception des fonds" in n]
    assert "traitée en retard" in note and "25/02/2027" in note
    assert len(mandate_losses(admin, service, mandate)) == 1


def test_c12_lawyer_within_two_months_reminders_until_an_assignation_exists(admin, service, clerk, gestionnaire):
    _, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de signification": "2027-01-31", "Type de bail": "Habitation"})
    service.cli("sync", "--now", "2027-01-31T10:00:00+01:00")
    assert any("au plus tard le 31/03/2027" in n.replace("*", "") for n in admin.notes(lit["id"]))
    assert field(admin.issue(lit["id"]), "Échéance") == "2027-03-24"  # 7 days before

    assert "1 déclenchée" in service.cli("tick", "--now", "2027-03-24T08:00:00+01:00").stdout
    assert any("Rappel : mandater un avocat avant le 31/03/2027" in n for n in admin.notes(lit["id"]))
    assert field(admin.issue(lit["id"]), "Échéance") == "2027-03-31"

    admin.create_issue(service.project, "Assignation", "Assignation Dupont", {}, parent_issue_id=lit["id"])
    service.cli("sync", "--now", "2027-03-25T10:00:00+01:00")
    assert "0 déclenchée" in service.cli("tick", "--now", "2027-03-31T08:00:00+02:00").stdout
    assert not any("Dernier jour" in n for n in admin.notes(lit["id"]))


def test_c12_commercial_lease_one_month_clamped_to_month_end(admin, service, clerk, gestionnaire):
    _, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de signification": "2027-01-31", "Type de bail": "Commercial"})
    service.cli("sync", "--now", "2027-01-31T10:00:00+01:00")
    assert any("au plus tard le 28/02/2027" in n.replace("*", "") and "1 mois, bail commercial" in n
               for n in admin.notes(lit["id"]))
    service.cli("tick", "--now", "2027-02-21T08:00:00+01:00")
    assert "1 déclenchée" in service.cli("tick", "--now", "2027-02-28T08:00:00+01:00").stdout
    assert any("Dernier jour pour mandater un avocat" in n for n in admin.notes(lit["id"]))


def test_c18_c19_judgment_task_and_reminders_for_what_has_not_come(admin, service, clerk, gestionnaire):
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    assignation = admin.create_issue(service.project, "Assignation", "Assignation Dupont", {"N° mandat": mandate},
                                     parent_issue_id=lit["id"])
    set_fields(admin, assignation["id"], **{"Date du jugement": "2027-05-03"})
    service.cli("sync", "--now", "2027-05-03T10:00:00+02:00")

    notes = admin.notes(assignation["id"])
    assert any("Jugement rendu le 03/05/2027" in n and "18/05/2027" in n and "en couleur" in n for n in notes)
    [task] = [c for c in admin.children(assignation["id"]) if c["tracker"]["name"] == "Tâche gestionnaire"]
    assert task["assigned_to"]["id"] == gestionnaire.id and "jugement" in task["subject"]
    assert field(admin.issue(assignation["id"]), "Échéance") == "2027-05-18"

    set_fields(admin, assignation["id"], **{"Jugement signifié le": "2027-05-10"})  # the bailiff did it
    service.cli("sync", "--now", "2027-05-10T10:00:00+02:00")
    assert "1 déclenchée" in service.cli("tick", "--now", "2027-05-18T08:00:00+02:00").stdout
    issue = admin.issue(assignation["id"])
    notes = admin.notes(assignation["id"])
    assert any("Original du jugement non reçu" in n for n in notes)
    assert not any("Relance du commissaire de justice" in n for n in notes)
    assert issue["assigned_to"]["name"] == "Contentieux"


def test_c26_monthly_review_fires_once_for_missed_months_then_moves_on(admin, service, clerk, gestionnaire):
    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    execution = admin.create_issue(service.project, "Exécution", "Exécution Jean Dupont", {"N° mandat": mandate},
                                   parent_issue_id=lit["id"])
    created = paris_date(datetime.fromisoformat(execution["created_on"].replace("Z", "+00:00")))
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    assert field(admin.issue(execution["id"]), "Échéance") == add_months(created, 1).isoformat()

    late = "2027-06-10T09:00:00+02:00"  # several reviews missed
    assert "1 déclenchée" in service.cli("tick", "--now", late).stdout
    assert "0 déclenchée" in service.cli("tick", "--now", late).stdout
    reviews = [n for n in admin.notes(execution["id"]) if "Revue mensuelle" in n]
    assert len(reviews) == 1 and "traitée en retard" in reviews[0]
    next_due = field(admin.issue(execution["id"]), "Échéance")
    assert "2027-06-10" < next_due <= "2027-07-31"

    admin.update_issue(execution["id"], status_id=admin.ids("/issue_statuses.json", "issue_statuses")["Fermé"])
    service.cli("sync", "--now", "2027-06-11T09:00:00+02:00")
    assert "aucune échéance" in service.cli("deadlines").stdout


def test_serve_started_after_the_due_instant_catches_up_once(admin, service, clerk, gestionnaire):
    """The service was down across D+45; `serve` (clock set by RECOUVREMENT_NOW) fires it at start, late."""
    from tests.e2e.processes import Replica, wait_for

    mandate, _, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")

    env = service.env | {"RECOUVREMENT_NOW": "2027-02-20T09:00:00+01:00",
                         "RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600"}
    replica = Replica(env)
    try:
        wait_for(lambda: len(mandate_losses(admin, service, mandate)) == 1, 60, "rattrapage au démarrage")
    finally:
        replica.stop()
    [note] = [n for n in admin.notes(lit["id"]) if "dépassée sans réception des fonds" in n]
    assert "traitée en retard, le 20/02/2027" in note
    assert "0 déclenchée" in service.cli("tick", "--now", "2027-02-20T09:00:00+01:00").stdout
