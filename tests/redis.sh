#!/bin/sh
# tests/redis.sh — a throwaway Redis server for the tests.
#
#   sh tests/redis.sh start DIR   starts redis-server on a random free port of
#                                 127.0.0.1 and on the socket DIR/redis.sock
#                                 (DIR created); prints its URL
#                                 (redis://127.0.0.1:PORT). Exit 2 with the
#                                 reason on stderr when it is not installed or
#                                 will not start.
#   sh tests/redis.sh stop DIR    stops it and removes DIR.
#   sh tests/redis.sh down DIR    stops it, keeping DIR (an outage);
#   sh tests/redis.sh up DIR      starts it again on the same port and socket
#                                 (empty: it keeps nothing on disk).
#   sh tests/redis.sh run CMD...  runs CMD with SILICA_TEST_REDIS set to the
#                                 URL of a server started for it and
#                                 SILICA_TEST_REDIS_DIR to its DIR (removed
#                                 after); when none can start, says so and
#                                 runs CMD without them (its Redis tests then
#                                 report themselves skipped).
#
# redis-server comes from $SILICA_REDIS_SERVER when set, else the PATH
# (Debian package 'redis-server', which `scripts/deps.sh --test` installs).
# It saves nothing to disk and listens on loopback and its socket only.
set -u

server_bin() {
  b=${SILICA_REDIS_SERVER:-$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)}
  [ -x "$b" ] || { echo "Redis server not installed (no redis-server; Debian package 'redis-server')" >&2; return 1; }
  echo "$b"
}

# Starts the server of DIR on DIR/port; 0 when it answers PING.
r_up() {
  dir=$1
  bin=$(server_bin) || return 2
  port=$(cat "$dir/port")
  rm -f "$dir/redis.pid"
  "$bin" --port "$port" --bind 127.0.0.1 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --dir "$dir" --save "" --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" >/dev/null 2>&1 || return 2
  i=0
  while [ $i -lt 100 ]; do
    if [ -S "$dir/redis.sock" ] && [ -s "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
      if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -s "$dir/redis.sock" ping 2>/dev/null)" = "PONG" ] && return 0
      else
        return 0
      fi
    fi
    sleep 0.05
    i=$((i + 1))
  done
  return 2
}

r_down() {
  dir=$1
  [ -s "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || return 0
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid" "$dir/redis.sock"
}

r_start() {
  dir=$1
  server_bin >/dev/null || return 2
  mkdir -p "$dir" || return 2
  chmod 700 "$dir"
  tries=0
  while [ $tries -lt 8 ]; do
    # a random port in 20000..59999 (a taken one fails to bind: try another)
    port=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 + 20000 ))
    echo "$port" >"$dir/port"
    if r_up "$dir"; then
      echo "redis://127.0.0.1:$port"
      return 0
    fi
    r_down "$dir"
    tries=$((tries + 1))
  done
  echo "redis-server did not start:" >&2
  tail -5 "$dir/redis.log" >&2 2>/dev/null
  return 2
}

r_stop() {
  r_down "$1"
  rm -rf "$1"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start) r_start "$1" ;;
  stop) r_stop "$1" ;;
  down) r_down "$1" ;;
  up) r_up "$1" || { echo "redis-server did not start again" >&2; exit 2; } ;;
  run)
    dir=$(mktemp -d /tmp/silica-redis-XXXXXX)
    if url=$(r_start "$dir" 2>"$dir.why"); then
      rm -f "$dir.why"
      SILICA_TEST_REDIS=$url SILICA_TEST_REDIS_DIR=$dir "$@"
      rc=$?
      r_stop "$dir"
      exit $rc
    fi
    echo "redis.sh: Redis tests will be SKIPPED: $(cat "$dir.why" | tr '\n' ' ')" >&2
    rm -f "$dir.why"
    r_stop "$dir"
    "$@"
    ;;
  *) echo "usage: sh tests/redis.sh start DIR | stop DIR | down DIR | up DIR | run CMD..." >&2; exit 2 ;;
esac
