/*
 * console.h — the web console's files, embedded in the binary: the files of web/ are
 * turned into a table at build time (scripts/embed.c writes
 * BUILD/gen/console_files.c), so `silica serve` needs no file on disk and
 * no request can name one. A URL selects a file only by its exact name in
 * the table; a path with '/' or ".." in it matches nothing.
 *
 * Pure functions over the table (no HTTP): unit-tested in test_console.c;
 * server.c answers GET / HEAD with them.
 */
#ifndef SILICA_SERVER_CONSOLE_H
#define SILICA_SERVER_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct console_file {
    const char *name;          /* base name, e.g. "console.js" */
    const unsigned char *data; /* len bytes (then a NUL, not counted) */
    size_t len;
    const char *etag; /* strong ETag with its quotes: "\"<len hex>-<fnv1a64 hex>\"" */
} console_file_t;

/* The generated table, sorted by name. */
extern const console_file_t console_files[];
extern const size_t console_n_files;

/* Headers every console response carries (besides Content-Type / ETag). */
#define CONSOLE_CSP "default-src 'self'; frame-ancestors 'none'"
#define CONSOLE_CACHE_CONTROL "no-cache" /* always revalidate: names carry no version */

/* The file a request path asks for (path already URL-decoded, trailing
 * slashes removed): "/" and "/console" -> "index.html", "/console/NAME" ->
 * NAME (whatever it is; console_find decides); NULL for any other path. */
const char *console_path_file(const char *path);

/* The file named exactly `name`, or NULL. */
const console_file_t *console_find(const char *name);

/* Content-Type from the name's extension; application/octet-stream when
 * unknown. Text types carry charset=utf-8. */
const char *console_content_type(const char *name);

/* Whether an If-None-Match header value (NULL: absent) matches etag: "*",
 * or a comma-separated list with etag in it, compared weakly (a W/ prefix
 * is ignored, RFC 9110 13.1.2). */
bool console_etag_match(const char *if_none_match, const char *etag);

#endif
