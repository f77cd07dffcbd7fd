"""Issue 15, "a real configuration check": what `recouvrement redmine check`, `serve` and
`/ready` say about a Redmine configured the way offices configure theirs — fields hidden
from the service's role, read-only in the workflow, groups without active members, the
service's account locked — read with the service's key over REST (canned answers here),
and through provision.rb --check (its output, canned)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
import threading
import time

import pytest
from fastapi.testclient import TestClient
from redminelib import exceptions as rex
from typer.testing import CliRunner

from app import cli as cli_module
from app.cli import cli
from app.config import Settings
from app.health.configuration import ConfigurationCheck
from app.main import create_app
from integrations.redmine.client import RedmineClient
from integrations.redmine.interface import SchemaReport
from integrations.redmine.schema import build_spec
from integrations.redmine.script_check import (
    PROVISION_SCRIPT,
    ScriptCheck,
    ScriptCheckFailed,
    how_to_run,
    parse,
    run_script_check,
    run_script_check_through,
)

ROLE = "Automate recouvrement"
HIDDEN = ("champ « Date de réception des fonds » absent des tickets lus par le service (Contentieux #7) : masqué à "
          "son rôle…")


def report(**problems: list[str]) -> SchemaReport:
    lists = {"missing_trackers": [], "missing_fields": [], "missing_statuses": [], "field_problems": [], "notes": []}
    return SchemaReport(**(lists | problems))


# --- what is written, where -------------------------------------------------------------
def test_the_spec_says_which_fields_and_attributes_the_service_writes_and_where():
    """Issue 15: a field the service writes must not be read-only for its role there."""
    spec = build_spec(Settings())
    written = {f.name: f.written for f in spec.custom_fields}
    assert written["Montant demandé"] == ["Demande de fonds"]
    assert written["Déchéance de garantie le"] == ["Contentieux"]  # C-14
    assert written["Contrôle légal"] == ["Contentieux"]
    assert written["Échéance"] == written["Échéance – motif"] == ["Contentieux", "Assignation", "Exécution"]
    assert "Registre des mandats" not in written["N° mandat"] and "Contentieux" in written["N° mandat"]
    assert written["Solde dû"] == ["Relance impayés"]  # P-4
    assert written["Date de réception des fonds"] == []  # read only: typed by people
    assert set(spec.written_attributes) == {"assigned_to_id", "parent_issue_id", "start_date", "due_date", "status_id"}
    assert spec.text_format == "textile"
    assert json.loads(json.dumps(spec.as_json_dict()))["custom_fields"][0]["written"]  # what provision.rb reads


# --- the report's lines -------------------------------------------------------------------
def test_each_problem_is_one_french_line_with_its_fix():
    full = SchemaReport(["Exécution"], ["Débiteurs"], [], ["champ « X » : format string, text attendu"], ["une note"],
                        ["add_issues"], ["delete_issues"], ["le compte du service est administrateur…"],
                        hidden_fields=[HIDDEN], group_problems=["groupe « DG » absent des membres…"],
                        access_problems=["Redmine refuse la clé API du service (401)…"])
    lines = full.problems(ROLE)
    assert lines[0].startswith("tracker manquant : Exécution — à activer dans le projet (Projet › Configuration")
    assert lines[1].startswith("champ personnalisé manquant : Débiteurs — ")
    assert "champ à corriger : champ « X » : format string, text attendu" in lines
    assert f"permission manquante au rôle « {ROLE} » : add_issues" in lines
    assert f"permission en trop au rôle « {ROLE} » : delete_issues (inutile au service : à retirer)" in lines
    assert "droits en trop : le compte du service est administrateur…" in lines
    assert lines[-3:] == ["Redmine refuse la clé API du service (401)…", HIDDEN, "groupe « DG » absent des membres…"]
    assert "une note" not in lines and not full.conforming
    # provision.rb --check ran: its exact lines replace the REST view of visibility and groups
    assert HIDDEN not in full.problems(ROLE, script_checked=True)
    assert report().conforming and report(extra_permissions=["x"]).ok and not report(extra_permissions=["x"]).conforming
    assert report(hidden_fields=[HIDDEN]).ok  # /ready stays 200: not an outage


# --- over REST, with the service's key (canned answers) ----------------------------------------
TRACKERS = {name: n for n, name in enumerate(build_spec(Settings()).trackers, start=1)}  # Contentieux: 2


def canned_redmine(monkeypatch, current_user=None, issues=None, memberships=None) -> tuple[RedmineClient, list]:
    """A client whose HTTP answers are Redmine 5.0's, for a project with every tracker and
    field of the spec; ``issues``: tracker id → the issues /issues.json lists."""
    settings = Settings(redmine_url="http://redmine.invalid", redmine_api_key="secret-key-never-shown")
    spec = build_spec(settings)
    client = RedmineClient(settings)
    asked: list[str] = []
    fields = {f.name: n for n, f in enumerate(spec.custom_fields, start=1)}

    def answer(method, url, params=None, data=None, **kwargs):
        path = url.removeprefix("http://redmine.invalid")
        asked.append(path)
        if path == "/users/current.json":
            if current_user is None:
                raise rex.AuthError()
            return {"user": current_user}
        if path == "/projects/gestion.json":
            return {"project": {"id": 9, "trackers": [{"id": i, "name": n} for n, i in TRACKERS.items()],
                                "issue_custom_fields": [{"id": i, "name": n} for n, i in fields.items()]}}
        if path == "/issue_statuses.json":
            return {"issue_statuses": [{"id": i, "name": s["name"]} for i, s in enumerate(spec.statuses)]}
        if path == "/custom_fields.json":
            raise rex.ForbiddenError()  # not an administrator
        if path == "/roles.json":
            return {"roles": [{"id": 4, "name": ROLE}]}
        if path == "/roles/4.json":
            return {"role": {"permissions": spec.service_role["permissions"]}}
        if path == "/issues.json":
            assert params["project_id"] == 9 and params["status_id"] == "*" and params["limit"] == 1
            found = (issues or {}).get(params["tracker_id"], [])
            return {"issues": found, "total_count": len(found)}
        if path == "/projects/gestion/memberships.json":
            return {"memberships": memberships or [], "total_count": len(memberships or [])}
        raise AssertionError(f"unexpected request {method} {path}")

    monkeypatch.setattr(client._api.engine, "request", answer)
    return client, asked


def test_a_field_hidden_from_the_services_role_is_named_from_a_ticket_it_reads(monkeypatch):
    """Issue 15, case 1: `Date de réception des fonds` visible to the litigation staff only
    was read as empty and a forfeiture fired; `redmine check` said "conforme". Redmine lists
    the field in the project (include=issue_custom_fields lists hidden ones), but a ticket
    read with the service's key lacks it."""
    spec = build_spec(Settings())
    litigation = [f.name for f in spec.custom_fields if "Contentieux" in f.trackers]
    shown = [{"id": n, "name": name, "value": ""} for n, name in enumerate(litigation)
             if name != "Date de réception des fonds"]
    groups = [{"group": {"id": 50 + n, "name": g}} for n, g in enumerate(spec.groups) if g != "CESF"]
    client, asked = canned_redmine(
        monkeypatch, current_user={"id": 99, "admin": False, "memberships": []},
        issues={2: [{"id": 7, "custom_fields": shown}]}, memberships=groups)

    found = client.check_schema()

    assert found.ok and not found.conforming
    [hidden] = found.hidden_fields
    assert hidden.startswith("champ « Date de réception des fonds » absent des tickets lus par le service "
                             "(Contentieux #7) : masqué à son rôle ou absent du tracker, il serait lu comme vide")
    assert f"cocher le rôle « {ROLE} »" in hidden and "Administration › Champs personnalisés" in hidden
    [group] = found.group_problems
    assert group.startswith("groupe « CESF » absent des membres du projet gestion")
    assert "Projet › Configuration › Membres : l'ajouter avec le rôle « Équipe recouvrement »" in group
    assert any(n.startswith("visibilité des champs non vérifiée par l'API sur les trackers sans ticket dans le projet :"
                            " Registre des mandats") for n in found.notes)
    assert asked.count("/issues.json") == len(TRACKERS)  # one ticket per tracker of the project, no more


