"""Every Redmine request is bounded (issue 14): a Redmine that accepts the connection and
never answers is cut at the read timeout, as RedmineUnavailable; the worker postpones the
event (it does not fail it), and the same client answers again once Redmine does."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.config import Settings
from app.inbox.models import EventState
from app.processing.flows import work
from integrations.redmine.client import RedmineClient
from integrations.redmine.interface import RedmineUnavailable
from tests.sockets import HangingRedmine
from tests.unit.helpers import deliver, event, make_context

TIMEOUT = 0.5
MARGIN = 2.0  # scheduling on a loaded machine; a hung call without timeout never returns


@pytest.fixture
def hanging():
    server = HangingRedmine()
    yield server
    server.close()


def bounded_settings(url: str) -> Settings:
    return Settings(redmine_url=url, redmine_api_key="k", project="p",
                    redmine_connect_timeout_seconds=TIMEOUT, redmine_read_timeout_seconds=TIMEOUT)


def call_in_thread(call):
    """Run ``call`` in a daemon thread (a hung call must not hang the test run): its
    exception, or None, and how long it took; the wait is bounded."""
    outcome: dict = {}

    def run():
        started = time.monotonic()
        try:
            call()
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT + MARGIN + 5)
    assert not thread.is_alive(), "appel Redmine toujours bloqué"
    return outcome.get("error"), outcome["seconds"]


CALLS = {
    "ping": lambda c: c.ping(),
    "get_issue": lambda c: c.get_issue(1),
    "update_issue": lambda c: c.update_issue(1, notes="x", verify=False),
    "attach_file (upload)": lambda c: c.attach_file(1, "a.docx", b"x" * 10, "application/octet-stream", "n",
                                                   verify=False),
    "changed_page": lambda c: c.changed_page(None),
}


@pytest.mark.parametrize("name", CALLS)
def test_a_redmine_that_accepts_and_never_answers_is_cut_at_the_timeout(hanging, name):
    client = RedmineClient(bounded_settings(hanging.url))
    client._ids = {"project": {"id": 1}, "trackers": {}, "fields": {}, "statuses": {}}  # only the call itself
    error, seconds = call_in_thread(lambda: CALLS[name](client))
    assert isinstance(error, RedmineUnavailable) and "pas répondu dans le délai" in str(error)
    assert TIMEOUT * 0.9 <= seconds < TIMEOUT + MARGIN
    assert hanging.accepted >= 1


class AnsweringRedmine(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"user": {"id": 42}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def answering_redmine():
    """A Redmine answering every GET with the service user (id 42): its URL."""
    return http_server(AnsweringRedmine)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]):
    """``handler`` served on a free 127.0.0.1 port, in daemon threads: its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_same_client_answers_again_once_redmine_does(hanging):
    client = RedmineClient(bounded_settings(hanging.url))
    error, _ = call_in_thread(client.ping)
    assert isinstance(error, RedmineUnavailable)
    with answering_redmine() as url:
        hanging.answer_from(url)
        assert client.service_user_id == 42  # no restart: a new connection, answered


def test_the_worker_postpones_an_event_whose_redmine_hangs(tmp_path, hanging):
    ctx = make_context(tmp_path, bounded_settings(hanging.url))
    ctx.redmine = RedmineClient(ctx.settings)
    event_id = deliver(ctx, 1)
    error, seconds = call_in_thread(lambda: work(ctx))
    assert error is None and seconds < 2 * (TIMEOUT + MARGIN)
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 1)
    assert "pas répondu dans le délai" in waiting.last_error and waiting.next_attempt_at > ctx.clock.now()


class _Misbehaving(BaseHTTPRequestHandler):
    """``drip``: an answer's head sent a byte every 0.2 s, never finished (each read gets a
    byte well within the read timeout); ``cut``: 3 bytes of a 100-byte body, then the end."""

    mode = "drip"

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.mode == "cut":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"u")
            self.wfile.flush()
            self.close_connection = True
            return
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X" * 10_000:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the client cut the call
            pass

    do_PUT = do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def misbehaving_redmine(mode: str):
    return http_server(type("Handler", (_Misbehaving,), {"mode": mode}))


def test_a_redmine_that_drips_its_answer_is_cut_at_the_calls_deadline():
    """Found by the red team: a byte every few seconds never trips the read timeout; the
    whole call has a deadline."""
    with misbehaving_redmine("drip") as url:
        settings = bounded_settings(url).model_copy(update={"redmine_request_deadline_seconds": 1.5})
        client = RedmineClient(settings)
        error, seconds = call_in_thread(client.ping)
    assert isinstance(error, RedmineUnavailable) and "délai total de 1.5 s" in str(error)
    assert 1.5 * 0.9 <= seconds < 1.5 + MARGIN


def test_an_answer_cut_short_is_redmine_unavailable_and_the_event_waits(tmp_path):
    """Found by the red team: a body shorter than announced (Redmine or a proxy restarting)
    failed the event for good (ChunkedEncodingError) and crashed `sync`."""
    with misbehaving_redmine("cut") as url:
        client = RedmineClient(bounded_settings(url))
        error, _ = call_in_thread(client.ping)
        assert isinstance(error, RedmineUnavailable) and "réponse de Redmine interrompue" in str(error)
        ctx = make_context(tmp_path, bounded_settings(url))
        ctx.redmine = RedmineClient(ctx.settings)
        event_id = deliver(ctx, 1)
        work(ctx)
    waiting = event(ctx, event_id)
    assert (waiting.state, waiting.attempts) == (EventState.pending, 1) and "interrompue" in waiting.last_error
