/* deps: base gguf kernels model */
/*
 * test_gemma4.c — the gemma4 architecture (Gemma 4 text) against an
 * independent reference written here plainly, in double precision, token
 * by token, in the Hugging Face convention (Gemma4TextModel): embeddings ×
 * sqrt(E); per-layer inputs (the per-layer token table × sqrt(P) plus the
 * normed projection of the embeddings × 1/sqrt(E), both × 1/sqrt(2));
 * per layer q/k RMS norms with weights, V RMS-normed without one, RoPE by
 * rotate_half — the window layers' default RoPE over their whole head, the
 * global layers' "proportional" RoPE (inverse frequencies base^(-2i/D) for
 * the first quarter of the pairs, zero for the rest) —, attention scale 1,
 * windows of n_swa positions, the KV-shared layers reading the K/V of the
 * last earlier layer of their own type (HF's kv_shared_layer_index),
 * post-attention / post-FFN norms, the tanh-GELU gated FFN, the per-layer
 * embedding branch, the layer scalar, final soft-capping.
 *
 * The file is written as llama.cpp's converter writes it (rope_freqs with
 * 1e30 on the pairs that do not turn, per-layer head_count_kv and
 * feed_forward_length arrays, the window pattern as bools, tied output), so
 * the comparison checks the layout as well as the math.
 *
 * Cases: prefill at once, token by token, in chunks; F32 and q8_0 weights;
 * global layers without attn_v (V = K's projection); a batch over a paged
 * cache = each sequence alone; the KV pool's block size is exactly the
 * layers' own widths; mutated references (KV sharing to the wrong layer, no
 * V norm, proportional RoPE on the window layers too, no per-layer
 * embeddings, no soft-capping, no layer scalar; the MoE's router and expert
 * scales) that the model must be far from; load errors; `silica quantize`;
 * a 300-token prefill (beyond the model's 256-token step).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/model_quant.h"
#include "test.h"
#include "test_ref.h"

#define MAXL 16

typedef struct {
    int V, E, L, H;
    int DW, KW; /* window layers: head size, KV heads */
    int DG, KG; /* global layers */
    int F, F2;  /* FFN width; F2 on the KV-shared layers (the double-wide MLP) */
    int P;      /* per-layer embedding size (0: none) */
    int shared; /* the last `shared` layers keep no K/V */
    int swa;    /* window */
    bool global[MAXL];
    bool k_eq_v;    /* global layers without attn_v */
    double cap;     /* final logit soft-cap */
    double onc;     /* the output norm's centre: the logits' size */
    int NE, KU, FE; /* the 26B-A4B's experts beside the dense MLP (0: none) */
    sl_type_t wtype;
} spec_t;

typedef enum {
    REF_OK,
    MUT_KV_WRONG,        /* a shared layer reads the first layer of its type, not the last */
    MUT_NO_V_NORM,       /* V not RMS-normed */
    MUT_PROP_SWA,        /* the proportional (quarter) RoPE on the window layers too */
    MUT_NO_PLE,          /* no per-layer embedding branch */
    MUT_NO_SOFTCAP,      /* logits not soft-capped */
    MUT_NO_SCALAR,       /* no layer scalar */
    MUT_NO_ROUTER_SCALE, /* the router's input without its per-channel scale */
    MUT_NO_EXPERT_SCALE, /* the experts' outputs without their per-expert scale */
} variant_t;

typedef struct {
    double *an, *pan, *fn, *pfn, *qn, *kn, *pln; /* norms (plain weights) */
    float *wq, *wk, *wv, *wo, *wg, *wu, *wd;     /* [n_out][n_in] */
    float *pg, *pp;                              /* per-layer gate [P][E], proj [E][P] */
    double scalar;
    /* experts: router [NE][E] and its input scale, gate_up [NE][2·FE][E] (gate rows first), down
     * [NE][E][FE], each expert's output scale, the norms of the experts' input and the two outputs
     */
    float *wr, *xgu, *xd;
    double *rsc, *dsc, *pre2, *post1, *post2;
} layer_t;

typedef struct {
    spec_t s;
    float *tok;             /* [V][E], the tied output too */
    float *ptok, *pproj;    /* [V][L·P], [L·P][E] */
    double *onorm, *ppnorm; /* [E], [P] */
    layer_t l[MAXL];
    variant_t var;
} ref_t;

