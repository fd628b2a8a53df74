/*
 * db.c — the storage interface of db.h over SQLite and over PostgreSQL
 * (libpq). Every difference between the two engines lives in this file:
 * the SQL rewriting (sql_translate), how a transaction begins, how the
 * schema version is kept (PRAGMA user_version vs a schema_version table)
 * and how concurrent migrations are kept apart.
 *
 * PostgreSQL specifics:
 *  - Statements from the table are prepared on the server (PQprepare) the
 *    first time they run on a connection, with the parameter types of that
 *    first run (int8 / text; NULL lets the server infer), so `?1 = 0`
 *    compares bigints, never int4. Values travel as text; results are read
 *    as text and parsed (sum() of bigint is numeric on PostgreSQL).
 *  - A statement that fails because the connection dropped, outside a
 *    transaction, reconnects once and runs again. Inside a transaction
 *    nothing is retried here: the transaction is lost and the caller's
 *    rollback / retry decides. When reconnecting fails too, db_unreachable
 *    says so, and the platform answers 503.
 */
#include "platform/db.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "base/base.h"

#define PG_INT8OID 20
#define PG_TEXTOID 25
#define PG_FLOAT8OID 701

/* Key of the advisory lock that serializes migrations on PostgreSQL
 * ("silica" in ASCII); only migrations take it. */
#define PG_MIGRATE_LOCK INT64_C(0x73696c696361)

struct db_stmt {
    db_t *db;
    int id;      /* index in the table, -1 for a one-off statement */
    char *sql;   /* translated text (owned) */
    int nparams; /* highest ?N */
    /* SQLite */
    sqlite3_stmt *ss;
    /* PostgreSQL */
    char **vals;     /* [nparams] bound values as text, NULL = SQL NULL */
    unsigned *types; /* [nparams] Oid of each bound value, 0 = NULL / inferred */
    unsigned gen;    /* db->gen when prepared on the server; 0 = not yet */
    PGresult *res;
    int row, nrows;
    bool ran;
};

struct db {
    db_kind_t kind;
    const db_sql_t *table;
    int ntable;
    db_stmt_t **cache; /* [ntable], prepared on first use */
    sqlite3 *lite;
    PGconn *pg;
    unsigned gen; /* PostgreSQL connection generation: bumps on reconnect */
    bool in_tx;   /* PostgreSQL: between db_begin and commit / rollback */
    bool down;    /* PostgreSQL: the last failure was an unreachable server */
    int64_t changes;
    char msg[SL_ERR_MAX];
};

bool db_is_url(const char *where) {
    return where && (!strncmp(where, "postgresql://", 13) || !strncmp(where, "postgres://", 11));
}

db_kind_t db_kind(const db_t *db) {
    return db->kind;
}

const char *db_errmsg(db_t *db) {
    if (db->kind == DB_SQLITE) return db->lite ? sqlite3_errmsg(db->lite) : "no database";
    return db->msg;
}

bool db_unreachable(db_t *db) {
    return db->kind == DB_PG && db->down;
}

/* ---- the dialect ---- */

static bool word_at(const char *s, const char *start, const char *w) {
    size_t n = strlen(w);
    if (strncmp(s, w, n) != 0) return false;
    if (s > start && (isalnum((unsigned char)s[-1]) || s[-1] == '_')) return false;
    return !isalnum((unsigned char)s[n]) && s[n] != '_';
}

/* Copies a '...' literal starting at *p (a doubled '' stays inside). */
static void copy_literal(sl_buf_t *b, const char **p) {
    const char *s = *p;
    sl_buf_putc(b, *s++);
    while (*s) {
        if (*s == '\'' && s[1] == '\'') {
            sl_buf_puts(b, "''");
            s += 2;
            continue;
        }
        sl_buf_putc(b, *s);
        if (*s++ == '\'') break;
    }
    *p = s;
}

