"""The part of `recouvrement redmine check` that Redmine's REST API cannot do (issue 15):
``provision.rb schema.json --check``, run with Redmine's ``rails runner`` where Redmine is
installed (``--redmine-dir`` / ``RECOUVREMENT_REDMINE_DIR``), through a command that runs
Redmine's ``rails runner`` wherever Redmine is — a container, a chroot, another machine
(``--redmine-runner`` / ``RECOUVREMENT_REDMINE_RUNNER``) —, or by its administrator.

The service's key cannot read the workflow's field permissions, the global settings (group
assignment, text formatting), groups' members and users' states; and a field hidden from
its role simply does not show on a ticket. The script reads them in Redmine's database,
changes nothing, and prints "problème : …" and "information : …" lines in French.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from integrations.redmine.schema import RedmineSpec

PROVISION_SCRIPT = Path(__file__).resolve().with_name("provision.rb")
DEBIAN_REDMINE_DIR = "/usr/share/redmine"
RUNNER_EXAMPLE = "docker exec -i redmine bundle exec rails runner"
SPEC_FILE = "/tmp/recouvrement-schema.json"
SCRIPT_TIMEOUT_SECONDS = 600.0
# What only the script verifies (its check mode's header says the same).
SCRIPT_ONLY = ("la visibilité de chaque champ pour le rôle du service", "les champs en lecture seule dans le workflow",
               "l'assignation aux groupes", "les membres actifs des groupes", "l'état du compte du service",
               "le formatage du texte")
PROBLEM, INFORMATION, SUMMARY = "problème : ", "information : ", "vérification : "


class ScriptCheckFailed(Exception):
    """The script could not run or did not finish its check (message in French)."""


@dataclass(frozen=True)
class ScriptCheck:
    problems: list[str] = field(default_factory=list)
    information: list[str] = field(default_factory=list)


def script_command(spec_file: str) -> list[str]:
    """``rails runner`` of the check mode, to run in Redmine's root directory."""
    return ["bundle", "exec", "rails", "runner", "-e", os.environ.get("RAILS_ENV", "production"),
            str(PROVISION_SCRIPT), spec_file, "--check"]


def how_to_run() -> str:
    """The French note `redmine check` prints when it does not run the script itself."""
    return (f"non vérifiés sans le script de provisionnement (l'API REST ne les montre pas) : {', '.join(SCRIPT_ONLY)}."
            f" Sur le serveur de Redmine : `recouvrement redmine check --redmine-dir {DEBIAN_REDMINE_DIR}` (ou "
            f"RECOUVREMENT_REDMINE_DIR) ; Redmine dans un conteneur ou sur une autre machine : `recouvrement redmine "
            f"check --redmine-runner '{RUNNER_EXAMPLE}'` (ou RECOUVREMENT_REDMINE_RUNNER) ; ou `recouvrement redmine spec > {SPEC_FILE}` puis `cd {DEBIAN_REDMINE_DIR} && "
            f"RAILS_ENV=production bundle exec rails runner {PROVISION_SCRIPT} {SPEC_FILE} --check`")


def parse(stdout: str) -> ScriptCheck:
    """The script's problem and information lines; ScriptCheckFailed without its summary
    line (it stopped before the end of its check)."""
    lines = stdout.splitlines()
    if not any(line.startswith(SUMMARY) for line in lines):
        raise ScriptCheckFailed("le script n'a pas terminé sa vérification")
    return ScriptCheck([line.removeprefix(PROBLEM) for line in lines if line.startswith(PROBLEM)],
                       [line.removeprefix(INFORMATION) for line in lines if line.startswith(INFORMATION)])