static int head_dim(const spec_t *s, int l) {
    return s->global[l] ? s->DG : s->DW;
}
static int kv_heads(const spec_t *s, int l) {
    return s->global[l] ? s->KG : s->KW;
}
static bool has_kv(const spec_t *s, int l) {
    return l < s->L - s->shared;
}
static int ffn(const spec_t *s, int l) {
    return has_kv(s, l) ? s->F : s->F2;
}

static float *fmat(int n_out, int n_in, sl_type_t t) {
    float *w = malloc(sizeof(float) * (size_t)n_out * (size_t)n_in);
    const float a = 1.0f / sqrtf((float)n_in);
    for (size_t i = 0; i < (size_t)n_out * (size_t)n_in; i++)
        w[i] = rnd_sym(a);
    round_rows(w, n_out, n_in, t);
    return w;
}

static void ref_init(ref_t *m, const spec_t *s, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->s = *s;
    rng_state = seed * 2654435761u + 1;
    const int E = s->E, P = s->P, LP = s->L * s->P;
    const sl_type_t t = s->wtype;
    m->tok = fmat(s->V, E, SL_TYPE_F32);
    for (size_t i = 0; i < (size_t)s->V * E; i++)
        m->tok[i] *= 0.5f; /* × sqrt(E) in the model: O(1) */
    round_rows(m->tok, s->V, E, t);
    m->onorm = dvec(E, s->onc, s->onc / 6);
    if (P) {
        m->ptok = fmat(s->V, LP, t);
        m->pproj = fmat(LP, E, t);
        m->ppnorm = dvec(P, 1, 0.2);
    }
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
        const int D = head_dim(s, l), QD = s->H * D, KD = kv_heads(s, l) * D, F = ffn(s, l);
        /* the post norms (which give each branch's output unit RMS) at about 0.3, so that the
         * residual stream is not all branch outputs: q8_0's rounding would grow layer by layer */
        L->an = dvec(E, 1, 0.2), L->pan = dvec(E, 0.3, 0.1), L->fn = dvec(E, 1, 0.2),
        L->pfn = dvec(E, 0.3, 0.1);
        /* q/k norms of about 0.4: scores O(1) at scale 1 (a trained model's attention is not the
         * near-argmax of random unit-RMS q and k, which would magnify q8_0's rounding) */
        L->qn = dvec(D, 0.4, 0.1), L->kn = dvec(D, 0.4, 0.1);
        L->wq = fmat(QD, E, t), L->wo = fmat(E, QD, t);
        if (has_kv(s, l)) {
            L->wk = fmat(KD, E, t);
            if (!(s->k_eq_v && s->global[l])) L->wv = fmat(KD, E, t);
        }
        L->wg = fmat(F, E, t), L->wu = fmat(F, E, t), L->wd = fmat(E, F, t);
        if (P) L->pg = fmat(P, E, t), L->pp = fmat(E, P, t), L->pln = dvec(E, 0.3, 0.1);
        L->scalar = 0.7 + 0.3 * rnd_uniform();
        if (s->NE) {
            L->wr = fmat(s->NE, E, t);
            for (size_t i = 0; i < (size_t)s->NE * E; i++)
                L->wr[i] *= 4; /* decisive routing */
            round_rows(L->wr, s->NE, E, t);
            L->xgu = fmat(s->NE * 2 * s->FE, E, t);
            L->xd = fmat(s->NE * E, s->FE, t);
            L->rsc = dvec(E, 1, 0.3), L->dsc = dvec(s->NE, 1, 0.3);
            L->pre2 = dvec(E, 1, 0.2), L->post1 = dvec(E, 0.3, 0.1), L->post2 = dvec(E, 0.3, 0.1);
        }
    }
}

static void ref_free(ref_t *m) {
    for (int l = 0; l < m->s.L; l++) {
        layer_t *L = &m->l[l];
        void *ps[] = {L->an, L->pan, L->fn, L->pfn, L->qn,  L->kn,   L->pln,   L->wq,
                      L->wk, L->wv,  L->wo, L->wg,  L->wu,  L->wd,   L->pg,    L->pp,
                      L->wr, L->xgu, L->xd, L->rsc, L->dsc, L->pre2, L->post1, L->post2};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            free(ps[i]);
    }
    free(m->tok), free(m->ptok), free(m->pproj), free(m->onorm), free(m->ppnorm);
}

/* ------------------------------------------------------------ the file */

