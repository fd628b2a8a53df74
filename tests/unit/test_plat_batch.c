/* deps: platform base */
/*
 * test_plat_batch.c — the Files and Batch APIs' books (platform/batch.h):
 * input-file validation (OpenAI's error codes and lines), the batch state
 * machine driven by plat_batch_step with an injected clock (validating ->
 * in_progress -> completed; cancelling -> cancelled with partial output;
 * expiry), the batch price, exactly-once results (a second result for a
 * request is refused and not billed) and resumption after the process
 * "dies" with requests in flight; retention (files and finished batches
 * pruned in bounded chunks, never a file an unfinished batch reads). Ledger
 * rows and results are read back through a second, independent
 * connection; costs are computed here from the prices.
 *
 * Every test runs on SQLite, then again on PostgreSQL when SILICA_TEST_PG
 * names a server's maintenance database (tests/pg.sh), each round in a
 * store of its own; on PostgreSQL also two platform handles ("nodes") on
 * one database running one batch at once (each request run and billed
 * once, one finalization), and a node killed with requests claimed, whose
 * leases hold them until they run out and the other node finishes them.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/batch.h"
#include "platform/db.h"
#include "platform/platform.h"
#include "test.h"
#include "test_pg.h"

static int64_t fake_now = 1700000000000;
static int64_t fake_clock(void *ctx) {
    return fake_now;
}

static char dir[512];       /* the store of the tests running: a directory or a PostgreSQL URL */
static const char *pg_base; /* SILICA_TEST_PG during the PostgreSQL round, else NULL */
static char made[16][512];  /* SQLite directories made, removed at the end */
static int nmade;

/* Points dir at a new, empty store: a temporary directory, or a new
 * database on the test server. */
static void fresh_store(void) {
    test_fresh_store(pg_base, "/tmp/silica-test-batch-XXXXXX", "silica_b", dir, sizeof dir);
    if (!pg_base && nmade < 16) snprintf(made[nmade++], sizeof made[0], "%s", dir);
}

static plat_t *open_cfg(plat_config_t *cfg) {
    cfg->sync_normal = true;
    cfg->clock_ms = fake_clock;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    return p;
}

static plat_t *open_plat(void) {
    plat_config_t cfg;
    plat_config_default(&cfg);
    return open_cfg(&cfg);
}

static int64_t q_int(const char *sql, const char *arg) {
    char err[SL_ERR_MAX];
    db_t *db = db_open(dir, true, NULL, 0, err, sizeof err);
    if (!db) return INT64_MIN;
    db_stmt_t *s = db_prepare(db, sql, err, sizeof err);
    int64_t v = INT64_MIN;
    if (s) {
        if (arg) db_bind_text(s, 1, arg);
        if (db_step(s) == DB_ROW) v = db_col_int64(s, 0);
        db_release(s);
    }
    db_close(db);
    return v;
}

static bool any_model(void *ud, const char *endpoint, const char *m) {
    return !strcmp(m, "tiny") || !strcmp(m, "other");
}

/* ---- validation ---- */

typedef struct seen_lines {
    int n;
    int64_t line[8];
    char cid[8][16];
} seen_lines_t;

static int on_line(void *ud, int64_t line, const char *cid, const char *body) {
    seen_lines_t *s = ud;
    if (s->n < 8) {
        s->line[s->n] = line;
        snprintf(s->cid[s->n], sizeof s->cid[0], "%s", cid);
    }
    s->n++;
    json_t *b = json_loads(body, 0, NULL);
    CHECK(b && json_is_object(b) && json_object_get(b, "model"));
    json_decref(b);
    return 0;
}

#define L(cid, url, model)                                                                         \
    "{\"custom_id\":\"" cid "\",\"method\":\"POST\",\"url\":\"" url                                \
    "\",\"body\":{\"model\":\"" model "\",\"messages\":[]}}\n"
#define CHAT "/v1/chat/completions"

static void expect_codes(const char *text, const char *const *codes, const int64_t *lines, int n) {
    json_t *errors = NULL;
    int rc = plat_batch_validate(text, strlen(text), CHAT, any_model, NULL, NULL, NULL, &errors);
    CHECK(rc != 0 && errors);
    json_t *data = json_object_get(errors, "data");
    CHECK_MSG((int)json_array_size(data) == n, "%zu errors, want %d", json_array_size(data), n);
    for (int i = 0; i < n && i < (int)json_array_size(data); i++) {
        json_t *e = json_array_get(data, (size_t)i);
        const char *code = json_string_value(json_object_get(e, "code"));
        CHECK_MSG(code && !strcmp(code, codes[i]), "error %d: %s, want %s", i, code ? code : "?", codes[i]);
        json_t *line = json_object_get(e, "line");
        CHECK_MSG(lines[i] ? json_integer_value(line) == lines[i] : json_is_null(line), "error %d line", i);
        CHECK(json_string_length(json_object_get(e, "message")) > 0);
    }
    json_decref(errors);
}

