"""Issue 15 on the in-memory Redmine configured as offices configure theirs: fields hidden
from the service's role, accounts Redmine refuses as assignee, closed or missing registers,
the service's key refused, tickets moved or out of sight. The same cases run against the
real Redmine in tests/e2e/test_redmine_installations.py."""

from datetime import UTC, datetime, timedelta

import pytest

from app.clock import Clock
from app.deadlines import flows
from app.deadlines.models import DeadlineState
from app.inbox.models import EventState
from app.litigation.deadlines import RULES
from app.effects import StepsPending
from app.processing.flows import deadline_rules, process_issue, work
from integrations.redmine.interface import Issue, RedmineRejected
from tests.unit.helpers import (
    CLERK,
    GESTIONNAIRE,
    LITIGATION_GROUP,
    NOW,
    add_litigation,
    add_register,
    deliver,
    event,
)

FUNDS = "Date de réception des fonds"
D45 = datetime(2027, 2, 18, 7, 0, tzinfo=UTC)  # 18/02/2027 08:00 Paris, D = 04/01/2027


def states(ctx, issue_id):
    from sqlalchemy import select

    from app.deadlines.models import Deadline

    with ctx.db.session() as session:
        return sorted((d.kind, d.state) for d in session.scalars(select(Deadline).where(Deadline.issue_id == issue_id)))


def processed(ctx, issue_id) -> str:
    """What processing the ticket did, steps left waiting included (its event waits then)."""
    try:
        return process_issue(ctx, issue_id)
    except StepsPending as exc:
        return str(exc)


def unreadable_notes(ctx, issue_id, field):
    return [n for n in ctx.redmine.notes(issue_id) if f"Champ illisible pour le service : {field}" in n]


def children(ctx, issue_id) -> list[Issue]:
    return [i for i in ctx.redmine.issues.values() if i.parent_id == issue_id]


@pytest.fixture
def provision_file(ctx):
    """A litigation file whose provision was asked on 04/01/2027, no funds yet: C-14 pending."""
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date de demande de provision": "2027-01-04", FUNDS: ""})
    process_issue(ctx, lit.id)
    assert ("C-14/provision", DeadlineState.pending) in states(ctx, lit.id)
    return lit


# --- 1. unknown is not empty ------------------------------------------------------------
def test_no_forfeiture_while_the_funds_date_is_hidden_from_the_service(ctx, provision_file):
    """The funds arrived (20/01), but the admin made the field visible to the litigation
    staff's role only: at D+45 nothing fires, the ticket says which field and who fixes it;
    once visible, the deadline is cancelled (funds in time), never fired."""
    redmine = ctx.redmine
    redmine.hidden_fields.add(FUNDS)
    redmine.edit(provision_file.id, **{FUNDS: "2027-01-20"})  # recorded by the staff, unseen by the service

    ctx.clock = Clock(D45)
    assert flows.tick(ctx, RULES).fired == 0
    lit = redmine.issues[provision_file.id]
    assert not [a for a in lit.attachments if a.startswith("decheance")]
    assert not [i for i in redmine.issues.values() if i.tracker == "Perte de mandat"]
    assert lit.custom_fields["Déchéance de garantie le"] == "" and lit.assigned_to_id is None
    [note] = unreadable_notes(ctx, lit.id, FUNDS)
    assert "administrateur Redmine" in note and "Automate recouvrement" in note
    assert ("C-14/provision", DeadlineState.pending) in states(ctx, lit.id)

    ctx.clock = Clock(D45 + timedelta(minutes=16))  # tried again: still waiting, said once
    assert flows.tick(ctx, RULES).fired == 0
    assert len(unreadable_notes(ctx, lit.id, FUNDS)) == 1

    redmine.hidden_fields.clear()  # the admin fixes the visibility
    ctx.clock = Clock(D45 + timedelta(minutes=32))
    report = flows.tick(ctx, RULES)
    assert (report.fired, report.skipped) == (0, 1)
    assert ("C-14/provision", DeadlineState.cancelled) in states(ctx, lit.id)
    assert not [i for i in redmine.issues.values() if i.tracker == "Perte de mandat"]


