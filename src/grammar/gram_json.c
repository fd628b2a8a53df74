/*
 * gram_json.c — built-in JSON grammars and JSON Schema -> GBNF.
 *
 * The generic JSON grammar bounds whitespace (one space, or one newline
 * plus up to 16 spaces of indentation, between tokens) and number lengths, so
 * a model cannot loop on spaces or digits. Strings are unbounded (max_tokens
 * cuts them; see docs/grammar.md).
 *
 * A schema becomes one GBNF rule per schema node (`sN`); $ref targets get one
 * rule each, so recursive schemas become recursive rules, and a $ref cycle
 * that makes no progress becomes left recursion, which gram_finish rejects.
 * Every keyword is either handled, a known annotation, or an error naming it.
 * The generated language is always a SUBSET of what the schema accepts, so
 * output validates; where it is a strict subset the docs say so.
 */
#include "grammar/gram_regex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char JSON_BASE[] =
    "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n"
    "ws ::= ( \" \" | \"\\n\" [ ]{0,16} )?\n"
    "xchar ::= [^\"\\\\\\x00-\\x1f]\n"
    "frac ::= \".\" [0-9]{0,14} [1-9]\n"
    "d2 ::= [0-9] [0-9]\n"
    "date ::= [0-9]{4} \"-\" ( ( \"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\" ) \"-\" "
    "( \"0\" [1-9] | [12] [0-9] | \"3\" [01] ) | ( \"04\" | \"06\" | \"09\" | \"11\" ) \"-\" "
    "( \"0\" [1-9] | [12] [0-9] | \"30\" ) | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) )\n"
    "time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? "
    "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"
    "uuid ::= [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}\n"
    "email ::= [a-zA-Z0-9_+-]{1,32} ( \".\" [a-zA-Z0-9_+-]{1,32} ){0,3} \"@\" "
    "[a-zA-Z0-9] [a-zA-Z0-9-]{0,30} [a-zA-Z0-9] ( \".\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,30} [a-zA-Z0-9] ){0,3} "
    "\".\" [a-zA-Z]{2,12}\n";

static gram_t *from_text(const char *head, char *err, size_t errlen) {
    sl_buf_t b = {0};
    if (sl_buf_puts(&b, head) < 0 || sl_buf_puts(&b, JSON_BASE) < 0) {
        sl_buf_free(&b);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    gram_t *g = gram_from_gbnf(b.data, err, errlen);
    sl_buf_free(&b);
    return g;
}

gram_t *gram_json_any(bool object_only, char *err, size_t errlen) {
    return from_text(object_only ? "root ::= object\n" : "root ::= value\n", err, errlen);
}

char *gram_json_any_to_gbnf(bool object_only, char *err, size_t errlen) {
    sl_buf_t b = {0};
    if (sl_buf_puts(&b, object_only ? "root ::= object\n" : "root ::= value\n") < 0 ||
        sl_buf_puts(&b, JSON_BASE) < 0) {
        sl_buf_free(&b);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    return sl_buf_steal(&b);
}

/* ---------------- schema conversion ---------------- */

#define SC_MAX_DEPTH 64
#define SC_MAX_TEXT (8u << 20)

typedef struct {
    sl_buf_t rules;
    const json_t *root;
    int n_rules;
    const json_t **ref_nodes;
    int *ref_ids;
    int n_refs, cap_refs;
    char *err;
    size_t errlen;
    bool failed;
    int depth;
} sc_t;

static int scfail(sc_t *c, const char *fmt, const char *arg) {
    if (!c->failed) sl_err(c->err, c->errlen, fmt, arg);
    c->failed = true;
    return -1;
}

/* GBNF literal for raw bytes */
static void put_lit(sl_buf_t *b, const char *s, size_t n) {
    sl_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            sl_buf_putc(b, '\\');
            sl_buf_putc(b, (char)ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            sl_buf_printf(b, "\\x%02X", ch);
        } else {
            sl_buf_putc(b, (char)ch);
        }
    }
    sl_buf_putc(b, '"');
}

/* the compact JSON text of v as a GBNF literal */
static int put_json_lit(sc_t *c, sl_buf_t *b, const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return scfail(c, "%s", "out of memory");
    put_lit(b, s, strlen(s));
    free(s);
    return 0;
}

static int gen(sc_t *c, const json_t *s);

static const char *const ANNOTATIONS[] = {"title", "description", "$schema", "$id", "$comment",
                                          "examples", "default", "deprecated", "readOnly",
                                          "writeOnly", "$defs", "definitions", "strict", "name",
                                          NULL};
static const char *const HANDLED[] = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf",
    "allOf", "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern",
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "$ref", "nullable",
    NULL};

