/*
 * plat_srv.c — adapters from the server's hook signatures to the platform's
 * request path. Only types come from server/server.h; no server function is
 * called, so the platform library links without the server.
 */
#include "platform/plat_srv.h"

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

void plat_srv_hooks(plat_t *p, srv_hooks_t *h) {
    memset(h, 0, sizeof *h);
    h->ctx = p;
    h->begin = hook_begin;
    h->request_id = hook_request_id;
    h->finish = hook_finish;
    h->abort = hook_abort;
    h->auth = hook_auth;
    h->store_put = hook_store_put;
    h->store_get = hook_store_get;
    h->store_delete = hook_store_delete;
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

static int internal(srv_status_t *st, const char *msg) {
    return fail(st, 500, "server_error", "internal_error", msg);
}

int plat_srv_user_info(plat_t *p, const char *authorization, char **body, srv_status_t *st) {
    *body = NULL;
    int64_t account;
    if (auth_account(p, authorization, &account, st) != 0) return -1;
    char err[SL_ERR_MAX];
    *body = plat_user_info_json(p, account, err, sizeof err);
    return *body ? 0 : internal(st, err);
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
