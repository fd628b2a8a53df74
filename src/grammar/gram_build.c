/*
 * gram_build.c — building a flat grammar: rules of alternatives of elements,
 * code-point classes lowered to UTF-8 byte sequences, and the final checks
 * and rewrites (gram_finish).
 *
 * gram_finish does, in order:
 *   1. every referenced rule is defined;
 *   2. small non-recursive rules referenced from several places are cloned
 *      per call site (bounded by a size budget). This gives most positions a
 *      STATIC calling context — the index can then precompute which tokens a
 *      position accepts across the end of its rule, leaving few tokens whose
 *      fate depends on the run-time stack;
 *   3. left recursion (direct, or through nullable prefixes) is rejected: the
 *      matcher expands positions depth-first and needs that to terminate;
 *   4. flattening into gram_t and computing each rule's unique call site.
 */
#include "grammar/gram_internal.h"

#include <stdlib.h>
#include <string.h>

void gram_builder_init(gram_builder_t *b, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    b->err = err;
    b->errlen = errlen;
}

void gram_builder_free(gram_builder_t *b) {
    for (uint32_t i = 0; i < b->n_rules; i++) {
        for (uint32_t j = 0; j < b->rules[i].n_alts; j++) free(b->rules[i].alts[j].e);
        free(b->rules[i].alts);
        free(b->rules[i].name);
    }
    free(b->rules);
    free(b->terms);
    memset(b, 0, sizeof *b);
}

static int bfail(gram_builder_t *b, const char *msg) {
    if (!b->failed) sl_err(b->err, b->errlen, "%s", msg);
    b->failed = true;
    return -1;
}

static int64_t add_rule(gram_builder_t *b, char *name) {
    if (b->n_rules >= GRAM_MAX_RULES) {
        free(name);
        return bfail(b, "grammar too large (too many rules)");
    }
    if (b->n_rules == b->cap_rules) {
        uint32_t nc = b->cap_rules ? b->cap_rules * 2 : 64;
        gram_brule_t *p = realloc(b->rules, nc * sizeof *p);
        if (!p) {
            free(name);
            return bfail(b, "out of memory");
        }
        b->rules = p;
        b->cap_rules = nc;
    }
    gram_brule_t *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    r->name = name;
    return b->n_rules++;
}

int64_t gram_builder_rule(gram_builder_t *b, const char *name, size_t nlen) {
    for (uint32_t i = 0; i < b->n_rules; i++)
        if (b->rules[i].name && strlen(b->rules[i].name) == nlen &&
            memcmp(b->rules[i].name, name, nlen) == 0)
            return i;
    char *n = sl_strndup(name, nlen);
    if (!n) return bfail(b, "out of memory");
    return add_rule(b, n);
}

int64_t gram_builder_new_rule(gram_builder_t *b) {
    int64_t r = add_rule(b, NULL);
    if (r >= 0) b->rules[r].defined = true;
    return r;
}

gram_alt_t *gram_rule_add_alt(gram_builder_t *b, uint32_t rule) {
    gram_brule_t *r = &b->rules[rule];
    if (r->n_alts == r->cap_alts) {
        uint32_t nc = r->cap_alts ? r->cap_alts * 2 : 4;
        gram_alt_t *p = realloc(r->alts, nc * sizeof *p);
        if (!p) {
            bfail(b, "out of memory");
            return NULL;
        }
        r->alts = p;
        r->cap_alts = nc;
    }
    gram_alt_t *a = &r->alts[r->n_alts++];
    memset(a, 0, sizeof *a);
    return a;
}

int gram_alt_push(gram_builder_t *b, gram_alt_t *a, uint32_t type, uint32_t val) {
    if (b->failed) return -1;
    if (++b->total_elems > GRAM_MAX_ELEMS) return bfail(b, "grammar too large (too many elements)");
    if (a->n == a->cap) {
        uint32_t nc = a->cap ? a->cap * 2 : 8;
        gram_elem_t *p = realloc(a->e, nc * sizeof *p);
        if (!p) return bfail(b, "out of memory");
        a->e = p;
        a->cap = nc;
    }
    a->e[a->n].type = type;
    a->e[a->n].val = val;
    a->n++;
    return 0;
}

