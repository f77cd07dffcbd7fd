#!/usr/bin/env bash
# `make test` (issue 17): every test against Debian 12's Redmine 5.0 (Textile), the
# end-to-end suite against Redmine 6.1 and 6.0 (Debian sid's and 13's, CommonMark, each in
# its own root: scripts/redmine-local.sh), then the unit tests on PostgreSQL.
#
# The three Redmines are separate servers and every test makes its own project, database and
# ports, so the three suites run at once (they mostly wait on Redmine and on the service's
# processes, not on the processor). Each part writes its log in $TEST_LOGS; at the end each
# log is printed in turn, then one line per part. Exit 1 if any part failed.
#
#   PYTHON           the virtualenv's python (make passes it)
#   PYTEST_ARGS      passed to every pytest run
#   TEST_VERSIONS    the Redmines (default "5.0 6.1 6.0"; 5.0 runs every test, the others tests/e2e)
#   TEST_LOGS        where the logs go (default test-logs/)
#   TEST_POSTGRES_URL  the PostgreSQL of the unit tests' second run
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VERSIONS=${TEST_VERSIONS:-"5.0 6.1 6.0"}
LOGS=${TEST_LOGS:-test-logs}
POSTGRES_URL=${TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
read -r -a ARGS <<<"${PYTEST_ARGS:-}"
rm -rf "$LOGS" && mkdir -p "$LOGS"
export TEST_REQUIRE_POSTGRES=1

part() {  # part NAME LABEL COMMAND...: runs the command, its log in $LOGS/NAME.log
  local name=$1 label=$2; shift 2
  local started=$SECONDS
  echo "$(date +%T) début : $label"
  "$@" >"$LOGS/$name.log" 2>&1
  local code=$?
  echo "$code $((SECONDS - started))" >"$LOGS/$name.result"
  echo "$label" >"$LOGS/$name.label"
  echo "$(date +%T) terminé : $label — code $code en $((SECONDS - started)) s"  # progress on CI's screen
  return "$code"
}

# 1. The Redmines, at once (a 6.x root is built the first time: debootstrap and apt, minutes).
for v in $VERSIONS; do
  part "redmine-$v" "Redmine $v : installation et démarrage" \
    env REDMINE_VERSION="$v" PYTHON="$PY" scripts/redmine-local.sh up &
done
wait

# 2. The suites, at once, each against its own Redmine.
for v in $VERSIONS; do
  if [ "$(cut -d' ' -f1 "$LOGS/redmine-$v.result")" != 0 ]; then continue; fi
  text_format=$(REDMINE_VERSION="$v" scripts/redmine-local.sh env | sed -n 's/^REDMINE_TEXT_FORMAT=//p')
  if [ "$v" = 5.0 ]; then
    part "tests-$v" "Redmine $v ($text_format) : tous les tests" \
      env REDMINE_VERSION="$v" "$PY" -m pytest "${ARGS[@]}" &
  else
    part "tests-$v" "Redmine $v ($text_format) : tests de bout en bout" \
      env REDMINE_VERSION="$v" "$PY" -m pytest tests/e2e "${ARGS[@]}" &
  fi
done
wait

# 3. The unit tests again, wholly on PostgreSQL.
part unit-postgres "PostgreSQL : tests unitaires" \
  env TEST_POSTGRES_URL="$POSTGRES_URL" "$PY" -m pytest tests/unit "${ARGS[@]}"

failed=0
for result in "$LOGS"/*.result; do
  name=$(basename "$result" .result)
  echo "===== $(cat "$LOGS/$name.label") ($LOGS/$name.log)"
  cat "$LOGS/$name.log"
done
echo
echo "===== Résultat par partie"
for result in "$LOGS"/*.result; do
  name=$(basename "$result" .result)
  read -r code taken <"$result"
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' "$LOGS/$name.log" | tail -1 \
    | sed 's/^=* *//; s/ *=*$//')
  verdict=OK; [ "$code" = 0 ] || { verdict=ÉCHEC; failed=1; }
  printf '%-7s %-55s %4d min %02d s  %s\n' "$verdict" "$(cat "$LOGS/$name.label")" $((taken / 60)) $((taken % 60)) \
    "${summary:-}"
done
exit "$failed"
