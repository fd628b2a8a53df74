/* deps: base gguf kernels model */
/*
 * test_encoder.c — the BERT / XLM-RoBERTa and nomic-bert encoder forward
 * passes (model_embed) against an independent reference written here
 * plainly, in double precision, in the Hugging Face convention (BertModel:
 * post-LayerNorm blocks, exact erf GELU, bidirectional attention;
 * XLMRobertaForSequenceClassification's head: dense + tanh + out_proj on
 * the first token; NomicBertModel with rotary_emb_interleaved=False: no
 * position table but RoPE rotating halves on Q and K, one fused Wqkv, no
 * biases, the gated FFN fc2(fc11 x · silu(fc12 x)), post-LayerNorm too).
 *
 * Each case builds a tiny random model, writes it with the GGUF writer in
 * the layout llama.cpp's converter produces for "bert" or "nomic-bert" (ne
 * = [n_in, n_out]), loads it with model_load and compares model_embed's
 * pooled vectors — many sequences of different lengths in one call, and
 * each sequence alone — with the reference. The reference uses the weights
 * as stored (quantized then dequantized), so only activation rounding
 * separates the two. Mutation checks show the comparison would notice a
 * causal mask or the tanh GELU (bert), and RoPE left out, RoPE on adjacent
 * pairs or an ungated GELU FFN (nomic-bert).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "base/pool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test.h"
#include "test_ref.h"

/* ------------------------------------------------------------ random */

static int32_t rnd_int(int n) { return (int32_t)(rnd_uniform() * n); }

/* ------------------------------------------------------------ the model */

typedef struct {
    int V, E, L, H, F; /* vocab, embedding, layers, heads (head_dim E/H), FFN hidden */
    int T;             /* token types: rows of token_types.weight (0: no such tensor) */
    int C;             /* context: rows of position_embd.weight */
    sl_pooling_t pooling;
    bool no_pool_key;  /* leave bert.pooling_type out (the default is CLS) */
    int n_cls;         /* RANK: classifier outputs */
    bool labels;       /* write bert.classifier.output_labels (n_cls strings) */
    double eps;
    sl_type_t wtype;   /* the 2-D weight matrices, token_embd included */
    bool gelu_probe;   /* FFN pre-activations near -3, a strong down projection */
    /* nomic-bert: no position_embd (RoPE on Q and K instead), attn_qkv
     * fused, ffn_gate, no biases but the LayerNorms' */
    bool nomic;
    double rope_base; /* nomic: rope.freq_base */
    bool rot_key;     /* nomic: write rope.dimension_count (= head_dim; absent means the same) */
} bspec_t;

typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo; /* [E][E] (HF order [n_out][n_in]), [E] */
    float *anw, *anb;                             /* attention output LayerNorm [E] */
    float *wu, *bu, *wd, *bd;                     /* [F][E], [F], [E][F], [E] */
    float *wg;                                    /* nomic: the gate [F][E] */
    float *onw, *onb;                             /* layer output LayerNorm [E] */
} blayer_t;

typedef struct {
    bspec_t s;
    float *tok, *typ, *pos;     /* [V][E], [T][E], [C][E] (nomic: no pos) */
    float *enw, *enb;           /* embedding LayerNorm [E] */
    blayer_t *l;                /* [L] (nomic: the biases NULL) */
    float *wc, *bc, *wco, *bco; /* RANK: [E][E], [E], [n_cls][E], [n_cls] */
    float **owned;              /* every array above, for bm_free */
    int n_owned;
} bmodel_t;

static int embed_dim(const bspec_t *s) { return s->pooling == SL_POOLING_RANK ? s->n_cls : s->E; }

static float *bm_vec(bmodel_t *m, size_t n, float center, float a) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = center + rnd_sym(a);
    m->owned[m->n_owned++] = v;
    return v;
}


/* An n_out × n_in matrix, entries ±gain·1.7/sqrt(n_in), as stored */
static float *bm_mat(bmodel_t *m, int n_out, int n_in, float gain) {
    float *w = bm_vec(m, (size_t)n_out * n_in, 0.0f, gain * 1.7f / sqrtf((float)n_in));
    round_rows(w, n_out, n_in, m->s.wtype);
    return w;
}

static void bm_init(bmodel_t *m, const bspec_t *s, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->s = *s;
    rng_state = seed * 2654435761u + 12345;
    const int E = s->E, F = s->F;
    m->owned = calloc((size_t)(16 + 17 * s->L), sizeof(float *));
    m->tok = bm_vec(m, (size_t)s->V * E, 0.0f, 1.0f);
    round_rows(m->tok, s->V, E, s->wtype);
    if (s->T) m->typ = bm_vec(m, (size_t)s->T * E, 0.0f, 0.5f);
    if (!s->nomic) m->pos = bm_vec(m, (size_t)s->C * E, 0.0f, 0.5f);
    m->enw = bm_vec(m, E, 1.0f, 0.2f);
    m->enb = bm_vec(m, E, 0.0f, 0.2f);
    m->l = calloc((size_t)s->L, sizeof *m->l);
    if (s->nomic) {
        for (int l = 0; l < s->L; l++) {
            blayer_t *L = &m->l[l];
            L->wq = bm_mat(m, E, E, 1), L->wk = bm_mat(m, E, E, 1), L->wv = bm_mat(m, E, E, 1);
            L->wo = bm_mat(m, E, E, 1);
            L->anw = bm_vec(m, E, 1.0f, 0.2f), L->anb = bm_vec(m, E, 0.0f, 0.2f);
            L->wu = bm_mat(m, F, E, 1), L->wg = bm_mat(m, F, E, 1), L->wd = bm_mat(m, E, F, 1);
            L->onw = bm_vec(m, E, 1.0f, 0.2f), L->onb = bm_vec(m, E, 0.0f, 0.2f);
        }
        return;
    }
    for (int l = 0; l < s->L; l++) {
        blayer_t *L = &m->l[l];
        L->wq = bm_mat(m, E, E, 1), L->bq = bm_vec(m, E, 0.0f, 0.3f);
        L->wk = bm_mat(m, E, E, 1), L->bk = bm_vec(m, E, 0.0f, 0.3f);
        L->wv = bm_mat(m, E, E, 1), L->bv = bm_vec(m, E, 0.0f, 0.3f);
        L->wo = bm_mat(m, E, E, 1), L->bo = bm_vec(m, E, 0.0f, 0.3f);
        L->anw = bm_vec(m, E, 1.0f, 0.2f), L->anb = bm_vec(m, E, 0.0f, 0.2f);
        /* the probe: pre-activations of about -3 ± 0.6, where the tanh
         * GELU is off by up to 5% of the value, and a down projection
         * strong enough that the FFN branch carries the residual sum */
        L->wu = bm_mat(m, F, E, s->gelu_probe ? 0.15f : 1.0f);
        L->bu = s->gelu_probe ? bm_vec(m, F, -3.0f, 0.3f) : bm_vec(m, F, 0.0f, 0.3f);
        L->wd = bm_mat(m, E, F, s->gelu_probe ? 100.0f : 1.0f);
        L->bd = bm_vec(m, E, 0.0f, 0.3f);
        L->onw = bm_vec(m, E, 1.0f, 0.2f), L->onb = bm_vec(m, E, 0.0f, 0.2f);
    }
    if (s->pooling == SL_POOLING_RANK) {
        m->wc = bm_mat(m, E, E, 1), m->bc = bm_vec(m, E, 0.0f, 0.3f);
        m->wco = bm_mat(m, s->n_cls, E, 1), m->bco = bm_vec(m, s->n_cls, 0.0f, 0.3f);
    }
}

