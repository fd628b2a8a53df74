/*
 * gen.c — POST /v1/chat/completions, /v1/completions, /v1/responses and
 * /v1/messages (+ count_tokens): from a validated request to engine
 * sequences and back to JSON or SSE.
 *
 * One generation path for all of them: a Responses or Anthropic Messages
 * request is translated into the chat request it means and runs as one;
 * only the output differs. Chat and completions write choices / chunks
 * here; the other formats are a gen_fmt_t (server_int.h: resp_http.c,
 * anth_http.c) fed from the same places: the output parser's events, or
 * the plain text when there is no parser, then the end of the job.
 *
 * A job is one HTTP request; it has n_prompts × n choices, each one engine
 * sequence. Lifetime: a job lives until (a) its response is complete or its
 * connection is gone (`finished`) and (b) every sequence has delivered its
 * FINISH (`n_live == 0`); whichever comes last frees it. Engine events name
 * their choice in `user`, which stays valid because of (b).
 *
 * Text path per choice: token id -> streaming detokenizer (complete UTF-8
 * only) -> stop-string matcher (holds back possible stop prefixes) -> the
 * response. A stop-string hit ends the choice at once (finish_reason
 * "stop") and cancels its sequence; end-of-generation tokens are stop ids
 * inside the engine and never reach the text.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <sys/socket.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"
#include "server/stopstr.h"
#include "server/structured.h"
#include "server/tools.h"

typedef struct gen_choice {
    gen_job_t *job;
    int index;
    int prompt;
    uint64_t seq;
    bool live;  /* engine sequence submitted and not yet FINISHed */
    bool done;  /* output finished */
    const char *finish;
    int n_tokens;
    int eng_prompt, eng_cached, eng_completion; /* what the engine computed (from its events) */
    bool eng_known; /* an event has reported them */
    sl_detok_t *dt;
    stop_matcher_t stop;
    sl_buf_t text; /* non-stream: the whole output */
    int32_t *ids;  /* return_token_ids: the generated ids */
    size_t n_ids, cap_ids;
    size_t ids_sent;       /* stream: ids already in a chunk */
    bool prompt_ids_sent;  /* stream: prompt_token_ids already in a chunk */
    smp_result_t *plp; /* echo + logprobs: the prompt's scores by position (1..n-1) */
    bool echo_pending; /* stream: the echo chunk waits for the prompt's scores */
    json_t *lp;    /* non-stream logprobs: chat content array / completions object */
    size_t text_off;
    tc_parser_t *tp;       /* chat with tools or reasoning: splits the output (tools.h) */
    int reasoning_tokens;  /* tokens generated inside <think> */
    json_t *pending_lp;    /* stream + tp: this token's logprobs, for the next chunk sent */
} gen_choice_t;

typedef struct gen_prompt {
    int32_t *ids;
    size_t n;
    char *text; /* for echo */
} gen_prompt_t;

struct gen_job {
    gen_job_t *prev, *next;
    srv_t *s;
    srv_model_t *m;
    srv_conn_t *conn;
    struct evhttp_request *req; /* NULL once the response is sent or the connection is gone */
    oai_req_t r;
    gen_prompt_t *prompts;
    int n_prompts;
    gen_choice_t *ch;
    int n_ch, n_live, n_done;
    bool finished; /* response complete or abandoned: the HTTP side holds no reference */
    char id[80];
    int64_t created;
    void *hook;
    bool failed;             /* a sequence failed: billed as "error" */
    const char *hook_status; /* set: finish the hook with it once no sequence is live */
    int64_t prompt_tokens;
    uint64_t t0_ns, t_first_ns;
    sl_buf_t piece, out;
    sl_buf_t sse_head, sse; /* streaming: the chunk prefix and the chunk being built */
    struct evbuffer *evb;
    srv_tools_t tools;   /* chat: tools / tool_choice / reasoning (tools.h) */
    eng_grammar_t tc_grammar; /* the tool-call grammar (points into tools), kind 0 = none */
    /* structured output (response_format / grammar / regex): the grammar,
     * its prepared index (a reference), and whether the job waits for it */
    eng_grammar_t gspec;
    gram_index_t *gix;
    bool gram_wait;
    int max_tokens; /* per sequence */
    /* Responses / Anthropic Messages: the format and its state; a
     * count_tokens request stops after the prompt; why the job failed */
    const gen_fmt_t *fmt;
    void *fst;
    bool count_only;
    bool err_native; /* the error to send was raised by the format's parse */
    char fail_msg[200];
    /* A request the server runs for itself (srv_run_internal): no
     * connection; the answer and the usage go to ij.done when the job is
     * freed. ij_req: ij.begin's handle (j->hook goes NULL when finished);
     * ij_status: set when the hook finished (bill ij_u), NULL = abort. */
    bool internal;
    srv_internal_t ij;
    void *ij_req;
    const char *ij_status;
    srv_usage_t ij_u;
    int ij_http;
    char *ij_body;
};

static const char *FINGERPRINT = "fp_silica";

