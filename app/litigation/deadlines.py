"""Deadlines of the litigation procedure, each rule in one place:

- C-13/C-14 (Contentieux): provision requested on D → at D+45 without funds received,
  the "Déchéance de garantie" letter, the ticket to the gestionnaire, a "Perte de mandat"
  ticket (20 06 01). Funds by D+45 lift it; funds after it change nothing done.
- C-12 (Contentieux): act served on S → a lawyer mandated by S + 2 months (1 month for a
  commercial lease); reminders 7 days before and on the day while no Assignation or
  Injonction de payer sub-task exists.
- C-18/C-19 (Assignation): judgment on J → note, owner-information task; at J+15 the
  bailiff chased if the judgment is not served, and the original awaited (in colour).
- C-26 (Exécution): a review every month while the ticket is open; a missed month fires
  once, late, not once per missed month.

Due instants: the day at the office hour, Europe/Paris (``app/calendar.py``).
"""

from __future__ import annotations

from datetime import date, timedelta

from app.calendar import add_months, at_office_hour, paris_date
from app.context import Context
from app.deadlines import service
from app.deadlines.models import Deadline
from app.deadlines.service import Fired, Wanted
from app.effects import attach_once, ensure_ticket, note_once, relate_once
from app.letters import DOCX, letter_docx
from app.litigation.case import read_litigation_file
from app.litigation.flows import gestionnaire_of, register_of
from integrations.redmine.interface import Issue, NewIssue

PROVISION = "C-14/provision"
LAWYER_REMINDER = "C-12/rappel-avocat"
LAWYER_LAST_DAY = "C-12/dernier-jour-avocat"
JUDGMENT_CHASE = "C-18/relance-commissaire"
JUDGMENT_ORIGINAL = "C-19/original-jugement"
EXECUTION_REVIEW = "C-26/revue-mensuelle"


# --- dates of each rule -----------------------------------------------------------------
def provision_due_on(ctx: Context, requested_on: date) -> date:
    """C-14: D+45 (calendar days)."""
    return requested_on + timedelta(days=ctx.settings.deadlines.provision_days)


def lawyer_months(ctx: Context, issue: Issue) -> tuple[int, str]:
    """C-12: 2 months for a residential lease (the default), 1 for a commercial one."""
    d, v = ctx.settings.deadlines, ctx.settings.values
    if issue.field(ctx.settings.fields.lease_type) == v.lease_commercial:
        return d.lawyer_months_commercial, "commercial"
    return d.lawyer_months_residential, "d'habitation"


def lawyer_last_day(ctx: Context, issue: Issue, served_on: date) -> date:
    return add_months(served_on, lawyer_months(ctx, issue)[0])


def review_due_on(ctx: Context, issue: Issue, after: date | None) -> date:
    """C-26: the first monthly anniversary of the ticket's creation strictly after ``after``
    (the creation itself when none fired yet), months clamped to month ends."""
    step = ctx.settings.deadlines.execution_review_months
    created = paris_date(issue.created_on)
    n = 1
    while after is not None and add_months(created, n * step) <= after:
        n += 1
    return add_months(created, n * step)


def _due(ctx: Context, day: date):
    return at_office_hour(day, ctx.settings.deadlines.office_hour)


def _has_title_child(ctx: Context, issue: Issue) -> bool:
    t = ctx.settings.trackers
    return any(c.tracker in (t.assignation, t.injunction) for c in issue.children)


