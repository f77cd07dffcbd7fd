"""Templates (escaping, amounts), settings precedence, the clock."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.clock import Clock, to_utc
from app.config import Settings
from app.templates import escape, format_eur


@pytest.mark.parametrize("kept", ["M-1", "Jean-Pierre", "2026-01-01", "foo_bar", "Dupont", "L'Haÿ-les-Roses"])
def test_escaping_keeps_ordinary_text(kept):
    assert escape(kept) == kept


@pytest.mark.parametrize("markup, escaped", [
    ("*x*", "&#42;x&#42;"), ("#3", "&#35;3"), ("@c@", "&#64;c&#64;"), ("-del-", "&#45;del&#45;"),
    ("_em_", "&#95;em&#95;"), ('"x":http://a', "&#34;x&#34;&#58;http&#58;//a"), ("{{toc}}", "&#123;&#123;toc&#125;&#125;"),
    ("a & b <b>", "a &#38; b &#60;b&#62;"),
])
def test_escaping_neutralises_markup(markup, escaped):
    assert escape(markup) == escaped


@pytest.mark.parametrize("amount, text", [
    (Decimal("1500"), "1\u202f500,00\u00a0€"), (Decimal("0.5"), "0,50\u00a0€"),
    (Decimal("4000.01"), "4\u202f000,01\u00a0€"), (900, "900,00\u00a0€"), (0.5, "0,50\u00a0€"),
    (4000.01, "4\u202f000,01\u00a0€"), (1500, "1\u202f500,00\u00a0€"), (Decimal("1234567.891"), "1\u202f234\u202f567,89\u00a0€"),
])
def test_amounts_in_french_notation(amount, text):
    assert format_eur(amount) == text


def test_environment_wins_over_the_yaml_file_which_wins_over_defaults(tmp_path, monkeypatch):
    config = tmp_path / "recouvrement.yaml"
    config.write_text("procedure:\n  act_cost_per_party_eur: 310\n  injunction_ceiling_eur: 5000\nproject: depuis-yaml\n")
    monkeypatch.setenv("RECOUVREMENT_CONFIG_FILE", str(config))
    monkeypatch.setenv("RECOUVREMENT_PROCEDURE__ACT_COST_PER_PARTY_EUR", "320")
    settings = Settings()
    assert settings.procedure.act_cost_per_party_eur == Decimal("320")  # environment
    assert settings.procedure.injunction_ceiling_eur == Decimal("5000")  # YAML
    assert settings.procedure.assignation_cost_eur == Decimal("1500")  # default (C-13)
    assert settings.project == "depuis-yaml"


def test_an_unreadable_yaml_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUVREMENT_CONFIG_FILE", str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match="fichier de configuration illisible"):
        Settings()


def test_secrets_never_show(monkeypatch):
    monkeypatch.setenv("RECOUVREMENT_REDMINE_API_KEY", "cle-tres-secrete")
    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_SECRET", "secret-webhook")
    settings = Settings()
    assert "cle-tres-secrete" not in repr(settings) and "secret-webhook" not in str(settings)
    assert settings.redmine_api_key.get_secret_value() == "cle-tres-secrete"
    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_SECRET", "")
    assert Settings().webhook_secret is None
    monkeypatch.setenv("RECOUVREMENT_WEBHOOK_SECRET", "  ")
    assert Settings().webhook_secret is None and not Settings().webhook_unauthenticated


def test_the_clock_is_fixed_or_running():
    paris = datetime(2027, 3, 28, 3, 30, tzinfo=ZoneInfo("Europe/Paris"))  # just after the DST switch
    fixed = Clock(paris)
    assert fixed.now() == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert to_utc(datetime(2027, 1, 1, 12, 0)) == datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    running = Clock()
    assert running.now().tzinfo is UTC


def test_every_name_fits_redmines_limits():
    """Redmine 5.0 refuses custom field names over 30 characters and tracker names over 30."""
    from integrations.redmine.schema import build_spec

    spec = build_spec(Settings())
    too_long = [f.name for f in spec.custom_fields if len(f.name) > 30] + [t for t in spec.trackers if len(t) > 30]
    assert too_long == []


def test_the_yaml_file_wins_over_defaults_without_environment(tmp_path, monkeypatch):
    """C-5: the cost per party is configuration."""
    config = tmp_path / "recouvrement.yaml"
    config.write_text("procedure:\n  act_cost_per_party_eur: 310\n")
    assert Settings().procedure.act_cost_per_party_eur == Decimal("300")
    monkeypatch.setenv("RECOUVREMENT_CONFIG_FILE", str(config))
    assert Settings().procedure.act_cost_per_party_eur == Decimal("310")


def test_an_empty_webhook_secret_is_no_secret():
    for empty in ("", "   ", "\t\n"):
        assert Settings(webhook_secret=empty).webhook_secret is None
    secret = Settings(webhook_secret="s3cret-value").webhook_secret
    assert "s3cret-value" not in repr(secret) and secret.get_secret_value() == "s3cret-value"


def test_to_utc_of_paris_winter_and_summer_times():
    paris = ZoneInfo("Europe/Paris")
    assert to_utc(datetime(2027, 1, 15, 9, 0, tzinfo=paris)) == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    assert to_utc(datetime(2027, 7, 15, 9, 0, tzinfo=paris)) == datetime(2027, 7, 15, 7, 0, tzinfo=UTC)
    assert to_utc(datetime(2027, 7, 15, 9, 0, tzinfo=paris)).tzinfo is UTC


def test_a_fixed_clock_does_not_move_a_running_one_does():
    fixed = Clock(datetime(2027, 1, 15, 8, 0))  # naive: read as UTC
    assert fixed.now() == fixed.now() == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    running = Clock()
    before = datetime.now(UTC)
    assert before <= running.now() <= datetime.now(UTC)


def test_a_clock_started_at_an_instant_runs_from_it():
    """RECOUVREMENT_NOW: the process pretends to start then, and time passes (leases expire)."""
    start = datetime(2027, 3, 28, 0, 59, 59, tzinfo=UTC)  # one second before the Paris DST switch
    clock = Clock.starting_at(start)
    first = clock.now()
    assert start <= first < start + timedelta(seconds=5)
    time.sleep(0.01)  # not a deadline: only to see the clock run
    assert clock.now() >= first + timedelta(seconds=0.01)


def test_letters_are_printed_on_a4_and_keep_every_character_typed():
    import io

    from docx import Document
    from docx.shared import Mm

    from app.letters import letter_text, letters_docx

    context = dict(owner_ref="SCI <Les Tilleuls> & Fils\x0b", mandate_number="M-1", tenant_ref="LOC-1", debt=Decimal("2450.50"),
                   today=datetime(2027, 2, 18).date(), requested_on=datetime(2027, 1, 4).date(),
                   provision=Decimal("1500"), days=45, due_on=datetime(2027, 2, 18).date())
    content = letters_docx([("decheance_garantie", context)] * 2)
    document = Document(io.BytesIO(content))
    section = document.sections[0]
    assert (round(section.page_width / Mm(1)), round(section.page_height / Mm(1))) == (210, 297)
    titles = [p for p in document.paragraphs if p.style.name == "Heading 1"]
    assert [t.text for t in titles] == ["Déchéance de garantie – décharge de responsabilité"] * 2
    assert "Propriétaire : SCI <Les Tilleuls> & Fils\n" in letter_text(content)  # escaped, control char dropped
