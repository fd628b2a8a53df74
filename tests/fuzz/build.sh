#!/bin/sh
# tests/fuzz/build.sh — build the GGUF fuzz target with libFuzzer + ASan +
# UBSan (clang) and run it for a bounded time.
#
#   sh tests/fuzz/build.sh            # build, then fuzz for FUZZ_SECONDS (60)
#   FUZZ_SECONDS=600 sh tests/fuzz/build.sh
#   FUZZ_RUN=0 sh tests/fuzz/build.sh # build only
#   FUZZ_TARGET=tokenizer sh tests/fuzz/build.sh  # fuzz the tokenizer data of a GGUF
#   FUZZ_TARGET=model sh tests/fuzz/build.sh  # fuzz model loading (seeds: tiny mkmodel files)
#   FUZZ_TARGET=jinja sh tests/fuzz/build.sh  # fuzz the chat-template interpreter
#                                     # (seeds: tests/data/templates/*.jinja)
#   FUZZ_TARGET=resp sh tests/fuzz/build.sh   # fuzz the Responses API request side
#   FUZZ_TARGET=anth sh tests/fuzz/build.sh   # fuzz the Anthropic Messages request side
#   FUZZ_TARGET=router sh tests/fuzz/build.sh # fuzz the router's affinity keys and response ids
#   FUZZ_TARGET=upload sh tests/fuzz/build.sh # fuzz batch uploads (multipart + JSONL validation)
#   FUZZ_TARGET=toolcall sh tests/fuzz/build.sh  # fuzz the tool-call output parsers and grammars
#
# Output goes to build/fuzz/. The seed corpus is written by gguf_seeds (three
# small files from the writer); the working corpus lives in
# build/fuzz/corpus-gguf and grows across runs. A crash leaves crash-* files
# in build/fuzz/ and a non-zero exit status.
set -eu
cd "$(dirname "$0")/../.."
OUT=build/fuzz
CC=${FUZZ_CC:-clang}
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
mkdir -p "$OUT/corpus-gguf" "$OUT/seeds-gguf"

SRCS="src/gguf/gguf.c src/gguf/gguf_write.c src/base/base.c src/kernels/quant.c src/kernels/iquant.c src/kernels/iq_grids.c"
FLAGS="-std=c11 -D_GNU_SOURCE -Isrc -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter"

"$CC" $FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_gguf" tests/fuzz/fuzz_gguf.c $SRCS -lm
"$CC" $FLAGS -o "$OUT/gguf_seeds" tests/fuzz/gguf_seeds.c $SRCS -lm
"$OUT/gguf_seeds" "$OUT/seeds-gguf"
echo "built $OUT/fuzz_gguf"

