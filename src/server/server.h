/*
 * server.h — the OpenAI-compatible HTTP server: one libevent I/O thread,
 * one engine thread per loaded model (engine/), JSON with jansson.
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, POST
 * /v1/responses (JSON or SSE streaming), GET / DELETE /v1/responses/{id},
 * GET /v1/responses/{id}/input_items, POST /v1/messages and
 * /v1/messages/count_tokens (Anthropic's Messages API; also under
 * /anthropic, with its models list), POST /v1/embeddings and /v1/rerank (encoder models), GET /v1/models[?type=&sub_type=], GET /v1/models/{id},
 * GET /health, GET /metrics (Prometheus text), OPTIONS (CORS preflight),
 * GET /v1/user/info, /v1/user/usage and /v1/user/prices (through the account hook), GET /
 * POST /v1/user/keys and DELETE /v1/user/keys/{id} (the keys hook), and the
 * web console's embedded files (GET / and /console/..., console.c).
 *
 * The request path has a hook for the platform (API keys, billing, rate
 * limits): begin (authenticate + authorize + reserve) before any model work,
 * finish (one usage record) after the last byte or a disconnect, abort when
 * the request is refused before any compute. With no hooks the API is open.
 * Hooks run on the I/O thread.
 */
#ifndef SILICA_SERVER_H
#define SILICA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv srv_t;

typedef struct srv_status {
    int http;          /* 401, 403, 404, 429, ... */
    char type[40];     /* OpenAI error type */
    char code[40];
    char message[320];
    int retry_after_s; /* > 0: sent as Retry-After */
    char param[48];    /* the request field at fault; "" = null */
} srv_status_t;

typedef struct srv_usage {
    int64_t prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
    int64_t ttft_ms; /* -1 unknown */
} srv_usage_t;

/* A request the server runs for itself, with no connection: the Batch
 * API's runner feeds each batch request through the same generation path
 * as the HTTP route (srv_run_internal). */
typedef struct srv_internal {
    const char *endpoint; /* "/v1/chat/completions", "/v1/completions" or "/v1/embeddings" */
    const char *body;     /* the request body, JSON (copied by the server) */
    size_t len;
    void *ctx;
    /* Instead of hooks.begin: admit `model` (the runner's own billing).
     * 0 and *req, or -1 with *st. */
    int (*begin)(void *ctx, const char *model, int64_t est_prompt_tokens,
                 int64_t max_completion_tokens, void **req, srv_status_t *st);
    /* Exactly once, on the I/O thread (possibly before srv_run_internal
     * returns): the HTTP status and body the route would have answered.
     * req is begin's (NULL when begin did not succeed); with req, u is what
     * to bill with `status` ("ok", "error", "cancelled"), or NULL when
     * nothing was computed (abort it). status "shutdown": the server stopped
     * the request unfinished (abort, and run it again after a restart). */
    void (*done)(void *ctx, void *req, int http, const char *body, size_t len,
                 const srv_usage_t *u, const char *status);
} srv_internal_t;

/* POST /v1/files, GET /v1/files[/{id}[/content]], DELETE /v1/files/{id},
 * POST /v1/batches, GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel
 * as the files hook takes them. The server parses a multipart upload;
 * every other body is passed as is. */
typedef struct srv_files_req {
    const char *method;        /* "GET", "POST", "DELETE" */
    const char *route;         /* "files" or "batches" */
    const char *rest;          /* the path after the route: "", "ID", "ID/content", "ID/cancel" */
    const char *query;         /* the URL's query (NULL: none) */
    const char *authorization; /* as for hooks.begin */
    const char *body;          /* POST /v1/batches: the JSON body */
    size_t body_len;
    /* POST /v1/files: the form's fields (purpose NULL when absent) */
    const char *purpose, *filename;
    const char *file;
    size_t file_len;
    bool has_file;
} srv_files_req_t;

/* What the server offers the batch runner (hooks.batch_poll). */
typedef struct srv_batch_ops {
    void *srv;
    int (*run)(void *srv, const srv_internal_t *in); /* srv_run_internal */
    /* a loaded model that serves endpoint (text generation or embeddings) */
    bool (*has_model)(void *srv, const char *endpoint, const char *id);
} srv_batch_ops_t;

