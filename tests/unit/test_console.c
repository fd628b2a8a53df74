/* deps: server base */
/*
 * test_console.c — the web console's embedded files (server/console.h):
 * the table the build generated from web/ (sorted, plain names, each
 * file's bytes NUL-terminated and its ETag the length and FNV-1a 64 of
 * those bytes, recomputed here), which URL paths map to which names,
 * lookups that only an exact name satisfies (no path, no "..", no case
 * folding), content types, and If-None-Match matching.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "server/console.h"
#include "test.h"

static void test_table(void) {
    CHECK(console_n_files >= 4);
    for (size_t i = 0; i < console_n_files; i++) {
        const console_file_t *f = &console_files[i];
        if (i) CHECK_MSG(strcmp(console_files[i - 1].name, f->name) < 0, "%s", f->name);
        CHECK(
            f->name[0] && f->name[0] != '.' &&
            strspn(f->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                strlen(f->name));
        CHECK(f->len > 0 && f->data[f->len] == 0);
        uint64_t h = 1469598103934665603ull;
        for (size_t k = 0; k < f->len; k++)
            h = (h ^ f->data[k]) * 1099511628211ull;
        char want[64];
        snprintf(want, sizeof want, "\"%zx-%016" PRIx64 "\"", f->len, h);
        CHECK_MSG(!strcmp(f->etag, want), "%s: %s vs %s", f->name, f->etag, want);
        CHECK(console_find(f->name) == f);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(console_files[j].etag, f->etag) != 0);
    }
    const console_file_t *index = console_find("index.html");
    CHECK(index && index->len > 100 && strstr((const char *)index->data, "/console/console.js"));
    CHECK(console_find("console.js") && console_find("console.css"));
}

static void test_lookup_is_exact(void) {
    static const char *const misses[] = {
        "",
        "/",
        "index",
        "index.htm",
        "index.html ",
        " index.html",
        "INDEX.HTML",
        "Index.html",
        "./index.html",
        "../index.html",
        "..",
        ".",
        "/index.html",
        "index.html/",
        "web/index.html",
        "console.js/..",
        "..%2findex.html",
        "index.html\\",
        "%69ndex.html",
        "silica.db",
        "../silica.db",
        "../../etc/passwd",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(misses); i++)
        CHECK_MSG(console_find(misses[i]) == NULL, "'%s'", misses[i]);
}

static void test_paths(void) {
    CHECK(!strcmp(console_path_file("/"), "index.html"));
    CHECK(!strcmp(console_path_file("/console"), "index.html"));
    CHECK(!strcmp(console_path_file("/console/console.js"), "console.js"));
    CHECK(
        !strcmp(console_path_file("/console/../silica.db"), "../silica.db")); /* found by nobody */
    CHECK(console_find(console_path_file("/console/../silica.db")) == NULL);
    static const char *const others[] = {
        "", "/v1/models", "/consolex", "/console.js", "/index.html", "//", "/Console", "/health"};
    for (size_t i = 0; i < SL_ARRAY_LEN(others); i++)
        CHECK_MSG(console_path_file(others[i]) == NULL, "'%s'", others[i]);
}

static void test_content_types(void) {
    CHECK(!strcmp(console_content_type("index.html"), "text/html; charset=utf-8"));
    CHECK(!strcmp(console_content_type("console.js"), "text/javascript; charset=utf-8"));
    CHECK(!strcmp(console_content_type("console.css"), "text/css; charset=utf-8"));
    CHECK(!strcmp(console_content_type("favicon.svg"), "image/svg+xml"));
    CHECK(!strcmp(console_content_type("a.png"), "image/png"));
    CHECK(!strcmp(console_content_type("x.html.bak"), "application/octet-stream"));
    CHECK(!strcmp(console_content_type("noext"), "application/octet-stream"));
    CHECK(!strcmp(console_content_type("js"), "application/octet-stream"));
    for (size_t i = 0; i < console_n_files; i++) /* every embedded file has a real type */
        CHECK_MSG(strcmp(console_content_type(console_files[i].name), "application/octet-stream") !=
                      0,
                  "%s", console_files[i].name);
}

static void test_if_none_match(void) {
    const char *tag = "\"1a-00ff\"";
    CHECK(console_etag_match("\"1a-00ff\"", tag));
    CHECK(console_etag_match("W/\"1a-00ff\"", tag)); /* weak comparison */
    CHECK(console_etag_match("\"x\", \"1a-00ff\"", tag));
    CHECK(console_etag_match("\"x\",W/\"1a-00ff\" , \"y\"", tag));
    CHECK(console_etag_match("*", tag));
    CHECK(console_etag_match(" * ", tag));
    CHECK(console_etag_match("\"a,b\", \"1a-00ff\"", tag)); /* a comma inside a tag */
    CHECK(!console_etag_match(NULL, tag));
    CHECK(!console_etag_match("", tag));
    CHECK(!console_etag_match("\"1a-00f\"", tag));
    CHECK(!console_etag_match("\"1a-00ff", tag)); /* unterminated */
    CHECK(!console_etag_match("1a-00ff", tag));   /* unquoted */
    CHECK(!console_etag_match("\"1a-00ffx\"", tag));
    CHECK(!console_etag_match("w/\"1a-00ff\"", tag)); /* W/ is case-sensitive */
    CHECK(!console_etag_match("*x", tag));
    CHECK(!console_etag_match(",,, ,", tag));
    CHECK(!console_etag_match("\"a,b", tag));
}

int main(void) {
    RUN(test_table);
    RUN(test_lookup_is_exact);
    RUN(test_paths);
    RUN(test_content_types);
    RUN(test_if_none_match);
    return test_summary();
}
