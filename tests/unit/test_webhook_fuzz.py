"""Fuzzing POST /webhooks/redmine (issue 8's first fault test, run with every unit run):
whatever the body, correctly signed or not, never a 500, and nothing stored unless 2xx;
hostile JSON (issue 14: deep nesting, long numbers, odd encodings) is a 400."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.inbox import service
from app.inbox.flows import MAX_DEPTH, MAX_DIGITS
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
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
named = st.fixed_dictionaries({"id": st.just(1), "subject": st.text(max_size=20) | surrogates})
odd_encodings = st.builds(
    lambda document, encoding: json.dumps(document, ensure_ascii=encoding != "latin-1").encode(encoding, "replace"),
    deliveries | st.fixed_dictionaries({"type": st.just("issue.created"),
                                        "data": st.fixed_dictionaries({"issue": named})}),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"]))
bodies = (st.binary(max_size=2500)
          | json_values.map(lambda v: json.dumps(v).encode())
          | deliveries.map(lambda v: json.dumps(v).encode())
          | odd_encodings)


OPENINGS = {"[": ("]", 1), '{"a":': ("}", 1), '{"a":[': ("]}", 2)}  # opening: closing, levels


def _nested(depth: int, opening: str) -> str:
    return opening * depth + "1" + OPENINGS[opening][0] * depth


def _in_delivery(value: str) -> str:
    return '{"type": "issue.created", "data": {"issue": {"id": 1, "x": %s}}}' % value


# Hostile bodies, each with what it must get: "trop imbriqué" beyond MAX_DEPTH levels,
# "nombre trop long" beyond MAX_DIGITS digits, None (any answer but a 500) within them.
deep = st.builds(lambda depth, opening, wrapped: (
    _in_delivery(_nested(depth, opening)) if wrapped else _nested(depth, opening),
    "trop imbriqué" if depth * OPENINGS[opening][1] + 3 * wrapped > MAX_DEPTH else None),
    st.integers(1, 30_000) | st.integers(MAX_DEPTH // 2 - 3, MAX_DEPTH + 1), st.sampled_from(list(OPENINGS)),
    st.booleans())
long_numbers = st.builds(lambda sign, digits, form, where: (
    where.replace("N", sign + form.replace("N", "7" * digits)),
    "nombre trop long" if digits > MAX_DIGITS else None),
    st.sampled_from(["", "-"]), st.integers(1, 6_000) | st.integers(MAX_DIGITS - 1, MAX_DIGITS + 1),
    st.sampled_from(["N", "0.N", "N.5", "1eN", "1.5E-N"]),
    st.sampled_from([_in_delivery("N"), '{"type": "issue.created", "data": {"issue": {"id": N}}}',
                     '{"payload": {"action": "opened", "issue": {"id": 2, "n": [1, N]}}}']))
hostile = (deep | long_numbers).map(lambda case: (case[0].encode(), case[1]))


def _issue(ident) -> bytes:
    return json.dumps({"type": "issue.created", "data": {"issue": {"id": ident}}}).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, sign=st.booleans())
@example(body=_issue(2**70), sign=True)  # found by probing: an OverflowError, a 500, before the 32-bit check
@example(body=_issue(2**31), sign=True)  # beyond Redmine's ids (a PostgreSQL integer column)
@example(body=_issue(2**31 - 1), sign=True)
def test_never_a_500_and_nothing_stored_for_a_refused_body(tmp_path_factory, body, sign):
    _deliver(_context(tmp_path_factory, 2000), body, sign)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile)
@example(case=(b"[" * 20_000 + b"]" * 20_000, "trop imbriqué"))  # the issue's examples: each a 500 before
@example(case=(_in_delivery("9" * 5_000).encode(), "nombre trop long"))
def test_json_beyond_the_parsers_limits_is_400_and_stores_nothing(tmp_path_factory, case):
    body, refusal = case
    response = _deliver(_context(tmp_path_factory, 1_048_576), body, sign=True)
    if refusal:
        assert response.status_code == 400 and refusal in response.json()["error"], response.text


def _deliver(ctx, body: bytes, sign: bool):
    """POST it: never a 500, an error says why, nothing stored unless 2xx."""
    before = len(service.list_events(ctx.db))
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        response = client.post("/webhooks/redmine", content=body, headers=signed(body) if sign else {})
    assert response.status_code in (200, 202, 400, 401, 413), (response.status_code, response.text)
    stored = len(service.list_events(ctx.db)) - before
    assert stored == (1 if response.status_code == 202 else 0)
    if response.status_code >= 400:
        assert response.json()["error"] and SECRET not in response.text
    return response


_contexts: dict = {}


def _context(tmp_path_factory, max_bytes: int):
    """One database per body limit for the whole run (a context per example would be slow)."""
    if max_bytes not in _contexts:
        _contexts[max_bytes] = make_context(tmp_path_factory.mktemp("fuzz"),
                                            Settings(webhook_secret=SECRET, webhook_max_bytes=max_bytes))
    return _contexts[max_bytes]
