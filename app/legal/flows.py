"""The legal watch on Redmine: the "Contrôle légal" of each litigation ticket kept up to
date (one field, rewritten only when it changes), the gates that hold an automated step,
their recorded overrides, and the CAF report task (L-8).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from app.calendar import Zone, paris_date
from app.context import Context
from app.effects import on_its_own, digest, ensure_ticket, find_operation, note_once
from app.history import last_journal_changing
from app.legal.rules import SOURCES, Facts, Gate, LegalReport, check
from app.litigation.case import PartyRole, parse_debtors
from app.litigation.flows import gestionnaire_of, register_of
from app.prevention import service as prevention
from app.templates import render_plain
from integrations.redmine.interface import Issue, NewIssue

TEMPLATES = Path(__file__).resolve().parents[2] / "ticket_templates"


def zone_of(ctx: Context, litigation: Issue) -> Zone:
    """L-7: the property's calendar zone (metropole when not given)."""
    return ctx.settings.values.zones.get(litigation.field(ctx.settings.fields.calendar_zone), Zone.metropole)


@lru_cache(maxsize=1)
def template_problems() -> tuple[str, ...]:
    """L-0: a text that names the "huissier" without the current name, or more than once."""
    problems = []
    for path in sorted(TEMPLATES.rglob("*.j2")):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S).lower()
        if text.count("huissier") > 1 or ("huissier" in text and "commissaire de justice" not in text):
            problems.append(f"modèle {path.relative_to(TEMPLATES)} : « huissier » au lieu de « commissaire de justice »")
    return tuple(problems)


def facts_of(ctx: Context, litigation: Issue) -> Facts:
    """What the law's check needs, from the ticket, its sub-tickets and the prevention store."""
    s = ctx.settings
    f, t, v = s.fields, s.trackers, s.values
    today = paris_date(ctx.clock.now())
    children = [ctx.redmine.get_issue(c.id) for c in litigation.children
                if c.tracker in (t.assignation, t.injunction, t.fee_cancellation)]
    titles = [c for c in children if c.tracker in (t.assignation, t.injunction)]
    executions = [ctx.redmine.get_issue(c.id) for title in titles for c in title.children
                  if c.tracker in (t.execution, t.eviction)]
    injunction = next((c for c in titles if c.tracker == t.injunction), None)
    default = next((c for c in titles if c.tracker == t.assignation and c.field(f.default_judgment) == "1"), None)
    eviction = next((c for c in executions if c.tracker == t.eviction), None)
    debt = litigation.decimal_field(f.debt_amount)
    rent = litigation.decimal_field(f.monthly_rent)
    instalments, constituted, plan_on = _ledger_facts(ctx, litigation, rent)

    interruptions = [(paris_date(c.created_on), c.tracker) for c in titles]
    interruptions += [(paris_date(c.created_on), c.tracker) for c in executions if c.tracker == t.execution]
    if plan_on:
        interruptions.append((plan_on, "plan d'apurement signé"))
    parties, _ = parse_debtors(litigation.field(f.debtors))
    over_ceiling = debt is not None and debt > s.procedure.injunction_ceiling_eur
    return Facts(
        today=today,
        zone=zone_of(ctx, litigation),
        commercial=litigation.field(f.lease_type) == v.lease_commercial,
        lease_date=litigation.date_field(f.lease_date),
        clause_delay=litigation.field(f.clause_delay),
        service_date=litigation.date_field(f.service_date),
        guarantors=any(p.role is PartyRole.guarantor for p in parties),
        guarantor_served=litigation.date_field(f.guarantor_served_date),
        hearing=litigation.date_field(f.hearing_date),
        prefect_notified=litigation.date_field(f.prefect_notice_date),
        legal_person_landlord=litigation.field(f.legal_person_landlord) == "1",
        ccapex_date=litigation.date_field(f.ccapex_date),
        assignation_on=min((paris_date(c.created_on) for c in titles if c.tracker == t.assignation), default=None),
        monthly_rent=rent,
        debt=debt,
        debt_constituted_on=constituted or (paris_date(litigation.created_on) if debt and rent and debt >= 2 * rent
                                            else None),
        reminder_fee_requests=any(c.tracker == t.fee_cancellation for c in children),
        injunction_refused_over_ceiling=over_ceiling and injunction is None and bool(titles),
        injunction_order=injunction.date_field(f.judgment_date) if injunction else None,
        injunction_served=injunction.date_field(f.judgment_service_date) if injunction else None,
        default_judgment=default.date_field(f.judgment_date) if default else None,
        default_judgment_served=default.date_field(f.judgment_service_date) if default else None,
        eviction_order=eviction.date_field(f.eviction_order_date) if eviction else None,
        eviction_planned=eviction.date_field(f.eviction_planned_date) if eviction else None,
        instalments=instalments or tuple(d for d in [litigation.date_field(f.last_unpaid_date)] if d),
        interruptions=tuple(sorted(interruptions)),
        interrupting_act_planned=any(not c.closed for c in titles + executions),
        template_problems=template_problems(),
    )