static int64_t add_term(gram_builder_t *b, const gram_bset_t *s) {
    for (uint32_t i = 0; i < b->n_terms; i++)
        if (memcmp(&b->terms[i], s, sizeof *s) == 0) return i;
    if (b->n_terms == b->cap_terms) {
        uint32_t nc = b->cap_terms ? b->cap_terms * 2 : 32;
        gram_bset_t *p = realloc(b->terms, nc * sizeof *p);
        if (!p) return bfail(b, "out of memory");
        b->terms = p;
        b->cap_terms = nc;
    }
    b->terms[b->n_terms] = *s;
    return b->n_terms++;
}

static void bset_range(gram_bset_t *s, unsigned lo, unsigned hi) {
    for (unsigned c = lo; c <= hi; c++) s->w[c >> 5] |= 1u << (c & 31);
}

int gram_push_byte(gram_builder_t *b, gram_alt_t *a, unsigned char c) {
    gram_bset_t s;
    memset(&s, 0, sizeof s);
    bset_range(&s, c, c);
    int64_t t = add_term(b, &s);
    if (t < 0) return -1;
    return gram_alt_push(b, a, GE_TERM, (uint32_t)t);
}

int gram_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* UTF-8 range splitting (the classic utf8-ranges construction): split
 * [lo,hi] until every piece encodes as a fixed-length sequence of byte
 * ranges; each piece becomes one alternative of the class rule. */
typedef struct {
    gram_builder_t *b;
    uint32_t rule;
    /* sequences whose first byte range is a single ASCII byte set are merged
     * into one terminal */
    gram_bset_t ascii;
    bool has_ascii;
} utf8_ctx_t;

static int utf8_emit(utf8_ctx_t *c, uint32_t lo, uint32_t hi) {
    char a[4], z[4];
    int n = gram_utf8_encode(lo, a);
    gram_utf8_encode(hi, z);
    if (n == 1) {
        bset_range(&c->ascii, (unsigned char)a[0], (unsigned char)z[0]);
        c->has_ascii = true;
        return 0;
    }
    gram_alt_t *alt = gram_rule_add_alt(c->b, c->rule);
    if (!alt) return -1;
    for (int i = 0; i < n; i++) {
        gram_bset_t s;
        memset(&s, 0, sizeof s);
        bset_range(&s, (unsigned char)a[i], (unsigned char)z[i]);
        int64_t t = add_term(c->b, &s);
        if (t < 0 || gram_alt_push(c->b, alt, GE_TERM, (uint32_t)t) < 0) return -1;
    }
    return 0;
}

static int utf8_split(utf8_ctx_t *c, uint32_t lo, uint32_t hi, int depth) {
    if (lo > hi) return 0;
    if (depth > 64) return bfail(c->b, "internal: utf8 split depth");
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= bounds[i] && hi > bounds[i])
            return utf8_split(c, lo, bounds[i], depth + 1) ||
                   utf8_split(c, bounds[i] + 1, hi, depth + 1);
    /* surrogates are not code points that UTF-8 may encode */
    if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800 && utf8_split(c, lo, 0xD7FF, depth + 1)) return -1;
        if (hi > 0xDFFF && utf8_split(c, 0xE000, hi, depth + 1)) return -1;
        return 0;
    }
    if (hi > 0x7F) {
        int n = hi <= 0x7FF ? 2 : hi <= 0xFFFF ? 3 : 4;
        for (int i = 1; i < n; i++) {
            uint32_t m = (1u << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m)) {
                if ((lo & m) != 0)
                    return utf8_split(c, lo, lo | m, depth + 1) ||
                           utf8_split(c, (lo | m) + 1, hi, depth + 1);
                if ((hi & m) != m)
                    return utf8_split(c, lo, (hi & ~m) - 1, depth + 1) ||
                           utf8_split(c, hi & ~m, hi, depth + 1);
            }
        }
    }
    return utf8_emit(c, lo, hi);
}

