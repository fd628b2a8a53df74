/*
 * plat_srv.c — adapters from the server's hook signatures to the platform's
 * request path. Only types come from server/server.h; no server function is
 * called, so the platform library links without the server.
 */
#include "platform/plat_srv.h"
#include "platform/plat_internal.h"
#include "platform/batch.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_status(const plat_status_t *in, srv_status_t *out) {
    memset(out, 0, sizeof *out);
    out->http = in->http;
    snprintf(out->type, sizeof out->type, "%s", in->type);
    snprintf(out->code, sizeof out->code, "%s", in->code);
    snprintf(out->message, sizeof out->message, "%s", in->message);
    out->retry_after_s = in->retry_after_s;
    snprintf(out->param, sizeof out->param, "%s", in->param);
}

static int hook_begin(void *ctx, const char *authorization, const char *model,
                      int64_t est_prompt_tokens, int64_t max_completion_tokens, void **req,
                      srv_status_t *st) {
    plat_req_t *r = NULL;
    plat_status_t ps;
    int rc = plat_begin(ctx, authorization, model, est_prompt_tokens, max_completion_tokens, &r,
                        &ps);
    copy_status(&ps, st);
    *req = r;
    return rc;
}

static const char *hook_request_id(void *req) {
    return plat_req_id(req);
}

static void hook_finish(void *ctx, void *req, const srv_usage_t *u, const char *status) {
    plat_usage_t pu = {.ttft_ms = -1};
    if (u) {
        pu.prompt_tokens = u->prompt_tokens;
        pu.cached_tokens = u->cached_tokens;
        pu.completion_tokens = u->completion_tokens;
        pu.reasoning_tokens = u->reasoning_tokens;
        pu.ttft_ms = u->ttft_ms;
    }
    plat_finish(ctx, req, &pu, status);
}

static void hook_abort(void *ctx, void *req) {
    plat_abort(ctx, req);
}

static int hook_auth(void *ctx, const char *authorization, int64_t *account, srv_status_t *st) {
    plat_status_t ps;
    int rc = plat_auth(ctx, authorization, account, NULL, &ps);
    copy_status(&ps, st);
    return rc;
}

static int hook_store_put(void *ctx, int64_t account, const char *id, const char *text, size_t len) {
    char err[SL_ERR_MAX];
    if (plat_resp_put(ctx, account, id, text, len, err, sizeof err) == 0) return 0;
    sl_warn("stored response: %s", err);
    return -1;
}

static int hook_store_get(void *ctx, int64_t account, const char *id, char **text) {
    char err[SL_ERR_MAX];
    int rc = plat_resp_get(ctx, account, id, text, err, sizeof err);
    if (rc < 0) sl_warn("stored response: %s", err);
    return rc;
}

static int hook_store_delete(void *ctx, int64_t account, const char *id) {
    char err[SL_ERR_MAX];
    int rc = plat_resp_delete(ctx, account, id, err, sizeof err);
    if (rc < 0) sl_warn("stored response: %s", err);
    return rc;
}

static char *hook_metrics(void *ctx) {
    return plat_metrics_text(ctx);
}

void plat_srv_hooks(plat_t *p, srv_hooks_t *h) {
    memset(h, 0, sizeof *h);
    h->ctx = p;
    h->begin = hook_begin;
    h->request_id = hook_request_id;
    h->finish = hook_finish;
    h->abort = hook_abort;
    h->keys = plat_srv_user_keys;
    h->auth = hook_auth;
    h->store_put = hook_store_put;
    h->store_get = hook_store_get;
    h->store_delete = hook_store_delete;
    h->files = plat_srv_files;
    h->batch_poll = plat_srv_batch_poll;
    h->metrics = hook_metrics;
}

static int auth_account(plat_t *p, const char *authorization, int64_t *account,
                        srv_status_t *st) {
    plat_status_t ps;
    int rc = plat_auth(p, authorization, account, NULL, &ps);
    copy_status(&ps, st);
    return rc;
}