static bool in_list(const char *k, const char *const *l) {
    for (; *l; l++)
        if (strcmp(k, *l) == 0) return true;
    return false;
}

static const json_t *resolve_ref(sc_t *c, const char *ref) {
    if (strcmp(ref, "#") == 0) return c->root;
    if (strncmp(ref, "#/", 2) != 0) {
        scfail(c, "$ref '%s' is not supported (only local references '#/...')", ref);
        return NULL;
    }
    const json_t *cur = c->root;
    const char *p = ref + 2;
    while (*p && cur) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof key; i++) {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                key[k++] = p[i];
            }
        }
        key[k] = 0;
        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        p = e ? e + 1 : p + n;
    }
    if (!cur || !(json_is_object(cur) || json_is_boolean(cur))) {
        scfail(c, "$ref '%s' does not point at a schema", ref);
        return NULL;
    }
    return cur;
}

static int new_rule(sc_t *c) {
    return c->n_rules++;
}

/* ---- integers and numbers ---- */

#define NUM_MAX_MAG 999999999999999LL /* 15 digits: bounds beyond are clipped */

static void range_same(sl_buf_t *b, const char *lo, const char *hi, int n) {
    if (n == 0) {
        sl_buf_puts(b, "\"\"");
        return;
    }
    if (memcmp(lo, hi, (size_t)n) == 0) {
        put_lit(b, lo, (size_t)n);
        return;
    }
    if (lo[0] == hi[0]) {
        put_lit(b, lo, 1);
        sl_buf_puts(b, " ( ");
        range_same(b, lo + 1, hi + 1, n - 1);
        sl_buf_puts(b, " )");
        return;
    }
    bool lz = true, h9 = true;
    for (int i = 1; i < n; i++) {
        if (lo[i] != '0') lz = false;
        if (hi[i] != '9') h9 = false;
    }
    char nines[32], zeros[32];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    sl_buf_puts(b, "( ");
    bool first = true;
    if (!lz) {
        put_lit(b, lo, 1);
        sl_buf_puts(b, " ( ");
        range_same(b, lo + 1, nines, n - 1);
        sl_buf_puts(b, " )");
        first = false;
    }
    char st = lz ? lo[0] : (char)(lo[0] + 1), en = h9 ? hi[0] : (char)(hi[0] - 1);
    if (st <= en) {
        if (!first) sl_buf_puts(b, " | ");
        sl_buf_printf(b, "[%c-%c]", st, en);
        if (n > 1) sl_buf_printf(b, " [0-9]{%d}", n - 1);
        first = false;
    }
    if (!h9) {
        if (!first) sl_buf_puts(b, " | ");
        put_lit(b, hi, 1);
        sl_buf_puts(b, " ( ");
        range_same(b, zeros, hi + 1, n - 1);
        sl_buf_puts(b, " )");
    }
    sl_buf_puts(b, " )");
}

/* non-negative integers in [a, b] without leading zeros, as alternatives */
static void range_nonneg(sl_buf_t *b, long long a, long long z, bool *first) {
    long long p = 1;
    for (int d = 1; d <= 18; d++, p *= 10) {
        long long lo = d == 1 ? 0 : p, hi = p * 10 - 1;
        if (lo < a) lo = a;
        if (hi > z) hi = z;
        if (lo > hi) continue;
        char ls[32], hs[32];
        snprintf(ls, sizeof ls, "%lld", lo);
        snprintf(hs, sizeof hs, "%lld", hi);
        if (!*first) sl_buf_puts(b, " | ");
        *first = false;
        range_same(b, ls, hs, d);
    }
}

/* integers in [lo, hi] (both within +-NUM_MAX_MAG); appends alternatives */
static void int_range(sl_buf_t *b, long long lo, long long hi, bool *first) {
    if (lo > hi) return;
    if (lo < 0) {
        long long mhi = hi < 0 ? -hi : 1;
        if (!*first) sl_buf_puts(b, " | ");
        *first = false;
        sl_buf_puts(b, "\"-\" ( ");
        bool f2 = true;
        range_nonneg(b, mhi, -lo, &f2);
        sl_buf_puts(b, " )");
    }
    if (hi >= 0) range_nonneg(b, lo < 0 ? 0 : lo, hi, first);
}

static int get_num(sc_t *c, const json_t *s, const char *k, double *out) {
    json_t *v = json_object_get(s, k);
    if (!v) return 0;
    if (!json_is_number(v)) return scfail(c, "'%s' must be a number", k);
    *out = json_number_value(v);
    if (!isfinite(*out)) return scfail(c, "'%s' must be finite", k);
    return 1;
}

static double clipd(double x) {
    return x > (double)NUM_MAX_MAG ? (double)NUM_MAX_MAG : x < -(double)NUM_MAX_MAG ? -(double)NUM_MAX_MAG : x;
}

