"""The legal watch, pure: the law's dates, warnings and gates for one litigation file
(rules L-0 … L-16 of ``../shared/domain/legal-notes.md``). Company rules (C-n) stay the
default behaviour; this adds what the law says, each item with its rule and source.

Counting (L-6): a forward delay ends on its last day, extended to the next working day
when that day is a Saturday, Sunday or public holiday of the property's zone (L-7);
a backward delay (the préfet's notice, L-3) is never extended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from app.calendar import Zone, add_months, next_working_day

LAW_OF_2023 = date(2023, 7, 29)  # L-1: loi 2023-668 in force
NEW_LEASE_CLAUSE_DAYS = 42  # L-1: 6 weeks for a lease signed from that day
PREFECT_NOTICE_DAYS = 42  # L-3: 6 weeks, backwards
GUARANTOR_DAYS = 15  # L-5
CCAPEX_MONTHS = 2  # L-4
CAF_MONTHS = 2  # L-8
SERVICE_LIMIT_MONTHS = 6  # L-11, L-12
EVICTION_NOTICE_MONTHS = 2  # L-15: the occupant has 2 months after the commandement de quitter
PREFECT_ANSWER_MONTHS = 2  # L-15: the préfet has 2 months to answer
PRESCRIPTION_YEARS = {"residential": 3, "commercial": 5}  # L-16
PRESCRIPTION_WARNING_MONTHS = 6  # L-16

SOURCES = {
    "L-0": "commissaire de justice depuis le 1er juillet 2022",
    "L-1": "loi 89-462 art. 24 I (loi 2023-668) ; Cass. avis 13 juin 2024 n° 24-70.002",
    "L-2": "C. com. L145-41 ; Cass. 3e civ. 6 nov. 2025 n° 23-21334",
    "L-3": "loi 89-462 art. 24 III ; Cass. avis 6 nov. 2025 n° 25-70.018",
    "L-4": "loi 89-462 art. 24 II (à vérifier)",
    "L-5": "loi 89-462 art. 24 I",
    "L-6": "CPC art. 640 à 642",
    "L-8": "signalement CAF/MSA (à vérifier : charges comprises ou non)",
    "L-9": "signalement CCAPEX par le commissaire de justice",
    "L-10": "loi 89-462 art. 4 p ; CPCE L111-8 ; Cass. 3e civ. 13 juil. 2011",
    "L-11": "CPC 1405 et s., 1411, 1416",
    "L-12": "CPC 478 ; CPCE L111-4",
    "L-15": "CPCE L412-1, L412-6",
    "L-16": "loi 89-462 art. 7-1 ; C. civ. 2224",
}


def forward(start: date, zone: Zone, *, days: int = 0, months: int = 0) -> date:
    """L-6: the last day of a forward delay ("N semaines" = 7N days), extended past a
    Saturday, Sunday or public holiday of the zone."""
    return next_working_day(add_months(start, months) + timedelta(days=days), zone)


def backward(end: date, days: int) -> date:
    """L-3: a backward delay, never extended."""
    return end - timedelta(days=days)


def in_winter_truce(day: date) -> bool:
    """L-15: no physical eviction from 1 November to 31 March (proceedings go on)."""
    return day.month >= 11 or day.month <= 3


def truce_end(day: date) -> date:
    """The first day after the truce that contains ``day``."""
    return date(day.year + (1 if day.month >= 11 else 0), 4, 1)


@dataclass(frozen=True)
class Delay:
    days: int = 0
    months: int = 0

    def __str__(self) -> str:
        if self.months:
            return f"{self.months} mois"
        return f"{self.days // 7} semaines" if self.days % 7 == 0 and self.days else f"{self.days} jours"


def parse_delay(text: str) -> Delay | None:
    """A clause's delay as written: "2 mois", "6 semaines", "42 jours", "1 mois"."""
    found = re.fullmatch(r"\s*(\d+)\s*(mois|semaines?|jours?)\s*", text.lower())
    if not found:
        return None
    n, unit = int(found[1]), found[2]
    return Delay(months=n) if unit == "mois" else Delay(days=n * 7 if unit.startswith("semaine") else n)