static void add_mat(gguf_writer_t *w, const char *name, const float *data, int n_out, int n_in,
                    sl_type_t t) {
    add_mats(w, name, data, n_out, n_in, 1, t);
}
static void add_vec(gguf_writer_t *w, const char *name, const double *v, int n) {
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        f[i] = (float)v[i];
    const int64_t ne[1] = {n};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, 1, ne, f) == 0);
    free(f);
}

/* skip: a tensor to leave out; bad: one written one row short; shared: a
 * shared_kv_layers override (with set_shared); short_pattern: the window
 * pattern one entry short */
typedef struct {
    const char *skip, *bad;
    bool set_shared;
    int shared;
    bool short_pattern;
} write_opts_t;

static int write_model(ref_t *m, const char *path, const write_opts_t *o) {
    const spec_t *s = &m->s;
    const char *A = "gemma4";
    gguf_writer_t *w = gguf_writer_new();
    char key[128], n[96];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", A, k), key)
    uint32_t kv[MAXL], ff[MAXL];
    bool pat[MAXL];
    for (int l = 0; l < s->L; l++)
        kv[l] = (uint32_t)kv_heads(s, l), ff[l] = (uint32_t)ffn(s, l), pat[l] = !s->global[l];
    CHECK(gguf_writer_set_str(w, "general.architecture", A) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("context_length"), 512) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->E) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->L) == 0);
    CHECK(gguf_writer_set_arr(w, KEY("feed_forward_length"), GGUF_VT_UINT32, ff, (size_t)s->L) ==
          0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->H) == 0);
    CHECK(gguf_writer_set_arr(w, KEY("attention.head_count_kv"), GGUF_VT_UINT32, kv,
                              (size_t)s->L) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s->DG) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s->DG) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.key_length_swa"), (uint32_t)s->DW) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.value_length_swa"), (uint32_t)s->DW) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s->DG) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("rope.dimension_count_swa"), (uint32_t)s->DW) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("rope.freq_base"), 1000000.0f) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("rope.freq_base_swa"), 10000.0f) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)s->swa) == 0);
    CHECK(gguf_writer_set_arr(w, KEY("attention.sliding_window_pattern"), GGUF_VT_BOOL, pat,
                              (size_t)(o && o->short_pattern ? s->L - 1 : s->L)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.shared_kv_layers"),
                              (uint32_t)(o && o->set_shared ? o->shared : s->shared)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("embedding_length_per_layer_input"), (uint32_t)s->P) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("final_logit_softcapping"), (float)s->cap) == 0);
    if (s->NE) {
        CHECK(gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->NE) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->KU) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)s->FE) == 0);
    }
#undef KEY
    const int E = s->E, P = s->P, LP = s->L * s->P;
    const sl_type_t t = s->wtype;
#define SKIP(x) (snprintf(n, sizeof n, "%s", x), o && o->skip && !strcmp(o->skip, n))
#define BAD(x) (o && o->bad && !strcmp(o->bad, x))
    add_mat(w, "token_embd.weight", m->tok, s->V, E, t);
    add_vec(w, "output_norm.weight", m->onorm, E);
    { /* the converter's proportional RoPE: the first quarter of the global head's pairs turn */
        double *rf = malloc(sizeof(double) * (size_t)(s->DG / 2));
        for (int i = 0; i < s->DG / 2; i++)
            rf[i] = i < s->DG / 8 ? 1.0 : 1e30;
        if (!SKIP("rope_freqs.weight")) add_vec(w, n, rf, s->DG / 2);
        free(rf);
    }
    if (P) {
        if (!SKIP("per_layer_token_embd.weight")) add_mat(w, n, m->ptok, s->V, LP, t);
        if (!SKIP("per_layer_model_proj.weight"))
            add_mat(w, n, m->pproj, BAD(n) ? LP - 1 : LP, E, t);
        if (!SKIP("per_layer_proj_norm.weight")) add_vec(w, n, m->ppnorm, P);
    }
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
        const int D = head_dim(s, l), QD = s->H * D, KD = kv_heads(s, l) * D, F = ffn(s, l);
        char b[64];
