#!/bin/sh
# tests/pg.sh — a throwaway PostgreSQL server for the tests.
#
#   sh tests/pg.sh start DIR    initdb a cluster in DIR (created, empty or
#                               absent) and start it on a unix socket in DIR;
#                               prints its URL (maintenance database
#                               "postgres"). Exit 2 with the reason on stderr
#                               when PostgreSQL is not installed or will not
#                               start.
#   sh tests/pg.sh stop DIR     stops it and removes DIR.
#   sh tests/pg.sh down DIR     stops it, keeping DIR (a database outage);
#   sh tests/pg.sh up DIR       starts it again.
#   sh tests/pg.sh run CMD...   runs CMD with SILICA_TEST_PG set to the URL of
#                               a server started for it (and removed after);
#                               when none can start, says so and runs CMD
#                               without it (its PostgreSQL tests then report
#                               themselves skipped).
#
# The server's programs are taken from $SILICA_PG_BIN when set, else the
# newest /usr/lib/postgresql/*/bin (Debian), else initdb on the PATH.
# The server listens on no TCP port, only on DIR/.s.PGSQL.5432, trusts local
# connections (it lives and dies with the test) and runs without fsync.
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` system user and runs through runuser.
set -u

find_bin() {
  if [ -n "${SILICA_PG_BIN:-}" ]; then
    [ -x "$SILICA_PG_BIN/initdb" ] && [ -x "$SILICA_PG_BIN/pg_ctl" ] && { echo "$SILICA_PG_BIN"; return 0; }
    return 1
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  for d in $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)"); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  dir=$1
  bin=$(find_bin) || { echo "PostgreSQL server not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin; Debian package 'postgresql')" >&2; return 2; }
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "running as root and there is no 'postgres' system user to run the server as" >&2
    return 2
  fi
  mkdir -p "$dir" || return 2
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  chmod 700 "$dir"
  if ! as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
    echo "initdb failed:" >&2; tail -5 "$dir/initdb.log" >&2; return 2
  fi
  pg_up "$dir" || return 2
  echo "postgresql:///postgres?host=$dir&port=5432&user=postgres"
}

# Starts (again) the cluster of DIR.
pg_up() {
  dir=$1
  bin=$(find_bin) || return 2
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -c listen_addresses= -p 5432 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >"$dir/pg_ctl.log" 2>&1; then
    echo "the PostgreSQL server did not start:" >&2; tail -5 "$dir/server.log" >&2; return 2
  fi
}

# Stops the cluster of DIR, keeping its data (an outage to recover from).
pg_down() {
  bin=$(find_bin) || return 2
  as_owner "$bin/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1
}

pg_stop() {
  dir=$1
  bin=$(find_bin) || bin=""
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start) pg_start "$1" ;;
  stop) pg_stop "$1" ;;
  down) pg_down "$1" ;;
  up) pg_up "$1" ;;
  run)
    dir=$(mktemp -d /tmp/silica-pg-XXXXXX)
    if url=$(pg_start "$dir" 2>"$dir.why"); then
      rm -f "$dir.why"
      SILICA_TEST_PG=$url "$@"
      rc=$?
      pg_stop "$dir"
      exit $rc
    fi
    echo "pg.sh: PostgreSQL tests will be SKIPPED: $(cat "$dir.why" | tr '\n' ' ')" >&2
    rm -f "$dir.why"
    pg_stop "$dir"
    "$@"
    ;;
  *) echo "usage: sh tests/pg.sh start DIR | stop DIR | down DIR | up DIR | run CMD..." >&2; exit 2 ;;
esac
