/* deps: platform base */
/*
 * test_platform_srv.c — the platform seen through the server's hooks: the
 * same refusals (401/403/429 with Retry-After), one ledger row per finish,
 * nothing for an abort, /v1/user/info and /v1/user/usage answering for
 * the key's own account only, and stored responses kept per account.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "platform/plat_srv.h"
#include "test.h"

static char dir[64];

static void test_hooks_and_isolation(void) {
    snprintf(dir, sizeof dir, "/tmp/silica-platsrv-XXXXXX");
    if (!mkdtemp(dir)) abort();
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
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    RUN(test_hooks_and_isolation);
    return test_summary();
}
