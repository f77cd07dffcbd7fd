"""One event's view of Redmine: each issue and each search read once, the service's own
writes applied to what was read, and every write read back once, at the end.

Processing an event re-reads the issue and runs several flows over it; without this view
each flow would read the same issue again, and each write would be followed by its own
read-back. Here a write goes to Redmine at once (nothing is deferred but its proof), the
cached issue is changed as Redmine will have changed it, and ``verify()`` reads every
written issue one more time to check Redmine kept what was written (``Expected``). A
status change is not simulated (Redmine decides whether it closes the ticket): that issue
is read again when next needed, and that read is its proof.

A view may end: past ``writable_until`` (``time.monotonic()``) it refuses every write with
``ViewExpired``, so a unit of work that outlived its lease (another worker may have taken
its event or deadline) writes nothing more.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime

from integrations.redmine.interface import (
    Change,
    Child,
    Expected,
    Issue,
    IssueStamp,
    IssueSummary,
    Journal,
    NewIssue,
    Redmine,
    RedmineForbidden,
    RedmineUnavailable,
    SchemaReport,
)

Search = tuple[str, str, str]  # tracker, field, value


class ViewExpired(RedmineUnavailable):
    """A write asked of a view past its ``writable_until``: the unit of work is tried again."""


class RedmineScope:
    def __init__(self, inner: Redmine, unique_field: str, writable_until: float | None = None):
        """``unique_field``: a custom field no two issues share a value of (the operation
        key), so a ticket just created with a value is the whole answer to that search.
        ``writable_until``: a ``time.monotonic()`` instant after which writes are refused."""
        self.inner = inner
        self.unique_field = unique_field
        self.writable_until = writable_until
        self._issues: dict[int, Issue] = {}
        self._searches: dict[Search, list[Issue]] = {}
        self._expected: dict[int, Expected] = {}

    @property
    def project_id(self) -> int:
        return self.inner.project_id

    @property
    def known_project_id(self) -> int | None:
        return self.inner.known_project_id

    @property
    def service_user_id(self) -> int:
        return self.inner.service_user_id

    # --- reads -------------------------------------------------------------------------
    def get_issue(self, issue_id: int) -> Issue:
        if issue_id not in self._issues:
            issue = self.inner.get_issue(issue_id)
            self._prove(issue)
            self._issues[issue_id] = issue
        return self._issues[issue_id]

    def already_read(self, issue_id: int) -> Issue | None:
        return self._issues.get(issue_id)

    def find_issues(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        search = (tracker, field_name, value)
        if search not in self._searches:
            self._searches[search] = self.inner.find_issues(tracker, field_name, value)
        return list(self._searches[search])

    def read_again(self, issue_id: int) -> Issue:
        self._issues.pop(issue_id, None)
        return self.get_issue(issue_id)

    def search_again(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        self._searches.pop((tracker, field_name, value), None)
        return self.find_issues(tracker, field_name, value)

    def open_issue_ids(self, tracker: str) -> list[int]:
        return self.inner.open_issue_ids(tracker)

    def issues_by_ids(self, ids: list[int]) -> list[IssueSummary]:
        return self.inner.issues_by_ids(ids)

    def newest_changed(self, since: datetime | None) -> list[IssueStamp]:
        return self.inner.newest_changed(since)

    def changed_page(self, since: datetime | None, after_id: int | None = None) -> list[IssueStamp]:
        return self.inner.changed_page(since, after_id)

    def principal_id(self, name: str) -> int | None:
        return self.inner.principal_id(name)

    def check_schema(self) -> SchemaReport:
        return self.inner.check_schema()

    def ping(self) -> None:
        self.inner.ping()

    # --- writes ------------------------------------------------------------------------
    def _may_write(self, issue_id: int | None = None) -> None:
        if self.writable_until is not None and time.monotonic() >= self.writable_until:
            raise ViewExpired("bail de traitement écoulé : plus aucune écriture dans Redmine, nouvel essai plus tard")
        known = self._issues.get(issue_id) if issue_id is not None else None
        if known is not None and known.project_id != self.project_id:  # moved out, or a foreign parent
            raise RedmineForbidden(f"écriture sur le ticket #{issue_id} : il est dans un autre projet que celui du "
                                   "service, rien n'y est écrit")

    def create_issue(self, new: NewIssue) -> Issue:
        self._may_write(new.parent_id)
        created = self.inner.create_issue(new)  # checked on Redmine's answer
        self._issues[created.id] = created
        parent = self._issues.get(new.parent_id) if new.parent_id is not None else None
        if parent is not None:
            self._issues[parent.id] = replace(parent, children=[*parent.children, Child(created.id, created.tracker)])
        for (tracker, name, value), found in self._searches.items():
            if tracker == created.tracker and created.value(name) == value:
                found.append(created)
        if new.custom_fields.get(self.unique_field):
            self._searches.setdefault((new.tracker, self.unique_field, new.custom_fields[self.unique_field]), [created])
        return created

    def update_issue(self, issue_id: int, *, notes: str | None = None, parent_id: int | None = None,
                     assigned_to_id: int | None = None, custom_fields: dict[str, str] | None = None,
                     start_date: date | None = None, due_date: date | None = None, status: str | None = None,
                     verify: bool = True) -> None:
        self._may_write(issue_id)
        self.inner.update_issue(issue_id, notes=notes, parent_id=parent_id, assigned_to_id=assigned_to_id,
                                custom_fields=custom_fields, start_date=start_date, due_date=due_date, status=status,
                                verify=False)
        self._expect(issue_id).add(parent_id=parent_id, assigned_to_id=assigned_to_id, custom_fields=custom_fields,
                                   start_date=start_date, due_date=due_date, status=status)
        # A search on a field just written may no longer hold (or may now hold more).
        self._searches = {s: found for s, found in self._searches.items() if s[1] not in (custom_fields or {})}
        if status is not None:
            self._forget(issue_id)
            return
        self._apply(issue_id, lambda issue: _written(issue, self.service_user_id, notes=notes, parent_id=parent_id,
                                                     assigned_to_id=assigned_to_id, custom_fields=custom_fields or {},
                                                     start_date=start_date, due_date=due_date))
        if parent_id is not None:
            for other in list(self._issues.values()):  # no longer a sub-task of its former parent
                if other.id != parent_id and any(c.id == issue_id for c in other.children):
                    self._issues[other.id] = replace(other, children=[c for c in other.children if c.id != issue_id])
            parent = self._issues.get(parent_id)
            if parent is not None and issue_id not in {c.id for c in parent.children}:
                tracker = self._issues[issue_id].tracker if issue_id in self._issues else None
                if tracker is None:
                    self._forget(parent_id)
                else:
                    self._issues[parent_id] = replace(parent, children=[*parent.children, Child(issue_id, tracker)])

    def attach_file(self, issue_id: int, filename: str, content: bytes, content_type: str, notes: str,
                    verify: bool = True) -> None:
        self._may_write(issue_id)
        self.inner.attach_file(issue_id, filename, content, content_type, notes, verify=False)
        self._expect(issue_id).add(attachment=filename)
        self._apply(issue_id, lambda issue: replace(_written(issue, self.service_user_id, notes=notes),
                                                    attachments=[*issue.attachments, filename]))

    def relate(self, issue_id: int, other_id: int) -> None:
        self._may_write(issue_id)
        self._may_write(other_id)
        self.inner.relate(issue_id, other_id)
        for a, b in ((issue_id, other_id), (other_id, issue_id)):
            self._apply(a, lambda issue, b=b: replace(issue, relations=[*issue.relations, b]))

    # --- the proof ---------------------------------------------------------------------
    def verify(self) -> None:
        """Read back every issue written since its last read; RedmineWriteIgnored on a mismatch."""
        for issue_id in list(self._expected):
            self._forget(issue_id)
            self.get_issue(issue_id)

    def _expect(self, issue_id: int) -> Expected:
        return self._expected.setdefault(issue_id, Expected())

    def _prove(self, issue: Issue) -> None:
        expected = self._expected.pop(issue.id, None)
        if expected is not None:
            expected.check(issue)

    def _forget(self, issue_id: int) -> None:
        self._issues.pop(issue_id, None)
        self._searches = {s: found for s, found in self._searches.items() if all(i.id != issue_id for i in found)}

    def _apply(self, issue_id: int, change) -> None:
        if issue_id in self._issues:
            self._issues[issue_id] = change(self._issues[issue_id])
        for found in self._searches.values():
            found[:] = [change(i) if i.id == issue_id else i for i in found]


def _written(issue: Issue, user_id: int, *, notes: str | None = None, parent_id: int | None = None,
             assigned_to_id: int | None = None, custom_fields: dict[str, str] | None = None,
             start_date: date | None = None, due_date: date | None = None) -> Issue:
    """The issue as Redmine holds it after the service's write: the values, and a journal
    with the note and the field changes (its instant is Redmine's, unknown until read)."""
    fields = custom_fields or {}
    changes = [Change(name, issue.value(name) or None, value or None)
               for name, value in fields.items() if issue.value(name) != value]
    attributes = {k: v for k, v in (("parent_id", parent_id), ("assigned_to_id", assigned_to_id),
                                    ("start_date", start_date), ("due_date", due_date)) if v is not None}
    moved = {k: v for k, v in attributes.items() if getattr(issue, k) != v}
    if not (notes or changes or moved):
        return issue
    journal = Journal((issue.last_journal_id or 0) + 1, notes or "", user_id, None, changes)
    return replace(issue, custom_fields={**issue.custom_fields, **fields}, journals=[*issue.journals, journal],
                   **attributes)
