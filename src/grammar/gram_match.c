/*
 * gram_match.c — the byte-level pushdown matcher, the vocabulary trie, the
 * per-position token caches (gram_index_t) and the per-sequence matcher.
 *
 * Parse state. A stack is a chain of nodes (pos, parent): `pos` is the next
 * element to match, `parent` the node to continue with when pos's rule
 * alternative ends (-1: the root is done; -2: "escaped", used only while
 * precomputing, see below). Nodes are hash-consed, so equal stacks have equal
 * ids. Because a grammar may be ambiguous, the matcher state is a SET of
 * stacks, each expanded until its top is a terminal (or a marker: ACCEPT =
 * the root rule completed). Sets are interned as "states" with a lazily
 * filled 256-entry transition table, so walking bytes is mostly one table
 * load per byte: a lazily built DFA over the pushdown configurations.
 *
 * Token masks (the XGrammar idea). For every terminal position p the index
 * walks the whole vocabulary trie ONCE from a stack made of p and its STATIC
 * calling context: the chain of return positions that is the same wherever
 * p is reached (rules with exactly one call site; gram_finish clones small
 * shared rules to make such chains long). Where the chain ends, the stack
 * bottom is "escaped": a token that needs bytes beyond it depends on the
 * run-time stack (uncertain); a token that stays inside is accepted or
 * rejected whatever lies below (context-independent). At run time the mask
 * is the union of the cached accepted sets of the state's stack tops plus the
 * uncertain tokens re-checked against the real stack; the whole mask is also
 * cached per state when re-checks were needed.
 */
#include "grammar/gram_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NODE_ACCEPT 0u
#define NODE_ESC 1u
#define PARENT_ROOT (-1)
#define PARENT_ESC (-2)
#define STATE_EMPTY 0u
#define ENGINE_MAX_NODES (1u << 24)
#define ENGINE_MAX_STATES (1u << 22)
#define EXPAND_MAX_DEPTH 4000
#define MATCHER_MAX_CACHED_MASKS 64
#define UKEY_MAX_LEN 1024u /* shared re-check results: see add_uncertain */
#define UKEY_MAX_ENTRIES 65536u
#define UKEY_MAX_WORDS (1u << 21)

typedef struct gnode {
    uint32_t pos;
    int32_t parent;
} gnode_t;

typedef struct gstate {
    uint32_t off, n; /* node ids in eng->lists[off .. off+n), sorted */
    uint32_t hash;
    uint8_t has_accept, has_esc;
    int32_t *trans; /* 256 entries, -1 = not computed yet; NULL until used */
    uint32_t *mask; /* matcher only: cached full mask */
} gstate_t;

typedef struct engine {
    const gram_t *g;
    gnode_t *nodes;
    uint32_t n_nodes, cap_nodes;
    uint64_t *nkeys; /* node hash table: key (pos<<32 | parent), value id */
    uint32_t *nvals;
    uint32_t ncap, nused;
    uint32_t *lists;
    size_t n_lists, cap_lists;
    gstate_t *states;
    uint32_t n_states, cap_states;
    uint32_t *smap; /* state hash table: state id + 1, 0 = empty slot */
    uint32_t scap, sused;
    uint32_t *scratch;
    uint32_t n_scratch, cap_scratch;
    uint32_t *stamp;
    uint32_t cap_stamp, gen;
    bool failed;
} engine_t;

/* ---------------- engine ---------------- */