static int cmp_range(const void *x, const void *y) {
    const gram_cprange_t *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

int gram_push_class(gram_builder_t *b, gram_alt_t *a, const gram_cprange_t *r, size_t n,
                    bool negated) {
    if (b->failed) return -1;
    /* normalise: sorted, merged, clipped to the code-point space */
    gram_cprange_t *v = malloc((n + 1) * sizeof *v);
    if (!v) return bfail(b, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].lo > r[i].hi || r[i].lo > 0x10FFFF) continue;
        v[k].lo = r[i].lo;
        v[k].hi = SL_MIN(r[i].hi, 0x10FFFFu);
        k++;
    }
    qsort(v, k, sizeof *v, cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m && v[i].lo <= v[m - 1].hi + 1) {
            if (v[i].hi > v[m - 1].hi) v[m - 1].hi = v[i].hi;
        } else {
            v[m++] = v[i];
        }
    }
    if (negated) {
        gram_cprange_t *w = malloc((m + 1) * sizeof *w);
        if (!w) {
            free(v);
            return bfail(b, "out of memory");
        }
        size_t j = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (v[i].lo > next) w[j++] = (gram_cprange_t){next, v[i].lo - 1};
            next = v[i].hi + 1;
        }
        if (next <= 0x10FFFF) w[j++] = (gram_cprange_t){next, 0x10FFFF};
        free(v);
        v = w;
        m = j;
    }
    if (m == 0) {
        free(v);
        return bfail(b, "character class matches nothing");
    }
    if (v[m - 1].hi < 0x80) { /* one byte terminal */
        gram_bset_t s;
        memset(&s, 0, sizeof s);
        for (size_t i = 0; i < m; i++) bset_range(&s, v[i].lo, v[i].hi);
        free(v);
        int64_t t = add_term(b, &s);
        return t < 0 ? -1 : gram_alt_push(b, a, GE_TERM, (uint32_t)t);
    }
    int64_t rule = gram_builder_new_rule(b);
    if (rule < 0) {
        free(v);
        return -1;
    }
    utf8_ctx_t c;
    memset(&c, 0, sizeof c);
    c.b = b;
    c.rule = (uint32_t)rule;
    for (size_t i = 0; i < m; i++)
        if (utf8_split(&c, v[i].lo, v[i].hi, 0)) {
            free(v);
            return -1;
        }
    free(v);
    if (c.has_ascii) {
        gram_alt_t *alt = gram_rule_add_alt(b, (uint32_t)rule);
        int64_t t = alt ? add_term(b, &c.ascii) : -1;
        if (t < 0 || gram_alt_push(b, alt, GE_TERM, (uint32_t)t) < 0) return -1;
        /* put the ASCII alternative first (the common case) */
        gram_brule_t *br = &b->rules[rule];
        gram_alt_t last = br->alts[br->n_alts - 1];
        memmove(&br->alts[1], &br->alts[0], (br->n_alts - 1) * sizeof last);
        br->alts[0] = last;
    }
    return gram_alt_push(b, a, GE_REF, (uint32_t)rule);
}

/* ---- finish ---- */

typedef struct {
    gram_builder_t *b;
    uint32_t *index, *low, *stack;
    bool *on_stack, *recursive;
    uint32_t counter, sp;
} tarjan_t;

/* Iterative-enough Tarjan: recursion depth is bounded by the rule count,
 * which is capped; synthesized grammars are shallow in practice. */
