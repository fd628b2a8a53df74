/* deps: router base */
/*
 * test_router.c — the router's affinity keys (which requests share a key,
 * which do not, what the budget cuts) and rendezvous hashing (stability
 * when a node leaves or joins, spread over the nodes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/router.h"
#include "test.h"

static sl_buf_t kb;

/* The key of a request as a NUL-safe heap copy; *kind gets its kind. */
static char *key_of(const char *path, const char *body, size_t budget, rt_key_kind_t *kind,
                    size_t *len) {
    *kind = rt_affinity_key(path, body, body ? strlen(body) : 0, budget, &kb);
    *len = kb.len;
    char *k = malloc(kb.len + 1);
    if (kb.len) memcpy(k, kb.data, kb.len);
    k[kb.len] = '\0';
    return k;
}

/* Whether two requests get the same key (and both a key of `want` kind). */
static int same_key(const char *path_a, const char *a, const char *path_b, const char *b,
                    size_t budget, rt_key_kind_t want) {
    rt_key_kind_t ka, kb_;
    size_t la, lb;
    char *x = key_of(path_a, a, budget, &ka, &la);
    char *y = key_of(path_b, b, budget, &kb_, &lb);
    int same = ka == want && kb_ == want && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static char *repeat(const char *unit, int n) {
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)n] = '\0';
    return s;
}

static char *chat_body(const char *model, const char *sys, const char *user, const char *extra) {
    char *s = malloc(strlen(sys) + strlen(user) + strlen(extra) + 256);
    sprintf(s,
            "{\"model\":\"%s\",\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":"
            "\"user\",\"content\":\"%s\"}%s]}",
            model, sys, user, extra);
    return s;
}

