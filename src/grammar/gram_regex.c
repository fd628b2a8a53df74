/*
 * gram_regex.c — regular expression -> GBNF expression text.
 *
 * Used for the `regex` constraint and for JSON-Schema `pattern` (then in
 * "JSON string" mode: the text lands inside a JSON string, so characters that
 * JSON would have to escape — '"', '\\' and controls — are removed from every
 * class and '.', and a literal one is an error; \s becomes a plain space).
 * PCRE2 first checks that the pattern compiles at all, so a syntax error gets
 * PCRE2's message; then the supported subset is translated (see grammar.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "grammar/gram_regex.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t i, n;
    bool json;
    sl_buf_t *out;
    char *err;
    size_t errlen;
    int depth;
} rx_t;

typedef struct {
    gram_cprange_t *r;
    size_t n, cap;
} rset_t;

static int rset_add(rset_t *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        gram_cprange_t *p = realloc(s->r, nc * sizeof *p);
        if (!p) return -1;
        s->r = p;
        s->cap = nc;
    }
    s->r[s->n++] = (gram_cprange_t){lo, hi};
    return 0;
}

static int cmp_r(const void *x, const void *y) {
    const gram_cprange_t *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Normalise (sort, merge), complement if negated, remove the JSON-forbidden
 * set in json mode, and print as a GBNF class. Empty -> error. */
static int rset_emit(rx_t *x, rset_t *s, bool negated) {
    qsort(s->r, s->n, sizeof *s->r, cmp_r);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (m && s->r[i].lo <= s->r[m - 1].hi + 1) {
            if (s->r[i].hi > s->r[m - 1].hi) s->r[m - 1].hi = s->r[i].hi;
        } else {
            s->r[m++] = s->r[i];
        }
    }
    s->n = m;
    rset_t t = {0};
    if (negated) {
        uint32_t next = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (s->r[i].lo > next && rset_add(&t, next, s->r[i].lo - 1) < 0) goto oom;
            next = s->r[i].hi + 1;
        }
        if (next <= 0x10FFFF && rset_add(&t, next, 0x10FFFF) < 0) goto oom;
    } else {
        for (size_t i = 0; i < s->n; i++)
            if (rset_add(&t, s->r[i].lo, s->r[i].hi) < 0) goto oom;
    }
    if (x->json) { /* subtract 0x00-0x1f, '"' (0x22), '\\' (0x5c) */
        rset_t u = {0};
        static const gram_cprange_t bad[] = {{0, 0x1f}, {0x22, 0x22}, {0x5c, 0x5c}};
        for (size_t i = 0; i < t.n; i++) {
            uint32_t lo = t.r[i].lo, hi = t.r[i].hi;
            for (size_t k = 0; k < 3 && lo <= hi; k++) {
                if (bad[k].hi < lo || bad[k].lo > hi) continue;
                if (bad[k].lo > lo && rset_add(&u, lo, bad[k].lo - 1) < 0) goto oom;
                lo = bad[k].hi + 1;
            }
            if (lo <= hi && rset_add(&u, lo, hi) < 0) goto oom;
        }
        free(t.r);
        t = u;
    }
    if (t.n == 0) {
        free(t.r);
        return sl_err(x->err, x->errlen, "regex: a character class matches nothing%s",
                      x->json ? " (after removing characters JSON must escape)" : "");
    }
    sl_buf_putc(x->out, '[');
    for (size_t i = 0; i < t.n; i++) {
        sl_buf_printf(x->out, "\\U%08X", t.r[i].lo);
        if (t.r[i].hi != t.r[i].lo) sl_buf_printf(x->out, "-\\U%08X", t.r[i].hi);
    }
    sl_buf_putc(x->out, ']');
    free(t.r);
    return 0;
oom:
    free(t.r);
    return sl_err(x->err, x->errlen, "regex: out of memory");
}

