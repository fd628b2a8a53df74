/*
 * batch.c — the Files and Batch APIs' books: files per account, batches,
 * their requests and results, the state machine the runner drives
 * (batch.h has the lifecycle and the exactly-once rule).
 *
 * Everything runs under the platform's mutex, except parsing a batch's
 * input file (batch_validate reads it, lets go, parses, and takes the
 * mutex again to store the outcome). Files are rows (their bytes
 * in a TEXT column: SQLite keeps any bytes there); a batch's requests are
 * rows of batch_items, written in the transaction that takes the batch to
 * in_progress, and each gets its result in the transaction of its ledger
 * row. Times in the objects are unix seconds, as OpenAI's are.
 */
#include "platform/batch.h"
#include "platform/plat_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A task the runner has started and not finished; p->batch_running. */
struct plat_batch_run {
    struct plat_batch_run *next;
    plat_batch_task_t *t;
};

static json_t *fail(plat_status_t *st, int http, const char *type, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static json_t *fail(plat_status_t *st, int http, const char *type, const char *code, const char *param,
                    const char *fmt, ...) {
    memset(st, 0, sizeof *st);
    st->http = http;
    snprintf(st->type, sizeof st->type, "%s", type);
    snprintf(st->code, sizeof st->code, "%s", code ? code : "");
    snprintf(st->param, sizeof st->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof st->message, fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *fail_db(plat_status_t *st, const char *err) {
    return fail(st, 500, "server_error", "internal_error", NULL, "%s", err);
}

static json_t *ok(plat_status_t *st, json_t *v) {
    memset(st, 0, sizeof *st);
    st->http = 200;
    if (!v) return fail(st, 500, "server_error", "internal_error", NULL, "out of memory");
    return v;
}

/* UTF-8 text without NUL bytes: what a JSONL file is, and what a TEXT
 * column keeps on both engines (PostgreSQL refuses NUL and invalid UTF-8). */
static bool text_ok(const char *data, size_t len) {
    const unsigned char *s = (const unsigned char *)data, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        if (c == 0) return false;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n = c >= 0xc2 && c <= 0xdf   ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (n == 0 || (size_t)(end - s) < n) return false;
        for (size_t i = 1; i < n; i++)
            if ((s[i] & 0xc0) != 0x80) return false;
        if (c == 0xe0 && s[1] < 0xa0) return false;  /* overlong */
        if (c == 0xed && s[1] >= 0xa0) return false; /* surrogates */
        if (c == 0xf0 && s[1] < 0x90) return false;  /* overlong */
        if (c == 0xf4 && s[1] >= 0x90) return false; /* past U+10FFFF */
        s += n;
    }
    return true;
}

/* prefix + 24 hex digits of randomness. */
static int new_id(const char *prefix, char *out, size_t cap) {
    unsigned char rnd[12];
    if (plat_random(rnd, sizeof rnd) != 0) return -1;
    int n = snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && (size_t)n + 2 < cap; i++) n += snprintf(out + n, cap - (size_t)n, "%02x", rnd[i]);
    return 0;
}

static int64_t now_s(plat_t *p) {
    return plat_now_ms(p) / 1000;
}

static json_t *ts_json(int64_t v) {
    return v ? json_integer((json_int_t)v) : json_null();
}

/* An id as it may appear in a URL and a row: 1..63 of [A-Za-z0-9_-]. */
static bool id_ok(const char *id) {
    if (!id) return false;
    size_t n = strlen(id);
    if (n == 0 || n >= PLAT_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- files ---- */

/* A file row (id, purpose, filename, bytes, created_at ms) as OpenAI's object. */
static json_t *file_json(db_stmt_t *s) {
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:n}", "id", db_col_text(s, 0), "object", "file", "bytes",
                     (json_int_t)db_col_int64(s, 3), "created_at", (json_int_t)(db_col_int64(s, 4) / 1000),
                     "filename", db_col_text(s, 2), "purpose", db_col_text(s, 1), "status", "processed",
                     "status_details");
}

/* Locked. Inserts a file; 0 or -1 with err. */
static int file_insert(plat_t *p, const char *id, int64_t account_id, const char *purpose, const char *filename,
                       const char *data, size_t len, char *err, size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, ST_FILE_INSERT, err, errlen);
    if (!s) return -1;
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    db_bind_text(s, 3, purpose);
    db_bind_text(s, 4, filename);
    db_bind_int64(s, 5, (int64_t)len);
    db_bind_int64(s, 6, plat_now_ms(p));
    db_bind_textn(s, 7, data, len);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    return rc;
}

json_t *plat_file_create(plat_t *p, int64_t account_id, const char *purpose, const char *filename,
                         const char *data, size_t len, plat_status_t *st) {
    if (!purpose)
        return fail(st, 400, "invalid_request_error", "missing_required_parameter", "purpose",
                    "Missing required parameter: 'purpose'.");
    if (strcmp(purpose, "batch") != 0)
        return fail(st, 400, "invalid_request_error", "invalid_value", "purpose",
                    "Invalid 'purpose': '%.40s'. This server accepts uploads for 'batch' only.", purpose);
    if (!data)
        return fail(st, 400, "invalid_request_error", "missing_required_parameter", "file",
                    "Missing required parameter: 'file'.");
    if (!filename || !*filename) filename = "file";
    json_t *name_ok = json_string(filename); /* NULL: not UTF-8 */
    json_decref(name_ok);
    bool ctrl = false;
    for (const char *c = filename; *c; c++) ctrl |= (unsigned char)*c < 0x20;
    if (strlen(filename) > 255 || ctrl || !name_ok)
        return fail(st, 400, "invalid_request_error", "invalid_value", "file",
                    "The file name must be at most 255 bytes of UTF-8 text without control characters.");
    if ((int64_t)len > p->cfg.max_file_bytes)
        return fail(st, 413, "invalid_request_error", "file_too_large", "file",
                    "The file is %zu bytes; the largest file this server accepts is %" PRId64 " bytes.", len,
                    p->cfg.max_file_bytes);
    if (len == 0)
        return fail(st, 400, "invalid_request_error", "invalid_value", "file",
                    "The file is empty.");
    if (!text_ok(data, len))
        return fail(st, 400, "invalid_request_error", "invalid_value", "file",
                    "The file must be UTF-8 text without NUL bytes: a batch input file is JSONL.");
    char id[PLAT_ID_MAX], err[SL_ERR_MAX];
    if (new_id("file-", id, sizeof id) != 0) return fail_db(st, "no randomness");
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    if (db_begin(p->db, err, sizeof err) != 0) {
        fail_db(st, err);
        goto out;
    }
    /* PostgreSQL: the account row held, so two nodes' uploads of one
     * account count each other (SQLite's BEGIN IMMEDIATE already does) */
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_LOCK, err, sizeof err);
    if (!s) {
        fail_db(st, err);
        goto out;
    }
    db_bind_int64(s, 1, account_id);
    int lrc = db_step(s);
    db_release(s);
    if (lrc < 0) {
        fail_db(st, db_errmsg(p->db));
        goto out;
    }
    s = db_stmt(p->db, ST_FILE_USED, err, sizeof err);
    if (!s) {
        fail_db(st, err);
        goto out;
    }
    db_bind_int64(s, 1, account_id);
    int64_t used = db_step(s) == DB_ROW ? db_col_int64(s, 0) : 0;
    db_release(s);
    if (used + (int64_t)len > p->cfg.max_account_file_bytes) {
        fail(st, 413, "invalid_request_error", "storage_quota_exceeded", "file",
             "The account's files take %" PRId64 " bytes and this one %zu more; an account may keep %" PRId64
             " bytes of uploads. Delete files it no longer needs.",
             used, len, p->cfg.max_account_file_bytes);
        goto out;
    }
    if (file_insert(p, id, account_id, purpose, filename, data, len, err, sizeof err) != 0 ||
        db_commit(p->db, err, sizeof err) != 0) {
        fail_db(st, err);
        goto out;
    }
    out = ok(st, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:n}", "id", id, "object", "file", "bytes",
                           (json_int_t)len, "created_at", (json_int_t)now_s(p), "filename", filename, "purpose",
                           purpose, "status", "processed", "status_details"));