static void bm_free(bmodel_t *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->l);
}

/* ------------------------------------------------------------ writing */

static void add_mat(gguf_writer_t *w, const char *name, const float *data, int n_out, int n_in, sl_type_t t) {
    add_mats(w, name, data, n_out, n_in, 1, t);
}

static void add_vec(gguf_writer_t *w, const char *name, const float *data, int n) {
    int64_t ne[1] = {n};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, 1, ne, data) == 0);
}

static const char *arch_of(const bspec_t *s) { return s->nomic ? "nomic-bert" : "bert"; }

static void set_u32(gguf_writer_t *w, const bspec_t *s, const char *k, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch_of(s), k);
    CHECK(gguf_writer_set_u32(w, key, v) == 0);
}

static void set_f32(gguf_writer_t *w, const bspec_t *s, const char *k, double v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch_of(s), k);
    CHECK(gguf_writer_set_f32(w, key, (float)v) == 0);
}

/* Rows [3E][E]: all of Q, then K, then V (nomic-bert's attn_qkv); the
 * caller frees it. */
static float *qkv_rows(const blayer_t *L, int E) {
    const size_t n = (size_t)E * E;
    float *w = malloc(3 * n * sizeof(float));
    memcpy(w, L->wq, n * sizeof(float));
    memcpy(w + n, L->wk, n * sizeof(float));
    memcpy(w + 2 * n, L->wv, n * sizeof(float));
    return w;
}

/* skip: a tensor to leave out; bad: one to write with one row (matrix) or
 * element (vector) too few. */
static int write_encoder(const bmodel_t *m, const char *path, const char *skip, const char *bad) {
    const bspec_t *s = &m->s;
    const int E = s->E, F = s->F;
    gguf_writer_t *w = gguf_writer_new();
    char key[128];
    CHECK(gguf_writer_set_str(w, "general.architecture", arch_of(s)) == 0);
    CHECK(gguf_writer_set_str(w, "general.name", "test") == 0);
    set_u32(w, s, "context_length", (uint32_t)s->C);
    set_u32(w, s, "embedding_length", (uint32_t)E);
    set_u32(w, s, "feed_forward_length", (uint32_t)F);
    set_u32(w, s, "block_count", (uint32_t)s->L);
    set_u32(w, s, "attention.head_count", (uint32_t)s->H);
    set_f32(w, s, "attention.layer_norm_epsilon", s->eps);
    snprintf(key, sizeof key, "%s.attention.causal", arch_of(s));
    CHECK(gguf_writer_set_bool(w, key, false) == 0);
    if (!s->no_pool_key) set_u32(w, s, "pooling_type", (uint32_t)s->pooling);
    if (s->nomic) {
        set_f32(w, s, "rope.freq_base", s->rope_base);
        if (s->rot_key) set_u32(w, s, "rope.dimension_count", (uint32_t)(E / s->H));
        CHECK(gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)s->T) == 0);
    }
    if (s->labels) {
        const char *names[] = {"LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4"};
        CHECK(s->n_cls <= (int)SL_ARRAY_LEN(names));
        CHECK(gguf_writer_set_arr_str(w, "bert.classifier.output_labels", names, NULL, (size_t)s->n_cls) == 0);
    }
    char n[96];
#define WANT(nm) (!skip || strcmp(skip, nm))
#define SHORT(nm) (bad && !strcmp(bad, nm) ? 1 : 0)
#define ADD_MAT(nm, data, no, ni, t)                                                                       \
    do {                                                                                                   \
        if (WANT(nm)) add_mat(w, nm, data, (no) - SHORT(nm), ni, t);                                       \
    } while (0)
