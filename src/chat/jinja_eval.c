/*
 * jinja_eval.c — walks the syntax tree and renders, with jinja2's runtime
 * semantics as transformers configures them (see jinja.h), inside a
 * sandbox:
 *
 *   - every statement and expression evaluated costs one step; past
 *     max_steps the render stops with an error (runaway loops);
 *   - C recursion (nested expressions, macro calls) is bounded by max_depth;
 *   - every output buffer is bounded by max_output bytes and all values live
 *     in an arena bounded by max_memory;
 *   - the template reaches only the variables it is given and the builtins
 *     below; methods that would mutate a list or dict are "unsafe" exactly as
 *     in jinja2's ImmutableSandboxedEnvironment.
 *
 * Scopes: the top-level scope holds the render variables; each for-loop
 * iteration, macro call and with-block gets a child scope, so a `set` inside
 * them does not leak out (as in jinja2); `if` makes no scope. Macros see
 * their defining scope by reference (names resolve at call time).
 *
 * Undefined follows jinja2's default Undefined: printing or iterating it is
 * fine ("" / nothing), `is defined` is false, but attribute access, calls
 * and arithmetic on it fail with the message jinja2 would give.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "chat/jinja.h"

enum { SIG_OK = 0, SIG_BREAK = 1, SIG_CONTINUE = 2, SIG_ERR = -1 };

typedef struct scope scope_t;
struct scope {
    scope_t *parent;
    jdict_t *vars;
};

enum jf_kind { JF_BUILTIN, JF_METHOD, JF_MACRO, JF_CALLER };

struct jfunc {
    int kind;
    const char *name;   /* builtin / method name, macro name */
    jv_t self;          /* bound object for methods */
    const jnode_t *def; /* JN_MACRO or JN_CALLBLOCK */
    scope_t *closure;
    jv_t caller;        /* for a macro invoked by a call block */
};

typedef struct R {
    jz_arena_t *a;
    const jinja_limits_t *lim;
    size_t steps;
    int depth;
    char *err;
    size_t errlen;
    bool failed;
} R;

typedef struct args {
    jv_t *pos;
    size_t npos;
    const char **kwn;
    jv_t *kwv;
    size_t nkw;
} args_t;

static int fail(R *r, const jnode_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(R *r, const jnode_t *at, const char *fmt, ...) {
    if (r->failed) return SIG_ERR;
    r->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) sl_err(r->err, r->errlen, "%d:%d: %s", at->line, at->col, msg);
    else sl_err(r->err, r->errlen, "%s", msg);
    return SIG_ERR;
}

static int oom(R *r, const jnode_t *at) {
    if (r->a->hit_limit)
        return fail(r, at, "template used too much memory (limit %zu bytes)", r->a->limit);
    return fail(r, at, "out of memory");
}

static int step(R *r, const jnode_t *at) {
    if (++r->steps > r->lim->max_steps)
        return fail(r, at, "template exceeded its step limit (%zu steps)", r->lim->max_steps);
    return 0;
}

static int check_out(R *r, const jnode_t *at, const sl_buf_t *b) {
    if (b->len > r->lim->max_output)
        return fail(r, at, "template output exceeded the limit of %zu bytes", r->lim->max_output);
    return 0;
}

/* ---- small constructors ---- */

static int mkstr(R *r, const jnode_t *at, const char *p, size_t n, jv_t *out) {
    char *c = jz_strndup(r->a, p, n);
    if (!c) return oom(r, at);
    *out = jv_strn(c, n);
    return 0;
}

static int buf_str(R *r, const jnode_t *at, sl_buf_t *b, jv_t *out) {
    int rc = mkstr(r, at, b->data ? b->data : "", b->len, out);
    sl_buf_free(b);
    return rc;
}

static jv_t jv_list(jlist_t *l) {
    jv_t v = {0};
    v.t = JV_LIST;
    v.u.l = l;
    return v;
}
static jv_t jv_dict(jdict_t *d) {
    jv_t v = {0};
    v.t = JV_DICT;
    v.u.d = d;
    return v;
}
static jv_t jv_func(jfunc_t *f) {
    jv_t v = {0};
    v.t = JV_FUNC;
    v.u.fn = f;
    return v;
}
static jv_t undef_hint(R *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static jv_t undef_hint(R *r, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jv_t v = jv_undef();
    v.u.s.p = jz_strndup(r->a, msg, strlen(msg));
    return v;
}
static const char *undef_msg(jv_t v) { return v.u.s.p ? v.u.s.p : "value is undefined"; }

static int fail_undef(R *r, const jnode_t *at, jv_t v) { return fail(r, at, "%s", undef_msg(v)); }

static jfunc_t *mkfunc(R *r, int kind, const char *name, jv_t self) {
    jfunc_t *f = jz_alloc(r->a, sizeof *f);
    if (!f) return NULL;
    f->kind = kind;
    f->name = name;
    f->self = self;
    return f;
}

/* short type name for messages, like jinja2's "'dict object'" */
static const char *tname(jv_t v) { return jv_type_name(v); }

/* ---- args ---- */

static bool arg_get(const args_t *a, size_t idx, const char *name, jv_t *out) {
    if (idx < a->npos) {
        *out = a->pos[idx];
        return true;
    }
    for (size_t i = 0; i < a->nkw; i++)
        if (!strcmp(a->kwn[i], name)) {
            *out = a->kwv[i];
            return true;
        }
    return false;
}

static bool str_is(jv_t v, const char *s) {
    size_t n = strlen(s);
    return v.t == JV_STR && v.u.s.n == n && !memcmp(v.u.s.p, s, n);
}

/* ---- comparison / arithmetic ---- */

static bool is_num(jv_t v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double num_f(jv_t v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t num_i(jv_t v) { return v.t == JV_INT ? v.u.i : (int64_t)v.u.b; }

/* Python ordering: -1/0/1 in *res, or error for incomparable types. */
static int compare(R *r, const jnode_t *at, jv_t a, jv_t b, const char *op, int *res) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        } else {
            int64_t x = num_i(a), y = num_i(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        }
        return 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = SL_MIN(a.u.s.n, b.u.s.n);
        int c = memcmp(a.u.s.p, b.u.s.p, n);
        *res = c < 0 ? -1 : c > 0 ? 1 : a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
        return 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        size_t n = SL_MIN(a.u.l->n, b.u.l->n);
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return compare(r, at, a.u.l->v[i], b.u.l->v[i], op, res);
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    if (a.t == JV_UNDEF) return fail_undef(r, at, a);
    if (b.t == JV_UNDEF) return fail_undef(r, at, b);
    return fail(r, at, "'%s' not supported between instances of '%s' and '%s'", op, tname(a), tname(b));
}

static int py_format(R *r, const jnode_t *at, jv_t fmt, jv_t args, jv_t *out);

static int arith(R *r, const jnode_t *at, int op, jv_t a, jv_t b, jv_t *out) {
    static const char *const opname[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    if (a.t == JV_UNDEF) return fail_undef(r, at, a);
    if (b.t == JV_UNDEF) return fail_undef(r, at, b);
    if (is_num(a) && is_num(b)) {
        bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
        if (!fl) {
            int64_t x = num_i(a), y = num_i(b), z;
            switch (op) {
            case JO_ADD: if (__builtin_add_overflow(x, y, &z)) goto ovf; *out = jv_int(z); return 0;
            case JO_SUB: if (__builtin_sub_overflow(x, y, &z)) goto ovf; *out = jv_int(z); return 0;
            case JO_MUL: if (__builtin_mul_overflow(x, y, &z)) goto ovf; *out = jv_int(z); return 0;
            case JO_DIV:
                if (y == 0) return fail(r, at, "division by zero");
                *out = jv_float((double)x / (double)y);
                return 0;
            case JO_FLOORDIV:
            case JO_MOD: {
                if (y == 0) return fail(r, at, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) goto ovf;
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                *out = jv_int(op == JO_FLOORDIV ? q : m);
                return 0;
            }
            case JO_POW:
                if (y < 0) {
                    *out = jv_float(pow((double)x, (double)y));
                    return 0;
                } else {
                    int64_t acc = 1, base = x;
                    int64_t e = y;
                    while (e > 0) {
                        if (e & 1)
                            if (__builtin_mul_overflow(acc, base, &acc)) goto ovf;
                        e >>= 1;
                        if (e && __builtin_mul_overflow(base, base, &base)) goto ovf;
                    }
                    *out = jv_int(acc);
                    return 0;
                }
            }
        } else {
            double x = num_f(a), y = num_f(b);
            switch (op) {
            case JO_ADD: *out = jv_float(x + y); return 0;
            case JO_SUB: *out = jv_float(x - y); return 0;
            case JO_MUL: *out = jv_float(x * y); return 0;
            case JO_DIV:
                if (y == 0) return fail(r, at, "float division by zero");
                *out = jv_float(x / y);
                return 0;
            case JO_FLOORDIV:
            case JO_MOD: {
                if (y == 0) return fail(r, at, "float modulo by zero");
                double m = fmod(x, y);
                if (m != 0 && ((m < 0) != (y < 0))) m += y;
                *out = jv_float(op == JO_MOD ? m : floor(x / y));
                return 0;
            }
            case JO_POW: *out = jv_float(pow(x, y)); return 0;
            }
        }
    }
    if (op == JO_ADD && a.t == JV_STR && b.t == JV_STR) {
        size_t n;
        if (!sl_add_size(a.u.s.n, b.u.s.n, &n)) return oom(r, at);
        char *c = jz_alloc(r->a, n + 1);
        if (!c) return oom(r, at);
        memcpy(c, a.u.s.p, a.u.s.n);
        memcpy(c + a.u.s.n, b.u.s.p, b.u.s.n);
        *out = jv_strn(c, n);
        return 0;
    }
    if (op == JO_ADD && a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        jlist_t *l = jlist_new(r->a, a.u.l->n + b.u.l->n);
        if (!l) return oom(r, at);
        l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++) l->v[l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++) l->v[l->n++] = b.u.l->v[i];
        *out = jv_list(l);
        return 0;
    }
    if (op == JO_MUL && ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))) {
        int64_t k = num_i(b);
        if (k < 0) k = 0;
        if (a.t == JV_STR) {
            size_t n;
            if (!sl_mul_size(a.u.s.n, (size_t)k, &n) || n > r->lim->max_output) return fail(r, at, "string repetition too large");
            char *c = jz_alloc(r->a, n + 1);
            if (!c) return oom(r, at);
            for (int64_t i = 0; i < k; i++) memcpy(c + (size_t)i * a.u.s.n, a.u.s.p, a.u.s.n);
            *out = jv_strn(c, n);
            return 0;
        }
        size_t n;
        if (!sl_mul_size(a.u.l->n, (size_t)k, &n) || n > 10000000) return fail(r, at, "list repetition too large");
        jlist_t *l = jlist_new(r->a, n);
        if (!l) return oom(r, at);
        l->tuple = a.u.l->tuple;
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < a.u.l->n; j++) l->v[l->n++] = a.u.l->v[j];
        *out = jv_list(l);
        return 0;
    }
    if (op == JO_MUL && (b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
        return arith(r, at, op, b, a, out);
    if (op == JO_MOD && a.t == JV_STR) return py_format(r, at, a, b, out);
    return fail(r, at, "unsupported operand type(s) for %s: '%s' and '%s'", opname[op], tname(a), tname(b));
ovf:
    return fail(r, at, "integer overflow in '%s'", opname[op]);
}

/* Python `item in container`. */
static int contains(R *r, const jnode_t *at, jv_t container, jv_t item, bool *res) {
    switch (container.t) {
    case JV_STR:
        if (item.t != JV_STR)
            return fail(r, at, "'in <string>' requires string as left operand, not %s", tname(item));
        *res = item.u.s.n == 0 || memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return 0;
    case JV_LIST:
        *res = false;
        for (size_t i = 0; i < container.u.l->n && !*res; i++) *res = jv_equal(container.u.l->v[i], item);
        return 0;
    case JV_DICT:
    case JV_NS: *res = jdict_get(container.u.d, item) != NULL; return 0;
    case JV_UNDEF: *res = false; return 0;
    default: return fail(r, at, "argument of type '%s' is not iterable", tname(container));
    }
}

/* ---- strings ---- */

typedef uint32_t (*cp_map_fn)(uint32_t);
static uint32_t cp_upper(uint32_t c) { return (uint32_t)utf8proc_toupper((utf8proc_int32_t)c); }
static uint32_t cp_lower(uint32_t c) { return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c); }

static int put_cp(sl_buf_t *b, uint32_t cp) {
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, u);
    return sl_buf_append(b, u, (size_t)n);
}

/* Maps code points: first with `first` (NULL = `rest`), others with `rest`. */
static int map_cps(sl_buf_t *b, const char *p, size_t n, cp_map_fn first, cp_map_fn rest) {
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = ju_decode(p + i, n - i, &adv);
        cp_map_fn f = (i == 0 && first) ? first : rest;
        if (put_cp(b, f ? f(cp) : cp)) return -1;
        i += adv;
    }
    return 0;
}

static bool cp_is_alpha(uint32_t cp) {
    if (cp < 0x80) return isalpha((int)cp);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}
