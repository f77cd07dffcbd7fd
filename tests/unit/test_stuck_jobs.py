"""Stuck work is visible (issue 14): a periodic job running without progress beyond the
threshold makes /health and /ready answer 503 naming the job and since when; the replica
stops renewing the scheduler lease while one of its jobs is stuck, so another takes over,
and renews again once the job ends. Jobs here are blocked on an Event, released at the end;
the threshold is a fraction of a second (in-process elapsed time, monotonic)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.clock import Clock
from app.config import Settings, Worker
from app.leadership import service as leases
from app.main import create_app
from integrations.redmine.client import RedmineClient
from tests.unit.helpers import NOW, make_context
from tests.unit.test_redmine_timeouts import answering_redmine

THRESHOLD = 0.3


def until(condition, seconds: float = 10):
    """Bounded wait for the job's thread to reach a state."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "délai dépassé"
        time.sleep(0.02)


@pytest.fixture
def app_ctx(tmp_path):
    return make_context(tmp_path, Settings(worker=Worker(stuck_after_seconds=THRESHOLD)))


def run_blocked(heartbeats, name: str) -> tuple[threading.Event, threading.Thread]:
    """The job ``name`` running (watched) and blocked until the returned Event is set."""
    release = threading.Event()
    thread = threading.Thread(target=heartbeats.watch(name, lambda: release.wait(30)), daemon=True)
    thread.start()
    return release, thread


def test_a_job_without_progress_makes_health_and_ready_answer_503_until_it_ends(app_ctx):
    app = create_app(app_ctx)
    with TestClient(app) as client:
        release, thread = run_blocked(app.state.heartbeats, "tick")
        assert client.get("/health").status_code == 200  # running, not yet beyond the threshold
        until(lambda: app.state.heartbeats.stuck())
        health, ready = client.get("/health"), client.get("/ready")
        release.set()
        thread.join(10)
        after = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "bloqué"
    (reason,) = health.json()["stuck"]
    assert reason.startswith("tâche « tick » bloquée depuis le 15/01/2027 09:00:00 (heure de Paris)")
    assert ready.status_code == 503 and ready.json()["checks"]["jobs"] == reason
    assert ready.json()["checks"]["redmine"] == "ok"
    assert after.status_code == 200 and after.json() == {"status": "ok", "scheduler": "follower"}


def test_a_long_job_that_keeps_getting_answers_from_redmine_is_not_stuck(app_ctx):
    with answering_redmine() as url:
        app_ctx.redmine = RedmineClient(app_ctx.settings.model_copy(update={"redmine_url": url}))
        heartbeats = create_app(app_ctx).state.heartbeats
        seen = []

        def long_job():  # a long queue: a request every 0.1 s, for 4 × the threshold
            started = time.monotonic()
            while time.monotonic() - started < 4 * THRESHOLD:
                app_ctx.redmine.ping()
                seen.append(heartbeats.stuck())
                time.sleep(0.1)

        heartbeats.watch("work", long_job)()
    assert len(seen) >= 8 and not any(seen)


def test_a_leader_with_a_stuck_job_stops_renewing_and_another_replica_takes_over(tmp_path):
    ctx = make_context(tmp_path, Settings(worker=Worker(stuck_after_seconds=THRESHOLD)))
    other_ctx = make_context(tmp_path)
    other_ctx.db = ctx.db
    first = create_app(ctx).state
    second = create_app(other_ctx).state
    assert first.leadership.renew() is True
    held = leases.current(ctx.db, "scheduler").expires_at

    release, thread = run_blocked(first.heartbeats, "tick")
    until(lambda: first.heartbeats.stuck())
    ctx.clock = Clock(NOW + timedelta(seconds=10))
    assert first.leadership.renew() is False
    assert leases.current(ctx.db, "scheduler").expires_at == held  # not renewed: it runs out
    other_ctx.clock = Clock(NOW + timedelta(seconds=31))
    assert second.leadership.renew() is True  # another replica takes the deadlines over

    release.set()
    thread.join(10)
    ctx.clock = Clock(NOW + timedelta(seconds=32))
    assert first.leadership.renew() is False and not first.leadership.holds()  # renews again: a follower now
    assert leases.current(ctx.db, "scheduler").holder == second.leadership.holder


def test_a_stuck_worker_job_does_not_stop_the_lease_renewal(app_ctx):
    state = create_app(app_ctx).state
    release, thread = run_blocked(state.heartbeats, "work")
    until(lambda: state.heartbeats.stuck())
    try:
        assert state.leadership.renew() is True  # the worker runs on every replica: not the scheduler's
    finally:
        release.set()
        thread.join(10)
