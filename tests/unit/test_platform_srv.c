/* deps: platform base */
/*
 * test_platform_srv.c — the platform seen through the server's hooks: the
 * same refusals (401/403/429 with Retry-After), one ledger row per finish,
 * nothing for an abort, /v1/user/info and /v1/user/usage answering for
 * the key's own account only, /v1/user/prices; the self-service key routes (list, create
 * with validation and the cap, revoke) confined to the caller's account; stored responses
 * kept per account.
 *
 * Runs on SQLite, then again on PostgreSQL when SILICA_TEST_PG is set
 * (tests/pg.sh), each store a fresh database there.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/db.h"
#include "platform/plat_srv.h"
#include "test.h"
#include "test_pg.h"

static const char *pg_base; /* SILICA_TEST_PG in the PostgreSQL round */

/* A new, empty store in d (a temp dir from tmpl, or a new database on the
 * test server); drop_store removes a directory (databases go with the
 * server). */
static void fresh_store(char *d, size_t n, const char *tmpl) {
    test_fresh_store(pg_base, tmpl, "silica_s", d, n);
}

static void drop_store(const char *d) {
    if (db_is_url(d)) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
}

static char dir[512];

static void test_hooks_and_isolation(void) {
    fresh_store(dir, sizeof dir, "/tmp/silica-platsrv-XXXXXX");
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.sync_normal = true;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    if (!p) return;
    char key[PLAT_KEY_MAX], key_b[PLAT_KEY_MAX];
    bool created;
    CHECK(plat_bootstrap_if_empty(p, key, &created, err, sizeof err) == 0 && created);
    int64_t b;
    CHECK(plat_account_create(p, "bob", 0, &b, err, sizeof err) == 0);
    CHECK(plat_key_create(p, b, "", 0, key_b, NULL, err, sizeof err) == 0);
    plat_price_t pr = {1000000, 500000, 2000000};
    plat_price_set(p, "m", &pr, err, sizeof err);
    plat_limits_t l = {.rpm = 2};
    plat_limits_set(p, 0, "m", &l, err, sizeof err);

    srv_hooks_t h;
    plat_srv_hooks(p, &h);
    char auth[128], auth_b[128];
    snprintf(auth, sizeof auth, "Bearer %s", key);
    snprintf(auth_b, sizeof auth_b, "Bearer %s", key_b);
    void *req = NULL;
    srv_status_t st;
    CHECK(h.begin(h.ctx, NULL, "m", 10, 10, &req, &st) == -1 && st.http == 401);
    CHECK(h.begin(h.ctx, "Bearer sk-nope", "m", 10, 10, &req, &st) == -1 && st.http == 401);
    CHECK(h.begin(h.ctx, auth, "m", 1000, 1000, &req, &st) == 0 && req);
    CHECK(req && !strncmp(h.request_id(req), "req-", 4));
    srv_usage_t u = {.prompt_tokens = 1000, .cached_tokens = 200, .completion_tokens = 500,
                     .reasoning_tokens = 100, .ttft_ms = 12};
    h.finish(h.ctx, req, &u, "ok");
    CHECK(h.begin(h.ctx, auth, "m", 10, 10, &req, &st) == 0);
    h.abort(h.ctx, req); /* gives its RPM slot back */
    CHECK(h.begin(h.ctx, auth, "m", 10, 10, &req, &st) == 0);
    h.finish(h.ctx, req, NULL, "cancelled"); /* nothing computed: a zero row */
    CHECK(h.begin(h.ctx, auth, "m", 10, 10, &req, &st) == -1 && st.http == 429);
    CHECK(st.retry_after_s >= 1 && st.retry_after_s <= 30 && strstr(st.message, "rpm"));
    /* bob's bucket is his own */
    CHECK(h.begin(h.ctx, auth_b, "m", 10, 10, &req, &st) == 0);
    h.abort(h.ctx, req);

    char *body = NULL;
    CHECK(plat_srv_user_info(p, auth, &body, &st) == 0 && body);
    json_t *doc = json_loads(body ? body : "", 0, NULL);
    json_t *d = json_object_get(doc, "data");
    CHECK(!strcmp(json_string_value(json_object_get(d, "name")), "admin"));
    /* 14 yuan gift - (800 * 1 + 200 * 0.5 + 500 * 2) / 1e6 yuan = 0.0019 yuan */
    CHECK(!strcmp(json_string_value(json_object_get(d, "balance")), "13.9981"));
    CHECK(!strcmp(json_string_value(json_object_get(d, "totalBalance")), "13.9981"));
    json_decref(doc);
    free(body);
    CHECK(plat_srv_user_info(p, auth_b, &body, &st) == 0 && body && strstr(body, "\"bob\"") &&
          !strstr(body, "admin"));
    free(body);
    CHECK(plat_srv_user_info(p, "Bearer x", &body, &st) == -1 && st.http == 401 && !body);

    CHECK(plat_srv_user_usage(p, auth, "model", &body, &st) == 0 && body);
    doc = json_loads(body ? body : "", 0, NULL);
    CHECK(json_array_size(doc) == 1);
    json_t *row = json_array_get(doc, 0);
    CHECK(json_integer_value(json_object_get(row, "requests")) == 2);
    CHECK(json_integer_value(json_object_get(row, "prompt_tokens")) == 1000);
    CHECK(json_integer_value(json_object_get(row, "reasoning_tokens")) == 100);
    CHECK(!strcmp(json_string_value(json_object_get(row, "cost")), "0.0019"));
    json_decref(doc);
    free(body);
    CHECK(plat_srv_user_usage(p, auth_b, "model", &body, &st) == 0 && body && !strcmp(body, "[]"));
    free(body);
    CHECK(plat_srv_user_usage(p, auth_b, "bogus", &body, &st) == -1 && st.http == 400);
    CHECK(!strcmp(st.type, "invalid_request_error") && !strcmp(st.code, "invalid_group_by") &&
          strstr(st.message, "bogus") && st.retry_after_s == 0 && !body);
    /* the price list: any valid key, prices as yuan text */
    CHECK(plat_srv_user_prices(p, auth_b, &body, &st) == 0 && body);
    CHECK(body && !strcmp(body, "{\"object\":\"list\",\"unit\":\"yuan per million tokens\",\"data\":"
                                "[{\"model\":\"m\",\"input\":\"1.00\",\"cached_input\":\"0.50\","
                                "\"output\":\"2.00\"}]}"));
    free(body);
    CHECK(plat_srv_user_prices(p, NULL, &body, &st) == -1 && st.http == 401 && !body);
    /* stored responses through the hooks: the key's account, and only it */
    int64_t acct_a = -1, acct_b = -1;
    CHECK(h.auth(h.ctx, auth, &acct_a, &st) == 0 && acct_a == 1);
    CHECK(h.auth(h.ctx, auth_b, &acct_b, &st) == 0 && acct_b == b);
    CHECK(h.auth(h.ctx, "Bearer sk-nope", &acct_b, &st) == -1 && st.http == 401);
    CHECK(h.store_put(h.ctx, acct_a, "resp_1", "{\"a\":1}", 7) == 0);
    char *text = NULL;
    CHECK(h.store_get(h.ctx, acct_a, "resp_1", &text) == 0 && text && !strcmp(text, "{\"a\":1}"));
    free(text);
    text = NULL;
    CHECK(h.store_get(h.ctx, b, "resp_1", &text) == 1 && !text);
    CHECK(h.store_delete(h.ctx, b, "resp_1") == 1);
    CHECK(h.store_put(h.ctx, b, "resp_1", "{}", 2) == -1); /* not bob's to overwrite */
    CHECK(h.store_delete(h.ctx, acct_a, "resp_1") == 0);
    CHECK(h.store_get(h.ctx, acct_a, "resp_1", &text) == 1);
    CHECK(plat_verify(p, err, sizeof err) == 0);
    plat_close(p);
    drop_store(dir);
}

