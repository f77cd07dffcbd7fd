"""Issue 15, "bounded texts" and failure 6: in a prevention run (P-4, P-6 on the 10th;
P-10, P-12 → C-3 on the 17th) one tenant's refusal by Redmine never stops the others.

The in-memory Redmine refuses one tenant's ticket (a hook on ``create_issue``, as Redmine
answers 422 for an assignee it cannot take, a value it will not store, a tracker not
enabled); the other tenants get their letters and tickets, the run finishes, the refusal
is in the run's summary and in a note on the run's phase-file ticket, and it is tried
again later. Redmine down still stops the run, which a later check completes."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date

import pytest

from app.prevention import service
from app.prevention.models import CaseEnd, PreventionCase
from integrations.redmine.interface import RedmineRejected, RedmineUnavailable, SchemaMissing
from tests.unit.test_prevention import ctx  # noqa: F401 (fixture)
from tests.unit.test_prevention import letters, line, load, run, tickets

REFUSED = "création d'un ticket : Redmine a refusé (Assigné n'est pas valide)"


class Refuse:
    """The fake Redmine refuses to create the ``tracker`` ticket of tenant ``ref`` while on."""

    def __init__(self, ctx, monkeypatch, tracker: str, ref: str, error: Exception | None = None):
        self.on, self.tracker, self.ref, self.error = True, tracker, ref, error or RedmineRejected(REFUSED)
        self.create = ctx.redmine.create_issue
        monkeypatch.setattr(ctx.redmine, "create_issue", self)

    def __call__(self, new):
        if self.on and new.tracker == self.tracker and new.custom_fields.get("Réf. locataire") == self.ref:
            raise self.error
        return self.create(new)


def two_terms(*refs: str, **kwargs) -> list[str]:
    return [row for ref in refs for row in (line(ref, "05/12/2026", **kwargs), line(ref, "05/01/2027", **kwargs))]


def three_terms(*refs: str) -> list[str]:
    return [line(ref, due) for ref in refs for due in ("05/01/2027", "05/02/2027", "05/03/2027")]


def phase_file(ctx, phase: int):
    [file] = [t for t in tickets(ctx, "Fichier de relance")
              if t.subject.startswith(f"Fichier de relance phase {phase}")]
    return ctx.redmine.issues[file.id]


def refusal_notes(ctx, issue_id: int) -> list[str]:
    return [n for n in ctx.redmine.notes(issue_id) if "Refus de Redmine" in n]


def case_of(ctx, ref: str) -> PreventionCase:
    [(case, _)] = service.cases_of(ctx.db, ref)[:1]
    return case


# --- P-4, P-6: a refused call ticket ---------------------------------------------------------------
def test_a_refused_call_ticket_stops_no_other_tenant(ctx, monkeypatch, caplog):
    """Before: the RedmineRejected of B's call ticket stopped the whole run of the 10th, for
    A and C too, and again at each resume."""
    Refuse(ctx, monkeypatch, "Relance impayés", "B")
    load(ctx, date(2027, 1, 8), *two_terms("A", "B", "C"))
    with caplog.at_level(logging.WARNING, logger="app.prevention.flows"):
        [report] = run(ctx, date(2027, 1, 11))
    assert report.state == "fait" and report.letters == {2: 3} and report.calls == 2
    assert [(r.tenant_ref, r.step.value) for r in report.refusals] == [("B", "appel")]
    # The others: their call tickets; B's letter n°2 written, recorded, and in the phase file.
    assert sorted(t.field("Réf. locataire") for t in tickets(ctx, "Relance impayés")) == ["A", "C"]
    assert letters(ctx, "A") == letters(ctx, "B") == letters(ctx, "C") == [2]
    file = phase_file(ctx, 2)
    rows = list(csv.reader(io.StringIO(ctx.redmine.files[(file.id, "relance-phase-2-2027-01.csv")]
                                       .decode("utf-8-sig")), delimiter=";"))
    assert [r[0] for r in rows[1:]] == ["A", "B", "C"]
    # The run is done, and says so; its stored summary names the refusal.
    summary = str(report)
    assert "1 refus de Redmine" in summary and "B" in summary and "Assigné n'est pas valide" in summary
    stored = service.get_run(ctx.db, "2027-01", report.kind)
    assert stored.finished_at is not None and stored.summary == summary
    # One French note on the phase-2 file: who, what Redmine refused, what to do.
    [note] = refusal_notes(ctx, file.id)
    assert "Locataire réf. B" in note and "relance téléphonique (phase 2, règle P-6)" in note and "Assigné n" in note
    assert "À faire" in note and "réf. A" not in note and "réf. C" not in note
    assert "Locataire B" not in note  # the reference, not the name
    # A WARNING per refusal, with the tenant's reference and no other personal data.
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "« B »" in warning.getMessage() and "Locataire B" not in warning.getMessage()
    assert "06 00" not in warning.getMessage()
    # The run is done: a later check changes nothing, posts no second note.
    assert [r.state for r in run(ctx, date(2027, 1, 12))] == ["déjà fait"]
    assert len(refusal_notes(ctx, file.id)) == 1


def test_a_refused_call_is_made_at_the_next_daily_check_once_redmine_accepts_it(ctx, monkeypatch):
    refuse = Refuse(ctx, monkeypatch, "Relance impayés", "B", SchemaMissing("tracker « Relance impayés » absent"))
    load(ctx, date(2027, 1, 8), *two_terms("A", "B"))
    run(ctx, date(2027, 1, 11))
    assert [t.field("Réf. locataire") for t in tickets(ctx, "Relance impayés")] == ["A"]
    [still] = run(ctx, date(2027, 1, 12))  # still refused: nothing new, no second note
    assert still.state == "déjà fait" and [r.tenant_ref for r in still.refusals] == ["B"]
    assert len(refusal_notes(ctx, phase_file(ctx, 2).id)) == 1
    refuse.on = False  # the administrator fixed it
    [report] = run(ctx, date(2027, 1, 13))
    assert report.state == "déjà fait" and report.resolved == 1 and report.refusals == []
    assert "1 fait(s) après refus" in str(report)
    calls = {t.field("Réf. locataire"): t for t in tickets(ctx, "Relance impayés")}
    assert set(calls) == {"A", "B"} and calls["B"].field("Phase de relance") == "2"
    [_, done] = refusal_notes(ctx, phase_file(ctx, 2).id)
    assert f"#{calls['B'].id}" in done and "Locataire réf. B" in done
    assert letters(ctx, "B") == [2]  # no second letter
    run(ctx, date(2027, 1, 14))
    assert len(tickets(ctx, "Relance impayés")) == 2 and len(refusal_notes(ctx, phase_file(ctx, 2).id)) == 2


# --- P-10, P-12 → C-3: a refused hand-over ----------------------------------------------------------
def test_a_refused_hand_over_is_not_handed_over_and_the_next_run_tries_again(ctx, monkeypatch):
    """Before: the refusal of B's Contentieux ticket stopped the run of the 17th for A too."""
    refuse = Refuse(ctx, monkeypatch, "Contentieux", "B")
    load(ctx, date(2027, 3, 9), *three_terms("A", "B"))
    [_, report] = run(ctx, date(2027, 3, 17))
    assert report.state == "fait" and report.letters == {3: 2} and report.handed_over == 1
    assert [(r.tenant_ref, r.step.value) for r in report.refusals] == [("B", "transmission")]
    assert [t.field("Réf. locataire") for t in tickets(ctx, "Contentieux")] == ["A"]
    assert case_of(ctx, "A").end is CaseEnd.handed_over
    assert case_of(ctx, "B").end is None and case_of(ctx, "B").litigation_issue_id is None  # not handed over
    assert letters(ctx, "B") == [3]  # the letter n°3 went, and is in the phase-3 file
    [note] = refusal_notes(ctx, phase_file(ctx, 3).id)
    assert "Locataire réf. B" in note and "transmission au contentieux" in note and "n'est pas transmis" in note
    assert "1 transmis au contentieux" in str(report) and "1 refus de Redmine" in str(report)
    # Still refused at the next daily checks: tried again, not handed over, no second note.
    [_, again] = run(ctx, date(2027, 3, 18))
    assert again.state == "déjà fait" and [r.tenant_ref for r in again.refusals] == ["B"]
    assert case_of(ctx, "B").end is None and len(refusal_notes(ctx, phase_file(ctx, 3).id)) == 1
    # Fixed by April: April's run of the 17th (a Saturday: the 19th) hands B over, once.
    refuse.on = False
    load(ctx, date(2027, 4, 9), *three_terms("A", "B"), line("B", "05/04/2027"))
    run(ctx, date(2027, 4, 12))
    [_, april] = run(ctx, date(2027, 4, 19))
    assert april.handed_over == 1 and april.refusals == []
    assert sorted(t.field("Réf. locataire") for t in tickets(ctx, "Contentieux")) == ["A", "B"]
    assert case_of(ctx, "B").end is CaseEnd.handed_over
    run(ctx, date(2027, 4, 20))
    assert len(tickets(ctx, "Contentieux")) == 2


