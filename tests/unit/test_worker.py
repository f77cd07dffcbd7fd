"""The worker: order per issue, retries with backoff, failures, crashed workers."""

import json
from datetime import timedelta

from sqlalchemy import update

from app.clock import Clock
from app.config import Settings, Worker
from app.inbox import service
from app.inbox.flows import parse_delivery
from app.inbox.models import EventState, InboxEvent
from app.processing.flows import work
from integrations.redmine.interface import RedmineRejected
from tests.unit.helpers import NOW, add_litigation, add_register, make_context


def deliver(ctx, issue_id, journal_id=None, event_type="issue.updated"):
    data = {"issue": {"id": issue_id}}
    if journal_id:
        data["journal"] = {"id": journal_id}
    body = json.dumps({"type": event_type, "data": data}).encode()
    return service.store_event(ctx.db, parse_delivery(body), ctx.clock.now()).event_id


def event(ctx, event_id) -> InboxEvent:
    with ctx.db.session() as session:
        return session.get(InboxEvent, event_id)


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
    assert work(ctx).processed == 2
    assert event(ctx, earlier).finished_at <= event(ctx, later).finished_at


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
