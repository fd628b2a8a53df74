#!/bin/sh
# `make run`: start the server on the built-in default (scripts/serve-default.sh).
set -e
cd "$(dirname "$0")/.."
exec sh scripts/serve-default.sh
