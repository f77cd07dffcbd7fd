"""When something became true on a ticket, read from its journal history.

A delay that starts "the day the request was complete" (C-35) must not depend on when the
service happened to process the event: the instant comes from Redmine's journals, which
record every change of an attribute or custom field with its old and new value.

Names are custom field names, or the attributes ``subject`` and ``description``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from integrations.redmine.interface import Issue, Journal

ATTRIBUTES = ("subject", "description")
Values = dict[str, str]


def value(issue: Issue, name: str) -> str:
    return (getattr(issue, name) or "").strip() if name in ATTRIBUTES else issue.field(name)


def rewind(issue: Issue, journal_id: int) -> Issue:
    """The ticket as it was just before this journal: later changes undone, later journals
    dropped."""
    fields = dict(issue.custom_fields)
    attributes: dict[str, str] = {}
    later = sorted((j for j in issue.journals if j.id >= journal_id), key=lambda j: j.id, reverse=True)
    for journal in later:
        for change in journal.changes:
            if change.name in ATTRIBUTES:
                attributes[change.name] = change.old or ""
            elif change.name in fields:
                fields[change.name] = change.old
    return replace(issue, custom_fields=fields, journals=[j for j in issue.journals if j.id < journal_id],
                   **attributes)


def timeline(issue: Issue, names: Iterable[str]) -> list[tuple[datetime, Values]]:
    """The values of ``names`` at the ticket's creation, then after each journal that
    changed one of them."""
    names = list(names)
    journals = sorted(issue.journals, key=lambda j: j.id)
    values: Values = {}
    for name in names:
        first = next((c for j in journals for c in j.changes if c.name == name), None)
        values[name] = (first.old or "").strip() if first else value(issue, name)
    steps = [(issue.created_on, dict(values))]
    for journal in journals:
        touched = [c for c in journal.changes if c.name in names]
        if touched:
            values.update({c.name: (c.new or "").strip() for c in touched})
            steps.append((journal.created_on or issue.updated_on, dict(values)))
    return steps


def held_since(issue: Issue, names: Iterable[str], holds: Callable[[Values], bool]) -> datetime | None:
    """Since when ``holds`` is true without interruption; None when it is false now."""
    names = list(names)
    if not holds({n: value(issue, n) for n in names}):
        return None
    steps = timeline(issue, names)
    since = None
    for at, values in steps:
        if holds(values):
            since = since or at
        else:
            since = None
    return since or steps[-1][0]  # a history that disagrees with the values: from its last change


def last_became_true(issue: Issue, names: Iterable[str], holds: Callable[[Values], bool]) -> datetime | None:
    """The last instant ``holds`` turned true (the creation if it held then), true now or not."""
    found, before = None, False
    for at, values in timeline(issue, names):
        now = holds(values)
        if now and not before:
            found = at
        before = now
    return found


def first_change_at_or_after(issue: Issue, name: str, after: datetime) -> datetime | None:
    """The first journal at or after ``after`` that changed ``name``."""
    for journal in sorted(issue.journals, key=lambda j: j.id):
        if journal.created_on and journal.created_on >= after and any(c.name == name for c in journal.changes):
            return journal.created_on
    return None


def last_journal_changing(issue: Issue, name: str) -> Journal | None:
    return max((j for j in issue.journals if any(c.name == name for c in j.changes)), key=lambda j: j.id, default=None)