/* integer or number with bounds -> expression */
static int gen_numeric(sc_t *c, const json_t *s, bool integer, sl_buf_t *b) {
    double mn = -INFINITY, mx = INFINITY, v;
    bool xmn = false, xmx = false;
    int r;
    if ((r = get_num(c, s, "minimum", &v)) < 0) return -1;
    if (r) mn = v;
    if ((r = get_num(c, s, "maximum", &v)) < 0) return -1;
    if (r) mx = v;
    if ((r = get_num(c, s, "exclusiveMinimum", &v)) < 0) return -1;
    if (r && v >= mn) {
        mn = v;
        xmn = true;
    }
    if ((r = get_num(c, s, "exclusiveMaximum", &v)) < 0) return -1;
    if (r && v <= mx) {
        mx = v;
        xmx = true;
    }
    if (isinf(mn) && isinf(mx)) {
        sl_buf_puts(b, integer ? "integer" : "number");
        return 0;
    }
    /* integral values */
    double ilo = isinf(mn) ? -(double)NUM_MAX_MAG : (xmn && floor(mn) == mn ? mn + 1 : ceil(mn));
    double ihi = isinf(mx) ? (double)NUM_MAX_MAG : (xmx && floor(mx) == mx ? mx - 1 : floor(mx));
    ilo = clipd(ilo);
    ihi = clipd(ihi);
    bool first = true;
    sl_buf_puts(b, "( ");
    int_range(b, (long long)ilo, (long long)ihi, &first);
    if (!integer) {
        /* positive fractions i.f with i in [max(ceil(mn),0), floor(mx)-1] */
        double plo = isinf(mn) ? 0 : SL_MAX(ceil(mn), 0.0);
        double phi = isinf(mx) ? (double)NUM_MAX_MAG : floor(mx) - 1;
        plo = clipd(plo);
        phi = clipd(phi);
        if (plo <= phi) {
            if (!first) sl_buf_puts(b, " | ");
            first = false;
            sl_buf_puts(b, "( ");
            bool f2 = true;
            range_nonneg(b, (long long)plo, (long long)phi, &f2);
            sl_buf_puts(b, " ) frac");
        }
        /* negative fractions -d.f with d in [max(ceil(-mx),0), floor(-mn)-1] */
        double nlo = isinf(mx) ? 0 : SL_MAX(ceil(-mx), 0.0);
        double nhi = isinf(mn) ? (double)NUM_MAX_MAG : floor(-mn) - 1;
        nlo = clipd(nlo);
        nhi = clipd(nhi);
        if (nlo <= nhi) {
            if (!first) sl_buf_puts(b, " | ");
            first = false;
            sl_buf_puts(b, "\"-\" ( ");
            bool f2 = true;
            range_nonneg(b, (long long)nlo, (long long)nhi, &f2);
            sl_buf_puts(b, " ) frac");
        }
    }
    if (first) return scfail(c, "%s", "minimum/maximum leave no possible value");
    sl_buf_puts(b, " )");
    return 0;
}

/* ---- strings ---- */

static int get_count(sc_t *c, const json_t *s, const char *k, long long *out, long long cap) {
    json_t *v = json_object_get(s, k);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return scfail(c, "'%s' must be a non-negative integer", k);
    if (json_integer_value(v) > cap) return scfail(c, "'%s' is too large for this server", k);
    *out = json_integer_value(v);
    return 1;
}