#define ADD_VEC(nm, data, len)                                                                             \
    do {                                                                                                   \
        if (WANT(nm)) add_vec(w, nm, data, (len) - SHORT(nm));                                             \
    } while (0)
    ADD_MAT("token_embd.weight", m->tok, s->V, E, s->wtype);
    if (s->T) ADD_MAT("token_types.weight", m->typ, s->T, E, SL_TYPE_F32);
    if (m->pos) ADD_MAT("position_embd.weight", m->pos, s->C, E, SL_TYPE_F32);
    ADD_VEC("token_embd_norm.weight", m->enw, E);
    ADD_VEC("token_embd_norm.bias", m->enb, E);
    for (int l = 0; s->nomic && l < s->L; l++) {
        const blayer_t *L = &m->l[l];
#define NM(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        float *qkv = qkv_rows(L, E);
        ADD_MAT(NM("attn_qkv.weight"), qkv, 3 * E, E, s->wtype);
        free(qkv);
        ADD_MAT(NM("attn_output.weight"), L->wo, E, E, s->wtype);
        ADD_VEC(NM("attn_output_norm.weight"), L->anw, E);
        ADD_VEC(NM("attn_output_norm.bias"), L->anb, E);
        ADD_MAT(NM("ffn_up.weight"), L->wu, F, E, s->wtype);
        ADD_MAT(NM("ffn_gate.weight"), L->wg, F, E, s->wtype);
        ADD_MAT(NM("ffn_down.weight"), L->wd, E, F, s->wtype);
        ADD_VEC(NM("layer_output_norm.weight"), L->onw, E);
        ADD_VEC(NM("layer_output_norm.bias"), L->onb, E);
#undef NM
    }
    for (int l = 0; !s->nomic && l < s->L; l++) {
        const blayer_t *L = &m->l[l];
#define NM(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        ADD_MAT(NM("attn_q.weight"), L->wq, E, E, s->wtype);
        ADD_VEC(NM("attn_q.bias"), L->bq, E);
        ADD_MAT(NM("attn_k.weight"), L->wk, E, E, s->wtype);
        ADD_VEC(NM("attn_k.bias"), L->bk, E);
        ADD_MAT(NM("attn_v.weight"), L->wv, E, E, s->wtype);
        ADD_VEC(NM("attn_v.bias"), L->bv, E);
        ADD_MAT(NM("attn_output.weight"), L->wo, E, E, s->wtype);
        ADD_VEC(NM("attn_output.bias"), L->bo, E);
        ADD_VEC(NM("attn_output_norm.weight"), L->anw, E);
        ADD_VEC(NM("attn_output_norm.bias"), L->anb, E);
        ADD_MAT(NM("ffn_up.weight"), L->wu, F, E, s->wtype);
        ADD_VEC(NM("ffn_up.bias"), L->bu, F);
        ADD_MAT(NM("ffn_down.weight"), L->wd, E, F, s->wtype);
        ADD_VEC(NM("ffn_down.bias"), L->bd, E);
        ADD_VEC(NM("layer_output_norm.weight"), L->onw, E);
        ADD_VEC(NM("layer_output_norm.bias"), L->onb, E);
#undef NM
    }
    if (m->wc) {
        ADD_MAT("cls.weight", m->wc, E, E, s->wtype);
        ADD_VEC("cls.bias", m->bc, E);
        ADD_MAT("cls.output.weight", m->wco, s->n_cls, E, s->wtype);
        ADD_VEC("cls.output.bias", m->bco, s->n_cls);
    }
#undef ADD_MAT
#undef ADD_VEC
#undef SHORT
#undef WANT
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    if (rc) fprintf(stderr, "write: %s\n", err);
    gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ reference */

/* REF_HF is right; the others are mutations: a causal mask, the tanh GELU
 * (bert); no RoPE, RoPE on adjacent pairs (2i, 2i+1), the FFN
 * down(gelu(up x)) without its gate (nomic-bert). */
typedef enum { REF_HF, REF_CAUSAL, REF_TANH_GELU, REF_NO_ROPE, REF_ROPE_PAIRS, REF_UNGATED_GELU } ref_variant_t;

/* y[n_out] = W[n_out][n_in] x + b (b NULL: none) */
static void ref_linear(double *y, const float *w, const float *b, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < n_in; i++) s += (double)w[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

/* In place: (x - mean) / sqrt(biased variance + eps) · w + b */
static void ref_layernorm(double *x, const float *w, const float *b, int n, double eps) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    for (int i = 0; i < n; i++) x[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i];
}