#define T(x) (snprintf(b, sizeof b, "blk.%d.%s", l, x), b)
        if (!SKIP(T("attn_norm.weight"))) add_vec(w, n, L->an, E);
        if (!SKIP(T("attn_q.weight"))) add_mat(w, n, L->wq, BAD(n) ? QD - 1 : QD, E, t);
        if (L->wk && !SKIP(T("attn_k.weight"))) add_mat(w, n, L->wk, KD, E, t);
        if (L->wv && !SKIP(T("attn_v.weight"))) add_mat(w, n, L->wv, KD, E, t);
        if (!SKIP(T("attn_output.weight"))) add_mat(w, n, L->wo, E, QD, t);
        if (!SKIP(T("attn_q_norm.weight"))) add_vec(w, n, L->qn, D);
        if (L->wk && !SKIP(T("attn_k_norm.weight"))) add_vec(w, n, L->kn, D);
        if (!SKIP(T("post_attention_norm.weight"))) add_vec(w, n, L->pan, E);
        if (!SKIP(T("ffn_norm.weight"))) add_vec(w, n, L->fn, E);
        if (!SKIP(T("ffn_gate.weight"))) add_mat(w, n, L->wg, F, E, t);
        if (!SKIP(T("ffn_up.weight"))) add_mat(w, n, L->wu, F, E, t);
        if (!SKIP(T("ffn_down.weight"))) add_mat(w, n, L->wd, E, F, t);
        if (!SKIP(T("post_ffw_norm.weight"))) add_vec(w, n, L->pfn, E);
        if (P) {
            if (!SKIP(T("inp_gate.weight"))) add_mat(w, n, L->pg, P, E, t);
            if (!SKIP(T("proj.weight"))) add_mat(w, n, L->pp, E, P, t);
            if (!SKIP(T("post_norm.weight"))) add_vec(w, n, L->pln, E);
        }
        if (!SKIP(T("layer_output_scale.weight"))) add_vec(w, n, &L->scalar, 1);
        if (s->NE) {
            if (!SKIP(T("ffn_gate_inp.weight"))) add_mat(w, n, L->wr, s->NE, E, t);
            if (!SKIP(T("ffn_gate_inp.scale"))) add_vec(w, n, L->rsc, E);
            if (!SKIP(T("ffn_gate_up_exps.weight")))
                add_mats(w, n, L->xgu, 2 * s->FE, E, s->NE, t);
            if (!SKIP(T("ffn_down_exps.weight"))) add_mats(w, n, L->xd, E, s->FE, s->NE, t);
            if (!SKIP(T("ffn_down_exps.scale"))) add_vec(w, n, L->dsc, s->NE);
            if (!SKIP(T("pre_ffw_norm_2.weight"))) add_vec(w, n, L->pre2, E);
            if (!SKIP(T("post_ffw_norm_1.weight"))) add_vec(w, n, L->post1, E);
            if (!SKIP(T("post_ffw_norm_2.weight"))) add_vec(w, n, L->post2, E);
        }
#undef T
    }
#undef SKIP
#undef BAD
    char err[256];
    const int rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ the reference */