static void test_chat_keys(void) {
    char *longsys = repeat("You are a careful assistant. ", 60); /* 1740 bytes */
    const char *C = "/v1/chat/completions";
    char *a = chat_body("m", longsys, "What is 2+2?", "");
    char *b = chat_body("m", longsys, "Name a color.", "");
    /* a shared system prompt longer than the budget is the whole key */
    CHECK(same_key(C, a, C, b, 1024, RT_KEY_PREFIX));
    /* ... unless the budget reaches past it into the user message */
    CHECK(!same_key(C, a, C, b, 4096, RT_KEY_PREFIX));
    /* a short system prompt: the first user message decides */
    char *c = chat_body("m", "Be brief.", "What is 2+2?", "");
    char *d = chat_body("m", "Be brief.", "Name a color.", "");
    CHECK(!same_key(C, c, C, d, 1024, RT_KEY_PREFIX));
    /* a conversation's later turns keep the key of its first */
    char *e = chat_body(
        "m", "Be brief.", "What is 2+2?",
        ",{\"role\":\"assistant\",\"content\":\"4\"},{\"role\":\"user\",\"content\":\"And 3+3?\"}");
    CHECK(same_key(C, c, C, e, 1024, RT_KEY_PREFIX));
    /* another model is another cache */
    char *f = chat_body("other", longsys, "What is 2+2?", "");
    CHECK(!same_key(C, a, C, f, 1024, RT_KEY_PREFIX));
    /* text parts and a plain string are the same prompt */
    const char *parts = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{"
                        "\"type\":\"text\",\"text\":\"Be "
                        "\"},{\"type\":\"text\",\"text\":\"brief.\"}]},{\"role\":\"user\","
                        "\"content\":\"What is 2+2?\"}]}";
    CHECK(same_key(C, c, C, parts, 1024, RT_KEY_PREFIX));
    /* tools are part of the shared prefix */
    const char *t1 =
        "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *t2 =
        "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"b\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    CHECK(!same_key(C, t1, C, t2, 1024, RT_KEY_PREFIX));
    /* key order inside JSON objects does not matter */
    const char *t3 = "{\"tools\":[{\"function\":{\"name\":\"a\"},\"type\":\"function\"}],"
                     "\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"m\"}";
    CHECK(same_key(C, t1, C, t3, 1024, RT_KEY_PREFIX));
    /* the budget bounds the key: model, NUL, then at most budget bytes */
    rt_key_kind_t k;
    size_t len;
    free(key_of(C, a, 100, &k, &len));
    CHECK(k == RT_KEY_PREFIX && len == 2 + 100);
    free(longsys);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
}

static void test_prompt_cache_key(void) {
    const char *C = "/v1/chat/completions";
    const char *a = "{\"model\":\"m\",\"prompt_cache_key\":\"user-42\",\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"x\"}]}";
    const char *b = "{\"model\":\"m\",\"prompt_cache_key\":\"user-42\",\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"y\"}]}";
    const char *c = "{\"model\":\"m\",\"prompt_cache_key\":\"user-43\",\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"x\"}]}";
    CHECK(same_key(C, a, C, b, 1024, RT_KEY_CACHE_KEY));
    CHECK(!same_key(C, a, C, c, 1024, RT_KEY_CACHE_KEY));
    /* the same key on another route (responses, completions) is the same key */
    const char *r = "{\"model\":\"m\",\"prompt_cache_key\":\"user-42\",\"input\":\"z\"}";
    CHECK(same_key(C, a, "/v1/responses", r, 1024, RT_KEY_CACHE_KEY));
    /* an empty or non-string key is no key: the prompt decides */
    const char *e = "{\"model\":\"m\",\"prompt_cache_key\":\"\",\"messages\":[{\"role\":\"user\","
                    "\"content\":\"x\"}]}";
    const char *n = "{\"model\":\"m\",\"prompt_cache_key\":7,\"messages\":[{\"role\":\"user\","
                    "\"content\":\"x\"}]}";
    const char *p = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    CHECK(same_key(C, e, C, p, 1024, RT_KEY_PREFIX));
    CHECK(same_key(C, n, C, p, 1024, RT_KEY_PREFIX));
}

static void test_other_routes(void) {
    /* the same conversation through chat, responses and messages */
    const char *chat =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Hello\"}]}";
    const char *resp = "{\"model\":\"m\",\"instructions\":\"Be brief.\",\"input\":\"Hello\"}";
    const char *resp2 =
        "{\"model\":\"m\",\"instructions\":\"Be brief.\",\"input\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"input_text\",\"text\":\"Hello\"}]}]}";
    const char *msgs = "{\"model\":\"m\",\"max_tokens\":5,\"system\":\"Be "
                       "brief.\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"Hello\"}]}";
    CHECK(same_key("/v1/chat/completions", chat, "/v1/responses", resp, 1024, RT_KEY_PREFIX));
    CHECK(same_key("/v1/responses", resp, "/v1/responses", resp2, 1024, RT_KEY_PREFIX));
    CHECK(same_key("/v1/chat/completions", chat, "/v1/messages", msgs, 1024, RT_KEY_PREFIX));
    CHECK(same_key("/v1/messages", msgs, "/anthropic/v1/messages", msgs, 1024, RT_KEY_PREFIX));
    /* completions: the prompt's first bytes; an array's first prompt; token ids */
    const char *C = "/v1/completions";
    char *lp = repeat("0123456789", 200);
    char *a = malloc(4096), *b = malloc(4096);
    sprintf(a, "{\"model\":\"m\",\"prompt\":\"%sAAA\"}", lp);
    sprintf(b, "{\"model\":\"m\",\"prompt\":[\"%sBBB\",\"other\"]}", lp);
    CHECK(same_key(C, a, C, b, 1024, RT_KEY_PREFIX));
    CHECK(!same_key(C, a, C, b, 4096, RT_KEY_PREFIX));
    CHECK(same_key(C, "{\"model\":\"m\",\"prompt\":[1,2,3]}", C,
                   "{\"model\":\"m\",\"prompt\":[[1,2,3],[4]]}", 1024, RT_KEY_PREFIX));
    CHECK(!same_key(C, "{\"model\":\"m\",\"prompt\":[1,2,3]}", C,
                    "{\"model\":\"m\",\"prompt\":[1,2,4]}", 1024, RT_KEY_PREFIX));
    CHECK(!same_key(C, "{\"model\":\"m\",\"prompt\":\"abc\"}", C,
                    "{\"model\":\"m\",\"prompt\":\"abd\"}", 1024, RT_KEY_PREFIX));
    free(lp);
    free(a);
    free(b);
}

static void test_no_key(void) {
    rt_key_kind_t k;
    size_t len;
    const char *cases[][2] = {
        {"/v1/embeddings", "{\"model\":\"m\",\"input\":\"x\"}"},
        {"/v1/models", ""},
        {"/v1/messages/count_tokens", "{\"model\":\"m\",\"messages\":[]}"},
        {"/v1/chat/completions", "{not json"},
        {"/v1/chat/completions", "[1,2]"},
        {"/v1/chat/completions", "\"str\""},
        {"/v1/chat/completions",
         "{\"a\":1,\"a\":2}"}, /* duplicate keys: the node gives the error */
        {"/v1/chat/completions", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        free(key_of(cases[i][0], cases[i][1], 1024, &k, &len));
        CHECK_MSG(k == RT_KEY_NONE && len == 0, "%s %s", cases[i][0], cases[i][1]);
    }
    /* a NULL body with a length of 0 */
    CHECK(rt_affinity_key("/v1/completions", NULL, 0, 1024, &kb) == RT_KEY_NONE);
    /* bytes after a valid object, embedded NULs: not JSON */
    const char nul[] = "{\"model\":\"m\"}\0{}";
    CHECK(rt_affinity_key("/v1/completions", nul, sizeof nul - 1, 1024, &kb) == RT_KEY_NONE);
    /* odd shapes inside a valid object still give a key, never a crash */
    const char *odd[] = {
        "{\"model\":7,\"messages\":{\"role\":\"user\"}}",
        "{\"messages\":[1,null,{\"role\":5,\"content\":{\"x\":[1,2]}}]}",
        "{\"model\":\"m\",\"prompt\":[[\"a\"],{}]}",
        "{\"model\":\"m\",\"tools\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":null}]}",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        free(key_of("/v1/chat/completions", odd[i], 64, &k, &len));
        CHECK(k == RT_KEY_PREFIX);
        free(key_of("/v1/completions", odd[i], 64, &k, &len));
        CHECK(k == RT_KEY_PREFIX);
    }
}

