"""Issue 15, "a real configuration check": `recouvrement redmine check --redmine-dir` on the
real local Redmine names each misconfiguration an office makes — a field hidden from the
service's role, a written field read-only in the workflow, a tracker off in the project,
group assignment off, a routing group whose only member is locked, the service's account
locked — in French, with the fix, and exits non-zero; conforming, it says so.

The local Redmine is shared (the lead's tests run beside these): everything is made for
this module — its project, service account, groups and their members, and two fields the
settings name instead of the shared ones — so that only group assignment, a global
setting, is changed for everyone, for the one check that needs it, restored in `finally`.
Every other misconfiguration is undone in `finally` too, and the module's objects deleted.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from dataclasses import dataclass

import pytest

from app.config import Settings
from tests.e2e.conftest import Service
from tests.e2e.redmine_admin import REDMINE_LOCAL, RedmineAdmin, rails_runner, redmine_version

REDMINE_DIR = "/usr/share/redmine"
TEXT_FORMAT_NAMES = {"textile": "Textile", "markdown": "Markdown", "common_mark": "CommonMark Markdown"}
# The command that runs the local Redmine's `rails runner` wherever it is (REDMINE_VERSION).
REDMINE_RUNNER = f"{shlex.quote(str(REDMINE_LOCAL))} runner"
SERVICE_ROLE = "Automate recouvrement"
STAFF_ROLE = "Équipe recouvrement"
# The routing's groups, renamed for this module (setting → default name).
GROUPS = {"LITIGATION_GROUP": "Contentieux", "LITIGATION_MANAGER": "Responsable contentieux",
          "BACK_OFFICE_GROUP": "Back office", "ACCOUNTING_GROUP": "Comptabilité", "MANAGEMENT_GROUP": "DG",
          "PREVENTION_GROUP": "Prévention des impayés", "CESF_GROUP": "CESF",
          "SOCIAL_LITIGATION_GROUP": "Contentieux et suivi social"}


@dataclass
class Checked:
    """The module's Redmine objects and the service configured on them."""

    service: Service
    project: str
    service_user: int
    service_login: str
    lone_member: int  # the only member of the module's "Contentieux" group
    active_member: int  # member of every other group
    groups: dict[str, int]
    hidden_field: str  # read by the service (L-12), on Assignation
    written_field: str  # written by the service (C-13, C-26, C-27) on Assignation…
    field_ids: dict[str, int]
    admin_login: str

    def check(self, *options: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
        result = self.service.cli("redmine", "check", *options, check=False, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout.splitlines(), result.stderr

    @property
    def script_options(self) -> tuple[str, str]:
        """The host's Redmine 5.0 by its directory, as its admin on the Redmine server would;
        6.x, in a Debian root this machine's `bundle` cannot reach, through the command that
        runs its `rails runner`, as for a Redmine in a container."""
        return ("--redmine-dir", REDMINE_DIR) if redmine_version() == "5.0" else ("--redmine-runner", REDMINE_RUNNER)

    def check_with_script(self) -> tuple[int, list[str], str]:
        return self.check(*self.script_options)

    @property
    def text_format(self) -> str:
        """The name provision.rb gives the Redmine's text format (the service's, here)."""
        return TEXT_FORMAT_NAMES[self.service.settings.redmine_text_format]


def _web_settings(admin: RedmineAdmin, login: str, value: str) -> None:
    """Redmine's "Permettre l'assignation des demandes aux groupes" (Administration ›
    Configuration › Suivi des demandes), as an administrator sets it in the form: at once,
    where a `rails runner` takes seconds to start."""
    web = admin.browser(login)
    page = web.get("/settings?tab=issues").text
    token = re.search(r'name="authenticity_token" value="([^"]+)"', page).group(1)
    answer = web.post("/settings/edit", data={"authenticity_token": token, "tab": "issues",
                                              "settings[issue_group_assignment]": value})
    assert answer.status_code == 302, answer.text[:500]


@pytest.fixture(scope="module")
def checked(admin: RedmineAdmin, redmine_env, tmp_path_factory) -> Checked:
    tag = f"chk-{uuid.uuid4().hex[:6]}"
    project, service_login, admin_login = f"e2e-{tag}", f"{tag}-service", f"{tag}-admin"
    hidden_field, written_field = f"{tag} Jugement par défaut", f"{tag} Coût estimé"
    made_groups: dict[str, int] = {}
    try:
        admin.new_project(project, service_login, [])  # the module's service account, with the service's role
        service_user = admin.person(service_login, "Automate", "Recouvrement")
        key = admin._call("GET", f"/users/{service_user.id}.json")["user"]["api_key"]
        active = admin.person(f"{tag}-actif", "Membre", "Actif")
        lone = admin.person(f"{tag}-seul", "Seul", "Membre")
        staff = admin.ids("/roles.json", "roles")[STAFF_ROLE]
        for setting, name in GROUPS.items():
            members = [lone.id] if setting == "LITIGATION_GROUP" else [active.id]
            made_groups[setting] = admin._call("POST", "/groups.json", json={"group": {
                "name": f"{tag} {name}", "user_ids": members}})["group"]["id"]
            admin._call("POST", f"/projects/{project}/memberships.json", json={"membership": {
                "user_id": made_groups[setting], "role_ids": [staff]}})

        made = rails_runner(f"""
project = Project.find_by!(identifier: {json.dumps(project)})
[[{json.dumps(hidden_field)}, 'bool', ['Assignation']],
 [{json.dumps(written_field)}, 'float', ['Assignation', 'Injonction de payer', 'Exécution', 'Expulsion']]
].each do |name, format, trackers|
  field = IssueCustomField.new(name: name, field_format: format, is_for_all: false, visible: true, is_filter: true)
  field.trackers = Tracker.where(name: trackers).to_a
  field.projects = [project]
  field.save!
  puts "FIELD #{{field.id}} #{{name}}"
end
""")
        field_ids = {m[2]: int(m[1]) for m in re.finditer(r"^FIELD (\d+) (.+)$", made, re.MULTILINE)}
        # A ticket of the tracker: what the service's key shows of it is the REST side of the check.
        admin.create_issue(project, "Assignation", "Assignation témoin", {})

        values = {
            "RECOUVREMENT_REDMINE_URL": redmine_env["REDMINE_URL"], "RECOUVREMENT_REDMINE_API_KEY": key,
            "RECOUVREMENT_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('check')}/recouvrement.db",
            "RECOUVREMENT_PROJECT": project, "RECOUVREMENT_WEBHOOK_SECRET": "e2e-check",
            "RECOUVREMENT_FIELDS__DEFAULT_JUDGMENT": hidden_field,
            "RECOUVREMENT_FIELDS__ESTIMATED_COST": written_field,
            "RECOUVREMENT_ROUTING__AGENCIES": "[]",
            "RECOUVREMENT_REDMINE_TEXT_FORMAT": redmine_env.get("REDMINE_TEXT_FORMAT", "textile"),
            **{f"RECOUVREMENT_ROUTING__{setting}": f"{tag} {name}" for setting, name in GROUPS.items()},
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECOUVREMENT_")} | values
        settings = Settings(
            redmine_url=values["RECOUVREMENT_REDMINE_URL"], redmine_api_key=key, project=project,
            database_url=values["RECOUVREMENT_DATABASE_URL"], webhook_secret="e2e-check",
            redmine_text_format=values["RECOUVREMENT_REDMINE_TEXT_FORMAT"],
            fields={"default_judgment": hidden_field, "estimated_cost": written_field},
            routing={"agencies": [], **{setting.lower(): f"{tag} {name}" for setting, name in GROUPS.items()}})
        yield Checked(Service(settings, env, project), project, service_user.id, service_login, lone.id, active.id,
                      made_groups, hidden_field, written_field, field_ids, admin_login)
    finally:  # in the database, so that a restart of the Redmine server meanwhile leaves nothing behind
        fields = f"IssueCustomField.where(name: {json.dumps([hidden_field, written_field])})"
        rails_runner(f"""
WorkflowPermission.where(field_name: {fields}.map {{ |f| f.id.to_s }}).delete_all
{fields}.each(&:destroy)
Group.where(lastname: {json.dumps([f"{tag} {name}" for name in GROUPS.values()])}).each(&:destroy)
Project.where(identifier: {json.dumps(project)}).each(&:destroy)
User.where(login: {json.dumps([service_login, admin_login, f"{tag}-actif", f"{tag}-seul"])}).each(&:destroy)
""")


def _conforming(checked: Checked) -> None:
    code, lines, stderr = checked.check_with_script()
    assert code == 0, "\n".join(lines) + stderr
    assert lines[-1] == (f"Redmine conforme : projet {checked.project}, 14 trackers "
                         "(API et script de provisionnement)")
    name = checked.text_format
    assert f"information : formatage du texte de Redmine : {name} (le service écrit en {name})" in lines


def test_a_conforming_redmine_is_said_conforming_and_the_script_changes_nothing(checked):
    _conforming(checked)
    code, lines, _ = checked.check()  # without the script: what it leaves unchecked, and how to run it
    assert code == 0 and lines[-1].startswith("Redmine conforme pour ce que l'API permet de vérifier")
    assert lines[-1].endswith("le reste demande le script de provisionnement (voir la note)")
    [note] = [line for line in lines if line.startswith("note : non vérifiés sans le script")]
    assert "--redmine-dir /usr/share/redmine" in note and "provision.rb /tmp/recouvrement-schema.json --check" in note


def test_the_script_through_a_runner_command_checks_as_in_redmines_directory(checked):
    """`--redmine-runner`: provision.rb and the spec go on the command's standard input (the
    root of 6.x sees no file of this machine), on every version."""
    code, lines, stderr = checked.check("--redmine-runner", REDMINE_RUNNER)
    assert code == 0, "\n".join(lines) + stderr
    assert lines[-1] == (f"Redmine conforme : projet {checked.project}, 14 trackers "
                         "(API et script de provisionnement)")
    name = checked.text_format
    assert f"information : formatage du texte de Redmine : {name} (le service écrit en {name})" in lines


def test_a_service_writing_in_another_text_format_is_told_how_to_follow_redmine(checked, redmine_env):
    """Issue 17: the service set to another format than Redmine's: a problem, exit 2, and the
    fix on the service's side (switching Redmine would show the office's own texts wrongly)."""
    found = redmine_env.get("REDMINE_TEXT_FORMAT", "textile")
    other = "textile" if found != "textile" else "common_mark"
    code, lines, _ = checked.check(*checked.script_options, env={"RECOUVREMENT_REDMINE_TEXT_FORMAT": other})
    assert code == 2
    [problem] = [line for line in lines if line.startswith("formatage du texte «")]
    assert problem.endswith(f"dans la configuration du service : RECOUVREMENT_REDMINE_TEXT_FORMAT={found} "
                            f"(ou redmine_text_format: {found} dans son fichier)")


def test_the_legal_check_field_without_formatting_is_named(checked):
    """Issue 17: the "Contrôle légal" field, which the service writes with bold and lists, set
    to plain text by an administrator: the markup would show as typed."""
    name = json.dumps(checked.service.settings.fields.legal_check)
    rails_runner(f"IssueCustomField.find_by!(name: {name}).update!(text_formatting: '')")
    try:
        code, lines, _ = checked.check_with_script()
        assert code == 2
        assert f"champ « {checked.service.settings.fields.legal_check} » sans mise en forme : le service l'écrit " \
               "avec gras et listes, qui s'afficheraient tels quels — Administration › Champs personnalisés › " \
               f"{checked.service.settings.fields.legal_check} › Formatage du texte : cocher « Formaté »" in lines
    finally:
        rails_runner(f"IssueCustomField.find_by!(name: {name}).update!(text_formatting: 'full')")


def test_a_field_hidden_from_the_services_role_is_named(checked):
    """Issue 15, case 1: a field visible to the staff's role only was read as empty."""
    field = checked.field_ids[checked.hidden_field]
    try:
        rails_runner(f"f = IssueCustomField.find({field}); f.visible = false; "
                     f"f.role_ids = [Role.find_by!(name: {json.dumps(STAFF_ROLE)}).id]; f.save!")
        code, lines, _ = checked.check_with_script()
        assert code == 2
        assert any(line.startswith(f"champ « {checked.hidden_field} » masqué au rôle « {SERVICE_ROLE} » (visible "
                                   f"par : {STAFF_ROLE}) : le service ne peut ni le lire ni l'écrire — Administration "
                                   f"› Champs personnalisés › {checked.hidden_field} › Visible") for line in lines)
        code, lines, _ = checked.check()  # over REST alone: the ticket read with the service's key lacks it
        assert code == 2
        assert any(line.startswith(f"champ « {checked.hidden_field} » absent des tickets lus par le service "
                                   "(Assignation #") for line in lines)
    finally:
        rails_runner(f"f = IssueCustomField.find({field}); f.visible = true; f.role_ids = []; f.save!")


def test_a_written_field_read_only_for_the_services_role_is_named(checked):
    field = checked.field_ids[checked.written_field]
    rule = (f"tracker_id: Tracker.find_by!(name: 'Assignation').id, role_id: Role.find_by!(name: "
            f"{json.dumps(SERVICE_ROLE)}).id, field_name: '{field}'")
    try:
        rails_runner(f"WorkflowPermission.create!({rule}, old_status_id: IssueStatus.find_by!(name: 'Nouveau').id, "
                     "rule: 'readonly')")
        code, lines, _ = checked.check_with_script()
        assert code == 2
        assert (f"champ « {checked.written_field} » en lecture seule pour le rôle « {SERVICE_ROLE} » sur les tickets "
                f"« Assignation » (statuts : Nouveau) : le service l'écrit — Administration › Workflow › Permissions "
                f"sur les champs, rôle « {SERVICE_ROLE} », tracker « Assignation » : remplacer « Lecture » par un "
                "choix vide") in lines
    finally:
        rails_runner(f"WorkflowPermission.where({rule}).delete_all")


def test_a_tracker_disabled_in_the_project_is_named(admin, checked):
    trackers = admin.ids("/trackers.json", "trackers")
    try:
        admin._call("PUT", f"/projects/{checked.project}.json", json={"project": {
            "tracker_ids": [i for name, i in trackers.items() if name != "Exécution"]}})
        code, lines, _ = checked.check_with_script()
        assert code == 2
        assert ("tracker manquant : Exécution — à activer dans le projet (Projet › Configuration › Suivi des demandes)"
                " ou à créer (provision.rb)") in lines
    finally:
        admin._call("PUT", f"/projects/{checked.project}.json", json={"project": {
            "tracker_ids": list(trackers.values())}})


def test_group_assignment_switched_off_is_named(admin, checked):
    """The one global change of this module (the shared Redmine's setting), for one check."""
    try:
        _web_settings(admin, checked.admin_login, "0")
        code, lines, _ = checked.check_with_script()
    finally:
        try:
            _web_settings(admin, checked.admin_login, "1")
        except Exception:  # the server restarted meanwhile: in the database
            rails_runner("Setting.issue_group_assignment = '1'")
    assert code == 2
    assert ("assignation des demandes aux groupes désactivée : Redmine refuse les tickets que le service assigne à un "
            "groupe — Administration › Configuration › Suivi des demandes : cocher « Permettre l'assignation des "
            "demandes aux groupes »") in lines


def test_a_routing_group_whose_only_member_is_locked_is_named(admin, checked):
    group = f"{checked.project.removeprefix('e2e-')} Contentieux"
    try:
        admin._call("PUT", f"/users/{checked.lone_member}.json", json={"user": {"status": 3}})
        code, lines, _ = checked.check_with_script()
        assert code == 2
        assert (f"groupe « {group} » sans membre actif (ses 1 membre(s) verrouillé(s) ou non activé(s)) : les tickets "
                f"qui lui sont assignés ne sont vus de personne — Administration › Groupes › {group} › Utilisateurs : "
                "ajouter une personne active (ou Administration › Utilisateurs : déverrouiller)") in lines
        assert not [line for line in lines if line.startswith("groupe ") and group not in line]  # the others are fine
    finally:
        admin._call("PUT", f"/users/{checked.lone_member}.json", json={"user": {"status": 1}})


def test_the_service_account_locked_is_named_from_both_sides(admin, checked):
    """Issue 15, case 2: a locked account answers 401 to its key; the script says why."""
    try:
        admin._call("PUT", f"/users/{checked.service_user}.json", json={"user": {"status": 3}})
        code, lines, stderr = checked.check_with_script()
        assert code == 2
        assert any(line.startswith("Redmine refuse la clé API du service (401) : son compte est verrouillé")
                   for line in lines)
        assert (f"le compte du service « {checked.service_login} » est verrouillé : Redmine refuse sa clé API, le "
                f"service ne lit ni n'écrit plus rien — Administration › Utilisateurs › {checked.service_login} : "
                "Déverrouiller") in lines
        assert checked.service.env["RECOUVREMENT_REDMINE_API_KEY"] not in "\n".join(lines) + stderr
    finally:
        admin._call("PUT", f"/users/{checked.service_user}.json", json={"user": {"status": 1}})
    _conforming(checked)


def test_ready_lists_configuration_problems_and_stays_ready(admin, checked):
    """/ready (in process, against the real Redmine): a routing group out of the project is
    a configuration problem, listed, not an outage."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    group = checked.groups["CESF_GROUP"]
    name = f"{checked.project.removeprefix('e2e-')} CESF"
    memberships = admin._call("GET", f"/projects/{checked.project}/memberships.json", params={"limit": 100})
    [membership] = [m["id"] for m in memberships["memberships"] if m.get("group", {}).get("id") == group]
    try:
        admin._call("DELETE", f"/memberships/{membership}.json")
        with TestClient(create_app(checked.service.context())) as client:
            answer = client.get("/ready")
    finally:
        staff = admin.ids("/roles.json", "roles")[STAFF_ROLE]
        admin._call("POST", f"/projects/{checked.project}/memberships.json", json={"membership": {
            "user_id": group, "role_ids": [staff]}})
    assert answer.status_code == 200, answer.text
    [line] = answer.json()["configuration"]
    assert line.startswith(f"groupe « {name} » absent des membres du projet {checked.project} (ou inexistant)")
