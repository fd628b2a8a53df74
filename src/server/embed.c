/*
 * embed.c — POST /v1/embeddings (OpenAI's shape) and POST /v1/rerank (the
 * shape the hosted rerank APIs share: query + documents → results by
 * relevance) for embedding models (model_embed_dim > 0; engine.h,
 * eng_embed).
 *
 * Embeddings: `input` is a string, an array of strings, an array of token
 * ids or an array of such arrays (at most EMB_MAX_INPUTS). Text is
 * tokenized with the model's special tokens ([CLS] ... [SEP]); token
 * arrays are used as given. Each vector comes back L2-normalized (as
 * OpenAI's are: cosine similarity is a dot product), as floats or as
 * base64 little-endian float32 (`encoding_format`); `dimensions` keeps
 * the first n components and normalizes again (Matryoshka truncation, for
 * models trained for it). An input longer than the model's context is a
 * 400, as on OpenAI.
 *
 * Rerank: a cross-encoder (pooling RANK) scores each (query, document)
 * pair built as its tokenizer pairs texts — BERT: [CLS] q [SEP] d [SEP]
 * with segment 1 for the document when the model has token types;
 * XLM-RoBERTa: <s> q </s></s> d </s>. A document too long for the context
 * is cut (its end dropped), as rerank APIs do. A decoder reranker
 * (Qwen3-Reranker) has its own prompt: the file's rerank template with
 * {query} and {document} filled in. relevance_score is the sigmoid of a
 * one-logit classifier (0..1, ordered like the logit), or the softmax
 * probability of the first of several outputs (Qwen3-Reranker's "yes");
 * results are sorted by it, best first, ties by index; top_n keeps the
 * first n; return_documents (default true) echoes each document.
 *
 * Billing: the platform hook sees the input tokens as prompt tokens and no
 * completion. Lifetime: a job is bound to its connection like a
 * generation job; a client that leaves cancels the engine request, and
 * the job is freed at the engine's FINISH, which bills what was computed.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/server_int.h"

#define EMB_MAX_INPUTS 2048
#define RERANK_MAX_DOCS 1024

struct emb_job {
    emb_job_t *prev, *next;
    srv_t *s;
    srv_model_t *m;
    srv_conn_t *conn;
    struct evhttp_request *req; /* NULL once answered or the client left */
    bool rerank;
    bool live; /* submitted to the engine; its FINISH not yet seen */
    uint64_t eid;
    void *hook;
    json_t *body;
    int n;          /* inputs (documents) */
    int32_t **toks; /* n arrays */
    int32_t **types;
    int *n_tok;
    int64_t tokens; /* all inputs */
    float *out;     /* n × model_embed_dim */
    /* embeddings */
    bool base64;
    int dims; /* components kept */
    /* rerank */
    json_t *docs; /* borrowed from body */
    int top_n;
    bool return_documents;
    /* srv_run_internal (a batch's request): no connection; the answer and
     * the usage go to ij.done when the job is freed (as in gen.c) */
    bool internal;
    srv_internal_t ij;
    void *ij_req;
    const char *ij_status; /* the hook finished with it; NULL = abort */
    srv_usage_t ij_u;
    int ij_http;
    char *ij_body;
};

/* ---- lifetime ---- */

static void job_free(emb_job_t *j) {
    srv_t *s = j->s;
    if (j->internal) {
        const char *body = j->ij_body ? j->ij_body : "{}";
        j->ij.done(j->ij.ctx, j->ij_req, j->ij_http ? j->ij_http : 500, body, strlen(body),
                   j->ij_status ? &j->ij_u : NULL, j->ij_status ? j->ij_status : "aborted");
        free(j->ij_body);
        s->n_internal--;
    }
    if (j->prev) j->prev->next = j->next;
    else s->ejobs = j->next;
    if (j->next) j->next->prev = j->prev;
    s->n_ejobs--;
    for (int i = 0; i < j->n; i++) {
        if (j->toks) free(j->toks[i]);
        if (j->types) free(j->types[i]);
    }
    free(j->toks);
    free(j->types);
    free(j->n_tok);
    free(j->out);
    json_decref(j->body);
    free(j);
}

