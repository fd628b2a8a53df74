/*
 * fuzz_anth.c — libFuzzer target for the Anthropic Messages API's request
 * side: the input is a JSON body, translated (anth_translate, as a
 * message and as a count_tokens request), its chat request parsed as the
 * chat route parses one (oai_parse_json), an error's parameter mapped back
 * (anth_error_param) and written in Anthropic's shape; the translated
 * messages are replayed through the output side (anth_out_t with events)
 * and the message object. Must never crash, leak or hang; 4xx errors are
 * fine.
 */
#include <stdlib.h>
#include <string.h>

#include "server/anth.h"

/* Feeds the chat messages back as output: reasoning as thinking, content
 * as text, tool calls as tool_use blocks with their arguments. */
static void replay(const json_t *msgs, bool stream) {
    anth_out_t o;
    anth_out_init(&o, stream, 1);
    srv_usage_t u = {.prompt_tokens = 7, .cached_tokens = 3, .completion_tokens = 2};
    anth_out_start(&o, "msg_x", "m", &u);
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        const json_t *rs = json_object_get(m, "reasoning_content"),
                     *c = json_object_get(m, "content");
        if (json_is_string(rs))
            anth_out_text(&o, true, json_string_value(rs), json_string_length(rs));
        if (json_is_string(c))
            anth_out_text(&o, false, json_string_value(c), json_string_length(c));
        const json_t *calls = json_object_get(m, "tool_calls");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const json_t *fn = json_object_get(json_array_get(calls, k), "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            const json_t *args = json_object_get(fn, "arguments");
            anth_out_call_start(&o, name ? name : "");
            const size_t n = json_string_length(args), half = n / 2;
            if (json_is_string(args)) {
                anth_out_call_args(&o, json_string_value(args), half);
                anth_out_call_args(&o, json_string_value(args) + half, n - half);
            }
            anth_out_call_end(&o, k % 2 == 0);
        }
        if (o.ev.len > (1u << 20)) sl_buf_clear(&o.ev);
    }
    const char *reason = anth_stop_reason(json_array_size(msgs) % 2 ? "length" : "stop", NULL);
    anth_out_finish(&o, reason, NULL, &u);
    json_decref(anth_message("msg_x", "m", o.content, reason, NULL, &u));
    anth_out_error(&o, "api_error", "x");
    anth_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!body) return 0;
    for (int count = 0; count < 2; count++) {
        anth_req_t r;
        oai_error_t e;
        memset(&e, 0, sizeof e);
        int rc = anth_translate(body, count == 1, &r, &e);
        if (rc == 0) {
            oai_req_t q;
            if ((rc = oai_parse_json(json_incref(r.chat), true, &q, &e)) != 0) anth_error_param(&e);
            oai_req_free(&q);
            if (count == 0) replay(json_object_get(r.chat, "messages"), r.stream);
        }
        if (rc != 0) {
            (void)anth_error_status(&e);
            free(anth_error_json(&e, count ? "req-1" : NULL));
        }
        anth_req_free(&r);
    }
    json_decref(body);
    return 0;
}
