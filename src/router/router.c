/*
 * router.c — the proxy of `silica route` (router.h): the listening evhttp
 * server, evhttp client connections to the nodes (one per request in
 * flight, kept alive in a pool per node between requests), health checks,
 * draining on a signal, its own /health and /metrics.
 *
 * A request's life (a job): read whole (bounded by max_body), keyed
 * (key.c), given an order of nodes to try (rendezvous order of the healthy
 * nodes for a key; least busy first without one), then sent to the first.
 * When the node's response headers arrive they are copied to the client
 * and the reply starts; each body chunk is passed on as it arrives
 * (evhttp's chunked callback), so SSE events are never held back. The
 * reply ends when the node's does.
 *
 * Failures: a node that refuses the connection (it never saw the request)
 * is marked down at once and the request goes to the next node of its
 * order; nothing has reached the client yet, so the retry is invisible to
 * it. A node that drops a new connection after taking the request is a 502
 * (not retried: a request that crashed one node must not crash the next);
 * a kept-alive connection that fails as it is reused is retried once on a
 * new connection to the same node. A timeout before the headers is a 504 (the node may
 * still be working: not retried elsewhere). A failure after the reply has
 * started can only cut the stream short. No healthy node: 503.
 *
 * Client gone: libevent does not watch a connection whose request is being
 * handled, so every 100 ms the live jobs' client sockets are peeked; a
 * closed one is freed, and its job closes the node's connection, which the
 * node sees as a disconnect and so cancels the generation.
 *
 * Invariants: a job's client request (creq) is valid while creq != NULL;
 * conn_lost() clears it. The node side (bcon, breq) is owned by the job
 * until the node's completion callback ran or the job freed the
 * connection; connections are freed from a zero-delay event, never inside
 * their own callbacks (libevent still uses them after a callback returns).
 */
#include "router/router.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* Kept-alive connections to each node, reused by later requests: no TCP
 * handshake per request, and no TIME_WAIT socket left per request (which at
 * a few hundred requests a second would exhaust the ephemeral ports). */
#define RT_IDLE_MAX 64
#define RT_MAX_MODELS 64

typedef struct rt_backend {
    rt_t *r;
    char *url;  /* "http://host:port", as given (no trailing slash) */
    char *host; /* for connections */
    int port;
    char hostport[300]; /* the Host header sent to it */
    uint64_t hash;      /* rt_hash(url): its identity for rendezvous */
    bool up;
    int inflight;
    uint64_t n_requests, n_failures, n_health_fail;
    struct evhttp_connection *hc; /* the health checks' keep-alive connection */
    bool hc_pending;
    int hc_streak; /* failed health checks in a row */
    /* the models the node serves, from its /health (rt_hash of each id);
     * n_models < 0 until known */
    uint64_t models[RT_MAX_MODELS];
    int n_models;
    struct evhttp_connection
        *idle[RT_IDLE_MAX]; /* finished, reusable; libevent reconnects a closed one */
    int n_idle;
} rt_backend_t;

typedef struct rt_job rt_job_t;
struct rt_job {
    rt_t *r;
    rt_job_t *prev, *next;
    struct evhttp_request *creq;    /* NULL once the client is gone or the reply ended */
    struct evhttp_connection *ccon; /* the client's connection */
    enum evhttp_cmd_type method;
    const char *body; /* the request body (in creq's input buffer) */
    size_t body_len;
    int order[RT_MAX_BACKENDS], n_order, next_try;
    int cur;                        /* the node tried now; -1 none */
    struct evhttp_connection *bcon; /* NULL when no node request is open */
    struct evhttp_request *breq;
    int berr;     /* evhttp_request_error from the error callback; -1 none */
    bool started; /* the reply to the client has started */
    bool reused;  /* bcon came from the node's idle pool */
    bool fresh;   /* the next try must open a new connection */
    bool sniff;   /* a POST /v1/responses answer: find its id */
    size_t head_len;
    char head[1024]; /* the answer's first bytes, while sniffing */
};

/* Stored responses live on the node that made them (unless the nodes
 * share a PostgreSQL store): a follow-up (previous_response_id) or a
 * GET / DELETE of one must go there, which is also where its prompt is
 * cached. The router learns each response's node from the answer's first
 * bytes and keeps it in a direct-mapped table: bounded memory, the oldest
 * entry of a slot overwritten. A forgotten id falls back to the usual
 * choice. */
#define RT_OWNER_SLOTS 65536
typedef struct {
    uint64_t h; /* rt_hash of the id; 0: empty */
    int node;
} rt_owner_t;

struct rt {
    rt_config_t cfg;
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint, *sigterm, *poll, *health, *reap, *drain;
    struct evhttp_bound_socket *bound;
    bool draining; /* a first signal came: no new connections, finishing the jobs */
    int n_writing; /* replies ended but not yet written out (a reply whose client vanishes stays
                      counted) */
    int port;
    rt_backend_t b[RT_MAX_BACKENDS];
    int n;
    rt_job_t *jobs;
    int n_jobs;
    unsigned rr; /* tie-break among equally busy nodes */
    /* connections to free from the reap event (see the invariants) */
    struct evhttp_connection **dead;
    size_t n_dead, cap_dead;
    uint64_t n_requests, n_retries, n_unavailable, n_client_aborts, n_node_errors;
    uint64_t n_by_kind[3];
    uint64_t n_pinned, n_spilled;
    rt_owner_t *owners; /* RT_OWNER_SLOTS */
};