def _days(delay: Delay, start: date) -> int:
    return (add_months(start, delay.months) + timedelta(days=delay.days) - start).days


@dataclass(frozen=True)
class Facts:
    """What the legal check reads from a litigation file and its sub-tickets."""

    today: date
    zone: Zone = Zone.metropole
    commercial: bool = False
    lease_date: date | None = None
    clause_delay: str = ""
    service_date: date | None = None  # commandement served on the tenant
    guarantors: bool = False  # a caution among the debtors
    guarantor_served: date | None = None
    hearing: date | None = None
    prefect_notified: date | None = None
    legal_person_landlord: bool = False
    ccapex_date: date | None = None
    assignation_on: date | None = None  # the assignation ticket's creation (planned act)
    monthly_rent: Decimal | None = None  # rent + charges (L-8)
    debt: Decimal | None = None
    debt_constituted_on: date | None = None  # when the debt reached 2 × rent (L-8)
    reminder_fee_requests: bool = False  # an Annulation frais under the file (L-10)
    injunction_refused_over_ceiling: bool = False  # C-22's 4 000 € (L-11)
    injunction_order: date | None = None
    injunction_served: date | None = None
    default_judgment: date | None = None
    default_judgment_served: date | None = None
    eviction_order: date | None = None  # commandement de quitter les lieux
    eviction_planned: date | None = None
    instalments: tuple[date, ...] = ()  # unpaid terms' due dates
    interruptions: tuple[tuple[date, str], ...] = ()  # court claim, signed plan, enforcement act
    interrupting_act_planned: bool = False
    template_problems: tuple[str, ...] = ()  # L-0


@dataclass(frozen=True)
class LegalDate:
    rule: str
    label: str
    day: date


@dataclass(frozen=True)
class Gate:
    """An automated step the law makes pointless or harmful: blocked until overridden."""

    rule: str
    step: str  # "assignation" or "expulsion"
    reason: str


@dataclass
class LegalReport:
    dates: list[LegalDate] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (rule, text)
    gates: list[Gate] = field(default_factory=list)
    expiries: list[tuple[date, date]] = field(default_factory=list)  # L-16: (instalment, expires on)
    caf_report_by: date | None = None  # L-8

    def gate(self, step: str) -> Gate | None:
        return next((g for g in self.gates if g.step == step), None)


def check(facts: Facts) -> LegalReport:
    report = LegalReport()
    _clause(facts, report)
    _prefect(facts, report)
    _ccapex(facts, report)
    _guarantor(facts, report)
    _amounts(facts, report)
    _fees_and_titles(facts, report)
    _eviction(facts, report)
    _prescription(facts, report)
    report.warnings += [("L-0", problem) for problem in facts.template_problems]
    return report


def _clause(f: Facts, r: LegalReport) -> None:
    """L-1 (residential), L-2 (commercial): when the clause résolutoire takes effect."""
    if f.service_date is None:
        return
    written = parse_delay(f.clause_delay) if f.clause_delay else None
    if f.clause_delay and written is None:
        r.warnings.append(("L-1", f"délai de la clause « {f.clause_delay} » illisible (ex. « 2 mois », « 6 semaines »)"))
    if f.commercial:
        rule, legal = "L-2", Delay(months=1)
        delay = written or legal
        if written and _days(written, f.service_date) < _days(legal, f.service_date):
            r.warnings.append((rule, f"clause de {written} : plus courte qu'un mois, elle est nulle ; un mois s'applique"))
            delay = legal
    elif f.lease_date is None:
        rule, delay = "L-1", written or Delay(months=2)
        r.warnings.append((rule, "date du bail non renseignée : 6 semaines si signé depuis le 29/07/2023, sinon "
                                 f"le délai de la clause ({delay} retenu)"))
    elif f.lease_date >= LAW_OF_2023:
        rule, delay = "L-1", Delay(days=NEW_LEASE_CLAUSE_DAYS)
        if written and _days(written, f.service_date) != NEW_LEASE_CLAUSE_DAYS:
            r.warnings.append((rule, f"bail du {f.lease_date:%d/%m/%Y} : le délai légal est de 6 semaines, "
                                     f"pas {written} (loi du 27/07/2023)"))
    else:
        rule, delay = "L-1", written or Delay(months=2)
        if not written:
            r.warnings.append((rule, f"bail du {f.lease_date:%d/%m/%Y}, antérieur au 29/07/2023 : le délai de la clause "
                                     "s'applique (2 mois retenus, à renseigner)"))
    effective = forward(f.service_date, f.zone, days=delay.days, months=delay.months)
    r.dates.append(LegalDate(rule, f"clause résolutoire acquise (commandement du {f.service_date:%d/%m/%Y} "
                                   f"+ {delay})", effective))


