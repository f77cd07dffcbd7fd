"""Issue 5 end to end: debt write-offs (C-31, C-32) against the real local Redmine, through
`recouvrement writeoffs`, `sync` and `tick --now`."""

from __future__ import annotations

import uuid

from tests.e2e.redmine_admin import field
from tests.e2e.test_cancellations import assert_replay_creates_nothing, edit, group_id

NOW = "2027-03-01T09:00:00+01:00"
ELIGIBLE = {"Refus écrit du propriétaire": "1", "Lot sous GLI": "0", "Locataire dans les lieux": "0",
            "Locataire étoilé": "1", "Date du dernier impayé": "2024-02-28"}  # 3 years + 1 day on 01/03/2027


def writeoff_tickets(admin, service):
    issues = admin._call("GET", "/issues.json", params={"project_id": service.project, "status_id": "*",
                                                         "tracker_id": admin.ids("/trackers.json", "trackers")
                                                         ["Annulation dette"], "limit": 100})["issues"]
    return [admin.issue(i["id"]) for i in issues]


def litigation_file(admin, service, clerk, gestionnaire, **changes):
    mandate = f"M-{uuid.uuid4().hex[:6]}"
    admin.create_issue(service.project, "Registre des mandats", f"Mandat {mandate}", {"N° mandat": mandate},
                       assigned_to_id=gestionnaire.id)
    fields = {"N° mandat": mandate, "Réf. locataire": f"LOC-{mandate}", "Réf. propriétaire": "PROP-7",
              "Montant de la dette": "3120.00", **ELIGIBLE, **changes}
    return admin.create_issue(service.project, "Contentieux", "Impayés", {k: v for k, v in fields.items() if v},
                              as_user=clerk.login)


FAILING = [
    ({"Refus écrit du propriétaire": "0"}, "refus écrit du propriétaire ou déchéance"),
    ({"Lot sous GLI": "1"}, "lot hors GLI"),
    ({"Locataire étoilé": "0"}, "locataire sorti et étoilé"),
    ({"Date du dernier impayé": "2024-03-01"}, "plus de 3 ans depuis le dernier impayé"),  # exactly 3 years
]


def test_only_files_meeting_all_four_conditions_get_a_ticket(admin, service, clerk, gestionnaire):
    eligible = litigation_file(admin, service, clerk, gestionnaire)
    forfeited = litigation_file(admin, service, clerk, gestionnaire,
                                **{"Refus écrit du propriétaire": "0"})
    edit(admin, forfeited["id"], clerk, **{"Déchéance de garantie le": "2024-06-01"})  # C-14 recorded
    failing = {litigation_file(admin, service, clerk, gestionnaire, **changes)["id"]: label
               for changes, label in FAILING}

    out = service.cli("writeoffs", "--now", NOW).stdout
    assert "5 dossier(s) avec locataire étoilé examiné(s), 2 éligible(s)" in out  # the unstarred one is not read
    refs = {field(admin.issue(i["id"]), "Réf. locataire") for i in (eligible, forfeited)}
    assert {field(t, "Réf. locataire") for t in writeoff_tickets(admin, service)} == refs
    for issue_id, label in failing.items():
        explained = service.cli("writeoffs", "--explain", str(issue_id), "--now", NOW).stdout
        assert f"contentieux #{issue_id} : non éligible" in explained
        [refused] = [line for line in explained.splitlines() if "[NON]" in line]
        assert f"[NON] {label}" in refused
    explained = service.cli("writeoffs", "--explain", str(eligible["id"]), "--now", NOW).stdout
    assert f"contentieux #{eligible['id']} : éligible" in explained and "ticket d'annulation : #" in explained

    # The next day's scan opens nothing more, and the exactly-3-years file becomes eligible.
    out = service.cli("writeoffs", "--now", "2027-03-02T09:00:00+01:00").stdout
    assert "3 éligible(s)" in out
    assert len(writeoff_tickets(admin, service)) == 3


def test_round_trip_gestionnaire_back_office_gestionnaire_closed(admin, service, clerk, gestionnaire):
    lit = litigation_file(admin, service, clerk, gestionnaire)
    service.cli("writeoffs", "--now", NOW)
    [ticket] = writeoff_tickets(admin, service)
    assert ticket["assigned_to"]["id"] == gestionnaire.id
    assert "Conditions réunies" in ticket["description"]
    assert any(f"Ticket #{ticket['id']} ouvert" in n for n in admin.notes(lit["id"]))

    edit(admin, ticket["id"], gestionnaire, **{"Propriétaire informé le": "2027-03-02"})
    service.cli("sync", "--now", "2027-03-02T10:00:00+01:00")
    ticket = admin.issue(ticket["id"])
    assert ticket["assigned_to"]["id"] == group_id(admin, "Back office")
    assert ticket["due_date"] == "2027-03-17"  # C-32: D+15

    assert "0 déclenchée" in service.cli("tick", "--now", "2027-03-17T07:59:00+01:00").stdout
    assert "1 déclenchée" in service.cli("tick", "--now", "2027-03-17T08:00:00+01:00").stdout
    assert any("Délai de 15 jours écoulé" in n for n in admin.notes(ticket["id"]))

    back_office = admin.person("bertrand.backoffice", "Bertrand", "Back-office")
    admin._call("POST", f"/projects/{service.project}/memberships.json", json={"membership": {
        "user_id": back_office.id, "role_ids": [admin.ids("/roles.json", "roles")["Équipe recouvrement"]]}})
    edit(admin, ticket["id"], back_office, **{"Annulation passée le": "2027-03-17"})
    service.cli("sync", "--now", "2027-03-17T10:00:00+01:00")
    ticket = admin.issue(ticket["id"])
    assert ticket["assigned_to"]["id"] == gestionnaire.id
    assert any("Écritures d'annulation passées le 17/03/2027" in n for n in admin.notes(ticket["id"]))

    closed = admin.ids("/issue_statuses.json", "issue_statuses")["Fermé"]
    admin.update_issue(ticket["id"], as_user=gestionnaire.login, status_id=closed)
    service.cli("sync", "--now", "2027-03-17T11:00:00+01:00")
    service.cli("writeoffs", "--now", "2027-03-18T09:00:00+01:00")  # closed: still never twice
    assert len(writeoff_tickets(admin, service)) == 1
    assert_replay_creates_nothing(admin, service)