static bool cp_is_alnum(uint32_t cp) {
    if (cp < 0x80) return isalnum((int)cp);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* Python str.title(): uppercase after a non-cased char, lowercase otherwise. */
static int py_title(sl_buf_t *b, const char *p, size_t n) {
    bool prev_cased = false;
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = ju_decode(p + i, n - i, &adv);
        bool cased = cp_is_alpha(cp);
        if (put_cp(b, cased ? (prev_cased ? cp_lower(cp) : cp_upper(cp)) : cp)) return -1;
        prev_cased = cased;
        i += adv;
    }
    return 0;
}

/* jinja2's title filter: words start after runs of [-\s({\[<]. */
static int jinja_title(sl_buf_t *b, const char *p, size_t n) {
    bool word_start = true;
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = ju_decode(p + i, n - i, &adv);
        bool sep = ju_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        if (sep) {
            if (put_cp(b, cp)) return -1;
            word_start = true;
        } else {
            if (put_cp(b, word_start ? cp_upper(cp) : cp_lower(cp))) return -1;
            word_start = false;
        }
        i += adv;
    }
    return 0;
}

static bool in_chars(uint32_t cp, const jv_t *chars) {
    if (!chars) return ju_isspace(cp);
    const char *p = chars->u.s.p;
    size_t n = chars->u.s.n;
    for (size_t i = 0; i < n;) {
        size_t adv;
        if (ju_decode(p + i, n - i, &adv) == cp) return true;
        i += adv;
    }
    return false;
}

static void strip_range(const char *p, size_t n, const jv_t *chars, bool left, bool right, size_t *s, size_t *e) {
    size_t i = 0, j = n;
    if (left)
        while (i < j) {
            size_t adv;
            uint32_t cp = ju_decode(p + i, j - i, &adv);
            if (!in_chars(cp, chars)) break;
            i += adv;
        }
    if (right)
        while (j > i) {
            size_t k = j - 1;
            while (k > i && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
            size_t adv;
            uint32_t cp = ju_decode(p + k, j - k, &adv);
            if (!in_chars(cp, chars)) break;
            j = k;
        }
    *s = i;
    *e = j;
}

static int str_of(R *r, const jnode_t *at, jv_t v, jv_t *out) {
    if (v.t == JV_STR) {
        *out = v;
        return 0;
    }
    sl_buf_t b = {0};
    if (jv_str(&b, v)) {
        sl_buf_free(&b);
        return oom(r, at);
    }
    return buf_str(r, at, &b, out);
}

static int str_replace(R *r, const jnode_t *at, jv_t s, jv_t old, jv_t new_, int64_t count, jv_t *out) {
    sl_buf_t b = {0};
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* Python inserts `new` between every code point */
        while (count < 0 || done < count) {
            if (sl_buf_append(&b, new_.u.s.p, new_.u.s.n)) goto oom_;
            done++;
            if (i >= n) break;
            size_t adv;
            ju_decode(p + i, n - i, &adv);
            if (sl_buf_append(&b, p + i, adv)) goto oom_;
            i += adv;
        }
        if (i < n && sl_buf_append(&b, p + i, n - i)) goto oom_;
        return buf_str(r, at, &b, out);
    }
    while (i <= n && (count < 0 || done < count)) {
        const char *f = memmem(p + i, n - i, old.u.s.p, old.u.s.n);
        if (!f) break;
        size_t k = (size_t)(f - p);
        if (sl_buf_append(&b, p + i, k - i) || sl_buf_append(&b, new_.u.s.p, new_.u.s.n)) goto oom_;
        if (b.len > r->lim->max_output) {
            sl_buf_free(&b);
            return fail(r, at, "string too large");
        }
        i = k + old.u.s.n;
        done++;
    }
    if (sl_buf_append(&b, p + i, n - i)) goto oom_;
    return buf_str(r, at, &b, out);
oom_:
    sl_buf_free(&b);
    return oom(r, at);
}

/* Python str.split(sep=None, maxsplit=-1); rsplit when `rev`. */
static int str_split(R *r, const jnode_t *at, jv_t s, const jv_t *sep, int64_t maxsplit, bool rev, jv_t *out) {
    jlist_t *l = jlist_new(r->a, 0);
    if (!l) return oom(r, at);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    jv_t piece;
    if (sep && sep->t == JV_STR) {
        if (sep->u.s.n == 0) return fail(r, at, "empty separator");
        if (!rev) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                const char *f = (maxsplit < 0 || k < maxsplit) ? memmem(p + i, n - i, sep->u.s.p, sep->u.s.n) : NULL;
                size_t e = f ? (size_t)(f - p) : n;
                if (mkstr(r, at, p + i, e - i, &piece) || jlist_push(r->a, l, piece)) return oom(r, at);
                if (!f) break;
                i = e + sep->u.s.n;
                k++;
            }
        } else {
            /* collect from the right, then reverse */
            size_t j = n;
            int64_t k = 0;
            for (;;) {
                size_t found = (size_t)-1;
                if ((maxsplit < 0 || k < maxsplit) && j >= sep->u.s.n)
                    for (size_t q = j - sep->u.s.n + 1; q-- > 0;)
                        if (!memcmp(p + q, sep->u.s.p, sep->u.s.n)) {
                            found = q;
                            break;
                        }
                size_t st = found == (size_t)-1 ? 0 : found + sep->u.s.n;
                if (mkstr(r, at, p + st, j - st, &piece) || jlist_push(r->a, l, piece)) return oom(r, at);
                if (found == (size_t)-1) break;
                j = found;
                k++;
            }
            for (size_t a = 0, b = l->n ? l->n - 1 : 0; a < b; a++, b--) {
                jv_t t = l->v[a];
                l->v[a] = l->v[b];
                l->v[b] = t;
            }
        }
    } else if (!rev) {
        size_t i = 0;
        int64_t k = 0;
        for (;;) {
            while (i < n) { /* skip whitespace */
                size_t adv;
                uint32_t cp = ju_decode(p + i, n - i, &adv);
                if (!ju_isspace(cp)) break;
                i += adv;
            }
            if (i >= n) break;
            if (maxsplit >= 0 && k >= maxsplit) {
                size_t e = n; /* rest, with trailing whitespace stripped */
                size_t st, en;
                strip_range(p + i, e - i, NULL, false, true, &st, &en);
                if (mkstr(r, at, p + i, en, &piece) || jlist_push(r->a, l, piece)) return oom(r, at);
                break;
            }
            size_t e = i;
            while (e < n) {
                size_t adv;
                uint32_t cp = ju_decode(p + e, n - e, &adv);
                if (ju_isspace(cp)) break;
                e += adv;
            }
            if (mkstr(r, at, p + i, e - i, &piece) || jlist_push(r->a, l, piece)) return oom(r, at);
            k++;
            i = e;
        }
    } else {
        /* rsplit() without sep: only the no-maxsplit case differs; treat like split */
        return str_split(r, at, s, sep, maxsplit < 0 ? -1 : maxsplit, false, out);
    }
    *out = jv_list(l);
    return 0;
}

/* Python %-formatting for the `format` filter and `str % x`. */
static int py_format(R *r, const jnode_t *at, jv_t fmt, jv_t args, jv_t *out) {
    sl_buf_t b = {0};
    size_t ai = 0;
    const jv_t *av = NULL;
    size_t an = 0;
    if (args.t == JV_LIST && args.u.l->tuple) {
        av = args.u.l->v;
        an = args.u.l->n;
    } else {
        av = &args;
        an = 1;
    }
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            if (sl_buf_putc(&b, p[i])) goto oom_;
            continue;
        }
        if (++i >= n) goto bad;
        if (p[i] == '%') {
            if (sl_buf_putc(&b, '%')) goto oom_;
            continue;
        }
        char spec[32];
        size_t sn = 0;
        spec[sn++] = '%';
        while (i < n && strchr("-+ #0123456789.", p[i]) && sn < 20) spec[sn++] = p[i++];
        if (i >= n) goto bad;
        char conv = p[i];
        if (ai >= an) {
            sl_buf_free(&b);
            return fail(r, at, "not enough arguments for format string");
        }
        jv_t v = av[ai++];
        int rc = 0;
        if (conv == 's' || conv == 'r') {
            sl_buf_t t = {0};
            if (conv == 's' ? jv_str(&t, v) : jv_repr(&t, v)) {
                sl_buf_free(&t);
                goto oom_;
            }
            spec[sn++] = 's';
            spec[sn] = 0;
            rc = sl_buf_printf(&b, spec, t.data ? t.data : "");
            sl_buf_free(&t);
        } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
            if (!is_num(v)) {
                sl_buf_free(&b);
                return fail(r, at, "%%%c format: a number is required, not %s", conv, tname(v));
            }
            spec[sn++] = 'l';
            spec[sn++] = 'l';
            spec[sn++] = conv == 'i' ? 'd' : conv;
            spec[sn] = 0;
            rc = sl_buf_printf(&b, spec, (long long)(v.t == JV_FLOAT ? (int64_t)v.u.f : num_i(v)));
        } else if (strchr("feEgG", conv)) {
            if (!is_num(v)) {
                sl_buf_free(&b);
                return fail(r, at, "must be real number, not %s", tname(v));
            }
            spec[sn++] = conv;
            spec[sn] = 0;
            rc = sl_buf_printf(&b, spec, num_f(v));
        } else {
            goto bad;
        }
        if (rc) goto oom_;
    }
    if (ai < an && !(args.t != JV_LIST || !args.u.l->tuple)) {
        sl_buf_free(&b);
        return fail(r, at, "not all arguments converted during string formatting");
    }
    return buf_str(r, at, &b, out);
bad:
    sl_buf_free(&b);
    return fail(r, at, "unsupported format character in format string");
oom_:
    sl_buf_free(&b);
    return oom(r, at);
}

/* Python str.format with {} / {0} / {name} fields (no format specs). */
static int str_dot_format(R *r, const jnode_t *at, jv_t fmt, const args_t *a, jv_t *out) {
    sl_buf_t b = {0};
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n, auto_idx = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if ((c == '{' || c == '}') && i + 1 < n && p[i + 1] == c) {
            if (sl_buf_putc(&b, c)) goto oom_;
            i++;
            continue;
        }
        if (c != '{') {
            if (sl_buf_putc(&b, c)) goto oom_;
            continue;
        }
        const char *e = memchr(p + i, '}', n - i);
        if (!e) {
            sl_buf_free(&b);
            return fail(r, at, "Single '{' encountered in format string");
        }
        size_t fl = (size_t)(e - (p + i + 1));
        const char *f = p + i + 1;
        jv_t v;
        bool ok;
        if (fl == 0) {
            ok = auto_idx < a->npos;
            if (ok) v = a->pos[auto_idx++];
        } else if (isdigit((unsigned char)f[0])) {
            size_t k = (size_t)strtoul(f, NULL, 10);
            ok = k < a->npos;
            if (ok) v = a->pos[k];
        } else {
            ok = false;
            for (size_t k = 0; k < a->nkw; k++)
                if (strlen(a->kwn[k]) == fl && !memcmp(a->kwn[k], f, fl)) {
                    v = a->kwv[k];
                    ok = true;
                }
        }
        if (!ok) {
            sl_buf_free(&b);
            return fail(r, at, "format field '%.*s' has no argument", (int)fl, f);
        }
        if (jv_str(&b, v)) goto oom_;
        i = (size_t)(e - p);
    }
    return buf_str(r, at, &b, out);
oom_:
    sl_buf_free(&b);
    return oom(r, at);
}

/* Indexing with Python's negative indices. */
static bool norm_index(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *out = (size_t)i;
    return true;
}

/* Python slice indices for a sequence of length n. */
static int slice_indices(R *r, const jnode_t *at, jv_t st, jv_t sp, jv_t sk, size_t n, int64_t *start, int64_t *stop,
                         int64_t *stepv) {
    int64_t N = (int64_t)n, s = 1;
    if (sk.t != JV_NONE && sk.t != JV_UNDEF) {
        if (sk.t != JV_INT && sk.t != JV_BOOL) return fail(r, at, "slice indices must be integers or None");
        s = num_i(sk);
        if (s == 0) return fail(r, at, "slice step cannot be zero");
    }
    int64_t lo = s > 0 ? 0 : -1, hi = s > 0 ? N : N - 1;
    int64_t b, e;
    if (st.t == JV_NONE || st.t == JV_UNDEF) {
        b = s > 0 ? lo : hi;
    } else {
        if (st.t != JV_INT && st.t != JV_BOOL) return fail(r, at, "slice indices must be integers or None");
        b = num_i(st);
        if (b < 0) b = b + N < lo ? lo : b + N;
        else if (b > hi) b = hi;
    }
    if (sp.t == JV_NONE || sp.t == JV_UNDEF) {
        e = s > 0 ? hi : lo;
    } else {
        if (sp.t != JV_INT && sp.t != JV_BOOL) return fail(r, at, "slice indices must be integers or None");
        e = num_i(sp);
        if (e < 0) e = e + N < lo ? lo : e + N;
        else if (e > hi) e = hi;
    }
    *start = b;
    *stop = e;
    *stepv = s;
    return 0;
}