def _ledger_facts(ctx: Context, litigation: Issue, rent: Decimal | None) -> tuple[tuple[date, ...], date | None,
                                                                                  date | None]:
    """From the prevention store (when the tenant went through it): the unpaid terms, the
    day the debt reached 2 × the rent (L-8), and a signed plan (L-16)."""
    tenant_ref = litigation.field(ctx.settings.fields.tenant_ref)
    if not tenant_ref:
        return (), None, None
    terms = prevention.latest_terms(ctx.db, tenant_ref)
    constituted = None
    if rent:
        total = Decimal("0")
        for due, amount in terms:
            total += amount
            if total >= 2 * rent:
                constituted = due
                break
    return tuple(due for due, _ in terms), constituted, prevention.last_plan_on(ctx.db, tenant_ref)


def report_of(ctx: Context, litigation: Issue) -> LegalReport:
    return check(facts_of(ctx, litigation))


def legal_text(ctx: Context, report: LegalReport, plain: bool = False) -> str:
    context = dict(report=report, sources=SOURCES)
    return render_plain("legal_check", **context) if plain else ctx.render("legal_check", **context)


def reconcile_legal(ctx: Context, litigation: Issue) -> list[str]:
    """The CAF report task (L-8) and the "Contrôle légal" field of a litigation ticket. The
    field not in the service's view: FieldUnknown (told on the ticket), after the task."""
    f = ctx.settings.fields
    report = report_of(ctx, litigation)
    done = _caf_task(ctx, litigation, report)
    text = legal_text(ctx, report)
    if litigation.field(f.legal_check).replace("\r\n", "\n") != text.strip():  # Redmine may store CRLF
        ctx.redmine.update_issue(litigation.id, custom_fields={f.legal_check: text})
        done.append(f"contrôle légal : {len(report.warnings)} alerte(s), {len(report.gates)} blocage(s)")
    return done


def _caf_task(ctx: Context, litigation: Issue, report: LegalReport) -> list[str]:
    """L-8: a task to report the arrears to the CAF/MSA, due 2 months after they were
    constituted; closed when the debt is paid."""
    s = ctx.settings
    f = s.fields
    key = f"L-8/signalement-caf/{litigation.id}"
    if report.caf_report_by is None:
        found = find_operation(ctx, s.trackers.task, key, litigation.id)
        debt = litigation.decimal_field(f.debt_amount)
        for task in found:
            if not task.closed and debt is not None and debt <= 0:
                note_once(ctx, ctx.redmine.get_issue(task.id), f"{key}/soldee",
                          "Dette soldée : signalement à la CAF sans objet (L-8).", status=s.statuses.closed)
                return [f"signalement CAF #{task.id} sans objet"]
        return []
    mandate = litigation.field(f.mandate_number)
    task, created = ensure_ticket(ctx, key, NewIssue(
        tracker=s.trackers.task,
        subject=f"Signaler l'impayé à la CAF/MSA avant le {report.caf_report_by:%d/%m/%Y} — contentieux #{litigation.id}",
        description=ctx.render("legal_caf_task", litigation_id=litigation.id, report_by=report.caf_report_by,
                               source=SOURCES["L-8"]),
        parent_id=litigation.id,
        assigned_to_id=gestionnaire_of(ctx, register_of(ctx, mandate)),
        custom_fields={f.mandate_number: mandate} if mandate else {}))
    if created or task.due_date != report.caf_report_by:
        ctx.redmine.update_issue(task.id, due_date=report.caf_report_by)
    return [f"signalement CAF #{task.id} avant le {report.caf_report_by:%d/%m/%Y}"] if created else []


# --- gates ---------------------------------------------------------------------------------
def gate_allows(ctx: Context, issue: Issue, gate: Gate | None) -> bool:
    """Whether the step may go on: no gate, or a gate overridden on the ticket by litigation
    (``Dérogation légale``, recorded once with who set it). A held step gets a note saying
    why and how to lift it."""
    if gate is None:
        return True
    f = ctx.settings.fields
    if issue.field(f.legal_override) == "1":
        journal = last_journal_changing(issue, f.legal_override)
        who = journal.user_id if journal and journal.user_id else issue.author_id
        when = paris_date(journal.created_on) if journal and journal.created_on else paris_date(issue.created_on)
        note_once(ctx, issue, f"{gate.rule}/derogation/{gate.step}/{journal.id if journal else 0}",
                  ctx.render("legal_override", gate=gate, who=who, when=when, source=SOURCES[gate.rule]))
        return True
    note_once(ctx, issue, f"{gate.rule}/blocage/{gate.step}/{digest(gate.reason)}",
              ctx.render("legal_gate", gate=gate, override_field=f.legal_override, source=SOURCES[gate.rule]))
    return False


def refresh_all(ctx: Context) -> list[str]:
    """Every open litigation file's check again: a date passing turns a delay into a warning
    (a caution not served by day 15, a prescription 6 months away) without any ticket change."""
    done = []
    for issue_id in ctx.redmine.open_issue_ids(ctx.settings.trackers.litigation):
        issue = ctx.redmine.get_issue(issue_id)
        done += [f"#{issue_id} : {d}" for d in on_its_own(ctx, issue, lambda ctx, issue=issue: reconcile_legal(ctx, issue))]
    return done
