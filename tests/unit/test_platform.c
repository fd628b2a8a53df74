/* deps: platform base */
/*
 * test_platform.c — accounts, keys, balances, ledger and rate limits,
 * checked against the database read through a second, independent
 * connection and against costs computed here from the prices.
 *
 * Every test runs on SQLite, then again on PostgreSQL when SILICA_TEST_PG
 * names a server's maintenance database (tests/pg.sh starts a throwaway
 * one and sets it): each "data dir" is then a fresh database on it.
 */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/db.h"
#include "platform/platform.h"
#include "test.h"
#include "test_pg.h"

#define YUAN PLAT_MONEY_UNIT
#define SCHEMA_VERSION 6 /* migrations in src/platform/sql.c */

static int64_t fake_now = 1700000000000LL; /* unix ms */
static int64_t fake_clock(void *ctx) {
    (void)ctx;
    return fake_now;
}

static char dirs[80][512];
static int ndirs;
static const char *pg_base; /* SILICA_TEST_PG while the PostgreSQL round runs, else NULL */

/* A new, empty store: a temporary directory, or on PostgreSQL a new
 * database on the test server (its URL). */
static const char *fresh_dir(void) {
    if (ndirs >= (int)SL_ARRAY_LEN(dirs)) abort();
    char *d = dirs[ndirs++];
    test_fresh_store(pg_base, "/tmp/silica-plat-XXXXXX", "silica_t", d, sizeof dirs[0]);
    return d;
}

static plat_t *open_test(const char *dir, bool fake) {
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.sync_normal = true;
    if (fake) cfg.clock_ms = fake_clock;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    return p;
}

/* A second, independent connection for reading what was written. */
static db_t *raw_db(const char *dir) {
    char err[SL_ERR_MAX];
    db_t *db = db_open(dir, true, NULL, 0, err, sizeof err);
    if (!db) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    return db;
}

/* The first column of the first row of sql (?1 = arg), INT64_MIN when
 * there is none. */
static int64_t q_int(db_t *db, const char *sql, const char *arg) {
    char err[SL_ERR_MAX];
    db_stmt_t *s = db_prepare(db, sql, err, sizeof err);
    if (!s) {
        fprintf(stderr, "prepare %s: %s\n", sql, err);
        return INT64_MIN;
    }
    if (arg) db_bind_text(s, 1, arg);
    int64_t v = db_step(s) == DB_ROW ? db_col_int64(s, 0) : INT64_MIN;
    db_release(s);
    return v;
}

static char auth_hdr[32][128];
static int nauth;
static const char *bearer(const char *key) {
    char *h = auth_hdr[nauth++ % 32];
    snprintf(h, 128, "Bearer %s", key);
    return h;
}

static int64_t new_account(plat_t *p, const char *name, int64_t gift, int64_t charge,
                           char key[PLAT_KEY_MAX], int64_t *key_id) {
    char err[SL_ERR_MAX];
    int64_t id = 0;
    CHECK_MSG(plat_account_create(p, name, 0, &id, err, sizeof err) == 0, "%s", err);
    plat_account_t a;
    plat_account_get(p, id, &a, err, sizeof err);
    /* Bring the balances to exactly (gift, charge). */
    CHECK(plat_account_credit(p, id, gift - a.gift_balance, charge - a.charge_balance, "test",
                              err, sizeof err) == 0);
    if (key) CHECK_MSG(plat_key_create(p, id, "k", 0, key, key_id, err, sizeof err) == 0, "%s", err);
    return id;
}

/* Reference cost: each part in micro-micro-yuan, summed, rounded up. */
static int64_t ref_cost(const plat_price_t *pr, int64_t prompt, int64_t cached, int64_t completion) {
    int64_t a = (prompt - cached) * pr->input;
    int64_t b = cached * pr->cached_input;
    int64_t c = completion * pr->output;
    int64_t sum = a + b + c;
    return sum / 1000000 + (sum % 1000000 != 0);
}

/* ---- money ---- */

static void test_money(void) {
    int64_t v;
    CHECK(plat_money_parse("14", &v) == 0 && v == 14000000);
    CHECK(plat_money_parse("0.5", &v) == 0 && v == 500000);
    CHECK(plat_money_parse("-3.000001", &v) == 0 && v == -3000001);
    CHECK(plat_money_parse(".25", &v) == 0 && v == 250000);
    CHECK(plat_money_parse("1.2345678", &v) != 0);
    CHECK(plat_money_parse("1e3", &v) != 0);
    CHECK(plat_money_parse("", &v) != 0);
    CHECK(plat_money_parse("-", &v) != 0);
    CHECK(plat_money_parse("99999999999999999999", &v) != 0);
    char buf[32];
    plat_money_format(14000000, buf, sizeof buf);
    CHECK(!strcmp(buf, "14.00"));
    plat_money_format(125, buf, sizeof buf);
    CHECK(!strcmp(buf, "0.000125"));
    plat_money_format(-880000, buf, sizeof buf);
    CHECK(!strcmp(buf, "-0.88"));
    plat_money_format(INT64_MIN, buf, sizeof buf);
    CHECK(!strcmp(buf, "-9223372036854.775808"));
    for (int64_t x = -2000003; x <= 2000003; x += 99991) {
        plat_money_format(x, buf, sizeof buf);
        CHECK(plat_money_parse(buf, &v) == 0 && v == x);
    }
}

static void test_cost(void) {
    plat_price_t pr = {.input = 1260000, .cached_input = 630000, .output = 2520000};
    plat_usage_t u = {.prompt_tokens = 1000000, .completion_tokens = 0};
    CHECK(plat_cost(&pr, &u) == 1260000); /* 1M input tokens cost the input price */
    u = (plat_usage_t){.prompt_tokens = 1, .completion_tokens = 0};
    CHECK(plat_cost(&pr, &u) == 2); /* 1.26 micro-yuan rounds up */
    srand(7);
    for (int i = 0; i < 1000; i++) {
        int64_t prompt = rand() % 100000, cached = prompt ? rand() % (prompt + 1) : 0;
        int64_t completion = rand() % 50000;
        u = (plat_usage_t){.prompt_tokens = prompt, .cached_tokens = cached,
                           .completion_tokens = completion};
        CHECK(plat_cost(&pr, &u) == ref_cost(&pr, prompt, cached, completion));
    }
    plat_price_t zero = {0, 0, 0};
    u = (plat_usage_t){.prompt_tokens = 5000, .completion_tokens = 5000};
    CHECK(plat_cost(&zero, &u) == 0);
}

/* ---- schema ---- */

static void test_migrations(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    plat_close(p);
    db_t *db = raw_db(dir);
    char err[SL_ERR_MAX] = "";
    if (pg_base) {
        CHECK(q_int(db, "SELECT version FROM schema_version", NULL) == SCHEMA_VERSION);
        CHECK(q_int(db, "SELECT count(*) FROM schema_version", NULL) == 1);
    } else {
        CHECK(q_int(db, "PRAGMA user_version", NULL) == SCHEMA_VERSION);
        db_stmt_t *s = db_prepare(db, "PRAGMA journal_mode", err, sizeof err);
        CHECK(s && db_step(s) == DB_ROW && !strcmp(db_col_text(s, 0), "wal"));
        db_release(s);
    }
    p = open_test(dir, false); /* reopening an up-to-date schema is a no-op */
    plat_close(p);
    /* A database from a newer silica is refused, not damaged. */
    db_stmt_t *s = db_prepare(db,
                              pg_base ? "UPDATE schema_version SET version = 99"
                                      : "PRAGMA user_version = 99",
                              err, sizeof err);
    CHECK(s && db_step_done(s, err, sizeof err) == 0);
    db_release(s);
    db_close(db);
    p = plat_open(dir, NULL, err, sizeof err);
    CHECK(p == NULL && strstr(err, "newer"));
    plat_close(p);
}