static void tarjan_visit(tarjan_t *t, uint32_t v, int depth) {
    t->index[v] = t->low[v] = ++t->counter;
    t->stack[t->sp++] = v;
    t->on_stack[v] = true;
    gram_brule_t *r = &t->b->rules[v];
    for (uint32_t i = 0; i < r->n_alts; i++)
        for (uint32_t j = 0; j < r->alts[i].n; j++) {
            gram_elem_t e = r->alts[i].e[j];
            if (e.type != GE_REF) continue;
            uint32_t w = e.val;
            if (w == v) t->recursive[v] = true;
            if (!t->index[w]) {
                if (depth > 2000) {
                    t->recursive[v] = t->recursive[w] = true; /* be conservative */
                    continue;
                }
                tarjan_visit(t, w, depth + 1);
                if (t->low[w] < t->low[v]) t->low[v] = t->low[w];
            } else if (t->on_stack[w] && t->index[w] < t->low[v]) {
                t->low[v] = t->index[w];
            }
        }
    if (t->low[v] == t->index[v]) {
        uint32_t n = 0, w;
        uint32_t top = t->sp;
        do {
            w = t->stack[--t->sp];
            t->on_stack[w] = false;
            n++;
        } while (w != v);
        if (n > 1)
            for (uint32_t k = t->sp; k < top; k++) t->recursive[t->stack[k]] = true;
    }
}

static size_t rule_size(gram_builder_t *b, uint32_t r) {
    size_t n = 0;
    for (uint32_t i = 0; i < b->rules[r].n_alts; i++) n += b->rules[r].alts[i].n + 1;
    return n;
}

/* Clone rule r (its alternatives; references inside stay shared). */
static int64_t clone_rule(gram_builder_t *b, uint32_t r) {
    int64_t c = gram_builder_new_rule(b);
    if (c < 0) return -1;
    b->rules[c].chain_level = b->rules[r].chain_level;
    for (uint32_t i = 0; i < b->rules[r].n_alts; i++) {
        gram_alt_t *a = gram_rule_add_alt(b, (uint32_t)c);
        if (!a) return -1;
        gram_alt_t *src = &b->rules[r].alts[i]; /* re-read: rules may move */
        for (uint32_t j = 0; j < src->n; j++)
            if (gram_alt_push(b, a, src->e[j].type, src->e[j].val) < 0) return -1;
    }
    return c;
}

/* Recursive only through tail references to itself (r ::= x r | "", the
 * shape of x*): such a rule may be cloned like a plain one, the clone's
 * self-references pointing at the clone. */
static bool tail_self_only(gram_builder_t *b, uint32_t r, const bool *recursive) {
    for (uint32_t i = 0; i < b->rules[r].n_alts; i++) {
        const gram_alt_t *a = &b->rules[r].alts[i];
        for (uint32_t j = 0; j < a->n; j++) {
            if (a->e[j].type != GE_REF) continue;
            uint32_t s = a->e[j].val;
            if (s == r ? j + 1 != a->n : recursive[s]) return false;
        }
    }
    return true;
}

#define CLONE_MAX_RULE_ELEMS 64
/* Clones of one x* rule: each costs the index a re-walk of the uncertain
 * tokens of its positions (gram_match.c, "shallower context"), so only the
 * first few uses (json_object: key and value strings) get their own. */
#define CLONE_MAX_SELF_REC 4
#define CLONE_SELF_REC_RULES 64
#define CLONE_BUDGET_ELEMS 400000

