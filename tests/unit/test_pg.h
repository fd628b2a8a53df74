/*
 * test_pg.h — a fresh store for the platform tests that run twice, on
 * SQLite and on the throwaway PostgreSQL server of tests/pg.sh
 * (SILICA_TEST_PG): a new temporary directory, or a new database there.
 */
#ifndef SILICA_TEST_PG_H
#define SILICA_TEST_PG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "platform/db.h"

/* Writes a new store to out (cap bytes): mkdtemp of tmpl when pg_base is
 * NULL, else the URL of a new database PREFIX<pid>_<n> on pg_base's server
 * (with pg_base's query string). A fixture: aborts on failure. */
static void test_fresh_store(const char *pg_base, const char *tmpl, const char *prefix, char *out, size_t cap) {
    static int seq;
    if (!pg_base) {
        snprintf(out, cap, "%s", tmpl);
        if (!mkdtemp(out)) abort();
        return;
    }
    char name[64], sql[128], err[SL_ERR_MAX];
    snprintf(name, sizeof name, "%s%d_%d", prefix, (int)getpid(), ++seq);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    db_t *admin = db_open(pg_base, false, NULL, 0, err, sizeof err);
    db_stmt_t *s = admin ? db_prepare(admin, sql, err, sizeof err) : NULL;
    if (!s || db_step_done(s, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    db_release(s);
    db_close(admin);
    const char *q = strchr(pg_base, '?');
    snprintf(out, cap, "postgresql:///%s%s", name, q ? q : "");
}

#endif
