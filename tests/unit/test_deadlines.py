"""The deadline engine on the in-memory Redmine: the store follows the ticket, each
deadline fires exactly once (second firer, crash mid-fire, Redmine down), late ones say so."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from app.clock import Clock
from app.deadlines import flows, service
from app.deadlines.models import DeadlineState
from app.deadlines.service import Wanted
from app.litigation.deadlines import RULES, review_due_on
from app.litigation.flows import reconcile_litigation
from app.processing.flows import process_issue
from integrations.redmine.interface import RedmineUnavailable
from tests.unit.helpers import GESTIONNAIRE, NOW, add_litigation, add_register, apply_wanted, claim_one

D45 = datetime(2027, 2, 18, 7, 0, tzinfo=UTC)  # 18/02/2027 08:00 Paris, D = 04/01/2027


def states(ctx, issue_id):
    from sqlalchemy import select

    from app.deadlines.models import Deadline

    with ctx.db.session() as session:
        return sorted((d.kind, d.due_at, d.state) for d in session.scalars(select(Deadline)
                                                                            .where(Deadline.issue_id == issue_id)))


def test_the_store_follows_the_ticket(ctx):
    first = Wanted("C-14/provision", D45, "x")
    edited = Wanted("C-14/provision", D45 + timedelta(days=7), "x")
    apply_wanted(ctx.db, 1, [first], NOW)
    apply_wanted(ctx.db, 1, [edited], NOW)  # date edited
    assert states(ctx, 1) == [("C-14/provision", D45, DeadlineState.superseded),
                              ("C-14/provision", D45 + timedelta(days=7), DeadlineState.pending)]
    apply_wanted(ctx.db, 1, [], NOW)  # date cleared
    assert {s for _, _, s in states(ctx, 1)} == {DeadlineState.superseded, DeadlineState.cancelled}
    apply_wanted(ctx.db, 1, [first], NOW)  # the first date again
    assert (("C-14/provision", D45, DeadlineState.pending)) in states(ctx, 1)


def test_a_due_deadline_is_claimed_by_one_firer_and_retaken_after_a_crash(ctx):
    apply_wanted(ctx.db, 1, [Wanted("C-26/revue-mensuelle", NOW, "x")], NOW)
    first = claim_one(ctx.db, NOW, 300)
    assert first is not None and claim_one(ctx.db, NOW, 300) is None  # a second scheduler gets nothing
    # The first firer dies: the lease expires and the deadline is taken again.
    assert claim_one(ctx.db, NOW + timedelta(seconds=299), 300) is None
    again = claim_one(ctx.db, NOW + timedelta(seconds=301), 300)
    assert again.id == first.id and again.attempts == 2


@pytest.fixture
def provision_file(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine, **{"Date de demande de provision": "2027-01-04", "Date de réception des fonds": "",
                                     "Échéance": "", "Échéance – motif": "", "Déchéance de garantie le": ""})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    process_issue(ctx, lit.id)
    return lit


def test_c14_shown_on_the_ticket_then_fired_once(ctx, provision_file):
    redmine = ctx.redmine
    lit = redmine.get_issue(provision_file.id)
    assert lit.field("Échéance") == "2027-02-18" and "C-14" in lit.field("Échéance – motif")

    ctx.clock = Clock(D45 - timedelta(minutes=1))
    assert flows.tick(ctx, RULES).fired == 0
    ctx.clock = Clock(D45)
    assert flows.tick(ctx, RULES).fired == 1
    assert flows.tick(ctx, RULES).fired == 0

    lit = redmine.get_issue(provision_file.id)
    assert lit.assigned_to_id == GESTIONNAIRE and lit.field("Déchéance de garantie le") == "2027-02-18"
    assert lit.field("Échéance") == ""
    [letter] = [name for name in lit.attachments if name.startswith("decheance-garantie")]
    [loss] = [i for i in redmine.issues.values() if i.tracker == "Perte de mandat"]
    assert loss.relations == [lit.id] and loss.assigned_to_id == GESTIONNAIRE
    [note] = [n for n in redmine.notes(lit.id) if "dépassée sans réception" in n]
    assert "en retard" not in note


def test_c14_crash_mid_fire_completes_without_doubles(ctx, provision_file, monkeypatch):
    redmine = ctx.redmine
    relate = redmine.relate

    def down(*args):
        raise RedmineUnavailable("Redmine injoignable")

    monkeypatch.setattr(redmine, "relate", down)  # dies after the letter and the ticket
    ctx.clock = Clock(D45)
    assert flows.tick(ctx, RULES).failed == 1
    assert [d.last_error for d in service.listing(ctx.db)][0].startswith("RedmineUnavailable")

    monkeypatch.setattr(redmine, "relate", relate)
    ctx.clock = Clock(D45 + timedelta(seconds=61))
    assert flows.tick(ctx, RULES).fired == 1
    lit = redmine.get_issue(provision_file.id)
    assert len([a for a in lit.attachments if a.startswith("decheance")]) == 1
    assert len([i for i in redmine.issues.values() if i.tracker == "Perte de mandat"]) == 1
    assert len([n for n in redmine.notes(lit.id) if "dépassée sans réception" in n]) == 1


def test_c14_fired_but_not_recorded_fires_again_after_the_lease_without_doubles(ctx, provision_file, monkeypatch):
    """The store fails between a batch's firing and its bookkeeping (a crash there): the
    deadline stays claimed, and once the lease has expired it fires again — Redmine still
    holds each effect once, the store one fired row."""
    from sqlalchemy.exc import OperationalError

    store_wanted = service.store_wanted

    def store_down(*args, **kwargs):
        raise OperationalError("UPDATE deadlines …", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(service, "store_wanted", store_down)
    ctx.clock = Clock(D45)
    with pytest.raises(OperationalError):
        flows.tick(ctx, RULES)
    [claimed] = service.listing(ctx.db)
    assert claimed.state is DeadlineState.firing

    monkeypatch.setattr(service, "store_wanted", store_wanted)
    lease = ctx.settings.deadlines.lease_seconds
    ctx.clock = Clock(D45 + timedelta(seconds=lease - 1))
    assert flows.tick(ctx, RULES).fired == 0  # still under the dead firer's lease
    ctx.clock = Clock(D45 + timedelta(seconds=lease + 1))
    assert flows.tick(ctx, RULES).fired == 1
    lit = ctx.redmine.get_issue(provision_file.id)
    assert len([a for a in lit.attachments if a.startswith("decheance")]) == 1
    assert len([i for i in ctx.redmine.issues.values() if i.tracker == "Perte de mandat"]) == 1
    assert len([n for n in ctx.redmine.notes(lit.id) if "dépassée sans réception" in n]) == 1
    assert states(ctx, lit.id) == [("C-14/provision", D45, DeadlineState.fired)]


def test_deadlines_of_one_ticket_in_one_batch_are_recorded_together(ctx):
    """Two deadlines of one ticket fire in the same batch; its next deadline is then computed
    with both counted as fired (read in the bookkeeping's own transaction) and shown on it."""
    later = NOW + timedelta(days=30)

    class Rules:
        def wanted(self, ctx, issue, fired):
            if {"T-1/a", "T-1/b"} <= fired.keys():
                return [Wanted("T-1/suite", later, "la suite")]
            return [Wanted("T-1/a", NOW, "a"), Wanted("T-1/b", NOW, "b")]

        def fire(self, ctx, issue, deadline, late):
            ctx.redmine.update_issue(issue.id, notes=f"échéance {deadline.kind}")
            return deadline.kind

    lit = add_litigation(ctx.redmine, **{"Échéance": "", "Échéance – motif": ""})
    flows.sync(ctx, Rules(), ctx.redmine.get_issue(lit.id))
    assert flows.tick(ctx, Rules()) == flows.TickReport(fired=2, skipped=0, failed=0)
    assert states(ctx, lit.id) == [("T-1/a", NOW, DeadlineState.fired), ("T-1/b", NOW, DeadlineState.fired),
                                   ("T-1/suite", later, DeadlineState.pending)]
    shown = ctx.redmine.get_issue(lit.id)
    assert (shown.field("Échéance"), shown.field("Échéance – motif")) == (later.date().isoformat(), "la suite")
    assert ctx.redmine.notes(lit.id) == ["échéance T-1/a", "échéance T-1/b"]


def test_c14_fired_late_says_so(ctx, provision_file):
    ctx.clock = Clock(D45 + timedelta(days=3))
    assert flows.tick(ctx, RULES).fired == 1
    [note] = [n for n in ctx.redmine.notes(provision_file.id) if "dépassée sans réception" in n]
    assert "traitée en retard, le 21/02/2027" in note


@pytest.mark.parametrize("received, fires", [("2027-02-17", False), ("2027-02-18", False), ("2027-02-19", True)])
def test_c14_funds_by_d45_cancel_after_it_do_not(ctx, provision_file, received, fires):
    issue = ctx.redmine.get_issue(provision_file.id)
    ctx.redmine.issues[issue.id] = replace(issue, custom_fields={**issue.custom_fields,
                                                                 "Date de réception des fonds": received})
    process_issue(ctx, issue.id)
    ctx.clock = Clock(D45 + timedelta(days=2))
    assert flows.tick(ctx, RULES).fired == int(fires)


@pytest.mark.parametrize("created, after, due", [
    (date(2027, 1, 31), None, date(2027, 2, 28)),
    (date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)),
    (date(2027, 1, 31), date(2027, 6, 10), date(2027, 6, 30)),  # months missed: the next one only
    (date(2028, 1, 30), None, date(2028, 2, 29)),
])
def test_c26_monthly_review_series(ctx, created, after, due):
    issue = ctx.redmine.add("Exécution")
    issue = replace(issue, created_on=datetime(created.year, created.month, created.day, 10, tzinfo=UTC))
    assert review_due_on(ctx, issue, after) == due



