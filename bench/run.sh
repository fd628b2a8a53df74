#!/bin/sh
# bench/run.sh — the engine-core benchmark behind docs/PERF.md.
#
# Makes (once, under models/, which git ignores) a random-weight model shaped
# like Qwen2.5-0.5B (hidden 896, 24 layers, 14 heads, 2 KV heads, head_dim
# 64, ffn 4864, tied embeddings, vocab 151936) in Q8_0 and Q4_K_M, then for
# each: `silica bench -t 2 -p 128 -n 64 -r 3` (prefill and decode tokens/s,
# median of 3) and the peak RSS of `silica generate` (GNU time -v) next to
# the file size.
#
# Environment: SILICA_BIN (default build/release/silica), BENCH_THREADS (2),
# BENCH_MODELS (models).
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BIN=${SILICA_BIN:-build/release/silica}
T=${BENCH_THREADS:-2}
DIR=${BENCH_MODELS:-models}
[ -x "$BIN" ] || { echo "bench: $BIN not built (make silica)" >&2; exit 1; }
mkdir -p "$DIR"

echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'
echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $BIN ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"

for type in q8_0 q4_K_M; do
  f="$DIR/qwen2.5-0.5b-$(echo $type | tr 'A-Z' 'a-z').gguf"
  if [ ! -f "$f" ]; then
    echo "== making $f"
    "$BIN" mkmodel --preset qwen2.5-0.5b --type "$type" --seed 1 --out "$f"
  fi
done

for type in q8_0 q4_k_m; do
  f="$DIR/qwen2.5-0.5b-$type.gguf"
  echo
  echo "== $type: $BIN bench --model $f -t $T -p 128 -n 64 -r 3"
  "$BIN" bench --model "$f" -t "$T" -p 128 -n 64 -r 3
  echo "== $type: peak RSS of: $BIN generate --model $f -t $T -n 32 <16 prompt ids>"
  size=$(stat -c %s "$f")
  rss_kb=$( { /usr/bin/time -v "$BIN" generate --model "$f" -t "$T" -n 32 \
      1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 >/dev/null; } 2>&1 |
      sed -n 's/.*Maximum resident set size (kbytes): *//p')
  awk -v s="$size" -v r="$rss_kb" 'BEGIN {
      printf "file %.1f MiB, peak RSS %.1f MiB (%.1f%% of the file)\n", s/1048576, r/1024, 100*r*1024/s }'
done
