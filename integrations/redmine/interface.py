"""The capability the service needs from Redmine, in the procedure's terms (names, not ids).

``integrations.redmine.client.RedmineClient`` implements it over REST (python-redmine);
``integrations.redmine.fake.FakeRedmine`` implements it in memory for fast unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol


class RedmineError(Exception):
    """Base of every Redmine failure; messages never carry the API key."""


class RedmineUnavailable(RedmineError):
    """Redmine did not answer or answered 5xx: retry later."""


class RedmineAccessRefused(RedmineUnavailable):
    """Redmine refuses the service as a whole: 401 (API key revoked or reset, account
    locked) or 403 on the service's own project (its membership removed). An outage, not a
    property of the event or the ticket: retried, like Redmine down, until access returns."""


class RedmineRejected(RedmineError):
    """Redmine refused the request (4xx, validation): retrying the same will not help."""


class RedmineNotFound(RedmineRejected):
    """The issue does not exist, or the service's account cannot see it (404)."""


class RedmineForbidden(RedmineRejected):
    """Redmine refused the service this one ticket (403): it exists, but is outside what
    the service's role may see or change (another project, a private ticket)."""


class FieldUnknown(RedmineError):
    """A rule needs a custom field the ticket as read does not show: hidden from the
    service's role (field visibility), not on the tracker, or not enabled in the project.
    Unknown is not empty: nothing that depends on it is decided until it can be read."""

    def __init__(self, issue_id: int, tracker: str, name: str):
        self.issue_id, self.tracker, self.name = issue_id, tracker, name
        super().__init__(f"ticket #{issue_id} : champ « {name} » illisible pour le service (masqué pour son rôle "
                         f"ou absent du tracker « {tracker} »)")


class RedmineWriteIgnored(RedmineError):
    """Redmine answered success but reading back shows the write did not happen
    (missing permission, workflow, derived parent dates)."""


class SchemaMissing(RedmineError):
    """A tracker, custom field or status the service needs is absent."""


@dataclass(frozen=True)
class Change:
    """One change of a journal: an attribute (``subject``, ``description``…) or a custom
    field, by name; values as Redmine stores them (text, "1"/"0", YYYY-MM-DD)."""

    name: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Journal:
    id: int
    notes: str
    user_id: int | None
    created_on: datetime | None
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Child:
    id: int
    tracker: str


@dataclass(frozen=True)
class Issue:
    id: int
    project_id: int
    tracker: str
    status: str
    closed: bool
    subject: str
    description: str
    author_id: int
    assigned_to_id: int | None
    parent_id: int | None
    custom_fields: dict[str, str | list[str] | None]
    created_on: datetime
    updated_on: datetime
    start_date: date | None = None
    due_date: date | None = None
    journals: list[Journal] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)  # file names
    relations: list[int] = field(default_factory=list)  # ids of related issues

    def field(self, name: str) -> str:
        """A custom field's value as text ("" when blank). Raises FieldUnknown when the
        ticket as read does not show the field: Redmine's REST API leaves out a field hidden
        from the service's role or not on the tracker, and that is not an empty value."""
        value = self.value(name)
        if value is None:
            raise FieldUnknown(self.id, self.tracker, name)
        return value

    def value(self, name: str) -> str | None:
        """A custom field's value as text; None when the field is not in the service's view
        (for searches and read-backs, never for a rule: rules read ``field``)."""
        if name not in self.custom_fields:
            return None
        value = self.custom_fields[name]
        if isinstance(value, list):
            return ", ".join(value)
        return (value or "").strip()

    def date_field(self, name: str) -> date | None:
        """A date custom field (Redmine: YYYY-MM-DD); None when empty or unreadable;
        FieldUnknown when not in the service's view."""
        text = self.field(name)
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            return None

    def decimal_field(self, name: str) -> Decimal | None:
        """A float custom field as a Decimal; None when empty or unreadable; FieldUnknown
        when not in the service's view."""
        text = self.field(name)
        try:
            return Decimal(text) if text else None
        except InvalidOperation:
            return None

    def has_field(self, name: str) -> bool:
        """Whether the service sees the field on this ticket (Redmine lists it)."""
        return name in self.custom_fields

    def require_fields(self, *names: str) -> None:
        """Raise FieldUnknown for the first of the fields the flow reads that the service
        does not see on this ticket."""
        for name in names:
            self.field(name)

    @property
    def last_journal_id(self) -> int | None:
        return max((j.id for j in self.journals), default=None)