static int clone_shared(gram_builder_t *b, uint32_t root, bool **recursive_io) {
    uint32_t n0 = b->n_rules;
    bool *recursive = *recursive_io;
    uint8_t *claimed = calloc(n0, 1);
    uint32_t *work = malloc(sizeof(uint32_t) * 1024);
    uint32_t nwork = 0, capwork = 1024;
    if (!claimed || !work) {
        free(claimed);
        free(work);
        return bfail(b, "out of memory");
    }
    size_t budget = CLONE_BUDGET_ELEMS;
    uint32_t sr_rule[CLONE_SELF_REC_RULES], sr_count[CLONE_SELF_REC_RULES], n_sr = 0;
    claimed[root] = 1;
    work[nwork++] = root;
    int rc = 0;
    uint32_t ncl = n0; /* size of claimed / recursive arrays */
    while (nwork && rc == 0) {
        uint32_t r = work[--nwork];
        for (uint32_t i = 0; i < b->rules[r].n_alts && rc == 0; i++)
            for (uint32_t j = 0; j < b->rules[r].alts[i].n && rc == 0; j++) {
                gram_elem_t e = b->rules[r].alts[i].e[j];
                if (e.type != GE_REF) continue;
                uint32_t s = e.val, target = s;
                if (s == r) continue; /* a self-reference stays */
                if (claimed[s]) {
                    size_t sz = rule_size(b, s);
                    bool self_rec = recursive[s] && tail_self_only(b, s, recursive);
                    if ((recursive[s] && !self_rec) || sz > CLONE_MAX_RULE_ELEMS || sz > budget)
                        continue;
                    if (self_rec) {
                        uint32_t k = 0;
                        while (k < n_sr && sr_rule[k] != s) k++;
                        if (k == n_sr) {
                            if (n_sr == CLONE_SELF_REC_RULES) continue;
                            sr_rule[n_sr] = s;
                            sr_count[n_sr++] = 0;
                        }
                        if (++sr_count[k] > CLONE_MAX_SELF_REC) continue;
                    }
                    int64_t c = clone_rule(b, s);
                    if (c < 0) {
                        rc = -1;
                        break;
                    }
                    for (uint32_t ci = 0; self_rec && ci < b->rules[c].n_alts; ci++)
                        for (uint32_t cj = 0; cj < b->rules[c].alts[ci].n; cj++)
                            if (b->rules[c].alts[ci].e[cj].type == GE_REF &&
                                b->rules[c].alts[ci].e[cj].val == s)
                                b->rules[c].alts[ci].e[cj].val = (uint32_t)c;
                    budget -= sz;
                    target = (uint32_t)c;
                    b->rules[r].alts[i].e[j].val = target;
                    if (target >= ncl) {
                        uint32_t nn = ncl * 2 > target + 1 ? ncl * 2 : target + 1;
                        uint8_t *pc = realloc(claimed, nn);
                        if (pc) claimed = pc;
                        bool *pr = pc ? realloc(recursive, nn * sizeof *pr) : NULL;
                        if (pr) recursive = pr;
                        if (!pc || !pr) {
                            rc = bfail(b, "out of memory");
                            break;
                        }
                        memset(claimed + ncl, 0, nn - ncl);
                        memset(recursive + ncl, 0, (nn - ncl) * sizeof *pr);
                        ncl = nn;
                    }
                    recursive[target] = self_rec;
                }
                claimed[target] = 1;
                if (nwork == capwork) {
                    uint32_t *p = realloc(work, 2 * capwork * sizeof *p);
                    if (!p) {
                        rc = bfail(b, "out of memory");
                        break;
                    }
                    work = p;
                    capwork *= 2;
                }
                work[nwork++] = target;
            }
    }
    free(claimed);
    free(work);
    *recursive_io = recursive;
    return rc;
}