static void test_validate(void) {
    seen_lines_t s = {0};
    const char *good = L("a", CHAT, "tiny") "\n  \r\n" L("b", CHAT, "tiny");
    json_t *errors = NULL;
    CHECK(plat_batch_validate(good, strlen(good), CHAT, any_model, NULL, on_line, &s, &errors) == 0 && !errors);
    CHECK(s.n == 2 && s.line[0] == 1 && s.line[1] == 4 && !strcmp(s.cid[0], "a") && !strcmp(s.cid[1], "b"));

    const char *bad = L("a", CHAT, "tiny")                                            /* 1 ok */
        "{\"custom_id\": \"x\",\n"                                                   /* 2 broken JSON */
        L("a", CHAT, "tiny")                                                          /* 3 duplicate */
        L("c", "/v1/completions", "tiny")                                             /* 4 url */
        L("d", CHAT, "ghost")                                                         /* 5 unknown model */
        L("e", CHAT, "other")                                                         /* 6 second model */
        "{\"method\":\"POST\",\"url\":\"" CHAT "\",\"body\":{\"model\":\"tiny\"}}\n" /* 7 no custom_id */
        "{\"custom_id\":\"g\",\"method\":\"GET\",\"url\":\"" CHAT "\",\"body\":{\"model\":\"tiny\"}}\n" /* 8 */
        "{\"custom_id\":\"h\",\"method\":\"POST\",\"url\":\"" CHAT "\",\"body\":[]}\n"                  /* 9 */
        "[1,2]\n";                                                                                       /* 10 */
    static const char *const codes[] = {"invalid_json_line", "duplicate_custom_id", "url_mismatch",
                                        "model_not_found", "model_mismatch", "missing_required_parameter",
                                        "invalid_value", "invalid_value", "invalid_json_line"};
    static const int64_t lines[] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
    expect_codes(bad, codes, lines, 9);

    static const char *const empty_codes[] = {"empty_file"};
    static const int64_t no_line[] = {0};
    expect_codes("\n \n\r\n", empty_codes, no_line, 1);
    expect_codes("", empty_codes, no_line, 1);

    /* more than PLAT_BATCH_MAX_REQUESTS requests */
    sl_buf_t b = {0};
    for (int i = 0; i <= PLAT_BATCH_MAX_REQUESTS; i++) sl_buf_puts(&b, "{}\n");
    errors = NULL;
    CHECK(plat_batch_validate(b.data, b.len, CHAT, NULL, NULL, NULL, NULL, &errors) != 0);
    json_t *data = json_object_get(errors, "data");
    json_t *last = json_array_get(data, json_array_size(data) - 1);
    CHECK(json_array_size(data) == PLAT_BATCH_MAX_ERRORS ||
          !strcmp(json_string_value(json_object_get(last, "code")), "too_many_tasks"));
    json_decref(errors);
    sl_buf_free(&b);
}

static void test_price_scale(void) {
    /* against a plain reference: ceil(price * ppm / 1e6) in long double for small values */
    static const int64_t prices[] = {0, 1, 2, 3, 999999, 1000000, 1000001, 123456789, 2000000000000};
    static const int64_t ppms[] = {0, 1, 500000, 333333, 1000000, 2500000};
    for (size_t i = 0; i < SL_ARRAY_LEN(prices); i++)
        for (size_t j = 0; j < SL_ARRAY_LEN(ppms); j++) {
            __extension__ unsigned __int128 num = (unsigned __int128)prices[i] * (unsigned __int128)ppms[j];
            int64_t want = (int64_t)((num + 999999) / 1000000);
            CHECK_MSG(plat_price_scale(prices[i], ppms[j]) == want, "%" PRId64 " x %" PRId64, prices[i], ppms[j]);
        }
    CHECK(plat_price_scale(INT64_MAX, 10000000) == INT64_MAX);
}

/* ---- the state machine ---- */

static int64_t account, key;

static json_t *file_of(plat_t *p, int64_t acct, const char *text) {
    plat_status_t st;
    json_t *f = plat_file_create(p, acct, "batch", "in.jsonl", text, strlen(text), &st);
    CHECK_MSG(f != NULL, "%s", st.message);
    return f;
}

static json_t *batch_of(plat_t *p, const char *file_id) {
    plat_status_t st;
    json_t *body = json_pack("{s:s, s:s, s:s}", "input_file_id", file_id, "endpoint", CHAT, "completion_window", "24h");
    json_t *b = plat_batch_create(p, account, key, body, &st);
    CHECK_MSG(b != NULL, "%s", st.message);
    json_decref(body);
    return b;
}

static const char *status_of(plat_t *p, const char *id, json_t **keep) {
    plat_status_t st;
    json_decref(*keep);
    *keep = plat_batch_get(p, account, id, &st);
    return *keep ? json_string_value(json_object_get(*keep, "status")) : "?";
}

static int step(plat_t *p, int room, plat_batch_task_t ***tasks) {
    int n = 0;
    char err[SL_ERR_MAX];
    CHECK_MSG(plat_batch_step(p, room, any_model, NULL, tasks, &n, err, sizeof err) == 0, "%s", err);
    return n;
}

/* Runs task t as the server would: begin at the batch price, 200 with a
 * body, usage of (10 + line) prompt and line completion tokens. */
