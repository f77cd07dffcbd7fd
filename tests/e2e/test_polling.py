"""Issue 16 end to end, against the real local Redmine: polling loses no change — not one
made while its pages are read, not one made in the second of a version already read.

Both races are made deterministic: an issue is edited over REST right after the first page
of the poll's listing is answered (a RedmineClient that does it from inside its own
request), and a change is put in the second already read with ``rails runner``
(``update_column``, as Redmine would have stamped it had it come a moment earlier)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.inbox import service as inbox
from app.inbox.flows import poll_once
from app.processing.flows import work
from integrations.redmine.client import RedmineClient
from integrations.redmine.fake import FakeRedmine
from tests.e2e.redmine_admin import field, rails_runner
from tests.e2e.test_deadlines import set_fields
from tests.e2e.test_litigation_opening import open_file

TRACKER = "Tâche gestionnaire"

# Issues inserted without callbacks (as benchmarks/b4_polling.py), the n-th (from 1) changed at
# ARGV[4] + ARGV[4 + n] seconds (fractions: Redmine stores updated_on to the microsecond).
INSERT = """
project = Project.find_by!(identifier: ARGV[0])
count, tracker, author = ARGV[1].to_i, Tracker.find_by!(name: ARGV[2]), User.find_by!(login: ARGV[3])
status, priority = IssueStatus.where(is_closed: false).order(:position).first, IssuePriority.default
second = Time.iso8601(ARGV[4])
rows = (1..count).map do |n|
  at = second + ARGV[4 + n].to_r
  {project_id: project.id, tracker_id: tracker.id, status_id: status.id, priority_id: priority.id,
   author_id: author.id, subject: "Tâche #{n}", lock_version: 0, done_ratio: 0, is_private: false,
   lft: 1, rgt: 2, start_date: at.to_date, created_on: at, updated_on: at}
