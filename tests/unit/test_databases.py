"""The inbox and the deadline store on both engines (SQLite file, and PostgreSQL: the test
server of ``scripts/postgres-local.sh``)."""

import json
from datetime import timedelta

import pytest

from app.database import Database
from app.inbox import service
from app.inbox.flows import parse_delivery
from tests.postgres import create_database, drop_database
from tests.unit.helpers import NOW, apply_wanted, claim_one


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path}/inbox.db")
        return
    name, url = create_database()
    database = Database(url)
    yield database
    database.engine.dispose()
    drop_database(name)


def test_store_once_then_claim_in_order(db):
    db.migrate()
    body = json.dumps({"type": "issue.updated", "data": {"issue": {"id": 5}, "journal": {"id": 9}}}).encode()
    first = service.store_event(db, parse_delivery(body), NOW)
    again = service.store_event(db, parse_delivery(body), NOW)
    assert first.created and not again.created and first.event_id == again.event_id

    claimed = service.claim_next(db, NOW, 60)
    assert claimed.id == first.event_id and claimed.received_at == NOW
    assert service.claim_next(db, NOW, 60) is None
    service.finish(db, claimed.id, "ok", NOW + timedelta(seconds=1))
    assert service.count_by_state(db) == {"done": 1}


def test_deadline_store_claims_once_and_tolerates_a_repeated_insert(db):
    from app.deadlines import service as deadlines
    from app.deadlines.service import Wanted

    db.migrate()
    wanted = [Wanted("C-14/provision", NOW, "déchéance")]
    apply_wanted(db, 3, wanted, NOW)
    apply_wanted(db, 3, wanted, NOW)
    first = claim_one(db, NOW, 60)
    assert first is not None and first.due_at == NOW and claim_one(db, NOW, 60) is None
    deadlines.store_wanted(db, [3], lambda _issue, _fired: wanted, NOW, results={first.id: "ok"})
    assert deadlines.listing(db) == [] and deadlines.fired_kinds(db, 3)["C-14/provision"].id == first.id


def test_the_migrations_build_exactly_the_models(db):
    """Alembic's head and the SQLAlchemy models describe the same tables, on both engines."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import app.claims.models  # noqa: F401
    import app.deadlines.models  # noqa: F401
    import app.inbox.models  # noqa: F401
    import app.leadership.models  # noqa: F401
    import app.prevention.models  # noqa: F401
    from app.database import Base

    db.migrate()
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_prevention_runs_and_letters_once_on_both_engines(db):
    from datetime import date

    from app.prevention import service as prevention
    from app.prevention.models import RunKind

    db.migrate()
    ledger = prevention.store_import(db, "x.csv", "2027-01", "0" * 64, [], [], NOW)
    first = prevention.start_run(db, "2027-01", RunKind.letters, date(2027, 1, 11), ledger.id, NOW)
    assert prevention.start_run(db, "2027-01", RunKind.letters, date(2027, 1, 11), ledger.id, NOW).id == first.id
    case = prevention.open_case(db, "A", lambda previous: prevention.DebtorKind.accidental, date(2027, 1, 11))
    for _ in range(2):
        prevention.record_letter(db, first.id, case.id, "A", 1, "k", "/tmp/l.docx", NOW)
    assert len(prevention.run_letters(db, first.id)) == 1
