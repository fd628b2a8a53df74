/*
 * jinja_value.c — the interpreter's values: arena, lists, insertion-ordered
 * dicts, Python-compatible equality / truthiness / str() / repr(), json.dumps
 * as transformers' tojson calls it, conversion from jansson, UTF-8 helpers.
 *
 * Templates print values, so their text must be byte-identical to Python's:
 * floats use the shortest repr that round-trips ("0.1", "1e-05", "1e+16"),
 * strings in repr() pick their quote like Python and escape non-printable
 * code points, lists print as "['a', 1]", tuples as "(1,)", dicts as
 * "{'k': 'v'}".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat/jinja.h"

/* ---- arena ---- */

struct jz_chunk {
    jz_chunk_t *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *jz_alloc(jz_arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (a->used + n > a->limit || a->used + n < a->used)) {
        a->hit_limit = true;
        return NULL;
    }
    jz_chunk_t *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > 65536 - sizeof(jz_chunk_t) ? n : 65536 - sizeof(jz_chunk_t);
        c = malloc(sizeof(jz_chunk_t) + sz);
        if (!c) return NULL;
        c->size = sz;
        c->used = 0;
        /* A big allocation gets its own chunk behind the current one, so
         * the current chunk's free space is not wasted. */
        if (a->head && n > 4096) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *jz_strndup(jz_arena_t *a, const char *s, size_t n) {
    char *p = jz_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void jz_arena_free(jz_arena_t *a) {
    jz_chunk_t *c = a->head;
    while (c) {
        jz_chunk_t *nx = c->next;
        free(c);
        c = nx;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- containers ---- */

jlist_t *jlist_new(jz_arena_t *a, size_t cap) {
    jlist_t *l = jz_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        size_t bytes;
        if (!sl_mul_size(cap, sizeof(jv_t), &bytes) || !(l->v = jz_alloc(a, bytes))) return NULL;
        l->cap = cap;
    }
    return l;
}

int jlist_push(jz_arena_t *a, jlist_t *l, jv_t v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4, bytes;
        if (!sl_mul_size(nc, sizeof(jv_t), &bytes)) return -1;
        jv_t *nv = jz_alloc(a, bytes);
        if (!nv) return -1;
        if (l->n) memcpy(nv, l->v, l->n * sizeof(jv_t));
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

jdict_t *jdict_new(jz_arena_t *a, size_t cap) {
    jdict_t *d = jz_alloc(a, sizeof *d);
    if (!d) return NULL;
    if (cap) {
        size_t bytes;
        if (!sl_mul_size(cap, sizeof(jv_t), &bytes)) return NULL;
        if (!(d->k = jz_alloc(a, bytes)) || !(d->v = jz_alloc(a, bytes))) return NULL;
        d->cap = cap;
    }
    return d;
}

static bool key_eq(jv_t a, jv_t b) {
    if (a.t == JV_STR && b.t == JV_STR) return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    return jv_equal(a, b);
}

const jv_t *jdict_get(const jdict_t *d, jv_t k) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

const jv_t *jdict_get_str(const jdict_t *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, k, n)) return &d->v[i];
    return NULL;
}

int jdict_set(jz_arena_t *a, jdict_t *d, jv_t k, jv_t v) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->k[i], k)) {
            d->v[i] = v;
            return 0;
        }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4, bytes;
        if (!sl_mul_size(nc, sizeof(jv_t), &bytes)) return -1;
        jv_t *nk = jz_alloc(a, bytes), *nv = jz_alloc(a, bytes);
        if (!nk || !nv) return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(jv_t));
            memcpy(nv, d->v, d->n * sizeof(jv_t));
        }
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

/* ---- semantics ---- */

bool jv_truthy(jv_t v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

static bool is_num(jv_t v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double num_f(jv_t v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t num_i(jv_t v) { return v.t == JV_INT ? v.u.i : (int64_t)v.u.b; }

bool jv_equal(jv_t a, jv_t b) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            const jv_t *o = jdict_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o)) return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

const char *jv_type_name(jv_t v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_FUNC: return "function";
    case JV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ---- UTF-8 ---- */

uint32_t ju_decode(const char *p, size_t n, size_t *adv) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)(n > 4 ? 4 : n), &cp);
    if (r <= 0) {
        *adv = 1;
        return (unsigned char)p[0];
    }
    *adv = (size_t)r;
    return (uint32_t)cp;
}