static void job_release(emb_job_t *j) {
    if (j->conn && j->conn->ejob == j) j->conn->ejob = NULL;
    j->conn = NULL;
    j->req = NULL;
}

static void job_hook_finish(emb_job_t *j, int64_t tokens, const char *status) {
    srv_t *s = j->s;
    if (!j->hook) return;
    srv_usage_t u = {0};
    u.prompt_tokens = tokens;
    u.ttft_ms = -1;
    if (j->internal) {
        j->ij_u = u;
        j->ij_status = status;
    } else if (s->cfg.hooks.finish) {
        s->cfg.hooks.finish(s->cfg.hooks.ctx, j->hook, &u, status);
    }
    j->hook = NULL;
}

/* The answer: to the client, or kept for an internal job's done (the
 * first answer stands). Steals body (heap JSON text). */
static void reply_text(emb_job_t *j, struct evhttp_request *req, int status, char *body) {
    if (j->internal) {
        if (!j->ij_body) {
            j->ij_http = status;
            j->ij_body = body;
        } else {
            free(body);
        }
        return;
    }
    if (req) srv_send_json(j->s, req, status, body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

static void reply_error(emb_job_t *j, struct evhttp_request *req, const oai_error_t *e) {
    if (!j->internal) {
        if (req) srv_send_error(j->s, req, e);
        return;
    }
    reply_text(j, req, e->status, oai_error_json(e));
}

void embed_conn_lost(emb_job_t *j) {
    if (j->live) eng_cancel(j->m->eng, j->eid);
    job_release(j);
}

void embed_poll_disconnects(srv_t *s) {
    for (emb_job_t *j = s->ejobs, *next; j; j = next) {
        next = j->next;
        if (j->conn && srv_conn_gone(j->conn)) evhttp_connection_free(j->conn->evcon); /* → embed_conn_lost */
    }
}

void embed_free_all(srv_t *s) {
    while (s->ejobs) {
        emb_job_t *j = s->ejobs;
        if (j->internal && !j->ij_status) { /* unbilled, run again after a restart */
            j->hook = NULL;
            j->ij_status = "shutdown";
            j->ij_http = 503;
        }
        job_hook_finish(j, 0, "cancelled");
        job_free(j);
    }
}

/* ---- request parsing ---- */

/* Input j->n: its ids (and segment ids, or NULL), owned by the job from now. */
static void add_input(emb_job_t *j, int32_t *ids, int32_t *types, int n) {
    j->toks[j->n] = ids;
    j->types[j->n] = types;
    j->n_tok[j->n] = n;
    j->n++;
    j->tokens += n;
}

static int alloc_inputs(emb_job_t *j, size_t n, oai_error_t *e) {
    j->toks = calloc(n, sizeof *j->toks);
    j->types = calloc(n, sizeof *j->types);
    j->n_tok = calloc(n, sizeof *j->n_tok);
    if (!j->toks || !j->types || !j->n_tok) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

static int too_long(size_t n_tokens, int max, size_t index, bool many, oai_error_t *e) {
    const int n = (int)SL_MIN(n_tokens, (size_t)INT32_MAX);
    if (many)
        return oai_fail(e, 400, NULL, "context_length_exceeded", "input",
                        "This model's maximum context length is %d tokens, however you requested %d tokens in "
                        "input %zu. Please reduce the length of the input.",
                        max, n, index);
    return oai_fail(e, 400, NULL, "context_length_exceeded", "input",
                    "This model's maximum context length is %d tokens, however you requested %d tokens. Please "
                    "reduce the length of the input.",
                    max, n);
}

/* One text input: its ids with the model's special tokens. */
static int input_text(emb_job_t *j, const char *text, size_t len, size_t index, bool many, oai_error_t *e) {
    const int max = eng_n_ctx(j->m->eng);
    if (len == 0)
        return oai_fail(e, 400, NULL, "invalid_value", "input",
                        many ? "'$.input[%zu]' is an empty string; every input must have text."
                             : "'$.input' is an empty string; it must have text.",
                        index);
    int32_t *ids = NULL;
    size_t n = 0;
    char err[SL_ERR_MAX];
    if (tok_encode(j->m->tok, text, len, true, false, &ids, &n, err, sizeof err) != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "input", "input %zu cannot be tokenized: %s", index, err);
    if (n == 0 || n > (size_t)max) {
        free(ids);
        return n == 0 ? oai_fail(e, 400, NULL, "invalid_value", "input", "input %zu has no tokens", index)
                      : too_long(n, max, index, many, e);
    }
    add_input(j, ids, NULL, (int)n);
    return 0;
}

/* One input given as token ids (used as they are). */
static int input_ids(emb_job_t *j, const json_t *arr, size_t index, bool many, oai_error_t *e) {
    const int max = eng_n_ctx(j->m->eng);
    const int n_vocab = model_hparams(j->m->model)->n_vocab;
    const size_t n = json_array_size(arr);
    if (n == 0) return oai_fail(e, 400, NULL, "invalid_value", "input", "input %zu is an empty array of tokens", index);
    if (n > (size_t)max) return too_long(n, max, index, many, e);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *v = json_array_get(arr, k);
        const json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || id < 0 || id >= n_vocab) {
            free(ids);
            return oai_fail(e, 400, NULL, "invalid_value", "input",
                            "input %zu: element %zu must be a token id from 0 to %d", index, k, n_vocab - 1);
        }
        ids[k] = (int32_t)id;
    }
    add_input(j, ids, NULL, (int)n);
    return 0;
}

static int parse_embeddings(emb_job_t *j, oai_error_t *e) {
    const json_t *in = json_object_get(j->body, "input");
    const int dim = model_embed_dim(j->m->model);
    if (!in) return oai_fail(e, 400, NULL, "missing_required_parameter", "input", "Missing required parameter: 'input'.");
    if (json_is_string(in)) {
        if (alloc_inputs(j, 1, e)) return -1;
        if (input_text(j, json_string_value(in), json_string_length(in), 0, false, e)) return -1;
    } else if (json_is_array(in)) {
        const size_t n = json_array_size(in);
        if (n == 0) return oai_fail(e, 400, NULL, "invalid_value", "input", "'$.input' is an empty array.");
        const json_t *first = json_array_get(in, 0);
        if (json_is_integer(first)) { /* one input of token ids */
            if (alloc_inputs(j, 1, e) || input_ids(j, in, 0, false, e)) return -1;
        } else {
            if (n > EMB_MAX_INPUTS)
                return oai_fail(e, 400, NULL, "invalid_value", "input",
                                "'$.input' has %zu items; at most %d inputs per request.", n, EMB_MAX_INPUTS);
            if (alloc_inputs(j, n, e)) return -1;
            for (size_t i = 0; i < n; i++) {
                const json_t *v = json_array_get(in, i);
                if (json_is_string(v)) {
                    if (input_text(j, json_string_value(v), json_string_length(v), i, true, e)) return -1;
                } else if (json_is_array(v)) {
                    if (input_ids(j, v, i, true, e)) return -1;
                } else {
                    return oai_fail(e, 400, NULL, "invalid_type", "input",
                                    "'$.input[%zu]' is %s; expected a string or an array of token ids.", i,
                                    oai_json_kind(v));
                }
            }
        }
    } else {
        return oai_fail(e, 400, NULL, "invalid_type", "input",
                        "'$.input' is %s; expected a string, an array of strings, an array of token ids or an "
                        "array of such arrays.",
                        oai_json_kind(in));
    }
    const json_t *fmt = json_object_get(j->body, "encoding_format");
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_string_value(fmt);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return oai_fail(e, 400, NULL, "invalid_value", "encoding_format",
                            "'encoding_format' must be 'float' or 'base64'.");
        j->base64 = !strcmp(f, "base64");
    }
    j->dims = dim;
    const json_t *d = json_object_get(j->body, "dimensions");
    if (d && !json_is_null(d)) {
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > dim)
            return oai_fail(e, 400, NULL, "invalid_value", "dimensions",
                            "'dimensions' must be an integer from 1 to %d (the model's embedding size).", dim);
        j->dims = (int)json_integer_value(d);
    }
    const json_t *user = json_object_get(j->body, "user");
    if (user && !json_is_null(user) && !json_is_string(user))
        return oai_fail(e, 400, NULL, "invalid_type", "user", "'user' must be a string.");
    return 0;
}

