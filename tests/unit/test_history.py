"""Reading when something became true from the journal history (app/history.py)."""

from datetime import UTC, datetime, timedelta

from app.history import first_change_at_or_after, held_since, last_became_true, rewind
from integrations.redmine.fake import FakeRedmine

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def filled(values):
    return bool(values["Justification"])


def test_held_since_the_creation_or_the_last_time_it_became_true():
    redmine = FakeRedmine()
    issue = redmine.add("Annulation frais", created_on=T0, Justification="x")
    assert held_since(redmine.get_issue(issue.id), ["Justification"], filled) == T0 + timedelta(seconds=1)
    redmine.edit(issue.id, at=T0 + timedelta(days=1), Justification="")
    assert held_since(redmine.get_issue(issue.id), ["Justification"], filled) is None
    redmine.edit(issue.id, at=T0 + timedelta(days=3), Justification="y")
    redmine.edit(issue.id, at=T0 + timedelta(days=4), Justification="z")  # still true: no restart
    now = redmine.get_issue(issue.id)
    assert held_since(now, ["Justification"], filled) == T0 + timedelta(days=3, seconds=1)
    assert last_became_true(now, ["Justification"], filled) == T0 + timedelta(days=3, seconds=1)
    assert first_change_at_or_after(now, "Justification", T0 + timedelta(days=2)) == T0 + timedelta(days=3, seconds=1)


def test_rewind_undoes_later_changes():
    redmine = FakeRedmine()
    issue = redmine.add("Annulation frais", "avant", created_on=T0, Justification="a")
    redmine.edit(issue.id, subject="après", Justification="b")
    redmine.edit(issue.id, notes="rien")
    now = redmine.get_issue(issue.id)
    before = rewind(now, now.journals[0].id)
    assert (before.subject, before.field("Justification"), before.journals) == ("avant", "a", [])
    assert rewind(now, now.journals[1].id).field("Justification") == "b"
