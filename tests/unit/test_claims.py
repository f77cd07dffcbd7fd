"""Issue 14: exactly-once effects. Each effect with an operation key is made under a claim
in the service's database; a worker that read Redmine before another made the effect reads
it again instead of making it twice. (The same with real processes: tests/e2e/test_concurrency.py.)"""

from __future__ import annotations

from datetime import timedelta
from time import monotonic, sleep

import pytest

from app.claims import service as claims
from app.claims.flows import ClaimBusy, claimed
from app.clock import Clock
from app.config import Settings, Worker
from app.context import in_one_view
from app.effects import attach_once, ensure_ticket, note_once, relate_once
from app.inbox.models import EventState
from app.processing.flows import work
from integrations.redmine.interface import NewIssue
from integrations.redmine.scope import ViewExpired
from tests.unit.helpers import NOW, add_litigation, add_register, deliver, event, make_context


def test_a_key_is_held_by_one_holder_at_a_time_and_a_freed_one_says_it_was_claimed(ctx):
    first = claims.take(ctx.db, "note/1/C-4", "A", NOW, 60)
    assert first is not None and not first.contended
    assert claims.take(ctx.db, "note/1/C-4", "B", NOW, 60) is None
    claims.release(ctx.db, first)
    again = claims.take(ctx.db, "note/1/C-4", "B", NOW, 60)
    assert again is not None and again.contended  # read Redmine again: A may have made it


def test_a_claim_whose_holder_died_is_taken_over_once_its_lease_ran_out(ctx):
    assert claims.take(ctx.db, "ticket/T/k", "dead", NOW, 60) is not None
    assert claims.take(ctx.db, "ticket/T/k", "B", NOW + timedelta(seconds=59), 60) is None
    taken = claims.take(ctx.db, "ticket/T/k", "B", NOW + timedelta(seconds=60), 60)
    assert taken is not None and taken.contended


def test_a_long_key_is_stored_by_its_start_and_a_hash_of_the_whole(ctx):
    long_a, long_b = "note/1/" + "a" * 300, "note/1/" + "a" * 299 + "b"
    assert claims.take(ctx.db, long_a, "A", NOW, 60) is not None
    assert claims.take(ctx.db, long_b, "A", NOW, 60) is not None  # another key, not a collision
    assert len(claims.stored_key(long_a)) == claims.KEY_LENGTH


def test_free_claims_are_purged_held_ones_kept(ctx):
    claims.release(ctx.db, claims.take(ctx.db, "old", "A", NOW - timedelta(days=2), 60))
    claims.take(ctx.db, "held", "A", NOW - timedelta(days=2), 10**6)
    claims.release(ctx.db, claims.take(ctx.db, "recent", "A", NOW, 60))
    assert claims.purge(ctx.db, NOW - timedelta(days=1)) == 1
    assert claims.take(ctx.db, "old", "B", NOW, 60).contended is False  # forgotten
    assert claims.take(ctx.db, "held", "B", NOW, 60) is None


def two_workers(ctx):
    """Two units of work on the same Redmine and database, each with its own view."""
    return in_one_view(ctx)[0], in_one_view(ctx)[0]


def test_a_ticket_made_by_another_worker_after_this_one_read_is_not_made_again(ctx):
    lit = add_litigation(ctx.redmine)
    first, second = two_workers(ctx)
    first.redmine.get_issue(lit.id)  # first reads the file: no child yet
    second.redmine.get_issue(lit.id)
    new = NewIssue("Demande de fonds", "Demande de fonds", "…", parent_id=lit.id)
    made, created = ensure_ticket(second, "C-6/demande-fonds/1", new)
    found, created_again = ensure_ticket(first, "C-6/demande-fonds/1", new)  # its view still shows none
    assert created and not created_again and found.id == made.id
    assert [c.id for c in ctx.redmine.children(lit.id)] == [made.id]


def test_a_note_posted_by_another_worker_after_this_one_read_is_not_posted_again(ctx):
    lit = add_litigation(ctx.redmine)
    first, second = two_workers(ctx)
    seen_by_first = first.redmine.get_issue(lit.id)
    assert note_once(second, second.redmine.get_issue(lit.id), "C-4/analyse/x", "Ouverture")
    assert not note_once(first, seen_by_first, "C-4/analyse/x", "Ouverture")
    assert ctx.redmine.notes(lit.id) == ["Ouverture\n\n(réf. automate : C-4/analyse/x)"]


def test_an_attachment_and_a_relation_made_by_another_worker_are_not_made_again(ctx):
    lit, other = add_litigation(ctx.redmine), add_register(ctx.redmine)
    first, second = two_workers(ctx)
    seen_by_first = first.redmine.get_issue(lit.id)
    seen_by_second = second.redmine.get_issue(lit.id)
    assert attach_once(second, seen_by_second, "lettre.docx", b"x", "application/octet-stream", "Courrier")
    assert relate_once(second, seen_by_second, other.id)
    assert not attach_once(first, seen_by_first, "lettre.docx", b"x", "application/octet-stream", "Courrier")
    assert not relate_once(first, seen_by_first, other.id)
    issue = ctx.redmine.get_issue(lit.id)
    assert (issue.attachments, issue.relations, ctx.redmine.notes(lit.id)) == (["lettre.docx"], [other.id], ["Courrier"])


