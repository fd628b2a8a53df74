/*
 * structured.c — structured output on the server side (structured.h).
 */
#include "server/structured.h"

#include <stdlib.h>
#include <string.h>

gram_vocab_t *srv_gram_vocab_new(const sl_tok_t *tok, int n_vocab, char *err, size_t errlen) {
    return srv_gram_vocab_new_keep(tok, n_vocab, NULL, err, errlen);
}

/* A control token whose text is one of keep: its text, else nothing. */
static int control_kept(const sl_tok_t *tok, int32_t id, const char *const *keep, sl_buf_t *blob) {
    if (!keep || !tok_is_control(tok, id)) return 0;
    const size_t at = blob->len;
    if (tok_token_to_piece(tok, id, true, blob) != 0) return -1;
    for (size_t k = 0; keep[k]; k++)
        if (strlen(keep[k]) == blob->len - at && memcmp(keep[k], blob->data + at, blob->len - at) == 0) return 1;
    blob->len = at;
    return 0;
}

gram_vocab_t *srv_gram_vocab_new_keep(const sl_tok_t *tok, int n_vocab, const char *const *keep, char *err,
                                      size_t errlen) {
    const int nt = tok_n_vocab(tok);
    if (n_vocab <= 0) {
        sl_err(err, errlen, "empty vocabulary");
        return NULL;
    }
    const char **bytes = calloc((size_t)n_vocab, sizeof *bytes);
    size_t *lens = calloc((size_t)n_vocab, sizeof *lens);
    size_t *offs = calloc((size_t)n_vocab, sizeof *offs);
    int32_t *eog = calloc((size_t)n_vocab, sizeof *eog);
    sl_buf_t blob = {0};
    size_t n_eog = 0;
    gram_vocab_t *v = NULL;
    if (!bytes || !lens || !offs || !eog) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }
    for (int id = 0; id < n_vocab; id++) {
        offs[id] = blob.len;
        if (id < nt) {
            const int kept = control_kept(tok, id, keep, &blob);
            if (kept < 0 || (!kept && tok_token_to_piece(tok, id, false, &blob) != 0)) {
                sl_err(err, errlen, "out of memory");
                goto done;
            }
            if (tok_is_eog(tok, id)) eog[n_eog++] = id;
        }
        lens[id] = blob.len - offs[id];
    }
    for (int id = 0; id < n_vocab; id++) bytes[id] = blob.data ? blob.data + offs[id] : "";
    v = gram_vocab_new(bytes, lens, (size_t)n_vocab, eog, n_eog, err, errlen);
done:
    sl_buf_free(&blob);
    free(bytes);
    free(lens);
    free(offs);
    free(eog);
    return v;
}

void srv_request_grammar(const oai_req_t *r, const char *prefix, size_t prefix_len, eng_grammar_t *g) {
    memset(g, 0, sizeof *g);
    if (!r->gram_kind) return;
    g->kind = r->gram_kind;
    g->text = r->gram_text;
    g->len = r->gram_len;
    g->prefix = prefix_len ? prefix : NULL;
    g->prefix_len = prefix ? prefix_len : 0;
}
