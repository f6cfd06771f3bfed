# Shell helpers for the PostgreSQL tests (sourced after tests/e2e/lib.sh):
# a throwaway PostgreSQL server in $TMP/pg, reached over a unix socket in
# that directory only (no TCP), with prepared transactions enabled.
#   pg_start: start it (as the `postgres` user when run as root: initdb
#     refuses root); sets PG_OK=1 and PGCONN (a libpq conninfo) on success,
#     PG_OK=0 and PG_WHY otherwise
#   pg_sql SQL: run SQL through psql (unaligned, tuples only) on it
#   pg_stop: stop it (the test's EXIT trap must call it)
#   pg_restart: restart it (after ALTER SYSTEM)
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DIR=$TMP/pg
PG_PORT=5432

# pg_as CMD...: CMD as the server's owner
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  PG_OK=0
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    PG_WHY="no PostgreSQL server binaries (Debian's postgresql package)"
    return 1
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    PG_WHY="running as root and there is no postgres user to run the server"
    return 1
  fi
  mkdir -p "$PG_DIR"
  chmod 755 "$TMP"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR"
  if ! pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U tide -A trust --no-sync >"$PG_DIR/initdb.log" 2>&1; then
    PG_WHY="initdb failed: $(tail -n 3 "$PG_DIR/initdb.log")"
    return 1
  fi
  cat >>"$PG_DIR/data/postgresql.conf" <<PGEOF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
port = $PG_PORT
max_prepared_transactions = 20
fsync = off
synchronous_commit = off
full_page_writes = off
PGEOF
  if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 start >/dev/null 2>&1; then
    PG_WHY="the server did not start: $(tail -n 3 "$PG_DIR/server.log" 2>/dev/null)"
    return 1
  fi
  PGCONN="host=$PG_DIR port=$PG_PORT user=tide dbname=postgres"
  PG_OK=1
  return 0
}

pg_sql() {
  "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$PGCONN" -c "$1"
}

pg_stop() {
  [ "${PG_OK:-0}" = 1 ] && pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
  PG_OK=0
}

pg_restart() {
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -m fast -w -t 30 restart >/dev/null 2>&1
}