static double gelu_tanh(double x) { /* gelu_pytorch_tanh */
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* HF's rotate_half RoPE over a head of D: pair i (i, i + D/2) turns by
 * pos · inv_freq[i]; the window layers' default inv_freq = base^(-2i/D),
 * the global layers' proportional one the same for i < D/8 and 0 beyond */
static void rope(double *x, int D, int pos, double base, bool proportional) {
    for (int i = 0; i < D / 2; i++) {
        const double f = proportional && i >= D / 8 ? 0.0 : pow(base, -2.0 * i / D);
        const double th = pos * f, a = x[i], b = x[i + D / 2];
        x[i] = a * cos(th) - b * sin(th);
        x[i + D / 2] = a * sin(th) + b * cos(th);
    }
}

/* the layer whose K/V layer l reads: its own, or (HF) the last layer of its
 * type before the shared ones; the mutation takes the first of its type */
static int kv_source(const ref_t *m, int l) {
    const spec_t *s = &m->s;
    if (has_kv(s, l)) return l;
    int src = -1;
    for (int j = 0; j < s->L - s->shared; j++)
        if (s->global[j] == s->global[l] && (src < 0 || m->var != MUT_KV_WRONG)) src = j;
    return src;
}

/* logits of every position of n tokens of one sequence (out: n × V) */
static void ref_forward(const ref_t *m, const int32_t *tok, int n, double *out) {
    const spec_t *s = &m->s;
    const int E = s->E, P = s->P, LP = s->L * s->P, DM = s->DG > s->DW ? s->DG : s->DW,
              HM = s->H * DM;
    const int FM = s->F > s->F2 ? s->F : s->F2;
    double *x = malloc(sizeof(double) * E), *xn = malloc(sizeof(double) * E),
           *y = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * HM), *att = malloc(sizeof(double) * HM),
           *sc = malloc(sizeof(double) * n);
    double *g = malloc(sizeof(double) * FM), *u = malloc(sizeof(double) * FM);
    double *ple = malloc(sizeof(double) * (LP ? LP : 1)),
           *pg = malloc(sizeof(double) * (P ? P : 1));
    double *lg = malloc(sizeof(double) * s->V);
    /* K/V caches per layer: [pos][KV·D] */
    double *kc[MAXL], *vc[MAXL];
    for (int l = 0; l < s->L; l++) {
        kc[l] = malloc(sizeof(double) * (size_t)n * kv_heads(s, l) * head_dim(s, l));
        vc[l] = malloc(sizeof(double) * (size_t)n * kv_heads(s, l) * head_dim(s, l));
    }
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < E; i++)
            x[i] = m->tok[(size_t)tok[t] * E + i] * sqrt((double)E);
        if (P) { /* get_per_layer_inputs + project_per_layer_inputs */
            matvec(ple, m->pproj, x, LP, E);
            for (int l = 0; l < s->L; l++) {
                double *r = ple + l * P;
                for (int i = 0; i < P; i++)
                    r[i] /= sqrt((double)E);
                ref_rms(r, r, P, m->ppnorm, 0);
                for (int i = 0; i < P; i++)
                    r[i] = (r[i] + m->ptok[(size_t)tok[t] * LP + l * P + i] * sqrt((double)P)) /
                           sqrt(2.0);
            }
        }
        for (int l = 0; l < s->L; l++) {
            const layer_t *L = &m->l[l];
            const int D = head_dim(s, l), K = kv_heads(s, l), KD = K * D, F = ffn(s, l),
                      grp = s->H / K;
            const bool gl = s->global[l];
            const double base = gl ? 1000000.0 : 10000.0;
            const bool prop = gl || m->var == MUT_PROP_SWA;
            ref_rms(xn, x, E, L->an, 0);
            matvec(q, L->wq, xn, s->H * D, E);
            for (int h = 0; h < s->H; h++) {
                ref_rms(q + h * D, q + h * D, D, L->qn, 0);
                rope(q + h * D, D, t, base, prop);
            }
            if (has_kv(s, l)) {
                double *k = kc[l] + (size_t)t * KD, *v = vc[l] + (size_t)t * KD;
                matvec(k, L->wk, xn, KD, E);
                if (L->wv)
                    matvec(v, L->wv, xn, KD, E);
                else
                    memcpy(v, k, sizeof(double) * KD); /* attention_k_eq_v */
                for (int h = 0; h < K; h++) {
                    ref_rms(k + h * D, k + h * D, D, L->kn, 0);
                    if (m->var != MUT_NO_V_NORM) ref_rms(v + h * D, v + h * D, D, NULL, 0);
                    rope(k + h * D, D, t, base, prop);
                }
            }
            const int src = kv_source(m, l);
            const int lo = gl ? 0 : (t - s->swa + 1 > 0 ? t - s->swa + 1 : 0);
            for (int h = 0; h < s->H; h++) {
                const int hk = h / grp;
                double mx = -1e300, z = 0;
                for (int j = lo; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < D; i++)
                        d += q[h * D + i] * kc[src][(size_t)j * KD + hk * D + i];
                    sc[j] = d; /* scale 1 */
                    mx = fmax(mx, d);
                }
                for (int j = lo; j <= t; j++)
                    z += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < D; i++) {
                    double a = 0;
                    for (int j = lo; j <= t; j++)
                        a += sc[j] / z * vc[src][(size_t)j * KD + hk * D + i];
                    att[h * D + i] = a;
                }
            }
            matvec(y, L->wo, att, E, s->H * D);
            ref_rms(y, y, E, L->pan, 0);
            for (int i = 0; i < E; i++)
                x[i] += y[i];
            ref_rms(xn, x, E, L->fn, 0);
            matvec(g, L->wg, xn, F, E);
            matvec(u, L->wu, xn, F, E);
            for (int i = 0; i < F; i++)
                g[i] = gelu_tanh(g[i]) * u[i];
            matvec(y, L->wd, g, E, F);
            if (s->NE) { /* Gemma4TextDecoderLayer with enable_moe_block */
                ref_rms(y, y, E, L->post1, 0);
                double *rin = malloc(sizeof(double) * E), *pr = malloc(sizeof(double) * s->NE);
                double *h2 = malloc(sizeof(double) * E), *moe = calloc((size_t)E, sizeof(double));
                double *eg = malloc(sizeof(double) * 2 * s->FE), *ey = malloc(sizeof(double) * E);
                ref_rms(rin, x, E, NULL, 0); /* Gemma4TextRouter: norm without scale, × scale × E^-1/2 */
                for (int i = 0; i < E; i++)
                    rin[i] *= (m->var == MUT_NO_ROUTER_SCALE ? 1.0 : L->rsc[i]) / sqrt((double)E);
                matvec(pr, L->wr, rin, s->NE, E);
                double mx = pr[0], z = 0;
                for (int e = 1; e < s->NE; e++)
                    mx = fmax(mx, pr[e]);
                for (int e = 0; e < s->NE; e++)
                    z += (pr[e] = exp(pr[e] - mx));
                for (int e = 0; e < s->NE; e++)
                    pr[e] /= z;
                int top[8];
                double tw[8], tsum = 0;
                for (int j = 0; j < s->KU; j++) { /* top k, ties to the lower index */
                    int best = -1;
                    for (int e = 0; e < s->NE; e++) {
                        bool taken = false;
                        for (int q2 = 0; q2 < j; q2++)
                            taken = taken || top[q2] == e;
                        if (!taken && (best < 0 || pr[e] > pr[best])) best = e;
                    }
                    top[j] = best, tw[j] = pr[best], tsum += pr[best];
                }
                ref_rms(h2, x, E, L->pre2, 0);
                for (int j = 0; j < s->KU; j++) {
                    const int e = top[j];
                    const double wgt =
                        tw[j] / tsum * (m->var == MUT_NO_EXPERT_SCALE ? 1.0 : L->dsc[e]);
                    matvec(eg, L->xgu + (size_t)e * 2 * s->FE * E, h2, 2 * s->FE, E);
                    for (int i = 0; i < s->FE; i++)
                        eg[i] = gelu_tanh(eg[i]) * eg[s->FE + i];
                    matvec(ey, L->xd + (size_t)e * E * s->FE, eg, E, s->FE);
                    for (int i = 0; i < E; i++)
                        moe[i] += wgt * ey[i];
                }
                ref_rms(moe, moe, E, L->post2, 0);
                for (int i = 0; i < E; i++)
                    y[i] += moe[i];
                free(rin), free(pr), free(h2), free(moe), free(eg), free(ey);
            }
            ref_rms(y, y, E, L->pfn, 0);
            for (int i = 0; i < E; i++)
                x[i] += y[i];
            if (P && m->var != MUT_NO_PLE) {
                matvec(pg, L->pg, x, P, E);
                for (int i = 0; i < P; i++)
                    pg[i] = gelu_tanh(pg[i]) * ple[l * P + i];
                matvec(y, L->pp, pg, E, P);
                ref_rms(y, y, E, L->pln, 0);
                for (int i = 0; i < E; i++)
                    x[i] += y[i];
            }
            if (m->var != MUT_NO_SCALAR)
                for (int i = 0; i < E; i++)
                    x[i] *= L->scalar;
        }
        ref_rms(xn, x, E, m->onorm, 0);
        matvec(lg, m->tok, xn, s->V, E);
        for (int v = 0; v < s->V; v++)
            out[(size_t)t * s->V + v] =
                m->var == MUT_NO_SOFTCAP ? lg[v] : s->cap * tanh(lg[v] / s->cap);
    }
    for (int l = 0; l < s->L; l++)
        free(kc[l]), free(vc[l]);
    free(x), free(xn), free(y), free(q), free(att), free(sc), free(g), free(u), free(ple), free(pg),
        free(lg);
}