static uint64_t owner_hash(const char *id, size_t n) {
    const uint64_t h = rt_hash(id, n);
    return h ? h : 1;
}

static void owner_put(rt_t *r, const char *id, size_t n, int node) {
    const uint64_t h = owner_hash(id, n);
    rt_owner_t *o = &r->owners[h & (RT_OWNER_SLOTS - 1)];
    o->h = h;
    o->node = node;
}

static int owner_get(const rt_t *r, const char *id, size_t n) {
    const uint64_t h = owner_hash(id, n);
    const rt_owner_t *o = &r->owners[h & (RT_OWNER_SLOTS - 1)];
    return o->h == h ? o->node : -1;
}

/* ---- small helpers ---- */

static void reap_cb(evutil_socket_t fd, short what, void *arg) {
    rt_t *r = arg;
    for (size_t i = 0; i < r->n_dead; i++)
        evhttp_connection_free(r->dead[i]);
    r->n_dead = 0;
}

/* Frees a node connection from the event loop, outside its callbacks. */
static void conn_retire(rt_t *r, struct evhttp_connection *c) {
    if (!c) return;
    if (r->n_dead == r->cap_dead) {
        size_t ncap = r->cap_dead ? r->cap_dead * 2 : 16;
        struct evhttp_connection **nd = realloc(r->dead, ncap * sizeof *nd);
        if (!nd) return; /* leaks one connection rather than freeing it under libevent */
        r->dead = nd;
        r->cap_dead = ncap;
    }
    r->dead[r->n_dead++] = c;
    const struct timeval zero = {0, 0};
    event_add(r->reap, &zero);
}

static bool hop_by_hop(const char *name) {
    static const char *const hop[] = {"Connection",
                                      "Keep-Alive",
                                      "Proxy-Authenticate",
                                      "Proxy-Authorization",
                                      "Proxy-Connection",
                                      "TE",
                                      "Trailer",
                                      "Transfer-Encoding",
                                      "Upgrade"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (!strcasecmp(name, hop[i])) return true;
    return false;
}

/* A header named in the message's Connection header is hop-by-hop too. */
static bool named_in_connection(const struct evkeyvalq *h, const char *name) {
    const char *c = evhttp_find_header(h, "Connection");
    if (!c) return false;
    const size_t n = strlen(name);
    for (const char *p = c; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - p) == n && !strncasecmp(p, name, n)) return true;
        p = e;
    }
    return false;
}

static void send_error(rt_t *r, struct evhttp_request *req, int status, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void send_error(rt_t *r, struct evhttp_request *req, int status, const char *code,
                       const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *v =
        json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type",
                  status < 500 ? "invalid_request_error" : "server_error", "param", "code", code);
    char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (status == 503) evhttp_add_header(h, "Retry-After", "1");
    struct evbuffer *out = evbuffer_new();
    if (out && body) evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, status, NULL, out);
    if (out) evbuffer_free(out);
    free(body);
}

static void send_text(struct evhttp_request *req, int status, const char *type, const char *body,
                      size_t len) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    struct evbuffer *out = evbuffer_new();
    if (out) evbuffer_add(out, body, len);
    evhttp_send_reply(req, status, NULL, out);
    if (out) evbuffer_free(out);
}

/* ---- jobs ---- */

/* Draining ends when the last job has ended and its reply is written out
 * (or, for a client that stopped reading, after a second's grace). */
static void drain_check(rt_t *r) {
    if (!r->draining || r->n_jobs > 0) return;
    const struct timeval grace = {1, 0};
    event_base_loopexit(r->base, r->n_writing > 0 ? &grace : NULL);
}

static void on_reply_written(struct evhttp_request *req, void *arg) {
    rt_t *r = arg;
    r->n_writing--;
    drain_check(r);
}

/* Counts an ending reply until libevent has written it. */
static void track_reply(rt_t *r, struct evhttp_request *creq) {
    r->n_writing++;
    evhttp_request_set_on_complete_cb(creq, on_reply_written, r);
}

static void job_unlink_free(rt_job_t *j) {
    rt_t *r = j->r;
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    r->n_jobs--;
    free(j);
    drain_check(r);
}

/* The node side is over (completed, failed or abandoned). A request still
 * open is cancelled without callbacks, which closes its socket: the node
 * sees the disconnect and cancels its work. */
static void job_node_release(rt_job_t *j) {
    if (j->cur >= 0) j->r->b[j->cur].inflight--;
    j->cur = -1;
    if (j->breq) {
        evhttp_request_set_error_cb(j->breq, NULL);
        evhttp_request_set_chunked_cb(j->breq, NULL);
        evhttp_request_set_header_cb(j->breq, NULL);
        evhttp_cancel_request(j->breq);
    }
    conn_retire(j->r, j->bcon);
    j->bcon = NULL;
    j->breq = NULL;
}

/* Stops watching the client connection for this job. */
static void job_client_detach(rt_job_t *j) {
    if (j->ccon) evhttp_connection_set_closecb(j->ccon, NULL, NULL);
    j->ccon = NULL;
    j->creq = NULL;
    j->body = NULL;
    j->body_len = 0;
}

static void job_finish(rt_job_t *j) {
    job_node_release(j); /* also when the connection went back to the pool: the in-flight count */
    job_client_detach(j);
    job_unlink_free(j);
}

/* Ends the client's reply (streamed) and the job. */
static void job_end_reply(rt_job_t *j) {
    struct evhttp_request *creq = j->creq;
    job_client_detach(j);
    if (creq) {
        track_reply(j->r, creq);
        evhttp_send_reply_end(creq);
    }
    job_finish(j);
}