mkdir -p "$OUT/corpus-jinja" "$OUT/seeds-jinja"
"$CC" $FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -pthread -o "$OUT/fuzz_jinja" tests/fuzz/fuzz_jinja.c src/chat/*.c src/grammar/*.c src/base/base.c \
    -ljansson -lutf8proc -lpcre2-8 -lm
cp tests/data/templates/*.jinja "$OUT/seeds-jinja/"
echo "built $OUT/fuzz_jinja"

# Grammar parsers (GBNF / regex / JSON Schema): FUZZ_TARGET=grammar runs it.
mkdir -p "$OUT/corpus-grammar"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_grammar" tests/fuzz/fuzz_grammar.c src/grammar/*.c src/base/base.c \
    -ljansson -lpcre2-8 -lm
echo "built $OUT/fuzz_grammar"

# Responses API requests (FUZZ_TARGET=resp): translation, the chat request's
# parser, the output side replayed; seeds: small request bodies.
mkdir -p "$OUT/corpus-resp" "$OUT/seeds-resp"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_resp" tests/fuzz/fuzz_resp.c src/server/resp.c src/server/oai.c src/server/oai_format.c \
    src/sampling/*.c src/grammar/*.c src/kernels/*.c src/kernels/*/*.c src/base/*.c -ljansson -lpcre2-8 -lm
printf '%s' '{"model":"m","input":"hi","instructions":"x","max_output_tokens":5}' > "$OUT/seeds-resp/text"
printf '%s' '{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"}}},"metadata":{"k":"v"},"reasoning":{"effort":"none"}}' > "$OUT/seeds-resp/items"
printf '%s\0%s' '{"model":"m","input":"more","previous_response_id":"resp_1"}' '[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"t"}]}]' > "$OUT/seeds-resp/prev"
echo "built $OUT/fuzz_resp"

# Anthropic Messages requests (FUZZ_TARGET=anth): translation (message and
# count_tokens), the chat request's parser, errors, the output side replayed.
mkdir -p "$OUT/corpus-anth" "$OUT/seeds-anth"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_anth" tests/fuzz/fuzz_anth.c src/server/anth.c src/server/oai.c src/server/oai_format.c \
    src/sampling/*.c src/grammar/*.c src/kernels/*.c src/kernels/*/*.c src/base/*.c -ljansson -lpcre2-8 -lm
printf '%s' '{"model":"m","max_tokens":5,"system":"x","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"The"}],"stop_sequences":["a"],"temperature":0.5,"stream":true}' > "$OUT/seeds-anth/text"
printf '%s' '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"q"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":""},{"type":"text","text":"a"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"r"}],"is_error":true},{"type":"text","text":"more"}]}],"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},"thinking":{"type":"enabled","budget_tokens":64},"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},"metadata":{"user_id":"u"}}' > "$OUT/seeds-anth/tools"
echo "built $OUT/fuzz_anth"

# The router's readers (FUZZ_TARGET=router): affinity keys of request
# bodies, stored-response references, a node's answer head.
mkdir -p "$OUT/corpus-router" "$OUT/seeds-router"
"$CC" $FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_router" tests/fuzz/fuzz_router.c src/router/key.c src/base/base.c -ljansson -lm
printf '\000%s' '{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"q"}]}]}' > "$OUT/seeds-router/chat"
printf '\001%s' '{"model":"m","prompt":[[1,2,3],[4]]}' > "$OUT/seeds-router/ids"
printf '\002%s' '{"model":"m","instructions":"i","input":[{"role":"user","content":"x"}],"previous_response_id":"resp_1","prompt_cache_key":"k"}' > "$OUT/seeds-router/resp"
printf '\003%s\n%s' 'event: response.created' 'data: {"type":"response.created","response":{"id":"resp_8f","object":"response"}}' > "$OUT/seeds-router/sse"
echo "built $OUT/fuzz_router"

# Batch uploads (FUZZ_TARGET=upload): the multipart splitter, then the batch
# input file's validation; seeds: one valid upload.
mkdir -p "$OUT/corpus-upload" "$OUT/seeds-upload"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Wno-missing-field-initializers -I/usr/include/postgresql -o "$OUT/fuzz_upload" tests/fuzz/fuzz_upload.c src/server/multipart.c \
    src/platform/*.c src/base/base.c -ljansson -lsqlite3 -lpq -lhiredis -lcrypto -lm
printf 'multipart/form-data; boundary=XY\0--XY\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--XY\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n%s\n%s\r\n--XY--\r\n' \
    '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}' \
    '{"custom_id":"b","method":"POST","url":"/v1/completions","body":{"model":"n"}}' > "$OUT/seeds-upload/two"
echo "built $OUT/fuzz_upload"

# Tool calls (FUZZ_TARGET=toolcall): every family's streaming output parser
# on model output (byte 0 the family, byte 1 the options, byte 2 the piece
# sizes), and with option bit 32 the call grammars of a fuzzed tools array.
mkdir -p "$OUT/corpus-toolcall" "$OUT/seeds-toolcall"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_toolcall" tests/fuzz/fuzz_toolcall.c src/chat/toolcall*.c src/grammar/*.c src/base/base.c \
    -ljansson -lpcre2-8 -lm
printf '\001\002\007%s' '<think>x</think>Hi <tool_call>
{"name": "get_weather", "arguments": {"location": "Paris"}}
</tool_call>' > "$OUT/seeds-toolcall/hermes"
printf '\012\001\011%s' 'Sure.
<tool_call>
<function=get_weather>
<parameter=location>
Paris
</parameter>
<parameter=days>
3
</parameter>
<parameter=flag>
True
</parameter>
</function>
</tool_call>' > "$OUT/seeds-toolcall/qwen3_coder"
printf '\011\000\003%s' '<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{}<|call|>' > "$OUT/seeds-toolcall/harmony"
printf '\006\000\005%s' '<tool_call>get_weather
<arg_key>days</arg_key>
<arg_value>2</arg_value>
</tool_call>' > "$OUT/seeds-toolcall/glm45"
printf '\000\040\000%s' '[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","enum":["x","y"]},"b":{"type":"integer"},"c":{"type":["string","null"],"maxLength":4}},"required":["a"]}}}]' > "$OUT/seeds-toolcall/grammar"
echo "built $OUT/fuzz_toolcall"

# Tokenizer data (FUZZ_TARGET=tokenizer): tok_load + encode / decode.
mkdir -p "$OUT/corpus-tokenizer" "$OUT/seeds-tokenizer"
TOK_SRCS="src/tokenizer/*.c src/gguf/gguf.c src/gguf/gguf_write.c src/base/base.c src/kernels/quant.c src/kernels/iquant.c \
    src/kernels/iq_grids.c"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_tokenizer" tests/fuzz/fuzz_tokenizer.c $TOK_SRCS -ljansson -lutf8proc -lpcre2-8 -lcrypto -lm
"$CC" $FLAGS -pthread -o "$OUT/tok_seeds" tests/fuzz/tok_seeds.c src/gguf/gguf.c src/gguf/gguf_write.c \
    src/base/base.c src/kernels/quant.c src/kernels/iquant.c src/kernels/iq_grids.c -lm
"$OUT/tok_seeds" "$OUT/seeds-tokenizer"
echo "built $OUT/fuzz_tokenizer"

# Model files (FUZZ_TARGET=model): model_load + a short forward pass; seeds
# are tiny models written by the release binary's mkmodel, when it is built.
mkdir -p "$OUT/corpus-model" "$OUT/seeds-model"
MODEL_SRCS="src/model/*.c src/kernels/*.c src/kernels/*/*.c src/gguf/*.c src/base/*.c"
"$CC" $FLAGS -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$OUT/fuzz_model" tests/fuzz/fuzz_model.c $MODEL_SRCS -lm
if [ -x build/release/silica ]; then
    T="--embd 32 --heads 2 --layers 1 --ffn 64 --vocab 24 --seed 3"
    for a in llama qwen3moe gemma3; do
        build/release/silica mkmodel --arch $a $T --kv-heads 1 --out "$OUT/seeds-model/$a.gguf" >/dev/null
    done
    build/release/silica mkmodel --arch qwen3 $T --kv-heads 1 --pooling last --out "$OUT/seeds-model/qwen3-emb.gguf" >/dev/null
    build/release/silica mkmodel --arch bert $T --pooling rank --out "$OUT/seeds-model/bert.gguf" >/dev/null
    build/release/silica mkmodel --arch nomic-bert $T --out "$OUT/seeds-model/nomic-bert.gguf" >/dev/null
    build/release/silica mkmodel --arch deepseek2 $T --qk-nope 8 --qk-rope 4 --v-head 8 --kv-lora 16 --experts 4 \
        --experts-used 2 --expert-ffn 16 --out "$OUT/seeds-model/deepseek2.gguf" >/dev/null
    build/release/silica mkmodel --arch gpt-oss $T --kv-heads 1 --experts 4 --experts-used 2 --expert-ffn 16 \
        --swa 4 --out "$OUT/seeds-model/gpt-oss.gguf" >/dev/null
    # a DeltaNet layer and a gated attention layer
    build/release/silica mkmodel --arch qwen35 $T --layers 2 --kv-heads 1 --attn-every 2 --ssm-state 8 \
        --out "$OUT/seeds-model/qwen35.gguf" >/dev/null
    build/release/silica mkmodel --arch qwen35moe $T --layers 2 --kv-heads 1 --attn-every 2 --ssm-state 8 \
        --experts 4 --experts-used 2 --expert-ffn 16 --shared-ffn 16 --out "$OUT/seeds-model/qwen35moe.gguf" >/dev/null
    build/release/silica mkmodel --arch qwen3next $T --layers 2 --kv-heads 1 --attn-every 2 --ssm-state 8 \
        --experts 4 --experts-used 2 --expert-ffn 16 --shared-ffn 16 --out "$OUT/seeds-model/qwen3next.gguf" >/dev/null
    # gemma4: W G W G, the last two reading layers 0 and 1's KV, per-layer embeddings
    build/release/silica mkmodel --arch gemma4 $T --layers 4 --kv-heads 1 --global-every 2 --shared-kv 2 \
        --per-layer-embd 4 --swa 4 --out "$OUT/seeds-model/gemma4.gguf" >/dev/null
    build/release/silica mkmodel --arch gemma4 $T --layers 2 --kv-heads 1 --global-every 2 --experts 4 \
        --experts-used 2 --expert-ffn 16 --swa 4 --out "$OUT/seeds-model/gemma4moe.gguf" >/dev/null
    # a Mamba-2 layer and an attention layer (two B/C groups; the MoE one with a shared expert)
    build/release/silica mkmodel --arch granitehybrid $T --layers 2 --kv-heads 1 --attn-every 2 --ssm-state 8 \
        --ssm-groups 2 --out "$OUT/seeds-model/granitehybrid.gguf" >/dev/null
    build/release/silica mkmodel --arch granitehybrid $T --layers 2 --kv-heads 1 --attn-every 2 --ssm-state 8 \
        --experts 4 --experts-used 2 --shared-ffn 16 --out "$OUT/seeds-model/granitehybrid-moe.gguf" >/dev/null
    # Nemotron-H: Mamba-2, MLP, Mamba-2, attention
    build/release/silica mkmodel --arch nemotron_h $T --layers 4 --kv-heads 1 --attn-every 4 --ssm-state 8 \
        --ssm-groups 2 --out "$OUT/seeds-model/nemotron_h.gguf" >/dev/null
    build/release/silica mkmodel --arch nemotron_h_moe $T --layers 4 --kv-heads 1 --attn-every 4 --ssm-state 8 \
        --experts 4 --experts-used 2 --expert-ffn 16 --shared-ffn 16 --out "$OUT/seeds-model/nemotron_h_moe.gguf" >/dev/null
    # the grid i-quants need 256-wide rows (narrower ones fall back to iq4_nl)
    T="--embd 256 --heads 2 --layers 1 --ffn 256 --vocab 24 --seed 3"
    build/release/silica mkmodel --arch llama $T --kv-heads 1 --type iq2_m --out "$OUT/seeds-model/llama-iq2_m.gguf" >/dev/null
    build/release/silica mkmodel --arch llama $T --kv-heads 1 --type iq1_m --out "$OUT/seeds-model/llama-iq1_m.gguf" >/dev/null
fi
echo "built $OUT/fuzz_model"

[ "${FUZZ_RUN:-1}" = 0 ] && exit 0
cd "$OUT"
if [ "${FUZZ_TARGET:-gguf}" = grammar ]; then
    exec ./fuzz_grammar -max_total_time="$SECONDS_TO_RUN" -max_len=2048 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-grammar
fi
if [ "${FUZZ_TARGET:-gguf}" = model ]; then
    exec ./fuzz_model -max_total_time="$SECONDS_TO_RUN" -max_len=262144 -timeout=20 \
        -rss_limit_mb=4096 -print_final_stats=1 corpus-model seeds-model
fi
if [ "${FUZZ_TARGET:-gguf}" = tokenizer ]; then
    exec ./fuzz_tokenizer -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-tokenizer seeds-tokenizer
fi
if [ "${FUZZ_TARGET:-gguf}" = upload ]; then
    exec ./fuzz_upload -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-upload seeds-upload
fi
if [ "${FUZZ_TARGET:-gguf}" = toolcall ]; then
    exec ./fuzz_toolcall -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-toolcall seeds-toolcall
fi
if [ "${FUZZ_TARGET:-gguf}" = anth ]; then
    exec ./fuzz_anth -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-anth seeds-anth
fi
if [ "${FUZZ_TARGET:-gguf}" = router ]; then
    exec ./fuzz_router -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-router seeds-router
fi
if [ "${FUZZ_TARGET:-gguf}" = resp ]; then
    exec ./fuzz_resp -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-resp seeds-resp
fi
if [ "${FUZZ_TARGET:-gguf}" = jinja ]; then
    exec ./fuzz_jinja -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 corpus-jinja seeds-jinja
fi
# -max_len: the seeds are < 1 KiB; room to grow them a little.
exec ./fuzz_gguf -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 corpus-gguf seeds-gguf