static int eng_nmap_grow(engine_t *e) {
    uint32_t nc = e->ncap ? e->ncap * 2 : 1024;
    uint64_t *k = malloc(nc * sizeof *k);
    uint32_t *v = malloc(nc * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    memset(v, 0xff, nc * sizeof *v);
    for (uint32_t i = 0; i < e->ncap; i++) {
        if (e->nvals[i] == UINT32_MAX) continue;
        uint32_t h = (uint32_t)sl_mix64(e->nkeys[i]) & (nc - 1);
        while (v[h] != UINT32_MAX) h = (h + 1) & (nc - 1);
        k[h] = e->nkeys[i];
        v[h] = e->nvals[i];
    }
    free(e->nkeys);
    free(e->nvals);
    e->nkeys = k;
    e->nvals = v;
    e->ncap = nc;
    return 0;
}

/* Returns the node id of (pos, parent), creating it; -1 on failure. */
static int32_t eng_node(engine_t *e, uint32_t pos, int32_t parent) {
    if ((e->nused + 1) * 2 > e->ncap && eng_nmap_grow(e) < 0) {
        e->failed = true;
        return -1;
    }
    uint64_t key = ((uint64_t)pos << 32) | (uint32_t)parent;
    uint32_t h = (uint32_t)sl_mix64(key) & (e->ncap - 1);
    while (e->nvals[h] != UINT32_MAX) {
        if (e->nkeys[h] == key) return (int32_t)e->nvals[h];
        h = (h + 1) & (e->ncap - 1);
    }
    if (e->n_nodes >= ENGINE_MAX_NODES) {
        e->failed = true;
        return -1;
    }
    if (e->n_nodes == e->cap_nodes) {
        uint32_t nc = e->cap_nodes * 2;
        gnode_t *p = realloc(e->nodes, nc * sizeof *p);
        if (!p) {
            e->failed = true;
            return -1;
        }
        e->nodes = p;
        e->cap_nodes = nc;
    }
    uint32_t id = e->n_nodes++;
    e->nodes[id] = (gnode_t){pos, parent};
    e->nkeys[h] = key;
    e->nvals[h] = id;
    e->nused++;
    return (int32_t)id;
}

static int scratch_add(engine_t *e, uint32_t id) {
    if (id >= e->cap_stamp) {
        uint32_t nc = e->cap_stamp ? e->cap_stamp : 1024;
        while (nc <= id) nc *= 2;
        uint32_t *p = realloc(e->stamp, nc * sizeof *p);
        if (!p) return -1;
        memset(p + e->cap_stamp, 0, (nc - e->cap_stamp) * sizeof *p);
        e->stamp = p;
        e->cap_stamp = nc;
    }
    if (e->stamp[id] == e->gen) return 0;
    e->stamp[id] = e->gen;
    if (e->n_scratch == e->cap_scratch) {
        uint32_t nc = e->cap_scratch ? e->cap_scratch * 2 : 64;
        uint32_t *p = realloc(e->scratch, nc * sizeof *p);
        if (!p) return -1;
        e->scratch = p;
        e->cap_scratch = nc;
    }
    e->scratch[e->n_scratch++] = id;
    return 0;
}

/* Expands (pos, parent) into terminal-topped stacks, added to scratch. */
static void eng_expand(engine_t *e, uint32_t pos, int32_t parent, int depth) {
    const gram_t *g = e->g;
    if (depth > EXPAND_MAX_DEPTH || e->failed) {
        e->failed = true;
        return;
    }
    for (;;) {
        gram_elem_t el = g->elems[pos];
        if (el.type == GE_END) {
            if (parent == PARENT_ROOT || parent == PARENT_ESC) {
                if (scratch_add(e, parent == PARENT_ROOT ? NODE_ACCEPT : NODE_ESC) < 0)
                    e->failed = true;
                return;
            }
            gnode_t pn = e->nodes[parent];
            pos = pn.pos;
            parent = pn.parent;
            continue;
        }
        if (el.type == GE_TERM) {
            int32_t id = eng_node(e, pos, parent);
            if (id < 0 || scratch_add(e, (uint32_t)id) < 0) e->failed = true;
            return;
        }
        int32_t cont = parent;
        if (g->elems[pos + 1].type != GE_END) {
            cont = eng_node(e, pos + 1, parent);
            if (cont < 0) return;
        }
        uint32_t a0 = g->rule_alt0[el.val], na = g->rule_nalt[el.val];
        for (uint32_t a = 0; a < na; a++) eng_expand(e, g->alt_start[a0 + a], cont, depth + 1);
        return;
    }
}

static int cmp_u32(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Interns the set in scratch as a state; returns its id (0 = empty set). */
static int64_t eng_intern(engine_t *e) {
    uint32_t n = e->n_scratch;
    uint32_t *l = e->scratch;
    if (n > 1) qsort(l, n, sizeof *l, cmp_u32);
    uint64_t h64 = 1469598103934665603ULL ^ n;
    for (uint32_t i = 0; i < n; i++) h64 = sl_mix64(h64 ^ l[i]) + i;
    uint32_t h = (uint32_t)h64;
    if ((e->sused + 1) * 2 > e->scap) {
        uint32_t nc = e->scap ? e->scap * 2 : 1024;
        uint32_t *m = calloc(nc, sizeof *m);
        if (!m) return -1;
        for (uint32_t i = 0; i < e->scap; i++) {
            if (!e->smap[i]) continue;
            uint32_t k = e->states[e->smap[i] - 1].hash & (nc - 1);
            while (m[k]) k = (k + 1) & (nc - 1);
            m[k] = e->smap[i];
        }
        free(e->smap);
        e->smap = m;
        e->scap = nc;
    }
    uint32_t k = h & (e->scap - 1);
    while (e->smap[k]) {
        gstate_t *s = &e->states[e->smap[k] - 1];
        if (s->hash == h && s->n == n && (n == 0 || memcmp(e->lists + s->off, l, n * sizeof *l) == 0))
            return e->smap[k] - 1;
        k = (k + 1) & (e->scap - 1);
    }
    if (e->n_states >= ENGINE_MAX_STATES) return -1;
    if (e->n_states == e->cap_states) {
        uint32_t nc = e->cap_states ? e->cap_states * 2 : 256;
        gstate_t *p = realloc(e->states, nc * sizeof *p);
        if (!p) return -1;
        e->states = p;
        e->cap_states = nc;
    }
    if (e->n_lists + n > e->cap_lists) {
        size_t nc = e->cap_lists ? e->cap_lists * 2 : 1024;
        while (nc < e->n_lists + n) nc *= 2;
        uint32_t *p = realloc(e->lists, nc * sizeof *p);
        if (!p) return -1;
        e->lists = p;
        e->cap_lists = nc;
    }
    gstate_t *s = &e->states[e->n_states];
    memset(s, 0, sizeof *s);
    s->off = (uint32_t)e->n_lists;
    s->n = n;
    s->hash = h;
    for (uint32_t i = 0; i < n; i++) {
        if (l[i] == NODE_ACCEPT) s->has_accept = 1;
        if (l[i] == NODE_ESC) s->has_esc = 1;
    }
    if (n) memcpy(e->lists + e->n_lists, l, n * sizeof *l);
    e->n_lists += n;
    e->smap[k] = e->n_states + 1;
    e->sused++;
    return e->n_states++;
}

static int eng_init(engine_t *e, const gram_t *g) {
    memset(e, 0, sizeof *e);
    e->g = g;
    e->cap_nodes = 1024;
    e->nodes = malloc(e->cap_nodes * sizeof *e->nodes);
    if (!e->nodes) return -1;
    e->nodes[0] = (gnode_t){UINT32_MAX, PARENT_ROOT}; /* NODE_ACCEPT marker */
    e->nodes[1] = (gnode_t){UINT32_MAX, PARENT_ESC};  /* NODE_ESC marker */
    e->n_nodes = 2;
    e->gen = 1;
    e->n_scratch = 0;
    return eng_intern(e) == STATE_EMPTY ? 0 : -1; /* state 0 = empty set */
}

static void eng_free(engine_t *e) {
    for (uint32_t i = 0; i < e->n_states; i++) {
        free(e->states[i].trans);
        free(e->states[i].mask);
    }
    free(e->states);
    free(e->nodes);
    free(e->nkeys);
    free(e->nvals);
    free(e->lists);
    free(e->smap);
    free(e->scratch);
    free(e->stamp);
    memset(e, 0, sizeof *e);
}

/* State holding exactly node `id` (already terminal-topped). */
static int64_t eng_single(engine_t *e, uint32_t id) {
    e->gen++;
    e->n_scratch = 0;
    if (scratch_add(e, id) < 0) return -1;
    return eng_intern(e);
}

/* One byte from state s; returns the next state (0 = dead) or -1. */
static int64_t eng_step_slow(engine_t *e, uint32_t s, unsigned char b);

static inline int64_t eng_step(engine_t *e, uint32_t s, unsigned char b) {
    const gstate_t *st = &e->states[s];
    if (st->trans && st->trans[b] >= 0) return st->trans[b];
    return eng_step_slow(e, s, b);
}

static __attribute__((noinline)) int64_t eng_step_slow(engine_t *e, uint32_t s, unsigned char b) {
    gstate_t *st = &e->states[s];
    if (st->n == 0) return STATE_EMPTY;
    const gram_t *g = e->g;
    e->gen++;
    e->n_scratch = 0;
    for (uint32_t i = 0; i < e->states[s].n; i++) {
        uint32_t id = e->lists[e->states[s].off + i];
        if (id < 2) continue;
        gnode_t nd = e->nodes[id];
        if (!gram_bset_has(&g->terms[g->elems[nd.pos].val], b)) continue;
        eng_expand(e, nd.pos + 1, nd.parent, 0);
        if (e->failed) return -1;
    }
    int64_t ns = eng_intern(e);
    if (ns < 0) {
        e->failed = true;
        return -1;
    }
    st = &e->states[s];
    if (!st->trans) {
        st->trans = malloc(256 * sizeof *st->trans);
        if (!st->trans) {
            e->failed = true;
            return -1;
        }
        memset(st->trans, 0xff, 256 * sizeof *st->trans);
    }
    st->trans[b] = (int32_t)ns;
    return ns;
}

/* ---------------- vocabulary ---------------- */

struct gram_vocab {
    size_t n_vocab, n_words;
    char *blob;
    size_t *off;
    uint32_t *len;
    uint8_t *is_eog;
    int32_t *eog;
    size_t n_eog;
    uint32_t max_len;
    /* trie in pre-order: node i's subtree is [i, i + tn_size[i]) */
    uint32_t n_tn;
    uint8_t *tn_byte;
    uint16_t *tn_depth; /* 1-based (root is virtual) */
    uint32_t *tn_size;
    int32_t *tn_tok;   /* first token ending at the node, or -1 */
    int32_t *tok_dup;  /* next token with identical bytes, or -1 */
    uint32_t *rank;    /* position of each token in byte order */
    uint16_t *tn_maxd; /* longest token (depth) in the node's subtree */
    uint32_t *by_len;  /* token ids, longest first */
    uint32_t *n_longer; /* [k] = number of tokens longer than k bytes, k <= max_len */
    uint64_t serial;   /* identity for the index cache */
};

static uint64_t vocab_serial_next = 1;

uint64_t gram_vocab_serial(const gram_vocab_t *v) {
    return v->serial;
}

#define VOCAB_MAX_TOKEN_LEN 60000

static const gram_vocab_t *sort_vocab_;
static int cmp_tok(const void *x, const void *y) {
    const gram_vocab_t *v = sort_vocab_;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    uint32_t la = v->len[a], lb = v->len[b];
    int c = memcmp(v->blob + v->off[a], v->blob + v->off[b], SL_MIN(la, lb));
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

void gram_vocab_free(gram_vocab_t *v) {
    if (!v) return;
    if (v->serial) gram_cache_forget_vocab(v->serial);
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->is_eog);
    free(v->eog);
    free(v->tn_byte);
    free(v->tn_depth);
    free(v->tn_size);
    free(v->tn_tok);
    free(v->tok_dup);
    free(v->rank);
    free(v->tn_maxd);
    free(v->by_len);
    free(v->n_longer);
    free(v);
}

size_t gram_vocab_size(const gram_vocab_t *v) {
    return v->n_vocab;
}

const char *gram_vocab_token(const gram_vocab_t *v, int32_t id, size_t *len) {
    if (!v || id < 0 || (size_t)id >= v->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = v->len[id];
    return v->blob + v->off[id];
}

bool gram_vocab_is_eog(const gram_vocab_t *v, int32_t id) {
    return v && id >= 0 && (size_t)id < v->n_vocab && v->is_eog[id];
}

size_t gram_mask_words(const gram_vocab_t *v) {
    return v->n_words;
}

gram_vocab_t *gram_vocab_new(const char *const *tok_bytes, const size_t *tok_lens, size_t n_vocab,
                             const int32_t *eog_ids, size_t n_eog, char *err, size_t errlen) {
    if (n_vocab == 0 || n_vocab > (1u << 24)) {
        sl_err(err, errlen, "grammar vocab: bad size %zu", n_vocab);
        return NULL;
    }
    gram_vocab_t *v = calloc(1, sizeof *v);
    if (!v) goto oom;
    v->n_vocab = n_vocab;
    v->n_words = (n_vocab + 31) / 32;
    v->serial = __atomic_fetch_add(&vocab_serial_next, 1, __ATOMIC_RELAXED);
    size_t total = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        if (tok_lens[i] > VOCAB_MAX_TOKEN_LEN) {
            sl_err(err, errlen, "grammar vocab: token %zu is too long (%zu bytes)", i, tok_lens[i]);
            gram_vocab_free(v);
            return NULL;
        }
        total += tok_lens[i];
    }
    v->blob = malloc(total + 1);
    v->off = malloc(n_vocab * sizeof *v->off);
    v->len = malloc(n_vocab * sizeof *v->len);
    v->is_eog = calloc(n_vocab, 1);
    v->eog = malloc((n_eog + 1) * sizeof *v->eog);
    v->tok_dup = malloc(n_vocab * sizeof *v->tok_dup);
    v->rank = malloc(n_vocab * sizeof *v->rank);
    uint32_t *order = malloc(n_vocab * sizeof *order);
    /* trie nodes <= total bytes */
    v->tn_byte = malloc(total + 1);
    v->tn_depth = malloc((total + 1) * sizeof *v->tn_depth);
    v->tn_size = malloc((total + 1) * sizeof *v->tn_size);
    v->tn_tok = malloc((total + 1) * sizeof *v->tn_tok);
    v->tn_maxd = malloc((total + 1) * sizeof *v->tn_maxd);
    uint32_t *open = malloc((VOCAB_MAX_TOKEN_LEN + 2) * sizeof *open);
    if (!v->blob || !v->off || !v->len || !v->is_eog || !v->eog || !v->tok_dup || !v->rank ||
        !order || !v->tn_byte || !v->tn_depth || !v->tn_size || !v->tn_tok || !v->tn_maxd || !open) {
        free(order);
        free(open);
        goto oom;
    }
    size_t o = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        v->off[i] = o;
        v->len[i] = (uint32_t)tok_lens[i];
        if (tok_lens[i]) memcpy(v->blob + o, tok_bytes[i], tok_lens[i]);
        o += tok_lens[i];
        v->tok_dup[i] = -1;
        if (tok_lens[i] > v->max_len) v->max_len = (uint32_t)tok_lens[i];
    }
    for (size_t i = 0; i < n_eog; i++) {
        if (eog_ids[i] < 0 || (size_t)eog_ids[i] >= n_vocab) {
            free(order);
            free(open);
            sl_err(err, errlen, "grammar vocab: end-of-generation id %d out of range", eog_ids[i]);
            gram_vocab_free(v);
            return NULL;
        }
        if (!v->is_eog[eog_ids[i]]) v->eog[v->n_eog++] = eog_ids[i];
        v->is_eog[eog_ids[i]] = 1;
    }
    for (size_t i = 0; i < n_vocab; i++) order[i] = (uint32_t)i;
    sort_vocab_ = v; /* qsort has no context argument in C11; vocab_new is
                        not expected to run concurrently with itself */
    qsort(order, n_vocab, sizeof *order, cmp_tok);
    sort_vocab_ = NULL;
    uint32_t n_tn = 0, depth = 0; /* open[d-1] = node at depth d on the current path */
    uint32_t prev = UINT32_MAX;
    for (size_t k = 0; k < n_vocab; k++) {
        uint32_t t = order[k];
        v->rank[t] = (uint32_t)k;
        uint32_t len = v->len[t];
        if (len == 0 || v->is_eog[t]) continue;
        const unsigned char *s = (const unsigned char *)v->blob + v->off[t];
        uint32_t lcp = 0;
        if (prev != UINT32_MAX) {
            const unsigned char *ps = (const unsigned char *)v->blob + v->off[prev];
            uint32_t pl = v->len[prev];
            while (lcp < len && lcp < pl && ps[lcp] == s[lcp]) lcp++;
        }
        while (depth > lcp) { /* close nodes deeper than the shared prefix */
            uint32_t nd = open[--depth];
            v->tn_size[nd] = n_tn - nd;
        }
        for (uint32_t d = lcp; d < len; d++) {
            uint32_t nd = n_tn++;
            v->tn_byte[nd] = s[d];
            v->tn_depth[nd] = (uint16_t)(d + 1);
            v->tn_tok[nd] = -1;
            v->tn_maxd[nd] = 0;
            open[depth++] = nd;
        }
        for (uint32_t d = 0; d < len; d++)
            if (v->tn_maxd[open[d]] < len) v->tn_maxd[open[d]] = (uint16_t)SL_MIN(len, 65535u);
        uint32_t last = open[len - 1];
        if (v->tn_tok[last] < 0) {
            v->tn_tok[last] = (int32_t)t;
        } else { /* identical bytes: chain */
            int32_t x = v->tn_tok[last];
            while (v->tok_dup[x] >= 0) x = v->tok_dup[x];
            v->tok_dup[x] = (int32_t)t;
        }
        prev = t;
    }
    while (depth > 0) {
        uint32_t nd = open[--depth];
        v->tn_size[nd] = n_tn - nd;
    }
    v->n_tn = n_tn;
    free(order);
    free(open);
    /* tokens by length, longest first (counting sort) */
    v->n_longer = calloc((size_t)v->max_len + 2, sizeof *v->n_longer);
    v->by_len = malloc(n_vocab * sizeof *v->by_len);
    uint32_t *cur = calloc((size_t)v->max_len + 2, sizeof *cur);
    if (!v->n_longer || !v->by_len || !cur) {
        free(cur);
        goto oom;
    }
    for (size_t i = 0; i < n_vocab; i++) cur[v->len[i]]++; /* tokens per length */
    uint32_t longer = 0;
    for (uint32_t l = v->max_len + 1; l-- > 0;) {
        v->n_longer[l] = longer; /* tokens longer than l: the slots before length l's */
        longer += cur[l];
        cur[l] = v->n_longer[l];
    }
    for (size_t i = 0; i < n_vocab; i++) v->by_len[cur[v->len[i]]++] = (uint32_t)i;
    free(cur);
    return v;
oom:
    gram_vocab_free(v);
    sl_err(err, errlen, "grammar vocab: out of memory");
    return NULL;
}

/* ---------------- sequence interner ---------------- */

/* Interns u32 sequences: equal sequences get equal ids (0, 1, 2, ...). */
typedef struct seqtab {
    uint32_t *blob;
    size_t n_blob, cap_blob;
    size_t *off;
    uint32_t *len, *hash;
    uint32_t n, cap;
    uint32_t *map; /* id + 1, 0 = empty */
    uint32_t mcap;
} seqtab_t;

static void seq_free(seqtab_t *t) {
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->hash);
    free(t->map);
    memset(t, 0, sizeof *t);
}

