/*
 * server_int.h — state shared by the server's files (server.c: HTTP,
 * routing, lifecycle; gen.c: generation requests). I/O thread only, except
 * the event queue (evq*, under evq_mu).
 */
#ifndef SILICA_SERVER_INT_H
#define SILICA_SERVER_INT_H

#include <event2/http.h>
#include <jansson.h>
#include <pthread.h>

#include "base/base.h"
#include "chat/chat.h"
#include "chat/toolcall.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/fim.h"
#include "server/oai.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

typedef struct srv_model {
    srv_t *srv;
    char *id;
    sl_model_t *model;
    sl_tok_t *tok;
    chat_tmpl_t *tmpl;  /* the model's chat template (ChatML when the file has none) */
    char *tmpl_error;   /* set when the file's template does not parse: chat answers 500 */
    eng_t *eng;
    struct gram_vocab *gvocab; /* the vocabulary as grammar byte strings (structured.h) */
    struct gram_vocab *gvocab_plain; /* the same without kept control markers, for response_format /
                                        grammar / regex (NULL: gvocab keeps none) */
    int32_t *eog; /* end-of-generation ids: the engine's stop ids */
    size_t n_eog;
    fim_ids_t fim;      /* fill-in-the-middle ids (fim_supported() tells) */
    int32_t *fim_stop;  /* FIM requests stop at these: eog + the FIM markers */
    size_t n_fim_stop;
    bool tools;         /* the chat template renders `tools` */
    tc_family_t tc_family; /* the tool-call syntax the model speaks (chat/toolcall.h) */
    bool tc_reasoning;     /* the model writes <think>...</think> reasoning */
    char *bos_text, *eos_text; /* for the chat template */
    int64_t created;
} srv_model_t;

/* An embedding model (bert; a decoder with a pooling): /v1/embeddings or
 * /v1/rerank only. */
static inline bool srv_model_embeds(const srv_model_t *m) {
    return model_embed_dim(m->model) > 0;
}

typedef struct gen_job gen_job_t;
typedef struct emb_job emb_job_t;

typedef struct srv_conn {
    struct evhttp_connection *evcon;
    gen_job_t *job;  /* the generation in progress on this connection, if any */
    emb_job_t *ejob; /* or the embedding / rerank request */
} srv_conn_t;

typedef struct srv_qev {
    srv_model_t *m; /* whose engine sent it */
    eng_event_t ev;
    char err[400];
} srv_qev_t;

struct srv {
    srv_config_t cfg;
    struct event_base *base;
    struct evhttp *http;
    struct event *wake, *sigint, *sigterm, *poll;
    int port;
    srv_model_t *models;
    int n_models;
    uint64_t rng; /* ids; I/O thread only */

    pthread_mutex_t evq_mu;
    srv_qev_t *evq, *evq_spare;
    size_t evq_len, evq_cap, evq_spare_cap;

    srv_conn_t **conns; /* open-addressing map evcon -> record */
    size_t conn_cap;
    int n_conns;

    gen_job_t *jobs; /* every live job (doubly linked) */
    int n_jobs;
    emb_job_t *ejobs; /* every live embedding / rerank job (doubly linked) */
    int n_ejobs;
    int n_internal;    /* live jobs of srv_run_internal (the batch runner's) */
    uint64_t batch_poll_ns; /* when the batch hook was last polled */

    struct resp_store *rstore; /* stored responses without the platform's store hooks (resp_store.h) */

    uint64_t n_requests, n_status[6];
    /* streamed tokens: I/O-thread work per token (detokenize, stop strings,
     * JSON, write) and latency from the engine producing it to written */
    uint64_t tok_work_ns, tok_work_max_ns, tok_lat_ns, tok_n;
};

void srv_add_common_headers(srv_t *s, struct evhttp_request *req);
void srv_count_status(srv_t *s, int status);
void srv_send_json(srv_t *s, struct evhttp_request *req, int status, const char *body, size_t len);
void srv_send_jsonv(srv_t *s, struct evhttp_request *req, int status, json_t *v); /* steals v */
void srv_send_error(srv_t *s, struct evhttp_request *req, const oai_error_t *e);
srv_model_t *srv_find_model(srv_t *s, const char *id);
/* The platform hook's begin for a request (0 without hooks): authenticate,
 * authorize the model, reserve the estimate. -1 with *e (Retry-After set
 * on req when the hook asks) when refused. */
int srv_hook_begin(srv_t *s, struct evhttp_request *req, const char *model, int64_t est_prompt_tokens,
                   int64_t est_completion_tokens, void **hook, oai_error_t *e);
/* An internal request's admission (srv_internal_t.begin) as a route's
 * hook: 0 and *hook, or -1 with *e. */
int srv_internal_begin(const srv_internal_t *ij, const char *model, int64_t est_prompt_tokens,
                       int64_t est_completion_tokens, void **hook, oai_error_t *e);
/* A connection whose client has gone (readable, nothing to read): libevent
 * does not notice while a request is handled and no reply has started. */
