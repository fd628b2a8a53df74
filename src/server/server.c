/*
 * server.c — HTTP (libevent evhttp, one I/O thread), routing, limits, CORS,
 * models/health/metrics endpoints, and the bridge from engine threads back
 * to the I/O thread.
 *
 * Threads: everything here runs on the I/O thread except on_engine_event(),
 * which engine threads call: it copies the event into `evq` under `evq_mu`
 * and activates the `wake` event; the I/O thread drains the queue in
 * on_wake(). So the I/O thread never runs model code and engine threads
 * never touch a socket.
 *
 * Generation requests (gen.c) are jobs bound to their connection: when the
 * connection closes, libevent calls conn_closed(), which cancels the job's
 * sequences (their KV caches are freed by the engine before their FINISH
 * events come back).
 */
#include "server/multipart.h"
#include "server/server_int.h"
#include "server/console.h"
#include "server/tools.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/anth.h"
#include "server/resp_store.h"
#include "server/structured.h"

/* ---- engine events -> I/O thread ---- */

static void on_engine_event(const eng_event_t *ev, void *ctx) {
    srv_model_t *m = ctx;
    srv_t *s = m->srv;
    pthread_mutex_lock(&s->evq_mu);
    if (s->evq_len == s->evq_cap) {
        size_t ncap = s->evq_cap ? s->evq_cap * 2 : 256;
        srv_qev_t *nq = realloc(s->evq, ncap * sizeof *nq);
        if (!nq) {
            /* cannot happen in practice; losing a FINISH would leak a job,
             * so wait for memory rather than drop it */
            pthread_mutex_unlock(&s->evq_mu);
            usleep(1000);
            on_engine_event(ev, ctx);
            return;
        }
        s->evq = nq;
        s->evq_cap = ncap;
    }
    srv_qev_t *q = &s->evq[s->evq_len++];
    q->m = m;
    q->ev = *ev;
    q->ev.error = NULL;
    q->err[0] = '\0';
    if (ev->error) snprintf(q->err, sizeof q->err, "%s", ev->error);
    bool was_empty = s->evq_len == 1;
    pthread_mutex_unlock(&s->evq_mu);
    if (was_empty) event_active(s->wake, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    srv_t *s = arg;
    /* swap the filled queue with the spare array, then work unlocked */
    pthread_mutex_lock(&s->evq_mu);
    srv_qev_t *q = s->evq;
    size_t n = s->evq_len, qcap = s->evq_cap;
    s->evq = s->evq_spare;
    s->evq_cap = s->evq_spare_cap;
    s->evq_spare = NULL;
    s->evq_spare_cap = 0;
    s->evq_len = 0;
    pthread_mutex_unlock(&s->evq_mu);
    for (size_t i = 0; i < n; i++) {
        if (q[i].err[0]) q[i].ev.error = q[i].err;
        if (srv_model_embeds(q[i].m))
            embed_on_event(s, &q[i].ev);
        else
            gen_on_event(s, &q[i].ev);
    }
    pthread_mutex_lock(&s->evq_mu);
    if (!s->evq_spare) {
        s->evq_spare = q;
        s->evq_spare_cap = qcap;
        q = NULL;
    }
    pthread_mutex_unlock(&s->evq_mu);
    free(q);
}

/* ---- connections ---- */

static size_t conn_hash(const void *p, size_t cap) {
    return (size_t)(((uintptr_t)p >> 4) * 11400714819323198485ull) & (cap - 1);
}

static srv_conn_t **conn_slot(srv_t *s, struct evhttp_connection *evcon) {
    size_t h = conn_hash(evcon, s->conn_cap);
    for (;;) {
        srv_conn_t **slot = &s->conns[h];
        if (!*slot || (*slot)->evcon == evcon) return slot;
        h = (h + 1) & (s->conn_cap - 1);
    }
}

static void conn_closed(struct evhttp_connection *evcon, void *arg) {
    srv_t *s = arg;
    srv_conn_t **slot = conn_slot(s, evcon);
    srv_conn_t *c = *slot;
    if (!c) return;
    if (c->job) gen_conn_lost(c->job);
    if (c->ejob) embed_conn_lost(c->ejob);
    /* remove with backward-shift deletion to keep probe chains intact */
    size_t i = (size_t)(slot - s->conns);
    s->conns[i] = NULL;
    for (size_t j = (i + 1) & (s->conn_cap - 1); s->conns[j]; j = (j + 1) & (s->conn_cap - 1)) {
        srv_conn_t *moved = s->conns[j];
        s->conns[j] = NULL;
        *conn_slot(s, moved->evcon) = moved;
    }
    s->n_conns--;
    free(c);
}

/* The connection's tracking record, created on its first request. NULL
 * when the connection limit is reached. */
static srv_conn_t *conn_get(srv_t *s, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon) return NULL;
    srv_conn_t **slot = conn_slot(s, evcon);
    if (*slot) return *slot;
    if (s->n_conns >= s->cfg.max_conns) return NULL;
    srv_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->evcon = evcon;
    *slot = c;
    s->n_conns++;
    evhttp_connection_set_closecb(evcon, conn_closed, s);
    return c;
}

bool srv_conn_gone(const srv_conn_t *c) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    const evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0) return false;
    char ch;
    const ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

const char *srv_authorization(struct evhttp_request *req, char *buf, size_t cap) {
    const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(in, "Authorization");
    if (auth) return auth;
    const char *key = evhttp_find_header(in, "x-api-key");
    if (!key) return NULL;
    /* a key too long for buf is cut and then refused as malformed */
    snprintf(buf, cap, "Bearer %s", key);
    return buf;
}

