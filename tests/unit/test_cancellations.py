"""Fee cancellation requests (C-33 … C-37) on the in-memory Redmine: the 8 working days
(C-35) with the exact dates of the French calendar, and every branch of the request."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from app.calendar import Zone
from app.cancellations.request import decision_due_on
from app.clock import Clock
from app.config import Deadlines, Settings
from app.deadlines import flows as deadlines
from app.deadlines import service
from app.processing.flows import deadline_rules, process_issue
from app.inbox.models import EventState
from app.processing.flows import work
from tests.unit.helpers import (
    CLERK,
    DG_GROUP,
    GESTIONNAIRE,
    LITIGATION_GROUP,
    LITIGATION_MANAGER,
    add_litigation,
    add_register,
    deliver,
    event,
)

TITLE = "DEMANDE D'ANNULATION FRAIS dossier LOC-1/PROP-1"
FRIDAY = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # 10:30 Paris


# --- C-35: 8 working days, the day of reception not counted --------------------------------
@pytest.mark.parametrize("received, due", [
    (date(2026, 11, 27), date(2026, 12, 9)),  # a Friday
    (date(2026, 11, 28), date(2026, 12, 9)),  # the Saturday after: same answer day
    (date(2026, 11, 29), date(2026, 12, 9)),  # the Sunday
    (date(2026, 12, 24), date(2027, 1, 7)),  # eve of Christmas: 25/12 and 01/01 skipped
    (date(2026, 12, 30), date(2027, 1, 12)),  # New Year's Day skipped
    (date(2027, 3, 26), date(2027, 4, 8)),  # Easter Monday 29/03/2027 skipped
    (date(2027, 5, 5), date(2027, 5, 19)),  # eve of Ascension 06/05, then Whit Monday 17/05
    (date(2027, 5, 14), date(2027, 5, 27)),  # Whit Monday 17/05/2027
    (date(2027, 7, 13), date(2027, 7, 26)),  # eve of 14 July (a Wednesday)
    (date(2024, 8, 14), date(2024, 8, 27)),  # eve of 15 August (a Thursday)
    (date(2026, 8, 14), date(2026, 8, 26)),  # 15 August 2026 is a Saturday: nothing skipped
    (date(2027, 10, 29), date(2027, 11, 12)),  # 1 November (Monday) and 11 November (Thursday)
])
def test_decision_due_on_counts_french_working_days(received, due):
    assert decision_due_on(received, Settings()) == due


def test_whit_monday_worked_when_configured():
    worked = Settings(deadlines=Deadlines(whit_monday_is_holiday=False))
    assert decision_due_on(date(2027, 5, 14), worked) == date(2027, 5, 26)
    assert decision_due_on(date(2027, 5, 5), worked) == date(2027, 5, 18)


def test_office_in_alsace_moselle_skips_26_december():
    moselle = Settings(deadlines=Deadlines(office_zone=Zone.moselle))
    assert decision_due_on(date(2025, 12, 24), Settings()) == date(2026, 1, 7)
    assert decision_due_on(date(2025, 12, 24), moselle) == date(2026, 1, 8)


# --- the request ---------------------------------------------------------------------------
def request(ctx, subject=TITLE, created=FRIDAY, **fields):
    values = {"Réf. locataire": "LOC-1", "Réf. propriétaire": "PROP-1", "Justification": "accord avec le débiteur"}
    values.update(fields)
    values = {k: v for k, v in values.items() if v is not None}
    return ctx.redmine.add("Annulation frais", subject, author_id=GESTIONNAIRE, created_on=created, **values)


def run(ctx, issue_id):
    result = process_issue(ctx, issue_id)
    return result, ctx.redmine.get_issue(issue_id)


def pending(ctx, issue_id):
    return [(d.kind, d.due_at) for d in service.listing(ctx.db) if d.issue_id == issue_id]


def test_justified_request_goes_to_litigation_under_the_tenants_file(ctx):
    add_register(ctx.redmine)
    litigation = add_litigation(ctx.redmine)
    req = request(ctx)
    result, issue = run(ctx, req.id)
    assert issue.parent_id == litigation.id  # C-33
    assert issue.assigned_to_id == LITIGATION_GROUP  # C-34
    assert (issue.start_date, issue.due_date) == (date(2026, 11, 27), date(2026, 12, 9))  # C-35
    assert "au plus tard le *09/12/2026*" in ctx.redmine.notes(req.id)[-1]
    # Overdue once 09/12 is over: midnight in Paris (23:00 UTC in winter).
    assert pending(ctx, req.id) == [("C-35/decision", datetime(2026, 12, 9, 23, 0, tzinfo=UTC))]
    writes = ctx.redmine.writes
    assert run(ctx, req.id)[0] and ctx.redmine.writes == writes  # a replay writes nothing


def test_standalone_request_for_reminder_fees(ctx):
    req = request(ctx, TITLE.replace("LOC-1", "LOC-9"), **{"Réf. locataire": "LOC-9"})
    _, issue = run(ctx, req.id)
    assert issue.parent_id is None
    assert issue.assigned_to_id == LITIGATION_GROUP


def test_wrong_title_gets_the_corrected_one_without_delaying_the_answer(ctx):
    add_litigation(ctx.redmine, **{"Réf. propriétaire": "PROP-7"})
    req = request(ctx, "annulation frais Dupont", **{"Réf. propriétaire": "PROP-1"})
    _, issue = run(ctx, req.id)
    [check] = [n for n in ctx.redmine.notes(req.id) if "Demande d'annulation de frais à compléter" in n]
    # The owner of the tenant's litigation file is the real one.
    assert "« DEMANDE D'ANNULATION FRAIS dossier LOC-1/PROP-7 »" in check
    assert issue.assigned_to_id == LITIGATION_GROUP and issue.due_date == date(2026, 12, 9)
    ctx.redmine.edit(req.id, subject="DEMANDE D\u2019ANNULATION FRAIS  dossier LOC-1/PROP-7")
    assert run(ctx, req.id)[1].journals[-1].notes == ""  # corrected (typographic apostrophe accepted): no new note


def test_references_read_from_the_title_are_written_in_their_fields(ctx):
    req = request(ctx, TITLE, **{"Réf. locataire": None, "Réf. propriétaire": None})
    _, issue = run(ctx, req.id)
    assert (issue.field("Réf. locataire"), issue.field("Réf. propriétaire")) == ("LOC-1", "PROP-1")
    assert not any("compléter" in n for n in ctx.redmine.notes(req.id))


def test_no_justification_sends_it_back_and_the_clock_waits(ctx):
    req = request(ctx, Justification=None)
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == GESTIONNAIRE
    assert "Sans justification" in ctx.redmine.notes(req.id)[-1]
    assert issue.due_date is None and pending(ctx, req.id) == []
    # Justified on Thursday 24/12 (eve of Christmas): 8 working days from that day.
    ctx.redmine.edit(req.id, user_id=GESTIONNAIRE, at=datetime(2026, 12, 24, 14, 0, tzinfo=UTC),
                     Justification="traitement comptable retardé")
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == LITIGATION_GROUP
    assert (issue.start_date, issue.due_date) == (date(2026, 12, 24), date(2027, 1, 7))


def test_description_is_a_justification(ctx):
    req = ctx.redmine.add("Annulation frais", TITLE, author_id=GESTIONNAIRE, created_on=FRIDAY,
                          description="Défense du portefeuille", **{"Réf. locataire": "LOC-1", "Réf. propriétaire": "PROP-1"})
    assert run(ctx, req.id)[1].assigned_to_id == LITIGATION_GROUP


def test_processing_late_does_not_move_the_reception_day(ctx):
    req = request(ctx)
    ctx.clock = Clock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))  # the service was down for a week
    assert run(ctx, req.id)[1].due_date == date(2026, 12, 9)


def test_accepted_goes_back_to_the_requester_for_accounting(ctx):
    req = request(ctx)
    run(ctx, req.id)
    ctx.redmine.edit(req.id, user_id=CLERK, **{"Décision": "Accordée"})
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == GESTIONNAIRE  # C-36
    assert "Annulation accordée" in ctx.redmine.notes(req.id)[-1] and "Comptabilité" in ctx.redmine.notes(req.id)[-1]
    assert pending(ctx, req.id) == []


def test_refused_without_reason_goes_back_to_litigation(ctx):
    req = request(ctx)
    run(ctx, req.id)
    ctx.redmine.edit(req.id, user_id=CLERK, **{"Décision": "Refusée"})
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == LITIGATION_GROUP
    assert "Refus sans motif" in ctx.redmine.notes(req.id)[-1]
    ctx.redmine.edit(req.id, user_id=CLERK, **{"Motif de la décision": "frais justifiés"})
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == GESTIONNAIRE
    assert "Annulation refusée" in ctx.redmine.notes(req.id)[-1] and "frais justifiés" in ctx.redmine.notes(req.id)[-1]


def refuse(ctx, req):
    run(ctx, req.id)
    ctx.redmine.edit(req.id, user_id=CLERK, at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
                     **{"Décision": "Refusée", "Motif de la décision": "relances fondées"})
    run(ctx, req.id)


def test_escalation_without_new_justification_is_incomplete(ctx):
    req = request(ctx)
    refuse(ctx, req)
    ctx.redmine.edit(req.id, user_id=GESTIONNAIRE, **{"Escalade DG": "1"})
    _, issue = run(ctx, req.id)
    assert "Escalade à la DG incomplète" in ctx.redmine.notes(req.id)[-1]
    assert issue.field("Décision") == "Refusée" and pending(ctx, req.id) == []


def test_escalation_to_the_dg_is_a_first_request_with_a_new_delay(ctx):
    req = request(ctx)
    refuse(ctx, req)
    # Monday 07/12: escalated with a new justification → 8 working days from that day.
    ctx.redmine.edit(req.id, user_id=GESTIONNAIRE, at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
                     **{"Escalade DG": "1", "Justification": "accord signé le 01/12"})
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == DG_GROUP
    assert (issue.field("Décision"), issue.field("Motif de la décision")) == ("", "")
    assert (issue.start_date, issue.due_date) == (date(2026, 12, 7), date(2026, 12, 17))
    assert pending(ctx, req.id) == [("C-35/decision", datetime(2026, 12, 17, 23, 0, tzinfo=UTC))]
    # The DG refuses: final, and its decision does not move its own delay's start.
    ctx.redmine.edit(req.id, user_id=CLERK, at=datetime(2026, 12, 10, 9, 0, tzinfo=UTC),
                     **{"Décision": "Refusée", "Motif de la décision": "refus confirmé"})
    _, issue = run(ctx, req.id)
    assert issue.assigned_to_id == GESTIONNAIRE
    assert "elle clôt la demande" in ctx.redmine.notes(req.id)[-1]
    assert pending(ctx, req.id) == []
    writes = ctx.redmine.writes
    run(ctx, req.id)
    assert ctx.redmine.writes == writes


def test_overdue_decision_tells_the_litigation_manager_once(ctx):
    req = request(ctx)
    run(ctx, req.id)
    rules = deadline_rules(ctx.settings)
    ctx.clock = Clock(datetime(2026, 12, 9, 22, 59, tzinfo=UTC))  # 09/12 23:59 Paris: still in time
    assert deadlines.tick(ctx, rules).fired == 0
    ctx.clock = Clock(datetime(2026, 12, 10, 7, 0, tzinfo=UTC))
    assert deadlines.tick(ctx, rules).fired == 1
    issue = ctx.redmine.get_issue(req.id)
    assert issue.assigned_to_id == LITIGATION_MANAGER
    assert issue.field("Hors délai") == "1"
    assert "Décision hors délai" in ctx.redmine.notes(req.id)[-1]
    assert deadlines.tick(ctx, rules).fired == 0
    run(ctx, req.id)
    assert pending(ctx, req.id) == []  # fired stays fired: no second note


def test_a_request_stays_under_its_file_when_a_newer_one_of_the_tenant_appears(ctx):
    first = add_litigation(ctx.redmine)
    req = request(ctx)
    assert run(ctx, req.id)[1].parent_id == first.id
    add_litigation(ctx.redmine, mandate="M-2")  # same tenant, a later file
    assert run(ctx, req.id)[1].parent_id == first.id


def test_overdue_instant_is_paris_midnight_across_dst_and_easter_monday(ctx):
    # Received Friday 19/03/2027; Easter Monday 29/03 skipped → due Thursday 01/04/2027;
    # overdue at 02/04 00:00 Paris, summer time since 28/03: 22:00 UTC.
    req = request(ctx, created=datetime(2027, 3, 19, 15, 0, tzinfo=UTC))
    assert run(ctx, req.id)[1].due_date == date(2027, 4, 1)
    assert pending(ctx, req.id) == [("C-35/decision", datetime(2027, 4, 1, 22, 0, tzinfo=UTC))]


def test_a_field_missing_from_the_tracker_decides_nothing_and_says_which(ctx):
    """Issue 15: unknown is not empty — the cancellation flow waits, the ticket says which
    field and who can fix it, once; the field back, the flow goes on by itself."""
    ctx.redmine.tracker_fields["Annulation frais"].remove("Escalade DG")  # the admin forgot it
    req = request(ctx)
    event_id = deliver(ctx, req.id, event_type="issue.created")
    assert work(ctx).processed == 1
    waiting = event(ctx, event_id)
    assert waiting.state is EventState.pending and "illisible" in waiting.last_error  # tried again later
    notes = ctx.redmine.notes(req.id)
    assert len(notes) == 1 and "Champ illisible pour le service : Escalade DG" in notes[0]
    assert "administrateur Redmine" in notes[0]
    assert [kind for kind, _ in pending(ctx, req.id)] == ["C-35/decision"]  # C-35 does not read it
    ctx.clock = Clock(ctx.clock.now() + timedelta(seconds=30))
    work(ctx)
    assert len(ctx.redmine.notes(req.id)) == 1  # said once

    issue = ctx.redmine.issues[req.id]  # the administrator puts the field on the tracker
    ctx.redmine.issues[req.id] = replace(issue, custom_fields={**issue.custom_fields, "Escalade DG": "0"})
    ctx.clock = Clock(ctx.clock.now() + timedelta(minutes=5))
    work(ctx)
    assert event(ctx, event_id).state is EventState.done


def test_a_decision_by_the_requester_is_not_taken(ctx):
    req = request(ctx)
    run(ctx, req.id)
    ctx.redmine.edit(req.id, user_id=GESTIONNAIRE, **{"Décision": "Accordée"})
    _, issue = run(ctx, req.id)
    assert issue.field("Décision") == "" and issue.assigned_to_id == LITIGATION_GROUP
    assert "Décision non prise en compte" in ctx.redmine.notes(req.id)[-1]
    assert pending(ctx, req.id) == [("C-35/decision", datetime(2026, 12, 9, 23, 0, tzinfo=UTC))]  # still running
    ctx.redmine.edit(req.id, user_id=CLERK, **{"Décision": "Accordée"})
    assert run(ctx, req.id)[1].assigned_to_id == GESTIONNAIRE


def test_reminder_fees_on_a_residential_lease_carry_the_l10_warning_once(ctx):
    add_litigation(ctx.redmine, **{"Type de bail": "Habitation"})
    req = request(ctx)
    run(ctx, req.id)
    run(ctx, req.id)
    assert sum("L-10" in n and "le bail est d'habitation" in n for n in ctx.redmine.notes(req.id)) == 1
    commercial = request(ctx, TITLE.replace("LOC-1", "LOC-C"), **{"Réf. locataire": "LOC-C"})
    add_litigation(ctx.redmine, mandate="M-C", **{"Réf. locataire": "LOC-C", "Type de bail": "Commercial"})
    run(ctx, commercial.id)
    assert not any("L-10" in n for n in ctx.redmine.notes(commercial.id))