static const char *doc_text(const json_t *d, size_t *len) {
    const json_t *t = json_is_object(d) ? json_object_get(d, "text") : d;
    if (!json_is_string(t)) return NULL;
    *len = json_string_length(t);
    return json_string_value(t);
}

/* The pair (query, document) as the model's tokenizer joins two texts. */
static int rerank_pair(emb_job_t *j, const int32_t *q, size_t nq, const char *text, size_t len, size_t index,
                       oai_error_t *e) {
    const sl_tok_t *t = j->m->tok;
    const int max = eng_n_ctx(j->m->eng);
    const bool bert = !strcmp(tok_model_name(t), "bert"); /* WordPiece: one separator, segment ids */
    const int32_t cls = tok_bos(t), sep = tok_sep(t) >= 0 ? tok_sep(t) : tok_eos(t);
    const int n_special = (cls >= 0) + (bert ? 2 : 3) * (sep >= 0);
    int32_t *d = NULL;
    size_t nd = 0;
    char err[SL_ERR_MAX];
    if (len && tok_encode(t, text, len, false, false, &d, &nd, err, sizeof err) != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "documents", "document %zu cannot be tokenized: %s", index,
                        err);
    const size_t room = (size_t)max - nq - (size_t)n_special; /* nq + n_special < max: checked by the caller */
    if (nd > room) nd = room; /* the document's end is dropped */
    const size_t n = nq + nd + (size_t)n_special;
    int32_t *ids = malloc(n * sizeof *ids), *types = malloc(n * sizeof *types);
    if (!ids || !types) {
        free(d);
        free(ids);
        free(types);
        return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    size_t k = 0;
    if (cls >= 0) ids[k++] = cls;
    memcpy(ids + k, q, nq * sizeof *q);
    k += nq;
    if (sep >= 0) ids[k++] = sep;
    if (sep >= 0 && !bert) ids[k++] = sep;
    const size_t second = k;
    if (nd) memcpy(ids + k, d, nd * sizeof *d);
    k += nd;
    if (sep >= 0) ids[k++] = sep;
    free(d);
    const bool segments = bert && model_hparams(j->m->model)->n_token_types >= 2;
    for (size_t i = 0; i < n; i++) types[i] = segments && i >= second ? 1 : 0;
    add_input(j, ids, types, (int)n);
    return 0;
}

/* A decoder reranker's pair (Qwen3-Reranker): the file's rerank template
 * (tokenizer.chat_template.rerank) with {query} and {document} replaced,
 * tokenized whole with its special tokens, as llama.cpp's server does; a
 * document too long for the context is cut (whole tokens from its end)
 * until the pair fits. */
static int rerank_templated(emb_job_t *j, const char *tmpl, size_t tl, const char *q, size_t ql, const char *d,
                            size_t dl, size_t index, oai_error_t *e) {
    const sl_tok_t *t = j->m->tok;
    const int max = eng_n_ctx(j->m->eng);
    const char *pq = memmem(tmpl, tl, "{query}", 7), *pd = memmem(tmpl, tl, "{document}", 10);
    sl_buf_t doc = {0}, text = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    char err[SL_ERR_MAX];
    int rc = -1;
    if (sl_buf_append(&doc, d, dl) != 0) goto oom;
    for (int round = 0; round < 4; round++) {
        text.len = 0;
        const char *at = tmpl;
        while (at < tmpl + tl) { /* the template with both placeholders replaced, in order */
            const char *next = pq && pq >= at && (!pd || pd < at || pq < pd) ? pq : pd && pd >= at ? pd : NULL;
            const size_t upto = next ? (size_t)(next - at) : (size_t)(tmpl + tl - at);
            if (sl_buf_append(&text, at, upto) != 0) goto oom;
            if (!next) break;
            const bool isq = next == pq;
            if (sl_buf_append(&text, isq ? q : doc.data ? doc.data : "", isq ? ql : doc.len) != 0) goto oom;
            at = next + (isq ? 7 : 10);
        }
        free(ids);
        ids = NULL;
        if (tok_encode(t, text.data ? text.data : "", text.len, true, true, &ids, &n, err, sizeof err) != 0) {
            oai_fail(e, 400, NULL, "invalid_value", "documents", "document %zu cannot be tokenized: %s", index, err);
            goto done;
        }
        if (n <= (size_t)max) break;
        /* cut the document by what is over, as tokens, and try again */
        int32_t *dt = NULL;
        size_t nd = 0;
        if (tok_encode(t, doc.data ? doc.data : "", doc.len, false, false, &dt, &nd, err, sizeof err) != 0) goto oom;
        const size_t over = n - (size_t)max + (size_t)round * 4;
        const size_t keep = nd > over ? nd - over : 0;
        sl_buf_t cut = {0};
        if (keep) tok_decode(t, dt, keep, false, &cut);
        free(dt);
        sl_buf_free(&doc);
        doc = cut;
    }
    if (n > (size_t)max) {
        oai_fail(e, 400, NULL, "context_length_exceeded", "query",
                 "The query and the rerank template take more than this model's context of %d tokens.", max);
        goto done;
    }
    add_input(j, ids, NULL, (int)n);
    rc = 0;
    ids = NULL;
    goto done;
oom:
    oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
done:
    free(ids);
    sl_buf_free(&doc);
    sl_buf_free(&text);
    return rc;
}

static int parse_rerank(emb_job_t *j, oai_error_t *e) {
    const json_t *qv = json_object_get(j->body, "query");
    const json_t *docs = json_object_get(j->body, "documents");
    if (!qv) return oai_fail(e, 400, NULL, "missing_required_parameter", "query", "Missing required parameter: 'query'.");
    if (!json_is_string(qv) || json_string_length(qv) == 0)
        return oai_fail(e, 400, NULL, "invalid_value", "query", "'query' must be a non-empty string.");
    if (!docs)
        return oai_fail(e, 400, NULL, "missing_required_parameter", "documents",
                        "Missing required parameter: 'documents'.");
    if (!json_is_array(docs) || json_array_size(docs) == 0 || json_array_size(docs) > RERANK_MAX_DOCS)
        return oai_fail(e, 400, NULL, "invalid_value", "documents",
                        "'documents' must be an array of 1 to %d strings (or objects with a 'text' string).",
                        RERANK_MAX_DOCS);
    const size_t n = json_array_size(docs);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (!doc_text(json_array_get(docs, i), &len))
            return oai_fail(e, 400, NULL, "invalid_type", "documents",
                            "'documents[%zu]' is %s; expected a string or an object with a 'text' string.", i,
                            oai_json_kind(json_array_get(docs, i)));
    }
    j->docs = (json_t *)docs;
    j->top_n = (int)n;
    const json_t *tn = json_object_get(j->body, "top_n");
    if (tn && !json_is_null(tn)) {
        if (!json_is_integer(tn) || json_integer_value(tn) < 1)
            return oai_fail(e, 400, NULL, "invalid_value", "top_n", "'top_n' must be a positive integer.");
        if (json_integer_value(tn) < (json_int_t)n) j->top_n = (int)json_integer_value(tn);
    }
    j->return_documents = true;
    const json_t *rd = json_object_get(j->body, "return_documents");
    if (rd && !json_is_null(rd)) {
        if (!json_is_boolean(rd))
            return oai_fail(e, 400, NULL, "invalid_type", "return_documents", "'return_documents' must be a boolean.");
        j->return_documents = json_is_true(rd);
    }
    gguf_str_t tmpl = {0};
    if (gguf_get_str(model_gguf(j->m->model), "tokenizer.chat_template.rerank", &tmpl, NULL, 0) == 0 && tmpl.len &&
        memmem(tmpl.ptr, tmpl.len, "{query}", 7) && memmem(tmpl.ptr, tmpl.len, "{document}", 10)) {
        int rc = alloc_inputs(j, n, e);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            size_t len = 0;
            const char *text = doc_text(json_array_get(docs, i), &len);
            rc = rerank_templated(j, tmpl.ptr, tmpl.len, json_string_value(qv), json_string_length(qv), text, len, i,
                                  e);
        }
        return rc;
    }
    int32_t *q = NULL;
    size_t nq = 0;
    char err[SL_ERR_MAX];
    if (tok_encode(j->m->tok, json_string_value(qv), json_string_length(qv), false, false, &q, &nq, err,
                   sizeof err) != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "query", "the query cannot be tokenized: %s", err);
    const int max = eng_n_ctx(j->m->eng);
    if (nq + 5 > (size_t)max) { /* room for the special tokens and some document */
        free(q);
        return oai_fail(e, 400, NULL, "context_length_exceeded", "query",
                        "The query is %zu tokens; this model's context of %d tokens must hold it with each "
                        "document.",
                        nq, max);
    }
    int rc = alloc_inputs(j, n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = 0;
        const char *text = doc_text(json_array_get(docs, i), &len);
        rc = rerank_pair(j, q, nq, text, len, i, e);
    }
    free(q);
    return rc;
}

