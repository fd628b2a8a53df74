/* deps: server base */
/*
 * test_multipart.c — the multipart/form-data splitter of POST /v1/files:
 * bodies built here byte by byte (the reference is the construction
 * itself: each part's bytes must come back exactly), then hostile ones
 * (truncated, oversized headers, too many parts, bad boundaries, quotes
 * left open) which must all be errors with a message, and random
 * mutations of a valid body, which must never read outside it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/multipart.h"
#include "test.h"

static int parse(const char *body, size_t len, const char *boundary, mp_part_t *parts, int *n, char *err) {
    return mp_parse(body, len, boundary, parts, MP_MAX_PARTS, n, err, 300);
}

static void test_boundary(void) {
    char b[80], err[300];
    CHECK(mp_boundary("multipart/form-data; boundary=abc123", b, sizeof b, err, sizeof err) == 0 && !strcmp(b, "abc123"));
    CHECK(mp_boundary("Multipart/Form-Data;boundary=\"a b:c\"", b, sizeof b, err, sizeof err) == 0 && !strcmp(b, "a b:c"));
    CHECK(mp_boundary("multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundaryX", b, sizeof b, err,
                      sizeof err) == 0 && !strcmp(b, "----WebKitFormBoundaryX"));
    char long71[128] = "multipart/form-data; boundary=";
    for (int i = 0; i < 71; i++) strcat(long71, "x");
    CHECK(mp_boundary(long71, b, sizeof b, err, sizeof err) != 0 && err[0]);
    CHECK(mp_boundary("multipart/form-data", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=\"abc", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=a\x01" "b", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("application/json", b, sizeof b, err, sizeof err) != 0 && strstr(err, "multipart"));
    CHECK(mp_boundary("multipart/form-dataX; boundary=a", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary(NULL, b, sizeof b, err, sizeof err) != 0);
}

/* A body of n parts: part i named names[i] with data[i] (lens[i] bytes),
 * the first a file named "in.jsonl". */
static size_t build(char *out, const char *boundary, int n, const char *const *names, const char *const *data,
                    const size_t *lens, const char *preamble) {
    size_t o = 0;
    if (preamble) o += (size_t)sprintf(out + o, "%s\r\n", preamble);
    for (int i = 0; i < n; i++) {
        o += (size_t)sprintf(out + o, "--%s\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n", boundary, names[i],
                             i == 0 ? "; filename=\"in.jsonl\"" : "");
        if (i == 0) o += (size_t)sprintf(out + o, "Content-Type: application/octet-stream\r\n");
        o += (size_t)sprintf(out + o, "\r\n");
        memcpy(out + o, data[i], lens[i]);
        o += lens[i];
        o += (size_t)sprintf(out + o, "\r\n");
    }
    o += (size_t)sprintf(out + o, "--%s--\r\nepilogue", boundary);
    return o;
}

static void test_valid(void) {
    static char body[1 << 16];
    const char *names[] = {"file", "purpose"};
    /* data with CRLFs, a line starting "--", a shorter boundary prefix and a NUL */
    static const char file[] = "{\"a\":1}\r\n--\r\n--XYZ\r\n\0bin\r\n";
    const char *data[] = {file, "batch"};
    const size_t lens[] = {sizeof file - 1, 5};
    size_t len = build(body, "XYZW", 2, names, data, lens, "this is a preamble");
    mp_part_t parts[MP_MAX_PARTS];
    int n = 0;
    char err[300] = "";
    CHECK_MSG(parse(body, len, "XYZW", parts, &n, err) == 0, "%s", err);
    CHECK(n == 2);
    const mp_part_t *f = mp_find(parts, n, "file"), *p = mp_find(parts, n, "purpose");
    CHECK(f && f->has_filename && !strcmp(f->filename, "in.jsonl"));
    CHECK(f && f->len == lens[0] && !memcmp(f->data, file, lens[0]));
    CHECK(p && !p->has_filename && p->len == 5 && !memcmp(p->data, "batch", 5));
    CHECK(mp_find(parts, n, "other") == NULL);
    /* no preamble; an empty part; quoted names with escapes */
    len = (size_t)sprintf(body, "--b\r\nContent-Disposition: form-data; name=\"a\\\"q\"; filename=\"x;y.jsonl\"\r\n\r\n"
                                "\r\n--b\r\ncontent-disposition:form-data;name=purpose\r\n\r\nbatch\r\n--b--");
    CHECK_MSG(parse(body, len, "b", parts, &n, err) == 0, "%s", err);
    CHECK(n == 2 && !strcmp(parts[0].name, "a\"q") && !strcmp(parts[0].filename, "x;y.jsonl") && parts[0].len == 0);
    CHECK(n == 2 && !strcmp(parts[1].name, "purpose") && parts[1].len == 5);
    /* zero parts */
    CHECK(parse("--b--", 5, "b", parts, &n, err) == 0 && n == 0);
}

