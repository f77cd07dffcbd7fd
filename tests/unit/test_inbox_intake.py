"""Webhook deliveries (both formats), signatures, dedup keys, and polling into the same inbox."""

import hashlib
import hmac
import json

import pytest

from app.inbox import service
from app.inbox.flows import (MAX_DEPTH, MAX_DIGITS, IntakeError, event_from_issue, parse_delivery, poll_once,
                             verify_signature)
from app.inbox.models import InboxEvent
from tests.unit.helpers import NOW


def native(event_type="issue.updated", issue_id=12, journal_id=40):
    data = {"issue": {"id": issue_id, "subject": "x"}}
    if journal_id:
        data["journal"] = {"id": journal_id, "notes": ""}
    return json.dumps({"type": event_type, "timestamp": "2027-01-15T08:00:00Z", "data": data}).encode()


def plugin(action="updated", issue_id=12, journal_id=40):
    payload = {"action": action, "issue": {"id": issue_id}, "url": "http://r/issues/12"}
    if journal_id:
        payload["journal"] = {"id": journal_id}
    return json.dumps({"payload": payload}).encode()


def test_both_formats_give_the_same_event_for_the_same_change():
    a, b = parse_delivery(native()), parse_delivery(plugin())
    assert a.dedup_key == b.dedup_key == "issue.updated:12:40"
    assert (a.issue_id, a.journal_id, a.event_type) == (12, 40, "issue.updated")
    assert parse_delivery(native("issue.created", journal_id=None)).dedup_key == "issue.created:12:-"
    assert parse_delivery(plugin("opened", journal_id=None)).dedup_key == "issue.created:12:-"


def test_an_update_without_journal_is_keyed_by_its_body():
    first = parse_delivery(native(journal_id=None))
    again = parse_delivery(native(journal_id=None))
    other = parse_delivery(json.dumps({"type": "issue.updated", "data": {"issue": {"id": 12, "s": 1}}}).encode())
    assert first.dedup_key == again.dedup_key != other.dedup_key
    assert first.dedup_key.startswith("issue.updated:12:body-")


@pytest.mark.parametrize("body, says", [
    (b"{not json", "JSON invalide"),
    (b"\xff\xfe", "JSON invalide"),
    (b"[1, 2]", "objet JSON attendu"),
    (b'{"hello": 1}', "format inconnu"),
    (b'{"type": "issue.created", "data": []}', "data"),
    (b'{"type": "issue.created", "data": {"issue": {"id": "7"}}}', "issue.id"),
    (b'{"type": "issue.created", "data": {"issue": {"id": 0}}}', "issue.id"),
    (b'{"type": "issue.created", "data": {"issue": {"id": true}}}', "issue.id"),
    (b'{"type": "issue.created", "data": {}}', "issue"),
    (b'{"type": "issue.updated", "data": {"issue": {"id": 1}, "journal": {"id": "x"}}}', "journal.id"),
    (b'{"payload": [1]}', "payload"),
    (b'{"payload": {"action": "opened", "issue": 7}}', "issue"),
    (b'{"type": ["issue.created"], "data": {"issue": {"id": 1}}}', "illisible"),  # unhashable type
    (b'{"payload": {"action": {"a": 1}, "issue": {"id": 1}}}', "action"),  # unhashable action
    (b'{"event_type": "issue", "action": "created", "issue": {"id": 1}, "event_id": "a b"}', "event_id"),
    (b'{"event_type": "issue", "action": 3, "issue": {"id": 1}}', "textes attendus"),
    (b'{"event_type": "issue", "action": "deleted", "issue": {"id": -4}}', "issue.id"),
    ('{"type": "issue.created", "data": {"issue": {"id": 1}}}'.encode("utf-16"), "JSON invalide"),  # not UTF-8
])
def test_malformed_or_unknown_bodies_are_refused_with_a_reason(body, says):
    with pytest.raises(IntakeError) as refused:
        parse_delivery(body)
    assert refused.value.status == 400 and says in refused.value.message


def _created(inner: str) -> bytes:
    return ('{"type": "issue.created", "data": {"issue": {"id": 1, "x": %s}}}' % inner).encode()