bool srv_conn_gone(const srv_conn_t *c);
void srv_model_not_found(srv_t *s, const char *id, oai_error_t *e);

/* The authorization a request carries, as the platform hooks take it:
 * the Authorization header, else "Bearer " + x-api-key (what Anthropic's
 * SDK sends) written into buf; NULL when neither is there. */
const char *srv_authorization(struct evhttp_request *req, char *buf, size_t cap);

/* gen.c: one generation path for every request shape */
typedef enum {
    GEN_CHAT,
    GEN_COMPLETIONS,
    GEN_RESPONSES,    /* POST /v1/responses */
    GEN_MESSAGES,     /* POST /v1/messages (Anthropic) */
    GEN_COUNT_TOKENS, /* POST /v1/messages/count_tokens: the prompt's length only */
} gen_kind_t;
void gen_handle(srv_t *s, srv_conn_t *c, struct evhttp_request *req, gen_kind_t kind);

/* An output format of the chat generation path other than chat
 * completions' own: the Responses API (resp_http.c) and Anthropic
 * Messages (anth_http.c). The format translates its body into the chat
 * request it means; gen.c runs that request like any chat request and
 * reports what the output parser finds, in order; the format keeps the
 * output and writes its JSON or its SSE events. State: one opaque `st`
 * per job, made by parse, freed by free. */
typedef struct gen_fmt_info {
    const char *id, *model;
    int64_t created;
    srv_usage_t usage;       /* at the start: the prompt tokens only */
    const char *finish;      /* the end: "stop" | "length" | "tool_calls" */
    const char *stop_string; /* the stop string that ended the output, or NULL */
    const char *error;       /* the engine failed: why; NULL otherwise */
} gen_fmt_info_t;

typedef struct gen_fmt {
    const char *id_prefix;   /* the job's id: prefix + 48 hex digits */
    const char *input_param; /* the request's conversation, as errors name it */
    /* body (len bytes) -> *chat (the chat request, a new reference) and
     * *st. count: only the prompt's length is wanted. 0, or -1 with *e. */
    int (*parse)(srv_t *s, struct evhttp_request *req, const char *body, size_t len, bool count,
                 uint64_t seed, void **st, json_t **chat, oai_error_t *e);
    void (*free)(void *st);
    /* Answers an error in the format's shape; used for every error of the
     * route. chat_names: e comes from the chat request's machinery, whose
     * parameter names are mapped to the format's (parse's own errors and
     * the route's before it already name the format's). */
    void (*send_error)(srv_t *s, struct evhttp_request *req, oai_error_t *e, bool chat_names);
    /* The output parser's events (or the plain text when there is none). */
    void (*text)(void *st, bool reasoning, const char *s, size_t n);
    void (*call_start)(void *st, const char *call_id, const char *name);
    void (*call_args)(void *st, const char *s, size_t n);
    void (*call_end)(void *st, bool ok);
    /* Streaming: the events that open the stream. */
    void (*stream_start)(void *st, const gen_fmt_info_t *in);
    /* The end. Streaming: the last events (into events); returns NULL.
     * Otherwise the response body with *status. */
    json_t *(*finish)(void *st, const gen_fmt_info_t *in, int *status);
    /* SSE text written and not yet sent; the caller sends and clears it. */
    sl_buf_t *(*events)(void *st);
} gen_fmt_t;

extern const gen_fmt_t resp_gen_fmt; /* resp_http.c */
extern const gen_fmt_t anth_gen_fmt; /* anth_http.c */
void gen_on_event(srv_t *s, const eng_event_t *ev);
void gen_conn_lost(gen_job_t *j);
void gen_free_all(srv_t *s);
void gen_poll_disconnects(srv_t *s);

/* resp_http.c: stored responses (POST /v1/responses itself is gen.c's) */
/* The account stored responses belong to: the auth hook's, 0 without it.
 * 0, or -1 with a 401/403 in *e. */
int resp_auth(srv_t *s, struct evhttp_request *req, int64_t *account, oai_error_t *e);
/* The stored {"response","context"} of (account, id) (a new
 * reference), or NULL with a 404 (unknown, or another account's) / 500. */
json_t *resp_load(srv_t *s, int64_t account, const char *id, oai_error_t *e);
/* Stores it; 0 or -1 (logged). */
int resp_save(srv_t *s, int64_t account, const char *id, const json_t *stored);
/* GET / DELETE /v1/responses/{rest}; rest "ID" or "ID/input_items". */
void resp_handle_stored(srv_t *s, struct evhttp_request *req, const char *rest, bool del, const char *query);

/* embed.c: /v1/embeddings and /v1/rerank (encoder models) */
void embed_handle(srv_t *s, srv_conn_t *c, struct evhttp_request *req, bool rerank);
/* srv_run_internal for /v1/embeddings. */
int embed_run_internal(srv_t *s, const srv_internal_t *in);
void embed_on_event(srv_t *s, const eng_event_t *ev);
void embed_conn_lost(emb_job_t *j);
void embed_free_all(srv_t *s);
void embed_poll_disconnects(srv_t *s);

#endif