int srv_hook_begin(srv_t *s, struct evhttp_request *req, const char *model, int64_t est_prompt_tokens,
                   int64_t est_completion_tokens, void **hook, oai_error_t *e) {
    *hook = NULL;
    if (!s->cfg.hooks.begin) return 0;
    srv_status_t st = {0};
    char buf[256];
    const char *auth = srv_authorization(req, buf, sizeof buf);
    if (s->cfg.hooks.begin(s->cfg.hooks.ctx, auth, model, est_prompt_tokens, est_completion_tokens, hook, &st) != 0) {
        *hook = NULL;
        if (st.retry_after_s > 0) {
            char ra[24];
            snprintf(ra, sizeof ra, "%d", st.retry_after_s);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
        }
        return oai_fail(e, st.http ? st.http : 401, st.type[0] ? st.type : "authentication_error",
                        st.code[0] ? st.code : NULL, NULL, "%s", st.message);
    }
    if (s->cfg.hooks.request_id) {
        /* x-request-id as OpenAI names it, request-id as Anthropic does */
        const char *rid = s->cfg.hooks.request_id(*hook);
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-request-id", rid);
        evhttp_add_header(evhttp_request_get_output_headers(req), "request-id", rid);
    }
    return 0;
}

int srv_internal_begin(const srv_internal_t *ij, const char *model, int64_t est_prompt_tokens,
                       int64_t est_completion_tokens, void **hook, oai_error_t *e) {
    srv_status_t st = {0};
    *hook = NULL;
    if (ij->begin(ij->ctx, model, est_prompt_tokens, est_completion_tokens, hook, &st) != 0) {
        *hook = NULL;
        return oai_fail(e, st.http ? st.http : 403, st.type[0] ? st.type : "permission_denied",
                        st.code[0] ? st.code : NULL, st.param[0] ? st.param : NULL, "%s", st.message);
    }
    return 0;
}

/* ---- responses ---- */

void srv_add_common_headers(srv_t *s, struct evhttp_request *req) {
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
    evhttp_add_header(h, "Access-Control-Expose-Headers", "x-request-id, request-id, retry-after");
    evhttp_add_header(h, "Server", "silica");
}

void srv_count_status(srv_t *s, int status) {
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) s->n_status[cls]++;
}

void srv_send_json(srv_t *s, struct evhttp_request *req, int status, const char *body, size_t len) {
    srv_add_common_headers(s, req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    struct evbuffer *out = evbuffer_new();
    if (out) evbuffer_add(out, body, len);
    srv_count_status(s, status);
    const char *reason = status == 200 ? "OK" : status == 204 ? "No Content" : NULL;
    evhttp_send_reply(req, status, reason, out);
    if (out) evbuffer_free(out);
}

void srv_send_jsonv(srv_t *s, struct evhttp_request *req, int status, json_t *v) {
    char *body = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        srv_send_json(s, req, 500, oom, sizeof oom - 1);
        return;
    }
    srv_send_json(s, req, status, body, strlen(body));
    free(body);
}

void srv_send_error(srv_t *s, struct evhttp_request *req, const oai_error_t *e) {
    if (e->status >= 500) sl_warn("http %d: %s", e->status, e->message);
    char *body = oai_error_json(e);
    if (!body) {
        srv_send_json(s, req, e->status, "{}", 2);
        return;
    }
    srv_send_json(s, req, e->status, body, strlen(body));
    free(body);
}

static void send_errorf(srv_t *s, struct evhttp_request *req, int status, const char *type,
                        const char *code, const char *fmt, const char *arg) {
    oai_error_t e;
    oai_fail(&e, status, type, code, NULL, fmt, arg);
    srv_send_error(s, req, &e);
}

srv_model_t *srv_find_model(srv_t *s, const char *id) {
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].id, id)) return &s->models[i];
    return NULL;
}

void srv_model_not_found(srv_t *s, const char *id, oai_error_t *e) {
    char list[300] = "";
    size_t off = 0;
    for (int i = 0; i < s->n_models && off < sizeof list - 8; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s'%s'", i ? ", " : "", s->models[i].id);
    oai_fail(e, 404, "invalid_request_error", "model_not_found", "model",
             "The model '%.100s' does not exist. Available models: %s.", id, list);
}

/* ---- simple endpoints ---- */

/* OpenAI's model object plus extension fields: type/sub_type (the hosted
 * platform's), context_length, and capabilities: chat (a usable chat
 * template), completion, prefix_completion (chat `prefix` / assistant
 * `prefix: true`), fim (prompt + suffix; the model has FIM tokens), tools
 * (the chat template renders tool definitions), tool_calls (the tool-call
 * format detected, or null) and reasoning (it writes <think> reasoning). */
static json_t *model_json(const srv_model_t *m) {
    const sl_hparams_t *hp = model_hparams(m->model);
    if (srv_model_embeds(m)) { /* embeddings or rerank only; an embedding model's vector length as dimensions */
        const bool rank = hp->pooling == SL_POOLING_RANK;
        json_t *v = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:i, s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}}", "id",
                              m->id, "object", "model", "created", (json_int_t)m->created, "owned_by", "silica",
                              "type", "text", "sub_type", rank ? "reranker" : "embedding", "context_length",
                              eng_n_ctx(m->eng), "capabilities", "chat", 0, "completion", 0, "prefix_completion", 0,
                              "fim", 0, "tools", 0, "reasoning", 0, "embeddings", !rank, "rerank", rank);
        if (v && !rank) json_object_set_new(v, "dimensions", json_integer(model_embed_dim(m->model)));
        return v;
    }
    json_t *v = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:i, s:{s:b, s:b, s:b, s:b, s:b, s:b}}", "id", m->id,
                          "object", "model", "created", (json_int_t)m->created, "owned_by", "silica", "type",
                          "text", "sub_type", "chat", "context_length", eng_n_ctx(m->eng), "capabilities",
                          "chat", m->tmpl != NULL, "completion", 1, "prefix_completion", m->tmpl != NULL,
                          "fim", fim_supported(&m->fim), "tools", m->tools, "reasoning",
                          m->tc_reasoning || m->tc_family == TC_FAMILY_HARMONY); /* harmony: analysis */
    json_t *caps = json_object_get(v, "capabilities");
    if (caps)
        json_object_set_new(caps, "tool_calls",
                            m->tc_family != TC_FAMILY_NONE ? json_string(tc_family_name(m->tc_family)) : json_null());
    return v;
}