static uint32_t seq_hash(const uint32_t *s, uint32_t n) {
    uint64_t h64 = 0x9E3779B97F4A7C15ULL ^ n;
    for (uint32_t i = 0; i < n; i++) h64 = sl_mix64(h64 ^ s[i]) + i;
    return (uint32_t)h64;
}

/* The id of s[0..n), or -1 when absent (nothing added). */
static int64_t seq_find(const seqtab_t *t, const uint32_t *s, uint32_t n) {
    if (!t->mcap) return -1;
    uint32_t h = seq_hash(s, n);
    for (uint32_t k = h & (t->mcap - 1); t->map[k]; k = (k + 1) & (t->mcap - 1)) {
        uint32_t id = t->map[k] - 1;
        if (t->hash[id] == h && t->len[id] == n &&
            (n == 0 || memcmp(t->blob + t->off[id], s, n * sizeof *s) == 0))
            return id;
    }
    return -1;
}

/* Returns the id of s[0..n) (is_new set when just added), or -1 (OOM). */
static int64_t seq_intern(seqtab_t *t, const uint32_t *s, uint32_t n, bool *is_new) {
    uint32_t h = seq_hash(s, n);
    *is_new = false;
    if ((t->n + 1) * 2 > t->mcap) {
        uint32_t nc = t->mcap ? t->mcap * 2 : 1024;
        uint32_t *m = calloc(nc, sizeof *m);
        if (!m) return -1;
        for (uint32_t i = 0; i < t->mcap; i++) {
            if (!t->map[i]) continue;
            uint32_t k = t->hash[t->map[i] - 1] & (nc - 1);
            while (m[k]) k = (k + 1) & (nc - 1);
            m[k] = t->map[i];
        }
        free(t->map);
        t->map = m;
        t->mcap = nc;
    }
    uint32_t k = h & (t->mcap - 1);
    while (t->map[k]) {
        uint32_t id = t->map[k] - 1;
        if (t->hash[id] == h && t->len[id] == n &&
            (n == 0 || memcmp(t->blob + t->off[id], s, n * sizeof *s) == 0))
            return id;
        k = (k + 1) & (t->mcap - 1);
    }
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 256;
        size_t *o = realloc(t->off, nc * sizeof *o);
        if (o) t->off = o;
        uint32_t *l = o ? realloc(t->len, nc * sizeof *l) : NULL;
        if (l) t->len = l;
        uint32_t *hh = l ? realloc(t->hash, nc * sizeof *hh) : NULL;
        if (!hh) return -1;
        t->hash = hh;
        t->cap = nc;
    }
    if (t->n_blob + n > t->cap_blob) {
        size_t nc = t->cap_blob ? t->cap_blob * 2 : 4096;
        while (nc < t->n_blob + n) nc *= 2;
        uint32_t *p = realloc(t->blob, nc * sizeof *p);
        if (!p) return -1;
        t->blob = p;
        t->cap_blob = nc;
    }
    uint32_t id = t->n++;
    t->off[id] = t->n_blob;
    t->len[id] = n;
    t->hash[id] = h;
    if (n) memcpy(t->blob + t->n_blob, s, n * sizeof *s);
    t->n_blob += n;
    t->map[k] = id + 1;
    *is_new = true;
    return id;
}

/* ---------------- index ---------------- */

/*
 * Sharing. Each terminal position p is indexed under a KEY: the canonical
 * ids of p's rule and of the rules on its static calling context, with the
 * offsets inside them and the bottom kind. Canonical rule ids hash-cons rule
 * bodies bottom-up (a reference contributes its target's canonical id), so
 * the clones gram_finish makes of one rule get one id, and two positions
 * with equal keys walk identical stacks: they share one cache. Links of a
 * bounded repetition chain deeper than the longest token (+1) get the id of
 * the link below them — no token can reach the difference — so the 200
 * links of `char{0,200}` share the caches of one link. Links at most that
 * deep below the chain's top are indexed lazily, on first use by a matcher
 * (only the links a generation reaches are ever built).
 */

