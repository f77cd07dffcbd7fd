"""Prevention of arrears, procedure P-1 … P-13: the monthly ledger, the runs of the 10th
(letters 1 and 2, phone follow-ups) and of the 17th (letter 3, hand-over to litigation),
the phase files, and repayment plans recorded on the follow-up tickets.

Durable and idempotent: the run is a row (one per month and kind); each tenant's letter
is recorded once its effects are done, and every effect is safe to repeat (the same
file rewritten, Redmine tickets by operation key, attachments by name), so a crashed run
is completed by the next one and never sends a letter twice.

Each tenant on his own (issue 15): Redmine refusing one tenant's call ticket, hand-over or
plan note (422: an assignee it cannot take, a value it will not store; a tracker or field
missing; a write it ignored) stops no other tenant. The refusal is recorded
(``prevention_refusals``), logged as a WARNING, named in the run's summary and in a note on
the run's phase-file ticket, and the call or hand-over is tried again at each daily check
of the month; the tenant's letter still goes. Redmine down (or refusing the service
itself) still stops the run, which the next check resumes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path


from app.calendar import add_months, paris_date
from app.context import Context
from app.effects import attach_once, digest, ensure_ticket, find_operation, note_once
from app.letters import DOCX, letter_docx, letters_docx
from app.litigation.flows import register_of
from app.prevention import service
from app.prevention.ledger import parse_ledger, read_rows
from app.prevention.models import (
    CaseEnd,
    DebtorKind,
    LedgerImport,
    PreventionCase,
    PreventionRun,
    RefusedStep,
    PreventionRefusal,
    RunKind,
)
from app.prevention.phases import (
    Arrears,
    debtor_kind,
    head_office_calls,
    phase_for,
    phone_sample,
    plan_allowed_balance,
    plan_eligible,
    plan_schedule,
    run_day,
)
from app.text import file_stem, spreadsheet_cell, subject_line
from integrations.redmine.interface import (
    Issue,
    NewIssue,
    RedmineRejected,
    RedmineWriteIgnored,
    SchemaMissing,
)

log = logging.getLogger(__name__)

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- import ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    ledger: LedgerImport
    already_loaded: bool
    rejects: list[str]


def import_ledger(ctx: Context, filename: str, content: bytes,
                  track: Callable[[Iterator], Iterable] = lambda rows: rows) -> ImportReport:
    """Load a ledger file: readable rows kept, the others reported by line; all or nothing
    in the database. The same file twice in a month is loaded once. ``track`` wraps the
    rows (a progress bar)."""
    digest = hashlib.sha256(content).hexdigest()
    period = f"{paris_date(ctx.clock.now()):%Y-%m}"
    known = service.find_import(ctx.db, period, digest)
    if known is not None:
        return ImportReport(known, True, known.rejects.splitlines())
    rows, rejects = parse_ledger(track(read_rows(content, ctx.settings.prevention)), ctx.settings.prevention)
    ledger = service.store_import(ctx.db, filename, period, digest, rows, rejects, ctx.clock.now())
    return ImportReport(ledger, False, [str(r) for r in rejects])


# --- runs --------------------------------------------------------------------------------
@dataclass
class RunReport:
    kind: RunKind
    run_on: date
    state: str  # "fait", "déjà fait", "en attente du grand livre du mois"
    letters: dict[int, int]  # phase → letters sent
    calls: int = 0
    handed_over: int = 0
    suspended: int = 0  # plans honoured
    closed: int = 0  # tenants who paid
    files: list[int] | None = None  # phase-file tickets
    refusals: list[PreventionRefusal] = field(default_factory=list)  # steps Redmine still refuses (issue 15)
    resolved: int = 0  # steps refused before, made by this pass

    def __str__(self) -> str:
        head = f"relance du {self.run_on:%d/%m/%Y} ({self.kind.value}) : {self.state}"
        refused = " ; ".join(f"{subject_line(r.tenant_ref)} ({_step_label(r)}) : {subject_line(r.message)}"
                             for r in self.refusals)
        if self.state == "déjà fait" and (self.refusals or self.resolved):  # a later check tried them again
            return (f"{head} — reprise des refus de Redmine : {self.resolved} fait(s) après refus, "
                    f"{len(self.refusals)} toujours refusé(s){f' : {refused}' if refused else ''}")
        if self.state != "fait":
            return head
        letters = ", ".join(f"lettre {p} × {n}" for p, n in sorted(self.letters.items())) or "aucune lettre"
        return (f"{head} — {letters}, {self.calls} appel(s), {self.handed_over} transmis au contentieux, "
                f"{self.suspended} plan(s) respecté(s), {self.closed} soldé(s), "
                + (f"{len(self.refusals)} refus de Redmine ({refused}), " if self.refusals else "")
                + f"fichiers : {', '.join(f'#{i}' for i in self.files or []) or 'aucun'}")


def _step_label(refusal: PreventionRefusal) -> str:
    return {RefusedStep.call: f"appel phase {refusal.phase}", RefusedStep.hand_over: "transmission au contentieux",
            RefusedStep.plan_note: "note de plan rompu"}[refusal.step]


def run_due(ctx: Context, on: date) -> list[RunReport]:
    """The runs of ``on``'s month due by ``on`` (P-4, P-6 the 10th; P-12 the 17th; the next
    working day when not one), each done once; a run waits for the month's ledger."""
    p = ctx.settings.prevention
    period = f"{on:%Y-%m}"
    reports = []
    for kind, day in ((RunKind.letters, p.letters_day), (RunKind.transfer, p.transfer_day)):
        scheduled = run_day(on.year, on.month, day, ctx.settings)
        if on < scheduled:
            continue
        run = service.get_run(ctx.db, period, kind)
        if run is not None and run.finished_at is not None:
            reports.append(_retry_done_run(ctx, run))
            continue
        ledger = service.latest_import(ctx.db, period, ctx.clock.now())
        if run is None and ledger is None:
            reports.append(RunReport(kind, scheduled, "en attente du grand livre du mois", {}))
            continue
        run = run or service.start_run(ctx.db, period, kind, scheduled, ledger.id, ctx.clock.now())
        reports.append(_run(ctx, run))
    return reports