static void run_ok(plat_t *p, plat_batch_task_t *t) {
    plat_status_t st;
    CHECK(plat_begin_batch(p, t->account_id, t->key_id, t->batch_id, "tiny", 10, 10, &t->req, &st) == 0);
    plat_usage_t u = {.prompt_tokens = 10 + t->line, .completion_tokens = t->line, .ttft_ms = -1};
    char body[80];
    snprintf(body, sizeof body, "{\"answer\":%" PRId64 "}", t->line);
    plat_batch_task_done(p, t, 200, body, strlen(body), &u, "ok");
}

static const char *REQS = L("r1", CHAT, "tiny") L("r2", CHAT, "tiny") L("r3", CHAT, "tiny") L("r4", CHAT, "tiny");

/* micro-yuan: 2 yuan in / 4 yuan out per million tokens, halved in a batch */
static int64_t batch_cost(int64_t line) {
    return ((10 + line) * 1000000 + line * 2000000 + 999999) / 1000000;
}

static void test_lifecycle(void) {
    plat_t *p = open_plat();
    char err[SL_ERR_MAX];
    plat_price_t price = {.input = 2000000, .cached_input = 2000000, .output = 4000000};
    CHECK(plat_price_set(p, "tiny", &price, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "acme", 0, &account, err, sizeof err) == 0);
    char k[PLAT_KEY_MAX];
    CHECK(plat_key_create(p, account, "k", 0, k, &key, err, sizeof err) == 0);
    json_t *f = file_of(p, account, REQS);
    json_t *b = batch_of(p, json_string_value(json_object_get(f, "id")));
    const char *id = json_string_value(json_object_get(b, "id"));
    char bid[PLAT_ID_MAX];
    snprintf(bid, sizeof bid, "%s", id);
    CHECK(!strcmp(json_string_value(json_object_get(b, "status")), "validating"));
    json_t *cur = NULL;
    plat_batch_task_t **tasks = NULL;
    CHECK(step(p, 2, &tasks) == 0); /* validation only */
    free(tasks);
    CHECK(!strcmp(status_of(p, bid, &cur), "in_progress"));
    CHECK(json_integer_value(json_object_get(json_object_get(cur, "request_counts"), "total")) == 4);
    CHECK(json_integer_value(json_object_get(cur, "in_progress_at")) == fake_now / 1000);
    int n = step(p, 2, &tasks);
    CHECK(n == 2 && tasks[0]->line == 1 && tasks[1]->line == 2 && !strcmp(tasks[0]->custom_id, "r1"));
    plat_batch_task_t **more = NULL;
    CHECK(step(p, 5, &more) == 2); /* the running ones are not claimed again */
    CHECK(more[0]->line == 3 && more[1]->line == 4);
    run_ok(p, tasks[0]);
    run_ok(p, tasks[1]);
    free(tasks);
    CHECK(!strcmp(status_of(p, bid, &cur), "in_progress"));
    run_ok(p, more[0]);
    run_ok(p, more[1]);
    free(more);
    fake_now += 5000;
    CHECK(step(p, 2, &tasks) == 0);
    free(tasks);
    CHECK(!strcmp(status_of(p, bid, &cur), "completed"));
    CHECK(json_integer_value(json_object_get(cur, "completed_at")) == fake_now / 1000);
    CHECK(json_is_null(json_object_get(cur, "error_file_id")));
    json_t *rc = json_object_get(cur, "request_counts");
    CHECK(json_integer_value(json_object_get(rc, "completed")) == 4 && json_integer_value(json_object_get(rc, "failed")) == 0);
    /* the output file: four lines in input order, OpenAI's shape */
    plat_status_t st;
    size_t len = 0;
    char *out = plat_file_content(p, account, json_string_value(json_object_get(cur, "output_file_id")), &len, &st);
    CHECK(out != NULL);
    int lines = 0;
    for (char *s = out, *e; s && *s; s = e ? e + 1 : NULL, lines++) {
        e = strchr(s, '\n');
        json_t *o = json_loadb(s, e ? (size_t)(e - s) : strlen(s), 0, NULL);
        char want[8];
        snprintf(want, sizeof want, "r%d", lines + 1);
        CHECK(o && !strcmp(json_string_value(json_object_get(o, "custom_id")), want));
        json_t *resp = json_object_get(o, "response");
        CHECK(json_integer_value(json_object_get(resp, "status_code")) == 200);
        CHECK(json_integer_value(json_object_get(json_object_get(resp, "body"), "answer")) == lines + 1);
        CHECK(json_is_null(json_object_get(o, "error")));
        const char *rid = json_string_value(json_object_get(resp, "request_id"));
        /* its ledger row: the batch price, marked with the batch */
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT cost FROM usage_ledger WHERE request_id = ?1 AND batch_id = '%s'", bid);
        CHECK_MSG(q_int(sql, rid) == batch_cost(lines + 1), "line %d cost %" PRId64, lines + 1, q_int(sql, rid));
        json_decref(o);
    }
    free(out);
    CHECK(lines == 4);
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", bid) == 4);
    CHECK(plat_verify(p, err, sizeof err) == 0);
    /* a finished batch cannot be cancelled */
    CHECK(plat_batch_cancel(p, account, bid, &st) == NULL && st.http == 409);
    /* another account sees nothing */
    int64_t other;
    CHECK(plat_account_create(p, "other", 0, &other, err, sizeof err) == 0);
    CHECK(plat_batch_get(p, other, bid, &st) == NULL && st.http == 404);
    CHECK(plat_file_get(p, other, json_string_value(json_object_get(f, "id")), &st) == NULL && st.http == 404);
    json_t *list = plat_batch_list(p, other, NULL, 20, &st);
    CHECK(list && json_array_size(json_object_get(list, "data")) == 0);
    json_decref(list);
    json_decref(cur);
    json_decref(b);
    json_decref(f);
    plat_close(p);
}