static void expect_error(const char *what, const char *body, size_t len, const char *boundary) {
    mp_part_t parts[MP_MAX_PARTS];
    int n = 0;
    char err[300] = "";
    int rc = parse(body, len, boundary, parts, &n, err);
    CHECK_MSG(rc != 0 && err[0], "%s: accepted", what);
}

static void test_hostile(void) {
    static const char D[] = "Content-Disposition: form-data; name=\"file\"";
    char b[40000];
    expect_error("empty", "", 0, "b");
    expect_error("no delimiter", "garbage", 7, "b");
    sprintf(b, "--b\r\n%s\r\n\r\nabc", D);
    expect_error("truncated data", b, strlen(b), "b");
    sprintf(b, "--b\r\n%s\r\n", D);
    expect_error("truncated headers", b, strlen(b), "b");
    sprintf(b, "--b\r\n\r\nabc\r\n--b--");
    expect_error("no headers", b, strlen(b), "b");
    sprintf(b, "--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--");
    expect_error("no disposition", b, strlen(b), "b");
    sprintf(b, "--b\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nabc\r\n--b--");
    expect_error("not form-data", b, strlen(b), "b");
    sprintf(b, "--b\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nabc\r\n--b--");
    expect_error("no name", b, strlen(b), "b");
    sprintf(b, "--b\r\nContent-Disposition: form-data; name=\"f\r\n\r\nabc\r\n--b--");
    expect_error("open quote", b, strlen(b), "b");
    sprintf(b, "--b\r\n%s\r\n%s\r\n\r\nabc\r\n--b--", D, D);
    expect_error("two dispositions", b, strlen(b), "b");
    sprintf(b, "--bX\r\n%s\r\n\r\nabc\r\n--b--", D);
    expect_error("junk after boundary", b, strlen(b), "b");
    sprintf(b, "--b\r\nbroken header line\r\n%s\r\n\r\nabc\r\n--b--", D);
    expect_error("header without colon", b, strlen(b), "b");
    sprintf(b, "--b\r\n%s\rX\r\n\r\nabc\r\n--b--", D);
    expect_error("bare CR in headers", b, strlen(b), "b");
    /* a header block over MP_MAX_HEADER */
    size_t o = (size_t)sprintf(b, "--b\r\n%s\r\nX-Pad: ", D);
    memset(b + o, 'p', 9000);
    o += 9000;
    o += (size_t)sprintf(b + o, "\r\n\r\nabc\r\n--b--");
    expect_error("huge headers", b, o, "b");
    /* more parts than allowed */
    o = 0;
    for (int i = 0; i < MP_MAX_PARTS + 1; i++) o += (size_t)sprintf(b + o, "--b\r\n%s\r\n\r\nx\r\n", D);
    o += (size_t)sprintf(b + o, "--b--");
    expect_error("too many parts", b, o, "b");
    /* a name longer than MP_NAME_MAX */
    o = (size_t)sprintf(b, "--b\r\nContent-Disposition: form-data; name=\"");
    memset(b + o, 'n', MP_NAME_MAX + 10);
    o += MP_NAME_MAX + 10;
    o += (size_t)sprintf(b + o, "\"\r\n\r\nx\r\n--b--");
    expect_error("long name", b, o, "b");
}

/* Random byte flips, cuts and insertions of a valid body: parsed or
 * refused, every part inside the body (ASan checks the reads). */
static void test_mutations(void) {
    static char body[4096], mut[4200];
    const char *names[] = {"file", "purpose"};
    const char *data[] = {"{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n", "batch"};
    const size_t lens[] = {strlen(data[0]), 5};
    size_t len = build(body, "bnd", 2, names, data, lens, NULL);
    uint64_t x = 88172645463325252ull;
    int parsed = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(mut, body, len);
        size_t ml = len;
        int k = 1 + (int)(it % 4);
        for (int j = 0; j < k; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % ml);
            switch ((x >> 32) % 3) {
            case 0: mut[at] = (char)(x >> 40); break;
            case 1: ml = at; break;
            default:
                if (ml + 1 < sizeof mut) {
                    memmove(mut + at + 1, mut + at, ml - at);
                    mut[at] = "\r\n-\"b;="[(x >> 48) % 7];
                    ml++;
                }
            }
            if (ml == 0) break;
        }
        char *heap = malloc(ml ? ml : 1); /* exact size: any overread is caught */
        memcpy(heap, mut, ml);
        mp_part_t parts[MP_MAX_PARTS];
        int n = 0;
        char err[300] = "";
        if (parse(heap, ml, "bnd", parts, &n, err) == 0) {
            parsed++;
            for (int i = 0; i < n; i++)
                CHECK(parts[i].data >= heap && parts[i].data + parts[i].len <= heap + ml && parts[i].name[0]);
        } else {
            CHECK(err[0]);
        }
        free(heap);
    }
    CHECK(parsed > 0);
}

int main(void) {
    RUN(test_boundary);
    RUN(test_valid);
    RUN(test_hostile);
    RUN(test_mutations);
    return test_summary();
}