static uint64_t rng_next(srv_t *s) {
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- job lifetime ---- */

static void job_free(gen_job_t *j) {
    srv_t *s = j->s;
    if (j->internal) {
        const char *body = j->ij_body ? j->ij_body : "{}";
        if (!j->ij_http) j->ij_http = 500;
        j->ij.done(j->ij.ctx, j->ij_req, j->ij_http, body, strlen(body), j->ij_status ? &j->ij_u : NULL,
                   j->ij_status ? j->ij_status : "aborted");
        free(j->ij_body);
        s->n_internal--;
    }
    if (j->prev) j->prev->next = j->next;
    else s->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    s->n_jobs--;
    for (int i = 0; i < j->n_ch; i++) {
        detok_free(j->ch[i].dt);
        stop_free(&j->ch[i].stop);
        sl_buf_free(&j->ch[i].text);
        free(j->ch[i].ids);
        free(j->ch[i].plp);
        json_decref(j->ch[i].lp);
        tc_parser_free(j->ch[i].tp);
        json_decref(j->ch[i].pending_lp);
    }
    tools_free(&j->tools);
    if (j->fmt) j->fmt->free(j->fst);
    gram_index_release(j->gix);
    free(j->ch);
    for (int i = 0; i < j->n_prompts; i++) {
        free(j->prompts[i].ids);
        free(j->prompts[i].text);
    }
    free(j->prompts);
    sl_buf_free(&j->piece);
    sl_buf_free(&j->out);
    sl_buf_free(&j->sse_head);
    sl_buf_free(&j->sse);
    if (j->evb) evbuffer_free(j->evb);
    oai_req_free(&j->r);
    free(j);
}

/* Usage of a job. A complete response reports (and bills) what it shows:
 * each prompt once, the tokens of every choice. A cancelled or failed one
 * (`computed`) reports what the engine actually did, from its FINISH
 * events: per prompt the most prefilled by any of its sequences, and every
 * sampled token, including those sampled after the client left. */
static void job_usage(const gen_job_t *j, bool computed, srv_usage_t *u) {
    memset(u, 0, sizeof *u);
    u->ttft_ms = j->t_first_ns ? (int64_t)((j->t_first_ns - j->t0_ns) / 1000000) : -1;
    /* cached tokens of a prompt: those its choices reused from the prefix
     * cache (the fewest: choices sharing one prefill report the first's) */
    for (int p = 0; p < j->n_prompts; p++) {
        int most = 0, cached = -1;
        for (int i = 0; i < j->n_ch; i++) {
            const gen_choice_t *c = &j->ch[i];
            if (c->prompt != p || !c->eng_known || c->eng_prompt == 0) continue;
            if (c->eng_prompt > most) most = c->eng_prompt;
            if (cached < 0 || c->eng_cached < cached) cached = c->eng_cached;
        }
        if (computed) u->prompt_tokens += most;
        if (cached > 0) u->cached_tokens += cached;
    }
    for (int i = 0; i < j->n_ch; i++) u->reasoning_tokens += j->ch[i].reasoning_tokens;
    if (!computed) {
        u->prompt_tokens = j->prompt_tokens;
        for (int i = 0; i < j->n_ch; i++) u->completion_tokens += j->ch[i].n_tokens;
    } else {
        for (int i = 0; i < j->n_ch; i++)
            u->completion_tokens += SL_MAX(j->ch[i].n_tokens, j->ch[i].eng_completion);
    }
    if (u->cached_tokens > u->prompt_tokens) u->cached_tokens = u->prompt_tokens;
}

static void job_hook_finish(gen_job_t *j, const char *status) {
    srv_t *s = j->s;
    if (!j->hook) return;
    srv_usage_t u;
    job_usage(j, strcmp(status, "ok") != 0, &u);
    if (j->internal) {
        j->ij_u = u;
        j->ij_status = status;
    } else if (s->cfg.hooks.finish) {
        s->cfg.hooks.finish(s->cfg.hooks.ctx, j->hook, &u, status);
    }
    j->hook = NULL;
    j->hook_status = NULL;
}

/* A cancelled or failed job is billed once the engine has reported every
 * sequence's FINISH, so the counts are what was computed. */
static void job_hook_finish_later(gen_job_t *j, const char *status) {
    if (j->hook && !j->hook_status) j->hook_status = status;
}

static void job_maybe_free(gen_job_t *j) {
    if (j->n_live == 0 && j->hook_status) job_hook_finish(j, j->hook_status);
    if (j->finished && j->n_live == 0) job_free(j);
}

/* The HTTP side lets go: detach from the connection. */
static void job_release(gen_job_t *j) {
    if (j->conn && j->conn->job == j) j->conn->job = NULL;
    j->conn = NULL;
    j->req = NULL;
    j->finished = true;
}

static void job_cancel_all(gen_job_t *j) {
    for (int i = 0; i < j->n_ch; i++)
        if (j->ch[i].live) eng_cancel(j->m->eng, j->ch[i].seq);
}

void gen_conn_lost(gen_job_t *j) {
    job_cancel_all(j);
    /* A stream whose client went away: libevent detaches the unfinished
     * request from the dying connection and leaves it to us; ending it
     * frees it. (A request still on its connection is freed with it.) */
    if (j->req && !evhttp_request_get_connection(j->req)) evhttp_send_reply_end(j->req);
    if (!j->finished) job_hook_finish_later(j, "cancelled");
    job_release(j);
    job_maybe_free(j);
}

/* libevent does not watch a connection for EOF while a request is being
 * handled and no reply has started, so a client that gives up on a
 * non-streaming request is found here (called every 50 ms while jobs are
 * live): a readable socket with nothing to read is closed. Freeing the
 * connection runs conn_closed() -> gen_conn_lost(). */
void gen_poll_disconnects(srv_t *s) {
    gen_job_t *j = s->jobs;
    while (j) {
        gen_job_t *next = j->next;
        if (!j->finished && j->conn && (!j->r.stream || j->gram_wait) && srv_conn_gone(j->conn))
            evhttp_connection_free(j->conn->evcon);
        j = next;
    }
}

void gen_free_all(srv_t *s) {
    while (s->jobs) {
        gen_job_t *j = s->jobs;
        if (j->internal && !j->ij_status) {
            /* unfinished at shutdown: not billed, run again after a restart */
            j->hook = NULL;
            j->ij_status = "shutdown";
            j->ij_http = 503;
        }
        if (j->hook) job_hook_finish(j, j->hook_status ? j->hook_status : "cancelled");
        job_free(j);
    }
}

/* ---- JSON pieces ---- */

static json_t *usage_json(const gen_job_t *j) {
    srv_usage_t u;
    job_usage(j, false, &u);
    /* prompt_cache_hit/miss_tokens: the hosted platform's names for the
     * prompt tokens reused from / computed past the prefix cache */
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}, s:I, s:I}", "prompt_tokens", (json_int_t)u.prompt_tokens,
                     "completion_tokens", (json_int_t)u.completion_tokens, "total_tokens",
                     (json_int_t)(u.prompt_tokens + u.completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)u.cached_tokens, "completion_tokens_details",
                     "reasoning_tokens", (json_int_t)u.reasoning_tokens, "prompt_cache_hit_tokens",
                     (json_int_t)u.cached_tokens, "prompt_cache_miss_tokens",
                     (json_int_t)(u.prompt_tokens - u.cached_tokens));
}

static double lp_value(float lp) {
    return isfinite(lp) ? (double)lp : -9999.0;
}

static json_t *bytes_json(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

static json_t *ids_json(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

/* The token's own text (may be part of a UTF-8 character). */
static void token_piece(const gen_job_t *j, int32_t id, sl_buf_t *b) {
    sl_buf_clear(b);
    tok_token_to_piece(j->m->tok, id, false, b);
}

/* Chat: one entry of logprobs.content. */
static json_t *chat_lp_entry(gen_job_t *j, const smp_result_t *t) {
    sl_buf_t b = {0};
    token_piece(j, t->id, &b);
    json_t *top = json_array();
    for (int k = 0; k < t->n_top && k < j->r.top_logprobs; k++) {
        token_piece(j, t->top[k].id, &b);
        json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", oai_string_lossy(b.data, b.len),
                                             "logprob", lp_value(t->top[k].logprob), "bytes",
                                             bytes_json(b.data, b.len)));
    }
    token_piece(j, t->id, &b);
    json_t *e = json_pack("{s:o, s:f, s:o, s:o}", "token", oai_string_lossy(b.data, b.len), "logprob",
                          lp_value(t->logprob), "bytes", bytes_json(b.data, b.len), "top_logprobs", top);
    sl_buf_free(&b);
    return e;
}

static json_t *cmpl_lp_new(void) {
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

/* Completions: append one token to a legacy logprobs object. */
static void cmpl_lp_add(gen_job_t *j, json_t *lp, const smp_result_t *t, size_t offset) {
    sl_buf_t b = {0};
    json_t *top = json_object();
    for (int k = 0; k < t->n_top && k < j->r.top_logprobs; k++) {
        token_piece(j, t->top[k].id, &b);
        json_t *key = oai_string_lossy(b.data, b.len);
        if (key) json_object_set_new(top, json_string_value(key), json_real(lp_value(t->top[k].logprob)));
        json_decref(key);
    }
    token_piece(j, t->id, &b);
    json_array_append_new(json_object_get(lp, "tokens"), oai_string_lossy(b.data, b.len));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(lp_value(t->logprob)));
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
    sl_buf_free(&b);
}

/* Echo + logprobs: the prompt's tokens first, as OpenAI scores them (the
 * first token has no logprob: null). */
static json_t *prompt_lp_json(gen_job_t *j, const gen_choice_t *c) {
    json_t *lp = cmpl_lp_new();
    const gen_prompt_t *g = &j->prompts[c->prompt];
    sl_buf_t b = {0};
    size_t off = 0;
    for (size_t q = 0; q < g->n; q++) {
        if (q > 0 && c->plp) {
            cmpl_lp_add(j, lp, &c->plp[q], off);
            token_piece(j, g->ids[q], &b);
        } else {
            token_piece(j, g->ids[q], &b);
            json_array_append_new(json_object_get(lp, "tokens"), oai_string_lossy(b.data, b.len));
            json_array_append_new(json_object_get(lp, "token_logprobs"), json_null());
            json_array_append_new(json_object_get(lp, "top_logprobs"), json_null());
            json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)off));
        }
        off += b.len;
    }
    sl_buf_free(&b);
    return lp;
}

