"""Effects on Redmine that are safe to repeat: each first looks in Redmine itself.

A lost local database, a crash between a Redmine write and the local commit, or two
workers never duplicate a note, a ticket, an attachment or a relation:
- a note carries a marker ``(réf. automate : KEY)`` and is not posted when a journal
  of the issue already has it;
- a ticket carries its operation key in the ``Clé d'opération`` custom field (used as a
  filter) and is not created when Redmine already holds one with that key. A ticket made
  under a parent gets its parent in the very request that creates it, so it is among that
  parent's children: when the parent and those children are known already (read or created
  in this view of Redmine), they are the answer — no request; otherwise Redmine is searched
  by key;
- an attachment is known by its file name on the issue, a relation by the other issue.
Each effect found missing is made under its claim (``app/claims``): two workers that both
found it missing make it once — the second reads Redmine again and finds it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from app.claims.flows import claimed
from app.context import Context
from app.text import clean, subject_line
from integrations.redmine.interface import Issue, Journal, NewIssue, RedmineRejected


def digest(*parts: object) -> str:
    """A short stable hash of what a note says, so a changed situation gets a new note."""
    raw = json.dumps(parts, default=str, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:10]


def note_marker(key: str) -> str:
    return f"(réf. automate : {key})"


def has_note(issue: Issue, key: str) -> bool:
    return note_journal(issue, key) is not None


def note_journal(issue: Issue, key: str) -> Journal | None:
    """The journal that carries the key's note, if any."""
    marker = note_marker(key)
    return next((journal for journal in issue.journals if marker in journal.notes), None)


def note_once(ctx: Context, issue: Issue, key: str, text: str, assign_to: int | None = None, **changes) -> bool:
    """Post the note, with the assignment and other ``changes`` (custom fields, dates) in
    the same journal, unless a journal already carries the key."""
    if has_note(issue, key):
        return False
    with claimed(ctx, f"note/{issue.id}/{key}") as contended:
        if contended and has_note(ctx.redmine.read_again(issue.id), key):
            return False
        ctx.redmine.update_issue(issue.id, notes=f"{text}\n\n{note_marker(key)}", assigned_to_id=assign_to,
                                 **changes)
    return True


def note_to_author(ctx: Context, issue: Issue, key: str, text: str, **changes) -> bool:
    """Post the note and send the ticket back to its author; to the litigation group when
    Redmine refuses the author as assignee (not a member with an assignable role). A
    ticket the service opened itself stays with its assignee (Redmine would accept the
    service's account as assignee, as every author, and nobody would see it)."""
    if issue.author_id == ctx.redmine.service_user_id:
        assignee = issue.assigned_to_id or ctx.principal(ctx.settings.routing.litigation_group)
        return note_once(ctx, issue, key, text, assign_to=assignee, **changes)
    try:
        return note_once(ctx, issue, key, text, assign_to=issue.author_id, **changes)
    except RedmineRejected:
        group = ctx.settings.routing.litigation_group
        fallback = f"{text}\n\nL'auteur ne peut pas recevoir ce ticket : il est assigné au groupe {group}."
        return note_once(ctx, issue, key, fallback, assign_to=ctx.principal(group), **changes)


def find_operation(ctx: Context, tracker: str, key: str, parent_id: int | None = None) -> list[Issue]:
    """The tickets of that tracker with this operation key (made under ``parent_id``)."""
    field = ctx.settings.fields.operation_key
    parent = ctx.redmine.already_read(parent_id) if parent_id is not None else None
    if parent is not None:
        siblings = [ctx.redmine.already_read(c.id) for c in parent.children if c.tracker == tracker]
        if all(siblings):
            return [s for s in siblings if s.field(field) == key]
    return ctx.redmine.find_issues(tracker, field, key)


def ensure_ticket(ctx: Context, key: str, new: NewIssue) -> tuple[Issue, bool]:
    """The ticket with this operation key: found in Redmine, or created with the key. Its
    subject on one line of at most 255 characters and its fields without bidirectional or control characters
    (:func:`app.text.subject_line`, :func:`app.text.clean`): Redmine shows them as plain text."""
    existing = find_operation(ctx, new.tracker, key, new.parent_id)
    if existing:
        return existing[0], False
    field = ctx.settings.fields.operation_key
    with claimed(ctx, f"ticket/{new.tracker}/{key}") as contended:
        existing = ctx.redmine.search_again(new.tracker, field, key) if contended else []
        if existing:
            return existing[0], False
        fields = {name: clean(value) for name, value in new.custom_fields.items()} | {field: key}
        return ctx.redmine.create_issue(replace(new, subject=subject_line(new.subject), custom_fields=fields)), True


def attach_once(ctx: Context, issue: Issue, filename: str, content: bytes, content_type: str, notes: str) -> bool:
    """Attach the file with its note unless the issue already has a file of that name."""
    if filename in issue.attachments:
        return False
    with claimed(ctx, f"attachment/{issue.id}/{filename}") as contended:
        if contended and filename in ctx.redmine.read_again(issue.id).attachments:
            return False
        ctx.redmine.attach_file(issue.id, filename, content, content_type, notes)
    return True


def relate_once(ctx: Context, issue: Issue, other_id: int) -> bool:
    """A "relates to" relation between the issue and another, unless they are related."""
    if other_id in issue.relations:
        return False
    pair = sorted((issue.id, other_id))
    with claimed(ctx, f"relation/{pair[0]}/{pair[1]}") as contended:
        if contended and other_id in ctx.redmine.read_again(issue.id).relations:
            return False
        ctx.redmine.relate(issue.id, other_id)
    return True
