/*
 * gram_internal.h — shapes shared by the grammar files (not public).
 *
 * A compiled grammar is flat, in the llama.cpp style: rules are lists of
 * alternatives, an alternative is a run of elements ended by GE_END. An
 * element is a terminal (a set of BYTES: code-point classes have already been
 * turned into alternatives of UTF-8 byte-range sequences) or a reference to
 * a rule. A parse position is an index into `elems`.
 *
 * Invariants after gram_finish(): every REF names a defined rule; no rule is
 * left-recursive (directly or through nullable prefixes), so expanding a
 * position into terminals always terminates; element/rule counts are capped
 * (GRAM_MAX_ELEMS, GRAM_MAX_RULES) so hostile input cannot blow memory.
 */
#ifndef SILICA_GRAM_INTERNAL_H
#define SILICA_GRAM_INTERNAL_H

#include "base/base.h"
#include "grammar/grammar.h"

#define GRAM_MAX_ELEMS (1u << 21)
#define GRAM_MAX_RULES 200000u
#define GRAM_MAX_REPEAT 100000u /* largest m / n in {m,n} */

enum { GE_END = 0, GE_TERM = 1, GE_REF = 2 };

typedef struct gram_elem {
    uint32_t type; /* GE_* */
    uint32_t val;  /* GE_TERM: terminal index; GE_REF: rule id */
} gram_elem_t;

typedef struct gram_bset {
    uint32_t w[8];
} gram_bset_t;

static inline bool gram_bset_has(const gram_bset_t *s, unsigned b) {
    return (s->w[b >> 5] >> (b & 31)) & 1u;
}

struct gram {
    gram_elem_t *elems;
    uint32_t n_elems;
    gram_bset_t *terms;
    uint32_t n_terms;
    uint32_t *alt_start; /* elem index of each alternative */
    uint32_t *rule_alt0; /* per rule: first alternative */
    uint32_t *rule_nalt; /* per rule: number of alternatives */
    uint32_t *elem_rule; /* per elem: the rule it belongs to */
    uint32_t n_rules;
    uint32_t root;
    /* Static calling context, used by the index: call_site[r] is the elem
     * index of the only REF to r among reachable rules, or UINT32_MAX when r
     * is referenced from zero or several places (or is root). Tail
     * self-references (r ::= x r | "") are not call sites: they push no
     * frame, so r's context is that of its one outer call. */
    uint32_t *call_site;
    /* chain_level[r] = k > 0 when r is link k of a bounded repetition chain
     * built for X{m,n}: r ::= X r' | "" with chain_level[r'] = k - 1 (link 1
     * is r ::= X | ""). Link k admits at most k more items. The index treats
     * links k > max token length as equivalent (no token can tell them
     * apart). 0 for every other rule. */
    uint32_t *chain_level;
    /* rule_rec[r] = 1 when r is recursive (reaches itself). */
    uint8_t *rule_rec;
};

/* ---- builder (used by the GBNF parser) ---- */

typedef struct gram_alt {
    gram_elem_t *e;
    uint32_t n, cap;
} gram_alt_t;

typedef struct gram_brule {
    char *name; /* NULL for synthesized rules */
    gram_alt_t *alts;
    uint32_t n_alts, cap_alts;
    uint32_t chain_level; /* see gram_t.chain_level */
    bool defined;
} gram_brule_t;

typedef struct gram_builder {
    gram_brule_t *rules;
    uint32_t n_rules, cap_rules;
    gram_bset_t *terms;
    uint32_t n_terms, cap_terms;
    size_t total_elems;
    char *err;
    size_t errlen;
    bool failed;
} gram_builder_t;

/* Code-point range list (inclusive ranges). */
typedef struct gram_cprange {
    uint32_t lo, hi;
} gram_cprange_t;

void gram_builder_init(gram_builder_t *b, char *err, size_t errlen);
void gram_builder_free(gram_builder_t *b);
int64_t gram_builder_rule(gram_builder_t *b, const char *name, size_t nlen); /* find or add */
int64_t gram_builder_new_rule(gram_builder_t *b);                           /* synthesized */
int gram_alt_push(gram_builder_t *b, gram_alt_t *a, uint32_t type, uint32_t val);
gram_alt_t *gram_rule_add_alt(gram_builder_t *b, uint32_t rule);
/* Appends to `a` the elements matching one code point in `r` (negated:
 * any code point NOT in r). ASCII-only sets become one terminal; others a
 * synthesized rule of UTF-8 byte sequences. */
int gram_push_class(gram_builder_t *b, gram_alt_t *a, const gram_cprange_t *r, size_t n, bool negated);
int gram_push_byte(gram_builder_t *b, gram_alt_t *a, unsigned char c);
/* Turns the builder into a flat grammar (checks undefined rules, left
 * recursion; clones small shared rules so contexts are static). Frees b. */
gram_t *gram_finish(gram_builder_t *b, uint32_t root);

/* Vocabulary identity for the index cache (unique per gram_vocab_new). */
uint64_t gram_vocab_serial(const gram_vocab_t *v);
void gram_cache_forget_vocab(uint64_t serial);

/* Appends the UTF-8 encoding of cp (must be <= 0x10FFFF). Returns bytes. */
int gram_utf8_encode(uint32_t cp, char out[4]);

#endif
