#!/usr/bin/env bash
# A real local Redmine for development and tests, with SQLite, on 127.0.0.1 (a free port),
# REST enabled, schema provisioned, in French. REDMINE_VERSION chooses which (default 5.0):
#
#   5.0   Debian 12's packages on this machine, served by thin (/usr/share/redmine)
#   6.0   Debian 13 (trixie)'s packages, in a Debian root made by debootstrap, served by Puma
#   6.1   Debian sid's packages, likewise
#
#   scripts/redmine-local.sh up       install if needed, start if stopped, provision; prints the env
#   scripts/redmine-local.sh start    start (no install, no provisioning)
#   scripts/redmine-local.sh stop     stop the server
#   scripts/redmine-local.sh status   running or not
#   scripts/redmine-local.sh env      the env file: REDMINE_URL, REDMINE_ADMIN_KEY, REDMINE_SERVICE_KEY,
#                                     REDMINE_VERSION (Redmine's own), REDMINE_TEXT_FORMAT
#   scripts/redmine-local.sh runner CODE_OR_FILE|- [ARGS...]
#                                     `rails runner` in that Redmine (what only an admin with a
#                                     console can do); files named in the arguments are copied
#                                     into the root for 6.x; waits up to 30 s for SQLite's lock
#
# Idempotent and quick when already there. One Redmine per version per machine: its state
# (port, pid, keys, and for 6.x its root) lives in $RECOUVREMENT_REDMINE_STATE (default
# /var/tmp/recouvrement-redmine for 5.0, /var/tmp/recouvrement-redmine-6.0 and -6.1).
set -euo pipefail

VERSION=${REDMINE_VERSION:-5.0}
case "$VERSION" in  # "6.1.5.stable" (an env file's REDMINE_VERSION) is 6.1
  5.0|5.0.*) VERSION=5.0 SUITE= ;;
  6.0|6.0.*) VERSION=6.0 SUITE=trixie ;;
  6.1|6.1.*) VERSION=6.1 SUITE=sid ;;
  *) echo "redmine-local: REDMINE_VERSION=$VERSION inconnue (5.0, 6.0 ou 6.1)" >&2; exit 2 ;;
esac
if [ "$VERSION" = 5.0 ]; then
  STATE=${RECOUVREMENT_REDMINE_STATE:-/var/tmp/recouvrement-redmine}
  ROOT=
  PIDFILE=$STATE/server.pid
else
  STATE=${RECOUVREMENT_REDMINE_STATE:-/var/tmp/recouvrement-redmine-$VERSION}
  ROOT=$STATE/root
  PIDFILE=$ROOT/tmp/recouvrement/server.pid  # written by Puma inside the root; same pid on the host
fi
REDMINE_DIR=/usr/share/redmine  # inside the root for 6.x
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
[ -x "$PY" ] || PY=python3
# Debian 12's postinst and every bundle call need Debian's patched bundler (see issue 2).
if [ "$VERSION" = 5.0 ]; then export BUNDLER_VERSION=2.3.15 REDMINE_INSTANCE=default RAILS_ENV=production; fi
mkdir -p "$STATE"