/* ---- stored responses ---- */

/* Each account sees only its own responses; an id another account holds
 * is neither readable, deletable nor overwritable; rows past the retention
 * period are gone; the size bound holds. */
static void test_stored_responses(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, true);
    const int64_t now0 = fake_now;
    char err[SL_ERR_MAX];
    char *t = NULL;
    CHECK(plat_resp_put(p, 1, "resp_a", "{\"x\":1}", 7, err, sizeof err) == 0);
    CHECK(plat_resp_get(p, 1, "resp_a", &t, err, sizeof err) == 0 && t && !strcmp(t, "{\"x\":1}"));
    free(t);
    CHECK(plat_resp_get(p, 2, "resp_a", &t, err, sizeof err) == 1 && !t);  /* another account: not there */
    CHECK(plat_resp_delete(p, 2, "resp_a", err, sizeof err) == 1);
    CHECK(plat_resp_put(p, 2, "resp_a", "{}", 2, err, sizeof err) != 0); /* the id is account 1's */
    CHECK(plat_resp_get(p, 1, "resp_a", &t, err, sizeof err) == 0 && t && !strcmp(t, "{\"x\":1}"));
    free(t);
    CHECK(plat_resp_put(p, 1, "resp_a", "{\"x\":2}", 7, err, sizeof err) == 0); /* its owner replaces it */
    CHECK(plat_resp_get(p, 1, "resp_a", &t, err, sizeof err) == 0 && t && !strcmp(t, "{\"x\":2}"));
    free(t);
    CHECK(plat_resp_delete(p, 1, "resp_a", err, sizeof err) == 0);
    CHECK(plat_resp_delete(p, 1, "resp_a", err, sizeof err) == 1);
    CHECK(plat_resp_get(p, 1, "resp_a", &t, err, sizeof err) == 1);
    /* retention: a response older than PLAT_RESP_DAYS is not returned and
     * is removed when the account stores another */
    CHECK(plat_resp_put(p, 1, "resp_old", "{}", 2, err, sizeof err) == 0);
    fake_now += (int64_t)(PLAT_RESP_DAYS + 1) * 86400000;
    CHECK(plat_resp_get(p, 1, "resp_old", &t, err, sizeof err) == 1);
    CHECK(plat_resp_put(p, 1, "resp_new", "{}", 2, err, sizeof err) == 0);
    db_t *db = raw_db(dir);
    CHECK(q_int(db, "SELECT COUNT(*) FROM responses WHERE id = ?1", "resp_old") == 0);
    CHECK(q_int(db, "SELECT COUNT(*) FROM responses WHERE id = ?1", "resp_new") == 1);
    db_close(db);
    CHECK(plat_resp_put(p, 1, "resp_big", "x", PLAT_RESP_MAX_BYTES + 1, err, sizeof err) != 0);
    plat_close(p);
    fake_now = now0;
}

/* ---- authentication ---- */

static void test_auth_failures(void) {
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL;
    plat_t *p = open_test(dir, true);
    char key[PLAT_KEY_MAX], key2[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t kid, kid2;
    int64_t acct = new_account(p, "alice", 10 * YUAN, 0, key, &kid);
    CHECK(strlen(key) == 51 && !strncmp(key, "sk-", 3));
    plat_req_t *r;
    plat_status_t st;

    CHECK(plat_begin(p, bearer(key), "m", 10, 10, &r, &st) == 0 && st.http == 200);
    CHECK(plat_req_account(r) == acct && plat_req_key(r) == kid);
    CHECK(!strncmp(plat_req_id(r), "req-", 4) && strlen(plat_req_id(r)) == 36);
    plat_abort(p, r);

    /* missing */
    CHECK(plat_begin(p, NULL, "m", 10, 10, &r, &st) == -1 && st.http == 401 && r == NULL);
    CHECK(!strcmp(st.code, "missing_api_key"));
    CHECK(plat_begin(p, "  ", "m", 10, 10, &r, &st) == -1 && st.http == 401);
    /* malformed */
    const char *bad[] = {key, "Basic abc", "Bearer", "Bearer sk-short", "Bearer pk-0123",
                         "Bearerxsk-abc"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        CHECK_MSG(plat_begin(p, bad[i], "m", 10, 10, &r, &st) == -1 && st.http == 401,
                  "'%s' -> %d", bad[i], st.http);
        CHECK(!strcmp(st.code, "invalid_api_key"));
    }
    char wrong[PLAT_KEY_MAX];
    strcpy(wrong, key);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a'; /* well formed, but not a key */
    CHECK(plat_begin(p, bearer(wrong), "m", 10, 10, &r, &st) == -1 && st.http == 401);
    CHECK(strstr(st.message, "Incorrect API key") != NULL);
    wrong[20] = '-';
    CHECK(plat_begin(p, bearer(wrong), "m", 10, 10, &r, &st) == -1 && st.http == 401);
    /* scheme is case-insensitive, surrounding blanks are tolerated */
    char h[128];
    snprintf(h, sizeof h, "bearer   %s \r\n", key);
    CHECK(plat_begin(p, h, "m", 10, 10, &r, &st) == 0);
    plat_abort(p, r);

    /* revoked: effective on the very next request */
    CHECK(plat_key_create(p, acct, "second", 0, key2, &kid2, err, sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key2), "m", 10, 10, &r, &st) == 0);
    CHECK(plat_key_revoke(p, 0, kid2, err, sizeof err) == 0);
    plat_usage_t u = {.prompt_tokens = 10, .completion_tokens = 1, .ttft_ms = -1};
    CHECK(plat_finish(p, r, &u, "ok") == 0); /* a request already running completes */
    CHECK(plat_begin(p, bearer(key2), "m", 10, 10, &r, &st) == -1 && st.http == 401);
    CHECK(strstr(st.message, "revoked") != NULL);
    CHECK(plat_begin(p, bearer(key), "m", 10, 10, &r, &st) == 0); /* the other key still works */
    plat_abort(p, r);

    /* expired */
    char key3[PLAT_KEY_MAX];
    CHECK(plat_key_create(p, acct, "short", fake_now + 60000, key3, NULL, err, sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key3), "m", 10, 10, &r, &st) == 0);
    plat_abort(p, r);
    fake_now += 60000;
    CHECK(plat_begin(p, bearer(key3), "m", 10, 10, &r, &st) == -1 && st.http == 401);
    CHECK(strstr(st.message, "expired") != NULL);

    /* disabled account: 403 */
    CHECK(plat_account_set_status(p, acct, "disabled", err, sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key), "m", 10, 10, &r, &st) == -1 && st.http == 403);
    CHECK(plat_account_set_status(p, acct, "normal", err, sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key), "m", 10, 10, &r, &st) == 0);
    plat_abort(p, r);

    /* Only the hash is stored: the key text is nowhere in the database. */
    plat_close(p);
    db_t *db = raw_db(dir);
    char like[80];
    snprintf(like, sizeof like, "%%%s%%", key + 11);
    CHECK(q_int(db, "SELECT count(*) FROM api_keys WHERE hash LIKE ?1 OR prefix LIKE ?1 OR name "
                    "LIKE ?1",
                like) == 0);
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    CHECK(q_int(db, "SELECT id FROM api_keys WHERE hash = ?1", hex) == kid);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.11s", key);
    CHECK(q_int(db, "SELECT count(*) FROM api_keys WHERE prefix = ?1", prefix) == 1);
    db_close(db);
}