def test_a_refused_hand_over_is_made_at_the_next_daily_check_once_redmine_accepts_it(ctx, monkeypatch):
    refuse = Refuse(ctx, monkeypatch, "Contentieux", "B")
    load(ctx, date(2027, 3, 9), *three_terms("A", "B"))
    run(ctx, date(2027, 3, 17))
    refuse.on = False
    [_, report] = run(ctx, date(2027, 3, 18))
    assert report.resolved == 1 and report.refusals == [] and report.handed_over == 1
    [litigation] = [t for t in tickets(ctx, "Contentieux") if t.field("Réf. locataire") == "B"]
    assert case_of(ctx, "B").end is CaseEnd.handed_over and case_of(ctx, "B").litigation_issue_id == litigation.id
    assert f"#{litigation.id}" in refusal_notes(ctx, phase_file(ctx, 3).id)[-1]
    run(ctx, date(2027, 3, 19))
    assert len(tickets(ctx, "Contentieux")) == 2 and letters(ctx, "B") == [3]


# --- Redmine down, or the service refused as a whole: the run stops -------------------------------
def test_redmine_down_still_stops_the_run_and_the_resume_keeps_the_refusals(ctx, monkeypatch):
    Refuse(ctx, monkeypatch, "Relance impayés", "B")
    load(ctx, date(2027, 1, 8), *two_terms("A", "B", "C"))
    create = ctx.redmine.create_issue

    def down_at_c(new):
        if new.custom_fields.get("Réf. locataire") == "C":
            raise RedmineUnavailable("Redmine injoignable (fake)")
        return create(new)

    monkeypatch.setattr(ctx.redmine, "create_issue", down_at_c)
    with pytest.raises(RedmineUnavailable):
        run(ctx, date(2027, 1, 11))
    assert service.get_run(ctx.db, "2027-01", service.RunKind.letters).finished_at is None
    monkeypatch.setattr(ctx.redmine, "create_issue", create)  # back up; B still refused
    [report] = run(ctx, date(2027, 1, 11))
    assert report.state == "fait" and report.letters == {2: 3} and report.calls == 2
    assert [r.tenant_ref for r in report.refusals] == ["B"]  # refused before the outage: still reported
    assert sorted(t.field("Réf. locataire") for t in tickets(ctx, "Relance impayés")) == ["A", "C"]
    [note] = refusal_notes(ctx, phase_file(ctx, 2).id)
    assert "Locataire réf. B" in note


