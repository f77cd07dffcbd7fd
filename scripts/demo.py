"""`make demo`: the main job on the embedded defaults.

The local Redmine (scripts/redmine-local.sh up), a SQLite file, `recouvrement serve`, and a
sample mandate with its litigation file, created as litigation staff would in Redmine.
The service notices it (a signed webhook as Redmine ≥ 7 sends, and polling, which is all
Debian's Redmine 5 allows), does the opening of the procedure, and the URLs are printed.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.redmine_admin import RedmineAdmin, local_redmine_env, signed_delivery  # noqa: E402

PROJECT = "gestion"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    env = local_redmine_env()
    admin = RedmineAdmin(env["REDMINE_URL"], env["REDMINE_ADMIN_KEY"])
    clerk = admin.person("claire.contentieux", "Claire", "Contentieux")
    gestionnaire = admin.person("gaston.gestion", "Gaston", "Gestionnaire")
    roles = admin.ids("/roles.json", "roles")
    members = {m.get("user", {}).get("id") for m in admin._call(
        "GET", f"/projects/{PROJECT}/memberships.json", params={"limit": 100})["memberships"]}
    for person in (clerk, gestionnaire):
        if person.id not in members:
            admin._call("POST", f"/projects/{PROJECT}/memberships.json", json={
                "membership": {"user_id": person.id, "role_ids": [roles["Équipe recouvrement"]]}})

    secret = secrets.token_hex(16)
    port = free_port()
    service_env = {k: v for k, v in os.environ.items() if not k.startswith("RECOUVREMENT_")} | {
        "RECOUVREMENT_REDMINE_URL": env["REDMINE_URL"],
        "RECOUVREMENT_REDMINE_API_KEY": env["REDMINE_SERVICE_KEY"],
        "RECOUVREMENT_WEBHOOK_SECRET": secret,
        "RECOUVREMENT_DATABASE_URL": f"sqlite:///{ROOT}/recouvrement-demo.db",
        "RECOUVREMENT_PROJECT": PROJECT,
        "RECOUVREMENT_REDMINE_TEXT_FORMAT": env.get("REDMINE_TEXT_FORMAT", "textile"),
        "RECOUVREMENT_WORKER__POLL_INTERVAL_SECONDS": "3",
    }
    print(f"recouvrement serve sur http://127.0.0.1:{port} (Redmine : {env['REDMINE_URL']})")
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=ROOT,
                              env=service_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            print("le service n'a pas démarré", file=sys.stderr)
            return 1

        run = uuid.uuid4().hex[:6].upper()
        mandate, tenant = f"M-{run}", f"LOC-{run}"
        register = admin.create_issue(PROJECT, "Registre des mandats", f"Mandat de gestion {mandate}",
                                      {"N° mandat": mandate}, assigned_to_id=gestionnaire.id)
        litigation = admin.create_issue(PROJECT, "Contentieux", "Impayés de loyer — Dupont", {
            "N° mandat": mandate, "Réf. locataire": tenant, "Réf. propriétaire": "PROP-0317",
            "Débiteurs": "Jean Dupont ; locataire\nMarie Dupont ; colocataire\nPaul Martin ; caution",
            "Locataire dans les lieux": "1", "Type de bail": "Habitation", "Montant de la dette": "2450.50",
            "Compte propriétaire": "Débiteur",
        }, as_user=clerk.login)
        body, headers = signed_delivery(admin.issue(litigation["id"]), "issue.created", secret)
        answer = httpx.post(f"http://127.0.0.1:{port}/webhooks/redmine", content=body, headers=headers)
        print(f"webhook signé envoyé : {answer.status_code} {answer.json()}")

        for _ in range(120):
            issue = admin.issue(litigation["id"])
            if issue.get("parent") and len(issue.get("children", [])) >= 2:
                break
            time.sleep(0.5)
        else:
            print("le dossier n'a pas été traité à temps : voir `recouvrement events`", file=sys.stderr)
            return 1

        # A gestionnaire asks for the reminder fees to be cancelled (C-33 … C-35).
        request = admin.create_issue(PROJECT, "Annulation frais", f"DEMANDE D'ANNULATION FRAIS dossier {tenant}/PROP-0317", {
            "Réf. locataire": tenant, "Réf. propriétaire": "PROP-0317",
            "Justification": "Accord trouvé avec le débiteur : échéancier signé",
        }, as_user=gestionnaire.login)
        body, headers = signed_delivery(admin.issue(request["id"]), "issue.created", secret)
        httpx.post(f"http://127.0.0.1:{port}/webhooks/redmine", content=body, headers=headers)
        for _ in range(120):
            request = admin.issue(request["id"])
            if request.get("due_date"):
                break
            time.sleep(0.5)
        else:
            print("la demande d'annulation n'a pas été traitée à temps : voir `recouvrement events`", file=sys.stderr)
            return 1

        url = env["REDMINE_URL"]
        print("\nCréé dans Redmine (identifiant admin, mot de passe « admin » à la première connexion) :")
        print(f"  Registre des mandats  {url}/issues/{register['id']}")
        print(f"  Contentieux           {url}/issues/{litigation['id']}  (sous-tâche du registre)")
        for child in admin.children(litigation["id"]):
            due = f", échéance {child['due_date']}" if child.get("due_date") else ""
            print(f"  {child['tracker']['name']:<21} {url}/issues/{child['id']}  → {child['assigned_to']['name']}{due}")
        print("\nNote d'analyse sur le ticket contentieux :\n")
        print([n for n in admin.notes(litigation["id"]) if "Ouverture" in n][-1])
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
