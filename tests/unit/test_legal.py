"""The legal watch (L-0 … L-16): one test per rule with the cases of the legal notes, then
the check on tickets (the field kept up to date, gates and their overrides, the CAF task)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.calendar import Zone
from app.clock import Clock
from app.legal.flows import reconcile_legal, template_problems
from app.legal.rules import Facts, check, forward, prescription
from app.processing.flows import process_issue
from tests.unit.helpers import add_litigation, add_register, litigation_fields

SERVED = date(2025, 3, 3)  # a Monday


def dates(report, rule):
    return [d.day for d in report.dates if d.rule == rule]


def warned(report, rule):
    return [text for r, text in report.warnings if r == rule]


# --- L-1, L-2: the clause résolutoire ---------------------------------------------------------------
@pytest.mark.parametrize("lease, clause, effective", [
    # Signed the day before the law: the clause's 2 months; 03/05/2025 is a Saturday → Monday 05/05 (L-6).
    (date(2023, 7, 28), "2 mois", date(2025, 5, 5)),
    # Signed the day the law came in force: 6 weeks = 42 days, Monday 14/04/2025.
    (date(2023, 7, 29), "", date(2025, 4, 14)),
])
def test_l1_clause_delay_depends_on_the_lease_date(lease, clause, effective):
    report = check(Facts(today=date(2025, 3, 10), lease_date=lease, clause_delay=clause, service_date=SERVED))
    assert dates(report, "L-1") == [effective]


def test_l1_a_two_month_clause_in_a_new_lease_is_the_wrong_delay():
    report = check(Facts(today=date(2025, 3, 10), lease_date=date(2024, 1, 1), clause_delay="2 mois",
                         service_date=SERVED))
    assert dates(report, "L-1") == [date(2025, 4, 14)] and "6 semaines, pas 2 mois" in warned(report, "L-1")[0]


def test_l2_a_15_day_commercial_clause_is_void_one_month_applies():
    report = check(Facts(today=date(2025, 3, 10), commercial=True, clause_delay="15 jours", service_date=SERVED))
    assert dates(report, "L-2") == [date(2025, 4, 3)]
    assert "nulle" in warned(report, "L-2")[0]
    longer = check(Facts(today=date(2025, 3, 10), commercial=True, clause_delay="2 mois", service_date=SERVED))
    assert dates(longer, "L-2") == [date(2025, 5, 5)] and warned(longer, "L-2") == []


# --- L-3: the préfet's notice, backwards -------------------------------------------------------------
def test_l3_the_2025_avis_example_hearing_12_may_notice_26_march_is_in_time():
    # 12/05/2025 − 42 days: 12 days back to 30/04, then 30 days of April → 31/03/2025, never
    # moved (a backward delay). Notified on 26/03, 47 days before the hearing: in time.
    report = check(Facts(today=date(2025, 4, 1), hearing=date(2025, 5, 12), prefect_notified=date(2025, 3, 26)))
    assert dates(report, "L-3") == [date(2025, 3, 31)]
    assert report.gate("assignation") is None and warned(report, "L-3") == []


def test_l3_a_notice_one_day_late_gates_the_assignation():
    report = check(Facts(today=date(2025, 4, 1), hearing=date(2025, 5, 12), prefect_notified=date(2025, 4, 1)))
    assert report.gate("assignation") is not None and "41 jours avant l'audience" in warned(report, "L-3")[0]


def test_l3_is_not_extended_when_the_last_day_is_a_sunday():
    # Hearing Sunday-minus-42: 08/06/2025 − 42 = Sunday 27/04/2025, kept as is.
    assert dates(check(Facts(today=date(2025, 4, 1), hearing=date(2025, 6, 8))), "L-3") == [date(2025, 4, 27)]


# --- L-4, L-5 --------------------------------------------------------------------------------------
def test_l4_legal_person_landlord_without_ccapex_is_a_warning_never_a_gate():
    report = check(Facts(today=date(2025, 4, 1), legal_person_landlord=True))
    assert warned(report, "L-4") and report.gates == []


@pytest.mark.parametrize("served, late", [(date(2025, 3, 18), False), (date(2025, 3, 19), True)])
def test_l5_guarantor_served_on_day_15_or_16(served, late):
    report = check(Facts(today=date(2025, 4, 1), service_date=SERVED, guarantors=True, guarantor_served=served))
    assert dates(report, "L-5") == [date(2025, 3, 18)]
    assert bool(warned(report, "L-5")) is late


# --- L-6, L-7: calendars ------------------------------------------------------------------------------
@pytest.mark.parametrize("start, zone, end", [
    (date(2025, 4, 3), Zone.metropole, date(2025, 4, 18)),  # Good Friday: a working day in metropole
    (date(2025, 4, 3), Zone.moselle, date(2025, 4, 22)),  # Moselle: Good Friday, then Easter Monday
    (date(2025, 12, 11), Zone.metropole, date(2025, 12, 26)),
    (date(2025, 12, 11), Zone.alsace, date(2025, 12, 29)),  # 26 December in Alsace
])
def test_l6_l7_forward_delays_extended_per_zone(start, zone, end):
    assert forward(start, zone, days=15) == end


# --- L-8, L-10, L-11, L-12, L-15 ---------------------------------------------------------------------
def test_l8_caf_report_two_months_after_the_debt_reached_two_rents():
    report = check(Facts(today=date(2025, 4, 1), monthly_rent=Decimal("700"), debt=Decimal("1400"),
                         debt_constituted_on=date(2025, 2, 5)))
    assert report.caf_report_by == date(2025, 4, 7)  # 05/04/2025 is a Saturday → Monday (L-6)
    below = check(Facts(today=date(2025, 4, 1), monthly_rent=Decimal("700"), debt=Decimal("1399.99"),
                        debt_constituted_on=date(2025, 2, 5)))
    assert below.caf_report_by is None


def test_l10_l11_l12_warnings_and_service_limits():
    report = check(Facts(today=date(2025, 4, 1), reminder_fee_requests=True, injunction_refused_over_ceiling=True,
                         injunction_order=date(2025, 1, 15), default_judgment=date(2025, 2, 28)))
    assert warned(report, "L-10") and "pas de plafond" in warned(report, "L-11")[0]
    assert dates(report, "L-11") == [date(2025, 7, 15)]
    assert dates(report, "L-12") == [date(2025, 8, 28)]
    assert not warned(check(Facts(today=date(2025, 4, 1), commercial=True, reminder_fee_requests=True)), "L-10")


@pytest.mark.parametrize("planned, gated", [
    (date(2027, 10, 31), False), (date(2027, 11, 1), True), (date(2028, 3, 31), True), (date(2028, 4, 1), False),
])
def test_l15_eviction_in_the_truce_is_gated(planned, gated):
    assert (check(Facts(today=date(2027, 9, 1), eviction_planned=planned)).gate("expulsion") is not None) is gated


# --- L-16: prescription per instalment -----------------------------------------------------------------
def test_l16_each_instalment_expires_moved_by_a_signed_plan_not_by_reminders():
    instalments = (date(2023, 1, 5), date(2023, 2, 5))
    assert prescription(instalments, (), 3) == [(date(2023, 1, 5), date(2026, 1, 5)),
                                                (date(2023, 2, 5), date(2026, 2, 5))]
    plan = ((date(2024, 6, 10), "plan d'apurement signé"),)
    assert prescription(instalments, plan, 3) == [(date(2023, 1, 5), date(2027, 6, 10)),
                                                  (date(2023, 2, 5), date(2027, 6, 10))]
    assert prescription(instalments, (), 5)[0][1] == date(2028, 1, 5)  # commercial


def test_l16_warning_six_months_before_the_oldest_expiry_without_an_act_planned():
    facts = dict(instalments=(date(2023, 1, 5),))
    assert warned(check(Facts(today=date(2025, 7, 5), **facts)), "L-16")
    assert not warned(check(Facts(today=date(2025, 7, 4), **facts)), "L-16")
    assert not warned(check(Facts(today=date(2025, 7, 5), interrupting_act_planned=True, **facts)), "L-16")


def test_l0_no_template_calls_the_commissaire_a_huissier():
    assert template_problems() == ()


# --- on tickets ------------------------------------------------------------------------------------
def test_the_legal_check_field_is_kept_up_to_date_in_place(ctx):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date du bail": "2024-01-10", "Date de signification": "2025-03-03"})
    ctx.clock = Clock(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    assert reconcile_legal(ctx, ctx.redmine.get_issue(lit.id))
    field = ctx.redmine.get_issue(lit.id).field("Contrôle légal")
    assert "14/04/2025 — clause résolutoire acquise" in field and "L-5" in field  # a caution among the debtors
    assert reconcile_legal(ctx, ctx.redmine.get_issue(lit.id)) == []  # unchanged: not rewritten
    ctx.redmine.edit(lit.id, **{"Date de signification": "2025-03-10"})
    reconcile_legal(ctx, ctx.redmine.get_issue(lit.id))
    assert "21/04/2025" not in ctx.redmine.get_issue(lit.id).field("Contrôle légal")  # Easter Monday → 22/04
    assert "22/04/2025 — clause résolutoire acquise" in ctx.redmine.get_issue(lit.id).field("Contrôle légal")
    assert ctx.redmine.notes(lit.id) == []  # a field, not a note at every change


def test_the_l3_gate_holds_the_assignation_until_overridden(ctx):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date de signification": "2025-03-03", "Acte resté impayé": "1",
                                         "Date d'audience": "2025-05-12"})
    ctx.clock = Clock(datetime(2025, 4, 2, 9, 0, tzinfo=UTC))  # préfet not notified, 31/03 passed
    assert "assignation bloquée par le contrôle légal (L-3)" in process_issue(ctx, lit.id)
    assert not ctx.redmine.children(lit.id, "Assignation")
    assert any("Étape bloquée par le contrôle légal" in n for n in ctx.redmine.notes(lit.id))
    ctx.redmine.edit(lit.id, user_id=3, at=datetime(2025, 4, 2, 10, 0, tzinfo=UTC), **{"Dérogation légale": "1"})
    process_issue(ctx, lit.id)
    assert len(ctx.redmine.children(lit.id, "Assignation")) == 1
    [override] = [n for n in ctx.redmine.notes(lit.id) if "Dérogation au contrôle légal enregistrée" in n]
    assert "par user#3 le 02/04/2025" in override
    process_issue(ctx, lit.id)
    assert sum("Dérogation au contrôle légal enregistrée" in n for n in ctx.redmine.notes(lit.id)) == 1


def test_the_caf_task_is_created_then_closed_when_the_debt_is_paid(ctx):
    add_register(ctx.redmine)
    fields = litigation_fields(**{"Loyer charges comprises": "700", "Montant de la dette": "1500"})
    lit = ctx.redmine.add("Contentieux", "Impayés", created_on=datetime(2027, 1, 12, 9, 0, tzinfo=UTC), **fields)
    ctx.clock = Clock(datetime(2027, 1, 20, 9, 0, tzinfo=UTC))
    reconcile_legal(ctx, ctx.redmine.get_issue(lit.id))
    [task] = [t for t in ctx.redmine.children(lit.id) if t.subject.startswith("Signaler l'impayé à la CAF")]
    # No ledger for this tenant: the debt was known ≥ 2 rents when the file opened, 12/01/2027.
    assert task.due_date == date(2027, 3, 12)
    ctx.redmine.edit(lit.id, **{"Montant de la dette": "0"})
    reconcile_legal(ctx, ctx.redmine.get_issue(lit.id))
    assert ctx.redmine.get_issue(task.id).closed


def test_the_l15_gate_holds_a_physical_eviction_in_the_truce(ctx):
    eviction = ctx.redmine.add("Expulsion", "Expulsion", **{"N° mandat": "M-1", "Expulsion prévue le": "2027-11-11"})
    ctx.clock = Clock(datetime(2027, 10, 1, 9, 0, tzinfo=UTC))
    assert "expulsion physique bloquée par la trêve hivernale (L-15)" in process_issue(ctx, eviction.id)
    assert ctx.redmine.children(eviction.id, "Tâche gestionnaire") == []
    ctx.redmine.edit(eviction.id, **{"Expulsion prévue le": "2028-04-03"})
    process_issue(ctx, eviction.id)
    [task] = ctx.redmine.children(eviction.id, "Tâche gestionnaire")
    assert task.subject.startswith("Expulsion physique le 03/04/2028")


def test_the_daily_refresh_turns_a_passing_date_into_a_warning(ctx):
    from app.legal.flows import refresh_all

    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date de signification": "2025-03-03"})  # a caution among the debtors
    ctx.clock = Clock(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    refresh_all(ctx)
    assert "caution non signifiée" not in ctx.redmine.get_issue(lit.id).field("Contrôle légal")
    ctx.clock = Clock(datetime(2025, 3, 19, 9, 0, tzinfo=UTC))  # day 16, nothing changed on the ticket
    assert refresh_all(ctx)
    assert "caution non signifiée au 18/03/2025" in ctx.redmine.get_issue(lit.id).field("Contrôle légal")
    assert refresh_all(ctx) == []