static void lp_extend(json_t *dst, const json_t *src) {
    static const char *keys[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    for (size_t k = 0; k < SL_ARRAY_LEN(keys); k++)
        json_array_extend(json_object_get(dst, keys[k]), json_object_get(src, keys[k]));
}

/* ---- streaming ---- */

static void sse_send(gen_job_t *j, json_t *chunk) {
    char *s = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!s || !j->req) {
        free(s);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add(b, "data: ", 6);
        evbuffer_add(b, s, strlen(s));
        evbuffer_add(b, "\n\n", 2);
        evhttp_send_reply_chunk(j->req, b);
        evbuffer_free(b);
    }
    free(s);
}

/* A chunk holding one choice (or none when choice == NULL). */
static json_t *chunk_new(gen_job_t *j, json_t *choice) {
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[]}", "id", j->id, "object",
                          j->r.chat ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)j->created, "model", j->m->id, "system_fingerprint", FINGERPRINT,
                          "choices");
    if (choice) json_array_append_new(json_object_get(c, "choices"), choice);
    if (j->r.include_usage) json_object_set_new(c, "usage", json_null());
    return c;
}

/* The streamed chunk's fixed start, built once per job:
 * data: {"id":…,"object":…,"created":…,"model":…,"system_fingerprint":…,"choices":[ */
static void sse_head_init(gen_job_t *j) {
    sl_buf_t *h = &j->sse_head;
    sl_buf_clear(h);
    sl_buf_puts(h, "data: {\"id\":");
    oai_json_str(h, j->id, strlen(j->id));
    sl_buf_printf(h, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                  j->r.chat ? "chat.completion.chunk" : "text_completion", (long long)j->created);
    oai_json_str(h, j->m->id, strlen(j->m->id));
    sl_buf_printf(h, ",\"system_fingerprint\":\"%s\",\"choices\":[", FINGERPRINT);
}

static void put_int(sl_buf_t *b, long long v) {
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < 22);
    if (v < 0) tmp[n++] = '-';
    char out[24];
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    sl_buf_append(b, out, (size_t)n);
}

/* One choice's chunk, written straight into the SSE buffer (no jansson on
 * the per-token path; only logprobs, when asked for, go through jansson).
 * delta_json (chat): the whole delta object as JSON text instead of a
 * content delta (tool calls, reasoning). */
static void stream_delta_ex(gen_job_t *j, gen_choice_t *c, const char *text, size_t len,
                            const char *delta_json, json_t *lp, const char *finish, bool role) {
    if (!j->req) {
        json_decref(lp);
        return;
    }
    sl_buf_t *b = &j->sse;
    sl_buf_clear(b);
    sl_buf_append(b, j->sse_head.data, j->sse_head.len);
    sl_buf_puts(b, "{\"index\":");
    put_int(b, c->index);
    if (j->r.chat && delta_json) {
        sl_buf_puts(b, ",\"delta\":");
        sl_buf_puts(b, delta_json);
    } else if (j->r.chat) {
        sl_buf_puts(b, ",\"delta\":{");
        if (role) sl_buf_puts(b, "\"role\":\"assistant\"");
        if (len || role) {
            sl_buf_puts(b, role ? ",\"content\":" : "\"content\":");
            oai_json_str(b, text, len);
        }
        sl_buf_puts(b, "}");
    } else {
        sl_buf_puts(b, ",\"text\":");
        oai_json_str(b, text, len);
    }
    sl_buf_puts(b, ",\"logprobs\":");
    if (lp) {
        json_t *v = j->r.chat ? json_pack("{s:o}", "content", lp) : lp;
        char *d = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        sl_buf_puts(b, d ? d : "null");
        free(d);
    } else {
        sl_buf_puts(b, "null");
    }
    sl_buf_puts(b, ",\"finish_reason\":");
    if (finish) {
        sl_buf_putc(b, '"');
        sl_buf_puts(b, finish);
        sl_buf_putc(b, '"');
    } else {
        sl_buf_puts(b, "null");
    }
    if (j->r.return_token_ids) {
        if (!c->prompt_ids_sent) {
            const gen_prompt_t *g = &j->prompts[c->prompt];
            sl_buf_puts(b, ",\"prompt_token_ids\":[");
            for (size_t i = 0; i < g->n; i++) {
                if (i) sl_buf_putc(b, ',');
                put_int(b, g->ids[i]);
            }
            sl_buf_putc(b, ']');
            c->prompt_ids_sent = true;
        }
        sl_buf_puts(b, ",\"token_ids\":[");
        for (size_t i = c->ids_sent; i < c->n_ids; i++) {
            if (i > c->ids_sent) sl_buf_putc(b, ',');
            put_int(b, c->ids[i]);
        }
        sl_buf_putc(b, ']');
        c->ids_sent = c->n_ids;
    }
    sl_buf_puts(b, j->r.include_usage ? "}],\"usage\":null}\n\n" : "}]}\n\n");
    if (!j->evb) j->evb = evbuffer_new();
    if (!j->evb) return;
    evbuffer_add(j->evb, b->data, b->len);
    evhttp_send_reply_chunk(j->req, j->evb); /* drains j->evb */
}

static void stream_delta(gen_job_t *j, gen_choice_t *c, const char *text, size_t len, json_t *lp,
                         const char *finish, bool role) {
    stream_delta_ex(j, c, text, len, NULL, lp, finish, role);
}

static void fmt_flush(gen_job_t *j);

/* Another format's job: the parser's events go to the format (its
 * output, and when streaming its events). */
static void fmt_on_tc(gen_job_t *j, const tc_event_t *ev) {
    const gen_fmt_t *f = j->fmt;
    switch (ev->kind) {
    case TC_EV_CONTENT: f->text(j->fst, false, ev->text, ev->len); break;
    case TC_EV_REASONING: f->text(j->fst, true, ev->text, ev->len); break;
    case TC_EV_CALL_START: f->call_start(j->fst, ev->id, ev->name); break;
    case TC_EV_CALL_ARGS: f->call_args(j->fst, ev->text, ev->len); break;
    case TC_EV_CALL_END: f->call_end(j->fst, true); break;
    case TC_EV_CALL_ABORT: f->call_end(j->fst, false); break;
    }
    fmt_flush(j);
}

/* The output parser's events (tools.h): each one is a chunk's delta
 * (content, reasoning_content, a tool call's start or arguments). The
 * token's logprobs, if any, ride on the first chunk it causes. */
static int on_tc_event(void *ud, const tc_event_t *ev) {
    gen_choice_t *c = ud;
    gen_job_t *j = c->job;
    if (j->fmt) {
        fmt_on_tc(j, ev);
        return 0;
    }
    if (!j->r.stream || !j->req) return 0;
    json_t *lp = c->pending_lp;
    if (ev->kind == TC_EV_CONTENT) {
        if (!ev->len) return 0;
        c->pending_lp = NULL;
        stream_delta_ex(j, c, ev->text, ev->len, NULL, lp, NULL, false);
        return 0;
    }
    json_t *d = tc_event_delta_json(ev);
    if (!d) return 0; /* CALL_END / CALL_ABORT: nothing on the wire */
    char *txt = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    if (!txt) return 0;
    c->pending_lp = NULL;
    stream_delta_ex(j, c, NULL, 0, txt, lp, NULL, false);
    free(txt);
    return 0;
}

/* Stream: the echo chunk of a choice whose prompt is scored, once the
 * scores are in (they all come before the choice's first token or end). */
static void echo_flush(gen_job_t *j, gen_choice_t *c) {
    if (!c->echo_pending) return;
    c->echo_pending = false;
    const char *t = j->prompts[c->prompt].text ? j->prompts[c->prompt].text : "";
    stream_delta(j, c, t, strlen(t), prompt_lp_json(j, c), NULL, false);
}

/* ---- completion of choices and jobs ---- */