gram_t *gram_finish(gram_builder_t *b, uint32_t root) {
    gram_t *g = NULL;
    bool *recursive = NULL;
    tarjan_t t;
    memset(&t, 0, sizeof t);
    if (b->failed) goto fail;
    for (uint32_t i = 0; i < b->n_rules; i++)
        if (!b->rules[i].defined) {
            sl_err(b->err, b->errlen, "grammar: rule '%s' is used but not defined",
                   b->rules[i].name ? b->rules[i].name : "?");
            goto fail;
        }
    if (root >= b->n_rules) {
        sl_err(b->err, b->errlen, "grammar: no root rule");
        goto fail;
    }
    {
        uint32_t n = b->n_rules;
        t.b = b;
        t.index = calloc(n, sizeof *t.index);
        t.low = calloc(n, sizeof *t.low);
        t.stack = calloc(n, sizeof *t.stack);
        t.on_stack = calloc(n, sizeof *t.on_stack);
        recursive = calloc(n, sizeof *recursive);
        t.recursive = recursive;
        if (!t.index || !t.low || !t.stack || !t.on_stack || !recursive) {
            sl_err(b->err, b->errlen, "out of memory");
            goto fail;
        }
        for (uint32_t i = 0; i < n; i++)
            if (!t.index[i]) tarjan_visit(&t, i, 0);
    }
    if (clone_shared(b, root, &recursive) < 0) goto fail;

    uint32_t nr = b->n_rules;
    /* nullable rules (fixpoint), then left recursion via nullable prefixes */
    bool *nullable = calloc(nr, sizeof *nullable);
    if (!nullable) {
        sl_err(b->err, b->errlen, "out of memory");
        goto fail;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < nr; r++) {
            if (nullable[r]) continue;
            for (uint32_t i = 0; i < b->rules[r].n_alts && !nullable[r]; i++) {
                gram_alt_t *a = &b->rules[r].alts[i];
                uint32_t j = 0;
                while (j < a->n && a->e[j].type == GE_REF && nullable[a->e[j].val]) j++;
                if (j == a->n) nullable[r] = changed = true;
            }
        }
    }
    {
        /* colour DFS over left-corner edges: 0 white, 1 grey, 2 black */
        uint8_t *col = calloc(nr, 1);
        uint32_t *stk = malloc(nr * sizeof *stk * 2 + 2);
        if (!col || !stk) {
            free(col);
            free(stk);
            free(nullable);
            sl_err(b->err, b->errlen, "out of memory");
            goto fail;
        }
        bool bad = false;
        uint32_t bad_rule = 0;
        for (uint32_t s = 0; s < nr && !bad; s++) {
            if (col[s]) continue;
            /* stack of (rule, edge cursor) pairs */
            uint32_t sp = 0;
            stk[sp++] = s;
            stk[sp++] = 0;
            col[s] = 1;
            while (sp && !bad) {
                uint32_t r = stk[sp - 2], cur = stk[sp - 1];
                /* enumerate left-corner refs of r in a fixed order: cursor =
                 * flat index over (alt, position) */
                uint32_t k = 0, next = UINT32_MAX;
                for (uint32_t i = 0; i < b->rules[r].n_alts && next == UINT32_MAX; i++) {
                    gram_alt_t *a = &b->rules[r].alts[i];
                    for (uint32_t j = 0; j < a->n; j++) {
                        if (a->e[j].type != GE_REF) break;
                        if (k++ == cur) {
                            next = a->e[j].val;
                            break;
                        }
                        if (!nullable[a->e[j].val]) break;
                    }
                }
                if (next == UINT32_MAX) {
                    col[r] = 2;
                    sp -= 2;
                    continue;
                }
                stk[sp - 1]++;
                if (col[next] == 1) {
                    bad = true;
                    bad_rule = next;
                } else if (col[next] == 0) {
                    col[next] = 1;
                    stk[sp++] = next;
                    stk[sp++] = 0;
                }
            }
        }
        free(col);
        free(stk);
        free(nullable);
        if (bad) {
            const char *nm = NULL;
            for (uint32_t r = bad_rule; r < nr && !nm; r++) nm = b->rules[r].name;
            sl_err(b->err, b->errlen, "grammar: left recursion through rule '%s' is not supported",
                   b->rules[bad_rule].name ? b->rules[bad_rule].name : (nm ? nm : "?"));
            goto fail;
        }
    }

    /* flatten */
    g = calloc(1, sizeof *g);
    if (!g) goto oom;
    size_t ne = 0, na = 0;
    for (uint32_t r = 0; r < nr; r++) {
        na += b->rules[r].n_alts;
        ne += rule_size(b, r);
    }
    ne += 1; /* a trailing END so that pos+1 is always valid */
    g->elems = malloc(ne * sizeof *g->elems);
    g->elem_rule = malloc(ne * sizeof *g->elem_rule);
    g->alt_start = malloc((na + 1) * sizeof *g->alt_start);
    g->rule_alt0 = malloc(nr * sizeof *g->rule_alt0);
    g->rule_nalt = malloc(nr * sizeof *g->rule_nalt);
    g->call_site = malloc(nr * sizeof *g->call_site);
    g->chain_level = malloc(nr * sizeof *g->chain_level);
    g->rule_rec = malloc(nr);
    g->terms = malloc((b->n_terms + 1) * sizeof *g->terms);
    if (!g->elems || !g->elem_rule || !g->alt_start || !g->rule_alt0 || !g->rule_nalt ||
        !g->call_site || !g->chain_level || !g->rule_rec || !g->terms)
        goto oom;
    for (uint32_t r = 0; r < nr; r++) {
        g->chain_level[r] = b->rules[r].chain_level;
        g->rule_rec[r] = recursive[r] ? 1 : 0;
    }
    if (b->n_terms) memcpy(g->terms, b->terms, b->n_terms * sizeof *g->terms);
    g->n_terms = b->n_terms;
    uint32_t pe = 0, pa = 0;
    for (uint32_t r = 0; r < nr; r++) {
        g->rule_alt0[r] = pa;
        g->rule_nalt[r] = b->rules[r].n_alts;
        for (uint32_t i = 0; i < b->rules[r].n_alts; i++) {
            g->alt_start[pa++] = pe;
            gram_alt_t *a = &b->rules[r].alts[i];
            for (uint32_t j = 0; j < a->n; j++) {
                g->elem_rule[pe] = r;
                g->elems[pe++] = a->e[j];
            }
            g->elem_rule[pe] = r;
            g->elems[pe++] = (gram_elem_t){GE_END, 0};
        }
    }
    g->elem_rule[pe] = UINT32_MAX;
    g->elems[pe++] = (gram_elem_t){GE_END, 0};
    g->n_elems = pe;
    g->n_rules = nr;
    g->root = root;

    /* unique call sites among rules reachable from root */
    {
        uint8_t *reach = calloc(nr, 1);
        uint32_t *q = malloc(nr * sizeof *q);
        if (!reach || !q) {
            free(reach);
            free(q);
            goto oom;
        }
        uint32_t qh = 0, qt = 0;
        reach[root] = 1;
        q[qt++] = root;
        while (qh < qt) {
            uint32_t r = q[qh++];
            for (uint32_t a = 0; a < g->rule_nalt[r]; a++)
                for (uint32_t p = g->alt_start[g->rule_alt0[r] + a]; g->elems[p].type != GE_END;
                     p++)
                    if (g->elems[p].type == GE_REF && !reach[g->elems[p].val]) {
                        reach[g->elems[p].val] = 1;
                        q[qt++] = g->elems[p].val;
                    }
        }
        uint32_t *cnt = calloc(nr, sizeof *cnt);
        if (!cnt) {
            free(reach);
            free(q);
            goto oom;
        }
        for (uint32_t r = 0; r < nr; r++) g->call_site[r] = UINT32_MAX;
        for (uint32_t p = 0; p < g->n_elems; p++) {
            if (g->elems[p].type != GE_REF) continue;
            uint32_t owner = g->elem_rule[p];
            if (owner == UINT32_MAX || !reach[owner]) continue;
            uint32_t s = g->elems[p].val;
            /* a tail self-reference (r ::= x r | ...) pushes no frame: it
             * returns where the outer call does, so it is no call site */
            if (s == owner && g->elems[p + 1].type == GE_END) continue;
            if (cnt[s]++ == 0) g->call_site[s] = p;
        }
        for (uint32_t r = 0; r < nr; r++)
            if (cnt[r] != 1 || r == root) g->call_site[r] = UINT32_MAX;
        free(cnt);
        free(reach);
        free(q);
    }
    free(t.index);
    free(t.low);
    free(t.stack);
    free(t.on_stack);
    free(recursive);
    gram_builder_free(b);
    return g;
oom:
    sl_err(b->err, b->errlen, "out of memory");
fail:
    free(t.index);
    free(t.low);
    free(t.stack);
    free(t.on_stack);
    free(recursive);
    gram_free(g);
    gram_builder_free(b);
    return NULL;
}

void gram_free(gram_t *g) {
    if (!g) return;
    free(g->elems);
    free(g->elem_rule);
    free(g->alt_start);
    free(g->rule_alt0);
    free(g->rule_nalt);
    free(g->call_site);
    free(g->chain_level);
    free(g->rule_rec);
    free(g->terms);
    free(g);
}
