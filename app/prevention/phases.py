"""The rules of prevention, pure (P-1 … P-7): run days, phases by terms, kinds of debtors,
who calls whom, repayment plans. The flows read the store and Redmine and call these.
"""

from __future__ import annotations

import calendar as _calendar
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

from app.calendar import add_months, next_working_day
from app.config import Settings
from app.prevention.ledger import Tenant
from app.prevention.models import DebtorKind, RunKind


@dataclass(frozen=True)
class Term:
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class Arrears(Tenant):
    """A tenant as the ledger shows him: who he is, and his unpaid terms."""

    terms: tuple[Term, ...]

    @property
    def balance(self) -> Decimal:
        return sum((t.amount for t in self.terms), Decimal("0.00"))

    @property
    def terms_key(self) -> str:
        """The unpaid terms, as one key: the same letter never goes twice for the same terms."""
        raw = ",".join(sorted(t.due_date.isoformat() for t in self.terms))
        return hashlib.sha256(raw.encode()).hexdigest()


def run_day(year: int, month: int, day: int, settings: Settings) -> date:
    """P-4, P-6, P-12: the day of the month, or the next working day when it is not one."""
    d = settings.deadlines
    last = _calendar.monthrange(year, month)[1]
    return next_working_day(date(year, month, min(day, last)), d.office_zone, d.whit_monday_is_holiday)


def phase_for(terms: int, kind: RunKind) -> int | None:
    """P-1: by the number of unpaid terms, never the amount. The 10th: 1 term → letter 1
    (P-4), 2 terms → letter 2 (P-6); the 17th: 3 terms or more → letter 3 (P-12)."""
    if kind is RunKind.letters:
        return terms if terms in (1, 2) else None
    return 3 if terms >= 3 else None


def debtor_kind(lease_start: date | None, previous_end: date | None, on: date, settings: Settings) -> DebtorKind:
    """P-2: a new entrant's lease started less than ``new_entrant_months`` before ``on``; a
    recidivist's previous arrears episode ended ``recidivist_months`` before or later; the
    others are accidental. A new entrant who is also a recidivist is a new entrant (P-3)."""
    p = settings.prevention
    if lease_start is not None and lease_start > add_months(on, -p.new_entrant_months):
        return DebtorKind.new_entrant
    if previous_end is not None and previous_end >= add_months(on, -p.recidivist_months):
        return DebtorKind.recidivist
    return DebtorKind.accidental


def phone_sample(tenant_refs: Iterable[str], size: int, seed: str) -> set[str]:
    """P-4: the phase-1 tenants called, drawn at random; the same run draws the same ones."""
    population = sorted(set(tenant_refs))
    return set(random.Random(seed).sample(population, min(size, len(population))))


def head_office_calls(tenant_ref: str, share: float) -> bool:
    """P-6: whether head office (rather than the agency) makes this tenant's calls; a stable
    draw by reference, so a tenant keeps the same caller from month to month."""
    draw = int(hashlib.sha256(tenant_ref.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return draw < share


@dataclass(frozen=True)
class Instalment:
    due_date: date
    amount: Decimal


def plan_eligible(balance: Decimal, settings: Settings) -> bool:
    """P-5: a repayment plan for a debt of 500 € or more."""
    return balance >= settings.prevention.plan_threshold_eur


def plan_schedule(balance: Decimal, months: int, start: date) -> list[Instalment]:
    """Equal monthly instalments from one month after ``start`` (the last one takes the
    cents left), months clamped to month ends."""
    base = (balance / months).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    amounts = [base] * (months - 1) + [balance - base * (months - 1)]
    return [Instalment(add_months(start, i + 1), amount) for i, amount in enumerate(amounts)]


def plan_allowed_balance(start_balance: Decimal, months: int, accepted_on: date, on: date) -> Decimal:
    """P-5: the highest balance an honoured plan leaves at ``on``: the starting balance less
    every instalment due by then (new rents must be paid too)."""
    due = [i for i in plan_schedule(start_balance, months, accepted_on) if i.due_date <= on]
    return start_balance - sum((i.amount for i in due), Decimal("0.00"))