def _prefect(f: Facts, r: LegalReport) -> None:
    """L-3: the préfet notified 42 days before the hearing at the latest, counted back."""
    if f.hearing is None or f.commercial:
        return
    last = backward(f.hearing, PREFECT_NOTICE_DAYS)
    r.dates.append(LegalDate("L-3", f"dernier jour pour notifier l'assignation au préfet (audience du "
                                    f"{f.hearing:%d/%m/%Y} − 42 jours, sans report)", last))
    if f.prefect_notified is not None and f.prefect_notified > last:
        gap = (f.hearing - f.prefect_notified).days
        reason = (f"préfet notifié le {f.prefect_notified:%d/%m/%Y}, {gap} jours avant l'audience (42 au moins) : "
                  "demande irrecevable, solliciter un renvoi")
    elif f.prefect_notified is None and f.today > last:
        reason = f"préfet non notifié et le {last:%d/%m/%Y} est passé : demande irrecevable, solliciter un renvoi"
    else:
        return
    r.warnings.append(("L-3", reason))
    r.gates.append(Gate("L-3", "assignation", reason))


def _ccapex(f: Facts, r: LegalReport) -> None:
    """L-4 (to verify, a warning only): a legal-person landlord refers to the CCAPEX 2
    months before the assignation."""
    if not f.legal_person_landlord or f.commercial:
        return
    if f.ccapex_date is None:
        r.warnings.append(("L-4", "bailleur personne morale : saisine de la CCAPEX 2 mois avant l'assignation "
                                  "non renseignée (à vérifier)"))
    elif f.assignation_on and f.ccapex_date > add_months(f.assignation_on, -CCAPEX_MONTHS):
        r.warnings.append(("L-4", f"CCAPEX saisie le {f.ccapex_date:%d/%m/%Y}, moins de 2 mois avant l'assignation "
                                  f"du {f.assignation_on:%d/%m/%Y} (à vérifier)"))


def _guarantor(f: Facts, r: LegalReport) -> None:
    """L-5: the caution served within 15 days of the tenant, or he owes no penalties."""
    if not (f.guarantors and f.service_date) or f.commercial:
        return
    last = forward(f.service_date, f.zone, days=GUARANTOR_DAYS)
    r.dates.append(LegalDate("L-5", "dernier jour pour signifier le commandement à la caution", last))
    if f.guarantor_served is not None and f.guarantor_served > last:
        r.warnings.append(("L-5", f"caution signifiée le {f.guarantor_served:%d/%m/%Y}, après le {last:%d/%m/%Y} : "
                                  "elle ne doit ni pénalités ni intérêts de retard"))
    elif f.guarantor_served is None and f.today > last:
        r.warnings.append(("L-5", f"caution non signifiée au {last:%d/%m/%Y} : elle ne doit ni pénalités ni intérêts"))