static void handle_models(srv_t *s, struct evhttp_request *req, const char *query) {
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query) evhttp_parse_query_str(query, &q);
    const char *type = evhttp_find_header(&q, "type");
    const char *sub = evhttp_find_header(&q, "sub_type");
    json_t *data = json_array();
    for (int i = 0; i < s->n_models; i++) {
        const sl_hparams_t *hp = model_hparams(s->models[i].model);
        const char *kind = !srv_model_embeds(&s->models[i]) ? "chat" : hp->pooling == SL_POOLING_RANK ? "reranker" : "embedding";
        if (type && *type && strcmp(type, "text") != 0) continue;
        if (sub && *sub && strcmp(sub, kind) != 0) continue;
        json_array_append_new(data, model_json(&s->models[i]));
    }
    evhttp_clear_headers(&q);
    srv_send_jsonv(s, req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void handle_model(srv_t *s, struct evhttp_request *req, const char *id) {
    srv_model_t *m = srv_find_model(s, id);
    if (!m) {
        oai_error_t e;
        srv_model_not_found(s, id, &e);
        srv_send_error(s, req, &e);
        return;
    }
    srv_send_jsonv(s, req, 200, model_json(m));
}

/* Anthropic's model object (what its SDK's models.list / retrieve read):
 * chat models only, created_at as RFC 3339. */
static json_t *anth_model_json(const srv_model_t *m) {
    char when[32];
    const time_t t = (time_t)m->created;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(when, sizeof when, "1970-01-01T00:00:00Z");
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "type", "model", "id", m->id, "display_name", m->id,
                     "created_at", when, "max_input_tokens", eng_n_ctx(m->eng), "max_tokens", eng_n_ctx(m->eng));
}

static void send_anth_error(srv_t *s, struct evhttp_request *req, int status, const char *fmt, const char *arg) {
    oai_error_t e;
    oai_fail(&e, status, NULL, NULL, NULL, fmt, arg);
    anth_gen_fmt.send_error(s, req, &e, false);
}

/* GET /v1/models (and /v1/models/{id}) in Anthropic's shape: {data,
 * has_more, first_id, last_id}, all in one page. */
static void handle_anth_models(srv_t *s, struct evhttp_request *req, const char *id) {
    json_t *data = json_array();
    for (int i = 0; i < s->n_models; i++) {
        const srv_model_t *m = &s->models[i];
        if (srv_model_embeds(m) || (id && strcmp(id, m->id) != 0)) continue;
        if (id) {
            json_decref(data);
            srv_send_jsonv(s, req, 200, anth_model_json(m));
            return;
        }
        json_array_append_new(data, anth_model_json(m));
    }
    if (id) {
        json_decref(data);
        send_anth_error(s, req, 404, "model: '%.100s' is not a model of this server (GET /v1/models lists them).", id);
        return;
    }
    const size_t n = json_array_size(data);
    json_t *first = n ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = n ? json_object_get(json_array_get(data, n - 1), "id") : NULL;
    srv_send_jsonv(s, req, 200,
                   json_pack("{s:o, s:b, s:O, s:O}", "data", data, "has_more", 0, "first_id",
                             first ? first : json_null(), "last_id", last ? last : json_null()));
}

static void live_counts(srv_t *s, eng_stats_t *sum) {
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < s->n_models; i++) {
        eng_stats_t st;
        eng_stats(s->models[i].eng, &st);
        sum->live += st.live;
        sum->running += st.running;
        sum->queued += st.queued;
        sum->submitted += st.submitted;
        sum->finished += st.finished;
        sum->cancelled += st.cancelled;
        sum->tokens_generated += st.tokens_generated;
        sum->prompt_tokens += st.prompt_tokens;
        sum->steps += st.steps;
        sum->busy_ns += st.busy_ns;
    }
}

static void handle_health(srv_t *s, struct evhttp_request *req) {
    eng_stats_t st;
    live_counts(s, &st);
    json_t *models = json_array();
    for (int i = 0; i < s->n_models; i++) json_array_append_new(models, json_string(s->models[i].id));
    srv_send_jsonv(s, req, 200,
                   json_pack("{s:s, s:o, s:i, s:i, s:i, s:i, s:i}", "status", "ok", "models", models,
                             "live_sequences", st.live, "running_sequences", st.running,
                             "queued_sequences", st.queued, "active_requests", s->n_jobs + s->n_ejobs,
                             "connections", s->n_conns));
}

