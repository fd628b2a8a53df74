/*
 * fuzz_toolcall.c — libFuzzer target for the tool-call side of chat/: the
 * streaming output parser of every family (model output is outside input)
 * and the call grammars built from a request's tools.
 *
 * Input: byte 0 picks the family, byte 1 the options (streaming mode,
 * reasoning, think left open, marker pieces fed as special tokens, grammar
 * mode), byte 2 seeds the piece sizes; the rest is the model output, fed in
 * pieces. Grammar mode reads the rest as a tools array instead, builds each
 * family's grammar for it (required, parallel) and compiles it.
 *
 * Must never crash, leak or hang. Aborts when the parser breaks its
 * contract: arguments that are not a JSON object, or (hold mode) a stream
 * that does not reassemble to the result.
 */
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall.h"
#include "grammar/grammar.h"

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"location\":{\"type\":\"string\"},\"days\":{\"type\":"
    "\"integer\"},\"flag\":{\"type\":\"boolean\"},\"tags\":{\"type\":\"array\"},\"note\":{"
    "\"type\":[\"string\",\"null\"]},\"unit\":{\"enum\":[\"c\",\"f\"]}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]";

typedef struct {
    sl_buf_t content, args[8];
    int n;
} sink_t;

static int on_event(void *ud, const tc_event_t *ev) {
    sink_t *s = ud;
    if (ev->kind == TC_EV_CONTENT) sl_buf_append(&s->content, ev->text, ev->len);
    if (ev->kind == TC_EV_CALL_START) s->n++;
    if (ev->kind == TC_EV_CALL_ARGS && s->n > 0 && s->n <= 8)
        sl_buf_append(&s->args[s->n - 1], ev->text, ev->len);
    return 0;
}

static void fuzz_grammar(const uint8_t *data, size_t size) {
    json_t *tools = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_array(tools)) {
        json_decref(tools);
        return;
    }
    for (int f = 1; f < TC_FAMILY_COUNT; f++) {
        sl_buf_t g = {0};
        char err[256];
        if (tc_build_grammar((tc_family_t)f, tools, TC_CHOICE_REQUIRED, NULL, true, &g, err,
                             sizeof err) == 0)
            gram_free(gram_from_gbnf(g.data, err, sizeof err));
        sl_buf_free(&g);
    }
    json_decref(tools);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *tools;
    if (!tools) tools = json_loads(TOOLS, 0, NULL);
    if (size < 3 || size > 65536) return 0;
    const tc_family_t fam = (tc_family_t)(data[0] % TC_FAMILY_COUNT);
    const uint8_t fl = data[1];
    unsigned r = data[2];
    data += 3, size -= 3;
    if (fl & 32) {
        fuzz_grammar(data, size);
        return 0;
    }
    sink_t s;
    memset(&s, 0, sizeof s);
    tc_parser_opts_t o = {.family = fam,
                          .incremental = fl & 1,
                          .reasoning = fl & 2,
                          .think_open = fl & 4,
                          .no_calls = fl & 16,
                          .tools = tools,
                          .id_seed = 1,
                          .on_event = on_event,
                          .ud = &s};
    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
    if (!p) abort();
    size_t i = 0;
    while (i < size) {
        r = r * 1103515245u + 12345u;
        size_t k = 1 + (r >> 16) % 9;
        if (k > size - i) k = size - i;
        /* a piece starting with '<' or '[' as a special token, sometimes */
        bool special = (fl & 8) && (data[i] == '<' || data[i] == '[');
        tc_parser_feed(p, (const char *)data + i, k, special);
        i += k;
    }
    tc_parser_finish(p);
    const tc_result_t *res = tc_parser_result(p);
    if (!res) abort();
    for (size_t c = 0; c < res->n_calls; c++) {
        /* (a "\u0000" escape is valid JSON: GLM-4.5 and XML values may hold one) */
        json_t *a = json_loads(res->calls[c].arguments, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(a)) abort();
        json_decref(a);
    }
    if (!(fl & 1)) {
        /* hold mode: the stream is the result */
        if (s.content.len != res->content_len ||
            (s.content.len && memcmp(s.content.data, res->content, s.content.len) != 0))
            abort();
        if ((size_t)s.n != res->n_calls) abort();
        for (size_t c = 0; c < res->n_calls && c < 8; c++)
            if (strcmp(s.args[c].data ? s.args[c].data : "", res->calls[c].arguments) != 0)
                abort();
    }
    json_decref(tc_result_message_json(res));
    tc_parser_free(p);
    sl_buf_free(&s.content);
    for (int c = 0; c < 8; c++)
        sl_buf_free(&s.args[c]);
    return 0;
}
