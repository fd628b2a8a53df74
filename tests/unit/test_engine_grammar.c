/* deps: engine sampling grammar model kernels gguf base */
/*
 * test_engine_grammar.c — grammar-constrained sequences in the engine: a
 * tiny random llama model with a 64-token vocabulary of JSON pieces. With
 * a grammar every finished output must be accepted by an INDEPENDENT check
 * (jansson parses it, or POSIX regexec matches it); the grammar's end
 * finishes the sequence (STOP) without an end token; n>1 siblings (forked
 * from one prefill) each keep their own matcher; a prefix is advanced over
 * first; lazy grammars start at a trigger; eng_grammar_prepare answers
 * errors (naming the keyword) and indexes; cancellation and shutdown while
 * the grammar worker holds a sequence still give exactly one FINISH.
 */
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "grammar/grammar.h"
#include "test.h"
#include "tiny_llama.h"

enum { V = TL_V, E = TL_E, H = TL_H, K = TL_K, D = TL_D, F = TL_F, CTX = TL_CTX };

/* the vocabulary: id 0 is the end token (no text); the rest JSON pieces */
static const char *VOCAB[V] = {
    "",      "{",     "}",    "[",    "]",     "\"",    ":",     ",",    " ",     "\n",   "0",    "1",   "2",
    "3",     "4",     "5",    "6",    "7",     "8",     "9",     "a",    "b",     "c",    "d",    "e",   "f",
    "true",  "false", "null", "\"a\"", "\":",  "\",",   "\"}",   "}}",   "]}",    "},",   "-",    ".",   "ab",
    "<t>",   "</t>",  "<",    ">",    "/",     "t",     "x",     "yz",   "{\"",   "\":\"", "12",   "\"]", "[\"",
    "],",    "}]",    "  ",   "ok",   "no",    "\\",    "\\n",   "e1",   "99",    "E",    "+",    "Z"};

static char path[256];
static sl_model_t *model;
static gram_vocab_t *gv;

static void write_model(void) {
    snprintf(path, sizeof path, "/tmp/silica-test-engine-grammar-%d.gguf", (int)getpid());
    tiny_llama_write(path, 777);
}

/* ---- events ---- */

#define MAXSEQ 16
typedef struct seqlog {
    sl_buf_t text; /* bytes of the TOKEN events */
    int n_tok, n_finish;
    int32_t last;
    eng_finish_t finish;
    char error[SL_ERR_MAX];
} seqlog_t;

typedef struct prep_answer {
    int n;
    gram_index_t *ix;
    char error[SL_ERR_MAX];
} prep_answer_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static seqlog_t logs[MAXSEQ];
static int n_finished, n_prepared;

static void on_event(const eng_event_t *ev, void *ctx) {
    pthread_mutex_lock(&mu);
    if (ev->type == ENG_EV_GRAMMAR) {
        prep_answer_t *a = ev->user;
        a->n++;
        a->ix = ev->grammar;
        snprintf(a->error, sizeof a->error, "%s", ev->error ? ev->error : "");
        n_prepared++;
    } else {
        seqlog_t *l = ev->user;
        if (ev->type == ENG_EV_TOKEN) {
            sl_buf_append(&l->text, VOCAB[ev->tok.id], strlen(VOCAB[ev->tok.id]));
            l->n_tok++;
            l->last = ev->tok.id;
        } else if (ev->type == ENG_EV_FINISH) {
            l->finish = ev->finish;
            snprintf(l->error, sizeof l->error, "%s", ev->error ? ev->error : "");
            l->n_finish++;
            n_finished++;
        }
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void reset_logs(void) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAXSEQ; i++) sl_buf_free(&logs[i].text);
    memset(logs, 0, sizeof logs);
    n_finished = 0;
    n_prepared = 0;
    pthread_mutex_unlock(&mu);
}