def test_two_syncs_adding_the_same_deadline_at_once_do_not_fail(ctx):
    """The worker and the tick job of one `serve` may sync the same ticket concurrently."""
    from threading import Barrier, Thread

    barrier, errors = Barrier(2), []

    def sync():
        barrier.wait()
        try:
            apply_wanted(ctx.db, 7, [Wanted("C-26/revue-mensuelle", D45, "x")], NOW)
        except Exception as exc:  # noqa: BLE001 — the failure under test
            errors.append(exc)

    threads = [Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and states(ctx, 7) == [("C-26/revue-mensuelle", D45, DeadlineState.pending)]


def test_a_batch_not_fired_within_half_its_lease_goes_back_to_the_store(ctx, monkeypatch):
    """The claimed deadlines still unfired when half the lease has passed are released (the
    lease never expires under a firer still holding them), then claimed again afresh."""
    class Rules:
        def wanted(self, ctx, issue, fired):
            return [Wanted("C-26/revue-mensuelle", NOW, "revue")]

        def fire(self, ctx, issue, deadline, late):
            return "revue"

    for _ in range(3):
        apply_wanted(ctx.db, ctx.redmine.add("Exécution").id, Rules().wanted(ctx, None, {}), NOW)
    claimed, claim_batch = [], service.claim_batch

    def claiming(*args):
        claimed.append(claim_batch(*args))
        return claimed[-1]

    monkeypatch.setattr(service, "claim_batch", claiming)
    clock = iter([0, 0, 200])  # claimed at 0, first fired at 0, the second would start at 200 s (lease: 300 s)
    monkeypatch.setattr(flows, "monotonic", lambda: next(clock, 1_000))
    assert flows.tick(ctx, Rules()).fired == 3
    assert [len(batch) for batch in claimed] == [3, 2, 0]
    assert [d.attempts for d in claimed[1]] == [1, 1]  # released unfired: not counted as an attempt
