"""From the title to recovery (procedure 20 05 08 02 § 2 and 3), rules C-20, C-21, C-25 … C-27.

- Favourable judgment (``Issue du jugement`` on the Assignation or Injonction ticket): one
  ``Exécution`` ticket per debtor line of ``Débiteurs``, under the title ticket (C-20), each
  with its cost (C-26) and the monthly review deadline; the bailiff executes right after
  service (C-21). A debtor line is identified by its role and its name
  (:func:`app.text.identity`), and a homonym of the same role by its rank among them:
  homonyms and names in any script each get their ticket, and adding, removing or
  reordering other lines changes no line's ticket.
- Unfavourable judgment: a task to study an appeal with the owner (C-21).
- Eviction ordered (``Expulsion ordonnée``): an ``Expulsion`` ticket: commandement de quitter
  les lieux (≈ 300 €), then the force publique (≈ 3 000 €) if the tenant stays, then
  process 20 06 02 "Départs locataire" (C-27), with the winter truce and the statutory
  delays of L-15 shown as warnings on the dates they affect.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from app.calendar import add_months, paris_date
from app.context import Context
from app.deadlines import flows as deadlines
from app.effects import digest, ensure_ticket, find_operation, note_once
from app.legal.flows import gate_allows
from app.legal.rules import EVICTION_NOTICE_MONTHS, PREFECT_ANSWER_MONTHS, Facts, check, in_winter_truce, truce_end
from app.litigation.case import Party, read_litigation_file
from app.litigation.deadlines import RULES
from app.litigation.flows import gestionnaire_of, register_of
from app.text import identity, slug
from integrations.redmine.interface import Issue, NewIssue


def reconcile_judgment(ctx: Context, title: Issue) -> list[str]:
    """C-20, C-21 on a title ticket (Assignation or Injonction de payer) with its outcome."""
    s = ctx.settings
    outcome = title.field(s.fields.judgment_outcome)
    if not outcome or title.parent_id is None:
        return []
    litigation = ctx.redmine.get_issue(title.parent_id)
    file = read_litigation_file(litigation, s)
    mandate = file.mandate_number
    if outcome == s.values.judgment_favourable:
        executions = [_execution(ctx, title, mandate, key, party)
                      for key, party in zip(execution_keys(title.id, file.parties), file.parties, strict=True)]
        text = ctx.render("judgment_favourable", executions=executions, cost=s.procedure.execution_cost_eur)
        note_once(ctx, title, f"C-20/executions/{digest([e.id for e in executions])}", text)
        return [f"jugement favorable : {len(executions)} exécution(s)"]
    if outcome == s.values.judgment_unfavourable:
        task, _ = ensure_ticket(ctx, f"C-21/appel/{title.id}", NewIssue(
            tracker=s.trackers.task, subject=f"Étudier un appel avec le propriétaire — {title.tracker} #{title.id}",
            description=ctx.render("appeal_task", title_id=title.id, litigation_id=litigation.id),
            parent_id=title.id, assigned_to_id=gestionnaire_of(ctx, register_of(ctx, mandate)),
            custom_fields={s.fields.mandate_number: mandate}))
        note_once(ctx, title, f"C-21/defavorable/{title.id}", ctx.render("judgment_unfavourable", task_id=task.id))
        return [f"jugement défavorable : étude d'appel #{task.id}"]
    return []


def execution_keys(title_id: int, parties: list[Party]) -> list[str]:
    """C-20: the operation key of the execution against each debtor line of ``Débiteurs``:
    its role and its name's identity; the second and later lines of the same role and name
    (homonyms: father and son, both cautions) add their rank among those lines. A key
    never depends on the other lines, so editing them opens nothing twice."""
    seen: Counter[str] = Counter()
    keys = []
    for party in parties:
        who = f"{party.role.value}/{identity(party.name)}"
        seen[who] += 1
        keys.append(f"C-20/execution/{title_id}/{who}" + (f"/{seen[who]}" if seen[who] > 1 else ""))
    return keys


def _legacy_execution_key(title_id: int, party: Party) -> str:
    """The key of versions before 2026-11: the name slugged to ASCII, the role ignored
    (homonyms and non-Latin names shared one ticket)."""
    return f"C-20/execution/{title_id}/{slug(party.name)}"


def _execution(ctx: Context, title: Issue, mandate: str, key: str, party: Party) -> Issue:
    """C-20: one Exécution ticket per debtor line, under the title ticket; C-26 review
    scheduled. A ticket of an earlier version (old key) is adopted by the first line it
    matches: its key is rewritten, so the next line with that old key gets its own."""
    s = ctx.settings
    if not find_operation(ctx, s.trackers.execution, key, title.id):
        legacy = find_operation(ctx, s.trackers.execution, _legacy_execution_key(title.id, party), title.id)
        if legacy:
            ctx.redmine.update_issue(legacy[0].id, custom_fields={s.fields.operation_key: key})
    execution, created = ensure_ticket(ctx, key, NewIssue(
        tracker=s.trackers.execution,
        subject=f"Exécution — {party.name} ({party.role.value}) — {title.tracker.lower()} #{title.id}",
        description=ctx.render("execution_ticket", party=party, title_id=title.id, cost=s.procedure.execution_cost_eur),
        parent_id=title.id,
        assigned_to_id=ctx.principal(s.routing.litigation_group),
        custom_fields={s.fields.mandate_number: mandate, s.fields.estimated_cost: str(s.procedure.execution_cost_eur)}))
    if created:  # its monthly review (C-26) from now, without waiting for the next poll
        deadlines.sync(ctx, RULES, ctx.redmine.get_issue(execution.id))
    return execution


def reconcile_eviction_order(ctx: Context, assignation: Issue) -> list[str]:
    """C-27: a judgment granting eviction opens the Expulsion ticket."""
    s = ctx.settings
    if assignation.field(s.fields.eviction_ordered) != "1":
        return []
    mandate = assignation.field(s.fields.mandate_number)
    eviction, created = ensure_ticket(ctx, f"C-27/expulsion/{assignation.id}", NewIssue(
        tracker=s.trackers.eviction,
        subject=f"Expulsion — assignation #{assignation.id} — mandat {mandate}",
        description=ctx.render("eviction_ticket", assignation_id=assignation.id,
                               order_cost=s.procedure.eviction_order_cost_eur,
                               force_cost=s.procedure.public_force_cost_eur),
        parent_id=assignation.id,
        assigned_to_id=ctx.principal(s.routing.litigation_group),
        custom_fields={s.fields.mandate_number: mandate,
                       s.fields.estimated_cost: str(s.procedure.eviction_order_cost_eur)}))
    return [f"expulsion #{eviction.id}"] if created else []


def reconcile_eviction(ctx: Context, eviction: Issue) -> list[str]:
    """C-27 steps on the Expulsion ticket, with the L-15 delays and truce as warnings."""
    s = ctx.settings
    f = s.fields
    done: list[str] = []
    ordered_on = eviction.date_field(f.eviction_order_date)
    if ordered_on:
        leave_by = add_months(ordered_on, EVICTION_NOTICE_MONTHS)
        text = ctx.render("eviction_ordered", ordered_on=ordered_on, leave_by=leave_by,
                          truce=in_winter_truce(leave_by), truce_end=truce_end(leave_by))
        if note_once(ctx, eviction, f"C-27/commandement/{ordered_on}", text):
            done.append(f"quitter les lieux avant le {leave_by:%d/%m/%Y}")
    if eviction.field(f.tenant_stays) == "1":
        today = paris_date(ctx.clock.now())
        answer_by = add_months(today, PREFECT_ANSWER_MONTHS)
        next_truce = date(today.year, 11, 1) if today < date(today.year, 11, 1) else date(today.year + 1, 11, 1)
        text = ctx.render("eviction_public_force", cost=s.procedure.public_force_cost_eur, answer_by=answer_by,
                          late_request=add_months(today, 2) > next_truce and not in_winter_truce(today),
                          truce=in_winter_truce(answer_by) or in_winter_truce(today),
                          truce_end=truce_end(answer_by if in_winter_truce(answer_by) else today))
        if note_once(ctx, eviction, f"C-27/force-publique/{eviction.id}", text):
            done.append("force publique à requérir")
    planned_on = eviction.date_field(f.eviction_planned_date)
    if planned_on:  # L-15: no physical eviction in the winter truce, unless overridden
        gate = check(Facts(today=paris_date(ctx.clock.now()), eviction_planned=planned_on)).gate("expulsion")
        if gate_allows(ctx, eviction, gate):
            mandate = eviction.field(f.mandate_number)
            task, created = ensure_ticket(ctx, f"C-27/expulsion-physique/{eviction.id}/{planned_on}", NewIssue(
                tracker=s.trackers.task, subject=f"Expulsion physique le {planned_on:%d/%m/%Y} — expulsion #{eviction.id}",
                description=ctx.render("eviction_planned_task", planned_on=planned_on, eviction_id=eviction.id),
                parent_id=eviction.id, assigned_to_id=ctx.principal(s.routing.litigation_group),
                custom_fields={f.mandate_number: mandate} if mandate else {}))
            if created:
                done.append(f"expulsion physique le {planned_on:%d/%m/%Y} : tâche #{task.id}")
        else:
            done.append("expulsion physique bloquée par la trêve hivernale (L-15)")
    left_on = eviction.date_field(f.tenant_left_date)
    if left_on:
        mandate = eviction.field(f.mandate_number)
        task, created = ensure_ticket(ctx, f"C-27/depart/{eviction.id}", NewIssue(
            tracker=s.trackers.task, subject=f"Départ du locataire (process 20 06 02) — expulsion #{eviction.id}",
            description=ctx.render("tenant_departure_task", left_on=left_on, eviction_id=eviction.id),
            parent_id=eviction.id, assigned_to_id=gestionnaire_of(ctx, register_of(ctx, mandate)),
            custom_fields={f.mandate_number: mandate}))
        if created:
            done.append(f"départs locataire #{task.id}")
    return done