static void test_keys_are_random(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char err[SL_ERR_MAX];
    int64_t acct = new_account(p, "k", 0, 0, NULL, NULL);
    enum { N = 200 };
    static char keys[N][PLAT_KEY_MAX];
    int counts[128] = {0};
    for (int i = 0; i < N; i++) {
        CHECK(plat_key_create(p, acct, "", 0, keys[i], NULL, err, sizeof err) == 0);
        for (int j = 3; j < 51; j++) counts[(unsigned char)keys[i][j] & 127]++;
        for (int j = 0; j < i; j++) CHECK(strcmp(keys[i], keys[j]) != 0);
    }
    /* 62 symbols used, each about N*48/62 = 155 times. */
    int used = 0;
    for (int c = 0; c < 128; c++)
        if (counts[c]) {
            used++;
            CHECK_MSG(counts[c] > 80 && counts[c] < 240, "char %c %d", c, counts[c]);
        }
    CHECK(used == 62);
    plat_close(p);
}

/* ---- accounts, credits, info ---- */

static void test_signup_referral_and_info(void) {
    const char *dir = fresh_dir();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.sync_normal = true;
    cfg.signup_gift = 14 * YUAN;
    cfg.referral_gift = 2500000;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    int64_t a, b;
    CHECK(plat_account_create(p, "alice", 0, &a, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "bob", a, &b, err, sizeof err) == 0);
    CHECK(plat_account_create(p, "eve", 999, NULL, err, sizeof err) != 0); /* no such referrer */
    plat_account_t acc;
    CHECK(plat_account_get(p, a, &acc, err, sizeof err) == 0);
    CHECK(acc.gift_balance == 14 * YUAN + 2500000 && acc.charge_balance == 0);
    CHECK(plat_account_get(p, b, &acc, err, sizeof err) == 0);
    CHECK(acc.gift_balance == 14 * YUAN + 2500000 && acc.referrer_id == a);
    CHECK(plat_account_credit(p, b, 0, 88 * YUAN, "top-up", err, sizeof err) == 0);
    CHECK(plat_account_credit(p, 12345, 0, YUAN, NULL, err, sizeof err) != 0);
    CHECK(plat_account_credit(p, b, 0, INT64_MAX / 2, NULL, err, sizeof err) != 0);

    char *js = plat_user_info_json(p, b, err, sizeof err);
    CHECK(js != NULL);
    json_error_t je;
    json_t *doc = json_loads(js ? js : "", 0, &je);
    CHECK(doc != NULL);
    json_t *d = json_object_get(doc, "data");
    CHECK(json_integer_value(json_object_get(doc, "code")) == 20000);
    CHECK(json_is_true(json_object_get(doc, "status")));
    char idstr[24];
    snprintf(idstr, sizeof idstr, "%" PRId64, b);
    CHECK(!strcmp(json_string_value(json_object_get(d, "id")), idstr));
    CHECK(!strcmp(json_string_value(json_object_get(d, "name")), "bob"));
    CHECK(!strcmp(json_string_value(json_object_get(d, "balance")), "16.50"));
    CHECK(!strcmp(json_string_value(json_object_get(d, "chargeBalance")), "88.00"));
    CHECK(!strcmp(json_string_value(json_object_get(d, "totalBalance")), "104.50"));
    CHECK(!strcmp(json_string_value(json_object_get(d, "status")), "normal"));
    json_decref(doc);
    free(js);
    CHECK(plat_verify(p, err, sizeof err) == 0);
    plat_close(p);
}

static int64_t bootstrap_cb_count;
static int count_accounts(const plat_account_t *a, void *ctx) {
    (void)a;
    (void)ctx;
    bootstrap_cb_count++;
    return 0;
}

static void test_bootstrap(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX] = "", err[SL_ERR_MAX];
    bool created;
    CHECK(plat_bootstrap_if_empty(p, key, &created, err, sizeof err) == 0 && created);
    plat_status_t st;
    int64_t acct;
    CHECK(plat_auth(p, bearer(key), &acct, NULL, &st) == 0);
    char key2[PLAT_KEY_MAX] = "";
    CHECK(plat_bootstrap_if_empty(p, key2, &created, err, sizeof err) == 0 && !created);
    CHECK(key2[0] == '\0');
    bootstrap_cb_count = 0;
    plat_account_each(p, count_accounts, NULL, err, sizeof err);
    CHECK(bootstrap_cb_count == 1);
    plat_close(p);
}

/* ---- money flow ---- */

static void test_gift_before_charged(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "g", 1 * YUAN, 5 * YUAN, key, NULL);
    /* 1 yuan per 1k output tokens: 600 tokens cost 0.6 yuan. */
    plat_price_t pr = {.input = 0, .cached_input = 0, .output = 1000 * YUAN};
    CHECK(plat_price_set(p, "paid", &pr, err, sizeof err) == 0);
    plat_req_t *r;
    plat_status_t st;
    plat_usage_t u = {.prompt_tokens = 5, .completion_tokens = 600, .ttft_ms = 3};
    plat_account_t a;
    CHECK(plat_begin(p, bearer(key), "paid", 5, 600, &r, &st) == 0);
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    plat_account_get(p, acct, &a, err, sizeof err);
    CHECK(a.gift_balance == 400000 && a.charge_balance == 5 * YUAN);
    CHECK(plat_begin(p, bearer(key), "paid", 5, 600, &r, &st) == 0);
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    plat_account_get(p, acct, &a, err, sizeof err);
    CHECK_MSG(a.gift_balance == 0 && a.charge_balance == 4800000, "%" PRId64 " %" PRId64,
              a.gift_balance, a.charge_balance);
    CHECK(plat_begin(p, bearer(key), "paid", 5, 600, &r, &st) == 0);
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    plat_account_get(p, acct, &a, err, sizeof err);
    CHECK(a.gift_balance == 0 && a.charge_balance == 4200000);
    /* A later gift is spent before the charged balance again. */
    CHECK(plat_account_credit(p, acct, 300000, 0, "promo", err, sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key), "paid", 5, 600, &r, &st) == 0);
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    plat_account_get(p, acct, &a, err, sizeof err);
    CHECK(a.gift_balance == 0 && a.charge_balance == 3900000);
    plat_close(p);
    db_t *db = raw_db(dir);
    const char *const want[] = {"600000/0", "400000/200000", "0/600000", "300000/300000"};
    db_stmt_t *s = db_prepare(db,
                              "SELECT gift_spent || '/' || charge_spent FROM usage_ledger "
                              "ORDER BY id",
                              err, sizeof err);
    int n = 0;
    while (s && db_step(s) == DB_ROW) {
        CHECK(n < 4 && !strcmp(db_col_text(s, 0), want[n]));
        n++;
    }
    CHECK(n == 4);
    db_release(s);
    db_close(db);
}