static double ref_gelu(double x, ref_variant_t var) {
    if (var == REF_TANH_GELU) return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

/* In place: nomic-bert's rotary embedding of one head x[D] at position pos
 * (HF's apply_rotary_emb, not interleaved: dims i and i + D/2 turn by
 * pos · base^(-2i/D)); REF_ROPE_PAIRS turns dims 2i and 2i+1 instead. */
static void ref_rope(double *x, int D, int pos, double base, ref_variant_t var) {
    for (int i = 0; i < D / 2; i++) {
        const double th = pos * pow(base, -2.0 * i / D), c = cos(th), sn = sin(th);
        const int a = var == REF_ROPE_PAIRS ? 2 * i : i, b = var == REF_ROPE_PAIRS ? 2 * i + 1 : i + D / 2;
        const double x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * sn;
        x[b] = x0 * sn + x1 * c;
    }
}

/* One sequence of n tokens (types NULL: all 0) to embed_dim values. */
static void ref_embed(const bmodel_t *m, const int32_t *tok, const int32_t *typ, int n, ref_variant_t var,
                      double *out) {
    const bspec_t *s = &m->s;
    const int E = s->E, H = s->H, D = E / H, F = s->F;
    double *x = calloc((size_t)n * E, sizeof(double));   /* [n][E] hidden states */
    double *q = calloc((size_t)n * E, sizeof(double));   /* [n][E] */
    double *k = calloc((size_t)n * E, sizeof(double));   /* [n][E] */
    double *v = calloc((size_t)n * E, sizeof(double));   /* [n][E] */
    double *att = calloc(E, sizeof(double)), *o = calloc(E, sizeof(double));
    double *u = calloc(F, sizeof(double)), *g = calloc(F, sizeof(double)), *p = calloc(n, sizeof(double));
    for (int t = 0; t < n; t++) {
        double *xt = x + (size_t)t * E;
        const int ty = typ ? typ[t] : 0;
        for (int i = 0; i < E; i++)
            xt[i] = (double)m->tok[(size_t)tok[t] * E + i] + (m->typ ? m->typ[(size_t)ty * E + i] : 0.0) +
                    (m->pos ? m->pos[(size_t)t * E + i] : 0.0);
        ref_layernorm(xt, m->enw, m->enb, E, s->eps);
    }
    for (int l = 0; l < s->L; l++) {
        const blayer_t *L = &m->l[l];
        for (int t = 0; t < n; t++) {
            ref_linear(q + (size_t)t * E, L->wq, L->bq, x + (size_t)t * E, E, E);
            ref_linear(k + (size_t)t * E, L->wk, L->bk, x + (size_t)t * E, E, E);
            ref_linear(v + (size_t)t * E, L->wv, L->bv, x + (size_t)t * E, E, E);
            for (int h = 0; s->nomic && var != REF_NO_ROPE && h < H; h++) { /* pos: t, from 0 */
                ref_rope(q + (size_t)t * E + h * D, D, t, s->rope_base, var);
                ref_rope(k + (size_t)t * E + h * D, D, t, s->rope_base, var);
            }
        }
        for (int t = 0; t < n; t++) {
            const int last = var == REF_CAUSAL ? t : n - 1; /* bidirectional: every token sees all n */
            for (int h = 0; h < H; h++) {
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= last; j++) {
                    double d = 0;
                    for (int i = 0; i < D; i++) d += q[(size_t)t * E + h * D + i] * k[(size_t)j * E + h * D + i];
                    p[j] = d / sqrt((double)D);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= last; j++) sum += (p[j] = exp(p[j] - mx));
                for (int i = 0; i < D; i++) {
                    double a = 0;
                    for (int j = 0; j <= last; j++) a += p[j] / sum * v[(size_t)j * E + h * D + i];
                    att[h * D + i] = a;
                }
            }
            double *xt = x + (size_t)t * E; /* q, k, v of every token are computed: x may change */
            ref_linear(o, L->wo, L->bo, att, E, E);
            for (int i = 0; i < E; i++) xt[i] += o[i];
            ref_layernorm(xt, L->anw, L->anb, E, s->eps);
        }
        for (int t = 0; t < n; t++) {
            double *xt = x + (size_t)t * E;
            ref_linear(u, L->wu, L->bu, xt, F, E);
            if (s->nomic && var != REF_UNGATED_GELU) { /* up · silu(gate) */
                ref_linear(g, L->wg, NULL, xt, F, E);
                for (int i = 0; i < F; i++) u[i] *= g[i] / (1.0 + exp(-g[i]));
            } else {
                for (int i = 0; i < F; i++) u[i] = ref_gelu(u[i], var);
            }
            ref_linear(o, L->wd, L->bd, u, E, F);
            for (int i = 0; i < E; i++) xt[i] += o[i];
            ref_layernorm(xt, L->onw, L->onb, E, s->eps);
        }
    }
    switch (s->pooling) {
    case SL_POOLING_MEAN:
        for (int i = 0; i < E; i++) {
            double a = 0;
            for (int t = 0; t < n; t++) a += x[(size_t)t * E + i];
            out[i] = a / n;
        }
        break;
    case SL_POOLING_LAST: memcpy(out, x + (size_t)(n - 1) * E, sizeof(double) * (size_t)E); break;
    case SL_POOLING_RANK: /* c = tanh(Wcls h_0 + bcls); out = Wout c + bout */
        ref_linear(o, m->wc, m->bc, x, E, E);
        for (int i = 0; i < E; i++) o[i] = tanh(o[i]);
        ref_linear(out, m->wco, m->bco, o, s->n_cls, E);
        break;
    default: memcpy(out, x, sizeof(double) * (size_t)E); break; /* CLS: the first token */
    }
    free(x), free(q), free(k), free(v), free(att), free(o), free(u), free(g), free(p);
}

/* ------------------------------------------------------------ cases */

static char tmp_path[256];
static const char *model_path(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/silica-test-encoder-%d.gguf", (int)getpid());
    return tmp_path;
}


static sl_model_t *write_and_load(const bmodel_t *rm) {
    char err[SL_ERR_MAX] = "";
    CHECK(write_encoder(rm, model_path(), NULL, NULL) == 0);
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    CHECK_MSG(m != NULL, "load: %s", err);
    unlink(model_path());
    return m;
}

/* A batch of sequences with random tokens, and random types when the model
 * has two or more (with one, types NULL: XLM-R) */
enum { MAX_SEQS = 8 };
typedef struct {
    sl_embed_seq_t seq[MAX_SEQS];
    int n;
    int32_t *tok, *typ;
} batch_t;

static void batch_make(batch_t *b, const bspec_t *s, const int *lens, int n) {
    int total = 0;
    for (int i = 0; i < n; i++) total += lens[i];
    b->n = n;
    b->tok = malloc(sizeof(int32_t) * (size_t)total);
    b->typ = malloc(sizeof(int32_t) * (size_t)total);
    for (int i = 0, off = 0; i < n; off += lens[i++]) {
        for (int t = 0; t < lens[i]; t++) {
            b->tok[off + t] = rnd_int(s->V);
            b->typ[off + t] = s->T >= 2 ? rnd_int(s->T) : 0;
        }
        b->seq[i] = (sl_embed_seq_t){
            .tokens = b->tok + off, .types = s->T >= 2 ? b->typ + off : NULL, .n_tok = lens[i]};
    }
}

static void batch_free(batch_t *b) { free(b->tok), free(b->typ); }

/* want: n × embed_dim */
static void ref_batch(const bmodel_t *rm, const batch_t *b, ref_variant_t var, double *want) {
    for (int i = 0; i < b->n; i++)
        ref_embed(rm, b->seq[i].tokens, b->seq[i].types, b->seq[i].n_tok, var, want + (size_t)i * embed_dim(&rm->s));
}

static const int LENS[] = {1, 3, 17, 40, 64}; /* the last: the whole context of 64 */

/* Builds s, checks what the loaded model says of itself, and compares
 * model_embed over LENS (one call, 1 and 2 threads; each sequence alone)
 * with the reference. */
