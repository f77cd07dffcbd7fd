"""Fuzzing POST /webhooks/redmine (issue 8's first fault test, run with every unit run):
whatever the body, correctly signed or not, never a 500, and nothing stored unless 2xx."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.inbox import service
from app.main import create_app
from tests.unit.helpers import make_context
from tests.unit.test_webhook_endpoint import SECRET, signed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
issues = st.fixed_dictionaries({"id": st.integers() | json_values}) | json_values
data = st.fixed_dictionaries({"issue": issues}, optional={"journal": json_values}) | json_values
deliveries = st.fixed_dictionaries(
    {"type": st.sampled_from(["issue.created", "issue.updated", "issue.deleted"]) | json_values, "data": data},
    optional={"timestamp": json_values, "payload": json_values},
)
bodies = (st.binary(max_size=2500)
          | json_values.map(lambda v: json.dumps(v).encode())
          | deliveries.map(lambda v: json.dumps(v).encode()))


def _issue(ident) -> bytes:
    return json.dumps({"type": "issue.created", "data": {"issue": {"id": ident}}}).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, sign=st.booleans())
@example(body=_issue(2**70), sign=True)  # found by probing: an OverflowError, a 500, before the 32-bit check
@example(body=_issue(2**31), sign=True)  # beyond Redmine's ids (a PostgreSQL integer column)
@example(body=_issue(2**31 - 1), sign=True)
def test_never_a_500_and_nothing_stored_for_a_refused_body(tmp_path_factory, body, sign):
    ctx = _context(tmp_path_factory)
    before = len(service.list_events(ctx.db))
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        response = client.post("/webhooks/redmine", content=body, headers=signed(body) if sign else {})
    assert response.status_code in (200, 202, 400, 401, 413), (response.status_code, response.text)
    stored = len(service.list_events(ctx.db)) - before
    assert stored == (1 if response.status_code == 202 else 0)
    if response.status_code >= 400:
        assert response.json()["error"] and SECRET not in response.text


_contexts: dict = {}


def _context(tmp_path_factory):
    """One database for the whole run (a context per example would be slow)."""
    if "ctx" not in _contexts:
        _contexts["ctx"] = make_context(tmp_path_factory.mktemp("fuzz"),
                                        Settings(webhook_secret=SECRET, webhook_max_bytes=2000))
    return _contexts["ctx"]