static int do_slice(R *r, const jnode_t *at, jv_t obj, jv_t st, jv_t sp, jv_t sk, jv_t *out) {
    if (obj.t == JV_UNDEF) return fail_undef(r, at, obj);
    if (obj.t == JV_LIST) {
        int64_t b, e, s;
        if (slice_indices(r, at, st, sp, sk, obj.u.l->n, &b, &e, &s)) return -1;
        jlist_t *l = jlist_new(r->a, 0);
        if (!l) return oom(r, at);
        l->tuple = obj.u.l->tuple;
        for (int64_t i = b; s > 0 ? i < e : i > e; i += s)
            if (jlist_push(r->a, l, obj.u.l->v[i])) return oom(r, at);
        *out = jv_list(l);
        return 0;
    }
    if (obj.t == JV_STR) {
        const char *p = obj.u.s.p;
        size_t n = obj.u.s.n, cps = ju_len(p, n);
        int64_t b, e, s;
        if (slice_indices(r, at, st, sp, sk, cps, &b, &e, &s)) return -1;
        if (s == 1) {
            if (e <= b) {
                *out = jv_strn("", 0);
                return 0;
            }
            size_t ob = ju_offset(p, n, (size_t)b), oe = ju_offset(p, n, (size_t)e);
            *out = jv_strn(p + ob, oe - ob);
            return 0;
        }
        /* general step: offsets table */
        size_t *off = malloc((cps + 1) * sizeof *off);
        if (!off) return oom(r, at);
        for (size_t i = 0, k = 0; k <= cps; k++) {
            off[k] = i;
            if (i < n) {
                size_t adv;
                ju_decode(p + i, n - i, &adv);
                i += adv;
            }
        }
        sl_buf_t buf = {0};
        int rc = 0;
        for (int64_t i = b; !rc && (s > 0 ? i < e : i > e); i += s)
            rc = sl_buf_append(&buf, p + off[i], off[i + 1] - off[i]);
        free(off);
        if (rc) {
            sl_buf_free(&buf);
            return oom(r, at);
        }
        return buf_str(r, at, &buf, out);
    }
    return fail(r, at, "'%s' object is not subscriptable", tname(obj));
}

/* ---- attribute / item access ---- */