/* ------------------------------------------------------------ the cases */

static void check_hparams(const sl_model_t *m, const spec_t *s) {
    const sl_hparams_t *hp = model_hparams(m);
    CHECK(hp->arch == SL_ARCH_GEMMA4 && hp->n_layer == s->L && hp->n_layer_kv == s->L - s->shared &&
          hp->head_dim == s->DG && hp->head_dim_swa == s->DW && hp->n_embd_pl == s->P &&
          hp->n_swa == s->swa);
}

#define MODEL_CASES_NAME "gemma4"
#include "model_cases.h"

/* 8 layers W W G W W G | W G: the last two read layers 4 (W) and 5 (G) */
static spec_t base_spec(void) {
    spec_t s = {.V = 96,
                .E = 48,
                .L = 8,
                .H = 4,
                .DW = 16,
                .KW = 2,
                .DG = 32,
                .KG = 1,
                .F = 40,
                .F2 = 80,
                .P = 8,
                .shared = 2,
                .swa = 4,
                .cap = 3.0,
                .onc = 6.0 /* logits of a few units: the cap bends them */,
                .wtype = SL_TYPE_F32};
    s.global[2] = s.global[5] = s.global[7] = true;
    return s;
}
/* q8_0: rows whole 32-blocks; 4 layers W W G | G (q8_0's rounding of the activations grows with
 * depth, through the unit-RMS branch outputs: the other architectures' q8_0 cases are as short) */