/* Fills st with an error (the message cut to 300 bytes); returns -1. */
static int fail(srv_status_t *st, int http, const char *type, const char *code, const char *msg) {
    memset(st, 0, sizeof *st);
    st->http = http;
    snprintf(st->type, sizeof st->type, "%s", type);
    snprintf(st->code, sizeof st->code, "%s", code);
    snprintf(st->message, sizeof st->message, "%.300s", msg);
    return -1;
}

/* A 400 naming the request field at fault. */
static int bad_param(srv_status_t *st, const char *param, const char *code, const char *msg) {
    fail(st, 400, "invalid_request_error", code, msg);
    snprintf(st->param, sizeof st->param, "%s", param);
    return -1;
}

static int internal(srv_status_t *st, const char *msg) {
    return fail(st, 500, "server_error", "internal_error", msg);
}

/* A platform call that failed with err: 503 while the database is
 * unreachable (an outage the client may retry, as plat_begin answers it),
 * else 500. */
static int db_error(plat_t *p, srv_status_t *st, const char *err) {
    if (!plat_db_down(p)) return internal(st, err);
    char msg[SL_ERR_MAX + 80];
    snprintf(msg, sizeof msg, "The platform's database is unreachable; retry later. (%s)", err);
    return fail(st, 503, "server_error", "database_unavailable", msg);
}

int plat_srv_user_info(plat_t *p, const char *authorization, char **body, srv_status_t *st) {
    *body = NULL;
    int64_t account;
    if (auth_account(p, authorization, &account, st) != 0) return -1;
    char err[SL_ERR_MAX];
    *body = plat_user_info_json(p, account, err, sizeof err);
    return *body ? 0 : db_error(p, st, err);
}

int plat_srv_user_usage(plat_t *p, const char *authorization, const char *group_by, char **body,
                        srv_status_t *st) {
    *body = NULL;
    int64_t account;
    if (auth_account(p, authorization, &account, st) != 0) return -1;
    if (group_by && !strcmp(group_by, "account")) group_by = "day";
    plat_report_opts_t o = {.group_by = group_by, .account_id = account, .format = "json"};
    sl_buf_t out = {0};
    char err[SL_ERR_MAX];
    if (plat_usage_report(p, &o, &out, err, sizeof err) != 0) {
        sl_buf_free(&out);
        return fail(st, 400, "invalid_request_error", "invalid_group_by", err);
    }
    *body = sl_buf_steal(&out);
    if (!*body) *body = sl_strdup("[]");
    return *body ? 0 : internal(st, "out of memory");
}

static int add_price(const char *model, const plat_price_t *pr, void *ctx) {
    char in[32], cached[32], out[32];
    plat_money_format(pr->input, in, sizeof in);
    plat_money_format(pr->cached_input, cached, sizeof cached);
    plat_money_format(pr->output, out, sizeof out);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "model", model, "input", in, "cached_input", cached,
                          "output", out);
    return !v || json_array_append_new(ctx, v) != 0;
}

int plat_srv_user_prices(plat_t *p, const char *authorization, char **body, srv_status_t *st) {
    *body = NULL;
    int64_t account;
    if (auth_account(p, authorization, &account, st) != 0) return -1;
    json_t *data = json_array();
    char err[SL_ERR_MAX] = "out of memory";
    if (!data || plat_price_each(p, add_price, data, err, sizeof err) != 0) {
        json_decref(data);
        return db_error(p, st, err);
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "object", "list", "unit", "yuan per million tokens",
                            "data", data);
    *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return *body ? 0 : internal(st, "out of memory");
}

/* ---- the caller's own keys ---- */

#define KEY_NAME_MAX 64               /* bytes (all ASCII) */
#define EXPIRES_MAX_S INT64_C(253402300799) /* 9999-12-31T23:59:59Z: ms fits int64 */
#define KEY_EXAMPLE "{\"name\": \"laptop\", \"expires_at\": null}"