static const char *const STR_METHODS[] = {
    "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "replace", "upper", "lower",
    "title", "capitalize", "find", "rfind", "index", "count", "format", "join", "isdigit", "isalpha",
    "isalnum", "isspace", "islower", "isupper", "splitlines", "zfill", "center", "ljust", "rjust", "swapcase",
    "casefold", "isnumeric", "isdecimal", "partition", "rpartition", "removeprefix", "removesuffix", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const DICT_UNSAFE[] = {"pop", "popitem", "setdefault", "update", "clear", NULL};
static const char *const LIST_METHODS[] = {"index", "count", "copy", NULL};
static const char *const LIST_UNSAFE[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear", NULL};

static bool in_set(const char *const *set, const char *s) {
    for (; *set; set++)
        if (!strcmp(*set, s)) return true;
    return false;
}

static int bound(R *r, const jnode_t *at, jv_t self, const char *name, jv_t *out) {
    jfunc_t *f = mkfunc(r, JF_METHOD, name, self);
    if (!f) return oom(r, at);
    *out = jv_func(f);
    return 0;
}

static int loop_attr(R *r, const jnode_t *at, jv_t obj, const char *name, jv_t *out);

static int get_attr(R *r, const jnode_t *at, jv_t obj, const char *name, jv_t *out) {
    size_t nl = strlen(name);
    switch (obj.t) {
    case JV_UNDEF: return fail_undef(r, at, obj);
    case JV_DICT: {
        if (in_set(DICT_METHODS, name)) return bound(r, at, obj, name, out);
        if (in_set(DICT_UNSAFE, name)) {
            *out = undef_hint(r, "access to attribute '%s' of 'dict' object is unsafe.", name);
            return 0;
        }
        const jv_t *v = jdict_get_str(obj.u.d, name, nl);
        *out = v ? *v : undef_hint(r, "'dict object' has no attribute '%s'", name);
        return 0;
    }
    case JV_NS: {
        const jv_t *v = jdict_get_str(obj.u.d, name, nl);
        *out = v ? *v : undef_hint(r, "'Namespace object' has no attribute '%s'", name);
        return 0;
    }
    case JV_STR:
        if (in_set(STR_METHODS, name)) return bound(r, at, obj, name, out);
        *out = undef_hint(r, "'str object' has no attribute '%s'", name);
        return 0;
    case JV_LIST:
        if (in_set(LIST_METHODS, name)) return bound(r, at, obj, name, out);
        if (in_set(LIST_UNSAFE, name)) {
            *out = undef_hint(r, "access to attribute '%s' of '%s' object is unsafe.", name, tname(obj));
            return 0;
        }
        *out = undef_hint(r, "'%s object' has no attribute '%s'", tname(obj), name);
        return 0;
    case JV_LOOP: return loop_attr(r, at, obj, name, out);
    case JV_NONE: *out = undef_hint(r, "'None' has no attribute '%s'", name); return 0;
    default: *out = undef_hint(r, "'%s object' has no attribute '%s'", tname(obj), name); return 0;
    }
}

static int get_item(R *r, const jnode_t *at, jv_t obj, jv_t key, jv_t *out) {
    switch (obj.t) {
    case JV_UNDEF: return fail_undef(r, at, obj);
    case JV_DICT: {
        const jv_t *v = jdict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case JV_LIST:
        if (key.t == JV_INT || key.t == JV_BOOL) {
            size_t i;
            if (norm_index(num_i(key), obj.u.l->n, &i)) *out = obj.u.l->v[i];
            else *out = undef_hint(r, "%s object has no element %lld", tname(obj), (long long)num_i(key));
            return 0;
        }
        break;
    case JV_STR:
        if (key.t == JV_INT || key.t == JV_BOOL) {
            size_t cps = ju_len(obj.u.s.p, obj.u.s.n), i;
            if (!norm_index(num_i(key), cps, &i)) {
                *out = undef_hint(r, "str object has no element %lld", (long long)num_i(key));
                return 0;
            }
            size_t o = ju_offset(obj.u.s.p, obj.u.s.n, i), e = ju_offset(obj.u.s.p, obj.u.s.n, i + 1);
            *out = jv_strn(obj.u.s.p + o, e - o);
            return 0;
        }
        break;
    default: break;
    }
    if (key.t == JV_STR) {
        char name[128];
        size_t n = SL_MIN(key.u.s.n, sizeof name - 1);
        memcpy(name, key.u.s.p, n);
        name[n] = 0;
        if (memchr(key.u.s.p, 0, key.u.s.n) == NULL && key.u.s.n < sizeof name) {
            if (obj.t == JV_DICT && !in_set(DICT_METHODS, name) && !in_set(DICT_UNSAFE, name)) {
                *out = undef_hint(r, "'dict object' has no attribute '%s'", name);
                return 0;
            }
            return get_attr(r, at, obj, name, out);
        }
    }
    sl_buf_t kb = {0};
    jv_repr(&kb, key);
    *out = undef_hint(r, "'%s object' has no attribute %s", tname(obj), kb.data ? kb.data : "?");
    sl_buf_free(&kb);
    return 0;
}

/* ---- iteration ---- */

/* Materialises what `for` iterates over (dict → keys, str → characters). */
static int iter_items(R *r, const jnode_t *at, jv_t v, jlist_t **out) {
    switch (v.t) {
    case JV_LIST: *out = v.u.l; return 0;
    case JV_UNDEF: *out = jlist_new(r->a, 0); return *out ? 0 : oom(r, at);
    case JV_DICT: {
        jlist_t *l = jlist_new(r->a, v.u.d->n);
        if (!l) return oom(r, at);
        for (size_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = v.u.d->k[i];
        *out = l;
        return 0;
    }
    case JV_STR: {
        size_t cps = ju_len(v.u.s.p, v.u.s.n);
        jlist_t *l = jlist_new(r->a, cps);
        if (!l) return oom(r, at);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t adv;
            ju_decode(v.u.s.p + i, v.u.s.n - i, &adv);
            l->v[l->n++] = jv_strn(v.u.s.p + i, adv);
            i += adv;
        }
        *out = l;
        return 0;
    }
    default: return fail(r, at, "'%s' object is not iterable", tname(v));
    }
}

static int loop_attr(R *r, const jnode_t *at, jv_t obj, const char *name, jv_t *out) {
    const jloop_t *L = obj.u.loop;
    if (!strcmp(name, "index")) *out = jv_int((int64_t)L->index0 + 1);
    else if (!strcmp(name, "index0")) *out = jv_int((int64_t)L->index0);
    else if (!strcmp(name, "revindex")) *out = jv_int((int64_t)(L->length - L->index0));
    else if (!strcmp(name, "revindex0")) *out = jv_int((int64_t)(L->length - L->index0 - 1));
    else if (!strcmp(name, "first")) *out = jv_bool(L->index0 == 0);
    else if (!strcmp(name, "last")) *out = jv_bool(L->index0 + 1 == L->length);
    else if (!strcmp(name, "length")) *out = jv_int((int64_t)L->length);
    else if (!strcmp(name, "depth")) *out = jv_int(L->depth0 + 1);
    else if (!strcmp(name, "depth0")) *out = jv_int(L->depth0);
    else if (!strcmp(name, "previtem")) *out = L->index0 > 0 ? L->prev : undef_hint(r, "there is no previous item");
    else if (!strcmp(name, "nextitem")) *out = L->index0 + 1 < L->length ? L->next : undef_hint(r, "there is no next item");
    else if (!strcmp(name, "cycle") || !strcmp(name, "changed")) return bound(r, at, obj, name, out);
    else *out = undef_hint(r, "'LoopContext object' has no attribute '%s'", name);
    return 0;
}

/* ---- evaluation ---- */

static int eval(R *r, scope_t *sc, const jnode_t *n, jv_t *out);
static int exec(R *r, scope_t *sc, const jnode_t *n, sl_buf_t *out);
static int call_value(R *r, scope_t *sc, const jnode_t *at, jv_t fn, const args_t *a, jv_t *out);
static int apply_filter(R *r, scope_t *sc, const jnode_t *at, const char *name, jv_t v, const args_t *a, jv_t *out);
static int apply_test(R *r, scope_t *sc, const jnode_t *at, const char *name, jv_t v, const args_t *a, bool *res);

static const jv_t *scope_find(scope_t *sc, const char *name, size_t n) {
    for (; sc; sc = sc->parent) {
        const jv_t *v = jdict_get_str(sc->vars, name, n);
        if (v) return v;
    }
    return NULL;
}

static int scope_set(R *r, const jnode_t *at, scope_t *sc, const char *name, jv_t v) {
    if (jdict_set(r->a, sc->vars, jv_strn(name, strlen(name)), v)) return oom(r, at);
    return 0;
}

static scope_t *scope_new(R *r, scope_t *parent) {
    scope_t *s = jz_alloc(r->a, sizeof *s);
    if (!s) return NULL;
    s->parent = parent;
    s->vars = jdict_new(r->a, 0);
    return s->vars ? s : NULL;
}

static const char *const BUILTINS[] = {"range", "dict", "namespace", "raise_exception", "strftime_now",
                                       "joiner", "cycler", NULL};

static int eval_args(R *r, scope_t *sc, const jnode_t *n, args_t *a, jv_t *extra_first) {
    size_t np = n->nkids + (extra_first ? 1 : 0);
    memset(a, 0, sizeof *a);
    if (np) {
        a->pos = jz_alloc(r->a, np * sizeof(jv_t));
        if (!a->pos) return oom(r, n);
    }
    if (extra_first) a->pos[a->npos++] = *extra_first;
    for (size_t i = 0; i < n->nkids; i++)
        if (eval(r, sc, n->kids[i], &a->pos[a->npos++])) return -1;
    if (n->nnames) {
        a->kwv = jz_alloc(r->a, n->nnames * sizeof(jv_t));
        if (!a->kwv) return oom(r, n);
        a->kwn = n->names;
        a->nkw = n->nnames;
        for (size_t i = 0; i < n->nnames; i++)
            if (eval(r, sc, n->kids2[i], &a->kwv[i])) return -1;
    }
    return 0;
}

/* Unpacks `v` into names (tuple targets). */
static int assign_targets(R *r, const jnode_t *at, scope_t *sc, const char *const *names, size_t nn, jv_t v) {
    if (nn == 1) return scope_set(r, at, sc, names[0], v);
    jlist_t *items;
    if (v.t == JV_UNDEF) return fail_undef(r, at, v);
    if (iter_items(r, at, v, &items)) return -1;
    if (items->n != nn)
        return fail(r, at, items->n > nn ? "too many values to unpack (expected %zu)" : "not enough values to unpack (expected %zu)", nn);
    for (size_t i = 0; i < nn; i++)
        if (scope_set(r, at, sc, names[i], items->v[i])) return -1;
    return 0;
}

static int eval(R *r, scope_t *sc, const jnode_t *n, jv_t *out) {
    if (step(r, n)) return -1;
    if (++r->depth > r->lim->max_depth) {
        r->depth--;
        return fail(r, n, "template nested too deeply (limit %d)", r->lim->max_depth);
    }
    int rc = 0;
    switch (n->kind) {
    case JN_CONST: *out = n->val; break;
    case JN_NAME: {
        const jv_t *v = scope_find(sc, n->str, strlen(n->str));
        if (v) {
            *out = *v;
        } else if (in_set(BUILTINS, n->str)) {
            jfunc_t *f = mkfunc(r, JF_BUILTIN, n->str, jv_none());
            if (!f) rc = oom(r, n);
            else *out = jv_func(f);
        } else {
            *out = undef_hint(r, "'%s' is undefined", n->str);
        }
        break;
    }
    case JN_GETATTR: {
        jv_t o;
        rc = eval(r, sc, n->a, &o);
        if (!rc) rc = get_attr(r, n, o, n->str, out);
        break;
    }
    case JN_GETITEM: {
        jv_t o;
        rc = eval(r, sc, n->a, &o);
        if (rc) break;
        if (n->b->kind == JN_SLICE) {
            jv_t s0 = jv_none(), s1 = jv_none(), s2 = jv_none();
            const jnode_t *sl = n->b;
            if ((sl->a && eval(r, sc, sl->a, &s0)) || (sl->b && eval(r, sc, sl->b, &s1)) ||
                (sl->c && eval(r, sc, sl->c, &s2))) {
                rc = -1;
                break;
            }
            rc = do_slice(r, n, o, s0, s1, s2, out);
        } else {
            jv_t k;
            rc = eval(r, sc, n->b, &k);
            if (!rc) rc = get_item(r, n, o, k, out);
        }
        break;
    }
    case JN_CALL: {
        jv_t f;
        args_t a;
        rc = eval(r, sc, n->a, &f);
        if (!rc) rc = eval_args(r, sc, n, &a, NULL);
        if (!rc) rc = call_value(r, sc, n, f, &a, out);
        break;
    }
    case JN_FILTER: {
        jv_t v;
        args_t a;
        rc = eval(r, sc, n->a, &v);
        if (!rc) rc = eval_args(r, sc, n, &a, NULL);
        if (!rc) rc = apply_filter(r, sc, n, n->str, v, &a, out);
        break;
    }
    case JN_TEST: {
        jv_t v;
        args_t a;
        bool res = false;
        rc = eval(r, sc, n->a, &v);
        if (!rc) rc = eval_args(r, sc, n, &a, NULL);
        if (!rc) rc = apply_test(r, sc, n, n->str, v, &a, &res);
        if (!rc) *out = jv_bool(n->flag ? !res : res);
        break;
    }
    case JN_BIN: {
        jv_t x, y;
        rc = eval(r, sc, n->a, &x);
        if (!rc) rc = eval(r, sc, n->b, &y);
        if (!rc) rc = arith(r, n, n->op, x, y, out);
        break;
    }
    case JN_UNARY: {
        jv_t x;
        rc = eval(r, sc, n->a, &x);
        if (rc) break;
        if (x.t == JV_UNDEF) rc = fail_undef(r, n, x);
        else if (!is_num(x)) rc = fail(r, n, "bad operand type for unary %c: '%s'", n->op == JO_SUB ? '-' : '+', tname(x));
        else if (n->op == JO_ADD) *out = x.t == JV_BOOL ? jv_int(x.u.b) : x;
        else if (x.t == JV_FLOAT) *out = jv_float(-x.u.f);
        else if (num_i(x) == INT64_MIN) rc = fail(r, n, "integer overflow");
        else *out = jv_int(-num_i(x));
        break;
    }
    case JN_NOT: {
        jv_t x;
        rc = eval(r, sc, n->a, &x);
        if (!rc) *out = jv_bool(!jv_truthy(x));
        break;
    }
    case JN_AND:
    case JN_OR: {
        jv_t x;
        rc = eval(r, sc, n->a, &x);
        if (rc) break;
        bool t = jv_truthy(x);
        if ((n->kind == JN_AND) ? !t : t) *out = x;
        else rc = eval(r, sc, n->b, out);
        break;
    }
    case JN_CMP: {
        jv_t left;
        rc = eval(r, sc, n->a, &left);
        bool res = true;
        for (size_t i = 0; !rc && i < n->nkids && res; i++) {
            jv_t right;
            if ((rc = eval(r, sc, n->kids[i], &right))) break;
            int op = n->ops[i], c;
            switch (op) {
            case JO_EQ: res = jv_equal(left, right); break;
            case JO_NE: res = !jv_equal(left, right); break;
            case JO_IN: rc = contains(r, n, right, left, &res); break;
            case JO_NOTIN: rc = contains(r, n, right, left, &res); res = !res; break;
            default: {
                static const char *const nm[] = {[JO_LT] = "<", [JO_LE] = "<=", [JO_GT] = ">", [JO_GE] = ">="};
                rc = compare(r, n, left, right, nm[op], &c);
                res = op == JO_LT ? c < 0 : op == JO_LE ? c <= 0 : op == JO_GT ? c > 0 : c >= 0;
            }
            }
            left = right;
        }
        if (!rc) *out = jv_bool(res);
        break;
    }
    case JN_COND: {
        jv_t c;
        rc = eval(r, sc, n->b, &c);
        if (rc) break;
        if (jv_truthy(c)) rc = eval(r, sc, n->a, out);
        else if (n->c) rc = eval(r, sc, n->c, out);
        else *out = undef_hint(r, "the inline if-expression on line %d evaluated to false and no else section was defined.", n->line);
        break;
    }
    case JN_LIST:
    case JN_TUPLE: {
        jlist_t *l = jlist_new(r->a, n->nkids);
        if (!l) {
            rc = oom(r, n);
            break;
        }
        l->tuple = n->kind == JN_TUPLE;
        for (size_t i = 0; !rc && i < n->nkids; i++) rc = eval(r, sc, n->kids[i], &l->v[l->n++]);
        if (!rc) *out = jv_list(l);
        break;
    }
    case JN_DICT: {
        jdict_t *d = jdict_new(r->a, n->nkids);
        if (!d) {
            rc = oom(r, n);
            break;
        }
        for (size_t i = 0; !rc && i < n->nkids; i++) {
            jv_t k, v;
            rc = eval(r, sc, n->kids[i], &k);
            if (!rc) rc = eval(r, sc, n->kids2[i], &v);
            if (!rc && (k.t == JV_LIST && !k.u.l->tuple)) rc = fail(r, n, "unhashable type: 'list'");
            if (!rc && (k.t == JV_DICT || k.t == JV_NS)) rc = fail(r, n, "unhashable type: 'dict'");
            if (!rc && jdict_set(r->a, d, k, v)) rc = oom(r, n);
        }
        if (!rc) *out = jv_dict(d);
        break;
    }
    case JN_CONCAT: {
        sl_buf_t b = {0};
        for (size_t i = 0; !rc && i < n->nkids; i++) {
            jv_t v;
            rc = eval(r, sc, n->kids[i], &v);
            if (!rc && jv_str(&b, v)) rc = oom(r, n);
            if (!rc) rc = check_out(r, n, &b);
        }
        if (!rc) rc = buf_str(r, n, &b, out);
        else sl_buf_free(&b);
        break;
    }
    default: rc = fail(r, n, "internal error: not an expression"); break;
    }
    r->depth--;
    return rc ? -1 : 0;
}

/* ---- calls ---- */

static int call_macro(R *r, const jnode_t *at, jfunc_t *f, const args_t *a, jv_t *out) {
    const jnode_t *def = f->def;
    scope_t *ms = scope_new(r, f->closure);
    if (!ms) return oom(r, at);
    if (a->npos > def->nnames)
        return fail(r, at, "macro '%s' takes not more than %zu argument(s)", f->name ? f->name : "caller", def->nnames);
    for (size_t i = 0; i < a->nkw; i++) {
        bool known = false;
        for (size_t k = 0; k < def->nnames; k++) known |= !strcmp(def->names[k], a->kwn[i]);
        if (!known) return fail(r, at, "macro '%s' takes no keyword argument '%s'", f->name ? f->name : "caller", a->kwn[i]);
    }
    for (size_t k = 0; k < def->nnames; k++) {
        jv_t v;
        if (!arg_get(a, k, def->names[k], &v)) {
            if (def->kids[k]) {
                if (eval(r, ms, def->kids[k], &v)) return -1;
            } else {
                v = undef_hint(r, "parameter '%s' was not provided", def->names[k]);
            }
        }
        if (scope_set(r, at, ms, def->names[k], v)) return -1;
    }
    if (f->kind == JF_MACRO && f->caller.t == JV_FUNC && scope_set(r, at, ms, "caller", f->caller)) return -1;
    /* jinja2 gives every macro `varargs` (an empty tuple here, since extra
     * positional arguments are an error) and `kwargs` (an empty dict) */
    jlist_t *va = jlist_new(r->a, 0);
    jdict_t *kw = jdict_new(r->a, 0);
    if (!va || !kw) return oom(r, at);
    va->tuple = true;
    jv_t vav = {.t = JV_LIST, .u.l = va}, kwv = {.t = JV_DICT, .u.d = kw};
    if (scope_set(r, at, ms, "varargs", vav) || scope_set(r, at, ms, "kwargs", kwv)) return -1;
    if (++r->depth > r->lim->max_depth) {
        r->depth--;
        return fail(r, at, "macro calls nested too deeply (limit %d)", r->lim->max_depth);
    }
    sl_buf_t b = {0};
    int rc = exec(r, ms, def->b, &b);
    r->depth--;
    if (rc < 0) {
        sl_buf_free(&b);
        return -1;
    }
    if (buf_str(r, at, &b, out)) return -1;
    out->safe = 1;
    return 0;
}

static int fmt_time(R *r, const jnode_t *at, jv_t fmt, jv_t *out) {
    if (fmt.t != JV_STR) return fail(r, at, "strftime_now() argument must be str, not %s", tname(fmt));
    time_t now = r->lim->now ? r->lim->now : time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char f[256], buf[512];
    if (fmt.u.s.n >= sizeof f) return fail(r, at, "strftime_now() format too long");
    memcpy(f, fmt.u.s.p, fmt.u.s.n);
    f[fmt.u.s.n] = 0;
    size_t n = strftime(buf, sizeof buf, f, &tm);
    return mkstr(r, at, buf, n, out);
}

static int call_builtin(R *r, const jnode_t *at, const char *name, const args_t *a, jv_t *out) {
    jv_t x;
    if (!strcmp(name, "raise_exception")) {
        sl_buf_t b = {0};
        if (a->npos) jv_str(&b, a->pos[0]);
        fail(r, at, "%s", b.data ? b.data : "raise_exception() called");
        sl_buf_free(&b);
        return -1;
    }
    if (!strcmp(name, "strftime_now")) {
        if (!arg_get(a, 0, "format", &x)) return fail(r, at, "strftime_now() missing argument 'format'");
        return fmt_time(r, at, x, out);
    }
    if (!strcmp(name, "range")) {
        int64_t v[3] = {0, 0, 1};
        if (a->npos < 1 || a->npos > 3 || a->nkw) return fail(r, at, "range expected 1 to 3 integer arguments");
        for (size_t i = 0; i < a->npos; i++) {
            if (a->pos[i].t != JV_INT && a->pos[i].t != JV_BOOL)
                return fail(r, at, "'%s' object cannot be interpreted as an integer", tname(a->pos[i]));
        }
        if (a->npos == 1) v[1] = num_i(a->pos[0]);
        else {
            v[0] = num_i(a->pos[0]);
            v[1] = num_i(a->pos[1]);
            if (a->npos == 3) v[2] = num_i(a->pos[2]);
        }
        if (v[2] == 0) return fail(r, at, "range() arg 3 must not be zero");
        jlist_t *l = jlist_new(r->a, 0);
        if (!l) return oom(r, at);
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            if (l->n >= 1000000) return fail(r, at, "range() too large for the sandbox (more than 1000000 items)");
            if (jlist_push(r->a, l, jv_int(i))) return oom(r, at);
            if ((v[2] > 0 && i > INT64_MAX - v[2]) || (v[2] < 0 && i < INT64_MIN - v[2])) break;
        }
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(name, "dict") || !strcmp(name, "namespace")) {
        jdict_t *d = jdict_new(r->a, 0);
        if (!d) return oom(r, at);
        for (size_t i = 0; i < a->npos; i++) {
            jv_t p = a->pos[i];
            if (p.t == JV_DICT || p.t == JV_NS) {
                for (size_t k = 0; k < p.u.d->n; k++)
                    if (jdict_set(r->a, d, p.u.d->k[k], p.u.d->v[k])) return oom(r, at);
            } else if (p.t == JV_LIST) {
                for (size_t k = 0; k < p.u.l->n; k++) {
                    jv_t pair = p.u.l->v[k];
                    if (pair.t != JV_LIST || pair.u.l->n != 2) return fail(r, at, "dictionary update sequence element has wrong length");
                    if (jdict_set(r->a, d, pair.u.l->v[0], pair.u.l->v[1])) return oom(r, at);
                }
            } else {
                return fail(r, at, "'%s' object is not iterable", tname(p));
            }
        }
        for (size_t i = 0; i < a->nkw; i++)
            if (jdict_set(r->a, d, jv_strn(a->kwn[i], strlen(a->kwn[i])), a->kwv[i])) return oom(r, at);
        *out = jv_dict(d);
        if (name[0] == 'n') out->t = JV_NS;
        return 0;
    }
    return fail(r, at, "'%s' is not supported in the sandbox", name);
}

static int call_method(R *r, const jnode_t *at, jv_t self, const char *m, const args_t *a, jv_t *out);

static int call_value(R *r, scope_t *sc, const jnode_t *at, jv_t fn, const args_t *a, jv_t *out) {
    (void)sc;
    if (fn.t == JV_UNDEF) return fail_undef(r, at, fn);
    if (fn.t != JV_FUNC) return fail(r, at, "'%s' object is not callable", tname(fn));
    jfunc_t *f = fn.u.fn;
    switch (f->kind) {
    case JF_BUILTIN: return call_builtin(r, at, f->name, a, out);
    case JF_METHOD: return call_method(r, at, f->self, f->name, a, out);
    default: return call_macro(r, at, f, a, out);
    }
}

static int want_str_arg(R *r, const jnode_t *at, const args_t *a, size_t i, const char *name, const char *fn, jv_t *v) {
    if (!arg_get(a, i, name, v)) return fail(r, at, "%s() missing argument '%s'", fn, name);
    if (v->t != JV_STR) return fail(r, at, "%s() argument must be str, not %s", fn, tname(*v));
    return 0;
}

static int call_method(R *r, const jnode_t *at, jv_t self, const char *m, const args_t *a, jv_t *out) {
    jv_t x, y;
    if (self.t == JV_DICT) {
        jdict_t *d = self.u.d;
        if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
            jlist_t *l = jlist_new(r->a, d->n);
            if (!l) return oom(r, at);
            for (size_t i = 0; i < d->n; i++) {
                if (m[0] == 'k') l->v[l->n++] = d->k[i];
                else if (m[0] == 'v') l->v[l->n++] = d->v[i];
                else {
                    jlist_t *p = jlist_new(r->a, 2);
                    if (!p) return oom(r, at);
                    p->tuple = true;
                    p->v[0] = d->k[i];
                    p->v[1] = d->v[i];
                    p->n = 2;
                    l->v[l->n++] = jv_list(p);
                }
            }
            *out = jv_list(l);
            return 0;
        }
        if (!strcmp(m, "get")) {
            if (!arg_get(a, 0, "key", &x)) return fail(r, at, "get expected at least 1 argument");
            const jv_t *v = jdict_get(d, x);
            if (v) *out = *v;
            else if (!arg_get(a, 1, "default", out)) *out = jv_none();
            return 0;
        }
        if (!strcmp(m, "copy")) {
            jdict_t *c = jdict_new(r->a, d->n);
            if (!c) return oom(r, at);
            for (size_t i = 0; i < d->n; i++) jdict_set(r->a, c, d->k[i], d->v[i]);
            *out = jv_dict(c);
            return 0;
        }
    }
    if (self.t == JV_LIST) {
        jlist_t *l = self.u.l;
        if (!strcmp(m, "index") || !strcmp(m, "count")) {
            if (!arg_get(a, 0, "value", &x)) return fail(r, at, "%s() takes exactly one argument", m);
            int64_t c = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_equal(l->v[i], x)) {
                    if (m[0] == 'i') {
                        *out = jv_int((int64_t)i);
                        return 0;
                    }
                    c++;
                }
            if (m[0] == 'i') return fail(r, at, "value is not in list");
            *out = jv_int(c);
            return 0;
        }
        if (!strcmp(m, "copy")) {
            *out = self;
            return 0;
        }
    }
    if (self.t == JV_LOOP) {
        jloop_t *L = self.u.loop;
        if (!strcmp(m, "cycle")) {
            if (!a->npos) return fail(r, at, "no items for cycling given");
            *out = a->pos[L->index0 % a->npos];
            return 0;
        }
        if (!strcmp(m, "changed")) {
            jlist_t *l = jlist_new(r->a, a->npos);
            if (!l) return oom(r, at);
            for (size_t i = 0; i < a->npos; i++) l->v[l->n++] = a->pos[i];
            jv_t cur = jv_list(l);
            bool ch = !L->has_changed || !jv_equal(cur, L->last_changed);
            L->last_changed = cur;
            L->has_changed = true;
            *out = jv_bool(ch);
            return 0;
        }
    }
    if (self.t != JV_STR) return fail(r, at, "'%s' object has no method '%s'", tname(self), m);
    /* ---- str methods ---- */
    const char *p = self.u.s.p;
    size_t n = self.u.s.n;
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (!arg_get(a, 0, "prefix", &x)) return fail(r, at, "%s() takes at least 1 argument", m);
        const jv_t *cands = &x;
        size_t nc = 1;
        if (x.t == JV_LIST && x.u.l->tuple) {
            cands = x.u.l->v;
            nc = x.u.l->n;
        }
        size_t s0 = 0;
        if (a->npos > 1 && (a->pos[1].t == JV_INT)) {
            size_t cps = ju_len(p, n), i;
            int64_t k = a->pos[1].u.i;
            if (k < 0) k += (int64_t)cps;
            if (k < 0) k = 0;
            i = (size_t)k > cps ? cps : (size_t)k;
            s0 = ju_offset(p, n, i);
        }
        bool res = false;
        for (size_t i = 0; i < nc && !res; i++) {
            if (cands[i].t != JV_STR) return fail(r, at, "%s first arg must be str or a tuple of str, not %s", m, tname(cands[i]));
            size_t cl = cands[i].u.s.n;
            if (cl > n - s0) continue;
            res = m[0] == 's' ? !memcmp(p + s0, cands[i].u.s.p, cl) : !memcmp(p + n - cl, cands[i].u.s.p, cl);
        }
        *out = jv_bool(res);
        return 0;
    }
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        const jv_t *chars = NULL;
        if (arg_get(a, 0, "chars", &x) && x.t != JV_NONE) {
            if (x.t != JV_STR) return fail(r, at, "%s arg must be None or str", m);
            chars = &x;
        }
        size_t s, e;
        strip_range(p, n, chars, m[0] != 'r', m[0] != 'l', &s, &e);
        *out = jv_strn(p + s, e - s);
        return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        jv_t sep = jv_none(), ms = jv_int(-1);
        arg_get(a, 0, "sep", &sep);
        arg_get(a, 1, "maxsplit", &ms);
        if (sep.t != JV_NONE && sep.t != JV_STR) return fail(r, at, "must be str or None, not %s", tname(sep));
        if (ms.t != JV_INT) return fail(r, at, "maxsplit must be an integer");
        return str_split(r, at, self, sep.t == JV_STR ? &sep : NULL, ms.u.i, m[0] == 'r', out);
    }
    if (!strcmp(m, "splitlines")) {
        jlist_t *l = jlist_new(r->a, 0);
        if (!l) return oom(r, at);
        size_t i = 0;
        while (i < n) {
            size_t e = i;
            while (e < n && p[e] != '\n' && p[e] != '\r') e++;
            jv_t s;
            if (mkstr(r, at, p + i, e - i, &s) || jlist_push(r->a, l, s)) return oom(r, at);
            if (e < n && p[e] == '\r' && e + 1 < n && p[e + 1] == '\n') e++;
            i = e + 1;
        }
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(m, "replace")) {
        jv_t cnt = jv_int(-1);
        if (want_str_arg(r, at, a, 0, "old", m, &x) || want_str_arg(r, at, a, 1, "new", m, &y)) return -1;
        arg_get(a, 2, "count", &cnt);
        if (cnt.t != JV_INT) return fail(r, at, "replace() count must be an integer");
        return str_replace(r, at, self, x, y, cnt.u.i, out);
    }
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") || !strcmp(m, "capitalize") ||
        !strcmp(m, "swapcase") || !strcmp(m, "casefold")) {
        sl_buf_t b = {0};
        int rc;
        if (m[0] == 'u') rc = map_cps(&b, p, n, NULL, cp_upper);
        else if (!strcmp(m, "lower") || !strcmp(m, "casefold")) rc = map_cps(&b, p, n, NULL, cp_lower);
        else if (m[0] == 't') rc = py_title(&b, p, n);
        else if (!strcmp(m, "capitalize")) rc = map_cps(&b, p, n, cp_upper, cp_lower);
        else {
            rc = 0;
            for (size_t i = 0; i < n && !rc;) {
                size_t adv;
                uint32_t cp = ju_decode(p + i, n - i, &adv);
                uint32_t u = cp_upper(cp);
                rc = put_cp(&b, u != cp ? u : cp_lower(cp));
                i += adv;
            }
        }
        if (rc) {
            sl_buf_free(&b);
            return oom(r, at);
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "count")) {
        if (want_str_arg(r, at, a, 0, "sub", m, &x)) return -1;
        if (!strcmp(m, "count")) {
            int64_t c = 0;
            if (x.u.s.n == 0) c = (int64_t)ju_len(p, n) + 1;
            else
                for (size_t i = 0; i + x.u.s.n <= n;) {
                    const char *f = memmem(p + i, n - i, x.u.s.p, x.u.s.n);
                    if (!f) break;
                    c++;
                    i = (size_t)(f - p) + x.u.s.n;
                }
            *out = jv_int(c);
            return 0;
        }
        const char *f = NULL;
        if (m[0] == 'r') {
            for (size_t q = n >= x.u.s.n ? n - x.u.s.n + 1 : 0; q-- > 0;)
                if (!memcmp(p + q, x.u.s.p, x.u.s.n)) {
                    f = p + q;
                    break;
                }
        } else {
            f = x.u.s.n ? memmem(p, n, x.u.s.p, x.u.s.n) : p;
        }
        if (!f && m[0] == 'i') return fail(r, at, "substring not found");
        *out = jv_int(f ? (int64_t)ju_len(p, (size_t)(f - p)) : -1);
        return 0;
    }
    if (!strcmp(m, "join")) {
        if (!arg_get(a, 0, "iterable", &x)) return fail(r, at, "join() takes exactly one argument");
        jlist_t *items;
        if (iter_items(r, at, x, &items)) return -1;
        sl_buf_t b = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != JV_STR) {
                sl_buf_free(&b);
                return fail(r, at, "sequence item %zu: expected str instance, %s found", i, tname(items->v[i]));
            }
            if ((i && sl_buf_append(&b, p, n)) || sl_buf_append(&b, items->v[i].u.s.p, items->v[i].u.s.n)) {
                sl_buf_free(&b);
                return oom(r, at);
            }
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(m, "format")) return str_dot_format(r, at, self, a, out);
    if (!strncmp(m, "is", 2)) {
        bool res = n > 0, cased = false;
        for (size_t i = 0; i < n && res;) {
            size_t adv;
            uint32_t cp = ju_decode(p + i, n - i, &adv);
            if (!strcmp(m, "isdigit") || !strcmp(m, "isnumeric") || !strcmp(m, "isdecimal"))
                res = cp < 0x80 ? isdigit((int)cp) != 0 : utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND;
            else if (!strcmp(m, "isalpha")) res = cp_is_alpha(cp);
            else if (!strcmp(m, "isalnum")) res = cp_is_alnum(cp);
            else if (!strcmp(m, "isspace")) res = ju_isspace(cp);
            else if (!strcmp(m, "islower")) {
                if (cp_upper(cp) != cp) cased = true;
                else if (cp_lower(cp) != cp) res = false;
            } else if (!strcmp(m, "isupper")) {
                if (cp_lower(cp) != cp) cased = true;
                else if (cp_upper(cp) != cp) res = false;
            }
            i += adv;
        }
        if (!strcmp(m, "islower") || !strcmp(m, "isupper")) res = res && cased;
        *out = jv_bool(res);
        return 0;
    }
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        if (want_str_arg(r, at, a, 0, "fix", m, &x)) return -1;
        size_t k = x.u.s.n;
        if (k <= n && m[6] == 'p' && !memcmp(p, x.u.s.p, k)) *out = jv_strn(p + k, n - k);
        else if (k <= n && m[6] == 's' && !memcmp(p + n - k, x.u.s.p, k)) *out = jv_strn(p, n - k);
        else *out = self;
        return 0;
    }
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
        if (want_str_arg(r, at, a, 0, "sep", m, &x)) return -1;
        if (!x.u.s.n) return fail(r, at, "empty separator");
        const char *f = NULL;
        if (m[0] == 'r') {
            for (size_t q = n >= x.u.s.n ? n - x.u.s.n + 1 : 0; q-- > 0;)
                if (!memcmp(p + q, x.u.s.p, x.u.s.n)) {
                    f = p + q;
                    break;
                }
        } else {
            f = memmem(p, n, x.u.s.p, x.u.s.n);
        }
        jlist_t *l = jlist_new(r->a, 3);
        if (!l) return oom(r, at);
        l->tuple = true;
        l->n = 3;
        if (f) {
            l->v[0] = jv_strn(p, (size_t)(f - p));
            l->v[1] = x;
            l->v[2] = jv_strn(f + x.u.s.n, n - (size_t)(f - p) - x.u.s.n);
        } else if (m[0] == 'r') {
            l->v[0] = jv_strn("", 0);
            l->v[1] = jv_strn("", 0);
            l->v[2] = self;
        } else {
            l->v[0] = self;
            l->v[1] = jv_strn("", 0);
            l->v[2] = jv_strn("", 0);
        }
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(m, "zfill") || !strcmp(m, "center") || !strcmp(m, "ljust") || !strcmp(m, "rjust")) {
        if (!arg_get(a, 0, "width", &x) || x.t != JV_INT) return fail(r, at, "%s() needs an integer width", m);
        jv_t fillc = jv_strn(m[0] == 'z' ? "0" : " ", 1);
        if (m[0] != 'z' && arg_get(a, 1, "fillchar", &y)) {
            if (y.t != JV_STR || ju_len(y.u.s.p, y.u.s.n) != 1) return fail(r, at, "The fill character must be exactly one character long");
            fillc = y;
        }
        size_t len = ju_len(p, n);
        if (x.u.i <= (int64_t)len) {
            *out = self;
            return 0;
        }
        if (x.u.i > (int64_t)r->lim->max_output) return fail(r, at, "width too large");
        size_t pad = (size_t)x.u.i - len, left;
        if (m[0] == 'l') left = 0;
        else if (m[0] == 'r' || m[0] == 'z') left = pad;
        else left = pad / 2 + (pad & len & 1);
        sl_buf_t b = {0};
        int rc = 0;
        size_t sign = (m[0] == 'z' && n && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
        if (sign) rc |= sl_buf_putc(&b, p[0]);
        for (size_t i = 0; i < left; i++) rc |= sl_buf_append(&b, fillc.u.s.p, fillc.u.s.n);
        rc |= sl_buf_append(&b, p + sign, n - sign);
        for (size_t i = left; i < pad; i++) rc |= sl_buf_append(&b, fillc.u.s.p, fillc.u.s.n);
        if (rc) {
            sl_buf_free(&b);
            return oom(r, at);
        }
        return buf_str(r, at, &b, out);
    }
    return fail(r, at, "str method '%s' is not supported", m);
}