/* ---- responses ---- */

static void normalize(float *v, int n) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    if (ss > 0.0) {
        const float inv = (float)(1.0 / sqrt(ss));
        for (int i = 0; i < n; i++) v[i] *= inv;
    }
}

static json_t *usage_json(const emb_job_t *j) {
    return json_pack("{s:I, s:I}", "prompt_tokens", (json_int_t)j->tokens, "total_tokens", (json_int_t)j->tokens);
}

/* Floats as JSON numbers with 9 significant digits (every float32 exactly). */
static void send_body(emb_job_t *j, json_t *v) {
    char *body = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(v);
    if (!body) {
        oai_error_t e;
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        reply_error(j, j->req, &e);
        return;
    }
    reply_text(j, j->req, 200, body);
}

static void respond_embeddings(emb_job_t *j) {
    const int dim = model_embed_dim(j->m->model), d = j->dims;
    json_t *data = json_array();
    unsigned char *b64 = j->base64 ? malloc(4 * (((size_t)d * 4 + 2) / 3) + 1) : NULL;
    for (int i = 0; i < j->n && data; i++) {
        float *v = j->out + (size_t)i * (size_t)dim;
        normalize(v, d);
        json_t *emb;
        if (b64) {
            EVP_EncodeBlock(b64, (const unsigned char *)v, d * 4); /* little-endian hosts */
            emb = json_string((const char *)b64);
        } else {
            emb = json_array();
            for (int k = 0; k < d && emb; k++) json_array_append_new(emb, json_real(v[k]));
        }
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", i, "embedding", emb));
    }
    free(b64);
    send_body(j, json_pack("{s:s, s:o, s:s, s:o}", "object", "list", "data", data, "model", j->m->id, "usage",
                           usage_json(j)));
}