static void handle_metrics(srv_t *s, struct evhttp_request *req) {
    eng_stats_t st;
    live_counts(s, &st);
    sl_buf_t b = {0};
    sl_buf_printf(&b, "# TYPE silica_live_sequences gauge\nsilica_live_sequences %d\n", st.live);
    sl_buf_printf(&b, "silica_running_sequences %d\nsilica_queued_sequences %d\n", st.running, st.queued);
    sl_buf_printf(&b, "silica_active_requests %d\nsilica_connections %d\n", s->n_jobs + s->n_ejobs, s->n_conns);
    sl_buf_printf(&b, "silica_sequences_submitted_total %llu\nsilica_sequences_cancelled_total %llu\n",
                  (unsigned long long)st.submitted, (unsigned long long)st.cancelled);
    sl_buf_printf(&b, "silica_tokens_generated_total %llu\nsilica_prompt_tokens_total %llu\n",
                  (unsigned long long)st.tokens_generated, (unsigned long long)st.prompt_tokens);
    sl_buf_printf(&b, "silica_engine_steps_total %llu\nsilica_engine_busy_seconds_total %.6f\n",
                  (unsigned long long)st.steps, (double)st.busy_ns * 1e-9);
    sl_buf_printf(&b, "silica_http_requests_total %llu\n", (unsigned long long)s->n_requests);
    for (int c = 1; c <= 5; c++)
        sl_buf_printf(&b, "silica_http_responses_total{class=\"%dxx\"} %llu\n", c,
                      (unsigned long long)s->n_status[c]);
    sl_buf_printf(&b,
                  "# HELP silica_stream_token_work_seconds I/O-thread time per streamed token "
                  "(detokenize, stop strings, JSON, socket write)\n"
                  "silica_stream_token_work_seconds_sum %.9f\n"
                  "silica_stream_token_work_seconds_count %llu\n"
                  "silica_stream_token_work_seconds_max %.9f\n"
                  "# HELP silica_stream_token_latency_seconds from the engine producing a token to "
                  "its SSE chunk written (includes waiting behind other streams' tokens)\n"
                  "silica_stream_token_latency_seconds_sum %.9f\n"
                  "silica_stream_token_latency_seconds_count %llu\n",
                  (double)s->tok_work_ns * 1e-9, (unsigned long long)s->tok_n,
                  (double)s->tok_work_max_ns * 1e-9, (double)s->tok_lat_ns * 1e-9,
                  (unsigned long long)s->tok_n);
    /* per model: batching, KV blocks, prefix cache, TTFT / inter-token latency */
    eng_t *engs[SRV_MAX_MODELS];
    const char *names[SRV_MAX_MODELS];
    int n = 0;
    for (int i = 0; i < s->n_models && n < SRV_MAX_MODELS; i++, n++) {
        engs[n] = s->models[i].eng;
        names[n] = s->models[i].id;
    }
    eng_metrics_write(&b, engs, names, n);
    if (s->cfg.hooks.metrics) { /* the platform's (its rate-limit store) */
        char *more = s->cfg.hooks.metrics(s->cfg.hooks.ctx);
        if (more) sl_buf_puts(&b, more);
        free(more);
    }
    srv_add_common_headers(s, req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, b.data, b.len);
    sl_buf_free(&b);
    srv_count_status(s, 200);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* The account routes without a platform: one answer for all of them. */
static void no_accounts(srv_t *s, struct evhttp_request *req) {
    send_errorf(s, req, 404, "invalid_request_error", "unknown_url",
                "This server has no accounts (the platform is off: it runs without --data, or with "
                "--no-auth)%s, so there are no balances, usage or API keys to show.", "");
}

/* An error the platform hook gave (its status, type, code, param, message). */
static void send_hook_error(srv_t *s, struct evhttp_request *req, const srv_status_t *st) {
    oai_error_t e;
    oai_fail(&e, st->http ? st->http : 500, st->type[0] ? st->type : "server_error",
             st->code[0] ? st->code : NULL, st->param[0] ? st->param : NULL, "%s",
             st->message[0] ? st->message : "account lookup failed");
    srv_send_error(s, req, &e);
}

/* GET /v1/user/info, /v1/user/usage, /v1/user/prices: answered by the platform hook. */
static void handle_account(srv_t *s, struct evhttp_request *req, const char *route, const char *query) {
    const srv_hooks_t *h = &s->cfg.hooks;
    if (!h->account) {
        no_accounts(s, req);
        return;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query) evhttp_parse_query_str(query, &q);
    char buf[256];
    const char *auth = srv_authorization(req, buf, sizeof buf);
    char *body = NULL;
    srv_status_t st = {0};
    int rc = h->account(h->ctx, route, auth, evhttp_find_header(&q, "group_by"), &body, &st);
    evhttp_clear_headers(&q);
    if (rc == 0 && body) srv_send_json(s, req, 200, body, strlen(body));
    else send_hook_error(s, req, &st);
    free(body);
}

/* GET / POST /v1/user/keys, DELETE /v1/user/keys/{id}: the caller's own
 * API keys, answered by the platform's keys hook. */
static void handle_keys(srv_t *s, struct evhttp_request *req, const char *method, const char *key_id) {
    const srv_hooks_t *h = &s->cfg.hooks;
    if (!h->keys) {
        no_accounts(s, req);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const size_t len = evbuffer_get_length(in);
    if (len > s->cfg.max_body) {
        oai_error_t e;
        oai_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                 "The request body is %zu bytes; the limit is %zu bytes.", len, s->cfg.max_body);
        srv_send_error(s, req, &e);
        return;
    }
    const char *body_in = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    char buf[256];
    const char *auth = srv_authorization(req, buf, sizeof buf);
    char *body = NULL;
    int http = 200;
    srv_status_t st = {0};
    if (h->keys(h->ctx, method, auth, key_id, body_in, len, &http, &body, &st) == 0 && body)
        srv_send_json(s, req, http, body, strlen(body));
    else
        send_hook_error(s, req, &st);
    free(body);
}

/* The Files and Batch APIs (/v1/files..., /v1/batches...): answered by
 * the platform's files hook. A file upload's multipart body is split here
 * (multipart.h) and its size checked against max_upload; the other bodies
 * go to the hook as they came. */
static void handle_files(srv_t *s, struct evhttp_request *req, const char *route, const char *rest,
                         const char *method, const char *query) {
    const srv_hooks_t *h = &s->cfg.hooks;
    if (!h->files) {
        send_errorf(s, req, 404, "invalid_request_error", "unknown_url",
                    "This server has no accounts (the platform is off: it runs without --data, or with "
                    "--no-auth)%s, so it keeps no files or batches.", "");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const size_t len = evbuffer_get_length(in);
    const bool upload = !strcmp(route, "files") && !strcmp(method, "POST");
    const size_t cap = upload ? s->cfg.max_upload : s->cfg.max_body;
    oai_error_t e;
    if (len > cap) {
        oai_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                 "The request body is %zu bytes; the limit is %zu bytes.", len, cap);
        srv_send_error(s, req, &e);
        return;
    }
    srv_files_req_t fr = {.method = method, .route = route, .rest = rest, .query = query};
    char buf[256];
    fr.authorization = srv_authorization(req, buf, sizeof buf);
    if (h->auth) { /* the key first: a stranger's upload is a 401, not parsed */
        int64_t account;
        srv_status_t ast = {0};
        if (h->auth(h->ctx, fr.authorization, &account, &ast) != 0) {
            send_hook_error(s, req, &ast);
            return;
        }
    }
    const char *body_in = len ? (const char *)evbuffer_pullup(in, -1) : "";
    mp_part_t parts[MP_MAX_PARTS];
    char purpose[64];
    if (upload) {
        char boundary[80], err[300];
        int n = 0;
        const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
        if (mp_boundary(ct, boundary, sizeof boundary, err, sizeof err) != 0 ||
            mp_parse(body_in, len, boundary, parts, MP_MAX_PARTS, &n, err, sizeof err) != 0) {
            oai_fail(&e, 400, "invalid_request_error", "invalid_multipart", NULL, "%s", err);
            srv_send_error(s, req, &e);
            return;
        }
        const mp_part_t *f = mp_find(parts, n, "file"), *pu = mp_find(parts, n, "purpose");
        if (pu) {
            if (pu->len >= sizeof purpose || memchr(pu->data, '\0', pu->len)) {
                oai_fail(&e, 400, "invalid_request_error", "invalid_value", "purpose",
                         "Invalid 'purpose': use 'batch'.");
                srv_send_error(s, req, &e);
                return;
            }
            memcpy(purpose, pu->data, pu->len);
            purpose[pu->len] = '\0';
            fr.purpose = purpose;
        }
        if (f) {
            fr.has_file = true;
            fr.file = f->data;
            fr.file_len = f->len;
            fr.filename = f->has_filename ? f->filename : "file";
        }
    } else {
        fr.body = body_in;
        fr.body_len = len;
    }
    char *body = NULL;
    size_t blen = 0;
    bool raw = false;
    int http = 200;
    srv_status_t st = {0};
    if (h->files(h->ctx, &fr, &http, &body, &blen, &raw, &st) != 0 || !body) {
        send_hook_error(s, req, &st);
    } else if (raw) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        srv_add_common_headers(s, req);
        evhttp_add_header(out, "Content-Type", "application/octet-stream");
        struct evbuffer *b = evbuffer_new();
        if (b) evbuffer_add(b, body, blen);
        srv_count_status(s, http);
        evhttp_send_reply(req, http, "OK", b);
        if (b) evbuffer_free(b);
    } else {
        srv_send_json(s, req, http, body, blen);
    }
    free(body);
}

