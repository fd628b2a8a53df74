/*
 * multipart.c — splitting a multipart/form-data body (multipart.h).
 *
 * Shape (RFC 2046 5.1.1): [preamble CRLF] "--" boundary [spaces] CRLF
 * headers CRLF CRLF data CRLF "--" boundary ... CRLF "--" boundary "--"
 * [epilogue]. Parts point into the body; only the names are copied, into
 * fixed buffers, so a hostile body costs no allocation.
 */
#include "server/multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* RFC 2046 bchars, which a boundary is made of (space not last). */
static bool bchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

/* Reads a parameter value at *p (a token or a quoted string) into out.
 * Returns 0, or -1 when it does not fit or a quote is not closed. */
static int param_value(const char **p, const char *end, char *out, size_t cap) {
    const char *q = *p;
    size_t n = 0;
    if (q < end && *q == '"') {
        q++;
        for (;;) {
            if (q >= end) return -1;
            char c = *q++;
            if (c == '"') break;
            if (c == '\\' && q < end) c = *q++;
            if (n + 1 >= cap) return -1;
            out[n++] = c;
        }
    } else {
        while (q < end && *q != ';' && *q != ' ' && *q != '\t') {
            if (n + 1 >= cap) return -1;
            out[n++] = *q++;
        }
    }
    out[n] = '\0';
    *p = q;
    return 0;
}

/* Visits the parameters of a header value after its first ';': calls
 * fn(key, value) for each. -1 on a malformed or oversized one. */
typedef int (*param_fn)(void *ud, const char *key, const char *value);
static int params_each(const char *p, const char *end, param_fn fn, void *ud) {
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        char key[32], value[MP_FILENAME_MAX];
        size_t kn = 0;
        while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t') {
            if (kn + 1 >= sizeof key) return -1;
            key[kn++] = *p++;
        }
        key[kn] = '\0';
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end || *p != '=') return -1;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (param_value(&p, end, value, sizeof value) != 0) return -1;
        if (fn(ud, key, value) != 0) return -1;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p < end && *p != ';') return -1;
    }
    return 0;
}

typedef struct boundary_ud {
    char *out;
    size_t cap;
    bool found;
} boundary_ud_t;

static int on_ct_param(void *ud, const char *key, const char *value) {
    boundary_ud_t *b = ud;
    if (strcasecmp(key, "boundary") != 0) return 0;
    if (strlen(value) >= b->cap) return -1;
    strcpy(b->out, value);
    b->found = true;
    return 0;
}

int mp_boundary(const char *ct, char *out, size_t cap, char *err, size_t errlen) {
    static const char want[] = "multipart/form-data";
    if (!ct) return fail(err, errlen, "The request has no Content-Type; send the file as multipart/form-data.");
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0 ||
        (ct[sizeof want - 1] && ct[sizeof want - 1] != ';' && ct[sizeof want - 1] != ' '))
        return fail(err, errlen, "Content-Type is '%.80s'; send the file as multipart/form-data.", ct);
    const char *p = ct + sizeof want - 1;
    boundary_ud_t b = {out, cap, false};
    if (params_each(p, p + strlen(p), on_ct_param, &b) != 0 || !b.found)
        return fail(err, errlen, "Content-Type multipart/form-data needs a boundary parameter of 1 to 70 characters.");
    size_t n = strlen(out);
    if (n < 1 || n > 70 || out[n - 1] == ' ')
        return fail(err, errlen, "The multipart boundary must be 1 to 70 characters.");
    for (size_t i = 0; i < n; i++)
        if (!bchar((unsigned char)out[i]))
            return fail(err, errlen, "The multipart boundary has a character RFC 2046 does not allow.");
    return 0;
}

typedef struct disp_ud {
    mp_part_t *part;
    bool has_name;
} disp_ud_t;

static int on_disp_param(void *ud, const char *key, const char *value) {
    disp_ud_t *d = ud;
    if (!strcasecmp(key, "name")) {
        if (strlen(value) >= sizeof d->part->name) return -1;
        strcpy(d->part->name, value);
        d->has_name = true;
    } else if (!strcasecmp(key, "filename")) {
        snprintf(d->part->filename, sizeof d->part->filename, "%s", value);
        d->part->has_filename = true;
    } else if (!strcasecmp(key, "filename*") && !d->part->has_filename) {
        /* RFC 5987 extended value: the plain filename wins when both are sent */
        d->part->has_filename = true;
        snprintf(d->part->filename, sizeof d->part->filename, "upload");
    }
    return 0;
}

