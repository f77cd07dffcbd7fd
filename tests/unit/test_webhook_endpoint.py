"""POST /webhooks/redmine, /health and /ready, in process."""

import hashlib
import hmac
import json
import logging

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.inbox import service
from app.reconciliation import service as reconciliation
from app.main import create_app
from tests.unit.helpers import NOW, make_context

SECRET = "unit-secret"
BODY = json.dumps({"type": "issue.created", "timestamp": "2027-01-15T08:00:00Z",
                   "data": {"issue": {"id": 5}}}).encode()


def signed(body: bytes, secret: str = SECRET) -> dict:
    return {"X-Redmine-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.fixture
def signed_ctx(tmp_path):
    return make_context(tmp_path, Settings(webhook_secret=SECRET, webhook_max_bytes=2000))


@pytest.fixture
def open_ctx(tmp_path):
    """Deliveries not authenticated, as explicitly chosen."""
    return make_context(tmp_path, Settings(webhook_unauthenticated=True))


def post(ctx, body, headers):
    with TestClient(create_app(ctx)) as client:
        return client.post("/webhooks/redmine", content=body, headers=headers)


def stored(ctx):
    return service.list_events(ctx.db)


def test_accepted_then_duplicate(signed_ctx):
    first = post(signed_ctx, BODY, signed(BODY))
    again = post(signed_ctx, BODY, signed(BODY))
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    [event] = stored(signed_ctx)
    assert (event.issue_id, event.state.value, event.source) == (5, "pending", "redmine")


@pytest.mark.parametrize("headers", [{}, signed(BODY, "other-secret"), {"X-Redmine-Signature-256": "garbage"}])
def test_bad_or_missing_signature_is_401_and_stores_nothing(signed_ctx, headers):
    response = post(signed_ctx, BODY, headers)
    assert response.status_code == 401 and response.json()["error"]
    assert SECRET not in response.text
    assert stored(signed_ctx) == []


def test_malformed_body_is_400_and_stores_nothing(signed_ctx):
    body = b'{"type": "issue.created", "data": '
    response = post(signed_ctx, body, signed(body))
    assert response.status_code == 400 and "JSON invalide" in response.json()["error"]
    assert stored(signed_ctx) == []


def test_body_over_the_limit_is_413_and_stores_nothing(signed_ctx):
    body = json.dumps({"type": "issue.created", "data": {"issue": {"id": 5, "d": "x" * 3000}}}).encode()
    assert post(signed_ctx, body, signed(body)).status_code == 413
    assert stored(signed_ctx) == []


@pytest.mark.parametrize("secret", [None, "", "   ", " \t\n"])
def test_without_a_secret_every_delivery_is_refused(tmp_path, secret):
    """Issue 14: an empty secret silently turned authentication off."""
    ctx = make_context(tmp_path, Settings(webhook_secret=secret))
    for headers in ({}, signed(BODY, ""), signed(BODY, secret or "")):
        response = post(ctx, BODY, headers)
        assert response.status_code == 401 and "RECOUVREMENT_WEBHOOK_SECRET" in response.json()["error"]
    assert stored(ctx) == []


def test_in_the_unauthenticated_mode_unsigned_deliveries_are_accepted_with_a_warning_at_start(open_ctx, caplog):
    with caplog.at_level(logging.WARNING, logger="app.main"):
        assert post(open_ctx, BODY, {}).status_code == 202
    assert "non authentifiés" in caplog.text and "RECOUVREMENT_WEBHOOK_UNAUTHENTICATED" in caplog.text


def test_a_secret_wins_over_the_unauthenticated_mode(tmp_path):
    ctx = make_context(tmp_path, Settings(webhook_secret=SECRET, webhook_unauthenticated=True))
    assert post(ctx, BODY, {}).status_code == 401
    assert post(ctx, BODY, signed(BODY)).status_code == 202


@pytest.fixture
def settings_from_env():
    """The CLI reads its settings once per process: read again for each invocation here."""
    from app.config import get_settings

    get_settings.cache_clear()
    yield get_settings.cache_clear
    get_settings.cache_clear()


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_serve_refuses_to_start_without_a_secret_unless_the_unauthenticated_mode_is_chosen(
        tmp_path, monkeypatch, settings_from_env, secret):
    """`serve` exits 2 with a French message and no traceback, before migrating or listening."""
    import gc

    import uvicorn
    from typer.testing import CliRunner

    from app.cli import cli

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.setattr(gc, "freeze", lambda: None)  # not this test process's objects
    monkeypatch.setenv("RECOUVREMENT_DATABASE_URL", f"sqlite:///{tmp_path}/serve.db")
    if secret is not None:
        monkeypatch.setenv("RECOUVREMENT_WEBHOOK_SECRET", secret)
    refused = CliRunner().invoke(cli, ["serve"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "erreur : aucune authentification de webhook" in refused.output
    assert "RECOUVREMENT_WEBHOOK_UNAUTHENTICATED=true" in refused.output
    assert served == [] and not (tmp_path / "serve.db").exists()

    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_UNAUTHENTICATED", "true")
    settings_from_env()
    started = CliRunner().invoke(cli, ["serve"])
    assert started.exit_code == 0, started.output
    assert [(o["host"], o["port"]) for o in served] == [("127.0.0.1", 8000)]


def test_health_and_ready(ctx):
    app = create_app(ctx)
    app.state.readiness.reuse_seconds = 0
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok", "scheduler": "follower"}  # no jobs here
        assert client.get("/ready").status_code == 200
        ctx.redmine.down = True
        not_ready = client.get("/ready")
    assert not_ready.status_code == 503 and "injoignable" in not_ready.json()["checks"]["redmine"]


def test_many_ready_probes_against_a_hung_redmine_run_one_check_and_leave_health_free(ctx):
    """Found by the red team: 60 /ready against a silent Redmine tied up the server's threads
    (/health 30 s, a webhook 40 s)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    released, pings = threading.Event(), []
    ctx.redmine.ping = lambda: pings.append(1) or released.wait(10)
    with TestClient(create_app(ctx)) as client, ThreadPoolExecutor(20) as pool:
        probes = [pool.submit(client.get, "/ready") for _ in range(20)]
        time.sleep(0.5)
        started = time.monotonic()
        assert client.get("/health").status_code == 200 and time.monotonic() - started < 2
        answered = [p.result(timeout=5) for p in probes[1:] if p.done()]
        released.set()
        statuses = [p.result(timeout=10).status_code for p in probes]
    assert len(pings) == 1 and len(answered) >= 10  # the others did not wait for the hung check
    assert statuses.count(503) >= 10 and set(statuses) <= {200, 503}


def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(signed_ctx):
    body = json.dumps({"type": "issue.created", "data": {"issue": {"id": 5, "d": "x" * 3000}}}).encode()
    chunks = iter([body[:1000], body[1000:2000], body[2000:]])  # no Content-Length: read in a stream
    assert post(signed_ctx, chunks, signed(body)).status_code == 413
    assert stored(signed_ctx) == []


def test_the_signature_is_checked_before_the_body_is_read_as_json(signed_ctx):
    body = b'{"type": ["issue.created"], "data": {}}'
    assert post(signed_ctx, body, {}).status_code == 401
    response = post(signed_ctx, body, signed(body))
    assert response.status_code == 400 and "illisible" in response.json()["error"]
    assert stored(signed_ctx) == []


def test_both_formats_of_one_change_are_stored_once(open_ctx):
    native = json.dumps({"type": "issue.updated", "data": {"issue": {"id": 5}, "journal": {"id": 8}}}).encode()
    plugin = json.dumps({"payload": {"action": "updated", "issue": {"id": 5}, "journal": {"id": 8}}}).encode()
    assert post(open_ctx, native, {}).status_code == 202
    assert post(open_ctx, plugin, {}).status_code == 200
    assert len(stored(open_ctx)) == 1


def test_concurrent_deliveries_are_stored_together_and_a_failed_group_one_by_one(open_ctx, monkeypatch):
    """Group commit: one transaction for the deliveries that arrive while one is written; if
    it fails, each is stored alone, so that one bad event does not refuse the others."""
    import asyncio

    import httpx
    from sqlalchemy.exc import OperationalError

    groups = []
    store_events = service.store_events

    def failing_groups(db, events):
        groups.append(len(events))
        if len(events) > 1:
            raise OperationalError("INSERT …", {}, Exception("a bad event among them"))
        return store_events(db, events)

    monkeypatch.setattr(service, "store_events", failing_groups)
    bodies = [json.dumps({"type": "issue.updated", "data": {"issue": {"id": 5}, "journal": {"id": j}}}).encode()
              for j in range(1, 21)]

    async def deliver_all():
        transport = httpx.ASGITransport(app=create_app(open_ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/webhooks/redmine", content=b) for b in bodies))

    answers = asyncio.run(deliver_all())
    assert [a.status_code for a in answers] == [202] * 20
    assert len(stored(open_ctx)) == 20 and max(groups) > 1


# --- issue 16: senders that cannot sign authenticate with a token ---------------------------
TOKEN = "plugin-token-0123456789"
OLD_TOKEN = "rotated-token-9876543210"


@pytest.fixture
def token_ctx(tmp_path):
    return make_context(tmp_path, Settings(webhook_secret=SECRET, webhook_tokens={"plugin": TOKEN, "ancien": OLD_TOKEN}))


def post_to(ctx, path, body, headers):
    with TestClient(create_app(ctx)) as client:
        return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("path, headers", [
    (f"/webhooks/redmine/{TOKEN}", {}),
    (f"/webhooks/redmine/{OLD_TOKEN}", {}),  # rotation: both accepted meanwhile
    ("/webhooks/redmine", {"X-Redmine-API-Key": TOKEN}),
    ("/webhooks/redmine", signed(BODY)),
])
def test_a_token_in_the_url_or_the_api_key_header_or_the_signature_authenticates(token_ctx, path, headers):
    assert post_to(token_ctx, path, BODY, headers).status_code == 202
    assert len(stored(token_ctx)) == 1


@pytest.mark.parametrize("path, headers", [
    ("/webhooks/redmine", {}),
    ("/webhooks/redmine/wrong-token-0123456789", {}),
    (f"/webhooks/redmine/{TOKEN[:-1]}", {}),
    ("/webhooks/redmine", {"X-Redmine-API-Key": "wrong-token-0123456789"}),
    ("/webhooks/redmine/wrong-token-0123456789", signed(BODY, "other-secret")),
])
def test_with_tokens_set_a_delivery_carrying_none_is_401_and_nothing_is_stored(token_ctx, path, headers):
    response = post_to(token_ctx, path, BODY, headers)
    assert response.status_code == 401
    assert TOKEN not in response.text and OLD_TOKEN not in response.text
    assert stored(token_ctx) == []


def test_a_token_alone_is_authentication_enough_and_unsigned_deliveries_then_need_it(tmp_path):
    ctx = make_context(tmp_path, Settings(webhook_tokens={"plugin": TOKEN}))
    assert post_to(ctx, "/webhooks/redmine", BODY, {}).status_code == 401
    assert post_to(ctx, "/webhooks/redmine", BODY, signed(BODY)).status_code == 401  # no secret to check it with
    assert post_to(ctx, f"/webhooks/redmine/{TOKEN}", BODY, {}).status_code == 202


@pytest.mark.parametrize("token", ["short", "has space in it 0123456789", "a/b-0123456789abcd", "x%2Fy-0123456789abc"])
def test_a_token_that_cannot_work_is_never_accepted(tmp_path, token):
    from app.inbox.flows import token_problems

    ctx = make_context(tmp_path, Settings(webhook_secret=SECRET, webhook_tokens={"plugin": token}))
    assert post_to(ctx, "/webhooks/redmine", BODY, {"X-Redmine-API-Key": token}).status_code == 401
    assert post_to(ctx, f"/webhooks/redmine/{token}", BODY, {}).status_code in (401, 404)
    assert stored(ctx) == []
    [problem] = token_problems(ctx.settings)
    assert "« plugin »" in problem and token not in problem


def test_serve_refuses_to_start_with_an_unusable_token_naming_it_not_its_value(tmp_path, monkeypatch,
                                                                               settings_from_env):
    import uvicorn
    from typer.testing import CliRunner

    from app.cli import cli

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("started"))
    monkeypatch.setenv("RECOUVREMENT_DATABASE_URL", f"sqlite:///{tmp_path}/serve.db")
    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_TOKENS__PLUGIN", "trop-court")
    refused = CliRunner().invoke(cli, ["serve"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "jeton de webhook « plugin » inutilisable" in refused.output and "trop-court" not in refused.output


@pytest.mark.parametrize("path", [f"/webhooks/redmine/{TOKEN}?x=1", f"/webhooks/redmine/{TOKEN}/x",
                                  f"/webhooks/redmine?token={TOKEN}", f"/webhooks//redmine/{TOKEN}",
                                  f"/health/{TOKEN}", "/webhooks/redmine?token=" + TOKEN.replace("-", "%2D"),
                                  "/hooks?t=%25" + TOKEN.encode().hex()[:2].upper() + TOKEN[1:],  # %2570… = %70…
                                  f"/hooks/{TOKEN.upper()}"])
def test_a_token_never_reaches_the_access_log_whatever_the_url(path):
    """Red team of issue 16: only the exact route was masked; a mistyped URL logged the token."""
    from app.server import HiddenWebhookTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "POST", path, "1.1", 404), None)
    assert HiddenWebhookTokens([TOKEN, OLD_TOKEN]).filter(record)
    assert TOKEN[1:].casefold() not in record.getMessage().casefold() and "***" in record.getMessage()


def test_a_token_url_with_a_trailing_slash_is_accepted(token_ctx):
    """A sender that does not follow redirects used to lose the delivery (307)."""
    assert post_to(token_ctx, f"/webhooks/redmine/{TOKEN}/", BODY, {}).status_code == 202


def test_a_delivery_about_something_else_is_acknowledged_and_not_stored(signed_ctx):
    for body in (json.dumps({"type": "time_entry.created", "data": {"time_entry": {"id": 3}}}).encode(),
                 json.dumps({"payload": {"action": "closed", "issue": {"id": 3}}}).encode(),
                 json.dumps({"event_type": "time_entry", "action": "created", "time_entry": {"id": 3}}).encode()):
        response = post(signed_ctx, body, signed(body))
        assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert stored(signed_ctx) == []


def test_a_delivery_about_another_project_is_ignored_without_a_redmine_call_unless_the_ticket_is_tracked(signed_ctx):
    from app.deadlines.models import Deadline

    from app.deadlines.models import DeadlineState

    def no_redmine_call(*args, **kwargs):
        raise AssertionError("Redmine appelé")

    signed_ctx.redmine.get_issue = no_redmine_call
    foreign = json.dumps({"type": "issue.updated", "data": {"issue": {"id": 77, "project": {"id": 9, "name": "RH"}},
                                                           "journal": {"id": 1}}}).encode()
    response = post(signed_ctx, foreign, signed(foreign))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert stored(signed_ctx) == []
    named = json.dumps({"event_type": "issue", "action": "updated", "event_id": "e-1",
                        "issue": {"id": 77, "project": {"id": 1, "identifier": "autre", "name": "Autre"}}}).encode()
    assert post(signed_ctx, named, signed(named)).json()["status"] == "ignored"
    ours = json.dumps({"type": "issue.updated", "data": {"issue": {"id": 77, "project": {"id": 1, "name": "Gestion"}},
                                                        "journal": {"id": 1}}}).encode()
    assert post(signed_ctx, ours, signed(ours)).status_code == 202
    # a ticket with pending deadlines moved out: its delivery is kept, so that they end at once
    with signed_ctx.db.session() as session:
        session.add(Deadline(issue_id=78, kind="C-14/provision", due_at=NOW, label="x",
                             state=DeadlineState.pending, created_at=NOW))
    moved = foreign.replace(b'"id": 77', b'"id": 78')
    assert post(signed_ctx, moved, signed(moved)).status_code == 202
    # and an open ticket the service read before (no deadline), moved out: kept too
    reconciliation.remember(signed_ctx.db, 79, "f" * 64, True, NOW)
    moved_open = foreign.replace(b'"id": 77', b'"id": 79')
    assert post(signed_ctx, moved_open, signed(moved_open)).status_code == 202
    assert sorted(e.issue_id for e in stored(signed_ctx)) == [77, 78, 79]
