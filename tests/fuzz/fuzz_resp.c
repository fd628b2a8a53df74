/*
 * fuzz_resp.c — libFuzzer target for the Responses API's request side: the
 * input is a JSON body (and, after a NUL byte, the stored conversation of a
 * previous response), translated (resp_translate), its chat request parsed
 * as the chat route parses one (oai_parse_json), an error's parameter
 * mapped back (resp_error_param); the translated input items are paged
 * (resp_list_items) and replayed through the output side (resp_out_t with
 * events). Must never crash, leak or hang; 4xx errors are fine.
 */
#include <stdlib.h>
#include <string.h>

#include "server/resp.h"

/* Feeds the message items' text and the call items back as output. */
static void replay(const json_t *items) {
    resp_out_t o;
    resp_out_init(&o, true, 1);
    for (size_t i = 0; i < json_array_size(items); i++) {
        const json_t *it = json_array_get(items, i);
        const char *type = json_string_value(json_object_get(it, "type"));
        if (type && !strcmp(type, "function_call")) {
            const char *cid = json_string_value(json_object_get(it, "call_id"));
            const char *name = json_string_value(json_object_get(it, "name"));
            const json_t *args = json_object_get(it, "arguments");
            resp_out_call_start(&o, cid ? cid : "", name ? name : "");
            resp_out_call_args(&o, json_string_value(args) ? json_string_value(args) : "",
                               json_string_length(args));
            resp_out_call_end(&o, i % 2 == 0);
        } else {
            const json_t *c =
                json_object_get(json_array_get(json_object_get(it, "content"), 0), "text");
            if (json_is_string(c))
                resp_out_text(&o, i % 3 == 1, json_string_value(c), json_string_length(c));
        }
        if (o.ev.len > (1u << 20)) sl_buf_clear(&o.ev);
    }
    resp_out_finish(&o, json_array_size(items) % 2 == 1);
    srv_usage_t u = {0};
    json_t *echo = json_object();
    json_t *obj = resp_object("resp_x", 1, "m", "completed", echo, o.items, &u, NULL, NULL);
    resp_out_lifecycle(&o, "response.completed", obj);
    json_decref(echo);
    resp_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    const size_t n1 = nul ? (size_t)(nul - data) : size;
    json_t *body = json_loadb((const char *)data, n1, JSON_REJECT_DUPLICATES, NULL);
    json_t *prev = nul ? json_loadb((const char *)nul + 1, size - n1 - 1, 0, NULL) : NULL;
    if (!body) {
        json_decref(prev);
        return 0;
    }
    resp_req_t r;
    oai_error_t e;
    /* a stored conversation is always an array of normalised items; anything
     * else comes from no real store, so only arrays of objects are tried */
    if (prev && !json_is_array(prev)) {
        json_decref(prev);
        prev = NULL;
    }
    if (resp_translate(body, prev, 7, &r, &e) == 0) {
        oai_req_t q;
        if (oai_parse_json(json_incref(r.chat), true, &q, &e) != 0) resp_error_param(&e);
        oai_req_free(&q);
        json_t *l = resp_list_items(r.input, "asc", NULL, "3", &e);
        json_decref(l);
        replay(r.context);
    } else {
        resp_error_param(&e);
    }
    resp_req_free(&r);
    json_decref(body);
    json_decref(prev);
    return 0;
}