/* Answers the client with an error (nothing sent yet) and ends the job. */
#define job_fail(j, ...)                                                                           \
    do {                                                                                           \
        struct evhttp_request *creq_ = (j)->creq;                                                  \
        job_client_detach(j);                                                                      \
        if (creq_) {                                                                               \
            track_reply((j)->r, creq_);                                                            \
            send_error((j)->r, creq_, __VA_ARGS__);                                                \
        }                                                                                          \
        job_finish(j);                                                                             \
    } while (0)

/* The client's connection closed (or was found gone and freed). */
static void on_client_closed(struct evhttp_connection *evcon, void *arg) {
    rt_job_t *j = arg;
    rt_t *r = j->r;
    r->n_client_aborts++;
    struct evhttp_request *creq = j->creq;
    /* a request detached from its dying connection is ours to end (which
     * frees it); one still on it is freed with the connection */
    if (creq && !evhttp_request_get_connection(creq)) evhttp_send_reply_end(creq);
    j->ccon = NULL; /* closing: its close callback needs no reset */
    j->creq = NULL;
    /* abandoning the node's connection closes its socket: the node cancels */
    job_finish(j);
}

static bool client_gone(struct evhttp_connection *c) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
    const evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0) return false;
    char ch;
    const ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg) {
    rt_t *r = arg;
    for (rt_job_t *j = r->jobs, *next; j; j = next) {
        next = j->next;
        /* freeing the connection runs on_client_closed, which frees j */
        if (j->ccon && client_gone(j->ccon)) evhttp_connection_free(j->ccon);
    }
}

static void job_dispatch(rt_job_t *j);

/* Node response headers: start the client's reply with them. */
static int on_node_headers(struct evhttp_request *breq, void *arg) {
    rt_job_t *j = arg;
    if (!j->creq) return -1;
    struct evkeyvalq *in = evhttp_request_get_input_headers(breq);
    struct evkeyvalq *out = evhttp_request_get_output_headers(j->creq);
    for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next)
        if (!hop_by_hop(h->key) && !named_in_connection(in, h->key))
            evhttp_add_header(out, h->key, h->value);
    if (!j->r->cfg.no_backend_header)
        evhttp_add_header(out, "X-Silica-Backend", j->r->b[j->cur].url);
    j->started = true;
    const int code = evhttp_request_get_response_code(breq);
    j->sniff = j->sniff && code == 200;
    const char *reason = evhttp_request_get_response_code_line(breq);
    evhttp_send_reply_start(j->creq, code, reason && *reason ? reason : NULL);
    return 0;
}

