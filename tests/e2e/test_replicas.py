"""Issue 8: several `recouvrement serve` replicas on one PostgreSQL database, against the
real local Redmine, under faults — duplicated and shuffled deliveries, kill -9 of the
scheduler's holder, Redmine stopped, Redmine refusing (422), the database restarted."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from app.database import Database
from app.deadlines.models import Deadline, DeadlineState
from app.inbox import service as inbox
from app.inbox.models import EventState, InboxEvent
from app.leadership import service as leases
from tests.e2e.conftest import WEBHOOK_SECRET, local_redmine
from tests.e2e.postgres_server import PrivatePostgres
from tests.e2e.processes import Replica, wait_for
from tests.e2e.redmine_admin import rails_runner, sign, signed_delivery
from tests.e2e.test_litigation_opening import assert_opened, open_file
from tests.postgres import create_database, drop_database
from tests.sockets import HangingRedmine

# Provision requested 60 days ago: its C-14 deadline (D+45) is due as soon as it is stored.
PROVISION_DATE = (date.today() - timedelta(days=60)).isoformat()
REPLICA_SETTINGS = {
    "RECOUVREMENT_WORKER__WORK_INTERVAL_SECONDS": "1",
    "RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3600",  # webhooks only
    "RECOUVREMENT_SYNC_SINCE": "2100-01-01T00:00:00+00:00",
    "RECOUVREMENT_WORKER__LEADER_LEASE_SECONDS": "6",
    "RECOUVREMENT_WORKER__LEADER_RENEW_SECONDS": "2",
    "RECOUVREMENT_DEADLINES__TICK_INTERVAL_SECONDS": "2",
    "RECOUVREMENT_DEADLINES__LEASE_SECONDS": "15",
    "RECOUVREMENT_WORKER__LEASE_SECONDS": "15",
    "RECOUVREMENT_WORKER__BACKOFF_BASE_SECONDS": "1",
    "RECOUVREMENT_WORKER__BACKOFF_MAX_SECONDS": "3",
    "RECOUVREMENT_WORKER__MAX_ATTEMPTS": "1000",
}


@pytest.fixture
def on_postgres(service):
    """The test's service on a fresh PostgreSQL database (migrated), dropped afterwards."""
    name, url = create_database()
    db = Database(url)
    db.migrate()
    yield replace(service, settings=service.settings.model_copy(update={"database_url": url}),
                  env=service.env | {"RECOUVREMENT_DATABASE_URL": url}), db
    db.engine.dispose()
    drop_database(name)


def replicas(service, count: int, **extra: str) -> list[Replica]:
    started = [Replica(service.env | REPLICA_SETTINGS | extra) for _ in range(count)]
    return [replica.wait_up() for replica in started]


def stop_all(running: list[Replica], service) -> None:
    for replica in running:
        output = replica.stop()
        assert service.settings.redmine_api_key.get_secret_value() not in output
        assert WEBHOOK_SECRET not in output


def events_left(db: Database) -> int:
    counts = inbox.count_by_state(db)
    return counts.get("pending", 0) + counts.get("processing", 0)


def provision_deadlines(db: Database) -> list[Deadline]:
    with db.session() as session:
        return list(session.scalars(select(Deadline).where(Deadline.kind == "C-14/provision")))


def file_with_provision(admin, service, clerk, gestionnaire):
    mandate, reg, lit = open_file(admin, service, clerk, gestionnaire)
    ids = admin.ids("/custom_fields.json", "custom_fields")
    admin.update_issue(lit["id"], as_user=clerk.login,
                       custom_fields=[{"id": ids["Date de demande de provision"], "value": PROVISION_DATE}])
    return mandate, reg, lit


def deliveries_of(admin, issue_id: int) -> list[bytes]:
    """What Redmine's webhook sends for the issue's creation and for each of its journals."""
    issue = admin.issue(issue_id)
    bodies = [signed_delivery(issue, "issue.created", WEBHOOK_SECRET)[0]]
    bodies += [signed_delivery(issue, "issue.updated", WEBHOOK_SECRET, journal)[0] for journal in issue["journals"]]
    return bodies


