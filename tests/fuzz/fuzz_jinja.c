/*
 * fuzz_jinja.c — libFuzzer target for the chat-template interpreter: the
 * input is a template source; it is parsed and, when it parses, rendered
 * against a small chat request with tight step/output limits. Any crash,
 * sanitizer report or leak is a bug; errors are expected.
 *
 *   clang -std=c11 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined \
 *     tests/fuzz/fuzz_jinja.c src/chat/\*.c src/base/base.c -ljansson -lutf8proc -lm -o fuzz_jinja
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *req;
    if (!req)
        req = json_loads("{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"h\\u00e9\"},"
                         "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]}],"
                         "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]}",
                         0, NULL);
    char err[SL_ERR_MAX];
    chat_tmpl_t *t = chat_tmpl_new((const char *)data, size, err, sizeof err);
    if (!t) return 0;
    chat_render_opts_t o = {.bos_token = "<s>", .add_generation_prompt = true, .now = 1, .max_steps = 20000, .max_output = 1 << 16,
                             .max_memory = 16 << 20};
    sl_buf_t out = {0};
    chat_render(t, req, &o, &out, err, sizeof err);
    sl_buf_free(&out);
    chat_tmpl_free(t);
    return 0;
}