def test_an_effect_never_claimed_is_made_without_reading_redmine_again(ctx, monkeypatch):
    """The common case costs no request: only a key claimed before means "read again"."""
    lit = add_litigation(ctx.redmine)
    first, _ = two_workers(ctx)
    issue = first.redmine.get_issue(lit.id)
    reads = []
    monkeypatch.setattr(ctx.redmine, "get_issue", lambda issue_id: reads.append(issue_id))
    monkeypatch.setattr(ctx.redmine, "find_issues", lambda *args: reads.append(args) or [])
    assert note_once(first, issue, "C-4/analyse/y", "Ouverture")
    made, created = ensure_ticket(first, "C-1/information-ouverture/1", NewIssue("Tâche gestionnaire", "Informer", "…"))
    assert created and reads == [("Tâche gestionnaire", "Clé d'opération", "C-1/information-ouverture/1")]


def test_a_claim_held_by_a_live_worker_makes_the_event_wait_not_fail(tmp_path):
    ctx = make_context(tmp_path, Settings(worker=Worker(claim_wait_seconds=0.3, backoff_base_seconds=30)))
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    held = claims.take(ctx.db, f"ticket/Demande de fonds/C-6/demande-fonds/{lit.id}", "other", NOW, 600)
    event_id = deliver(ctx, lit.id)
    assert work(ctx).processed == 1
    waiting = event(ctx, event_id)
    assert waiting.state is EventState.pending and "en cours dans un autre processus" in waiting.last_error
    assert ctx.redmine.children(lit.id, "Demande de fonds") == []

    claims.release(ctx.db, held)  # the other worker is done (and made nothing, here)
    ctx.clock = Clock(NOW + timedelta(seconds=30))
    assert work(ctx).processed == 1
    assert event(ctx, event_id).state is EventState.done
    assert len(ctx.redmine.children(lit.id, "Demande de fonds")) == 1


def test_claimed_gives_up_after_the_wait_with_a_retryable_error(tmp_path):
    ctx = make_context(tmp_path, Settings(worker=Worker(claim_wait_seconds=0.2)))
    claims.take(ctx.db, "note/1/k", "other", NOW, 600)
    started = monotonic()
    with pytest.raises(ClaimBusy), claimed(ctx, "note/1/k"):
        pass
    assert monotonic() - started < 5


def test_a_view_whose_lease_is_over_writes_nothing(ctx):
    lit = add_litigation(ctx.redmine)
    late, view = in_one_view(ctx, lease_ends=monotonic())
    with pytest.raises(ViewExpired):
        late.redmine.update_issue(lit.id, notes="trop tard")
    assert ctx.redmine.notes(lit.id) == []


def test_an_event_that_outlives_its_lease_writes_nothing_more_and_waits(tmp_path, monkeypatch):
    """A lease of 2 s (shorter than four Redmine calls: the view writes for half of it) and a
    Redmine that takes 1.2 s to read the file: nothing is written, the event waits."""
    ctx = make_context(tmp_path, Settings(worker=Worker(lease_seconds=2)))
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    slow_read = ctx.redmine.get_issue
    monkeypatch.setattr(ctx.redmine, "get_issue", lambda issue_id: sleep(1.2) or slow_read(issue_id))
    event_id = deliver(ctx, lit.id)
    assert work(ctx).processed == 1
    waiting = event(ctx, event_id)
    assert waiting.state is EventState.pending and "bail de traitement écoulé" in waiting.last_error
    assert ctx.redmine.get_issue(lit.id).parent_id is None and ctx.redmine.children(lit.id) == []


def test_short_leases_still_let_an_event_be_processed(tmp_path):
    """Leases shorter than two Redmine deadlines (fast takeover, as the replica tests set
    them): the view writes for half the lease, it does not refuse everything."""
    ctx = make_context(tmp_path, Settings(worker=Worker(lease_seconds=15)))
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine)
    event_id = deliver(ctx, lit.id)
    assert work(ctx).processed == 1
    assert event(ctx, event_id).state is EventState.done


def test_the_daily_purge_forgets_claims_freed_more_than_a_day_ago(ctx):
    from app.inbox.scheduled import purge_job

    claims.release(ctx.db, claims.take(ctx.db, "note/1/old", "A", NOW - timedelta(days=1, seconds=1), 60))
    claims.release(ctx.db, claims.take(ctx.db, "note/1/today", "A", NOW - timedelta(hours=23), 60))
    purge_job(ctx)
    assert claims.take(ctx.db, "note/1/old", "B", NOW, 60).contended is False
    assert claims.take(ctx.db, "note/1/today", "B", NOW, 60).contended is True


def test_a_deadlines_firing_takes_no_claim_of_its_own(ctx):
    """Its row is claimed by one scheduler, and that claim covers the letter, the Perte de
    mandat, the relation and the note of C-14: a tick of a thousand deadlines costs no more
    statements (B3)."""
    from sqlalchemy import func, select

    from app.claims.models import EffectClaim
    from app.deadlines import flows as deadlines
    from app.litigation.deadlines import RULES
    from app.processing.flows import process_issue

    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date de demande de provision": "2026-11-01"})
    process_issue(ctx, lit.id)
    with ctx.db.session() as session:
        opened = session.scalar(select(func.count()).select_from(EffectClaim))
    assert opened > 0  # the file's opening (an event): its effects are claimed
    assert deadlines.tick(ctx, RULES).fired == 1  # D+45 passed: C-14 fires
    assert [i.tracker for i in ctx.redmine.issues.values()].count("Perte de mandat") == 1
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(EffectClaim)) == opened