def outcome(admin, mandate: str, reg_id: int, lit_id: int, staff_notes: int) -> dict:
    """What the service made of one file, with its mandate number taken out: comparable across files."""
    def normal(text: str) -> str:
        return re.sub(r"#\d+", "#N", re.sub(rf"(?<!\d){lit_id}(?!\d)", "N", text.replace(mandate, "M")))

    def shape(issue: dict) -> tuple[str, str, str]:
        return issue["tracker"]["name"], normal(issue["subject"]), issue["status"]["name"]

    lit = admin._call("GET", f"/issues/{lit_id}.json", params={"include": "journals,attachments"})["issue"]
    notes = [normal(j["notes"]) for j in lit["journals"] if j.get("notes")]
    return {
        "file": sorted(shape(c) for c in admin.children(lit_id)),
        "register": sorted(shape(c) for c in admin.children(reg_id)),
        "service notes": Counter(n.split("\n", 1)[0] for n in notes[staff_notes:]),
        "attachments": sorted(normal(a["filename"]) for a in lit["attachments"]),
    }


def test_two_replicas_200_shuffled_events_each_delivered_1_to_3_times(admin, service, on_postgres, clerk,
                                                                      gestionnaire, tmp_path):
    """20 files (register, litigation ticket, provision date, 7 clerk's notes): 200 events.
    Each goes 1–3 times, shuffled, to either replica; every file must end as a reference file
    processed alone, once, and every C-14 deadline must fire once."""
    service, db = on_postgres
    reference = file_with_provision(admin, service, clerk, gestionnaire)
    for n in range(7):
        admin.update_issue(reference[2]["id"], as_user=clerk.login, notes=f"Appel du locataire n° {n + 1}")
    alone = {"RECOUVREMENT_DATABASE_URL": f"sqlite:///{tmp_path}/alone.db"}
    service.cli("sync", env=alone)
    service.cli("tick", env=alone)

    files, bodies = [], []
    for _ in range(20):
        mandate, reg, lit = file_with_provision(admin, service, clerk, gestionnaire)
        for n in range(7):
            admin.update_issue(lit["id"], as_user=clerk.login, notes=f"Appel du locataire n° {n + 1}")
        files.append((mandate, reg, lit))
        bodies += deliveries_of(admin, reg["id"]) + deliveries_of(admin, lit["id"])
    assert len(bodies) == 200

    rng = random.Random(8)
    sends = [body for body in bodies for _ in range(rng.randint(1, 3))]
    rng.shuffle(sends)
    running = replicas(service, 2)
    try:
        def send(body: bytes) -> int:
            target = rng.choice(running)
            return httpx.post(f"{target.url}/webhooks/redmine", content=body, headers=sign(body, WEBHOOK_SECRET),
                              timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(send, sends))
        assert set(statuses) <= {200, 202} and statuses[202] == 200  # each event stored once

        wait_for(lambda: events_left(db) == 0 and len(provision_deadlines(db)) == 20
                 and all(d.state is DeadlineState.fired for d in provision_deadlines(db)), 600,
                 "200 événements traités et 20 échéances C-14 déclenchées", every=2)
        assert inbox.count_by_state(db) == {"done": 200}
        holders = {replica.pid for replica in running}
        assert int(leases.current(db, "scheduler").holder.split(":")[1]) in holders
    finally:
        stop_all(running, service)

    expected = outcome(admin, reference[0], reference[1]["id"], reference[2]["id"], staff_notes=7)
    assert sum(n for line, n in expected["service notes"].items() if "dépassée sans réception des fonds" in line) == 1
    assert [t for t, _, _ in expected["register"]].count("Perte de mandat") == 1
    for mandate, reg, lit in files:
        assert outcome(admin, mandate, reg["id"], lit["id"], staff_notes=7) == expected, mandate
    # Fired once: one note and one Perte de mandat per file (above). A firing may have been
    # tried again (a read-back disturbed by the other replica's concurrent work): never twice done.
    assert [(d.state, d.fired_at is not None) for d in provision_deadlines(db)] == [(DeadlineState.fired, True)] * 20


