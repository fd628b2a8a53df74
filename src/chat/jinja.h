/*
 * jinja.h — internal interface of Silica's sandboxed Jinja interpreter (the
 * subset of Jinja2 that chat templates use), shared by jinja_lex.c,
 * jinja_parse.c, jinja_value.c and jinja_eval.c. Public users go through
 * chat.h.
 *
 * Semantics follow Python's jinja2 as Hugging Face transformers configures it
 * for chat templates: ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True, extensions=[loopcontrols]), default (non-strict)
 * Undefined, autoescape off, keep_trailing_newline=False. Values behave like
 * their Python counterparts (str() / repr() of lists and dicts, int vs float,
 * truthiness, comparison rules), because templates print them.
 *
 * Memory: a parsed template lives in one arena (jz_arena) owned by the
 * chat_tmpl_t; each render gets a fresh arena for its values, freed at the
 * end. Values are immutable once built (the immutable sandbox forbids
 * list.append and friends), except namespace() objects, so values share
 * structure freely and nothing is reference-counted.
 */
#ifndef SILICA_CHAT_JINJA_H
#define SILICA_CHAT_JINJA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/base.h"

/* ---- arena ---- */
typedef struct jz_chunk jz_chunk_t;
typedef struct jz_arena {
    jz_chunk_t *head;
    size_t used;  /* bytes handed out, all chunks */
    size_t limit; /* 0 = unlimited; allocation beyond fails */
    bool hit_limit; /* an allocation was refused because of limit */
} jz_arena_t;

void *jz_alloc(jz_arena_t *a, size_t n); /* zeroed, 16-aligned; NULL on OOM/limit */
char *jz_strndup(jz_arena_t *a, const char *s, size_t n);
void jz_arena_free(jz_arena_t *a);

/* ---- values ---- */
typedef enum jv_type {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* list or tuple (jlist.tuple) */
    JV_DICT,
    JV_NS,   /* namespace(): a mutable dict with attribute access */
    JV_FUNC, /* builtin function, bound method, macro, caller */
    JV_LOOP, /* the `loop` object of a for loop */
} jv_type_t;

typedef struct jlist jlist_t;
typedef struct jdict jdict_t;
typedef struct jfunc jfunc_t;
typedef struct jloop jloop_t;

typedef struct jv {
    uint8_t t;    /* jv_type_t */
    uint8_t safe; /* string marked |safe (only matters for |escape) */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p; /* UTF-8, not NUL-terminated; for JV_UNDEF: hint or NULL */
            size_t n;
        } s;
        jlist_t *l;
        jdict_t *d;
        jfunc_t *fn;
        jloop_t *loop;
    } u;
} jv_t;

struct jlist {
    size_t n, cap;
    jv_t *v;
    bool tuple;
};

struct jdict { /* insertion-ordered; linear lookup (chat dicts are small) */
    size_t n, cap;
    jv_t *k, *v;
};

struct jloop {
    size_t index0, length;
    jv_t prev, next; /* JV_UNDEF when absent */
    int depth0;
    const jv_t *items; /* the iterated sequence (for cycle / changed) */
    jv_t last_changed;
    bool has_changed;
};

/* Constructors (arena values). */
static inline jv_t jv_undef(void) { jv_t v = {0}; v.t = JV_UNDEF; return v; }
static inline jv_t jv_none(void) { jv_t v = {0}; v.t = JV_NONE; return v; }
static inline jv_t jv_bool(bool b) { jv_t v = {0}; v.t = JV_BOOL; v.u.b = b; return v; }
static inline jv_t jv_int(int64_t i) { jv_t v = {0}; v.t = JV_INT; v.u.i = i; return v; }
static inline jv_t jv_float(double f) { jv_t v = {0}; v.t = JV_FLOAT; v.u.f = f; return v; }
static inline jv_t jv_strn(const char *p, size_t n) {
    jv_t v = {0}; v.t = JV_STR; v.u.s.p = p; v.u.s.n = n; return v;
}

jlist_t *jlist_new(jz_arena_t *a, size_t cap);
int jlist_push(jz_arena_t *a, jlist_t *l, jv_t v);
jdict_t *jdict_new(jz_arena_t *a, size_t cap);
int jdict_set(jz_arena_t *a, jdict_t *d, jv_t k, jv_t v); /* replaces an equal key */
const jv_t *jdict_get(const jdict_t *d, jv_t k);
const jv_t *jdict_get_str(const jdict_t *d, const char *k, size_t n);

bool jv_truthy(jv_t v);
bool jv_equal(jv_t a, jv_t b); /* Python == */
const char *jv_type_name(jv_t v); /* Python's type name: 'dict', 'str', ... */

/* Python str() / repr() of a value, appended to b. 0 or -1 (OOM / too deep). */
int jv_str(sl_buf_t *b, jv_t v);
int jv_repr(sl_buf_t *b, jv_t v);
/* json.dumps(v, ensure_ascii, indent (<0 = none), separators (NULL = default),
 * sort_keys). -1 with a message for values JSON cannot hold. */
int jv_json(sl_buf_t *b, jv_t v, bool ensure_ascii, int indent, const char *item_sep,
            const char *key_sep, bool sort_keys, char *err, size_t errlen);
