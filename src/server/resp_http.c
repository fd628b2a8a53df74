/*
 * resp_http.c — stored responses on the wire: GET / DELETE
 * /v1/responses/{id}, GET /v1/responses/{id}/input_items, and the load /
 * save calls gen.c makes for POST /v1/responses (previous_response_id,
 * store).
 *
 * POST /v1/responses itself runs on gen.c's generation path as the
 * format resp_gen_fmt (below): the request translated by resp.c, the
 * output kept and written by resp_out_t, the finished response stored.
 *
 * A stored response is one JSON text {"response": the response object,
 * "context": the whole conversation a continuation renders (the previous
 * context, this request's input, the output)}. Its input items, as
 * input_items lists them, are the items used to generate it: the context
 * without the output at its end.
 * It belongs to the account that made it: every lookup is by (account,
 * id), so another account's id is a 404 like an unknown one. With the
 * platform the text lives in its database (hooks.store_*), without it in
 * the server's in-memory LRU (resp_store.h). I/O thread only.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "server/resp.h"
#include "server/resp_store.h"
#include "server/server_int.h"

int resp_auth(srv_t *s, struct evhttp_request *req, int64_t *account, oai_error_t *e) {
    *account = 0;
    if (!s->cfg.hooks.auth) return 0;
    srv_status_t st = {0};
    char buf[256];
    const char *auth = srv_authorization(req, buf, sizeof buf);
    if (s->cfg.hooks.auth(s->cfg.hooks.ctx, auth, account, &st) == 0) return 0;
    return oai_fail(e, st.http ? st.http : 401, st.type[0] ? st.type : "authentication_error",
                    st.code[0] ? st.code : NULL, NULL, "%s", st.message);
}

static int not_found(const char *id, oai_error_t *e) {
    return oai_fail(e, 404, "invalid_request_error", "response_not_found", NULL,
                    "Response with id '%.100s' not found.", id);
}

json_t *resp_load(srv_t *s, int64_t account, const char *id, oai_error_t *e) {
    char *text = NULL;
    if (strlen(id) >= RESP_ID_MAX) {
        not_found(id, e);
        return NULL;
    }
    if (s->cfg.hooks.store_get) {
        int rc = s->cfg.hooks.store_get(s->cfg.hooks.ctx, account, id, &text);
        if (rc < 0) {
            oai_fail(e, 500, "server_error", NULL, NULL, "The stored response could not be read.");
            return NULL;
        }
        if (rc > 0) text = NULL;
    } else {
        text = s->rstore ? resp_store_get(s->rstore, account, id) : NULL;
    }
    if (!text) {
        not_found(id, e);
        return NULL;
    }
    json_t *v = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_object(v) || !json_is_object(json_object_get(v, "response"))) {
        json_decref(v);
        oai_fail(e, 500, "server_error", NULL, NULL, "The stored response is damaged.");
        return NULL;
    }
    return v;
}

int resp_save(srv_t *s, int64_t account, const char *id, const json_t *stored) {
    char *text = json_dumps(stored, JSON_COMPACT);
    if (!text) return -1;
    const size_t len = strlen(text);
    int rc;
    if (s->cfg.hooks.store_put)
        rc = s->cfg.hooks.store_put(s->cfg.hooks.ctx, account, id, text, len);
    else
        rc = s->rstore ? resp_store_put(s->rstore, account, id, text, len) : -1;
    if (rc != 0) sl_warn("response %s (%zu bytes) could not be stored", id, len);
    free(text);
    return rc;
}

static void handle_list(srv_t *s, struct evhttp_request *req, const json_t *stored,
                        const char *query) {
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query) evhttp_parse_query_str(query, &q);
    oai_error_t e;
    const json_t *ctx = json_object_get(stored, "context");
    const size_t n_out =
        json_array_size(json_object_get(json_object_get(stored, "response"), "output"));
    const size_t n = json_array_size(ctx) > n_out ? json_array_size(ctx) - n_out : 0;
    json_t *input = json_array();
    for (size_t i = 0; input && i < n; i++)
        json_array_append(input, json_array_get(ctx, i));
    json_t *list =
        resp_list_items(input, evhttp_find_header(&q, "order"), evhttp_find_header(&q, "after"),
                        evhttp_find_header(&q, "limit"), &e);
    json_decref(input);
    evhttp_clear_headers(&q);
    if (list)
        srv_send_jsonv(s, req, 200, list);
    else
        srv_send_error(s, req, &e);
}

/* rest: what follows /v1/responses/ ("ID" or "ID/input_items"). */
void resp_handle_stored(srv_t *s, struct evhttp_request *req, const char *rest, bool del,
                        const char *query) {
    oai_error_t e;
    char id[RESP_ID_MAX + 16];
    const char *slash = strchr(rest, '/');
    const bool items = slash && !strcmp(slash, "/input_items");
    if ((slash && !items) || (items && del)) {
        oai_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Unknown request URL: %s /v1/responses/%.200s.", del ? "DELETE" : "GET", rest);
        srv_send_error(s, req, &e);
        return;
    }
    const size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    snprintf(id, sizeof id, "%.*s", (int)SL_MIN(n, sizeof id - 1), rest);
    int64_t account;
    if (resp_auth(s, req, &account, &e) != 0) {
        srv_send_error(s, req, &e);
        return;
    }
    if (del) {
        int rc;
        if (strlen(id) >= RESP_ID_MAX)
            rc = 1;
        else if (s->cfg.hooks.store_delete)
            rc = s->cfg.hooks.store_delete(s->cfg.hooks.ctx, account, id);
        else
            rc = s->rstore && resp_store_delete(s->rstore, account, id) ? 0 : 1;
        if (rc == 0) {
            srv_send_jsonv(
                s, req, 200,
                json_pack("{s:s, s:s, s:b}", "id", id, "object", "response", "deleted", 1));
        } else {
            if (rc < 0)
                oai_fail(&e, 500, "server_error", NULL, NULL,
                         "The stored response could not be deleted.");
            else
                not_found(id, &e);
            srv_send_error(s, req, &e);
        }
        return;
    }
    json_t *stored = resp_load(s, account, id, &e);
    if (!stored) {
        srv_send_error(s, req, &e);
        return;
    }
    if (items)
        handle_list(s, req, stored, query);
    else
        srv_send_jsonv(s, req, 200, json_incref(json_object_get(stored, "response")));
    json_decref(stored);
}