static spec_t q8_spec(void) {
    spec_t s = base_spec();
    s.E = 64, s.DW = 32, s.DG = 64, s.F = 64, s.F2 = 96, s.P = 32, s.wtype = SL_TYPE_Q8_0;
    s.L = 4, s.shared = 1, s.cap = 30.0, s.onc = 1.0;
    memset(s.global, 0, sizeof s.global);
    s.global[2] = s.global[3] = true;
    return s;
}

/* the 26B-A4B's shape: no per-layer embeddings, every layer its KV, 6 experts choose 2 */
static spec_t moe_spec(void) {
    spec_t s = base_spec();
    s.P = 0, s.shared = 0, s.F2 = s.F, s.NE = 6, s.KU = 2, s.FE = 24;
    return s;
}

static void test_forward(void) {
    spec_t s = base_spec();
    run_case("gemma4 f32", &s, 1e-4, 1);
    run_case("gemma4 f32 3 threads", &s, 1e-4, 3);
    s.k_eq_v = true;
    run_case("gemma4 f32 global V = K", &s, 1e-4, 2);
    s = base_spec();
    s.P = 0, s.shared = 0,
    s.F2 = s.F; /* the 26B / 31B shape: no per-layer embeddings, every layer its KV */
    run_case("gemma4 f32 no PLE, no sharing", &s, 1e-4, 2);
    s = q8_spec();
    s.wtype = SL_TYPE_F32;
    run_case("gemma4 f32, q8_0 shape", &s, 1e-4, 2);
    s = q8_spec();
    run_case("gemma4 q8_0", &s, 5e-2, 2);
    s = moe_spec();
    run_case("gemma4 MoE f32 6x2", &s, 1e-4, 2);
    s.P = 8, s.shared = 2, s.F2 = 80; /* experts with per-layer embeddings and sharing too */
    run_case("gemma4 MoE f32 with PLE, sharing", &s, 1e-4, 1);
    s = moe_spec();
    s.E = 64, s.DW = 32, s.DG = 64, s.F = 64, s.F2 = 64, s.FE = 32, s.L = 4, s.cap = 30.0,
    s.onc = 1.0;
    memset(s.global, 0, sizeof s.global);
    s.global[2] = s.global[3] = true;
    s.wtype = SL_TYPE_Q8_0;
    run_case("gemma4 MoE q8_0", &s, 5e-2, 2);
}

static void test_mutations(void) {
    static const mutation_t muts[] = {{MUT_KV_WRONG, "KV shared from the wrong layer"},
                                      {MUT_NO_V_NORM, "no V norm"},
                                      {MUT_PROP_SWA, "rope_freqs on window layers"},
                                      {MUT_NO_PLE, "no per-layer embeddings"},
                                      {MUT_NO_SOFTCAP, "no soft-capping"},
                                      {MUT_NO_SCALAR, "no layer scalar"}};
    const spec_t s = base_spec();
    check_mutations(&s, 4242, 3, muts, sizeof muts / sizeof muts[0]);
    static const mutation_t moe_muts[] = {{MUT_NO_ROUTER_SCALE, "MoE: no router input scale"},
                                          {MUT_NO_EXPERT_SCALE, "MoE: no per-expert scale"}};
    const spec_t sm = moe_spec();
    check_mutations(&sm, 4242, 3, moe_muts, sizeof moe_muts / sizeof moe_muts[0]);
}