def test_a_refused_key_is_said_in_french_and_nothing_else_is_asked(monkeypatch):
    """Issue 15, case 6: the service's account locked (or its key revoked) answers 401."""
    client, asked = canned_redmine(monkeypatch, current_user=None)
    found = client.check_schema()
    [line] = found.access_problems
    assert line.startswith("Redmine refuse la clé API du service (401) : son compte est verrouillé, ou la clé a été "
                           "révoquée")
    assert "Administration › Utilisateurs › recouvrement (par défaut) : Déverrouiller" in line
    assert "secret-key-never-shown" not in line and not found.conforming
    assert asked == ["/users/current.json"]


# --- provision.rb --check --------------------------------------------------------------------
SCRIPT_OUTPUT = """\
I, [2027-01-15] INFO -- : some Rails noise
information : formatage du texte de Redmine : Markdown (le service écrit en Textile)
problème : assignation des demandes aux groupes désactivée : …
problème : formatage du texte « Markdown » : …
vérification : 2 problème(s)
"""


def test_the_scripts_lines_are_read_and_a_stopped_script_is_an_error():
    assert parse(SCRIPT_OUTPUT) == ScriptCheck(
        ["assignation des demandes aux groupes désactivée : …", "formatage du texte « Markdown » : …"],
        ["formatage du texte de Redmine : Markdown (le service écrit en Textile)"])
    with pytest.raises(ScriptCheckFailed, match="pas terminé"):
        parse("problème : x\n")  # no summary: it died half-way, its silence proves nothing


