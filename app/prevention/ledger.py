"""Reading the arrears ledger exported each month by the rent-accounting system (pure).

One CSV row per unpaid term, the tenant's columns repeated (names in
``Settings.prevention.columns``). A row that cannot be read is reported with its line
number and the reason; the others are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import String

from app.config import Prevention
from app.prevention.models import LedgerLine


class LedgerFileError(ValueError):
    """The file as a whole cannot be read (encoding, missing columns): nothing is loaded."""


@dataclass(frozen=True)
class Tenant:
    """Who the tenant is, as the ledger repeats it on each of his rows."""

    tenant_ref: str
    name: str
    lot: str
    agency: str
    sector: str
    lease_start: date | None
    phone: str
    mandate_number: str
    owner_ref: str


@dataclass(frozen=True)
class LedgerRow(Tenant):
    """One unpaid term of a tenant."""

    line_no: int
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class Reject:
    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"ligne {self.line_no} : {self.reason}"


REQUIRED = ("tenant_ref", "name", "due_date", "amount")


def parse_date(text: str) -> date:
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise ValueError(f"date illisible « {text} » (JJ/MM/AAAA attendu)")


def parse_amount(text: str) -> Decimal:
    cleaned = text.replace("€", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace(",", ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"montant illisible « {text.strip()} »") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"montant « {text.strip()} » : un montant impayé positif est attendu")
    return amount.quantize(Decimal("0.01"))


def read_rows(content: bytes, config: Prevention) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row by column role) for each data row; LedgerFileError when the file
    cannot be decoded or lacks a required column."""
    try:
        text = content.decode(config.encoding)
    except UnicodeDecodeError as exc:
        raise LedgerFileError(f"fichier illisible en {config.encoding} (octet {exc.start})") from None
    reader = csv.reader(io.StringIO(text), delimiter=config.delimiter)
    header = [h.strip() for h in next(reader, [])]
    roles = config.columns.model_dump()
    missing = [roles[r] for r in REQUIRED if roles[r] not in header]
    if missing:
        raise LedgerFileError(f"colonne(s) absente(s) de l'en-tête : {', '.join(missing)} "
                              f"(séparateur « {config.delimiter} », noms dans prevention.columns)")
    index = {role: header.index(name) for role, name in roles.items() if name in header}
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        row = {role: (values[i].strip() if i < len(values) else "") for role, i in index.items()}
        yield reader.line_num, row


# The longest value the store keeps of each column (app/prevention/models.py): a longer one
# rejects its row, by line, like any unreadable value (PostgreSQL would refuse the whole file).
MAX_LENGTHS = {column.name: column.type.length for column in LedgerLine.__table__.columns
               if isinstance(column.type, String) and column.name != "import_id"}


def parse_row(line_no: int, row: dict[str, str], columns: dict[str, str]) -> LedgerRow:
    for role in REQUIRED:
        if not row.get(role):
            raise ValueError(f"colonne « {columns[role]} » vide")
    for role, value in row.items():
        if role in MAX_LENGTHS and len(value) > MAX_LENGTHS[role]:
            raise ValueError(f"colonne « {columns[role]} » trop longue : {MAX_LENGTHS[role]} caractères au plus")
    lease = row.get("lease_start", "")
    return LedgerRow(
        line_no=line_no,
        tenant_ref=row["tenant_ref"],
        name=row["name"],
        lot=row.get("lot", ""),
        agency=row.get("agency", ""),
        sector=row.get("sector", ""),
        lease_start=parse_date(lease) if lease else None,
        phone=row.get("phone", ""),
        mandate_number=row.get("mandate_number", ""),
        owner_ref=row.get("owner_ref", ""),
        due_date=parse_date(row["due_date"]),
        amount=parse_amount(row["amount"]),
    )


def parse_ledger(rows: Iterable[tuple[int, dict[str, str]]], config: Prevention) -> tuple[list[LedgerRow], list[Reject]]:
    loaded: list[LedgerRow] = []
    rejects: list[Reject] = []
    seen: set[tuple[str, date]] = set()
    for line_no, row in rows:
        try:
            parsed = parse_row(line_no, row, config.columns.model_dump())
        except ValueError as exc:
            rejects.append(Reject(line_no, str(exc)))
            continue
        if (parsed.tenant_ref, parsed.due_date) in seen:  # P-1: a term counts once
            rejects.append(Reject(line_no, f"échéance du {parsed.due_date:%d/%m/%Y} déjà présente pour "
                                           f"{parsed.tenant_ref}"))
            continue
        seen.add((parsed.tenant_ref, parsed.due_date))
        loaded.append(parsed)
    return loaded, rejects