static void test_cancel_and_expire(void) {
    plat_t *p = open_plat();
    json_t *f = file_of(p, account, REQS);
    json_t *b1 = batch_of(p, json_string_value(json_object_get(f, "id")));
    fake_now += 1000; /* a second later: batches run oldest first */
    json_t *b2 = batch_of(p, json_string_value(json_object_get(f, "id")));
    char id1[PLAT_ID_MAX], id2[PLAT_ID_MAX];
    snprintf(id1, sizeof id1, "%s", json_string_value(json_object_get(b1, "id")));
    snprintf(id2, sizeof id2, "%s", json_string_value(json_object_get(b2, "id")));
    plat_batch_task_t **tasks = NULL;
    step(p, 0, &tasks);
    free(tasks);
    CHECK(step(p, 1, &tasks) == 1 && !strcmp(tasks[0]->batch_id, id1)); /* oldest batch first */
    plat_status_t st;
    json_t *c = plat_batch_cancel(p, account, id1, &st);
    CHECK(c && !strcmp(json_string_value(json_object_get(c, "status")), "cancelling"));
    json_decref(c);
    json_t *cur = NULL;
    plat_batch_task_t **none = NULL;
    int n = step(p, 1, &none); /* id1 waits for its running request; id2 may start */
    CHECK(!strcmp(status_of(p, id1, &cur), "cancelling"));
    for (int i = 0; i < n; i++) {
        CHECK(!strcmp(none[i]->batch_id, id2));
        plat_batch_task_done(p, none[i], 0, "", 0, NULL, "shutdown"); /* left for later, unbilled */
    }
    free(none);
    run_ok(p, tasks[0]);
    free(tasks);
    step(p, 0, &tasks);
    free(tasks);
    CHECK(!strcmp(status_of(p, id1, &cur), "cancelled"));
    json_t *rc = json_object_get(cur, "request_counts");
    CHECK(json_integer_value(json_object_get(rc, "total")) == 4 && json_integer_value(json_object_get(rc, "completed")) == 1);
    CHECK(json_integer_value(json_object_get(cur, "cancelled_at")) > 0 && json_is_null(json_object_get(cur, "completed_at")));
    size_t len;
    char *out = plat_file_content(p, account, json_string_value(json_object_get(cur, "output_file_id")), &len, &st);
    CHECK(out && strstr(out, "\"r1\"") && !strstr(out, "\"r2\""));
    free(out);
    /* id2: past its window, the unrun requests become batch_expired errors */
    fake_now += (int64_t)PLAT_BATCH_WINDOW_S * 1000 + 1000;
    step(p, 4, &tasks);
    free(tasks);
    CHECK(!strcmp(status_of(p, id2, &cur), "expired"));
    CHECK(json_integer_value(json_object_get(cur, "expired_at")) == fake_now / 1000);
    CHECK(json_is_null(json_object_get(cur, "output_file_id")));
    out = plat_file_content(p, account, json_string_value(json_object_get(cur, "error_file_id")), &len, &st);
    CHECK(out != NULL);
    int lines = 0;
    for (char *s = out; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        json_t *o = json_loadb(s, strcspn(s, "\n"), 0, NULL);
        CHECK(o && json_is_null(json_object_get(o, "response")));
        CHECK(!strcmp(json_string_value(json_object_get(json_object_get(o, "error"), "code")), "batch_expired"));
        json_decref(o);
        lines++;
    }
    CHECK(lines == 4);
    free(out);
    rc = json_object_get(cur, "request_counts");
    CHECK(json_integer_value(json_object_get(rc, "failed")) == 4);
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", id2) == 0);
    json_decref(cur);
    json_decref(b1);
    json_decref(b2);
    json_decref(f);
    plat_close(p);
}