log() { echo "redmine-local ($VERSION): $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A command in Redmine's directory: on this machine (5.0), or in the root with a clean
# environment (the host's BUNDLER_VERSION would break the root's bundler).
in_redmine() {
  if [ -z "$ROOT" ]; then (cd "$REDMINE_DIR" && "$@"); return; fi
  in_root sh -c 'cd "$0" && exec "$@"' "$REDMINE_DIR" "$@"
}

in_root() {
  as_root chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb RAILS_ENV=production REDMINE_INSTANCE=default "$@"
}

# --- 5.0: Debian 12's packages on this machine ---------------------------------------------
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
# The same `timeout:` key serves Rails 6.1 (5.0) and 7.2 (6.x), whose database.yml is alike.
busy_timeout() {  # true when it changed the file (a running server must restart)
  local yml=$ROOT/etc/redmine/default/database.yml
  grep -q '^  timeout:' "$yml" && return 1
  as_root sed -i 's/^  adapter: sqlite3$/  adapter: sqlite3\n  timeout: 30000/' "$yml"
}

# --- 6.x: a Debian root per version, built once -----------------------------------------------
# The recipe is build_root (and the suite): its hash is the root's stamp, so changing the
# recipe rebuilds the root at the next `up`. Building takes 1 to 5 minutes and 0.6-0.8 GB.
build_root() {
  local suite=$SUITE root=$ROOT log=$1 mirror
  # The host's Debian mirror if it names one (an office's own), else debootstrap's default.
  mirror=$(sed -n 's|^URIs: *\([^ ]*/debian\)/*$|\1|p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  as_root debootstrap --variant=minbase "$suite" "$root" ${mirror:+"$mirror"} >>"$log" 2>&1
  # sid's Release file can be past its Valid-Until; no package may start a service in the root.
  echo 'Acquire::Check-Valid-Until "false";' | as_root tee "$root/etc/apt/apt.conf.d/99recouvrement" >/dev/null
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$root/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod 755 "$root/usr/sbin/policy-rc.d"
  mount_root
  printf '%s\n' "redmine redmine/instances/default/database-type select sqlite3" \
    "redmine redmine/instances/default/dbconfig-install boolean true" | in_root debconf-set-selections
  in_root apt-get update -qq >>"$log" 2>&1
  # Puma comes with the package (Debian's redmine depends on ruby-puma).
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redmine redmine-sqlite >>"$log" 2>&1
  # The package's database has English default data (statuses, trackers, roles): a French
  # office's instead, as `up` on 5.0 gets from its French default language.
  local db; db=$(sed -n 's/^  database: *//p' "$root/etc/redmine/default/database.yml" | head -1)
  as_root rm -f "$root$db" "$root$db-wal" "$root$db-shm"
  in_redmine bundle exec rake db:migrate >>"$log" 2>&1
  in_redmine env REDMINE_LANG=fr bundle exec rake redmine:load_default_data >>"$log" 2>&1
  in_redmine bundle exec rails runner -e production 'puts "Redmine #{Redmine::VERSION} (#{Setting.text_formatting})"' \
    >>"$log" 2>&1
}

recipe_stamp() { { echo "$SUITE"; declare -f build_root; } | sha256sum | cut -c1-16; }

mounted() { grep -q "^[^ ]* $1 " /proc/mounts; }

mount_root() {  # idempotent: after a reboot `up` mounts them again
  mounted "$ROOT/proc" || as_root mount --bind /proc "$ROOT/proc"
  mounted "$ROOT/dev" || as_root mount --bind /dev "$ROOT/dev"
}

unmount_root() {
  local fs
  for fs in dev proc; do if mounted "$ROOT/$fs"; then as_root umount "$ROOT/$fs" || as_root umount -l "$ROOT/$fs"; fi; done
}

install_root() {
  local stamp; stamp=$(recipe_stamp)
  if [ "$(cat "$STATE/root.stamp" 2>/dev/null)" = "$stamp" ] && [ -d "$ROOT/usr/share/redmine" ]; then
    mount_root; return
  fi
  command -v debootstrap >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq debootstrap; }
  stop
  if [ -d "$ROOT" ]; then
    log "recette changée : reconstruction de $ROOT…"
    unmount_root
    # --one-file-system: never into a bind mount that could not be undone (the host's /dev)
    as_root rm -rf --one-file-system "$ROOT"
  fi
  rm -f "$STATE/root.stamp" "$STATE/provisioned" "$STATE/env"
  log "construction d'une racine Debian $SUITE dans $ROOT (debootstrap, paquets redmine redmine-sqlite)…"
  local started=$SECONDS
  : >"$STATE/build.log"
  trap 'tail -40 "$STATE/build.log" >&2; log "construction échouée (journal : $STATE/build.log)"' EXIT
  build_root "$STATE/build.log"  # not in a condition: `set -e` stops it at the first failure
  trap - EXIT
  echo "$stamp" >"$STATE/root.stamp"
  log "racine construite en $((SECONDS - started)) s ($(du -sh --one-file-system "$ROOT" | cut -f1)) : $(tail -1 "$STATE/build.log")"
}

# --- both ------------------------------------------------------------------------------------
port() { cat "$STATE/port" 2>/dev/null || true; }

answers() {  # the server answers HTTP on its port
  local p; p=$(port); [ -n "$p" ] || return 1
  "$PY" - "$p" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login", timeout=5)
EOF
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers; }

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
  rm -f "$PIDFILE"
  log "démarrage sur http://127.0.0.1:$p …"
  # Fully detached (own session, no inherited descriptors), so callers' pipes close.
  if [ -z "$ROOT" ]; then
    (cd "$REDMINE_DIR" && exec setsid bundle exec rails server -e production -b 127.0.0.1 -p "$p" \
       -P "$PIDFILE") </dev/null >"$STATE/server.log" 2>&1 &
  else
    # The root shares the host's network: 127.0.0.1:$p answers on the host.
    # Puma (Debian's redmine 6 depends on it), one thread, like thin on 5.0: requests are
    # served one at a time on every version. Its default, 0:5 threads, is not safe on one
    # SQLite file with Rails 7.2: transactions begin DEFERRED, so two that read then write
    # fail at once, "database is locked" (a 500), whatever the timeout; and SQLite's busy
    # timeout waits in C holding Ruby's lock, stopping the very thread that would release
    # it (Rails 8 changed both). Not seen in the concurrency, replica and polling tests with
    # 5 threads (no 500), but nothing in them would provoke it reliably. Between
    # processes (a test's `rails runner`, provisioning) database.yml's timeout is enough.
    # PUMA_MIN/MAX_THREADS are read by Puma (6.6 on 6.0, 8.0 on 6.1): Redmine ships no
    # config/puma.rb.
    mount_root
    as_root mkdir -p "$ROOT/tmp/recouvrement"
    (exec setsid chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
       HOME=/root LANG=C.UTF-8 RAILS_ENV=production REDMINE_INSTANCE=default PUMA_MIN_THREADS=1 PUMA_MAX_THREADS=1 \
       sh -c 'cd "$0" && exec bundle exec rails server -e production -b 127.0.0.1 -p "$1" -P "$2"' \
       "$REDMINE_DIR" "$p" "${PIDFILE#"$ROOT"}") </dev/null >"$STATE/server.log" 2>&1 &
  fi
  for _ in $(seq 1 240); do
    if answers; then return; fi
    sleep 0.5
  done
  tail -30 "$STATE/server.log" >&2
  log "le serveur ne répond pas"; exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid; pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
}