def _run(ctx: Context, run: PreventionRun) -> RunReport:
    s = ctx.settings
    tenants = service.arrears(ctx.db, run.import_id)
    report = RunReport(run.kind, run.run_on, "fait", {})
    report.closed = len(service.close_paid(ctx.db, set(tenants), run.run_on))
    steps = _Steps(ctx, run)
    at_phase: list[tuple[Arrears, PreventionCase, int]] = []
    for tenant in sorted(tenants.values(), key=lambda t: t.tenant_ref):
        case = service.open_case(ctx.db, tenant.tenant_ref,
                                 lambda previous_end, t=tenant: debtor_kind(t.lease_start, previous_end, run.run_on, s),
                                 run.run_on)
        if case.end is CaseEnd.handed_over:
            continue  # followed by litigation now
        if _plan_suspends(ctx, steps, case, tenant, run.run_on):
            report.suspended += 1
            continue
        phase = phase_for(len(tenant.terms), run.kind)
        if phase is not None:
            at_phase.append((tenant, case, phase))

    # Drawn among all the run's phase-1 tenants: a resumed run draws the same ones.
    sampled = phone_sample([t.tenant_ref for t, _, phase in at_phase if phase == 1], s.prevention.phone_sample_size,
                           seed=f"{run.period}/{run.kind.value}")
    for tenant, case, phase in at_phase:
        # Recorded last, once every effect is done: a crash before it redoes them (each is
        # idempotent); recorded already (this run, or an earlier one for the same terms): skipped.
        # A step Redmine refuses is recorded as such and the letter still goes (issue 15).
        if service.letter_sent(ctx.db, tenant.tenant_ref, phase, tenant.terms_key) is None:
            _write_letter(ctx, run, tenant, phase)
            if phase == 2 or tenant.tenant_ref in sampled:  # P-6 every tenant, P-4 a random sample
                steps.attempt(case, tenant, phase, RefusedStep.call,
                              lambda: _call_ticket(ctx, run, tenant, case, phase))
        litigation = (steps.attempt(case, tenant, phase, RefusedStep.hand_over,
                                    lambda: _hand_over(ctx, run, tenant, case)) if phase == 3 else None)
        service.record_letter(ctx.db, run.id, case.id, tenant.tenant_ref, phase, tenant.terms_key,
                              str(_letter_path(ctx, run, tenant, phase)), ctx.clock.now())
        if litigation is not None:  # last: until then, a resumed run finds the case at phase 3 again
            service.update_case(ctx.db, case.id, end=CaseEnd.handed_over, litigation_issue_id=litigation.id)
    _retry_refused(ctx, run, steps)  # calls refused by an earlier attempt of this run, its letters recorded

    sent = service.run_letters(ctx.db, run.id)
    refusals = service.run_refusals(ctx.db, run.id)
    report.refusals = [r for r in refusals if r.resolved_at is None]
    report.resolved = steps.resolved
    report.letters = dict(Counter(letter.phase for letter, _ in sent))
    report.calls = (sum(1 for letter, _ in sent if letter.phase == 2 or letter.tenant_ref in sampled)
                    - sum(1 for r in report.refusals if r.step is RefusedStep.call))
    report.handed_over = (sum(1 for letter, _ in sent if letter.phase == 3)
                          - sum(1 for r in report.refusals if r.step is RefusedStep.hand_over))
    files = _phase_files(ctx, run, tenants)
    report.files = [ticket.id for ticket in files.values()]
    _note_refusals(ctx, run, files, refusals)
    service.finish_run(ctx.db, run.id, str(report), ctx.clock.now())
    return report