static void test_resume_once(void) {
    plat_t *p = open_plat();
    json_t *f = file_of(p, account, REQS);
    json_t *b = batch_of(p, json_string_value(json_object_get(f, "id")));
    char bid[PLAT_ID_MAX];
    snprintf(bid, sizeof bid, "%s", json_string_value(json_object_get(b, "id")));
    plat_batch_task_t **tasks = NULL;
    step(p, 0, &tasks);
    free(tasks);
    CHECK(step(p, 3, &tasks) == 3);
    run_ok(p, tasks[0]); /* line 1 done; 2 and 3 in flight when the process "dies" */
    plat_status_t st;
    CHECK(plat_begin_batch(p, account, key, bid, "tiny", 5, 5, &tasks[1]->req, &st) == 0);
    free(tasks);
    plat_close(p); /* drops the in-flight tasks, unbilled */
    p = open_plat();
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", bid) == 1);
    CHECK(step(p, 8, &tasks) == 3);
    CHECK(tasks[0]->line == 2 && tasks[1]->line == 3 && tasks[2]->line == 4);
    /* a duplicate result for line 1 is refused and not billed */
    plat_batch_task_t *dup = calloc(1, sizeof *dup);
    *dup = *tasks[0];
    dup->line = 1;
    dup->body = NULL;
    CHECK(plat_begin_batch(p, account, key, bid, "tiny", 5, 5, &dup->req, &st) == 0);
    plat_usage_t u = {.prompt_tokens = 3, .completion_tokens = 3, .ttft_ms = -1};
    plat_item_result_t item = {1, false, "{}"};
    CHECK(plat_finish_item(p, dup->req, &u, "ok", &item) == PLAT_EDUP);
    free(dup);
    for (int i = 0; i < 2; i++) run_ok(p, tasks[i]);
    /* line 4 refused for now (the engine's queue full): pending again, unbilled */
    static const char busy[] = "{\"error\":{\"message\":\"busy\",\"type\":\"server_error\",\"code\":\"server_busy\"}}";
    plat_batch_task_done(p, tasks[2], 503, busy, sizeof busy - 1, NULL, "aborted");
    free(tasks);
    CHECK(step(p, 8, &tasks) == 1 && tasks[0]->line == 4);
    run_ok(p, tasks[0]);
    free(tasks);
    step(p, 0, &tasks);
    free(tasks);
    json_t *cur = NULL;
    CHECK(!strcmp(status_of(p, bid, &cur), "completed"));
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", bid) == 4);
    CHECK(q_int("SELECT count(DISTINCT line) FROM batch_items WHERE state = 1 AND batch_id = ?1", bid) == 4);
    char err[SL_ERR_MAX];
    CHECK_MSG(plat_verify(p, err, sizeof err) == 0, "%s", err);
    json_decref(cur);
    json_decref(b);
    json_decref(f);
    plat_close(p);
}

static void test_files(void) {
    plat_t *p = open_plat();
    plat_status_t st;
    CHECK(plat_file_create(p, account, "fine-tune", "a", "x", 1, &st) == NULL && st.http == 400 &&
          !strcmp(st.param, "purpose"));
    CHECK(plat_file_create(p, account, NULL, "a", "x", 1, &st) == NULL && st.http == 400);
    CHECK(plat_file_create(p, account, "batch", "a", "", 0, &st) == NULL && st.http == 400);
    CHECK(plat_file_create(p, account, "batch", "bad\xff.jsonl", "x", 1, &st) == NULL && st.http == 400);
    CHECK(plat_file_create(p, account, "batch", "a\tb", "x", 1, &st) == NULL && st.http == 400);
    json_t *a = file_of(p, account, "one\n"), *b2 = file_of(p, account, "two\n");
    fake_now += 1000;
    json_t *c = file_of(p, account, "three\n");
    json_t *l = plat_file_list(p, account, "batch", NULL, 2, false, &st);
    json_t *data = json_object_get(l, "data");
    CHECK(json_array_size(data) == 2 && json_is_true(json_object_get(l, "has_more")));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(data, 0), "id")),
                  json_string_value(json_object_get(c, "id")))); /* newest first */
    json_t *l2 = plat_file_list(p, account, "batch", json_string_value(json_object_get(l, "last_id")), 100, false, &st);
    json_t *d2 = json_object_get(l2, "data");
    for (size_t i = 0; i < json_array_size(d2); i++)
        for (size_t j = 0; j < json_array_size(data); j++)
            CHECK(strcmp(json_string_value(json_object_get(json_array_get(d2, i), "id")),
                         json_string_value(json_object_get(json_array_get(data, j), "id"))) != 0);
    json_t *del = plat_file_delete(p, account, json_string_value(json_object_get(a, "id")), &st);
    CHECK(del && json_is_true(json_object_get(del, "deleted")));
    CHECK(plat_file_delete(p, account, json_string_value(json_object_get(a, "id")), &st) == NULL && st.http == 404);
    CHECK(plat_file_get(p, account, "../etc/passwd", &st) == NULL && st.http == 404);
    json_decref(del);
    json_decref(l);
    json_decref(l2);
    json_decref(a);
    json_decref(b2);
    json_decref(c);
    plat_close(p);
}

/* Retention with a short clock: files go file_retention_s after their
 * upload unless an unfinished batch reads them, finished batches (object
 * and requests) batch_retention_s after they ended; a bounded call deletes
 * at most its rows; deleted ids answer 404 like unknown ones; 0 keeps
 * everything. A store of its own. */