/* Python float repr ("1.0", "1e-05", "inf"). */
void jv_fmt_float(char *buf, size_t n, double f);
/* JSON (jansson) → value, allocated in the arena. */
int jv_from_json(jz_arena_t *a, const json_t *j, jv_t *out, int depth);

/* ---- UTF-8 helpers ---- */
size_t ju_len(const char *p, size_t n);                /* code points (invalid bytes count 1) */
size_t ju_offset(const char *p, size_t n, size_t idx); /* byte offset of code point idx (or n) */
bool ju_isspace(uint32_t cp);                           /* Python str.isspace */
uint32_t ju_decode(const char *p, size_t n, size_t *adv);

/* ---- lexer ---- */
typedef enum jtok_kind {
    JT_EOF,
    JT_DATA,        /* literal text */
    JT_VAR_BEGIN,   /* {{ */
    JT_VAR_END,     /* }} */
    JT_BLOCK_BEGIN, /* {% */
    JT_BLOCK_END,   /* %} */
    JT_NAME,
    JT_STRING,      /* decoded */
    JT_INT,
    JT_FLOAT,
    JT_OP,          /* one of the operators; text in s */
} jtok_kind_t;

typedef struct jtok {
    jtok_kind_t kind;
    int line, col;
    const char *s; /* arena text (NUL-terminated), for DATA/NAME/STRING/OP */
    size_t n;
    int64_t i;
    double f;
} jtok_t;

/* Tokenizes a template source with HF's whitespace settings. Tokens and
 * their text are arena allocated. -1 with "line:col: msg" in err. */
int jinja_lex(jz_arena_t *a, const char *src, size_t len, jtok_t **toks, size_t *ntoks, char *err,
              size_t errlen);

/* ---- syntax tree ---- */
typedef enum jnode_kind {
    /* statements */
    JN_BODY,   /* kids[] */
    JN_TEXT,   /* str */
    JN_OUTPUT, /* a */
    JN_IF,     /* a cond, b body, c else (body or JN_IF for elif) */
    JN_FOR,    /* names targets, a iter, b body, c else, d filter cond */
    JN_SET,    /* names targets (or str ns + attr), a value */
    JN_SETBLOCK, /* names[0] target, b body, d filter chain (JN_FILTER with a=NULL) or NULL */
    JN_MACRO,  /* str name, names params, kids defaults (NULL entries), b body */
    JN_CALLBLOCK, /* a call expr, names caller params, kids defaults, b body */
    JN_FILTERBLOCK, /* d filter chain, b body */
    JN_WITH,   /* names, kids values, b body */
    JN_BREAK,
    JN_CONTINUE,
    /* expressions */
    JN_CONST,  /* val */
    JN_NAME,   /* str */
    JN_GETATTR, /* a, str */
    JN_GETITEM, /* a, b (b may be JN_SLICE) */
    JN_SLICE,  /* a start, b stop, c step (each may be NULL) */
    JN_CALL,   /* a callee, kids args, names kwarg names, kids2 kwarg values */
    JN_FILTER, /* a operand (NULL = placeholder), str name, kids, names, kids2 */
    JN_TEST,   /* a operand, str name, kids args, flag = negated */
    JN_BIN,    /* op, a, b */
    JN_UNARY,  /* op ('-', '+'), a */
    JN_NOT,    /* a */
    JN_AND,    /* a, b */
    JN_OR,     /* a, b */
    JN_CMP,    /* a first; kids operands, ops[] */
    JN_COND,   /* a then, b cond, c else (NULL → undefined) */
    JN_LIST,   /* kids */
    JN_TUPLE,  /* kids */
    JN_DICT,   /* kids keys, kids2 values */
    JN_CONCAT, /* kids */
} jnode_kind_t;

enum jop {
    JO_ADD = 1, JO_SUB, JO_MUL, JO_DIV, JO_FLOORDIV, JO_MOD, JO_POW,
    JO_EQ, JO_NE, JO_LT, JO_LE, JO_GT, JO_GE, JO_IN, JO_NOTIN,
};

typedef struct jnode jnode_t;
struct jnode {
    uint8_t kind;
    uint8_t op;
    uint8_t flag;
    int line, col;
    jnode_t *a, *b, *c, *d;
    jnode_t **kids;
    size_t nkids;
    jnode_t **kids2;
    size_t nkids2;
    const char **names;
    size_t nnames;
    uint8_t *ops; /* JN_CMP: one op per operand */
    const char *str;
    const char *attr;
    jv_t val;
};

/* Parses tokens into a JN_BODY. -1 with "line:col: msg". */
int jinja_parse(jz_arena_t *a, const jtok_t *toks, size_t ntoks, jnode_t **root, char *err,
                size_t errlen);

/* ---- evaluation ---- */
typedef struct jinja_limits {
    size_t max_steps;
    size_t max_output;
    size_t max_memory; /* render arena bytes */
    int max_depth;
    time_t now;
} jinja_limits_t;

/* Renders `root` with the variables of `vars` (an arena dict) into out. */
int jinja_render(const jnode_t *root, jz_arena_t *arena, jdict_t *vars, const jinja_limits_t *lim,
                 sl_buf_t *out, char *err, size_t errlen);

#endif