/* 1..KEY_NAME_MAX of [A-Za-z0-9 ._-], not starting or ending with a space:
 * a label a person can read and tell apart in a list. */
static bool key_name_ok(const char *s, size_t n) {
    if (n == 0 || n > KEY_NAME_MAX || s[0] == ' ' || s[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == ' ' || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static json_t *key_json(const plat_key_info_t *k, int64_t now_ms, int64_t current_key) {
    const bool expired = k->expires_at_ms > 0 && now_ms >= k->expires_at_ms;
    return json_pack("{s:I, s:s, s:s, s:s, s:b, s:b, s:o, s:I, s:b}", "id", (json_int_t)k->id, "object",
                     "api_key", "name", k->name, "prefix", k->prefix, "enabled", k->enabled, "expired",
                     expired, "expires_at",
                     k->expires_at_ms > 0 ? json_integer(k->expires_at_ms / 1000) : json_null(),
                     "created_at", (json_int_t)(k->created_at_ms / 1000), "current",
                     k->id == current_key);
}

typedef struct key_list {
    json_t *data;
    int64_t now_ms, current;
    bool oom;
} key_list_t;

static int add_key(const plat_key_info_t *k, void *ctx) {
    key_list_t *l = ctx;
    json_t *v = key_json(k, l->now_ms, l->current);
    if (!v || json_array_append_new(l->data, v) != 0) {
        l->oom = true;
        return 1;
    }
    return 0;
}

/* json -> *body (compact text); steals v. */
static int reply(json_t *v, int http, int *http_out, char **body, srv_status_t *st) {
    *body = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    if (!*body) return internal(st, "out of memory");
    *http_out = http;
    return 0;
}

static int keys_list(plat_t *p, int64_t account, int64_t current, int *http, char **body,
                     srv_status_t *st) {
    key_list_t l = {.data = json_array(), .now_ms = plat_now_ms(p), .current = current};
    if (!l.data) return internal(st, "out of memory");
    char err[SL_ERR_MAX];
    if (plat_key_each(p, account, add_key, &l, err, sizeof err) != 0 || l.oom) {
        json_decref(l.data);
        return l.oom ? internal(st, "out of memory") : db_error(p, st, err);
    }
    return reply(json_pack("{s:s, s:o}", "object", "list", "data", l.data), 200, http, body, st);
}

static int keys_create(plat_t *p, int64_t account, int64_t current, const char *in, size_t in_len,
                       int *http, char **body, srv_status_t *st) {
    json_error_t jerr;
    json_t *req = in && in_len ? json_loadb(in, in_len, 0, &jerr) : NULL;
    if (!json_is_object(req)) {
        char why[240];
        if (req || !in_len) /* valid JSON, but not an object; or no body */
            snprintf(why, sizeof why, "The body must be a JSON object like %s.", KEY_EXAMPLE);
        else
            snprintf(why, sizeof why, "The body is not valid JSON (%.100s); send a JSON object like %s.",
                     jerr.text, KEY_EXAMPLE);
        json_decref(req);
        return bad_param(st, "", "invalid_json", why);
    }
    const json_t *jn = json_object_get(req, "name");
    const json_t *je = json_object_get(req, "expires_at");
    char msg[200];
    int rc = -1;
    if (!jn || json_is_null(jn)) {
        bad_param(st, "name", "missing_required_parameter",
                  "Missing required parameter: 'name' (1 to 64 letters, digits, spaces, '.', '_' or "
                  "'-', e.g. \"laptop\").");
        goto out;
    }
    if (!json_is_string(jn) || !key_name_ok(json_string_value(jn), json_string_length(jn))) {
        bad_param(st, "name", "invalid_value",
                  "Invalid 'name': use 1 to 64 letters, digits, spaces, '.', '_' or '-', not starting "
                  "or ending with a space (e.g. \"laptop\").");
        goto out;
    }
    int64_t expires_ms = 0;
    const int64_t now_ms = plat_now_ms(p);
    if (je && !json_is_null(je)) {
        if (!json_is_integer(je)) {
            bad_param(st, "expires_at", "invalid_type",
                      "Invalid 'expires_at': give unix seconds as an integer, or null for a key that "
                      "does not expire.");
            goto out;
        }
        const int64_t v = json_integer_value(je);
        if (v <= now_ms / 1000 || v > EXPIRES_MAX_S) {
            snprintf(msg, sizeof msg,
                     "Invalid 'expires_at' %" PRId64 ": it must be in the future (now is %" PRId64
                     " unix seconds) and at most %" PRId64 ", or null.",
                     v, now_ms / 1000, EXPIRES_MAX_S);
            bad_param(st, "expires_at", "invalid_value", msg);
            goto out;
        }
        expires_ms = v * 1000;
    }
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t kid = 0;
    rc = plat_key_create_capped(p, account, json_string_value(jn), expires_ms, key, &kid, err,
                                sizeof err);
    if (rc == PLAT_ELIMIT) {
        snprintf(msg, sizeof msg, "Cannot create an API key: %.150s.", err);
        fail(st, 409, "invalid_request_error", "key_limit_reached", msg);
        rc = -1;
        goto out;
    }
    if (rc != 0) {
        db_error(p, st, err);
        goto out;
    }
    sl_info("account %" PRId64 " created API key %" PRId64 " with key %" PRId64, account, kid,
            current);
    plat_key_info_t k = {.id = kid, .account_id = account, .enabled = true,
                         .expires_at_ms = expires_ms, .created_at_ms = now_ms};
    snprintf(k.name, sizeof k.name, "%s", json_string_value(jn));
    snprintf(k.prefix, sizeof k.prefix, "%.11s", key);
    json_t *v = key_json(&k, now_ms, current);
    if (v) json_object_set_new(v, "key", json_string(key));
    OPENSSL_cleanse(key, sizeof key);
    rc = reply(v, 201, http, body, st);
out:
    json_decref(req);
    return rc;
}

static int keys_revoke(plat_t *p, int64_t account, int64_t current, const char *key_id, int *http,
                       char **body, srv_status_t *st) {
    /* an id is 1..18 decimal digits; anything else names no key */
    int64_t id = 0;
    size_t n = key_id ? strlen(key_id) : 0;
    bool digits = n > 0 && n <= 18;
    for (size_t i = 0; digits && i < n; i++) {
        digits = key_id[i] >= '0' && key_id[i] <= '9';
        id = id * 10 + (key_id[i] - '0');
    }
    char msg[200];
    snprintf(msg, sizeof msg, "No API key with id '%.40s' in your account; GET /v1/user/keys lists them.",
             key_id ? key_id : "");
    if (!digits || id <= 0) return fail(st, 404, "invalid_request_error", "key_not_found", msg);
    if (id == current)
        return fail(st, 400, "invalid_request_error", "cannot_revoke_current_key",
                    "This request is made with the key you are revoking; a key cannot revoke "
                    "itself. Revoke it with another key of your account (create one first).");
    char err[SL_ERR_MAX];
    int rc = plat_key_revoke(p, account, id, err, sizeof err);
    if (rc == PLAT_ENOTFOUND) return fail(st, 404, "invalid_request_error", "key_not_found", msg);
    if (rc != 0) return db_error(p, st, err);
    sl_info("account %" PRId64 " revoked API key %" PRId64 " with key %" PRId64, account, id, current);
    return reply(json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "object", "api_key", "deleted", 1),
                 200, http, body, st);
}

int plat_srv_user_keys(void *plat, const char *method, const char *authorization,
                       const char *key_id, const char *in, size_t in_len, int *http, char **body,
                       srv_status_t *st) {
    plat_t *p = plat;
    *body = NULL;
    int64_t account, current;
    plat_status_t ps;
    if (plat_auth(p, authorization, &account, &current, &ps) != 0) {
        copy_status(&ps, st);
        return -1;
    }
    if (!strcmp(method, "GET")) return keys_list(p, account, current, http, body, st);
    if (!strcmp(method, "POST")) return keys_create(p, account, current, in, in_len, http, body, st);
    if (!strcmp(method, "DELETE")) return keys_revoke(p, account, current, key_id, http, body, st);
    return fail(st, 405, "invalid_request_error", "method_not_allowed", "Use GET, POST or DELETE.");
}

/* ---- the Files and Batch APIs (batch.h) ---- */

/* The value of `key` in a URL query (no percent-decoding: the values
 * taken here are ids, numbers and words) into buf; NULL when absent. */
static const char *query_get(const char *q, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key);
    while (q && *q) {
        size_t n = strcspn(q, "&");
        if (n > kl && !strncmp(q, key, kl) && q[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= cap) vl = cap - 1;
            memcpy(buf, q + kl + 1, vl);
            buf[vl] = '\0';
            return buf;
        }
        q += n;
        if (*q == '&') q++;
    }
    return NULL;
}

/* A query's integer parameter: def when absent, -1 when not a number. */
static int query_int(const char *q, const char *key, int def) {
    char buf[24];
    if (!query_get(q, key, buf, sizeof buf)) return def;
    char *end;
    long v = strtol(buf, &end, 10);
    if (!*buf || *end || v < 0 || v > 1000000) return -1;
    return (int)v;
}

static int files_answer(json_t *v, const plat_status_t *ps, char **body, size_t *len, srv_status_t *st) {
    if (!v) {
        copy_status(ps, st);
        return -1;
    }
    *body = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (!*body) return fail(st, 500, "server_error", "internal_error", "out of memory");
    *len = strlen(*body);
    return 0;
}

int plat_srv_files(void *ctx, const srv_files_req_t *in, int *http, char **body, size_t *len, bool *raw,
                   srv_status_t *st) {
    plat_t *p = ctx;
    plat_status_t ps;
    int64_t account, key;
    *http = 200;
    *raw = false;
    *body = NULL;
    *len = 0;
    if (plat_auth(p, in->authorization, &account, &key, &ps) != 0) {
        copy_status(&ps, st);
        return -1;
    }
    const bool files = !strcmp(in->route, "files");
    const char *rest = in->rest;
    char id[PLAT_ID_MAX + 1];
    size_t idn = strcspn(rest, "/");
    snprintf(id, sizeof id, "%.*s", (int)SL_MIN(idn, (size_t)PLAT_ID_MAX), rest);
    const char *tail = rest[idn] == '/' ? rest + idn + 1 : NULL;
    json_t *v = NULL;
    char buf[PLAT_ID_MAX + 1], pbuf[32];
    if (files && !*rest && !strcmp(in->method, "POST")) {
        if (!in->has_file)
            return bad_param(st, "file", "missing_required_parameter", "Missing required parameter: 'file'.");
        v = plat_file_create(p, account, in->purpose, in->filename, in->file, in->file_len, &ps);
    } else if (files && !*rest) {
        int limit = query_int(in->query, "limit", 10000);
        char order[8];
        const char *o = query_get(in->query, "order", order, sizeof order);
        if (o && strcmp(o, "asc") && strcmp(o, "desc"))
            return bad_param(st, "order", "invalid_value", "Invalid 'order': use 'asc' or 'desc'.");
        v = plat_file_list(p, account, query_get(in->query, "purpose", pbuf, sizeof pbuf),
                           query_get(in->query, "after", buf, sizeof buf), limit, o && !strcmp(o, "asc"), &ps);
    } else if (files && !tail && !strcmp(in->method, "GET")) {
        v = plat_file_get(p, account, id, &ps);
    } else if (files && !tail) {
        v = plat_file_delete(p, account, id, &ps);
    } else if (files && !strcmp(tail, "content") && !strcmp(in->method, "GET")) {
        *body = plat_file_content(p, account, id, len, &ps);
        if (!*body) {
            copy_status(&ps, st);
            return -1;
        }
        *raw = true;
        return 0;
    } else if (!files && !*rest && !strcmp(in->method, "POST")) {
        json_error_t je;
        json_t *b = json_loadb(in->body ? in->body : "", in->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!b) return bad_param(st, "", "invalid_json", "The request body is not valid JSON.");
        v = plat_batch_create(p, account, key, b, &ps);
        json_decref(b);
    } else if (!files && !*rest) {
        v = plat_batch_list(p, account, query_get(in->query, "after", buf, sizeof buf),
                            query_int(in->query, "limit", 20), &ps);
    } else if (!files && !tail && !strcmp(in->method, "GET")) {
        v = plat_batch_get(p, account, id, &ps);
    } else if (!files && tail && !strcmp(tail, "cancel") && !strcmp(in->method, "POST")) {
        v = plat_batch_cancel(p, account, id, &ps);
    } else {
        return fail(st, 404, "invalid_request_error", "unknown_url", "Unknown request URL under /v1/files or /v1/batches.");
    }
    return files_answer(v, &ps, body, len, st);
}

/* One batch request on its way through the server's generation path. */
typedef struct batch_run_ctx {
    plat_t *p;
    plat_batch_task_t *t;
} batch_run_ctx_t;

static int batch_begin(void *ctx, const char *model, int64_t est_prompt, int64_t est_completion, void **req,
                       srv_status_t *st) {
    batch_run_ctx_t *c = ctx;
    plat_status_t ps;
    int rc = plat_begin_batch(c->p, c->t->account_id, c->t->key_id, c->t->batch_id, model, est_prompt,
                              est_completion, &c->t->req, &ps);
    copy_status(&ps, st);
    *req = c->t->req;
    return rc;
}

static void batch_done(void *ctx, void *req, int http, const char *body, size_t len, const srv_usage_t *u,
                       const char *status) {
    batch_run_ctx_t *c = ctx;
    plat_usage_t pu = {.ttft_ms = -1};
    if (u) {
        pu.prompt_tokens = u->prompt_tokens;
        pu.cached_tokens = u->cached_tokens;
        pu.completion_tokens = u->completion_tokens;
        pu.reasoning_tokens = u->reasoning_tokens;
        pu.ttft_ms = u->ttft_ms;
    }
    c->t->req = req;
    plat_batch_task_done(c->p, c->t, http, body, len, u ? &pu : NULL, status);
    free(c);
}

static bool batch_is_model(void *ud, const char *endpoint, const char *model) {
    const srv_batch_ops_t *ops = ud;
    return ops->has_model(ops->srv, endpoint, model);
}

void plat_srv_batch_poll(void *ctx, int room, const srv_batch_ops_t *ops) {
    plat_t *p = ctx;
    plat_batch_task_t **tasks = NULL;
    int n = 0;
    char err[SL_ERR_MAX];
    if (plat_batch_step(p, room, batch_is_model, (void *)ops, &tasks, &n, err, sizeof err) != 0)
        sl_warn("batch runner: %s", err);
    for (int i = 0; i < n; i++) {
        batch_run_ctx_t *c = calloc(1, sizeof *c);
        srv_internal_t in = {.endpoint = tasks[i]->endpoint, .body = tasks[i]->body,
                             .len = strlen(tasks[i]->body), .ctx = c, .begin = batch_begin,
                             .done = batch_done};
        if (c) {
            c->p = p;
            c->t = tasks[i];
        }
        if (!c || ops->run(ops->srv, &in) != 0) {
            static const char oom[] = "{\"error\":{\"message\":\"The server could not start this request.\","
                                      "\"type\":\"server_error\",\"param\":null,\"code\":null}}";
            free(c);
            plat_batch_task_done(p, tasks[i], 500, oom, sizeof oom - 1, NULL, "error");
        }
    }
    free(tasks);
}
