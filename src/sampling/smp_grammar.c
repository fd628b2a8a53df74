/*
 * smp_grammar.c — one grammar-constrained sampling step: the matcher's
 * token mask is applied to the logits before anything else (sampling.h,
 * smp_sample_masked), and the chosen token advances the matcher. Kept apart
 * from sampling.c so that code sampling without grammars does not link the
 * grammar part.
 */
#include "grammar/grammar.h"
#include "sampling/sampling.h"

int smp_sample_grammar(smp_t *s, gram_matcher_t *m, float *logits, uint32_t *mask_buf,
                       smp_result_t *out) {
    if ((size_t)smp_n_vocab(s) != gram_matcher_vocab_size(m)) return -1;
    if (gram_matcher_fill_mask(m, mask_buf) <= 0) return -1;
    if (smp_sample_masked(s, logits, mask_buf, out) != 0) return -1;
    if (gram_matcher_accept_token(m, out->id) != 0) return -1; /* cannot happen: id is in the mask */
    return smp_accept(s, out->id);
}
