"""Polling loses no change (issue 16): more than a page of changes, several of them in one
second, edits made between two pages of the listing, a change in the second of a version
already read. The in-memory Redmine lists as Redmine 5.0 does (updated_on shown to the
second, sorted to the microsecond; ``>=`` reaches a second back)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from app.clock import Clock
from app.inbox import service
from app.inbox.flows import SETTLED_AFTER, event_from_issue, poll_once
from integrations.redmine.interface import PAGE, RedmineUnavailable
from tests.unit.helpers import NOW, make_context

TASK = "Tâche gestionnaire"


class Counted:
    """The in-memory Redmine, recording the requests polling makes; ``after_page`` is called
    with each list Redmine answers (its number from 1, its ids) before the poll sees it."""

    def __init__(self, inner, after_page: Callable[[int, list[int]], None] | None = None):
        self.inner = inner
        self.after_page = after_page
        self.requests: list[tuple] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def newest_changed(self, since):
        return self._listed(("newest", since), self.inner.newest_changed(since))

    def changed_page(self, since, after_id=None):
        return self._listed(("page", since, after_id), self.inner.changed_page(since, after_id))

    def get_issue(self, issue_id):
        self.requests.append(("read", issue_id))
        return self.inner.get_issue(issue_id)

    def _listed(self, request, stamps):
        self.requests.append(request)
        if self.after_page is not None:
            self.after_page(sum(r[0] != "read" for r in self.requests), [s.id for s in stamps])
        return stamps

    def lists(self) -> list[tuple]:
        return [r for r in self.requests if r[0] != "read"]

    def reads(self) -> list[int]:
        return [r[1] for r in self.requests if r[0] == "read"]


def keys(ctx) -> set[str]:
    return {e.dedup_key for e in service.list_events(ctx.db, limit=10_000)}


def latest_keys(redmine, issue_ids) -> set[str]:
    return {event_from_issue(redmine.get_issue(i)).dedup_key for i in issue_ids}


class RedmineHostClock(Clock):
    """The service's clock reading the in-memory Redmine's (both hosts on NTP): a change
    is stamped with the service's now, and time passes when the fake's clock is moved."""

    def __init__(self, redmine):
        super().__init__()
        self.redmine = redmine

    def now(self):
        return self.redmine._tick


@pytest.fixture
def near(tmp_path):
    """A context on the same clock as its in-memory Redmine, changes 1 ms apart: several
    in one second, versions read less than SETTLED_AFTER after their change."""
    ctx = make_context(tmp_path)
    ctx.redmine.step = timedelta(milliseconds=1)
    ctx.redmine._tick = NOW
    ctx.clock = RedmineHostClock(ctx.redmine)
    return ctx


def wait(redmine, delay: timedelta) -> None:
    """Time passes, for the in-memory Redmine and the service (RedmineHostClock)."""
    redmine._tick += delay


def test_more_than_a_page_in_one_second_out_of_id_order_and_edits_between_pages_lose_nothing(near):
    redmine = near.redmine
    ids = [redmine.add(TASK).id for _ in range(3 * PAGE // 2)]
    assert poll_once(near).queued == len(ids)

    # 250 changes in one second, the later the lower the id (Redmine sorts a second by its
    # microseconds, not by id); then, while the pages are read, an issue already read is
    # edited and a new one created.
    wait(redmine, timedelta(minutes=10))
    for issue_id in reversed(ids):
        redmine.edit(issue_id, notes="Relance")
    ids += [redmine.add(TASK).id for _ in range(PAGE)]
    edited: list[int] = []

    def between_pages(number: int, page: list[int]) -> None:
        if number == 3:  # the second page in id order: the first one is read
            edited.append(ids[0])
            redmine.edit(ids[0], notes="Relance pendant la lecture")
            ids.append(redmine.add(TASK).id)

    near.redmine = Counted(redmine, between_pages)
    report = poll_once(near)
    assert edited
    assert report.read == len(ids) and report.queued == len(ids)  # each change read once
    assert [r[0] for r in near.redmine.lists()] == ["newest", "page", "page", "page"]
    assert [r[2] for r in near.redmine.lists()[1:]] == [None, ids[PAGE - 1], ids[2 * PAGE - 1]]

    wait(redmine, SETTLED_AFTER)
    poll_once(near)  # the edit made behind the pages' progress: in the next poll
    assert latest_keys(redmine, ids) <= keys(near)


def test_a_change_in_the_second_of_the_version_read_is_queued(near):
    redmine = near.redmine
    issue = redmine.add(TASK)
    redmine.edit(issue.id, notes="Premier appel")
    assert poll_once(near).queued == 1

    redmine.edit(issue.id, notes="Second appel")  # the same second: the same updated_on listed
    assert redmine.newest_changed(None)[0].updated_on == redmine.get_issue(issue.id).updated_on
    report = poll_once(near)
    assert (report.read, report.queued) == (1, 1)
    assert event_from_issue(redmine.get_issue(issue.id)).dedup_key in keys(near)


def test_an_unsettled_version_is_read_again_once_then_settled(near):
    redmine = near.redmine
    issue = redmine.add(TASK)
    poll_once(near)

    wait(redmine, SETTLED_AFTER + timedelta(seconds=1))  # past the end of its second by more than the margin
    near.redmine = Counted(redmine)
    assert (poll_once(near).queued, near.redmine.reads()) == (0, [issue.id])  # unchanged: settled
    near.redmine = Counted(redmine)
    poll_once(near)
    assert near.redmine.requests == [("newest", NOW)]  # nothing changed: one request


def test_a_version_read_after_redmine_showed_a_later_second_is_settled(near):
    redmine = near.redmine
    older = redmine.add(TASK)
    redmine.step = timedelta(seconds=1)
    newer = redmine.add(TASK)
    assert poll_once(near).read == 2

    near.redmine = Counted(redmine)
    poll_once(near)
    assert near.redmine.reads() == [newer.id]  # the older one was read after the list showed a later second
    assert older.id not in near.redmine.reads()


def test_an_unsettled_version_of_an_issue_no_longer_listed_is_read_by_id(near):
    redmine = near.redmine
    moved, deleted = redmine.add(TASK), redmine.add(TASK)
    poll_once(near)

    redmine.edit(moved.id, notes="Avant le déplacement")  # the same second, then out of the project
    redmine.move(moved.id, project_id=2)
    del redmine.issues[deleted.id]
    near.redmine = Counted(redmine)
    report = poll_once(near)
    assert report.queued == 1 and event_from_issue(redmine.get_issue(moved.id)).dedup_key in keys(near)
    assert near.redmine.reads() == [moved.id, deleted.id]

    wait(redmine, SETTLED_AFTER + timedelta(seconds=1))
    near.redmine = Counted(redmine)
    poll_once(near)
    assert near.redmine.reads() == [moved.id]  # the deleted one was settled as it was
    near.redmine = Counted(redmine)
    poll_once(near)
    assert near.redmine.reads() == []


def test_redmine_failing_mid_poll_leaves_the_cursor_and_reads_only_what_was_not_recorded(ctx):
    redmine = ctx.redmine
    first = redmine.add(TASK)
    poll_once(ctx)
    cursor = service.poll_cursor(ctx.db, ctx.settings.project)
    ids = [redmine.add(TASK).id for _ in range(PAGE + 10)]

    def down_after_the_second_page(number: int, page: list[int]) -> None:
        redmine.down = number == 3

    ctx.redmine = Counted(redmine, down_after_the_second_page)
    with pytest.raises(RedmineUnavailable):
        poll_once(ctx)
    assert service.poll_cursor(ctx.db, ctx.settings.project) == cursor
    assert sorted(service.polled_versions(ctx.db, ids)) == ids[:PAGE - 1]  # the first page, ``first`` unchanged

    redmine.down = False
    ctx.redmine = Counted(redmine)
    report = poll_once(ctx)
    assert ctx.redmine.reads() == ids[PAGE - 1:]
    assert report.queued == len(ids) - (PAGE - 1)
    assert latest_keys(redmine, [first.id, *ids]) <= keys(ctx)
    assert service.poll_cursor(ctx.db, ctx.settings.project) == redmine.get_issue(ids[-1]).updated_on