static void on_node_chunk(struct evhttp_request *breq, void *arg) {
    rt_job_t *j = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(breq);
    if (j->sniff) {
        const ev_ssize_t got =
            evbuffer_copyout(in, j->head + j->head_len, sizeof j->head - j->head_len);
        if (got > 0) j->head_len += (size_t)got;
        char id[256];
        const size_t n = rt_response_id_in(j->head, j->head_len, id, sizeof id);
        if (n) owner_put(j->r, id, n, j->cur);
        if (n || j->head_len == sizeof j->head) j->sniff = false;
    }
    if (j->creq && j->started)
        evhttp_send_reply_chunk(j->creq, in);
    else
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_node_error(enum evhttp_request_error err, void *arg) {
    rt_job_t *j = arg;
    j->berr = (int)err;
}

static void mark_down(rt_t *r, int i, const char *why) {
    rt_backend_t *b = &r->b[i];
    if (b->up) sl_warn("router: backend %s is down (%s)", b->url, why);
    b->up = false;
    while (b->n_idle > 0)
        conn_retire(r, b->idle[--b->n_idle]);
}

/* The node's request is over: breq NULL after an error (j->berr says
 * which), or a request with response code 0 when the connection failed. */
static void on_node_done(struct evhttp_request *breq, void *arg) {
    rt_job_t *j = arg;
    rt_t *r = j->r;
    const bool ok = breq && evhttp_request_get_response_code(breq) != 0 && j->started;
    /* libevent frees breq after this returns; the connection goes from the reap event */
    j->breq = NULL;
    const int tried = j->cur;
    if (ok) {
        rt_backend_t *b = &r->b[tried];
        if (b->up &&
            b->n_idle < RT_IDLE_MAX) { /* back to the pool (closed by libevent if the node asked) */
            b->idle[b->n_idle++] = j->bcon;
            j->bcon = NULL;
        }
        job_end_reply(j);
        return;
    }
    r->b[tried].n_failures++;
    r->n_node_errors++;
    if (j->started) { /* cut short mid-body: the client sees the stream end early */
        sl_warn("router: backend %s failed mid-response", r->b[tried].url);
        job_end_reply(j);
        return;
    }
    job_node_release(j);
    if (!j->creq) {
        job_finish(j);
        return;
    }
    if (j->berr == EVREQ_HTTP_TIMEOUT) {
        job_fail(j, 504, "backend_timeout", "The backend %s did not answer within %d s.",
                 r->b[tried].url, r->cfg.timeout_s);
        return;
    }
    if (j->reused) {
        /* a kept-alive connection the node closed as we sent (its idle
         * timeout): no sign of a dead node; the same node, a new connection */
        j->fresh = true;
        j->next_try--;
        r->n_retries++;
        job_dispatch(j);
        return;
    }
    if (!breq) {
        /* a new connection the node dropped after taking the request: it
         * may have crashed on it, and the same request would take the next
         * node down too; the client gets a 502, the health checks judge
         * the node */
        job_fail(j, 502, "backend_closed", "The backend %s closed the connection before answering.",
                 r->b[tried].url);
        return;
    }
    /* the connection failed (refused, unreachable): the node never saw the
     * request; it is down now, and the next node takes it */
    mark_down(r, tried, "connection failed");
    job_dispatch(j);
}

/* Sends the job to the next healthy node of its order, or answers 503. */
static void job_dispatch(rt_job_t *j) {
    rt_t *r = j->r;
    int i = -1;
    while (j->next_try < j->n_order) {
        const int c = j->order[j->next_try++];
        if (r->b[c].up) {
            i = c;
            break;
        }
    }
    if (i < 0) {
        r->n_unavailable++;
        job_fail(j, 503, "no_backend_available",
                 "No backend is available to serve this request (%d configured, none healthy); "
                 "retry shortly.",
                 r->n);
        return;
    }
    if (j->next_try > 1) r->n_retries++;
    rt_backend_t *b = &r->b[i];
    j->berr = -1;
    j->reused = !j->fresh && b->n_idle > 0;
    j->fresh = false;
    if (j->reused) {
        j->bcon = b->idle[--b->n_idle];
    } else {
        j->bcon = evhttp_connection_base_new(r->base, NULL, b->host, (ev_uint16_t)b->port);
        if (j->bcon) {
            evhttp_connection_set_timeout(j->bcon, r->cfg.timeout_s);
            evhttp_connection_set_retries(j->bcon, 0);
        }
    }
    j->breq = j->bcon ? evhttp_request_new(on_node_done, j) : NULL;
    if (!j->breq) {
        if (j->bcon) evhttp_connection_free(j->bcon);
        j->bcon = NULL;
        job_fail(j, 500, "out_of_memory", "The router is out of memory.");
        return;
    }
    j->cur = i;
    b->inflight++;
    b->n_requests++;
    evhttp_request_set_header_cb(j->breq, on_node_headers);
    evhttp_request_set_chunked_cb(j->breq, on_node_chunk);
    evhttp_request_set_error_cb(j->breq, on_node_error);
    /* headers: all but hop-by-hop ones, Host and the framing (ours) */
    struct evkeyvalq *in = evhttp_request_get_input_headers(j->creq);
    struct evkeyvalq *out = evhttp_request_get_output_headers(j->breq);
    const char *xff = NULL;
    for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next) {
        if (hop_by_hop(h->key) || named_in_connection(in, h->key) || !strcasecmp(h->key, "Host") ||
            !strcasecmp(h->key, "Content-Length") || !strcasecmp(h->key, "Expect"))
            continue;
        if (!strcasecmp(h->key, "X-Forwarded-For")) {
            xff = h->value;
            continue;
        }
        evhttp_add_header(out, h->key, h->value);
    }
    evhttp_add_header(out, "Host", b->hostport);
    char *peer = NULL;
    ev_uint16_t peer_port = 0;
    evhttp_connection_get_peer(j->ccon ? j->ccon : evhttp_request_get_connection(j->creq), &peer,
                               &peer_port);
    char fwd[1024];
    if (xff && *xff)
        snprintf(fwd, sizeof fwd, "%s, %s", xff, peer ? peer : "unknown");
    else
        snprintf(fwd, sizeof fwd, "%s", peer ? peer : "unknown");
    evhttp_add_header(out, "X-Forwarded-For", fwd);
    evhttp_add_header(out, "X-Forwarded-Proto", "http");
    const char *host_in = evhttp_find_header(in, "Host");
    if (host_in) evhttp_add_header(out, "X-Forwarded-Host", host_in);
    if (j->body_len || j->method == EVHTTP_REQ_POST || j->method == EVHTTP_REQ_PUT ||
        j->method == EVHTTP_REQ_PATCH) {
        char len[24];
        snprintf(len, sizeof len, "%zu", j->body_len);
        evhttp_add_header(out, "Content-Length", len);
        if (j->body_len)
            evbuffer_add(evhttp_request_get_output_buffer(j->breq), j->body, j->body_len);
    }
    /* the URI exactly as the client sent it: path and query */
    /* a connection refused at once runs on_node_done inside this call,
     * which may retry or end the job: j is not touched after it */
    if (evhttp_make_request(j->bcon, j->breq, j->method, evhttp_request_get_uri(j->creq)) != 0) {
        /* out of memory in libevent: the request is lost to us (freed or
         * leaked by it), the connection is ours */
        j->breq = NULL;
        job_node_release(j);
        mark_down(r, i, "connect failed");
        job_dispatch(j);
    }
}

/* ---- health checks ---- */

/* The models a node's /health lists ({"models": ["id", ...]}); a body
 * without the list leaves them unknown (every model may go there). */
static void learn_models(rt_backend_t *b, struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    json_error_t jerr;
    json_t *h = body && len <= ((size_t)1 << 20) ? json_loadb(body, len, 0, &jerr) : NULL;
    const json_t *list = json_object_get(h, "models");
    b->n_models = -1;
    if (json_is_array(list) && json_array_size(list) <= RT_MAX_MODELS) {
        b->n_models = 0;
        size_t i;
        const json_t *m;
        json_array_foreach(list, i, m) {
            if (json_is_string(m))
                b->models[b->n_models++] = rt_hash(json_string_value(m), json_string_length(m));
        }
    }
    json_decref(h);
}