/* The owner of a key among the nodes with alive[i]: a plain argmax of the
 * weights, written apart from rt_rendezvous_order. */
static int owner(uint64_t kh, const uint64_t *nodes, const int *alive, int n) {
    int best = -1;
    uint64_t bw = 0;
    for (int i = 0; i < n; i++) {
        if (!alive[i]) continue;
        const uint64_t w = rt_weight(kh, nodes[i]);
        if (best < 0 || w > bw) {
            best = i;
            bw = w;
        }
    }
    return best;
}

static void test_rendezvous(void) {
    enum { N = 5, KEYS = 20000 };
    uint64_t nodes[N + 1];
    char url[64];
    for (int i = 0; i <= N; i++) {
        snprintf(url, sizeof url, "http://10.0.0.%d:8080", i + 1);
        nodes[i] = rt_hash(url, strlen(url));
    }
    const int all[N + 1] = {1, 1, 1, 1, 1, 0};
    const int without2[N + 1] = {1, 1, 0, 1, 1, 0};
    const int joined[N + 1] = {1, 1, 1, 1, 1, 1};
    int count[N] = {0}, second[N] = {0};
    int moved = 0, lost_keys = 0, order_ok = 1, to_new = 0, moved_join = 0;
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        const int kl = snprintf(key, sizeof key, "key-%d", k);
        const uint64_t kh = rt_hash(key, (size_t)kl);
        int order[N];
        rt_rendezvous_order(kh, nodes, N, order);
        const int o = owner(kh, nodes, all, N + 1);
        order_ok &= order[0] == o;
        for (int i = 1; i < N; i++)
            order_ok &= rt_weight(kh, nodes[order[i - 1]]) >= rt_weight(kh, nodes[order[i]]);
        count[o]++;
        /* node 2 leaves: only its keys move, each to its second choice */
        const int o2 = owner(kh, nodes, without2, N + 1);
        if (o == 2) {
            lost_keys++;
            second[o2]++;
            order_ok &= o2 == order[1];
        } else if (o2 != o) {
            moved++;
        }
        /* node 5 joins: a key moves only to it */
        const int oj = owner(kh, nodes, joined, N + 1);
        to_new += oj == N;
        moved_join += oj != o && oj != N;
    }
    CHECK(order_ok);
    CHECK_MSG(moved == 0, "%d keys moved between nodes that stayed", moved);
    CHECK_MSG(moved_join == 0, "%d keys moved between old nodes when one joined", moved_join);
    /* the new node takes about 1/(N+1) of the keys */
    CHECK_MSG(abs(to_new - KEYS / (N + 1)) < KEYS / (N + 1) / 10, "the new node took %d of %d keys",
              to_new, KEYS);
    /* near-even spread: each node within 5% of KEYS/N */
    for (int i = 0; i < N; i++)
        CHECK_MSG(abs(count[i] - KEYS / N) < KEYS / N / 20, "node %d owns %d of %d keys", i,
                  count[i], KEYS);
    /* the keys a leaving node held spread over the others, not onto one */
    for (int i = 0; i < N; i++)
        if (i != 2)
            CHECK_MSG(second[i] > lost_keys / 4 * 7 / 10, "node %d took %d of %d keys", i,
                      second[i], lost_keys);
}

/* Two nodes, as in a small deployment: prompts with distinct first
 * messages split near evenly. */