def _plan_suspends(ctx: Context, steps: _Steps, case: PreventionCase, tenant: Arrears, on: date) -> bool:
    """P-5: an accepted plan suspends the phases while honoured; the first missed instalment
    ends it (noted on its ticket) and the phases resume. The ledger decides: a note Redmine
    refuses (the plan's ticket deleted, moved) is reported, and the plan ends all the same."""
    if case.plan_accepted_on is None or case.plan_broken_on is not None:
        return False
    allowed = plan_allowed_balance(case.plan_start_balance, case.plan_months, case.plan_accepted_on, on)
    if tenant.balance <= allowed:
        return True
    steps.attempt(case, tenant, None, RefusedStep.plan_note, lambda: note_once(
        ctx, ctx.redmine.get_issue(case.plan_issue_id), f"P-5/plan-rompu/{case.plan_accepted_on}/{on}",
        ctx.render("prevention_plan_broken", on=on, balance=tenant.balance, allowed=allowed)) or True)
    service.update_case(ctx.db, case.id, plan_broken_on=on)
    return False


# --- issue 15: one tenant's refusal stops no other ------------------------------------------------
# What Redmine may refuse for one tenant: a 422 (an assignee it cannot take, a value it will
# not store), a tracker or field missing from the project, a write it ignored. Redmine down
# (RedmineUnavailable: no answer, 5xx, a claim held elsewhere) is not among them: it stops the run.
REFUSALS = (RedmineRejected, SchemaMissing, RedmineWriteIgnored)


@dataclass
class _Steps:
    """The Redmine steps of one pass over a run: each tenant's refusal caught for that
    tenant, recorded, logged; a step refused before and made now resolved."""

    ctx: Context
    run: PreventionRun
    pending: set[tuple[int, RefusedStep]] = field(init=False)  # refused, not made yet (any run): case, step
    tried: set[tuple[int, RefusedStep]] = field(default_factory=set)
    resolved: int = 0

    def __post_init__(self) -> None:
        self.pending = service.unresolved_refusals(self.ctx.db)

    def attempt(self, case: PreventionCase, tenant: Arrears, phase: int | None, step: RefusedStep,
                make: Callable[[], Issue | bool]) -> Issue | bool | None:
        """``make()``'s ticket (or True); None when Redmine refused it for this tenant."""
        ctx = self.ctx
        self.tried.add((case.id, step))
        try:
            made = make()
        except REFUSALS as exc:
            # Refused as a whole (key revoked, account locked) is no tenant's refusal: every
            # other tenant would be refused too. The ping raises then, and the run stops.
            ctx.redmine.ping()
            log.warning("relance du %s (%s) : %s refusé(e) par Redmine pour le locataire « %s » — %s",
                        f"{self.run.run_on:%d/%m/%Y}", self.run.kind.value, step.value,
                        subject_line(tenant.tenant_ref), exc)
            service.record_refusal(ctx.db, self.run.id, case.id, tenant.tenant_ref, phase, step, str(exc),
                                   ctx.clock.now())
            return None
        for fallback in ctx.refusals:  # made all the same, for another assignee: the ticket says why
            log.warning("relance du %s : %s — %s", f"{self.run.run_on:%d/%m/%Y}", fallback.what, fallback.reason)
        ctx.refusals.clear()
        if (case.id, step) in self.pending:
            service.resolve_refusals(ctx.db, case.id, step, made.id if isinstance(made, Issue) else None,
                                     ctx.clock.now())
            self.pending.discard((case.id, step))
            self.resolved += 1
        return made