def test_an_event_on_a_hidden_rule_input_leaves_the_deadlines_as_they_are(ctx, provision_file):
    ctx.redmine.hidden_fields.add(FUNDS)
    processed(ctx, provision_file.id)
    assert states(ctx, provision_file.id) == [("C-14/provision", DeadlineState.pending)]  # neither cancelled nor moved
    assert len(unreadable_notes(ctx, provision_file.id, FUNDS)) == 1


def test_the_opening_waits_for_a_hidden_owner_account(ctx):
    """C-6 depends on « Compte propriétaire »: hidden, no Demande de fonds, no analysis."""
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    ctx.redmine.hidden_fields.add("Compte propriétaire")
    result = processed(ctx, lit.id)
    assert "illisible" in result and children(ctx, lit.id) == []
    assert len(unreadable_notes(ctx, lit.id, "Compte propriétaire")) == 1
    assert not [n for n in ctx.redmine.notes(lit.id) if "incomplet" in n]  # unknown, not "non renseigné"

    ctx.redmine.hidden_fields.clear()
    processed(ctx, lit.id)
    assert {c.tracker for c in children(ctx, lit.id)} == {"Demande de fonds", "Tâche gestionnaire"}


@pytest.mark.parametrize("tracker, fields, hidden, decided", [
    # C-11: a title route depends on whether the act stayed unpaid.
    ("Contentieux", {"Date de signification": "2027-01-04", "Acte resté impayé": "1"}, "Acte resté impayé",
     "assignation #"),
    # C-20: the judgment's outcome decides the executions.
    ("Assignation", {"Issue du jugement": "Favorable", "Date du jugement": "2027-01-04"}, "Issue du jugement",
     "jugement favorable"),
    # C-27: an eviction ordered opens the eviction ticket.
    ("Assignation", {"Expulsion ordonnée": "1", "Date du jugement": "2027-01-04"}, "Expulsion ordonnée", "expulsion #"),
    # C-36/C-37: the cancellation's decision.
    ("Annulation frais", {"Décision": "Acceptée"}, "Décision", "décision saisie"),
    # C-32: the owner informed starts the write-off's D+15.
    ("Annulation dette", {"Propriétaire informé le": "2027-01-04"}, "Propriétaire informé le", "C-32/ecritures prévue"),
    # L-3 (legal watch): the hearing date decides the delays checked.
    ("Contentieux", {"Date d'audience": "2027-03-01"}, "Date d'audience", "contrôle légal"),
    # P-5: a repayment plan recorded on a follow-up ticket.
    ("Relance impayés", {"Plan accepté le": "2027-01-04", "Réf. locataire": "LOC-1"}, "Plan accepté le",
     "plan d'apurement"),
])
def test_every_rule_family_decides_nothing_on_a_hidden_input(ctx, tracker, fields, hidden, decided):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    process_issue(ctx, lit.id)
    if tracker == "Contentieux":
        ctx.redmine.edit(lit.id, **fields)
        issue_id = lit.id
    else:
        issue_id = ctx.redmine.add(tracker, author_id=CLERK, parent_id=lit.id, **{"N° mandat": "M-1"}, **fields).id
    ctx.redmine.hidden_fields.add(hidden)
    result = processed(ctx, issue_id)
    assert f"champ « {hidden} » illisible" in result and decided not in result
    assert len(unreadable_notes(ctx, issue_id, hidden)) == 1

    ctx.redmine.hidden_fields.clear()  # readable again: decided at the next event
    assert decided in processed(ctx, issue_id)


def test_the_write_off_scan_skips_a_file_it_cannot_read_and_says_so(ctx):
    from app.writeoffs.flows import scan

    ctx.clock = Clock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    eligible = {"Refus écrit du propriétaire": "1", "Lot sous GLI": "0", "Locataire dans les lieux": "0",
                "Locataire étoilé": "1", "Date du dernier impayé": "2023-11-20"}
    hidden = add_litigation(ctx.redmine, **eligible)
    readable = add_litigation(ctx.redmine, mandate="M-2", **eligible)
    ctx.redmine.hidden_fields.add("Lot sous GLI")
    report = scan(ctx)
    assert report.eligible == [] and len(unreadable_notes(ctx, hidden.id, "Lot sous GLI")) == 1
    ctx.redmine.hidden_fields.clear()
    assert scan(ctx).eligible == [hidden.id, readable.id]


