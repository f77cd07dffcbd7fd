"""Issue 4 end to end, one scenario per branch, against the real local Redmine: the
bailiff file, the title (injonction or assignation), judgment and executions, eviction,
invoices and GLI. Every scenario ends by replaying: nothing new is created."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.calendar import add_months, paris_date
from tests.e2e.redmine_admin import field
from tests.e2e.test_deadlines import set_fields
from tests.e2e.test_litigation_opening import open_file
from tests.unit.test_texts import TWENTY_DEBTORS

NOW = "2027-04-12T10:00:00+02:00"


def sync(service):
    service.cli("sync", "--now", NOW)


def children(admin, issue_id, tracker):
    return [c for c in admin.children(issue_id) if c["tracker"]["name"] == tracker]


def snapshot(admin, service):
    """Every issue of the project with its journal count: a replay must leave it unchanged."""
    issues = admin._call("GET", "/issues.json", params={"project_id": service.project, "status_id": "*",
                                                         "limit": 100})["issues"]
    return {i["id"]: len(admin.issue(i["id"])["journals"]) for i in issues}


def assert_replay_creates_nothing(admin, service):
    before = snapshot(admin, service)
    service.cli("events", "retry")
    sync(service)
    service.cli("sync", "--now", NOW)
    assert snapshot(admin, service) == before


def served_unpaid(admin, service, clerk, gestionnaire, *, in_premises, debt, rent_only, debtors=None, account="Créditeur"):
    kwargs = {"debtors": debtors} if debtors else {}
    mandate, reg, lit = open_file(admin, service, clerk, gestionnaire, in_premises=in_premises, account=account,
                                  **kwargs)
    set_fields(admin, lit["id"], **{"Montant de la dette": debt, "Dette de loyers uniquement": rent_only,
                                    "Date de signification": "2027-04-01", "Acte resté impayé": "1"})
    sync(service)
    return mandate, reg, lit


@pytest.mark.parametrize("in_premises, debt, rent_only, injunction", [
    (False, "4000.00", "1", True),  # C-22: left, rent only, at the ceiling
    (False, "4000.01", "1", False),  # one cent above
    (False, "1200", "0", False),  # charges included
    (True, "1200", "1", False),  # tenant in place: assignation with the clause résolutoire
])
def test_title_injonction_only_when_left_rent_only_and_at_most_4000(admin, service, clerk, gestionnaire,
                                                                     in_premises, debt, rent_only, injunction):
    _, _, lit = served_unpaid(admin, service, clerk, gestionnaire, in_premises=in_premises, debt=debt,
                              rent_only=rent_only)
    tracker = "Injonction de payer" if injunction else "Assignation"
    other = "Assignation" if injunction else "Injonction de payer"
    [title] = children(admin, lit["id"], tracker)
    assert children(admin, lit["id"], other) == []
    assert float(field(title, "Coût estimé")) == (400 if injunction else 1500)  # C-24 / C-13
    assert title["assigned_to"]["name"] == "Contentieux"
    [route] = [n for n in admin.notes(lit["id"]) if "obtention d'un titre" in n]
    assert ("injonction de payer" if injunction else "assignation") in route
    assert ("clause résolutoire" in route) is in_premises
    [provision] = [c for c in children(admin, lit["id"], "Tâche gestionnaire") if "provision" in c["subject"]]
    assert provision["assigned_to"]["id"] == gestionnaire.id  # C-13
    assert_replay_creates_nothing(admin, service)


def test_contested_injonction_creates_the_assignation(admin, service, clerk, gestionnaire):
    _, _, lit = served_unpaid(admin, service, clerk, gestionnaire, in_premises=False, debt="900", rent_only="1")
    [injunction] = children(admin, lit["id"], "Injonction de payer")
    set_fields(admin, injunction["id"], **{"Injonction contestée": "1"})
    sync(service)
    [assignation] = children(admin, lit["id"], "Assignation")  # C-23
    assert float(field(assignation, "Coût estimé")) == 1500
    assert any("contestée" in n and f"#{assignation['id']}" in n for n in admin.notes(injunction["id"]))
    assert_replay_creates_nothing(admin, service)


@pytest.mark.parametrize("debtors", [
    "Jean Dupont ; locataire",
    "Jean Dupont ; locataire\nMarie Durand ; colocataire",
    "Jean Dupont ; locataire\nMarie Durand ; colocataire\nPaul Martin ; caution",
    "\n".join(f"{name} ; {role}" for name, role in TWENTY_DEBTORS),  # homonyms, every script: 20 tickets
], ids=["one", "two", "three", "twenty"])
def test_favourable_judgment_one_execution_per_debtor(admin, service, clerk, gestionnaire, debtors):
    _, _, lit = served_unpaid(admin, service, clerk, gestionnaire, in_premises=True, debt="5000", rent_only="0",
                              debtors=debtors)
    [assignation] = children(admin, lit["id"], "Assignation")
    set_fields(admin, assignation["id"], **{"Date du jugement": "2027-04-10", "Issue du jugement": "Favorable"})
    sync(service)

    executions = children(admin, assignation["id"], "Exécution")  # C-20
    names = [line.split(";")[0].strip() for line in debtors.splitlines()]
    assert sorted(e["subject"].split(" — ")[1].split(" (")[0] for e in executions) == sorted(names)
    assert len(executions) == len(names)
    for execution in executions:
        assert float(field(execution, "Coût estimé")) == 400  # C-26
        created = paris_date(datetime.fromisoformat(execution["created_on"].replace("Z", "+00:00")))
        assert field(execution, "Échéance") == add_months(created, 1).isoformat()  # C-26: monthly review
    assert any("exécuter immédiatement après la signification" in n for n in admin.notes(assignation["id"]))
    assert_replay_creates_nothing(admin, service)


def test_unfavourable_judgment_an_appeal_to_study(admin, service, clerk, gestionnaire):
    _, _, lit = served_unpaid(admin, service, clerk, gestionnaire, in_premises=True, debt="5000", rent_only="0")
    [assignation] = children(admin, lit["id"], "Assignation")
    set_fields(admin, assignation["id"], **{"Issue du jugement": "Défavorable"})
    sync(service)
    assert children(admin, assignation["id"], "Exécution") == []
    [appeal] = [t for t in children(admin, assignation["id"], "Tâche gestionnaire") if "appel" in t["subject"]]
    assert appeal["assigned_to"]["id"] == gestionnaire.id  # C-21
    assert_replay_creates_nothing(admin, service)


def test_eviction_through_to_tenant_departure(admin, service, clerk, gestionnaire):
    mandate, _, lit = served_unpaid(admin, service, clerk, gestionnaire, in_premises=True, debt="5000",
                                    rent_only="0")
    [assignation] = children(admin, lit["id"], "Assignation")
    set_fields(admin, assignation["id"], **{"Issue du jugement": "Favorable", "Expulsion ordonnée": "1"})
    sync(service)
    [eviction] = children(admin, assignation["id"], "Expulsion")  # C-27
    assert float(field(eviction, "Coût estimé")) == 300

    set_fields(admin, eviction["id"], **{"Commandement quitter le": "2027-09-15"})
    sync(service)
    [ordered] = [n for n in admin.notes(eviction["id"]) if "Commandement de quitter" in n]
    assert "15/11/2027" in ordered and "trêve hivernale" in ordered and "01/04/2028" in ordered  # L-15

    set_fields(admin, eviction["id"], **{"Maintien dans les lieux": "1"})
    sync(service)
    assert any("force publique" in n and "3 000,00" in n.replace("\u202f", " ") for n in admin.notes(eviction["id"]))

    set_fields(admin, eviction["id"], **{"Départ du locataire le": "2028-04-20"})
    sync(service)
    [departure] = children(admin, eviction["id"], "Tâche gestionnaire")
    assert "20 06 02" in departure["subject"] and departure["assigned_to"]["id"] == gestionnaire.id
    assert_replay_creates_nothing(admin, service)


@pytest.mark.parametrize("gli, account, indemnified, kind, receiver, rule", [
    ("0", "Créditeur", "0", "Autre", "Comptabilité", "C-16"),
    ("1", "Créditeur", "0", "Autre", "Comptabilité", "C-29"),
    ("1", "Débiteur", "0", "Honoraires", "Comptabilité", "C-29"),
    ("1", "Débiteur", "0", "Autre", "DG", "C-29"),
    ("1", "Débiteur", "1", "Autre", "Comptabilité", "C-30"),
])
def test_invoices_routed_per_the_gli_annex(admin, service, clerk, gestionnaire, gli, account, indemnified, kind,
                                          receiver, rule):
    mandate, _, lit = open_file(admin, service, clerk, gestionnaire, account=account)
    set_fields(admin, lit["id"], **{"Lot sous GLI": gli, "Propriétaire indemnisé GLI": indemnified})
    invoice = admin.create_issue(service.project, "Paiement fournisseur", "Facture avocat",
                                 {"N° mandat": mandate, "Nature de la dépense": kind}, as_user=clerk.login)
    sync(service)
    invoice = admin.issue(invoice["id"])
    assert invoice["parent"]["id"] == lit["id"]  # C-16
    assert invoice["assigned_to"]["name"] == receiver
    assert any(f"règle {rule}" in n for n in admin.notes(invoice["id"]))
    assert_replay_creates_nothing(admin, service)


def test_bailiff_file_missing_lease_then_complete(admin, service, clerk, gestionnaire):
    mandate, reg, lit = open_file(admin, service, clerk, gestionnaire, account="Créditeur")
    admin.attach(lit["id"], "Acte de caution.pdf", b"%PDF-1.4")
    admin.attach(reg["id"], "mandat-gestion.pdf", b"%PDF-1.4")  # on the register ticket
    sync(service)

    [checklist] = [n for n in admin.notes(lit["id"]) if "Dossier pour le commissaire" in n]
    assert "manque : bail" in checklist and "présent : acte de caution" in checklist
    [task] = [t for t in children(admin, lit["id"], "Tâche gestionnaire") if "Pièce manquante" in t["subject"]]
    assert "bail" in task["subject"] and task["assigned_to"]["id"] == gestionnaire.id  # C-7

    admin.attach(lit["id"], "Bail signé.pdf", b"%PDF-1.4")
    set_fields(admin, lit["id"], **{"Dossier transmis le": "2027-04-12"})
    sync(service)
    assert any("Dossier complet" in n for n in admin.notes(lit["id"]))
    assert any("Dossier complet transmis au commissaire de justice" in n for n in admin.notes(lit["id"]))  # C-8
    assert admin.issue(lit["id"])["parent"]["id"] == reg["id"]  # C-9
    assert_replay_creates_nothing(admin, service)


def test_bailiff_file_waits_for_the_funds_request_then_c8_on_it_and_c10_served_act(admin, service, clerk,
                                                                                   gestionnaire):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire, account="Débiteur")
    for name in ("bail.pdf", "caution.pdf"):
        admin.attach(lit["id"], name, b"%PDF-1.4")
    admin.attach(reg["id"], "etat-civil-proprietaire.pdf", b"%PDF-1.4")
    sync(service)
    assert not any("Dossier pour le commissaire" in n for n in admin.notes(lit["id"]))  # no funds yet (C-6)

    [funds] = children(admin, lit["id"], "Demande de fonds")
    admin.update_issue(funds["id"], status_id=admin.ids("/issue_statuses.json", "issue_statuses")["Fermé"])
    set_fields(admin, lit["id"], **{"Dossier transmis le": "2027-04-12"})
    sync(service)
    assert any("Dossier complet :" in n for n in admin.notes(lit["id"]))
    assert any("Dossier complet transmis au commissaire de justice" in n for n in admin.notes(funds["id"]))  # C-8

    admin.attach(lit["id"], "Commandement de payer signifié.pdf", b"%PDF-1.4")
    sync(service)
    [task] = [t for t in children(admin, lit["id"], "Tâche gestionnaire") if "acte signifié" in t["subject"]]
    assert task["assigned_to"]["id"] == gestionnaire.id and "GED" in task["description"]  # C-10
    assert_replay_creates_nothing(admin, service)