static void test_prune(void) {
    fresh_store();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.file_retention_s = 100;
    cfg.batch_retention_s = 200;
    plat_t *p = open_cfg(&cfg);
    char err[SL_ERR_MAX], k[PLAT_KEY_MAX];
    plat_price_t price = {.input = 2000000, .cached_input = 2000000, .output = 4000000};
    CHECK(plat_price_set(p, "tiny", &price, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "keeper", 0, &account, err, sizeof err) == 0);
    CHECK(plat_key_create(p, account, "k", 0, k, &key, err, sizeof err) == 0);
    json_t *unused = file_of(p, account, "{}\n"), *in_x = file_of(p, account, REQS),
           *in_z = file_of(p, account, REQS);
    char u_id[PLAT_ID_MAX], x_in[PLAT_ID_MAX], z_in[PLAT_ID_MAX], x_id[PLAT_ID_MAX],
        z_id[PLAT_ID_MAX];
    snprintf(u_id, sizeof u_id, "%s", json_string_value(json_object_get(unused, "id")));
    snprintf(x_in, sizeof x_in, "%s", json_string_value(json_object_get(in_x, "id")));
    snprintf(z_in, sizeof z_in, "%s", json_string_value(json_object_get(in_z, "id")));
    json_t *x = batch_of(p, x_in), *z = batch_of(p, z_in);
    snprintf(x_id, sizeof x_id, "%s", json_string_value(json_object_get(x, "id")));
    snprintf(z_id, sizeof z_id, "%s", json_string_value(json_object_get(z, "id")));
    plat_batch_task_t **tasks = NULL;
    step(p, 0, &tasks); /* both validated */
    free(tasks);
    plat_status_t st;
    json_t *c = plat_batch_cancel(p, account, x_id, &st); /* x: cancelling, not finished */
    json_decref(c);
    int n = step(p, 8, &tasks); /* z's four requests */
    CHECK(n == 4);
    for (int i = 0; i < n; i++)
        run_ok(p, tasks[i]);
    free(tasks);
    step(p, 0, &tasks);
    free(tasks);
    json_t *cur = NULL;
    CHECK(!strcmp(status_of(p, z_id, &cur), "completed"));
    char out_id[PLAT_ID_MAX];
    snprintf(out_id, sizeof out_id, "%s",
             json_string_value(json_object_get(cur, "output_file_id")));
    /* x stays cancelling while it is "running": reopen it as in_progress
     * through the books so it is unfinished for the whole test */
    CHECK(q_int("SELECT count(*) FROM batches WHERE id = ?1 AND status = 'cancelled'", x_id) == 1);
    db_t *raw = db_open(dir, true, NULL, 0, err, sizeof err);
    db_stmt_t *s =
        db_prepare(raw, "UPDATE batches SET status = 'in_progress', cancelled_at = 0 WHERE id = ?1",
                   err, sizeof err);
    db_bind_text(s, 1, x_id);
    CHECK(db_step_done(s, err, sizeof err) == 0);
    db_release(s);
    db_close(raw);

    int64_t gone = -1;
    CHECK(plat_batch_prune(p, 1000, &gone, err, sizeof err) == 0 &&
          gone == 0); /* nothing old yet */
    fake_now += 150 * 1000;
    CHECK_MSG(plat_batch_prune(p, 1000, &gone, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(gone == 3, "%" PRId64 " rows", gone); /* unused, z's input, z's output */
    json_t *f = plat_file_get(p, account, u_id, &st);
    CHECK(!f && st.http == 404 && !strcmp(st.code, "file_not_found"));
    size_t len;
    CHECK(plat_file_content(p, account, out_id, &len, &st) == NULL && st.http == 404);
    CHECK(plat_file_get(p, account, z_in, &st) == NULL && st.http == 404);
    f = plat_file_get(p, account, x_in, &st); /* an unfinished batch reads it */
    CHECK(f != NULL);
    json_decref(f);
    CHECK(!strcmp(status_of(p, z_id, &cur), "completed")); /* ended 150 s ago: kept */

    fake_now += 100 * 1000; /* z ended 250 s ago: it goes, one row per call */
    int calls = 0;
    int64_t total = 0;
    for (; calls < 20; calls++) {
        CHECK(plat_batch_prune(p, 1, &gone, err, sizeof err) == 0 && gone <= 1);
        if (gone == 0) break;
        total += gone;
        if (calls == 0) { /* marked at the first call: already a 404 */
            CHECK(plat_batch_get(p, account, z_id, &st) == NULL && st.http == 404 &&
                  !strcmp(st.code, "batch_not_found"));
            json_t *l = plat_batch_list(p, account, NULL, 100, &st);
            CHECK(l && json_array_size(json_object_get(l, "data")) == 1);
            json_decref(l);
        }
    }
    CHECK_MSG(total == 5, "%" PRId64 " rows", total); /* four requests and the batch */
    CHECK(q_int("SELECT count(*) FROM batch_items WHERE batch_id = ?1", z_id) == 0);
    CHECK(q_int("SELECT count(*) FROM batches WHERE id = ?1", z_id) == 0);
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", z_id) ==
          4); /* the books stay */
    CHECK(q_int("SELECT count(*) FROM batch_items WHERE batch_id = ?1", x_id) == 4);
    f = plat_file_get(p, account, x_in, &st);
    CHECK(f != NULL);
    json_decref(f);
    /* x ends: its input file is old enough and goes at the next prune (the
     * runner's own, a minute after its last, is due at this step) */
    c = plat_batch_cancel(p, account, x_id, &st);
    json_decref(c);
    step(p, 0, &tasks);
    free(tasks);
    CHECK(!strcmp(status_of(p, x_id, &cur), "cancelled"));
    CHECK(plat_batch_prune(p, 1000, &gone, err, sizeof err) == 0);
    CHECK(plat_file_get(p, account, x_in, &st) == NULL && st.http == 404);
    CHECK(q_int("SELECT count(*) FROM files", NULL) == 0);
    plat_close(p);

    /* retention 0: kept forever */
    cfg.file_retention_s = 0;
    cfg.batch_retention_s = 0;
    p = open_cfg(&cfg);
    json_t *kept = file_of(p, account, "{}\n");
    fake_now += 3650LL * 86400 * 1000;
    CHECK(plat_batch_prune(p, 1000, &gone, err, sizeof err) == 0 && gone == 0);
    CHECK(!strcmp(status_of(p, x_id, &cur), "cancelled"));
    plat_close(p);
    json_decref(kept);
    json_decref(cur);
    json_decref(x);
    json_decref(z);
    json_decref(unused);
    json_decref(in_x);
    json_decref(in_z);
}

/* ---- several nodes (PostgreSQL) ---- */

enum { NODE_LINES = 40 };
static int runs[NODE_LINES + 1]; /* times each line was handed out to run */

typedef struct node_run {
    plat_t *p;
    const char *bid;
    int ran, errors;
    char err[SL_ERR_MAX];
} node_run_t;

/* One node's runner: steps and runs what it claims until the batch ends. */
static void *node_main(void *arg) {
    node_run_t *r = arg;
    for (int iter = 0; iter < 5000; iter++) {
        plat_batch_task_t **tasks = NULL;
        int n = 0;
        if (plat_batch_step(r->p, 3, any_model, NULL, &tasks, &n, r->err, sizeof r->err) != 0)
            r->errors++;
        for (int i = 0; i < n; i++) {
            plat_batch_task_t *t = tasks[i];
            if (t->line >= 1 && t->line <= NODE_LINES)
                __atomic_fetch_add(&runs[t->line], 1, __ATOMIC_RELAXED);
            plat_status_t st;
            if (plat_begin_batch(r->p, t->account_id, t->key_id, t->batch_id, "tiny", 10, 10,
                                 &t->req, &st) != 0)
                r->errors++;
            plat_usage_t u = {
                .prompt_tokens = 10 + t->line, .completion_tokens = t->line, .ttft_ms = -1};
            plat_batch_task_done(r->p, t, 200, "{\"ok\":true}", 11, &u, "ok");
            r->ran++;
        }
        free(tasks);
        plat_status_t st;
        json_t *b = plat_batch_get(r->p, account, r->bid, &st);
        const char *status = b ? json_string_value(json_object_get(b, "status")) : "";
        bool done = !strcmp(status, "completed");
        json_decref(b);
        if (done) break;
    }
    return NULL;
}

static void setup_node_batch(plat_t *p, int lines, char bid[PLAT_ID_MAX]) {
    char err[SL_ERR_MAX], k[PLAT_KEY_MAX];
    plat_price_t price = {.input = 2000000, .cached_input = 2000000, .output = 4000000};
    CHECK(plat_price_set(p, "tiny", &price, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "fleet", 0, &account, err, sizeof err) == 0);
    CHECK(plat_key_create(p, account, "k", 0, k, &key, err, sizeof err) == 0);
    sl_buf_t b = {0};
    for (int i = 1; i <= lines; i++)
        sl_buf_printf(&b,
                      "{\"custom_id\":\"n%d\",\"method\":\"POST\",\"url\":\"" CHAT
                      "\",\"body\":{\"model\":\"tiny\",\"messages\":[]}}\n",
                      i);
    json_t *f = file_of(p, account, b.data);
    json_t *bt = batch_of(p, json_string_value(json_object_get(f, "id")));
    snprintf(bid, PLAT_ID_MAX, "%s", json_string_value(json_object_get(bt, "id")));
    json_decref(bt);
    json_decref(f);
    sl_buf_free(&b);
}

/* Two nodes run one batch at once: every request handed out once, billed
 * once, with its result; one node validates and one finalizes (one output
 * file); the books balance. */
static void test_two_nodes_one_batch(void) {
    fresh_store();
    memset(runs, 0, sizeof runs);
    plat_t *p1 = open_plat(), *p2 = open_plat();
    char bid[PLAT_ID_MAX], err[SL_ERR_MAX];
    setup_node_batch(p1, NODE_LINES, bid);
    node_run_t r[2] = {{.p = p1, .bid = bid}, {.p = p2, .bid = bid}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, node_main, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_MSG(r[0].errors == 0 && r[1].errors == 0, "%s / %s", r[0].err, r[1].err);
    CHECK_MSG(r[0].ran + r[1].ran == NODE_LINES, "%d + %d runs", r[0].ran, r[1].ran);
    fprintf(stderr, "     (node 1 ran %d requests, node 2 ran %d)\n", r[0].ran, r[1].ran);
    for (int i = 1; i <= NODE_LINES; i++)
        CHECK_MSG(runs[i] == 1, "line %d ran %d times", i, runs[i]);
    json_t *cur = NULL;
    CHECK(!strcmp(status_of(p2, bid, &cur), "completed"));
    json_t *rc = json_object_get(cur, "request_counts");
    CHECK(json_integer_value(json_object_get(rc, "completed")) == NODE_LINES);
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", bid) == NODE_LINES);
    CHECK(q_int("SELECT count(DISTINCT request_id) FROM usage_ledger WHERE batch_id = ?1", bid) ==
          NODE_LINES);
    int64_t want = 0;
    for (int i = 1; i <= NODE_LINES; i++)
        want += batch_cost(i);
    CHECK(q_int("SELECT sum(cost) FROM usage_ledger WHERE batch_id = ?1", bid) == want);
    char name[PLAT_ID_MAX + 32];
    snprintf(name, sizeof name, "%s_output.jsonl", bid);
    CHECK(q_int("SELECT count(*) FROM files WHERE filename = ?1", name) ==
          1); /* one finalization */
    CHECK(q_int("SELECT count(*) FROM batch_items WHERE batch_id = ?1 AND state = 1", bid) ==
          NODE_LINES);
    CHECK(q_int("SELECT count(*) FROM reservations", NULL) == 0);
    CHECK_MSG(plat_verify(p1, err, sizeof err) == 0, "%s", err);
    json_decref(cur);
    plat_close(p1);
    plat_close(p2);
}

/* A node dies (SIGKILL) holding two claimed requests, one admitted: their
 * leases keep the other node off them — they are not handed out again —
 * until the leases run out; then it runs them, each billed once, and the
 * dead node's reservation is swept. */
static void test_dead_node_leases(void) {
    fresh_store();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.lease_ms = 4000;
    plat_t *p = open_cfg(&cfg);
    char bid[PLAT_ID_MAX], err[SL_ERR_MAX];
    setup_node_batch(p, 6, bid);
    plat_batch_task_t **tasks = NULL;
    step(p, 0, &tasks); /* validated */
    free(tasks);
    plat_close(p);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* the node that dies */
        close(fds[0]);
        plat_t *c = plat_open(dir, &cfg, err, sizeof err);
        plat_batch_task_t **mine = NULL;
        int n = 0;
        plat_status_t st;
        if (!c || plat_batch_step(c, 2, any_model, NULL, &mine, &n, err, sizeof err) != 0 || n != 2)
            _exit(3);
        if (plat_begin_batch(c, mine[0]->account_id, mine[0]->key_id, bid, "tiny", 10, 10,
                             &mine[0]->req, &st) != 0)
            _exit(4);
        if (write(fds[1], "x", 1) != 1) _exit(5);
        for (;;)
            pause();
    }
    close(fds[1]);
    char ch;
    CHECK(read(fds[0], &ch, 1) == 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(q_int("SELECT count(*) FROM batch_items WHERE batch_id = ?1 AND node != '' AND "
                "lease_until > 0",
                bid) == 2);
    p = open_cfg(&cfg);
    int n = step(p, 8, &tasks);
    CHECK_MSG(n == 4, "%d claimed", n);
    for (int i = 0; i < n; i++) {
        CHECK(tasks[i]->line > 2); /* lines 1 and 2 are the dead node's while its leases hold */
        run_ok(p, tasks[i]);
    }
    free(tasks);
    fake_now += cfg.lease_ms - 1; /* still held */
    CHECK(step(p, 8, &tasks) == 0);
    free(tasks);
    json_t *cur = NULL;
    CHECK(!strcmp(status_of(p, bid, &cur), "in_progress"));
    fake_now += 2; /* run out */
    n = step(p, 8, &tasks);
    CHECK_MSG(n == 2 && tasks[0]->line == 1 && tasks[1]->line == 2, "%d claimed", n);
    for (int i = 0; i < n; i++)
        run_ok(p, tasks[i]);
    free(tasks);
    step(p, 0, &tasks);
    free(tasks);
    CHECK(!strcmp(status_of(p, bid, &cur), "completed"));
    CHECK(q_int("SELECT count(*) FROM usage_ledger WHERE batch_id = ?1", bid) == 6);
    CHECK(q_int("SELECT count(*) FROM reservations", NULL) == 0);
    CHECK_MSG(plat_verify(p, err, sizeof err) == 0, "%s", err);
    json_decref(cur);
    plat_close(p);
}

static void run_round(void) {
    fresh_store();
    fake_now = 1700000000000;
    RUN(test_lifecycle);
    RUN(test_cancel_and_expire);
    RUN(test_resume_once);
    RUN(test_files);
    RUN(test_prune);
    if (!pg_base) return;
    fake_now = 1700000000000;
    RUN(test_two_nodes_one_batch);
    RUN(test_dead_node_leases);
}

int main(void) {
    RUN(test_validate);
    RUN(test_price_scale);
    fprintf(stderr, "-- on SQLite\n");
    run_round();
    const char *pg = getenv("SILICA_TEST_PG");
    if (pg && *pg) {
        fprintf(stderr, "-- on PostgreSQL\n");
        pg_base = pg;
        run_round();
    } else {
        fprintf(stderr, "-- on PostgreSQL: SKIPPED (SILICA_TEST_PG is not set; tests/pg.sh sets it)\n");
    }
    for (int i = 0; i < nmade; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", made[i]);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", made[i]);
    }
    return test_summary();
}
