/*
 * router.h — `silica route`: an HTTP reverse proxy in front of several
 * `silica serve` nodes that sends requests sharing a prompt prefix to the
 * same node, so that node's prefix cache (engine/) serves them warm.
 *
 * Each request gets an affinity key from its JSON body (rt_affinity_key):
 * the client's prompt_cache_key, else the model and the leading bytes of
 * the prompt (tools, system messages, the first message). The node is
 * chosen by rendezvous hashing of (key, node) over the healthy nodes, so
 * adding or losing a node moves only that node's share of the keys.
 * Requests without a key go to the least busy node. Bodies and responses
 * are streamed through (SSE chunks as they arrive); a client that goes
 * away closes the node's request, which cancels the generation there.
 *
 * One libevent thread does everything: the listening side (evhttp server),
 * the node side (evhttp client connections, a kept-alive pool per node) and
 * the periodic health checks (GET /health on each node).
 */
#ifndef SILICA_ROUTER_H
#define SILICA_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define RT_MAX_BACKENDS 64

typedef struct rt rt_t;

typedef struct rt_config {
    const char *host;                      /* listen address; default 127.0.0.1 */
    int port;                              /* 0: any free port (rt_port) */
    const char *backends[RT_MAX_BACKENDS]; /* "http://HOST:PORT" */
    int n_backends;
    size_t max_body;          /* request body bytes; default 8 MiB */
    size_t key_bytes;         /* affinity key budget in bytes; default 1024 */
    int timeout_s;            /* idle read/write timeout, client and node side; default 300 */
    double health_interval_s; /* default 2 */
    double health_timeout_s;  /* default 2 */
    int health_fails;         /* checks failed in a row (timeout, not 200) that mark a node down;
                                 default 2 (a refused connection marks it down at once) */
    int spill;                /* an affinity node with this many more requests in flight than
                                 the least busy one is passed over; 0: 16; <0: never */
    bool no_backend_header; /* do not name the node in X-Silica-Backend (its address stays private)
                             */
    double drain_s;         /* on SIGINT/SIGTERM, seconds for requests in flight to finish;
                               0: 30; <0: none (exit at once) */
} rt_config_t;

/* Parses the backends, binds the socket. NULL with err on failure. */
rt_t *rt_new(const rt_config_t *cfg, char *err, size_t errlen);
int rt_port(const rt_t *r);
/* Serves until SIGINT/SIGTERM (draining first, see drain_s) or rt_stop().
 * Returns 0. */
int rt_run(rt_t *r);
void rt_stop(rt_t *r); /* thread-safe */
void rt_free(rt_t *r);

/* ---- affinity (key.c): pure functions, unit-tested ---- */

typedef enum {
    RT_KEY_NONE = 0,  /* no useful key: least busy node */
    RT_KEY_CACHE_KEY, /* the client's prompt_cache_key */
    RT_KEY_PREFIX,    /* model + leading prompt bytes */
} rt_key_kind_t;

/* The affinity key of a request to `path` (the URL path, no query) with
 * body `body` of `len` bytes (untrusted; need not be JSON). Writes the key
 * bytes to *key (cleared first); at most `budget` bytes of prompt text go
 * in (plus the model and a route tag). RT_KEY_NONE for routes without a
 * prompt, bodies that are not a JSON object, and out of memory. */
rt_key_kind_t rt_affinity_key(const char *path, const char *body, size_t len, size_t budget,
                              sl_buf_t *key);

/* The stored response a request refers to, which lives on the node that
 * made it: `previous_response_id` of a POST /v1/responses body, or the
 * {id} of /v1/responses/{id}[/input_items]. Its length (copied into id,
 * NUL-terminated, when it fits in cap and has only letters, digits, '_'
 * and '-', as the nodes' ids do), or 0 for none. */
size_t rt_response_ref(const char *path, const char *body, size_t len, char *id, size_t cap);

/* The id of the response a POST /v1/responses answer starts with (a JSON
 * body or the SSE stream's response.created event), found in its first
 * bytes `head`: its length (copied into id as above), or 0 for none yet. */
size_t rt_response_id_in(const char *head, size_t len, char *id, size_t cap);

/* The "model" string of a JSON body: its length (copied into out,
 * NUL-terminated, when it fits in cap), or 0 when there is none. */
size_t rt_body_model(const char *body, size_t len, char *out, size_t cap);

/* 64-bit hash of bytes (FNV-1a, then a finalizing mix). */
uint64_t rt_hash(const void *p, size_t n);
/* Rendezvous weight of a key on a node (both hashed). */
uint64_t rt_weight(uint64_t key_hash, uint64_t node_hash);
/* The n nodes' indices by decreasing weight for key_hash into order[];
 * ties (never in practice) by index. */
void rt_rendezvous_order(uint64_t key_hash, const uint64_t *node_hash, int n, int *order);

#endif