typedef struct pos_cache {
    uint32_t *acc_bits; /* full bitmap when many tokens are accepted */
    uint32_t *acc_ids;  /* else the sorted accepted ids */
    uint32_t n_acc;
    uint32_t *unc_ids; /* uncertain tokens in byte order */
    uint16_t *unc_lcp; /* shared prefix length with the previous uncertain token */
    uint32_t n_unc;
    bool built;
} pos_cache_t;

#define PC_NONE UINT32_MAX
#define PC_CHUNK 256u
#define CTX_MAX_FRAMES 256u

typedef struct u32vec {
    uint32_t *p;
    size_t n, cap;
} u32vec_t;

struct gram_index {
    const gram_t *g;
    const gram_vocab_t *v;
    uint32_t *pc_of;      /* per elem: cache id, PC_NONE = not indexed yet (atomic) */
    pos_cache_t **chunks; /* cache id -> chunks[id / PC_CHUNK][id % PC_CHUNK] */
    uint32_t n_chunks;
    seqtab_t keys;        /* cache id == key id */
    uint32_t *cid;        /* canonical id per rule */
    engine_t e;           /* engine for the trie walks */
    u32vec_t acc, unc;
    uint32_t *wst;
    uint8_t *wesc;
    uint32_t *rets, *key;
    uint32_t n_built, n_walks; /* statistics */
    pthread_mutex_t mu;   /* guards everything but pc_of reads of built ids */
    /* Shared re-check results (see "Re-checks shared between matchers"
     * above gram_matcher_fill_mask), guarded by umu: ukeys = full stacks
     * (positions from the top down to the root), ures[key] = which of the
     * top position's uncertain tokens that stack accepts (bit k = unc_ids[k]),
     * immutable once published and freed only with the index. */
    pthread_mutex_t umu;
    seqtab_t ukeys;
    uint32_t **ures;
    uint32_t ures_cap;
    size_t ures_words;
};

static int vec_grow(u32vec_t *v) {
    size_t nc = v->cap ? v->cap * 2 : 1024;
    uint32_t *p = realloc(v->p, nc * sizeof *p);
    if (!p) return -1;
    v->p = p;
    v->cap = nc;
    return 0;
}

static inline int vec_push(u32vec_t *v, uint32_t x) {
    if (v->n == v->cap && vec_grow(v) < 0) return -1;
    v->p[v->n++] = x;
    return 0;
}

static inline int push_tok_chain(u32vec_t *out, const gram_vocab_t *v, int32_t t) {
    for (; t >= 0; t = v->tok_dup[t])
        if (vec_push(out, (uint32_t)t) < 0) return -1;
    return 0;
}

/* Walks the trie from state `start`; fills accepted and uncertain with the
 * tokens longer than `minlen` bytes (0: all). */
static int walk_trie(engine_t *e, const gram_vocab_t *v, uint32_t start, u32vec_t *acc,
                     u32vec_t *unc, uint32_t *st, uint8_t *esc, uint32_t minlen) {
    st[0] = start;
    esc[0] = 0;
    const uint8_t *tb = v->tn_byte;
    const uint16_t *td = v->tn_depth;
    const uint32_t *ts = v->tn_size;
    const int32_t *tt = v->tn_tok;
    for (uint32_t i = 0; i < v->n_tn;) {
        uint32_t d = td[i];
        if (v->tn_maxd[i] <= minlen) { /* no token long enough below */
            i += ts[i];
            continue;
        }
        uint32_t ps = st[d - 1];
        uint8_t flag = esc[d - 1] | e->states[ps].has_esc;
        int64_t ns = eng_step(e, ps, tb[i]);
        if (ns < 0) return -1;
        if (ns == STATE_EMPTY) {
            if (flag)
                for (uint32_t j = i; j < i + ts[i]; j++)
                    if (tt[j] >= 0 && td[j] > minlen && push_tok_chain(unc, v, tt[j]) < 0)
                        return -1;
            i += ts[i];
            continue;
        }
        st[d] = (uint32_t)ns;
        esc[d] = flag;
        if (tt[i] >= 0 && d > minlen && push_tok_chain(acc, v, tt[i]) < 0) return -1;
        i++;
    }
    return 0;
}

static int fill_pos_cache(pos_cache_t *pc, const gram_vocab_t *v, u32vec_t *acc, u32vec_t *unc) {
    if (acc->n > v->n_vocab / 16) {
        pc->acc_bits = calloc(v->n_words, sizeof *pc->acc_bits);
        if (!pc->acc_bits) return -1;
        for (size_t i = 0; i < acc->n; i++) pc->acc_bits[acc->p[i] >> 5] |= 1u << (acc->p[i] & 31);
    } else if (acc->n) {
        qsort(acc->p, acc->n, sizeof *acc->p, cmp_u32);
        pc->acc_ids = malloc(acc->n * sizeof *pc->acc_ids);
        if (!pc->acc_ids) return -1;
        memcpy(pc->acc_ids, acc->p, acc->n * sizeof *acc->p);
    }
    pc->n_acc = (uint32_t)acc->n;
    if (unc->n) {
        /* already in trie order (walk order); tokens with equal bytes adjacent */
        pc->unc_ids = malloc(unc->n * sizeof *pc->unc_ids);
        pc->unc_lcp = malloc(unc->n * sizeof *pc->unc_lcp);
        if (!pc->unc_ids || !pc->unc_lcp) return -1;
        memcpy(pc->unc_ids, unc->p, unc->n * sizeof *unc->p);
        for (size_t k = 0; k < unc->n; k++) {
            uint32_t l = 0;
            if (k) {
                uint32_t a = unc->p[k - 1], b = unc->p[k];
                const char *sa = v->blob + v->off[a], *sb = v->blob + v->off[b];
                uint32_t m = SL_MIN(v->len[a], v->len[b]);
                while (l < m && sa[l] == sb[l]) l++;
            }
            pc->unc_lcp[k] = (uint16_t)SL_MIN(l, 65535u);
        }
        pc->n_unc = (uint32_t)unc->n;
    }
    return 0;
}

static pos_cache_t *ix_pc(const gram_index_t *ix, uint32_t id) {
    return &ix->chunks[id / PC_CHUNK][id % PC_CHUNK];
}

void gram_index_free(gram_index_t *ix) {
    if (!ix) return;
    if (ix->chunks) {
        for (uint32_t c = 0; c < ix->n_chunks; c++) {
            if (!ix->chunks[c]) continue;
            for (uint32_t i = 0; i < PC_CHUNK; i++) {
                pos_cache_t *pc = &ix->chunks[c][i];
                free(pc->acc_bits);
                free(pc->acc_ids);
                free(pc->unc_ids);
                free(pc->unc_lcp);
            }
            free(ix->chunks[c]);
        }
    }
    free(ix->chunks);
    free(ix->pc_of);
    free(ix->cid);
    seq_free(&ix->keys);
    eng_free(&ix->e);
    free(ix->acc.p);
    free(ix->unc.p);
    free(ix->wst);
    free(ix->wesc);
    free(ix->rets);
    free(ix->key);
    pthread_mutex_destroy(&ix->mu);
    for (uint32_t i = 0; i < ix->ukeys.n; i++) free(ix->ures[i]);
    free(ix->ures);
    seq_free(&ix->ukeys);
    pthread_mutex_destroy(&ix->umu);
    free(ix);
}

/* Canonical rule ids (see "Sharing" above). Recursive rules keep an id of
 * their own; the others are interned bottom-up over the reference DAG. */
/* Recursive only through tail references to itself (x*): hash-consed like
 * a plain rule, the self-reference as a marker. */
static bool rule_tail_self(const gram_t *g, uint32_t r) {
    if (!g->rule_rec[r]) return false;
    for (uint32_t a = 0; a < g->rule_nalt[r]; a++)
        for (uint32_t q = g->alt_start[g->rule_alt0[r] + a]; g->elems[q].type != GE_END; q++) {
            if (g->elems[q].type != GE_REF) continue;
            uint32_t s = g->elems[q].val;
            if (s == r ? g->elems[q + 1].type != GE_END : g->rule_rec[s]) return false;
        }
    return true;
}