# --- 3. refused, not broken -------------------------------------------------------------
def test_a_locked_gestionnaire_the_tickets_go_to_the_litigation_group_with_the_reason(ctx):
    add_register(ctx.redmine, assignee=GESTIONNAIRE)
    ctx.redmine.unassignable.add(GESTIONNAIRE)  # locked: Redmine answers "Assignee is invalid"
    lit = add_litigation(ctx.redmine)
    process_issue(ctx, lit.id)
    made = children(ctx, lit.id)
    assert {c.tracker for c in made} == {"Demande de fonds", "Tâche gestionnaire"}
    for ticket in made:
        assert ticket.assigned_to_id == LITIGATION_GROUP
        assert "Assigné à n'est pas valide" in ticket.description and "groupe Contentieux" in ticket.description
    notes = ctx.redmine.notes(lit.id)
    assert any("Analyse" in n or "analyse" in n for n in notes)  # the rest of the opening is done
    [refusals] = [n for n in notes if "Étapes refusées par Redmine" in n]
    assert refusals.count("* ") == 2 and "assignable" in refusals
    assert ctx.redmine.issues[lit.id].parent_id is not None


def test_group_assignment_off_the_tickets_are_made_unassigned_and_say_so(ctx):
    add_register(ctx.redmine, assignee=None)  # no gestionnaire: the litigation group
    ctx.redmine.unassignable.update({GESTIONNAIRE, LITIGATION_GROUP})  # groups refused as assignees
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    work(ctx)
    assert event(ctx, event_id).state is EventState.done
    made = children(ctx, lit.id)
    assert len(made) == 2 and all(t.assigned_to_id is None for t in made)
    assert all("assigné à personne" in t.description for t in made)
    [refusals] = [n for n in ctx.redmine.notes(lit.id) if "Étapes refusées par Redmine" in n]
    assert "n'a pas pu être assigné comme prévu" in refusals  # the note itself could not assign


# --- 4, 5. closed or missing register -----------------------------------------------------
def test_a_closed_register_is_said_to_the_author_and_nothing_else_is_made(ctx):
    register = add_register(ctx.redmine)
    ctx.redmine.close(register.id)
    lit = add_litigation(ctx.redmine, **{"Compte propriétaire": "Créditeur"})  # C-7 would run
    process_issue(ctx, lit.id)
    ticket = ctx.redmine.issues[lit.id]
    assert ticket.parent_id is None and children(ctx, lit.id) == []
    [note] = ctx.redmine.notes(lit.id)
    assert "Registre des mandats fermé" in note and f"#{register.id}" in note and "rouvrir" in note
    assert ticket.assigned_to_id == CLERK

    ctx.redmine.issues[register.id] = ctx.redmine.issues[register.id].__class__(
        **{**ctx.redmine.issues[register.id].__dict__, "closed": False, "status": "Nouveau"})  # reopened
    process_issue(ctx, lit.id)
    assert ctx.redmine.issues[lit.id].parent_id == register.id and children(ctx, lit.id)


def test_a_missing_register_makes_nothing_not_even_the_c7_checklist(ctx):
    lit = add_litigation(ctx.redmine, **{"Compte propriétaire": "Créditeur"})
    process_issue(ctx, lit.id)
    assert children(ctx, lit.id) == []
    [note] = ctx.redmine.notes(lit.id)
    assert "introuvable" in note and "Pièce manquante" not in note