def test_kill_9_of_the_scheduler_holder_while_deadlines_are_due(admin, service, on_postgres, clerk, gestionnaire):
    """Six files whose C-14 deadlines are due; the replica holding the scheduler lease is
    killed while it fires one: the other takes over and fires the rest, each once."""
    service, db = on_postgres
    files = [file_with_provision(admin, service, clerk, gestionnaire) for _ in range(6)]
    service.cli("sync")  # opened and their deadlines stored, due, not fired
    assert [d.state for d in provision_deadlines(db)] == [DeadlineState.pending] * 6

    running = [Replica(service.env | REPLICA_SETTINGS) for _ in range(2)]
    try:
        def one_firing():
            with db.session() as session:
                return session.scalar(select(Deadline).where(Deadline.state == DeadlineState.firing))

        wait_for(one_firing, 90, "une échéance en cours de déclenchement", every=0.05)
        holder_pid = int(leases.current(db, "scheduler").holder.split(":")[1])
        [victim] = [r for r in running if r.pid == holder_pid]
        victim.kill()
        [survivor] = [r for r in running if r is not victim]

        taken = wait_for(lambda: int(leases.current(db, "scheduler").holder.split(":")[1]) == survivor.pid, 30,
                         "reprise du bail par l'autre instance (6 s de bail + 2 s de renouvellement)")
        assert taken and survivor.health()["scheduler"] == "leader"
        wait_for(lambda: all(d.state is DeadlineState.fired for d in provision_deadlines(db)), 120,
                 "les 6 échéances déclenchées", every=1)
    finally:
        stop_all(running, service)

    for mandate, reg, lit in files:
        losses = [c for c in admin.children(reg["id"]) if c["tracker"]["name"] == "Perte de mandat"]
        notes = [n for n in admin.notes(lit["id"]) if "dépassée sans réception des fonds" in n]
        assert (len(losses), len(notes)) == (1, 1), mandate


def test_a_leader_stuck_on_a_silent_redmine_stops_renewing_and_the_other_replica_takes_over(service, on_postgres):
    """Issue 14: the leader's Redmine accepts connections and never answers (no read timeout
    here, so its polling job hangs): the job is reported stuck, the lease is not renewed and
    the other replica takes it; once the job ends, the first renews again, as a follower."""
    service, db = on_postgres
    hanging = HangingRedmine()
    stuck = {"RECOUVREMENT_REDMINE_URL": hanging.url, "RECOUVREMENT_REDMINE_READ_TIMEOUT_SECONDS": "3600",
             "RECOUVREMENT_WORKER__STUCK_AFTER_SECONDS": "3"}
    first = Replica(service.env | REPLICA_SETTINGS | stuck).wait_up()
    running = [first]
    try:
        wait_for(lambda: (first.health() or {}).get("scheduler") == "leader", 30, "première instance au bail")
        wait_for(lambda: httpx.get(f"{first.url}/health", timeout=5).status_code == 503, 30, "tâche signalée bloquée")
        health = httpx.get(f"{first.url}/health", timeout=5).json()
        assert health["status"] == "bloqué"  # every leader job waits on Redmine, polling among them
        assert any(r.startswith("tâche « poll » bloquée depuis le ") for r in health["stuck"]), health
        second = Replica(service.env | REPLICA_SETTINGS).wait_up()
        running.append(second)
        wait_for(lambda: leases.current(db, "scheduler").holder.split(":")[1] == str(second.pid), 30,
                 "reprise du bail par l'autre instance (6 s de bail + 2 s de renouvellement)")
        assert second.health()["scheduler"] == "leader"
        assert "non renouvelé, une autre instance pourra le prendre : tâche « " in first.output()

        hanging.drop_held()  # the job ends (connection closed): normal renewal resumes, as a follower
        wait_for(lambda: httpx.get(f"{first.url}/health", timeout=5).status_code == 200, 30, "tâche terminée")
        assert first.health() == {"status": "ok", "scheduler": "follower"}
        assert leases.current(db, "scheduler").holder.split(":")[1] == str(second.pid)
    finally:
        stop_all(running, service)
        hanging.close()


def test_redmine_stopped_during_a_batch_then_back(admin, service, on_postgres, clerk, gestionnaire):
    service, db = on_postgres
    files = [open_file(admin, service, clerk, gestionnaire) for _ in range(4)]
    [replica] = replicas(service, 1)
    try:
        for _, _, lit in files:
            body = deliveries_of(admin, lit["id"])[0]
            assert httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=sign(body, WEBHOOK_SECRET),
                              timeout=30).status_code == 202
        wait_for(lambda: inbox.count_by_state(db).get("done"), 120, "un premier événement traité", every=0.1)
        local_redmine("stop")
        try:
            def waiting_for_redmine():
                return [e for e in inbox.list_events(db, EventState.pending) if "injoignable" in (e.last_error or "")]

            wait_for(waiting_for_redmine, 60, "un événement en attente de Redmine")
        finally:
            local_redmine("start")
        wait_for(lambda: events_left(db) == 0, 180, "les événements repris après le retour de Redmine", every=1)
    finally:
        stop_all([replica], service)
    assert inbox.count_by_state(db) == {"done": 4}
    for _, reg, lit in files:
        assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer", cost="900,00", funds=900)