static void on_health_done(struct evhttp_request *req, void *arg) {
    rt_backend_t *b = arg;
    b->hc_pending = false;
    const int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 200) {
        if (!b->up) sl_info("router: backend %s is up", b->url);
        b->up = true;
        b->hc_streak = 0;
        learn_models(b, req);
        return;
    }
    b->n_health_fail++;
    b->hc_streak++;
    /* a refused (or unconnectable) node is down now; a slow or unhappy one
     * after cfg.health_fails checks in a row, so that one late answer from
     * a busy machine does not send its keys elsewhere */
    const bool refused = req != NULL && code == 0;
    if (!refused && b->hc_streak < b->r->cfg.health_fails) return;
    char why[64];
    snprintf(why, sizeof why,
             code      ? "health check: HTTP %d"
             : refused ? "health check: no connection"
                       : "health check: no answer",
             code);
    mark_down(b->r, (int)(b - b->r->b), why);
}

static void health_cb(evutil_socket_t fd, short what, void *arg) {
    rt_t *r = arg;
    for (int i = 0; i < r->n; i++) {
        rt_backend_t *b = &r->b[i];
        if (b->hc_pending) continue;
        if (!b->hc) {
            b->hc = evhttp_connection_base_new(r->base, NULL, b->host, (ev_uint16_t)b->port);
            if (!b->hc) continue;
            struct timeval tv = {
                (time_t)r->cfg.health_timeout_s,
                (suseconds_t)((r->cfg.health_timeout_s - (double)(time_t)r->cfg.health_timeout_s) *
                              1e6)};
            evhttp_connection_set_timeout_tv(b->hc, &tv);
            evhttp_connection_set_retries(b->hc, 0);
        }
        struct evhttp_request *req = evhttp_request_new(on_health_done, b);
        if (!req) continue;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", b->hostport);
        b->hc_pending = true;
        if (evhttp_make_request(b->hc, req, EVHTTP_REQ_GET, "/health") != 0) b->hc_pending = false;
    }
}

/* ---- the router's own routes ---- */

static void handle_health(rt_t *r, struct evhttp_request *req) {
    json_t *list = json_array();
    int up = 0;
    for (int i = 0; i < r->n; i++) {
        up += r->b[i].up;
        json_t *e = json_pack("{s:s, s:b, s:i}", "url", r->b[i].url, "up", r->b[i].up, "inflight",
                              r->b[i].inflight);
        /* how many models its /health listed; null until known */
        if (e)
            json_object_set_new(
                e, "models", r->b[i].n_models >= 0 ? json_integer(r->b[i].n_models) : json_null());
        json_array_append_new(list, e);
    }
    json_t *v = json_pack("{s:s, s:i, s:o}", "status",
                          r->draining ? "draining"
                          : up        ? "ok"
                                      : "unavailable",
                          "backends_up", up, "backends", list);
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) {
        send_error(r, req, 500, "out_of_memory", "The router is out of memory.");
        return;
    }
    send_text(req, up && !r->draining ? 200 : 503, "application/json", s, strlen(s));
    free(s);
}

static void handle_metrics(rt_t *r, struct evhttp_request *req) {
    sl_buf_t m = {0};
    sl_buf_printf(
        &m, "# TYPE silica_router_requests_total counter\nsilica_router_requests_total %llu\n",
        (unsigned long long)r->n_requests);
    sl_buf_printf(&m, "# HELP silica_router_backend_requests_total requests sent to each backend "
                      "(retries included)\n");
    for (int i = 0; i < r->n; i++)
        sl_buf_printf(&m, "silica_router_backend_requests_total{backend=\"%s\"} %llu\n",
                      r->b[i].url, (unsigned long long)r->b[i].n_requests);
    sl_buf_printf(&m, "# HELP silica_router_backend_up 1 when the backend is healthy\n");
    for (int i = 0; i < r->n; i++)
        sl_buf_printf(&m, "silica_router_backend_up{backend=\"%s\"} %d\n", r->b[i].url,
                      r->b[i].up ? 1 : 0);
    for (int i = 0; i < r->n; i++)
        sl_buf_printf(&m, "silica_router_backend_inflight{backend=\"%s\"} %d\n", r->b[i].url,
                      r->b[i].inflight);
    for (int i = 0; i < r->n; i++)
        sl_buf_printf(&m, "silica_router_backend_failures_total{backend=\"%s\"} %llu\n",
                      r->b[i].url, (unsigned long long)r->b[i].n_failures);
    for (int i = 0; i < r->n; i++)
        sl_buf_printf(&m, "silica_router_backend_health_failures_total{backend=\"%s\"} %llu\n",
                      r->b[i].url, (unsigned long long)r->b[i].n_health_fail);
    sl_buf_printf(
        &m,
        "# HELP silica_router_retries_total requests sent on to another backend after one failed\n"
        "silica_router_retries_total %llu\n",
        (unsigned long long)r->n_retries);
    sl_buf_printf(&m,
                  "silica_router_unavailable_total %llu\nsilica_router_client_aborts_total %llu\n",
                  (unsigned long long)r->n_unavailable, (unsigned long long)r->n_client_aborts);
    static const char *const kinds[3] = {"none", "prompt_cache_key", "prefix"};
    for (int k = 0; k < 3; k++)
        sl_buf_printf(&m, "silica_router_requests_by_key_total{key=\"%s\"} %llu\n", kinds[k],
                      (unsigned long long)r->n_by_kind[k]);
    sl_buf_printf(
        &m,
        "# HELP silica_router_pinned_total requests sent to the node holding the stored response "
        "they refer to\nsilica_router_pinned_total %llu\n",
        (unsigned long long)r->n_pinned);
    sl_buf_printf(
        &m,
        "# HELP silica_router_spilled_total requests passed from a busy affinity node to the next\n"
        "silica_router_spilled_total %llu\n",
        (unsigned long long)r->n_spilled);
    sl_buf_printf(&m, "silica_router_active_requests %d\n", r->n_jobs);
    if (!m.data) {
        send_error(r, req, 500, "out_of_memory", "The router is out of memory.");
        return;
    }
    send_text(req, 200, "text/plain; version=0.0.4", m.data, m.len);
    sl_buf_free(&m);
}

