"""Shared set-up of the unit tests: the in-memory Redmine, a real SQLite file, a fixed clock."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from app.deadlines import service as deadlines
from app.deadlines.service import Applied, Wanted
from app.inbox import service
from app.inbox.flows import parse_delivery
from app.inbox.models import InboxEvent
from integrations.redmine.fake import FakeRedmine
from tests.postgres import create_database

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
LITIGATION_GROUP = 500
DG_GROUP = 510
LITIGATION_MANAGER = 520
BACK_OFFICE = 540
GESTIONNAIRE = 7
CLERK = 3
THREE_PARTIES = "Jean Dupont ; locataire\nMarie Durand ; colocataire\nPaul Martin ; caution"


def database_url(tmp_path) -> str:
    """A SQLite file; or, with TEST_POSTGRES_URL (``make unit-postgres``), a fresh database
    on that PostgreSQL server (dropped at the end of the run)."""
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    if not admin_url:
        return f"sqlite:///{tmp_path}/unit.db"
    name, url = create_database(admin_url)
    CREATED_DATABASES.append(name)
    return url


CREATED_DATABASES: list[str] = []


def make_context(tmp_path, settings: Settings | None = None, now: datetime = NOW) -> Context:
    db = Database(database_url(tmp_path))
    db.migrate()
    redmine = FakeRedmine(principals={"Contentieux": LITIGATION_GROUP, "DG": DG_GROUP,
                                      "Responsable contentieux": LITIGATION_MANAGER, "Back office": BACK_OFFICE})
    return Context(settings=settings or Settings(), clock=Clock(now), db=db, redmine=redmine)


def litigation_fields(mandate: str = "M-1", **overrides: str) -> dict[str, str]:
    fields = {
        "N° mandat": mandate, "Réf. locataire": "LOC-1", "Réf. propriétaire": "PROP-1",
        "Débiteurs": THREE_PARTIES, "Locataire dans les lieux": "1", "Montant de la dette": "2450.50",
        "Compte propriétaire": "Débiteur",
    }
    fields.update(overrides)
    return fields


def add_register(redmine: FakeRedmine, mandate: str = "M-1", assignee: int | None = GESTIONNAIRE):
    return redmine.add("Registre des mandats", f"Mandat {mandate}", assigned_to_id=assignee,
                       **{"N° mandat": mandate})


def add_litigation(redmine: FakeRedmine, **fields: str):
    return redmine.add("Contentieux", "Impayés", author_id=CLERK, **litigation_fields(**fields))


def deliver(ctx, issue_id, journal_id=None, event_type="issue.updated"):
    data = {"issue": {"id": issue_id}}
    if journal_id:
        data["journal"] = {"id": journal_id}
    body = json.dumps({"type": event_type, "data": data}).encode()
    return service.store_event(ctx.db, parse_delivery(body), ctx.clock.now()).event_id


def event(ctx, event_id) -> InboxEvent:
    with ctx.db.session() as session:
        return session.get(InboxEvent, event_id)


def claim_one(db, now, lease_seconds):
    """One due deadline claimed, as a scheduler's batch of one; None when none is due."""
    from app.deadlines.service import claim_batch

    claimed = claim_batch(db, now, lease_seconds, 1)
    return claimed[0] if claimed else None


def apply_wanted(db: Database, issue_id: int, wanted: list[Wanted], now: datetime) -> Applied:
    """The deadline store made to match ``wanted`` for one ticket."""
    return deadlines.store_wanted(db, [issue_id], lambda _issue_id, _fired: wanted, now)[issue_id]
