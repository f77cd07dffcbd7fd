"""Whether a litigation file's debt may be written off (rule C-31), condition by condition,
and the legal watch's warnings (L-16). Pure: the flows read Redmine and call ``assess``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.calendar import add_months
from app.config import Settings
from app.legal.rules import PRESCRIPTION_YEARS
from integrations.redmine.interface import Issue



@dataclass(frozen=True)
class Condition:
    label: str
    met: bool
    detail: str


@dataclass(frozen=True)
class WriteoffAssessment:
    issue_id: int
    conditions: list[Condition]
    prescribed_on: date | None  # last unpaid rent + 3 years: from the next day, C-31 holds
    warnings: list[str]

    @property
    def eligible(self) -> bool:
        return all(c.met for c in self.conditions)


def prescribed_on(last_unpaid: date, settings: Settings) -> date:
    """The last day that is *not* more than 3 years after the last unpaid rent (months
    clamped: 29 February + 3 years = 28 February)."""
    return add_months(last_unpaid, settings.deadlines.writeoff_after_months)


def assess(issue: Issue, settings: Settings, today: date, interruptions: list[str] = ()) -> WriteoffAssessment:
    """The four conditions of C-31, each with what the ticket says; ``interruptions`` are
    court claims or enforcement acts of the last 3 years (L-16 warnings, not conditions)."""
    f, v = settings.fields, settings.values
    fmt = "%d/%m/%Y"

    refusal = issue.field(f.owner_written_refusal) == "1"
    forfeited_on = issue.date_field(f.forfeiture_date)
    if refusal:
        owner = Condition("refus écrit du propriétaire ou déchéance", True, f"« {f.owner_written_refusal} » : oui")
    elif forfeited_on:
        owner = Condition("refus écrit du propriétaire ou déchéance", True,
                          f"déchéance de garantie le {forfeited_on:{fmt}} (fonds non avancés)")
    else:
        owner = Condition("refus écrit du propriétaire ou déchéance", False,
                          f"ni « {f.owner_written_refusal} » coché, ni « {f.forfeiture_date} » renseigné")

    gli = issue.field(f.gli_lot)
    if issue.field(f.gli_indemnified) == "1":
        lot = Condition("lot hors GLI", False, f"« {f.gli_indemnified} » coché")
    elif gli == "0":
        lot = Condition("lot hors GLI", True, f"« {f.gli_lot} » : non")
    else:
        lot = Condition("lot hors GLI", False, "lot sous GLI" if gli == "1" else f"« {f.gli_lot} » non renseigné")

    in_premises, starred = issue.field(f.tenant_in_premises), issue.field(f.starred_tenant)
    missing = []
    if in_premises != "0":
        missing.append("toujours dans les lieux" if in_premises == "1" else f"« {f.tenant_in_premises} » non renseigné")
    if starred != "1":
        missing.append(f"« {f.starred_tenant} » non coché")
    tenant = Condition("locataire sorti et étoilé", not missing,
                       "; ".join(missing) or f"« {f.tenant_in_premises} » : non, « {f.starred_tenant} » : oui")

    last_unpaid = issue.date_field(f.last_unpaid_date)
    prescribed = prescribed_on(last_unpaid, settings) if last_unpaid else None
    if prescribed is None:
        age = Condition("plus de 3 ans depuis le dernier impayé", False, f"« {f.last_unpaid_date} » non renseigné")
    else:
        age = Condition("plus de 3 ans depuis le dernier impayé", today > prescribed,
                        f"dernier impayé le {last_unpaid:{fmt}} : 3 ans le {prescribed:{fmt}}, "
                        f"annulation possible à partir du lendemain")

    warnings = list(interruptions)
    if issue.field(f.lease_type) == v.lease_commercial:
        warnings.append(f"bail commercial : la prescription légale est de {PRESCRIPTION_YEARS['commercial']} ans "
                        "(Code civil, art. 2224), la règle de 3 ans de l'entreprise s'applique néanmoins (L-16)")
    return WriteoffAssessment(issue.id, [owner, lot, tenant, age], prescribed, warnings)