static void test_balance_exhaustion(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "poor", 1 * YUAN, 0, key, NULL);
    plat_price_t pr = {.input = 100 * YUAN, .cached_input = 50 * YUAN, .output = 200 * YUAN};
    CHECK(plat_price_set(p, "paid", &pr, err, sizeof err) == 0);
    /* Largest cost per request: 100 prompt + 400 output = 0.01 + 0.08 = 0.09 yuan. */
    int ok = 0, refused = 0;
    plat_status_t st;
    srand(3);
    for (int i = 0; i < 200 && !refused; i++) {
        plat_req_t *r;
        if (plat_begin(p, bearer(key), "paid", 100, 400, &r, &st) != 0) {
            refused++;
            break;
        }
        plat_usage_t u = {.prompt_tokens = 100, .cached_tokens = rand() % 100,
                          .completion_tokens = rand() % 401, .ttft_ms = -1};
        CHECK(plat_finish(p, r, &u, "ok") == 0);
        ok++;
    }
    CHECK(refused == 1 && ok >= 11);
    CHECK(st.http == 403 && !strcmp(st.type, "insufficient_quota"));
    CHECK(strstr(st.message, "max_tokens") != NULL);
    plat_account_t a;
    plat_account_get(p, acct, &a, err, sizeof err);
    int64_t total = a.gift_balance + a.charge_balance;
    CHECK_MSG(total >= 0 && total < 90000, "left %" PRId64, total);
    /* Lowering max_tokens lets a smaller request through while money lasts. */
    plat_req_t *r;
    if (total >= 10000 + 2000) {
        CHECK(plat_begin(p, bearer(key), "paid", 100, 10, &r, &st) == 0);
        plat_abort(p, r);
    }
    /* Free models (no price) need no balance. */
    CHECK(plat_account_credit(p, acct, -a.gift_balance, -a.charge_balance, "drain", err,
                              sizeof err) == 0);
    CHECK(plat_begin(p, bearer(key), "free-model", 1000, 1000, &r, &st) == 0);
    plat_usage_t u = {.prompt_tokens = 1000, .completion_tokens = 1000, .ttft_ms = -1};
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    CHECK(plat_begin(p, bearer(key), "paid", 1, 1, &r, &st) == -1 && st.http == 403);
    CHECK(plat_verify(p, err, sizeof err) == 0);
    plat_close(p);
}

/* Threads hammer begin/finish on one account; the balance never goes
 * below zero and every admitted request is billed. */
typedef struct hammer {
    plat_t *p;
    const char *auth;
    unsigned seed;
    int admitted, refused;
} hammer_t;

static void *hammer_run(void *arg) {
    hammer_t *h = arg;
    for (int i = 0; i < 150; i++) {
        plat_req_t *r;
        plat_status_t st;
        int64_t prompt = 50 + rand_r(&h->seed) % 200, maxc = 1 + rand_r(&h->seed) % 300;
        if (plat_begin(h->p, h->auth, "paid", prompt, maxc, &r, &st) != 0) {
            if (st.http != 403) fprintf(stderr, "unexpected %d %s\n", st.http, st.message);
            h->refused++;
            continue;
        }
        h->admitted++;
        plat_usage_t u = {.prompt_tokens = prompt,
                          .cached_tokens = rand_r(&h->seed) % (prompt + 1),
                          .completion_tokens = rand_r(&h->seed) % (maxc + 1), .ttft_ms = 1};
        if (rand_r(&h->seed) % 10 == 0) u.completion_tokens = 0; /* cancelled early */
        plat_finish(h->p, r, &u, u.completion_tokens ? "ok" : "cancelled");
    }
    return NULL;
}

static void test_concurrent_no_overspend(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "busy", 2 * YUAN, 1 * YUAN, key, NULL);
    plat_price_t pr = {.input = 40 * YUAN, .cached_input = 10 * YUAN, .output = 80 * YUAN};
    CHECK(plat_price_set(p, "paid", &pr, err, sizeof err) == 0);
    plat_limits_t unlimited = {0, 0, 0, 0};
    CHECK(plat_limits_set(p, 0, "*", &unlimited, err, sizeof err) == 0);
    enum { T = 6 };
    hammer_t h[T];
    pthread_t th[T];
    const char *auth = bearer(key);
    for (int i = 0; i < T; i++) {
        h[i] = (hammer_t){.p = p, .auth = auth, .seed = 100u + (unsigned)i};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    int admitted = 0, refused = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        admitted += h[i].admitted;
        refused += h[i].refused;
    }
    plat_account_t a;
    plat_account_get(p, acct, &a, err, sizeof err);
    CHECK_MSG(a.gift_balance >= 0 && a.charge_balance >= 0, "gift %" PRId64 " charge %" PRId64,
              a.gift_balance, a.charge_balance);
    CHECK(refused > 0 && admitted > 50); /* the money ran out mid-traffic */
    CHECK(plat_verify(p, err, sizeof err) == 0);
    plat_close(p);
    db_t *db = raw_db(dir);
    CHECK(q_int(db, "SELECT count(*) FROM usage_ledger", NULL) == admitted);
    CHECK(q_int(db, "SELECT sum(cost) FROM usage_ledger", NULL) ==
          3 * YUAN - (a.gift_balance + a.charge_balance));
    db_close(db);
}

/* ---- rate limits ---- */

static void test_rpm_within_5pct(void) {
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL;
    plat_t *p = open_test(dir, true);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "rl", 0, 0, key, NULL);
    plat_limits_t l = {.rpm = 60, .tpm = 0};
    CHECK(plat_limits_set(p, acct, "m", &l, err, sizeof err) == 0);
    const char *auth = bearer(key);
    /* A client retrying every 250 ms for 24 minutes; count minutes 2..22. */
    int admitted = 0, bad_retry = 0;
    int64_t t0 = fake_now;
    for (int64_t t = 0; t < 24 * 60000; t += 250) {
        fake_now = t0 + t;
        plat_req_t *r;
        plat_status_t st;
        if (plat_begin(p, auth, "m", 10, 10, &r, &st) == 0) {
            plat_usage_t u = {.prompt_tokens = 10, .completion_tokens = 10, .ttft_ms = -1};
            plat_finish(p, r, &u, "ok");
            if (t >= 2 * 60000 && t < 22 * 60000) admitted++;
        } else if (st.http != 429 || strcmp(st.limit, "rpm") || st.retry_after_s < 1 ||
                   st.retry_after_s > 1 || !strstr(st.message, "requests per minute")) {
            bad_retry++;
        }
    }
    CHECK_MSG(admitted >= 1200 * 0.95 && admitted <= 1200 * 1.05, "admitted %d of 1200",
              admitted);
    CHECK(bad_retry == 0);

    /* Retry-After is honest: waiting that long is enough. */
    l.rpm = 6; /* one every 10 s */
    CHECK(plat_limits_set(p, acct, "m", &l, err, sizeof err) == 0);
    fake_now += 60000; /* the bucket refills to its new, lower cap */
    plat_req_t *r;
    plat_status_t st;
    int n = 0;
    while (plat_begin(p, auth, "m", 1, 1, &r, &st) == 0) {
        plat_abort(p, r);
        n++;
        /* abort gives the request back: break after a full burst of begins kept */
        if (n > 100) break;
    }
    CHECK(n > 100); /* aborts return the request slot */
    for (int i = 0; i < 6; i++) {
        if (plat_begin(p, auth, "m", 1, 1, &r, &st) == 0) {
            plat_usage_t u = {.prompt_tokens = 1, .completion_tokens = 1, .ttft_ms = -1};
            plat_finish(p, r, &u, "ok");
        }
    }
    CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == -1 && st.http == 429);
    CHECK(st.retry_after_s >= 1 && st.retry_after_s <= 10);
    fake_now += (int64_t)st.retry_after_s * 1000;
    CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == 0);
    plat_abort(p, r);

    /* Limits are per account per model: another model is not limited by it. */
    CHECK(plat_begin(p, auth, "other", 1, 1, &r, &st) == 0);
    plat_abort(p, r);
    plat_close(p);
}

