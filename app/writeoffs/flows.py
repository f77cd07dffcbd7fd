"""Debt write-offs, rules C-31 and C-32.

- The scan (daily, and ``recouvrement writeoffs``) opens one ``Annulation dette`` ticket
  (the "espace client" ticket) per litigation file meeting all of C-31, for the
  gestionnaire, under the mandate register and related to the litigation ticket.
- ``Propriétaire informé le`` D → the ticket goes to the back office, due D+15 (C-32);
  at D+15 without ``Annulation passée le`` the back office is reminded.
- ``Annulation passée le`` → back to the gestionnaire, who closes the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from app.calendar import add_months, at_office_hour, paris_date
from app.context import Context
from app.deadlines.models import Deadline
from app.deadlines.service import Fired, Wanted
from app.effects import on_its_own, ensure_ticket, note_once, relate_once
from app.legal.flows import facts_of
from app.litigation.flows import gestionnaire_of, register_of
from app.writeoffs.eligibility import WriteoffAssessment, assess
from integrations.redmine.interface import Issue, NewIssue

ENTRIES = "C-32/ecritures"


def writeoff_key(litigation_id: int) -> str:
    return f"C-32/annulation-dette/{litigation_id}"


@dataclass(frozen=True)
class ScanReport:
    examined: int
    eligible: list[int]  # litigation tickets meeting C-31
    opened: list[int]  # write-off tickets created by this scan


def scan(ctx: Context) -> ScanReport:
    """Every litigation file with a starred tenant (Redmine filter), checked against C-31;
    a ticket for each eligible one that has none yet."""
    s = ctx.settings
    today = paris_date(ctx.clock.now())
    eligible, opened = [], []
    files = ctx.redmine.find_issues(s.trackers.litigation, s.fields.starred_tenant, "1")
    for file in files:
        def one(ctx: Context, file: Issue = file) -> list[str]:
            if not assess(file, s, today).eligible:  # FieldUnknown on an unreadable condition: not eligible on a guess
                return []
            eligible.append(file.id)
            ticket, created = open_writeoff(ctx, ctx.redmine.get_issue(file.id))
            if created:
                opened.append(ticket.id)
            return []

        on_its_own(ctx, file, one)  # one file's unreadable field or refusal: told on it, the scan goes on
    return ScanReport(len(files), eligible, opened)


def explain(ctx: Context, issue_id: int) -> tuple[WriteoffAssessment, Issue | None]:
    """The assessment of one litigation file, with its write-off ticket if one exists."""
    s = ctx.settings
    issue = ctx.redmine.get_issue(issue_id)
    if issue.tracker != s.trackers.litigation:
        raise ValueError(f"ticket #{issue_id} : tracker « {issue.tracker} », un ticket « {s.trackers.litigation} » "
                         "est attendu")
    today = paris_date(ctx.clock.now())
    found = ctx.redmine.find_issues(s.trackers.debt_writeoff, s.fields.operation_key, writeoff_key(issue_id))
    return assess(issue, s, today, interruptions(ctx, issue, today)), (found[0] if found else None)


def interruptions(ctx: Context, litigation: Issue, today: date) -> list[str]:
    """L-16: court claims, signed plans and enforcement acts of the last 3 years interrupt
    the legal prescription: a warning each (the legal watch lists them)."""
    since = add_months(today, -ctx.settings.deadlines.writeoff_after_months)
    return [f"{label} du {on:%d/%m/%Y} : interrompt la prescription légale (L-16), vérifier avant d'annuler"
            for on, label in facts_of(ctx, litigation).interruptions if on > since]


def open_writeoff(ctx: Context, litigation: Issue) -> tuple[Issue, bool]:
    """C-32: the write-off ticket of this file, once (its operation key is searched first)."""
    s = ctx.settings
    f = s.fields
    today = paris_date(ctx.clock.now())
    assessment = assess(litigation, s, today, interruptions(ctx, litigation, today))
    mandate = litigation.field(f.mandate_number)
    register = register_of(ctx, mandate)
    copied = {name: litigation.field(name) for name in (f.mandate_number, f.tenant_ref, f.owner_ref, f.debt_amount,
                                                        f.last_unpaid_date) if litigation.field(name)}
    ticket, created = ensure_ticket(ctx, writeoff_key(litigation.id), NewIssue(
        tracker=s.trackers.debt_writeoff,
        subject=f"Annulation dette locataire — dossier {litigation.field(f.tenant_ref)}/{litigation.field(f.owner_ref)}"
                f" (contentieux #{litigation.id})",
        description=ctx.render("writeoff_ticket", litigation_id=litigation.id, assessment=assessment,
                               informed_field=f.owner_informed_date, passed_field=f.writeoff_date,
                               notice_days=s.deadlines.writeoff_notice_days, back_office=s.routing.back_office_group),
        parent_id=register.id if register else None,
        assigned_to_id=gestionnaire_of(ctx, register),
        custom_fields=copied))
    relate_once(ctx, litigation, ticket.id)
    note_once(ctx, litigation, writeoff_key(litigation.id), ctx.render("writeoff_opened", ticket_id=ticket.id))
    return ticket, created


def reconcile_writeoff(ctx: Context, issue: Issue) -> list[str]:
    """C-32 on the write-off ticket: owner informed → back office, due D+15; write-off
    passed → back to the gestionnaire."""
    s = ctx.settings
    f = s.fields
    issue.require_fields(f.owner_informed_date, f.writeoff_date)
    informed_on = issue.date_field(f.owner_informed_date)
    passed_on = issue.date_field(f.writeoff_date)
    if passed_on:
        gestionnaire = gestionnaire_of(ctx, register_of(ctx, issue.field(f.mandate_number)))
        early = informed_on is not None and passed_on < entries_due_on(ctx, informed_on)
        text = ctx.render("writeoff_passed", passed_on=passed_on, informed_on=informed_on, early=early,
                          due_on=entries_due_on(ctx, informed_on) if informed_on else None)
        if note_once(ctx, issue, f"C-32/annulation-passee/{passed_on}", text, assign_to=gestionnaire):
            return [f"annulation passée le {passed_on:%d/%m/%Y} : ticket rendu au gestionnaire"]
        return []
    if informed_on:
        due_on = entries_due_on(ctx, informed_on)
        text = ctx.render("writeoff_owner_informed", informed_on=informed_on, due_on=due_on,
                          days=s.deadlines.writeoff_notice_days, passed_field=f.writeoff_date)
        if note_once(ctx, issue, f"C-32/proprietaire-informe/{informed_on}", text,
                     assign_to=ctx.principal(s.routing.back_office_group), start_date=informed_on, due_date=due_on):
            return [f"propriétaire informé le {informed_on:%d/%m/%Y} : back office, échéance le {due_on:%d/%m/%Y}"]
    return []


def entries_due_on(ctx: Context, informed_on: date) -> date:
    """C-32: the back office passes the entries 15 days after the owner was informed."""
    return informed_on + timedelta(days=ctx.settings.deadlines.writeoff_notice_days)


class WriteoffDeadlines:
    """The ``DeadlineRules`` of write-off tickets: D+15 without the entries passed → the
    back office is reminded."""

    def wanted(self, ctx: Context, issue: Issue, fired: Fired) -> list[Wanted]:
        f = ctx.settings.fields
        informed_on = issue.date_field(f.owner_informed_date)
        if issue.closed or informed_on is None or issue.field(f.writeoff_date):
            return []
        due_on = entries_due_on(ctx, informed_on)
        return [Wanted(ENTRIES, at_office_hour(due_on, ctx.settings.deadlines.office_hour),
                       "C-32 : passer les écritures d'annulation de la dette")]

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        if deadline.kind != ENTRIES:
            raise ValueError(f"échéance de type inconnu : {deadline.kind}")
        s = ctx.settings
        text = ctx.render("writeoff_due", informed_on=issue.date_field(s.fields.owner_informed_date),
                          days=s.deadlines.writeoff_notice_days, passed_field=s.fields.writeoff_date, late=late,
                          due_on=paris_date(deadline.due_at), today=paris_date(ctx.clock.now()))
        note_once(ctx, issue, f"{deadline.kind}/{deadline.id}", text,
                  assign_to=ctx.principal(s.routing.back_office_group))
        return "délai de 15 jours écoulé : back office relancé"


RULES = WriteoffDeadlines()