/* GET / HEAD of the web console's embedded files (console.h). Every answer,
 * a 404 included, carries the console's security headers; the page's
 * scripts and styles are its own files (the CSP allows nothing inline). */
static void handle_console(srv_t *s, struct evhttp_request *req, const char *name, bool head) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Security-Policy", CONSOLE_CSP);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    const console_file_t *f = console_find(name);
    if (!f) {
        oai_error_t e;
        oai_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "The console has no file '%.100s'.", name);
        srv_send_error(s, req, &e);
        return;
    }
    srv_add_common_headers(s, req);
    evhttp_add_header(out, "ETag", f->etag);
    evhttp_add_header(out, "Cache-Control", CONSOLE_CACHE_CONTROL);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (console_etag_match(inm, f->etag)) {
        srv_count_status(s, 304);
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", console_content_type(f->name));
    struct evbuffer *b = NULL;
    if (head) {
        /* the length the GET would have; libevent sends no body for HEAD */
        char n[32];
        snprintf(n, sizeof n, "%zu", f->len);
        evhttp_add_header(out, "Content-Length", n);
    } else {
        b = evbuffer_new();
        if (b) evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
    }
    srv_count_status(s, 200);
    evhttp_send_reply(req, 200, "OK", b);
    if (b) evbuffer_free(b);
}

/* ---- routing ---- */

static const char *method_name(enum evhttp_cmd_type m) {
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "?";
    }
}

static void method_not_allowed(srv_t *s, struct evhttp_request *req, const char *allow, const char *path) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    oai_error_t e;
    oai_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
             "Method %s is not allowed on %.200s; use %s.",
             method_name(evhttp_request_get_command(req)), path, allow);
    srv_send_error(s, req, &e);
}

/* Anthropic's routes: POST /v1/messages, /v1/messages/count_tokens, GET
 * /v1/models[/{id}] in its shape; under /anthropic (the base URL hosted
 * platforms give its SDK) every path, and every error, is Anthropic's. */
