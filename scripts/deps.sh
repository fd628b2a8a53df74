#!/bin/sh
# Installs what the build and the tests need on Debian, only when missing:
# the -dev packages of the libraries Silica links, and the test references
# (Python's Jinja2, Node.js + the npm packages pinned in tests/package.json).
# `deps.sh --test` (make test) adds Debian's Chromium for the web console's
# browser test; playwright-core drives it and never downloads a browser of
# its own. `make run` does not need it (nor the PostgreSQL and Redis
# servers, below).
set -e
PKGS="build-essential pkg-config zlib1g-dev libevent-dev libjansson-dev libpcre2-dev \
libutf8proc-dev libsqlite3-dev libpq-dev libhiredis-dev libssl-dev python3 python3-jinja2"
# --test also installs Debian's PostgreSQL and Redis servers: tests/pg.sh
# and tests/redis.sh start throwaway ones for the platform's PostgreSQL and
# shared rate-limit tests.
[ "${1:-}" = "--test" ] && PKGS="$PKGS chromium postgresql redis-server"
missing=""
# Node.js may come from outside Debian (e.g. a newer build): only ask apt for
# it when the commands are absent.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$here/tests/package.json" ]; then
  stamp="$here/tests/node_modules/.silica-installed"
  if [ ! -f "$stamp" ] || [ "$here/tests/package.json" -nt "$stamp" ]; then
    echo "deps: npm install (tests/package.json)"
    (cd "$here/tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
    touch "$stamp"
  fi
fi