typedef struct srv_hooks {
    void *ctx;
    /* Authenticate the Authorization header value (NULL when absent),
     * authorize `model`, reserve what the request may cost. 0 and *req (an
     * opaque handle owned by the hook until finish/abort), or -1 with *st. */
    int (*begin)(void *ctx, const char *authorization, const char *model, int64_t est_prompt_tokens,
                 int64_t max_completion_tokens, void **req, srv_status_t *st);
    /* Optional: an id for the x-request-id header. */
    const char *(*request_id)(void *req);
    /* Exactly once per successful begin: usage of what was computed;
     * status "ok", "error" or "cancelled". */
    void (*finish)(void *ctx, void *req, const srv_usage_t *u, const char *status);
    /* Instead of finish when nothing was computed. */
    void (*abort)(void *ctx, void *req);
    /* Optional: the account routes. route "info" (GET /v1/user/info),
     * "prices" (GET /v1/user/prices) or "usage" (GET
     * /v1/user/usage?group_by=...; group_by may be NULL).
     * 0 and *body (heap JSON, the server frees it), or -1 with *st. Without
     * it those routes answer 404. */
    int (*account)(void *ctx, const char *route, const char *authorization, const char *group_by,
                   char **body, srv_status_t *st);
    /* Optional: the caller's own API keys. method "GET" (GET /v1/user/keys:
     * list), "POST" (POST /v1/user/keys: create from the JSON `in` of
     * in_len bytes) or "DELETE" (DELETE /v1/user/keys/{id}: revoke; key_id
     * is the {id} text as sent). 0 with *http (200, 201) and *body (heap
     * JSON, the server frees it), or -1 with *st. Without it those routes
     * answer 404. */
    int (*keys)(void *ctx, const char *method, const char *authorization, const char *key_id,
                const char *in, size_t in_len, int *http, char **body, srv_status_t *st);
    /* Optional: authenticate without a model (the stored-response routes,
     * and a Responses request's previous_response_id, looked up before
     * begin): 0 and *account, or -1 with *st. Without it every request is
     * account 0. */
    int (*auth)(void *ctx, const char *authorization, int64_t *account, srv_status_t *st);
    /* Optional, all three or none: the stored responses of an account
     * (POST /v1/responses with store), as JSON text. Without them the
     * server keeps them in a bounded in-memory LRU (resp_store.h).
     * put: 0 or -1; get: 0 and *text (heap, NUL-terminated, the server
     * frees it), 1 when not stored, -1 on error; delete: 0 deleted, 1 not
     * stored, -1 on error. */
    int (*store_put)(void *ctx, int64_t account, const char *id, const char *text, size_t len);
    int (*store_get)(void *ctx, int64_t account, const char *id, char **text);
    int (*store_delete)(void *ctx, int64_t account, const char *id);
    /* Optional: the Files and Batch APIs. 0 with *http, *body (heap, the
     * server frees it), *len and *raw (the body is a file's bytes, sent
     * as application/octet-stream, not JSON), or -1 with *st. Without it
     * those routes answer 404. */
    int (*files)(void *ctx, const srv_files_req_t *in, int *http, char **body, size_t *len,
                 bool *raw, srv_status_t *st);
    /* Optional: the batch runner, called on the I/O thread a few times a
     * second: `room` more batch requests may start now (0: advance the
     * batches' states only), each with ops->run. */
    void (*batch_poll)(void *ctx, int room, const struct srv_batch_ops *ops);
    /* Optional: more Prometheus text lines for GET /metrics (heap, the
     * server frees it; NULL adds nothing). */
    char *(*metrics)(void *ctx);
} srv_hooks_t;

typedef struct srv_model_spec {
    const char *id;   /* public model id */
    const char *path; /* GGUF file */
} srv_model_spec_t;

typedef struct srv_config {
    const char *host;     /* default 127.0.0.1 */
    int port;             /* 0: any free port (see srv_port) */
    int n_threads;        /* kernel threads per model; default 1 */
    int n_ctx;            /* context per sequence; 0: model default (<= 4096) */
    const char *data_dir; /* may be NULL */
    size_t max_body;      /* bytes; default 8 MiB */
    size_t max_header;    /* bytes; default 16 KiB */
    int max_conns;        /* default 1024 */
    int timeout_s;        /* idle read/write timeout; default 300 */
    int max_running;      /* sequences decoding at once per model; default 16 */
    int max_queued;       /* waiting sequences per model before 503; default 256 */
    size_t kv_mem;        /* KV cache bytes per model; 0: engine default */
    int kv_type;          /* ENG_KV_* (0: f16) */
    int ckpt_interval; /* hybrid models: eng_opts_t.ckpt_interval (0: engine default, < 0: none) */
    int spec;          /* speculative decoding: ENG_SPEC_* (0: engine default) */
    int spec_max;      /* longest draft (0: engine default) */
    bool no_console;      /* do not serve the web console (GET / and /console/...) */
    size_t max_upload;    /* bytes of a POST /v1/files body; default 64 MiB + 64 KiB */
    int batch_running;    /* batch requests running at once (the runner's bound); default 2 */
    srv_hooks_t hooks;
} srv_config_t;

/* The most models one server loads (each its own engine thread and pool;
 * /metrics reports every one). */
#define SRV_MAX_MODELS 64

/* Loads the models (1 .. SRV_MAX_MODELS), starts their engines, binds the
 * socket. */
srv_t *srv_new(const srv_config_t *cfg, const srv_model_spec_t *models, int n_models, char *err,
               size_t errlen);
int srv_port(const srv_t *s);
/* Serves until SIGINT/SIGTERM or srv_stop(). Returns 0. */
int srv_run(srv_t *s);
void srv_stop(srv_t *s); /* thread-safe */
void srv_free(srv_t *s);
/* Runs a request for the caller (I/O thread only; see srv_internal_t).
 * 0, or -1 when it could not start (then done is not called). */
int srv_run_internal(srv_t *s, const srv_internal_t *in);

#endif
