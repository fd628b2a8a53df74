/*
 * gram_gbnf.c — the GBNF parser (llama.cpp's grammar syntax) and the entry
 * point every other grammar source goes through: JSON Schema and regex are
 * compiled to GBNF text first, which keeps one parser and makes every
 * generated grammar printable for debugging.
 *
 *   rule      ::= name "::=" alternates          (the start rule is `root`)
 *   alternates::= sequence ("|" sequence)*
 *   sequence  ::= (item postfix?)*
 *   item      ::= "literal" | [class] | [^class] | name | "(" alternates ")" | "."
 *   postfix   ::= "*" | "+" | "?" | "{" m "}" | "{" m "," "}" | "{" m "," n "}"
 *
 * Newlines are whitespace; a sequence ends at "|", ")", end of input, or the
 * start of the next rule (`name ::=`). Comments run from # to end of line.
 * Literal / class escapes: \n \r \t \\ \" \' \[ \] \- \^ \/ \xHH \uHHHH
 * \UHHHHHHHH. Literals and classes are code points (UTF-8 in the source).
 */
#include "grammar/gram_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t i, n;
    gram_builder_t *b;
    int depth;
} gp_t;

static int gperr(gp_t *p, const char *msg) {
    if (!p->b->failed) {
        size_t line = 1, col = 1;
        for (size_t k = 0; k < p->i && k < p->n; k++) {
            if (p->s[k] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        sl_err(p->b->err, p->b->errlen, "grammar: %s at line %zu column %zu", msg, line, col);
    }
    p->b->failed = true;
    return -1;
}

static void skip_ws(gp_t *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            p->i++;
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n') p->i++;
        } else {
            break;
        }
    }
}

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static size_t name_len(gp_t *p, size_t at) {
    size_t k = at;
    while (k < p->n && is_name_char(p->s[k])) k++;
    return k - at;
}

/* True when the input at i is `name ::=` (the start of the next rule). */
static bool at_rule_start(gp_t *p) {
    size_t nl = name_len(p, p->i);
    if (!nl) return false;
    size_t k = p->i + nl;
    while (k < p->n && (p->s[k] == ' ' || p->s[k] == '\t')) k++;
    return k + 3 <= p->n && memcmp(p->s + k, "::=", 3) == 0;
}