static int64_t rx_utf8(rx_t *x) {
    const unsigned char *u = (const unsigned char *)x->s;
    unsigned char c = u[x->i];
    int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0 || x->i + (size_t)n >= x->n + (n ? 0 : 1)) return -1;
    uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1Fu) : n == 2 ? (c & 0x0Fu) : (c & 0x07u);
    for (int k = 1; k <= n; k++) {
        if (x->i + (size_t)k >= x->n || (u[x->i + k] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (u[x->i + k] & 0x3Fu);
    }
    x->i += (size_t)n + 1;
    return cp;
}

/* Adds the ranges of a class escape (\d \w \s and negations) to s, or returns
 * 1 with *cp set when the escape is a single character. */
static int rx_escape(rx_t *x, rset_t *s, bool *neg_class, uint32_t *cp) {
    if (x->i >= x->n) return sl_err(x->err, x->errlen, "regex: trailing backslash");
    char c = x->s[x->i++];
    *neg_class = false;
    switch (c) {
    case 'D': *neg_class = true; /* fallthrough */
    case 'd': return rset_add(s, '0', '9') < 0 ? -1 : 0;
    case 'W': *neg_class = true; /* fallthrough */
    case 'w':
        return (rset_add(s, '0', '9') || rset_add(s, 'A', 'Z') || rset_add(s, 'a', 'z') ||
                rset_add(s, '_', '_'))
                   ? -1
                   : 0;
    case 'S': *neg_class = true; /* fallthrough */
    case 's':
        if (x->json && !*neg_class) return rset_add(s, ' ', ' ') < 0 ? -1 : 0;
        return (rset_add(s, ' ', ' ') || rset_add(s, '\t', '\r')) ? -1 : 0;
    case 'n': *cp = '\n'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case '0': *cp = 0; return 1;
    case 'x':
    case 'u': {
        int nd = c == 'x' ? 2 : 4;
        uint32_t v = 0;
        bool brace = x->i < x->n && x->s[x->i] == '{';
        if (brace) x->i++;
        int k = 0;
        for (; (brace || k < nd) && x->i < x->n; k++) {
            char h = x->s[x->i];
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) break;
            v = v * 16 + (uint32_t)d;
            x->i++;
            if (v > 0x10FFFF) return sl_err(x->err, x->errlen, "regex: escape out of range");
        }
        if (brace) {
            if (x->i >= x->n || x->s[x->i] != '}') return sl_err(x->err, x->errlen, "regex: bad \\x{...}");
            x->i++;
        } else if (k != nd) {
            return sl_err(x->err, x->errlen, "regex: bad hex escape");
        }
        *cp = v;
        return 1;
    }
    default:
        if ((c >= '1' && c <= '9') || c == 'k' || c == 'g')
            return sl_err(x->err, x->errlen, "regex: backreferences are not supported");
        if (c == 'b' || c == 'B' || c == 'A' || c == 'z' || c == 'Z' || c == 'G')
            return sl_err(x->err, x->errlen, "regex: assertion \\%c is not supported", c);
        if (c == 'p' || c == 'P')
            return sl_err(x->err, x->errlen, "regex: Unicode properties (\\%c) are not supported", c);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return sl_err(x->err, x->errlen, "regex: unknown escape \\%c", c);
        *cp = (unsigned char)c;
        return 1;
    }
}

static int emit_char(rx_t *x, uint32_t cp) {
    if (x->json && (cp < 0x20 || cp == '"' || cp == '\\'))
        return sl_err(x->err, x->errlen,
                      "pattern: character U+%04X would need JSON escaping; not supported", cp);
    return sl_buf_printf(x->out, "\"\\U%08X\"", cp);
}

static int rx_alt(rx_t *x);