/* Another format, streaming: sends the events written so far. */
static void fmt_flush(gen_job_t *j) {
    sl_buf_t *ev = j->fmt->events(j->fst);
    if (!ev->len) return;
    if (j->req) {
        if (!j->evb) j->evb = evbuffer_new();
        if (j->evb) {
            evbuffer_add(j->evb, ev->data, ev->len);
            evhttp_send_reply_chunk(j->req, j->evb); /* drains j->evb */
        }
    }
    sl_buf_clear(ev);
}

/* What the format's start and end see of the job. */
static void fmt_info(gen_job_t *j, bool end, gen_fmt_info_t *in) {
    memset(in, 0, sizeof *in);
    in->id = j->id;
    in->model = j->m->id;
    in->created = j->created;
    if (!end) {
        in->usage.prompt_tokens = j->prompt_tokens;
        return;
    }
    job_usage(j, false, &in->usage);
    const gen_choice_t *c = &j->ch[0];
    in->finish = c->finish ? c->finish : "stop";
    if (c->stop.hit && c->stop.hit_index >= 0 && c->stop.hit_index < j->r.n_stop && !strcmp(in->finish, "stop"))
        in->stop_string = j->r.stop[c->stop.hit_index];
    in->error = j->failed ? j->fail_msg : NULL;
}

/* Another format's job is done: the format closes its output and writes
 * the stream's last events or the response body. */
static void fmt_complete(gen_job_t *j) {
    gen_fmt_info_t in;
    fmt_info(j, true, &in);
    int status = 200;
    json_t *body = j->fmt->finish(j->fst, &in, &status);
    if (j->r.stream) {
        json_decref(body);
        fmt_flush(j);
        if (j->req) evhttp_send_reply_end(j->req);
    } else if (j->req) {
        srv_send_jsonv(j->s, j->req, status, body ? body : json_object());
    } else {
        json_decref(body);
    }
}

static void send_error(gen_job_t *j, struct evhttp_request *req, oai_error_t *e);

/* An internal job's answer, kept for ij.done; steals v. */
static void internal_answer(gen_job_t *j, int status, json_t *v) {
    if (j->ij_body) { /* the first answer stands */
        json_decref(v);
        return;
    }
    j->ij_http = status;
    j->ij_body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
}

static void job_complete(gen_job_t *j) {
    srv_t *s = j->s;
    if (j->fmt) {
        fmt_complete(j);
    } else if (j->r.stream) {
        if (j->r.include_usage) {
            json_t *c = chunk_new(j, NULL);
            json_object_set_new(c, "usage", usage_json(j));
            sse_send(j, c);
        }
        if (j->req) {
            struct evbuffer *b = evbuffer_new();
            evbuffer_add(b, "data: [DONE]\n\n", 14);
            evhttp_send_reply_chunk(j->req, b);
            evbuffer_free(b);
            evhttp_send_reply_end(j->req);
        }
    } else {
        json_t *choices = json_array();
        for (int i = 0; i < j->n_ch; i++) {
            gen_choice_t *c = &j->ch[i];
            json_t *lp = c->lp ? json_incref(c->lp) : json_null();
            if (j->r.chat) {
                if (c->lp) {
                    json_decref(lp);
                    lp = json_pack("{s:O}", "content", c->lp);
                }
                /* with the output parser: content, reasoning_content, tool_calls */
                json_t *msg = c->tp ? tc_result_message_json(tc_parser_result(c->tp))
                                    : json_pack("{s:s, s:o}", "role", "assistant", "content",
                                                oai_string_lossy(c->text.data ? c->text.data : "", c->text.len));
                json_array_append_new(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", c->index, "message",
                                                         msg ? msg : json_object(), "logprobs", lp,
                                                         "finish_reason", c->finish ? c->finish : "stop"));
            } else {
                if (c->plp) {
                    json_t *all = prompt_lp_json(j, c);
                    if (c->lp) lp_extend(all, c->lp);
                    json_decref(lp);
                    lp = all;
                }
                json_array_append_new(
                    choices, json_pack("{s:i, s:o, s:o, s:s}", "index", c->index, "text",
                                       oai_string_lossy(c->text.data ? c->text.data : "", c->text.len),
                                       "logprobs", lp, "finish_reason", c->finish ? c->finish : "stop"));
            }
        }
        if (j->r.return_token_ids)
            for (int i = 0; i < j->n_ch; i++) {
                gen_choice_t *c = &j->ch[i];
                const gen_prompt_t *g = &j->prompts[c->prompt];
                json_t *ch = json_array_get(choices, (size_t)i);
                json_object_set_new(ch, "prompt_token_ids", ids_json(g->ids, g->n));
                json_object_set_new(ch, "token_ids", ids_json(c->ids, c->n_ids));
            }
        json_t *resp = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", j->id, "object",
                                 j->r.chat ? "chat.completion" : "text_completion", "created",
                                 (json_int_t)j->created, "model", j->m->id, "system_fingerprint",
                                 FINGERPRINT, "choices", choices, "usage", usage_json(j));
        if (j->req) srv_send_jsonv(s, j->req, 200, resp);
        else if (j->internal && j->failed) {
            /* the route's client sees a truncated answer; a batch records the failure */
            json_decref(resp);
            oai_error_t e;
            oai_fail(&e, 500, "server_error", NULL, NULL, "%s", j->fail_msg);
            send_error(j, NULL, &e);
        } else if (j->internal) internal_answer(j, 200, resp);
        else json_decref(resp);
    }
    if (j->failed) job_hook_finish_later(j, "error");
    else job_hook_finish(j, "ok");
    job_release(j);
}

/* Ends choice c: flushes held text, records the reason, tells the client. */
static void choice_end(gen_job_t *j, gen_choice_t *c, const char *finish) {
    if (j->r.stream) echo_flush(j, c);
    sl_buf_clear(&j->piece);
    sl_buf_clear(&j->out);
    if (!c->stop.hit) {
        detok_flush(c->dt, &j->piece);
        if (stop_feed(&c->stop, j->piece.data ? j->piece.data : "", j->piece.len, &j->out) == 1)
            finish = "stop";
        else stop_flush(&c->stop, &j->out);
    }
    if (c->tp) {
        /* the rest of the text, then the parser settles held text and any
         * unfinished call; a message with calls ends with "tool_calls"
         * (unless cut by max_tokens) */
        if (j->out.len) tc_parser_feed(c->tp, j->out.data, j->out.len, false);
        sl_buf_clear(&j->out);
        tc_parser_finish(c->tp);
        if (tc_parser_result(c->tp)->finish_tool_calls && strcmp(finish, "length") != 0) finish = "tool_calls";
        if (j->r.stream && c->pending_lp) {
            stream_delta(j, c, "", 0, c->pending_lp, NULL, false);
            c->pending_lp = NULL;
        }
        const tc_result_t *res = tc_parser_result(c->tp);
        if (j->r.stream && !j->fmt && res->n_calls == 0 && res->content_len == 0) /* empty text reply: "" */
            stream_delta_ex(j, c, NULL, 0, "{\"content\":\"\"}", NULL, NULL, false);
    }
    c->done = true;
    c->finish = finish;
    j->n_done++;
    if (c->live && c->stop.hit) eng_cancel(j->m->eng, c->seq);
    if (j->fmt) {
        j->fmt->text(j->fst, false, j->out.data, j->out.len);
        fmt_flush(j);
    } else if (j->r.stream) {
        if (j->out.len) stream_delta(j, c, j->out.data, j->out.len, NULL, NULL, false);
        stream_delta(j, c, "", 0, NULL, finish, false);
    } else {
        sl_buf_append(&c->text, j->out.data ? j->out.data : "", j->out.len);
    }
    if (j->n_done == j->n_ch) job_complete(j);
}

