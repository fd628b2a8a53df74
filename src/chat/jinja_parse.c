/*
 * jinja_parse.c — tokens → syntax tree, a recursive-descent parser shaped
 * like jinja2's own (jinja2/parser.py), so operator precedence and the odd
 * corners (tests taking one bare argument, `**` associating left, unary minus
 * binding tighter than `**`, filters applying to the unary expression) match.
 *
 * Expression precedence, loosest first:
 *   x if c else y  →  or  →  and  →  not  →  comparisons / in / not in
 *   →  + -  →  ~  →  * / // %  →  **  →  unary - +  →  primary, postfix
 *   (.attr [item] (call)), then filters `|f` and tests `is t`.
 *
 * Nesting depth is bounded (JINJA_PARSE_DEPTH) so hostile input cannot
 * overflow the C stack.
 */
#include <stdio.h>
#include <string.h>

#include "chat/jinja.h"

#define JINJA_PARSE_DEPTH 200

typedef struct parser {
    jz_arena_t *a;
    const jtok_t *t;
    size_t n, i;
    int depth;
    int loop_depth; /* for break/continue outside a loop */
    char *err;
    size_t errlen;
    bool failed;
} parser_t;

static const jtok_t *cur(parser_t *P) { return &P->t[P->i < P->n ? P->i : P->n - 1]; }
static const jtok_t *peek(parser_t *P, size_t k) {
    size_t j = P->i + k;
    return &P->t[j < P->n ? j : P->n - 1];
}
static void adv(parser_t *P) {
    if (P->i + 1 < P->n) P->i++;
}

static const char *tok_desc(const jtok_t *t, char *buf, size_t n) {
    switch (t->kind) {
    case JT_EOF: return "end of template";
    case JT_DATA: return "template data";
    case JT_VAR_BEGIN: return "'{{'";
    case JT_VAR_END: return "end of print statement";
    case JT_BLOCK_BEGIN: return "'{%'";
    case JT_BLOCK_END: return "end of statement block";
    case JT_INT: return "integer";
    case JT_FLOAT: return "float";
    case JT_STRING: return "string";
    default: snprintf(buf, n, "'%.40s'", t->s ? t->s : "?"); return buf;
    }
}

static void *fail_at(parser_t *P, const jtok_t *t, const char *fmt, const char *arg) {
    if (!P->failed) {
        char msg[256];
        snprintf(msg, sizeof msg, fmt, arg);
        sl_err(P->err, P->errlen, "%d:%d: %s", t->line, t->col, msg);
        P->failed = true;
    }
    return NULL;
}

static void *fail_unexpected(parser_t *P, const char *expected) {
    char buf[64], msg[200];
    const jtok_t *t = cur(P);
    snprintf(msg, sizeof msg, "expected %s, got %s", expected, tok_desc(t, buf, sizeof buf));
    return fail_at(P, t, "%s", msg);
}

