#!/usr/bin/env bash
# MariaDB for the live SQL tests: the ODBC driver registered, performance_schema switched on (restart
# only when `SELECT @@performance_schema` is 0), and the read-only login opscopilot_ro with exactly the
# grants of docs/readonly-logins.md. Idempotent: cheap when everything is in place.
set -euo pipefail
say() { printf '\033[1mmariadb:\033[0m %s\n' "$*"; }

HOST=${MARIADB_HOST:-127.0.0.1}
PORT=${MARIADB_PORT:-3306}
RO_USER=opscopilot_ro
RO_PASSWORD=${TEST_RO_LOGIN_PASSWORD:-opscopilot-ro-dev}  # local test login only; never a real secret
CONF_DIR=/etc/mysql/mariadb.conf.d
CONF=$CONF_DIR/60-opscopilot.cnf
sql() { mariadb --protocol=tcp -h "$HOST" -P "$PORT" -u root -N -B "$@"; }

# --- ODBC driver ------------------------------------------------------------------------------
if ! odbcinst -q -d -n "MariaDB Unicode" >/dev/null 2>&1; then
  so=$(find /usr/lib -name libmaodbc.so -print -quit 2>/dev/null || true)
  if [ -z "$so" ]; then
    echo "mariadb: libmaodbc.so not found; install the Debian package odbc-mariadb" >&2
    exit 1
  fi
  say "registering ODBC driver 'MariaDB Unicode' ($so)"
  printf '[MariaDB Unicode]\nDescription=MariaDB Connector/ODBC (Unicode)\nDriver=%s\n' "$so" \
    | odbcinst -i -d -r >/dev/null
fi

# --- server running ---------------------------------------------------------------------------
wait_up() {
  for _ in $(seq 1 60); do
    mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -u root ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "mariadb: the server did not come up on $HOST:$PORT (see /var/log/mysql/error.log)" >&2
  return 1
}
start() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_up
}
if ! mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -u root ping >/dev/null 2>&1; then
  say "starting MariaDB"
  start
fi

# --- performance_schema -----------------------------------------------------------------------
mkdir -p "$CONF_DIR"
if [ ! -f "$CONF" ]; then
  cat >"$CONF" <<'EOF'
# written by opscopilot scripts/services.d/mariadb.sh
[mariadbd]
performance_schema = ON
EOF
fi
# this machine's my.cnf includes no directory; make it read ours
if ! grep -Rqs "^!includedir $CONF_DIR" /etc/mysql/my.cnf; then
  printf '\n!includedir %s/\n' "$CONF_DIR" >>/etc/mysql/my.cnf
fi
if [ "$(sql -e 'SELECT @@performance_schema')" = "0" ]; then
  say "switching performance_schema on (restart)"
  mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -u root shutdown
  for _ in $(seq 1 60); do
    pgrep -x mariadbd >/dev/null || break
    sleep 0.5
  done
  start
  if [ "$(sql -e 'SELECT @@performance_schema')" != "1" ]; then
    echo "mariadb: performance_schema is still off after the restart ($CONF not read?)" >&2
    exit 1
  fi
fi

# --- the read-only login (docs/readonly-logins.md) ---------------------------------------------
sql <<SQL
CREATE USER IF NOT EXISTS '$RO_USER'@'127.0.0.1' IDENTIFIED BY '$RO_PASSWORD';
ALTER USER '$RO_USER'@'127.0.0.1' IDENTIFIED BY '$RO_PASSWORD';
GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '$RO_USER'@'127.0.0.1';
GRANT SELECT ON performance_schema.* TO '$RO_USER'@'127.0.0.1';
SQL
say "performance_schema on; login $RO_USER has PROCESS, BINLOG MONITOR, SLAVE MONITOR and SELECT on performance_schema"
