"""Personal data in the inbox (issue 14): what a stored event keeps, and how long."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from app.config import Retention, Settings
from app.inbox import service
from app.inbox.flows import parse_delivery, purge_events
from app.inbox.models import EventState
from tests.unit.helpers import NOW

# A Redmine 7 delivery: the issue and the journal as Redmine shows them, people and money included.
REDMINE_7 = json.dumps({
    "type": "issue.updated", "timestamp": "2027-01-15T08:00:00Z",
    "data": {
        "issue": {"id": 42, "subject": "Impayés de loyer — Dupont", "description": "Jean Dupont, 06 12 34 56 78",
                  "author": {"id": 3, "name": "Claire Contentieux"},
                  "custom_fields": [{"id": 5, "name": "Débiteurs", "value": "Jean Dupont ; locataire"},
                                    {"id": 6, "name": "Montant de la dette", "value": "2450.50"}]},
        "journal": {"id": 77, "notes": "Le locataire Dupont promet de payer", "user": {"id": 3, "name": "Claire"},
                    "details": [{"property": "cf", "name": "6", "old_value": "1200.00", "new_value": "2450.50"}]},
    },
}).encode()


def _row_values(ctx) -> str:
    with ctx.db.engine.connect() as connection:
        return " ".join(str(v) for row in connection.execute(text("SELECT * FROM inbox_events")) for v in row)


def test_a_stored_delivery_keeps_ids_and_type_only(ctx):
    """Every event used to keep its whole body: names, amounts and notes, forever."""
    stored = service.store_event(ctx.db, parse_delivery(REDMINE_7), NOW)
    values = _row_values(ctx)
    for personal in ("Dupont", "Claire", "2450", "1200", "06 12", "promet", "Débiteurs"):
        assert personal not in values
    [event] = service.list_events(ctx.db)
    assert (event.id, event.source, event.event_type, event.issue_id, event.journal_id, event.dedup_key) == (
        stored.event_id, "redmine", "issue.updated", 42, 77, "issue.updated:42:77")


def _finished(ctx, issue_id: int, state: EventState, days_ago: float) -> int:
    """An event of ``issue_id`` that ended (done, failed or dismissed) ``days_ago`` before NOW."""
    body = json.dumps({"type": "issue.created", "data": {"issue": {"id": issue_id}}}).encode()
    event_id = service.store_event(ctx.db, parse_delivery(body), NOW - timedelta(days=days_ago + 1)).event_id
    ended = NOW - timedelta(days=days_ago)
    if state is EventState.done:
        service.finish(ctx.db, event_id, "ok", ended)
    else:
        service.fail(ctx.db, event_id, "Redmine a refusé", ended)
    if state is EventState.dismissed:
        assert service.dismiss(ctx.db, [event_id], ended) == [event_id]
    return event_id


def _ids(ctx) -> set[int]:
    return {e.id for e in service.list_events(ctx.db, limit=1000)}


def test_done_and_dismissed_events_are_purged_after_the_retention_period_failed_ones_kept(ctx):
    old_done = _finished(ctx, 1, EventState.done, 30.01)
    old_dismissed = _finished(ctx, 2, EventState.dismissed, 31)
    old_failed = _finished(ctx, 3, EventState.failed, 400)
    recent_done = _finished(ctx, 4, EventState.done, 29.99)
    recent_dismissed = _finished(ctx, 5, EventState.dismissed, 1)
    pending = service.store_event(ctx.db, parse_delivery(b'{"type": "issue.created", "data": {"issue": {"id": 6}}}'),
                                  NOW - timedelta(days=90)).event_id

    assert ctx.settings.retention.events_days == 30
    assert purge_events(ctx) == 2
    assert _ids(ctx) == {old_failed, recent_done, recent_dismissed, pending}
    assert old_done not in _ids(ctx) and old_dismissed not in _ids(ctx)
    assert purge_events(ctx) == 0

    ctx.settings = Settings(retention=Retention(events_days=1))
    assert purge_events(ctx) == 1  # recent_done; the one dismissed a day ago is at the limit, kept
    assert _ids(ctx) == {old_failed, recent_dismissed, pending}


def test_only_failed_events_are_dismissed_and_a_dismissed_one_is_never_retried(ctx):
    failed = _finished(ctx, 1, EventState.failed, 2)
    done = _finished(ctx, 2, EventState.done, 2)
    assert service.dismiss(ctx.db, [failed, done, 999], NOW) == [failed]
    assert service.retry_failed(ctx.db, NOW) == 0
    assert {e.id: e.state for e in service.list_events(ctx.db)} == {failed: EventState.dismissed,
                                                                    done: EventState.done}
    assert service.count_by_state(ctx.db) == {"dismissed": 1, "done": 1}


def test_retention_must_be_at_least_a_day():
    with pytest.raises(ValueError):
        Retention(events_days=0)


def test_the_leader_purges_daily_at_the_office_hour_and_at_start(ctx):
    from app.health.heartbeats import Heartbeats
    from app.leadership.flows import Leadership
    from app.main import LEADER_JOBS, make_scheduler

    job = make_scheduler(ctx, Leadership(ctx), Heartbeats(ctx.clock, 120)).get_job("purge")
    assert "purge" in LEADER_JOBS  # run when a replica takes the scheduler lease, so at start
    assert str(job.trigger) == "cron[hour='8', minute='0']"


@pytest.fixture
def cli_env(ctx, monkeypatch):
    """The CLI on the database of ``ctx`` (settings read again for each invocation)."""
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    monkeypatch.setenv("RECOUVREMENT_DATABASE_URL", ctx.db.url)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli, list(args))
    get_settings.cache_clear()


def test_events_purge_and_dismiss_from_the_command_line(ctx, cli_env):
    old = _finished(ctx, 1, EventState.done, 45)
    failed = _finished(ctx, 2, EventState.failed, 45)

    dismissed = cli_env("events", "dismiss", str(failed), str(old), "--now", NOW.isoformat())
    assert dismissed.exit_code == 0, dismissed.output
    assert "1 événement(s) écarté(s)" in dismissed.output
    assert f"#{old} : introuvable ou pas en échec" in dismissed.output
    assert "dismissed=1" in cli_env("events").output

    purged = cli_env("events", "purge", "--now", NOW.isoformat())
    assert purged.exit_code == 0, purged.output
    assert "1 événement(s) supprimé(s)" in purged.output and "30 jours" in purged.output
    later = (NOW + timedelta(days=31)).isoformat()
    assert "1 événement(s) supprimé(s)" in cli_env("events", "purge", "--now", later).output
    assert "aucun événement" in cli_env("events").output


def test_the_migration_drops_the_bodies_already_stored(tmp_path):
    """Rows stored before the change lose their body, and keep what processing needs."""
    from alembic import command
    from alembic.config import Config

    from app.database import MIGRATIONS_DIR, Database

    db = Database(f"sqlite:///{tmp_path}/before.db")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(text(
            "INSERT INTO inbox_events (dedup_key, source, event_type, issue_id, journal_id, payload, received_at,"
            " state, attempts, next_attempt_at) VALUES ('issue.updated:42:77', 'webhook', 'issue.updated', 42, 77, :body,"
            " '2027-01-15 08:00:00', 'done', 1, '2027-01-15 08:00:00')"), {"body": REDMINE_7.decode()})
    db.migrate()
    with db.engine.connect() as connection:
        assert "payload" not in [c["name"] for c in sa_inspect(connection).get_columns("inbox_events")]
        assert "Dupont" not in " ".join(map(str, connection.execute(text("SELECT * FROM inbox_events")).one()))
    [event] = service.list_events(db)
    assert (event.dedup_key, event.issue_id, event.journal_id, event.state) == ("issue.updated:42:77", 42, 77,
                                                                                 EventState.done)