/* Neutral SQL -> the engine's: ?N placeholders, DAY_UTC(x) (unix ms to
 * 'YYYY-MM-DD' in UTC) and, in migrations (schema), the column types.
 * *nparams gets the highest N. Heap string, NULL when out of memory. */
static char *sql_translate(db_kind_t kind, const char *sql, bool schema, int *nparams) {
    sl_buf_t b = {0};
    int maxp = 0;
    const char *s = sql;
    while (*s) {
        if (*s == '\'') {
            copy_literal(&b, &s);
        } else if (*s == '?' && isdigit((unsigned char)s[1])) {
            char *end;
            long n = strtol(s + 1, &end, 10);
            if (n > maxp) maxp = (int)n;
            sl_buf_printf(&b, "%c%ld", kind == DB_PG ? '$' : '?', n);
            s = end;
        } else if (word_at(s, sql, "DAY_UTC") && s[7] == '(') {
            /* the argument: up to the matching parenthesis */
            const char *a = s + 8, *e = a;
            int depth = 1;
            while (*e && depth > 0) {
                if (*e == '(') depth++;
                if (*e == ')' && --depth == 0) break;
                e++;
            }
            char *inner = sl_strndup(a, (size_t)(e - a));
            int np = 0;
            char *t = inner ? sql_translate(kind, inner, false, &np) : NULL;
            free(inner);
            if (!t) {
                sl_buf_free(&b);
                return NULL;
            }
            if (np > maxp) maxp = np;
            if (kind == DB_PG)
                sl_buf_printf(&b,
                              "to_char(to_timestamp((%s) / 1000) AT TIME ZONE 'UTC', "
                              "'YYYY-MM-DD')",
                              t);
            else
                sl_buf_printf(&b, "strftime('%%Y-%%m-%%d', (%s) / 1000, 'unixepoch')", t);
            free(t);
            s = *e ? e + 1 : e;
        } else if (schema && kind == DB_PG && word_at(s, sql, "INTEGER")) {
            if (!strncmp(s, "INTEGER PRIMARY KEY", 19)) {
                sl_buf_puts(&b, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
                s += 19;
            } else {
                sl_buf_puts(&b, "BIGINT");
                s += 7;
            }
        } else {
            sl_buf_putc(&b, *s++);
        }
    }
    if (nparams) *nparams = maxp;
    return sl_buf_steal(&b);
}

/* ---- PostgreSQL connection ---- */

static void pg_quiet(void *arg, const char *message) {
    (void)arg;
    (void)message; /* NOTICEs ("relation exists, skipping") are not errors */
}

/* libpq's messages span lines ("...\n\tIs the server running...?\n"):
 * one line for logs and error bodies. */
static void one_line(char *m) {
    char *w = m;
    for (const char *r = m; *r; r++) {
        char c = *r == '\n' || *r == '\t' || *r == '\r' ? ' ' : *r;
        if (c == ' ' && (w == m || w[-1] == ' ')) continue;
        *w++ = c;
    }
    while (w > m && w[-1] == ' ')
        w--;
    *w = '\0';
}

static void pg_msg(db_t *db, const char *what, const PGresult *res) {
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !*m) m = PQerrorMessage(db->pg);
    snprintf(db->msg, sizeof db->msg, "%s%s", what, m && *m ? m : "unknown error");
    one_line(db->msg);
}

