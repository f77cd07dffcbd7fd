"""Issue 16 end to end: `recouvrement reconcile` against the real local Redmine finds what
polling cannot see — a litigation file with a pending deadline deleted by an administrator,
moved to another project, or given a relation (Redmine does not change ``updated_on`` for
it) — and handles it as an event would be. Time driven by ``--now``."""

from __future__ import annotations

import uuid

from app.inbox import service as inbox
from app.inbox.models import EventState
from tests.e2e.test_deadlines import D, D45, mandate_losses, opened, set_fields

LATER = "2027-01-05T10:00:00+01:00"


def with_provision(admin, service, clerk, gestionnaire):
    """An opened litigation file with its provision asked (C-14 pending), as polling left it."""
    mandate, reg, lit = opened(admin, service, clerk, gestionnaire)
    set_fields(admin, lit["id"], **{"Date de demande de provision": D})
    service.cli("sync", "--now", "2027-01-04T10:00:00+01:00")
    assert "C-14" in service.cli("deadlines").stdout
    return mandate, reg, lit


def events_of(service, issue_id) -> list:
    return [e for e in inbox.list_events(service.context().db, limit=1000) if e.issue_id == issue_id]


def reconciled(service, issue_id) -> list:
    return [e for e in events_of(service, issue_id) if e.event_type == "issue.reconciled"]


def test_a_deleted_file_has_its_deadlines_cancelled(admin, service, clerk, gestionnaire):
    mandate, _, lit = with_provision(admin, service, clerk, gestionnaire)
    admin._call("DELETE", f"/issues/{lit['id']}.json")  # its sub-tasks go with it

    out = service.cli("reconcile", "--now", LATER).stdout
    assert f"#{lit['id']}" in out.split("absent(s) de Redmine")[1].split("dans un autre projet")[0]
    [event] = reconciled(service, lit["id"])
    assert event.state is EventState.done and "introuvable" in event.result and "C-14/provision cancelled" in event.result
    assert "C-14" not in service.cli("deadlines").stdout
    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout
    assert mandate_losses(admin, service, mandate) == []
    assert f"#{lit['id']}" not in service.cli("reconcile", "--now", LATER).stdout  # no longer tracked


def test_a_file_moved_to_another_project_has_its_deadlines_cancelled_and_nothing_written_there(
        admin, service, clerk, gestionnaire):
    """Moved out with C-14 pending: polling no longer lists it; the issue list without a
    project filter still answers it, in its new project (the service can read that one)."""
    mandate, _, lit = with_provision(admin, service, clerk, gestionnaire)
    other = f"e2e-autre-{uuid.uuid4().hex[:6]}"
    admin.new_project(other, "recouvrement", [clerk, gestionnaire])
    admin.update_issue(lit["id"], project_id=other, parent_issue_id="")
    journals = len(admin.issue(lit["id"])["journals"])

    out = service.cli("reconcile", "--now", LATER).stdout
    assert f"#{lit['id']}" in out.split("dans un autre projet")[1].split("modifié(s)")[0]  # its sub-tasks with it
    [event] = reconciled(service, lit["id"])
    assert event.state is EventState.done and "d'un autre projet" in event.result
    assert "C-14" not in service.cli("deadlines").stdout
    assert "0 déclenchée" in service.cli("tick", "--now", D45).stdout
    assert mandate_losses(admin, service, mandate) == []
    assert len(admin.issue(lit["id"])["journals"]) == journals  # nothing written in the other project


def test_a_relation_added_is_queued_and_processed_though_polling_misses_it(admin, service, clerk, gestionnaire):
    _, _, lit = with_provision(admin, service, clerk, gestionnaire)
    service.cli("sync", "--now", LATER)  # polling reads what the service wrote on the file: no-op
    events = len(events_of(service, lit["id"]))
    updated_on = admin.issue(lit["id"])["updated_on"]
    other = admin.create_issue(service.project, "Tâche gestionnaire", "Dossier lié", {}, as_user=clerk.login)
    admin._call("POST", f"/issues/{lit['id']}/relations.json",
                json={"relation": {"issue_to_id": other["id"], "relation_type": "relates"}})
    assert admin.issue(lit["id"])["updated_on"] == updated_on  # Redmine leaves it as it was
    service.cli("sync", "--now", LATER)
    assert len(events_of(service, lit["id"])) == events  # so polling did not see it

    out = service.cli("reconcile", "--now", LATER).stdout
    assert f"#{lit['id']}" in out.split("modifié(s)")[1]
    [event] = reconciled(service, lit["id"])
    assert event.state is EventState.done and "ignoré" not in event.result
    assert "C-14" in service.cli("deadlines").stdout  # a relation changes no deadline
    again = service.cli("reconcile", "--now", LATER).stdout
    assert f"#{lit['id']}" not in again and "0 événement(s) en file" in again  # what it read is recorded