# `rails runner` as is (provisioning).
rails_runner() { in_redmine bundle exec rails runner -e production "$@"; }

# The `runner` command: code, or a file and its arguments, after a 30 s SQLite busy timeout
# (a request or another runner holding the lock is waited for). Files named in the
# arguments are copied into the root (it cannot see the host's paths), and their paths
# rewritten; standard input, output, error and the exit status are passed through.
runner() {
  [ $# -ge 1 ] || { echo "usage: $0 runner CODE_OR_FILE|- [ARGS...]" >&2; exit 2; }
  local args=() arg tmp= i=0
  if [ -n "$ROOT" ]; then
    mount_root
    tmp=/tmp/recouvrement/runner.$$
    as_root mkdir -p "$ROOT$tmp"
    trap 'as_root rm -rf "$ROOT/tmp/recouvrement/runner.$$"' EXIT
  fi
  for arg in "$@"; do
    if [ -f "$arg" ]; then arg=$(realpath "$arg"); fi  # Redmine's directory is the runner's
    if [ -n "$tmp" ] && [ -f "$arg" ]; then
      i=$((i + 1)); as_root cp "$arg" "$ROOT$tmp/$i-$(basename "$arg")"; arg=$tmp/$i-$(basename "$arg")
    fi
    args+=("$arg")
  done
  local wait='ActiveRecord::Base.connection.raw_connection.busy_timeout(30_000)'
  if [ "$1" = - ]; then  # as `rails runner -` does: the program on standard input
    rails_runner "$wait; eval(\$stdin.read, TOPLEVEL_BINDING, 'stdin')" "${args[@]:1}"
  elif [ -f "$1" ]; then  # as `rails runner FILE ARGS` does: ARGV the arguments, $0 the file
    rails_runner "$wait; \$0 = File.expand_path(ARGV.shift); load \$0" "${args[@]}"
  else
    rails_runner "$wait"$'\n'"${args[0]}" "${args[@]:1}"
  fi
}

provision() {
  (cd "$HERE" && "$PY" -m app.cli redmine spec) >"$STATE/schema.json.new"
  local stamp; stamp=$(cat "$STATE/schema.json.new" "$HERE/integrations/redmine/provision.rb" "$HERE/scripts/redmine-local.sh" \
    | sha256sum | cut -c1-16)
  if [ -f "$STATE/env" ] && [ "$(cat "$STATE/provisioned" 2>/dev/null)" = "$stamp" ] && keys_work; then return; fi
  mv "$STATE/schema.json.new" "$STATE/schema.json"
  log "provisionnement du schéma…"
  runner "$HERE/integrations/redmine/provision.rb" "$STATE/schema.json" >"$STATE/provision.log" 2>&1 \
    || { tail -30 "$STATE/provision.log" >&2; exit 1; }
  local service_key settings
  service_key=$(sed -n 's/^SERVICE_API_KEY=//p' "$STATE/provision.log")
  # Local Redmine only (provision.rb leaves these): French, as a French office's; no e-mail
  # notifications — their delivery jobs run in threads of the Redmine process and lock its
  # SQLite file under a request ("database is locked", a 500). 6.x: CommonMark, what a new
  # 6.x install has (Redmine's own default since 6.0, kept by Debian's package), set so that
  # a reused root is CommonMark again; 5.0 keeps its default, Textile.
  local format=
  [ -n "$ROOT" ] && format='Setting.text_formatting = "common_mark"; '
  settings=$(runner "Setting.default_language = 'fr'; Setting.notified_events = []; $format
puts \"REDMINE_ADMIN_KEY=#{User.find_by_login('admin').api_key}\"
puts \"REDMINE_VERSION=#{Redmine::VERSION}\"
puts \"REDMINE_TEXT_FORMAT=#{Setting.text_formatting}\"" 2>>"$STATE/provision.log" | grep '^REDMINE_')
  umask 077
  { printf 'REDMINE_URL=http://127.0.0.1:%s\n' "$(port)"
    grep '^REDMINE_ADMIN_KEY=' <<<"$settings"
    printf 'REDMINE_SERVICE_KEY=%s\n' "$service_key"
    grep -v '^REDMINE_ADMIN_KEY=' <<<"$settings"; } >"$STATE/env"
  echo "$stamp" >"$STATE/provisioned"
}

write_url() {  # the port can change between starts; keys do not
  [ -f "$STATE/env" ] && sed -i "s|^REDMINE_URL=.*|REDMINE_URL=http://127.0.0.1:$(port)|" "$STATE/env"
  return 0
}

install() {
  if [ -z "$ROOT" ]; then install_redmine; else install_root; fi
  if busy_timeout; then stop; fi
}

case "${1:-up}" in
  up) install; start; write_url; provision; cat "$STATE/env" | sed 's/KEY=.*/KEY=…/' >&2 ;;
  start) start; write_url ;;
  stop) stop ;;
  status) if running; then echo "running on http://127.0.0.1:$(port)"; else echo "stopped"; exit 1; fi ;;
  env) cat "$STATE/env" ;;
  runner) shift; runner "$@" ;;
  *) echo "usage: $0 up|start|stop|status|env|runner CODE_OR_FILE|- [ARGS...]" >&2; exit 2 ;;
esac