static void run_case(const char *label, const bspec_t *s, double tol) {
    bmodel_t rm;
    bm_init(&rm, s, (uint64_t)strlen(label) * 7919 + (uint64_t)s->E + (uint64_t)s->wtype);
    sl_model_t *m = write_and_load(&rm);
    if (!m) {
        bm_free(&rm);
        return;
    }
    const sl_hparams_t *hp = model_hparams(m);
    const int dim = embed_dim(s), n = (int)SL_ARRAY_LEN(LENS);
    CHECK_MSG(!strcmp(hp->arch_name, arch_of(s)) && hp->encoder, "%s: arch %s", label, hp->arch_name);
    if (s->nomic) {
        const sl_rope_t *r = &hp->rope;
        CHECK_MSG(r->style == SL_ROPE_NEOX && r->n_rot == s->E / s->H && r->freq_base == (float)s->rope_base,
                  "%s: rope style %d, n_rot %d, base %g", label, (int)r->style, r->n_rot, (double)r->freq_base);
    }
    CHECK_MSG(hp->pooling == (s->no_pool_key ? SL_POOLING_CLS : s->pooling), "%s: pooling %d", label, hp->pooling);
    CHECK(hp->n_embd == s->E && hp->n_layer == s->L && hp->n_head == s->H && hp->head_dim == s->E / s->H);
    CHECK(hp->n_ff == s->F && hp->n_vocab == s->V && hp->n_token_types == s->T);
    if (s->pooling == SL_POOLING_RANK) CHECK_MSG(hp->n_cls_out == s->n_cls, "%s: n_cls_out %d", label, hp->n_cls_out);
    CHECK_MSG(model_embed_dim(m) == dim, "%s: dim %d", label, model_embed_dim(m));
    CHECK_MSG(model_embed_max_tokens(m) == s->C, "%s: max tokens %d", label, model_embed_max_tokens(m));

    batch_t b;
    batch_make(&b, s, LENS, n);
    double *want = malloc(sizeof(double) * (size_t)n * dim);
    float *got = malloc(sizeof(float) * (size_t)n * dim), *one = malloc(sizeof(float) * (size_t)dim);
    double *gotd = malloc(sizeof(double) * (size_t)dim);
    ref_batch(&rm, &b, REF_HF, want);
    char err[SL_ERR_MAX] = "";
    double worst = 0;
    for (int threads = 1; threads <= 2; threads++) {
        sl_pool_t *pool = threads > 1 ? sl_pool_new(threads) : NULL;
        memset(got, 0xff, sizeof(float) * (size_t)n * dim); /* NaN: every value must be written */
        CHECK_MSG(model_embed(m, pool, b.seq, n, got, err, sizeof err) == 0, "%s: %s", label, err);
        const double e = test_rel_err(got, want, (size_t)n * dim);
        CHECK_MSG(e <= tol, "%s (%d threads): rel err %.3g > %.3g", label, threads, e, tol);
        worst = fmax(worst, e);
        for (int i = 0; i < n; i++) { /* alone: the same vector as in the batch */
            CHECK_MSG(model_embed(m, pool, &b.seq[i], 1, one, err, sizeof err) == 0, "%s: %s", label, err);
            for (int j = 0; j < dim; j++) gotd[j] = got[(size_t)i * dim + j];
            const double d = test_rel_err(one, gotd, (size_t)dim);
            CHECK_MSG(d <= 1e-5, "%s: sequence %d (%d tokens) alone differs from the batch by %.3g", label, i,
                      LENS[i], d);
        }
        sl_pool_free(pool);
    }
    fprintf(stderr, "     %-32s max rel err %.2e\n", label, worst);
    free(want), free(got), free(one), free(gotd);
    batch_free(&b);
    model_free(m);
    bm_free(&rm);
}

static bspec_t base_spec(sl_pooling_t pooling) {
    return (bspec_t){.V = 200, .E = 64, .L = 2, .H = 4, .F = 128, .T = 2, .C = 64, .pooling = pooling, .n_cls = 1,
                     .eps = 1e-12, .wtype = SL_TYPE_F32};
}

/* BGE-style: the [CLS] state; five lengths up to the whole context in one
 * call with random segment ids */
static void test_cls(void) {
    bspec_t s = base_spec(SL_POOLING_CLS);
    run_case("cls f32", &s, 1e-4);
    s.no_pool_key = true; /* no bert.pooling_type: CLS */
    run_case("cls f32 (default pooling)", &s, 1e-4);
}

/* MEAN and LAST; head_dim 16 with 3 heads (E 48, no token-type table) and
 * head_dim 40 (not a multiple of 32) */
static void test_mean_last_odd_dims(void) {
    bspec_t s = base_spec(SL_POOLING_MEAN);
    run_case("mean f32", &s, 1e-4);
    s.pooling = SL_POOLING_LAST;
    run_case("last f32", &s, 1e-4);
    s = base_spec(SL_POOLING_MEAN);
    s.E = 48, s.H = 3, s.F = 96, s.T = 0;
    run_case("mean f32 E48 H3 no types", &s, 1e-4);
    s = base_spec(SL_POOLING_CLS);
    s.E = 120, s.H = 3, s.F = 200, s.L = 1, s.eps = 1e-5;
    run_case("cls f32 E120 H3 (head 40)", &s, 1e-4);
}

/* A cross-encoder (XLM-R style: one token type, types NULL): one relevance
 * logit without output_labels, three with */
static void test_rank(void) {
    bspec_t s = base_spec(SL_POOLING_RANK);
    s.T = 1, s.eps = 1e-5;
    run_case("rank f32 1 out", &s, 1e-4);
    s.n_cls = 3, s.labels = true;
    run_case("rank f32 3 labels", &s, 1e-4);
}

/* Weight matrices stored F16 and Q8_0 (the classifier's too). F16 rows
 * are exact in F32 and multiply F32 activations (its vec_dot_type), so
 * its bound is close to F32's; Q8_0 rounds activations to 8 bits (the
 * bound test_model uses). */
static void test_f16_q8(void) {
    bspec_t s = base_spec(SL_POOLING_CLS);
    s.wtype = SL_TYPE_F16;
    run_case("cls f16", &s, 1e-3);
    s.wtype = SL_TYPE_Q8_0;
    run_case("cls q8_0", &s, 4e-2);
    s = base_spec(SL_POOLING_RANK);
    s.n_cls = 2, s.labels = true, s.wtype = SL_TYPE_Q8_0;
    run_case("rank q8_0 2 labels", &s, 4e-2);
}

/* The comparison can fail: the implementation's output is far (> 10× the
 * tolerance) from a causal reference and, on a model whose FFN works where
 * the two differ, from a tanh-GELU reference — while near the right one. */