# --- 2. the service refused as a whole ----------------------------------------------------
def test_the_service_locked_out_events_wait_without_using_attempts_then_complete(ctx):
    add_register(ctx.redmine)
    events = [deliver(ctx, add_litigation(ctx.redmine, mandate="M-1").id) for _ in range(3)]
    ctx.redmine.access_refused = True
    for minutes in range(0, 300, 30):  # far more passes than max_attempts
        ctx.clock = Clock(NOW + timedelta(minutes=minutes))
        report = work(ctx)
        assert report.processed <= 1 and (report.processed == 0 or "401" in report.outage)
    assert all(event(ctx, e).state is EventState.pending and event(ctx, e).attempts == 0 for e in events)

    ctx.redmine.access_refused = False
    ctx.clock = Clock(NOW + timedelta(hours=6))
    assert work(ctx).processed == 3
    assert all(event(ctx, e).state is EventState.done for e in events)


# --- 7, 8. moved, foreign, out of sight ---------------------------------------------------
def test_a_ticket_moved_to_another_project_has_its_deadlines_cancelled_and_nothing_written(ctx, provision_file):
    ctx.redmine.move(provision_file.id, project_id=2)
    journals = len(ctx.redmine.issues[provision_file.id].journals)
    result = process_issue(ctx, provision_file.id)
    assert "autre projet" in result and "C-14/provision cancelled" in result
    assert states(ctx, provision_file.id) == [("C-14/provision", DeadlineState.cancelled)]
    assert len(ctx.redmine.issues[provision_file.id].journals) == journals


def test_a_moved_ticket_seen_only_by_the_tick_fires_nothing(ctx, provision_file):
    ctx.redmine.move(provision_file.id, project_id=2)
    journals = len(ctx.redmine.issues[provision_file.id].journals)
    ctx.clock = Clock(D45)
    report = flows.tick(ctx, RULES)
    assert (report.fired, report.skipped) == (0, 1)
    assert not [i for i in ctx.redmine.issues.values() if i.tracker == "Perte de mandat"]
    assert len(ctx.redmine.issues[provision_file.id].journals) == journals
    assert states(ctx, provision_file.id) == [("C-14/provision", DeadlineState.cancelled)]


def test_a_ticket_moved_to_a_tracker_without_deadlines_has_them_cancelled(ctx, provision_file):
    ctx.redmine.move(provision_file.id, tracker="Tâche gestionnaire")
    process_issue(ctx, provision_file.id)
    assert states(ctx, provision_file.id) == [("C-14/provision", DeadlineState.cancelled)]
    assert not deadline_rules(ctx.settings).covers("Tâche gestionnaire")


def test_a_ticket_the_service_may_not_see_is_ignored_as_foreign(ctx):
    ctx.redmine.forbidden.add(4242)
    event_id = deliver(ctx, 4242)
    work(ctx)
    done = event(ctx, event_id)
    assert done.state is EventState.done and "hors de la vue du service" in done.result


def test_a_403_when_the_service_lost_its_project_is_an_outage(ctx):
    ctx.redmine.forbidden.add(4242)
    event_id = deliver(ctx, 4242)
    ping = ctx.redmine.ping

    def refused():
        ctx.redmine.access_refused = True
        ping()

    ctx.redmine.ping = refused
    assert work(ctx).outage
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 0)


# --- found by the red team ------------------------------------------------------------------
def test_a_file_waiting_on_a_hidden_field_opens_by_itself_once_visible(ctx):
    """Changing a field's visibility changes no ticket: polling would never see it. The
    event waits and is tried again (backoff, then daily) until the file opens; the link to
    the register, which needs only the mandate number, is made at once."""
    register = add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    ctx.redmine.hidden_fields.add("Compte propriétaire")
    event_id = deliver(ctx, lit.id)
    work(ctx)
    waiting = event(ctx, event_id)
    assert waiting.state is EventState.pending and "illisible" in waiting.last_error
    assert ctx.redmine.issues[lit.id].parent_id == register.id and children(ctx, lit.id) == []

    ctx.redmine.hidden_fields.clear()  # the administrator fixes the visibility
    ctx.clock = Clock(waiting.next_attempt_at)
    work(ctx)
    assert event(ctx, event_id).state is EventState.done
    assert {c.tracker for c in children(ctx, lit.id)} == {"Demande de fonds", "Tâche gestionnaire"}