/* ---- requests ---- */

/* The order of nodes to try: by rendezvous weight for a key, passing over
 * an overloaded first choice (cfg.spill); least busy first without one. */
/* Whether node b serves the model of hash mh (unknown lists: maybe). */
static bool serves(const rt_backend_t *b, uint64_t mh) {
    if (b->n_models < 0) return true;
    for (int i = 0; i < b->n_models; i++)
        if (b->models[i] == mh) return true;
    return false;
}

/* Keeps in the order only the nodes that serve the request's model, when
 * any does; otherwise leaves it whole (a node answers its own 404). */
static void keep_serving(rt_t *r, rt_job_t *j, const bool *elig, bool any) {
    if (!any) return;
    int k = 0;
    for (int i = 0; i < j->n_order; i++)
        if (elig[j->order[i]]) j->order[k++] = j->order[i];
    j->n_order = k;
}

static void plan_order(rt_t *r, rt_job_t *j, rt_key_kind_t kind, const sl_buf_t *key, int pin,
                       const bool *elig);

/* The nodes to try, in order (plan_order), limited to those serving the
 * request's model (heterogeneous nodes: each node's /health lists its
 * models). */
static void plan(rt_t *r, rt_job_t *j, rt_key_kind_t kind, const sl_buf_t *key, int pin,
                 const char *model) {
    bool elig[RT_MAX_BACKENDS], any = false;
    const uint64_t mh = model && *model ? rt_hash(model, strlen(model)) : 0;
    for (int i = 0; i < r->n; i++) {
        elig[i] = !mh || serves(&r->b[i], mh);
        any |= elig[i];
    }
    if (!any)
        for (int i = 0; i < r->n; i++)
            elig[i] = true;
    plan_order(r, j, kind, key, pin, elig);
    keep_serving(r, j, elig, any);
}

static void plan_order(rt_t *r, rt_job_t *j, rt_key_kind_t kind, const sl_buf_t *key, int pin,
                       const bool *elig) {
    j->n_order = r->n;
    if (pin >= 0) { /* the node holding the response referred to, then the rest */
        j->order[0] = pin;
        for (int i = 0, k = 1; i < r->n; i++)
            if (i != pin) j->order[k++] = i;
        return;
    }
    if (kind != RT_KEY_NONE) {
        uint64_t hashes[RT_MAX_BACKENDS];
        for (int i = 0; i < r->n; i++)
            hashes[i] = r->b[i].hash;
        rt_rendezvous_order(rt_hash(key->data, key->len), hashes, r->n, j->order);
        if (r->cfg.spill < 0) return;
        int least = -1;
        for (int i = 0; i < r->n; i++)
            if (r->b[i].up && elig[i] && (least < 0 || r->b[i].inflight < least))
                least = r->b[i].inflight;
        /* the first healthy node of the order within the spill margin goes
         * first (the least busy one always is, so one is found); the nodes
         * it passed over stay next, in order, for retries */
        for (int k = 0; k < j->n_order; k++) {
            const rt_backend_t *b = &r->b[j->order[k]];
            if (!b->up || !elig[j->order[k]] || b->inflight > least + r->cfg.spill) continue;
            bool passed_up = false;
            for (int p = 0; p < k; p++)
                passed_up |= r->b[j->order[p]].up && elig[j->order[p]];
            r->n_spilled += passed_up;
            const int c = j->order[k];
            memmove(&j->order[1], &j->order[0], (size_t)k * sizeof j->order[0]);
            j->order[0] = c;
            break;
        }
        return;
    }
    const unsigned start = r->rr++;
    for (int k = 0; k < r->n; k++)
        j->order[k] = (int)((start + (unsigned)k) % (unsigned)r->n);
    for (int a = 1; a < r->n; a++) { /* stable by in-flight count */
        const int o = j->order[a];
        int c = a;
        while (c > 0 && r->b[j->order[c - 1]].inflight > r->b[o].inflight) {
            j->order[c] = j->order[c - 1];
            c--;
        }
        j->order[c] = o;
    }
}

