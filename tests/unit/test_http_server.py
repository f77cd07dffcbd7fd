"""The HTTP server of `serve` (issue 14): API docs only when asked for; a client slow to
send its request head is disconnected, one slow to send its body gets 408, and slow clients
do not keep a normal request from being answered. uvicorn runs in process on a free
127.0.0.1 port with `serve`'s options."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.config import Settings
from app.inbox import views
from app.main import create_app
from app.server import uvicorn_options
from tests.unit.helpers import make_context

HEAD_SECONDS = 1.0
BODY_SECONDS = 1.0
MARGIN = 2.0


@pytest.fixture
def served(tmp_path):
    """The service's app under uvicorn, as `serve` runs it: its port."""
    yield from serving(make_context(tmp_path, Settings(http_header_timeout_seconds=HEAD_SECONDS,
                                                       http_body_timeout_seconds=BODY_SECONDS,
                                                       webhook_unauthenticated=True)))


def serving(ctx):
    config = uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, **uvicorn_options(ctx.settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn n'a pas démarré"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    thread.join(10)


def trickle(port: int, data: bytes, every: float = 0.25) -> tuple[float, bytes]:
    """Send ``data`` one byte every ``every`` seconds until the server closes the
    connection: how long it stayed open, and what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return trickle_on(s, data, every)


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"


def test_a_client_slow_to_send_its_request_head_is_disconnected(served):
    seconds, answer = trickle(served, SLOW_HEAD)
    assert answer == b"" and HEAD_SECONDS * 0.9 <= seconds < HEAD_SECONDS + MARGIN


def test_a_client_slow_to_send_its_body_gets_408(served):
    head = b"POST /webhooks/redmine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served), timeout=10) as s:
        s.sendall(head)
        seconds, answer = trickle_on(s, b"{" + b" " * 59)
    assert answer.startswith(b"HTTP/1.1 408") and "non reçu en 1 s".encode() in answer
    assert BODY_SECONDS * 0.9 <= seconds < BODY_SECONDS + MARGIN


def trickle_on(s: socket.socket, data: bytes, every: float = 0.25) -> tuple[float, bytes]:
    """The same on an open connection; once the server answers, its whole answer is read
    (it may come in several segments)."""
    started = time.monotonic()
    s.settimeout(every)
    answer = b""
    for byte in data:  # bounded: len(data) × every seconds at most
        try:
            s.sendall(bytes([byte]))
            chunk = s.recv(4096)
            answer += chunk
            if not chunk or answer:
                break
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            break
    seconds = time.monotonic() - started
    s.settimeout(2)
    try:
        while answer and (chunk := s.recv(4096)):  # the rest of the answer, until the server closes
            answer += chunk
    except OSError:
        pass
    return seconds, answer


def test_slow_clients_do_not_keep_a_normal_request_from_being_answered(served):
    slow = [threading.Thread(target=trickle, args=(served, SLOW_HEAD), daemon=True) for _ in range(40)]
    for thread in slow:
        thread.start()
    time.sleep(0.3)  # the slow clients are connected and trickling
    started = time.monotonic()
    answer = httpx.get(f"http://127.0.0.1:{served}/health", timeout=5)
    assert answer.status_code == 200 and time.monotonic() - started < 1
    for thread in slow:
        thread.join(HEAD_SECONDS + MARGIN + 5)
        assert not thread.is_alive()


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_docs_only_when_the_setting_asks_for_them(tmp_path, path):
    with TestClient(create_app(make_context(tmp_path))) as client:
        assert client.get(path).status_code == 404
    with TestClient(create_app(make_context(tmp_path, Settings(api_docs=True)))) as client:
        assert client.get(path).status_code == 200


@pytest.fixture
def served_with_secret(tmp_path, monkeypatch):
    """The same, with a webhook secret, bodies of 1 000 bytes at most and room for two in
    flight."""
    monkeypatch.setattr(views, "BODIES_IN_FLIGHT", 2)
    yield from serving(make_context(tmp_path, Settings(webhook_secret="s", webhook_max_bytes=1000,
                                                       http_body_timeout_seconds=10)))


def post_head(length: int, signature: str | None) -> bytes:
    head = f"POST /webhooks/redmine HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
    return (head + (f"X-Redmine-Signature-256: {signature}\r\n" if signature else "") + "\r\n").encode()


def answer_of(s: socket.socket, seconds: float = 3) -> bytes:
    s.settimeout(seconds)
    try:
        return s.recv(4096)
    except TimeoutError:
        return b""


@pytest.mark.parametrize("signature", [None, "sha256=abc", "md5=" + "0" * 64])
def test_a_delivery_without_a_well_formed_signature_is_refused_before_its_body(served_with_secret, signature):
    """Found by the red team: unsigned 1 MiB bodies were read into memory before the
    signature was looked at (600 connections: +660 MiB)."""
    with socket.create_connection(("127.0.0.1", served_with_secret), timeout=10) as s:
        s.sendall(post_head(1000, signature))  # and no body
        assert answer_of(s).startswith(b"HTTP/1.1 401")


def test_bodies_in_flight_are_bounded_beyond_them_503(served_with_secret):
    forged = "sha256=" + "0" * 64  # well formed: only the whole body can prove it wrong
    holders = [socket.create_connection(("127.0.0.1", served_with_secret), timeout=10) for _ in range(2)]
    try:
        for s in holders:
            s.sendall(post_head(1000, forged) + b"{" + b" " * 899)  # 900 of 1 000 bytes, held
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", served_with_secret), timeout=10) as third:
            third.sendall(post_head(1000, forged) + b" " * 1000)
            assert answer_of(third).startswith(b"HTTP/1.1 503")
        for s in holders:  # the held ones end as what they are: forged
            s.sendall(b" " * 99 + b"}")
            assert answer_of(s).startswith(b"HTTP/1.1 401")
    finally:
        for s in holders:
            s.close()