@dataclass
class Expected:
    """What the service's writes to one issue must have left there. Redmine answers a write
    with success even when it dropped part of it (permission, workflow, a field not on the
    tracker): reading the issue back and comparing is the only proof."""

    parent_id: int | None = None
    assigned_to_id: int | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)
    status: str | None = None
    attachments: set[str] = field(default_factory=set)

    def add(self, *, parent_id: int | None = None, assigned_to_id: int | None = None,
            custom_fields: dict[str, str] | None = None, start_date: date | None = None,
            due_date: date | None = None, status: str | None = None, attachment: str | None = None) -> Expected:
        """A later write to the same issue: its values win."""
        self.parent_id = parent_id if parent_id is not None else self.parent_id
        self.assigned_to_id = assigned_to_id if assigned_to_id is not None else self.assigned_to_id
        self.custom_fields.update(custom_fields or {})
        self.dates.update({k: v for k, v in (("start_date", start_date), ("due_date", due_date)) if v is not None})
        self.status = status if status is not None else self.status
        if attachment:
            self.attachments.add(attachment)
        return self

    @property
    def checkable(self) -> bool:
        return bool(self.parent_id is not None or self.assigned_to_id is not None or self.custom_fields
                    or self.dates or self.status or self.attachments)

    def check(self, issue: Issue) -> None:
        """Raise RedmineWriteIgnored, saying what, unless the issue as read holds it all — or
        its journals show the value was written, then changed again (another user, another
        replica): Redmine did not ignore it."""
        def kept(name: str, wanted: object, found: object) -> bool:
            return found == wanted or any(c.name == name and (c.new or "") == str(wanted)
                                          for journal in issue.journals for c in journal.changes)

        problems = []
        if self.parent_id is not None and not kept("parent_id", self.parent_id, issue.parent_id):
            problems.append(f"parent #{self.parent_id} demandé, #{issue.parent_id} relu "
                            "(permission « gérer les sous-tâches » ?)")
        if self.assigned_to_id is not None and not kept("assigned_to_id", self.assigned_to_id, issue.assigned_to_id):
            problems.append(f"assigné {self.assigned_to_id} demandé, {issue.assigned_to_id} relu")
        for name, value in self.dates.items():
            if not kept(name, value, getattr(issue, name)):
                problems.append(f"{name} {value} demandé, {getattr(issue, name)} relu")
        for name, value in self.custom_fields.items():
            if not kept(name, value, issue.value(name)):
                problems.append(f"champ « {name} » : « {value} » demandé, « {issue.value(name) or ''} » relu")
        if self.status is not None and issue.status != self.status:
            problems.append(f"statut « {self.status} » demandé, « {issue.status} » relu (workflow ?)")
        problems += [f"pièce jointe {name} absente" for name in sorted(self.attachments - set(issue.attachments))]
        if problems:
            raise RedmineWriteIgnored(f"ticket #{issue.id} : écriture ignorée par Redmine : " + "; ".join(problems))


PAGE = 100
"""Issues in one answer of Redmine's list (its API gives 100 at most)."""


@dataclass(frozen=True)
class IssueStamp:
    """An issue as Redmine's list shows it: its id and ``updated_on``, UTC, to the second
    (Redmine stores it to the microsecond on SQLite and PostgreSQL, and sorts by that)."""

    id: int
    updated_on: datetime



@dataclass(frozen=True)
class IssueSummary:
    """An issue as Redmine's issue list shows it: where it is, what it is, whether it is
    closed, when it last changed and which issues it is related to — what the
    reconciliation compares with what the service last knew of it (issue 16)."""

    id: int
    project_id: int
    tracker: str
    closed: bool
    updated_on: datetime
    relations: list[int] = field(default_factory=list)  # ids of related issues