static void test_mutations(void) {
    const double tol = 1e-4;
    for (int probe = 0; probe < 2; probe++) {
        bspec_t s = base_spec(SL_POOLING_CLS);
        if (probe) s.L = 1, s.gelu_probe = true;
        bmodel_t rm;
        bm_init(&rm, &s, 77 + (uint64_t)probe);
        sl_model_t *m = write_and_load(&rm);
        if (!m) {
            bm_free(&rm);
            continue;
        }
        const int lens[] = {5, 17, 33}, n = 3, dim = s.E;
        batch_t b;
        batch_make(&b, &s, lens, n);
        double *want = malloc(sizeof(double) * (size_t)n * dim), *mut = malloc(sizeof(double) * (size_t)n * dim);
        float *got = malloc(sizeof(float) * (size_t)n * dim);
        char err[SL_ERR_MAX] = "";
        CHECK_MSG(model_embed(m, NULL, b.seq, n, got, err, sizeof err) == 0, "%s", err);
        ref_batch(&rm, &b, REF_HF, want);
        ref_batch(&rm, &b, probe ? REF_TANH_GELU : REF_CAUSAL, mut);
        const double e = test_rel_err(got, want, (size_t)n * dim), em = test_rel_err(got, mut, (size_t)n * dim);
        const char *what = probe ? "tanh GELU" : "causal";
        CHECK_MSG(e <= tol, "%s probe: rel err %.3g", what, e);
        CHECK_MSG(em > 10 * tol, "against a %s reference: rel err only %.3g", what, em);
        fprintf(stderr, "     %-32s rel err %.2e, against a %s reference %.2e\n", probe ? "gelu probe" : "cls f32", e,
                what, em);
        free(want), free(mut), free(got);
        batch_free(&b);
        model_free(m);
        bm_free(&rm);
    }
}

/* nomic-bert (nomic-embed-text v1/v1.5: mean pooling, rope base 1000,
 * eps 1e-12) at head_dim 16 over LENS with random segment ids; head_dim 32
 * with CLS pooling, base 10000 and rope.dimension_count written; Q8_0
 * weights (test_f16_q8's bound). */
static bspec_t nomic_spec(sl_pooling_t pooling) {
    return (bspec_t){.V = 150, .E = 64, .L = 2, .H = 4, .F = 96, .T = 2, .C = 64, .pooling = pooling, .n_cls = 1,
                     .eps = 1e-12, .wtype = SL_TYPE_F32, .nomic = true, .rope_base = 1000.0};
}

static void test_nomic(void) {
    bspec_t s = nomic_spec(SL_POOLING_MEAN);
    run_case("nomic mean f32", &s, 1e-4);
    s = nomic_spec(SL_POOLING_CLS);
    s.E = 96, s.H = 3, s.rope_base = 10000.0, s.rot_key = true;
    run_case("nomic cls f32 E96 H3 (head 32)", &s, 1e-4);
    s = nomic_spec(SL_POOLING_MEAN);
    s.wtype = SL_TYPE_Q8_0;
    run_case("nomic mean q8_0", &s, 4e-2);
}

/* The nomic-bert comparison can fail: the output is near the right
 * reference and far (> 10× the tolerance) from one without RoPE, one
 * turning adjacent pairs (the NORM style), and one whose FFN is
 * down(gelu(up x)) without the gate. The references' own distances are
 * printed first, so the margins show even while the model fails to load. */
static void test_nomic_mutations(void) {
    const double tol = 1e-4;
    const ref_variant_t muts[] = {REF_NO_ROPE, REF_ROPE_PAIRS, REF_UNGATED_GELU};
    const char *names[] = {"no RoPE", "adjacent-pair RoPE", "ungated GELU FFN"};
    bspec_t s = nomic_spec(SL_POOLING_MEAN);
    bmodel_t rm;
    bm_init(&rm, &s, 91);
    const int lens[] = {5, 17, 33}, n = 3, dim = s.E;
    batch_t b;
    batch_make(&b, &s, lens, n);
    double *want = malloc(sizeof(double) * (size_t)n * dim), *mut = malloc(sizeof(double) * (size_t)n * dim);
    float *got = malloc(sizeof(float) * (size_t)n * dim), *wantf = malloc(sizeof(float) * (size_t)n * dim);
    ref_batch(&rm, &b, REF_HF, want);
    for (int i = 0; i < n * dim; i++) wantf[i] = (float)want[i];
    sl_model_t *m = write_and_load(&rm);
    char err[SL_ERR_MAX] = "";
    if (m) {
        CHECK_MSG(model_embed(m, NULL, b.seq, n, got, err, sizeof err) == 0, "%s", err);
        const double e = test_rel_err(got, want, (size_t)n * dim);
        CHECK_MSG(e <= tol, "nomic mutation model: rel err %.3g", e);
    }
    for (size_t k = 0; k < SL_ARRAY_LEN(muts); k++) {
        ref_batch(&rm, &b, muts[k], mut);
        const double er = test_rel_err(wantf, mut, (size_t)n * dim);
        const double em = m ? test_rel_err(got, mut, (size_t)n * dim) : er;
        CHECK_MSG(er > 10 * tol, "the %s reference is only %.3g from the right one", names[k], er);
        CHECK_MSG(em > 10 * tol, "against a %s reference: rel err only %.3g", names[k], em);
        fprintf(stderr, "     nomic: against the %-20s reference %.2e (the references' distance %.2e)\n", names[k],
                em, er);
    }
    free(want), free(mut), free(got), free(wantf);
    batch_free(&b);
    model_free(m);
    bm_free(&rm);
}

/* model_embed's -1 for one bad sequence (alone and next to a good one) */
static void expect_embed_error(sl_model_t *m, const int32_t *tok, const int32_t *typ, int n, const char *what) {
    char err[SL_ERR_MAX];
    float out[2 * 64];
    const int32_t good[2] = {1, 2};
    sl_embed_seq_t seqs[2] = {{.tokens = good, .types = NULL, .n_tok = 2}, {.tokens = tok, .types = typ, .n_tok = n}};
    for (int k = 0; k < 2; k++) {
        err[0] = '\0';
        CHECK_MSG(model_embed(m, NULL, seqs + 1 - k, 1 + k, out, err, sizeof err) == -1, "%s accepted", what);
        CHECK_MSG(err[0] != '\0', "%s: no message", what);
    }
}