def test_a_forfeiture_date_redmine_drops_keeps_the_deadline_until_it_holds(ctx, provision_file):
    """« Déchéance de garantie le » hidden (or read-only) for the service: the write is
    ignored. The deadline is not marked fired on a write Redmine dropped: the ticket is told,
    and once the field takes it, the date is recorded (the C-31 scan reads it)."""
    redmine = ctx.redmine
    redmine.hidden_fields.add("Déchéance de garantie le")
    ctx.clock = Clock(D45)
    assert flows.tick(ctx, RULES).fired == 0
    assert ("C-14/provision", DeadlineState.pending) in states(ctx, provision_file.id)
    [told] = [n for n in redmine.notes(provision_file.id) if "Étapes refusées par Redmine" in n]
    assert "Déchéance de garantie le" in told

    ctx.clock = Clock(D45 + timedelta(minutes=16))  # still dropped: told once
    assert flows.tick(ctx, RULES).fired == 0
    assert len([n for n in redmine.notes(provision_file.id) if "Étapes refusées par Redmine" in n]) == 1

    redmine.hidden_fields.clear()
    ctx.clock = Clock(D45 + timedelta(minutes=32))
    assert flows.tick(ctx, RULES).fired == 1
    assert redmine.issues[provision_file.id].custom_fields["Déchéance de garantie le"] == "2027-02-18"
    assert len([i for i in redmine.issues.values() if i.tracker == "Perte de mandat"]) == 1
    assert len([n for n in redmine.notes(provision_file.id) if "dépassée sans réception" in n]) == 1


def test_a_refused_funds_request_leaves_the_owner_task_and_the_analysis_made(ctx, monkeypatch):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    create = ctx.redmine.create_issue

    def no_funds_request(new):
        if new.tracker == "Demande de fonds":
            raise RedmineRejected("création d'un ticket Demande de fonds : Redmine a refusé (Tracker n'est pas valide)")
        return create(new)

    monkeypatch.setattr(ctx.redmine, "create_issue", no_funds_request)
    with pytest.raises(StepsPending):
        process_issue(ctx, lit.id)
    assert [c.tracker for c in children(ctx, lit.id)] == ["Tâche gestionnaire"]
    analysis, refusals = ctx.redmine.notes(lit.id)
    assert "demande de fonds au gestionnaire n'a pas pu être créée" in analysis
    assert "créer la demande de fonds" in refusals and "Tracker n'est pas valide" in refusals


def test_a_hidden_legal_check_field_still_makes_the_caf_task_and_says_why(ctx):
    """L-8 does not need « Contrôle légal »: the CAF task is made; the field hidden is told."""
    from tests.unit.helpers import litigation_fields

    add_register(ctx.redmine)
    fields = litigation_fields(**{"Loyer charges comprises": "700", "Montant de la dette": "1500"})
    lit = ctx.redmine.add("Contentieux", "Impayés", created_on=datetime(2027, 1, 12, 9, 0, tzinfo=UTC), **fields)
    ctx.redmine.hidden_fields.add("Contrôle légal")
    ctx.clock = Clock(datetime(2027, 1, 20, 9, 0, tzinfo=UTC))
    processed(ctx, lit.id)
    assert [t for t in children(ctx, lit.id) if t.subject.startswith("Signaler l'impayé à la CAF")]
    assert len(unreadable_notes(ctx, lit.id, "Contrôle légal")) == 1


def test_refusals_say_when_the_litigation_group_is_not_in_the_project(ctx, monkeypatch):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    ctx.redmine.principals.pop("Contentieux")  # the group is not a project member
    monkeypatch.setattr(ctx.redmine, "create_issue", lambda new: (_ for _ in ()).throw(
        RedmineRejected("création d'un ticket : Redmine a refusé (Tracker n'est pas valide)")))
    processed(ctx, lit.id)
    [note] = [n for n in ctx.redmine.notes(lit.id) if n.startswith("*Étapes refusées par Redmine*")]
    assert "Le groupe Contentieux n'est pas membre du projet" in note and "confié au groupe" not in note

    ctx.redmine.principals["Contentieux"] = LITIGATION_GROUP  # added by the administrator: seen at once
    assert ctx.principal("Contentieux") == LITIGATION_GROUP