def test_the_service_refused_as_a_whole_stops_the_run(ctx, monkeypatch):
    """A refusal is one tenant's only while Redmine still accepts the service itself: with
    its key revoked or its account locked every ticket is refused, and finishing the run
    would leave every call unmade. The run stops (and resumes), as with Redmine down."""
    Refuse(ctx, monkeypatch, "Relance impayés", "B", RedmineRejected("accès refusé par Redmine (AuthError)"))
    monkeypatch.setattr(ctx.redmine, "ping", lambda: (_ for _ in ()).throw(
        RedmineRejected("connexion à Redmine : accès refusé par Redmine (AuthError)")))
    load(ctx, date(2027, 1, 8), *two_terms("A", "B"))
    with pytest.raises(RedmineRejected):
        run(ctx, date(2027, 1, 11))
    assert service.get_run(ctx.db, "2027-01", service.RunKind.letters).finished_at is None
    assert letters(ctx, "B") == []


# --- P-5: the note of a broken plan refused ----------------------------------------------------------
def test_a_broken_plan_whose_ticket_is_gone_stops_no_run(ctx, caplog):
    """The plan's Relance impayés ticket deleted (404): before, the run stopped for everyone.
    Now the plan ends anyway (the phases resume), the refusal is reported; with no phase
    file in the run to note it on, it is logged as an ERROR and kept in the summary."""
    from app.prevention.flows import reconcile_reminder_ticket
    from tests.unit.test_prevention import at

    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", "400,00"), line("A", "05/01/2027", "400,00"))
    run(ctx, date(2027, 1, 11))
    [call] = tickets(ctx, "Relance impayés")
    ctx.redmine.edit(call.id, **{"Plan accepté le": "2027-01-15", "Mensualités du plan": "4"})
    at(ctx, date(2027, 1, 15))
    reconcile_reminder_ticket(ctx, ctx.redmine.get_issue(call.id))
    del ctx.redmine.issues[call.id]
    load(ctx, date(2027, 2, 9), *(line("A", f"05/{m:02d}/202{7 if m < 12 else 6}", "400,00") for m in (12, 1, 2)))
    with caplog.at_level(logging.WARNING, logger="app.prevention.flows"):
        [report] = run(ctx, date(2027, 2, 10))
    assert report.state == "fait" and [(r.tenant_ref, r.step.value) for r in report.refusals] == [("A", "plan")]
    assert case_of(ctx, "A").plan_broken_on == date(2027, 2, 10)
    assert "A" in str(report) and "introuvable" in str(report)
    assert any(r.levelno == logging.ERROR and "aucun ticket Fichier de relance" in r.getMessage()
               for r in caplog.records)


