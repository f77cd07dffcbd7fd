"""Issue 14 end to end: `recouvrement serve` whose Redmine connection hangs (a socket that
accepts and never answers, in front of the real local Redmine). Each call is cut at the
timeout, the event waits, and once Redmine answers again the event is processed by itself:
no restart, no manual retry. The same replica closes a client slow to send its headers."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.e2e.conftest import WEBHOOK_SECRET
from tests.e2e.processes import Replica, wait_for
from tests.e2e.redmine_admin import signed_delivery
from tests.e2e.test_litigation_opening import open_file
from tests.sockets import HangingRedmine


@pytest.fixture
def hanging():
    server = HangingRedmine()
    yield server
    server.close()


def test_a_hung_redmine_is_cut_at_the_timeout_and_processing_resumes_by_itself(admin, service, clerk, gestionnaire,
                                                                               hanging, redmine_env):
    replica = Replica(service.env | {
        "RECOUVREMENT_REDMINE_URL": hanging.url,
        "RECOUVREMENT_REDMINE_CONNECT_TIMEOUT_SECONDS": "2", "RECOUVREMENT_REDMINE_READ_TIMEOUT_SECONDS": "2",
        "RECOUVREMENT_WORKER__BACKOFF_BASE_SECONDS": "1", "RECOUVREMENT_WORKER__BACKOFF_MAX_SECONDS": "2",
        "RECOUVREMENT_WORKER__WORK_INTERVAL_SECONDS": "1",
        "RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600",  # the webhook brings the event
        "RECOUVREMENT_SYNC_SINCE": "2100-01-01T00:00:00+00:00",
        "RECOUVREMENT_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    }).wait_up()
    try:
        _, reg, lit = open_file(admin, service, clerk, gestionnaire)
        body, headers = signed_delivery(admin.issue(lit["id"]), "issue.created", WEBHOOK_SECRET)
        assert httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=headers).status_code == 202

        def waiting():
            listing = service.cli("events").stdout
            return listing if "pas répondu dans le délai" in listing else None

        wait_for(waiting, 60, "événement remis à plus tard après le délai de Redmine")  # retried, not failed
        assert hanging.accepted >= 1 and admin.children(lit["id"]) == []
        assert httpx.get(f"{replica.url}/docs", timeout=5).status_code == 404

        with socket.create_connection(("127.0.0.1", replica.port), timeout=10) as slow:  # one byte a second
            started, closed = time.monotonic(), False
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n":  # bounded: 31 bytes
                try:
                    slow.sendall(bytes([byte]))
                    slow.settimeout(1)
                    if slow.recv(1) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
        assert closed and time.monotonic() - started < 5

        hanging.answer_from(redmine_env["REDMINE_URL"])  # Redmine answers again; the held connections stay silent
        wait_for(lambda: len(admin.children(lit["id"])) == 2, 90, "traitement repris sans redémarrage")
        assert "parent" in admin.issue(lit["id"]) and admin.issue(lit["id"])["parent"]["id"] == reg["id"]
        listing = service.cli("events").stdout
        assert "done=1" in listing and "failed" not in listing
    finally:
        output = replica.stop()
    assert service.settings.redmine_api_key.get_secret_value() not in output
