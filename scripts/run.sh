#!/bin/sh
# `make run`: start the server on the built-in default. Until the HTTP server
# is built into the binary, say so plainly.
set -e
cd "$(dirname "$0")/.."
BIN=build/release/silica
mkdir -p data models
if ! $BIN serve --help >/dev/null 2>&1; then
  echo "silica: the HTTP server is not built yet; available commands:"; $BIN --help; exit 1
fi
exec sh scripts/serve-default.sh