/* ---- filters ---- */

/* Resolves "a.b.0" attribute paths like jinja2's make_attrgetter. */
static int attr_path(R *r, const jnode_t *at, jv_t v, jv_t path, jv_t *out) {
    if (path.t == JV_INT) return get_item(r, at, v, path, out);
    if (path.t != JV_STR) return fail(r, at, "attribute must be a string");
    const char *p = path.u.s.p;
    size_t n = path.u.s.n, i = 0;
    while (i <= n) {
        const char *dot = memchr(p + i, '.', n - i);
        size_t e = dot ? (size_t)(dot - p) : n;
        jv_t key;
        bool digits = e > i;
        for (size_t k = i; k < e; k++) digits &= isdigit((unsigned char)p[k]) != 0;
        if (digits) key = jv_int(strtoll(p + i, NULL, 10));
        else key = jv_strn(p + i, e - i);
        if (v.t == JV_UNDEF) return fail_undef(r, at, v);
        if (get_item(r, at, v, key, &v)) return -1;
        if (!dot) break;
        i = e + 1;
    }
    *out = v;
    return 0;
}

/* Sort key comparison with jinja2's case-insensitive default. */
typedef struct sort_ctx {
    R *r;
    const jnode_t *at;
    bool case_sensitive;
    bool failed;
} sort_ctx_t;