static void wait_finished(int n) {
    pthread_mutex_lock(&mu);
    while (n_finished < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void wait_prepared(int n) {
    pthread_mutex_lock(&mu);
    while (n_prepared < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static const char *text_of(const seqlog_t *l) {
    return l->text.data ? l->text.data : "";
}

static bool regex_full(const char *re, const char *s) {
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) return false;
    bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

static smp_bias_t BIAS[] = {{2, 4.0f}, {4, 4.0f}, {5, 3.0f}, {32, 3.0f}, {33, 3.0f}, {34, 3.0f}};

static eng_request_t req(const int32_t *prompt, size_t np, int max_tokens, uint64_t seed, void *user) {
    eng_request_t r = {0};
    r.prompt = prompt;
    r.n_prompt = np;
    r.max_tokens = max_tokens;
    smp_params_default(&r.sampling);
    r.sampling.seed = seed;
    r.sampling.bias = BIAS;
    r.sampling.n_bias = SL_ARRAY_LEN(BIAS);
    static const int32_t stop[1] = {0};
    r.stop_ids = stop;
    r.n_stop_ids = 1;
    r.user = user;
    return r;
}

static eng_t *engine(int max_running) {
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = max_running, .kv = ENG_KV_F32, .gram_vocab = gv},
                       on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    return e;
}

static void check_idle(eng_t *e) {
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.live == 0, "%d live", st.live);
    CHECK(st.kv_blocks_used == 0);
}

/* JSON object mode: kind only (the worker builds the index), 12 sequences
 * at temperature 1; every STOP output parses as a JSON object (jansson),
 * and most stop. */
static void test_json_object(void) {
    eng_t *e = engine(6);
    reset_logs();
    const int32_t prompt[4] = {1, 20, 6, 10};
    enum { NS = 12 };
    for (int s = 0; s < NS; s++) {
        eng_request_t r = req(prompt, 4, 120, (uint64_t)s + 1, &logs[s]);
        r.grammar.kind = GRAM_SRC_JSON_OBJECT;
        uint64_t id;
        char err[SL_ERR_MAX];
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    wait_finished(NS);
    int stops = 0;
    for (int s = 0; s < NS; s++) {
        seqlog_t *l = &logs[s];
        CHECK(l->n_finish == 1);
        CHECK_MSG(l->finish == ENG_FINISH_STOP || l->finish == ENG_FINISH_LENGTH, "finish %d: %s", l->finish,
                  l->error);
        if (l->finish != ENG_FINISH_STOP) continue;
        stops++;
        json_error_t je;
        json_t *v = json_loadb(text_of(l), l->text.len, 0, &je);
        CHECK_MSG(v && json_is_object(v), "sequence %d: '%s' is not a JSON object (%s)", s, text_of(l), je.text);
        json_decref(v);
    }
    CHECK_MSG(stops >= NS * 3 / 4, "%d of %d stopped", stops, NS);
    check_idle(e);
    eng_free(e);
}

/* Drafts for test_json_object_spec: the sequence's own last tokens
 * again, then ids 1.. (some allowed by the grammar, most not). */
static int echo_draft(void *ctx, const int32_t *toks, int n_toks, int n_prompt, int32_t *out, int max) {
    (void)ctx;
    (void)n_prompt;
    int n = 0;
    for (int j = 0; j < max && j < n_toks; j++) out[n++] = j % 2 ? (int32_t)(1 + j) : toks[n_toks - 1 - j];
    return n;
}

/* Speculative decoding under a grammar: drafts forced at every step
 * (echo_draft) leave the seeded JSON-object outputs exactly as they are
 * without speculation (each position's masked draw and matcher advance
 * happen as before), and they stay valid. */
static void test_json_object_spec(void) {
    enum { NS = 8 };
    char texts[NS][512];
    eng_finish_t fins[NS];
    const int32_t prompt[4] = {1, 20, 6, 10};
    for (int spec = 0; spec < 2; spec++) {
        char err[SL_ERR_MAX];
        eng_opts_t o = {.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32, .gram_vocab = gv,
                        .spec = spec ? ENG_SPEC_NGRAM : ENG_SPEC_OFF, .spec_max = 5,
                        .spec_draft = spec ? echo_draft : NULL};
        eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) return;
        reset_logs();
        for (int q = 0; q < NS; q++) {
            eng_request_t r = req(prompt, 4, 100, (uint64_t)q + 40, &logs[q]);
            r.grammar.kind = GRAM_SRC_JSON_OBJECT;
            uint64_t id;
            CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
        }
        wait_finished(NS);
        for (int q = 0; q < NS; q++) {
            const seqlog_t *l = &logs[q];
            if (!spec) {
                snprintf(texts[q], sizeof texts[q], "%s", text_of(l));
                fins[q] = l->finish;
                continue;
            }
            CHECK_MSG(!strcmp(texts[q], text_of(l)) && fins[q] == l->finish,
                      "sequence %d: '%s' with drafts, '%s' without", q, text_of(l), texts[q]);
            if (l->finish == ENG_FINISH_STOP) {
                json_error_t je;
                json_t *v = json_loadb(text_of(l), l->text.len, 0, &je);
                CHECK_MSG(v && json_is_object(v), "sequence %d: '%s' is not a JSON object", q, text_of(l));
                json_decref(v);
            }
        }
        if (spec) {
            eng_stats_t st;
            eng_stats(e, &st);
            CHECK(st.spec_drafted > 0 && st.spec_accepted > 0);
            fprintf(stderr, "    drafted %llu, accepted %llu\n", (unsigned long long)st.spec_drafted,
                    (unsigned long long)st.spec_accepted);
        }
        check_idle(e);
        eng_free(e);
    }
}

/* The grammar's own end finishes the sequence: a regex of fixed shape ends
 * with STOP right after its last byte, no end token sampled; n>1 siblings
 * (same prompt, forked from one prefill) each follow their own matcher. */
static void test_regex_end_and_siblings(void) {
    eng_t *e = engine(8);
    reset_logs();
    const int32_t prompt[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    const char *re = "[a-f]{2}-?[0-9]{3}x";
    enum { NS = 6 };
    for (int s = 0; s < NS; s++) {
        eng_request_t r = req(prompt, 20, 50, (uint64_t)s * 7 + 3, &logs[s]);
        r.grammar.kind = GRAM_SRC_REGEX;
        r.grammar.text = re;
        r.grammar.len = strlen(re);
        uint64_t id;
        char err[SL_ERR_MAX];
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    wait_finished(NS);
    int distinct = 0;
    for (int s = 0; s < NS; s++) {
        seqlog_t *l = &logs[s];
        CHECK_MSG(l->finish == ENG_FINISH_STOP, "sequence %d: finish %d %s", s, l->finish, l->error);
        CHECK_MSG(regex_full("^[a-f]{2}-?[0-9]{3}x$", text_of(l)), "sequence %d: '%s'", s, text_of(l));
        CHECK(l->last != 0); /* ended by the grammar, not by an end token */
        bool same = false;
        for (int k = 0; k < s; k++) same |= strcmp(text_of(&logs[k]), text_of(l)) == 0;
        distinct += !same;
    }
    CHECK_MSG(distinct >= 3, "only %d distinct outputs", distinct);
    check_idle(e);
    eng_free(e);
}

/* eng_grammar_prepare: errors name the keyword; an index comes back and
 * sequences submitted with it (and a prefix) continue the prefix validly;
 * a prefix the grammar refuses is an error. */
static void test_prepare_and_prefix(void) {
    eng_t *e = engine(4);
    reset_logs();
    char err[SL_ERR_MAX];
    prep_answer_t bad = {0}, good = {0}, badpre = {0}, gbnf = {0};
    const char *s_bad = "{\"type\":\"object\",\"not\":{}}";
    const char *s_good = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},"
                         "\"b\":{\"enum\":[\"ab\",\"yz\"]}},\"required\":[\"a\",\"b\"],\"additionalProperties\":false}";
    eng_grammar_t g = {.kind = GRAM_SRC_JSON_SCHEMA, .text = s_bad, .len = strlen(s_bad)};
    CHECK(eng_grammar_prepare(e, &g, &bad, err, sizeof err) == 0);
    g.text = s_good;
    g.len = strlen(s_good);
    g.prefix = "{\"a\":";
    g.prefix_len = 5;
    CHECK(eng_grammar_prepare(e, &g, &good, err, sizeof err) == 0);
    g.prefix = "[1]";
    g.prefix_len = 3;
    CHECK(eng_grammar_prepare(e, &g, &badpre, err, sizeof err) == 0);
    eng_grammar_t g2 = {.kind = GRAM_SRC_GBNF, .text = "root ::= missing", .len = 16};
    CHECK(eng_grammar_prepare(e, &g2, &gbnf, err, sizeof err) == 0);
    wait_prepared(4);
    CHECK(bad.n == 1 && bad.ix == NULL);
    CHECK_MSG(strstr(bad.error, "'not'") != NULL, "%s", bad.error);
    CHECK(good.n == 1 && good.ix != NULL && good.error[0] == 0);
    CHECK(badpre.n == 1 && badpre.ix == NULL && strstr(badpre.error, "prefix") != NULL);
    CHECK(gbnf.n == 1 && gbnf.ix == NULL && strstr(gbnf.error, "missing") != NULL);

    const int32_t prompt[3] = {1, 2, 3};
    enum { NS = 6 };
    for (int s = 0; s < NS; s++) {
        eng_request_t r = req(prompt, 3, 60, (uint64_t)s + 11, &logs[s]);
        r.grammar.kind = GRAM_SRC_JSON_SCHEMA;
        r.grammar.index = good.ix;
        r.grammar.prefix = "{\"a\":";
        r.grammar.prefix_len = 5;
        uint64_t id;
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    gram_index_release(good.ix); /* the sequences hold their own references */
    wait_finished(NS);
    for (int s = 0; s < NS; s++) {
        seqlog_t *l = &logs[s];
        CHECK_MSG(l->finish == ENG_FINISH_STOP || l->finish == ENG_FINISH_LENGTH, "%d %s", l->finish, l->error);
        if (l->finish != ENG_FINISH_STOP) continue;
        char full[512];
        snprintf(full, sizeof full, "{\"a\":%s", text_of(l));
        json_error_t je;
        json_t *v = json_loads(full, 0, &je);
        CHECK_MSG(v && json_is_integer(json_object_get(v, "a")) && json_integer_value(json_object_get(v, "a")) <= 99 &&
                      json_is_string(json_object_get(v, "b")) && json_object_size(v) == 2,
                  "'%s' does not match the schema", full);
        json_decref(v);
    }
    /* a prefix the grammar refuses, given at submit: the sequence fails */
    reset_logs();
    eng_request_t r = req(prompt, 3, 10, 1, &logs[0]);
    r.grammar.kind = GRAM_SRC_JSON_OBJECT;
    r.grammar.prefix = "nope";
    r.grammar.prefix_len = 4;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
    /* a grammar that does not compile, given at submit: the sequence fails */
    eng_request_t r2 = req(prompt, 3, 10, 1, &logs[1]);
    r2.grammar.kind = GRAM_SRC_JSON_SCHEMA;
    r2.grammar.text = s_bad;
    r2.grammar.len = strlen(s_bad);
    CHECK(eng_submit(e, &r2, &id, err, sizeof err) == 0);
    wait_finished(2);
    CHECK(logs[0].finish == ENG_FINISH_ERROR && logs[0].n_tok == 0);
    CHECK(logs[1].finish == ENG_FINISH_ERROR && strstr(logs[1].error, "'not'") != NULL);
    check_idle(e);
    eng_free(e);
}

/* Lazy grammars: unconstrained until the trigger, then the grammar from
 * the trigger's first byte on; the grammar's end stops. */
static void test_lazy(void) {
    eng_t *e = engine(4);
    reset_logs();
    char err[SL_ERR_MAX];
    const char *gbnf = "root ::= \"<t>\" [0-9]{2} \"</t>\"";
    const char *words[1] = {"<t>"};
    const int32_t prompt[2] = {45, 46};
    smp_bias_t tb[1] = {{39, 3.0f}}; /* "<t>" comes soon */
    enum { NS = 4 };
    for (int s = 0; s < NS; s++) {
        eng_request_t r = req(prompt, 2, 200, (uint64_t)s + 5, &logs[s]);
        r.sampling.bias = tb;
        r.sampling.n_bias = 1;
        r.stop_ids = NULL;
        r.n_stop_ids = 0;
        r.grammar.kind = GRAM_SRC_GBNF;
        r.grammar.text = gbnf;
        r.grammar.len = strlen(gbnf);
        if (s % 2) {
            r.grammar.trigger_words = words;
            r.grammar.n_trigger_words = 1;
        } else {
            static const int32_t tid[1] = {39};
            r.grammar.trigger_ids = tid;
            r.grammar.n_trigger_ids = 1;
        }
        uint64_t id;
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    /* start words: only at the start (after whitespace) */
    const char *sw[1] = {"{"};
    eng_request_t r = req(prompt, 2, 80, 9, &logs[NS]);
    r.grammar.kind = GRAM_SRC_JSON_OBJECT;
    r.grammar.start_words = sw;
    r.grammar.n_start_words = 1;
    r.grammar.prefix = " \n{";
    r.grammar.prefix_len = 3;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
    wait_finished(NS + 1);
    for (int s = 0; s < NS; s++) {
        seqlog_t *l = &logs[s];
        const char *t = text_of(l);
        const char *at = strstr(t, "<t>");
        CHECK_MSG(l->finish == ENG_FINISH_STOP && at != NULL, "sequence %d: %d '%s'", s, l->finish, t);
        if (at) CHECK_MSG(regex_full("^<t>[0-9]{2}</t>$", at), "sequence %d: '%s'", s, t);
    }
    /* the prefix "{" triggered at once: the output continues the object */
    if (logs[NS].finish == ENG_FINISH_STOP) {
        char full[1024];
        snprintf(full, sizeof full, "{%s", text_of(&logs[NS]));
        json_t *v = json_loads(full, 0, NULL);
        CHECK_MSG(json_is_object(v), "'%s'", full);
        json_decref(v);
    }
    check_idle(e);
    eng_free(e);
}

/* Cancel while the worker builds; shut down with sequences at the worker:
 * each gets exactly one FINISH. No vocabulary: grammars are refused. */
static void test_cancel_shutdown_refusal(void) {
    char err[SL_ERR_MAX];
    reset_logs();
    eng_t *e = engine(2);
    const int32_t prompt[2] = {1, 2};
    char schema[4096];
    size_t n = (size_t)snprintf(schema, sizeof schema, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(schema + n, sizeof schema - n, "%s\"p%d\":{\"type\":\"string\",\"maxLength\":%d}",
                              i ? "," : "", i, 10 + i);
    snprintf(schema + n, sizeof schema - n, "}}");
    uint64_t ids[6];
    for (int s = 0; s < 6; s++) {
        eng_request_t r = req(prompt, 2, 30, (uint64_t)s, &logs[s]);
        r.grammar.kind = GRAM_SRC_JSON_SCHEMA;
        r.grammar.text = schema;
        r.grammar.len = strlen(schema);
        CHECK_MSG(eng_submit(e, &r, &ids[s], err, sizeof err) == 0, "%s", err);
    }
    eng_cancel(e, ids[0]);
    eng_cancel(e, ids[3]);
    eng_free(e); /* the rest are cancelled by the shutdown */
    CHECK(n_finished == 6);
    for (int s = 0; s < 6; s++) CHECK(logs[s].n_finish == 1);
    CHECK(logs[0].finish == ENG_FINISH_CANCELLED && logs[3].finish == ENG_FINISH_CANCELLED);

    e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .kv = ENG_KV_F32}, on_event, NULL, err, sizeof err);
    eng_request_t r = req(prompt, 2, 5, 1, &logs[0]);
    r.grammar.kind = GRAM_SRC_JSON_OBJECT;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1);
    CHECK(strstr(err, "grammar") != NULL);
    eng_grammar_t g = {.kind = GRAM_SRC_JSON_OBJECT};
    CHECK(eng_grammar_prepare(e, &g, NULL, err, sizeof err) == -1);
    r.grammar.kind = 99;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1);
    eng_free(e);
}

/* eng_grammar_t.vocab: a grammar indexed against another vocabulary of
 * the same size (here without the token "yz") never yields what only the
 * missing token could write; a vocabulary of another size is refused. */
static void test_other_vocab(void) {
    char err[SL_ERR_MAX];
    const char *bytes[V];
    size_t lens[V];
    for (int i = 0; i < V; i++) {
        bytes[i] = VOCAB[i];
        lens[i] = i == 46 ? 0 : strlen(VOCAB[i]);
    }
    const int32_t eog[1] = {0};
    gram_vocab_t *v2 = gram_vocab_new(bytes, lens, V, eog, 1, err, sizeof err);
    gram_vocab_t *v3 = gram_vocab_new(bytes, lens, V - 1, eog, 1, err, sizeof err);
    CHECK(v2 && v3);
    eng_t *e = engine(4);
    reset_logs();
    const char *re = "(ab|yz)(ab|yz)";
    const int32_t prompt[2] = {3, 4};
    smp_bias_t yz[1] = {{46, 8.0f}};
    enum { NS = 6 };
    for (int s = 0; s < NS; s++) {
        eng_request_t r = req(prompt, 2, 10, (uint64_t)s + 1, &logs[s]);
        r.sampling.bias = yz;
        r.sampling.n_bias = 1;
        r.grammar.kind = GRAM_SRC_REGEX;
        r.grammar.text = re;
        r.grammar.len = strlen(re);
        r.grammar.vocab = s % 2 ? v2 : NULL;
        uint64_t id;
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    eng_request_t r = req(prompt, 2, 10, 1, &logs[NS]);
    r.grammar.kind = GRAM_SRC_REGEX;
    r.grammar.text = re;
    r.grammar.len = strlen(re);
    r.grammar.vocab = v3;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1 && strstr(err, "vocabulary") != NULL);
    CHECK(eng_grammar_prepare(e, &r.grammar, NULL, err, sizeof err) == -1);
    wait_finished(NS);
    for (int s = 0; s < NS; s++) {
        const char *t = text_of(&logs[s]);
        CHECK_MSG(logs[s].finish == ENG_FINISH_STOP && regex_full("^(ab|yz)(ab|yz)$", t), "%d: '%s'", s, t);
        if (s % 2) CHECK_MSG(strstr(t, "yz") == NULL, "%d: '%s' used the missing token", s, t);
        else CHECK_MSG(strstr(t, "yz") != NULL, "%d: '%s' (the bias favours yz)", s, t);
    }
    check_idle(e);
    eng_free(e);
    gram_vocab_free(v2);
    gram_vocab_free(v3);
}

int main(void) {
    write_model();
    char err[SL_ERR_MAX];
    model = model_load(path, err, sizeof err);
    CHECK_MSG(model != NULL, "%s", err);
    const char *bytes[V];
    size_t lens[V];
    for (int i = 0; i < V; i++) {
        bytes[i] = VOCAB[i];
        lens[i] = strlen(VOCAB[i]);
    }
    const int32_t eog[1] = {0};
    gv = gram_vocab_new(bytes, lens, V, eog, 1, err, sizeof err);
    CHECK_MSG(gv != NULL, "%s", err);
    if (model && gv) {
        RUN(test_json_object);
        RUN(test_json_object_spec);
        RUN(test_regex_end_and_siblings);
        RUN(test_prepare_and_prefix);
        RUN(test_lazy);
        RUN(test_cancel_shutdown_refusal);
        RUN(test_other_vocab);
    }
    reset_logs();
    gram_vocab_free(gv);
    model_free(model);
    unlink(path);
    return test_summary();
}