/* A block of bs positions holds exactly the layers' own K/V widths. */
static void check_block_bytes(sl_model_t *m, const spec_t *s, int bs) {
    size_t want_bytes = 0; /* K and V, F16, of the layers that keep them */
    for (int l = 0; l < s->L - s->shared; l++)
        want_bytes += 2 * (size_t)bs * kv_heads(s, l) * head_dim(s, l) * 2;
    CHECK_MSG(model_kv_block_bytes(m, bs, SL_TYPE_F16) == want_bytes, "block bytes %zu, want %zu",
              model_kv_block_bytes(m, bs, SL_TYPE_F16), want_bytes);
    CHECK(model_kv_block_bytes(m, bs, SL_TYPE_Q8_0) == 0); /* head size 16 */
}

/* Sequences at different positions in one model_forward_batch over a
 * paged F16 cache give what each gives alone; a block holds exactly the
 * layers' own K/V widths. */
static void test_batch(void) {
    const spec_t s = base_spec(), sm = moe_spec();
    check_batch(&s, "batch of 3 vs alone", check_block_bytes);
    check_batch(&sm, "batch of 3 vs alone (MoE)", check_block_bytes);
}

static void test_validation(void) {
    const spec_t s = base_spec();
#define OPTS(...) (&(write_opts_t){__VA_ARGS__})
    expect_load_error(&s, OPTS(.skip = "per_layer_token_embd.weight"), "per_layer_token_embd");
    expect_load_error(&s, OPTS(.bad = "per_layer_model_proj.weight"), "per_layer_model_proj");
    expect_load_error(&s, OPTS(.skip = "rope_freqs.weight"), "rope_freqs");
    expect_load_error(&s, OPTS(.skip = "blk.3.attn_k.weight"), "blk.3.attn_k.weight");
    expect_load_error(&s, OPTS(.skip = "blk.6.inp_gate.weight"), "blk.6.inp_gate.weight");
    expect_load_error(&s, OPTS(.bad = "blk.7.attn_q.weight"), "blk.7.attn_q.weight");
    expect_load_error(&s, OPTS(.skip = "blk.2.attn_q_norm.weight"), "attn_q_norm");
    /* 3 shared layers: layer 4 would be the global source, but it is a window layer */
    expect_load_error(&s, OPTS(.set_shared = true, .shared = 3), "shares the KV");
    expect_load_error(&s, OPTS(.set_shared = true, .shared = 8), "shared_kv_layers");
    expect_load_error(&s, OPTS(.short_pattern = true), "sliding_window_pattern");
    /* a shared layer with its own K: blk.6 reads layer 4's KV (written with an attn_k it must not
     * have) */
    spec_t s2 = base_spec();
    s2.shared = 1; /* the file says 2 below: blk.6 then has an attn_k */
    expect_load_error(&s2, OPTS(.set_shared = true, .shared = 2), "shared-KV");
    const spec_t sm = moe_spec();
    expect_load_error(&sm, OPTS(.skip = "blk.1.ffn_gate_inp.scale"), "blk.1.ffn_gate_inp.scale");
    expect_load_error(&sm, OPTS(.skip = "blk.0.post_ffw_norm_2.weight"),
                      "blk.0.post_ffw_norm_2.weight");
    expect_load_error(&sm, OPTS(.skip = "blk.0.ffn_gate_up_exps.weight"),
                      "blk.0.ffn_gate_exps.weight");
#undef OPTS
}

/* silica quantize to q8_0: the 1-D tensors (norms, rope_freqs, the layer
 * scalar) stay F32; the quantized model is close to the reference */
static void test_quantize(void) {
    const spec_t s = q8_spec();
    ref_t rm;
    ref_init(&rm, &s, 5);
    rm.s.wtype = SL_TYPE_F32; /* written F32 (its values already q8_0-exact) */
    static const char *const f32s[] = {"rope_freqs.weight", "blk.0.layer_output_scale.weight"};
    check_quantize(&rm, f32s, sizeof f32s / sizeof f32s[0], "blk.0.attn_q.weight", SL_TYPE_Q8_0,
                   "quantized q8_0 (q8_0 KV)");
    ref_free(&rm);
}

/* A prefill longer than the model's internal step (256 tokens): the
 * window layers, the shared layers and the per-layer inputs carry across
 * steps; every position's logits equal the reference's. */
static void test_long_prefill(void) {
    const spec_t s = base_spec();
    check_long_prefill(&s, true);
}

int main(void) {
    sl_kernels_init();
    RUN(test_forward);
    RUN(test_mutations);
    RUN(test_batch);
    RUN(test_validation);
    RUN(test_quantize);
    RUN(test_long_prefill);
    return test_summary();
}