static int rx_class(rx_t *x) {
    rset_t s = {0};
    bool neg = false;
    if (x->i < x->n && x->s[x->i] == '^') {
        neg = true;
        x->i++;
    }
    bool first = true;
    while (x->i < x->n && (x->s[x->i] != ']' || first)) {
        first = false;
        uint32_t lo;
        if (x->s[x->i] == '[' && x->i + 1 < x->n && x->s[x->i + 1] == ':') {
            free(s.r);
            return sl_err(x->err, x->errlen, "regex: POSIX classes [:...:] are not supported");
        }
        if (x->s[x->i] == '\\') {
            x->i++;
            bool nc;
            int r = rx_escape(x, &s, &nc, &lo);
            if (r < 0) goto fail;
            if (r == 0) {
                if (nc) {
                    free(s.r);
                    return sl_err(x->err, x->errlen,
                                  "regex: negated escapes inside a class are not supported");
                }
                continue;
            }
        } else {
            int64_t c = rx_utf8(x);
            if (c < 0) {
                free(s.r);
                return sl_err(x->err, x->errlen, "regex: invalid UTF-8");
            }
            lo = (uint32_t)c;
        }
        uint32_t hi = lo;
        if (x->i + 1 < x->n && x->s[x->i] == '-' && x->s[x->i + 1] != ']') {
            x->i++;
            if (x->s[x->i] == '\\') {
                x->i++;
                bool nc;
                rset_t dummy = {0};
                int r = rx_escape(x, &dummy, &nc, &hi);
                free(dummy.r);
                if (r != 1) {
                    free(s.r);
                    return r < 0 ? -1 : sl_err(x->err, x->errlen, "regex: bad range");
                }
            } else {
                int64_t c = rx_utf8(x);
                if (c < 0) {
                    free(s.r);
                    return sl_err(x->err, x->errlen, "regex: invalid UTF-8");
                }
                hi = (uint32_t)c;
            }
            if (hi < lo) {
                free(s.r);
                return sl_err(x->err, x->errlen, "regex: range out of order");
            }
        }
        if (rset_add(&s, lo, hi) < 0) goto fail;
    }
    if (x->i >= x->n) {
        free(s.r);
        return sl_err(x->err, x->errlen, "regex: unterminated class");
    }
    x->i++;
    int rc = rset_emit(x, &s, neg);
    free(s.r);
    return rc;
fail:
    free(s.r);
    return -1;
}

static int rx_seq(rx_t *x) {
    bool any = false;
    while (x->i < x->n && x->s[x->i] != '|' && x->s[x->i] != ')') {
        char c = x->s[x->i];
        size_t atom_at = x->out->len;
        (void)atom_at;
        if (c == '^') {
            if (x->i != 0) return sl_err(x->err, x->errlen, "regex: '^' is supported only at the start");
            x->i++;
            continue;
        }
        if (c == '$') {
            if (x->i + 1 != x->n) return sl_err(x->err, x->errlen, "regex: '$' is supported only at the end");
            x->i++;
            continue;
        }
        sl_buf_putc(x->out, ' ');
        any = true;
        if (c == '(') {
            x->i++;
            if (x->i < x->n && x->s[x->i] == '?') {
                if (x->i + 1 < x->n && x->s[x->i + 1] == ':') {
                    x->i += 2;
                } else if (x->i + 1 < x->n && (x->s[x->i + 1] == '<' || x->s[x->i + 1] == 'P') &&
                           x->i + 2 < x->n && x->s[x->i + 2] != '=' && x->s[x->i + 2] != '!') {
                    while (x->i < x->n && x->s[x->i] != '>') x->i++;
                    x->i++;
                } else {
                    return sl_err(x->err, x->errlen, "regex: lookaround and inline flags are not supported");
                }
            }
            if (++x->depth > 100) return sl_err(x->err, x->errlen, "regex: nested too deeply");
            sl_buf_putc(x->out, '(');
            if (rx_alt(x) < 0) return -1;
            x->depth--;
            if (x->i >= x->n || x->s[x->i] != ')') return sl_err(x->err, x->errlen, "regex: missing ')'");
            x->i++;
            sl_buf_putc(x->out, ')');
        } else if (c == '[') {
            x->i++;
            if (rx_class(x) < 0) return -1;
        } else if (c == '.') {
            x->i++;
            rset_t s = {0};
            if (rset_add(&s, '\n', '\n') < 0) return -1;
            int rc = rset_emit(x, &s, true);
            free(s.r);
            if (rc < 0) return -1;
        } else if (c == '\\') {
            x->i++;
            rset_t s = {0};
            bool nc;
            uint32_t cp;
            int r = rx_escape(x, &s, &nc, &cp);
            if (r < 0 || (r == 1 && emit_char(x, cp) < 0) || (r == 0 && rset_emit(x, &s, nc) < 0)) {
                free(s.r);
                return -1;
            }
            free(s.r);
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            return sl_err(x->err, x->errlen, "regex: quantifier without an item");
        } else {
            int64_t cp = rx_utf8(x);
            if (cp < 0) return sl_err(x->err, x->errlen, "regex: invalid UTF-8");
            if (emit_char(x, (uint32_t)cp) < 0) return -1;
        }
        /* quantifiers */
        while (x->i < x->n) {
            c = x->s[x->i];
            if (c == '*' || c == '+' || c == '?') {
                sl_buf_putc(x->out, c);
                x->i++;
            } else if (c == '{') {
                size_t j = x->i + 1;
                while (j < x->n && ((x->s[j] >= '0' && x->s[j] <= '9') || x->s[j] == ',')) j++;
                if (j >= x->n || x->s[j] != '}' || j == x->i + 1) {
                    return sl_err(x->err, x->errlen, "regex: '{' that is not a quantifier");
                }
                if (x->s[x->i + 1] == ',') { /* {,n} */
                    sl_buf_puts(x->out, "{0");
                    sl_buf_append(x->out, x->s + x->i + 1, j - x->i);
                } else {
                    sl_buf_append(x->out, x->s + x->i, j - x->i + 1);
                }
                x->i = j + 1;
            } else {
                break;
            }
            if (x->i < x->n && x->s[x->i] == '?') x->i++; /* lazy: same language */
            else if (x->i < x->n && x->s[x->i] == '+')
                return sl_err(x->err, x->errlen, "regex: possessive quantifiers are not supported");
            if (x->i < x->n && (x->s[x->i] == '*' || x->s[x->i] == '+' || x->s[x->i] == '?' ||
                                x->s[x->i] == '{')) {
                return sl_err(x->err, x->errlen, "regex: stacked quantifiers are not supported");
            }
        }
    }
    if (!any) sl_buf_puts(x->out, " \"\"");
    return 0;
}

