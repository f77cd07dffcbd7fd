"""Lawyer and bailiff invoices (20 05 06 "Paiement des factures fournisseurs"), rules C-16,
C-28 … C-30.

Litigation opens a ``Paiement fournisseur`` ticket per invoice (the invoice attached, its
``Nature de la dépense`` set). The service hangs it under the litigation ticket of its
mandate (C-16) and routes it:
- lot not under GLI: accounting pays it, charged to the owner's provision (C-16);
- GLI, owner indemnified: paid from the GLI account by the principal's accounting, not asked
  of the owner (C-30);
- GLI, owner's account in credit: the funds pass through it and the invoice is paid (C-29);
- GLI, owner's account in debit: only fee debits go ahead, once the owner advanced the
  funds; any other debit waits for the DG's approval (C-29).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.context import Context
from app.effects import digest, note_once
from integrations.redmine.interface import Issue


@dataclass(frozen=True)
class Routing:
    rule: str
    group: str  # routing key: "accounting" or "management"
    reason: str


def route_invoice(gli: bool, indemnified: bool, owner_in_debit: bool, fees: bool) -> Routing:
    if not gli:
        return Routing("C-16", "accounting", "imputée sur la provision versée par le propriétaire")
    if indemnified:
        return Routing("C-30", "accounting",
                       "propriétaire indemnisé par la GLI : payée sur le compte GLI par la comptabilité mandant, "
                       "sans avance demandée au propriétaire")
    if not owner_in_debit:
        return Routing("C-29", "accounting", "lot GLI, compte propriétaire créditeur : les fonds passent par le "
                                             "compte propriétaire et la facture est payée")
    if fees:
        return Routing("C-29", "accounting", "lot GLI, compte propriétaire débiteur, débit d'honoraires : la "
                                             "comptabilité paie dès que le propriétaire a avancé les fonds")
    return Routing("C-29", "management", "lot GLI, compte propriétaire débiteur, débit autre que des honoraires : "
                                         "accord de la DG obligatoire")


def reconcile_invoice(ctx: Context, invoice: Issue) -> list[str]:
    s = ctx.settings
    f, v = s.fields, s.values
    mandate = invoice.field(f.mandate_number)
    litigation = ctx.redmine.get_issue(invoice.parent_id) if invoice.parent_id else None
    if litigation is None or litigation.tracker != s.trackers.litigation:
        found = [i for i in ctx.redmine.find_issues(s.trackers.litigation, f.mandate_number, mandate)
                 if not i.closed] if mandate else []
        if len(found) != 1:
            text = ctx.render("invoice_unattached", mandate=mandate, count=len(found))
            note_once(ctx, invoice, f"C-16/sans-contentieux/{digest(mandate, len(found))}", text,
                      assign_to=ctx.principal(s.routing.litigation_group))
            return ["facture sans dossier contentieux unique"]
        litigation = ctx.redmine.get_issue(found[0].id)
        ctx.redmine.update_issue(invoice.id, parent_id=litigation.id)  # C-16: sub-task of the litigation ticket
    routing = route_invoice(
        gli=litigation.field(f.gli_lot) == "1",
        indemnified=litigation.field(f.gli_indemnified) == "1",
        owner_in_debit=litigation.field(f.owner_account) == v.owner_account_debit,
        fees=invoice.field(f.expense_kind) == v.expense_fees,
    )
    group = s.routing.accounting_group if routing.group == "accounting" else s.routing.management_group
    text = ctx.render("invoice_routed", routing=routing, group=group, litigation_id=litigation.id)
    if note_once(ctx, invoice, f"{routing.rule}/facture/{digest(routing)}", text, assign_to=ctx.principal(group)):
        return [f"facture : {group} ({routing.rule})"]
    return []