typedef struct {
    int index;
    double score;
} rank_t;

static int rank_cmp(const void *a, const void *b) {
    const rank_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->index - y->index;
}

static void respond_rerank(emb_job_t *j) {
    const int dim = model_embed_dim(j->m->model);
    rank_t *r = malloc((size_t)j->n * sizeof *r);
    if (!r) {
        oai_error_t e;
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        reply_error(j, j->req, &e);
        return;
    }
    for (int i = 0; i < j->n; i++) {
        /* one logit: its sigmoid; several (Qwen3-Reranker's "yes", "no"):
         * the first's softmax probability */
        const float *o = j->out + (size_t)i * (size_t)dim;
        double z = 1.0;
        for (int k = 1; k < dim; k++) z += exp((double)o[k] - (double)o[0]);
        r[i] = (rank_t){i, dim == 1 ? 1.0 / (1.0 + exp(-(double)o[0])) : 1.0 / z};
    }
    qsort(r, (size_t)j->n, sizeof *r, rank_cmp);
    json_t *results = json_array();
    for (int i = 0; i < j->top_n && results; i++) {
        json_t *o = json_pack("{s:i, s:f}", "index", r[i].index, "relevance_score", r[i].score);
        if (o && j->return_documents) {
            size_t len;
            const char *text = doc_text(json_array_get(j->docs, (size_t)r[i].index), &len);
            json_object_set_new(o, "document", json_pack("{s:s%}", "text", text, len));
        }
        json_array_append_new(results, o);
    }
    free(r);
    char id[48];
    snprintf(id, sizeof id, "rerank-%016llx", (unsigned long long)sl_now_ns());
    send_body(j, json_pack("{s:s, s:s, s:o, s:o}", "id", id, "model", j->m->id, "results", results, "usage",
                           usage_json(j)));
}