def run_script_check(spec: RedmineSpec, redmine_dir: str, timeout: float = SCRIPT_TIMEOUT_SECONDS) -> ScriptCheck:
    """Run the check mode in ``redmine_dir`` (Redmine's root: its Gemfile, its database
    configuration) with this process's environment (``RAILS_ENV`` production unless set;
    Debian's package may want ``BUNDLER_VERSION`` and ``REDMINE_INSTANCE`` as well)."""
    if not (Path(redmine_dir) / "Gemfile").is_file():
        raise ScriptCheckFailed(f"{redmine_dir} n'est pas le répertoire d'un Redmine (pas de Gemfile)")
    with tempfile.TemporaryDirectory(prefix="recouvrement-check-") as directory:
        spec_file = Path(directory) / "schema.json"
        spec_file.write_text(json.dumps(spec.as_json_dict(), ensure_ascii=False), encoding="utf-8")
        env = os.environ | {"RAILS_ENV": os.environ.get("RAILS_ENV", "production")}
        try:
            run = subprocess.run(script_command(str(spec_file)), cwd=redmine_dir, env=env, capture_output=True,
                                 text=True, timeout=timeout)
        except FileNotFoundError:
            raise ScriptCheckFailed("commande `bundle` introuvable : lancer la vérification sur le serveur de "
                                    "Redmine, où Ruby et Bundler sont installés") from None
        except subprocess.TimeoutExpired:
            raise ScriptCheckFailed(f"le script n'a pas fini en {timeout:g} s") from None
    return _result(run)


def runner_program(spec: RedmineSpec) -> str:
    """The Ruby program that ``rails runner -`` reads on its standard input: provision.rb in
    check mode, with the spec, both carried inside it — the runner may be in a container or
    on another machine, which sees none of this machine's files. Base64 keeps them intact
    whatever they contain; the spec goes to a temporary file there, as provision.rb reads one."""
    def packed(data: bytes) -> str:
        return repr(base64.b64encode(data).decode("ascii"))

    spec_json = json.dumps(spec.as_json_dict(), ensure_ascii=False).encode("utf-8")
    return f"""# provision.rb --check, sent by `recouvrement redmine check --redmine-runner`
require 'tempfile'
recouvrement_spec = Tempfile.new(['recouvrement-schema', '.json'])
begin
  recouvrement_spec.binmode
  recouvrement_spec.write({packed(spec_json)}.unpack1('m0'))
  recouvrement_spec.close
  ARGV.replace([recouvrement_spec.path, '--check'])
  eval({packed(PROVISION_SCRIPT.read_bytes())}.unpack1('m0').force_encoding(Encoding::UTF_8), TOPLEVEL_BINDING,
       'provision.rb', 1)
ensure
  recouvrement_spec.unlink
end
"""


def run_script_check_through(spec: RedmineSpec, runner: str, timeout: float = SCRIPT_TIMEOUT_SECONDS) -> ScriptCheck:
    """Run the check mode through ``runner``, a command line that runs Redmine's ``rails
    runner`` in production wherever Redmine is (``docker exec -i redmine bundle exec rails
    runner``, ``ssh redmine 'cd /usr/share/redmine && RAILS_ENV=production bundle exec rails
    runner'``): ``-`` is added to it, and the program (:func:`runner_program`) written on its
    standard input."""
    try:
        command = shlex.split(runner)
    except ValueError as exc:
        raise ScriptCheckFailed(f"commande --redmine-runner illisible ({exc}) : {runner}") from None
    if not command:
        raise ScriptCheckFailed("commande --redmine-runner vide")
    try:
        run = subprocess.run([*command, "-"], input=runner_program(spec), capture_output=True, text=True,
                             timeout=timeout)
    except FileNotFoundError:
        raise ScriptCheckFailed(f"commande `{command[0]}` introuvable (--redmine-runner)") from None
    except PermissionError:
        raise ScriptCheckFailed(f"commande `{command[0]}` non exécutable (--redmine-runner)") from None
    except subprocess.TimeoutExpired:
        raise ScriptCheckFailed(f"le script n'a pas fini en {timeout:g} s") from None
    return _result(run)


def _result(run: subprocess.CompletedProcess) -> ScriptCheck:
    """Exit status 0 (conforming) or 1 (problems): the script's lines; any other: it failed."""
    if run.returncode not in (0, 1):
        last = " / ".join(line.strip() for line in run.stderr.strip().splitlines()[-3:])
        raise ScriptCheckFailed(f"le script a échoué (code {run.returncode}) : {last or 'sans message'}")
    return parse(run.stdout)
