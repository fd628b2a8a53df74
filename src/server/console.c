/*
 * console.c — looking up the web console's embedded files (console.h):
 * which URL paths are the console's, the file for a name, its content
 * type, and If-None-Match against its ETag. The bytes and ETags themselves
 * are generated at build time (scripts/embed.c).
 */
#include "server/console.h"

#include <string.h>

const char *console_path_file(const char *path) {
    if (!strcmp(path, "/") || !strcmp(path, "/console")) return "index.html";
    if (!strncmp(path, "/console/", 9)) return path + 9;
    return NULL;
}

const console_file_t *console_find(const char *name) {
    /* exact comparison against every name: a handful of files */
    for (size_t i = 0; i < console_n_files; i++)
        if (!strcmp(console_files[i].name, name)) return &console_files[i];
    return NULL;
}

const char *console_content_type(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

bool console_etag_match(const char *inm, const char *etag) {
    if (!inm) return false;
    const size_t elen = strlen(etag);
    const char *p = inm;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) return false;
        const char *end = p;
        /* one entry: "*", or an optional W/ and a quoted tag (may contain ',') */
        if (*p == '*') {
            end = p + 1;
            if (*end == '\0' || *end == ',' || *end == ' ' || *end == '\t') return true;
        } else {
            if (p[0] == 'W' && p[1] == '/') p += 2;
            if (*p == '"') {
                const char *q = strchr(p + 1, '"');
                if (!q) return false;
                end = q + 1;
                if ((size_t)(end - p) == elen && !memcmp(p, etag, elen)) return true;
            }
        }
        end += strcspn(end, ","); /* skip to the next entry (and past junk) */
        p = end;
    }
}
