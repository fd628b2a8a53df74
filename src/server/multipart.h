/*
 * multipart.h — a multipart/form-data body (RFC 7578 over RFC 2046), as
 * POST /v1/files sends it, split into its parts without copying.
 *
 * The body is untrusted: the boundary is 1..70 characters, every part
 * starts with a delimiter line and has a header block (at most
 * MP_MAX_HEADER bytes) with a Content-Disposition: form-data naming it;
 * the body ends with the close delimiter ("--" after the boundary).
 * Anything else is an error with a message for a 400.
 */
#ifndef SILICA_MULTIPART_H
#define SILICA_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#define MP_MAX_PARTS 16
#define MP_MAX_HEADER 8192 /* bytes of one part's header block */
#define MP_NAME_MAX 128    /* bytes of a field name incl. NUL */
#define MP_FILENAME_MAX 256

typedef struct mp_part {
    char name[MP_NAME_MAX];         /* the form field */
    char filename[MP_FILENAME_MAX]; /* "" when the part is not a file */
    bool has_filename;
    const char *data; /* points into the body */
    size_t len;
} mp_part_t;

/* The boundary parameter of a Content-Type header value (which must be
 * multipart/form-data) into out (cap >= 71). 0, or -1 with a message. */
int mp_boundary(const char *content_type, char *out, size_t cap, char *err, size_t errlen);

/* Splits body (len bytes) at `boundary` into at most max parts (<=
 * MP_MAX_PARTS). 0 and *n, or -1 with a message. */
int mp_parse(const char *body, size_t len, const char *boundary, mp_part_t *parts, int max, int *n,
             char *err, size_t errlen);

/* The first part named `name`, or NULL. */
const mp_part_t *mp_find(const mp_part_t *parts, int n, const char *name);

#endif
