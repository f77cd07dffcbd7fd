"""Prevention (P-1 … P-13) on the in-memory Redmine: the ledger import, the kinds of
debtors at their window edges, the run days, the phases month after month, plans, the
phone sample and the phase files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.clock import Clock
from app.config import Prevention, Settings
from app.prevention import service
from app.prevention.flows import import_ledger, reconcile_reminder_ticket, run_due
from app.prevention.ledger import LedgerFileError
from app.prevention.models import DebtorKind, LedgerImport
from app.prevention.phases import debtor_kind, plan_allowed_balance, plan_schedule, run_day
from integrations.redmine.interface import RedmineUnavailable
from tests.unit.helpers import make_context

HEADER = "ref_locataire;nom;lot;agence;secteur;debut_bail;telephone;mandat;ref_proprietaire;echeance;montant"


def line(ref, due, amount="650,00", name=None, agency="Agence Nord", lease="01/01/2020", mandate="M-1"):
    return f"{ref};{name or 'Locataire ' + ref};L-{ref};{agency};Nord;{lease};06 00 00 00 00;{mandate};PROP-1;{due};{amount}"


def ledger(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


@pytest.fixture
def ctx(tmp_path):
    settings = Settings(prevention=Prevention(output_dir=tmp_path / "sorties"))
    context = make_context(tmp_path, settings)
    context.redmine.principals.update({"Prévention des impayés": 600, "CESF": 610, "Contentieux et suivi social": 620,
                                       "Agence Nord": 630})
    return context


def at(ctx, day: date, hour: int = 9):
    ctx.clock = Clock(datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC))


def load(ctx, day: date, *lines: str):
    at(ctx, day)
    return import_ledger(ctx, f"impayes-{day}.csv", ledger(*lines))


def run(ctx, day: date):
    at(ctx, day, 10)
    return run_due(ctx, day)


def tickets(ctx, tracker):
    return [i for i in ctx.redmine.issues.values() if i.tracker == tracker]


def letters(ctx, ref):
    return [(letter.phase) for case, sent in service.cases_of(ctx.db, ref) for letter in sent]


# --- import ------------------------------------------------------------------------------------
def test_import_keeps_good_rows_and_reports_the_others_by_line(ctx):
    report = load(ctx, date(2027, 1, 5),
                  line("A", "05/01/2027"),
                  line("B", "2027-01-05", "1 234,56 €"),
                  line("C", "31/02/2027"),  # line 4: no such day
                  line("D", "05/01/2027", "abc"),  # line 5
                  ";;;;;;;;;05/01/2027;100",  # line 6: no tenant
                  line("A", "05/01/2027"))  # line 7: the same term twice
    assert report.ledger.rows_loaded == 2 and not report.already_loaded
    assert [r.split(" : ")[0] for r in report.rejects] == ["ligne 4", "ligne 5", "ligne 6", "ligne 7"]
    assert "montant illisible « abc »" in report.rejects[1]
    assert report.rejects[2] == "ligne 6 : colonne « ref_locataire » vide"
    tenants = service.arrears(ctx.db, report.ledger.id)
    assert tenants["B"].balance == Decimal("1234.56")


def test_a_partial_file_loads_its_complete_rows(ctx):
    content = ledger(line("A", "05/01/2027"), line("B", "05/01/2027"))[:-40]  # cut in the last row
    report = import_ledger(ctx, "coupe.csv", content)
    assert report.ledger.rows_loaded == 1 and report.rejects and report.rejects[0].startswith("ligne 3")


def test_missing_columns_load_nothing(ctx):
    with pytest.raises(LedgerFileError, match="echeance"):
        import_ledger(ctx, "x.csv", b"ref_locataire;nom;montant\nA;Dupont;12\n")
    with ctx.db.session() as session:
        assert session.query(LedgerImport).count() == 0


def test_a_crash_while_storing_leaves_nothing_half_loaded(ctx, monkeypatch):
    built = []

    def failing_line(**values):
        built.append(values)
        if len(built) == 2:
            raise RuntimeError("disque plein")
        return original(**values)

    original = service.LedgerLine
    monkeypatch.setattr(service, "LedgerLine", failing_line)
    with pytest.raises(RuntimeError):
        import_ledger(ctx, "x.csv", ledger(line("A", "05/01/2027"), line("B", "05/01/2027")))
    with ctx.db.session() as session:
        assert session.query(LedgerImport).count() == 0
    monkeypatch.setattr(service, "LedgerLine", original)
    assert import_ledger(ctx, "x.csv", ledger(line("A", "05/01/2027"), line("B", "05/01/2027"))).ledger.rows_loaded == 2


def test_the_same_file_twice_is_loaded_once(ctx):
    first = load(ctx, date(2027, 1, 5), line("A", "05/01/2027"))
    again = load(ctx, date(2027, 1, 6), line("A", "05/01/2027"))
    assert again.already_loaded and again.ledger.id == first.ledger.id
    next_month = load(ctx, date(2027, 2, 6), line("A", "05/01/2027"))  # nothing changed: February's ledger
    assert not next_month.already_loaded and next_month.ledger.period == "2027-02"


# --- P-2: kinds at their window edges ------------------------------------------------------------
ON = date(2027, 3, 10)


@pytest.mark.parametrize("lease_start, previous_end, kind", [
    (date(2026, 9, 11), None, DebtorKind.new_entrant),  # lease 6 months less a day before
    (date(2026, 9, 10), None, DebtorKind.accidental),  # exactly 6 months: no longer new
    (date(2020, 1, 1), date(2026, 3, 10), DebtorKind.recidivist),  # previous episode ended 12 months ago
    (date(2020, 1, 1), date(2026, 3, 9), DebtorKind.accidental),  # 12 months and a day
    (date(2026, 12, 1), date(2027, 1, 10), DebtorKind.new_entrant),  # both: a new entrant (P-3 routing)
    (None, None, DebtorKind.accidental),
])
def test_debtor_kinds(lease_start, previous_end, kind):
    assert debtor_kind(lease_start, previous_end, ON, Settings()) is kind


# --- run days ----------------------------------------------------------------------------------
@pytest.mark.parametrize("year, month, day, expected", [
    (2027, 2, 10, date(2027, 2, 10)),  # a Wednesday
    (2027, 1, 10, date(2027, 1, 11)),  # a Sunday → Monday
    (2026, 10, 10, date(2026, 10, 12)),  # a Saturday → Monday
    (2023, 4, 10, date(2023, 4, 11)),  # Easter Monday → Tuesday
    (2022, 4, 17, date(2022, 4, 19)),  # the 17th on Easter Sunday, then Easter Monday → Tuesday
    (2027, 7, 17, date(2027, 7, 19)),  # a Saturday
])
def test_run_days_move_to_the_next_working_day(year, month, day, expected):
    assert run_day(year, month, day, Settings()) == expected


# --- the phases, month after month ----------------------------------------------------------------
def test_three_months_to_litigation_with_a_tenant_paying_between_phases(ctx):
    ctx.redmine.add("Registre des mandats", "Mandat M-1", assigned_to_id=7, **{"N° mandat": "M-1"})
    # January: A and B one term each (letter 1).
    load(ctx, date(2027, 1, 8), line("A", "05/01/2027"), line("B", "05/01/2027"))
    assert run(ctx, date(2027, 1, 9)) == []  # before the 10th (a Sunday → Monday 11th)
    [report] = run(ctx, date(2027, 1, 11))  # the 17th (a Sunday) → Monday 18th: not yet
    assert report.letters == {1: 2}
    # February: A two terms (letter 2 and a mandatory call), B has paid.
    load(ctx, date(2027, 2, 9), line("A", "05/01/2027"), line("A", "05/02/2027"))
    [report] = run(ctx, date(2027, 2, 10))
    assert report.letters == {2: 1} and report.calls == 1 and report.closed == 1
    [call] = [t for t in tickets(ctx, "Relance impayés") if t.field("Phase de relance") == "2"]
    assert call.field("Réf. locataire") == "A" and call.field("Termes impayés") == "2"
    assert call.field("Solde dû") == "1300.00" and call.field("Plan d'apurement éligible") == "1"
    # March: A three terms: nothing on the 10th, letter 3 and the hand-over on the 17th.
    load(ctx, date(2027, 3, 9), line("A", "05/01/2027"), line("A", "05/02/2027"), line("A", "05/03/2027"))
    [report] = run(ctx, date(2027, 3, 10))
    assert report.letters == {}
    [_, report] = run(ctx, date(2027, 3, 17))
    assert report.letters == {3: 1} and report.handed_over == 1
    [litigation] = tickets(ctx, "Contentieux")
    assert litigation.parent_id is not None  # under the mandate register
    assert litigation.field("Montant de la dette") == "1950.00"
    assert litigation.field("Date du dernier impayé") == "2027-03-05"
    assert litigation.field("Débiteurs") == "Locataire A ; locataire"
    assert letters(ctx, "A") == [1, 2, 3] and letters(ctx, "B") == [1]
    # April: still in debt, followed by litigation now: no more letters, no second ticket.
    load(ctx, date(2027, 4, 9), *(line("A", f"05/0{m}/2027") for m in (1, 2, 3, 4)))
    run(ctx, date(2027, 4, 12))
    run(ctx, date(2027, 4, 19))
    assert letters(ctx, "A") == [1, 2, 3] and len(tickets(ctx, "Contentieux")) == 1


def test_runs_are_done_once_and_the_same_terms_never_get_the_same_letter(ctx):
    load(ctx, date(2027, 1, 8), line("A", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    assert [r.state for r in run(ctx, date(2027, 1, 12))][0] == "déjà fait"
    # February: A paid January's rent late but not February's... still one term, the same one? No: a new one.
    load(ctx, date(2027, 2, 9), line("A", "05/01/2027", amount="650,00", name="Locataire A "))
    run(ctx, date(2027, 2, 10))
    assert letters(ctx, "A") == [1]  # the same term (05/01) still unpaid: no second letter n°1
    load(ctx, date(2027, 3, 9), line("A", "05/03/2027"))
    run(ctx, date(2027, 3, 10))
    assert letters(ctx, "A") == [1, 1]  # another term: a new letter n°1


def test_a_run_waits_for_the_months_ledger_then_catches_up(ctx):
    load(ctx, date(2027, 1, 8), line("A", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    [report, _] = run(ctx, date(2027, 2, 17))  # February's ledger not imported yet
    assert report.state == "en attente du grand livre du mois"
    load(ctx, date(2027, 2, 18), line("A", "05/01/2027"), line("A", "05/02/2027"))
    [report, _] = run(ctx, date(2027, 2, 18))  # the day after: the run of the 10th, late, once
    assert report.state == "fait" and report.letters == {2: 1}


def test_a_run_interrupted_by_redmine_down_completes_without_duplicates(ctx):
    load(ctx, date(2027, 1, 8), *(line(ref, "05/12/2026") for ref in "ABC"), *(line(ref, "05/01/2027") for ref in "ABC"))
    ctx.redmine.down = True
    with pytest.raises(RedmineUnavailable):
        run(ctx, date(2027, 1, 11))
    ctx.redmine.down = False
    [report] = run(ctx, date(2027, 1, 11))
    assert report.state == "fait"
    assert len(tickets(ctx, "Relance impayés")) == 3 and len(tickets(ctx, "Fichier de relance")) == 1
    assert sorted(letters(ctx, "A") + letters(ctx, "B") + letters(ctx, "C")) == [2, 2, 2]


def test_phone_sample_size_for_phase_one(ctx):
    ctx.settings.prevention.phone_sample_size = 2
    load(ctx, date(2027, 1, 8), *(line(f"T{i}", "05/01/2027") for i in range(5)))
    [report] = run(ctx, date(2027, 1, 11))
    assert report.letters == {1: 5} and report.calls == 2
    assert len(tickets(ctx, "Relance impayés")) == 2


@pytest.mark.parametrize("amount, eligible", [("499,99", "0"), ("500,00", "1")])
def test_plan_eligibility_at_500(ctx, amount, eligible):
    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", "250,00"),
         line("A", "05/01/2027", str(Decimal(amount.replace(",", ".")) - Decimal("250")).replace(".", ",")))
    run(ctx, date(2027, 1, 11))
    [call] = tickets(ctx, "Relance impayés")
    assert call.field("Solde dû") == amount.replace(",", ".")
    assert call.field("Plan d'apurement éligible") == eligible
    assert bool(call.field("Échéancier proposé")) == (eligible == "1")


def test_a_plan_honoured_suspends_the_phases_then_broken_resumes_them(ctx):
    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", "400,00"), line("A", "05/01/2027", "400,00"))
    run(ctx, date(2027, 1, 11))
    [call] = tickets(ctx, "Relance impayés")
    ctx.redmine.edit(call.id, **{"Plan accepté le": "2027-01-15", "Mensualités du plan": "4"})
    at(ctx, date(2027, 1, 15))
    assert reconcile_reminder_ticket(ctx, ctx.redmine.get_issue(call.id))
    assert "15/02/2027 : 200,00" in ctx.redmine.notes(call.id)[-1]
    # February: rent paid and the first instalment too (800 → 600), two terms still open.
    load(ctx, date(2027, 2, 9), line("A", "05/12/2026", "200,00"), line("A", "05/01/2027", "400,00"))
    [report] = run(ctx, date(2027, 2, 15))
    assert report.suspended == 1 and report.letters == {}
    # March, both runs on the 17th: at the 10th's run (late) still honoured; by the 17th the
    # instalment of 15/03 is missed (balance 600 > 400 allowed): the plan ends, the phases resume.
    load(ctx, date(2027, 3, 16), line("A", "05/12/2026", "200,00"), line("A", "05/01/2027", "400,00"))
    [tenth, seventeenth] = run(ctx, date(2027, 3, 17))
    assert (tenth.run_on, tenth.suspended) == (date(2027, 3, 10), 1)
    assert seventeenth.suspended == 0
    assert "Plan d'apurement non respecté" in ctx.redmine.notes(call.id)[-1]
    with ctx.db.session() as session:
        from app.prevention.models import PreventionCase
        assert session.query(PreventionCase).one().plan_broken_on == date(2027, 3, 17)


def test_plan_schedule_and_honoured_boundary():
    schedule = plan_schedule(Decimal("1000.00"), 6, date(2027, 1, 31))
    assert [i.amount for i in schedule] == [Decimal("166.66")] * 5 + [Decimal("166.70")]
    assert schedule[0].due_date == date(2027, 2, 28)  # month end clamped
    assert plan_allowed_balance(Decimal("1000.00"), 6, date(2027, 1, 31), date(2027, 2, 27)) == Decimal("1000.00")
    assert plan_allowed_balance(Decimal("1000.00"), 6, date(2027, 1, 31), date(2027, 2, 28)) == Decimal("833.34")
    assert plan_allowed_balance(Decimal("1000.00"), 6, date(2027, 1, 31), date(2027, 7, 31)) == Decimal("0.00")


def test_a_plan_over_6_months_or_under_500_is_refused(ctx):
    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", "400,00"), line("A", "05/01/2027", "400,00"))
    run(ctx, date(2027, 1, 11))
    [call] = tickets(ctx, "Relance impayés")
    ctx.redmine.edit(call.id, **{"Plan accepté le": "2027-01-15", "Mensualités du plan": "7"})
    assert "7 mensualités demandées, 6 au plus" in reconcile_reminder_ticket(ctx, ctx.redmine.get_issue(call.id))[0]


def test_phase_files_list_the_tenants_with_their_letters(ctx):
    load(ctx, date(2027, 1, 8), line("A", "05/01/2027"), line("B", "05/12/2026"), line("B", "05/01/2027", "1 000,50"))
    run(ctx, date(2027, 1, 11))
    files = {t.subject.split(" — ")[0]: t for t in tickets(ctx, "Fichier de relance")}
    assert set(files) == {"Fichier de relance phase 1", "Fichier de relance phase 2"}
    assert files["Fichier de relance phase 1"].assigned_to_id == 600  # P-7/P-8: prevention
    assert files["Fichier de relance phase 2"].assigned_to_id == 610  # P-9: the CESF
    phase2 = files["Fichier de relance phase 2"].id
    content = ctx.redmine.files[(phase2, "relance-phase-2-2027-01.csv")].decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(content), delimiter=";"))
    assert rows[0][:3] == ["Réf. locataire", "Nom", "Lot"]
    assert rows[1][0] == "B" and rows[1][7] == "2" and rows[1][8] == "05/12/2026 05/01/2027" and rows[1][9] == "1650,50"
    sheet = load_workbook(io.BytesIO(ctx.redmine.files[(phase2, "relance-phase-2-2027-01.xlsx")])).active
    assert [c.value for c in sheet[2]][:2] == ["B", "Locataire B"] and sheet.cell(2, 10).value == 1650.5
    assert (phase2, "relance-phase-2-2027-01-lettres.docx") in ctx.redmine.files
    assert (ctx.settings.prevention.output_dir / "2027-01" / "lettres" / "phase-2" / "relance-2-B.docx").exists()


def test_new_entrants_are_called_by_their_agency(ctx):
    ctx.settings.prevention.head_office_share = 1.0  # everybody else: head office
    load(ctx, date(2027, 1, 8), line("NEW", "05/12/2026", lease="01/11/2026"), line("NEW", "05/01/2027"),
         line("OLD", "05/12/2026"), line("OLD", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    calls = {t.field("Réf. locataire"): t for t in tickets(ctx, "Relance impayés")}
    assert calls["NEW"].assigned_to_id == 630 and calls["NEW"].field("Type de débiteur") == "Nouvel entrant"
    assert calls["OLD"].assigned_to_id == 600


def test_a_resumed_run_calls_the_same_sample(ctx, monkeypatch):
    ctx.settings.prevention.phone_sample_size = 2
    load(ctx, date(2027, 1, 8), *(line(f"T{i}", "05/01/2027") for i in range(6)))
    create = ctx.redmine.create_issue
    calls = []

    def second_call_fails(new):
        calls.append(new)
        if len(calls) == 2:
            raise RedmineUnavailable("Redmine injoignable (fake)")
        return create(new)

    monkeypatch.setattr(ctx.redmine, "create_issue", second_call_fails)
    with pytest.raises(RedmineUnavailable):
        run(ctx, date(2027, 1, 11))
    monkeypatch.setattr(ctx.redmine, "create_issue", create)
    [report] = run(ctx, date(2027, 1, 11))
    assert report.letters == {1: 6} and report.calls == 2
    assert len(tickets(ctx, "Relance impayés")) == 2


def test_a_crash_after_the_hand_over_is_completed_by_the_next_run(ctx, monkeypatch):
    load(ctx, date(2027, 3, 9), line("A", "05/01/2027"), line("A", "05/02/2027"), line("A", "05/03/2027"))
    run(ctx, date(2027, 3, 10))
    record = service.record_letter
    monkeypatch.setattr(service, "record_letter", lambda *a: (_ for _ in ()).throw(RuntimeError("arrêt brutal")))
    with pytest.raises(RuntimeError):
        run(ctx, date(2027, 3, 17))  # the Contentieux ticket is there, the letter not yet recorded
    monkeypatch.setattr(service, "record_letter", record)
    [_, report] = run(ctx, date(2027, 3, 17))
    assert report.letters == {3: 1} and report.handed_over == 1
    assert len(tickets(ctx, "Contentieux")) == 1 and letters(ctx, "A") == [3]
