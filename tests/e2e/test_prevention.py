"""Issue 6 end to end: from the ledger import through three monthly runs to the Contentieux
ticket, against the real local Redmine, all through the CLI; run twice, nothing doubles."""

from __future__ import annotations

import uuid

from app.letters import letter_text
from app.templates import format_eur
from tests.e2e.redmine_admin import field
from tests.e2e.test_cancellations import group_id
from tests.e2e.test_recovery import snapshot

HEADER = "ref_locataire;nom;lot;agence;secteur;debut_bail;telephone;mandat;ref_proprietaire;echeance;montant"


def issues_of(admin, service, tracker):
    tracker_id = admin.ids("/trackers.json", "trackers")[tracker]
    found = admin._call("GET", "/issues.json", params={"project_id": service.project, "status_id": "*",
                                                        "tracker_id": tracker_id, "limit": 100})["issues"]
    return [admin.issue(i["id"]) for i in found]


def month(service, tmp_path, name, rows, import_at, run_on):
    ledger = tmp_path / name
    ledger.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    imported = service.cli("prevention", "import", str(ledger), "--now", import_at).stdout
    ran = service.cli("prevention", "run", "--date", run_on, "--now", f"{run_on}T08:00:00+01:00").stdout
    return imported, ran


def test_ledger_to_litigation_in_three_monthly_runs_twice_without_duplicates(admin, service, gestionnaire, tmp_path):
    service.env = service.env | {"RECOUVREMENT_PREVENTION__OUTPUT_DIR": str(tmp_path / "sorties")}
    mandate = f"M-{uuid.uuid4().hex[:6]}"
    register = admin.create_issue(service.project, "Registre des mandats", f"Mandat {mandate}", {"N° mandat": mandate},
                                  assigned_to_id=gestionnaire.id)

    def row(ref, due, amount="720,00"):
        return f"{ref};Locataire {ref};L-{ref};Agence Nord;Nord;01/01/2019;06 12 34 56 78;{mandate};PROP-7;{due};{amount}"

    months = [
        ("janvier.csv", [row("LOC-A", "05/01/2027"), row("LOC-B", "05/01/2027"), "LOC-X;;;;;;;;;pas une date;1"],
         "2027-01-08T09:00:00+01:00", "2027-01-11"),  # the 10th is a Sunday
        ("fevrier.csv", [row("LOC-A", "05/01/2027"), row("LOC-A", "05/02/2027")],  # LOC-B has paid
         "2027-02-09T09:00:00+01:00", "2027-02-10"),
        ("mars.csv", [row("LOC-A", "05/01/2027"), row("LOC-A", "05/02/2027"), row("LOC-A", "05/03/2027")],
         "2027-03-09T09:00:00+01:00", "2027-03-17"),
    ]
    outputs = [month(service, tmp_path, *m) for m in months]
    imported, ran = outputs[0]
    assert "2 ligne(s) chargée(s), 1 rejetée(s)" in imported and "rejet ligne 4" in imported
    assert "lettre 1 × 2" in ran
    assert "lettre 2 × 1" in outputs[1][1] and "1 soldé(s)" in outputs[1][1]
    assert "lettre 3 × 1" in outputs[2][1] and "1 transmis au contentieux" in outputs[2][1]

    # P-6: the mandatory phone follow-up of phase 2, with the phone and the balance.
    [call] = [c for c in issues_of(admin, service, "Relance impayés") if field(c, "Phase de relance") == "2"]
    assert field(call, "Réf. locataire") == "LOC-A" and field(call, "Téléphone") == "06 12 34 56 78"
    assert float(field(call, "Solde dû")) == 1440.0 and field(call, "Plan d'apurement éligible") == "1"
    # P-7 … P-10: one file per phase, for its recipients, with the list and the letters.
    files = {f["subject"].split(" — ")[0]: f for f in issues_of(admin, service, "Fichier de relance")}
    assert files["Fichier de relance phase 2"]["assigned_to"]["id"] == group_id(admin, "CESF")
    phase3 = files["Fichier de relance phase 3"]
    assert phase3["assigned_to"]["id"] == group_id(admin, "Contentieux et suivi social")
    attached = admin._call("GET", f"/issues/{phase3['id']}.json", params={"include": "attachments"})["issue"]
    names = {a["filename"]: a for a in attached["attachments"]}
    assert set(names) == {"relance-phase-3-2027-03.csv", "relance-phase-3-2027-03.xlsx",
                          "relance-phase-3-2027-03-lettres.docx"}
    letters = letter_text(admin.http.get(names["relance-phase-3-2027-03-lettres.docx"]["content_url"]).content)
    assert "Lettre de relance n° 3" in letters and "Contentieux et suivi social" in letters and format_eur(2160) in letters
    # P-12 → C-3: the Contentieux ticket, under the register, filled from the ledger.
    [litigation] = issues_of(admin, service, "Contentieux")
    assert litigation["parent"]["id"] == register["id"]
    assert field(litigation, "Réf. locataire") == "LOC-A" and float(field(litigation, "Montant de la dette")) == 2160.0
    assert field(litigation, "Date du dernier impayé") == "2027-03-05"
    # The litigation flow takes it from there (here: it asks for the owner's account).
    service.cli("sync")
    assert any("Compte propriétaire" in n for n in admin.notes(litigation["id"]))
    social = group_id(admin, "Contentieux et suivi social")
    assert admin.issue(litigation["id"])["assigned_to"]["id"] == social  # not "back" to the service's account

    # Everything again: nothing new in Redmine, no second letter.
    before = snapshot(admin, service)
    again = [month(service, tmp_path, *m) for m in months]
    assert all("déjà chargé" in imported for imported, _ in again)
    assert all("déjà fait" in ran and "×" not in ran for _, ran in again)  # no letter sent
    service.cli("sync")
    assert snapshot(admin, service) == before
    status = service.cli("prevention", "status", "LOC-A").stdout
    assert status.count("lettre n°") == 3 and "transmis au contentieux" in status
