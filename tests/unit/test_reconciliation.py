"""Issue 16: the reconciliation of the tracked tickets with Redmine, on the in-memory
Redmine — what polling cannot see (a ticket deleted, moved to another project, a relation
added: none changes what polling lists) is found and handled as an event would be. The same
against the real Redmine: tests/e2e/test_reconciliation.py."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from app.clock import Clock
from app.deadlines import service as deadlines
from app.inbox import service as inbox
from app.inbox.flows import poll_once
from app.inbox.models import EventState
from app.processing.flows import process_issue, work
from app.reconciliation import service
from app.reconciliation.flows import fingerprint, reconcile, remember, tracked
from app.reconciliation.scheduled import reconcile_job
from integrations.redmine.interface import PAGE
from tests.unit.helpers import NOW, add_litigation, add_register

FUNDS = "Date de réception des fonds"


@pytest.fixture
def provision_file(ctx):
    """A litigation file processed with its provision asked on 04/01/2027, no funds yet:
    C-14 pending, the ticket remembered open."""
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Date de demande de provision": "2027-01-04", FUNDS: ""})
    process_issue(ctx, lit.id)
    assert lit.id in deadlines.active_issue_ids(ctx.db) and tracked(ctx) == [lit.id]
    return lit


def reconciled_events(ctx):
    return [e for e in inbox.list_events(ctx.db, limit=1000) if e.event_type == "issue.reconciled"]


def test_an_unchanged_ticket_queues_nothing_and_writes_nothing(ctx, provision_file):
    poll_once(ctx)  # the version polling read
    writes = ctx.redmine.writes
    report = reconcile(ctx)
    assert (report.checked, report.absent, report.moved, report.changed, report.queued) == (1, [], [], [], 0)
    assert reconciled_events(ctx) == [] and ctx.redmine.writes == writes


def test_a_deleted_ticket_has_its_deadlines_cancelled_and_is_no_longer_tracked(ctx, provision_file):
    ctx.redmine.delete(provision_file.id)
    report = reconcile(ctx)
    assert report.absent == [provision_file.id] and report.queued == 1
    [queued] = reconciled_events(ctx)
    assert queued.dedup_key == f"reconciliation/{provision_file.id}/absent/2027-01-15" and queued.source == "internal"

    assert work(ctx).processed == 1
    [done] = reconciled_events(ctx)
    assert done.state is EventState.done and "introuvable" in done.result and "C-14/provision cancelled" in done.result
    assert deadlines.active_issue_ids(ctx.db) == set() and tracked(ctx) == []
    assert reconcile(ctx).checked == 0


def test_the_daily_reconciliation_queues_tickets_moved_out_of_polling_sight(ctx, provision_file):
    """Issue 15, failure 7 (formerly the « strays » scan): moved to another project, which
    polling does not list; the issue list without a project filter still answers it."""
    ctx.redmine.move(provision_file.id, project_id=2)
    assert provision_file.id not in {s.id for s in ctx.redmine.changed_page(None)}  # polling lists the project's
    report = reconcile(ctx)
    assert report.moved == [provision_file.id] and report.queued == 1
    assert reconcile(ctx).queued == 0  # queued once a day all the same
    journals = len(ctx.redmine.issues[provision_file.id].journals)
    assert work(ctx).processed == 1
    [done] = reconciled_events(ctx)
    assert "d'un autre projet" in done.result and "C-14/provision cancelled" in done.result
    assert len(ctx.redmine.issues[provision_file.id].journals) == journals  # nothing written there
    assert provision_file.id not in tracked(ctx)


def test_a_ticket_moved_to_a_tracker_without_deadlines_is_found_changed(ctx, provision_file):
    ctx.redmine.move(provision_file.id, tracker="Tâche gestionnaire")
    report = reconcile(ctx)
    assert report.changed == [provision_file.id] and report.queued == 1
    work(ctx)
    assert deadlines.active_issue_ids(ctx.db) == set()
    assert tracked(ctx) == [provision_file.id]  # still an open ticket of the project
    assert reconcile(ctx).queued == 0  # its new fingerprint recorded


def test_a_closed_ticket_is_found_changed_then_no_longer_tracked(ctx, provision_file):
    ctx.redmine.close(provision_file.id)
    report = reconcile(ctx)
    assert report.changed == [provision_file.id] and report.queued == 1
    work(ctx)
    assert deadlines.active_issue_ids(ctx.db) == set() and tracked(ctx) == []


def test_a_relation_added_is_found_though_updated_on_did_not_change(ctx, provision_file):
    poll_once(ctx)
    other = ctx.redmine.add("Tâche gestionnaire", "Autre dossier")
    updated_on = ctx.redmine.issues[provision_file.id].updated_on
    ctx.redmine.relate(provision_file.id, other.id)  # as a user does: Redmine leaves updated_on as it was
    assert ctx.redmine.issues[provision_file.id].updated_on == updated_on  # so polling does not list it

    report = reconcile(ctx)
    assert report.changed == [provision_file.id] and report.queued == 1
    work(ctx)
    assert reconciled_events(ctx)[0].state is EventState.done
    assert provision_file.id not in reconcile(ctx).changed  # processing recorded what it read


def test_a_change_polling_has_not_read_is_queued(ctx, provision_file):
    """``updated_on`` listed newer than the version polling recorded: a change it missed (or
    has not read yet); unchanged fingerprint all the same."""
    poll_once(ctx)
    ctx.redmine.edit(provision_file.id, notes="Appel du locataire.")
    report = reconcile(ctx)
    assert report.changed == [provision_file.id] and report.queued == 1
    poll_once(ctx)
    assert reconcile(ctx).changed == []  # polling read it since


def test_run_twice_a_day_queues_once_and_again_the_next_day(ctx, provision_file):
    ctx.redmine.delete(provision_file.id)
    assert reconcile(ctx).queued == 1
    ctx.clock = Clock(NOW + timedelta(hours=6))
    again = reconcile(ctx)
    assert again.absent == [provision_file.id] and again.queued == 0  # the same day (Paris): queued once
    ctx.clock = Clock(NOW + timedelta(days=1))
    assert reconcile(ctx).queued == 1  # still there unprocessed the next day: queued again
    assert len(reconciled_events(ctx)) == 2


def test_the_tracked_tickets_are_the_open_ones_and_those_with_pending_deadlines(ctx, provision_file):
    redmine = ctx.redmine
    open_task = redmine.add("Tâche gestionnaire", "Ouvert")
    process_issue(ctx, open_task.id)
    closed_task = redmine.add("Tâche gestionnaire", "Fermé")
    redmine.close(closed_task.id)
    process_issue(ctx, closed_task.id)
    with_deadline = redmine.add("Contentieux", "Clôturé, échéance en attente")
    service.remember(ctx.db, with_deadline.id, fingerprint(with_deadline), False, NOW)
    deadlines.store_wanted(ctx.db, [with_deadline.id], lambda _id, _fired: [
        deadlines.Wanted("C-14/provision", NOW + timedelta(days=30), "déchéance")], NOW)
    foreign = redmine.add("Tâche gestionnaire", "Autre projet")
    redmine.move(foreign.id, project_id=2)
    process_issue(ctx, foreign.id)  # ignored: not tracked

    assert tracked(ctx) == sorted([provision_file.id, open_task.id, with_deadline.id])
    assert reconcile(ctx).checked == 3


def test_tickets_with_deadlines_never_remembered_are_queued_once(ctx):
    """Deadlines stored before the reconciliation existed: no fingerprint yet, so each ticket
    is read again once (the summary names the first 20); processing then records them."""
    files = [add_litigation(ctx.redmine) for _ in range(25)]
    deadlines.store_wanted(ctx.db, [f.id for f in files], lambda _id, _fired: [
        deadlines.Wanted("C-14/provision", NOW + timedelta(days=30), "déchéance")], NOW)
    report = reconcile(ctx)
    assert report.changed == [f.id for f in files] and report.queued == 25
    assert "modifié(s) : 25 (#1, #2, " in report.summary() and "#20 et 5 autre(s)), 25 événement(s)" in report.summary()
    work(ctx)
    assert reconcile(ctx).queued == 0


def test_tracked_tickets_are_looked_up_100_a_request(ctx, monkeypatch):
    redmine = ctx.redmine
    issues = [redmine.add("Tâche gestionnaire", f"Tâche {n}") for n in range(250)]
    for issue in issues:
        remember(ctx, issue)
    for issue in issues[:3]:
        redmine.delete(issue.id)
    asked: list[list[int]] = []
    by_ids = redmine.issues_by_ids
    monkeypatch.setattr(redmine, "issues_by_ids", lambda ids: asked.append(ids) or by_ids(ids))

    report = reconcile(ctx)
    assert [len(ids) for ids in asked] == [PAGE, PAGE, 50]
    assert "250 ticket(s) suivi(s) vérifié(s), absent(s) de Redmine : 3 (#1, #2, #3)" in report.summary()
    assert sorted(i for ids in asked for i in ids) == [i.id for i in issues]
    assert report.checked == 250 and report.absent == [i.id for i in issues[:3]] and report.queued == 3
    with pytest.raises(ValueError):
        by_ids([i.id for i in issues[:PAGE + 1]])


def test_the_same_fingerprint_for_a_ticket_read_whole_and_as_listed(ctx, provision_file):
    other = ctx.redmine.add("Tâche gestionnaire")
    ctx.redmine.relate(provision_file.id, other.id)
    [listed] = ctx.redmine.issues_by_ids([provision_file.id])
    assert fingerprint(listed) == fingerprint(ctx.redmine.get_issue(provision_file.id))
    assert fingerprint(listed) != fingerprint(provision_file)  # the relation counts


def test_the_leader_reconciles_daily_at_the_office_hour_and_at_start(ctx):
    from app.health.heartbeats import Heartbeats
    from app.leadership.flows import Leadership
    from app.main import LEADER_JOBS, make_scheduler

    job = make_scheduler(ctx, Leadership(ctx), Heartbeats(ctx.clock, 120)).get_job("reconcile")
    assert "reconcile" in LEADER_JOBS  # run when a replica takes the scheduler lease, so at start
    assert str(job.trigger) == "cron[hour='8', minute='0']"


def test_redmine_down_the_job_says_so_and_tries_again_next_time(ctx, provision_file, caplog):
    ctx.redmine.down = True
    with caplog.at_level(logging.WARNING):
        reconcile_job(ctx)
    assert "rapprochement avec Redmine impossible" in caplog.text
    ctx.redmine.down = False
    ctx.redmine.delete(provision_file.id)
    with caplog.at_level(logging.INFO):
        reconcile_job(ctx)
    assert f"absent(s) de Redmine : 1 (#{provision_file.id})" in caplog.text