static int gen_string(sc_t *c, const json_t *s, sl_buf_t *b) {
    json_t *fmt = json_object_get(s, "format"), *pat = json_object_get(s, "pattern");
    long long mn = 0, mx = -1;
    int r1 = get_count(c, s, "minLength", &mn, 2000), r2 = get_count(c, s, "maxLength", &mx, 2000);
    if (r1 < 0 || r2 < 0) return -1;
    if ((fmt || pat) && (r1 || r2))
        return scfail(c, "%s", "minLength/maxLength combined with pattern or format is not supported");
    if (fmt && pat) return scfail(c, "%s", "pattern combined with format is not supported");
    if (fmt) {
        if (!json_is_string(fmt)) return scfail(c, "%s", "'format' must be a string");
        const char *f = json_string_value(fmt);
        if (strcmp(f, "date") == 0) sl_buf_puts(b, "\"\\\"\" date \"\\\"\"");
        else if (strcmp(f, "time") == 0) sl_buf_puts(b, "\"\\\"\" time \"\\\"\"");
        else if (strcmp(f, "date-time") == 0) sl_buf_puts(b, "\"\\\"\" date \"T\" time \"\\\"\"");
        else if (strcmp(f, "uuid") == 0) sl_buf_puts(b, "\"\\\"\" uuid \"\\\"\"");
        else if (strcmp(f, "email") == 0) sl_buf_puts(b, "\"\\\"\" email \"\\\"\"");
        else return scfail(c, "string format '%s' is not supported", f);
        return 0;
    }
    if (pat) {
        if (!json_is_string(pat)) return scfail(c, "%s", "'pattern' must be a string");
        bool as, ae;
        sl_buf_puts(b, "\"\\\"\" ");
        size_t at = b->len;
        sl_buf_puts(b, "xchar* ");
        if (gram_regex_emit(json_string_value(pat), true, b, &as, &ae, c->err, c->errlen) < 0) {
            c->failed = true;
            return -1;
        }
        if (as) memset(b->data + at, ' ', 6); /* anchored: drop the leading xchar* */
        sl_buf_puts(b, ae ? " \"\\\"\"" : " xchar* \"\\\"\"");
        return 0;
    }
    if (mx >= 0 && mx < mn) return scfail(c, "%s", "maxLength < minLength");
    if (!r1 && !r2) {
        sl_buf_puts(b, "string");
    } else if (mx < 0) {
        sl_buf_printf(b, "\"\\\"\" char{%lld,} \"\\\"\"", mn);
    } else {
        sl_buf_printf(b, "\"\\\"\" char{%lld,%lld} \"\\\"\"", mn, mx);
    }
    return 0;
}

/* ---- objects ---- */

typedef struct {
    const char *key;
    const json_t *schema;
    bool required;
} prop_t;

