"""Opening of a litigation file (procedure 20 05 08 02), rules C-1 … C-6 and C-9.

State-based: each run re-reads the ticket, computes what should exist and creates only
what is missing, so replays and the service's own changes coming back end in no-ops.
"""

from __future__ import annotations

from app.context import Context
from app.effects import digest, ensure_ticket, note_once, note_to_author, on_its_own, refusable
from app.litigation.case import LitigationFile, OpeningAnalysis, analyse_opening, read_litigation_file
from integrations.redmine.interface import Issue, NewIssue


def reconcile_litigation(ctx: Context, issue: Issue) -> str:
    """Everything the opening of this litigation ticket calls for; returns what was done.
    Each step Redmine refuses is recorded and the others go on (issue 15): the link to the
    register, the Demande de fonds and the owner's task do not depend on one another."""
    s = ctx.settings
    done: list[str] = []
    number = issue.field(s.fields.mandate_number)

    register = None
    if number:
        register = _find_register(ctx, issue, number, done)
        if register is None:
            return "; ".join(done) or "registre absent (déjà signalé)"
        if issue.parent_id != register.id:  # C-2, C-9
            if refusable(ctx, f"rattacher ce ticket au registre des mandats #{register.id}",
                         lambda: ctx.redmine.update_issue(issue.id, parent_id=register.id) or True, issue.id):
                done.append(f"rattaché au registre #{register.id}")

    file = read_litigation_file(issue, s)
    if not file.complete:
        text = ctx.render("litigation_incomplete", problems=file.problems)
        if note_to_author(ctx, issue, f"C-4/dossier-incomplet/{digest(file.problems)}", text):
            done.append("dossier incomplet signalé")
        return "; ".join(done) or "dossier incomplet (déjà signalé)"

    assert register is not None  # a complete file has a mandate number
    analysis = analyse_opening(file, s.procedure)
    gestionnaire = gestionnaire_of(ctx, register)

    def made(what: str, key: str, new: NewIssue) -> Issue | None:
        found = refusable(ctx, f"créer {what}", lambda: ensure_ticket(ctx, key, new), issue.id)
        if found is not None and found[1]:
            done.append(f"{what} #{found[0].id}")
        return found[0] if found else None

    funds = made("la demande de fonds", f"C-6/demande-fonds/{issue.id}",  # C-6
                 _funds_request(ctx, file, analysis, gestionnaire)) if analysis.funds_request_needed else None
    task = made("la tâche d'information du propriétaire", f"C-1/information-ouverture/{issue.id}",
                _owner_task(ctx, file, analysis, gestionnaire))

    text = ctx.render(
        "litigation_opening_analysis",
        act=analysis.act.value,
        in_premises=file.tenant_in_premises,
        parties=analysis.parties,
        cost_per_act=analysis.cost_per_act,
        estimated_cost=analysis.estimated_cost,
        debt=file.debt,
        funds_needed=analysis.funds_request_needed,
        funds_request_id=funds.id if funds else None,
        owner_task_id=task.id if task else None,
        register_id=register.id,
        unassigned_register_group=None if register.assigned_to_id else s.routing.litigation_group,
    )
    key = f"C-4/analyse/{digest(analysis, funds.id if funds else None, task.id if task else None)}"
    if note_once(ctx, issue, key, text):
        done.append(f"analyse : {analysis.act.value}, {len(analysis.parties)} partie(s)")
    return "; ".join(done) or "rien à faire"


def register_of(ctx: Context, mandate_number: str) -> Issue | None:
    """The register ticket of the mandate, when exactly one carries its number."""
    s = ctx.settings
    found = ctx.redmine.find_issues(s.trackers.mandate_register, s.fields.mandate_number, mandate_number)
    return found[0] if mandate_number and len(found) == 1 else None


def open_register(ctx: Context, mandate_number: str) -> Issue | None:
    """The register ticket of the mandate when exactly one carries its number and it is
    open: until then a litigation file gets nothing but the note saying so (C-2, C-9)."""
    register = register_of(ctx, mandate_number)
    return register if register is not None and not register.closed else None