size_t ju_len(const char *p, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)p[i];
        if (b < 0x80) {
            i++;
        } else {
            size_t adv;
            ju_decode(p + i, n - i, &adv);
            i += adv;
        }
        c++;
    }
    return c;
}

size_t ju_offset(const char *p, size_t n, size_t idx) {
    size_t i = 0;
    while (idx > 0 && i < n) {
        if ((unsigned char)p[i] < 0x80) {
            i++;
        } else {
            size_t adv;
            ju_decode(p + i, n - i, &adv);
            i += adv;
        }
        idx--;
    }
    return i;
}

bool ju_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* ---- text forms ---- */

void jv_fmt_float(char *buf, size_t n, double f) {
    if (isnan(f)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, n, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        snprintf(buf, n, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* shortest %.{p}e that round-trips, then Python's repr layout */
    char tmp[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d.ddde[+-]xx ; digits and exponent */
    char digits[24];
    int nd = 0, exp10;
    const char *q = tmp;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 < -4 || exp10 >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = digits[i];
    } else {
        for (int i = 0; i <= exp10; i++) out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd > exp10 + 1) {
            for (int i = exp10 + 1; i < nd; i++) out[o++] = digits[i];
        } else {
            out[o++] = '0';
        }
    }
    out[o] = 0;
    snprintf(buf, n, "%s", out);
}

static bool py_printable(uint32_t cp) {
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    if (cp == ' ') return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    switch (c) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
    }
}

static int repr_str(sl_buf_t *b, const char *p, size_t n) {
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (sl_buf_putc(b, q)) return -1;
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = ju_decode(p + i, n - i, &adv);
        int r;
        if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            r = sl_buf_append(b, e, 2);
        } else if (cp == '\n') {
            r = sl_buf_puts(b, "\\n");
        } else if (cp == '\r') {
            r = sl_buf_puts(b, "\\r");
        } else if (cp == '\t') {
            r = sl_buf_puts(b, "\\t");
        } else if (py_printable(cp)) {
            r = sl_buf_append(b, p + i, adv);
        } else if (cp < 0x100) {
            r = sl_buf_printf(b, "\\x%02x", cp);
        } else if (cp < 0x10000) {
            r = sl_buf_printf(b, "\\u%04x", cp);
        } else {
            r = sl_buf_printf(b, "\\U%08x", cp);
        }
        if (r) return -1;
        i += adv;
    }
    return sl_buf_putc(b, q);
}

static int str_depth(sl_buf_t *b, jv_t v, bool repr, int depth);

static int str_seq(sl_buf_t *b, jv_t v, int depth) {
    const jlist_t *l = v.u.l;
    if (sl_buf_putc(b, l->tuple ? '(' : '[')) return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (i && sl_buf_puts(b, ", ")) return -1;
        if (str_depth(b, l->v[i], true, depth + 1)) return -1;
    }
    if (l->tuple && l->n == 1 && sl_buf_putc(b, ',')) return -1;
    return sl_buf_putc(b, l->tuple ? ')' : ']');
}

static int str_dict(sl_buf_t *b, const jdict_t *d, int depth) {
    if (sl_buf_putc(b, '{')) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if (i && sl_buf_puts(b, ", ")) return -1;
        if (str_depth(b, d->k[i], true, depth + 1) || sl_buf_puts(b, ": ") ||
            str_depth(b, d->v[i], true, depth + 1))
            return -1;
    }
    return sl_buf_putc(b, '}');
}

