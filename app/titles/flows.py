"""Obtaining a title after the act (procedure 20 05 08 02 § 2), rules C-11 … C-13, C-22 … C-24.

When the act is served (``Date de signification``) and stayed unpaid (``Acte resté
impayé``): injonction de payer only for a tenant who has left, a rent-only debt, at most
4 000 € (C-22, company policy, L-11); otherwise assignation, seeking the clause
résolutoire when the tenant is still there (C-12). The matching sub-task is opened with its
cost (C-13: 1 500 €, C-24: 400 € + service fees) and a provision request task for the
gestionnaire (C-13). A contested injonction calls for an assignation (C-23).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.config import Procedure
from app.context import Context
from app.effects import digest, ensure_ticket, note_once
from app.legal.flows import gate_allows, report_of
from app.litigation.case import LitigationFile, read_litigation_file
from app.litigation.flows import gestionnaire_of, open_register, register_of
from integrations.redmine.interface import Issue, NewIssue


@dataclass(frozen=True)
class Route:
    injunction: bool
    reasons: list[str]  # why the injonction is or is not open
    clause_resolutoire: bool
    cost: Decimal


def choose_route(file: LitigationFile, rent_only: bool, procedure: Procedure) -> Route:
    """C-22: injonction only if left, rent only and debt ≤ ceiling (4 000,00 € included)."""
    ceiling = procedure.injunction_ceiling_eur
    reasons = []
    if file.tenant_in_premises:
        reasons.append("le locataire est toujours dans les lieux")
    if not rent_only:
        reasons.append("la dette ne porte pas que sur des loyers (charges, taxe OM…)")
    if file.debt is None:
        reasons.append("le montant de la dette n'est pas renseigné")
    elif file.debt > ceiling:
        reasons.append(f"la dette dépasse le plafond de {ceiling} € (politique de la société, C-22)")
    injunction = not reasons
    return Route(injunction=injunction, reasons=reasons, clause_resolutoire=bool(file.tenant_in_premises),
                 cost=procedure.injunction_cost_eur if injunction else procedure.assignation_cost_eur)


def _title_children(ctx: Context, issue: Issue) -> list[int]:
    t = ctx.settings.trackers
    return [c.id for c in issue.children if c.tracker in (t.assignation, t.injunction)]


def reconcile_title(ctx: Context, issue: Issue) -> list[str]:
    """On a litigation ticket whose act was served and stayed unpaid: propose and open the route."""
    s = ctx.settings
    f = s.fields
    if not (issue.date_field(f.service_date) and issue.field(f.act_unpaid) == "1"):
        return []
    file = read_litigation_file(issue, s)
    if not file.complete or _title_children(ctx, issue) or open_register(ctx, file.mandate_number) is None:
        return []  # incomplete or without its register (said by the opening), or a route already taken
    route = choose_route(file, issue.field(f.rent_only_debt) == "1", s.procedure)
    if not route.injunction and not gate_allows(ctx, issue, report_of(ctx, issue).gate("assignation")):
        return ["assignation bloquée par le contrôle légal (L-3)"]
    title = _open_title(ctx, issue, file, route, key=f"C-11/titre/{issue.id}")
    text = ctx.render("title_route", route=route, title_id=title.id, ceiling=s.procedure.injunction_ceiling_eur,
                      fees=s.procedure.service_fees_note)
    note_once(ctx, issue, f"C-11/route/{digest(route)}", text)
    return [f"{'injonction de payer' if route.injunction else 'assignation'} #{title.id}"]


def reconcile_contested_injunction(ctx: Context, injunction: Issue) -> list[str]:
    """C-23: a contested injonction makes an assignation mandatory."""
    s = ctx.settings
    if injunction.field(s.fields.injunction_contested) != "1" or injunction.parent_id is None:
        return []
    litigation = ctx.redmine.get_issue(injunction.parent_id)
    file = read_litigation_file(litigation, s)
    route = Route(injunction=False, reasons=["l'injonction de payer a été contestée (C-23)"],
                  clause_resolutoire=bool(file.tenant_in_premises), cost=s.procedure.assignation_cost_eur)
    if not gate_allows(ctx, litigation, report_of(ctx, litigation).gate("assignation")):
        return ["assignation bloquée par le contrôle légal (L-3)"]
    title = _open_title(ctx, litigation, file, route, key=f"C-23/assignation/{injunction.id}")
    note_once(ctx, injunction, f"C-23/contestation/{injunction.id}",
              ctx.render("injunction_contested", assignation_id=title.id))
    return [f"injonction contestée : assignation #{title.id}"]


def _open_title(ctx: Context, litigation: Issue, file: LitigationFile, route: Route, key: str) -> Issue:
    s = ctx.settings
    tracker = s.trackers.injunction if route.injunction else s.trackers.assignation
    title, _ = ensure_ticket(ctx, key, NewIssue(
        tracker=tracker,
        subject=f"{tracker} — contentieux #{litigation.id} — mandat {file.mandate_number}",
        description=ctx.render("title_ticket", route=route, litigation_id=litigation.id, parties=file.parties,
                               fees=s.procedure.service_fees_note),
        parent_id=litigation.id,
        assigned_to_id=ctx.principal(s.routing.litigation_group),
        custom_fields={s.fields.mandate_number: file.mandate_number, s.fields.estimated_cost: str(route.cost)}))
    ensure_ticket(ctx, f"C-13/provision/{title.id}", NewIssue(  # C-13: the owner is asked for the provision
        tracker=s.trackers.task,
        subject=f"Demander la provision au propriétaire — {tracker.lower()} #{title.id}",
        description=ctx.render("provision_task", route=route, title_id=title.id, litigation_id=litigation.id,
                               field=s.fields.provision_request_date),
        parent_id=litigation.id,
        assigned_to_id=gestionnaire_of(ctx, register_of(ctx, file.mandate_number)),
        custom_fields={s.fields.mandate_number: file.mandate_number}))
    return title