/* Decodes one UTF-8 code point; -1 on malformed input. */
static int64_t decode_utf8(gp_t *p) {
    const unsigned char *u = (const unsigned char *)p->s;
    unsigned char c = u[p->i];
    int n;
    uint32_t cp;
    if (c < 0x80) {
        p->i++;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        n = 1;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 2;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 3;
        cp = c & 0x07;
    } else {
        return -1;
    }
    if (p->i + (size_t)n >= p->n) return -1;
    for (int k = 1; k <= n; k++) {
        if ((u[p->i + k] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (u[p->i + k] & 0x3F);
    }
    static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    p->i += (size_t)n + 1;
    return cp;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One (possibly escaped) code point inside a literal or class. */
static int64_t parse_char(gp_t *p) {
    if (p->i >= p->n) return gperr(p, "unexpected end of input");
    if (p->s[p->i] != '\\') {
        int64_t cp = decode_utf8(p);
        if (cp < 0) return gperr(p, "invalid UTF-8");
        return cp;
    }
    p->i++;
    if (p->i >= p->n) return gperr(p, "unexpected end of input after \\");
    char c = p->s[p->i++];
    int nhex = 0;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'f': return '\f';
    case 'v': return '\v';
    case '0': return 0;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
        return (unsigned char)c;
    case 'x': nhex = 2; break;
    case 'u': nhex = 4; break;
    case 'U': nhex = 8; break;
    default: return gperr(p, "unknown escape");
    }
    uint32_t v = 0;
    for (int k = 0; k < nhex; k++) {
        if (p->i >= p->n || hexval(p->s[p->i]) < 0) return gperr(p, "bad hex escape");
        v = v * 16 + (uint32_t)hexval(p->s[p->i++]);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return gperr(p, "escape is not a code point");
    return v;
}

static int parse_alternates(gp_t *p, uint32_t rule);

static int parse_uint(gp_t *p, uint32_t *out) {
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return gperr(p, "expected a number");
    uint64_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        v = v * 10 + (uint64_t)(p->s[p->i++] - '0');
        if (v > GRAM_MAX_REPEAT) return gperr(p, "repetition count too large");
    }
    *out = (uint32_t)v;
    return 0;
}

/* Applies {min,max} (max UINT32_MAX = unbounded) to elements [start, a->n). */
static int apply_repeat(gp_t *p, uint32_t rule, uint32_t alt_idx, uint32_t start, uint32_t min,
                        uint32_t max) {
    gram_builder_t *b = p->b;
    gram_alt_t *a = &b->rules[rule].alts[alt_idx];
    if (start >= a->n) return gperr(p, "repetition operator without an item");
    gram_elem_t item;
    if (a->n - start == 1) {
        item = a->e[start];
    } else {
        int64_t x = gram_builder_new_rule(b);
        if (x < 0) return -1;
        gram_alt_t *xa = gram_rule_add_alt(b, (uint32_t)x);
        if (!xa) return -1;
        a = &b->rules[rule].alts[alt_idx]; /* rules may have moved */
        for (uint32_t k = start; k < a->n; k++)
            if (gram_alt_push(b, xa, a->e[k].type, a->e[k].val) < 0) return -1;
        item = (gram_elem_t){GE_REF, (uint32_t)x};
    }
    a->n = start;
    for (uint32_t k = 0; k < min; k++) {
        a = &b->rules[rule].alts[alt_idx];
        if (gram_alt_push(b, a, item.type, item.val) < 0) return -1;
    }
    if (max == min) return 0;
    int64_t prev = -1;
    uint32_t nopt = max == UINT32_MAX ? 1 : max - min;
    for (uint32_t k = 0; k < nopt; k++) {
        int64_t r = gram_builder_new_rule(b);
        if (r < 0) return -1;
        gram_alt_t *ra = gram_rule_add_alt(b, (uint32_t)r);
        if (!ra || gram_alt_push(b, ra, item.type, item.val) < 0) return -1;
        if (max == UINT32_MAX) {
            if (gram_alt_push(b, ra, GE_REF, (uint32_t)r) < 0) return -1;
        } else if (prev >= 0) {
            if (gram_alt_push(b, ra, GE_REF, (uint32_t)prev) < 0) return -1;
        }
        if (!gram_rule_add_alt(b, (uint32_t)r)) return -1; /* empty alternative */
        if (max != UINT32_MAX) b->rules[r].chain_level = k + 1;
        prev = r;
    }
    a = &b->rules[rule].alts[alt_idx];
    return gram_alt_push(b, a, GE_REF, (uint32_t)prev);
}

static int parse_sequence(gp_t *p, uint32_t rule, uint32_t alt_idx) {
    gram_builder_t *b = p->b;
    uint32_t last_start = UINT32_MAX;
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n) return 0;
        char c = p->s[p->i];
        if (c == '|' || c == ')') return 0;
        if (at_rule_start(p)) return 0;
        gram_alt_t *a = &b->rules[rule].alts[alt_idx];
        uint32_t start = a->n;
        if (c == '"') {
            p->i++;
            while (p->i < p->n && p->s[p->i] != '"') {
                int64_t cp = parse_char(p);
                if (cp < 0) return -1;
                char u[4];
                int nb = gram_utf8_encode((uint32_t)cp, u);
                for (int k = 0; k < nb; k++) {
                    a = &b->rules[rule].alts[alt_idx];
                    if (gram_push_byte(b, a, (unsigned char)u[k]) < 0) return -1;
                }
            }
            if (p->i >= p->n) return gperr(p, "unterminated literal");
            p->i++;
            if (b->rules[rule].alts[alt_idx].n == start) {
                last_start = UINT32_MAX; /* "" matches the empty string */
                continue;
            }
        } else if (c == '[') {
            p->i++;
            bool neg = false;
            if (p->i < p->n && p->s[p->i] == '^') {
                neg = true;
                p->i++;
            }
            gram_cprange_t *rs = NULL;
            size_t nr = 0, cr = 0;
            while (p->i < p->n && p->s[p->i] != ']') {
                int64_t lo = parse_char(p), hi = lo;
                if (lo < 0) {
                    free(rs);
                    return -1;
                }
                if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
                    p->i++;
                    hi = parse_char(p);
                    if (hi < 0) {
                        free(rs);
                        return -1;
                    }
                    if (hi < lo) {
                        free(rs);
                        return gperr(p, "character range is out of order");
                    }
                }
                if (nr == cr) {
                    cr = cr ? cr * 2 : 8;
                    gram_cprange_t *q = realloc(rs, cr * sizeof *q);
                    if (!q) {
                        free(rs);
                        return gperr(p, "out of memory");
                    }
                    rs = q;
                }
                rs[nr++] = (gram_cprange_t){(uint32_t)lo, (uint32_t)hi};
            }
            if (p->i >= p->n) {
                free(rs);
                return gperr(p, "unterminated character class");
            }
            p->i++;
            int rc = gram_push_class(b, &b->rules[rule].alts[alt_idx], rs, nr, neg);
            free(rs);
            if (rc < 0) return -1;
        } else if (c == '.') {
            p->i++;
            gram_cprange_t all = {0, 0x10FFFF};
            if (gram_push_class(b, a, &all, 1, false) < 0) return -1;
        } else if (c == '(') {
            p->i++;
            if (++p->depth > 200) return gperr(p, "groups nested too deeply");
            int64_t sub = gram_builder_new_rule(b);
            if (sub < 0 || parse_alternates(p, (uint32_t)sub) < 0) return -1;
            p->depth--;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ')') return gperr(p, "expected ')'");
            p->i++;
            if (gram_alt_push(b, &b->rules[rule].alts[alt_idx], GE_REF, (uint32_t)sub) < 0)
                return -1;
        } else if (is_name_char(c)) {
            size_t nl = name_len(p, p->i);
            int64_t r = gram_builder_rule(b, p->s + p->i, nl);
            if (r < 0) return -1;
            p->i += nl;
            if (gram_alt_push(b, &b->rules[rule].alts[alt_idx], GE_REF, (uint32_t)r) < 0)
                return -1;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last_start == UINT32_MAX) return gperr(p, "repetition operator without an item");
            uint32_t mn = 0, mx = UINT32_MAX;
            p->i++;
            if (c == '+') {
                mn = 1;
            } else if (c == '?') {
                mx = 1;
            } else if (c == '{') {
                skip_ws(p);
                if (parse_uint(p, &mn) < 0) return -1;
                skip_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    skip_ws(p);
                    if (p->i < p->n && p->s[p->i] != '}') {
                        if (parse_uint(p, &mx) < 0) return -1;
                        if (mx < mn) return gperr(p, "repetition {m,n} with n < m");
                    }
                } else {
                    mx = mn;
                }
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != '}') return gperr(p, "expected '}'");
                p->i++;
            }
            if (apply_repeat(p, rule, alt_idx, last_start, mn, mx) < 0) return -1;
            last_start = UINT32_MAX; /* x** is an error, as in llama.cpp */
            continue;
        } else if (c == '<') {
            return gperr(p, "token references (<...>) are not supported");
        } else {
            return gperr(p, "unexpected character");
        }
        last_start = start;
        if (b->failed) return -1;
    }
}