static int compute_cids(gram_index_t *ix) {
    const gram_t *g = ix->g;
    uint32_t nr = g->n_rules, sat = ix->v->max_len + 1;
    seqtab_t t = {0};
    uint8_t *state = calloc(nr, 1);
    uint32_t *stk = malloc((g->n_elems + nr + 1) * sizeof *stk);
    u32vec_t sig = {0};
    ix->cid = malloc(nr * sizeof *ix->cid);
    int rc = -1;
    bool nw;
    if (!state || !stk || !ix->cid) goto out;
    for (uint32_t r = 0; r < nr; r++) {
        if (!g->rule_rec[r] || rule_tail_self(g, r)) continue;
        uint32_t s2[2] = {UINT32_MAX, r};
        int64_t id = seq_intern(&t, s2, 2, &nw);
        if (id < 0) goto out;
        ix->cid[r] = (uint32_t)id;
        state[r] = 2;
    }
    for (uint32_t r0 = 0; r0 < nr; r0++) {
        if (state[r0] == 2) continue;
        size_t sp = 0;
        stk[sp++] = r0;
        while (sp) {
            uint32_t r = stk[sp - 1];
            if (state[r] == 2) {
                sp--;
                continue;
            }
            bool ready = true;
            uint32_t a0 = g->rule_alt0[r], na = g->rule_nalt[r];
            for (uint32_t a = 0; a < na; a++)
                for (uint32_t q = g->alt_start[a0 + a]; g->elems[q].type != GE_END; q++)
                    if (g->elems[q].type == GE_REF && g->elems[q].val != r &&
                        state[g->elems[q].val] != 2) {
                        if (state[g->elems[q].val] == 1) goto out; /* cycle: not expected */
                        stk[sp++] = g->elems[q].val;
                        ready = false;
                    }
            if (!ready) {
                state[r] = 1;
                continue;
            }
            /* a saturated chain link: same id as the link below it */
            uint32_t cl = g->chain_level[r];
            if (cl > sat && na == 2) {
                uint32_t q = g->alt_start[a0];
                if (g->elems[q].type != GE_END && g->elems[q + 1].type == GE_REF &&
                    g->elems[q + 2].type == GE_END && g->elems[g->alt_start[a0 + 1]].type == GE_END &&
                    g->chain_level[g->elems[q + 1].val] == cl - 1) {
                    ix->cid[r] = ix->cid[g->elems[q + 1].val];
                    state[r] = 2;
                    sp--;
                    continue;
                }
            }
            sig.n = 0;
            if (vec_push(&sig, na) < 0) goto out;
            for (uint32_t a = 0; a < na; a++) {
                uint32_t q = g->alt_start[a0 + a];
                for (; g->elems[q].type != GE_END; q++) {
                    gram_elem_t el = g->elems[q];
                    uint32_t x = el.type != GE_REF ? el.val : el.val == r ? UINT32_MAX - 1 : ix->cid[el.val];
                    if (vec_push(&sig, el.type) < 0 || vec_push(&sig, x) < 0) goto out;
                }
                if (vec_push(&sig, GE_END) < 0) goto out;
            }
            int64_t id = seq_intern(&t, sig.p, (uint32_t)sig.n, &nw);
            if (id < 0) goto out;
            ix->cid[r] = (uint32_t)id;
            state[r] = 2;
            sp--;
        }
    }
    rc = 0;
out:
    seq_free(&t);
    free(state);
    free(stk);
    free(sig.p);
    return rc;
}

/* Static calling context of rule r (see the file comment): rets[0..n) are
 * the return positions, nearest first. *low: the chain passes through a
 * repetition link that is not its chain's top and is at most max_len + 1
 * deep (indexed lazily). Returns the bottom (PARENT_ROOT / PARENT_ESC). */
static int32_t ctx_walk(const gram_index_t *ix, uint32_t r, uint32_t *rets, uint32_t *n_out,
                        bool *low) {
    const gram_t *g = ix->g;
    uint32_t n = 0, sat = ix->v->max_len + 1;
    int32_t bottom = PARENT_ESC;
    *low = false;
    for (uint32_t cur = r;;) {
        if (cur == g->root) {
            bottom = PARENT_ROOT;
            break;
        }
        uint32_t c = g->call_site[cur];
        if (c == UINT32_MAX) break;
        uint32_t owner = g->elem_rule[c], cl = g->chain_level[cur];
        if (cl && cl <= sat && g->chain_level[owner] == cl + 1) *low = true;
        if (g->elems[c + 1].type != GE_END) {
            if (n == CTX_MAX_FRAMES) break; /* deep chain: keep the nearest part */
            rets[n++] = c + 1;
        }
        cur = owner;
    }
    *n_out = n;
    return bottom;
}

static uint32_t rule_off(const gram_t *g, uint32_t pos) {
    return pos - g->alt_start[g->rule_alt0[g->elem_rule[pos]]];
}

/*
 * Repetition links from their twin. Position p inside the item of link L_k
 * (r ::= X L_{k-1} | "", at most k items from here, the current one
 * included) and the same position p' in L_{k+1} differ only for tokens that
 * use more than k items: p's item takes at least one byte, so a token of at
 * most k bytes cannot tell them apart (it uses at most k - 1 further
 * items, which both allow; what follows the chain is the same static
 * context). So p's cache is p''s for those tokens, and the trie walk from p
 * only visits tokens longer than k bytes (few when k is not small). Applies
 * when the path from p up to L_k maps onto L_{k+1} element for element with
 * equal canonical rules (clones of one item).
 */
/* Link lk (level k) and link lk1 (level k + 1, calling lk): equal items? */
static bool same_item(const gram_index_t *ix, uint32_t lk, uint32_t lk1) {
    const gram_t *g = ix->g;
    const gram_elem_t *a = g->elems + g->alt_start[g->rule_alt0[lk]];
    const gram_elem_t *b = g->elems + g->alt_start[g->rule_alt0[lk1]];
    for (uint32_t j = 0;; j++) {
        if (b[j].type == GE_REF && b[j].val == lk) /* lk1's tail: lk's is its next link or end */
            return b[j + 1].type == GE_END &&
                   (a[j].type == GE_END ||
                    (a[j].type == GE_REF && g->chain_level[a[j].val] + 1 == g->chain_level[lk] &&
                     a[j + 1].type == GE_END));
        if (a[j].type != b[j].type || a[j].type == GE_END) return false;
        if (a[j].type == GE_TERM &&
            memcmp(&g->terms[a[j].val], &g->terms[b[j].val], sizeof g->terms[0]))
            return false;
        if (a[j].type == GE_REF && ix->cid[a[j].val] != ix->cid[b[j].val]) return false;
    }
}

static bool link_twin(const gram_index_t *ix, uint32_t p, uint32_t *twin, uint32_t *k_out) {
    const gram_t *g = ix->g;
    uint32_t sat = ix->v->max_len + 1;
    uint32_t src[64], n = 0; /* p, then the call sites up to the link */
    src[n++] = p;
    for (uint32_t cur = g->elem_rule[p];;) {
        if (cur == g->root) return false;
        uint32_t c = g->call_site[cur];
        if (c == UINT32_MAX) return false;
        uint32_t owner = g->elem_rule[c], cl = g->chain_level[cur];
        if (cl && cl <= sat && g->chain_level[owner] == cl + 1) {
            if (g->elems[c + 1].type != GE_END) return false; /* not a tail link */
            if (!same_item(ix, cur, owner)) return false;
            uint32_t r = owner; /* replay the path inside L_{k+1} */
            for (uint32_t i = n; i-- > 0;) {
                uint32_t sp = src[i], so = rule_off(g, sp);
                uint32_t q = g->alt_start[g->rule_alt0[r]] + so;
                if (q >= g->n_elems || g->elem_rule[q] != r) return false;
                gram_elem_t a = g->elems[sp], b = g->elems[q];
                if (a.type != b.type) return false;
                if (i + 1 < n && ix->cid[g->elem_rule[sp]] != ix->cid[r]) return false;
                if (a.type == GE_TERM) {
                    if (i != 0 || memcmp(&g->terms[a.val], &g->terms[b.val], sizeof g->terms[0]))
                        return false;
                    *twin = q;
                    *k_out = cl;
                    return true;
                }
                if (a.type != GE_REF || i == 0) return false;
                r = b.val;
            }
            return false;
        }
        if (n == SL_ARRAY_LEN(src)) return false;
        src[n++] = c;
        cur = owner;
    }
}

static int count_bits(const uint32_t *m, size_t nw);

/* pc = twin's outcome for tokens of at most k bytes + the walk in ix->acc /
 * ix->unc (tokens longer than k). */
static int derive_from_twin(gram_index_t *ix, pos_cache_t *pc, const pos_cache_t *tw, uint32_t k) {
    const gram_vocab_t *v = ix->v;
    uint32_t *bits = NULL;
    if (tw->acc_bits) {
        bits = malloc(v->n_words * sizeof *bits);
        if (!bits) return -1;
        memcpy(bits, tw->acc_bits, v->n_words * sizeof *bits);
        for (uint32_t j = 0; j < v->n_longer[k]; j++) {
            uint32_t t = v->by_len[j];
            bits[t >> 5] &= ~(1u << (t & 31));
        }
        for (size_t j = 0; j < ix->acc.n; j++) bits[ix->acc.p[j] >> 5] |= 1u << (ix->acc.p[j] & 31);
        ix->acc.n = 0;
    } else {
        for (uint32_t j = 0; j < tw->n_acc; j++)
            if (v->len[tw->acc_ids[j]] <= k && vec_push(&ix->acc, tw->acc_ids[j]) < 0) return -1;
    }
    /* uncertain: merge the twin's short ones with the walk's, in byte order */
    size_t nw = ix->unc.n;
    for (uint32_t j = 0; j < tw->n_unc; j++)
        if (v->len[tw->unc_ids[j]] <= k && vec_push(&ix->unc, tw->unc_ids[j]) < 0) goto fail;
    if (ix->unc.n > nw && nw > 0) {
        uint32_t *u = ix->unc.p, *tmp = malloc(ix->unc.n * sizeof *tmp);
        if (!tmp) goto fail;
        size_t a = 0, b = nw, o = 0;
        while (a < nw || b < ix->unc.n)
            tmp[o++] = (b == ix->unc.n || (a < nw && v->rank[u[a]] < v->rank[u[b]])) ? u[a++] : u[b++];
        memcpy(u, tmp, ix->unc.n * sizeof *u);
        free(tmp);
    }
    if (fill_pos_cache(pc, v, &ix->acc, &ix->unc) < 0) goto fail;
    if (bits) {
        free(pc->acc_bits); /* none: acc was emptied */
        free(pc->acc_ids);
        pc->acc_ids = NULL;
        pc->acc_bits = bits;
        pc->n_acc = (uint32_t)count_bits(bits, v->n_words);
    }
    return 0;
fail:
    free(bits);
    return -1;
}