/* ---- POST /v1/responses as a generation format (server_int.h) ---- */

typedef struct resp_job {
    srv_t *s;
    resp_req_t rr;
    resp_out_t ro;
    int64_t account; /* whose stored responses it reads and writes */
} resp_job_t;

/* The account is known first (the auth hook), so previous_response_id is
 * looked up among its own stored responses only. */
static int fmt_parse(srv_t *s, struct evhttp_request *req, const char *body, size_t len, bool count,
                     uint64_t seed, void **st, json_t **chat, oai_error_t *e) {
    (void)count;
    resp_job_t *rj = calloc(1, sizeof *rj);
    if (!rj) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    rj->s = s;
    *st = rj;
    json_t *b = oai_load_body(body, len, e);
    if (!b) return -1;
    const char *prev_id = NULL;
    json_t *stored = NULL;
    int rc = -1;
    if (!json_is_object(b)) {
        oai_fail(e, 400, NULL, "invalid_json", NULL, "The request body must be a JSON object, not %s.",
                 oai_json_kind(b));
        goto out;
    }
    if (resp_previous_id(b, &prev_id, e) != 0 || resp_auth(s, req, &rj->account, e) != 0) goto out;
    if (prev_id && !(stored = resp_load(s, rj->account, prev_id, e))) {
        if (e->status == 404)
            oai_fail(e, 404, NULL, "previous_response_not_found", "previous_response_id",
                     "Previous response with id '%.100s' not found.", prev_id);
        goto out;
    }
    if (resp_translate(b, stored ? json_object_get(stored, "context") : NULL, seed, &rj->rr, e) != 0) goto out;
    resp_out_init(&rj->ro, rj->rr.stream, seed ^ 0x5DEECE66Dull);
    *chat = json_incref(rj->rr.chat);
    rc = 0;
out:
    json_decref(stored);
    json_decref(b);
    return rc;
}