static void route_anthropic(srv_t *s, srv_conn_t *c, struct evhttp_request *req, const char *route,
                            enum evhttp_cmd_type m) {
    const bool models = !strcmp(route, "/v1/models"), model = !strncmp(route, "/v1/models/", 11) && route[11];
    if (!strcmp(route, "/v1/messages") || !strcmp(route, "/v1/messages/count_tokens")) {
        if (m == EVHTTP_REQ_POST) {
            gen_handle(s, c, req, route[12] ? GEN_COUNT_TOKENS : GEN_MESSAGES);
            return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        send_anth_error(s, req, 405, "Method not allowed on %.200s; use POST.", route);
    } else if (models || model) {
        if (m == EVHTTP_REQ_GET) {
            handle_anth_models(s, req, model ? route + 11 : NULL);
            return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        send_anth_error(s, req, 405, "Method not allowed on %.200s; use GET.", route);
    } else {
        send_anth_error(s, req, 404, "Not found: %.200s (Anthropic routes here: /v1/messages, "
                                     "/v1/messages/count_tokens, /v1/models).", route);
    }
}

static void on_request(struct evhttp_request *req, void *arg) {
    srv_t *s = arg;
    s->n_requests++;
    srv_conn_t *c = conn_get(s, req);
    if (!c) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        send_errorf(s, req, 503, "server_error", "too_many_connections",
                    "The server has too many open connections%s; retry shortly.", "");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t decoded_len = 0;
    char *path = raw_path ? evhttp_uridecode(raw_path, 0, &decoded_len) : NULL;
    if (!path || strlen(path) != decoded_len) { /* an encoded NUL would cut the name short */
        free(path);
        send_errorf(s, req, 400, "invalid_request_error", "invalid_url", "Malformed request URL%s.", "");
        return;
    }
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/') path[--pl] = '\0';
    enum evhttp_cmd_type m = evhttp_request_get_command(req);

    if (m == EVHTTP_REQ_OPTIONS) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        const char *want = evhttp_find_header(evhttp_request_get_input_headers(req),
                                              "Access-Control-Request-Headers");
        evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        evhttp_add_header(h, "Access-Control-Allow-Headers",
                          want ? want : "Authorization, Content-Type");
        evhttp_add_header(h, "Access-Control-Max-Age", "86400");
        srv_add_common_headers(s, req);
        srv_count_status(s, 204);
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else if (!strcmp(path, "/anthropic") || !strncmp(path, "/anthropic/", 11)) {
        route_anthropic(s, c, req, path + 10, m);
    } else if (!strcmp(path, "/v1/messages") || !strncmp(path, "/v1/messages/", 13) ||
               (!strncmp(path, "/v1/models", 10) &&
                evhttp_find_header(evhttp_request_get_input_headers(req), "anthropic-version"))) {
        route_anthropic(s, c, req, path, m);
    } else if (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions") ||
               !strcmp(path, "/v1/responses")) {
        if (m != EVHTTP_REQ_POST) method_not_allowed(s, req, "POST", path);
        else gen_handle(s, c, req, path[4] == 'r' ? GEN_RESPONSES : path[5] == 'h' ? GEN_CHAT : GEN_COMPLETIONS);
    } else if (!strncmp(path, "/v1/responses/", 14) && path[14]) {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_DELETE) method_not_allowed(s, req, "GET, DELETE", path);
        else resp_handle_stored(s, req, path + 14, m == EVHTTP_REQ_DELETE, evhttp_uri_get_query(uri));
    } else if (!strcmp(path, "/v1/embeddings") || !strcmp(path, "/v1/rerank")) {
        if (m != EVHTTP_REQ_POST) method_not_allowed(s, req, "POST", path);
        else embed_handle(s, c, req, path[4] == 'r');
    } else if (!strcmp(path, "/v1/models")) {
        if (m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else handle_models(s, req, evhttp_uri_get_query(uri));
    } else if (!strncmp(path, "/v1/models/", 11) && path[11]) {
        if (m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else handle_model(s, req, path + 11);
    } else if (!strcmp(path, "/v1/user/info") || !strcmp(path, "/v1/user/usage") ||
               !strcmp(path, "/v1/user/prices")) {
        if (m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else handle_account(s, req, path + 9, evhttp_uri_get_query(uri)); /* "info", "usage", "prices" */
    } else if (!strcmp(path, "/v1/user/keys")) {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST) method_not_allowed(s, req, "GET, POST", path);
        else handle_keys(s, req, m == EVHTTP_REQ_GET ? "GET" : "POST", NULL);
    } else if (!strncmp(path, "/v1/user/keys/", 14) && path[14]) {
        if (m != EVHTTP_REQ_DELETE) method_not_allowed(s, req, "DELETE", path);
        else handle_keys(s, req, "DELETE", path + 14);
    } else if (!strcmp(path, "/v1/files") || !strcmp(path, "/v1/batches")) {
        const bool files = path[4] == 'f';
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST) method_not_allowed(s, req, "GET, POST", path);
        else handle_files(s, req, files ? "files" : "batches", "", m == EVHTTP_REQ_GET ? "GET" : "POST",
                          evhttp_uri_get_query(uri));
    } else if ((!strncmp(path, "/v1/files/", 10) && path[10]) || (!strncmp(path, "/v1/batches/", 12) && path[12])) {
        const bool files = path[4] == 'f';
        const char *rest = path + (files ? 10 : 12);
        const bool cancel = !files && strlen(rest) > 7 && !strcmp(rest + strlen(rest) - 7, "/cancel");
        if (files && m != EVHTTP_REQ_GET && m != EVHTTP_REQ_DELETE)
            method_not_allowed(s, req, "GET, DELETE", path);
        else if (!files && cancel && m != EVHTTP_REQ_POST) method_not_allowed(s, req, "POST", path);
        else if (!files && !cancel && m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else
            handle_files(s, req, files ? "files" : "batches", rest,
                         m == EVHTTP_REQ_GET ? "GET" : m == EVHTTP_REQ_POST ? "POST" : "DELETE",
                         evhttp_uri_get_query(uri));
    } else if (!s->cfg.no_console && console_path_file(path)) {
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) method_not_allowed(s, req, "GET, HEAD", path);
        else handle_console(s, req, console_path_file(path), m == EVHTTP_REQ_HEAD);
    } else if (!strcmp(path, "/health")) {
        if (m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else handle_health(s, req);
    } else if (!strcmp(path, "/metrics")) {
        if (m != EVHTTP_REQ_GET) method_not_allowed(s, req, "GET", path);
        else handle_metrics(s, req);
    } else {
        oai_error_t e;
        oai_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Unknown request URL: %s %.200s. Please check the URL for typos.", method_name(m), path);
        srv_send_error(s, req, &e);
    }
    free(path);
}

/* ---- lifecycle ---- */

static int run_internal(void *srv, const srv_internal_t *in) {
    return srv_run_internal(srv, in);
}

/* A loaded model that serves `endpoint`: text generation, or embeddings
 * (an encoder or a pooled decoder that is not a reranker). */
static bool has_model_for(void *srv, const char *endpoint, const char *id) {
    srv_model_t *m = srv_find_model(srv, id);
    if (!m) return false;
    if (strcmp(endpoint, "/v1/embeddings") != 0) return !srv_model_embeds(m);
    return srv_model_embeds(m) && model_hparams(m->model)->pooling != SL_POOLING_RANK;
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
    srv_t *s = arg;
    if (s->jobs) gen_poll_disconnects(s);
    if (s->ejobs) embed_poll_disconnects(s);
    /* the batch runner: a few times a second, with the room left under
     * its bound (interactive requests are never counted against it) */
    uint64_t now = sl_now_ns();
    if (s->cfg.hooks.batch_poll && now - s->batch_poll_ns >= 200000000ull) {
        s->batch_poll_ns = now;
        int room = s->cfg.batch_running - s->n_internal;
        const srv_batch_ops_t ops = {s, run_internal, has_model_for};
        s->cfg.hooks.batch_poll(s->cfg.hooks.ctx, room > 0 ? room : 0, &ops);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    srv_t *s = arg;
    sl_info("signal %d: shutting down", (int)sig);
    event_base_loopexit(s->base, NULL);
}

static int load_model(srv_t *s, srv_model_t *m, const srv_model_spec_t *spec, char *err, size_t errlen) {
    m->srv = s;
    m->id = sl_strdup(spec->id);
    if (!m->id) return sl_err(err, errlen, "out of memory");
    char e2[SL_ERR_MAX];
    m->model = model_load(spec->path, e2, sizeof e2);
    if (!m->model) return sl_err(err, errlen, "model %s: %s", spec->path, e2);
    const gguf_file_t *g = model_gguf(m->model);
    m->tok = tok_load(g, e2, sizeof e2);
    if (!m->tok) return sl_err(err, errlen, "model %s: tokenizer: %s", spec->path, e2);
    struct stat stt;
    m->created = stat(spec->path, &stt) == 0 ? (int64_t)stt.st_mtime : (int64_t)time(NULL);
    eng_opts_t eo = {0};
    eo.n_threads = s->cfg.n_threads;
    eo.n_ctx = s->cfg.n_ctx;
    eo.max_running = s->cfg.max_running;
    eo.max_queued = s->cfg.max_queued;
    eo.kv_mem = s->cfg.kv_mem;
    eo.kv = s->cfg.kv_type;
    eo.ckpt_interval = s->cfg.ckpt_interval;
    eo.spec = s->cfg.spec;
    eo.spec_max = s->cfg.spec_max;
    if (srv_model_embeds(m)) { /* embeddings / rerank: no chat template, stop ids, tools or grammars */
        m->eng = eng_new(m->model, &eo, on_engine_event, m, e2, sizeof e2);
        if (!m->eng) return sl_err(err, errlen, "engine: %s", e2);
        sl_info("model %s: %s (%s %s, %d outputs, context %d)", m->id, spec->path,
                model_hparams(m->model)->arch_name,
                model_hparams(m->model)->pooling == SL_POOLING_RANK ? "reranker" : "embeddings",
                model_embed_dim(m->model), eng_n_ctx(m->eng));
        return 0;
    }
    gguf_str_t src = {0};
    if (gguf_get_str(g, "tokenizer.chat_template", &src, NULL, 0) == 0 && src.len > 0) {
        m->tmpl = chat_tmpl_new(src.ptr, src.len, e2, sizeof e2);
        if (!m->tmpl) {
            /* no silent fallback to another format: completions still work,
             * chat requests say why they cannot */
            sl_warn("model %s: its chat template does not parse (%s); chat requests will fail",
                    spec->id, e2);
            m->tmpl_error = sl_strdup(e2);
            if (!m->tmpl_error) return sl_err(err, errlen, "out of memory");
        }
    } else {
        m->tmpl = chat_tmpl_new_chatml(e2, sizeof e2);
        if (!m->tmpl) return sl_err(err, errlen, "chat template: %s", e2);
    }
    int nv = tok_n_vocab(m->tok);
    for (int32_t id = 0; id < nv; id++) {
        if (!tok_is_eog(m->tok, id)) continue;
        int32_t *ne = realloc(m->eog, (m->n_eog + 1) * sizeof *ne);
        if (!ne) return sl_err(err, errlen, "out of memory");
        m->eog = ne;
        m->eog[m->n_eog++] = id;
    }
    m->fim.pre = tok_fim_pre(m->tok);
    m->fim.suf = tok_fim_suf(m->tok);
    m->fim.mid = tok_fim_mid(m->tok);
    m->fim.bos = tok_add_bos(m->tok) ? tok_bos(m->tok) : -1;
    if (fim_supported(&m->fim)) {
        m->fim_stop = malloc((m->n_eog + 3) * sizeof *m->fim_stop);
        if (!m->fim_stop) return sl_err(err, errlen, "out of memory");
        if (m->n_eog) memcpy(m->fim_stop, m->eog, m->n_eog * sizeof *m->eog);
        m->n_fim_stop = m->n_eog;
        int32_t marks[3] = {m->fim.pre, m->fim.suf, m->fim.mid};
        for (int k = 0; k < 3; k++) {
            bool have = false;
            for (size_t i = 0; i < m->n_fim_stop; i++) have |= m->fim_stop[i] == marks[k];
            if (!have) m->fim_stop[m->n_fim_stop++] = marks[k];
        }
    }
    m->tools = m->tmpl && chat_tmpl_uses_var(m->tmpl, "tools");
    tools_model_detect(m, src.len > 0 ? src.ptr : NULL, src.len);
    sl_buf_t b = {0};
    if (tok_bos(m->tok) >= 0) tok_token_to_piece(m->tok, tok_bos(m->tok), true, &b);
    m->bos_text = sl_buf_steal(&b);
    if (tok_eos(m->tok) >= 0) tok_token_to_piece(m->tok, tok_eos(m->tok), true, &b);
    m->eos_text = sl_buf_steal(&b);
    const int n_vocab_model = model_hparams(m->model)->n_vocab;
    const char *keep[16]; /* marker tokens the tool-call grammar must produce */
    tools_vocab_keep(m, keep, SL_ARRAY_LEN(keep));
    m->gvocab = srv_gram_vocab_new_keep(m->tok, n_vocab_model, keep, e2, sizeof e2);
    if (!m->gvocab) return sl_err(err, errlen, "model %s: grammar vocabulary: %s", spec->path, e2);
    /* a kept marker that is a control token renders as nothing in plain
     * output: structured output must not use it, so it gets a vocabulary
     * without it */
    bool kept_control = false;
    for (size_t k = 0; keep[k]; k++) {
        const int32_t kid = tok_find(m->tok, keep[k], strlen(keep[k]));
        kept_control |= kid >= 0 && tok_is_control(m->tok, kid);
    }
    if (kept_control && !(m->gvocab_plain = srv_gram_vocab_new(m->tok, n_vocab_model, e2, sizeof e2)))
        return sl_err(err, errlen, "model %s: grammar vocabulary: %s", spec->path, e2);
    eo.gram_vocab = m->gvocab;
    m->eng = eng_new(m->model, &eo, on_engine_event, m, e2, sizeof e2);
    if (!m->eng) return sl_err(err, errlen, "engine: %s", e2);
    sl_info("model %s: %s (vocab %d, context %d, %zu end-of-generation tokens%s%s%s%s%s)", m->id, spec->path,
            nv, eng_n_ctx(m->eng), m->n_eog, fim_supported(&m->fim) ? ", fill-in-the-middle" : "",
            m->tools ? ", tools" : "", m->tc_family != TC_FAMILY_NONE ? ", tool calls: " : "",
            m->tc_family != TC_FAMILY_NONE ? tc_family_name(m->tc_family) : "",
            m->tc_reasoning || m->tc_family == TC_FAMILY_HARMONY ? ", reasoning" : "");
    return 0;
}

srv_t *srv_new(const srv_config_t *cfg, const srv_model_spec_t *models, int n_models, char *err,
               size_t errlen) {
    static int threads_ready;
    if (!threads_ready) {
        if (evthread_use_pthreads() != 0) {
            sl_err(err, errlen, "libevent without pthreads support");
            return NULL;
        }
        threads_ready = 1;
    }
    signal(SIGPIPE, SIG_IGN);
    srv_t *s = calloc(1, sizeof *s);
    if (!s) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.max_body == 0) s->cfg.max_body = (size_t)8 << 20;
    if (s->cfg.max_header == 0) s->cfg.max_header = (size_t)16 << 10;
    if (s->cfg.max_conns <= 0) s->cfg.max_conns = 1024;
    if (s->cfg.timeout_s <= 0) s->cfg.timeout_s = 300;
    if (s->cfg.max_running <= 0) s->cfg.max_running = 16;
    if (s->cfg.max_queued <= 0) s->cfg.max_queued = 256;
    if (s->cfg.max_upload == 0) s->cfg.max_upload = ((size_t)64 << 20) + ((size_t)64 << 10);
    if (s->cfg.batch_running <= 0) s->cfg.batch_running = 2;
    pthread_mutex_init(&s->evq_mu, NULL);
    s->conn_cap = 1;
    while (s->conn_cap < (size_t)s->cfg.max_conns * 2 + 2) s->conn_cap <<= 1;
    s->conns = calloc(s->conn_cap, sizeof *s->conns);
    s->models = calloc((size_t)(n_models > 0 ? n_models : 1), sizeof *s->models);
    s->base = event_base_new();
    if (!s->conns || !s->models || !s->base) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed) seed ^= sl_now_ns();
        close(fd);
    }
    s->rng = seed | 1;
    if (n_models <= 0) {
        sl_err(err, errlen, "no model given (--model NAME=PATH.gguf)");
        goto fail;
    }
    if (n_models > SRV_MAX_MODELS) {
        sl_err(err, errlen, "%d models given; a server loads at most %d", n_models, SRV_MAX_MODELS);
        goto fail;
    }
    for (int i = 0; i < n_models; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(models[i].id, models[j].id)) {
                sl_err(err, errlen, "model id '%s' given twice", models[i].id);
                goto fail;
            }
        s->n_models = i + 1;
        if (load_model(s, &s->models[i], &models[i], err, errlen) != 0) goto fail;
    }
    if (!s->cfg.hooks.store_put && !(s->rstore = resp_store_new(RESP_STORE_ENTRIES, RESP_STORE_BYTES))) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    s->wake = event_new(s->base, -1, 0, on_wake, s);
    s->poll = event_new(s->base, -1, EV_PERSIST, on_poll, s);
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->http = evhttp_new(s->base);
    if (!s->wake || !s->poll || !s->sigint || !s->sigterm || !s->http) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    struct timeval poll_tv = {0, 50000};
    event_add(s->poll, &poll_tv);
    evsignal_add(s->sigint, NULL);
    evsignal_add(s->sigterm, NULL);
    /* libevent's own limit is a backstop at 4x ours, so that bodies a bit
     * over the limit get our JSON 413 rather than libevent's HTML one */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)SL_MIN(SL_MAX(s->cfg.max_body * 4, s->cfg.max_upload), (size_t)1 << 30));
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->cfg.max_header);
    evhttp_set_timeout(s->http, s->cfg.timeout_s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, on_request, s);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, s->cfg.host, (ev_uint16_t)s->cfg.port);
    if (!bs) {
        sl_err(err, errlen, "cannot listen on %s:%d: %s", s->cfg.host, s->cfg.port, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6) s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return s;
fail:
    srv_free(s);
    return NULL;
}