end
Issue.insert_all(rows)
Issue.where(project_id: project.id, root_id: nil).update_all("root_id = id")
puts Issue.where(project_id: project.id, subject: rows.map { |r| r[:subject] }).order(:id).pluck(:id).join(" ")
"""


def insert(project: str, login: str, second: datetime, offsets: list[str]) -> list[int]:
    """Issues changed at ``second`` + each offset (seconds, a decimal), ids in that order."""
    out = rails_runner(INSERT, project, str(len(offsets)), TRACKER, login,
                       second.strftime("%Y-%m-%dT%H:%M:%SZ"), *offsets)
    return [int(i) for i in out.split()]


class EditsAfterFirstPage(RedmineClient):
    """The real client; right after Redmine answers the poll's first list of changed issues,
    ``edit`` is called with the ids of that page (a user editing one while the service reads)."""

    def __init__(self, settings, edit):
        super().__init__(settings)
        self.edit = edit
        self.pages: list[list[int]] = []

    def _request(self, method, path, what, params=None, data=None):
        answer = super()._request(method, path, what, params=params, data=data)
        if method == "get" and path == "/issues.json" and "updated_on" in (params or {}):
            self.pages.append([raw["id"] for raw in answer["issues"]])
            if len(self.pages) == 1:
                self.edit(self.pages[0])
        return answer


def quiet(ctx) -> None:
    """Poll and process until polling queues nothing (the service's own writes come back once)."""
    for _ in range(6):
        if poll_once(ctx).queued == 0:
            return
        work(ctx)
    raise AssertionError("la lecture périodique trouve toujours du nouveau")


def latest_key(admin, issue_id: int) -> str:
    """The event key of the issue's latest change, as Redmine shows it now."""
    journals = admin.issue(issue_id)["journals"]
    return f"issue.updated:{issue_id}:{journals[-1]['id']}" if journals else f"issue.created:{issue_id}:-"


def keys(ctx) -> set[str]:
    return {e.dedup_key for e in inbox.list_events(ctx.db, limit=10_000)}


def listed(admin, project: str, since: datetime, offset: int) -> list[int]:
    """Ids of one page of the issues changed since ``since``, oldest first, as Redmine lists them."""
    params = {"project_id": project, "status_id": "*", "sort": "updated_on,id", "limit": 100, "offset": offset,
              "updated_on": ">=" + since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return [i["id"] for i in admin._call("GET", "/issues.json", params=params)["issues"]]


def test_an_edit_between_two_pages_of_the_listing_loses_no_change(admin, service, clerk, gestionnaire):
    _, _, lit = open_file(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de signification": "2027-01-04", "Type de bail": "Habitation"})
    ctx = service.context()
    quiet(ctx)
    assert field(admin.issue(lit["id"]), "Échéance") == "2027-02-25"  # C-12: 04/03/2027, reminded 7 days before

    # More than a page of changes: issues of the cursor's second, then others in one second
    # (their microseconds the reverse of their ids), then the Date de signification moved by
    # three days — the change that opens page 2 — then three more issues.
    cursor = inbox.poll_cursor(ctx.db, service.project)
    before = len(set(listed(admin, service.project, cursor, 0)) - {lit["id"]})
    count = 100 - before
    bulk = insert(service.project, clerk.login, datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1),
                  [f"{(count - n) / 1000:.3f}" for n in range(1, count + 1)])
    set_fields(admin, lit["id"], **{"Date de signification": "2027-01-07"})
    later = [admin.create_issue(service.project, TRACKER, f"Relance {n}", {}, as_user=clerk.login)["id"]
             for n in range(3)]
    assert listed(admin, service.project, cursor, 100)[0] == lit["id"]

    edited: list[int] = []

    def edit(page: list[int]) -> None:
        # Two seconds later: the next poll's ``>=`` reaches a second back, a loss must not hide behind it.
        time.sleep(2)
        edited.append(min(set(page) & set(bulk)))
        admin.update_issue(edited[0], as_user=clerk.login, notes="Relance faite pendant la lecture.")

    ctx.redmine = EditsAfterFirstPage(service.settings, edit)
    poll_once(ctx)
    assert edited and len(ctx.redmine.pages) >= 2  # edited between two pages
    poll_once(ctx)  # the edit, if this poll had not seen it yet
    changed = [*bulk, lit["id"], *later]
    missing = {latest_key(admin, i) for i in changed} - keys(ctx)
    assert not missing, f"changements jamais mis en file : {sorted(missing)}"

    work(ctx)
    events = [(e.dedup_key, e.state.value, e.result, e.last_error)
              for e in inbox.list_events(ctx.db, limit=10_000) if e.issue_id == lit["id"]]
    issue = admin.issue(lit["id"])
    assert field(issue, "Échéance") == "2027-02-28", events  # C-12: 07/03/2027, reminded 7 days before
    assert any("au plus tard le 07/03/2027" in n.replace("*", "") for n in admin.notes(lit["id"]))


def test_a_change_in_the_second_of_the_version_read_is_queued(admin, service, clerk):
    issue = admin.create_issue(service.project, TRACKER, "Relance locataire", {}, as_user=clerk.login)
    admin.update_issue(issue["id"], as_user=clerk.login, notes="Premier appel au locataire.")
    ctx = service.context()  # the real clock: the version is read within the second of its change
    poll_once(ctx)
    read = admin.issue(issue["id"])
    assert latest_key(admin, issue["id"]) in keys(ctx)

    # A second change, stamped in the second already read (as if made a moment after the read).
    admin.update_issue(issue["id"], as_user=clerk.login, notes="Second appel : promesse de paiement.")
    second = read["updated_on"].replace("Z", "+00:00")
    rails_runner(f"i = Issue.find({issue['id']}); at = Time.iso8601('{second}') + 0.999; "
                 "i.update_column(:updated_on, at); i.journals.order(:id).last.update_column(:created_on, at)")
    assert admin.issue(issue["id"])["updated_on"] == read["updated_on"]

    report = poll_once(ctx)
    assert latest_key(admin, issue["id"]) in keys(ctx)
    assert report.queued == 1


def test_redmine_lists_changes_as_the_in_memory_redmine_does(admin, service, clerk):
    """What the unit tests' FakeRedmine takes of Redmine 5.0's list (issue 16): updated_on
    shown to the second, sorted to the microsecond (one second's issues not in id order);
    ``>=`` a second also lists the end of the second before; ids after a given one."""
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    offsets = ["-0.5", "0.9", "0.1", "1.2", "-1.2"]  # by id: the previous second, then S late, S early…
    ids = insert(service.project, clerk.login, second, offsets)
    fake = FakeRedmine()
    for offset in offsets:
        fake.add(TRACKER, created_on=second + timedelta(seconds=float(offset)) - fake.step)
    fake_ids = sorted(fake.issues)

    for redmine, made in ((RedmineClient(service.settings), ids), (fake, fake_ids)):
        newest = redmine.newest_changed(second)
        assert [made.index(s.id) for s in newest] == [3, 1, 2, 0]  # S+1.2, S+0.9, S+0.1, S-0.5: not S-1.2
        assert {s.updated_on for s in newest} == {second + timedelta(seconds=1), second,
                                                  second - timedelta(seconds=1)}  # to the second
        assert [made.index(s.id) for s in redmine.changed_page(second)] == [0, 1, 2, 3]
        assert [made.index(s.id) for s in redmine.changed_page(second, after_id=made[1])] == [2, 3]
        assert [made.index(s.id) for s in redmine.newest_changed(second + timedelta(seconds=1))] == [3, 1, 2]
        assert [made.index(s.id) for s in redmine.newest_changed(None)] == [3, 1, 2, 0, 4]
