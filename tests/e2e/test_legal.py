"""Issue 7 end to end: the "Contrôle légal" of a litigation ticket against the real local
Redmine — it appears, updates in place when a date changes, a gate holds the assignation
(L-3) and its override is recorded."""

from __future__ import annotations

from tests.e2e.redmine_admin import field
from tests.texts import as_shown
from tests.e2e.test_cancellations import edit
from tests.e2e.test_litigation_opening import open_file

NOW = "2025-04-02T09:00:00+02:00"


def sync(service):
    service.cli("sync", "--now", NOW)


def test_legal_check_updates_in_place_and_the_l3_gate_holds_until_overridden(admin, service, clerk, gestionnaire):
    _, _, lit = open_file(admin, service, clerk, gestionnaire)  # debtors include a caution
    edit(admin, lit["id"], clerk, **{"Date du bail": "2024-01-10", "Date de signification": "2025-03-03",
                                      "Zone calendrier": "Moselle (57)"})
    sync(service)
    check = as_shown(field(admin.issue(lit["id"]), "Contrôle légal"), admin.text_format)
    assert "14/04/2025 — clause résolutoire acquise" in check  # L-1: 6 weeks
    assert "L-5 : caution non signifiée au 18/03/2025" in check

    edit(admin, lit["id"], clerk, **{"Date de signification": "2025-03-07"})  # + 42 days = Good Friday 18/04
    sync(service)
    check = as_shown(field(admin.issue(lit["id"]), "Contrôle légal"), admin.text_format)
    assert "22/04/2025 — clause résolutoire acquise" in check  # Moselle: Good Friday and Easter Monday
    assert "14/04/2025" not in check
    assert len([n for n in admin.notes(lit["id"]) if "Contrôle légal" in n]) == 0  # in place, not a note
    assert "22/04/2025" in service.cli("legal", "explain", str(lit["id"]), "--now", NOW).stdout

    # Unpaid act, hearing on 12/05/2025, préfet not notified and 31/03 passed: no assignation.
    edit(admin, lit["id"], clerk, **{"Acte resté impayé": "1", "Date d'audience": "2025-05-12"})
    sync(service)
    children = [c["tracker"]["name"] for c in admin.children(lit["id"])]
    assert "Assignation" not in children
    [gate] = [n for n in admin.notes(lit["id"]) if "Étape bloquée par le contrôle légal" in n]
    assert "L-3" in gate and "Dérogation légale" in gate
    assert "Étapes bloquées" in field(admin.issue(lit["id"]), "Contrôle légal")

    edit(admin, lit["id"], clerk, **{"Dérogation légale": "1"})  # litigation takes the risk
    sync(service)
    assert [c["tracker"]["name"] for c in admin.children(lit["id"])].count("Assignation") == 1
    [override] = [n for n in admin.notes(lit["id"]) if "Dérogation au contrôle légal enregistrée" in n]
    assert f"user#{clerk.id}" in override
    journals = admin.issue(lit["id"])["journals"]
    sync(service)
    service.cli("events", "retry")
    sync(service)
    assert "0 changement(s)" in service.cli("legal", "refresh", "--now", NOW).stdout  # every open file, up to date
    assert admin.issue(lit["id"])["journals"] == journals  # replayed: nothing rewritten, the override once