def _retry_refused(ctx: Context, run: PreventionRun, steps: _Steps) -> tuple[int, int]:
    """The calls and hand-overs of the run that Redmine refused and this pass has not tried
    yet, tried again: (calls, hand-overs) made. One no longer needed (the tenant has paid,
    or a later run handed him over) is resolved without a ticket."""
    todo = [r for r in service.run_refusals(ctx.db, run.id) if r.resolved_at is None
            and r.step is not RefusedStep.plan_note and (r.case_id, r.step) not in steps.tried]
    if not todo:
        return 0, 0
    tenants = service.arrears(ctx.db, run.import_id)
    calls = hand_overs = 0
    for refusal in todo:
        case = service.get_case(ctx.db, refusal.case_id)
        tenant = tenants.get(refusal.tenant_ref)
        if tenant is None or case.closed_on is not None or case.end is CaseEnd.handed_over:
            service.resolve_refusals(ctx.db, case.id, refusal.step, None, ctx.clock.now())
        elif refusal.step is RefusedStep.call:
            phase = refusal.phase
            calls += steps.attempt(case, tenant, phase, RefusedStep.call,
                                   lambda: _call_ticket(ctx, run, tenant, case, phase)) is not None
        else:
            litigation = steps.attempt(case, tenant, refusal.phase, RefusedStep.hand_over,
                                       lambda: _hand_over(ctx, run, tenant, case))
            if litigation is not None:
                service.update_case(ctx.db, case.id, end=CaseEnd.handed_over, litigation_issue_id=litigation.id)
                hand_overs += 1
    return calls, hand_overs


def _retry_done_run(ctx: Context, run: PreventionRun) -> RunReport:
    """A run done: what Redmine refused in it is tried again (each daily check, until the
    month ends); once some is made, a note on the run's phase file says so."""
    report = RunReport(run.kind, run.run_on, "déjà fait", {})
    if not any(r.resolved_at is None for r in service.run_refusals(ctx.db, run.id)):
        return report
    steps = _Steps(ctx, run)
    report.calls, report.handed_over = _retry_refused(ctx, run, steps)
    refusals = service.run_refusals(ctx.db, run.id)
    report.refusals = [r for r in refusals if r.resolved_at is None]
    report.resolved = steps.resolved
    if steps.resolved:
        _note_refusals(ctx, run, _existing_phase_files(ctx, run), refusals)
    return report


def _note_refusals(ctx: Context, run: PreventionRun, files: dict[int, Issue], refusals: list[PreventionRefusal]) -> None:
    """One French note per phase-file ticket: its phase's refusals — the tenant's reference
    only, what Redmine refused and why, what to do — and those made since. A refusal without
    a file of its phase in the run (a plan note) goes on the run's first file; with no file
    at all (a run that sent no letter), it is logged as an ERROR and stays in the summary.
    Keyed by the run and the refusals' state: posted once for each new state."""
    by_file: dict[int, list[PreventionRefusal]] = {}
    for refusal in refusals:
        phase = refusal.phase if refusal.phase in files else min(files, default=None)
        if phase is None:
            if refusal.resolved_at is None:
                log.error("relance du %s (%s) : aucun ticket Fichier de relance pour signaler le refus de Redmine "
                          "(%s, locataire « %s ») — %s", f"{run.run_on:%d/%m/%Y}", run.kind.value, refusal.step.value,
                          subject_line(refusal.tenant_ref), refusal.message)
            continue
        by_file.setdefault(phase, []).append(refusal)
    for phase, group in sorted(by_file.items()):
        key = f"P-7/refus/{run.period}/{run.kind.value}/" + digest(
            *[(r.tenant_ref, r.step.value, r.message, r.resolved_at is None, r.issue_id) for r in group])
        refused = [r for r in group if r.resolved_at is None]
        note_once(ctx, ctx.redmine.get_issue(files[phase].id), key, ctx.render(
            "prevention_refusals", today=run.run_on, refused=refused, done=[r for r in group if r.resolved_at],
            steps={r.step.value for r in refused}))


