#!/usr/bin/env bash
# A real local Redmine for development and tests: Debian's redmine 5.0 with SQLite,
# served by thin on 127.0.0.1 (a free port), REST enabled, schema provisioned.
#
#   scripts/redmine-local.sh up       install if needed, start if stopped, provision; prints the env
#   scripts/redmine-local.sh start    start (no install, no provisioning)
#   scripts/redmine-local.sh stop     stop the server
#   scripts/redmine-local.sh status   running or not
#   scripts/redmine-local.sh env      the env file: REDMINE_URL, REDMINE_ADMIN_KEY, REDMINE_SERVICE_KEY
#
# Idempotent and quick when already there. One Redmine per machine: its state (port, pid,
# keys) lives in $RECOUVREMENT_REDMINE_STATE (default /var/tmp/recouvrement-redmine).
set -euo pipefail

STATE=${RECOUVREMENT_REDMINE_STATE:-/var/tmp/recouvrement-redmine}
REDMINE_ROOT=/usr/share/redmine
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
[ -x "$PY" ] || PY=python3
# Debian's postinst and every bundle call need Debian's patched bundler (see issue 2).
export BUNDLER_VERSION=2.3.15 REDMINE_INSTANCE=default RAILS_ENV=production
mkdir -p "$STATE"

log() { echo "redmine-local: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_redmine() {
  if dpkg -s redmine redmine-sqlite thin >/dev/null 2>&1; then return; fi
  log "installation des paquets Debian redmine redmine-sqlite thin…"
  echo "redmine redmine/instances/default/database-type select sqlite3" | as_root debconf-set-selections
  echo "redmine redmine/instances/default/dbconfig-install boolean true" | as_root debconf-set-selections
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive BUNDLER_VERSION=2.3.15 \
    apt-get install -y -qq redmine redmine-sqlite thin >"$STATE/apt.log" 2>&1 \
    || { tail -40 "$STATE/apt.log" >&2; exit 1; }
}

# Debian's database.yml sets no SQLite busy timeout: a request meeting another process's
# write (a test's `rails runner`, a second request) fails at once, "database is locked", a
# 500. Waiting up to 30 s is what a real office's single Redmine would never need to do.
busy_timeout() {
  local yml=/etc/redmine/default/database.yml
  grep -q '^  timeout:' "$yml" && return 1
  as_root sed -i 's/^  adapter: sqlite3$/  adapter: sqlite3\n  timeout: 30000/' "$yml"
}

port() { cat "$STATE/port" 2>/dev/null || true; }

answers() {  # the server answers HTTP on its port
  local p; p=$(port); [ -n "$p" ] || return 1
  "$PY" - "$p" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login", timeout=5)
EOF
}

running() { [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null && answers; }

keys_work() {  # the stored keys belong to this Redmine's database (not to a reinstalled one)
  "$PY" - "$STATE/env" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
env = dict(line.strip().split("=", 1) for line in open(sys.argv[1]) if "=" in line)
for key in (env["REDMINE_ADMIN_KEY"], env["REDMINE_SERVICE_KEY"]):
    request = urllib.request.Request(env["REDMINE_URL"] + "/users/current.json", headers={"X-Redmine-API-Key": key})
    urllib.request.urlopen(request, timeout=10)
EOF
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_free() {
  "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds it
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
}

start() {
  if running; then return; fi
  local p; p=$(port)
  if [ -z "$p" ] || ! port_free "$p"; then p=$(free_port); echo "$p" >"$STATE/port"; fi
  rm -f "$STATE/server.pid"
  log "démarrage sur http://127.0.0.1:$p …"
  # Fully detached (own session, no inherited descriptors), so callers' pipes close.
  (cd "$REDMINE_ROOT" && exec setsid bundle exec rails server -e production -b 127.0.0.1 -p "$p" \
     -P "$STATE/server.pid") </dev/null >"$STATE/server.log" 2>&1 &
  for _ in $(seq 1 240); do
    if answers; then return; fi
    sleep 0.5
  done
  tail -30 "$STATE/server.log" >&2
  log "le serveur ne répond pas"; exit 1
}

stop() {
  if [ -f "$STATE/server.pid" ]; then
    local pid; pid=$(cat "$STATE/server.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STATE/server.pid"
  fi
}

runner() { (cd "$REDMINE_ROOT" && bundle exec rails runner -e production "$@"); }

provision() {
  (cd "$HERE" && "$PY" -m app.cli redmine spec) >"$STATE/schema.json.new"
  local stamp; stamp=$(cat "$STATE/schema.json.new" "$HERE/integrations/redmine/provision.rb" "$HERE/scripts/redmine-local.sh" \
    | sha256sum | cut -c1-16)
  if [ -f "$STATE/env" ] && [ "$(cat "$STATE/provisioned" 2>/dev/null)" = "$stamp" ] && keys_work; then return; fi
  mv "$STATE/schema.json.new" "$STATE/schema.json"
  log "provisionnement du schéma…"
  runner "$HERE/integrations/redmine/provision.rb" "$STATE/schema.json" >"$STATE/provision.log" 2>&1 \
    || { tail -30 "$STATE/provision.log" >&2; exit 1; }
  local service_key admin_key
  service_key=$(sed -n 's/^SERVICE_API_KEY=//p' "$STATE/provision.log")
  # Local Redmine only (provision.rb leaves these): French, as a French office's; no e-mail
  # notifications — their delivery jobs run in threads of the Redmine process and lock its
  # SQLite file under a request ("database is locked", a 500).
  admin_key=$(runner 'Setting.default_language = "fr"; Setting.notified_events = []; puts User.find_by_login("admin").api_key' \
    2>/dev/null | tail -1)
  umask 077
  printf 'REDMINE_URL=http://127.0.0.1:%s\nREDMINE_ADMIN_KEY=%s\nREDMINE_SERVICE_KEY=%s\n' \
    "$(port)" "$admin_key" "$service_key" >"$STATE/env"
  echo "$stamp" >"$STATE/provisioned"
}

write_url() {  # the port can change between starts; keys do not
  [ -f "$STATE/env" ] && sed -i "s|^REDMINE_URL=.*|REDMINE_URL=http://127.0.0.1:$(port)|" "$STATE/env"
  return 0
}

case "${1:-up}" in
  up) install_redmine; if busy_timeout; then stop; fi; start; write_url; provision; cat "$STATE/env" | sed 's/KEY=.*/KEY=…/' >&2 ;;
  start) start; write_url ;;
  stop) stop ;;
  status) if running; then echo "running on http://127.0.0.1:$(port)"; else echo "stopped"; exit 1; fi ;;
  env) cat "$STATE/env" ;;
  *) echo "usage: $0 up|start|stop|status|env" >&2; exit 2 ;;
esac
