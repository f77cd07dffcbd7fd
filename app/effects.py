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

Refused, not broken (issue 15): an assignee Redmine refuses (a locked account, a group when
group assignment is off, a person without an assignable role) is replaced by the litigation
group, then by nobody, the reason written where the ticket or the note says so. A step
refused all the same is a ``Refusal`` of the unit of work, told on its ticket by
``report_refusals`` (``attempt`` runs a step so).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from app.claims.flows import claimed
from app.context import Context, Refusal
from app.text import field_value, subject_line
from integrations.redmine.schema import SERVICE_ROLE, build_spec
from integrations.redmine.interface import (
    FieldUnknown,
    Issue,
    Journal,
    NewIssue,
    RedmineError,
    RedmineForbidden,
    RedmineRejected,
    RedmineWriteIgnored,
    SchemaMissing,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


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


def _assignees(ctx: Context, wanted: int | None) -> list[tuple[int | None, str | None]]:
    """``wanted``, then what replaces it when Redmine refuses it: the litigation group, then
    nobody; each with what the ticket is told (None for ``wanted`` itself)."""
    if wanted is None:
        return [(None, None)]
    group_name = ctx.settings.routing.litigation_group
    group = ctx.principal(group_name)
    fallbacks = [(group, f"il est assigné au groupe {group_name}")] if group not in (None, wanted) else []
    return [(wanted, None), *fallbacks, (None, f"il n'est assigné à personne (le groupe {group_name} non plus "
                                               "n'est pas accepté par Redmine)")]


def note_once(ctx: Context, issue: Issue, key: str, text: str, assign_to: int | None = None, **changes) -> bool:
    """Post the note, with the assignment and other ``changes`` (custom fields, dates) in
    the same journal, unless a journal already carries the key. An assignee Redmine refuses
    (422): the litigation group, then nobody, the note saying why."""
    if has_note(issue, key):
        return False
    with claimed(ctx, f"note/{issue.id}/{key}") as contended:
        if contended and has_note(ctx.redmine.read_again(issue.id), key):
            return False
        refused: RedmineRejected | None = None
        for assignee, told in _assignees(ctx, assign_to):
            said = text if refused is None else text + "\n\n" + ctx.render(
                "not_as_planned", what="Ce ticket", done="assigné", reason=_reason(refused), fallback=told)
            try:
                ctx.redmine.update_issue(issue.id, notes=f"{said}\n\n{note_marker(key)}", assigned_to_id=assignee,
                                         **changes)
                return True
            except RedmineForbidden:
                raise  # the ticket itself is refused: no assignee changes that
            except RedmineRejected as exc:
                if assign_to is None:
                    raise
                refused = refused or exc
        assert refused is not None
        raise refused


def note_to_author(ctx: Context, issue: Issue, key: str, text: str, **changes) -> bool:
    """Post the note and send the ticket back to its author (to the litigation group when
    Redmine refuses the author as assignee: ``note_once``). A ticket the service opened
    itself stays with its assignee (Redmine would accept the service's account as
    assignee, as every author, and nobody would see it)."""
    if issue.author_id == ctx.redmine.service_user_id:
        assignee = issue.assigned_to_id or ctx.principal(ctx.settings.routing.litigation_group)
        return note_once(ctx, issue, key, text, assign_to=assignee, **changes)
    return note_once(ctx, issue, key, text, assign_to=issue.author_id, **changes)


def _reason(exc: Exception) -> str:
    """Redmine's answer in a refusal's message (after "refusé (" when there), one line."""
    text = str(exc)
    start = text.find("refusé (")
    return " ".join((text[start + 8:].rstrip(")") if start >= 0 else text).split())[:500]


class StepsPending(RedmineError):
    """A unit of work done but for steps that wait — a field the service cannot read, a step
    Redmine refused — told on their tickets: its event is tried again later
    (``app/processing/flows.py``), so that they complete by themselves once fixed."""


def refused(ctx: Context, what: str, exc: Exception, todo: str, issue_id: int | None = None,
            done_otherwise: bool = False) -> str:
    """Record a refused step of the unit of work, told at its end on ``issue_id`` (by
    default the unit's ticket); ``done_otherwise``: made all the same, nothing to try
    again. Returns what the event's result says."""
    ctx.refusals.append(Refusal(what, _reason(exc), todo, issue_id, done_otherwise))
    return f"refusé par Redmine : {what}"


def refusable(ctx: Context, what: str, step: Callable[[], T], issue_id: int | None = None) -> T | None:
    """``step()``, or None when Redmine refuses it (recorded with what to do, told on
    ``issue_id`` at the end of the unit of work): the steps that do not depend on it go on."""
    try:
        return step()
    except (RedmineRejected, RedmineWriteIgnored, SchemaMissing) as exc:
        log.warning("refus de Redmine : %s", exc)
        refused(ctx, what, exc, what_to_do(exc), issue_id)
        return None


def steps_pending(ctx: Context) -> str:
    """What of the unit of work waits, in French ("" when nothing): steps refused and not
    made otherwise, decisions on an unreadable field."""
    waits = [f"champ « {name} » illisible" for name in dict.fromkeys(ctx.unreadable)]
    waits += [f"refusé par Redmine : {r.what} ({r.reason})" for r in dict.fromkeys(ctx.refusals)
              if not r.done_otherwise]
    return "; ".join(waits)


def report_refusals(ctx: Context, issue: Issue) -> list[str]:
    """The unit of work's refusals, in one note on each ticket they concern (``issue``
    unless said otherwise; once per set of refusals), the ticket to the litigation group,
    who can act or call the Redmine administrator."""
    by_ticket: dict[int, list[Refusal]] = {}
    for r in dict.fromkeys(ctx.refusals):
        by_ticket.setdefault(r.issue_id or issue.id, []).append(r)
    group = ctx.principal(ctx.settings.routing.litigation_group)
    done = []
    for issue_id, refusals in by_ticket.items():
        text = ctx.render("refused_steps", refusals=refusals, group=ctx.settings.routing.litigation_group,
                          group_found=group is not None)
        target = issue if issue_id == issue.id else ctx.redmine.get_issue(issue_id)
        if note_once(ctx, target, f"refus/{digest([(r.what, r.reason) for r in refusals])}", text, assign_to=group):
            done.append(f"refusé par Redmine : {' ; '.join(r.what for r in refusals)} (signalé sur le ticket #{issue_id})")
    return done


def note_unreadable(ctx: Context, exc: FieldUnknown) -> str:
    """A rule could not read a field (hidden from the service's role, not on the tracker):
    nothing depending on it was decided; the ticket says so once, and who can fix it."""
    issue = ctx.redmine.get_issue(exc.issue_id)
    text = ctx.render("field_unreadable", field=exc.name, tracker=exc.tracker, role=SERVICE_ROLE)
    note_once(ctx, issue, f"champ-illisible/{digest(exc.name)}", text)
    return f"en attente : champ « {exc.name} » illisible sur le ticket #{exc.issue_id}"


def attempt(ctx: Context, step: Callable[[], list[str] | str]) -> list[str]:
    """Run one step of a unit of work on its own. A field it cannot read: it decides
    nothing, the ticket is told once (issue 15). Redmine refusing it (422, 403 on a ticket,
    a tracker or field missing from the project): recorded, told on the unit's ticket by
    ``report_refusals``. What it did, in French."""
    try:
        result = step()
    except FieldUnknown as exc:
        log.warning("%s", exc)
        ctx.unreadable.append(exc.name)
        return [note_unreadable(ctx, exc)]
    except (RedmineRejected, RedmineWriteIgnored, SchemaMissing) as exc:
        log.warning("refus de Redmine : %s", exc)
        return [refused(ctx, _step_name(exc), exc, what_to_do(exc))]
    return [result] if isinstance(result, str) else result


def _step_name(exc: Exception) -> str:
    """What could not be done, from the refused request's description (before " : ")."""
    if isinstance(exc, SchemaMissing):  # its message is all reason
        return "une étape de ce dossier (la configuration de Redmine est incomplète)"
    return str(exc).split(" : ", 1)[0]


def what_to_do(exc: Exception) -> str:
    if isinstance(exc, SchemaMissing):
        return "l'administrateur Redmine complète la configuration (« recouvrement redmine check » dit quoi)"
    if isinstance(exc, RedmineWriteIgnored):
        return ("l'administrateur Redmine rend ce champ visible et modifiable pour le rôle du service (champ "
                "personnalisé, workflow), comme le dit « recouvrement redmine check »")
    if isinstance(exc, RedmineForbidden):
        return ("l'administrateur Redmine vérifie les droits du rôle du service sur ce ticket (projet, ticket privé, "
                "permissions)")
    return "corriger ce que Redmine indique sur le ticket concerné, ou le faire à la main"


def on_its_own(ctx: Context, issue: Issue, step: Callable[[Context], list[str] | str]) -> list[str]:
    """One ticket's part of a batch (a scan, a daily refresh) done on its own: what it
    cannot read or Redmine refuses is told on that ticket (``attempt``), the batch goes on.
    A ticket that refuses even that note: logged as an error."""
    own = replace(ctx, refusals=[], unreadable=[])
    done = attempt(own, lambda: step(own))
    try:
        return done + report_refusals(own, issue)
    except RedmineRejected as exc:
        log.error("ticket #%s : refus de Redmine non signalé sur le ticket : %s", issue.id, exc)
        return done


def find_operation(ctx: Context, tracker: str, key: str, parent_id: int | None = None) -> list[Issue]:
    """The tickets of that tracker with this operation key (made under ``parent_id``)."""
    field = ctx.settings.fields.operation_key
    parent = ctx.redmine.already_read(parent_id) if parent_id is not None else None
    if parent is not None:
        siblings = [ctx.redmine.already_read(c.id) for c in parent.children if c.tracker == tracker]
        if all(siblings):
            return [s for s in siblings if s.value(field) == key]
    return ctx.redmine.find_issues(tracker, field, key)


def ensure_ticket(ctx: Context, key: str, new: NewIssue) -> tuple[Issue, bool]:
    """The ticket with this operation key: found in Redmine, or created with the key. Its
    subject on one line of at most 255 characters, its fields without bidirectional or
    control characters, one-line ones of at most 255 (:func:`app.text.subject_line`,
    :func:`app.text.field_value`): Redmine shows them as plain text."""
    existing = find_operation(ctx, new.tracker, key, new.parent_id)
    if existing:
        return existing[0], False
    field = ctx.settings.fields.operation_key
    with claimed(ctx, f"ticket/{new.tracker}/{key}") as contended:
        existing = ctx.redmine.search_again(new.tracker, field, key) if contended else []
        if existing:
            return existing[0], False
        one_line = {f.name for f in build_spec(ctx.settings).custom_fields if f.format == "string"}
        fields = {name: field_value(value, name in one_line) for name, value in new.custom_fields.items()}
        fields[field] = key
        return _create(ctx, replace(new, subject=subject_line(new.subject), custom_fields=fields)), True


def _create(ctx: Context, new: NewIssue) -> Issue:
    """Create the ticket; an assignee Redmine refuses: the litigation group, then nobody, the
    ticket's description saying why, and the refusal told on the ticket above it (or the
    unit of work's). Any other refusal (a closed parent, an invalid value) is raised: a
    ticket made without its parent would not be found among the parent's children again."""
    try:
        return ctx.redmine.create_issue(new)
    except RedmineRejected as exc:
        if new.assigned_to_id is None:
            raise
        first = exc
    for assignee, told in _assignees(ctx, new.assigned_to_id)[1:]:  # the first is the one refused
        said = new.description + "\n\n" + ctx.render("not_as_planned", what="Ce ticket", done="créé",
                                                     reason=_reason(first), fallback=told)
        try:
            made = ctx.redmine.create_issue(replace(new, assigned_to_id=assignee, description=said))
        except RedmineRejected:
            continue
        refused(ctx, f"assigner « {new.subject} » comme prévu : le ticket #{made.id} est créé, mais {told}", first,
                "vérifier que la personne prévue est active et membre du projet avec un rôle assignable (ou que "
                "l'assignation aux groupes est permise), puis réassigner le ticket", issue_id=new.parent_id,
                done_otherwise=True)
        return made
    raise first


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