static void test_two_node_spread(void) {
    uint64_t nodes[2] = {rt_hash("http://127.0.0.1:9001", 21),
                         rt_hash("http://127.0.0.1:9002", 21)};
    int alive[2] = {1, 1}, count[2] = {0};
    for (int k = 0; k < 2000; k++) {
        char body[160];
        snprintf(
            body, sizeof body,
            "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"question %d\"}]}",
            k);
        CHECK(rt_affinity_key("/v1/chat/completions", body, strlen(body), 1024, &kb) ==
              RT_KEY_PREFIX);
        count[owner(rt_hash(kb.data, kb.len), nodes, alive, 2)]++;
    }
    CHECK_MSG(count[0] > 900 && count[1] > 900, "%d / %d", count[0], count[1]);
}

static void test_response_refs(void) {
    char id[64];
    CHECK(rt_response_ref("/v1/responses/resp_abc", NULL, 0, id, sizeof id) == 8 &&
          !strcmp(id, "resp_abc"));
    CHECK(rt_response_ref("/v1/responses/resp_abc/input_items", NULL, 0, id, sizeof id) == 8 &&
          !strcmp(id, "resp_abc"));
    CHECK(rt_response_ref("/v1/responses/", NULL, 0, id, sizeof id) == 0);
    const char *b = "{\"model\":\"m\",\"previous_response_id\":\"resp_x1\",\"input\":\"more\"}";
    CHECK(rt_response_ref("/v1/responses", b, strlen(b), id, sizeof id) == 7 &&
          !strcmp(id, "resp_x1"));
    CHECK(rt_response_ref("/v1/chat/completions", b, strlen(b), id, sizeof id) == 0);
    const char *nul = "{\"previous_response_id\":null}", *num = "{\"previous_response_id\":5}",
               *bad = "{\"previous_response_id\":";
    CHECK(rt_response_ref("/v1/responses", nul, strlen(nul), id, sizeof id) == 0);
    CHECK(rt_response_ref("/v1/responses", num, strlen(num), id, sizeof id) == 0);
    CHECK(rt_response_ref("/v1/responses", bad, strlen(bad), id, sizeof id) == 0);
    /* an id too long for the caller's buffer is no reference */
    char big[200];
    snprintf(big, sizeof big, "{\"previous_response_id\":\"resp_%0100d\"}", 7);
    CHECK(rt_response_ref("/v1/responses", big, strlen(big), id, sizeof id) == 0);
    /* the id in an answer's first bytes: JSON, or the created event of a stream */
    const char *json = "{\"id\":\"resp_946a\",\"object\":\"response\"}";
    CHECK(rt_response_id_in(json, strlen(json), id, sizeof id) == 9 && !strcmp(id, "resp_946a"));
    const char *sse = "event: response.created\ndata: "
                      "{\"type\":\"response.created\",\"response\":{\"id\":\"resp_8f\",";
    CHECK(rt_response_id_in(sse, strlen(sse), id, sizeof id) == 7 && !strcmp(id, "resp_8f"));
    CHECK(rt_response_id_in(sse, strlen(sse) - 3, id, sizeof id) ==
          0);                                    /* cut inside the id: not yet */
    const char odd[] = "{\"id\":\"resp_a\0b\"}"; /* not an id the nodes make */
    CHECK(rt_response_id_in(odd, sizeof odd - 1, id, sizeof id) == 0);
    const char *esc = "{\"previous_response_id\":\"resp_\\u0000x\"}";
    CHECK(rt_response_ref("/v1/responses", esc, strlen(esc), id, sizeof id) == 0);
    CHECK(rt_response_ref("/v1/responses/a%2Fb", NULL, 0, id, sizeof id) == 0);
    const char *err = "{\"error\":{\"message\":\"x\"}}";
    CHECK(rt_response_id_in(err, strlen(err), id, sizeof id) == 0);
}

static void test_body_model(void) {
    char m[16];
    const char *a = "{\"model\":\"bge-m3\",\"input\":\"x\"}";
    CHECK(rt_body_model(a, strlen(a), m, sizeof m) == 6 && !strcmp(m, "bge-m3"));
    const char *longer = "{\"model\":\"a-model-id-longer-than-16\"}";
    CHECK(rt_body_model(longer, strlen(longer), m, sizeof m) == 0);
    const char *none[] = {"{\"input\":\"model\"}", "{\"model\":7}", "{\"model\":\"\"}",
                          "{\"model\":", "[\"model\"]"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CHECK_MSG(rt_body_model(none[i], strlen(none[i]), m, sizeof m) == 0, "%s", none[i]);
    CHECK(rt_body_model(NULL, 0, m, sizeof m) == 0);
}

int main(void) {
    RUN(test_chat_keys);
    RUN(test_prompt_cache_key);
    RUN(test_other_routes);
    RUN(test_no_key);
    RUN(test_rendezvous);
    RUN(test_two_node_spread);
    RUN(test_response_refs);
    RUN(test_body_model);
    sl_buf_free(&kb);
    return test_summary();
}