/* Indexes terminal position p (caller holds ix->mu). Returns the cache id or
 * -1 (out of memory / grammar too complex). */
/* Frames of p's static context below its first x* rule (rule_tail_self:
 * such rules are cloned per use, so the contexts of their positions reach
 * far), or UINT32_MAX when the context passes none. */
static uint32_t ctx_cut(const gram_index_t *ix, uint32_t p) {
    const gram_t *g = ix->g;
    uint32_t n = 0;
    for (uint32_t cur = g->elem_rule[p]; cur != g->root;) {
        if (rule_tail_self(g, cur)) return n;
        uint32_t c = g->call_site[cur];
        if (c == UINT32_MAX) break;
        if (g->elems[c + 1].type != GE_END) {
            if (n == CTX_MAX_FRAMES) break;
            n++;
        }
        cur = g->elem_rule[c];
    }
    return UINT32_MAX;
}

/* Re-walks base's uncertain tokens from state s0 (a deeper static context
 * of the same position): into ix->acc / ix->unc (trie order kept). */
static int resolve_base(gram_index_t *ix, uint32_t s0, const pos_cache_t *base) {
    engine_t *e = &ix->e;
    const gram_vocab_t *v = ix->v;
    uint32_t *st = ix->wst;
    uint8_t *esc = ix->wesc;
    st[0] = s0;
    esc[0] = 0;
    uint32_t valid = 0, fail = UINT32_MAX;
    bool fail_unc = false;
    for (uint32_t k = 0; k < base->n_unc; k++) {
        uint32_t t = base->unc_ids[k], lcp = base->unc_lcp[k];
        if (fail <= lcp) { /* shares the prefix that failed: same outcome */
            if (fail_unc && vec_push(&ix->unc, t) < 0) return -1;
            continue;
        }
        const unsigned char *b = (const unsigned char *)v->blob + v->off[t];
        uint32_t len = v->len[t], d = SL_MIN(lcp, valid);
        fail = UINT32_MAX;
        for (; d < len; d++) {
            uint8_t flag = esc[d] | e->states[st[d]].has_esc;
            int64_t ns = eng_step(e, st[d], b[d]);
            if (ns < 0) return -1;
            if (ns == STATE_EMPTY) {
                fail = d + 1;
                fail_unc = flag;
                break;
            }
            st[d + 1] = (uint32_t)ns;
            esc[d + 1] = flag;
        }
        valid = fail == UINT32_MAX ? len : fail - 1;
        if (fail == UINT32_MAX ? vec_push(&ix->acc, t) < 0 : fail_unc && vec_push(&ix->unc, t) < 0)
            return -1;
    }
    return 0;
}

/* pc = base's accepted + ix->acc, uncertain = ix->unc. */
static int merge_base(gram_index_t *ix, pos_cache_t *pc, const pos_cache_t *base) {
    const gram_vocab_t *v = ix->v;
    uint32_t *bits = NULL;
    if (base->acc_bits) {
        bits = malloc(v->n_words * sizeof *bits);
        if (!bits) return -1;
        memcpy(bits, base->acc_bits, v->n_words * sizeof *bits);
        for (size_t j = 0; j < ix->acc.n; j++) bits[ix->acc.p[j] >> 5] |= 1u << (ix->acc.p[j] & 31);
        ix->acc.n = 0;
    } else {
        for (uint32_t j = 0; j < base->n_acc; j++)
            if (vec_push(&ix->acc, base->acc_ids[j]) < 0) return -1;
    }
    if (fill_pos_cache(pc, v, &ix->acc, &ix->unc) < 0) {
        free(bits);
        return -1;
    }
    if (bits) {
        pc->acc_bits = bits;
        pc->n_acc = (uint32_t)count_bits(bits, v->n_words);
    }
    return 0;
}

/* The cache for p under the context ix->rets[0..n) + bottom (built when
 * new). tw_id: twin cache (lazy links) or -1; base_id: cache of a shallower
 * context of p or -1. p itself is not recorded (pc_of). */
static int64_t build_ctx(gram_index_t *ix, uint32_t p, uint32_t n, int32_t bottom, int64_t tw_id,
                         uint32_t tw_k, int64_t base_id) {
    const gram_t *g = ix->g;
    uint32_t k = 0;
    ix->key[k++] = ix->cid[g->elem_rule[p]];
    ix->key[k++] = rule_off(g, p);
    for (uint32_t i = 0; i < n; i++) {
        ix->key[k++] = ix->cid[g->elem_rule[ix->rets[i]]];
        ix->key[k++] = rule_off(g, ix->rets[i]);
    }
    ix->key[k++] = bottom == PARENT_ROOT ? 0xFFFFFFF1u : 0xFFFFFFF0u;
    bool is_new;
    int64_t id = seq_intern(&ix->keys, ix->key, k, &is_new);
    if (id < 0) return -1;
    if (!is_new) return ix_pc(ix, (uint32_t)id)->built ? id : -1;
    uint32_t c = (uint32_t)id / PC_CHUNK;
    if (c >= ix->n_chunks) return -1; /* cannot happen: ids <= 2 x positions */
    if (!ix->chunks[c]) {
        ix->chunks[c] = calloc(PC_CHUNK, sizeof **ix->chunks);
        if (!ix->chunks[c]) return -1;
    }
    engine_t *e = &ix->e;
    int32_t parent = bottom;
    while (n > 0) {
        parent = eng_node(e, ix->rets[--n], parent);
        if (parent < 0) return -1;
    }
    int32_t node = eng_node(e, p, parent);
    if (node < 0) return -1;
    int64_t s = eng_single(e, (uint32_t)node);
    if (s < 0) return -1;
    ix->acc.n = ix->unc.n = 0;
    pos_cache_t *pc = ix_pc(ix, (uint32_t)id);
    if (base_id >= 0) {
        const pos_cache_t *bpc = ix_pc(ix, (uint32_t)base_id);
        if (resolve_base(ix, (uint32_t)s, bpc) < 0 || merge_base(ix, pc, bpc) < 0) return -1;
    } else {
        const pos_cache_t *tpc = tw_id >= 0 ? ix_pc(ix, (uint32_t)tw_id) : NULL;
        if (walk_trie(e, ix->v, (uint32_t)s, &ix->acc, &ix->unc, ix->wst, ix->wesc,
                      tpc ? tw_k : 0) < 0)
            return -1;
        if (tpc) {
            if (derive_from_twin(ix, pc, tpc, tw_k) < 0) return -1;
        } else if (fill_pos_cache(pc, ix->v, &ix->acc, &ix->unc) < 0) {
            return -1;
        }
        ix->n_walks++;
    }
    pc->built = true;
    return id;
}

static int64_t ix_build(gram_index_t *ix, uint32_t p) {
    uint32_t have = __atomic_load_n(&ix->pc_of[p], __ATOMIC_ACQUIRE);
    if (have != PC_NONE) return have;
    const gram_t *g = ix->g;
    /* inside a lazily indexed repetition link: start from its twin one
     * level up (built first; recursion depth <= the chain's lazy links) */
    uint32_t tw_p = 0, tw_k = 0;
    int64_t tw_id = -1, base_id = -1;
    if (link_twin(ix, p, &tw_p, &tw_k) && ix->v->n_longer[tw_k] <= ix->v->n_vocab / 4)
        tw_id = ix_build(ix, tw_p);
    uint32_t n = 0;
    bool low;
    int32_t bottom = ctx_walk(ix, g->elem_rule[p], ix->rets, &n, &low);
    /* inside an x* clone: the tokens that stay inside the part of the
     * context up to the x* rule are decided by the (shared) cache of that
     * shallower context; only its uncertain ones are walked again here */
    uint32_t cut = tw_id < 0 ? ctx_cut(ix, p) : UINT32_MAX;
    if (cut != UINT32_MAX && (cut < n || bottom == PARENT_ROOT)) {
        base_id = build_ctx(ix, p, cut, PARENT_ESC, -1, 0, -1);
        if (base_id < 0) return -1;
        bottom = ctx_walk(ix, g->elem_rule[p], ix->rets, &n, &low);
    }
    int64_t id = build_ctx(ix, p, n, bottom, tw_id, tw_k, base_id);
    if (id < 0) return -1;
    __atomic_store_n(&ix->pc_of[p], (uint32_t)id, __ATOMIC_RELEASE);
    return id;
}