int srv_port(const srv_t *s) {
    return s->port;
}

int srv_run(srv_t *s) {
    /* "listening" on stdout is what scripts and tests wait for */
    printf("silica: listening on http://%s:%d\n", s->cfg.host, s->port);
    if (!s->cfg.no_console)
        printf("silica: web console on http://%s:%d/ (sign in with an API key)\n", s->cfg.host, s->port);
    fflush(stdout);
    event_base_dispatch(s->base);
    return 0;
}

void srv_stop(srv_t *s) {
    event_base_loopexit(s->base, NULL);
}

void srv_free(srv_t *s) {
    if (!s) return;
    /* engines first: every live sequence finishes (cancelled) and its FINISH
     * lands in the queue, drained below so jobs are released */
    for (int i = 0; i < s->n_models; i++) {
        eng_free(s->models[i].eng);
        s->models[i].eng = NULL;
    }
    if (s->wake) on_wake(-1, 0, s);
    if (s->http) evhttp_free(s->http);
    gen_free_all(s);
    embed_free_all(s);
    for (int i = 0; i < s->n_models; i++) {
        srv_model_t *m = &s->models[i];
        chat_tmpl_free(m->tmpl);
        free(m->tmpl_error);
        gram_vocab_free(m->gvocab);
        gram_vocab_free(m->gvocab_plain);
        tok_free(m->tok);
        model_free(m->model);
        free(m->eog);
        free(m->fim_stop);
        free(m->bos_text);
        free(m->eos_text);
        free(m->id);
    }
    free(s->models);
    if (s->conns)
        for (size_t i = 0; i < s->conn_cap; i++) free(s->conns[i]);
    free(s->conns);
    if (s->wake) event_free(s->wake);
    if (s->poll) event_free(s->poll);
    if (s->sigint) event_free(s->sigint);
    if (s->sigterm) event_free(s->sigterm);
    if (s->base) event_base_free(s->base);
    resp_store_free(s->rstore);
    free(s->evq);
    free(s->evq_spare);
    pthread_mutex_destroy(&s->evq_mu);
    free(s);
}
