#!/usr/bin/env bash
# PostgreSQL for the live SQL tests: the ODBC driver registered, pg_stat_statements preloaded (restart
# only when it is not loaded yet) and created in database `test`, and the read-only login opscopilot_ro
# with exactly the grants of docs/readonly-logins.md. Idempotent: cheap when everything is in place.
set -euo pipefail
say() { printf '\033[1mpostgres:\033[0m %s\n' "$*"; }

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
RO_USER=opscopilot_ro
RO_PASSWORD=${TEST_RO_LOGIN_PASSWORD:-opscopilot-ro-dev}  # local test login only; never a real secret
PGOPTIONS="-c client_min_messages=warning"
export PGHOST PGPORT PGOPTIONS
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "${1:-postgres}" -At "${@:2}"; }

# --- ODBC driver ------------------------------------------------------------------------------
if ! odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1; then
  so=$(find /usr/lib -name psqlodbcw.so -print -quit 2>/dev/null || true)
  if [ -z "$so" ]; then
    echo "postgres: psqlodbcw.so not found; install the Debian package odbc-postgresql" >&2
    exit 1
  fi
  say "registering ODBC driver 'PostgreSQL Unicode' ($so)"
  printf '[PostgreSQL Unicode]\nDescription=PostgreSQL ODBC driver (Unicode version)\nDriver=%s\n' "$so" \
    | odbcinst -i -d -r >/dev/null
fi

# --- server running ---------------------------------------------------------------------------
cluster_version=$(ls /etc/postgresql | sort -V | tail -1)
restart() { pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main "$1"; }
wait_ready() {
  for _ in $(seq 1 60); do
    pg_isready -q -h "$PGHOST" -p "$PGPORT" && return 0
    sleep 0.5
  done
  echo "postgres: the server did not come up on $PGHOST:$PGPORT" >&2
  return 1
}
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  say "starting PostgreSQL $cluster_version"
  restart start
  wait_ready
fi

# --- pg_stat_statements -----------------------------------------------------------------------
loaded=$(psql_admin postgres -c "SHOW shared_preload_libraries")
if [[ ",${loaded// /}," != *",pg_stat_statements,"* ]]; then
  libs=${loaded:+$loaded, }pg_stat_statements
  conf=/etc/postgresql/$cluster_version/main/conf.d/50-opscopilot.conf
  say "preloading pg_stat_statements ($conf) and restarting"
  cat >"$conf" <<EOF
# written by opscopilot scripts/services.d/postgres.sh
shared_preload_libraries = '$libs'
pg_stat_statements.track = top
EOF
  chown postgres:postgres "$conf" 2>/dev/null || true
  restart restart
  wait_ready
fi
psql_admin test -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

# --- the read-only login (docs/readonly-logins.md) ---------------------------------------------
# The password is set with utility tracking off: pg_stat_statements would otherwise keep the literal.
psql_admin test -v user="$RO_USER" -v pw="$RO_PASSWORD" <<'SQL'
SET pg_stat_statements.track_utility = off;
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user')
\gexec
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
ALTER ROLE :"user" SET default_transaction_read_only = on;
GRANT pg_monitor TO :"user";
SELECT pg_stat_statements_reset(userid, dbid, queryid) FROM pg_stat_statements
 WHERE query ILIKE '%password%' AND query ILIKE '%role%'
\g /dev/null
SQL
say "pg_stat_statements loaded; login $RO_USER has pg_monitor"
