#!/usr/bin/env bash
# PostgreSQL for the tests, on 127.0.0.1:5432 with a database `test`:
#   the server already answering there is used as it is; otherwise Debian's `postgresql`
#   is installed (if absent), its cluster started, trust granted to `postgres` over local
#   TCP (this is a test server), and the database created.
# Prints the admin URL the tests use (TEST_POSTGRES_ADMIN_URL).
set -euo pipefail
HOST=127.0.0.1
PORT=5432
URL="postgresql+psycopg://postgres@$HOST:$PORT/test"

ready() { command -v pg_isready >/dev/null && pg_isready -q -h "$HOST" -p "$PORT"; }

if ! ready; then
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
        echo "installation de PostgreSQL (paquet Debian postgresql)…" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main" || pg_createcluster "$version" main >/dev/null
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    grep -q "recouvrement-tests" "$hba" ||
        sed -i "1i host all postgres $HOST/32 trust # recouvrement-tests" "$hba"
    pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main reload
    for _ in $(seq 60); do ready && break; sleep 0.5; done
    ready || { echo "PostgreSQL ne répond pas sur $HOST:$PORT" >&2; exit 1; }
fi
if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE test"
fi
echo "$URL"
