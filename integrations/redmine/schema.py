"""What the service needs in Redmine, built from the settings.

One description serves two readers: ``provision.rb`` (through ``recouvrement redmine spec``,
as JSON) creates it, and ``recouvrement redmine check`` verifies it over REST.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from app.config import Settings

# Exactly the permissions the service's own role has (issues 2, 14): read issues and their
# journals, create them, edit fields/status/assignee/dates and attach files, write notes (never
# private), set parents, relate tickets. Project members are read under a public permission.
# Provisioning removes any other; `redmine check` reports them.
SERVICE_PERMISSIONS = [
    "view_issues",
    "add_issues",
    "edit_issues",
    "add_issue_notes",
    "manage_subtasks",
    "manage_issue_relations",
]
SERVICE_ROLE = "Automate recouvrement"  # the service's own role (provisioned, checked)
# Role of the people and groups who receive tickets: assignable, and able to work them.
STAFF_PERMISSIONS = [
    "view_issues",
    "add_issues",
    "edit_issues",
    "add_issue_notes",
    "manage_subtasks",
    "manage_issue_relations",
]


@dataclass(frozen=True)
class CustomFieldSpec:
    name: str
    format: str  # string, text, bool, list, int, float, date
    trackers: list[str]
    values: list[str] = field(default_factory=list)
    searched: bool = False  # the service filters on it: must be "used as a filter"
    # The trackers on which the service writes it (issue 15): there it must not be read-only
    # for the service's role in the workflow (`redmine check --redmine-dir`, provision.rb --check).
    written: list[str] = field(default_factory=list)
    # The service writes it in the Redmine's text format (issue 17): its "Formatage du texte"
    # must be "Formaté" (text_formatting "full"), or the markup shows as typed.
    formatted: bool = False


@dataclass(frozen=True)
class RedmineSpec:
    project: str
    statuses: list[dict]
    trackers: list[str]
    custom_fields: list[CustomFieldSpec]
    groups: list[str]
    service_role: dict
    staff_role: dict
    service_user: dict
    # Issue 15: the core attributes the service sets, by tracker (Redmine's workflow field
    # names; ``status_id``: the service needs the transitions to the closed status there).
    written_attributes: dict[str, list[str]] = field(default_factory=dict)
    # The text format of the service's notes and descriptions (``redmine_text_format``):
    # Redmine's ``text_formatting`` must be the same (provision.rb --check).
    text_format: str = "textile"

    def as_json_dict(self) -> dict:
        return asdict(self)


def build_spec(settings: Settings) -> RedmineSpec:
    t, f, v = settings.trackers, settings.fields, settings.values
    all_trackers = list(t.model_dump().values())
    file_trackers = [t.mandate_register, t.litigation, t.prevention_reminder, t.fee_cancellation, t.debt_writeoff]
    case_trackers = [t.litigation, t.debt_writeoff]
    deadline_trackers = [t.litigation, t.assignation, t.execution]
    created = [x for x in all_trackers if x != t.mandate_register]

    # Where the service writes each field (issue 15: the flows' NewIssue and update_issue
    # custom_fields): these on every tracker that carries them, those on the trackers named.
    written_everywhere = {f.requested_amount, f.estimated_cost, f.forfeiture_date, f.legal_check, f.decision,
                          f.decision_reason, f.overdue, f.phone, f.balance, f.unpaid_terms, f.reminder_phase,
                          f.debtor_kind, f.plan_eligible, f.plan_proposal, f.deadline, f.deadline_reason}
    holders = [t.litigation, t.fee_cancellation, t.debt_writeoff, t.prevention_reminder]  # P-12, C-33, C-31, P-4
    handed_over = [t.litigation, t.debt_writeoff]  # P-12 from the ledger, C-31 copied from the litigation file
    written_on = {f.mandate_number: created, f.operation_key: created, f.tenant_ref: holders, f.owner_ref: holders,
                  f.debtors: [t.litigation], f.tenant_in_premises: [t.litigation], f.debt_amount: handed_over,
                  f.last_unpaid_date: handed_over}

    def cf(name: str, fmt: str, trackers: list[str], values: list[str] | None = None, searched: bool = False):
        written = trackers if name in written_everywhere else written_on.get(name, [])
        return CustomFieldSpec(name, fmt, trackers, values or [], searched, list(written))

    fields = [
        cf(f.mandate_number, "string", all_trackers, searched=True),
        cf(f.tenant_ref, "string", file_trackers, searched=True),
        cf(f.owner_ref, "string", file_trackers, searched=True),
        cf(f.debtors, "text", case_trackers),
        cf(f.tenant_in_premises, "bool", case_trackers),
        cf(f.lease_type, "list", [*case_trackers, t.assignation],
           [v.lease_residential, v.lease_commercial]),
        cf(f.debt_amount, "float", case_trackers),
        cf(f.rent_only_debt, "bool", case_trackers),
        cf(f.gli_lot, "bool", case_trackers),
        cf(f.owner_account, "list", case_trackers, [v.owner_account_credit, v.owner_account_debit]),
        cf(f.last_unpaid_date, "date", case_trackers),
        cf(f.starred_tenant, "bool", case_trackers, searched=True),  # the write-off scan's filter (C-31)
        cf(f.owner_written_refusal, "bool", case_trackers),
        cf(f.requested_amount, "float", [t.funds_request]),
        cf(f.provision_request_date, "date", [t.litigation]),
        cf(f.funds_received_date, "date", [t.litigation]),
        cf(f.forfeiture_date, "date", [t.litigation]),
        cf(f.service_date, "date", [t.litigation]),
        cf(f.judgment_date, "date", [t.assignation, t.injunction]),
        cf(f.judgment_service_date, "date", [t.assignation, t.injunction]),  # L-11 on the injonction
        cf(f.original_received_date, "date", [t.assignation]),
        cf(f.file_sent_date, "date", [t.litigation]),
        cf(f.act_unpaid, "bool", [t.litigation]),
        cf(f.injunction_contested, "bool", [t.injunction]),
        cf(f.judgment_outcome, "list", [t.assignation, t.injunction], [v.judgment_favourable, v.judgment_unfavourable]),
        cf(f.eviction_ordered, "bool", [t.assignation]),
        cf(f.eviction_order_date, "date", [t.eviction]),
        cf(f.tenant_stays, "bool", [t.eviction]),
        cf(f.tenant_left_date, "date", [t.eviction]),
        cf(f.estimated_cost, "float", [t.assignation, t.injunction, t.execution, t.eviction]),
        cf(f.expense_kind, "list", [t.supplier_payment], [v.expense_fees, v.expense_other]),
        cf(f.gli_indemnified, "bool", [t.litigation]),
        cf(f.justification, "text", [t.fee_cancellation]),
        cf(f.decision, "list", [t.fee_cancellation], [v.decision_accepted, v.decision_refused]),
        cf(f.decision_reason, "text", [t.fee_cancellation]),
        cf(f.dg_escalation, "bool", [t.fee_cancellation]),
        cf(f.overdue, "bool", [t.fee_cancellation]),
        cf(f.owner_informed_date, "date", [t.debt_writeoff]),
        cf(f.writeoff_date, "date", [t.debt_writeoff]),
        replace(cf(f.legal_check, "text", [t.litigation]), formatted=True),  # app/legal/flows.py legal_text
        cf(f.legal_override, "bool", [t.litigation, t.eviction]),
        cf(f.calendar_zone, "list", [t.litigation], list(v.zones)),
        cf(f.lease_date, "date", [t.litigation]),
        cf(f.clause_delay, "string", [t.litigation]),
        cf(f.guarantor_served_date, "date", [t.litigation]),
        cf(f.hearing_date, "date", [t.litigation]),
        cf(f.prefect_notice_date, "date", [t.litigation]),
        cf(f.legal_person_landlord, "bool", [t.litigation]),
        cf(f.ccapex_date, "date", [t.litigation]),
        cf(f.monthly_rent, "float", [t.litigation]),
        cf(f.default_judgment, "bool", [t.assignation]),
        cf(f.eviction_planned_date, "date", [t.eviction]),
        cf(f.phone, "string", [t.prevention_reminder]),
        cf(f.balance, "float", [t.prevention_reminder]),
        cf(f.unpaid_terms, "int", [t.prevention_reminder]),
        cf(f.reminder_phase, "int", [t.prevention_reminder]),
        cf(f.debtor_kind, "list", [t.prevention_reminder], [v.kind_new_entrant, v.kind_accidental, v.kind_recidivist]),
        cf(f.plan_eligible, "bool", [t.prevention_reminder]),
        cf(f.plan_proposal, "text", [t.prevention_reminder]),
        cf(f.plan_accepted_date, "date", [t.prevention_reminder]),
        cf(f.plan_months, "int", [t.prevention_reminder]),
        cf(f.deadline, "date", deadline_trackers),
        cf(f.deadline_reason, "string", deadline_trackers),
        # Every ticket the service creates carries its operation key, searched before creating.
        cf(f.operation_key, "string", created, searched=True),
    ]
    s, r = settings.statuses, settings.routing
    return RedmineSpec(
        project=settings.project,
        statuses=[
            {"name": s.new, "closed": False},
            {"name": s.in_progress, "closed": False},
            {"name": s.closed, "closed": True},
        ],
        trackers=all_trackers,
        custom_fields=fields,
        groups=[r.litigation_group, r.litigation_manager, r.back_office_group, r.accounting_group,
                r.management_group, r.prevention_group, r.cesf_group, r.social_litigation_group, *r.agencies],
        service_role={"name": SERVICE_ROLE, "permissions": SERVICE_PERMISSIONS, "assignable": False},
        staff_role={"name": "Équipe recouvrement", "permissions": STAFF_PERMISSIONS, "assignable": True},
        service_user={"login": "recouvrement", "firstname": "Automate", "lastname": "Recouvrement",
                      "mail": "recouvrement@example.invalid"},
        written_attributes={
            "assigned_to_id": created,
            "parent_issue_id": created,
            "start_date": [t.fee_cancellation, t.debt_writeoff],  # C-35, C-32
            "due_date": [t.fee_cancellation, t.debt_writeoff, t.task],  # C-35, C-32, L-8
            "status_id": [t.task],  # L-8: the CAF task closed when the debt is paid
        },
        text_format=settings.redmine_text_format,
    )