static jv_t fold_case(R *r, jv_t v, bool case_sensitive) {
    if (case_sensitive || v.t != JV_STR) return v;
    sl_buf_t b = {0};
    if (map_cps(&b, v.u.s.p, v.u.s.n, NULL, cp_lower)) {
        sl_buf_free(&b);
        return v;
    }
    jv_t o = v;
    char *c = jz_strndup(r->a, b.data ? b.data : "", b.len);
    if (c) o = jv_strn(c, b.len);
    sl_buf_free(&b);
    return o;
}

/* Stable merge sort of (key, value) pairs. */
static int sort_pairs(R *r, const jnode_t *at, jv_t *keys, jv_t *vals, size_t n, bool reverse) {
    if (n < 2) return 0;
    jv_t *tk = malloc(n * sizeof *tk), *tv = malloc(n * sizeof *tv);
    if (!tk || !tv) {
        free(tk);
        free(tv);
        return oom(r, at);
    }
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = SL_MIN(lo + w, n), hi = SL_MIN(lo + 2 * w, n), i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (compare(r, at, keys[j], keys[i], "<", &c)) {
                    free(tk);
                    free(tv);
                    return -1;
                }
                bool take_right = reverse ? c > 0 : c < 0;
                if (take_right) {
                    tk[k] = keys[j];
                    tv[k++] = vals[j++];
                } else {
                    tk[k] = keys[i];
                    tv[k++] = vals[i++];
                }
            }
            while (i < mid) {
                tk[k] = keys[i];
                tv[k++] = vals[i++];
            }
            while (j < hi) {
                tk[k] = keys[j];
                tv[k++] = vals[j++];
            }
        }
        memcpy(keys, tk, n * sizeof *tk);
        memcpy(vals, tv, n * sizeof *tv);
    }
    free(tk);
    free(tv);
    return 0;
}

static int py_round(R *r, const jnode_t *at, jv_t v, int64_t prec, const char *method, jv_t *out) {
    if (!is_num(v)) return fail(r, at, "round filter needs a number, not %s", tname(v));
    if (v.t != JV_FLOAT && !strcmp(method, "common")) {
        *out = jv_int(num_i(v));
        return 0;
    }
    double x = num_f(v), m = pow(10.0, (double)prec), res;
    if (!strcmp(method, "ceil")) res = ceil(x * m) / m;
    else if (!strcmp(method, "floor")) res = floor(x * m) / m;
    else if (!strcmp(method, "common")) {
        if (prec < 0 || prec > 15) res = x;
        else {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x); /* correctly rounded, half-even on exact ties */
            res = strtod(buf, NULL);
        }
    } else return fail(r, at, "method must be common, ceil or floor");
    *out = jv_float(res);
    return 0;
}

static int filter_select(R *r, scope_t *sc, const jnode_t *at, const char *fname, jv_t v, const args_t *a, jv_t *out) {
    bool is_attr = strstr(fname, "attr") != NULL, reject = fname[0] == 'r';
    jlist_t *items, *l;
    if (iter_items(r, at, v, &items)) return -1;
    if (!(l = jlist_new(r->a, 0))) return oom(r, at);
    size_t base = 0;
    jv_t attr = jv_none();
    if (is_attr) {
        if (a->npos < 1) return fail(r, at, "%s requires an attribute name", fname);
        attr = a->pos[0];
        base = 1;
    }
    const char *test = NULL;
    char tbuf[64];
    if (a->npos > base) {
        if (a->pos[base].t != JV_STR || a->pos[base].u.s.n >= sizeof tbuf) return fail(r, at, "%s: test name must be a string", fname);
        memcpy(tbuf, a->pos[base].u.s.p, a->pos[base].u.s.n);
        tbuf[a->pos[base].u.s.n] = 0;
        test = tbuf;
    }
    args_t ta = {0};
    if (a->npos > base + 1) {
        ta.pos = a->pos + base + 1;
        ta.npos = a->npos - base - 1;
    }
    for (size_t i = 0; i < items->n; i++) {
        jv_t x = items->v[i];
        if (is_attr && attr_path(r, at, x, attr, &x)) return -1;
        bool keep;
        if (test) {
            if (apply_test(r, sc, at, test, x, &ta, &keep)) return -1;
        } else {
            keep = jv_truthy(x);
        }
        if (keep != reject && jlist_push(r->a, l, items->v[i])) return oom(r, at);
    }
    *out = jv_list(l);
    return 0;
}

static int to_int(jv_t v, int64_t *out) {
    if (v.t == JV_INT || v.t == JV_BOOL) {
        *out = num_i(v);
        return 0;
    }
    if (v.t == JV_FLOAT) {
        if (!isfinite(v.u.f) || fabs(v.u.f) > 9.2e18) return -1;
        *out = (int64_t)v.u.f;
        return 0;
    }
    if (v.t == JV_STR) {
        char buf[64];
        size_t s, e;
        strip_range(v.u.s.p, v.u.s.n, NULL, true, true, &s, &e);
        if (e - s == 0 || e - s >= sizeof buf) return -1;
        size_t k = 0;
        for (size_t i = s; i < e; i++)
            if (v.u.s.p[i] != '_') buf[k++] = v.u.s.p[i];
        buf[k] = 0;
        char *end;
        errno = 0;
        long long x = strtoll(buf, &end, 10);
        if (!*end && !errno) {
            *out = x;
            return 0;
        }
        double d = strtod(buf, &end);
        if (*end || !isfinite(d) || fabs(d) > 9.2e18) return -1;
        *out = (int64_t)d;
        return 0;
    }
    return -1;
}