def gestionnaire_of(ctx: Context, register: Issue | None) -> int | None:
    """The gestionnaire of a mandate is its register ticket's assignee; without one, the
    tickets meant for the gestionnaire go to the litigation group."""
    return (register.assigned_to_id if register else None) or ctx.principal(ctx.settings.routing.litigation_group)


def reconcile_register(ctx: Context, register: Issue) -> str:
    """A register ticket appeared or changed: attach the litigation tickets of its mandate
    that were waiting for it (C-2, C-9)."""
    s = ctx.settings
    number = register.field(s.fields.mandate_number)
    if not number:
        return "registre sans numéro de mandat"
    waiting = [i for i in ctx.redmine.find_issues(s.trackers.litigation, s.fields.mandate_number, number)
               if i.parent_id != register.id and not i.closed]
    results = []
    for found in waiting:  # each file on its own: what Redmine refuses is told on that file
        litigation = ctx.redmine.get_issue(found.id)
        done = on_its_own(ctx, litigation, lambda ctx, litigation=litigation: reconcile_litigation(ctx, litigation))
        results.append(f"#{found.id} : {'; '.join(done)}")
    return "; ".join(results) or "aucun contentieux en attente"


def _find_register(ctx: Context, issue: Issue, number: str, done: list[str]) -> Issue | None:
    s = ctx.settings
    registers = ctx.redmine.find_issues(s.trackers.mandate_register, s.fields.mandate_number, number)
    if len(registers) == 1 and not registers[0].closed:
        return registers[0]
    if len(registers) == 1:  # closed: Redmine refuses an open sub-task under it
        text = ctx.render("litigation_closed_register", register_tracker=s.trackers.mandate_register,
                          register_id=registers[0].id, field=s.fields.mandate_number, mandate_number=number)
        if note_to_author(ctx, issue, f"C-9/registre-ferme/{registers[0].id}", text):
            done.append(f"registre #{registers[0].id} du mandat {number} fermé : signalé à l'auteur")
    elif not registers:
        text = ctx.render("litigation_missing_register", register_tracker=s.trackers.mandate_register,
                          field=s.fields.mandate_number, mandate_number=number)
        if note_to_author(ctx, issue, f"C-9/registre-absent/{digest(number)}", text):
            done.append(f"registre du mandat {number} introuvable : signalé à l'auteur")
    else:
        ids = [r.id for r in registers]
        text = ctx.render("litigation_ambiguous_register", registers=ids, field=s.fields.mandate_number,
                          mandate_number=number)
        if note_to_author(ctx, issue, f"C-9/registres-multiples/{digest(number, ids)}", text):
            done.append(f"plusieurs registres pour le mandat {number} : signalé à l'auteur")
    return None


def _funds_request(ctx: Context, file: LitigationFile, analysis: OpeningAnalysis, assignee: int | None) -> NewIssue:
    s = ctx.settings
    return NewIssue(
        tracker=s.trackers.funds_request,
        subject=f"Demande de fonds — contentieux #{file.issue_id} — mandat {file.mandate_number}",
        description=ctx.render(
            "funds_request", litigation_id=file.issue_id, mandate_number=file.mandate_number,
            owner_ref=file.owner_ref, act=analysis.act.value, amount=analysis.estimated_cost,
            acts=len(analysis.parties), cost_per_act=analysis.cost_per_act,
        ),
        parent_id=file.issue_id,
        assigned_to_id=assignee,
        custom_fields={s.fields.mandate_number: file.mandate_number,
                       s.fields.requested_amount: str(analysis.estimated_cost)},
    )


def _owner_task(ctx: Context, file: LitigationFile, analysis: OpeningAnalysis, assignee: int | None) -> NewIssue:
    s = ctx.settings
    return NewIssue(
        tracker=s.trackers.task,
        subject=f"Informer le propriétaire — ouverture du contentieux #{file.issue_id}",
        description=ctx.render(
            "owner_information_task", litigation_id=file.issue_id, mandate_number=file.mandate_number,
            owner_ref=file.owner_ref, tenant_ref=file.tenant_ref, act=analysis.act.value,
            parties=analysis.parties, estimated_cost=analysis.estimated_cost,
        ),
        parent_id=file.issue_id,
        assigned_to_id=assignee,
        custom_fields={s.fields.mandate_number: file.mandate_number},
    )