static void test_tpm_within_5pct(void) {
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL;
    plat_t *p = open_test(dir, true);
    char key[PLAT_KEY_MAX], key2[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "tl", 0, 0, key, NULL);
    new_account(p, "other", 0, 0, key2, NULL);
    plat_limits_t l = {.rpm = 0, .tpm = 20000};
    CHECK(plat_limits_set(p, acct, "m", &l, err, sizeof err) == 0);
    const char *auth = bearer(key), *auth2 = bearer(key2);
    /* Requests announce up to 1500 tokens but use a random share of them;
     * the tokens actually used per minute must match the TPM. */
    srand(11);
    int64_t used = 0;
    int64_t t0 = fake_now;
    int bad = 0;
    for (int64_t t = 0; t < 24 * 60000; t += 200) {
        fake_now = t0 + t;
        plat_req_t *r;
        plat_status_t st;
        int64_t prompt = 200 + rand() % 300, maxc = 1000;
        if (plat_begin(p, auth, "m", prompt, maxc, &r, &st) == 0) {
            plat_usage_t u = {.prompt_tokens = prompt, .completion_tokens = rand() % (maxc + 1),
                              .ttft_ms = -1};
            plat_finish(p, r, &u, "ok");
            if (t >= 2 * 60000 && t < 22 * 60000) used += u.prompt_tokens + u.completion_tokens;
        } else if (st.http != 429 || strcmp(st.limit, "tpm") || st.retry_after_s < 1) {
            bad++;
        }
    }
    CHECK_MSG(used >= 400000 * 0.95 && used <= 400000 * 1.05, "used %" PRId64 " of 400000", used);
    CHECK(bad == 0);
    /* Another account's bucket is its own (paid default limits). */
    plat_req_t *r;
    plat_status_t st;
    CHECK(plat_begin(p, auth2, "m", 500, 1000, &r, &st) == 0);
    plat_abort(p, r);
    plat_close(p);
}

static void test_rpd(void) {
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL;
    plat_t *p = open_test(dir, true);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "daily", 0, 0, key, NULL);
    plat_limits_t l = {.rpd = 5, .tpd = 0};
    CHECK(plat_limits_set(p, acct, "*", &l, err, sizeof err) == 0);
    const char *auth = bearer(key);
    plat_req_t *r;
    plat_status_t st;
    plat_usage_t u = {.prompt_tokens = 1, .completion_tokens = 1, .ttft_ms = -1};
    for (int i = 0; i < 5; i++) {
        CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == 0);
        if (r) plat_finish(p, r, &u, "ok");
        fake_now += 60000; /* an RPM limit would have refilled; RPD has not */
    }
    CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == -1 && st.http == 429);
    CHECK(!strcmp(st.limit, "rpd") && strstr(st.message, "requests per day"));
    /* One request per 86400/5 s comes back: 17280 s minus the 300 s waited. */
    CHECK_MSG(st.retry_after_s >= 16980 - 1 && st.retry_after_s <= 16980 + 1, "%d",
              st.retry_after_s);
    fake_now += (int64_t)st.retry_after_s * 1000;
    CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == 0);
    plat_abort(p, r);
    /* TPD: a request needing more than today's remaining tokens waits. */
    l = (plat_limits_t){.tpd = 10000};
    CHECK(plat_limits_set(p, acct, "*", &l, err, sizeof err) == 0);
    CHECK(plat_begin(p, auth, "m2", 4000, 4000, &r, &st) == 0);
    u = (plat_usage_t){.prompt_tokens = 4000, .completion_tokens = 4000, .ttft_ms = -1};
    plat_finish(p, r, &u, "ok");
    CHECK(plat_begin(p, auth, "m2", 4000, 4000, &r, &st) == -1 && st.http == 429);
    CHECK(!strcmp(st.limit, "tpd"));
    CHECK(plat_begin(p, auth, "m2", 1000, 500, &r, &st) == 0); /* a smaller one fits */
    plat_abort(p, r);
    plat_close(p);
}

static void test_limits_resolution(void) {
    const char *dir = fresh_dir();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.sync_normal = true;
    cfg.free_limits = (plat_limits_t){1, 2, 3, 4};
    cfg.paid_limits = (plat_limits_t){5, 6, 7, 8};
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    int64_t a = new_account(p, "a", 0, 0, NULL, NULL);
    int64_t b = new_account(p, "b", 0, 0, NULL, NULL);
    plat_price_t pr = {1, 1, 1};
    plat_price_set(p, "paid", &pr, err, sizeof err);
    plat_limits_t l;
    plat_limits_get(p, a, "free", &l, err, sizeof err);
    CHECK(l.rpm == 1 && l.tpd == 4);
    plat_limits_get(p, a, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 5 && l.tpd == 8);
    plat_limits_t x = {10, 10, 10, 10}, y = {20, 20, 20, 20}, z = {30, 30, 30, 30},
                  w = {40, 40, 40, 40};
    plat_limits_set(p, 0, "*", &x, err, sizeof err);
    plat_limits_get(p, a, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 10);
    plat_limits_set(p, 0, "paid", &y, err, sizeof err);
    plat_limits_get(p, a, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 20);
    plat_limits_set(p, a, "*", &z, err, sizeof err);
    plat_limits_get(p, a, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 30);
    plat_limits_set(p, a, "paid", &w, err, sizeof err);
    plat_limits_get(p, a, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 40);
    plat_limits_get(p, b, "paid", &l, err, sizeof err);
    CHECK(l.rpm == 20);
    plat_limits_get(p, b, "free", &l, err, sizeof err);
    CHECK(l.rpm == 10);
    CHECK(plat_limits_set(p, 777, "paid", &w, err, sizeof err) != 0);
    plat_close(p);
}

/* ---- the ledger ---- */

