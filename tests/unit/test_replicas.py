"""Several replicas on one database: the scheduler lease, and claims that never overlap.
Run on SQLite here and on PostgreSQL by ``make unit-postgres`` (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import timedelta

from app.database import Database
from app.deadlines import service as deadlines
from app.deadlines.service import Wanted
from app.inbox import service as inbox
from app.leadership import service as leases
from app.leadership.flows import Leadership
from tests.unit.helpers import NOW, apply_wanted, claim_one, deliver


def as_replicas(ctx, count: int, work) -> None:
    """``work(db, n)`` in ``count`` threads at once, each with its own engine (a replica)."""
    def replica(n: int) -> None:
        db = Database(ctx.db.url)
        try:
            work(db, n)
        finally:
            db.engine.dispose()

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_one_holder_renewals_and_takeover_after_expiry(ctx):
    assert leases.acquire(ctx.db, "scheduler", "a", NOW, 30) == NOW + timedelta(seconds=30)
    assert leases.acquire(ctx.db, "scheduler", "b", NOW + timedelta(seconds=29), 30) is None
    renewed = leases.acquire(ctx.db, "scheduler", "a", NOW + timedelta(seconds=20), 30)
    assert renewed == NOW + timedelta(seconds=50)
    assert leases.acquire(ctx.db, "scheduler", "b", NOW + timedelta(seconds=49), 30) is None
    assert leases.acquire(ctx.db, "scheduler", "b", NOW + timedelta(seconds=51), 30) is not None  # a died
    held = leases.current(ctx.db, "scheduler")
    assert held.holder == "b" and held.acquired_at == NOW + timedelta(seconds=51)
    assert leases.acquire(ctx.db, "scheduler", "a", NOW + timedelta(seconds=52), 30) is None


def test_a_released_lease_is_taken_at_once(ctx):
    leases.acquire(ctx.db, "scheduler", "a", NOW, 30)
    leases.release(ctx.db, "scheduler", "a", NOW + timedelta(seconds=1))
    assert leases.acquire(ctx.db, "scheduler", "b", NOW + timedelta(seconds=2), 30) is not None


def test_leadership_says_when_it_starts_and_stops_holding(ctx):
    first, second = Leadership(ctx, holder="a"), Leadership(ctx, holder="b")
    assert first.renew() is True and first.holds()
    assert first.renew() is False and first.holds()  # a renewal, not a new start
    assert second.renew() is False and not second.holds()
    ran = []
    guarded = second.only_when_leading(lambda c: ran.append("b"))
    guarded(ctx)
    assert ran == []
    first.release()
    assert second.renew() is True
    guarded(ctx)
    assert ran == ["b"]


def test_racing_replicas_get_one_lease(ctx):
    """Eight threads, each its own engine (a replica), race for the lease at the same instant."""
    winners = []
    start = threading.Barrier(8)

    def race(db: Database, n: int) -> None:
        start.wait()
        if leases.acquire(db, "scheduler", f"r{n}", NOW, 30):
            winners.append(f"r{n}")

    as_replicas(ctx, 8, race)
    assert len(winners) == 1 and leases.current(ctx.db, "scheduler").holder == winners[0]


def test_workers_on_several_engines_claim_each_event_once_and_in_order_per_issue(ctx):
    """60 events on 6 issues, four replicas claiming at once: every event once, and an
    issue's events one after another (none claimed while an earlier one is unfinished)."""
    ids = [deliver(ctx, issue_id=100 + n % 6, journal_id=1000 + n) for n in range(60)]
    claimed: dict[int, list[int]] = defaultdict(list)
    lock = threading.Lock()
    in_flight: set[int] = set()
    overlaps = []

    def work(db: Database, _: int) -> None:
        while (event := inbox.claim_next(db, NOW, 300)) is not None:
            with lock:
                if event.issue_id in in_flight:
                    overlaps.append(event.id)
                in_flight.add(event.issue_id)
                claimed[event.issue_id].append(event.id)
            inbox.finish(db, event.id, "ok", NOW)
            with lock:
                in_flight.discard(event.issue_id)

    as_replicas(ctx, 4, work)
    assert overlaps == []
    assert sorted(i for events in claimed.values() for i in events) == sorted(ids)
    assert all(events == sorted(events) for events in claimed.values())


def test_firers_on_several_engines_claim_each_due_deadline_once(ctx):
    for issue_id in range(1, 41):
        apply_wanted(ctx.db, issue_id, [Wanted("C-14/provision", NOW - timedelta(hours=1), "test")], NOW)
    apply_wanted(ctx.db, 99, [Wanted("C-14/provision", NOW + timedelta(days=1), "plus tard")], NOW)
    taken: list[int] = []
    lock = threading.Lock()

    def fire(db: Database, _: int) -> None:
        while (deadline := claim_one(db, NOW, 300)) is not None:
            with lock:
                taken.append(deadline.issue_id)
            deadlines.store_wanted(db, [deadline.issue_id], lambda _issue, _fired: [], NOW, results={deadline.id: "ok"})

    as_replicas(ctx, 4, fire)
    assert sorted(taken) == list(range(1, 41))
