#!/bin/sh
# End-to-end tests: each tests/e2e/*.test.mjs drives the release `silica`
# binary through real clients (the official openai npm SDK, the reference
# tokenizers, Python's Jinja2). Node's own test runner runs them.
set -e
cd "$(dirname "$0")/../.."
files=$(ls tests/e2e/*.test.mjs 2>/dev/null || true)
if [ -z "$files" ]; then echo "e2e: no end-to-end tests present"; exit 0; fi
SILICA_BIN="$(pwd)/build/release/silica" NODE_PATH="$(pwd)/tests/node_modules" \
  node --test --test-concurrency=1 $files