static void on_token(gen_job_t *j, gen_choice_t *c, const eng_event_t *ev) {
    srv_t *s = j->s;
    uint64_t t_in = sl_now_ns();
    if (j->r.score_only) {
        /* max_tokens 0: the prompt was all that was wanted */
        eng_cancel(j->m->eng, c->seq);
        choice_end(j, c, "length");
        return;
    }
    if (j->r.stream) echo_flush(j, c);
    c->n_tokens++;
    if (j->r.return_token_ids) {
        if (c->n_ids == c->cap_ids) {
            size_t ncap = c->cap_ids ? c->cap_ids * 2 : 64;
            int32_t *ni = realloc(c->ids, ncap * sizeof *ni);
            if (ni) {
                c->ids = ni;
                c->cap_ids = ncap;
            }
        }
        if (c->n_ids < c->cap_ids) c->ids[c->n_ids++] = ev->tok.id;
    }
    if (!j->t_first_ns) j->t_first_ns = sl_now_ns();
    sl_buf_clear(&j->piece);
    sl_buf_clear(&j->out);
    detok_push(c->dt, ev->tok.id, &j->piece);
    int hit = stop_feed(&c->stop, j->piece.data ? j->piece.data : "", j->piece.len, &j->out);
    json_t *lp = NULL;
    if (j->r.logprobs) {
        if (j->r.chat) {
            json_t *e = chat_lp_entry(j, &ev->tok);
            if (j->r.stream) {
                lp = json_array();
                json_array_append_new(lp, e);
            } else {
                if (!c->lp) c->lp = json_array();
                json_array_append_new(c->lp, e);
            }
        } else {
            if (j->r.stream) {
                lp = cmpl_lp_new();
                cmpl_lp_add(j, lp, &ev->tok, c->text_off);
            } else {
                if (!c->lp) c->lp = cmpl_lp_new();
                cmpl_lp_add(j, c->lp, &ev->tok, c->text_off);
            }
        }
    }
    c->text_off += j->out.len;
    if (c->tp) {
        /* the parser splits the text into content / reasoning / tool calls
         * and streams each part through on_tc_event. A control token (the
         * detokenizer renders it as nothing) goes in as itself, flagged
         * special: a marker of the call syntax is parsed, others dropped. */
        if (tc_parser_in_reasoning(c->tp)) c->reasoning_tokens++;
        json_decref(c->pending_lp);
        c->pending_lp = lp;
        lp = NULL;
        if (j->out.len) tc_parser_feed(c->tp, j->out.data, j->out.len, false);
        if (tok_is_control(j->m->tok, ev->tok.id)) {
            sl_buf_clear(&j->piece);
            tok_token_to_piece(j->m->tok, ev->tok.id, true, &j->piece);
            if (j->piece.len) tc_parser_feed(c->tp, j->piece.data, j->piece.len, true);
        }
        sl_buf_clear(&j->out);
        if (j->r.stream && !j->fmt && c->pending_lp) { /* held back: the logprobs go alone */
            stream_delta(j, c, "", 0, c->pending_lp, NULL, false);
            c->pending_lp = NULL;
        }
    }
    if (j->fmt) {
        j->fmt->text(j->fst, false, j->out.data, j->out.len); /* no parser: all of it is answer text */
        fmt_flush(j);
        json_decref(lp);
        lp = NULL;
    }
    if (j->r.stream) {
        if (!j->fmt && (j->out.len || lp)) stream_delta(j, c, j->out.data, j->out.len, lp, NULL, false);
        uint64_t t_out = sl_now_ns();
        s->tok_work_ns += t_out - t_in;
        s->tok_lat_ns += t_out - ev->t_ns;
        s->tok_n++;
        if (t_out - t_in > s->tok_work_max_ns) s->tok_work_max_ns = t_out - t_in;
    } else if (!j->fmt) {
        sl_buf_append(&c->text, j->out.data ? j->out.data : "", j->out.len);
    }
    if (hit == 1) {
        eng_cancel(j->m->eng, c->seq);
        choice_end(j, c, "stop");
    }
}

static void gen_on_grammar(srv_t *s, const eng_event_t *ev);
static void job_fail(gen_job_t *j, oai_error_t *e);
static int job_submit(gen_job_t *j, oai_error_t *e);

void gen_on_event(srv_t *s, const eng_event_t *ev) {
    if (ev->type == ENG_EV_GRAMMAR) {
        gen_on_grammar(s, ev);
        return;
    }
    gen_choice_t *c = ev->user;
    gen_job_t *j = c->job;
    c->eng_prompt = ev->usage.prompt_tokens;
    c->eng_cached = ev->usage.cached_tokens;
    c->eng_completion = ev->usage.completion_tokens;
    c->eng_known = true;
    if (ev->type == ENG_EV_PROMPT) {
        if (c->plp && ev->pos > 0 && (size_t)ev->pos < j->prompts[c->prompt].n) c->plp[ev->pos] = ev->tok;
        return;
    }
    if (ev->type == ENG_EV_TOKEN) {
        if (!c->done && !j->finished) on_token(j, c, ev);
        return;
    }
    c->live = false;
    j->n_live--;
    if (!c->done && !j->finished) {
        /* the engine counted a sampled stop token the text never shows */
        c->n_tokens = j->r.score_only ? 0 : ev->usage.completion_tokens;
        if (ev->finish == ENG_FINISH_ERROR) {
            j->failed = true;
            sl_warn("model %s: generation failed: %s", j->m->id, ev->error ? ev->error : "?");
            snprintf(j->fail_msg, sizeof j->fail_msg, "generation failed: %s", ev->error ? ev->error : "unknown error");
            if (j->r.stream && j->req && !j->fmt) {
                oai_error_t e;
                oai_fail(&e, 500, "server_error", NULL, NULL, "generation failed: %s",
                         ev->error ? ev->error : "unknown error");
                char *body = oai_error_json(&e);
                struct evbuffer *b = evbuffer_new();
                evbuffer_add_printf(b, "data: %s\n\n", body ? body : "{}");
                evhttp_send_reply_chunk(j->req, b);
                evbuffer_free(b);
                free(body);
            }
        }
        choice_end(j, c, ev->finish == ENG_FINISH_LENGTH || j->r.score_only ? "length" : "stop");
    }
    job_maybe_free(j);
}

/* ---- request intake ---- */

/* FIM: 400 unless the model has the three FIM tokens. */
static int fim_check(gen_job_t *j, oai_error_t *e) {
    if (fim_supported(&j->m->fim)) return 0;
    return oai_fail(e, 400, NULL, "fim_not_supported", j->r.chat ? "prefix" : "suffix",
                    "The model '%.100s' has no fill-in-the-middle tokens (FIM prefix/suffix/middle), "
                    "so it cannot fill in between a prefix and a suffix. GET /v1/models shows "
                    "capabilities.fim for each model.", j->m->id);
}