/* The cache of terminal position p, indexing it first if needed. */
static const pos_cache_t *ix_get(const gram_index_t *cix, uint32_t p) {
    gram_index_t *ix = (gram_index_t *)cix; /* internally synchronised */
    uint32_t id = __atomic_load_n(&ix->pc_of[p], __ATOMIC_ACQUIRE);
    if (id == PC_NONE) {
        pthread_mutex_lock(&ix->mu);
        int64_t r = ix_build(ix, p);
        pthread_mutex_unlock(&ix->mu);
        if (r < 0) return NULL;
        id = (uint32_t)r;
    }
    return ix_pc(ix, id);
}

gram_index_t *gram_index_new(const gram_t *g, const gram_vocab_t *v, char *err, size_t errlen) {
    gram_index_t *ix = calloc(1, sizeof *ix);
    uint8_t *reach = NULL;
    if (!ix) goto oom;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_mutex_init(&ix->umu, NULL);
    ix->g = g;
    ix->v = v;
    if (eng_init(&ix->e, g) < 0) goto oom;
    ix->pc_of = malloc(g->n_elems * sizeof *ix->pc_of);
    ix->n_chunks = 2 * (g->n_elems / PC_CHUNK + 1); /* positions + shallower contexts */
    ix->chunks = calloc(ix->n_chunks, sizeof *ix->chunks);
    ix->wst = malloc((v->max_len + 2) * sizeof *ix->wst);
    ix->wesc = malloc(v->max_len + 2);
    ix->rets = malloc(CTX_MAX_FRAMES * sizeof *ix->rets);
    ix->key = malloc((2 * CTX_MAX_FRAMES + 4) * sizeof *ix->key);
    reach = calloc(g->n_rules, 1);
    uint32_t *q = malloc(g->n_rules * sizeof *q);
    if (!ix->pc_of || !ix->chunks || !ix->wst || !ix->wesc || !ix->rets || !ix->key || !reach ||
        !q) {
        free(q);
        goto oom;
    }
    memset(ix->pc_of, 0xff, g->n_elems * sizeof *ix->pc_of);
    if (compute_cids(ix) < 0) {
        free(q);
        goto oom;
    }
    uint32_t qh = 0, qt = 0;
    reach[g->root] = 1;
    q[qt++] = g->root;
    while (qh < qt) {
        uint32_t r = q[qh++];
        for (uint32_t a = 0; a < g->rule_nalt[r]; a++)
            for (uint32_t p = g->alt_start[g->rule_alt0[r] + a]; g->elems[p].type != GE_END; p++)
                if (g->elems[p].type == GE_REF && !reach[g->elems[p].val]) {
                    reach[g->elems[p].val] = 1;
                    q[qt++] = g->elems[p].val;
                }
    }
    free(q);
    /* eager: every reachable position except the deep links of bounded
     * repetitions (lazy, see "Sharing") */
    for (uint32_t p = 0; p < g->n_elems; p++) {
        if (g->elems[p].type != GE_TERM || !reach[g->elem_rule[p]]) continue;
        uint32_t n;
        bool low;
        ctx_walk(ix, g->elem_rule[p], ix->rets, &n, &low);
        if (low) continue;
        if (ix_build(ix, p) < 0) goto oom;
        ix->n_built++;
    }
    free(reach);
    return ix;
oom:
    sl_err(err, errlen, "grammar index: out of memory or grammar too complex");
    free(reach);
    gram_index_free(ix);
    return NULL;
}

void gram_index_stats(const gram_index_t *ix, size_t *positions, size_t *caches, size_t *walks) {
    gram_index_t *m = (gram_index_t *)ix;
    pthread_mutex_lock(&m->mu);
    if (positions) *positions = ix->n_built;
    if (caches) *caches = ix->keys.n;
    if (walks) *walks = ix->n_walks;
    pthread_mutex_unlock(&m->mu);
}

/* ---------------- matcher ---------------- */

struct gram_matcher {
    const gram_index_t *ix;
    engine_t e;
    uint32_t init_state;
    uint32_t cur;
    bool terminated;
    uint32_t *hist; /* state before each step; high bit = terminated flag */
    size_t n_hist, cap_hist;
    uint32_t *walk; /* per-depth states for uncertain-token walks */
    uint32_t *cached; /* states holding a cached mask */
    uint32_t n_cached;
    uint32_t *ukey;  /* full-stack key for the shared re-check results */
    uint32_t *kbits; /* scratch: accepted uncertain tokens, bit per unc_ids entry */
    uint32_t kbits_cap;
};

gram_matcher_t *gram_matcher_new(const gram_index_t *ix, char *err, size_t errlen) {
    gram_matcher_t *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->ix = ix;
    if (eng_init(&m->e, ix->g) < 0) goto oom;
    m->walk = malloc((ix->v->max_len + 2) * sizeof *m->walk);
    m->cached = malloc(MATCHER_MAX_CACHED_MASKS * sizeof *m->cached);
    m->ukey = malloc((UKEY_MAX_LEN + 1) * sizeof *m->ukey);
    if (!m->walk || !m->cached || !m->ukey) goto oom;
    /* the start: every alternative of root, with the root's end = accept */
    const gram_t *g = ix->g;
    m->e.gen++;
    m->e.n_scratch = 0;
    for (uint32_t a = 0; a < g->rule_nalt[g->root]; a++)
        eng_expand(&m->e, g->alt_start[g->rule_alt0[g->root] + a], PARENT_ROOT, 0);
    int64_t s = m->e.failed ? -1 : eng_intern(&m->e);
    if (s < 0) goto oom;
    m->init_state = m->cur = (uint32_t)s;
    return m;
oom:
    sl_err(err, errlen, "grammar matcher: out of memory");
    gram_matcher_free(m);
    return NULL;
}

size_t gram_matcher_vocab_size(const gram_matcher_t *m) {
    return m->ix->v->n_vocab;
}

void gram_matcher_free(gram_matcher_t *m) {
    if (!m) return;
    eng_free(&m->e);
    free(m->hist);
    free(m->walk);
    free(m->cached);
    free(m->ukey);
    free(m->kbits);
    free(m);
}

void gram_matcher_reset(gram_matcher_t *m) {
    m->cur = m->init_state;
    m->terminated = false;
    m->n_hist = 0;
}

static int hist_push(gram_matcher_t *m) {
    if (m->n_hist == m->cap_hist) {
        size_t nc = m->cap_hist ? m->cap_hist * 2 : 64;
        uint32_t *p = realloc(m->hist, nc * sizeof *p);
        if (!p) return -1;
        m->hist = p;
        m->cap_hist = nc;
    }
    m->hist[m->n_hist++] = m->cur | (m->terminated ? 0x80000000u : 0);
    return 0;
}

static int64_t walk_bytes(gram_matcher_t *m, uint32_t s, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n && s != STATE_EMPTY; i++) {
        int64_t ns = eng_step(&m->e, s, b[i]);
        if (ns < 0) return -1;
        s = (uint32_t)ns;
    }
    return s;
}

int gram_matcher_accept_bytes(gram_matcher_t *m, const char *bytes, size_t len) {
    if (m->terminated) return -1;
    int64_t s = walk_bytes(m, m->cur, (const unsigned char *)bytes, len);
    if (s <= 0) return -1;
    if (hist_push(m) < 0) return -1;
    m->cur = (uint32_t)s;
    return 0;
}

int gram_matcher_accept_token(gram_matcher_t *m, int32_t id) {
    const gram_vocab_t *v = m->ix->v;
    if (m->terminated || id < 0 || (size_t)id >= v->n_vocab) return -1;
    if (v->is_eog[id]) {
        if (!m->e.states[m->cur].has_accept) return -1;
        if (hist_push(m) < 0) return -1;
        m->terminated = true;
        return 0;
    }
    if (v->len[id] == 0) return -1;
    return gram_matcher_accept_bytes(m, v->blob + v->off[id], v->len[id]);
}

bool gram_matcher_can_end(const gram_matcher_t *m) {
    return !m->terminated && m->e.states[m->cur].has_accept;
}

bool gram_matcher_is_terminated(const gram_matcher_t *m) {
    if (m->terminated) return true;
    const gstate_t *s = &m->e.states[m->cur];
    return s->n == 1 && s->has_accept;
}

int gram_matcher_rollback(gram_matcher_t *m, size_t n) {
    if (n > m->n_hist) return -1;
    if (n == 0) return 0;
    m->n_hist -= n;
    uint32_t h = m->hist[m->n_hist];
    m->cur = h & 0x7fffffffu;
    m->terminated = (h & 0x80000000u) != 0;
    return 0;
}

/* Re-checks a position's uncertain tokens against the real stack `node`;
 * sets the accepted ones in mask and bit k of kbits for unc_ids[k]. */