static int rx_alt(rx_t *x) {
    for (;;) {
        if (rx_seq(x) < 0) return -1;
        if (x->i < x->n && x->s[x->i] == '|') {
            x->i++;
            sl_buf_puts(x->out, " |");
            continue;
        }
        return 0;
    }
}

int gram_regex_emit(const char *re, bool json_string, sl_buf_t *out, bool *anchored_start,
                    bool *anchored_end, char *err, size_t errlen) {
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ecode, &eoff, NULL);
    if (!code) {
        char msg[256];
        pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
        return sl_err(err, errlen, "regex: %s at offset %zu", msg, (size_t)eoff);
    }
    pcre2_code_free(code);
    rx_t x = {re, 0, strlen(re), json_string, out, err, errlen, 0};
    if (anchored_start) *anchored_start = x.n > 0 && re[0] == '^';
    if (anchored_end) *anchored_end = x.n > 0 && re[x.n - 1] == '$' && (x.n < 2 || re[x.n - 2] != '\\');
    sl_buf_putc(out, '(');
    if (rx_alt(&x) < 0) return -1;
    if (x.i < x.n) return sl_err(err, errlen, "regex: unbalanced ')'");
    sl_buf_puts(out, " )");
    return 0;
}

char *gram_regex_to_gbnf(const char *re, char *err, size_t errlen) {
    sl_buf_t b = {0};
    sl_buf_puts(&b, "root ::= ");
    if (gram_regex_emit(re, false, &b, NULL, NULL, err, errlen) < 0 || sl_buf_puts(&b, "\n") < 0) {
        sl_buf_free(&b);
        return NULL;
    }
    return sl_buf_steal(&b);
}

gram_t *gram_from_regex(const char *re, char *err, size_t errlen) {
    char *src = gram_regex_to_gbnf(re, err, errlen);
    if (!src) return NULL;
    gram_t *g = gram_from_gbnf(src, err, errlen);
    free(src);
    return g;
}