static jnode_t *node(parser_t *P, int kind, const jtok_t *at) {
    jnode_t *n = jz_alloc(P->a, sizeof *n);
    if (!n) {
        if (!P->failed) sl_err(P->err, P->errlen, "out of memory");
        P->failed = true;
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* Growable node-pointer array in the arena. */
typedef struct nvec {
    jnode_t **v;
    size_t n, cap;
} nvec_t;
static int nvec_push(parser_t *P, nvec_t *v, jnode_t *x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        jnode_t **nv = jz_alloc(P->a, nc * sizeof *nv);
        if (!nv) {
            if (!P->failed) sl_err(P->err, P->errlen, "out of memory");
            P->failed = true;
            return -1;
        }
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 0;
}
typedef struct svec {
    const char **v;
    size_t n, cap;
} svec_t;
static int svec_push(parser_t *P, svec_t *v, const char *x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        const char **nv = jz_alloc(P->a, nc * sizeof *nv);
        if (!nv) {
            if (!P->failed) sl_err(P->err, P->errlen, "out of memory");
            P->failed = true;
            return -1;
        }
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 0;
}

static bool is_op(const jtok_t *t, const char *op) { return t->kind == JT_OP && !strcmp(t->s, op); }
static bool is_name(const jtok_t *t, const char *name) { return t->kind == JT_NAME && !strcmp(t->s, name); }
static bool accept_op(parser_t *P, const char *op) {
    if (is_op(cur(P), op)) {
        adv(P);
        return true;
    }
    return false;
}
static bool accept_name(parser_t *P, const char *name) {
    if (is_name(cur(P), name)) {
        adv(P);
        return true;
    }
    return false;
}
static bool expect_op(parser_t *P, const char *op) {
    if (accept_op(P, op)) return true;
    char e[16];
    snprintf(e, sizeof e, "'%s'", op);
    fail_unexpected(P, e);
    return false;
}
static bool expect_kind(parser_t *P, jtok_kind_t k, const char *what) {
    if (cur(P)->kind == k) {
        adv(P);
        return true;
    }
    fail_unexpected(P, what);
    return false;
}

static jnode_t *parse_expression(parser_t *P, bool with_condexpr);
static jnode_t *parse_unary(parser_t *P, bool with_filter);
static jnode_t *parse_tuple(parser_t *P, bool with_condexpr, const char *extra_end, bool explicit_paren);

static bool enter(parser_t *P) {
    if (++P->depth > JINJA_PARSE_DEPTH) {
        fail_at(P, cur(P), "%s", "expression nested too deeply");
        return false;
    }
    return true;
}

/* Call arguments after '(' : positional, then name=value. */
static bool parse_call_args(parser_t *P, jnode_t *n) {
    nvec_t args = {0}, kwv = {0};
    svec_t kwn = {0};
    if (!expect_op(P, "(")) return false;
    while (!is_op(cur(P), ")")) {
        if (args.n || kwn.n) {
            if (!expect_op(P, ",")) return false;
            if (is_op(cur(P), ")")) break;
        }
        if (cur(P)->kind == JT_NAME && is_op(peek(P, 1), "=")) {
            if (svec_push(P, &kwn, cur(P)->s)) return false;
            adv(P);
            adv(P);
            jnode_t *v = parse_expression(P, true);
            if (!v || nvec_push(P, &kwv, v)) return false;
        } else {
            if (kwn.n) {
                fail_at(P, cur(P), "%s", "positional argument follows keyword argument");
                return false;
            }
            if (is_op(cur(P), "*") || is_op(cur(P), "**")) {
                fail_at(P, cur(P), "%s", "*args / **kwargs in calls are not supported");
                return false;
            }
            jnode_t *v = parse_expression(P, true);
            if (!v || nvec_push(P, &args, v)) return false;
        }
    }
    adv(P); /* ) */
    n->kids = args.v;
    n->nkids = args.n;
    n->names = kwn.v;
    n->nnames = kwn.n;
    n->kids2 = kwv.v;
    n->nkids2 = kwv.n;
    return true;
}

/* Dotted name for filters and tests (`|foo.bar` is allowed by jinja2). */
static const char *parse_dotted_name(parser_t *P) {
    if (cur(P)->kind != JT_NAME) return fail_unexpected(P, "a name");
    const char *s = cur(P)->s;
    adv(P);
    while (is_op(cur(P), ".") && peek(P, 1)->kind == JT_NAME) {
        adv(P);
        size_t l1 = strlen(s), l2 = strlen(cur(P)->s);
        char *c = jz_alloc(P->a, l1 + l2 + 2);
        if (!c) return fail_at(P, cur(P), "%s", "out of memory");
        memcpy(c, s, l1);
        c[l1] = '.';
        memcpy(c + l1 + 1, cur(P)->s, l2);
        s = c;
        adv(P);
    }
    return s;
}

/* One or more filters; `operand` may be NULL (filter blocks, set blocks). */
static jnode_t *parse_filters(parser_t *P, jnode_t *operand, bool start_inline) {
    while (start_inline || is_op(cur(P), "|")) {
        const jtok_t *at = cur(P);
        if (!start_inline) adv(P);
        start_inline = false;
        jnode_t *f = node(P, JN_FILTER, at);
        if (!f) return NULL;
        f->a = operand;
        if (!(f->str = parse_dotted_name(P))) return NULL;
        if (is_op(cur(P), "(") && !parse_call_args(P, f)) return NULL;
        operand = f;
    }
    return operand;
}

static jnode_t *parse_test(parser_t *P, jnode_t *operand) {
    const jtok_t *at = cur(P);
    adv(P); /* is */
    jnode_t *t = node(P, JN_TEST, at);
    if (!t) return NULL;
    t->a = operand;
    if (accept_name(P, "not")) t->flag = 1;
    if (!(t->str = parse_dotted_name(P))) return NULL;
    const jtok_t *c = cur(P);
    if (is_op(c, "(")) {
        if (!parse_call_args(P, t)) return NULL;
    } else if ((c->kind == JT_NAME || c->kind == JT_STRING || c->kind == JT_INT || c->kind == JT_FLOAT ||
                is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return fail_at(P, c, "%s", "you cannot chain multiple tests with is");
        jnode_t *arg = parse_unary(P, false);
        if (!arg) return NULL;
        t->kids = jz_alloc(P->a, sizeof(jnode_t *));
        if (!t->kids) return fail_at(P, c, "%s", "out of memory");
        t->kids[0] = arg;
        t->nkids = 1;
    }
    return t;
}

static jnode_t *parse_subscript(parser_t *P, jnode_t *obj) {
    const jtok_t *at = cur(P);
    if (accept_op(P, ".")) {
        const jtok_t *t = cur(P);
        if (t->kind == JT_NAME) {
            jnode_t *n = node(P, JN_GETATTR, at);
            if (!n) return NULL;
            n->a = obj;
            n->str = t->s;
            adv(P);
            return n;
        }
        if (t->kind == JT_INT) {
            jnode_t *n = node(P, JN_GETITEM, at), *k = node(P, JN_CONST, t);
            if (!n || !k) return NULL;
            k->val = jv_int(t->i);
            n->a = obj;
            n->b = k;
            adv(P);
            return n;
        }
        return fail_unexpected(P, "a name after '.'");
    }
    adv(P); /* [ */
    jnode_t *n = node(P, JN_GETITEM, at);
    if (!n) return NULL;
    n->a = obj;
    jnode_t *start = NULL;
    if (!is_op(cur(P), ":")) {
        if (!(start = parse_expression(P, true))) return NULL;
        if (!is_op(cur(P), ":")) {
            if (is_op(cur(P), ",")) return fail_at(P, cur(P), "%s", "tuple subscripts are not supported");
            if (!expect_op(P, "]")) return NULL;
            n->b = start;
            return n;
        }
    }
    jnode_t *sl = node(P, JN_SLICE, at);
    if (!sl) return NULL;
    sl->a = start;
    adv(P); /* : */
    if (!is_op(cur(P), "]") && !is_op(cur(P), ":")) {
        if (!(sl->b = parse_expression(P, true))) return NULL;
    }
    if (accept_op(P, ":")) {
        if (!is_op(cur(P), "]")) {
            if (!(sl->c = parse_expression(P, true))) return NULL;
        }
    }
    if (!expect_op(P, "]")) return NULL;
    n->b = sl;
    return n;
}

static jnode_t *parse_postfix(parser_t *P, jnode_t *n) {
    for (;;) {
        const jtok_t *t = cur(P);
        if (is_op(t, ".") || is_op(t, "[")) {
            n = parse_subscript(P, n);
        } else if (is_op(t, "(")) {
            jnode_t *c = node(P, JN_CALL, t);
            if (!c) return NULL;
            c->a = n;
            c->line = n->line; /* errors point at the callee, e.g. raise_exception */
            c->col = n->col;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            return n;
        }
        if (!n) return NULL;
    }
}

static jnode_t *parse_filter_expr(parser_t *P, jnode_t *n) {
    for (;;) {
        const jtok_t *t = cur(P);
        if (is_op(t, "|")) {
            n = parse_filters(P, n, false);
        } else if (is_name(t, "is")) {
            n = parse_test(P, n);
        } else if (is_op(t, "(")) {
            jnode_t *c = node(P, JN_CALL, t);
            if (!c) return NULL;
            c->a = n;
            c->line = n->line; /* errors point at the callee, e.g. raise_exception */
            c->col = n->col;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            return n;
        }
        if (!n) return NULL;
    }
}

static jnode_t *parse_primary(parser_t *P) {
    const jtok_t *t = cur(P);
    jnode_t *n;
    switch (t->kind) {
    case JT_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") ||
            !strcmp(t->s, "False")) {
            if (!(n = node(P, JN_CONST, t))) return NULL;
            n->val = jv_bool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            if (!(n = node(P, JN_CONST, t))) return NULL;
            n->val = jv_none();
        } else {
            if (!(n = node(P, JN_NAME, t))) return NULL;
            n->str = t->s;
        }
        adv(P);
        return n;
    case JT_STRING: {
        if (!(n = node(P, JN_CONST, t))) return NULL;
        const char *s = t->s;
        size_t len = t->n;
        adv(P);
        while (cur(P)->kind == JT_STRING) { /* adjacent literals concatenate */
            const jtok_t *u = cur(P);
            char *c = jz_alloc(P->a, len + u->n + 1);
            if (!c) return fail_at(P, u, "%s", "out of memory");
            memcpy(c, s, len);
            memcpy(c + len, u->s, u->n);
            s = c;
            len += u->n;
            adv(P);
        }
        n->val = jv_strn(s, len);
        return n;
    }
    case JT_INT:
    case JT_FLOAT:
        if (!(n = node(P, JN_CONST, t))) return NULL;
        n->val = t->kind == JT_INT ? jv_int(t->i) : jv_float(t->f);
        adv(P);
        return n;
    case JT_OP:
        if (is_op(t, "(")) {
            adv(P);
            n = parse_tuple(P, true, NULL, true);
            if (!n || !expect_op(P, ")")) return NULL;
            return n;
        }
        if (is_op(t, "[")) {
            adv(P);
            nvec_t items = {0};
            while (!is_op(cur(P), "]")) {
                if (items.n && !expect_op(P, ",")) return NULL;
                if (is_op(cur(P), "]")) break;
                jnode_t *e = parse_expression(P, true);
                if (!e || nvec_push(P, &items, e)) return NULL;
            }
            adv(P);
            if (!(n = node(P, JN_LIST, t))) return NULL;
            n->kids = items.v;
            n->nkids = items.n;
            return n;
        }
        if (is_op(t, "{")) {
            adv(P);
            nvec_t keys = {0}, vals = {0};
            while (!is_op(cur(P), "}")) {
                if (keys.n && !expect_op(P, ",")) return NULL;
                if (is_op(cur(P), "}")) break;
                jnode_t *k = parse_expression(P, true);
                if (!k || !expect_op(P, ":")) return NULL;
                jnode_t *v = parse_expression(P, true);
                if (!v || nvec_push(P, &keys, k) || nvec_push(P, &vals, v)) return NULL;
            }
            adv(P);
            if (!(n = node(P, JN_DICT, t))) return NULL;
            n->kids = keys.v;
            n->nkids = keys.n;
            n->kids2 = vals.v;
            n->nkids2 = vals.n;
            return n;
        }
        break;
    default:
        break;
    }
    return fail_unexpected(P, "an expression");
}

static jnode_t *parse_unary(parser_t *P, bool with_filter) {
    if (!enter(P)) return NULL;
    const jtok_t *t = cur(P);
    jnode_t *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        adv(P);
        jnode_t *x = parse_unary(P, false);
        if (!x || !(n = node(P, JN_UNARY, t))) return NULL;
        n->op = t->s[0] == '-' ? JO_SUB : JO_ADD;
        n->a = x;
    } else {
        n = parse_primary(P);
    }
    if (n) n = parse_postfix(P, n);
    if (n && with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static jnode_t *binop(parser_t *P, const jtok_t *at, int op, jnode_t *l, jnode_t *r) {
    jnode_t *n = node(P, JN_BIN, at);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = l;
    n->b = r;
    return n;
}

static jnode_t *parse_pow(parser_t *P) {
    jnode_t *l = parse_unary(P, true);
    while (l && is_op(cur(P), "**")) {
        const jtok_t *at = cur(P);
        adv(P);
        jnode_t *r = parse_unary(P, true);
        l = r ? binop(P, at, JO_POW, l, r) : NULL;
    }
    return l;
}

static jnode_t *parse_math2(parser_t *P) {
    jnode_t *l = parse_pow(P);
    for (;;) {
        const jtok_t *at = cur(P);
        int op = is_op(at, "*") ? JO_MUL : is_op(at, "/") ? JO_DIV : is_op(at, "//") ? JO_FLOORDIV
               : is_op(at, "%") ? JO_MOD : 0;
        if (!l || !op) return l;
        adv(P);
        jnode_t *r = parse_pow(P);
        l = r ? binop(P, at, op, l, r) : NULL;
    }
}

static jnode_t *parse_concat(parser_t *P) {
    jnode_t *l = parse_math2(P);
    if (!l || !is_op(cur(P), "~")) return l;
    const jtok_t *at = cur(P);
    nvec_t parts = {0};
    if (nvec_push(P, &parts, l)) return NULL;
    while (accept_op(P, "~")) {
        jnode_t *r = parse_math2(P);
        if (!r || nvec_push(P, &parts, r)) return NULL;
    }
    jnode_t *n = node(P, JN_CONCAT, at);
    if (!n) return NULL;
    n->kids = parts.v;
    n->nkids = parts.n;
    return n;
}

static jnode_t *parse_math1(parser_t *P) {
    jnode_t *l = parse_concat(P);
    for (;;) {
        const jtok_t *at = cur(P);
        int op = is_op(at, "+") ? JO_ADD : is_op(at, "-") ? JO_SUB : 0;
        if (!l || !op) return l;
        adv(P);
        jnode_t *r = parse_concat(P);
        l = r ? binop(P, at, op, l, r) : NULL;
    }
}

static jnode_t *parse_compare(parser_t *P) {
    const jtok_t *at = cur(P);
    jnode_t *first = parse_math1(P);
    if (!first) return NULL;
    nvec_t operands = {0};
    uint8_t ops[64];
    size_t nops = 0;
    for (;;) {
        const jtok_t *t = cur(P);
        int op = 0;
        if (t->kind == JT_OP) {
            op = !strcmp(t->s, "==") ? JO_EQ : !strcmp(t->s, "!=") ? JO_NE : !strcmp(t->s, "<") ? JO_LT
               : !strcmp(t->s, "<=") ? JO_LE : !strcmp(t->s, ">") ? JO_GT : !strcmp(t->s, ">=") ? JO_GE : 0;
            if (op) adv(P);
        } else if (is_name(t, "in")) {
            op = JO_IN;
            adv(P);
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = JO_NOTIN;
            adv(P);
            adv(P);
        }
        if (!op) break;
        if (nops == sizeof ops) return fail_at(P, t, "%s", "too many chained comparisons");
        jnode_t *r = parse_math1(P);
        if (!r || nvec_push(P, &operands, r)) return NULL;
        ops[nops++] = (uint8_t)op;
    }
    if (!nops) return first;
    jnode_t *n = node(P, JN_CMP, at);
    if (!n) return NULL;
    n->a = first;
    n->kids = operands.v;
    n->nkids = operands.n;
    n->ops = jz_alloc(P->a, nops);
    if (!n->ops) return fail_at(P, at, "%s", "out of memory");
    memcpy(n->ops, ops, nops);
    return n;
}

static jnode_t *parse_not(parser_t *P) {
    const jtok_t *t = cur(P);
    if (is_name(t, "not")) {
        adv(P);
        if (!enter(P)) return NULL;
        jnode_t *x = parse_not(P);
        P->depth--;
        jnode_t *n = x ? node(P, JN_NOT, t) : NULL;
        if (n) n->a = x;
        return n;
    }
    return parse_compare(P);
}

/* A left-associative chain of one keyword operator ("and", "or") over
 * operands parsed by `operand`. */
static jnode_t *parse_keyword_chain(parser_t *P, const char *kw, int kind,
                                    jnode_t *(*operand)(parser_t *)) {
    jnode_t *l = operand(P);
    while (l && is_name(cur(P), kw)) {
        const jtok_t *at = cur(P);
        adv(P);
        jnode_t *r = operand(P);
        jnode_t *n = r ? node(P, kind, at) : NULL;
        if (n) {
            n->a = l;
            n->b = r;
        }
        l = n;
    }
    return l;
}

static jnode_t *parse_and(parser_t *P) {
    return parse_keyword_chain(P, "and", JN_AND, parse_not);
}

static jnode_t *parse_or(parser_t *P) {
    return parse_keyword_chain(P, "or", JN_OR, parse_and);
}

static jnode_t *parse_condexpr(parser_t *P) {
    jnode_t *e1 = parse_or(P);
    while (e1 && is_name(cur(P), "if")) {
        const jtok_t *at = cur(P);
        adv(P);
        jnode_t *cond = parse_or(P);
        if (!cond) return NULL;
        jnode_t *e3 = NULL;
        if (accept_name(P, "else")) {
            if (!enter(P)) return NULL;
            e3 = parse_condexpr(P);
            P->depth--;
            if (!e3) return NULL;
        }
        jnode_t *n = node(P, JN_COND, at);
        if (!n) return NULL;
        n->a = e1;
        n->b = cond;
        n->c = e3;
        e1 = n;
    }
    return e1;
}

static jnode_t *parse_expression(parser_t *P, bool with_condexpr) {
    if (!enter(P)) return NULL;
    jnode_t *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

static bool tuple_end(parser_t *P, const char *extra_end) {
    const jtok_t *t = cur(P);
    if (t->kind == JT_VAR_END || t->kind == JT_BLOCK_END || t->kind == JT_EOF || is_op(t, ")")) return true;
    return extra_end && is_name(t, extra_end);
}

static jnode_t *parse_tuple(parser_t *P, bool with_condexpr, const char *extra_end, bool explicit_paren) {
    const jtok_t *at = cur(P);
    nvec_t items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n && !expect_op(P, ",")) return NULL;
        if (tuple_end(P, extra_end)) break;
        jnode_t *e = parse_expression(P, with_condexpr);
        if (!e || nvec_push(P, &items, e)) return NULL;
        if (is_op(cur(P), ",")) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_paren) return fail_unexpected(P, "an expression");
    }
    jnode_t *n = node(P, JN_TUPLE, at);
    if (!n) return NULL;
    n->kids = items.v;
    n->nkids = items.n;
    return n;
}

/* ---- statements ---- */

static jnode_t *parse_body(parser_t *P, const char *const *ends, size_t nends);

static bool expect_block_end(parser_t *P) { return expect_kind(P, JT_BLOCK_END, "end of statement block"); }

/* Parses names for `for a, b in` / `set a, b =` (optionally parenthesised). */
static bool parse_target_names(parser_t *P, svec_t *out, const char *stop_name) {
    bool paren = accept_op(P, "(");
    for (;;) {
        const jtok_t *t = cur(P);
        if (t->kind != JT_NAME) {
            fail_unexpected(P, "a variable name");
            return false;
        }
        if (svec_push(P, out, t->s)) return false;
        adv(P);
        if (!accept_op(P, ",")) break;
        if ((stop_name && is_name(cur(P), stop_name)) || is_op(cur(P), ")") || is_op(cur(P), "=")) break;
    }
    if (paren && !expect_op(P, ")")) return false;
    return true;
}

/* Consumes `{% end<name> %}` after parse_body stopped at it. */
static bool parse_end(parser_t *P) {
    adv(P); /* the end name */
    return expect_block_end(P);
}

static jnode_t *parse_if(parser_t *P, const jtok_t *at) {
    jnode_t *n = node(P, JN_IF, at);
    if (!n) return NULL;
    if (!(n->a = parse_tuple(P, false, NULL, false)) || !expect_block_end(P)) return NULL;
    static const char *const ends[] = {"elif", "else", "endif"};
    if (!(n->b = parse_body(P, ends, 3))) return NULL;
    const jtok_t *t = cur(P);
    if (is_name(t, "elif")) {
        adv(P);
        return (n->c = parse_if(P, t)) ? n : NULL;
    }
    if (is_name(t, "else")) {
        adv(P);
        if (!expect_block_end(P)) return NULL;
        static const char *const e2[] = {"endif"};
        if (!(n->c = parse_body(P, e2, 1))) return NULL;
    }
    return parse_end(P) ? n : NULL;
}

static jnode_t *parse_for(parser_t *P, const jtok_t *at) {
    jnode_t *n = node(P, JN_FOR, at);
    svec_t names = {0};
    if (!n || !parse_target_names(P, &names, "in")) return NULL;
    n->names = names.v;
    n->nnames = names.n;
    if (!accept_name(P, "in")) return fail_unexpected(P, "'in'");
    if (!(n->a = parse_tuple(P, false, "recursive", false))) return NULL;
    if (accept_name(P, "if")) {
        if (!(n->d = parse_expression(P, true))) return NULL;
    }
    if (is_name(cur(P), "recursive")) return fail_at(P, cur(P), "%s", "recursive for loops are not supported");
    if (!expect_block_end(P)) return NULL;
    static const char *const ends[] = {"else", "endfor"};
    P->loop_depth++;
    n->b = parse_body(P, ends, 2);
    P->loop_depth--;
    if (!n->b) return NULL;
    if (is_name(cur(P), "else")) {
        adv(P);
        if (!expect_block_end(P)) return NULL;
        static const char *const e2[] = {"endfor"};
        if (!(n->c = parse_body(P, e2, 1))) return NULL;
    }
    return parse_end(P) ? n : NULL;
}

static jnode_t *parse_set(parser_t *P, const jtok_t *at) {
    const jtok_t *t = cur(P);
    if (t->kind == JT_NAME && is_op(peek(P, 1), ".") && peek(P, 2)->kind == JT_NAME) {
        jnode_t *n = node(P, JN_SET, at);
        if (!n) return NULL;
        n->str = t->s;
        n->attr = peek(P, 2)->s;
        adv(P);
        adv(P);
        adv(P);
        if (!expect_op(P, "=")) return NULL;
        if (!(n->a = parse_tuple(P, true, NULL, false)) || !expect_block_end(P)) return NULL;
        return n;
    }
    svec_t names = {0};
    if (!parse_target_names(P, &names, NULL)) return NULL;
    if (accept_op(P, "=")) {
        jnode_t *n = node(P, JN_SET, at);
        if (!n) return NULL;
        n->names = names.v;
        n->nnames = names.n;
        if (!(n->a = parse_tuple(P, true, NULL, false)) || !expect_block_end(P)) return NULL;
        return n;
    }
    if (names.n != 1) return fail_unexpected(P, "'='");
    jnode_t *n = node(P, JN_SETBLOCK, at);
    if (!n) return NULL;
    n->names = names.v;
    n->nnames = 1;
    if (is_op(cur(P), "|") && !(n->d = parse_filters(P, NULL, false))) return NULL;
    if (!expect_block_end(P)) return NULL;
    static const char *const ends[] = {"endset"};
    if (!(n->b = parse_body(P, ends, 1))) return NULL;
    return parse_end(P) ? n : NULL;
}

/* Macro / caller parameter list: (a, b=default, ...). */
static bool parse_params(parser_t *P, jnode_t *n) {
    svec_t names = {0};
    nvec_t defs = {0};
    if (!expect_op(P, "(")) return false;
    bool seen_default = false;
    while (!is_op(cur(P), ")")) {
        if (names.n && !expect_op(P, ",")) return false;
        if (is_op(cur(P), ")")) break;
        const jtok_t *t = cur(P);
        if (t->kind != JT_NAME) {
            fail_unexpected(P, "a parameter name");
            return false;
        }
        if (svec_push(P, &names, t->s)) return false;
        adv(P);
        jnode_t *d = NULL;
        if (accept_op(P, "=")) {
            if (!(d = parse_expression(P, true))) return false;
            seen_default = true;
        } else if (seen_default) {
            fail_at(P, t, "%s", "parameter without a default follows one with a default");
            return false;
        }
        if (nvec_push(P, &defs, d)) return false;
    }
    adv(P);
    n->names = names.v;
    n->nnames = names.n;
    n->kids = defs.v;
    n->nkids = defs.n;
    return true;
}

static jnode_t *parse_macro(parser_t *P, const jtok_t *at) {
    jnode_t *n = node(P, JN_MACRO, at);
    if (!n) return NULL;
    if (cur(P)->kind != JT_NAME) return fail_unexpected(P, "a macro name");
    n->str = cur(P)->s;
    adv(P);
    if (!parse_params(P, n) || !expect_block_end(P)) return NULL;
    static const char *const ends[] = {"endmacro"};
    int saved = P->loop_depth;
    P->loop_depth = 0;
    n->b = parse_body(P, ends, 1);
    P->loop_depth = saved;
    if (!n->b) return NULL;
    return parse_end(P) ? n : NULL;
}

static jnode_t *parse_call_block(parser_t *P, const jtok_t *at) {
    jnode_t *n = node(P, JN_CALLBLOCK, at);
    if (!n) return NULL;
    if (is_op(cur(P), "(") && !parse_params(P, n)) return NULL;
    if (!(n->a = parse_expression(P, true))) return NULL;
    if (n->a->kind != JN_CALL) return fail_at(P, at, "%s", "expected a call after 'call'");
    if (!expect_block_end(P)) return NULL;
    static const char *const ends[] = {"endcall"};
    int saved = P->loop_depth;
    P->loop_depth = 0;
    n->b = parse_body(P, ends, 1);
    P->loop_depth = saved;
    if (!n->b) return NULL;
    return parse_end(P) ? n : NULL;
}

static jnode_t *parse_statement(parser_t *P) {
    const jtok_t *at = cur(P); /* the tag name */
    if (at->kind != JT_NAME) return fail_unexpected(P, "a statement name");
    const char *w = at->s;
    if (!enter(P)) return NULL;
    adv(P);
    jnode_t *n = NULL;
    if (!strcmp(w, "if")) {
        n = parse_if(P, at);
    } else if (!strcmp(w, "for")) {
        n = parse_for(P, at);
    } else if (!strcmp(w, "set")) {
        n = parse_set(P, at);
    } else if (!strcmp(w, "macro")) {
        n = parse_macro(P, at);
    } else if (!strcmp(w, "call")) {
        n = parse_call_block(P, at);
    } else if (!strcmp(w, "filter")) {
        if ((n = node(P, JN_FILTERBLOCK, at)) && (n->d = parse_filters(P, NULL, true)) && expect_block_end(P)) {
            static const char *const ends[] = {"endfilter"};
            if (!(n->b = parse_body(P, ends, 1)) || !parse_end(P)) n = NULL;
        } else {
            n = NULL;
        }
    } else if (!strcmp(w, "with")) {
        svec_t names = {0};
        nvec_t vals = {0};
        if (!(n = node(P, JN_WITH, at))) goto out;
        while (cur(P)->kind != JT_BLOCK_END) {
            if (names.n && !expect_op(P, ",")) goto fail;
            if (cur(P)->kind != JT_NAME) {
                fail_unexpected(P, "a variable name");
                goto fail;
            }
            if (svec_push(P, &names, cur(P)->s)) goto fail;
            adv(P);
            if (!expect_op(P, "=")) goto fail;
            jnode_t *v = parse_expression(P, true);
            if (!v || nvec_push(P, &vals, v)) goto fail;
        }
        adv(P);
        n->names = names.v;
        n->nnames = names.n;
        n->kids = vals.v;
        n->nkids = vals.n;
        static const char *const ends[] = {"endwith"};
        if (!(n->b = parse_body(P, ends, 1)) || !parse_end(P)) goto fail;
        goto out;
    fail:
        n = NULL;
    } else if (!strcmp(w, "generation")) {
        /* transformers' AssistantTracker tag: marks assistant text, renders its body */
        if (expect_block_end(P)) {
            static const char *const ends[] = {"endgeneration"};
            n = parse_body(P, ends, 1);
            if (n && !parse_end(P)) n = NULL;
        }
    } else if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        if (!P->loop_depth) {
            fail_at(P, at, "'%s' outside of a loop", w);
        } else if ((n = node(P, w[0] == 'b' ? JN_BREAK : JN_CONTINUE, at)) && !expect_block_end(P)) {
            n = NULL;
        }
    } else if (!strcmp(w, "include") || !strcmp(w, "extends") || !strcmp(w, "import") || !strcmp(w, "from") ||
               !strcmp(w, "block")) {
        fail_at(P, at, "'%s' is not supported in chat templates", w);
    } else {
        fail_at(P, at, "unknown tag '%s'", w);
    }
out:
    P->depth--;
    return n;
}