static void test_ledger_1000_mixed(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char err[SL_ERR_MAX];
    enum { NA = 3, NM = 4 };
    char keys[NA][PLAT_KEY_MAX];
    int64_t accts[NA];
    for (int i = 0; i < NA; i++) {
        char name[16];
        snprintf(name, sizeof name, "acct%d", i);
        accts[i] = new_account(p, name, 3 * YUAN, 50 * YUAN, keys[i], NULL);
    }
    const char *models[NM] = {"qwen-7b", "qwen-14b", "glm-9b", "free-1b"};
    plat_price_t prices[NM] = {{350000, 175000, 700000},
                               {1260000, 630000, 1260000},
                               {600000, 600000, 600000},
                               {0, 0, 0}};
    for (int m = 0; m < 3; m++) CHECK(plat_price_set(p, models[m], &prices[m], err, sizeof err) == 0);
    plat_limits_t unlimited = {0, 0, 0, 0};
    plat_limits_set(p, 0, "*", &unlimited, err, sizeof err);

    int64_t want_cost[NA] = {0}, want_prompt = 0, want_completion = 0, want_cached = 0,
            want_reasoning = 0;
    int rows = 0;
    srand(42);
    for (int i = 0; i < 1000; i++) {
        int a = rand() % NA, m = rand() % NM;
        int64_t prompt = 1 + rand() % 4000, maxc = 1 + rand() % 2000;
        plat_req_t *r;
        plat_status_t st;
        CHECK_MSG(plat_begin(p, bearer(keys[a]), models[m], prompt, maxc, &r, &st) == 0, "%s",
                  st.message);
        if (!r) continue;
        int kind = rand() % 10;
        if (kind == 0) { /* rejected before any compute */
            plat_abort(p, r);
            continue;
        }
        plat_usage_t u = {.prompt_tokens = prompt, .cached_tokens = rand() % (prompt + 1),
                          .completion_tokens = rand() % (maxc + 1), .ttft_ms = rand() % 500};
        u.reasoning_tokens = u.completion_tokens ? rand() % (u.completion_tokens + 1) : 0;
        const char *status = "ok";
        if (kind == 1) { /* cancelled part-way: billed for what was computed */
            status = "cancelled";
            u.completion_tokens /= 2;
            u.reasoning_tokens = SL_MIN(u.reasoning_tokens, u.completion_tokens);
        } else if (kind == 2) { /* failed during prefill */
            status = "error";
            u.prompt_tokens /= 3;
            u.cached_tokens = SL_MIN(u.cached_tokens, u.prompt_tokens);
            u.completion_tokens = u.reasoning_tokens = 0;
        }
        CHECK(plat_finish(p, r, &u, status) == 0);
        rows++;
        want_cost[a] += ref_cost(&prices[m], u.prompt_tokens, u.cached_tokens, u.completion_tokens);
        want_prompt += u.prompt_tokens;
        want_cached += u.cached_tokens;
        want_completion += u.completion_tokens;
        want_reasoning += u.reasoning_tokens;
    }
    int64_t total_cost = 0;
    for (int a = 0; a < NA; a++) {
        plat_account_t acc;
        plat_account_get(p, accts[a], &acc, err, sizeof err);
        CHECK_MSG(acc.gift_balance + acc.charge_balance == 53 * YUAN - want_cost[a],
                  "account %d: %" PRId64 " vs %" PRId64, a, acc.gift_balance + acc.charge_balance,
                  53 * YUAN - want_cost[a]);
        total_cost += want_cost[a];
    }
    CHECK(plat_verify(p, err, sizeof err) == 0);

    /* The report's totals agree with the usages. */
    sl_buf_t out = {0};
    plat_report_opts_t o = {.group_by = "model", .format = "csv"};
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) == 0);
    CHECK(out.data && !strncmp(out.data, "model,requests,prompt_tokens,", 29));
    int64_t rep_req = 0, rep_prompt = 0, rep_completion = 0;
    int64_t rep_cost = 0;
    char *save = NULL;
    for (char *line = strtok_r(out.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "model,", 6)) continue;
        char model[64], cost[32];
        long long n, pt, ct, cp, rt, tt;
        if (sscanf(line, "%63[^,],%lld,%lld,%lld,%lld,%lld,%lld,%31s", model, &n, &pt, &ct, &cp,
                   &rt, &tt, cost) == 8) {
            rep_req += n;
            rep_prompt += pt;
            rep_completion += cp;
            int64_t c;
            CHECK(plat_money_parse(cost, &c) == 0);
            rep_cost += c;
        }
    }
    CHECK(rep_req == rows && rep_prompt == want_prompt && rep_completion == want_completion);
    CHECK(rep_cost == total_cost);
    sl_buf_free(&out);

    o = (plat_report_opts_t){.group_by = "day,key", .format = "table", .account_id = accts[1]};
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) == 0);
    CHECK(out.data && !strncmp(out.data, "day         key", 15));
    CHECK(out.data && strstr(out.data, "#1 ") == NULL); /* account 0's key is not in account 1's report */
    sl_buf_free(&out);
    o = (plat_report_opts_t){.group_by = "nonsense; DROP TABLE x", .format = "csv"};
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) != 0);
    sl_buf_free(&out);
    plat_close(p);

    db_t *db = raw_db(dir);
    CHECK(q_int(db, "SELECT count(*) FROM usage_ledger", NULL) == rows);
    CHECK(q_int(db, "SELECT count(DISTINCT request_id) FROM usage_ledger", NULL) == rows);
    CHECK(q_int(db, "SELECT sum(cost) FROM usage_ledger", NULL) == total_cost);
    CHECK(q_int(db, "SELECT sum(prompt_tokens) FROM usage_ledger", NULL) == want_prompt);
    CHECK(q_int(db, "SELECT sum(cached_tokens) FROM usage_ledger", NULL) == want_cached);
    CHECK(q_int(db, "SELECT sum(completion_tokens) FROM usage_ledger", NULL) == want_completion);
    CHECK(q_int(db, "SELECT sum(reasoning_tokens) FROM usage_ledger", NULL) == want_reasoning);
    CHECK(q_int(db, "SELECT sum(cost) FROM usage_ledger WHERE model = 'free-1b'", NULL) == 0);
    db_close(db);
}

static void test_tenant_isolation(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char ka[PLAT_KEY_MAX], kb[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t a = new_account(p, "alice", 5 * YUAN, 0, ka, NULL);
    int64_t b = new_account(p, "bob", 7 * YUAN, 0, kb, NULL);
    plat_price_t pr = {YUAN, YUAN, YUAN};
    plat_price_set(p, "m", &pr, err, sizeof err);
    plat_status_t st;
    int64_t who;
    CHECK(plat_auth(p, bearer(ka), &who, NULL, &st) == 0 && who == a);
    CHECK(plat_auth(p, bearer(kb), &who, NULL, &st) == 0 && who == b);
    char *ja = plat_user_info_json(p, a, err, sizeof err);
    CHECK(ja && strstr(ja, "\"name\":\"alice\"") && !strstr(ja, "bob"));
    free(ja);
    /* b's usage is charged to b and reported to b only */
    plat_req_t *r;
    CHECK(plat_begin(p, bearer(kb), "m", 1000, 1000, &r, &st) == 0);
    plat_usage_t u = {.prompt_tokens = 1000, .completion_tokens = 1000, .ttft_ms = -1};
    plat_finish(p, r, &u, "ok");
    plat_account_t acc;
    plat_account_get(p, a, &acc, err, sizeof err);
    CHECK(acc.gift_balance == 5 * YUAN);
    plat_account_get(p, b, &acc, err, sizeof err);
    CHECK(acc.gift_balance == 7 * YUAN - 2000);
    sl_buf_t out = {0};
    plat_report_opts_t o = {.group_by = "account", .format = "json", .account_id = a};
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) == 0);
    CHECK(out.data && !strcmp(out.data, "[]"));
    sl_buf_free(&out);
    o.account_id = b;
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) == 0);
    CHECK(out.data && strstr(out.data, "\"requests\":1") && strstr(out.data, "\"cost\":\"0.002\""));
    sl_buf_free(&out);
    plat_close(p);
}

/* ---- crash safety ---- */

typedef struct crash_worker {
    plat_t *p;
    const char *auth;
    int fd;
    unsigned seed;
} crash_worker_t;

static void *crash_work(void *arg) {
    crash_worker_t *w = arg;
    for (;;) {
        plat_req_t *r;
        plat_status_t st;
        int64_t prompt = 10 + rand_r(&w->seed) % 100, maxc = 1 + rand_r(&w->seed) % 100;
        if (plat_begin(w->p, w->auth, "paid", prompt, maxc, &r, &st) != 0) continue;
        plat_usage_t u = {.prompt_tokens = prompt,
                          .completion_tokens = rand_r(&w->seed) % (maxc + 1), .ttft_ms = -1};
        char id[PLAT_REQ_ID_MAX + 1];
        snprintf(id, sizeof id, "%s\n", plat_req_id(r));
        if (plat_finish(w->p, r, &u, "ok") == 0) {
            /* The client "sees" completion only after the ledger write;
             * one write of < PIPE_BUF bytes is atomic between threads. */
            if (write(w->fd, id, strlen(id)) < 0) _exit(4);
        }
    }
    return NULL;
}