/* g->ids = the FIM layout around prefix ids (consumed) and the suffix. */
static int fim_prompt(gen_job_t *j, gen_prompt_t *g, int32_t *pre, size_t n_pre, oai_error_t *e) {
    srv_model_t *m = j->m;
    char err[SL_ERR_MAX];
    int32_t *suf = NULL;
    size_t n_suf = 0;
    if (tok_encode(m->tok, j->r.suffix, j->r.suffix_len, false, false, &suf, &n_suf, err, sizeof err) != 0) {
        free(pre);
        return oai_fail(e, 400, NULL, NULL, "suffix", "Cannot tokenize the suffix: %s", err);
    }
    int rc = fim_layout(&m->fim, j->r.fim_spm, pre, n_pre, suf, n_suf, &g->ids, &g->n);
    free(pre);
    free(suf);
    return rc == 0 ? 0 : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* The request without its last message (the assistant prefix message). */
static json_t *without_last_message(const json_t *body) {
    json_t *c = json_copy((json_t *)body);
    json_t *msgs = json_array();
    const json_t *all = json_object_get(body, "messages");
    if (!c || !msgs) {
        json_decref(c);
        json_decref(msgs);
        return NULL;
    }
    for (size_t i = 0; i + 1 < json_array_size(all); i++) json_array_append(msgs, json_array_get(all, i));
    json_object_set_new(c, "messages", msgs);
    return c;
}

/* Chat: the model's template over the messages with the generation prompt,
 * then the answer's prefix when one is given, so the prompt ends inside the
 * assistant turn exactly where the model would have written that text. */
static int chat_prompt(gen_job_t *j, gen_prompt_t *g, oai_error_t *e) {
    srv_model_t *m = j->m;
    char err[SL_ERR_MAX];
    if (j->r.fim) {
        if (fim_check(j, e) != 0) return -1;
        int32_t *pre = NULL;
        size_t n_pre = 0;
        if (tok_encode(m->tok, j->r.prefix, j->r.prefix_len, false, false, &pre, &n_pre, err, sizeof err) != 0)
            return oai_fail(e, 400, NULL, NULL, "prefix", "Cannot tokenize the prefix: %s", err);
        return fim_prompt(j, g, pre, n_pre, e);
    }
    if (!m->tmpl)
        return oai_fail(e, 500, "server_error", "chat_template_error", NULL,
                        "The model's chat template cannot be used (%s); use /v1/completions.",
                        m->tmpl_error ? m->tmpl_error : "none");
    chat_render_opts_t o = {0};
    o.bos_token = m->bos_text;
    o.eos_token = m->eos_text;
    o.add_generation_prompt = true;
    o.harmony = m->tc_family == TC_FAMILY_HARMONY;
    json_t *kw = json_object_get(j->r.body, "chat_template_kwargs");
    o.kwargs = json_is_object(kw) ? kw : NULL;
    /* reasoning_effort (OpenAI's chat parameter) reaches the template as
     * the variable of that name (gpt-oss: "Reasoning: low|medium|high")
     * unless chat_template_kwargs sets it; the levels beyond the three are
     * mapped to the nearest one */
    json_t *kw_own = NULL;
    const json_t *ef = json_object_get(j->r.body, "reasoning_effort");
    if (ef && !json_is_null(ef)) {
        const char *v = json_string_value(ef);
        const char *lvl = !v                                                  ? NULL
                          : !strcmp(v, "none") || !strcmp(v, "minimal") || !strcmp(v, "low") ? "low"
                          : !strcmp(v, "medium")                              ? "medium"
                          : !strcmp(v, "high") || !strcmp(v, "xhigh")         ? "high"
                                                                              : NULL;
        if (!lvl)
            return oai_fail(e, 400, NULL, "invalid_value", "reasoning_effort",
                            "Invalid value for 'reasoning_effort'. Supported values are 'none', "
                            "'minimal', 'low', 'medium', 'high' and 'xhigh'.");
        if (!json_object_get(o.kwargs, "reasoning_effort")) {
            kw_own = o.kwargs ? json_copy((json_t *)o.kwargs) : json_object();
            if (!kw_own || json_object_set_new(kw_own, "reasoning_effort", json_string(lvl))) {
                json_decref(kw_own);
                return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            }
            o.kwargs = kw_own;
        }
    }
    json_t *req = j->r.assistant_prefix ? without_last_message(j->r.body) : json_incref(j->r.body);
    if (!req) {
        json_decref(kw_own);
        return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    sl_buf_t text = {0};
    int rc = chat_render(m->tmpl, req, &o, &text, err, sizeof err);
    json_decref(req);
    json_decref(kw_own);
    if (rc != 0) {
        sl_buf_free(&text);
        return oai_fail(e, 400, NULL, "invalid_messages", "messages", "Invalid 'messages': %s", err);
    }
    if (j->r.prefix) sl_buf_append(&text, j->r.prefix, j->r.prefix_len);
    tools_set_prompt(&j->tools, text.data ? text.data : "", text.len);
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(m->tok, text.data ? text.data : "", text.len, false, true, &ids, &n, err, sizeof err) != 0) {
        sl_buf_free(&text);
        return oai_fail(e, 400, NULL, NULL, "messages", "Cannot tokenize the prompt: %s", err);
    }
    sl_buf_free(&text);
    int32_t bos = tok_bos(m->tok);
    if (tok_add_bos(m->tok) && bos >= 0 && (n == 0 || ids[0] != bos)) {
        int32_t *ni = realloc(ids, (n + 1) * sizeof *ni);
        if (!ni) {
            free(ids);
            return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        }
        ids = ni;
        memmove(ids + 1, ids, n * sizeof *ids);
        ids[0] = bos;
        n++;
    }
    g->ids = ids;
    g->n = n;
    return 0;
}

static int build_prompts(gen_job_t *j, oai_error_t *e) {
    srv_model_t *m = j->m;
    char err[SL_ERR_MAX];
    if (j->r.chat) {
        j->prompts = calloc(1, sizeof *j->prompts);
        if (!j->prompts) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        j->n_prompts = 1;
        return chat_prompt(j, &j->prompts[0], e);
    }
    if (j->r.fim && fim_check(j, e) != 0) return -1;
    j->prompts = calloc((size_t)j->r.n_prompts, sizeof *j->prompts);
    if (!j->prompts) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    j->n_prompts = j->r.n_prompts;
    for (int i = 0; i < j->r.n_prompts; i++) {
        oai_prompt_t *p = &j->r.prompts[i];
        gen_prompt_t *g = &j->prompts[i];
        if (p->text) {
            /* a FIM prefix is text in the FIM layout: no BOS of its own, no control tokens */
            if (tok_encode(m->tok, p->text, strlen(p->text), !j->r.fim, !j->r.fim, &g->ids, &g->n, err,
                           sizeof err) != 0)
                return oai_fail(e, 400, NULL, NULL, "prompt", "Cannot tokenize the prompt: %s", err);
            if (j->r.echo && !(g->text = sl_strdup(p->text)))
                return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        } else {
            g->ids = malloc((p->n_ids ? p->n_ids : 1) * sizeof *g->ids);
            if (!g->ids) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            memcpy(g->ids, p->ids, p->n_ids * sizeof *g->ids);
            g->n = p->n_ids;
            int nv = tok_n_vocab(m->tok);
            for (size_t k = 0; k < g->n; k++)
                if (g->ids[k] >= nv)
                    return oai_fail(e, 400, NULL, "invalid_value", "prompt",
                                    "Invalid 'prompt': token id %d is outside the vocabulary (0..%d).",
                                    (int)g->ids[k], nv - 1);
            if (j->r.echo) {
                sl_buf_t b = {0};
                tok_decode(m->tok, g->ids, g->n, false, &b);
                g->text = sl_buf_steal(&b);
            }
        }
        if (j->r.fim) {
            int32_t *pre = g->ids;
            size_t n_pre = g->n;
            g->ids = NULL;
            g->n = 0;
            if (fim_prompt(j, g, pre, n_pre, e) != 0) return -1;
        }
    }
    return 0;
}

static int check_lengths(gen_job_t *j, int *max_tokens, oai_error_t *e) {
    int n_ctx = eng_n_ctx(j->m->eng);
    const char *param = j->fmt ? j->fmt->input_param : j->r.chat ? "messages" : "prompt";
    size_t longest = 0;
    for (int i = 0; i < j->n_prompts; i++) {
        size_t n = j->prompts[i].n;
        if (n == 0)
            return oai_fail(e, 400, NULL, "invalid_value", param, "The prompt is empty (0 tokens).");
        if (n >= (size_t)n_ctx)
            return oai_fail(e, 400, NULL, "context_length_exceeded", param,
                            "This model's maximum context length is %d tokens. However, your prompt is "
                            "%zu tokens long, which leaves no room for the completion. Please reduce "
                            "the length of the %s.", n_ctx, n, param);
        if (n > longest) longest = n;
        j->prompt_tokens += (int64_t)n;
    }
    if (j->r.max_tokens > 0) {
        if ((size_t)j->r.max_tokens + longest > (size_t)n_ctx)
            return oai_fail(e, 400, NULL, "context_length_exceeded", "max_tokens",
                            "This model's maximum context length is %d tokens. However, you requested "
                            "%zu tokens (%zu in the %s, %d for the completion). Please reduce the "
                            "length of the %s or the completion (max_tokens).", n_ctx,
                            longest + (size_t)j->r.max_tokens, longest, param, j->r.max_tokens, param);
        *max_tokens = j->r.max_tokens;
    } else {
        *max_tokens = n_ctx - (int)longest;
    }
    if (j->r.score_only) *max_tokens = 1;
    return 0;
}

static void stream_start(gen_job_t *j) {
    srv_t *s = j->s;
    struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
    srv_add_common_headers(s, j->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    srv_count_status(s, 200);
    evhttp_send_reply_start(j->req, 200, "OK");
    if (j->fmt) {
        gen_fmt_info_t in;
        fmt_info(j, false, &in);
        j->fmt->stream_start(j->fst, &in);
        fmt_flush(j);
        return;
    }
    sse_head_init(j);
    for (int i = 0; i < j->n_ch; i++) {
        gen_choice_t *c = &j->ch[i];
        if (j->r.chat && c->tp) {
            /* content null until some is sent: a reply of tool calls only
             * reassembles to content null, as its non-streamed message */
            stream_delta_ex(j, c, NULL, 0, "{\"role\":\"assistant\",\"content\":null}", NULL, NULL, false);
        } else if (j->r.chat) {
            stream_delta(j, c, "", 0, NULL, NULL, true);
        } else if (c->plp) {
            c->echo_pending = true;
        } else if (j->r.echo) {
            const char *t = j->prompts[c->prompt].text ? j->prompts[c->prompt].text : "";
            stream_delta(j, c, t, strlen(t), NULL, NULL, false);
        }
    }
}

/* Responses / Anthropic Messages: the format translates the body into
 * the chat request it means, parsed into j->r like any chat request. */
static int fmt_parse(gen_job_t *j, struct evhttp_request *req, const char *body, size_t len, oai_error_t *e) {
    json_t *chat = NULL;
    if (j->fmt->parse(j->s, req, body, len, j->count_only, rng_next(j->s), &j->fst, &chat, e) != 0) {
        j->err_native = true;
        return -1;
    }
    return oai_parse_json(chat, true, &j->r, e);
}

/* Sends an error answer in the request's format. */
static void send_error_fmt(srv_t *s, const gen_fmt_t *fmt, struct evhttp_request *req, oai_error_t *e,
                           bool chat_names) {
    if (fmt) fmt->send_error(s, req, e, chat_names);
    else srv_send_error(s, req, e);
}

static void send_error(gen_job_t *j, struct evhttp_request *req, oai_error_t *e) {
    if (j->internal) {
        char *body = oai_error_json(e);
        json_t *v = body ? json_loads(body, 0, NULL) : NULL;
        free(body);
        internal_answer(j, e->status, v);
        return;
    }
    send_error_fmt(j->s, j->fmt, req, e, !j->err_native);
}

/* count_tokens: the prompt's length, nothing generated or billed. */
static void send_count(gen_job_t *j) {
    srv_send_jsonv(j->s, j->req, 200, json_pack("{s:I}", "input_tokens", (json_int_t)j->prompts[0].n));
}

static void job_start(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, gen_kind_t kind,
                      gen_job_t *j, const char *body, size_t len);

void gen_handle(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, gen_kind_t kind) {
    const gen_fmt_t *fmt = kind == GEN_RESPONSES                               ? &resp_gen_fmt
                           : kind == GEN_MESSAGES || kind == GEN_COUNT_TOKENS ? &anth_gen_fmt
                                                                               : NULL;
    oai_error_t e;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > s->cfg.max_body) {
        oai_fail(&e, 413, NULL, "request_too_large", NULL,
                 "The request body is %zu bytes; the limit is %zu bytes.", len, s->cfg.max_body);
        send_error_fmt(s, fmt, req, &e, false);
        return;
    }
    gen_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        send_error_fmt(s, fmt, req, &e, false);
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    job_start(s, conn, req, kind, j, body ? body : "", len);
}

int srv_run_internal(srv_t *s, const srv_internal_t *in) {
    gen_kind_t kind;
    if (!strcmp(in->endpoint, "/v1/chat/completions")) kind = GEN_CHAT;
    else if (!strcmp(in->endpoint, "/v1/completions")) kind = GEN_COMPLETIONS;
    else if (!strcmp(in->endpoint, "/v1/embeddings")) return embed_run_internal(s, in);
    else return -1;
    gen_job_t *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->internal = true;
    j->ij = *in;
    s->n_internal++;
    job_start(s, NULL, NULL, kind, j, in->body, in->len);
    return 0;
}

/* The platform's admission of a job: the route's hook, or an internal
 * job's own begin. */
static int job_begin(gen_job_t *j, struct evhttp_request *req, int64_t est_prompt, int64_t est_completion,
                     oai_error_t *e) {
    if (!j->internal)
        return srv_hook_begin(j->s, req, j->m->id, est_prompt, est_completion, &j->hook, e);
    if (srv_internal_begin(&j->ij, j->m->id, est_prompt, est_completion, &j->hook, e) != 0) return -1;
    j->ij_req = j->hook;
    return 0;
}

/* Starts job j (allocated, nothing else set) on a request body: from the
 * HTTP route (req, conn) or for the server itself (j->internal). */
static void job_start(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, gen_kind_t kind,
                      gen_job_t *j, const char *body, size_t len) {
    const bool chat = kind != GEN_COMPLETIONS;
    const gen_fmt_t *fmt = kind == GEN_RESPONSES                               ? &resp_gen_fmt
                           : kind == GEN_MESSAGES || kind == GEN_COUNT_TOKENS ? &anth_gen_fmt
                                                                               : NULL;
    oai_error_t e;
    j->s = s;
    j->fmt = fmt;
    j->count_only = kind == GEN_COUNT_TOKENS;
    j->t0_ns = sl_now_ns();
    j->next = s->jobs;
    if (s->jobs) s->jobs->prev = j;
    s->jobs = j;
    s->n_jobs++;
    if (j->internal && len > s->cfg.max_body) { /* the route's own limit (gen_handle) */
        oai_fail(&e, 413, NULL, "request_too_large", NULL, "The request body is %zu bytes; the limit is %zu bytes.",
                 len, s->cfg.max_body);
        goto fail;
    }
    if (fmt) {
        if (fmt_parse(j, req, body, len, &e) != 0) goto fail;
    } else if (oai_parse(body, len, chat, &j->r, &e) != 0) {
        goto fail;
    }
    if (j->internal && j->r.stream) {
        oai_fail(&e, 400, NULL, "invalid_value", "stream", "A batch request cannot stream: remove 'stream'.");
        goto fail;
    }
    j->m = srv_find_model(s, j->r.model);
    if (!j->m) {
        srv_model_not_found(s, j->r.model, &e);
        goto fail;
    }
    if (srv_model_embeds(j->m)) {
        oai_fail(&e, 400, NULL, "model_not_supported", "model", "The model '%.100s' %s; it does not generate text.",
                 j->m->id,
                 model_hparams(j->m->model)->pooling == SL_POOLING_RANK ? "is a reranker (/v1/rerank)"
                                                                         : "is an embedding model (/v1/embeddings)");
        goto fail;
    }
    if (chat && !j->r.fim && tools_prepare(j->m, j->r.body, &j->tools, &e) != 0) goto fail;
    if (build_prompts(j, &e) != 0) goto fail;
    if (j->count_only) {
        j->req = req;
        send_count(j);
        job_release(j);
        job_maybe_free(j);
        return;
    }
    if (chat && !j->r.fim &&
        tools_grammar(j->m, &j->tools, j->r.prefix, j->r.prefix_len, &j->tc_grammar, &e) != 0)
        goto fail;
    int max_tokens = 1;
    if (check_lengths(j, &max_tokens, &e) != 0) goto fail;

    if (job_begin(j, req, j->prompt_tokens, (int64_t)max_tokens * j->r.n * j->n_prompts, &e) != 0) goto fail;

    if (fmt)
        snprintf(j->id, sizeof j->id, "%s%016llx%016llx%016llx", fmt->id_prefix, (unsigned long long)rng_next(s),
                 (unsigned long long)rng_next(s), (unsigned long long)rng_next(s));
    else
        snprintf(j->id, sizeof j->id, "%s%016llx%08llx", chat ? "chatcmpl-" : "cmpl-",
                 (unsigned long long)rng_next(s), (unsigned long long)(rng_next(s) & 0xffffffffu));
    j->created = (int64_t)time(NULL);
    j->n_ch = j->n_prompts * j->r.n;
    j->ch = calloc((size_t)j->n_ch, sizeof *j->ch);
    if (!j->ch) {
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_hook;
    }
    for (int i = 0; i < j->n_ch; i++) {
        gen_choice_t *c = &j->ch[i];
        c->job = j;
        c->index = i;
        c->prompt = i / j->r.n;
        stop_init(&c->stop, j->r.stop, j->r.n_stop);
        c->dt = detok_new(j->m->tok, false);
        if (!c->dt) {
            oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail_hook;
        }
        if (j->r.echo && j->prompts[c->prompt].text) {
            sl_buf_puts(&c->text, j->prompts[c->prompt].text);
            c->text_off = c->text.len;
        }
        if (j->tools.parse && !(c->tp = tools_parser_new(&j->tools, on_tc_event, c))) {
            oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail_hook;
        }
        if (j->r.echo && j->r.logprobs) {
            c->plp = calloc(j->prompts[c->prompt].n, sizeof *c->plp);
            if (!c->plp) {
                oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
                goto fail_hook;
            }
        }
    }
    j->max_tokens = max_tokens;
    j->req = req;
    j->conn = conn;
    if (conn) conn->job = j;
    if (j->r.gram_kind) {
        /* structured output: the grammar's index is found or built on the
         * engine's grammar worker (never on this thread); a schema it cannot
         * compile is a 400 before any output (gen_on_grammar). With
         * prefix continuation the grammar starts after the prefix. */
        const bool pre = chat && !j->r.fim && j->r.prefix;
        srv_request_grammar(&j->r, pre ? j->r.prefix : NULL, pre ? j->r.prefix_len : 0, &j->gspec);
        j->gspec.vocab = j->m->gvocab_plain; /* no tool-call markers (NULL: the engine's has none) */
        /* harmony: the constraint applies to the final channel's message */
        if (chat && !j->r.fim && tools_format_grammar(&j->tools, &j->r, &j->gspec, &e) != 0)
            goto fail_hook;
        char err[SL_ERR_MAX];
        if (eng_grammar_prepare(j->m->eng, &j->gspec, j, err, sizeof err) != 0) {
            oai_fail(&e, 400, NULL, "invalid_value", j->r.gram_param, "%s", err);
            goto fail_hook;
        }
        j->gram_wait = true;
        j->n_live++; /* the prepare answer holds the job like a sequence */
        return;
    }
    if (job_submit(j, &e) != 0) goto fail_hook;
    if (j->r.stream) stream_start(j);
    return;

fail_hook:
    j->req = req; /* job_fail answers on it */
    job_fail(j, &e);
    return;
fail:
    send_error(j, req, &e);
    job_release(j);
    job_maybe_free(j);
}

/* Fails a job that has begun (hook, maybe sequences): cancels what was
 * submitted, answers the error while the request is there. */
static void job_fail(gen_job_t *j, oai_error_t *e) {
    srv_t *s = j->s;
    /* sequences already submitted still report FINISH; the job waits for them */
    job_cancel_all(j);
    if (j->hook) {
        if (j->n_live) {
            job_hook_finish_later(j, "error");
        } else {
            if (!j->internal && s->cfg.hooks.abort) s->cfg.hooks.abort(s->cfg.hooks.ctx, j->hook);
            j->hook = NULL; /* internal: ij_status stays NULL, ij.done aborts */
        }
    }
    if (j->req || j->internal) send_error(j, j->req, e);
    job_release(j);
    job_maybe_free(j);
}

/* The structured-output grammar is ready (or cannot be built): submit the
 * sequences, or answer 400 naming the problem. */
static void gen_on_grammar(srv_t *s, const eng_event_t *ev) {
    gen_job_t *j = ev->user;
    j->n_live--;
    j->gram_wait = false;
    j->gix = ev->grammar;
    if (j->finished) { /* the client left meanwhile */
        job_maybe_free(j);
        return;
    }
    oai_error_t e;
    if (!j->m->eng || ev->finish == ENG_FINISH_CANCELLED) { /* shutting down */
        oai_fail(&e, 503, "server_error", "server_shutting_down", NULL, "The server is shutting down.");
    } else if (!j->gix) {
        if (j->r.gram_kind == GRAM_SRC_JSON_SCHEMA && j->r.gram_name[0])
            oai_fail(&e, 400, NULL, "invalid_value", j->r.gram_param,
                     "Invalid schema for response_format '%s': %s", j->r.gram_name, ev->error ? ev->error : "?");
        else
            oai_fail(&e, 400, NULL, "invalid_value", j->r.gram_param, "Invalid '%s': %s", j->r.gram_param,
                     ev->error ? ev->error : "?");
    } else if (job_submit(j, &e) == 0) {
        if (j->r.stream) stream_start(j);
        return;
    }
    job_fail(j, &e);
}

/* Submits one engine sequence per choice. 0, or -1 with *e (sequences
 * already submitted stay live: the caller fails the job). */
static int job_submit(gen_job_t *j, oai_error_t *e) {
    srv_t *s = j->s;
    for (int i = 0; i < j->n_ch; i++) {
        gen_choice_t *c = &j->ch[i];
        eng_request_t er = {0};
        er.prompt = j->prompts[c->prompt].ids;
        er.n_prompt = j->prompts[c->prompt].n;
        er.max_tokens = j->r.score_only ? 1 : j->max_tokens;
        er.score_prompt = c->plp != NULL;
        er.score_top = j->r.top_logprobs;
        er.sampling = j->r.smp;
        er.no_spec = j->r.no_spec;
        er.sampling.seed = j->r.has_seed ? j->r.seed + (uint64_t)(i % j->r.n) : rng_next(s);
        er.stop_ids = j->r.fim ? j->m->fim_stop : j->m->eog;
        er.n_stop_ids = j->r.fim ? j->m->n_fim_stop : j->m->n_eog;
        er.user = c;
        if (j->gix) { /* structured output, prepared */
            er.grammar = j->gspec;
            er.grammar.index = j->gix;
        }
        /* the tool-call grammar; required / named calls win over another
         * constraint, auto leaves one already set alone */
        if (eng_grammar_set(&j->tc_grammar) &&
            (!eng_grammar_set(&er.grammar) || j->tools.req.choice != TC_CHOICE_AUTO))
            er.grammar = j->tc_grammar;
        if (j->r.chat) tools_think_budget(&j->tools, j->r.thinking_budget, &er);
        char err[SL_ERR_MAX];
        int rc = eng_submit(j->m->eng, &er, &c->seq, err, sizeof err);
        if (rc != 0) {
            if (rc == ENG_EBUSY) {
                oai_fail(e, 503, "server_error", "server_busy", NULL, "%s", err);
                if (j->req) evhttp_add_header(evhttp_request_get_output_headers(j->req), "Retry-After", "1");
            } else {
                oai_fail(e, 400, NULL, "invalid_value",
                         strstr(err, "logit_bias") ? "logit_bias" : NULL, "%s", err);
            }
            return -1;
        }
        c->live = true;
        j->n_live++;
    }
    return 0;
}