def test_the_script_runs_in_redmines_directory_with_the_spec_and_check_mode(tmp_path, monkeypatch):
    """`--redmine-dir`: `bundle exec rails runner -e production provision.rb SPEC --check`
    in Redmine's root (a stand-in `bundle` here records what it was given)."""
    redmine = tmp_path / "redmine"
    redmine.mkdir()
    (redmine / "Gemfile").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bundle = bin_dir / "bundle"
    bundle.write_text(f"""#!/bin/sh
pwd > {tmp_path}/cwd; echo "$@" > {tmp_path}/args; cp "$7" {tmp_path}/spec.json
printf 'problème : groupe « DG » sans membre actif\\nvérification : 1 problème(s)\\n'; exit 1
""")
    bundle.chmod(bundle.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    spec = build_spec(Settings())

    assert run_script_check(spec, str(redmine)).problems == ["groupe « DG » sans membre actif"]
    assert (tmp_path / "cwd").read_text().strip() == str(redmine)
    args = (tmp_path / "args").read_text().split()
    assert args[:5] == ["exec", "rails", "runner", "-e", "production"]
    assert args[5] == str(PROVISION_SCRIPT) and args[-1] == "--check"
    assert json.loads((tmp_path / "spec.json").read_text()) == spec.as_json_dict()

    bundle.write_text("#!/bin/sh\necho 'cannot load such file' >&2; exit 3\n")
    with pytest.raises(ScriptCheckFailed, match=r"code 3\) : cannot load such file"):
        run_script_check(spec, str(redmine))
    with pytest.raises(ScriptCheckFailed, match="pas le répertoire d'un Redmine"):
        run_script_check(spec, str(tmp_path))


def _stand_in(tmp_path, body: str) -> str:
    """An executable that stands for a `rails runner` elsewhere (a container's, another machine's)."""
    runner = tmp_path / "rails-runner-elsewhere"
    runner.write_text(f"#!/bin/sh\n{body}\n")
    runner.chmod(runner.stat().st_mode | stat.S_IEXEC)
    return str(runner)


def test_through_a_runner_the_program_comes_on_its_input_with_the_spec_and_script_inside(tmp_path):
    """`--redmine-runner`: the command, with `-` added (`rails runner -` reads its program on
    standard input), is given provision.rb in check mode and the spec inside that program: a
    container or another machine sees none of this machine's files."""
    runner = _stand_in(tmp_path, f"""printf '%s\\n' "$@" > {tmp_path}/args; cat > {tmp_path}/program.rb
printf 'information : formatage du texte de Redmine : Textile (le service écrit en Textile)\\n'
printf 'problème : groupe « DG » sans membre actif\\nvérification : 1 problème(s)\\n'; exit 1""")
    spec = build_spec(Settings())

    result = run_script_check_through(spec, f"{runner} exec -i 'redmine server' rails runner")
    assert result == ScriptCheck(["groupe « DG » sans membre actif"],
                                 ["formatage du texte de Redmine : Textile (le service écrit en Textile)"])
    assert (tmp_path / "args").read_text().splitlines() == ["exec", "-i", "redmine server", "rails", "runner", "-"]
    program = (tmp_path / "program.rb").read_text()
    spec_data, script = [base64.b64decode(m) for m in re.findall(r"'([A-Za-z0-9+/=]+)'\.unpack1\('m0'\)", program)]
    assert json.loads(spec_data) == spec.as_json_dict()
    assert script == PROVISION_SCRIPT.read_bytes()
    assert "ARGV.replace([recouvrement_spec.path, '--check'])" in program
    assert str(tmp_path) not in program and str(PROVISION_SCRIPT) not in program  # no path of this machine


def test_a_runner_that_fails_or_cannot_start_is_an_error_in_french(tmp_path):
    spec = build_spec(Settings())
    failing = _stand_in(tmp_path, "cat >/dev/null; echo 'Error: No such container: redmine' >&2; exit 125")
    with pytest.raises(ScriptCheckFailed, match=r"code 125\) : Error: No such container: redmine"):
        run_script_check_through(spec, failing)
    with pytest.raises(ScriptCheckFailed, match="commande `/nulle/part/docker` introuvable"):
        run_script_check_through(spec, "/nulle/part/docker exec -i redmine")
    with pytest.raises(ScriptCheckFailed, match="vide"):
        run_script_check_through(spec, "  ")
    with pytest.raises(ScriptCheckFailed, match="illisible"):
        run_script_check_through(spec, "docker exec 'redmine")
    silent = _stand_in(tmp_path, "cat >/dev/null; echo 'problème : x'")  # no summary: stopped half-way
    with pytest.raises(ScriptCheckFailed, match="pas terminé"):
        run_script_check_through(spec, silent)


# --- the command ------------------------------------------------------------------------------
@pytest.fixture
def checked(ctx, monkeypatch):
    """`recouvrement redmine check` on the in-memory Redmine."""
    monkeypatch.setattr(cli_module, "_context", lambda *args, **kwargs: ctx)
    return ctx


def test_the_command_names_every_problem_and_says_how_to_run_the_script(checked):
    checked.redmine.schema_report = report(hidden_fields=[HIDDEN])
    result = CliRunner().invoke(cli, ["redmine", "check"])
    assert result.exit_code == 2
    assert HIDDEN in result.stdout.splitlines()
    assert f"note : {how_to_run()}" in result.stdout.splitlines()
    assert "RAILS_ENV=production bundle exec rails runner" in how_to_run() and "--check" in how_to_run()
    assert "configuration de Redmine à corriger" in result.stderr

    checked.redmine.schema_report = report()
    result = CliRunner().invoke(cli, ["redmine", "check"])
    assert result.exit_code == 0
    assert "Redmine conforme pour ce que l'API permet de vérifier : projet gestion" in result.stdout
    assert "le reste demande le script de provisionnement" in result.stdout


def test_with_the_script_its_lines_are_merged_and_any_problem_fails(checked, monkeypatch):
    ran = []
    monkeypatch.setattr(cli_module, "run_script_check",
                        lambda spec, directory: ran.append(directory) or ScriptCheck(
                            ["champ « Date de réception des fonds » masqué au rôle « Automate recouvrement » …"],
                            ["formatage du texte de Redmine : Textile (le service écrit en Textile)"]))
    checked.redmine.schema_report = report(hidden_fields=[HIDDEN])
    result = CliRunner().invoke(cli, ["redmine", "check"], env={"RECOUVREMENT_REDMINE_DIR": "/srv/redmine"})
    assert ran == ["/srv/redmine"] and result.exit_code == 2
    lines = result.stdout.splitlines()
    assert "champ « Date de réception des fonds » masqué au rôle « Automate recouvrement » …" in lines
    assert HIDDEN not in lines  # the script's exact line replaces the REST guess
    assert "information : formatage du texte de Redmine : Textile (le service écrit en Textile)" in lines
    assert not any(line.startswith("note : non vérifiés sans le script") for line in lines)

    monkeypatch.setattr(cli_module, "run_script_check", lambda spec, directory: ScriptCheck([], []))
    checked.redmine.schema_report = report()
    result = CliRunner().invoke(cli, ["redmine", "check", "--redmine-dir", "/srv/redmine"])
    assert result.exit_code == 0 and "(API et script de provisionnement)" in result.stdout

    def fails(spec, directory):
        raise ScriptCheckFailed("le script a échoué (code 3) : boom")

    monkeypatch.setattr(cli_module, "run_script_check", fails)
    result = CliRunner().invoke(cli, ["redmine", "check", "--redmine-dir", "/srv/redmine"])
    assert result.exit_code == 2 and "vérification par le script de provisionnement impossible" in result.stderr


def test_the_runner_option_or_its_variable_runs_the_script_through_the_command(checked, monkeypatch):
    ran = []
    monkeypatch.setattr(cli_module, "run_script_check_through",
                        lambda spec, runner: ran.append(runner) or ScriptCheck([], []))
    checked.redmine.schema_report = report()
    command = "docker exec -i redmine bundle exec rails runner"
    result = CliRunner().invoke(cli, ["redmine", "check", "--redmine-runner", command])
    assert result.exit_code == 0 and "(API et script de provisionnement)" in result.stdout
    result = CliRunner().invoke(cli, ["redmine", "check"], env={"RECOUVREMENT_REDMINE_RUNNER": command})
    assert result.exit_code == 0 and ran == [command, command]

    result = CliRunner().invoke(cli, ["redmine", "check", "--redmine-runner", command, "--redmine-dir", "/srv/redmine"])
    assert result.exit_code == 2 and "--redmine-dir et --redmine-runner s'excluent" in result.stderr
    assert len(ran) == 2
    assert "--redmine-runner 'docker exec -i redmine bundle exec rails runner'" in how_to_run()


# --- serve and /ready -----------------------------------------------------------------------
class Counting:
    """check_schema counted, answering ``report`` (after ``gate``, when given)."""

    def __init__(self, answer: SchemaReport, gate: threading.Event | None = None):
        self.answer, self.gate, self.calls = answer, gate, 0

    def check_schema(self) -> SchemaReport:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        return self.answer


def test_the_configuration_is_checked_again_every_ten_minutes_or_at_once_while_incomplete(caplog):
    now = [0.0]
    redmine = Counting(report(hidden_fields=[HIDDEN]))
    check = ConfigurationCheck(redmine, Settings(), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert check.report().hidden_fields == [HIDDEN] and check.problems() == [HIDDEN]
        now[0] = 599
        check.report()
        assert redmine.calls == 1
        now[0] = 600
        check.report()
    assert redmine.calls == 2
    assert [r.getMessage() for r in caplog.records].count(
        f"configuration de Redmine à corriger (recouvrement redmine check) : {HIDDEN}") == 1  # once, not each check

    redmine.answer = report(missing_fields=["Débiteurs"])  # /ready 503: re-checked at each run
    now[0] = 1200
    check.report()
    check.report()
    assert redmine.calls == 4


def test_one_check_at_a_time_the_others_get_the_last_report():
    now = [0.0]
    redmine = Counting(report())
    check = ConfigurationCheck(redmine, Settings(), clock=lambda: now[0])
    first = check.report()
    now[0] = 601
    redmine.gate = threading.Event()
    running = threading.Thread(target=check.report)
    running.start()
    while redmine.calls < 2:
        time.sleep(0.01)
    assert check.report() is first and redmine.calls == 2  # did not wait, did not ask again
    redmine.gate.set()
    running.join(5)


def test_ready_lists_the_configuration_problems_and_stays_200_without_checking_each_time(ctx):
    """Issue 15: webhooks must still be stored on a misconfigured Redmine."""
    calls = []
    ctx.redmine.schema_report = report(hidden_fields=[HIDDEN])
    check_schema = ctx.redmine.check_schema
    ctx.redmine.check_schema = lambda: calls.append(1) or check_schema()
    app = create_app(ctx)
    app.state.readiness.reuse_seconds = 0
    with TestClient(app) as client:
        answers = [client.get("/ready") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].json()["configuration"] == [HIDDEN]
    assert len(calls) == 1


def started_warnings(ctx, caplog) -> list[logging.LogRecord]:
    """The configuration check's log records of a start of the app as `serve` starts it."""
    caplog.clear()
    with caplog.at_level(logging.WARNING), TestClient(create_app(ctx, check_configuration=True)) as client:
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.name == "app.health.configuration"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/health").status_code == 200  # started, whatever the configuration
    return [r for r in caplog.records if r.name == "app.health.configuration"]


def test_serve_logs_each_problem_at_start_and_starts_anyway(ctx, caplog):
    ctx.redmine.schema_report = report(access_problems=["Redmine refuse la clé API du service (401)…"])
    [warning] = started_warnings(ctx, caplog)
    assert warning.levelname == "WARNING" and "Redmine refuse la clé API du service (401)" in warning.getMessage()

    ctx.redmine.down = True
    [warning] = started_warnings(ctx, caplog)
    assert warning.getMessage().startswith("configuration de Redmine non vérifiée au démarrage : Redmine injoignable")