/* A minimal llama (one layer, every weight near 1) for the not-an-encoder
 * error; with a pooling_type it is a decoder embedding model (the
 * Qwen3-Embedding kind). */
enum { LL_V = 32, LL_E = 32, LL_F = 64, LL_YES = 5, LL_NO = 7 };
static float ll_data[LL_F * LL_E]; /* each tensor: the first n_out × n_in of these */

static int write_llama(const char *path, uint32_t pooling) {
    enum { V = LL_V, E = LL_E, F = LL_F };
    float *data = ll_data;
    /* the embedding model's weights centred on 0, so positions differ */
    for (int i = 0; i < F * E; i++) data[i] = pooling ? rnd_sym(1.0f) : 1.0f + rnd_sym(0.1f);
    gguf_writer_t *w = gguf_writer_new();
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == 0);
    const char *keys[] = {"context_length", "embedding_length", "block_count", "feed_forward_length",
                          "attention.head_count", "attention.head_count_kv", "rope.dimension_count"};
    const uint32_t vals[] = {64, E, 1, F, 2, 2, 16};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        char key[96];
        snprintf(key, sizeof key, "llama.%s", keys[i]);
        CHECK(gguf_writer_set_u32(w, key, vals[i]) == 0);
    }
    CHECK(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f) == 0);
    if (pooling) CHECK(gguf_writer_set_u32(w, "llama.pooling_type", pooling) == 0);
    if (pooling == SL_POOLING_RANK) { /* Qwen3-Reranker's layout: the "yes" / "no" rows of the output matrix */
        const char *labels[] = {"yes", "no"};
        CHECK(gguf_writer_set_arr_str(w, "llama.classifier.output_labels", labels, NULL, 2) == 0);
        static float cls[2 * LL_E];
        memcpy(cls, data + LL_YES * E, E * sizeof(float));
        memcpy(cls + E, data + LL_NO * E, E * sizeof(float));
        add_mat(w, "cls.output.weight", cls, 2, E, SL_TYPE_F32);
    }
    const struct { const char *name; int n_out, n_in; } t[] = { /* n_in 0: a vector */
        {"token_embd.weight", V, E}, {"output.weight", V, E}, {"output_norm.weight", E, 0},
        {"blk.0.attn_norm.weight", E, 0}, {"blk.0.ffn_norm.weight", E, 0}, {"blk.0.attn_q.weight", E, E},
        {"blk.0.attn_k.weight", E, E}, {"blk.0.attn_v.weight", E, E}, {"blk.0.attn_output.weight", E, E},
        {"blk.0.ffn_gate.weight", F, E}, {"blk.0.ffn_up.weight", F, E}, {"blk.0.ffn_down.weight", E, F}};
    for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
        if (t[i].n_in)
            add_mat(w, t[i].name, data, t[i].n_out, t[i].n_in, SL_TYPE_F32);
        else
            add_vec(w, t[i].name, data, t[i].n_out);
    }
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK_MSG(rc == 0, "write: %s", err);
    gguf_writer_free(w);
    return rc;
}

/* Bad input to model_embed gives -1 and a message, never a crash (ASan
 * watches); a decoder is not an embedding model */
static void test_embed_errors(void) {
    bspec_t s = base_spec(SL_POOLING_CLS);
    bmodel_t rm;
    bm_init(&rm, &s, 5);
    sl_model_t *m = write_and_load(&rm);
    if (m) {
        int32_t tok[65] = {0}, typ[65] = {0};
        expect_embed_error(m, tok, NULL, s.C + 1, "a sequence longer than the context");
        expect_embed_error(m, tok, NULL, 0, "an empty sequence");
        tok[2] = s.V;
        expect_embed_error(m, tok, NULL, 4, "token id n_vocab");
        tok[2] = -1;
        expect_embed_error(m, tok, NULL, 4, "token id -1");
        tok[2] = 0, typ[3] = s.T;
        expect_embed_error(m, tok, typ, 4, "type n_token_types");
        typ[3] = -1;
        expect_embed_error(m, tok, typ, 4, "type -1");
        typ[3] = 1; /* and the model still works */
        float out[64];
        char err[SL_ERR_MAX] = "";
        sl_embed_seq_t ok = {.tokens = tok, .types = typ, .n_tok = s.C};
        CHECK_MSG(model_embed(m, NULL, &ok, 1, out, err, sizeof err) == 0, "%s", err);
        model_free(m);
    }
    bm_free(&rm);

    CHECK(write_llama(model_path(), 0) == 0);
    char err[SL_ERR_MAX] = "";
    m = model_load(model_path(), err, sizeof err);
    unlink(model_path());
    CHECK_MSG(m != NULL, "llama: %s", err);
    if (m) {
        const int32_t tok[3] = {1, 2, 3};
        sl_embed_seq_t seq = {.tokens = tok, .types = NULL, .n_tok = 3};
        float out[64];
        CHECK(!model_hparams(m)->encoder);
        CHECK(model_embed_dim(m) == 0);
        err[0] = '\0';
        CHECK(model_embed(m, NULL, &seq, 1, out, err, sizeof err) == -1);
        CHECK_MSG(strstr(err, "embedding") != NULL, "message '%s' lacks 'embedding'", err);
        model_free(m);
    }
}

/* A decoder with a pooling_type embeds: its pooled final normed states,
 * through the output matrix, are the logits model_forward gives (LAST: the
 * last position's; CLS: the first's; MEAN: the average of every
 * position's, logits being linear in the state). Three sequences in one
 * batch. */