static int apply_filter(R *r, scope_t *sc, const jnode_t *at, const char *f, jv_t v, const args_t *a, jv_t *out) {
    jv_t x, y;
    if (!strcmp(f, "tojson")) {
        jv_t ind = jv_none(), ea = jv_bool(false), seps = jv_none(), sk = jv_bool(false);
        arg_get(a, 0, "indent", &ind);
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        for (size_t i = 0; i < a->nkw; i++) {
            if (!strcmp(a->kwn[i], "ensure_ascii")) ea = a->kwv[i];
            else if (!strcmp(a->kwn[i], "separators")) seps = a->kwv[i];
            else if (!strcmp(a->kwn[i], "sort_keys")) sk = a->kwv[i];
            else if (strcmp(a->kwn[i], "indent")) return fail(r, at, "tojson got an unexpected keyword argument '%s'", a->kwn[i]);
        }
        int indent = -1;
        if (ind.t == JV_INT) indent = (int)SL_MAX(0, SL_MIN(ind.u.i, 64));
        else if (ind.t != JV_NONE) return fail(r, at, "tojson indent must be an integer");
        char isep[16], ksep[16];
        const char *ip = NULL, *kp = NULL;
        if (seps.t == JV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == JV_STR && seps.u.l->v[1].t == JV_STR &&
            seps.u.l->v[0].u.s.n < sizeof isep && seps.u.l->v[1].u.s.n < sizeof ksep) {
            memcpy(isep, seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
            isep[seps.u.l->v[0].u.s.n] = 0;
            memcpy(ksep, seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
            ksep[seps.u.l->v[1].u.s.n] = 0;
            ip = isep;
            kp = ksep;
        }
        sl_buf_t b = {0};
        char e[200];
        if (jv_json(&b, v, jv_truthy(ea), indent, ip, kp, jv_truthy(sk), e, sizeof e)) {
            sl_buf_free(&b);
            return fail(r, at, "%s", e);
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(f, "safe")) {
        if (str_of(r, at, v, out)) return -1;
        out->safe = 1;
        return 0;
    }
    if (!strcmp(f, "string")) {
        if (v.t == JV_UNDEF) {
            *out = jv_strn("", 0);
            return 0;
        }
        return str_of(r, at, v, out);
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        switch (v.t) {
        case JV_STR: *out = jv_int((int64_t)ju_len(v.u.s.p, v.u.s.n)); return 0;
        case JV_LIST: *out = jv_int((int64_t)v.u.l->n); return 0;
        case JV_DICT:
        case JV_NS: *out = jv_int((int64_t)v.u.d->n); return 0;
        case JV_UNDEF: *out = jv_int(0); return 0;
        default: return fail(r, at, "object of type '%s' has no len()", tname(v));
        }
    }
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jv_t def = jv_strn("", 0), boolean = jv_bool(false);
        arg_get(a, 0, "default_value", &def);
        arg_get(a, 1, "boolean", &boolean);
        *out = (v.t == JV_UNDEF || (jv_truthy(boolean) && !jv_truthy(v))) ? def : v;
        return 0;
    }
    if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "capitalize") || !strcmp(f, "title")) {
        jv_t s;
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        sl_buf_t b = {0};
        int rc = f[0] == 'u' ? map_cps(&b, s.u.s.p, s.u.s.n, NULL, cp_upper)
               : f[0] == 'l' ? map_cps(&b, s.u.s.p, s.u.s.n, NULL, cp_lower)
               : f[0] == 'c' ? map_cps(&b, s.u.s.p, s.u.s.n, cp_upper, cp_lower)
                             : jinja_title(&b, s.u.s.p, s.u.s.n);
        if (rc) {
            sl_buf_free(&b);
            return oom(r, at);
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(f, "trim")) {
        jv_t s;
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        const jv_t *chars = NULL;
        if (arg_get(a, 0, "chars", &x) && x.t == JV_STR) chars = &x;
        size_t st, en;
        strip_range(s.u.s.p, s.u.s.n, chars, true, true, &st, &en);
        *out = jv_strn(s.u.s.p + st, en - st);
        return 0;
    }
    if (!strcmp(f, "replace")) {
        jv_t s, cnt = jv_none();
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        if (!arg_get(a, 0, "old", &x) || !arg_get(a, 1, "new", &y)) return fail(r, at, "replace needs old and new");
        if (str_of(r, at, x, &x) || str_of(r, at, y, &y)) return -1;
        arg_get(a, 2, "count", &cnt);
        return str_replace(r, at, s, x, y, cnt.t == JV_INT ? cnt.u.i : -1, out);
    }
    if (!strcmp(f, "join")) {
        jv_t d = jv_strn("", 0), attr = jv_none();
        arg_get(a, 0, "d", &d);
        arg_get(a, 1, "attribute", &attr);
        if (str_of(r, at, d, &d)) return -1;
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        sl_buf_t b = {0};
        for (size_t i = 0; i < items->n; i++) {
            jv_t it = items->v[i];
            if (attr.t != JV_NONE && attr_path(r, at, it, attr, &it)) {
                sl_buf_free(&b);
                return -1;
            }
            if ((i && sl_buf_append(&b, d.u.s.p, d.u.s.n)) || jv_str(&b, it)) {
                sl_buf_free(&b);
                return oom(r, at);
            }
            if (check_out(r, at, &b)) {
                sl_buf_free(&b);
                return -1;
            }
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        if (!items->n) *out = undef_hint(r, "No %s item, sequence was empty.", f);
        else *out = items->v[f[0] == 'f' ? 0 : items->n - 1];
        return 0;
    }
    if (!strcmp(f, "list")) {
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        jlist_t *l = jlist_new(r->a, items->n);
        if (!l) return oom(r, at);
        for (size_t i = 0; i < items->n; i++) l->v[l->n++] = items->v[i];
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "items")) {
        if (v.t == JV_UNDEF) {
            jlist_t *l = jlist_new(r->a, 0);
            if (!l) return oom(r, at);
            *out = jv_list(l);
            return 0;
        }
        if (v.t != JV_DICT) return fail(r, at, "Can only get item pairs from a mapping.");
        return call_method(r, at, v, "items", &(args_t){0}, out);
    }
    if (!strcmp(f, "dictsort")) {
        if (v.t != JV_DICT) return fail(r, at, "You can only sort by either \"key\" or \"value\"");
        jv_t cs = jv_bool(false), by = jv_strn("key", 3), rev = jv_bool(false);
        arg_get(a, 0, "case_sensitive", &cs);
        arg_get(a, 1, "by", &by);
        arg_get(a, 2, "reverse", &rev);
        jv_t pairs;
        if (call_method(r, at, v, "items", &(args_t){0}, &pairs)) return -1;
        size_t n = pairs.u.l->n;
        jv_t *keys = jz_alloc(r->a, (n + 1) * sizeof(jv_t));
        if (!keys) return oom(r, at);
        bool by_value = str_is(by, "value");
        for (size_t i = 0; i < n; i++) keys[i] = fold_case(r, pairs.u.l->v[i].u.l->v[by_value ? 1 : 0], jv_truthy(cs));
        if (sort_pairs(r, at, keys, pairs.u.l->v, n, jv_truthy(rev))) return -1;
        *out = pairs;
        return 0;
    }
    if (!strcmp(f, "sort")) {
        jv_t rev = jv_bool(false), cs = jv_bool(false), attr = jv_none();
        arg_get(a, 0, "reverse", &rev);
        arg_get(a, 1, "case_sensitive", &cs);
        arg_get(a, 2, "attribute", &attr);
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        jlist_t *l = jlist_new(r->a, items->n);
        jv_t *keys = jz_alloc(r->a, (items->n + 1) * sizeof(jv_t));
        if (!l || !keys) return oom(r, at);
        for (size_t i = 0; i < items->n; i++) {
            jv_t k = items->v[i];
            if (attr.t != JV_NONE && attr_path(r, at, k, attr, &k)) return -1;
            keys[i] = fold_case(r, k, jv_truthy(cs));
            l->v[l->n++] = items->v[i];
        }
        if (sort_pairs(r, at, keys, l->v, l->n, jv_truthy(rev))) return -1;
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "unique")) {
        jv_t cs = jv_bool(false), attr = jv_none();
        arg_get(a, 0, "case_sensitive", &cs);
        arg_get(a, 1, "attribute", &attr);
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        jlist_t *l = jlist_new(r->a, items->n), *seen = jlist_new(r->a, items->n);
        if (!l || !seen) return oom(r, at);
        for (size_t i = 0; i < items->n; i++) {
            jv_t k = items->v[i];
            if (attr.t != JV_NONE && attr_path(r, at, k, attr, &k)) return -1;
            k = fold_case(r, k, jv_truthy(cs));
            bool dup = false;
            for (size_t j = 0; j < seen->n && !dup; j++) dup = jv_equal(seen->v[j], k);
            if (dup) continue;
            seen->v[seen->n++] = k;
            l->v[l->n++] = items->v[i];
        }
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "reverse")) {
        if (v.t == JV_STR) return do_slice(r, at, v, jv_none(), jv_none(), jv_int(-1), out);
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        jlist_t *l = jlist_new(r->a, items->n);
        if (!l) return oom(r, at);
        for (size_t i = items->n; i-- > 0;) l->v[l->n++] = items->v[i];
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "map")) {
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        jlist_t *l = jlist_new(r->a, items->n);
        if (!l) return oom(r, at);
        jv_t attr, def;
        bool has_attr = false;
        for (size_t i = 0; i < a->nkw; i++)
            if (!strcmp(a->kwn[i], "attribute")) {
                attr = a->kwv[i];
                has_attr = true;
            }
        bool has_def = false;
        for (size_t i = 0; i < a->nkw; i++)
            if (!strcmp(a->kwn[i], "default")) {
                def = a->kwv[i];
                has_def = true;
            }
        char fname[64];
        if (!has_attr) {
            if (!a->npos || a->pos[0].t != JV_STR || a->pos[0].u.s.n >= sizeof fname)
                return fail(r, at, "map requires a filter name or attribute=");
            memcpy(fname, a->pos[0].u.s.p, a->pos[0].u.s.n);
            fname[a->pos[0].u.s.n] = 0;
        }
        args_t fa = {0};
        if (!has_attr && a->npos > 1) {
            fa.pos = a->pos + 1;
            fa.npos = a->npos - 1;
        }
        for (size_t i = 0; i < items->n; i++) {
            jv_t o;
            if (has_attr) {
                if (attr_path(r, at, items->v[i], attr, &o)) return -1;
                if (o.t == JV_UNDEF && has_def) o = def;
            } else if (apply_filter(r, sc, at, fname, items->v[i], &fa, &o)) {
                return -1;
            }
            l->v[l->n++] = o;
        }
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "select") || !strcmp(f, "reject") || !strcmp(f, "selectattr") || !strcmp(f, "rejectattr"))
        return filter_select(r, sc, at, f, v, a, out);
    if (!strcmp(f, "int")) {
        jv_t def = jv_int(0);
        arg_get(a, 0, "default", &def);
        int64_t i;
        *out = to_int(v, &i) ? def : jv_int(i);
        return 0;
    }
    if (!strcmp(f, "float")) {
        jv_t def = jv_float(0.0);
        arg_get(a, 0, "default", &def);
        if (is_num(v)) *out = jv_float(num_f(v));
        else if (v.t == JV_STR) {
            char buf[64];
            size_t s, e;
            strip_range(v.u.s.p, v.u.s.n, NULL, true, true, &s, &e);
            char *end;
            if (e - s && e - s < sizeof buf) {
                memcpy(buf, v.u.s.p + s, e - s);
                buf[e - s] = 0;
                double d = strtod(buf, &end);
                *out = *end ? def : jv_float(d);
            } else {
                *out = def;
            }
        } else *out = def;
        return 0;
    }
    if (!strcmp(f, "abs")) {
        if (v.t == JV_FLOAT) *out = jv_float(fabs(v.u.f));
        else if (is_num(v)) {
            int64_t i = num_i(v);
            if (i == INT64_MIN) return fail(r, at, "integer overflow");
            *out = jv_int(i < 0 ? -i : i);
        } else return fail(r, at, "bad operand type for abs(): '%s'", tname(v));
        return 0;
    }
    if (!strcmp(f, "round")) {
        jv_t prec = jv_int(0), method = jv_strn("common", 6);
        arg_get(a, 0, "precision", &prec);
        arg_get(a, 1, "method", &method);
        char mb[16] = "common";
        if (method.t == JV_STR && method.u.s.n < sizeof mb) {
            memcpy(mb, method.u.s.p, method.u.s.n);
            mb[method.u.s.n] = 0;
        }
        return py_round(r, at, v, prec.t == JV_INT ? prec.u.i : 0, mb, out);
    }
    if (!strcmp(f, "indent")) {
        jv_t width = jv_int(4), first = jv_bool(false), blank = jv_bool(false), s;
        arg_get(a, 0, "width", &width);
        arg_get(a, 1, "first", &first);
        arg_get(a, 2, "blank", &blank);
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        jv_t ind;
        if (width.t == JV_STR) ind = width;
        else if (width.t == JV_INT && width.u.i >= 0 && width.u.i <= 256) {
            char *c = jz_alloc(r->a, (size_t)width.u.i + 1);
            if (!c) return oom(r, at);
            memset(c, ' ', (size_t)width.u.i);
            ind = jv_strn(c, (size_t)width.u.i);
        } else return fail(r, at, "indent width must be a small integer or a string");
        /* lines of s + "\n" (splitlines drops the last empty piece) */
        sl_buf_t b = {0};
        int rc = 0;
        const char *p = s.u.s.p;
        size_t n = s.u.s.n, i = 0, line = 0;
        if (jv_truthy(first)) rc |= sl_buf_append(&b, ind.u.s.p, ind.u.s.n);
        while (i <= n) {
            size_t e = i;
            while (e < n && p[e] != '\n' && p[e] != '\r') e++;
            if (e == n && i == n && line > 0) break; /* the appended "\n" ends the last line */
            if (line > 0) {
                rc |= sl_buf_putc(&b, '\n');
                if (e > i || jv_truthy(blank)) rc |= sl_buf_append(&b, ind.u.s.p, ind.u.s.n);
            }
            rc |= sl_buf_append(&b, p + i, e - i);
            line++;
            if (e < n && p[e] == '\r' && e + 1 < n && p[e + 1] == '\n') e++;
            if (e >= n) break;
            i = e + 1;
        }
        if (rc) {
            sl_buf_free(&b);
            return oom(r, at);
        }
        return buf_str(r, at, &b, out);
    }
    if (!strcmp(f, "wordcount")) {
        jv_t s;
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        int64_t c = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s.n;) {
            size_t adv;
            uint32_t cp = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
            bool w = cp_is_alnum(cp) || cp == '_';
            if (w && !in) c++;
            in = w;
            i += adv;
        }
        *out = jv_int(c);
        return 0;
    }
    if (!strcmp(f, "escape") || !strcmp(f, "e") || !strcmp(f, "forceescape")) {
        if (v.safe && f[0] != 'f') {
            *out = v;
            return 0;
        }
        jv_t s;
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        sl_buf_t b = {0};
        int rc = 0;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            rc |= c == '&' ? sl_buf_puts(&b, "&amp;") : c == '<' ? sl_buf_puts(&b, "&lt;") : c == '>' ? sl_buf_puts(&b, "&gt;")
                : c == '"' ? sl_buf_puts(&b, "&#34;") : c == '\'' ? sl_buf_puts(&b, "&#39;") : sl_buf_putc(&b, c);
        }
        if (rc) {
            sl_buf_free(&b);
            return oom(r, at);
        }
        if (buf_str(r, at, &b, out)) return -1;
        out->safe = 1;
        return 0;
    }
    if (!strcmp(f, "format")) {
        jv_t s;
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        jlist_t *t = jlist_new(r->a, a->npos);
        if (!t) return oom(r, at);
        t->tuple = true;
        for (size_t i = 0; i < a->npos; i++) t->v[t->n++] = a->pos[i];
        return py_format(r, at, s, jv_list(t), out);
    }
    if (!strcmp(f, "sum") || !strcmp(f, "max") || !strcmp(f, "min")) {
        jv_t attr = jv_none();
        jlist_t *items;
        if (iter_items(r, at, v, &items)) return -1;
        for (size_t i = 0; i < a->nkw; i++)
            if (!strcmp(a->kwn[i], "attribute")) attr = a->kwv[i];
        if (f[1] == 'u') {
            jv_t acc = jv_int(0);
            if (a->npos > 1) acc = a->pos[1];
            for (size_t i = 0; i < a->nkw; i++)
                if (!strcmp(a->kwn[i], "start")) acc = a->kwv[i];
            if (a->npos > 0) attr = a->pos[0];
            for (size_t i = 0; i < items->n; i++) {
                jv_t it = items->v[i];
                if (attr.t != JV_NONE && attr_path(r, at, it, attr, &it)) return -1;
                if (arith(r, at, JO_ADD, acc, it, &acc)) return -1;
            }
            *out = acc;
            return 0;
        }
        jv_t cs = jv_bool(false);
        arg_get(a, 0, "case_sensitive", &cs);
        if (!items->n) {
            *out = undef_hint(r, "No aggregated item, sequence was empty.");
            return 0;
        }
        jv_t best = items->v[0], bestk = best;
        if (attr.t != JV_NONE && attr_path(r, at, best, attr, &bestk)) return -1;
        bestk = fold_case(r, bestk, jv_truthy(cs));
        for (size_t i = 1; i < items->n; i++) {
            jv_t k = items->v[i];
            int c;
            if (attr.t != JV_NONE && attr_path(r, at, k, attr, &k)) return -1;
            k = fold_case(r, k, jv_truthy(cs));
            if (compare(r, at, k, bestk, "<", &c)) return -1;
            if (f[1] == 'a' ? c > 0 : c < 0) {
                best = items->v[i];
                bestk = k;
            }
        }
        *out = best;
        return 0;
    }
    if (!strcmp(f, "attr")) {
        if (!a->npos || a->pos[0].t != JV_STR || a->pos[0].u.s.n >= 128) return fail(r, at, "attr needs a name");
        char nm[128];
        memcpy(nm, a->pos[0].u.s.p, a->pos[0].u.s.n);
        nm[a->pos[0].u.s.n] = 0;
        if (v.t == JV_UNDEF) return fail_undef(r, at, v);
        if (v.t == JV_DICT && !in_set(DICT_METHODS, nm)) { /* attr() is getattr only, never item lookup */
            *out = undef_hint(r, "'dict object' has no attribute '%s'", nm);
            return 0;
        }
        return get_attr(r, at, v, nm, out);
    }
    if (!strcmp(f, "batch")) {
        jv_t cnt, fill = jv_none();
        if (!arg_get(a, 0, "linecount", &cnt) || cnt.t != JV_INT || cnt.u.i <= 0) return fail(r, at, "batch needs a positive count");
        bool has_fill = arg_get(a, 1, "fill_with", &fill) && fill.t != JV_NONE;
        jlist_t *items, *l = jlist_new(r->a, 0), *cur = NULL;
        if (!l || iter_items(r, at, v, &items)) return l ? -1 : oom(r, at);
        for (size_t i = 0; i < items->n; i++) {
            if (!cur || cur->n == (size_t)cnt.u.i) {
                if (!(cur = jlist_new(r->a, 0)) || jlist_push(r->a, l, jv_list(cur))) return oom(r, at);
            }
            if (jlist_push(r->a, cur, items->v[i])) return oom(r, at);
        }
        if (cur && has_fill)
            while (cur->n < (size_t)cnt.u.i)
                if (jlist_push(r->a, cur, fill)) return oom(r, at);
        *out = jv_list(l);
        return 0;
    }
    if (!strcmp(f, "center")) {
        if (a->npos + a->nkw > 1) return fail(r, at, "center() takes from 1 to 2 positional arguments");
        jv_t s, w = jv_int(80);
        arg_get(a, 0, "width", &w);
        if (apply_filter(r, sc, at, "string", v, &(args_t){0}, &s)) return -1;
        args_t ca = {.pos = &w, .npos = 1};
        return call_method(r, at, s, "center", &ca, out);
    }
    if (!strcmp(f, "pprint")) return str_of(r, at, v, out);
    return fail(r, at, "no filter named '%s'", f);
}