/* A serving process: three threads begin and finish requests until killed. */
static void crash_child(const char *dir, int fd, const char *key) {
    plat_config_t cfg;
    plat_config_default(&cfg); /* synchronous = FULL, as served */
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    if (!p) _exit(3);
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", key);
    crash_worker_t w[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (crash_worker_t){.p = p, .auth = auth, .fd = fd, .seed = 9u + (unsigned)i};
        if (pthread_create(&th[i], NULL, crash_work, &w[i]) != 0) _exit(5);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
}

static void test_crash_safety(void) {
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "crash", 100 * YUAN, 100 * YUAN, key, NULL);
    plat_price_t pr = {1000 * YUAN, 500 * YUAN, 2000 * YUAN};
    plat_price_set(p, "paid", &pr, err, sizeof err);
    plat_limits_t unlimited = {0, 0, 0, 0};
    plat_limits_set(p, 0, "*", &unlimited, err, sizeof err);
    plat_close(p);

    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        crash_child(dir, fds[1], key);
        _exit(0);
    }
    close(fds[1]);
    /* Read completions until 300 were seen, then kill mid-stream. */
    enum { MAXIDS = 100000 };
    static char ids[MAXIDS][PLAT_REQ_ID_MAX];
    int nids = 0;
    char buf[4096];
    size_t have = 0;
    bool killed = false;
    for (;;) {
        ssize_t n = read(fds[0], buf + have, sizeof buf - have);
        if (n <= 0) break;
        have += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', have)) != NULL) {
            size_t len = (size_t)(nl - buf);
            if (len < PLAT_REQ_ID_MAX && nids < MAXIDS) {
                memcpy(ids[nids], buf, len);
                ids[nids][len] = '\0';
                nids++;
            }
            memmove(buf, nl + 1, have - len - 1);
            have -= len + 1;
        }
        if (!killed && nids >= 300) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    close(fds[0]);
    int wst;
    waitpid(pid, &wst, 0);
    CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    CHECK(nids >= 300);

    p = open_test(dir, false); /* recovers the WAL */
    CHECK_MSG(plat_verify(p, err, sizeof err) == 0, "%s", err);
    plat_account_t a;
    plat_account_get(p, acct, &a, err, sizeof err);
    plat_close(p);
    db_t *db = raw_db(dir);
    int missing = 0;
    for (int i = 0; i < nids; i++)
        if (q_int(db, "SELECT count(*) FROM usage_ledger WHERE request_id = ?1", ids[i]) != 1)
            missing++;
    CHECK_MSG(missing == 0, "%d of %d completed requests not in the ledger once", missing, nids);
    int64_t rows = q_int(db, "SELECT count(*) FROM usage_ledger", NULL);
    CHECK(rows >= nids && rows <= nids + 3); /* at most one per thread not yet reported */
    CHECK(q_int(db, "SELECT sum(cost) FROM usage_ledger", NULL) ==
          200 * YUAN - (a.gift_balance + a.charge_balance));
    if (!pg_base)
        CHECK(q_int(db, "SELECT integrity_check = 'ok' FROM pragma_integrity_check", NULL) == 1);
    db_close(db);
}

/* PostgreSQL: a connection the server dropped (here: terminated by an
 * administrator) is reopened once, and the request goes on; a server that
 * is not there fails plat_open with a message naming it. */
static void test_pg_reconnect(void) {
    if (!pg_base) return;
    const char *dir = fresh_dir();
    plat_t *p = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p, "re", 10 * YUAN, 0, key, NULL);
    plat_price_t pr = {1000000, 500000, 2000000};
    CHECK(plat_price_set(p, "paid", &pr, err, sizeof err) == 0);
    db_t *db = raw_db(dir);
    const char *kill_others = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()";
    CHECK(q_int(db, kill_others, NULL) == 1);
    plat_req_t *r;
    plat_status_t st;
    CHECK_MSG(plat_begin(p, bearer(key), "paid", 10, 10, &r, &st) == 0, "%d %s", st.http,
              st.message);
    CHECK(q_int(db, kill_others, NULL) == 1); /* dropped again before the ledger write */
    plat_usage_t u = {.prompt_tokens = 10, .completion_tokens = 10, .ttft_ms = -1};
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    CHECK(q_int(db, "SELECT count(*) FROM usage_ledger", NULL) == 1);
    CHECK_MSG(plat_verify(p, err, sizeof err) == 0, "%s", err);
    plat_account_t a;
    CHECK(plat_account_get(p, acct, &a, err, sizeof err) == 0 && a.gift_balance == 10 * YUAN - 30);
    db_close(db);
    plat_close(p);
    CHECK(plat_open("postgresql:///nope?host=/nonexistent&port=5432", NULL, err, sizeof err) ==
          NULL);
    CHECK_MSG(strstr(err, "PostgreSQL"), "%s", err);
}

/* PostgreSQL: two nodes (two handles on one database, as two processes
 * would be) admit requests on one account at once; together they never
 * hold or spend more than the balance, and the books balance. */
static void test_two_nodes_no_overspend(void) {
    if (!pg_base) return;
    const char *dir = fresh_dir();
    plat_t *p1 = open_test(dir, false), *p2 = open_test(dir, false);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p1, "busy", 2 * YUAN, 1 * YUAN, key, NULL);
    plat_price_t pr = {.input = 40 * YUAN, .cached_input = 10 * YUAN, .output = 80 * YUAN};
    CHECK(plat_price_set(p2, "paid", &pr, err, sizeof err) == 0);
    plat_limits_t unlimited = {0, 0, 0, 0};
    CHECK(plat_limits_set(p1, 0, "*", &unlimited, err, sizeof err) == 0);
    enum { T = 6 };
    hammer_t h[T];
    pthread_t th[T];
    const char *auth = bearer(key);
    for (int i = 0; i < T; i++) {
        h[i] = (hammer_t){.p = i % 2 ? p2 : p1, .auth = auth, .seed = 300u + (unsigned)i};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    int admitted = 0, refused = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        admitted += h[i].admitted;
        refused += h[i].refused;
    }
    plat_account_t a;
    plat_account_get(p2, acct, &a, err, sizeof err);
    CHECK_MSG(a.gift_balance >= 0 && a.charge_balance >= 0, "gift %" PRId64 " charge %" PRId64,
              a.gift_balance, a.charge_balance);
    CHECK(refused > 0 && admitted > 50);
    CHECK_MSG(plat_verify(p1, err, sizeof err) == 0, "%s", err);
    plat_close(p1);
    plat_close(p2);
    db_t *db = raw_db(dir);
    CHECK(q_int(db, "SELECT count(*) FROM usage_ledger", NULL) == admitted);
    CHECK(q_int(db, "SELECT count(*) FROM reservations", NULL) == 0); /* all released */
    CHECK(q_int(db, "SELECT sum(cost) FROM usage_ledger", NULL) ==
          3 * YUAN - (a.gift_balance + a.charge_balance));
    db_close(db);
}

/* PostgreSQL: a node that dies mid-request holds its reservation only
 * until the lease runs out; then another node sweeps it and the money is
 * free again. The dead node's request is not billed. An aborted request
 * releases its reservation at once. */