void embed_on_event(srv_t *s, const eng_event_t *ev) {
    emb_job_t *j = ev->user;
    if (ev->type != ENG_EV_FINISH) return;
    j->live = false;
    const char *status = ev->finish == ENG_FINISH_STOP ? "ok" : ev->finish == ENG_FINISH_ERROR ? "error" : "cancelled";
    const bool answering = j->req || j->internal;
    if (answering) {
        if (ev->finish == ENG_FINISH_STOP) {
            (j->rerank ? respond_rerank : respond_embeddings)(j);
        } else {
            oai_error_t e;
            if (ev->finish == ENG_FINISH_ERROR)
                oai_fail(&e, 500, "server_error", NULL, NULL, "the model failed: %s", ev->error ? ev->error : "?");
            else
                oai_fail(&e, 503, "server_error", "server_shutting_down", NULL, "The server is shutting down.");
            reply_error(j, j->req, &e);
        }
    }
    job_hook_finish(j, ev->finish == ENG_FINISH_STOP ? j->tokens : ev->usage.prompt_tokens,
                    answering || ev->finish != ENG_FINISH_STOP ? status : "cancelled");
    job_release(j);
    job_free(j);
}

static void job_start(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, bool rerank, emb_job_t *j,
                      const char *body, size_t len);