static bool pg_result_ok(const PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* After a failure: was it the connection? Then, outside a transaction and
 * on the first try, reconnect. true = run the statement again. */
static bool pg_retry(db_t *db, int attempt) {
    if (PQstatus(db->pg) != CONNECTION_BAD) return false;
    db->down = true;
    if (attempt > 0 || db->in_tx) return false;
    PQreset(db->pg);
    if (PQstatus(db->pg) != CONNECTION_OK) {
        pg_msg(db, "PostgreSQL is unreachable: ", NULL);
        return false;
    }
    db->gen++; /* server-side prepared statements are gone */
    db->down = false;
    sl_warn("platform: reconnected to PostgreSQL");
    return true;
}

/* Runs SQL text without parameters (one or several statements). */
static int pg_exec(db_t *db, const char *sql, char *err, size_t errlen) {
    for (int attempt = 0;; attempt++) {
        PGresult *res = PQexec(db->pg, sql);
        if (res && pg_result_ok(res)) {
            PQclear(res);
            db->down = false;
            return 0;
        }
        pg_msg(db, "postgresql: ", res);
        PQclear(res);
        if (!pg_retry(db, attempt)) return sl_err(err, errlen, "%s", db->msg);
    }
}

static db_t *pg_open(db_t *db, const char *url, char *err, size_t errlen) {
    /* keywords after dbname override what the URL says, those before it
     * are defaults the URL may override */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", "silica", url, NULL};
    db->pg = PQconnectdbParams(keys, vals, 1);
    if (!db->pg || PQstatus(db->pg) != CONNECTION_OK) {
        sl_err(err, errlen, "cannot connect to PostgreSQL: %s",
               db->pg ? PQerrorMessage(db->pg) : "out of memory");
        if (err) one_line(err);
        db_close(db);
        return NULL;
    }
    PQsetNoticeProcessor(db->pg, pg_quiet, NULL);
    db->gen = 1;
    return db;
}

/* ---- open / close ---- */

static int lite_exec(db_t *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db->lite, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db->lite));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static db_t *lite_open(db_t *db, const char *dir, bool sync_normal, char *err, size_t errlen) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sl_err(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        db_close(db);
        return NULL;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/silica.db", dir) < 0) {
        sl_err(err, errlen, "out of memory");
        db_close(db);
        return NULL;
    }
    /* The connection is used by one thread at a time (the platform's
     * mutex), so SQLite's own mutex is not needed. */
    if (sqlite3_open_v2(path, &db->lite,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sl_err(err, errlen, "cannot open %s: %s", path, db->lite ? sqlite3_errmsg(db->lite) : "?");
        goto fail;
    }
    sqlite3_busy_timeout(db->lite, 10000);
    if (lite_exec(db, "PRAGMA journal_mode = WAL", err, errlen) != 0) goto fail;
    if (lite_exec(db, sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL",
                  err, errlen) != 0)
        goto fail;
    if (lite_exec(db, "PRAGMA foreign_keys = ON", err, errlen) != 0) goto fail;
    free(path);
    return db;
fail:
    free(path);
    db_close(db);
    return NULL;
}