static void fmt_free(void *st) {
    resp_job_t *rj = st;
    if (!rj) return;
    resp_req_free(&rj->rr);
    resp_out_free(&rj->ro);
    free(rj);
}

/* A Responses request's errors name its own parameters. */
static void fmt_send_error(srv_t *s, struct evhttp_request *req, oai_error_t *e, bool chat_names) {
    if (chat_names) resp_error_param(e);
    srv_send_error(s, req, e);
}

static void fmt_text(void *st, bool reasoning, const char *t, size_t n) {
    resp_out_text(&((resp_job_t *)st)->ro, reasoning, t, n);
}

static void fmt_call_start(void *st, const char *call_id, const char *name) {
    resp_out_call_start(&((resp_job_t *)st)->ro, call_id, name);
}

static void fmt_call_args(void *st, const char *t, size_t n) {
    resp_out_call_args(&((resp_job_t *)st)->ro, t, n);
}

static void fmt_call_end(void *st, bool ok) {
    resp_out_call_end(&((resp_job_t *)st)->ro, ok);
}

static void fmt_stream_start(void *st, const gen_fmt_info_t *in) {
    resp_job_t *rj = st;
    json_t *obj = resp_object(in->id, in->created, in->model, "in_progress", rj->rr.echo, NULL, NULL, NULL, NULL);
    resp_out_lifecycle(&rj->ro, "response.created", json_incref(obj));
    resp_out_lifecycle(&rj->ro, "response.in_progress", obj);
}

/* The last items close, the response object is stored (store) and sent,
 * as JSON or as the stream's last event. Cut by max_tokens (or the
 * context) it is "incomplete"; a failed sequence makes it "failed" (still
 * a 200, as OpenAI's). */
static json_t *fmt_finish(void *st, const gen_fmt_info_t *in, int *status) {
    resp_job_t *rj = st;
    const bool cut = !strcmp(in->finish, "length");
    resp_out_finish(&rj->ro, cut);
    const char *state = in->error ? "failed" : cut ? "incomplete" : "completed";
    json_t *obj = resp_object(in->id, in->created, in->model, state, rj->rr.echo, rj->ro.items, &in->usage,
                              !in->error && cut ? "max_output_tokens" : NULL, in->error);
    if (!obj) obj = json_object();
    if (rj->rr.store) {
        /* the object and the conversation a continuation renders */
        json_t *ctx = json_deep_copy(rj->rr.context);
        json_array_extend(ctx, rj->ro.items);
        json_t *stored = json_pack("{s:O, s:o}", "response", obj, "context", ctx);
        if (stored) resp_save(rj->s, rj->account, in->id, stored);
        json_decref(stored);
    }
    *status = 200;
    if (!rj->rr.stream) return obj;
    char type[40];
    snprintf(type, sizeof type, "response.%s", state);
    resp_out_lifecycle(&rj->ro, type, obj);
    return NULL;
}

static sl_buf_t *fmt_events(void *st) {
    return &((resp_job_t *)st)->ro.ev;
}

const gen_fmt_t resp_gen_fmt = {
    .id_prefix = "resp_",
    .input_param = "input",
    .parse = fmt_parse,
    .free = fmt_free,
    .send_error = fmt_send_error,
    .text = fmt_text,
    .call_start = fmt_call_start,
    .call_args = fmt_call_args,
    .call_end = fmt_call_end,
    .stream_start = fmt_stream_start,
    .finish = fmt_finish,
    .events = fmt_events,
};