static void on_request(struct evhttp_request *req, void *arg) {
    rt_t *r = arg;
    r->n_requests++;
    const enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path) path = "/";
    if (method == EVHTTP_REQ_GET && !strcmp(path, "/health")) {
        handle_health(r, req);
        return;
    }
    if (method == EVHTTP_REQ_GET && !strcmp(path, "/metrics")) {
        handle_metrics(r, req);
        return;
    }
    if (r->draining) { /* a kept-alive connection's next request: elsewhere, please */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        send_error(r, req, 503, "router_draining",
                   "This router is shutting down; retry the request.");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const size_t len = evbuffer_get_length(in);
    if (len > r->cfg.max_body) {
        send_error(r, req, 413, "request_too_large",
                   "The request body is %zu bytes; the limit is %zu bytes.", len, r->cfg.max_body);
        return;
    }
    struct evhttp_connection *ccon = evhttp_request_get_connection(req);
    if (!ccon) {
        evhttp_send_reply(req, 500, NULL, NULL);
        return;
    }
    rt_job_t *j = calloc(1, sizeof *j);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    if (!j || (len && !body)) {
        free(j);
        send_error(r, req, 500, "out_of_memory", "The router is out of memory.");
        return;
    }
    j->r = r;
    j->creq = req;
    j->ccon = ccon;
    j->method = method;
    j->body = body;
    j->body_len = len;
    j->cur = -1;
    j->next = r->jobs;
    if (r->jobs) r->jobs->prev = j;
    r->jobs = j;
    r->n_jobs++;
    evhttp_connection_set_closecb(ccon, on_client_closed, j);
    sl_buf_t key = {0};
    const rt_key_kind_t kind = method == EVHTTP_REQ_POST
                                   ? rt_affinity_key(path, body, len, r->cfg.key_bytes, &key)
                                   : RT_KEY_NONE;
    r->n_by_kind[kind]++;
    char ref[256];
    const size_t ref_len = rt_response_ref(path, body, len, ref, sizeof ref);
    const int pin = ref_len ? owner_get(r, ref, ref_len) : -1;
    r->n_pinned += pin >= 0;
    j->sniff = method == EVHTTP_REQ_POST && !strcmp(path, "/v1/responses");
    char model[256] = "";
    if (kind != RT_KEY_NONE) /* the key starts with the model and a NUL */
        snprintf(model, sizeof model, "%s", key.data);
    else if (method == EVHTTP_REQ_POST)
        rt_body_model(body, len, model, sizeof model);
    plan(r, j, kind, &key, pin, model);
    sl_buf_free(&key);
    job_dispatch(j);
}

/* ---- lifecycle ---- */

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
    rt_t *r = arg;
    sl_warn("router: %d requests still in flight after %.0f s: closing them", r->n_jobs,
            r->cfg.drain_s);
    event_base_loopexit(r->base, NULL);
}

/* The first SIGINT/SIGTERM drains: the listening socket closes (a balancer
 * in front sees refused connections, /health says 503), requests in flight
 * run to their end for up to cfg.drain_s, then the loop exits. A second
 * signal exits at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    rt_t *r = arg;
    if (r->draining || r->n_jobs == 0 || r->cfg.drain_s <= 0) {
        sl_info("router: signal %d: shutting down", (int)sig);
        event_base_loopexit(r->base, NULL);
        return;
    }
    r->draining = true;
    if (r->bound) evhttp_del_accept_socket(r->http, r->bound);
    r->bound = NULL;
    sl_info("router: signal %d: draining %d requests in flight (up to %.0f s; again to stop now)",
            (int)sig, r->n_jobs, r->cfg.drain_s);
    const struct timeval tv = {
        (time_t)r->cfg.drain_s,
        (suseconds_t)((r->cfg.drain_s - (double)(time_t)r->cfg.drain_s) * 1e6)};
    event_add(r->drain, &tv);
}

/* "http://HOST:PORT" (an optional trailing "/"); IPv6 hosts in brackets. */
static int parse_backend(rt_backend_t *b, const char *url, char *err, size_t errlen) {
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const int port = u ? evhttp_uri_get_port(u) : -1;
    int rc = 0;
    if (!u || !scheme || strcasecmp(scheme, "http") != 0 || !host || !*host)
        rc = sl_err(err, errlen, "backend '%s': expected http://HOST:PORT", url);
    else if (path && *path && strcmp(path, "/") != 0)
        rc = sl_err(err, errlen, "backend '%s': no path expected (requests keep their own)", url);
    else if (evhttp_uri_get_query(u) || evhttp_uri_get_userinfo(u) || evhttp_uri_get_fragment(u))
        rc = sl_err(err, errlen, "backend '%s': expected http://HOST:PORT only", url);
    if (rc == 0) {
        b->port = port > 0 ? port : 80;
        /* libevent keeps an IPv6 literal's brackets; connecting wants the address */
        const size_t hl = strlen(host);
        b->host = host[0] == '[' && hl >= 2 && host[hl - 1] == ']' ? sl_strndup(host + 1, hl - 2)
                                                                   : sl_strdup(host);
        const bool v6 = b->host && strchr(b->host, ':') != NULL;
        snprintf(b->hostport, sizeof b->hostport, v6 ? "[%s]:%d" : "%s:%d", b->host ? b->host : "",
                 b->port);
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            n--;
        b->url = sl_strndup(url, n);
        if (!b->host || !b->url)
            rc = sl_err(err, errlen, "out of memory");
        else
            b->hash = rt_hash(b->url, strlen(b->url));
        b->up = true; /* until a connection or a health check says otherwise */
        b->n_models = -1;
    }
    if (u) evhttp_uri_free(u);
    return rc;
}

static void log_libevent(int severity, const char *msg) {
    /* connection failures are reported by the router itself */
    if (severity >= EVENT_LOG_ERR) sl_warn("libevent: %s", msg);
}

