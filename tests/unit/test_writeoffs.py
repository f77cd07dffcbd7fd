"""Debt write-offs (C-31, C-32) on the in-memory Redmine: each condition on its own, the
3-year boundary, the L-16 warnings, the round trip and its D+15 deadline."""

from datetime import UTC, date, datetime

import pytest

from app.clock import Clock
from app.config import Settings
from app.deadlines import flows as deadlines
from app.processing.flows import deadline_rules, process_issue
from app.writeoffs.eligibility import assess
from app.writeoffs.flows import explain, scan
from tests.unit.helpers import BACK_OFFICE, GESTIONNAIRE, add_litigation, add_register

ELIGIBLE = {"Refus écrit du propriétaire": "1", "Lot sous GLI": "0", "Locataire dans les lieux": "0",
            "Locataire étoilé": "1", "Date du dernier impayé": "2023-11-20"}
AFTER_3_YEARS = date(2026, 11, 21)


def file_with(ctx, **changes):
    fields = {**ELIGIBLE, **changes}
    return add_litigation(ctx.redmine, **{k: v for k, v in fields.items() if v is not None})


def failing(ctx, issue):
    return [c.label for c in assess(issue, Settings(), AFTER_3_YEARS).conditions if not c.met]


def test_all_four_conditions_met(ctx):
    assert failing(ctx, file_with(ctx)) == []


@pytest.mark.parametrize("changes, condition", [
    ({"Refus écrit du propriétaire": "0"}, "refus écrit du propriétaire ou déchéance"),
    ({"Lot sous GLI": "1"}, "lot hors GLI"),
    ({"Lot sous GLI": None}, "lot hors GLI"),  # unknown is not "not under GLI"
    ({"Propriétaire indemnisé GLI": "1"}, "lot hors GLI"),
    ({"Locataire dans les lieux": "1"}, "locataire sorti et étoilé"),
    ({"Locataire étoilé": "0"}, "locataire sorti et étoilé"),
    ({"Date du dernier impayé": "2023-11-21"}, "plus de 3 ans depuis le dernier impayé"),  # exactly 3 years
    ({"Date du dernier impayé": None}, "plus de 3 ans depuis le dernier impayé"),
])
def test_each_condition_fails_alone(ctx, changes, condition):
    assert failing(ctx, file_with(ctx, **changes)) == [condition]


def test_forfeiture_stands_for_the_written_refusal(ctx):
    issue = file_with(ctx, **{"Refus écrit du propriétaire": None, "Déchéance de garantie le": "2024-02-18"})
    assert failing(ctx, issue) == []


@pytest.mark.parametrize("last_unpaid, last_day_not_eligible", [
    (date(2023, 11, 21), date(2026, 11, 21)),
    (date(2024, 2, 29), date(2027, 2, 28)),  # leap day: 3 years later is clamped to 28/02
    (date(2023, 8, 31), date(2026, 8, 31)),
])
def test_three_years_is_not_enough_one_day_more_is(ctx, last_unpaid, last_day_not_eligible):
    issue = file_with(ctx, **{"Date du dernier impayé": last_unpaid.isoformat()})
    at = assess(issue, Settings(), last_day_not_eligible)
    assert not at.eligible and at.prescribed_on == last_day_not_eligible
    assert assess(issue, Settings(), date.fromordinal(last_day_not_eligible.toordinal() + 1)).eligible


def test_l16_warnings_for_a_recent_court_claim_and_a_commercial_lease(ctx):
    add_register(ctx.redmine)
    issue = file_with(ctx, **{"Type de bail": "Commercial"})
    ctx.redmine.add("Assignation", "Assignation", parent_id=issue.id, created_on=datetime(2024, 5, 2, tzinfo=UTC))
    ctx.clock = Clock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assessment, ticket = explain(ctx, issue.id)
    assert assessment.eligible and ticket is None
    assert any("Assignation" in w and "02/05/2024" in w for w in assessment.warnings)
    assert any("bail commercial" in w for w in assessment.warnings)


def test_scan_opens_one_ticket_per_eligible_file_once(ctx):
    register = add_register(ctx.redmine)
    eligible = file_with(ctx)
    file_with(ctx, **{"Lot sous GLI": "1"})
    ctx.clock = Clock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    report = scan(ctx)
    assert (report.examined, report.eligible) == (2, [eligible.id])
    [ticket_id] = report.opened
    ticket = ctx.redmine.get_issue(ticket_id)
    assert ticket.tracker == "Annulation dette" and ticket.parent_id == register.id
    assert ticket.assigned_to_id == GESTIONNAIRE and eligible.id in ticket.relations
    assert ticket.field("Réf. locataire") == "LOC-1" and ticket.field("Date du dernier impayé") == "2023-11-20"
    writes = ctx.redmine.writes
    assert scan(ctx).opened == [] and ctx.redmine.writes == writes


def test_round_trip_gestionnaire_back_office_gestionnaire(ctx):
    add_register(ctx.redmine)
    file_with(ctx)
    ctx.clock = Clock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    [ticket_id] = scan(ctx).opened
    ctx.redmine.edit(ticket_id, user_id=GESTIONNAIRE, **{"Propriétaire informé le": "2026-11-24"})
    process_issue(ctx, ticket_id)
    ticket = ctx.redmine.get_issue(ticket_id)
    assert ticket.assigned_to_id == BACK_OFFICE and ticket.due_date == date(2026, 12, 9)  # C-32: D+15
    rules = deadline_rules(ctx.settings)
    ctx.clock = Clock(datetime(2026, 12, 9, 6, 59, tzinfo=UTC))  # 07:59 Paris
    assert deadlines.tick(ctx, rules).fired == 0
    ctx.clock = Clock(datetime(2026, 12, 9, 7, 0, tzinfo=UTC))
    assert deadlines.tick(ctx, rules).fired == 1
    assert "Délai de 15 jours écoulé" in ctx.redmine.notes(ticket_id)[-1]
    ctx.redmine.edit(ticket_id, user_id=BACK_OFFICE, **{"Annulation passée le": "2026-12-10"})
    process_issue(ctx, ticket_id)
    ticket = ctx.redmine.get_issue(ticket_id)
    assert ticket.assigned_to_id == GESTIONNAIRE
    assert "Écritures d'annulation passées le 10/12/2026" in ctx.redmine.notes(ticket_id)[-1]
    assert "Attention" not in ctx.redmine.notes(ticket_id)[-1]


def test_entries_before_the_15_days_are_flagged(ctx):
    add_register(ctx.redmine)
    file_with(ctx)
    ctx.clock = Clock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    [ticket_id] = scan(ctx).opened
    ctx.redmine.edit(ticket_id, **{"Propriétaire informé le": "2026-11-24", "Annulation passée le": "2026-12-01"})
    process_issue(ctx, ticket_id)
    assert "avant la fin du délai de 15 jours (09/12/2026)" in ctx.redmine.notes(ticket_id)[-1]