@dataclass(frozen=True)
class NewIssue:
    tracker: str
    subject: str
    description: str
    parent_id: int | None = None
    assigned_to_id: int | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaReport:
    missing_trackers: list[str]
    missing_fields: list[str]
    missing_statuses: list[str]
    field_problems: list[str]  # wrong format, not a filter, not on a tracker…
    notes: list[str]
    # The service role's permissions beyond or short of what the service uses (schema.py).
    missing_permissions: list[str] = field(default_factory=list)
    extra_permissions: list[str] = field(default_factory=list)  # least privilege: not needed to work
    # What the service's account can do beyond its role: Redmine administrator, other roles in
    # the project (directly or through a group), one French line each with the fix.
    account_problems: list[str] = field(default_factory=list)
    # Issue 15, seen with the service's own key, one French line each with the fix: fields a
    # ticket of a tracker carrying them does not show the service (hidden from its role, or not
    # on the tracker: it would read them as empty); routing groups that are not project
    # members; the key refused (401: the account locked, or the key revoked).
    hidden_fields: list[str] = field(default_factory=list)
    group_problems: list[str] = field(default_factory=list)
    access_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The service can work (extra permissions do not stop it)."""
        return not (self.missing_trackers or self.missing_fields or self.missing_statuses or self.field_problems
                    or self.missing_permissions)

    def problems(self, service_role: str, script_checked: bool = False) -> list[str]:
        """Every problem, one French line each (`redmine check`, `/ready`, `serve`'s warnings).
        ``script_checked``: provision.rb --check ran too, and its exact lines on field
        visibility and groups replace this report's view of them over REST."""
        fixes = {
            "tracker manquant": "à activer dans le projet (Projet › Configuration › Suivi des demandes) ou à créer "
                                "(provision.rb)",
            "champ personnalisé manquant": "à activer pour le projet (Administration › Champs personnalisés) ou à "
                                           "créer (provision.rb)",
            "statut manquant": "à créer (provision.rb)",
        }
        lines = [f"{label} : {name} — {fixes[label]}"
                 for label, names in (("tracker manquant", self.missing_trackers),
                                      ("champ personnalisé manquant", self.missing_fields),
                                      ("statut manquant", self.missing_statuses))
                 for name in names]
        lines += [f"champ à corriger : {problem}" for problem in self.field_problems]
        lines += [f"permission manquante au rôle « {service_role} » : {p}" for p in self.missing_permissions]
        lines += [f"permission en trop au rôle « {service_role} » : {p} (inutile au service : à retirer)"
                  for p in self.extra_permissions]
        lines += [f"droits en trop : {problem}" for problem in self.account_problems]
        lines += self.access_problems
        if not script_checked:
            lines += self.hidden_fields + self.group_problems
        return lines

    @property
    def conforming(self) -> bool:
        """Nothing to correct (issue 15: the configuration as well as the schema)."""
        return not self.problems("")


class Redmine(Protocol):
    project_id: int
    """Id of the configured project."""
    known_project_id: int | None
    """The project's id if already read, without a request (None otherwise)."""
    service_user_id: int
    """Id of the service's own account (the author of the tickets it creates)."""

    def get_issue(self, issue_id: int) -> Issue:
        """The issue with its journals (and their changes), children, attachments and relations."""

    def already_read(self, issue_id: int) -> Issue | None:
        """The issue as this view of Redmine last read or wrote it, without a request; None
        when it has not (a plain client keeps nothing: always None)."""

    def find_issues(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        """Issues of the project, open or closed, of that tracker whose field equals value
        (checked on every result, never trusted to the server's filter). No journals."""

    def read_again(self, issue_id: int) -> Issue:
        """``get_issue`` past what this view read before: Redmine as it is now (another
        worker may have written since)."""

    def search_again(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        """``find_issues`` past what this view read before."""

    def open_issue_ids(self, tracker: str) -> list[int]:
        """Ids of the project's open issues of that tracker."""

    def issues_by_ids(self, ids: list[int]) -> list[IssueSummary]:
        """The issues among ``ids`` (at most ``PAGE``; ValueError beyond) that
        the service's account can see, in any project, open or closed, with their
        relations: one request. An id left out is deleted, or out of the service's sight."""

    def create_issue(self, new: NewIssue) -> Issue:
        """Create in the configured project, then verify parent and assignee were kept."""

    def update_issue(
        self,
        issue_id: int,
        *,
        notes: str | None = None,
        parent_id: int | None = None,
        assigned_to_id: int | None = None,
        custom_fields: dict[str, str] | None = None,
        start_date: date | None = None,
        due_date: date | None = None,
        status: str | None = None,
        verify: bool = True,
    ) -> None:
        """Apply the given changes in one journal (a custom field set to "" is cleared), then
        (``verify``) read back and raise RedmineWriteIgnored on a mismatch."""

    def attach_file(self, issue_id: int, filename: str, content: bytes, content_type: str, notes: str,
                    verify: bool = True) -> None:
        """Upload a file and attach it to the issue, with a note; then (``verify``) read back."""

    def relate(self, issue_id: int, other_id: int) -> None:
        """A "relates to" relation between two issues (not parent and child)."""

    def newest_changed(self, since: datetime | None) -> list[IssueStamp]:
        """One request: at most PAGE issues of the project (any status), the last changed at
        or after ``since``'s second (any time when None), newest first (``updated_on``, then
        id, descending). Redmine reads ``updated_on>=T`` as "after T − 1 s"
        (``Query#date_clause``), so the end of the second before may be listed too."""

    def changed_page(self, since: datetime | None, after_id: int | None = None) -> list[IssueStamp]:
        """One request: at most PAGE issues of the project (any status) changed at or after
        ``since``'s second (any time when None; the end of the second before too, as in
        ``newest_changed``), those with the lowest ids above ``after_id`` (any when None), in
        id order."""

    def principal_id(self, name: str) -> int | None:
        """A project member (group name or user display name), by name."""

    def check_schema(self) -> SchemaReport:
        """What the service needs and the Redmine lacks."""

    def ping(self) -> None:
        """Raise RedmineUnavailable unless the API answers with the configured key
        (RedmineAccessRefused when it refuses the key or the service's project)."""
