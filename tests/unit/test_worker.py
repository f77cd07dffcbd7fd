"""The worker: order per issue, retries with backoff, failures, crashed workers."""

from datetime import timedelta

from sqlalchemy import update

from app.clock import Clock
from app.config import Settings, Worker
from app.inbox import service
from app.inbox.models import EventState, InboxEvent
from app.processing.flows import work
from integrations.redmine.interface import RedmineRejected
from tests.unit.helpers import LITIGATION_GROUP, NOW, add_litigation, add_register, deliver, event, make_context


def test_events_are_processed_and_their_result_recorded(ctx):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    first = deliver(ctx, lit.id, event_type="issue.created")
    assert work(ctx).processed == 1
    done = event(ctx, first)
    assert done.state is EventState.done and "rattaché au registre" in done.result
    assert len(ctx.redmine.children(lit.id)) == 2


def test_a_later_event_of_an_issue_waits_for_the_earlier_one(ctx):
    lit = add_litigation(ctx.redmine)
    other = add_litigation(ctx.redmine, mandate="M-2")
    earlier, later = deliver(ctx, lit.id, 1), deliver(ctx, lit.id, 2)
    unrelated = deliver(ctx, other.id, 3)
    with ctx.db.session() as session:  # the earlier one is waiting for a retry
        session.execute(update(InboxEvent).where(InboxEvent.id == earlier)
                        .values(next_attempt_at=NOW + timedelta(minutes=5)))
    assert work(ctx).processed == 1
    assert event(ctx, unrelated).state is EventState.done
    assert event(ctx, later).state is EventState.pending

    ctx.clock = Clock(NOW + timedelta(minutes=5))
    claimed = service.claim_next(ctx.db, ctx.clock.now(), 60)
    assert claimed.id == earlier
    assert service.claim_next(ctx.db, ctx.clock.now(), 60) is None  # not while the earlier one is processing
    service.postpone(ctx.db, earlier, "x", ctx.clock.now())
    assert work(ctx).processed == 2
    # The first run signals the missing register, the second finds it already signalled.
    assert "signalé à l'auteur" in event(ctx, earlier).result
    assert event(ctx, later).result == "registre absent (déjà signalé)"


def test_redmine_down_the_event_waits_with_backoff_then_fails_after_max_attempts(tmp_path):
    ctx = make_context(tmp_path, Settings(worker=Worker(max_attempts=3, backoff_base_seconds=30)))
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    ctx.redmine.down = True

    assert work(ctx).processed == 1
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 1)
    assert waiting.next_attempt_at == NOW + timedelta(seconds=30) and "injoignable" in waiting.last_error
    assert work(ctx).processed == 0  # not due yet

    ctx.clock = Clock(NOW + timedelta(seconds=30))
    work(ctx)
    assert event(ctx, event_id).next_attempt_at == NOW + timedelta(seconds=30 + 60)  # doubled
    ctx.clock = Clock(NOW + timedelta(seconds=90))
    work(ctx)
    failed = event(ctx, event_id)
    assert (failed.state, failed.attempts) == (EventState.failed, 3)
    assert "après 3 tentatives" in failed.last_error

    ctx.redmine.down = False
    assert service.retry_failed(ctx.db, ctx.clock.now()) == 1
    work(ctx)
    assert event(ctx, event_id).state is EventState.done


def test_a_refusal_fails_at_once_with_redmines_message(ctx, monkeypatch):
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)

    def refuse(issue_id):
        raise RedmineRejected("mise à jour du ticket : Redmine a refusé (Subject cannot be blank)")

    monkeypatch.setattr(ctx.redmine, "get_issue", refuse)
    work(ctx)
    failed = event(ctx, event_id)
    assert failed.state is EventState.failed and failed.attempts == 1
    assert "Subject cannot be blank" in failed.last_error


def test_a_database_outage_mid_event_makes_it_wait_not_fail(ctx, monkeypatch):
    """A restart of the database while an event is processed is not a refusal: it waits."""
    from sqlalchemy.exc import OperationalError

    from app.deadlines import service as deadline_store

    lit = add_litigation(ctx.redmine)
    add_register(ctx.redmine)
    event_id = deliver(ctx, lit.id)

    def restarting(*args, **kwargs):
        raise OperationalError("INSERT …", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(deadline_store, "store_wanted", restarting)
    work(ctx)
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 1)
    assert "base de données indisponible" in waiting.last_error
    monkeypatch.undo()
    ctx.clock = Clock(NOW + timedelta(hours=1))
    work(ctx)
    assert event(ctx, event_id).state is EventState.done


def test_an_event_left_by_a_crashed_worker_is_taken_again_after_its_lease(ctx):
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    claimed = service.claim_next(ctx.db, NOW, lease_seconds=300)  # then the worker dies
    assert claimed.id == event_id
    assert service.claim_next(ctx.db, NOW + timedelta(seconds=299), 300) is None
    again = service.claim_next(ctx.db, NOW + timedelta(seconds=301), 300)
    assert again.id == event_id and again.attempts == 2


def test_other_trackers_and_deleted_issues_are_done_with_a_reason(ctx):
    funds = ctx.redmine.add("Demande de fonds")
    first, gone = deliver(ctx, funds.id), deliver(ctx, 9999)
    work(ctx)
    assert "rien à faire" in event(ctx, first).result
    assert "introuvable" in event(ctx, gone).result and event(ctx, gone).state is EventState.done