def _existing_phase_files(ctx: Context, run: PreventionRun) -> dict[int, Issue]:
    """The phase-file tickets a finished run made."""
    tracker = ctx.settings.trackers.prevention_file
    files = {}
    for phase in sorted({letter.phase for letter, _ in service.run_letters(ctx.db, run.id)}):
        found = find_operation(ctx, tracker, _file_key(run, phase))
        if found:
            files[phase] = found[0]
    return files


# --- what a tenant gets --------------------------------------------------------------------
def _run_dir(ctx: Context, run: PreventionRun) -> Path:
    return ctx.settings.prevention.output_dir / run.period / run.kind.value


def _letter_context(ctx: Context, tenant: Arrears, run: PreventionRun) -> dict:
    s = ctx.settings
    return dict(tenant=tenant, today=run.run_on, plan=plan_eligible(tenant.balance, s),
                plan_months=s.prevention.plan_max_months, social_group=s.routing.social_litigation_group,
                adviser=s.routing.sector_advisers.get(tenant.sector))


def _letter_path(ctx: Context, run: PreventionRun, tenant: Arrears, phase: int) -> Path:
    return _run_dir(ctx, run) / f"phase-{phase}" / f"relance-{phase}-{file_stem(tenant.tenant_ref)}.docx"


def _write_letter(ctx: Context, run: PreventionRun, tenant: Arrears, phase: int) -> Path:
    """The tenant's letter, as a file of the run (rewritten identically after a crash)."""
    path = _letter_path(ctx, run, tenant, phase)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(letter_docx(f"relance_{phase}", **_letter_context(ctx, tenant, run)))
    return path


def _call_assignee(ctx: Context, tenant: Arrears, kind: DebtorKind) -> tuple[int | None, bool]:
    """P-3: new entrants to their agency; P-6: the others shared between head office and the
    agencies. An agency unknown to the configuration: head office (and the ticket says so)."""
    r = ctx.settings.routing
    agency_known = tenant.agency in r.agencies
    if kind is not DebtorKind.new_entrant and head_office_calls(tenant.tenant_ref, ctx.settings.prevention.head_office_share):
        return ctx.principal(r.prevention_group), False
    if agency_known:
        return ctx.principal(tenant.agency), False
    return ctx.principal(r.prevention_group), True


def _call_ticket(ctx: Context, run: PreventionRun, tenant: Arrears, case: PreventionCase, phase: int) -> Issue:
    s = ctx.settings
    f, v = s.fields, s.values
    eligible = plan_eligible(tenant.balance, s)
    schedule = plan_schedule(tenant.balance, s.prevention.plan_max_months, run.run_on) if eligible else []
    assignee, unrouted = _call_assignee(ctx, tenant, case.kind)
    kinds = {DebtorKind.new_entrant: v.kind_new_entrant, DebtorKind.accidental: v.kind_accidental,
             DebtorKind.recidivist: v.kind_recidivist}
    proposal = "\n".join(f"{i.due_date:%d/%m/%Y} : {i.amount} €" for i in schedule)
    ticket, _ = ensure_ticket(ctx, f"P-{4 if phase == 1 else 6}/appel/{tenant.tenant_ref}/{tenant.terms_key[:16]}",
                              NewIssue(
        tracker=s.trackers.prevention_reminder,
        subject=f"Relance téléphonique phase {phase} — {tenant.name} ({tenant.tenant_ref})",
        description=ctx.render("prevention_call", phase=phase, today=run.run_on, tenant=tenant, kind=case.kind.value,
                               schedule=schedule, accepted_field=f.plan_accepted_date, months_field=f.plan_months,
                               adviser=s.routing.sector_advisers.get(tenant.sector), unrouted=unrouted,
                               fallback=s.routing.prevention_group),
        assigned_to_id=assignee,
        custom_fields={k: val for k, val in {
            f.tenant_ref: tenant.tenant_ref, f.owner_ref: tenant.owner_ref, f.mandate_number: tenant.mandate_number,
            f.phone: tenant.phone, f.balance: str(tenant.balance), f.unpaid_terms: str(len(tenant.terms)),
            f.reminder_phase: str(phase), f.debtor_kind: kinds[case.kind], f.plan_eligible: "1" if eligible else "0",
            f.plan_proposal: proposal}.items() if val}))
    return ticket