void embed_handle(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, bool rerank) {
    oai_error_t e;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const size_t len = evbuffer_get_length(in);
    if (len > s->cfg.max_body) {
        oai_fail(&e, 413, NULL, "request_too_large", NULL, "The request body is %zu bytes; the limit is %zu bytes.",
                 len, s->cfg.max_body);
        srv_send_error(s, req, &e);
        return;
    }
    emb_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        srv_send_error(s, req, &e);
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    job_start(s, conn, req, rerank, j, body ? body : "", len);
}

int embed_run_internal(srv_t *s, const srv_internal_t *in) {
    emb_job_t *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->internal = true;
    j->ij = *in;
    s->n_internal++;
    job_start(s, NULL, NULL, false, j, in->body, in->len);
    return 0;
}

/* Starts job j (allocated, nothing else set) from the route (req, conn)
 * or for the server itself (j->internal). */
static void job_start(srv_t *s, srv_conn_t *conn, struct evhttp_request *req, bool rerank, emb_job_t *j,
                      const char *body, size_t len) {
    oai_error_t e;
    j->s = s;
    j->rerank = rerank;
    j->next = s->ejobs;
    if (s->ejobs) s->ejobs->prev = j;
    s->ejobs = j;
    s->n_ejobs++;
    if (j->internal && len > s->cfg.max_body) { /* the route's own limit (embed_handle) */
        oai_fail(&e, 413, NULL, "request_too_large", NULL, "The request body is %zu bytes; the limit is %zu bytes.",
                 len, s->cfg.max_body);
        goto fail;
    }
    json_error_t je;
    j->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    const json_t *model = j->body ? json_object_get(j->body, "model") : NULL;
    if (!j->body || !json_is_object(j->body)) {
        oai_fail(&e, 400, NULL, "invalid_json", NULL,
                 j->body ? "The request body must be a JSON object." : "The request body is not valid JSON: %s",
                 je.text);
        goto fail;
    }
    if (!model) {
        oai_fail(&e, 400, NULL, "missing_required_parameter", "model", "Missing required parameter: 'model'.");
        goto fail;
    }
    if (!json_is_string(model)) {
        oai_fail(&e, 400, NULL, "invalid_type", "model", "'model' is %s; expected a string.", oai_json_kind(model));
        goto fail;
    }
    j->m = srv_find_model(s, json_string_value(model));
    if (!j->m) {
        srv_model_not_found(s, json_string_value(model), &e);
        goto fail;
    }
    const sl_hparams_t *hp = model_hparams(j->m->model);
    if (!srv_model_embeds(j->m) || (hp->pooling == SL_POOLING_RANK) != rerank) {
        oai_fail(&e, 400, NULL, "model_not_supported", "model", "The model '%.100s' %s.", j->m->id,
                 !srv_model_embeds(j->m)           ? "does not make embeddings or rerank scores: it generates text"
                 : hp->pooling == SL_POOLING_RANK ? "is a reranker: use /v1/rerank"
                                                   : "is an embedding model: use /v1/embeddings");
        goto fail;
    }
    if ((rerank ? parse_rerank : parse_embeddings)(j, &e) != 0) goto fail;
    if (j->internal) {
        if (srv_internal_begin(&j->ij, j->m->id, j->tokens, 0, &j->hook, &e) != 0) goto fail;
        j->ij_req = j->hook;
    } else if (srv_hook_begin(s, req, j->m->id, j->tokens, 0, &j->hook, &e) != 0) {
        goto fail;
    }
    j->out = malloc((size_t)j->n * (size_t)model_embed_dim(j->m->model) * sizeof *j->out);
    if (!j->out) {
        oai_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail_hook;
    }
    const eng_embed_req_t er = {
        .tokens = (const int32_t *const *)j->toks,
        .types = (const int32_t *const *)j->types,
        .n_tokens = j->n_tok,
        .n_inputs = j->n,
        .out = j->out,
        .user = j,
    };
    char err[SL_ERR_MAX];
    const int rc = eng_embed(j->m->eng, &er, &j->eid, err, sizeof err);
    if (rc != 0) {
        if (rc == ENG_EBUSY) {
            oai_fail(&e, 503, "server_error", "server_busy", NULL, "The model is busy; retry shortly.");
            if (req) evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        } else {
            oai_fail(&e, 400, NULL, "invalid_value", NULL, "%s", err);
        }
        goto fail_hook;
    }
    j->live = true;
    j->req = req;
    j->conn = conn;
    if (conn) conn->ejob = j;
    return;

fail_hook:
    if (j->hook && !j->internal && s->cfg.hooks.abort) s->cfg.hooks.abort(s->cfg.hooks.ctx, j->hook);
    j->hook = NULL; /* internal: ij_status stays NULL, ij.done aborts */
fail:
    reply_error(j, req, &e);
    job_free(j);
}
