"""One event's view of Redmine (integrations/redmine/scope.py): each issue read once, the
service's writes applied to what was read, and every write proven by one read at the end."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.context import Context
from app.effects import ensure_ticket, find_operation
from integrations.redmine.fake import FakeRedmine
from integrations.redmine.interface import NewIssue, RedmineWriteIgnored
from integrations.redmine.scope import RedmineScope
from tests.unit.helpers import CLERK, add_litigation, add_register, make_context

OPERATION_KEY = "Clé d'opération"


class CountingRedmine(FakeRedmine):
    """The in-memory Redmine, counting reads; ``drops`` names fields it silently ignores."""

    def __init__(self, drops: set[str] = frozenset()):
        super().__init__()
        self.reads: list[str] = []
        self.drops = drops

    def get_issue(self, issue_id):
        self.reads.append(f"get {issue_id}")
        return super().get_issue(issue_id)

    def find_issues(self, tracker, field_name, value):
        self.reads.append(f"find {tracker} {value}")
        return super().find_issues(tracker, field_name, value)

    def update_issue(self, issue_id, *, custom_fields=None, **changes):
        kept = {k: v for k, v in (custom_fields or {}).items() if k not in self.drops}
        super().update_issue(issue_id, custom_fields=kept, **changes)


@pytest.fixture
def redmine():
    return CountingRedmine()


def test_an_issue_is_read_once_and_shows_the_services_own_writes(redmine):
    lit = add_litigation(redmine)
    reg = add_register(redmine)
    scope = RedmineScope(redmine, OPERATION_KEY)
    scope.get_issue(lit.id)
    scope.update_issue(lit.id, notes="Ouverture (réf. automate : x)", parent_id=reg.id,
                       custom_fields={"Contrôle légal": "RAS"})
    seen = scope.get_issue(lit.id)
    assert redmine.reads == [f"get {lit.id}"]
    assert seen.parent_id == reg.id and seen.field("Contrôle légal") == "RAS"
    assert "(réf. automate : x)" in seen.journals[-1].notes
    assert [(c.name, c.new) for c in seen.journals[-1].changes] == [("Contrôle légal", "RAS")]
    scope.verify()
    assert redmine.reads == [f"get {lit.id}", f"get {lit.id}"]  # one read-back for all the writes
    assert redmine.get_issue(lit.id).parent_id == reg.id


def test_a_write_redmine_dropped_is_caught_by_the_read_back(redmine):
    redmine.drops = {"Contrôle légal"}
    lit = add_litigation(redmine)
    scope = RedmineScope(redmine, OPERATION_KEY)
    scope.update_issue(lit.id, custom_fields={"Contrôle légal": "RAS"})
    with pytest.raises(RedmineWriteIgnored, match="Contrôle légal"):
        scope.verify()


def test_a_value_written_then_changed_by_someone_else_is_no_ignored_write(redmine):
    """Another replica or a user changed the field between the write and its read-back:
    the journals show the write happened, so it is not reported as ignored."""
    lit = add_litigation(redmine)
    scope = RedmineScope(redmine, OPERATION_KEY)
    scope.update_issue(lit.id, custom_fields={"Échéance": "2027-02-18"}, assigned_to_id=7)
    redmine.edit(lit.id, user_id=CLERK, **{"Échéance": ""})
    redmine.update_issue(lit.id, assigned_to_id=8)
    scope.verify()


def test_a_status_change_is_read_again_and_that_read_is_its_proof(redmine):
    lit = add_litigation(redmine)
    scope = RedmineScope(redmine, OPERATION_KEY)
    scope.get_issue(lit.id)
    scope.update_issue(lit.id, status=redmine.closed_status)
    assert scope.get_issue(lit.id).closed
    scope.verify()  # nothing left to prove: the second read did
    assert redmine.reads == [f"get {lit.id}"] * 2


def test_a_ticket_created_under_a_read_parent_is_known_without_a_search(redmine, tmp_path):
    lit = add_litigation(redmine)
    scope = RedmineScope(redmine, OPERATION_KEY)
    ctx = make_context_with(scope, tmp_path)
    scope.get_issue(lit.id)
    new = NewIssue("Demande de fonds", "Demande", "…", parent_id=lit.id)
    first, created = ensure_ticket(ctx, "C-6/demande-fonds/1", new)
    again, created_again = ensure_ticket(ctx, "C-6/demande-fonds/1", new)
    assert created and not created_again and again.id == first.id
    assert find_operation(ctx, "Demande de fonds", "C-6/demande-fonds/1", lit.id) == [first]
    assert [c.id for c in scope.get_issue(lit.id).children] == [first.id]
    assert redmine.reads == [f"get {lit.id}"]  # no search: the parent's children tell


def test_a_child_of_the_tracker_not_yet_read_means_a_search(redmine, tmp_path):
    lit = add_litigation(redmine)
    moved = redmine.add("Demande de fonds", "Demande", author_id=CLERK, parent_id=lit.id,
                        **{OPERATION_KEY: "C-6/demande-fonds/1"})
    scope = RedmineScope(redmine, OPERATION_KEY)
    ctx = make_context_with(scope, tmp_path)
    scope.get_issue(lit.id)
    assert find_operation(ctx, "Demande de fonds", "C-6/demande-fonds/1", lit.id)[0].id == moved.id
    assert redmine.reads == [f"get {lit.id}", "find Demande de fonds C-6/demande-fonds/1"]


def make_context_with(redmine, tmp_path) -> Context:
    return replace(make_context(tmp_path), redmine=redmine)


def test_a_parent_not_read_in_this_view_means_a_search(redmine, tmp_path):
    """A plain client keeps nothing: no read of the parent just to spare a search."""
    lit = add_litigation(redmine)
    assert find_operation(make_context_with(redmine, tmp_path), "Demande de fonds", "C-6/demande-fonds/1", lit.id) == []
    assert redmine.reads == ["find Demande de fonds C-6/demande-fonds/1"]


def test_a_ticket_moved_to_another_parent_leaves_the_former_one_in_the_view(redmine):
    first, second = add_litigation(redmine), add_litigation(redmine)
    child = redmine.add("Demande de fonds", "Demande", author_id=CLERK, parent_id=first.id)
    scope = RedmineScope(redmine, OPERATION_KEY)
    for issue in (first, second, child):
        scope.get_issue(issue.id)
    scope.update_issue(child.id, parent_id=second.id)
    assert [c.id for c in scope.get_issue(first.id).children] == []
    assert [c.id for c in scope.get_issue(second.id).children] == [child.id]
    assert redmine.reads == [f"get {first.id}", f"get {second.id}", f"get {child.id}"]
    scope.verify()
    assert [c.id for c in redmine.get_issue(first.id).children] == []