static int check_uncertain(gram_matcher_t *m, const pos_cache_t *pc, uint32_t node,
                           uint32_t *mask, uint32_t *kbits) {
    const gram_vocab_t *v = m->ix->v;
    int64_t s0 = eng_single(&m->e, node);
    if (s0 < 0) return -1;
    uint32_t *st = m->walk;
    st[0] = (uint32_t)s0;
    uint32_t valid = 0, fail = UINT32_MAX;
    for (uint32_t k = 0; k < pc->n_unc; k++) {
        uint32_t t = pc->unc_ids[k], lcp = pc->unc_lcp[k];
        if (fail <= lcp) continue; /* shares a prefix that already failed */
        const unsigned char *b = (const unsigned char *)v->blob + v->off[t];
        uint32_t len = v->len[t];
        uint32_t d = SL_MIN(lcp, valid);
        fail = UINT32_MAX;
        for (; d < len; d++) {
            int64_t ns = eng_step(&m->e, st[d], b[d]);
            if (ns < 0) return -1;
            if (ns == STATE_EMPTY) {
                fail = d + 1;
                break;
            }
            st[d + 1] = (uint32_t)ns;
        }
        valid = fail == UINT32_MAX ? len : fail - 1;
        if (fail == UINT32_MAX) {
            mask[t >> 5] |= 1u << (t & 31);
            kbits[k >> 5] |= 1u << (k & 31);
        }
    }
    return 0;
}

/*
 * Re-checks shared between matchers. The uncertain tokens of a stack top are
 * decided by the whole stack below it, and every new matcher (each request)
 * would redo them on its first visit of a state (string interiors in JSON:
 * ~2.5k tokens, a few hundred us). The index keeps the results, keyed by the
 * full stack as positions from the top down to the root (equal position
 * chains accept equal byte strings), so only the first matcher that meets a
 * stack pays. Capped: UKEY_MAX_LEN positions per key, UKEY_MAX_ENTRIES keys
 * and UKEY_MAX_WORDS result words per index; beyond that matchers recheck.
 */

/* Key of the stack `node` in m->ukey; its length, or 0 when too deep. */
static uint32_t stack_key(const gram_matcher_t *m, uint32_t node) {
    uint32_t n = 0;
    for (int32_t x = (int32_t)node; x >= 0; x = m->e.nodes[x].parent) {
        if (n == UKEY_MAX_LEN) return 0;
        m->ukey[n++] = m->e.nodes[x].pos;
    }
    return n;
}

static const uint32_t *ushared_find(const gram_index_t *cix, const uint32_t *key, uint32_t n) {
    gram_index_t *ix = (gram_index_t *)cix; /* internally synchronised */
    const uint32_t *r = NULL;
    pthread_mutex_lock(&ix->umu);
    int64_t id = seq_find(&ix->ukeys, key, n);
    if (id >= 0) r = ix->ures[id];
    pthread_mutex_unlock(&ix->umu);
    return r;
}

/* Publishes a copy of bits (nw words) under key (best effort: no error). */
static void ushared_put(const gram_index_t *cix, const uint32_t *key, uint32_t n,
                        const uint32_t *bits, uint32_t nw) {
    gram_index_t *ix = (gram_index_t *)cix;
    pthread_mutex_lock(&ix->umu);
    if (ix->ukeys.n >= UKEY_MAX_ENTRIES || ix->ures_words + nw + n > UKEY_MAX_WORDS) goto out;
    if (ix->ukeys.n == ix->ures_cap) {
        uint32_t nc = ix->ures_cap ? ix->ures_cap * 2 : 64;
        uint32_t **p = realloc(ix->ures, nc * sizeof *p);
        if (!p) goto out;
        ix->ures = p;
        ix->ures_cap = nc;
    }
    uint32_t *c = malloc((nw ? nw : 1) * sizeof *c);
    if (!c) goto out;
    bool is_new;
    int64_t id = seq_intern(&ix->ukeys, key, n, &is_new);
    if (id < 0 || !is_new) { /* OOM, or another matcher published it first */
        free(c);
        goto out;
    }
    memcpy(c, bits, nw * sizeof *c);
    ix->ures[id] = c;
    ix->ures_words += nw + n;
out:
    pthread_mutex_unlock(&ix->umu);
}

/* The uncertain tokens of pc accepted on the real stack `node`, into mask. */
static int add_uncertain(gram_matcher_t *m, const pos_cache_t *pc, uint32_t node, uint32_t *mask) {
    uint32_t kn = stack_key(m, node);
    uint32_t nw = (pc->n_unc + 31) / 32;
    const uint32_t *bits = kn ? ushared_find(m->ix, m->ukey, kn) : NULL;
    if (bits) {
        for (uint32_t w = 0; w < nw; w++)
            for (uint32_t x = bits[w]; x; x &= x - 1) {
                uint32_t t = pc->unc_ids[w * 32 + (uint32_t)__builtin_ctz(x)];
                mask[t >> 5] |= 1u << (t & 31);
            }
        return 0;
    }
    if (nw > m->kbits_cap) {
        uint32_t *p = realloc(m->kbits, nw * sizeof *p);
        if (!p) return -1;
        m->kbits = p;
        m->kbits_cap = nw;
    }
    memset(m->kbits, 0, nw * sizeof *m->kbits);
    if (check_uncertain(m, pc, node, mask, m->kbits) < 0) return -1;
    if (kn) ushared_put(m->ix, m->ukey, kn, m->kbits, nw);
    return 0;
}

/* Allowed-token count: the POPCNT instruction where the CPU has it (the
 * build does not assume it; libgcc's fallback is a call per word). */
#if defined(__x86_64__)
__attribute__((target("popcnt"))) static int count_bits_popcnt(const uint32_t *m, size_t nw) {
    int c = 0;
    for (size_t w = 0; w < nw; w++) c += __builtin_popcount(m[w]);
    return c;
}
#endif

static int count_bits(const uint32_t *m, size_t nw) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("popcnt")) return count_bits_popcnt(m, nw);
#endif
    int c = 0;
    for (size_t w = 0; w < nw; w++) {
        uint32_t x = m[w];
        x = x - ((x >> 1) & 0x55555555u);
        x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
        c += (int)((((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
    }
    return c;
}

int gram_matcher_fill_mask(gram_matcher_t *m, uint32_t *mask) {
    const gram_index_t *ix = m->ix;
    const gram_vocab_t *v = ix->v;
    size_t nw = v->n_words;
    if (m->terminated) {
        memset(mask, 0, nw * sizeof *mask);
        return 0;
    }
    uint32_t cur = m->cur;
    if (m->e.states[cur].mask) {
        memcpy(mask, m->e.states[cur].mask, nw * sizeof *mask);
    } else {
        memset(mask, 0, nw * sizeof *mask);
        bool checked = false;
        size_t work = 0; /* words OR-ed + ids set */
        for (uint32_t i = 0; i < m->e.states[cur].n; i++) {
            uint32_t id = m->e.lists[m->e.states[cur].off + i];
            if (id < 2) continue;
            const pos_cache_t *pc = ix_get(ix, m->e.nodes[id].pos);
            if (!pc) return -1;
            if (pc->acc_bits) {
                for (size_t w = 0; w < nw; w++) mask[w] |= pc->acc_bits[w];
                work += nw;
            } else {
                for (uint32_t k = 0; k < pc->n_acc; k++)
                    mask[pc->acc_ids[k] >> 5] |= 1u << (pc->acc_ids[k] & 31);
                work += pc->n_acc;
            }
            if (pc->n_unc) {
                if (add_uncertain(m, pc, id, mask) < 0) return -1;
                checked = true;
            }
        }
        if (m->e.states[cur].has_accept)
            for (size_t k = 0; k < v->n_eog; k++)
                mask[v->eog[k] >> 5] |= 1u << (v->eog[k] & 31);
        if (checked || work > 2 * nw) { /* re-checks, or costlier than a copy: keep it */
            if (m->n_cached == MATCHER_MAX_CACHED_MASKS) { /* evict all, simply */
                for (uint32_t k = 0; k < m->n_cached; k++) {
                    free(m->e.states[m->cached[k]].mask);
                    m->e.states[m->cached[k]].mask = NULL;
                }
                m->n_cached = 0;
            }
            uint32_t *c = malloc(nw * sizeof *c);
            if (c) {
                memcpy(c, mask, nw * sizeof *c);
                m->e.states[cur].mask = c;
                m->cached[m->n_cached++] = cur;
            }
        }
    }
    return count_bits(mask, nw);
}

/* ---- test hooks (declared in tests only) ---- */

/* Brute force: is token t accepted from the current state (byte walk)? */
bool gram_matcher_token_ok_slow(gram_matcher_t *m, int32_t t) {
    const gram_vocab_t *v = m->ix->v;
    if (m->terminated || t < 0 || (size_t)t >= v->n_vocab) return false;
    if (v->is_eog[t]) return m->e.states[m->cur].has_accept;
    if (v->len[t] == 0) return false;
    int64_t s = walk_bytes(m, m->cur, (const unsigned char *)v->blob + v->off[t], v->len[t]);
    return s > 0;
}
