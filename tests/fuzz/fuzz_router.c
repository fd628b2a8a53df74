/*
 * fuzz_router.c — libFuzzer target for what the router reads from outside:
 * a request body's affinity key on every keyed route (rt_affinity_key), the
 * stored-response reference of a body or path (rt_response_ref), the
 * model of a body (rt_body_model) and a node's answer head
 * (rt_response_id_in). The first byte picks the route
 * and the key budget; the rest is the body. Must never crash, leak or
 * hang, and the key must respect its budget.
 */
#include <stdlib.h>
#include <string.h>

#include "router/router.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static const char *const paths[] = {"/v1/chat/completions",   "/v1/completions",
                                        "/v1/responses",          "/v1/messages",
                                        "/anthropic/v1/messages", "/v1/embeddings"};
    if (size < 1) return 0;
    const char *path = paths[data[0] % (sizeof paths / sizeof paths[0])];
    const size_t budget = 1 + (size_t)(data[0] >> 3) * 9; /* 1 .. 280 */
    const char *body = (const char *)data + 1;
    const size_t len = size - 1;
    sl_buf_t key = {0};
    const rt_key_kind_t k = rt_affinity_key(path, body, len, budget, &key);
    if (k == RT_KEY_PREFIX) {
        /* model, NUL, then at most budget prompt bytes */
        const char *nul = memchr(key.data, '\0', key.len);
        if (!nul || key.len - (size_t)(nul - key.data) - 1 > budget) abort();
    }
    if (k == RT_KEY_NONE && key.len != 0) abort();
    sl_buf_free(&key);
    char id[64];
    const size_t n = rt_response_ref("/v1/responses", body, len, id, sizeof id);
    if (n && (n >= sizeof id || strlen(id) != n)) abort();
    const size_t m = rt_response_id_in(body, len, id, sizeof id);
    if (m && (m >= sizeof id || strlen(id) != m)) abort();
    const size_t mm = rt_body_model(body, len, id, sizeof id);
    if (mm >= sizeof id) abort();
    return 0;
}