static int str_depth(sl_buf_t *b, jv_t v, bool repr, int depth) {
    if (depth > 200) return -1;
    char num[64];
    switch (v.t) {
    case JV_UNDEF: return repr ? sl_buf_puts(b, "Undefined") : 0;
    case JV_NONE: return sl_buf_puts(b, "None");
    case JV_BOOL: return sl_buf_puts(b, v.u.b ? "True" : "False");
    case JV_INT: return sl_buf_printf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: jv_fmt_float(num, sizeof num, v.u.f); return sl_buf_puts(b, num);
    case JV_STR:
        if (repr) return repr_str(b, v.u.s.p, v.u.s.n);
        return sl_buf_append(b, v.u.s.p, v.u.s.n);
    case JV_LIST: return str_seq(b, v, depth);
    case JV_DICT: return str_dict(b, v.u.d, depth);
    case JV_NS: return sl_buf_puts(b, "<Namespace ") || str_dict(b, v.u.d, depth) || sl_buf_putc(b, '>');
    case JV_FUNC: return sl_buf_puts(b, "<function>");
    case JV_LOOP: return sl_buf_printf(b, "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->length);
    }
    return 0;
}

int jv_str(sl_buf_t *b, jv_t v) { return str_depth(b, v, false, 0); }
int jv_repr(sl_buf_t *b, jv_t v) { return str_depth(b, v, true, 0); }

/* ---- JSON ---- */

typedef struct json_ctx {
    bool ascii, sort;
    int indent;
    const char *isep, *ksep;
    char *err;
    size_t errlen;
} json_ctx_t;

static int json_str(sl_buf_t *b, const char *p, size_t n, bool ascii) {
    if (sl_buf_putc(b, '"')) return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        int r = 0;
        if (c == '"') r = sl_buf_puts(b, "\\\"");
        else if (c == '\\') r = sl_buf_puts(b, "\\\\");
        else if (c == '\n') r = sl_buf_puts(b, "\\n");
        else if (c == '\r') r = sl_buf_puts(b, "\\r");
        else if (c == '\t') r = sl_buf_puts(b, "\\t");
        else if (c == '\b') r = sl_buf_puts(b, "\\b");
        else if (c == '\f') r = sl_buf_puts(b, "\\f");
        else if (c < 0x20 || (ascii && c == 0x7f)) r = sl_buf_printf(b, "\\u%04x", c);
        else if (c < 0x80 || !ascii) r = sl_buf_putc(b, (char)c);
        else {
            size_t adv;
            uint32_t cp = ju_decode(p + i, n - i, &adv);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                r = sl_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                r = sl_buf_printf(b, "\\u%04x", cp);
            }
            if (r) return -1;
            i += adv;
            continue;
        }
        if (r) return -1;
        i++;
    }
    return sl_buf_putc(b, '"');
}

static int json_newline(sl_buf_t *b, const json_ctx_t *c, int level) {
    if (c->indent < 0) return 0;
    if (sl_buf_putc(b, '\n')) return -1;
    for (int i = 0; i < c->indent * level; i++)
        if (sl_buf_putc(b, ' ')) return -1;
    return 0;
}

static int json_val(sl_buf_t *b, jv_t v, const json_ctx_t *c, int level);

static int json_key(sl_buf_t *b, jv_t k, const json_ctx_t *c) {
    char num[64];
    switch (k.t) {
    case JV_STR: return json_str(b, k.u.s.p, k.u.s.n, c->ascii);
    case JV_INT: return sl_buf_printf(b, "\"%lld\"", (long long)k.u.i);
    case JV_FLOAT: jv_fmt_float(num, sizeof num, k.u.f); return sl_buf_printf(b, "\"%s\"", num);
    case JV_BOOL: return sl_buf_puts(b, k.u.b ? "\"true\"" : "\"false\"");
    case JV_NONE: return sl_buf_puts(b, "\"null\"");
    default:
        sl_err(c->err, c->errlen, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
        return -1;
    }
}

static int cmp_keys(const void *x, const void *y) {
    const jv_t *a = *(const jv_t *const *)x, *b = *(const jv_t *const *)y;
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t n = SL_MIN(a->u.s.n, b->u.s.n);
        int r = memcmp(a->u.s.p, b->u.s.p, n);
        return r ? r : (a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n);
    }
    return 0;
}