static int parse_alternates(gp_t *p, uint32_t rule) {
    for (;;) {
        gram_alt_t *a = gram_rule_add_alt(p->b, rule);
        if (!a) return -1;
        if (parse_sequence(p, rule, p->b->rules[rule].n_alts - 1) < 0) return -1;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '|') {
            p->i++;
            continue;
        }
        return 0;
    }
}

gram_t *gram_from_gbnf(const char *src, char *err, size_t errlen) {
    gram_builder_t b;
    gram_builder_init(&b, err, errlen);
    if (!src) {
        sl_err(err, errlen, "grammar: empty");
        return NULL;
    }
    gp_t p = {src, 0, strlen(src), &b, 0};
    int64_t root = -1;
    for (;;) {
        skip_ws(&p);
        if (p.i >= p.n) break;
        size_t nl = name_len(&p, p.i);
        if (!nl) {
            gperr(&p, "expected a rule name");
            break;
        }
        int64_t r = gram_builder_rule(&b, src + p.i, nl);
        if (r < 0) break;
        if (b.rules[r].defined) {
            gperr(&p, "rule defined twice");
            break;
        }
        b.rules[r].defined = true;
        if (nl == 4 && memcmp(src + p.i, "root", 4) == 0) root = r;
        p.i += nl;
        skip_ws(&p);
        if (p.i + 3 > p.n || memcmp(src + p.i, "::=", 3) != 0) {
            gperr(&p, "expected '::='");
            break;
        }
        p.i += 3;
        if (parse_alternates(&p, (uint32_t)r) < 0) break;
        skip_ws(&p);
        if (p.i < p.n && !at_rule_start(&p)) {
            gperr(&p, "unexpected character");
            break;
        }
    }
    if (!b.failed && root < 0) {
        sl_err(err, errlen, "grammar: no 'root' rule");
        b.failed = true;
    }
    return gram_finish(&b, root < 0 ? 0 : (uint32_t)root);
}