/* The injected clock: unix ms. */
static int64_t now_ms = INT64_C(1800000000000);
static int64_t test_clock(void *ctx) {
    return now_ms;
}

typedef struct keys_call {
    int rc, http;
    json_t *doc; /* the answer, or NULL */
    srv_status_t st;
} keys_call_t;

static keys_call_t keys_call(srv_hooks_t *h, const char *method, const char *auth, const char *id,
                             const char *in) {
    keys_call_t c = {0};
    char *body = NULL;
    c.rc = h->keys(h->ctx, method, auth, id, in, in ? strlen(in) : 0, &c.http, &body, &c.st);
    if (c.rc == 0) c.doc = json_loads(body ? body : "", 0, NULL);
    CHECK((c.rc == 0) == (body != NULL));
    free(body);
    return c;
}

/* The key id of the n-th entry of a list answer, -1 past the end. */
static int64_t list_id(const keys_call_t *c, size_t n) {
    json_t *e = json_array_get(json_object_get(c->doc, "data"), n);
    return e ? json_integer_value(json_object_get(e, "id")) : -1;
}

static void test_user_keys(void) {
    char d[512];
    fresh_store(d, sizeof d, "/tmp/silica-platkeys-XXXXXX");
    now_ms = INT64_C(1800000000000); /* each round starts at the same time */
    plat_config_t cfg;
    plat_config_default(&cfg);
    CHECK(cfg.max_keys == PLAT_MAX_KEYS_DEFAULT);
    cfg.sync_normal = true;
    cfg.max_keys = 3;
    cfg.clock_ms = test_clock;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(d, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    if (!p) return;
    int64_t a, b, ka, kb;
    char key_a[PLAT_KEY_MAX], key_b[PLAT_KEY_MAX], auth_a[128], auth_b[128];
    CHECK(plat_account_create(p, "alice", 0, &a, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "bob", 0, &b, err, sizeof err) == 0);
    CHECK(plat_key_create(p, a, "main", 0, key_a, &ka, err, sizeof err) == 0);
    CHECK(plat_key_create(p, b, "main", 0, key_b, &kb, err, sizeof err) == 0);
    snprintf(auth_a, sizeof auth_a, "Bearer %s", key_a);
    snprintf(auth_b, sizeof auth_b, "Bearer %s", key_b);
    srv_hooks_t h;
    plat_srv_hooks(p, &h);
    CHECK(h.keys != NULL);
    if (!h.keys) return;

    /* no key, a bad key: 401 before anything else */
    keys_call_t c = keys_call(&h, "GET", NULL, NULL, NULL);
    CHECK(c.rc == -1 && c.st.http == 401);
    c = keys_call(&h, "POST", "Bearer sk-nope", NULL, "{\"name\":\"x\"}");
    CHECK(c.rc == -1 && c.st.http == 401);

    /* list: only the caller's keys, never a hash or a secret, the caller's own marked */
    c = keys_call(&h, "GET", auth_a, NULL, NULL);
    CHECK(c.rc == 0 && c.http == 200 && json_array_size(json_object_get(c.doc, "data")) == 1);
    CHECK(list_id(&c, 0) == ka);
    json_t *k0 = json_array_get(json_object_get(c.doc, "data"), 0);
    CHECK(json_is_true(json_object_get(k0, "current")) && json_is_true(json_object_get(k0, "enabled")));
    CHECK(!strncmp(json_string_value(json_object_get(k0, "prefix")), key_a, 11));
    CHECK(json_is_null(json_object_get(k0, "expires_at")) && !json_object_get(k0, "key") &&
          !json_object_get(k0, "hash"));
    char *dump = json_dumps(c.doc, 0);
    CHECK(dump && !strstr(dump, key_a + 11) && !strstr(dump, key_b));
    free(dump);
    json_decref(c.doc);

    /* create: 201 with the whole key once; it authenticates */
    c = keys_call(&h, "POST", auth_a, NULL, "{\"name\": \"ci runner-1.x\", \"expires_at\": 1800000600}");
    CHECK(c.rc == 0 && c.http == 201);
    const char *secret = json_string_value(json_object_get(c.doc, "key"));
    const int64_t k2 = json_integer_value(json_object_get(c.doc, "id"));
    CHECK(secret && strlen(secret) == 51 && !strncmp(secret, "sk-", 3));
    CHECK(json_integer_value(json_object_get(c.doc, "expires_at")) == 1800000600);
    CHECK(!strcmp(json_string_value(json_object_get(c.doc, "name")), "ci runner-1.x"));
    CHECK(json_is_false(json_object_get(c.doc, "current")));
    char auth_2[128];
    snprintf(auth_2, sizeof auth_2, "Bearer %s", secret ? secret : "");
    json_decref(c.doc);
    int64_t acct = 0;
    plat_status_t ps;
    CHECK(plat_auth(p, auth_2, &acct, NULL, &ps) == 0 && acct == a);
    c = keys_call(&h, "GET", auth_a, NULL, NULL);
    CHECK(list_id(&c, 1) == k2);
    json_decref(c.doc);

    /* validation: each a 400 naming the field */
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"[]", ""},
        {"not json", ""},
        {"{}", "name"},
        {"{\"name\": null}", "name"},
        {"{\"name\": 7}", "name"},
        {"{\"name\": \"\"}", "name"},
        {"{\"name\": \" lead\"}", "name"},
        {"{\"name\": \"a/b\"}", "name"},
        {"{\"name\": \"<script>\"}", "name"},
        {"{\"name\": \"caf\u00e9\"}", "name"},
        {"{\"name\": \"x\", \"expires_at\": 1799999999}", "expires_at"}, /* past */
        {"{\"name\": \"x\", \"expires_at\": 1800000000}", "expires_at"}, /* now */
        {"{\"name\": \"x\", \"expires_at\": \"2030-01-01\"}", "expires_at"},
        {"{\"name\": \"x\", \"expires_at\": 1.9e9}", "expires_at"},
        {"{\"name\": \"x\", \"expires_at\": 9223372036854775807}", "expires_at"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        c = keys_call(&h, "POST", auth_a, NULL, bad[i].body);
        CHECK_MSG(c.rc == -1 && c.st.http == 400 && !strcmp(c.st.param, bad[i].param) &&
                      !strcmp(c.st.type, "invalid_request_error") && c.st.message[0],
                  "%s: %d %s", bad[i].body, c.st.http, c.st.param);
    }
    char longname[80];
    memset(longname, 'n', 65);
    longname[65] = '\0';
    char lbody[128];
    snprintf(lbody, sizeof lbody, "{\"name\":\"%s\"}", longname);
    c = keys_call(&h, "POST", auth_a, NULL, lbody);
    CHECK(c.rc == -1 && c.st.http == 400 && !strcmp(c.st.param, "name"));
    lbody[strlen(lbody) - 3] = '\0'; /* 64 characters */
    strcat(lbody, "\"}");
    c = keys_call(&h, "POST", auth_b, NULL, lbody);
    CHECK(c.rc == 0 && c.http == 201);
    json_decref(c.doc);

    /* the cap: 3 live keys; a revoked or an expired one does not count */
    c = keys_call(&h, "POST", auth_a, NULL, "{\"name\": \"third\"}");
    CHECK(c.rc == 0 && c.http == 201);
    const int64_t k3 = json_integer_value(json_object_get(c.doc, "id"));
    json_decref(c.doc);
    c = keys_call(&h, "POST", auth_a, NULL, "{\"name\": \"fourth\"}");
    CHECK(c.rc == -1 && c.st.http == 409 && !strcmp(c.st.code, "key_limit_reached") &&
          strstr(c.st.message, "3"));
    c = keys_call(&h, "POST", auth_b, NULL, "{\"name\": \"b2\"}"); /* bob has his own count */
    CHECK(c.rc == 0 && c.http == 201);
    json_decref(c.doc);
    now_ms += 601 * 1000; /* key 2 has expired */
    c = keys_call(&h, "POST", auth_a, NULL, "{\"name\": \"fourth\"}");
    CHECK(c.rc == 0 && c.http == 201);
    json_decref(c.doc);
    c = keys_call(&h, "GET", auth_a, NULL, NULL);
    json_t *e2 = json_array_get(json_object_get(c.doc, "data"), 1);
    CHECK(json_is_true(json_object_get(e2, "expired")));
    json_decref(c.doc);

    /* revoke: not bob's key, not a key that is not there, not itself */
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)kb);
    c = keys_call(&h, "DELETE", auth_a, id, NULL);
    CHECK(c.rc == -1 && c.st.http == 404 && !strcmp(c.st.code, "key_not_found"));
    CHECK(plat_auth(p, auth_b, NULL, NULL, &ps) == 0); /* bob's key still works */
    c = keys_call(&h, "DELETE", auth_a, "999", NULL);
    CHECK(c.rc == -1 && c.st.http == 404);
    static const char *const junk[] = {"abc", "-1", "0", "1x", "", "1234567890123456789"};
    for (size_t i = 0; i < SL_ARRAY_LEN(junk); i++) {
        c = keys_call(&h, "DELETE", auth_a, junk[i], NULL);
        CHECK_MSG(c.rc == -1 && c.st.http == 404, "%s", junk[i]);
    }
    snprintf(id, sizeof id, "%lld", (long long)ka);
    c = keys_call(&h, "DELETE", auth_a, id, NULL);
    CHECK(c.rc == -1 && c.st.http == 400 && !strcmp(c.st.code, "cannot_revoke_current_key"));
    snprintf(id, sizeof id, "%lld", (long long)k3);
    c = keys_call(&h, "DELETE", auth_a, id, NULL);
    CHECK(c.rc == 0 && c.http == 200 && json_is_true(json_object_get(c.doc, "deleted")));
    json_decref(c.doc);
    c = keys_call(&h, "DELETE", auth_a, id, NULL); /* again: still fine */
    CHECK(c.rc == 0 && c.http == 200);
    json_decref(c.doc);
    c = keys_call(&h, "GET", auth_a, NULL, NULL);
    json_t *e3 = json_array_get(json_object_get(c.doc, "data"), 2);
    CHECK(json_integer_value(json_object_get(e3, "id")) == k3 && json_is_false(json_object_get(e3, "enabled")));
    json_decref(c.doc);
    /* bob revokes alice's key 1: not found, and the key still works */
    snprintf(id, sizeof id, "%lld", (long long)ka);
    c = keys_call(&h, "DELETE", auth_b, id, NULL);
    CHECK(c.rc == -1 && c.st.http == 404);
    CHECK(plat_auth(p, auth_a, NULL, NULL, &ps) == 0);
    /* the operator's form revokes any key */
    CHECK(plat_key_revoke(p, 0, ka, err, sizeof err) == 0);
    CHECK(plat_auth(p, auth_a, NULL, NULL, &ps) == -1 && ps.http == 401);
    CHECK(plat_key_revoke(p, a, kb, err, sizeof err) == PLAT_ENOTFOUND);
    plat_close(p);
    drop_store(d);
}

int main(void) {
    printf("-- on SQLite\n");
    fflush(stdout);
    RUN(test_hooks_and_isolation);
    RUN(test_user_keys);
    const char *pg = getenv("SILICA_TEST_PG");
    if (pg && *pg) {
        printf("-- on PostgreSQL (%s)\n", pg);
        fflush(stdout);
        pg_base = pg;
        RUN(test_hooks_and_isolation);
        RUN(test_user_keys);
    } else {
        printf("-- on PostgreSQL: SKIPPED (SILICA_TEST_PG is not set; tests/pg.sh sets it when "
               "it can start a server)\n");
        fflush(stdout);
    }
    return test_summary();
}