static jnode_t *parse_body(parser_t *P, const char *const *ends, size_t nends) {
    nvec_t kids = {0};
    const jtok_t *start = cur(P);
    for (;;) {
        const jtok_t *t = cur(P);
        if (t->kind == JT_EOF) {
            if (nends) {
                char msg[128];
                snprintf(msg, sizeof msg, "unexpected end of template, expected '%s'", ends[nends - 1]);
                return fail_at(P, t, "%s", msg);
            }
            break;
        }
        if (t->kind == JT_DATA) {
            jnode_t *n = node(P, JN_TEXT, t);
            if (!n) return NULL;
            n->str = t->s;
            n->val = jv_strn(t->s, t->n);
            adv(P);
            if (nvec_push(P, &kids, n)) return NULL;
            continue;
        }
        if (t->kind == JT_VAR_BEGIN) {
            adv(P);
            jnode_t *e = parse_tuple(P, true, NULL, false);
            if (!e || !expect_kind(P, JT_VAR_END, "end of print statement")) return NULL;
            jnode_t *n = node(P, JN_OUTPUT, t);
            if (!n) return NULL;
            n->a = e;
            if (nvec_push(P, &kids, n)) return NULL;
            continue;
        }
        if (t->kind == JT_BLOCK_BEGIN) {
            const jtok_t *w = peek(P, 1);
            if (w->kind == JT_NAME) {
                for (size_t k = 0; k < nends; k++)
                    if (!strcmp(w->s, ends[k])) {
                        adv(P); /* leave the stream at the end name */
                        goto done;
                    }
                if (!strncmp(w->s, "end", 3) || !strcmp(w->s, "elif") || !strcmp(w->s, "else")) {
                    char msg[160];
                    if (nends)
                        snprintf(msg, sizeof msg, "unexpected '%.40s', expected '%s'", w->s, ends[nends - 1]);
                    else
                        snprintf(msg, sizeof msg, "unexpected '%.40s'", w->s);
                    return fail_at(P, w, "%s", msg);
                }
            }
            adv(P);
            jnode_t *s = parse_statement(P);
            if (!s || nvec_push(P, &kids, s)) return NULL;
            continue;
        }
        return fail_unexpected(P, "template data or a tag");
    }
done:;
    jnode_t *b = node(P, JN_BODY, start);
    if (!b) return NULL;
    b->kids = kids.v;
    b->nkids = kids.n;
    return b;
}

int jinja_parse(jz_arena_t *a, const jtok_t *toks, size_t ntoks, jnode_t **root, char *err, size_t errlen) {
    if (!ntoks) return sl_err(err, errlen, "no tokens");
    parser_t P = {.a = a, .t = toks, .n = ntoks, .err = err, .errlen = errlen};
    jnode_t *b = parse_body(&P, NULL, 0);
    if (!b || P.failed) {
        if (!P.failed) sl_err(err, errlen, "parse error");
        return -1;
    }
    *root = b;
    return 0;
}
