"""Fee cancellation requests, rules C-33 … C-37: checked, hung under the tenant's
litigation file, sent to the decider with an 8-working-day due date, and the decision
passed back to the requester.

State-based like every flow: each run re-reads the ticket and posts only the notes its
current state calls for (one per key), so replays end in no-ops.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from app.calendar import PARIS, paris_date
from app.cancellations.request import (
    CONTENTIEUX,
    DG,
    ESCALATION_KEY,
    FeeCancellation,
    current_round,
    decided_at,
    decided_by,
    decision_due_on,
    escalated_at,
    read_request,
    refs_of,
    refused_at,
)
from app.context import Context
from app.deadlines.models import Deadline
from app.deadlines.service import Fired, Wanted
from app.effects import digest, note_once, note_to_author
from integrations.redmine.interface import Issue

DECISION = "C-35/decision"


def reconcile_cancellation(ctx: Context, issue: Issue) -> list[str]:
    s = ctx.settings
    f = s.fields
    issue.require_fields(f.tenant_ref, f.owner_ref, f.justification, f.decision, f.decision_reason,
                         f.dg_escalation, f.overdue)
    done: list[str] = []
    tenant_ref, _ = refs_of(issue, s)
    litigation = litigation_of(ctx, tenant_ref, issue.parent_id)
    request = read_request(issue, s, litigation)

    if litigation is not None and issue.parent_id != litigation.id:  # C-33
        ctx.redmine.update_issue(issue.id, parent_id=litigation.id)
        done.append(f"rattachée au contentieux #{litigation.id}")
    if litigation is None or litigation.field(f.lease_type) != s.values.lease_commercial:  # L-10
        note_once(ctx, issue, "L-10/frais-de-relance", ctx.render("cancellation_reminder_fees_law",
                                                               residential=litigation is not None))
    refs = {name: value for name, value in ((f.tenant_ref, request.tenant_ref), (f.owner_ref, request.owner_ref))
            if value and not issue.field(name)}
    if refs:  # references read from the title or the litigation file: searchable from now on
        ctx.redmine.update_issue(issue.id, custom_fields=refs)

    round_ = current_round(issue, s)
    decider = _decider(ctx, round_.name)
    if request.decision and decided_by(issue, s) == issue.author_id:
        return done + _undo_requesters_decision(ctx, issue, decider)
    if round_.name == CONTENTIEUX and request.escalated and request.reason \
            and request.decision == s.values.decision_refused:
        return done + _escalate(ctx, issue, request)
    if round_.name == CONTENTIEUX:
        done += _check(ctx, issue, request, decider[0])
    if round_.started_at is None:
        return done  # C-34: no justification, no clock
    return done + _decision(ctx, issue, request, round_.name, round_.received_on, decider)


def litigation_of(ctx: Context, tenant_ref: str, current_parent: int | None) -> Issue | None:
    """The tenant's litigation ticket (C-33): the one the request already hangs under, else
    an open one first, then the most recent."""
    if not tenant_ref:
        return None
    s = ctx.settings
    found = ctx.redmine.find_issues(s.trackers.litigation, s.fields.tenant_ref, tenant_ref)
    return max(found, key=lambda i: (i.id == current_parent, not i.closed, i.id), default=None)


def _decider(ctx: Context, round_name: str) -> tuple[str, int | None]:
    """Who decides, by name and Redmine id: litigation, or the DG after an escalation."""
    r = ctx.settings.routing
    if round_name == DG:
        return "la DG", ctx.principal(r.management_group)
    return "le contentieux", ctx.principal(r.litigation_group)


def _check(ctx: Context, issue: Issue, request: FeeCancellation, decider_name: str) -> list[str]:
    """C-33, C-34: what the requester must correct; without a justification the ticket goes
    back to them."""
    s = ctx.settings
    problems = request.problems(s)
    if not problems:
        return []
    text = ctx.render("cancellation_check", problems=problems, justified=bool(request.justification),
                      decider=decider_name, days=s.deadlines.decision_working_days)
    key = f"C-33/verification/{digest(problems)}"
    posted = note_once(ctx, issue, key, text) if request.justification else note_to_author(ctx, issue, key, text)
    return ["demande à compléter : " + "; ".join(problems)] if posted else []


def _undo_requesters_decision(ctx: Context, issue: Issue, decider: tuple[str, int | None]) -> list[str]:
    """C-34: the issuer of the fees decides, not the requester: a decision the requester
    typed is cleared, and the delay keeps running."""
    f = ctx.settings.fields
    text = ctx.render("cancellation_self_decision", decider=decider[0], decision_field=f.decision)
    if note_once(ctx, issue, f"C-34/decision-du-demandeur/{_decision_stamp(issue, ctx.settings)}", text,
                 assign_to=decider[1], custom_fields={f.decision: "", f.decision_reason: ""}):
        return ["décision saisie par le demandeur : annulée, renvoyée au décideur"]
    return []


def _decision(ctx: Context, issue: Issue, request: FeeCancellation, round_name: str, received_on: date,
              decider: tuple[str, int | None]) -> list[str]:
    s = ctx.settings
    f, v = s.fields, s.values
    name, decider_id = decider
    due_on = decision_due_on(received_on, s)
    if not request.decision:  # C-35: to the decider, due in 8 working days
        text = ctx.render("cancellation_received", round=round_name, received_on=received_on, due_on=due_on,
                          days=s.deadlines.decision_working_days, decision_field=f.decision,
                          reason_field=f.decision_reason, previous_reason=None)
        if note_once(ctx, issue, f"C-35/{round_name}/{received_on}", text, assign_to=decider_id,
                     start_date=received_on, due_date=due_on):
            return [f"transmise à {name}, décision au plus tard le {due_on:%d/%m/%Y}"]
        return []
    stamp = _decision_stamp(issue, s)
    if request.decision == v.decision_accepted:  # C-36
        text = ctx.render("cancellation_accepted", decider=name, reason=request.reason,
                          accounting=s.routing.accounting_group)
        if note_to_author(ctx, issue, f"C-36/{round_name}/{stamp}", text):
            return [f"annulation accordée par {name} : demandeur informé"]
        return []
    if request.decision == v.decision_refused and not request.reason:  # C-37: a reason is required
        text = ctx.render("cancellation_reason_missing", reason_field=f.decision_reason, decider=name)
        if note_once(ctx, issue, f"C-37/{round_name}/sans-motif/{stamp}", text, assign_to=decider_id):
            return [f"refus sans motif : renvoyé à {name}"]
        return []
    if request.decision == v.decision_refused:  # C-37
        text = ctx.render("cancellation_refused", round=round_name, decider=name, reason=request.reason,
                          escalation_field=f.dg_escalation, justification_field=f.justification,
                          days=s.deadlines.decision_working_days)
        if note_to_author(ctx, issue, f"C-37/{round_name}/refus/{stamp}/{digest(request.reason)}", text):
            return [f"annulation refusée par {name} : demandeur informé"]
    return []


def _decision_stamp(issue: Issue, settings) -> str:
    """When the current decision was set: one note per decision, a new one if it changes."""
    when = decided_at(issue, settings)
    return f"{when:%Y%m%dT%H%M%S}" if when else "?"


def _escalate(ctx: Context, issue: Issue, request: FeeCancellation) -> list[str]:
    """C-37: a refused request escalated to the DG with a new justification starts again as
    a first request: decision and reason cleared for the DG, a new 8-working-day delay."""
    s = ctx.settings
    f = s.fields
    started = escalated_at(issue, s)
    if started is None:
        problem = f"la nouvelle justification manque : réécrire « {f.justification} » après le refus"
        text = ctx.render("cancellation_escalation_incomplete", problem=problem)
        key = f"C-37/escalade-incomplete/{refused_at(issue, s):%Y%m%dT%H%M%S}"
        return ["escalade DG incomplète"] if note_to_author(ctx, issue, key, text) else []
    received_on = paris_date(started)
    due_on = decision_due_on(received_on, s)
    text = ctx.render("cancellation_received", round=DG, received_on=received_on, due_on=due_on,
                      days=s.deadlines.decision_working_days, decision_field=f.decision, reason_field=f.decision_reason,
                      previous_reason=request.reason)
    cleared = {f.decision: "", f.decision_reason: "", f.overdue: "0"}
    if note_once(ctx, issue, ESCALATION_KEY, text, assign_to=_decider(ctx, DG)[1], custom_fields=cleared,
                 start_date=received_on, due_date=due_on):
        return [f"escalade DG : décision au plus tard le {due_on:%d/%m/%Y}"]
    return []


# --- C-35: the overdue decision -----------------------------------------------------------
class CancellationDeadlines:
    """The ``DeadlineRules`` of fee cancellations: no decision by the end of the 8th working
    day → the litigation manager is told and the ticket flagged ``Hors délai``."""

    def wanted(self, ctx: Context, issue: Issue, fired: Fired) -> list[Wanted]:
        s = ctx.settings
        if issue.closed or issue.field(s.fields.decision):
            return []
        round_ = current_round(issue, s)
        if round_.started_at is None:
            return []
        due_on = decision_due_on(round_.received_on, s)
        # Overdue once the due day is over: midnight, Europe/Paris.
        overdue_at = datetime.combine(due_on + timedelta(days=1), time(0, 0), tzinfo=PARIS)
        who = "la DG" if round_.name == DG else "le contentieux"
        return [Wanted(DECISION, overdue_at, f"C-35 : décision attendue de {who} au plus tard le {due_on:%d/%m/%Y}")]

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        if deadline.kind != DECISION:
            raise ValueError(f"échéance de type inconnu : {deadline.kind}")
        s = ctx.settings
        round_ = current_round(issue, s)
        manager = s.routing.management_group if round_.name == DG else s.routing.litigation_manager
        received_on = round_.received_on
        decision_due = decision_due_on(received_on, s)
        text = ctx.render("cancellation_overdue", received_on=received_on, decision_due_on=decision_due,
                          days=s.deadlines.decision_working_days, manager=manager, late=late,
                          due_on=paris_date(deadline.due_at), today=paris_date(ctx.clock.now()))
        note_once(ctx, issue, f"{deadline.kind}/{deadline.id}", text, assign_to=ctx.principal(manager),
                  custom_fields={s.fields.overdue: "1"})
        return f"décision hors délai : {manager} prévenu"


RULES = CancellationDeadlines()