/* ---- tests ---- */

static int apply_test(R *r, scope_t *sc, const jnode_t *at, const char *t, jv_t v, const args_t *a, bool *res) {
    (void)sc;
    jv_t x;
    bool has = arg_get(a, 0, "other", &x);
    if (!strcmp(t, "defined")) *res = v.t != JV_UNDEF;
    else if (!strcmp(t, "undefined")) *res = v.t == JV_UNDEF;
    else if (!strcmp(t, "none")) *res = v.t == JV_NONE;
    else if (!strcmp(t, "boolean")) *res = v.t == JV_BOOL;
    else if (!strcmp(t, "true")) *res = v.t == JV_BOOL && v.u.b;
    else if (!strcmp(t, "false")) *res = v.t == JV_BOOL && !v.u.b;
    else if (!strcmp(t, "integer")) *res = v.t == JV_INT;
    else if (!strcmp(t, "float")) *res = v.t == JV_FLOAT;
    else if (!strcmp(t, "number")) *res = is_num(v);
    else if (!strcmp(t, "string")) *res = v.t == JV_STR;
    else if (!strcmp(t, "mapping")) *res = v.t == JV_DICT;
    else if (!strcmp(t, "sequence")) *res = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT;
    else if (!strcmp(t, "iterable")) *res = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(t, "callable")) *res = v.t == JV_FUNC || v.t == JV_UNDEF; /* Undefined has __call__ */
    else if (!strcmp(t, "escaped")) *res = v.safe;
    else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        if (v.t != JV_STR) {
            *res = false;
            return 0;
        }
        jv_t o;
        if (call_method(r, at, v, t[0] == 'l' ? "islower" : "isupper", &(args_t){0}, &o)) return -1;
        *res = o.u.b;
    } else if (!strcmp(t, "odd") || !strcmp(t, "even")) {
        if (v.t != JV_INT && v.t != JV_BOOL) return fail(r, at, "test '%s' needs an integer", t);
        int64_t i = num_i(v);
        *res = ((i % 2) != 0) == (t[0] == 'o');
    } else if (!strcmp(t, "divisibleby")) {
        if (!arg_get(a, 0, "num", &x)) return fail(r, at, "divisibleby needs a number");
        jv_t m;
        if (arith(r, at, JO_MOD, v, x, &m)) return -1;
        *res = !jv_truthy(m);
    } else if (!strcmp(t, "in")) {
        if (!arg_get(a, 0, "seq", &x)) return fail(r, at, "test 'in' needs a sequence");
        return contains(r, at, x, v, res);
    } else if (!strcmp(t, "sameas")) {
        if (!arg_get(a, 0, "other", &x)) return fail(r, at, "sameas needs an argument");
        *res = (v.t == x.t) && ((v.t == JV_NONE || v.t == JV_UNDEF) ? true : (v.t == JV_BOOL) ? v.u.b == x.u.b : jv_equal(v, x));
    } else if (!strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "==")) {
        if (!has) return fail(r, at, "test '%s' needs an argument", t);
        *res = jv_equal(v, x);
    } else if (!strcmp(t, "ne") || !strcmp(t, "!=")) {
        if (!has) return fail(r, at, "test '%s' needs an argument", t);
        *res = !jv_equal(v, x);
    } else if (!strcmp(t, "lt") || !strcmp(t, "lessthan") || !strcmp(t, "le") || !strcmp(t, "gt") ||
               !strcmp(t, "greaterthan") || !strcmp(t, "ge") || !strcmp(t, "<") || !strcmp(t, "<=") ||
               !strcmp(t, ">") || !strcmp(t, ">=")) {
        if (!has) return fail(r, at, "test '%s' needs an argument", t);
        int c;
        if (compare(r, at, v, x, t, &c)) return -1;
        bool lt = t[0] == 'l' || t[0] == '<', eq = !strcmp(t, "le") || !strcmp(t, "ge") || !strcmp(t, "<=") || !strcmp(t, ">=");
        *res = lt ? (eq ? c <= 0 : c < 0) : (eq ? c >= 0 : c > 0);
    } else if (!strcmp(t, "startingwith") || !strcmp(t, "endingwith")) {
        if (v.t != JV_STR || !has || x.t != JV_STR) {
            *res = false;
            return 0;
        }
        args_t ma = {.pos = &x, .npos = 1};
        jv_t o;
        if (call_method(r, at, v, t[0] == 's' ? "startswith" : "endswith", &ma, &o)) return -1;
        *res = o.u.b;
    } else if (!strcmp(t, "filter") || !strcmp(t, "test")) {
        static const char *const known[] = {"tojson", "trim", "length", "upper", "lower", "join", "default", NULL};
        *res = v.t == JV_STR && v.u.s.n < 32 && in_set(known, v.u.s.p);
    } else {
        return fail(r, at, "no test named '%s'", t);
    }
    return 0;
}

/* ---- statements ---- */

static int out_append(R *r, const jnode_t *at, sl_buf_t *out, const char *p, size_t n) {
    if (sl_buf_append(out, p, n)) return oom(r, at);
    return check_out(r, at, out);
}

static int exec_body(R *r, scope_t *sc, const jnode_t *body, sl_buf_t *out) {
    for (size_t i = 0; i < body->nkids; i++) {
        int rc = exec(r, sc, body->kids[i], out);
        if (rc) return rc;
    }
    return 0;
}

static int exec_for(R *r, scope_t *sc, const jnode_t *n, sl_buf_t *out) {
    jv_t seq;
    if (eval(r, sc, n->a, &seq)) return -1;
    jlist_t *items;
    if (iter_items(r, n, seq, &items)) return -1;
    /* the `if` filter applies before loop.length etc. are known */
    if (n->d) {
        jlist_t *kept = jlist_new(r->a, items->n);
        if (!kept) return oom(r, n);
        for (size_t i = 0; i < items->n; i++) {
            scope_t *fs = scope_new(r, sc);
            jv_t c;
            if (!fs) return oom(r, n);
            if (assign_targets(r, n, fs, n->names, n->nnames, items->v[i]) || eval(r, fs, n->d, &c)) return -1;
            if (jv_truthy(c)) kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    jloop_t *L = jz_alloc(r->a, sizeof *L);
    if (!L) return oom(r, n);
    L->length = items->n;
    L->depth0 = 0; /* loop.depth counts recursive-loop levels only; nested loops are each depth 1 */
    L->items = items->v;
    jv_t lv = {0};
    lv.t = JV_LOOP;
    lv.u.loop = L;
    for (size_t i = 0; i < items->n; i++) {
        if (step(r, n)) return -1;
        L->index0 = i;
        L->prev = i > 0 ? items->v[i - 1] : jv_undef();
        L->next = i + 1 < items->n ? items->v[i + 1] : jv_undef();
        scope_t *is = scope_new(r, sc);
        if (!is) return oom(r, n);
        if (assign_targets(r, n, is, n->names, n->nnames, items->v[i]) || scope_set(r, n, is, "loop", lv)) return -1;
        int rc = exec_body(r, is, n->b, out);
        if (rc == SIG_BREAK) break;
        if (rc == SIG_CONTINUE) continue;
        if (rc) return rc;
    }
    if (items->n == 0 && n->c) return exec_body(r, sc, n->c, out);
    return 0;
}

static int exec(R *r, scope_t *sc, const jnode_t *n, sl_buf_t *out) {
    if (step(r, n)) return -1;
    switch (n->kind) {
    case JN_BODY: return exec_body(r, sc, n, out);
    case JN_TEXT: return out_append(r, n, out, n->val.u.s.p, n->val.u.s.n);
    case JN_OUTPUT: {
        jv_t v;
        if (eval(r, sc, n->a, &v)) return -1;
        if (v.t == JV_STR) return out_append(r, n, out, v.u.s.p, v.u.s.n);
        if (jv_str(out, v)) return oom(r, n);
        return check_out(r, n, out);
    }
    case JN_IF: {
        jv_t c;
        if (eval(r, sc, n->a, &c)) return -1;
        if (jv_truthy(c)) return exec_body(r, sc, n->b, out);
        if (n->c) return exec(r, sc, n->c, out);
        return 0;
    }
    case JN_FOR: return exec_for(r, sc, n, out);
    case JN_BREAK: return SIG_BREAK;
    case JN_CONTINUE: return SIG_CONTINUE;
    case JN_SET: {
        jv_t v;
        if (eval(r, sc, n->a, &v)) return -1;
        if (n->attr) {
            const jv_t *ns = scope_find(sc, n->str, strlen(n->str));
            if (!ns || ns->t != JV_NS) return fail(r, n, "cannot assign attribute on non-namespace object");
            if (jdict_set(r->a, ns->u.d, jv_strn(n->attr, strlen(n->attr)), v)) return oom(r, n);
            return 0;
        }
        return assign_targets(r, n, sc, n->names, n->nnames, v);
    }
    case JN_SETBLOCK: {
        sl_buf_t b = {0};
        int rc = exec_body(r, sc, n->b, &b);
        if (rc) {
            sl_buf_free(&b);
            return rc < 0 ? rc : fail(r, n, "break/continue across a set block");
        }
        jv_t v;
        if (buf_str(r, n, &b, &v)) return -1;
        if (n->d) {
            /* apply the chain: collect from the innermost (operand NULL) out */
            const jnode_t *chain[32];
            size_t k = 0;
            for (const jnode_t *fl = n->d; fl && k < 32; fl = fl->a) chain[k++] = fl;
            while (k-- > 0) {
                args_t a;
                if (eval_args(r, sc, chain[k], &a, NULL) || apply_filter(r, sc, chain[k], chain[k]->str, v, &a, &v)) return -1;
            }
        }
        return scope_set(r, n, sc, n->names[0], v);
    }
    case JN_FILTERBLOCK: {
        sl_buf_t b = {0};
        int rc = exec_body(r, sc, n->b, &b);
        if (rc) {
            sl_buf_free(&b);
            return rc;
        }
        jv_t v;
        if (buf_str(r, n, &b, &v)) return -1;
        const jnode_t *chain[32];
        size_t k = 0;
        for (const jnode_t *fl = n->d; fl && k < 32; fl = fl->a) chain[k++] = fl;
        while (k-- > 0) {
            args_t a;
            if (eval_args(r, sc, chain[k], &a, NULL) || apply_filter(r, sc, chain[k], chain[k]->str, v, &a, &v)) return -1;
        }
        if (jv_str(out, v)) return oom(r, n);
        return check_out(r, n, out);
    }
    case JN_MACRO: {
        jfunc_t *f = mkfunc(r, JF_MACRO, n->str, jv_none());
        if (!f) return oom(r, n);
        f->def = n;
        f->closure = sc;
        return scope_set(r, n, sc, n->str, jv_func(f));
    }
    case JN_CALLBLOCK: {
        const jnode_t *call = n->a;
        jv_t fn;
        args_t a;
        if (eval(r, sc, call->a, &fn) || eval_args(r, sc, call, &a, NULL)) return -1;
        if (fn.t != JV_FUNC || fn.u.fn->kind != JF_MACRO) return fail(r, n, "call block needs a macro");
        jfunc_t *caller = mkfunc(r, JF_CALLER, "caller", jv_none());
        jfunc_t *bound_macro = mkfunc(r, JF_MACRO, fn.u.fn->name, jv_none());
        if (!caller || !bound_macro) return oom(r, n);
        caller->def = n;
        caller->closure = sc;
        *bound_macro = *fn.u.fn;
        bound_macro->caller = jv_func(caller);
        jv_t v;
        if (call_macro(r, n, bound_macro, &a, &v)) return -1;
        return out_append(r, n, out, v.u.s.p, v.u.s.n);
    }
    case JN_WITH: {
        scope_t *ws = scope_new(r, sc);
        if (!ws) return oom(r, n);
        for (size_t i = 0; i < n->nnames; i++) {
            jv_t v;
            if (eval(r, sc, n->kids[i], &v) || scope_set(r, n, ws, n->names[i], v)) return -1;
        }
        return exec_body(r, ws, n->b, out);
    }
    default: {
        jv_t v;
        return eval(r, sc, n, &v);
    }
    }
}

int jinja_render(const jnode_t *root, jz_arena_t *arena, jdict_t *vars, const jinja_limits_t *lim, sl_buf_t *out,
                 char *err, size_t errlen) {
    R r = {.a = arena, .lim = lim, .err = err, .errlen = errlen};
    scope_t top = {.parent = NULL, .vars = vars};
    int rc = exec(&r, &top, root, out);
    if (rc > 0) rc = fail(&r, NULL, "break/continue outside a loop");
    return rc ? -1 : 0;
}