static int json_val(sl_buf_t *b, jv_t v, const json_ctx_t *c, int level) {
    char num[64];
    if (level > 200) {
        sl_err(c->err, c->errlen, "value nested too deeply for tojson");
        return -1;
    }
    switch (v.t) {
    case JV_NONE: return sl_buf_puts(b, "null");
    case JV_BOOL: return sl_buf_puts(b, v.u.b ? "true" : "false");
    case JV_INT: return sl_buf_printf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT:
        if (isnan(v.u.f)) return sl_buf_puts(b, "NaN");
        if (isinf(v.u.f)) return sl_buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        jv_fmt_float(num, sizeof num, v.u.f);
        return sl_buf_puts(b, num);
    case JV_STR: return json_str(b, v.u.s.p, v.u.s.n, c->ascii);
    case JV_LIST: {
        const jlist_t *l = v.u.l;
        if (!l->n) return sl_buf_puts(b, "[]");
        if (sl_buf_putc(b, '[')) return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i && sl_buf_puts(b, c->isep)) return -1;
            if (json_newline(b, c, level + 1) || json_val(b, l->v[i], c, level + 1)) return -1;
        }
        if (json_newline(b, c, level)) return -1;
        return sl_buf_putc(b, ']');
    }
    case JV_DICT: {
        const jdict_t *d = v.u.d;
        if (!d->n) return sl_buf_puts(b, "{}");
        size_t *order = malloc(d->n * sizeof *order);
        if (!order) return -1;
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (c->sort) { /* stable insertion sort by string key */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    const jv_t *pa = &d->k[order[j - 1]], *pb = &d->k[x];
                    if (cmp_keys(&pa, &pb) <= 0) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        int r = sl_buf_putc(b, '{');
        for (size_t i = 0; !r && i < d->n; i++) {
            size_t k = order[i];
            if (i) r = sl_buf_puts(b, c->isep);
            if (!r) r = json_newline(b, c, level + 1);
            if (!r) r = json_key(b, d->k[k], c);
            if (!r) r = sl_buf_puts(b, c->ksep);
            if (!r) r = json_val(b, d->v[k], c, level + 1);
        }
        free(order);
        if (r || json_newline(b, c, level)) return -1;
        return sl_buf_putc(b, '}');
    }
    default:
        sl_err(c->err, c->errlen, "Object of type %s is not JSON serializable", jv_type_name(v));
        return -1;
    }
}

int jv_json(sl_buf_t *b, jv_t v, bool ensure_ascii, int indent, const char *item_sep, const char *key_sep,
            bool sort_keys, char *err, size_t errlen) {
    json_ctx_t c = {.ascii = ensure_ascii, .sort = sort_keys, .indent = indent, .err = err, .errlen = errlen};
    c.isep = item_sep ? item_sep : indent >= 0 ? "," : ", ";
    c.ksep = key_sep ? key_sep : ": ";
    if (err && errlen) err[0] = 0;
    int r = json_val(b, v, &c, 0);
    if (r && err && errlen && !err[0]) sl_err(err, errlen, "out of memory");
    return r;
}

int jv_from_json(jz_arena_t *a, const json_t *j, jv_t *out, int depth) {
    if (depth > 200) return -1;
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_STRING: {
        size_t n = json_string_length(j);
        char *p = jz_strndup(a, json_string_value(j), n);
        if (!p) return -1;
        *out = jv_strn(p, n);
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jlist_t *l = jlist_new(a, n);
        if (!l) return -1;
        for (size_t i = 0; i < n; i++) {
            jv_t x;
            if (jv_from_json(a, json_array_get(j, i), &x, depth + 1)) return -1;
            l->v[l->n++] = x;
        }
        out->t = JV_LIST;
        out->safe = 0;
        out->u.l = l;
        return 0;
    }
    case JSON_OBJECT: {
        jdict_t *d = jdict_new(a, json_object_size(j));
        if (!d) return -1;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            jv_t x;
            size_t kl = strlen(k);
            char *kp = jz_strndup(a, k, kl);
            if (!kp || jv_from_json(a, v, &x, depth + 1)) return -1;
            /* keys of a JSON object are unique; append directly */
            d->k[d->n] = jv_strn(kp, kl);
            d->v[d->n] = x;
            d->n++;
        }
        out->t = JV_DICT;
        out->safe = 0;
        out->u.d = d;
        return 0;
    }
    }
    return -1;
}