/* "not one of these keys" key grammar: a trie over the keys' code points */
static int notkeys(sc_t *c, char **keys, size_t n, size_t depth) {
    /* keys[0..n) sorted and sharing their first `depth` bytes */
    int id = new_rule(c);
    sl_buf_t body = {0};
    bool term = false;
    sl_buf_puts(&body, "xk");
    sl_buf_printf(&body, "%d ::= ", id);
    sl_buf_t excl = {0};
    bool any_alt = false;
    size_t i = 0;
    while (i < n) {
        size_t len = strlen(keys[i]);
        if (len == depth) {
            term = true;
            i++;
            continue;
        }
        /* group by next code point (bytes of one UTF-8 char) */
        unsigned char lead = (unsigned char)keys[i][depth];
        size_t cl = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        size_t j = i + 1;
        while (j < n && strlen(keys[j]) >= depth + cl && memcmp(keys[j] + depth, keys[i] + depth, cl) == 0) j++;
        int child = notkeys(c, keys + i, j - i, depth + cl);
        if (child < 0) {
            sl_buf_free(&body);
            sl_buf_free(&excl);
            return -1;
        }
        if (any_alt) sl_buf_puts(&body, " | ");
        put_lit(&body, keys[i] + depth, cl);
        sl_buf_printf(&body, " xk%d", child);
        any_alt = true;
        {
            const unsigned char *u = (const unsigned char *)keys[i] + depth;
            uint32_t cp = cl == 1 ? u[0] : cl == 2 ? (u[0] & 0x1Fu) : cl == 3 ? (u[0] & 0x0Fu) : (u[0] & 0x07u);
            for (size_t q = 1; q < cl; q++) cp = (cp << 6) | (u[q] & 0x3Fu);
            sl_buf_printf(&excl, "\\U%08X", cp);
        }
        i = j;
    }
    if (!term) {
        if (any_alt) sl_buf_puts(&body, " | ");
        sl_buf_puts(&body, "\"\\\"\"");
        any_alt = true;
    }
    if (any_alt) sl_buf_puts(&body, " | ");
    sl_buf_puts(&body, "[^\"\\\\\\x00-\\x1f");
    sl_buf_append(&body, excl.data ? excl.data : "", excl.len);
    sl_buf_puts(&body, "] xchar* \"\\\"\"\n");
    sl_buf_append(&c->rules, body.data, body.len);
    sl_buf_free(&body);
    sl_buf_free(&excl);
    return id;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int gen_object(sc_t *c, const json_t *s, sl_buf_t *b) {
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return scfail(c, "%s", "'properties' must be an object");
    if (req && !json_is_array(req)) return scfail(c, "%s", "'required' must be an array");
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return scfail(c, "%s", "'additionalProperties' must be a boolean or a schema");
    size_t np = (props ? json_object_size(props) : 0) + (req ? json_array_size(req) : 0);
    prop_t *pv = calloc(np + 1, sizeof *pv);
    if (!pv) return scfail(c, "%s", "out of memory");
    size_t n = 0;
    const char *k;
    json_t *v;
    if (props)
        json_object_foreach(props, k, v) {
            pv[n].key = k;
            pv[n].schema = v;
            n++;
        }
    if (req) {
        size_t i;
        json_array_foreach(req, i, v) {
            if (!json_is_string(v)) {
                free(pv);
                return scfail(c, "%s", "'required' entries must be strings");
            }
            size_t j = 0;
            while (j < n && strcmp(pv[j].key, json_string_value(v)) != 0) j++;
            if (j == n) { /* required but not described: any value */
                pv[n].key = json_string_value(v);
                pv[n].schema = NULL;
                n++;
            }
            pv[j].required = true;
        }
    }
    /* extra members: absent additionalProperties with declared properties is
     * generated as false (a subset of what the schema accepts) */
    const json_t *extra = NULL;
    bool allow_extra = addl ? !json_is_false(addl) : n == 0;
    if (allow_extra) extra = (addl && json_is_object(addl)) ? addl : NULL;
    int base = c->n_rules;
    c->n_rules += (int)(2 * (n + 1));
    /* kv rules */
    int *kv = malloc((n + 1) * sizeof *kv);
    if (!kv) {
        free(pv);
        return scfail(c, "%s", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int sub = -1;
        if (pv[i].schema) {
            sub = gen(c, pv[i].schema);
            if (sub < 0) goto fail;
        }
        kv[i] = new_rule(c);
        sl_buf_printf(&c->rules, "s%d ::= ", kv[i]);
        json_t *ks = json_string(pv[i].key);
        if (!ks || put_json_lit(c, &c->rules, ks) < 0) {
            json_decref(ks);
            goto fail;
        }
        json_decref(ks);
        if (sub >= 0) sl_buf_printf(&c->rules, " ws \":\" ws s%d ws\n", sub);
        else sl_buf_puts(&c->rules, " ws \":\" ws value ws\n");
    }
    int xkv = -1;
    if (allow_extra) {
        int sub = -1;
        if (extra && (sub = gen(c, extra)) < 0) goto fail;
        char **keys = malloc((n + 1) * sizeof *keys);
        if (!keys) goto fail;
        size_t nkeys = 0;
        for (size_t i = 0; i < n; i++) {
            /* keys JSON must escape can never equal an unescaped extra key */
            bool plain = true;
            for (const unsigned char *q = (const unsigned char *)pv[i].key; *q; q++)
                if (*q < 0x20 || *q == '"' || *q == '\\') plain = false;
            if (plain) keys[nkeys++] = (char *)pv[i].key;
        }
        qsort(keys, nkeys, sizeof *keys, cmp_str);
        int nk = notkeys(c, keys, nkeys, 0);
        free(keys);
        if (nk < 0) goto fail;
        xkv = new_rule(c);
        sl_buf_printf(&c->rules, "s%d ::= \"\\\"\" xk%d ws \":\" ws ", xkv, nk);
        if (sub >= 0) sl_buf_printf(&c->rules, "s%d ws\n", sub);
        else sl_buf_puts(&c->rules, "value ws\n");
    }
    /* H_i: nothing emitted yet; T_i: something emitted. ids base+2i, base+2i+1 */
    for (size_t i = 0; i <= n; i++) {
        int H = base + (int)(2 * i), T = H + 1;
        if (i == n) {
            if (xkv >= 0) {
                sl_buf_printf(&c->rules, "s%d ::= ( s%d s%d )?\n", H, xkv, T);
                sl_buf_printf(&c->rules, "s%d ::= ( \",\" ws s%d )*\n", T, xkv);
            } else {
                sl_buf_printf(&c->rules, "s%d ::= \"\"\ns%d ::= \"\"\n", H, T);
            }
            continue;
        }
        int H1 = H + 2, T1 = T + 2;
        if (pv[i].required) {
            sl_buf_printf(&c->rules, "s%d ::= s%d s%d\n", H, kv[i], T1);
            sl_buf_printf(&c->rules, "s%d ::= \",\" ws s%d s%d\n", T, kv[i], T1);
        } else {
            sl_buf_printf(&c->rules, "s%d ::= s%d s%d | s%d\n", H, kv[i], T1, H1);
            sl_buf_printf(&c->rules, "s%d ::= \",\" ws s%d s%d | s%d\n", T, kv[i], T1, T1);
        }
    }
    sl_buf_printf(b, "\"{\" ws s%d \"}\"", base);
    free(kv);
    free(pv);
    return 0;
fail:
    free(kv);
    free(pv);
    return -1;
}

/* ---- arrays ---- */

static int gen_array(sc_t *c, const json_t *s, sl_buf_t *b) {
    json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    long long mn = 0, mx = -1;
    if (get_count(c, s, "minItems", &mn, 10000) < 0 || get_count(c, s, "maxItems", &mx, 10000) < 0) return -1;
    if (mx >= 0 && mx < mn) return scfail(c, "%s", "maxItems < minItems");
    if (prefix && !json_is_array(prefix)) return scfail(c, "%s", "'prefixItems' must be an array");
    if (items && !json_is_object(items) && !json_is_boolean(items))
        return scfail(c, "%s", "'items' must be a schema (array form: use prefixItems)");
    size_t k = prefix ? json_array_size(prefix) : 0;
    int item_rule = -1; /* -1: any value; -2: no more items */
    if (items && json_is_false(items)) item_rule = -2;
    else if (items && json_is_object(items) && (item_rule = gen(c, items)) < 0) return -1;
    int *pr = malloc((k + 1) * sizeof *pr);
    if (!pr) return scfail(c, "%s", "out of memory");
    for (size_t i = 0; i < k; i++)
        if ((pr[i] = gen(c, json_array_get(prefix, i))) < 0) {
            free(pr);
            return -1;
        }
    if (item_rule == -2) {
        if (mn > (long long)k) {
            free(pr);
            return scfail(c, "%s", "minItems larger than the prefixItems allowed by items:false");
        }
        if (mx < 0 || mx > (long long)k) mx = (long long)k;
    }
    char itxt[32];
    if (item_rule >= 0) snprintf(itxt, sizeof itxt, "s%d", item_rule);
    else snprintf(itxt, sizeof itxt, "value");
    /* element j (0-based) text: prefix rule or items */
    /* A_j ::= "," ws e_j ws A_{j+1} | "" (if j >= mn); first element has no comma */
    long long kk = (long long)k;
    if (mx >= 0 && kk > mx) kk = mx;
    int base = c->n_rules;
    c->n_rules += (int)kk + 2;
    for (long long j = 1; j <= kk; j++) {
        int A = base + (int)j;
        if (j < kk) {
            sl_buf_printf(&c->rules, "s%d ::= \",\" ws s%d ws s%d", A, pr[j], A + 1);
        } else { /* tail: items repeated */
            long long tmin = mn > kk ? mn - kk : 0, tmax = mx < 0 ? -1 : mx - kk;
            sl_buf_printf(&c->rules, "s%d ::= ", A);
            if (tmax == 0 || item_rule == -2) {
                sl_buf_puts(&c->rules, "\"\"");
            } else if (tmax < 0) {
                sl_buf_printf(&c->rules, "( \",\" ws %s ws ){%lld,}", itxt, tmin);
            } else {
                sl_buf_printf(&c->rules, "( \",\" ws %s ws ){%lld,%lld}", itxt, tmin, tmax);
            }
            sl_buf_puts(&c->rules, "\n");
            continue;
        }
        if (j >= mn) sl_buf_puts(&c->rules, " | \"\"");
        sl_buf_puts(&c->rules, "\n");
    }
    if (kk == 0) {
        /* no prefix: classic form */
        if (mx == 0 || item_rule == -2) {
            sl_buf_puts(b, "\"[\" ws \"]\"");
        } else {
            sl_buf_printf(b, "\"[\" ws %s%s ws ( \",\" ws %s ws )", mn == 0 ? "( " : "", itxt, itxt);
            long long a = mn > 0 ? mn - 1 : 0;
            if (mx < 0) sl_buf_printf(b, "{%lld,}", a);
            else sl_buf_printf(b, "{%lld,%lld}", a, mx - 1);
            sl_buf_puts(b, mn == 0 ? " )? \"]\"" : " \"]\"");
        }
    } else {
        sl_buf_printf(b, "\"[\" ws %ss%d ws s%d%s \"]\"", mn == 0 ? "( " : "", pr[0], base + 1,
                      mn == 0 ? " )?" : "");
    }
    free(pr);
    return 0;
}

/* ---- one schema node ---- */

static int gen_typed(sc_t *c, const json_t *s, const char *t, sl_buf_t *b) {
    if (strcmp(t, "string") == 0) return gen_string(c, s, b);
    if (strcmp(t, "integer") == 0) return gen_numeric(c, s, true, b);
    if (strcmp(t, "number") == 0) return gen_numeric(c, s, false, b);
    if (strcmp(t, "boolean") == 0) return sl_buf_puts(b, "boolean"), 0;
    if (strcmp(t, "null") == 0) return sl_buf_puts(b, "null"), 0;
    if (strcmp(t, "object") == 0) return gen_object(c, s, b);
    if (strcmp(t, "array") == 0) return gen_array(c, s, b);
    return scfail(c, "unknown type '%s'", t);
}

static int gen_body(sc_t *c, const json_t *s, sl_buf_t *b) {
    if (json_is_true(s)) return sl_buf_puts(b, "value"), 0;
    if (json_is_false(s)) return scfail(c, "%s", "schema 'false' matches nothing");
    if (!json_is_object(s)) return scfail(c, "%s", "a schema must be an object or a boolean");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (!in_list(k, HANDLED) && !in_list(k, ANNOTATIONS))
            return scfail(c, "unsupported JSON Schema keyword '%s'", k);
    }
    json_t *nullable = json_object_get(s, "nullable");
    bool add_null = nullable && json_is_true(nullable);
    if (add_null) sl_buf_puts(b, "null | ");
    json_t *ref = json_object_get(s, "$ref");
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    json_t *all = json_object_get(s, "allOf");
    int n_comb = !!ref + !!en + !!cn + !!any + !!one + !!all;
    if (n_comb > 1) return scfail(c, "%s", "combining $ref/enum/const/anyOf/oneOf/allOf in one schema is not supported");
    if (n_comb == 1) {
        json_object_foreach((json_t *)s, k, v) {
            if (in_list(k, ANNOTATIONS) || !strcmp(k, "nullable") || !strcmp(k, "$ref") ||
                !strcmp(k, "enum") || !strcmp(k, "const") || !strcmp(k, "anyOf") ||
                !strcmp(k, "oneOf") || !strcmp(k, "allOf") || !strcmp(k, "type"))
                continue;
            return scfail(c, "keyword '%s' next to $ref/enum/const/anyOf/oneOf/allOf is not supported", k);
        }
    }
    if (ref) {
        if (!json_is_string(ref)) return scfail(c, "%s", "'$ref' must be a string");
        const json_t *t = resolve_ref(c, json_string_value(ref));
        if (!t) return -1;
        int id = -1;
        for (int i = 0; i < c->n_refs; i++)
            if (c->ref_nodes[i] == t) id = c->ref_ids[i];
        if (id < 0) {
            if (c->n_refs == c->cap_refs) {
                int nc = c->cap_refs ? c->cap_refs * 2 : 16;
                const json_t **p = realloc(c->ref_nodes, (size_t)nc * sizeof *p);
                if (p) c->ref_nodes = p;
                int *q = p ? realloc(c->ref_ids, (size_t)nc * sizeof *q) : NULL;
                if (!p || !q) return scfail(c, "%s", "out of memory");
                c->ref_ids = q;
                c->cap_refs = nc;
            }
            /* reserve the id first so recursion finds it */
            id = new_rule(c);
            c->ref_nodes[c->n_refs] = t;
            c->ref_ids[c->n_refs++] = id;
            int sub = gen(c, t);
            if (sub < 0) return -1;
            sl_buf_printf(&c->rules, "s%d ::= s%d\n", id, sub);
        }
        sl_buf_printf(b, "s%d", id);
        return 0;
    }
    if (en || cn) {
        if (en && (!json_is_array(en) || json_array_size(en) == 0))
            return scfail(c, "%s", "'enum' must be a non-empty array");
        if (en && json_array_size(en) > 10000) return scfail(c, "%s", "'enum' has too many values");
        size_t n = en ? json_array_size(en) : 1;
        sl_buf_puts(b, "( ");
        for (size_t i = 0; i < n; i++) {
            if (i) sl_buf_puts(b, " | ");
            if (put_json_lit(c, b, en ? json_array_get(en, i) : cn) < 0) return -1;
        }
        sl_buf_puts(b, " )");
        return 0;
    }
    if (any || one) {
        json_t *arr = any ? any : one;
        if (!json_is_array(arr) || json_array_size(arr) == 0)
            return scfail(c, "%s", "'anyOf'/'oneOf' must be a non-empty array");
        sl_buf_puts(b, "( ");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int sub = gen(c, json_array_get(arr, i));
            if (sub < 0) return -1;
            sl_buf_printf(b, "%ss%d", i ? " | " : "", sub);
        }
        sl_buf_puts(b, " )");
        return 0;
    }
    if (all) {
        if (!json_is_array(all) || json_array_size(all) == 0)
            return scfail(c, "%s", "'allOf' must be a non-empty array");
        if (json_array_size(all) == 1) {
            int sub = gen(c, json_array_get(all, 0));
            if (sub < 0) return -1;
            sl_buf_printf(b, "s%d", sub);
            return 0;
        }
        /* merge object schemas: properties and required */
        json_t *m = json_object(), *mp = json_object(), *mr = json_array();
        bool closed = false;
        int rc = 0;
        for (size_t i = 0; i < json_array_size(all) && rc == 0; i++) {
            const json_t *sub = json_array_get(all, i);
            for (int hop = 0; hop < 16 && json_is_object(sub) && json_object_get(sub, "$ref"); hop++) {
                json_t *r = json_object_get(sub, "$ref");
                sub = json_is_string(r) ? resolve_ref(c, json_string_value(r)) : NULL;
            }
            if (!json_is_object(sub)) {
                rc = scfail(c, "%s", "allOf: only object schemas can be combined");
                break;
            }
            json_object_foreach((json_t *)sub, k, v) {
                if (!strcmp(k, "properties") && json_is_object(v)) {
                    json_object_update(mp, v);
                } else if (!strcmp(k, "required") && json_is_array(v)) {
                    json_array_extend(mr, v);
                } else if (!strcmp(k, "additionalProperties") && json_is_false(v)) {
                    closed = true;
                } else if (!strcmp(k, "type") && json_is_string(v) && !strcmp(json_string_value(v), "object")) {
                } else if (!in_list(k, ANNOTATIONS)) {
                    rc = scfail(c, "allOf: keyword '%s' cannot be merged (only object properties/required)", k);
                    break;
                }
            }
        }
        if (rc == 0) {
            json_object_set_new(m, "type", json_string("object"));
            json_object_set_new(m, "properties", mp);
            json_object_set_new(m, "required", mr);
            if (closed) json_object_set_new(m, "additionalProperties", json_false());
            mp = mr = NULL;
            rc = gen_object(c, m, b);
        }
        json_decref(mp);
        json_decref(mr);
        json_decref(m);
        return rc;
    }
    json_t *type = json_object_get(s, "type");
    if (type && json_is_string(type)) return gen_typed(c, s, json_string_value(type), b);
    if (type && json_is_array(type)) {
        if (json_array_size(type) == 0) return scfail(c, "%s", "'type' must not be empty");
        sl_buf_puts(b, "( ");
        for (size_t i = 0; i < json_array_size(type); i++) {
            json_t *t = json_array_get(type, i);
            if (!json_is_string(t)) return scfail(c, "%s", "'type' entries must be strings");
            if (i) sl_buf_puts(b, " | ");
            if (gen_typed(c, s, json_string_value(t), b) < 0) return -1;
        }
        sl_buf_puts(b, " )");
        return 0;
    }
    if (type) return scfail(c, "%s", "'type' must be a string or an array");
    /* no type: infer from keywords */
    if (json_object_get(s, "properties") || json_object_get(s, "required") ||
        json_object_get(s, "additionalProperties"))
        return gen_object(c, s, b);
    if (json_object_get(s, "items") || json_object_get(s, "prefixItems") ||
        json_object_get(s, "minItems") || json_object_get(s, "maxItems"))
        return gen_array(c, s, b);
    if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") ||
        json_object_get(s, "pattern") || json_object_get(s, "format"))
        return gen_string(c, s, b);
    if (json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
        json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum"))
        return gen_numeric(c, s, false, b);
    sl_buf_puts(b, "value");
    return 0;
}