def test_a_422_from_redmine_is_told_on_the_file_and_completes_once_the_admin_relents(admin, service, on_postgres,
                                                                                     clerk, gestionnaire):
    """A field made required by the Redmine admin, which the service does not fill: Redmine
    answers 422 to the task it creates. Issue 15: the rest of the opening is done, the file
    says what Redmine refused (its words) once, the event waits — never failed — and, once
    the admin relents, completes by itself, nothing twice."""
    service, db = on_postgres
    name = f"Visa e2e {random.randrange(10**6)}"
    rails_runner(f"""
        f = IssueCustomField.create!(name: {json.dumps(name)}, field_format: 'string', is_required: true,
              is_for_all: false, tracker_ids: [Tracker.find_by!(name: 'Tâche gestionnaire').id])
        f.projects << Project.find_by!(identifier: {json.dumps(service.project)})
    """)
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    [replica] = replicas(service, 1)
    try:
        body = deliveries_of(admin, lit["id"])[0]
        httpx.post(f"{replica.url}/webhooks/redmine", content=body, headers=sign(body, WEBHOOK_SECRET), timeout=30)
        [waiting] = wait_for(lambda: [e for e in inbox.list_events(db, EventState.pending) if e.last_error], 120,
                             "événement en attente")
        assert "refusé par Redmine" in waiting.last_error  # tried again by the replica meanwhile, maybe
        [told] = [n for n in admin.notes(lit["id"]) if n.split("\n")[0].strip("*") == "Étapes refusées par Redmine"]
        assert name in told and "créer la tâche d'information du propriétaire" in told
    finally:
        stop_all([replica], service)
        rails_runner(f"IssueCustomField.where(name: {json.dumps(name)}).destroy_all")
    later = (waiting.next_attempt_at + timedelta(seconds=1)).isoformat()
    service.cli("worker", "--once", "--now", later)  # its backoff over: no `events retry`
    assert inbox.count_by_state(db) == {"done": 1}
    children = admin.children(lit["id"])
    assert sorted(c["tracker"]["name"] for c in children) == ["Demande de fonds", "Tâche gestionnaire"]
    [task] = [c for c in children if c["tracker"]["name"] == "Tâche gestionnaire"]
    assert f"tâche #{task['id']}" in admin.notes(lit["id"])[-1]  # the analysis, now complete
    assert len([n for n in admin.notes(lit["id"]) if n.split("\n")[0].strip("*") == "Étapes refusées par Redmine"]) == 1


def test_database_restarted_under_load_loses_no_acknowledged_event(service, tmp_path):
    """A PostgreSQL of the test's own, restarted while deliveries arrive: every delivery
    answered 2xx is stored and processed; the others were refused (503) and are sent again."""
    # Issues that do not exist: each event is one Redmine read (404), done with a reason.
    keys = {}
    for n in range(350):
        body = json.dumps({"type": "issue.updated",
                           "data": {"issue": {"id": 900_000_000 + n}, "journal": {"id": n + 1}}}).encode()
        keys[body] = f"issue.updated:{900_000_000 + n}:{n + 1}"
    bodies = list(keys)
    with PrivatePostgres(tmp_path) as postgres:
        db = Database(postgres.url)
        db.migrate()
        served = replace(service, env=service.env | {"RECOUVREMENT_DATABASE_URL": postgres.url})
        [replica] = replicas(served, 1)
        answers: dict[bytes, int] = {}

        def send(body: bytes) -> None:
            try:
                answers[body] = httpx.post(f"{replica.url}/webhooks/redmine", content=body,
                                           headers=sign(body, WEBHOOK_SECRET), timeout=30).status_code
            except httpx.TransportError:
                answers[body] = 0

        def stored_keys() -> set[str]:
            with db.session() as session:
                return set(session.scalars(select(InboxEvent.dedup_key)))

        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(send, bodies[:100]))
                restart = threading.Thread(target=postgres.restart)
                restart.start()  # while the next 200 arrive
                list(pool.map(send, bodies[100:300]))
                restart.join()
                list(pool.map(send, bodies[300:]))
            assert all(answers[b] in (200, 202) for b in bodies[:100] + bodies[300:])  # before, and reconnected after
            acknowledged = [b for b in bodies if answers[b] in (200, 202)]
            refused = [b for b in bodies if answers[b] not in (200, 202)]
            assert all(answers[b] in (0, 503) for b in refused)
            assert {keys[b] for b in acknowledged} <= stored_keys()
            for body in refused:  # what a sender does with a 503: send it again
                send(body)
                assert answers[body] in (200, 202)
            assert stored_keys() == set(keys.values())
            wait_for(lambda: inbox.count_by_state(db) == {"done": 350}, 300, "350 événements traités", every=1)
        finally:
            stop_all([replica], served)
            db.engine.dispose()