out:
    db_rollback(p->db);
    pthread_mutex_unlock(&p->mu);
    return out;
}

static json_t *no_file(plat_status_t *st, const char *id) {
    return fail(st, 404, "invalid_request_error", "file_not_found", "file_id", "No such File object: %.80s", id);
}

json_t *plat_file_get(plat_t *p, int64_t account_id, const char *id, plat_status_t *st) {
    if (!id_ok(id)) return no_file(st, id);
    char err[SL_ERR_MAX];
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_FILE_GET, err, sizeof err);
    if (!s) {
        fail_db(st, err);
    } else {
        db_bind_text(s, 1, id);
        db_bind_int64(s, 2, account_id);
        out = db_step(s) == DB_ROW ? ok(st, file_json(s)) : no_file(st, id);
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

char *plat_file_content(plat_t *p, int64_t account_id, const char *id, size_t *len, plat_status_t *st) {
    *len = 0;
    if (!id_ok(id)) {
        no_file(st, id);
        return NULL;
    }
    char err[SL_ERR_MAX];
    char *out = NULL;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_FILE_BODY, err, sizeof err);
    if (!s) {
        fail_db(st, err);
    } else {
        db_bind_text(s, 1, id);
        db_bind_int64(s, 2, account_id);
        if (db_step(s) == DB_ROW) {
            size_t n = db_col_bytes(s, 0);
            out = malloc(n + 1);
            if (out) {
                memcpy(out, db_col_text(s, 0), n);
                out[n] = '\0';
                *len = n;
                ok(st, json_null());
            } else {
                fail_db(st, "out of memory");
            }
        } else {
            no_file(st, id);
        }
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

json_t *plat_file_delete(plat_t *p, int64_t account_id, const char *id, plat_status_t *st) {
    if (!id_ok(id)) return no_file(st, id);
    char err[SL_ERR_MAX];
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_FILE_DELETE, err, sizeof err);
    if (!s) {
        fail_db(st, err);
    } else {
        db_bind_text(s, 1, id);
        db_bind_int64(s, 2, account_id);
        if (db_step_done(s, err, sizeof err) != 0) fail_db(st, err);
        else if (db_changes(p->db) == 0) no_file(st, id);
        else out = ok(st, json_pack("{s:s, s:s, s:b}", "id", id, "object", "file", "deleted", 1));
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

/* Builds {"object":"list",...} from rows of stmt s (newest first) made
 * into objects by mk, starting after the row whose first column is
 * `after`, at most limit, reversed when asc. */
static json_t *list_json(db_stmt_t *s, json_t *(*mk)(plat_t *, db_stmt_t *), plat_t *p, const char *after,
                         int limit, bool asc) {
    json_t *all = json_array();
    bool skipping = after && *after;
    int rc;
    while ((rc = db_step(s)) == DB_ROW) {
        if (skipping) {
            if (!strcmp(db_col_text(s, 0), after)) skipping = false;
            continue;
        }
        json_array_append_new(all, mk(p, s));
    }
    if (asc) { /* reverse */
        json_t *rev = json_array();
        for (size_t i = json_array_size(all); i > 0; i--) json_array_append(rev, json_array_get(all, i - 1));
        json_decref(all);
        all = rev;
    }
    bool more = json_array_size(all) > (size_t)limit;
    while (json_array_size(all) > (size_t)limit) json_array_remove(all, json_array_size(all) - 1);
    size_t n = json_array_size(all);
    json_t *first = n ? json_object_get(json_array_get(all, 0), "id") : NULL;
    json_t *last = n ? json_object_get(json_array_get(all, n - 1), "id") : NULL;
    return json_pack("{s:s, s:o, s:O?, s:O?, s:b}", "object", "list", "data", all, "first_id", first, "last_id",
                     last, "has_more", more);
}

static json_t *file_row(plat_t *p, db_stmt_t *s) {
    return file_json(s);
}

json_t *plat_file_list(plat_t *p, int64_t account_id, const char *purpose, const char *after,
                       int limit, bool asc, plat_status_t *st) {
    if (limit < 1 || limit > 10000)
        return fail(st, 400, "invalid_request_error", "invalid_value", "limit",
                    "Invalid 'limit': %d. Use 1 to 10000.", limit);
    char err[SL_ERR_MAX];
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_FILE_LIST, err, sizeof err);
    if (!s) {
        fail_db(st, err);
    } else {
        db_bind_int64(s, 1, account_id);
        db_bind_text(s, 2, purpose ? purpose : "");
        /* asc with a cursor: the oldest first, after it */
        if (asc && after && *after) {
            json_t *all = list_json(s, file_row, p, NULL, 10001 * 100, true);
            json_t *data = json_object_get(all, "data");
            json_t *sel = json_array();
            bool skipping = true;
            for (size_t i = 0; i < json_array_size(data); i++) {
                json_t *f = json_array_get(data, i);
                if (skipping) {
                    if (!strcmp(json_string_value(json_object_get(f, "id")), after)) skipping = false;
                    continue;
                }
                json_array_append(sel, f);
            }
            json_decref(all);
            bool more = json_array_size(sel) > (size_t)limit;
            while (json_array_size(sel) > (size_t)limit) json_array_remove(sel, json_array_size(sel) - 1);
            size_t n = json_array_size(sel);
            out = ok(st, json_pack("{s:s, s:O, s:O?, s:O?, s:b}", "object", "list", "data", sel, "first_id",
                                   n ? json_object_get(json_array_get(sel, 0), "id") : NULL, "last_id",
                                   n ? json_object_get(json_array_get(sel, n - 1), "id") : NULL, "has_more",
                                   more));
            json_decref(sel);
        } else {
            out = ok(st, list_json(s, file_row, p, after, limit, asc));
        }
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

/* ---- batches ---- */

/* A row of BATCH_COLS (sql.c) with its request counts, as OpenAI's object. */
static json_t *batch_json(plat_t *p, db_stmt_t *s) {
    char err[SL_ERR_MAX];
    int64_t total = 0, done = 0, failed = 0;
    db_stmt_t *c = db_stmt(p->db, ST_ITEM_COUNTS, err, sizeof err);
    if (c) {
        db_bind_text(c, 1, db_col_text(s, 0));
        if (db_step(c) == DB_ROW) {
            total = db_col_int64(c, 0);
            done = db_col_int64(c, 1);
            failed = db_col_int64(c, 2);
        }
        db_release(c);
    }
    json_t *meta = json_loads(db_col_text(s, 7), JSON_DECODE_ANY, NULL);
    json_t *errors = json_loads(db_col_text(s, 8), JSON_DECODE_ANY, NULL);
    const char *out_id = db_col_text(s, 5), *err_id = db_col_text(s, 6);
    json_t *b = json_object();
    json_object_set_new(b, "id", json_string(db_col_text(s, 0)));
    json_object_set_new(b, "object", json_string("batch"));
    json_object_set_new(b, "endpoint", json_string(db_col_text(s, 1)));
    json_object_set_new(b, "errors", errors ? errors : json_null());
    json_object_set_new(b, "input_file_id", json_string(db_col_text(s, 2)));
    json_object_set_new(b, "completion_window", json_string(db_col_text(s, 3)));
    json_object_set_new(b, "status", json_string(db_col_text(s, 4)));
    json_object_set_new(b, "output_file_id", *out_id ? json_string(out_id) : json_null());
    json_object_set_new(b, "error_file_id", *err_id ? json_string(err_id) : json_null());
    static const char *const times[] = {"created_at",   "expires_at", "in_progress_at", "finalizing_at",
                                        "completed_at", "failed_at",  "expired_at",     "cancelling_at",
                                        "cancelled_at"};
    for (int i = 0; i < 9; i++) json_object_set_new(b, times[i], ts_json(db_col_int64(s, 9 + i)));
    json_object_set_new(b, "request_counts", json_pack("{s:I, s:I, s:I}", "total", (json_int_t)total, "completed",
                                                       (json_int_t)done, "failed", (json_int_t)failed));
    json_object_set_new(b, "metadata", meta ? meta : json_null());
    return b;
}

static json_t *no_batch(plat_status_t *st, const char *id) {
    return fail(st, 404, "invalid_request_error", "batch_not_found", "batch_id", "No such Batch object: %.80s", id);
}

/* Locked: the batch object of (account, id), or NULL with a 404 / 500. */
static json_t *batch_get_locked(plat_t *p, int64_t account_id, const char *id, plat_status_t *st) {
    char err[SL_ERR_MAX];
    db_stmt_t *s = db_stmt(p->db, ST_BATCH_GET, err, sizeof err);
    if (!s) return fail_db(st, err);
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    json_t *out = db_step(s) == DB_ROW ? ok(st, batch_json(p, s)) : no_batch(st, id);
    db_release(s);
    return out;
}

static const char *const endpoints[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"};

static json_t *check_metadata(const json_t *m, plat_status_t *st) {
    if (!m || json_is_null(m)) return json_null();
    if (!json_is_object(m) || json_object_size(m) > 16)
        return fail(st, 400, "invalid_request_error", "invalid_value", "metadata",
                    "Invalid 'metadata': an object of at most 16 string values.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v) {
        if (strlen(k) > 64 || !json_is_string(v) || json_string_length(v) > 512)
            return fail(st, 400, "invalid_request_error", "invalid_value", "metadata",
                        "Invalid 'metadata': keys are at most 64 characters and values strings of at most "
                        "512.");
    }
    return json_incref((json_t *)m);
}

json_t *plat_batch_create(plat_t *p, int64_t account_id, int64_t key_id, const json_t *body,
                          plat_status_t *st) {
    if (!json_is_object(body))
        return fail(st, 400, "invalid_request_error", "invalid_value", NULL, "The request body must be a JSON object.");
    const json_t *fid = json_object_get(body, "input_file_id"), *ep = json_object_get(body, "endpoint"),
                 *win = json_object_get(body, "completion_window");
    if (!fid) return fail(st, 400, "invalid_request_error", "missing_required_parameter", "input_file_id",
                          "Missing required parameter: 'input_file_id'.");
    if (!json_is_string(fid))
        return fail(st, 400, "invalid_request_error", "invalid_type", "input_file_id",
                    "Invalid type for 'input_file_id': expected a string.");
    if (!ep) return fail(st, 400, "invalid_request_error", "missing_required_parameter", "endpoint",
                         "Missing required parameter: 'endpoint'.");
    const char *endpoint = json_is_string(ep) ? json_string_value(ep) : "";
    bool known = false;
    for (size_t i = 0; i < SL_ARRAY_LEN(endpoints); i++) known |= !strcmp(endpoint, endpoints[i]);
    if (!known)
        return fail(st, 400, "invalid_request_error", "invalid_value", "endpoint",
                    "Invalid 'endpoint': '%.60s'. Batches run '/v1/chat/completions', '/v1/completions' or "
                    "'/v1/embeddings'.", endpoint);
    if (!win) return fail(st, 400, "invalid_request_error", "missing_required_parameter", "completion_window",
                          "Missing required parameter: 'completion_window'.");
    if (!json_is_string(win) || strcmp(json_string_value(win), "24h") != 0)
        return fail(st, 400, "invalid_request_error", "invalid_value", "completion_window",
                    "Invalid 'completion_window': the only window is '24h'.");
    json_t *meta = check_metadata(json_object_get(body, "metadata"), st);
    if (!meta) return NULL;
    char *meta_text = json_dumps(meta, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(meta);
    const char *file_id = json_string_value(fid);
    char id[PLAT_ID_MAX], err[SL_ERR_MAX];
    json_t *out = NULL;
    if (!meta_text || new_id("batch_", id, sizeof id) != 0) {
        free(meta_text);
        return fail_db(st, "out of memory or randomness");
    }
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = NULL;
    if (!id_ok(file_id)) {
        no_file(st, file_id);
        goto out;
    }
    /* the file is held (PostgreSQL: FOR SHARE) until the batch that reads
     * it commits: the pruning never deletes an input file under a batch */
    if (db_begin(p->db, err, sizeof err) != 0 ||
        !(s = db_stmt(p->db, ST_FILE_REF, err, sizeof err))) {
        fail_db(st, err);
        goto out;
    }
    db_bind_text(s, 1, file_id);
    db_bind_int64(s, 2, account_id);
    if (db_step(s) != DB_ROW) {
        no_file(st, file_id);
        goto out;
    }
    if (strcmp(db_col_text(s, 0), "batch") != 0) {
        fail(st, 400, "invalid_request_error", "invalid_value", "input_file_id",
             "The file %.80s has purpose '%.20s'; a batch's input file must be uploaded with "
             "purpose 'batch'.",
             file_id, db_col_text(s, 0));
        goto out;
    }
    db_release(s);
    s = db_stmt(p->db, ST_BATCH_INSERT, err, sizeof err);
    if (!s) {
        fail_db(st, err);
        goto out;
    }
    int64_t now = now_s(p);
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    db_bind_int64(s, 3, key_id);
    db_bind_text(s, 4, endpoint);
    db_bind_text(s, 5, file_id);
    db_bind_text(s, 6, "24h");
    db_bind_text(s, 7, meta_text);
    db_bind_int64(s, 8, now);
    db_bind_int64(s, 9, now + PLAT_BATCH_WINDOW_S);
    if (db_step_done(s, err, sizeof err) != 0 || db_commit(p->db, err, sizeof err) != 0) {
        fail_db(st, err);
        goto out;
    }
    db_release(s);
    s = NULL;
    out = batch_get_locked(p, account_id, id, st);
out:
    db_release(s);
    db_rollback(p->db);
    pthread_mutex_unlock(&p->mu);
    free(meta_text);
    return out;
}

json_t *plat_batch_get(plat_t *p, int64_t account_id, const char *id, plat_status_t *st) {
    if (!id_ok(id)) return no_batch(st, id);
    pthread_mutex_lock(&p->mu);
    json_t *out = batch_get_locked(p, account_id, id, st);
    pthread_mutex_unlock(&p->mu);
    return out;
}

json_t *plat_batch_list(plat_t *p, int64_t account_id, const char *after, int limit,
                        plat_status_t *st) {
    if (limit < 1 || limit > 100)
        return fail(st, 400, "invalid_request_error", "invalid_value", "limit", "Invalid 'limit': %d. Use 1 to 100.",
                    limit);
    char err[SL_ERR_MAX];
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_BATCH_LIST, err, sizeof err);
    if (!s) {
        fail_db(st, err);
    } else {
        db_bind_int64(s, 1, account_id);
        out = ok(st, list_json(s, batch_json, p, after, limit, false));
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

json_t *plat_batch_cancel(plat_t *p, int64_t account_id, const char *id, plat_status_t *st) {
    if (!id_ok(id)) return no_batch(st, id);
    char err[SL_ERR_MAX];
    json_t *out = NULL;
    pthread_mutex_lock(&p->mu);
    json_t *b = batch_get_locked(p, account_id, id, st);
    if (!b) goto out;
    const char *status = json_string_value(json_object_get(b, "status"));
    if (strcmp(status, "validating") != 0 && strcmp(status, "in_progress") != 0) {
        fail(st, 409, "invalid_request_error", "batch_not_cancellable", NULL,
             "Cannot cancel a batch with status '%s'.", status);
        goto out;
    }
    db_stmt_t *s = db_stmt(p->db, ST_BATCH_CANCEL, err, sizeof err);
    if (!s) {
        fail_db(st, err);
        goto out;
    }
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, now_s(p));
    db_bind_int64(s, 3, account_id);
    int rc = db_step_done(s, err, sizeof err);
    db_release(s);
    if (rc != 0) {
        fail_db(st, err);
        goto out;
    }
    out = batch_get_locked(p, account_id, id, st);
out:
    json_decref(b);
    pthread_mutex_unlock(&p->mu);
    return out;
}

/* ---- validation of an input file ---- */

static void add_error(json_t *errors, const char *code, const char *param, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_error(json_t *errors, const char *code, const char *param, int64_t line, const char *fmt, ...) {
    json_t *data = json_object_get(errors, "data");
    if (json_array_size(data) >= PLAT_BATCH_MAX_ERRORS) return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(data, json_pack("{s:s, s:s, s:s?, s:I}", "code", code, "message", msg, "param", param,
                                          "line", (json_int_t)line));
    if (!param) json_object_set_new(json_array_get(data, json_array_size(data) - 1), "param", json_null());
    if (line == 0) json_object_set_new(json_array_get(data, json_array_size(data) - 1), "line", json_null());
}

typedef struct seen_set { /* custom_ids seen: open addressing over strdup'd keys */
    char **k;
    size_t cap, n;
} seen_set_t;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* 1 new, 0 seen before, -1 out of memory. */
static int seen_add(seen_set_t *z, const char *key) {
    if (2 * (z->n + 1) > z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 64;
        char **k = calloc(cap, sizeof *k);
        if (!k) return -1;
        for (size_t i = 0; i < z->cap; i++)
            if (z->k[i]) {
                size_t j = str_hash(z->k[i]) & (cap - 1);
                while (k[j]) j = (j + 1) & (cap - 1);
                k[j] = z->k[i];
            }
        free(z->k);
        z->k = k;
        z->cap = cap;
    }
    size_t j = str_hash(key) & (z->cap - 1);
    while (z->k[j]) {
        if (!strcmp(z->k[j], key)) return 0;
        j = (j + 1) & (z->cap - 1);
    }
    if (!(z->k[j] = sl_strdup(key))) return -1;
    z->n++;
    return 1;
}

static void seen_free(seen_set_t *z) {
    for (size_t i = 0; i < z->cap; i++) free(z->k[i]);
    free(z->k);
}

int plat_batch_validate(const char *data, size_t len, const char *endpoint,
                        bool (*is_model)(void *ud, const char *endpoint, const char *model), void *ud,
                        int (*each_line)(void *line_ud, int64_t line, const char *custom_id, const char *body),
                        void *line_ud,
                        json_t **errors_out) {
    json_t *errors = json_pack("{s:s, s:[]}", "object", "list", "data");
    seen_set_t seen = {0};
    char model0[256] = "";
    int64_t line = 0, n_req = 0;
    /* first pass: check; second pass (each_line): hand out the requests */
    for (int pass = 0; pass < (each_line ? 2 : 1); pass++) {
        if (pass == 1 && json_array_size(json_object_get(errors, "data")) > 0) break;
        line = 0;
        n_req = 0;
        const char *p = data, *end = data + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            line++;
            const char *q = p;
            p = nl ? nl + 1 : end;
            bool blank = true;
            for (const char *c = q; c < le; c++)
                if (*c != ' ' && *c != '\t' && *c != '\r') blank = false;
            if (blank) continue;
            n_req++;
            json_error_t je;
            json_t *o = json_loadb(q, (size_t)(le - q), JSON_REJECT_DUPLICATES, &je);
            if (pass == 1) {
                json_t *body = json_object_get(o, "body");
                char *text = json_dumps(body, JSON_COMPACT);
                int rc = text ? each_line(line_ud, line, json_string_value(json_object_get(o, "custom_id")), text) : -1;
                free(text);
                json_decref(o);
                if (rc != 0) {
                    add_error(errors, "internal_error", NULL, line, "The request could not be stored.");
                    break;
                }
                continue;
            }
            if (n_req > PLAT_BATCH_MAX_REQUESTS) {
                json_decref(o);
                add_error(errors, "too_many_tasks", NULL, 0,
                          "The batch input file has more than %d requests; split it into several "
                          "batches.",
                          PLAT_BATCH_MAX_REQUESTS);
                break;
            }
            if (!json_is_object(o)) {
                json_decref(o);
                add_error(errors, "invalid_json_line", NULL, line, "This line is not parseable as valid JSON.");
                continue;
            }
            const json_t *cid = json_object_get(o, "custom_id"), *method = json_object_get(o, "method"),
                         *url = json_object_get(o, "url"), *body = json_object_get(o, "body");
            if (!cid || !json_is_string(cid) || json_string_length(cid) == 0) {
                add_error(errors, cid ? "invalid_value" : "missing_required_parameter", "custom_id", line,
                          cid ? "Invalid 'custom_id': expected a non-empty string." : "Missing required parameter: 'custom_id'.");
            } else if (json_string_length(cid) >= 512 || strlen(json_string_value(cid)) != json_string_length(cid)) {
                add_error(errors, "invalid_value", "custom_id", line,
                          "Invalid 'custom_id': at most 511 bytes, without NUL characters.");
            } else {
                int r = seen_add(&seen, json_string_value(cid));
                if (r == 0)
                    add_error(errors, "duplicate_custom_id", "custom_id", line,
                              "The custom_id for this request is a duplicate of another request. "
                              "The custom_id "
                              "parameter must be unique for each request in a batch.");
                else if (r < 0)
                    add_error(errors, "internal_error", NULL, line, "out of memory");
            }
            if (!method)
                add_error(errors, "missing_required_parameter", "method", line, "Missing required parameter: 'method'.");
            else if (!json_is_string(method) || strcmp(json_string_value(method), "POST") != 0)
                add_error(errors, "invalid_value", "method", line,
                          "Invalid 'method': batch requests use the method POST.");
            if (!url)
                add_error(errors, "missing_required_parameter", "url", line, "Missing required parameter: 'url'.");
            else if (!json_is_string(url) || strcmp(json_string_value(url), endpoint) != 0)
                add_error(errors, "url_mismatch", "url", line,
                          "The provided URL '%.80s' does not match the batch endpoint '%s'.",
                          json_is_string(url) ? json_string_value(url) : "?", endpoint);
            if (!body) {
                add_error(errors, "missing_required_parameter", "body", line, "Missing required parameter: 'body'.");
            } else if (!json_is_object(body)) {
                add_error(errors, "invalid_value", "body", line, "Invalid 'body': expected an object.");
            } else {
                const json_t *m = json_object_get(body, "model");
                const char *model = json_is_string(m) ? json_string_value(m) : NULL;
                if (!model || !*model || strlen(model) >= sizeof model0) {
                    add_error(errors, "missing_required_parameter", "body.model", line,
                              "Missing required parameter: 'body.model'.");
                } else if (is_model && !is_model(ud, endpoint, model)) {
                    add_error(errors, "model_not_found", "body.model", line,
                              "The model '%.100s' does not exist or does not serve %s.", model, endpoint);
                } else if (!model0[0]) {
                    snprintf(model0, sizeof model0, "%s", model);
                } else if (strcmp(model0, model) != 0) {
                    add_error(errors, "model_mismatch", "body.model", line,
                              "The model '%.100s' differs from '%.100s' of the batch's earlier "
                              "requests; a batch "
                              "uses one model.",
                              model, model0);
                }
            }
            json_decref(o);
        }
        if (pass == 0 && n_req == 0) add_error(errors, "empty_file", NULL, 0, "The batch input file is empty.");
    }
    seen_free(&seen);
    if (json_array_size(json_object_get(errors, "data")) == 0) {
        json_decref(errors);
        if (errors_out) *errors_out = NULL;
        return 0;
    }
    if (errors_out) *errors_out = errors;
    else json_decref(errors);
    return -1;
}

/* ---- the runner ---- */

typedef struct active_batch {
    char id[PLAT_ID_MAX];
    char endpoint[32];
    char input_file_id[PLAT_ID_MAX];
    char status[16];
    int64_t account_id, key_id, expires_at;
} active_batch_t;

static int running_count(plat_t *p, const char *batch_id) {
    int n = 0;
    for (struct plat_batch_run *r = p->batch_running; r; r = r->next) n += !strcmp(r->t->batch_id, batch_id);
    return n;
}

static bool running_has(plat_t *p, const char *batch_id, int64_t line) {
    for (struct plat_batch_run *r = p->batch_running; r; r = r->next)
        if (r->t->line == line && !strcmp(r->t->batch_id, batch_id)) return true;
    return false;
}

/* A validated file's requests, collected outside the lock. */
typedef struct item_vec {
    int64_t *line;
    char **cid, **body;
    size_t n, cap;
} item_vec_t;

static int collect_item(void *ud, int64_t line, const char *custom_id, const char *body) {
    item_vec_t *v = ud;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int64_t *l = realloc(v->line, cap * sizeof *l);
        if (l) v->line = l;
        char **c = realloc(v->cid, cap * sizeof *c);
        if (c) v->cid = c;
        char **b = realloc(v->body, cap * sizeof *b);
        if (b) v->body = b;
        if (!l || !c || !b) return -1;
        v->cap = cap;
    }
    v->line[v->n] = line;
    v->cid[v->n] = sl_strdup(custom_id);
    v->body[v->n] = sl_strdup(body);
    v->n++;
    return v->cid[v->n - 1] && v->body[v->n - 1] ? 0 : -1;
}

static void item_vec_free(item_vec_t *v) {
    for (size_t i = 0; i < v->n; i++) {
        free(v->cid[i]);
        free(v->body[i]);
    }
    free(v->line);
    free(v->cid);
    free(v->body);
}

/* Locked, in a transaction: reads the batch's status through `which`
 * (ST_BATCH_LOCK or ST_BATCH_SHARE: the row stays held until the
 * transaction ends on PostgreSQL). 1 when it is `status`, 0 when not (or
 * the batch is gone), -1 with err. */
static int batch_status_is(plat_t *p, int which, const char *id, const char *status, char *err,
                           size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, which, err, errlen);
    if (!s) return -1;
    db_bind_text(s, 1, id);
    int r = db_step(s);
    int rc = r == DB_ROW ? !strcmp(db_col_text(s, 0), status) : r == DB_DONE ? 0 : -1;
    if (rc < 0) sl_err(err, errlen, "batch %s: %s", id, db_errmsg(p->db));
    db_release(s);
    return rc;
}

/* validating -> in_progress (requests stored) or failed. Takes the lock
 * to read the file and to write the outcome, not while it parses: a large
 * file does not hold up the request path. */
static int batch_validate(plat_t *p, const active_batch_t *b, bool (*is_model)(void *, const char *, const char *),
                          void *ud, char *err, size_t errlen) {
    char *data = NULL;
    size_t len = 0;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_stmt(p->db, ST_FILE_BODY, err, errlen);
    if (s) {
        db_bind_text(s, 1, b->input_file_id);
        db_bind_int64(s, 2, b->account_id);
        if (db_step(s) == DB_ROW) {
            len = db_col_bytes(s, 0);
            data = malloc(len + 1);
            if (data) memcpy(data, db_col_text(s, 0), len);
            else sl_err(err, errlen, "out of memory");
        }
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    if (!s || (len && !data)) {
        free(data);
        return -1;
    }
    json_t *errors = NULL;
    item_vec_t items = {0};
    bool valid = false;
    if (!data)
        errors = json_pack("{s:s, s:[{s:s, s:s, s:n, s:n}]}", "object", "list", "data", "code", "file_not_found",
                           "message", "The batch's input file was deleted before it could be read.", "param", "line");
    else
        valid = plat_batch_validate(data, len, b->endpoint, is_model, ud, collect_item, &items, &errors) == 0;
    free(data);
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    if (db_begin(p->db, err, errlen) != 0) goto out;
    /* the batch row held: another node validating the same batch at once
     * waits here, then finds it validated and leaves it */
    int still = batch_status_is(p, ST_BATCH_LOCK, b->id, "validating", err, errlen);
    if (still <= 0) {
        rc = still;
        goto out;
    }
    for (size_t i = 0; valid && i < items.n; i++) {
        s = db_stmt(p->db, ST_ITEM_INSERT, err, errlen);
        if (!s) goto out;
        db_bind_text(s, 1, b->id);
        db_bind_int64(s, 2, items.line[i]);
        db_bind_text(s, 3, items.cid[i]);
        db_bind_text(s, 4, items.body[i]);
        int r = db_step_done(s, err, errlen);
        db_release(s);
        if (r != 0) goto out;
    }
    s = db_stmt(p->db, valid ? ST_BATCH_START : ST_BATCH_FAIL, err, errlen);
    if (!s) goto out;
    if (!valid) {
        char *t = json_dumps(errors, JSON_COMPACT);
        db_bind_text(s, 3, t ? t : "null");
        free(t);
    }
    db_bind_text(s, 1, b->id);
    db_bind_int64(s, 2, now_s(p));
    rc = db_step_done(s, err, errlen);
    db_release(s);
    if (rc == 0) rc = db_commit(p->db, err, errlen);
out:
    db_rollback(p->db); /* nothing after a commit */
    pthread_mutex_unlock(&p->mu);
    json_decref(errors);
    item_vec_free(&items);
    return rc;
}

/* A result line: {"id","custom_id","response":{...}|null,"error":{...}|null}. */
static char *result_line(const char *custom_id, json_t *response, json_t *error) {
    char id[PLAT_ID_MAX];
    if (new_id("batch_req_", id, sizeof id) != 0) {
        json_decref(response);
        json_decref(error);
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:o?, s:o?}", "id", id, "custom_id", custom_id, "response", response,
                          "error", error);
    if (!o) return NULL;
    if (!response) json_object_set_new(o, "response", json_null());
    if (!error) json_object_set_new(o, "error", json_null());
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return t;
}

/* Locked: one result row without a ledger row. */
static int item_done(plat_t *p, const char *batch_id, int64_t line, bool failed, const char *result, char *err,
                     size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, ST_ITEM_DONE, err, errlen);
    if (!s) return -1;
    db_bind_text(s, 1, batch_id);
    db_bind_int64(s, 2, line);
    db_bind_int64(s, 3, failed ? 2 : 1);
    db_bind_text(s, 4, result);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    return rc;
}

static int64_t count_of(plat_t *p, int which, const char *batch_id, int64_t arg);

/* Locked. Ends a batch whose requests are all done or will not run:
 * pending ones become batch_expired errors (status expired) or stay
 * unrun (cancelled); the output and error files are written; one
 * transaction. Nothing happens (0) while a request of it runs, on this
 * node or (a live lease) on another, or when the batch moved on since b
 * was read: with the batch row held, one node finalizes. */
static int batch_finalize(plat_t *p, const active_batch_t *b, const char *status, char *err,
                          size_t errlen) {
    if (running_count(p, b->id) > 0) return 0;
    if (db_begin(p->db, err, errlen) != 0) return -1;
    sl_buf_t out = {0}, bad = {0};
    int64_t now = now_s(p);
    db_stmt_t *s;
    int still = batch_status_is(p, ST_BATCH_LOCK, b->id, b->status, err, errlen);
    if (still < 0) goto fail;
    if (still == 0) goto skip;
    /* under the lock: a request finished or claimed since b was read counts */
    int64_t busy = !strcmp(status, "completed")
                       ? count_of(p, ST_ITEM_COUNTS, b->id, 0)
                       : count_of(p, ST_ITEM_CLAIMED, b->id, plat_now_ms(p));
    if (busy < 0) {
        sl_err(err, errlen, "batch %s: %s", b->id, db_errmsg(p->db));
        goto fail;
    }
    if (busy > 0) goto skip;
    if (!strcmp(status, "expired")) {
        for (;;) { /* pending requests, a page at a time (item_done leaves them) */
            s = db_stmt(p->db, ST_ITEM_PENDING, err, errlen);
            if (!s) goto fail;
            db_bind_text(s, 1, b->id);
            db_bind_int64(s, 2, 256);
            int64_t lines[256];
            char *cids[256];
            int n = 0;
            while (n < 256 && db_step(s) == DB_ROW) {
                lines[n] = db_col_int64(s, 0);
                cids[n] = sl_strdup(db_col_text(s, 1));
                n++;
            }
            db_release(s);
            int bad_rc = 0;
            for (int i = 0; i < n; i++) {
                char *line = cids[i] ? result_line(cids[i], NULL,
                                                   json_pack("{s:s, s:s}", "code", "batch_expired", "message",
                                                             "This request could not be executed before the "
                                                             "completion window expired."))
                                     : NULL;
                if (!line || item_done(p, b->id, lines[i], true, line, err, errlen) != 0) bad_rc = -1;
                free(line);
                free(cids[i]);
            }
            if (bad_rc) goto fail;
            if (n < 256) break;
        }
    }
    s = db_stmt(p->db, ST_ITEM_RESULTS, err, errlen);
    if (!s) goto fail;
    db_bind_text(s, 1, b->id);
    while (db_step(s) == DB_ROW) {
        sl_buf_t *dst = db_col_int64(s, 0) == 1 ? &out : &bad;
        sl_buf_append(dst, db_col_text(s, 1), db_col_bytes(s, 1));
        sl_buf_putc(dst, '\n');
    }
    db_release(s);
    char out_id[PLAT_ID_MAX] = "", err_id[PLAT_ID_MAX] = "", name[PLAT_ID_MAX + 32];
    if (out.len) {
        snprintf(name, sizeof name, "%s_output.jsonl", b->id);
        if (new_id("file-", out_id, sizeof out_id) != 0 ||
            file_insert(p, out_id, b->account_id, "batch_output", name, out.data, out.len, err, errlen) != 0)
            goto fail;
    }
    if (bad.len) {
        snprintf(name, sizeof name, "%s_error.jsonl", b->id);
        if (new_id("file-", err_id, sizeof err_id) != 0 ||
            file_insert(p, err_id, b->account_id, "batch_output", name, bad.data, bad.len, err, errlen) != 0)
            goto fail;
    }
    s = db_stmt(p->db, ST_BATCH_FINISH, err, errlen);
    if (!s) goto fail;
    const bool cancelled = !strcmp(status, "cancelled"), expired = !strcmp(status, "expired");
    db_bind_text(s, 1, b->id);
    db_bind_text(s, 2, status);
    db_bind_int64(s, 3, cancelled ? 0 : now);
    db_bind_int64(s, 4, !cancelled && !expired ? now : 0);
    db_bind_int64(s, 5, expired ? now : 0);
    db_bind_int64(s, 6, cancelled ? now : 0);
    db_bind_text(s, 7, out_id);
    db_bind_text(s, 8, err_id);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    if (rc != 0 || db_commit(p->db, err, errlen) != 0) goto fail;
    sl_buf_free(&out);
    sl_buf_free(&bad);
    return 0;
skip:
    db_rollback(p->db);
    return 0;
fail:
    db_rollback(p->db);
    sl_buf_free(&out);
    sl_buf_free(&bad);
    return -1;
}

/* Locked. ST_ITEM_COUNTS: the batch's pending requests; ST_ITEM_CLAIMED:
 * its pending requests under a lease alive at arg (unix ms). -1 on an
 * error. */
static int64_t count_of(plat_t *p, int which, const char *batch_id, int64_t arg) {
    char err[SL_ERR_MAX];
    db_stmt_t *s = db_stmt(p->db, which, err, sizeof err);
    if (!s) return -1;
    db_bind_text(s, 1, batch_id);
    if (which == ST_ITEM_CLAIMED) db_bind_int64(s, 2, arg);
    int64_t n = -1;
    if (db_step(s) == DB_ROW)
        n = which == ST_ITEM_COUNTS ? db_col_int64(s, 0) - db_col_int64(s, 1) - db_col_int64(s, 2)
                                    : db_col_int64(s, 0);
    db_release(s);
    return n;
}

static int64_t pending_count(plat_t *p, const char *batch_id) {
    return count_of(p, ST_ITEM_COUNTS, batch_id, 0);
}

static void task_free(plat_batch_task_t *t);

/* Whether this node serves the model of a claimed request (is_model NULL:
 * any). Shared only: there nodes may serve different models, and a node
 * leaves a batch of a model it lacks to those that serve it. */
static bool serves_model(const active_batch_t *b, const char *body,
                         bool (*is_model)(void *, const char *, const char *), void *ud) {
    if (!is_model) return true;
    json_t *o = json_loads(body, 0, NULL);
    const char *m = json_string_value(json_object_get(o, "model"));
    bool yes = m && is_model(ud, b->endpoint, m);
    json_decref(o);
    return yes;
}

/* Locked: claims up to room pending requests of b that nobody runs, in one
 * transaction holding the batch row shared (so it cannot end meanwhile)
 * and only while the batch is in_progress. Shared: each claimed row gets
 * this node and a lease of lease_ms (renewed while it runs, lease_tick);
 * the rows are picked FOR UPDATE SKIP LOCKED with no live lease, so two
 * nodes never claim one request while its lease holds, and a dead node's
 * requests are claimed again once their leases run out. SQLite: one
 * process; the running list is the guard and no lease is written. */
static int batch_claim(plat_t *p, const active_batch_t *b, int room, plat_batch_task_t ***tasks,
                       int *n, int *cap, bool (*is_model)(void *, const char *, const char *),
                       void *ud, char *err, size_t errlen) {
    plat_batch_task_t *got[64];
    int ngot = 0, rc = 0;
    if (room > (int)SL_ARRAY_LEN(got)) room = (int)SL_ARRAY_LEN(got);
    const int64_t now_ms = plat_now_ms(p);
    if (db_begin(p->db, err, errlen) != 0) return -1;
    int still = batch_status_is(p, ST_BATCH_SHARE, b->id, "in_progress", err, errlen);
    if (still <= 0) {
        db_rollback(p->db);
        return still;
    }
    db_stmt_t *s = db_stmt(p->db, ST_ITEM_CLAIM, err, errlen);
    if (!s) {
        db_rollback(p->db);
        return -1;
    }
    db_bind_text(s, 1, b->id);
    db_bind_int64(s, 2, now_ms);
    db_bind_int64(s, 3, room + running_count(p, b->id));
    int r;
    while (ngot < room && (r = db_step(s)) == DB_ROW) {
        int64_t line = db_col_int64(s, 0);
        if (running_has(p, b->id, line)) continue;
        plat_batch_task_t *t = calloc(1, sizeof *t);
        if (!t || !(t->body = sl_strdup(db_col_text(s, 2)))) {
            task_free(t);
            rc = sl_err(err, errlen, "out of memory");
            break;
        }
        snprintf(t->batch_id, sizeof t->batch_id, "%s", b->id);
        snprintf(t->custom_id, sizeof t->custom_id, "%s", db_col_text(s, 1));
        snprintf(t->endpoint, sizeof t->endpoint, "%s", b->endpoint);
        t->line = line;
        t->account_id = b->account_id;
        t->key_id = b->key_id;
        got[ngot++] = t;
    }
    db_release(s);
    if (rc == 0 && p->shared && ngot > 0 && !serves_model(b, got[0]->body, is_model, ud))
        ngot = -ngot; /* not here */
    for (int i = 0; rc == 0 && p->shared && i < ngot; i++) {
        s = db_stmt(p->db, ST_ITEM_LEASE, err, errlen);
        if (!s) {
            rc = -1;
            break;
        }
        db_bind_text(s, 1, b->id);
        db_bind_int64(s, 2, got[i]->line);
        db_bind_text(s, 3, p->node);
        db_bind_int64(s, 4, now_ms + p->cfg.lease_ms);
        rc = db_step_done(s, err, errlen);
        db_release(s);
    }
    if (rc == 0 && ngot > 0 && db_commit(p->db, err, errlen) != 0) rc = -1;
    db_rollback(p->db); /* nothing after a commit */
    if (ngot < 0) {     /* the model is not served here: nothing claimed */
        for (int i = 0; i < -ngot; i++)
            task_free(got[i]);
        return 0;
    }
    for (int i = 0; i < ngot; i++) {
        struct plat_batch_run *run = rc == 0 ? calloc(1, sizeof *run) : NULL;
        if (run && *n == *cap) {
            int nc = *cap ? *cap * 2 : 8;
            plat_batch_task_t **nt = realloc(*tasks, (size_t)nc * sizeof *nt);
            if (nt) {
                *tasks = nt;
                *cap = nc;
            }
        }
        if (!run || *n == *cap) { /* not published: shared, its lease runs out and it runs later */
            if (rc == 0) rc = sl_err(err, errlen, "out of memory");
            free(run);
            task_free(got[i]);
            continue;
        }
        run->t = got[i];
        run->next = p->batch_running;
        p->batch_running = run;
        (*tasks)[(*n)++] = got[i];
    }
    return rc;
}

/* ---- retention ---- */

/* Locked. Deletes up to max_rows expired rows (*gone counts them): files
 * older than file_retention_s that no unfinished batch reads, then
 * finished batches older than batch_retention_s — first marked 'deleted'
 * (from then on a 404, like any unknown id), then their requests a chunk
 * at a time, and the batch row once none is left. Each step is its own
 * short transaction or statement, so several nodes pruning at once skip
 * (files: SKIP LOCKED) or repeat (marks, deletes) each other's work
 * harmlessly. 0, or -1 with err. */
static int prune_locked(plat_t *p, int max_rows, int64_t *gone, char *err, size_t errlen) {
    *gone = 0;
    const int64_t now_ms = plat_now_ms(p);
    db_stmt_t *s;
    if (p->cfg.file_retention_s > 0) {
        char ids[PLAT_PRUNE_CHUNK][PLAT_ID_MAX];
        int n = 0;
        if (db_begin(p->db, err, errlen) != 0) return -1;
        if (!(s = db_stmt(p->db, ST_FILE_PRUNE_PICK, err, errlen))) goto fail;
        db_bind_int64(s, 1, now_ms - p->cfg.file_retention_s * 1000);
        db_bind_int64(s, 2, SL_MIN(max_rows, PLAT_PRUNE_CHUNK));
        while (n < PLAT_PRUNE_CHUNK && db_step(s) == DB_ROW)
            snprintf(ids[n++], PLAT_ID_MAX, "%s", db_col_text(s, 0));
        db_release(s);
        for (int i = 0; i < n; i++) {
            if (!(s = db_stmt(p->db, ST_FILE_PRUNE, err, errlen))) goto fail;
            db_bind_text(s, 1, ids[i]);
            int rc = db_step_done(s, err, errlen);
            db_release(s);
            if (rc != 0) goto fail;
            *gone += db_changes(p->db);
        }
        if (db_commit(p->db, err, errlen) != 0) goto fail;
        max_rows -= n;
    }
    if (p->cfg.batch_retention_s > 0 && max_rows > 0) {
        if (!(s = db_stmt(p->db, ST_BATCH_RETIRE, err, errlen))) return -1;
        db_bind_int64(s, 1, now_ms / 1000 - p->cfg.batch_retention_s);
        db_bind_int64(s, 2, max_rows);
        int rc = db_step_done(s, err, errlen);
        db_release(s);
        if (rc != 0) return -1;
    }
    char ids[8][PLAT_ID_MAX];
    int n = 0;
    if (!(s = db_stmt(p->db, ST_BATCH_DELETED, err, errlen))) return -1;
    db_bind_int64(s, 1, 8);
    while (n < 8 && db_step(s) == DB_ROW)
        snprintf(ids[n++], PLAT_ID_MAX, "%s", db_col_text(s, 0));
    db_release(s);
    for (int i = 0; i < n && max_rows > 0; i++) {
        if (!(s = db_stmt(p->db, ST_ITEM_PURGE, err, errlen))) return -1;
        db_bind_text(s, 1, ids[i]);
        db_bind_int64(s, 2, max_rows);
        int rc = db_step_done(s, err, errlen);
        db_release(s);
        if (rc != 0) return -1;
        int64_t k = db_changes(p->db);
        *gone += k;
        max_rows -= (int)k;
        if (max_rows <= 0) break; /* maybe more of this batch's requests: the next call */
        if (!(s = db_stmt(p->db, ST_BATCH_PURGE, err, errlen))) return -1;
        db_bind_text(s, 1, ids[i]);
        rc = db_step_done(s, err, errlen);
        db_release(s);
        if (rc != 0) return -1;
        *gone += db_changes(p->db);
        max_rows--;
    }
    return 0;
fail:
    db_rollback(p->db);
    return -1;
}

int plat_batch_prune(plat_t *p, int max_rows, int64_t *removed, char *err, size_t errlen) {
    int64_t gone = 0;
    if (max_rows < 1) max_rows = 1;
    pthread_mutex_lock(&p->mu);
    int rc = prune_locked(p, max_rows, &gone, err, errlen);
    pthread_mutex_unlock(&p->mu);
    if (removed) *removed = gone;
    return rc;
}

int plat_batch_step(plat_t *p, int room,
                    bool (*is_model)(void *ud, const char *endpoint, const char *model), void *ud,
                    plat_batch_task_t ***tasks, int *n, char *err, size_t errlen) {
    *tasks = NULL;
    *n = 0;
    int cap = 0, rc = 0;
    pthread_mutex_lock(&p->mu);
    active_batch_t *bs = NULL;
    size_t nb = 0, cb = 0;
    db_stmt_t *s = db_stmt(p->db, ST_BATCH_ACTIVE, err, errlen);
    if (!s) {
        rc = -1;
        goto out;
    }
    while (db_step(s) == DB_ROW) {
        if (nb == cb) {
            size_t nc = cb ? cb * 2 : 8;
            active_batch_t *nbs = realloc(bs, nc * sizeof *nbs);
            if (!nbs) break;
            bs = nbs;
            cb = nc;
        }
        active_batch_t *b = &bs[nb++];
        snprintf(b->id, sizeof b->id, "%s", db_col_text(s, 0));
        snprintf(b->endpoint, sizeof b->endpoint, "%s", db_col_text(s, 1));
        snprintf(b->input_file_id, sizeof b->input_file_id, "%s", db_col_text(s, 2));
        snprintf(b->status, sizeof b->status, "%s", db_col_text(s, 4));
        b->expires_at = db_col_int64(s, 10);
        b->account_id = db_col_int64(s, 18);
        b->key_id = db_col_int64(s, 19);
    }
    db_release(s);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < nb && rc == 0; i++) /* unlocked: batch_validate locks as it needs */
        if (!strcmp(bs[i].status, "validating")) rc = batch_validate(p, &bs[i], is_model, ud, err, errlen);
    pthread_mutex_lock(&p->mu);
    int64_t now = now_s(p);
    for (size_t i = 0; i < nb && rc == 0; i++) {
        active_batch_t *b = &bs[i];
        if (!strcmp(b->status, "validating")) continue; /* its requests start at the next step */
        const char *ending = NULL;
        if (!strcmp(b->status, "cancelling")) ending = "cancelled";
        else if (now >= b->expires_at) ending = "expired";
        if (ending) {
            rc = batch_finalize(p, b, ending, err, errlen);
            continue;
        }
        int64_t pending = pending_count(p, b->id);
        if (pending < 0) {
            rc = sl_err(err, errlen, "batch %s: %s", b->id, db_errmsg(p->db));
        } else if (pending == 0) {
            rc = batch_finalize(p, b, "completed", err, errlen);
        } else if (room > *n) {
            rc = batch_claim(p, b, room - *n, tasks, n, &cap, is_model, ud, err, errlen);
        }
    }
    /* retention: a bounded chunk now and then (sooner while there is more) */
    const int64_t now_ms = plat_now_ms(p);
    if (rc == 0 && now_ms >= p->prune_next_ms) {
        int64_t gone = 0;
        char perr[SL_ERR_MAX];
        if (prune_locked(p, PLAT_PRUNE_CHUNK, &gone, perr, sizeof perr) != 0)
            sl_warn("batch runner: pruning: %s", perr);
        p->prune_next_ms = now_ms + (gone >= PLAT_PRUNE_CHUNK ? 1000 : 60000);
    }
out:
    free(bs);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void task_free(plat_batch_task_t *t) {
    if (!t) return;
    free(t->body);
    free(t);
}

/* Locked: the task leaves the running list. */
static void running_remove(plat_t *p, plat_batch_task_t *t) {
    for (struct plat_batch_run **r = &p->batch_running; *r; r = &(*r)->next)
        if ((*r)->t == t) {
            struct plat_batch_run *dead = *r;
            *r = dead->next;
            free(dead);
            return;
        }
}

/* Locked, shared: t's request is no longer claimed by this node. */
static void item_lease_drop(plat_t *p, const plat_batch_task_t *t) {
    char err[SL_ERR_MAX];
    db_stmt_t *s = db_stmt(p->db, ST_ITEM_UNLEASE, err, sizeof err);
    if (s) {
        db_bind_text(s, 1, t->batch_id);
        db_bind_int64(s, 2, t->line);
        db_bind_text(s, 3, p->node);
        if (db_step_done(s, err, sizeof err) != 0) s = NULL;
        db_release(s);
    }
    if (!s)
        sl_warn("batch %s line %" PRId64 ": lease not dropped (%s); it runs out", t->batch_id,
                t->line, err);
}

void plat_batch_renew_locked(plat_t *p, int64_t until_ms) {
    char err[SL_ERR_MAX];
    for (struct plat_batch_run *r = p->batch_running; r; r = r->next) {
        db_stmt_t *s = db_stmt(p->db, ST_ITEM_RENEW, err, sizeof err);
        if (!s) return;
        db_bind_text(s, 1, r->t->batch_id);
        db_bind_int64(s, 2, r->t->line);
        db_bind_text(s, 3, p->node);
        db_bind_int64(s, 4, until_ms);
        int rc = db_step_done(s, err, sizeof err);
        db_release(s);
        if (rc != 0) return; /* the database is away; the next tick tries again */
    }
}

void plat_batch_task_done(plat_t *p, plat_batch_task_t *t, int http, const char *body, size_t len,
                          const plat_usage_t *u, const char *status) {
    char err[SL_ERR_MAX];
    if ((status && !strcmp(status, "shutdown")) || (http == 503 && !u)) {
        /* stopped by a shutdown, or refused for now (engine queue full, the
         * database out of reach) before any compute: unbilled, pending, it
         * runs again at a later step (or after the restart) */
        if (t->req) plat_abort(p, t->req);
        if (p->shared) { /* its lease goes now: any node may run it at its next step */
            pthread_mutex_lock(&p->mu);
            item_lease_drop(p, t);
            pthread_mutex_unlock(&p->mu);
        }
    } else {
        json_t *b = json_loadb(body ? body : "", len, JSON_DECODE_ANY, NULL);
        char *line = result_line(t->custom_id,
                                 json_pack("{s:i, s:s, s:o}", "status_code", http, "request_id",
                                           t->req ? plat_req_id(t->req) : "", "body", b ? b : json_object()),
                                 NULL);
        if (line && !t->req) { /* refused before any compute: nothing to bill */
            char rid[PLAT_ID_MAX];
            if (new_id("req-", rid, sizeof rid) == 0) {
                json_t *o = json_loads(line, 0, NULL);
                json_object_set_new(json_object_get(o, "response"), "request_id", json_string(rid));
                free(line);
                line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                json_decref(o);
            }
        }
        const bool failed = http < 200 || http > 299;
        plat_item_result_t item = {t->line, failed, line ? line : ""};
        if (!line) {
            sl_warn("batch %s line %" PRId64 ": out of memory; the request runs again", t->batch_id, t->line);
            if (t->req) plat_abort(p, t->req);
        } else if (t->req && u) {
            int rc = plat_finish_item(p, t->req, u, status, &item);
            if (rc == PLAT_EDUP) sl_warn("batch %s line %" PRId64 ": recorded twice; kept the first", t->batch_id, t->line);
        } else {
            if (t->req) plat_abort(p, t->req);
            pthread_mutex_lock(&p->mu);
            if (item_done(p, t->batch_id, t->line, failed, line, err, sizeof err) != 0)
                sl_warn("batch %s line %" PRId64 ": %s; the request runs again", t->batch_id, t->line, err);
            pthread_mutex_unlock(&p->mu);
        }
        free(line);
    }
    t->req = NULL;
    pthread_mutex_lock(&p->mu);
    running_remove(p, t);
    pthread_mutex_unlock(&p->mu);
    task_free(t);
}

void plat_batch_forget_running(plat_t *p) {
    while (p->batch_running) {
        struct plat_batch_run *r = p->batch_running;
        p->batch_running = r->next;
        if (r->t->req) plat_abort(p, r->t->req);
        if (p->shared) item_lease_drop(p, r->t);
        task_free(r->t);
        free(r);
    }
}