static void test_decoder_pooling(void) {
    const sl_pooling_t kinds[] = {SL_POOLING_LAST, SL_POOLING_MEAN, SL_POOLING_CLS};
    for (size_t ki = 0; ki < SL_ARRAY_LEN(kinds); ki++) {
        CHECK(write_llama(model_path(), (uint32_t)kinds[ki]) == 0);
        char err[SL_ERR_MAX] = "";
        sl_model_t *m = model_load(model_path(), err, sizeof err);
        unlink(model_path());
        CHECK_MSG(m != NULL, "%s", err);
        if (!m) continue;
        CHECK(!model_hparams(m)->encoder && model_hparams(m)->pooling == kinds[ki]);
        CHECK(model_embed_dim(m) == LL_E && model_embed_max_tokens(m) == 64);
        enum { NS = 3 };
        const int lens[NS] = {1, 5, 9};
        int32_t toks[NS][9];
        sl_embed_seq_t seqs[NS];
        for (int i = 0; i < NS; i++) {
            for (int k = 0; k < lens[i]; k++) toks[i][k] = (int32_t)((7 * i + 3 * k + 1) % LL_V);
            seqs[i] = (sl_embed_seq_t){toks[i], NULL, lens[i]};
        }
        float out[NS * LL_E];
        sl_pool_t *pool = sl_pool_new(2);
        CHECK_MSG(model_embed(m, pool, seqs, NS, out, err, sizeof err) == 0, "%s", err);
        double worst = 0.0, scale = 0.0;
        for (int i = 0; i < NS; i++) {
            sl_kv_t *kv = model_kv_new(m, 16, SL_TYPE_F32, err, sizeof err);
            float *lg = malloc((size_t)lens[i] * LL_V * sizeof *lg);
            CHECK(kv && lg && model_forward(m, pool, kv, toks[i], lens[i], lg, true, err, sizeof err) == 0);
            for (int v = 0; kv && lg && v < LL_V; v++) {
                double want = 0.0, got = 0.0;
                for (int k = 0; k < lens[i]; k++)
                    if (kinds[ki] == SL_POOLING_MEAN || k == (kinds[ki] == SL_POOLING_LAST ? lens[i] - 1 : 0))
                        want += lg[(size_t)k * LL_V + v] / (kinds[ki] == SL_POOLING_MEAN ? lens[i] : 1);
                for (int e = 0; e < LL_E; e++) got += (double)ll_data[v * LL_E + e] * out[i * LL_E + e];
                worst = fmax(worst, fabs(got - want));
                scale = fmax(scale, fabs(want));
            }
            free(lg);
            model_kv_free(kv);
        }
        CHECK_MSG(worst <= 1e-4 * scale, "pooling %d: %g of %g", (int)kinds[ki], worst, scale);
        sl_pool_free(pool);
        model_free(m);
    }

    /* rank (a decoder reranker): the last position's state through
     * cls.output, whose rows are the output matrix's "yes" and "no" rows,
     * gives that position's logits of those two tokens */
    CHECK(write_llama(model_path(), SL_POOLING_RANK) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    unlink(model_path());
    CHECK_MSG(m != NULL, "%s", err);
    if (!m) return;
    CHECK(model_embed_dim(m) == 2 && model_hparams(m)->pooling == SL_POOLING_RANK);
    const int32_t a[4] = {3, 9, 1, 20}, b[2] = {11, 2};
    const sl_embed_seq_t seqs[2] = {{a, NULL, 4}, {b, NULL, 2}};
    float out[4], lg[LL_V];
    CHECK_MSG(model_embed(m, NULL, seqs, 2, out, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 2; i++) {
        sl_kv_t *kv = model_kv_new(m, 8, SL_TYPE_F32, err, sizeof err);
        CHECK(kv && model_forward(m, NULL, kv, seqs[i].tokens, seqs[i].n_tok, lg, false, err, sizeof err) == 0);
        CHECK_MSG(fabs(out[2 * i] - lg[LL_YES]) <= 1e-4 * fabs(lg[LL_YES]) + 1e-5 &&
                      fabs(out[2 * i + 1] - lg[LL_NO]) <= 1e-4 * fabs(lg[LL_NO]) + 1e-5,
                  "seq %d: yes %g vs %g, no %g vs %g", i, out[2 * i], lg[LL_YES], out[2 * i + 1], lg[LL_NO]);
        model_kv_free(kv);
    }
    model_free(m);
}

/* A file with a missing or mis-shaped tensor fails to load with a message
 * naming it. */
static void expect_load_error(const bspec_t *s, const char *skip, const char *bad, const char *needle) {
    bmodel_t rm;
    bm_init(&rm, s, 3);
    CHECK(write_encoder(&rm, model_path(), skip, bad) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    CHECK_MSG(m == NULL, "loaded despite %s", skip ? skip : bad);
    CHECK_MSG(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    model_free(m);
    bm_free(&rm);
    unlink(model_path());
}

static void test_load_errors(void) {
    bspec_t s = base_spec(SL_POOLING_CLS);
    s.L = 2, s.V = 40;
    expect_load_error(&s, "blk.1.attn_output_norm.bias", NULL, "blk.1.attn_output_norm.bias");
    expect_load_error(&s, "token_embd_norm.weight", NULL, "token_embd_norm.weight");
    expect_load_error(&s, "position_embd.weight", NULL, "position_embd.weight");
    expect_load_error(&s, NULL, "position_embd.weight", "position_embd.weight"); /* C-1 rows */
    expect_load_error(&s, NULL, "blk.0.ffn_up.weight", "blk.0.ffn_up.weight");
    expect_load_error(&s, NULL, "blk.0.ffn_down.bias", "blk.0.ffn_down.bias");
    s.pooling = SL_POOLING_RANK, s.n_cls = 3, s.labels = true;
    expect_load_error(&s, "cls.weight", NULL, "cls.weight");
    expect_load_error(&s, NULL, "cls.output.weight", "cls.output.weight"); /* 2 rows, 3 labels */
    s = nomic_spec(SL_POOLING_MEAN);
    s.V = 40;
    expect_load_error(&s, "blk.0.ffn_gate.weight", NULL, "blk.0.ffn_gate.weight");
    expect_load_error(&s, "blk.1.attn_qkv.weight", NULL, "blk.1.attn_qkv.weight");
    expect_load_error(&s, NULL, "blk.0.attn_qkv.weight", "blk.0.attn_qkv.weight"); /* 3E-1 rows */
}

int main(void) {
    sl_kernels_init();
    RUN(test_cls);
    RUN(test_mean_last_odd_dims);
    RUN(test_rank);
    RUN(test_f16_q8);
    RUN(test_mutations);
    RUN(test_nomic);
    RUN(test_nomic_mutations);
    RUN(test_embed_errors);
    RUN(test_decoder_pooling);
    RUN(test_load_errors);
    return test_summary();
}