# --- what a ticket calls for ------------------------------------------------------------
class LitigationDeadlines:
    """The ``DeadlineRules`` of the litigation procedure."""

    def wanted(self, ctx: Context, issue: Issue, fired: Fired) -> list[Wanted]:
        if issue.closed:
            return []
        f, t = ctx.settings.fields, ctx.settings.trackers
        wanted: list[Wanted] = []
        if issue.tracker == t.litigation:
            requested_on = issue.date_field(f.provision_request_date)
            received_on = issue.date_field(f.funds_received_date)
            if requested_on:
                due_on = provision_due_on(ctx, requested_on)
                if received_on is None or received_on > due_on:  # C-14: no funds by D+45
                    wanted.append(Wanted(PROVISION, _due(ctx, due_on),
                                         "C-14 : sans fonds reçus, déchéance de garantie et perte de mandat"))
            served_on = issue.date_field(f.service_date)
            if served_on and not _has_title_child(ctx, issue):  # C-12
                last_day = lawyer_last_day(ctx, issue, served_on)
                before = last_day - timedelta(days=ctx.settings.deadlines.lawyer_reminder_days_before)
                wanted.append(Wanted(LAWYER_REMINDER, _due(ctx, before),
                                     f"C-12 : rappel, mandater un avocat avant le {last_day:%d/%m/%Y}"))
                wanted.append(Wanted(LAWYER_LAST_DAY, _due(ctx, last_day),
                                     "C-12 : dernier jour pour mandater un avocat"))
        elif issue.tracker == t.assignation:
            judged_on = issue.date_field(f.judgment_date)
            if judged_on:
                d = ctx.settings.deadlines
                if not issue.field(f.judgment_service_date):  # C-18
                    wanted.append(Wanted(JUDGMENT_CHASE, _due(ctx, judged_on + timedelta(days=d.judgment_chase_days)),
                                         "C-18 : relancer le commissaire de justice (signification du jugement)"))
                if not issue.field(f.original_received_date):  # C-19
                    wanted.append(Wanted(JUDGMENT_ORIGINAL,
                                         _due(ctx, judged_on + timedelta(days=d.judgment_original_days)),
                                         "C-19 : original du jugement attendu, scanné en couleur"))
        elif issue.tracker == t.execution:  # C-26
            last = fired.get(EXECUTION_REVIEW)
            after = max(paris_date(last.due_at), paris_date(last.fired_at)) if last else None
            wanted.append(Wanted(EXECUTION_REVIEW, _due(ctx, review_due_on(ctx, issue, after)),
                                 "C-26 : revue mensuelle de l'exécution"))
        return wanted

    def fire(self, ctx: Context, issue: Issue, deadline: Deadline, late: bool) -> str:
        late_context = {"late": late, "due_on": paris_date(deadline.due_at), "today": paris_date(ctx.clock.now())}
        if deadline.kind == PROVISION:
            return _fire_forfeiture(ctx, issue, deadline, late_context)
        if deadline.kind in (LAWYER_REMINDER, LAWYER_LAST_DAY):
            f = ctx.settings.fields
            served_on = issue.date_field(f.service_date)
            text = ctx.render("lawyer_reminder", on_the_day=deadline.kind == LAWYER_LAST_DAY, served_on=served_on,
                              last_day=lawyer_last_day(ctx, issue, served_on), **late_context)
            note_once(ctx, issue, f"{deadline.kind}/{deadline.id}", text)
            return "rappel C-12 noté"
        if deadline.kind in (JUDGMENT_CHASE, JUDGMENT_ORIGINAL):
            f = ctx.settings.fields
            awaited = f.judgment_service_date if deadline.kind == JUDGMENT_CHASE else f.original_received_date
            text = ctx.render("judgment_reminder", rule=deadline.rule, judged_on=issue.date_field(f.judgment_date),
                              awaited=awaited, **late_context)
            note_once(ctx, issue, f"{deadline.kind}/{deadline.id}", text,
                      assign_to=ctx.principal(ctx.settings.routing.litigation_group))
            return f"relance {deadline.rule} notée, ticket au contentieux"
        if deadline.kind == EXECUTION_REVIEW:
            next_on = review_due_on(ctx, issue, max(paris_date(deadline.due_at), paris_date(ctx.clock.now())))
            note_once(ctx, issue, f"{deadline.kind}/{deadline.id}",
                      ctx.render("execution_review", next_on=next_on, **late_context))
            return f"revue C-26 demandée, prochaine le {next_on:%d/%m/%Y}"
        raise ValueError(f"échéance de type inconnu : {deadline.kind}")


RULES = LitigationDeadlines()


# --- notes when a date is recorded ------------------------------------------------------
def record_dates(ctx: Context, issue: Issue) -> list[str]:
    """What the ticket is told when a date of the procedure is recorded on it."""
    f, t, d = ctx.settings.fields, ctx.settings.trackers, ctx.settings.deadlines
    done: list[str] = []
    if issue.closed:
        return done
    if issue.tracker == t.litigation:
        requested_on = issue.date_field(f.provision_request_date)
        if requested_on:  # C-13
            due_on = provision_due_on(ctx, requested_on)
            text = ctx.render("provision_requested", requested_on=requested_on, due_on=due_on,
                              days=d.provision_days, provision=ctx.settings.procedure.assignation_cost_eur)
            if note_once(ctx, issue, f"C-13/provision/{requested_on}", text):
                done.append(f"provision demandée, échéance J+{d.provision_days} le {due_on:%d/%m/%Y}")
            received_on = issue.date_field(f.funds_received_date)
            if received_on:  # C-14
                fired = service.fired_kinds(ctx.db, issue.id).get(PROVISION)
                loss = _mandate_loss_ticket(ctx, issue) if fired else None
                text = ctx.render("funds_received", in_time=received_on <= due_on, received_on=received_on,
                                  due_on=due_on, mandate_loss_id=loss.id if loss else None)
                if note_once(ctx, issue, f"C-14/fonds/{requested_on}/{received_on}", text):
                    done.append("réception des fonds notée")
        served_on = issue.date_field(f.service_date)
        if served_on:  # C-12
            months, lease = lawyer_months(ctx, issue)
            last_day = lawyer_last_day(ctx, issue, served_on)
            text = ctx.render("service_recorded", served_on=served_on, last_day=last_day, months=months, lease=lease,
                              reminder_on=last_day - timedelta(days=d.lawyer_reminder_days_before))
            if note_once(ctx, issue, f"C-12/signification/{served_on}/{months}", text):
                done.append(f"avocat à mandater avant le {last_day:%d/%m/%Y}")
    elif issue.tracker == t.assignation:
        judged_on = issue.date_field(f.judgment_date)
        if judged_on:  # C-18, C-19
            mandate = issue.field(f.mandate_number)
            task, _ = ensure_ticket(ctx, f"C-18/information-jugement/{issue.id}/{judged_on}", NewIssue(
                tracker=t.task, subject=f"Informer le propriétaire du jugement — assignation #{issue.id}",
                description=ctx.render("judgment_owner_task", judged_on=judged_on, assignation_id=issue.id,
                                       mandate_number=mandate),
                parent_id=issue.id, assigned_to_id=gestionnaire_of(ctx, register_of(ctx, mandate)),
                custom_fields={f.mandate_number: mandate}))
            text = ctx.render("judgment_recorded", judged_on=judged_on, owner_task_id=task.id,
                              chase_on=judged_on + timedelta(days=d.judgment_chase_days),
                              original_on=judged_on + timedelta(days=d.judgment_original_days))
            if note_once(ctx, issue, f"C-18/jugement/{judged_on}", text):
                done.append(f"jugement du {judged_on:%d/%m/%Y} : note et tâche #{task.id}")
    return done