/* The header block [p, end) of one part: finds its Content-Disposition. */
static int part_headers(const char *p, const char *end, mp_part_t *part, int index, char *err, size_t errlen) {
    bool disp = false;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol) eol = end;
        else if (eol + 1 >= end || eol[1] != '\n')
            return fail(err, errlen, "Part %d of the form has a header line not ended by CRLF.", index + 1);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return fail(err, errlen, "Part %d of the form has a malformed header line.", index + 1);
        static const char cd[] = "content-disposition";
        if ((size_t)(colon - p) == sizeof cd - 1 && !strncasecmp(p, cd, sizeof cd - 1)) {
            if (disp) return fail(err, errlen, "Part %d of the form has two Content-Disposition headers.", index + 1);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            if ((size_t)(eol - v) < 9 || strncasecmp(v, "form-data", 9) != 0 ||
                (v + 9 < eol && v[9] != ';' && v[9] != ' '))
                return fail(err, errlen, "Part %d of the form is not Content-Disposition: form-data.", index + 1);
            disp_ud_t d = {part, false};
            if (params_each(v + 9, eol, on_disp_param, &d) != 0 || !d.has_name || !part->name[0])
                return fail(err, errlen,
                            "Part %d of the form has a malformed Content-Disposition (a name of 1 to %d bytes "
                            "is required).", index + 1, MP_NAME_MAX - 1);
            disp = true;
        }
        p = eol + 2;
    }
    if (!disp) return fail(err, errlen, "Part %d of the form has no Content-Disposition header.", index + 1);
    return 0;
}

int mp_parse(const char *body, size_t len, const char *boundary, mp_part_t *parts, int max, int *n, char *err,
             size_t errlen) {
    *n = 0;
    char dash[80]; /* CRLF "--" boundary */
    size_t bl = strlen(boundary);
    if (bl < 1 || bl > 70) return fail(err, errlen, "The multipart boundary must be 1 to 70 characters.");
    int dl = snprintf(dash, sizeof dash, "\r\n--%s", boundary);
    const char *end = body + len, *p;
    /* the first delimiter: at the start, or after a preamble */
    if (len >= (size_t)dl - 2 && !memcmp(body, dash + 2, (size_t)dl - 2)) {
        p = body + dl - 2;
    } else {
        const char *d = memmem(body, len, dash, (size_t)dl);
        if (!d) return fail(err, errlen, "The multipart body has no part delimited by its boundary.");
        p = d + dl;
    }
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0; /* the close delimiter; the epilogue is ignored */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return fail(err, errlen, "The multipart body is malformed after a boundary (expected CRLF or '--').");
        p += 2;
        if (*n >= max) return fail(err, errlen, "The form has more than %d parts.", max);
        mp_part_t *part = &parts[*n];
        memset(part, 0, sizeof *part);
        size_t window = (size_t)(end - p) < (size_t)MP_MAX_HEADER + 4 ? (size_t)(end - p) : (size_t)MP_MAX_HEADER + 4;
        const char *hend;
        if (window >= 2 && p[0] == '\r' && p[1] == '\n') hend = p; /* no headers at all */
        else {
            const char *h = memmem(p, window, "\r\n\r\n", 4);
            if (!h)
                return fail(err, errlen, "Part %d of the form has no end of headers within %d bytes.", *n + 1,
                            MP_MAX_HEADER);
            hend = h + 2;
        }
        if (part_headers(p, hend - (hend > p ? 2 : 0), part, *n, err, errlen) != 0) return -1;
        const char *data = hend + 2;
        const char *d = memmem(data, (size_t)(end - data), dash, (size_t)dl);
        if (!d) return fail(err, errlen, "Part %d of the form is not closed by the boundary (truncated body?).", *n + 1);
        part->data = data;
        part->len = (size_t)(d - data);
        (*n)++;
        p = d + dl;
    }
}

const mp_part_t *mp_find(const mp_part_t *parts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(parts[i].name, name)) return &parts[i];
    return NULL;
}