@pytest.mark.parametrize("body, says", [
    (b"[" * 20_000 + b"]" * 20_000, "trop imbriqué"),  # the issue's example: a RecursionError, a 500
    (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "trop imbriqué"),
    (_created("[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)), "trop imbriqué"),  # one level too many
    (b"[" * 20_000, "trop imbriqué"),  # never closed
    (b'{"type": "issue.created", "data": {"issue": {"id": ' + b"7" * 5_000 + b"}}}", "nombre trop long"),  # a 500
    (_created("-" + "9" * 5_000), "nombre trop long"),
    (_created("0." + "3" * 5_000), "nombre trop long"),
    (_created("1e" + "9" * 5_000), "nombre trop long"),
    (_created("1" * (MAX_DIGITS + 1)), "nombre trop long"),
])
def test_json_beyond_the_depth_and_number_limits_is_refused_before_parsing(body, says):
    with pytest.raises(IntakeError) as refused:
        parse_delivery(body)
    assert refused.value.status == 400 and says in refused.value.message


def test_the_limits_count_what_is_outside_strings_only():
    at_limit = _created("[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3))  # { data { issue { x [ … : MAX_DEPTH
    assert parse_delivery(at_limit).issue_id == 1
    in_strings = _created(json.dumps("[{" * 5_000 + "7" * 5_000 + '\\"[' * 100))
    assert parse_delivery(in_strings).issue_id == 1
    assert parse_delivery(_created("1" * MAX_DIGITS + ".5e-" + "1" * MAX_DIGITS)).issue_id == 1


def test_signature_is_the_hmac_sha256_of_the_raw_body():
    body = native()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    verify_signature(body, good, "s3cret")
    for header in (None, "", "sha256=" + "0" * 64, good.replace("sha256=", "sha1="), good + "0"):
        with pytest.raises(IntakeError) as refused:
            verify_signature(body, header, "s3cret")
        assert refused.value.status == 401
    with pytest.raises(IntakeError):
        verify_signature(body + b" ", good, "s3cret")


def test_polling_queues_each_change_once_and_moves_its_cursor(ctx):
    redmine = ctx.redmine
    a = redmine.add("Contentieux")
    b = redmine.add("Registre des mandats")
    first = poll_once(ctx)
    assert (first.changed, first.read, first.queued) == (2, 2, 2)
    assert service.poll_cursor(ctx.db, ctx.settings.project) == redmine.get_issue(b.id).updated_on

    again = poll_once(ctx)  # the cursor's second is read again, but not fetched again
    assert (again.read, again.queued) == (0, 0)

    redmine.update_issue(a.id, notes="changement")
    third = poll_once(ctx)
    assert (third.changed, third.read, third.queued) == (2, 1, 1)  # b listed again (>= cursor), not read
    keys = [e.dedup_key for e in service.list_events(ctx.db)]
    journal = redmine.get_issue(a.id).last_journal_id
    assert sorted(keys) == sorted([f"issue.created:{a.id}:-", f"issue.created:{b.id}:-",
                                   f"issue.updated:{a.id}:{journal}"])


def test_a_change_seen_by_webhook_and_by_polling_is_stored_once(ctx):
    redmine = ctx.redmine
    issue = redmine.add("Contentieux")
    redmine.update_issue(issue.id, notes="x")
    journal = redmine.get_issue(issue.id).last_journal_id
    stored = service.store_event(ctx.db, parse_delivery(native(issue_id=issue.id, journal_id=journal)), NOW)
    assert stored.created
    assert event_from_issue(redmine.get_issue(issue.id)).dedup_key == f"issue.updated:{issue.id}:{journal}"
    assert poll_once(ctx).queued == 0
    with ctx.db.session() as session:
        assert session.query(InboxEvent).count() == 1


def test_a_naive_sync_since_is_read_as_utc(tmp_path):
    from datetime import timedelta

    from app.config import Settings
    from tests.unit.helpers import make_context

    ctx = make_context(tmp_path)
    old = ctx.redmine.add("Contentieux")  # before go-live (Redmine's ">=" reaches a second back)
    new = ctx.redmine.add("Contentieux", created_on=old.updated_on + timedelta(minutes=10))
    ctx.settings = Settings(sync_since=new.updated_on.replace(tzinfo=None) - timedelta(microseconds=1))
    assert poll_once(ctx).queued == 1
    assert [e.issue_id for e in service.list_events(ctx.db)] == [new.id]


def test_events_stored_together_each_get_their_own_answer(ctx):
    earlier = service.store_event(ctx.db, parse_delivery(native(journal_id=1)), NOW)
    group = [parse_delivery(native(journal_id=j)) for j in (2, 1, 2)]
    new, again, repeated = service.store_events(ctx.db, [(event, NOW) for event in group])
    assert new.created and not again.created and again.event_id == earlier.event_id
    assert not repeated.created and repeated.event_id == new.event_id
    assert len(service.list_events(ctx.db)) == 2