# --- C-14 at D+45 -----------------------------------------------------------------------
def _mandate_loss_ticket(ctx: Context, issue: Issue) -> Issue | None:
    found = ctx.redmine.find_issues(ctx.settings.trackers.mandate_loss, ctx.settings.fields.operation_key,
                                    f"C-14/perte-de-mandat/{issue.id}")
    return found[0] if found else None


def _fire_forfeiture(ctx: Context, issue: Issue, deadline: Deadline, late_context: dict) -> str:
    """Each step is idempotent: a crash mid-fire and the next tick completes without doubles."""
    s = ctx.settings
    f = s.fields
    file = read_litigation_file(issue, s)
    requested_on = issue.date_field(f.provision_request_date)
    due_on = paris_date(deadline.due_at)
    register = register_of(ctx, file.mandate_number)
    gestionnaire = gestionnaire_of(ctx, register)
    parent = register if register is not None and not register.closed else None  # Redmine refuses a closed one

    filename = f"decheance-garantie-contentieux-{issue.id}-{due_on:%Y%m%d}.docx"
    if filename not in issue.attachments:
        letter = letter_docx("decheance_garantie", owner_ref=file.owner_ref, mandate_number=file.mandate_number,
                             tenant_ref=file.tenant_ref, debt=file.debt, today=late_context["today"],
                             requested_on=requested_on, provision=s.procedure.assignation_cost_eur,
                             days=s.deadlines.provision_days, due_on=due_on)
        attach_once(ctx, issue, filename, letter, DOCX,
                    "Courrier « Déchéance de garantie – décharge de responsabilité » (règle C-14).")

    loss, _ = ensure_ticket(ctx, f"C-14/perte-de-mandat/{issue.id}", NewIssue(
        tracker=s.trackers.mandate_loss,
        subject=f"Perte de mandat propriétaire – résiliation (20 06 01) — mandat {file.mandate_number}",
        description=ctx.render("mandate_loss", litigation_id=issue.id, mandate_number=file.mandate_number,
                               owner_ref=file.owner_ref, requested_on=requested_on, days=s.deadlines.provision_days,
                               due_on=due_on),
        parent_id=parent.id if parent else None,
        assigned_to_id=gestionnaire,
        custom_fields={f.mandate_number: file.mandate_number}))
    relate_once(ctx, issue, loss.id)

    # Recorded for the write-off scan (C-31), with the ticket handed to the gestionnaire, in
    # the note's journal (a gestionnaire Redmine refuses: the litigation group, said there).
    text = ctx.render("forfeiture", days=s.deadlines.provision_days, requested_on=requested_on, filename=filename,
                      mandate_loss_id=loss.id, **late_context)
    forfeiture = {f.forfeiture_date: due_on.isoformat()}
    if not note_once(ctx, issue, f"{deadline.kind}/{deadline.id}", text, assign_to=gestionnaire, custom_fields=forfeiture) \
            and issue.value(f.forfeiture_date) != due_on.isoformat():
        # Noted before, but the date did not hold (a field hidden or read-only then): written
        # again until Redmine keeps it — the C-31 write-off scan reads it.
        ctx.redmine.update_issue(issue.id, custom_fields=forfeiture)
    return f"déchéance : courrier joint, perte de mandat #{loss.id}" + (" (en retard)" if late_context["late"] else "")