db_t *db_open(const char *where, bool sync_normal, const db_sql_t *stmts, int n, char *err,
              size_t errlen) {
    if (!where || !*where) {
        sl_err(err, errlen, "no data directory or database URL given");
        return NULL;
    }
    db_t *db = calloc(1, sizeof *db);
    if (!db || !(db->cache = calloc(n > 0 ? (size_t)n : 1, sizeof *db->cache))) {
        free(db);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    db->table = stmts;
    db->ntable = n;
    if (db_is_url(where)) {
        db->kind = DB_PG;
        return pg_open(db, where, err, errlen);
    }
    db->kind = DB_SQLITE;
    return lite_open(db, where, sync_normal, err, errlen);
}

static void stmt_free(db_stmt_t *s) {
    if (!s) return;
    if (s->ss) sqlite3_finalize(s->ss);
    for (int i = 0; s->vals && i < s->nparams; i++)
        free(s->vals[i]);
    free(s->vals);
    free(s->types);
    PQclear(s->res);
    free(s->sql);
    free(s);
}

void db_close(db_t *db) {
    if (!db) return;
    for (int i = 0; db->cache && i < db->ntable; i++)
        stmt_free(db->cache[i]);
    free(db->cache);
    if (db->lite) sqlite3_close(db->lite);
    if (db->pg) PQfinish(db->pg);
    free(db);
}

/* ---- statements ---- */

static db_stmt_t *stmt_new(db_t *db, int id, const char *sql, char *err, size_t errlen) {
    db_stmt_t *s = calloc(1, sizeof *s);
    if (!s || !(s->sql = sql_translate(db->kind, sql, false, &s->nparams))) {
        free(s);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    s->db = db;
    s->id = id;
    if (db->kind == DB_SQLITE) {
        unsigned flags = id >= 0 ? SQLITE_PREPARE_PERSISTENT : 0;
        if (sqlite3_prepare_v3(db->lite, s->sql, -1, flags, &s->ss, NULL) != SQLITE_OK) {
            sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(db->lite));
            stmt_free(s);
            return NULL;
        }
    } else if (s->nparams > 0) {
        s->vals = calloc((size_t)s->nparams, sizeof *s->vals);
        s->types = calloc((size_t)s->nparams, sizeof *s->types);
        if (!s->vals || !s->types) {
            sl_err(err, errlen, "out of memory");
            stmt_free(s);
            return NULL;
        }
    }
    return s;
}

/* Back to "bound nothing, not run". */
static void stmt_reset(db_stmt_t *s) {
    if (s->ss) {
        sqlite3_reset(s->ss);
        sqlite3_clear_bindings(s->ss);
        return;
    }
    for (int i = 0; s->vals && i < s->nparams; i++) {
        free(s->vals[i]);
        s->vals[i] = NULL;
        if (s->gen != s->db->gen) s->types[i] = 0;
    }
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    s->nrows = 0;
    s->ran = false;
}

db_stmt_t *db_stmt(db_t *db, int id, char *err, size_t errlen) {
    if (id < 0 || id >= db->ntable) {
        sl_err(err, errlen, "no statement %d", id);
        return NULL;
    }
    db_stmt_t *s = db->cache[id];
    if (!s) {
        const db_sql_t *q = &db->table[id];
        s = stmt_new(db, id, db->kind == DB_PG && q->pg ? q->pg : q->sql, err, errlen);
        if (!s) return NULL;
        db->cache[id] = s;
    }
    stmt_reset(s);
    return s;
}

db_stmt_t *db_prepare(db_t *db, const char *sql, char *err, size_t errlen) {
    db_stmt_t *s = stmt_new(db, -1, sql, err, errlen);
    if (s) stmt_reset(s);
    return s;
}

void db_release(db_stmt_t *s) {
    if (!s) return;
    if (s->id >= 0)
        stmt_reset(s);
    else
        stmt_free(s);
}

/* PostgreSQL: keeps `v` (owned) for parameter i of type `type`. A statement
 * prepared on the server keeps its first types. */
static void pg_bind(db_stmt_t *s, int i, char *v, unsigned type) {
    if (i < 1 || i > s->nparams) {
        free(v);
        return;
    }
    free(s->vals[i - 1]);
    s->vals[i - 1] = v;
    if (s->gen != s->db->gen) s->types[i - 1] = type;
}

void db_bind_int64(db_stmt_t *s, int i, int64_t v) {
    if (s->ss) {
        sqlite3_bind_int64(s->ss, i, v);
        return;
    }
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    pg_bind(s, i, sl_strdup(buf), PG_INT8OID);
}

void db_bind_textn(db_stmt_t *s, int i, const char *v, size_t len) {
    if (s->ss) {
        sqlite3_bind_text64(s->ss, i, v, len, SQLITE_TRANSIENT, SQLITE_UTF8);
        return;
    }
    pg_bind(s, i, sl_strndup(v, len), PG_TEXTOID);
}

void db_bind_text(db_stmt_t *s, int i, const char *v) {
    db_bind_textn(s, i, v, strlen(v));
}

void db_bind_double(db_stmt_t *s, int i, double v) {
    if (s->ss) {
        sqlite3_bind_double(s->ss, i, v);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    pg_bind(s, i, sl_strdup(buf), PG_FLOAT8OID);
}

void db_bind_null(db_stmt_t *s, int i) {
    if (s->ss) {
        sqlite3_bind_null(s->ss, i);
        return;
    }
    pg_bind(s, i, NULL, 0);
}

/* PostgreSQL: runs s (preparing it on the server first when it is a
 * table statement not yet prepared on this connection). */
static int pg_run(db_stmt_t *s) {
    db_t *db = s->db;
    for (int attempt = 0;; attempt++) {
        PGresult *res = NULL;
        const char *const *vals = (const char *const *)s->vals;
        if (s->id >= 0) {
            char name[24];
            snprintf(name, sizeof name, "silica_%d", s->id);
            if (s->gen != db->gen) {
                res = PQprepare(db->pg, name, s->sql, s->nparams, s->types);
                if (res && pg_result_ok(res)) {
                    PQclear(res);
                    s->gen = db->gen;
                    res = PQexecPrepared(db->pg, name, s->nparams, vals, NULL, NULL, 0);
                }
            } else {
                res = PQexecPrepared(db->pg, name, s->nparams, vals, NULL, NULL, 0);
            }
        } else {
            res = PQexecParams(db->pg, s->sql, s->nparams, s->types, vals, NULL, NULL, 0);
        }
        if (res && pg_result_ok(res)) {
            s->res = res;
            s->nrows = PQntuples(res);
            const char *t = PQcmdTuples(res);
            db->changes = t && *t ? strtoll(t, NULL, 10) : 0;
            db->down = false;
            return 0;
        }
        pg_msg(db, "postgresql: ", res);
        PQclear(res);
        if (!pg_retry(db, attempt)) return -1;
    }
}

int db_step(db_stmt_t *s) {
    if (s->ss) {
        int rc = sqlite3_step(s->ss);
        if (rc == SQLITE_ROW) return DB_ROW;
        if (rc == SQLITE_DONE) {
            s->db->changes = sqlite3_changes64(s->db->lite);
            return DB_DONE;
        }
        return -1;
    }
    if (!s->ran) {
        s->ran = true;
        if (pg_run(s) != 0) {
            s->nrows = 0;
            s->row = 0;
            return -1;
        }
    }
    if (s->row + 1 < s->nrows) {
        s->row++;
        return DB_ROW;
    }
    s->row = s->nrows;
    return DB_DONE;
}

int db_step_done(db_stmt_t *s, char *err, size_t errlen) {
    int rc;
    while ((rc = db_step(s)) == DB_ROW) {
    }
    if (rc != DB_DONE) {
        sl_err(err, errlen, "%s%s", s->ss ? "sqlite: " : "", db_errmsg(s->db));
        return -1;
    }
    return 0;
}

int64_t db_changes(db_t *db) {
    return db->changes;
}

int64_t db_col_int64(db_stmt_t *s, int i) {
    if (s->ss) return sqlite3_column_int64(s->ss, i);
    if (!s->res || s->row < 0 || s->row >= s->nrows || PQgetisnull(s->res, s->row, i)) return 0;
    return strtoll(PQgetvalue(s->res, s->row, i), NULL, 10);
}

const char *db_col_text(db_stmt_t *s, int i) {
    if (s->ss) {
        const unsigned char *t = sqlite3_column_text(s->ss, i);
        return t ? (const char *)t : "";
    }
    if (!s->res || s->row < 0 || s->row >= s->nrows) return "";
    return PQgetvalue(s->res, s->row, i); /* "" for NULL */
}

double db_col_double(db_stmt_t *s, int i) {
    if (s->ss) return sqlite3_column_double(s->ss, i);
    if (!s->res || s->row < 0 || s->row >= s->nrows || PQgetisnull(s->res, s->row, i)) return 0;
    return strtod(PQgetvalue(s->res, s->row, i), NULL);
}

size_t db_col_bytes(db_stmt_t *s, int i) {
    if (s->ss) return (size_t)sqlite3_column_bytes(s->ss, i);
    if (!s->res || s->row < 0 || s->row >= s->nrows) return 0;
    return (size_t)PQgetlength(s->res, s->row, i);
}

/* ---- transactions ---- */

int db_begin(db_t *db, char *err, size_t errlen) {
    if (db->kind == DB_SQLITE) return lite_exec(db, "BEGIN IMMEDIATE", err, errlen);
    if (pg_exec(db, "BEGIN", err, errlen) != 0) return -1;
    db->in_tx = true;
    return 0;
}

int db_commit(db_t *db, char *err, size_t errlen) {
    if (db->kind == DB_SQLITE) return lite_exec(db, "COMMIT", err, errlen);
    int rc = pg_exec(db, "COMMIT", err, errlen);
    db->in_tx = false; /* a failed COMMIT ends the transaction too */
    return rc;
}

bool db_in_tx(db_t *db) {
    if (db->kind == DB_SQLITE) return !sqlite3_get_autocommit(db->lite);
    return db->in_tx;
}

void db_rollback(db_t *db) {
    if (db->kind == DB_SQLITE) {
        if (!sqlite3_get_autocommit(db->lite)) lite_exec(db, "ROLLBACK", NULL, 0);
        return;
    }
    if (db->in_tx && PQstatus(db->pg) == CONNECTION_OK) {
        PGresult *res = PQexec(db->pg, "ROLLBACK");
        PQclear(res);
    }
    db->in_tx = false;
}

/* ---- migrations ---- */

static int version_get(db_t *db, const char *sql, int *v) {
    db_stmt_t *s = db_prepare(db, sql, NULL, 0);
    if (!s) return -1;
    int rc = db_step(s) == DB_ROW ? 0 : -1;
    if (rc == 0) *v = (int)db_col_int64(s, 0);
    db_release(s);
    return rc;
}

static int exec_schema(db_t *db, const char *sql, char *err, size_t errlen) {
    char *t = sql_translate(db->kind, sql, true, NULL);
    if (!t) return sl_err(err, errlen, "out of memory");
    int rc = db->kind == DB_PG ? pg_exec(db, t, err, errlen) : lite_exec(db, t, err, errlen);
    free(t);
    return rc;
}

int db_migrate(db_t *db, const char *const *migrations, int n, char *err, size_t errlen) {
    const bool pg = db->kind == DB_PG;
    for (;;) {
        if (db_begin(db, err, errlen) != 0) return -1;
        /* Under the lock (PostgreSQL) or the write transaction (SQLite),
         * the version read here stays true until COMMIT. */
        char lock[64];
        snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%" PRId64 ")", PG_MIGRATE_LOCK);
        if (pg && (exec_schema(db, lock, err, errlen) != 0 ||
                   exec_schema(db,
                               "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER "
                               "NOT NULL)",
                               err, errlen) != 0))
            goto fail;
        int v = 0;
        if (version_get(db,
                        pg ? "SELECT coalesce(max(version), 0) FROM schema_version"
                           : "PRAGMA user_version",
                        &v) != 0) {
            sl_err(err, errlen, "cannot read the schema version: %s", db_errmsg(db));
            goto fail;
        }
        if (v > n) {
            sl_err(err, errlen,
                   "database schema version %d is newer than this silica (%d); upgrade silica", v,
                   n);
            goto fail;
        }
        if (v == n) return db_commit(db, err, errlen);
        char bump[96];
        if (pg)
            snprintf(bump, sizeof bump,
                     "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)", v + 1);
        else
            snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (exec_schema(db, migrations[v], err, errlen) != 0 ||
            exec_schema(db, bump, err, errlen) != 0 || db_commit(db, err, errlen) != 0)
            goto fail;
    }
fail:
    db_rollback(db);
    return -1;
}
