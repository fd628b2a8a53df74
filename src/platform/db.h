/*
 * db.h — the platform's storage interface: one connection to SQLite (a
 * file in a data directory) or to PostgreSQL (a postgresql:// URL), with
 * statements prepared by id, bound int64 / text / null parameters, rows
 * stepped one at a time and transactions.
 *
 * SQL is written once, in the dialect both engines share, with numbered
 * placeholders ?1, ?2, ... . Where the engines differ, the difference is
 * handled here and nowhere else (db.c): placeholders become $1 for
 * PostgreSQL; in migrations INTEGER becomes BIGINT and INTEGER PRIMARY KEY
 * an identity column; DAY_UTC(ms) becomes each engine's UTC date text;
 * BEGIN is BEGIN IMMEDIATE on SQLite (one writer at a time) and BEGIN on
 * PostgreSQL, where statements that must serialize lock rows instead
 * (`.pg` variants in the statement table, sql.c, add FOR UPDATE).
 *
 * A db_t is used by one thread at a time (the platform's mutex). Not for
 * use outside src/platform/.
 */
#ifndef SILICA_PLAT_DB_H
#define SILICA_PLAT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;
typedef struct db_stmt db_stmt_t;

typedef enum db_kind { DB_SQLITE, DB_PG } db_kind_t;

/* db_step results besides -1 (error, see db_errmsg). */
#define DB_DONE 0
#define DB_ROW 1

/* One statement of the platform in both dialects: `sql` for both, or for
 * SQLite alone when `pg` is set. Both use ?N placeholders. */
typedef struct db_sql {
    const char *sql;
    const char *pg;
} db_sql_t;

/* True when `where` names a PostgreSQL database (postgres:// or
 * postgresql://) rather than a data directory. */
bool db_is_url(const char *where);

/* Opens DIR/silica.db (creating DIR and the file; WAL; synchronous FULL or
 * NORMAL) or connects to the PostgreSQL URL. `stmts` (n of them) is the
 * statement table db_stmt() prepares from; it must outlive the db. NULL
 * and a message on failure. */
db_t *db_open(const char *where, bool sync_normal, const db_sql_t *stmts, int n, char *err,
              size_t errlen);
void db_close(db_t *db);
db_kind_t db_kind(const db_t *db);
/* The last error of the connection, for messages. Never NULL. */
const char *db_errmsg(db_t *db);
/* True when the last failure was the server being unreachable (the
 * connection is down and reconnecting failed): an outage, not a bug. */
bool db_unreachable(db_t *db);

/* Brings the schema to len(migrations) versions: migration i takes it from
 * version i to i + 1, each in a transaction with the version bump. Two
 * processes migrating at once are serialized (SQLite: BEGIN IMMEDIATE;
 * PostgreSQL: pg_advisory_xact_lock). A schema newer than this list is an
 * error naming both versions. */
int db_migrate(db_t *db, const char *const *migrations, int n, char *err, size_t errlen);

/* Transactions. db_rollback does nothing outside one. */
int db_begin(db_t *db, char *err, size_t errlen);
int db_commit(db_t *db, char *err, size_t errlen);
void db_rollback(db_t *db);
/* True between db_begin and its commit / rollback. */
bool db_in_tx(db_t *db);

/* The cached statement `id` of the table, ready to bind; NULL and a
 * message when it cannot be prepared. */
db_stmt_t *db_stmt(db_t *db, int id, char *err, size_t errlen);
/* A one-off statement from SQL text (?N placeholders, DAY_UTC allowed). */
db_stmt_t *db_prepare(db_t *db, const char *sql, char *err, size_t errlen);
/* Ends the use of s: a cached statement is reset, a one-off one freed.
 * Every db_stmt / db_prepare is matched by one db_release. NULL is fine. */
void db_release(db_stmt_t *s);

/* Parameters are numbered from 1; text is copied. */
void db_bind_int64(db_stmt_t *s, int i, int64_t v);
void db_bind_text(db_stmt_t *s, int i, const char *v);
void db_bind_textn(db_stmt_t *s, int i, const char *v, size_t len);
void db_bind_null(db_stmt_t *s, int i);
void db_bind_double(db_stmt_t *s, int i, double v);

/* DB_ROW with a row to read, DB_DONE at the end, -1 on an error. The
 * first step runs the statement. */
int db_step(db_stmt_t *s);
/* Steps to the end; 0 or -1 with a message. */
int db_step_done(db_stmt_t *s, char *err, size_t errlen);
/* Rows changed by the last INSERT / UPDATE / DELETE run. */
int64_t db_changes(db_t *db);

/* Columns of the current row, numbered from 0. NULL reads as 0 or "". */
int64_t db_col_int64(db_stmt_t *s, int i);
const char *db_col_text(db_stmt_t *s, int i);
size_t db_col_bytes(db_stmt_t *s, int i);
double db_col_double(db_stmt_t *s, int i);

#endif