def test_a_closed_litigation_ticket_is_left_alone(ctx):
    from dataclasses import replace

    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    ctx.redmine.issues[lit.id] = replace(ctx.redmine.get_issue(lit.id), status="Fermé", closed=True)
    event_id = deliver(ctx, lit.id)
    work(ctx)
    assert "fermé" in event(ctx, event_id).result
    assert ctx.redmine.writes == 0


def test_the_first_poll_starts_at_sync_since(tmp_path):
    from app.inbox.flows import poll_once

    ctx = make_context(tmp_path)
    ctx.redmine.add("Contentieux")  # before go-live
    new = ctx.redmine.add("Contentieux")
    ctx.settings = Settings(sync_since=new.updated_on)
    assert poll_once(ctx).queued == 1
    assert [e.issue_id for e in service.list_events(ctx.db)] == [new.id]  # not the older one


def test_with_max_attempts_2_the_second_failure_is_final(tmp_path):
    ctx = make_context(tmp_path, Settings(worker=Worker(max_attempts=2, backoff_base_seconds=10)))
    event_id = deliver(ctx, add_litigation(ctx.redmine).id)
    ctx.redmine.down = True
    work(ctx)
    assert (event(ctx, event_id).state, event(ctx, event_id).attempts) == (EventState.pending, 1)
    ctx.clock = Clock(NOW + timedelta(seconds=10))
    work(ctx)
    failed = event(ctx, event_id)
    assert (failed.state, failed.attempts, failed.finished_at) == (EventState.failed, 2, NOW + timedelta(seconds=10))


def test_a_refused_creation_is_told_on_the_ticket_then_made_once_fixed(ctx, monkeypatch):
    """Issue 15: refused, not broken — the ticket says what Redmine refused and goes to the
    litigation group; the rest (the link to the register) is done; the event is tried again
    with backoff and, the cause fixed, completes with no manual step."""
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    create = ctx.redmine.create_issue

    def refuse(new):
        raise RedmineRejected(f"création d'un ticket {new.tracker} : Redmine a refusé (Tracker is not included)")

    monkeypatch.setattr(ctx.redmine, "create_issue", refuse)
    work(ctx)
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 1)
    assert "refusé par Redmine : créer la demande de fonds" in waiting.last_error
    ticket = ctx.redmine.issues[lit.id]
    assert ticket.parent_id is not None and ticket.assigned_to_id == LITIGATION_GROUP
    analysis, note = ctx.redmine.notes(lit.id)  # the analysis does not need them: noted all the same
    assert "demande de fonds au gestionnaire n'a pas pu être créée" in analysis
    assert "Étapes refusées par Redmine" in note and "Tracker is not included" in note

    ctx.clock = Clock(NOW + timedelta(seconds=30))  # still refused: said once
    work(ctx)
    assert event(ctx, event_id).attempts == 2 and len(ctx.redmine.notes(lit.id)) == 2

    monkeypatch.setattr(ctx.redmine, "create_issue", create)  # the administrator fixes it
    ctx.clock = Clock(NOW + timedelta(seconds=90))
    work(ctx)
    assert event(ctx, event_id).state is EventState.done
    assert len(ctx.redmine.children(lit.id)) == 2


def test_an_event_fails_at_once_when_nothing_at_all_can_be_written(ctx, monkeypatch):
    add_register(ctx.redmine)
    event_id = deliver(ctx, add_litigation(ctx.redmine).id)

    def refuse(*args, **kwargs):
        raise RedmineRejected("mise à jour du ticket : Redmine a refusé (Statut n'est pas valide)")

    monkeypatch.setattr(ctx.redmine, "create_issue", refuse)
    monkeypatch.setattr(ctx.redmine, "update_issue", refuse)
    work(ctx)
    failed = event(ctx, event_id)
    assert (failed.state, failed.attempts) == (EventState.failed, 1)
    assert failed.last_error.startswith("RedmineRejected") and "Statut n'est pas valide" in failed.last_error


def test_an_event_left_processing_by_a_crashed_worker_is_done_by_the_next_one(ctx):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    with ctx.db.session() as session:
        session.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(
            state=EventState.processing, attempts=1, lease_until=NOW - timedelta(seconds=1)))
    assert work(ctx).processed == 1
    done = event(ctx, event_id)
    assert (done.state, done.attempts, done.lease_until) == (EventState.done, 2, None)
    assert ctx.redmine.get_issue(lit.id).parent_id is not None


def test_retry_failed_only_the_events_given(ctx):
    first, second = deliver(ctx, 1, 1), deliver(ctx, 2, 2)
    with ctx.db.session() as session:
        session.execute(update(InboxEvent).values(state=EventState.failed, attempts=8, last_error="x"))
    assert service.retry_failed(ctx.db, NOW, [second]) == 1
    assert event(ctx, first).state is EventState.failed
    retried = event(ctx, second)
    assert (retried.state, retried.attempts, retried.next_attempt_at, retried.finished_at) == \
        (EventState.pending, 0, NOW, None)


def test_a_refusal_never_fixed_waits_a_day_between_tries_after_max_attempts_never_failed(tmp_path, monkeypatch):
    ctx = make_context(tmp_path, Settings(worker=Worker(max_attempts=2, backoff_base_seconds=30)))
    add_register(ctx.redmine)
    event_id = deliver(ctx, add_litigation(ctx.redmine).id)

    def refuse(new):
        raise RedmineRejected(f"création d'un ticket {new.tracker} : Redmine a refusé (Tracker is not included)")

    monkeypatch.setattr(ctx.redmine, "create_issue", refuse)
    work(ctx)
    ctx.clock = Clock(NOW + timedelta(seconds=30))
    work(ctx)
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 2)
    assert waiting.next_attempt_at == NOW + timedelta(seconds=30, days=1)