rt_t *rt_new(const rt_config_t *cfg, char *err, size_t errlen) {
    signal(SIGPIPE, SIG_IGN);
    event_set_log_callback(log_libevent);
    rt_t *r = calloc(1, sizeof *r);
    if (!r) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    if (!r->cfg.host) r->cfg.host = "127.0.0.1";
    if (r->cfg.max_body == 0) r->cfg.max_body = (size_t)8 << 20;
    if (r->cfg.key_bytes == 0) r->cfg.key_bytes = 1024;
    if (r->cfg.timeout_s <= 0) r->cfg.timeout_s = 300;
    if (r->cfg.health_interval_s <= 0) r->cfg.health_interval_s = 2;
    if (r->cfg.health_timeout_s <= 0) r->cfg.health_timeout_s = 2;
    if (r->cfg.spill == 0) r->cfg.spill = 16;
    if (r->cfg.drain_s == 0) r->cfg.drain_s = 30;
    if (r->cfg.health_fails <= 0) r->cfg.health_fails = 2;
    if (cfg->n_backends <= 0 || cfg->n_backends > RT_MAX_BACKENDS) {
        sl_err(err, errlen, "give 1 to %d backends (--backend http://HOST:PORT)", RT_MAX_BACKENDS);
        goto fail;
    }
    for (int i = 0; i < cfg->n_backends; i++) {
        r->n = i + 1;
        r->b[i].r = r;
        if (parse_backend(&r->b[i], cfg->backends[i], err, errlen) != 0) goto fail;
        for (int k = 0; k < i; k++)
            if (!strcmp(r->b[k].url, r->b[i].url)) {
                sl_err(err, errlen, "backend %s given twice", r->b[i].url);
                goto fail;
            }
    }
    r->owners = calloc(RT_OWNER_SLOTS, sizeof *r->owners);
    r->base = event_base_new();
    if (!r->base || !r->owners) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    r->http = evhttp_new(r->base);
    r->sigint = evsignal_new(r->base, SIGINT, on_signal, r);
    r->sigterm = evsignal_new(r->base, SIGTERM, on_signal, r);
    r->poll = event_new(r->base, -1, EV_PERSIST, poll_cb, r);
    r->health = event_new(r->base, -1, EV_PERSIST, health_cb, r);
    r->reap = evtimer_new(r->base, reap_cb, r);
    r->drain = evtimer_new(r->base, on_drain_timeout, r);
    if (!r->http || !r->sigint || !r->sigterm || !r->poll || !r->health || !r->reap || !r->drain) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    evsignal_add(r->sigint, NULL);
    evsignal_add(r->sigterm, NULL);
    const struct timeval poll_tv = {0, 100000};
    event_add(r->poll, &poll_tv);
    const struct timeval htv = {
        (time_t)r->cfg.health_interval_s,
        (suseconds_t)((r->cfg.health_interval_s - (double)(time_t)r->cfg.health_interval_s) * 1e6)};
    event_add(r->health, &htv);
    /* libevent's own limit is a backstop: bodies a bit over ours get our JSON 413 */
    evhttp_set_max_body_size(r->http, (ev_ssize_t)SL_MIN(r->cfg.max_body * 4, (size_t)1 << 30));
    evhttp_set_timeout(r->http, r->cfg.timeout_s);
    /* as `serve` (the nodes refuse more anyway): libevent's default is no limit */
    evhttp_set_max_headers_size(r->http, 16 << 10);
    evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(r->http, on_request, r);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(r->http, r->cfg.host, (ev_uint16_t)r->cfg.port);
    r->bound = bs;
    if (!bs) {
        sl_err(err, errlen, "cannot listen on %s:%d: %s", r->cfg.host, r->cfg.port,
               strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            r->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            r->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return r;
fail:
    rt_free(r);
    return NULL;
}

int rt_port(const rt_t *r) {
    return r->port;
}

int rt_run(rt_t *r) {
    const bool v6 = strchr(r->cfg.host, ':') != NULL;
    printf("silica: listening on http://%s%s%s:%d (router, %d backends)\n", v6 ? "[" : "",
           r->cfg.host, v6 ? "]" : "", r->port, r->n);
    fflush(stdout);
    health_cb(-1, 0, r); /* a first check now, not one interval later */
    event_base_dispatch(r->base);
    return 0;
}

void rt_stop(rt_t *r) {
    event_base_loopexit(r->base, NULL);
}

void rt_free(rt_t *r) {
    if (!r) return;
    /* node connections first (their requests go without callbacks), then
     * the server, which frees the client connections and their requests */
    for (rt_job_t *j = r->jobs; j; j = j->next) {
        if (j->bcon) evhttp_connection_free(j->bcon);
        j->bcon = NULL;
        j->breq = NULL;
        if (j->ccon) evhttp_connection_set_closecb(j->ccon, NULL, NULL);
    }
    while (r->jobs)
        job_unlink_free(r->jobs);
    if (r->reap) reap_cb(-1, 0, r);
    for (int i = 0; i < r->n; i++) {
        if (r->b[i].hc) evhttp_connection_free(r->b[i].hc);
        while (r->b[i].n_idle > 0)
            evhttp_connection_free(r->b[i].idle[--r->b[i].n_idle]);
        free(r->b[i].url);
        free(r->b[i].host);
    }
    if (r->http) evhttp_free(r->http);
    if (r->sigint) event_free(r->sigint);
    if (r->sigterm) event_free(r->sigterm);
    if (r->poll) event_free(r->poll);
    if (r->health) event_free(r->health);
    if (r->reap) event_free(r->reap);
    if (r->drain) event_free(r->drain);
    if (r->base) event_base_free(r->base);
    free(r->dead);
    free(r->owners);
    free(r);
}
