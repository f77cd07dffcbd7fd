"""A fee cancellation request (``Annulation frais`` ticket) read as the procedure sees it,
rules C-33 … C-37. Nothing here writes to Redmine: the flows call these functions.

Two rounds, each a "first request" with its own 8-working-day delay (C-35, C-37):
- ``contentieux``: litigation decides; the clock starts the day the request is justified
  (the ticket's creation, or the day the missing justification was added);
- ``dg``: after a refusal, the gestionnaire ticks ``Escalade DG`` and writes a new
  ``Justification``; the DG decides; the clock starts the day both are there. The round
  begins when the service has posted its escalation note (``ESCALATION_KEY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from app.calendar import add_working_days, paris_date
from app.config import Settings
from app.effects import note_journal
from app.history import first_change_at_or_after, held_since, last_became_true, last_journal_changing, rewind
from integrations.redmine.interface import Issue

TITLE = "DEMANDE D'ANNULATION FRAIS dossier {tenant}/{owner}"  # C-33
_TITLE_REFS = re.compile(r"^DEMANDE D'ANNULATION FRAIS dossier (?P<tenant>[^/ ]+) ?/ ?(?P<owner>[^/ ]+)$")
ESCALATION_KEY = "C-37/escalade-dg"

CONTENTIEUX = "contentieux"
DG = "dg"


def normalise_title(subject: str) -> str:
    """Spaces collapsed and the typographic apostrophe made straight; case is kept."""
    return " ".join(subject.replace("\u2019", "'").split())


@dataclass(frozen=True)
class FeeCancellation:
    issue_id: int
    author_id: int
    subject: str
    tenant_ref: str
    owner_ref: str
    justification: str
    decision: str
    reason: str
    escalated: bool

    @property
    def expected_title(self) -> str | None:
        """The title C-33 asks for; None while a reference is unknown."""
        if not (self.tenant_ref and self.owner_ref):
            return None
        return TITLE.format(tenant=self.tenant_ref, owner=self.owner_ref)

    def problems(self, settings: Settings) -> list[str]:
        """What the gestionnaire must correct, in French; the justification alone stops the
        clock (C-34), a title or a reference is corrected without delaying the answer."""
        f = settings.fields
        found = []
        if not self.tenant_ref or not self.owner_ref:
            missing = [n for n, v in ((f.tenant_ref, self.tenant_ref), (f.owner_ref, self.owner_ref)) if not v]
            found.append(f"renseigner {' et '.join(f'« {n} »' for n in missing)}")
        elif normalise_title(self.subject) != self.expected_title:
            found.append(f"titre attendu (règle C-33) : « {self.expected_title} »")
        if not self.justification:
            found.append(f"justifier la demande dans le champ « {f.justification} » ou la description "
                         "(traitement comptable retardé, défense du portefeuille, accord avec le débiteur…)")
        return found


def refs_of(issue: Issue, settings: Settings) -> tuple[str, str]:
    """Tenant and owner references: the fields, else the ones written in the title."""
    f = settings.fields
    refs = _TITLE_REFS.match(normalise_title(issue.subject))
    return (issue.field(f.tenant_ref) or (refs["tenant"] if refs else ""),
            issue.field(f.owner_ref) or (refs["owner"] if refs else ""))


def read_request(issue: Issue, settings: Settings, litigation: Issue | None) -> FeeCancellation:
    """The request; the owner of the tenant's litigation file wins over a different owner
    reference typed by hand (the title must carry the real references, C-33)."""
    f = settings.fields
    tenant, owner = refs_of(issue, settings)
    if litigation is not None and litigation.field(f.owner_ref):
        owner = litigation.field(f.owner_ref)
    return FeeCancellation(
        issue_id=issue.id,
        author_id=issue.author_id,
        subject=issue.subject,
        tenant_ref=tenant,
        owner_ref=owner,
        justification=justification_of(issue, settings),
        decision=issue.field(f.decision),
        reason=issue.field(f.decision_reason),
        escalated=issue.field(f.dg_escalation) == "1",
    )


def justification_of(issue: Issue, settings: Settings) -> str:
    return issue.field(settings.fields.justification) or issue.description.strip()


def decision_due_on(received_on: date, settings: Settings) -> date:
    """C-35: the 8th working day after the day of reception (that day does not count)."""
    d = settings.deadlines
    return add_working_days(received_on, d.decision_working_days, d.office_zone, d.whit_monday_is_holiday)


# --- when each round's clock started -----------------------------------------------------
def justified_at(issue: Issue, settings: Settings) -> datetime | None:
    """C-34/C-35: since when the request carries a justification (field or description)."""
    f = settings.fields
    return held_since(issue, [f.justification, "description"], lambda v: bool(v[f.justification] or v["description"]))


def refused_at(issue: Issue, settings: Settings) -> datetime | None:
    f, refused = settings.fields, settings.values.decision_refused
    return last_became_true(issue, [f.decision], lambda v: v[f.decision] == refused)


def escalated_at(issue: Issue, settings: Settings) -> datetime | None:
    """C-37: the instant an escalation is complete: a refusal, then ``Escalade DG`` ticked
    and the ``Justification`` rewritten after that refusal (the later of the two)."""
    f = settings.fields
    refusal = refused_at(issue, settings)
    flagged = held_since(issue, [f.dg_escalation], lambda v: v[f.dg_escalation] == "1")
    if refusal is None or flagged is None or not issue.field(f.justification):
        return None
    rewritten = first_change_at_or_after(issue, f.justification, refusal)
    return max(flagged, rewritten) if rewritten else None


@dataclass(frozen=True)
class Round:
    name: str  # CONTENTIEUX or DG
    started_at: datetime | None  # None: the request is not justified yet

    @property
    def received_on(self) -> date | None:
        return paris_date(self.started_at) if self.started_at else None


def current_round(issue: Issue, settings: Settings) -> Round:
    escalation = note_journal(issue, ESCALATION_KEY)
    if escalation is None:
        return Round(CONTENTIEUX, justified_at(issue, settings))
    # Computed on the ticket as the escalation found it: the DG's own decision later on
    # must not move the start of the DG's delay.
    return Round(DG, escalated_at(rewind(issue, escalation.id), settings))


def decided_at(issue: Issue, settings: Settings) -> datetime | None:
    """When the current ``Décision`` value was set (keys one note per decision)."""
    f = settings.fields
    current = issue.field(f.decision)
    return last_became_true(issue, [f.decision], lambda v: v[f.decision] == current) if current else None


def decided_by(issue: Issue, settings: Settings) -> int | None:
    """Who set the current ``Décision``: the author of the journal that set it, or the
    ticket's author when it was set at creation."""
    f = settings.fields
    if not issue.field(f.decision):
        return None
    journal = last_journal_changing(issue, f.decision)
    return journal.user_id if journal else issue.author_id