static void test_dead_node_lease(void) {
    if (!pg_base) return;
    const char *dir = fresh_dir();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.lease_ms = 4000;
    cfg.clock_ms = fake_clock;
    char err[SL_ERR_MAX], key[PLAT_KEY_MAX];
    plat_t *p = plat_open(dir, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    if (!p) return;
    int64_t acct = new_account(p, "lease", 1 * YUAN, 0, key, NULL);
    plat_price_t pr = {.input = 1 * YUAN, .cached_input = 1 * YUAN, .output = 1 * YUAN};
    CHECK(plat_price_set(p, "paid", &pr, err, sizeof err) == 0);
    plat_limits_t unlimited = {0, 0, 0, 0}; /* this is about money, not tokens */
    CHECK(plat_limits_set(p, 0, "*", &unlimited, err, sizeof err) == 0);
    plat_close(p);
    fake_now = 1700000000000LL;

    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* the node that dies: holds 0.8 yuan, never finishes */
        close(fds[0]);
        plat_t *c = plat_open(dir, &cfg, err, sizeof err);
        plat_req_t *r;
        plat_status_t st;
        if (!c || plat_begin(c, bearer(key), "paid", 400000, 400000, &r, &st) != 0) _exit(3);
        if (write(fds[1], "x", 1) != 1) _exit(4);
        for (;;) pause();
    }
    close(fds[1]);
    char c;
    CHECK(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    p = plat_open(dir, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    plat_req_t *r;
    plat_status_t st;
    /* 0.8 yuan is still held: 0.5 more does not fit */
    CHECK(plat_begin(p, bearer(key), "paid", 250000, 250000, &r, &st) == -1 && st.http == 403);
    /* an aborted request gives its reservation back at once */
    CHECK(plat_begin(p, bearer(key), "paid", 50000, 50000, &r, &st) == 0);
    plat_abort(p, r);
    CHECK(plat_begin(p, bearer(key), "paid", 50000, 50000, &r, &st) == 0);
    plat_abort(p, r);
    fake_now += cfg.lease_ms + 1; /* the dead node's lease runs out */
    CHECK_MSG(plat_begin(p, bearer(key), "paid", 250000, 250000, &r, &st) == 0, "%d %s", st.http,
              st.message);
    plat_usage_t u = {.prompt_tokens = 250000, .completion_tokens = 250000, .ttft_ms = -1};
    CHECK(plat_finish(p, r, &u, "ok") == 0);
    plat_account_t a;
    CHECK(plat_account_get(p, acct, &a, err, sizeof err) == 0 && a.gift_balance == YUAN / 2);
    CHECK_MSG(plat_verify(p, err, sizeof err) == 0, "%s", err);
    plat_close(p);
    db_t *db = raw_db(dir);
    CHECK(q_int(db, "SELECT count(*) FROM usage_ledger", NULL) == 1); /* the dead one: unbilled */
    CHECK(q_int(db, "SELECT count(*) FROM reservations", NULL) == 0);
    db_close(db);
    fake_now = 1700000000000LL;
}

/* PostgreSQL: the rate-limit buckets are rows every node shares, so two
 * nodes together admit an account's limit once, not twice; tokens one
 * node gives back at finish are there for the other. */
static void test_two_nodes_share_limits(void) {
    if (!pg_base) return;
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL;
    plat_t *p1 = open_test(dir, true), *p2 = open_test(dir, true);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    int64_t acct = new_account(p1, "limited", 100 * YUAN, 0, key, NULL);
    plat_price_t pr = {1000000, 500000, 2000000};
    CHECK(plat_price_set(p1, "paid", &pr, err, sizeof err) == 0);
    plat_limits_t l = {.rpm = 10, .tpm = 3000};
    CHECK(plat_limits_set(p2, acct, "paid", &l, err, sizeof err) == 0);
    plat_req_t *r;
    plat_status_t st;
    plat_usage_t u = {.prompt_tokens = 10, .completion_tokens = 10, .ttft_ms = -1};
    for (int minute = 0; minute < 2; minute++) {
        int ok = 0, limited = 0;
        for (int i = 0; i < 30; i++) {
            if (plat_begin(i % 2 ? p2 : p1, bearer(key), "paid", 10, 10, &r, &st) == 0) {
                ok++;
                CHECK(plat_finish(i % 2 ? p2 : p1, r, &u, "ok") == 0);
            } else {
                limited += st.http == 429 && !strcmp(st.limit, "rpm");
            }
        }
        CHECK_MSG(ok == 10 && limited == 20, "minute %d: %d admitted, %d limited", minute, ok,
                  limited);
        fake_now += 60000;
    }
    /* TPM: what node 1 does not use, node 2 may */
    l = (plat_limits_t){.tpm = 3000};
    CHECK(plat_limits_set(p1, acct, "paid", &l, err, sizeof err) == 0);
    fake_now += 120000;
    plat_req_t *r1, *r2;
    CHECK(plat_begin(p1, bearer(key), "paid", 1000, 1000, &r1, &st) == 0);
    CHECK(plat_begin(p2, bearer(key), "paid", 1000, 1000, &r2, &st) == -1 && st.http == 429 &&
          !strcmp(st.limit, "tpm"));
    u = (plat_usage_t){.prompt_tokens = 100, .completion_tokens = 100, .ttft_ms = -1};
    CHECK(plat_finish(p1, r1, &u, "ok") == 0);
    CHECK_MSG(plat_begin(p2, bearer(key), "paid", 1000, 1000, &r2, &st) == 0, "%d %s", st.http,
              st.message);
    plat_abort(p2, r2);
    CHECK_MSG(plat_verify(p2, err, sizeof err) == 0, "%s", err);
    plat_close(p1);
    plat_close(p2);
    fake_now = 1700000000000LL;
}

/* Reports group by the UTC day of finished_at on both backends (each
 * engine's own date function behind DAY_UTC). */
static void test_report_days(void) {
    const char *dir = fresh_dir();
    fake_now = 1700000000000LL; /* 2023-11-14T22:13:20Z */
    plat_t *p = open_test(dir, true);
    char key[PLAT_KEY_MAX], err[SL_ERR_MAX];
    new_account(p, "days", 10 * YUAN, 0, key, NULL);
    plat_usage_t u = {.prompt_tokens = 3, .completion_tokens = 4, .ttft_ms = -1};
    for (int i = 0; i < 3; i++) {
        plat_req_t *r;
        plat_status_t st;
        CHECK(plat_begin(p, bearer(key), "free", 3, 4, &r, &st) == 0);
        CHECK(plat_finish(p, r, &u, "ok") == 0);
        fake_now += 3600000; /* the third lands on the 15th */
    }
    sl_buf_t out = {0};
    plat_report_opts_t o = {.group_by = "day", .format = "csv"};
    CHECK(plat_usage_report(p, &o, &out, err, sizeof err) == 0);
    CHECK_MSG(out.data && !strcmp(out.data, "day,requests,prompt_tokens,cached_tokens,"
                                            "completion_tokens,reasoning_tokens,total_tokens,cost\n"
                                            "2023-11-14,2,6,0,8,0,14,0.00\n"
                                            "2023-11-15,1,3,0,4,0,7,0.00\n"),
              "%s", out.data ? out.data : "(null)");
    sl_buf_free(&out);
    plat_close(p);
    fake_now = 1700000000000LL;
}

static void run_all(void) {
    RUN(test_migrations);
    RUN(test_stored_responses);
    RUN(test_auth_failures);
    RUN(test_keys_are_random);
    RUN(test_signup_referral_and_info);
    RUN(test_bootstrap);
    RUN(test_gift_before_charged);
    RUN(test_balance_exhaustion);
    RUN(test_concurrent_no_overspend);
    RUN(test_rpm_within_5pct);
    RUN(test_tpm_within_5pct);
    RUN(test_rpd);
    RUN(test_limits_resolution);
    RUN(test_ledger_1000_mixed);
    RUN(test_tenant_isolation);
    RUN(test_crash_safety);
    RUN(test_report_days);
    if (!pg_base) return;
    /* PostgreSQL only: connections, several nodes */
    RUN(test_pg_reconnect);
    RUN(test_two_nodes_no_overspend);
    RUN(test_dead_node_lease);
    RUN(test_two_nodes_share_limits);
}

int main(void) {
    RUN(test_money);
    RUN(test_cost);
    printf("-- on SQLite\n");
    fflush(stdout);
    run_all();
    const char *pg = getenv("SILICA_TEST_PG");
    if (pg && *pg) {
        printf("-- on PostgreSQL (%s)\n", pg);
        fflush(stdout);
        pg_base = pg;
        run_all();
    } else {
        printf("-- on PostgreSQL: SKIPPED (SILICA_TEST_PG is not set; tests/pg.sh sets it when "
               "it can start a server)\n");
        fflush(stdout);
    }
    for (int i = 0; i < ndirs; i++) {
        if (db_is_url(dirs[i])) continue; /* databases go with the test server */
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dirs[i]);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dirs[i]);
    }
    return test_summary();
}
