"""An in-memory Redmine for fast unit tests of the flows. Same capability as the client;
every workflow is also proven against the real Redmine in tests/e2e."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.config import Settings
from integrations.redmine.interface import (
    PAGE,
    Change,
    Child,
    Issue,
    IssueStamp,
    IssueSummary,
    Journal,
    NewIssue,
    RedmineAccessRefused,
    RedmineForbidden,
    RedmineNotFound,
    RedmineRejected,
    RedmineUnavailable,
    SchemaReport,
)
from integrations.redmine.schema import build_spec


class FakeRedmine:
    project_id = 1
    known_project_id = 1

    def __init__(self, principals: dict[str, int] | None = None, service_user_id: int = 99,
                 settings: Settings | None = None):
        self.issues: dict[int, Issue] = {}
        self.closed_status = (settings or Settings()).statuses.closed
        # As in Redmine, an issue lists every custom field of its tracker (empty when unset).
        self.tracker_fields: dict[str, list[str]] = {}
        for spec in build_spec(settings or Settings()).custom_fields:
            for tracker in spec.trackers:
                self.tracker_fields.setdefault(tracker, []).append(spec.name)
        self.principals = principals or {}
        self.service_user_id = service_user_id
        self.down = False
        # An office's Redmine, as configured (issue 15): fields hidden from the service's
        # role (left out of what it reads, its writes to them dropped), principals Redmine
        # refuses as assignee (a locked account, a group with group assignment off), the
        # service's key refused (401), tickets it may not see (403).
        self.hidden_fields: set[str] = set()
        self.unassignable: set[int] = set()
        self.access_refused = False
        self.forbidden: set[int] = set()
        self.writes = 0
        self.schema_report = SchemaReport([], [], [], [], [])  # what check_schema answers (issue 15)
        self.files: dict[tuple[int, str], bytes] = {}
        self._next_issue = 1
        self._next_journal = 1
        self._tick = datetime(2026, 1, 1, tzinfo=UTC)
        # How far the fake's clock moves at each change: less than a second puts several
        # changes in one second, which Redmine shows as one updated_on (issue 16).
        self.step = timedelta(seconds=1)

    def _stamp(self) -> datetime:
        self._tick += self.step
        return self._tick

    def _up(self) -> None:
        if self.down:
            raise RedmineUnavailable("Redmine injoignable (fake)")
        if self.access_refused:
            raise RedmineAccessRefused("Redmine refuse la clé API du service (401) (fake)")

    def _seen(self, issue: Issue) -> Issue:
        """The issue as the service's role sees it: hidden fields left out, ``updated_on``
        to the second (as Redmine's API shows it)."""
        if issue.updated_on.microsecond:
            issue = replace(issue, updated_on=issue.updated_on.replace(microsecond=0))
        if not self.hidden_fields:
            return issue
        return replace(issue, custom_fields={k: v for k, v in issue.custom_fields.items()
                                             if k not in self.hidden_fields})

    def _validate(self, issue_id: int | None, assigned_to_id: int | None, parent_id: int | None) -> None:
        """Redmine's validations the service meets in offices (422)."""
        if assigned_to_id is not None and assigned_to_id in self.unassignable:
            raise RedmineRejected("mise à jour : Redmine a refusé (Assigné à n'est pas valide)")
        if parent_id is not None and self.issues[parent_id].closed and not (
                issue_id is not None and self.issues[issue_id].closed):
            raise RedmineRejected("mise à jour : Redmine a refusé (Tâche parente : une tâche ouverte ne peut pas "
                                  "être rattachée à une tâche fermée)")

    def move(self, issue_id: int, *, project_id: int | None = None, tracker: str | None = None) -> None:
        """An administrator moves the ticket to another project or tracker."""
        issue = self.issues[issue_id]
        changes = {k: v for k, v in (("project_id", project_id), ("tracker", tracker)) if v is not None}
        self.issues[issue_id] = replace(issue, **changes, updated_on=self._stamp())

    # --- test helpers ----------------------------------------------------------------
    def add(self, tracker: str, subject: str = "", *, author_id: int = 1, assigned_to_id: int | None = None,
            parent_id: int | None = None, description: str = "", created_on: datetime | None = None,
            **fields: str) -> Issue:
        """Create as a user would (custom fields by name); ``created_on`` moves the fake's
        clock there (later journals follow it)."""
        if created_on is not None:
            self._tick = created_on
        now = self._stamp()
        issue = Issue(
            id=self._next_issue, project_id=1, tracker=tracker, status="Nouveau", closed=False,
            subject=subject or tracker,
            description=description, author_id=author_id, assigned_to_id=assigned_to_id, parent_id=parent_id,
            custom_fields={**dict.fromkeys(self.tracker_fields.get(tracker, []), ""), **fields},
            created_on=now, updated_on=now,
        )
        self._next_issue += 1
        self.issues[issue.id] = issue
        if parent_id:
            self._add_child(parent_id, issue.id)
        return issue

    def _add_child(self, parent_id: int, child_id: int) -> None:
        parent = self.issues[parent_id]
        child = Child(child_id, self.issues[child_id].tracker)
        self.issues[parent_id] = replace(parent, children=[*parent.children, child])

    def delete(self, issue_id: int) -> None:
        """An administrator deletes the ticket (its relations go with it, as in Redmine)."""
        del self.issues[issue_id]
        for other in self.issues.values():
            if issue_id in other.relations:
                self.issues[other.id] = replace(other, relations=[r for r in other.relations if r != issue_id])

    def close(self, issue_id: int) -> None:
        self.issues[issue_id] = replace(self.issues[issue_id], closed=True, status=self.closed_status,
                                        updated_on=self._stamp())

    def notes(self, issue_id: int) -> list[str]:
        return [j.notes for j in self.issues[issue_id].journals if j.notes]

    def children(self, issue_id: int, tracker: str | None = None) -> list[Issue]:
        return [self.issues[c.id] for c in self.issues[issue_id].children
                if tracker is None or c.tracker == tracker]

    # --- the capability --------------------------------------------------------------
    def get_issue(self, issue_id: int) -> Issue:
        self._up()
        if issue_id in self.forbidden:
            raise RedmineForbidden(f"lecture du ticket #{issue_id} : accès refusé par Redmine (403)")
        if issue_id not in self.issues:
            raise RedmineNotFound(f"lecture du ticket #{issue_id} : introuvable dans Redmine (404)")
        return self._seen(self.issues[issue_id])

    def already_read(self, issue_id: int) -> Issue | None:
        return None

    def read_again(self, issue_id: int) -> Issue:
        return self.get_issue(issue_id)

    def find_issues(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        self._up()
        return [i for i in map(self._seen, self.issues.values())
                if i.project_id == self.project_id and i.tracker == tracker and i.field(field_name) == value]

    def search_again(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        return self.find_issues(tracker, field_name, value)

    def open_issue_ids(self, tracker: str) -> list[int]:
        self._up()
        return sorted(i.id for i in self.issues.values()
                      if i.project_id == self.project_id and i.tracker == tracker and not i.closed)

    def issues_by_ids(self, ids: list[int]) -> list[IssueSummary]:
        self._up()
        if len(ids) > PAGE:
            raise ValueError(f"{len(ids)} tickets demandés en une requête : {PAGE} au plus")
        return [IssueSummary(i.id, i.project_id, i.tracker, i.closed, i.updated_on, list(i.relations))
                for i in (self.issues[n] for n in ids if n in self.issues and n not in self.forbidden)]

    def create_issue(self, new: NewIssue) -> Issue:
        self._up()
        if len(new.subject) > 255:  # as Redmine's validation
            raise RedmineRejected("création d'un ticket : Redmine a refusé (Sujet est trop long (pas plus de 255 "
                                  "caractères))")
        self._validate(None, new.assigned_to_id, new.parent_id)
        self.writes += 1
        fields = {k: v for k, v in new.custom_fields.items() if k not in self.hidden_fields}
        return self._seen(self.add(new.tracker, new.subject, author_id=self.service_user_id,
                                   assigned_to_id=new.assigned_to_id, parent_id=new.parent_id,
                                   description=new.description, **fields))

    def edit(self, issue_id: int, *, user_id: int = 1, notes: str = "", subject: str | None = None,
             description: str | None = None, at: datetime | None = None, **fields: str) -> None:
        """Change the issue as a user would (custom fields by name), in one journal; ``at``
        moves the fake's clock there first."""
        if at is not None:
            self._tick = at
        attributes = {k: v for k, v in (("subject", subject), ("description", description)) if v is not None}
        self._journal(issue_id, user_id, notes, attributes, fields)

    def _journal(self, issue_id: int, user_id: int, notes: str, attributes: dict, fields: dict) -> None:
        issue = self.issues[issue_id]
        stamp = self._stamp()
        changes = [Change(k, str(getattr(issue, k) or "") or None, str(v) if v is not None else None)
                   for k, v in attributes.items() if getattr(issue, k) != v]
        changes += [Change(k, issue.custom_fields.get(k) or None, v or None)
                    for k, v in fields.items() if (issue.custom_fields.get(k) or "") != (v or "")]
        journal = Journal(self._next_journal, notes, user_id, stamp, changes)
        self._next_journal += 1
        self.issues[issue_id] = replace(issue, **attributes, custom_fields={**issue.custom_fields, **fields},
                                        updated_on=stamp, journals=[*issue.journals, journal])

    def update_issue(self, issue_id, *, notes=None, parent_id=None, assigned_to_id=None, custom_fields=None,
                     start_date=None, due_date=None, status=None, verify=True) -> None:
        self._up()
        if issue_id in self.forbidden:
            raise RedmineForbidden(f"mise à jour du ticket #{issue_id} : accès refusé par Redmine (403)")
        self._validate(issue_id, assigned_to_id, parent_id)
        self.writes += 1
        issue = self.issues[issue_id]
        custom_fields = {k: v for k, v in (custom_fields or {}).items() if k not in self.hidden_fields}
        attributes: dict = {k: v for k, v in (("start_date", start_date), ("due_date", due_date)) if v is not None}
        if parent_id is not None and parent_id != issue.parent_id:
            attributes["parent_id"] = parent_id
            if issue.parent_id in self.issues:  # moved: no longer a sub-task of its former parent
                former = self.issues[issue.parent_id]
                self.issues[former.id] = replace(former, children=[c for c in former.children if c.id != issue_id])
            self._add_child(parent_id, issue_id)
        if assigned_to_id is not None:
            attributes["assigned_to_id"] = assigned_to_id
        if status is not None:
            attributes.update(status=status, closed=status == self.closed_status)
        self._journal(issue_id, self.service_user_id, notes or "", attributes, custom_fields or {})

    def attach_file(self, issue_id, filename, content, content_type, notes, verify=True) -> None:
        self.files[(issue_id, filename)] = content
        self.update_issue(issue_id, notes=notes)
        issue = self.issues[issue_id]
        self.issues[issue_id] = replace(issue, attachments=[*issue.attachments, filename])

    def relate(self, issue_id, other_id) -> None:
        self._up()
        self.writes += 1
        for a, b in ((issue_id, other_id), (other_id, issue_id)):
            self.issues[a] = replace(self.issues[a], relations=[*self.issues[a].relations, b])

    def newest_changed(self, since: datetime | None) -> list[IssueStamp]:
        found = sorted(self._changed(since), key=lambda i: (i.updated_on, i.id), reverse=True)
        return [self._as_listed(i) for i in found[:PAGE]]

    def changed_page(self, since: datetime | None, after_id: int | None = None) -> list[IssueStamp]:
        found = sorted((i for i in self._changed(since) if after_id is None or i.id > after_id), key=lambda i: i.id)
        return [self._as_listed(i) for i in found[:PAGE]]

    def _changed(self, since: datetime | None) -> list[Issue]:
        """The project's issues Redmine lists for ``updated_on>=since``: changed after the
        start of ``since``'s second less one second (``Query#date_clause``), to the microsecond."""
        self._up()
        after = since.replace(microsecond=0) - timedelta(seconds=1) if since is not None else None
        return [i for i in self.issues.values()
                if i.project_id == self.project_id and (after is None or i.updated_on > after)]

    @staticmethod
    def _as_listed(issue: Issue) -> IssueStamp:
        return IssueStamp(issue.id, issue.updated_on.replace(microsecond=0))

    def principal_id(self, name: str) -> int | None:
        self._up()
        return self.principals.get(name)

    def check_schema(self) -> SchemaReport:
        self._up()
        return self.schema_report

    def ping(self) -> None:
        self._up()