# --- issue 15, failure 6: a very long name -----------------------------------------------------------
def test_the_longest_name_the_ledger_keeps_gets_its_call_and_its_hand_over(ctx):
    """A 300-character name is rejected at import, by line, and reported (the store keeps
    255: ``MAX_LENGTHS``); the longest it keeps gets a call ticket and a Contentieux
    ticket, their subjects cut to Redmine's 255 characters."""
    long = "Nom-" + "N" * 251
    report = load(ctx, date(2027, 1, 8), line("TOO", "05/01/2027", name="N" * 300), *two_terms("L", name=long))
    assert report.rejects == ["ligne 2 : colonne « nom » trop longue : 255 caractères au plus"]
    [january] = run(ctx, date(2027, 1, 11))
    assert january.refusals == [] and january.calls == 1
    [call] = tickets(ctx, "Relance impayés")
    assert len(call.subject) == 255 and call.subject.endswith("…")
    load(ctx, date(2027, 3, 9), *(line("L", due, name=long) for due in ("05/12/2026", "05/01/2027", "05/02/2027")))
    [_, march] = run(ctx, date(2027, 3, 17))
    assert march.handed_over == 1 and march.refusals == []
    [litigation] = tickets(ctx, "Contentieux")
    assert len(litigation.subject) == 255 and litigation.field("Débiteurs") == f"{long} ; locataire"