/* Emits a rule for schema s; returns its id. */
static int gen(sc_t *c, const json_t *s) {
    if (c->failed) return -1;
    if (++c->depth > SC_MAX_DEPTH) return scfail(c, "%s", "schema nested too deeply");
    if (c->rules.len > SC_MAX_TEXT) return scfail(c, "%s", "schema too large");
    sl_buf_t body = {0};
    int id = new_rule(c);
    int rc = gen_body(c, s, &body);
    if (rc == 0) {
        sl_buf_printf(&c->rules, "s%d ::= ", id);
        sl_buf_append(&c->rules, body.data ? body.data : "\"\"", body.data ? body.len : 2);
        sl_buf_puts(&c->rules, "\n");
    }
    sl_buf_free(&body);
    c->depth--;
    return rc < 0 ? -1 : id;
}

char *gram_json_schema_to_gbnf(const json_t *schema, char *err, size_t errlen) {
    sc_t c;
    memset(&c, 0, sizeof c);
    c.root = schema;
    c.err = err;
    c.errlen = errlen;
    if (!schema) {
        sl_err(err, errlen, "schema: missing");
        return NULL;
    }
    int r = gen(&c, schema);
    free(c.ref_nodes);
    free(c.ref_ids);
    if (r < 0) {
        sl_buf_free(&c.rules);
        return NULL;
    }
    sl_buf_t out = {0};
    sl_buf_printf(&out, "root ::= s%d\n", r);
    sl_buf_append(&out, c.rules.data, c.rules.len);
    sl_buf_puts(&out, JSON_BASE);
    sl_buf_free(&c.rules);
    if (!out.data) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    return sl_buf_steal(&out);
}

gram_t *gram_from_json_schema(const json_t *schema, char *err, size_t errlen) {
    char *src = gram_json_schema_to_gbnf(schema, err, errlen);
    if (!src) return NULL;
    gram_t *g = gram_from_gbnf(src, err, errlen);
    free(src);
    return g;
}
