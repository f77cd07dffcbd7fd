"""Issue 2 end to end, against the real local Redmine: a litigation file opened in Redmine
is attached to its mandate register (C-2, C-9), analysed (C-4, C-5), funded (C-6) and
followed up (C-1, C-3), through a signed webhook or through `recouvrement sync`."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient

from app.clock import Clock
from app.main import create_app
from app.processing.flows import work
from tests.e2e.conftest import WEBHOOK_SECRET, local_redmine
from tests.e2e.redmine_admin import field, signed_delivery

THREE_PARTIES = "Jean Dupont ; locataire\nMarie Durand ; colocataire\nPaul Martin ; caution"


def open_file(admin, service, clerk, gestionnaire, *, register=True, in_premises=True, account="Débiteur",
              debtors=THREE_PARTIES):
    """What litigation staff do: a register ticket (if any), then the litigation ticket."""
    mandate = f"M-{uuid.uuid4().hex[:6]}"
    reg = None
    if register:
        reg = admin.create_issue(service.project, "Registre des mandats", f"Mandat {mandate}",
                                 {"N° mandat": mandate}, assigned_to_id=gestionnaire.id)
    lit = admin.create_issue(service.project, "Contentieux", "Impayés Dupont", {
        "N° mandat": mandate, "Réf. locataire": "LOC-42", "Réf. propriétaire": "PROP-7",
        "Débiteurs": debtors, "Locataire dans les lieux": "1" if in_premises else "0",
        "Montant de la dette": "2450.50", "Compte propriétaire": account,
    }, as_user=clerk.login)
    return mandate, reg, lit


def post_webhook(client, admin, issue_id, event_type="issue.created", secret=WEBHOOK_SECRET):
    issue = admin.issue(issue_id)
    journal = issue["journals"][-1] if issue["journals"] else None
    body, headers = signed_delivery(issue, event_type, secret, journal)
    return client.post("/webhooks/redmine", content=body, headers=headers)


def assert_opened(admin, lit_id, reg_id, gestionnaire, *, act, cost, funds):
    issue = admin.issue(lit_id)
    assert issue["parent"]["id"] == reg_id  # C-2, C-9
    analyses = [n for n in admin.notes(lit_id) if "Ouverture du contentieux" in n]
    assert len(analyses) == 1
    assert act in analyses[0]  # C-4
    assert cost in analyses[0]  # C-5
    children = admin.children(lit_id)
    [task] = [c for c in children if c["subject"].startswith("Informer le propriétaire")]  # C-1, C-3
    assert task["tracker"]["name"] == "Tâche gestionnaire" and task["assigned_to"]["id"] == gestionnaire.id
    requests = [c for c in children if c["tracker"]["name"] == "Demande de fonds"]
    if funds:  # C-6
        [request] = requests
        assert request["assigned_to"]["id"] == gestionnaire.id
        assert float(field(request, "Montant demandé")) == float(funds)
    else:
        assert requests == []
    # Nothing else but the bailiff file's tasks for missing pieces (C-7, owner in credit).
    others = [c for c in children if c is not task and c not in requests]
    assert all(c["subject"].startswith("Pièce manquante") for c in others)
    return analyses[0]


def test_signed_webhook_opens_the_file_in_premises_with_owner_in_debit(admin, service, clerk, gestionnaire):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    ctx = service.context()
    with TestClient(create_app(ctx)) as client:
        response = post_webhook(client, admin, lit["id"])
    assert response.status_code == 202
    assert work(ctx).processed == 1

    note = assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer",
                         cost="900,00", funds=900)
    for name in ("Jean Dupont", "Marie Durand", "Paul Martin"):  # C-4: every party summoned
        assert name in note


def test_duplicate_delivery_replay_and_lost_local_state_create_nothing_twice(admin, service, clerk, gestionnaire,
                                                                             tmp_path):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    ctx = service.context()
    with TestClient(create_app(ctx)) as client:
        assert post_webhook(client, admin, lit["id"]).status_code == 202
        duplicate = post_webhook(client, admin, lit["id"])
        assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"
        assert work(ctx).processed == 1
        journals_after_first = len(admin.issue(lit["id"])["journals"])
        # The service's own change comes back as an update: processed, and a no-op.
        assert post_webhook(client, admin, lit["id"], "issue.updated").status_code == 202
        assert work(ctx).processed == 1
    service.cli("sync")  # re-sync of everything by polling
    # A lost local database: Redmine itself says what exists already.
    lost = service.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/new.db"})
    fresh_env = service.env | {"RECOUVREMENT_DATABASE_URL": lost.database_url}
    service.env, previous = fresh_env, service.env
    service.cli("sync")
    service.env = previous

    assert len(admin.issue(lit["id"])["journals"]) == journals_after_first
    assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer", cost="900,00", funds=900)


def test_sync_opens_the_file_of_a_tenant_who_left_with_owner_in_credit(admin, service, clerk, gestionnaire):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire, in_premises=False, account="Créditeur",
                            debtors="Jean Dupont ; locataire")
    out = service.cli("sync").stdout
    assert "traitement" in out

    note = assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="sommation de payer", cost="300,00",
                         funds=None)
    assert "Compte propriétaire créditeur" in note
    journals = len(admin.issue(lit["id"])["journals"])
    service.cli("sync")
    assert len(admin.issue(lit["id"])["journals"]) == journals


def test_missing_register_is_reported_to_the_author_and_nothing_else_happens(admin, service, clerk, gestionnaire):
    mandate, _, lit = open_file(admin, service, clerk, gestionnaire, register=False)
    service.cli("sync")
    service.cli("sync")

    issue = admin.issue(lit["id"])
    notes = admin.notes(lit["id"])
    assert len(notes) == 1 and mandate in notes[0] and "Registre des mandats" in notes[0]
    assert issue["assigned_to"]["id"] == clerk.id
    assert "parent" not in issue and admin.children(lit["id"]) == []

    # The register is created afterwards: the waiting file is attached and opened.
    reg = admin.create_issue(service.project, "Registre des mandats", f"Mandat {mandate}",
                             {"N° mandat": mandate}, assigned_to_id=gestionnaire.id)
    service.cli("sync")
    assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer", cost="900,00", funds=900)


def test_redmine_stopped_while_an_event_is_queued(admin, service, clerk, gestionnaire):
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    issue = admin.issue(lit["id"])
    body, headers = signed_delivery(issue, "issue.created", WEBHOOK_SECRET)
    ctx = service.context()
    local_redmine("stop")
    try:
        with TestClient(create_app(ctx)) as client:  # intake does not need Redmine
            assert client.post("/webhooks/redmine", content=body, headers=headers).status_code == 202
        out = service.cli("worker", "--once")
        listing = service.cli("events").stdout
        assert "pending" in listing and "injoignable" in listing and "essais=1" in listing
        for text in (out.stdout, out.stderr, listing):
            assert service.settings.redmine_api_key.get_secret_value() not in text
    finally:
        local_redmine("start")

    later = (Clock().now() + timedelta(hours=1)).isoformat()
    service.cli("worker", "--once", "--now", later)
    service.cli("worker", "--once", "--now", later)
    assert "done=1" in service.cli("events").stdout
    assert_opened(admin, lit["id"], reg["id"], gestionnaire, act="commandement de payer", cost="900,00", funds=900)


def test_a_missing_custom_field_is_told_on_the_file_and_completes_once_fixed(admin, service, clerk, gestionnaire):
    """Issue 15: the step Redmine cannot do (a field missing from the project) is told on the
    file, the rest done, the event tried again with backoff: fixed, it completes by itself."""
    _, reg, lit = open_file(admin, service, clerk, gestionnaire)
    good_env = service.env
    service.env = good_env | {"RECOUVREMENT_FIELDS__REQUESTED_AMOUNT": "Montant à appeler"}
    service.cli("sync", "--now", "2027-01-04T09:00:00+01:00")
    listing = service.cli("events").stdout
    assert "failed=" not in listing and "pending=1" in listing and "créer la demande de fonds" in listing
    [note] = [n for n in admin.notes(lit["id"]) if n.split("\n")[0].strip("*") == "Étapes refusées par Redmine"]
    assert "champ personnalisé « Montant à appeler » absent du projet" in note and "administrateur Redmine" in note

    [first] = [n for n in admin.notes(lit["id"]) if "Ouverture du contentieux" in n]  # made without it
    assert "la demande de fonds au gestionnaire n'a pas pu être créée" in first

    service.env = good_env  # the admin fixes the configuration
    service.cli("worker", "--once", "--now", "2027-01-04T10:00:00+01:00")
    assert "pending" not in service.cli("events").stdout
    [request] = [c for c in admin.children(lit["id"]) if c["tracker"]["name"] == "Demande de fonds"]
    assert float(field(request, "Montant demandé")) == 900 and request["assigned_to"]["id"] == gestionnaire.id
    assert f"demande de fonds #{request['id']}" in admin.notes(lit["id"])[-1]  # the analysis, now complete
