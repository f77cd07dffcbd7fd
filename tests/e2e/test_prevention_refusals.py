"""Issue 15, failure 6, against the real local Redmine: in the run of the 10th (P-4, P-6),
Redmine refuses one tenant's call ticket for real — the office gave the « Téléphone » field
a maximum length his number exceeds ("Téléphone est trop long") — and the other tenants,
the longest name the ledger keeps among them, get their letters and tickets; the run
finishes, its summary and a note on the phase file name the refusal; once the field takes
the number, the next check makes the call. Before: the whole run stopped."""

from __future__ import annotations

import uuid

from tests.e2e.redmine_admin import field, rails_runner
from tests.e2e.test_prevention import issues_of, month

LONG_NAME = "Nom-" + "N" * 251  # the longest the ledger keeps (255); 300 is rejected at import, by line


def phone_max_length(length: int | None) -> None:
    """Administration › Champs personnalisés › Téléphone › Longueur maximale (global: put back)."""
    rails_runner(f"IssueCustomField.find_by!(name: 'Téléphone').update!(max_length: {length or 'nil'})")


def test_one_tenants_refused_call_ticket_stops_no_other(admin, service, tmp_path):
    tag = uuid.uuid4().hex[:6]
    try:
        phone_max_length(14)
        service.env = service.env | {"RECOUVREMENT_PREVENTION__OUTPUT_DIR": str(tmp_path / "sorties")}

        def row(ref, due, name=None, phone="06 12 34 56 78", lease="01/01/2019"):
            return (f"{ref};{name or 'Locataire ' + ref};L-{ref};Agence Nord;Nord;{lease};{phone};M-{tag};PROP-7;"
                    f"{due};720,00")

        rows = [r for due in ("05/12/2026", "05/01/2027") for r in (
            row("LOC-A", due), row("LOC-V", due, phone="+33 6 12 34 56 78 / 01 23 45 67 89"),
            row("LOC-L", due, name=LONG_NAME), row("LOC-TOO", due, name="N" * 300))]
        imported, ran = month(service, tmp_path, "janvier.csv", rows, "2027-01-08T09:00:00+01:00", "2027-01-11")
        assert "6 ligne(s) chargée(s), 2 rejetée(s)" in imported and "trop longue : 255 caractères au plus" in imported
        assert "lettre 2 × 3" in ran and "2 appel(s)" in ran and "1 refus de Redmine (LOC-V (appel phase 2)" in ran

        calls = {field(c, "Réf. locataire"): c for c in issues_of(admin, service, "Relance impayés")}
        assert set(calls) == {"LOC-A", "LOC-L"}
        assert len(calls["LOC-L"]["subject"]) == 255 and calls["LOC-L"]["subject"].endswith("…")
        [file] = issues_of(admin, service, "Fichier de relance")
        assert file["subject"].endswith("(3 locataire(s))")  # LOC-V's letter n°2 went, and is listed
        [note] = [n for n in admin.notes(file["id"]) if "Refus de Redmine" in n]
        assert "Locataire réf. LOC-V" in note and "relance téléphonique (phase 2, règle P-6)" in note
        assert "Téléphone" in note and "À faire" in note and "LOC-A" not in note and "Locataire LOC-V" not in note

        again = service.cli("prevention", "run", "--date", "2027-01-12", "--now", "2027-01-12T08:00:00+01:00").stdout
        assert "déjà fait" in again and "1 toujours refusé(s)" in again and "×" not in again
        assert len([n for n in admin.notes(file["id"]) if "Refus de Redmine" in n]) == 1

        phone_max_length(None)  # fixed by the administrator
        later = service.cli("prevention", "run", "--date", "2027-01-13", "--now", "2027-01-13T08:00:00+01:00").stdout
        assert "1 fait(s) après refus, 0 toujours refusé(s)" in later
        calls = {field(c, "Réf. locataire"): c for c in issues_of(admin, service, "Relance impayés")}
        assert set(calls) == {"LOC-A", "LOC-L", "LOC-V"}
        done = [n for n in admin.notes(file["id"]) if "Refus de Redmine" in n][-1]
        assert f"#{calls['LOC-V']['id']}" in done

        # P-12 → C-3: the longest name handed over to litigation, its subject cut.
        march = [row("LOC-L", due, name=LONG_NAME) for due in ("05/01/2027", "05/02/2027", "05/03/2027")]
        _, ran = month(service, tmp_path, "mars.csv", march, "2027-03-09T09:00:00+01:00", "2027-03-17")
        assert "lettre 3 × 1" in ran and "1 transmis au contentieux" in ran and "refus" not in ran
        [litigation] = issues_of(admin, service, "Contentieux")
        assert len(litigation["subject"]) == 255 and field(litigation, "Débiteurs") == f"{LONG_NAME} ; locataire"
    finally:
        phone_max_length(None)