def _amounts(f: Facts, r: LegalReport) -> None:
    """L-8, L-9: duties counted in money, beside the procedure's terms."""
    if f.monthly_rent is None or f.debt is None or f.commercial:
        return
    threshold = 2 * f.monthly_rent
    if f.debt < threshold or f.debt_constituted_on is None:
        return
    r.caf_report_by = forward(f.debt_constituted_on, f.zone, months=CAF_MONTHS)
    r.dates.append(LegalDate("L-8", f"signalement de l'impayé à la CAF/MSA (dette ≥ 2 × {f.monthly_rent} € depuis le "
                                    f"{f.debt_constituted_on:%d/%m/%Y})", r.caf_report_by))
    if not f.legal_person_landlord:
        r.warnings.append(("L-9", "dette d'au moins 2 mois de loyer : signalement à la CCAPEX par le commissaire de "
                                  "justice lors du commandement"))


def _fees_and_titles(f: Facts, r: LegalReport) -> None:
    if f.reminder_fee_requests and not f.commercial:
        r.warnings.append(("L-10", "bail d'habitation : des frais de relance ne peuvent pas être facturés au "
                                   "locataire ; ils sont à rembourser, pas à discuter"))
    if f.injunction_refused_over_ceiling:
        r.warnings.append(("L-11", "injonction de payer écartée au-delà de 4 000 € : c'est la politique de la société "
                                   "(C-22), la loi ne fixe pas de plafond"))
    if f.injunction_order and not f.injunction_served:
        r.dates.append(LegalDate("L-11", f"signifier l'ordonnance d'injonction du {f.injunction_order:%d/%m/%Y} "
                                         "(non avenue après 6 mois)",
                                 forward(f.injunction_order, f.zone, months=SERVICE_LIMIT_MONTHS)))
    if f.default_judgment and not f.default_judgment_served:
        r.dates.append(LegalDate("L-12", f"signifier le jugement par défaut du {f.default_judgment:%d/%m/%Y} "
                                         "(non avenu après 6 mois)",
                                 forward(f.default_judgment, f.zone, months=SERVICE_LIMIT_MONTHS)))


def _eviction(f: Facts, r: LegalReport) -> None:
    """L-15: 2 months after the commandement de quitter; no physical eviction in the truce."""
    if f.eviction_order:
        leave_by = forward(f.eviction_order, f.zone, months=EVICTION_NOTICE_MONTHS)
        r.dates.append(LegalDate("L-15", "fin du délai de 2 mois pour quitter les lieux", leave_by))
    if f.eviction_planned and in_winter_truce(f.eviction_planned):
        reason = (f"expulsion prévue le {f.eviction_planned:%d/%m/%Y}, pendant la trêve hivernale "
                  f"(1er novembre – 31 mars) : pas d'expulsion physique avant le "
                  f"{truce_end(f.eviction_planned):%d/%m/%Y}")
        r.warnings.append(("L-15", reason))
        r.gates.append(Gate("L-15", "expulsion", reason))


def prescription(instalments: tuple[date, ...], interruptions: tuple[tuple[date, str], ...],
                 years: int) -> list[tuple[date, date]]:
    """L-16: each instalment expires ``years`` after its due date; an interrupting event
    (court claim, signed plan, enforcement act) before that starts the full period again."""
    expiries = []
    for due in sorted(instalments):
        expires = add_months(due, 12 * years)
        for on, _ in sorted(interruptions):
            if due <= on < expires:
                expires = add_months(on, 12 * years)
        expiries.append((due, expires))
    return expiries


def _prescription(f: Facts, r: LegalReport) -> None:
    if not f.instalments:
        return
    years = PRESCRIPTION_YEARS["commercial" if f.commercial else "residential"]
    r.expiries = prescription(f.instalments, f.interruptions, years)
    oldest = min(expires for _, expires in r.expiries)
    r.dates.append(LegalDate("L-16", f"première échéance prescrite ({years} ans, interruptions comprises)", oldest))
    if not f.interrupting_act_planned and f.today >= add_months(oldest, -PRESCRIPTION_WARNING_MONTHS):
        r.warnings.append(("L-16", f"la plus ancienne échéance impayée sera prescrite le {oldest:%d/%m/%Y} et aucun "
                                   "acte interruptif (assignation, injonction, plan signé, exécution) n'est prévu"))
