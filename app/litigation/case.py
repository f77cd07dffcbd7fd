"""A litigation ticket read as a file of the procedure, and the pure rules of its opening.

Nothing here talks to Redmine or the database: the flows call these functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from app.config import Procedure, Settings
from integrations.redmine.interface import Issue


class PartyRole(str, enum.Enum):
    tenant = "locataire"
    co_tenant = "colocataire"
    guarantor = "caution"


@dataclass(frozen=True)
class Party:
    name: str
    role: PartyRole


class Act(str, enum.Enum):
    """The bailiff's act that opens the phase (C-4)."""

    commandement = "commandement de payer"
    sommation = "sommation de payer"


@dataclass(frozen=True)
class LitigationFile:
    issue_id: int
    mandate_number: str
    tenant_ref: str
    owner_ref: str
    parties: list[Party]
    tenant_in_premises: bool | None
    debt: Decimal | None
    owner_account_in_debit: bool | None
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class OpeningAnalysis:
    act: Act
    parties: list[Party]
    cost_per_act: Decimal
    estimated_cost: Decimal
    funds_request_needed: bool


def parse_debtors(text: str) -> tuple[list[Party], list[str]]:
    """``Débiteurs``: one party a line, ``Name ; locataire|colocataire|caution``."""
    parties: list[Party] = []
    problems: list[str] = []
    roles = {r.value: r for r in PartyRole}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, role = (part.strip() for part in line.partition(";"))
        if not sep or not name or role.lower() not in roles:
            problems.append(
                f"Débiteurs, ligne {number} « {line.strip()} » : format attendu « Nom ; locataire|colocataire|caution »"
            )
            continue
        parties.append(Party(name, roles[role.lower()]))
    return parties, problems


def _bool(value: str) -> bool | None:
    return {"1": True, "0": False}.get(value)


def read_litigation_file(issue: Issue, settings: Settings) -> LitigationFile:
    """The file as the ticket holds it; FieldUnknown when a field it reads is not in the
    service's view (issue 15: unknown is not empty)."""
    f, v = settings.fields, settings.values
    problems: list[str] = []

    def required(name: str) -> str:  # FieldUnknown when the service cannot see it: not "non renseigné"
        if not issue.field(name):
            problems.append(f"champ « {name} » non renseigné")
        return issue.field(name)

    mandate_number = required(f.mandate_number)
    parties, debtor_problems = parse_debtors(required(f.debtors))
    problems += debtor_problems
    if issue.field(f.debtors) and not any(p.role is PartyRole.tenant for p in parties):
        problems.append("Débiteurs : aucun locataire (une ligne « Nom ; locataire » au moins)")
    in_premises = _bool(required(f.tenant_in_premises))
    account = required(f.owner_account)
    if account and account not in (v.owner_account_credit, v.owner_account_debit):
        problems.append(f"champ « {f.owner_account} » : valeur « {account} » inconnue")
    debt_text = issue.field(f.debt_amount)
    debt = issue.decimal_field(f.debt_amount)
    if debt_text and debt is None:
        problems.append(f"champ « {f.debt_amount} » : montant illisible « {debt_text} »")
    return LitigationFile(
        issue_id=issue.id,
        mandate_number=mandate_number,
        tenant_ref=issue.field(f.tenant_ref),
        owner_ref=issue.field(f.owner_ref),
        parties=parties,
        tenant_in_premises=in_premises,
        debt=debt,
        owner_account_in_debit={v.owner_account_debit: True, v.owner_account_credit: False}.get(account),
        problems=problems,
    )


def act_to_order(tenant_in_premises: bool) -> Act:
    """C-4: commandement de payer if the tenant is still there, sommation de payer if he left."""
    return Act.commandement if tenant_in_premises else Act.sommation


def analyse_opening(file: LitigationFile, procedure: Procedure) -> OpeningAnalysis:
    """C-4 (act, every party summoned), C-5 (one act per party at the configured cost),
    C-6 (owner's account in debit: the bailiff's advance is asked of the owner)."""
    if not file.complete:
        raise ValueError("incomplete litigation file")
    per_act = procedure.act_cost_per_party_eur
    return OpeningAnalysis(
        act=act_to_order(bool(file.tenant_in_premises)),
        parties=file.parties,
        cost_per_act=per_act,
        estimated_cost=per_act * len(file.parties),
        funds_request_needed=bool(file.owner_account_in_debit),
    )