def _hand_over(ctx: Context, run: PreventionRun, tenant: Arrears, case: PreventionCase) -> Issue:
    """P-10, P-12 → C-3: a Contentieux ticket filled from the ledger, under the mandate
    register when the lot is under mandate; the litigation flow takes it from there."""
    s = ctx.settings
    f = s.fields
    register = register_of(ctx, tenant.mandate_number) if tenant.mandate_number else None
    values = {f.mandate_number: tenant.mandate_number, f.tenant_ref: tenant.tenant_ref, f.owner_ref: tenant.owner_ref,
              f.debtors: f"{tenant.name} ; locataire", f.tenant_in_premises: "1", f.debt_amount: str(tenant.balance),
              f.last_unpaid_date: tenant.terms[-1].due_date.isoformat()}
    ticket, _ = ensure_ticket(ctx, f"P-12/contentieux/{tenant.tenant_ref}/{case.opened_on}", NewIssue(
        tracker=s.trackers.litigation,
        subject=f"Impayés {tenant.name} ({tenant.tenant_ref}) — transmis par la prévention",
        description=ctx.render("prevention_handover", today=run.run_on, opened_on=case.opened_on, kind=case.kind.value,
                               tenant=tenant, adviser=s.routing.sector_advisers.get(tenant.sector)),
        parent_id=register.id if register else None,
        assigned_to_id=ctx.principal(s.routing.social_litigation_group),
        custom_fields={k: val for k, val in values.items() if val}))
    return ticket


# --- P-7 … P-10: the phase files -------------------------------------------------------------
FILE_COLUMNS = ["Réf. locataire", "Nom", "Lot", "Agence", "Secteur", "Téléphone", "Type de débiteur",
                "Termes impayés", "Échéances impayées", "Solde dû", "Plan d'apurement possible"]


def _file_key(run: PreventionRun, phase: int) -> str:
    return f"P-7/fichier/{run.period}/{phase}"


def _phase_files(ctx: Context, run: PreventionRun, tenants: dict[str, Arrears]) -> dict[int, Issue]:
    """One ``Fichier de relance`` ticket per phase of the run: the list (CSV and Excel) and
    the merged letters, for its recipients. Every tenant with a letter is listed, his call
    or hand-over refused by Redmine or not (issue 15)."""
    s = ctx.settings
    r = s.routing
    recipients = {1: r.prevention_group, 2: r.cesf_group, 3: r.social_litigation_group}  # P-7/P-8, P-9, P-10
    by_phase: dict[int, list] = {}
    for letter, kind in service.run_letters(ctx.db, run.id):
        by_phase.setdefault(letter.phase, []).append((tenants[letter.tenant_ref], kind))
    made = {}
    for phase, rows in sorted(by_phase.items()):
        stem = f"relance-phase-{phase}-{run.period}"
        files = {f"{stem}.csv": (_csv(ctx, rows), CSV), f"{stem}.xlsx": (_xlsx(ctx, rows), XLSX),
                 f"{stem}-lettres.docx": (letters_docx([(f"relance_{phase}", _letter_context(ctx, t, run))
                                                        for t, _ in rows]), DOCX)}
        for name, (content, _) in files.items():
            (_run_dir(ctx, run) / name).write_bytes(content)
        ticket, created = ensure_ticket(ctx, _file_key(run, phase), NewIssue(
            tracker=s.trackers.prevention_file,
            subject=f"Fichier de relance phase {phase} — {run.period} ({len(rows)} locataire(s))",
            description=ctx.render("prevention_file", phase=phase, period=run.period, count=len(rows), today=run.run_on,
                                   csv=f"{stem}.csv", xlsx=f"{stem}.xlsx", letters=f"{stem}-lettres.docx",
                                   reference_until=add_months(run.run_on, s.prevention.reference_months)),
            assigned_to_id=ctx.principal(recipients[phase])))
        if not created:  # found by a search (a resumed run), which gives no attachments: read it
            ticket = ctx.redmine.get_issue(ticket.id)
        for name, (content, content_type) in files.items():
            attach_once(ctx, ticket, name, content, content_type, f"Fichier {name} (règles P-7 … P-10).")
        made[phase] = ticket
    return made


def _table(ctx: Context, rows: list[tuple[Arrears, DebtorKind]]) -> list[list]:
    """The phase file's rows: texts as :func:`app.text.spreadsheet_cell` (no formula, no
    bidirectional control), numbers as numbers."""
    return [[spreadsheet_cell(tenant.tenant_ref), spreadsheet_cell(tenant.name), spreadsheet_cell(tenant.lot),
             spreadsheet_cell(tenant.agency), spreadsheet_cell(tenant.sector), spreadsheet_cell(tenant.phone),
             kind.value, len(tenant.terms), " ".join(f"{t.due_date:%d/%m/%Y}" for t in tenant.terms), tenant.balance,
             "oui" if plan_eligible(tenant.balance, ctx.settings) else "non"] for tenant, kind in rows]


def _csv(ctx: Context, rows: list[tuple[Arrears, DebtorKind]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(FILE_COLUMNS)
    for row in _table(ctx, rows):
        writer.writerow([str(v).replace(".", ",") if isinstance(v, Decimal) else v for v in row])
    return out.getvalue().encode("utf-8-sig")  # Excel (French) opens it as is


def _xlsx(ctx: Context, rows: list[tuple[Arrears, DebtorKind]]) -> bytes:
    from openpyxl import Workbook  # here: every CLI command would pay for its import

    book = Workbook()
    sheet = book.active
    sheet.title = "Impayés"
    sheet.append(FILE_COLUMNS)
    for row in _table(ctx, rows):
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- P-5: a plan recorded on a follow-up ticket ---------------------------------------------
def reconcile_reminder_ticket(ctx: Context, issue: Issue) -> list[str]:
    """``Plan accepté le`` on a Relance impayés ticket: the plan is checked (500 € or more,
    6 monthly instalments at most), recorded on the tenant's case and its schedule noted."""
    s = ctx.settings
    f = s.fields
    issue.require_fields(f.tenant_ref, f.plan_accepted_date, f.plan_months, f.balance)
    accepted_on = issue.date_field(f.plan_accepted_date)
    if accepted_on is None:
        return []
    case = service.open_cases(ctx.db).get(issue.field(f.tenant_ref))
    balance = issue.decimal_field(f.balance)
    balance = balance.quantize(Decimal("0.01")) if balance is not None else None
    months_text = issue.field(f.plan_months)
    months = int(months_text) if months_text.isdigit() else s.prevention.plan_max_months
    reason = None
    if case is None:
        reason = f"aucun dossier de prévention en cours pour le locataire « {issue.field(f.tenant_ref)} »"
    elif balance is None or not plan_eligible(balance, s):
        reason = f"dette inférieure à {s.prevention.plan_threshold_eur} €"
    elif not 1 <= months <= s.prevention.plan_max_months:
        reason = f"{months} mensualités demandées, {s.prevention.plan_max_months} au plus"
    key = f"P-5/plan/{accepted_on}/{months}"
    if reason:
        note_once(ctx, issue, key, ctx.render("prevention_plan_refused", reason=reason))
        return [f"plan d'apurement refusé : {reason}"]
    if case.plan_issue_id != issue.id or case.plan_accepted_on != accepted_on or case.plan_months != months:
        service.update_case(ctx.db, case.id, plan_issue_id=issue.id, plan_accepted_on=accepted_on, plan_months=months,
                            plan_start_balance=balance, plan_broken_on=None)
    schedule = plan_schedule(balance, months, accepted_on)
    if note_once(ctx, issue, key, ctx.render("prevention_plan_recorded", accepted_on=accepted_on, schedule=schedule,
                                             balance=balance)):
        return [f"plan d'apurement du {accepted_on:%d/%m/%Y} enregistré ({months} mensualités)"]
    return []
