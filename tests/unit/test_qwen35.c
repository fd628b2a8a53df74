/* deps: base gguf kernels model */
/*
 * test_qwen35.c — the hybrid Gated DeltaNet architectures (qwen35 dense,
 * qwen35moe) against an independent reference written here plainly, in
 * double precision, token by token, in the Hugging Face convention
 * (Qwen3_5 / Qwen3Next modeling: V heads grouped by key head and repeated
 * with repeat_interleave, A_log, the conv kernel [C][K], zero-centred
 * (1 + w) RMSNorms but for the gated one, a [Dk][Dv] state per value
 * head, torch_recurrent_gated_delta_rule's update order, rotate-halves
 * RoPE over the first quarter of each head).
 *
 * The test writes the weights in the layout llama.cpp's converter makes
 * (V heads reordered to tiled order, ssm_a = -exp(A_log), +1 on the norms,
 * the conv squeezed to [K, C]) so the comparison checks the layout as
 * well as the math. The two sides differ on purpose only where llama.cpp
 * does: q and k are L2-normed as x / max(|x|, eps) (HF: x · rsqrt(|x|² +
 * 1e-6)) — the reference follows llama.cpp there.
 *
 * Cases: prefill of all tokens at once, token-by-token decode, chunks
 * smaller than the conv width; F32 and q8_0 weights; GQA; several value
 * heads per key head; qwen35moe's experts with the gated shared expert; a
 * batch of sequences at different positions over the paged cache = each
 * alone; mutated references (wrong gate sign, no L2 norm, a conv without
 * its state, no output gate, RoPE over the whole head, V heads mapped to
 * key heads in grouped instead of tiled order) that the model must be far
 * from; load errors; the quantizer keeping the conv kernel F32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/model_quant.h"
#include "test.h"
#include "test_ref.h"

typedef struct {
    bool moe;
    bool next;   /* qwen3next: HF's grouped V heads, ssm_ba, no sections (NEOX RoPE); MoE */
    bool legacy; /* qwen3next as older converters wrote it: ssm_in (q, k, v, z per key head) */
    int V, E, L, H, K, D, F, every; /* every: attention every `every` layers */
    int NROT;                       /* rotated dims per head (a quarter of D) */
    int DK, HK, HV, CK; /* DeltaNet head size (= Dv), key heads, value heads, conv width */
    int NE, KU, FE, FS; /* qwen35moe */
    int sections[4];
    sl_type_t wtype;
} spec_t;

/* the reference's mutations: each must put the model far away */
typedef enum {
    REF_OK,
    MUT_GATE_SIGN,     /* g = +exp(A_log) · softplus(...): a growing state */
    MUT_NO_L2,         /* q, k not L2-normed */
    MUT_CONV_NO_STATE, /* the conv sees only the current token */
    MUT_NO_OUT_GATE,   /* attention output without sigmoid(gate) */
    MUT_ROPE_FULL,     /* RoPE over the whole head, not its first quarter */
    MUT_V_GROUPED,     /* value head h reads key head h mod H_k in HF order (the tiled order read
                          untransformed) */
    MUT_IMROPE_ALL,    /* every rotary pair turned, whatever the sections say */
} variant_t;

/* one layer in HF layout: matrices [n_out][n_in] */
typedef struct {
    double *an, *fn;                   /* input / post-attention norms, zero-centred */
    float *wqkv, *wz, *wb, *wa, *wout; /* DeltaNet */
    double *conv;                      /* [C][CK] */
    double *alog, *dtb, *snorm;        /* [HV], [HV], [DK] (snorm: plain weight) */
    float *wq, *wk, *wv, *wo;          /* attention (wq: per head q then gate) */
    double *qn, *kn;                   /* zero-centred */
    float *wg, *wu, *wd;               /* dense FFN or the shared expert */
    float *wr, *xg, *xu, *xd;          /* router [NE][E]; experts */
    double *sg;                        /* shared expert gate [E] */
} layer_t;

typedef struct {
    spec_t s;
    float *tok, *out;
    double *onorm;
    layer_t *l;
    variant_t var;
} ref_t;

static bool recurrent(const spec_t *s, int l) {
    return (l + 1) % s->every != 0;
}
static int conv_ch(const spec_t *s) {
    return 2 * s->HK * s->DK + s->HV * s->DK;
}

static float *fmat(int n_out, int n_in) {
    float *w = malloc(sizeof(float) * (size_t)n_out * (size_t)n_in);
    const float a = 1.0f / sqrtf((float)n_in);
    for (size_t i = 0; i < (size_t)n_out * (size_t)n_in; i++)
        w[i] = rnd_sym(a);
    return w;
}

/* file value head p holds HF head vperm(p): the converter's tiled order */
static int vperm(const spec_t *s, int p) {
    if (s->next) return p; /* qwen3next keeps HF's order */
    const int r = s->HV / s->HK;
    return (p % s->HK) * r + p / s->HK;
}
/* the file row / channel of the qkv (conv) channel c: q and k stay, v heads reorder */
static int qkv_file_of(const spec_t *s, int c) {
    const int qk = 2 * s->HK * s->DK;
    if (c < qk) return c;
    const int h = (c - qk) / s->DK, d = (c - qk) % s->DK;
    for (int p = 0; p < s->HV; p++)
        if (vperm(s, p) == h) return qk + p * s->DK + d;
    return -1;
}
static int vrow_file_of(const spec_t *s, int c,
                        int width) { /* rows of z (width DK) or a/b (width 1) */
    const int h = c / width, d = c % width;
    for (int p = 0; p < s->HV; p++)
        if (vperm(s, p) == h) return p * width + d;
    return -1;
}

/* HF rows → file rows by the map, rounded through the storage type in the
 * file's layout, and the rounded values put back in HF order */
static float *to_file_rows(const spec_t *s, float *hf, int n_out, int n_in, int kind, bool round) {
    float *f = malloc(sizeof(float) * (size_t)n_out * (size_t)n_in);
    for (int r = 0; r < n_out; r++) {
        const int fr = kind == 0   ? r
                       : kind == 1 ? qkv_file_of(s, r)
                                   : vrow_file_of(s, r, kind == 2 ? s->DK : 1);
        memcpy(f + (size_t)fr * n_in, hf + (size_t)r * n_in, sizeof(float) * (size_t)n_in);
    }
    if (round) {
        round_rows(f, n_out, n_in, s->wtype);
        for (int r = 0; r < n_out; r++) {
            const int fr = kind == 0   ? r
                           : kind == 1 ? qkv_file_of(s, r)
                                       : vrow_file_of(s, r, kind == 2 ? s->DK : 1);
            memcpy(hf + (size_t)r * n_in, f + (size_t)fr * n_in, sizeof(float) * (size_t)n_in);
        }
    }
    return f;
}
/* out_proj: columns reorder (its input is the value heads) */
static float *to_file_cols(const spec_t *s, float *hf, int n_out, int n_in) {
    float *f = malloc(sizeof(float) * (size_t)n_out * (size_t)n_in);
    for (int r = 0; r < n_out; r++)
        for (int c = 0; c < n_in; c++)
            f[(size_t)r * n_in + vrow_file_of(s, c, s->DK)] = hf[(size_t)r * n_in + c];
    round_rows(f, n_out, n_in, s->wtype);
    for (int r = 0; r < n_out; r++)
        for (int c = 0; c < n_in; c++)
            hf[(size_t)r * n_in + c] = f[(size_t)r * n_in + vrow_file_of(s, c, s->DK)];
    return f;
}

static void ref_init(ref_t *m, const spec_t *s, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->s = *s;
    rng_state = seed * 2654435761u + 1;
    const int E = s->E, C = conv_ch(s), VD = s->HV * s->DK, QD = s->H * s->D, KD = s->K * s->D;
    m->tok = fmat(s->V, E);
    for (size_t i = 0; i < (size_t)s->V * E; i++)
        m->tok[i] *= sqrtf((float)E); /* O(1) embeddings */
    round_rows(m->tok, s->V, E, s->wtype);
    m->out = fmat(s->V, E);
    round_rows(m->out, s->V, E, s->wtype);
    m->onorm = dvec(E, 0, 0.2);
    m->l = calloc((size_t)s->L, sizeof *m->l);
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
        L->an = dvec(E, 0, 0.2);
        L->fn = dvec(E, 0, 0.2);
        if (recurrent(s, l)) {
            L->wqkv = fmat(C, E);
            L->wz = fmat(VD, E);
            L->wb = fmat(s->HV, E);
            L->wa = fmat(s->HV, E);
            L->wout = fmat(E, VD);
            L->conv = dvec(C * s->CK, 0, 0.6);
            L->alog = dvec(s->HV, 0, 0.5);
            L->dtb = dvec(s->HV, -1, 0.5);
            L->snorm = dvec(s->DK, 1, 0.2);
        } else {
            L->wq = fmat(2 * QD, E);
            L->wk = fmat(KD, E);
            L->wv = fmat(KD, E);
            L->wo = fmat(E, QD);
            round_rows(L->wq, 2 * QD, E, s->wtype);
            round_rows(L->wk, KD, E, s->wtype);
            round_rows(L->wv, KD, E, s->wtype);
            round_rows(L->wo, E, QD, s->wtype);
            L->qn = dvec(s->D, 0, 0.2);
            L->kn = dvec(s->D, 0, 0.2);
        }
        const int FF = s->moe ? s->FS : s->F;
        L->wg = fmat(FF, E);
        L->wu = fmat(FF, E);
        L->wd = fmat(E, FF);
        round_rows(L->wg, FF, E, s->wtype);
        round_rows(L->wu, FF, E, s->wtype);
        round_rows(L->wd, E, FF, s->wtype);
        if (s->moe) {
            L->wr = fmat(s->NE, E);
            for (size_t i = 0; i < (size_t)s->NE * E; i++)
                L->wr[i] *= 4.0f; /* decisive routing */
            L->xg = fmat(s->NE * s->FE, E);
            L->xu = fmat(s->NE * s->FE, E);
            L->xd = fmat(s->NE * E, s->FE);
            round_rows(L->xg, s->NE * s->FE, E, s->wtype);
            round_rows(L->xu, s->NE * s->FE, E, s->wtype);
            round_rows(L->xd, s->NE * E, s->FE, s->wtype);
            L->sg = dvec(E, 0, 1.0 / sqrt(E));
        }
    }
}

static void ref_free(ref_t *m) {
    for (int l = 0; l < m->s.L; l++) {
        layer_t *L = &m->l[l];
        void *ps[] = {L->an,  L->fn,    L->wqkv, L->wz, L->wb, L->wa, L->wout, L->conv, L->alog,
                      L->dtb, L->snorm, L->wq,   L->wk, L->wv, L->wo, L->qn,   L->kn,   L->wg,
                      L->wu,  L->wd,    L->wr,   L->xg, L->xu, L->xd, L->sg};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            free(ps[i]);
    }
    free(m->l), free(m->tok), free(m->out), free(m->onorm);
}

/* ------------------------------------------------------------ the file */

static void add_vec(gguf_writer_t *w, const char *name, const double *v, int n, double plus) {
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        f[i] = (float)(v[i] + plus);
    const int64_t ne[1] = {n};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, 1, ne, f) == 0);
    free(f);
}

/* skip: a tensor name to leave out; bad: a tensor written with a wrong shape; the
 * keys overridable for the load-error cases (-1: as the spec says) */
typedef struct {
    const char *skip, *bad;
    long group_count, conv;
} write_opts_t;

static int write_model(ref_t *m, const char *path, const write_opts_t *o) {
    const spec_t *s = &m->s;
    const char *A = s->next ? "qwen3next" : s->moe ? "qwen35moe" : "qwen35";
    gguf_writer_t *w = gguf_writer_new();
    char key[128], n[96];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", A, k), key)
    CHECK(gguf_writer_set_str(w, "general.architecture", A) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("context_length"), 256) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->E) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->L) == 0);
    if (!s->moe) CHECK(gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)s->F) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->H) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->K) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s->D) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s->D) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s->NROT) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f) == 0);
    if (!s->next)
        CHECK(gguf_writer_set_arr(w, KEY("rope.dimension_sections"), GGUF_VT_INT32, s->sections,
                                  4) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.conv_kernel"),
                              (uint32_t)(o && o->conv >= 0 ? o->conv : s->CK)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.state_size"), (uint32_t)s->DK) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.group_count"),
                              (uint32_t)(o && o->group_count >= 0 ? o->group_count : s->HK)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.time_step_rank"), (uint32_t)s->HV) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.inner_size"), (uint32_t)(s->HV * s->DK)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("full_attention_interval"), (uint32_t)s->every) == 0);
    if (s->moe) {
        CHECK(gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->NE) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->KU) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)s->FE) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_shared_feed_forward_length"), (uint32_t)s->FS) ==
              0);
    }
#undef KEY
    const int E = s->E, C = conv_ch(s), VD = s->HV * s->DK, QD = s->H * s->D, KD = s->K * s->D;
    const sl_type_t t = s->wtype;
    add_mats(w, "token_embd.weight", m->tok, s->V, E, 1, t);
    add_mats(w, "output.weight", m->out, s->V, E, 1, t);
    add_vec(w, "output_norm.weight", m->onorm, E, 1);
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
#define T(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
#define SKIP(x) (T(x), o && o->skip && !strcmp(o->skip, n))
#define BAD(x) (T(x), o && o->bad && !strcmp(o->bad, n))
        if (!SKIP("attn_norm.weight")) add_vec(w, n, L->an, E, 1);
        if (!SKIP("post_attention_norm.weight")) add_vec(w, n, L->fn, E, 1);
        if (recurrent(s, l)) {
            float *f;
            const int r = s->HV / s->HK, RV = r * s->DK, HKD = s->HK * s->DK;
            if (s->legacy) { /* ssm_in: per key head g, [q_g | k_g | v of its r heads | z of them]
                              */
                const int G = 2 * s->DK + 2 * RV;
                f = malloc(sizeof(float) * (size_t)(C + VD) * E);
                float *hf[4] = {L->wqkv, L->wqkv, L->wqkv, L->wz};
                for (int pass = 0; pass < 2; pass++) { /* to the file, round there, back */
                    for (int g = 0; g < s->HK; g++)
                        for (int i = 0; i < G; i++) {
                            const int part = i < s->DK            ? 0
                                             : i < 2 * s->DK      ? 1
                                             : i < 2 * s->DK + RV ? 2
                                                                  : 3;
                            const int hr = part == 0   ? g * s->DK + i
                                           : part == 1 ? HKD + g * s->DK + i - s->DK
                                           : part == 2 ? 2 * HKD + g * RV + i - 2 * s->DK
                                                       : g * RV + i - 2 * s->DK - RV;
                            float *frow = f + (size_t)(g * G + i) * E,
                                  *hrow = hf[part] + (size_t)hr * E;
                            memcpy(pass ? hrow : frow, pass ? frow : hrow, sizeof(float) * E);
                        }
                    if (!pass) round_rows(f, C + VD, E, t);
                }
                if (!SKIP("ssm_in.weight")) add_mats(w, n, f, C + VD, E, 1, t);
                free(f);
            } else {
                f = to_file_rows(s, L->wqkv, C, E, 1, true);
                if (!SKIP("attn_qkv.weight")) add_mats(w, n, f, C, E, 1, t);
                free(f);
                f = to_file_rows(s, L->wz, VD, E, 2, true);
                if (!SKIP("attn_gate.weight")) add_mats(w, n, f, VD, E, 1, t);
                free(f);
            }
            if (s->next) { /* ssm_ba: per key head g, its r heads' b then their a */
                f = malloc(sizeof(float) * (size_t)2 * s->HV * E);
                for (int pass = 0; pass < 2; pass++) {
                    for (int g = 0; g < s->HK; g++)
                        for (int j = 0; j < 2 * r; j++) {
                            float *frow = f + (size_t)(g * 2 * r + j) * E;
                            float *hrow = (j < r ? L->wb : L->wa) + (size_t)(g * r + j % r) * E;
                            memcpy(pass ? hrow : frow, pass ? frow : hrow, sizeof(float) * E);
                        }
                    if (!pass) round_rows(f, 2 * s->HV, E, t);
                }
                if (!SKIP("ssm_ba.weight")) add_mats(w, n, f, 2 * s->HV, E, 1, t);
                free(f);
            } else {
                f = to_file_rows(s, L->wb, s->HV, E, 3, true);
                if (!SKIP("ssm_beta.weight")) add_mats(w, n, f, s->HV, E, 1, t);
                free(f);
                f = to_file_rows(s, L->wa, s->HV, E, 3, true);
                if (!SKIP("ssm_alpha.weight")) add_mats(w, n, f, s->HV, E, 1, t);
                free(f);
            }
            f = to_file_cols(s, L->wout, E, VD);
            if (!SKIP("ssm_out.weight")) add_mats(w, n, f, E, VD, 1, t);
            free(f);
            /* conv [C][CK] → file [K, C] (C rows of CK), channels reordered; F32 */
            float *cf = malloc(sizeof(float) * (size_t)C * (size_t)s->CK);
            for (int c = 0; c < C; c++)
                for (int k = 0; k < s->CK; k++)
                    cf[(size_t)qkv_file_of(s, c) * s->CK + k] =
                        (float)L->conv[(size_t)c * s->CK + k];
            for (int c = 0; c < C; c++) /* the reference uses the float values */
                for (int k = 0; k < s->CK; k++)
                    L->conv[(size_t)c * s->CK + k] = cf[(size_t)qkv_file_of(s, c) * s->CK + k];
            if (!SKIP("ssm_conv1d.weight")) {
                const int64_t ne[2] = {s->CK,
                                       BAD("ssm_conv1d.weight") ? C - 1 : C}; /* n stays the name */
                CHECK(gguf_writer_add_tensor(w, n, SL_TYPE_F32, 2, ne, cf) == 0);
            }
            free(cf);
            double *a = malloc(sizeof(double) * (size_t)s->HV),
                   *dt = malloc(sizeof(double) * (size_t)s->HV);
            for (int p = 0; p < s->HV; p++) {
                a[p] = -exp(L->alog[vperm(s, p)]);
                dt[p] = L->dtb[vperm(s, p)];
            }
            if (!SKIP("ssm_a")) add_vec(w, n, a, s->HV, 0);
            if (!SKIP("ssm_dt.bias")) add_vec(w, n, dt, s->HV, 0);
            free(a), free(dt);
            if (!SKIP("ssm_norm.weight")) add_vec(w, n, L->snorm, s->DK, 0);
        } else {
            if (!SKIP("attn_q.weight"))
                add_mats(w, n, L->wq, BAD("attn_q.weight") ? QD : 2 * QD, E, 1, t); /* n: the name */
            if (!SKIP("attn_k.weight")) add_mats(w, n, L->wk, KD, E, 1, t);
            if (!SKIP("attn_v.weight")) add_mats(w, n, L->wv, KD, E, 1, t);
            if (!SKIP("attn_output.weight")) add_mats(w, n, L->wo, E, QD, 1, t);
            if (!SKIP("attn_q_norm.weight")) add_vec(w, n, L->qn, s->D, 1);
            if (!SKIP("attn_k_norm.weight")) add_vec(w, n, L->kn, s->D, 1);
        }
        if (s->moe) {
            add_mats(w, T("ffn_gate_inp.weight"), L->wr, s->NE, E, 1, SL_TYPE_F32);
            add_mats(w, T("ffn_gate_exps.weight"), L->xg, s->FE, E, s->NE, t);
            add_mats(w, T("ffn_up_exps.weight"), L->xu, s->FE, E, s->NE, t);
            add_mats(w, T("ffn_down_exps.weight"), L->xd, E, s->FE, s->NE, t);
            if (!SKIP("ffn_gate_inp_shexp.weight")) add_vec(w, n, L->sg, E, 0);
            add_mats(w, T("ffn_gate_shexp.weight"), L->wg, s->FS, E, 1, t);
            add_mats(w, T("ffn_up_shexp.weight"), L->wu, s->FS, E, 1, t);
            add_mats(w, T("ffn_down_shexp.weight"), L->wd, E, s->FS, 1, t);
        } else {
            add_mats(w, T("ffn_gate.weight"), L->wg, s->F, E, 1, t);
            add_mats(w, T("ffn_up.weight"), L->wu, s->F, E, 1, t);
            add_mats(w, T("ffn_down.weight"), L->wd, E, s->F, 1, t);
        }
#undef T
#undef SKIP
#undef BAD
    }
    char err[256];
    const int rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ the reference */

static double sigm(double x) {
    return 1 / (1 + exp(-x));
}

/* rotate-halves RoPE over the first nrot dims of each head (Qwen3.5's
 * partial rotary) at text positions, as llama.cpp's IMROPE turns them: pair
 * i by the position of axis i mod sum(sections) mod 3 when below 3 × that
 * axis's section (t, h, w: the token's position), else by axis e's (0 for
 * text: not turned); sec NULL: every pair turned */
static void rope(double *v, int n_heads, int D, int nrot, int pos, const int *sec) {
    const int sum = sec ? sec[0] + sec[1] + sec[2] + sec[3] : 0;
    for (int h = 0; h < n_heads; h++) {
        double *x = v + (size_t)h * D;
        for (int i = 0; i < nrot / 2; i++) {
            if (sec && (i % sum) >= 3 * sec[(i % sum) % 3]) continue;
            const double th = pos * pow(10000.0, -2.0 * i / nrot);
            const double a = x[i], b = x[i + nrot / 2];
            x[i] = a * cos(th) - b * sin(th);
            x[i + nrot / 2] = a * sin(th) + b * cos(th);
        }
    }
}

/* logits of every position of n tokens of one sequence (out: n × V) */
static void ref_forward(const ref_t *m, const int32_t *tok, int n, double *out) {
    const spec_t *s = &m->s;
    const int E = s->E, C = conv_ch(s), DK = s->DK, HK = s->HK, HV = s->HV, D = s->D, H = s->H,
              K = s->K;
    const int QD = H * D, KD = K * D, r = HV / HK;
    double *x = malloc(sizeof(double) * E), *xn = malloc(sizeof(double) * E),
           *y = malloc(sizeof(double) * E);
    double *mix = malloc(sizeof(double) * C), *cv = malloc(sizeof(double) * C);
    double *z = malloc(sizeof(double) * HV * DK), *o = malloc(sizeof(double) * HV * DK);
    double *bb = malloc(sizeof(double) * HV), *aa = malloc(sizeof(double) * HV);
    double *hist = calloc((size_t)s->L * n * C, sizeof(double));     /* conv inputs */
    double *S = calloc((size_t)s->L * HV * DK * DK, sizeof(double)); /* [Dk][Dv] per head */
    double *kc = malloc(sizeof(double) * s->L * n * KD),
           *vc = malloc(sizeof(double) * s->L * n * KD);
    double *qg = malloc(sizeof(double) * 2 * QD), *q = malloc(sizeof(double) * QD),
           *g = malloc(sizeof(double) * QD);
    double *att = malloc(sizeof(double) * QD), *sc = malloc(sizeof(double) * n);
    const int FF = s->moe ? SL_MAX(s->FS, s->FE) : s->F;
    double *fg = malloc(sizeof(double) * FF), *fu = malloc(sizeof(double) * FF),
           *acc = malloc(sizeof(double) * E);
    double *lg = malloc(sizeof(double) * (s->moe ? s->NE : 1));
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < E; i++)
            x[i] = m->tok[(size_t)tok[t] * E + i];
        for (int l = 0; l < s->L; l++) {
            const layer_t *L = &m->l[l];
            ref_rms(xn, x, E, L->an, 1);
            if (recurrent(s, l)) {
                double *hl = hist + (size_t)l * n * C;
                matvec(mix, L->wqkv, xn, C, E);
                memcpy(hl + (size_t)t * C, mix, sizeof(double) * C);
                for (int c = 0; c < C; c++) { /* causal depthwise conv, zero history */
                    double a = 0;
                    for (int k = 0; k < s->CK; k++) {
                        const int p = t - (s->CK - 1) + k;
                        if (p < 0 || (m->var == MUT_CONV_NO_STATE && p != t)) continue;
                        a += L->conv[(size_t)c * s->CK + k] * hl[(size_t)p * C + c];
                    }
                    cv[c] = ref_silu(a);
                }
                matvec(z, L->wz, xn, HV * DK, E);
                matvec(bb, L->wb, xn, HV, E);
                matvec(aa, L->wa, xn, HV, E);
                for (int hk = 0; hk < 2 * HK; hk++) { /* q then k heads */
                    double *v = cv + (size_t)hk * DK, ss = 0;
                    for (int d = 0; d < DK; d++)
                        ss += v[d] * v[d];
                    const double f = m->var == MUT_NO_L2 ? 1.0 : 1.0 / fmax(sqrt(ss), 1e-6);
                    for (int d = 0; d < DK; d++)
                        v[d] *= f * (hk < HK ? 1.0 / sqrt(DK) : 1.0);
                }
                for (int h = 0; h < HV; h++) {
                    const int kh = m->var == MUT_V_GROUPED ? h % HK : h / r; /* repeat_interleave */
                    const double *qh = cv + (size_t)kh * DK, *kk = cv + (size_t)(HK + kh) * DK;
                    const double *vv = cv + (size_t)2 * HK * DK + (size_t)h * DK;
                    const double sp =
                        aa[h] + L->dtb[h] > 20 ? aa[h] + L->dtb[h] : log1p(exp(aa[h] + L->dtb[h]));
                    const double gg = (m->var == MUT_GATE_SIGN ? 1.0 : -1.0) * exp(L->alog[h]) * sp;
                    const double beta = sigm(bb[h]);
                    double *Sh = S + ((size_t)l * HV + h) * DK * DK; /* [i: key][j: value] */
                    for (int i = 0; i < DK * DK; i++)
                        Sh[i] *= exp(gg);
                    for (int j = 0; j < DK; j++) {
                        double mem = 0;
                        for (int i = 0; i < DK; i++)
                            mem += Sh[i * DK + j] * kk[i];
                        const double delta = (vv[j] - mem) * beta;
                        for (int i = 0; i < DK; i++)
                            Sh[i * DK + j] += kk[i] * delta;
                    }
                    double *oh = o + (size_t)h * DK;
                    for (int j = 0; j < DK; j++) {
                        double a = 0;
                        for (int i = 0; i < DK; i++)
                            a += Sh[i * DK + j] * qh[i];
                        oh[j] = a;
                    }
                    ref_rms(oh, oh, DK, L->snorm, 0);
                    for (int j = 0; j < DK; j++)
                        oh[j] *= ref_silu(z[(size_t)h * DK + j]);
                }
                matvec(y, L->wout, o, E, HV * DK);
            } else {
                const int kl = (l + 1) / s->every - 1;
                double *kt = kc + ((size_t)kl * n + t) * KD, *vt = vc + ((size_t)kl * n + t) * KD;
                matvec(qg, L->wq, xn, 2 * QD, E);
                for (int h = 0; h < H; h++) {
                    memcpy(q + (size_t)h * D, qg + (size_t)h * 2 * D, sizeof(double) * D);
                    memcpy(g + (size_t)h * D, qg + (size_t)h * 2 * D + D, sizeof(double) * D);
                    ref_rms(q + (size_t)h * D, q + (size_t)h * D, D, L->qn, 1);
                }
                matvec(kt, L->wk, xn, KD, E);
                matvec(vt, L->wv, xn, KD, E);
                for (int h = 0; h < K; h++)
                    ref_rms(kt + (size_t)h * D, kt + (size_t)h * D, D, L->kn, 1);
                const int nr = m->var == MUT_ROPE_FULL ? D : s->NROT;
                const int *sec = s->next || m->var == MUT_IMROPE_ALL || m->var == MUT_ROPE_FULL
                                     ? NULL
                                     : s->sections;
                rope(q, H, D, nr, t, sec);
                rope(kt, K, D, nr, t, sec);
                for (int h = 0; h < H; h++) {
                    const int kh = h / (H / K);
                    double mx = -INFINITY, sum = 0;
                    for (int p = 0; p <= t; p++) {
                        const double *kp = kc + ((size_t)kl * n + p) * KD + (size_t)kh * D;
                        double d = 0;
                        for (int i = 0; i < D; i++)
                            d += q[(size_t)h * D + i] * kp[i];
                        sc[p] = d / sqrt(D);
                        mx = fmax(mx, sc[p]);
                    }
                    for (int p = 0; p <= t; p++)
                        sum += (sc[p] = exp(sc[p] - mx));
                    for (int i = 0; i < D; i++) {
                        double a = 0;
                        for (int p = 0; p <= t; p++)
                            a += sc[p] * vc[((size_t)kl * n + p) * KD + (size_t)kh * D + i];
                        att[(size_t)h * D + i] =
                            a / sum *
                            (m->var == MUT_NO_OUT_GATE ? 1.0 : sigm(g[(size_t)h * D + i]));
                    }
                }
                matvec(y, L->wo, att, E, QD);
            }
            for (int i = 0; i < E; i++)
                x[i] += y[i];
            ref_rms(xn, x, E, L->fn, 1);
            memset(acc, 0, sizeof(double) * E);
            if (s->moe) { /* softmax over all, top k, renormalized; + sigmoid(sg · xn) · shared */
                double mx = -INFINITY, z0 = 0, wsum = 0;
                matvec(lg, L->wr, xn, s->NE, E);
                for (int e = 0; e < s->NE; e++)
                    mx = fmax(mx, lg[e]);
                for (int e = 0; e < s->NE; e++)
                    z0 += (lg[e] = exp(lg[e] - mx));
                int pick[16];
                double pw[16];
                for (int j = 0; j < s->KU; j++) {
                    int best = -1;
                    for (int e = 0; e < s->NE; e++) {
                        bool taken = false;
                        for (int q2 = 0; q2 < j; q2++)
                            taken |= pick[q2] == e;
                        if (!taken && (best < 0 || lg[e] > lg[best])) best = e;
                    }
                    pick[j] = best;
                    wsum += (pw[j] = lg[best] / z0);
                }
                for (int j = 0; j < s->KU; j++) {
                    const int e = pick[j];
                    matvec(fg, L->xg + (size_t)e * s->FE * E, xn, s->FE, E);
                    matvec(fu, L->xu + (size_t)e * s->FE * E, xn, s->FE, E);
                    for (int i = 0; i < s->FE; i++)
                        fg[i] = ref_silu(fg[i]) * fu[i];
                    matvec(y, L->xd + (size_t)e * E * s->FE, fg, E, s->FE);
                    for (int i = 0; i < E; i++)
                        acc[i] += pw[j] / wsum * y[i];
                }
                double gs = 0;
                for (int i = 0; i < E; i++)
                    gs += L->sg[i] * xn[i];
                matvec(fg, L->wg, xn, s->FS, E);
                matvec(fu, L->wu, xn, s->FS, E);
                for (int i = 0; i < s->FS; i++)
                    fg[i] = ref_silu(fg[i]) * fu[i];
                matvec(y, L->wd, fg, E, s->FS);
                for (int i = 0; i < E; i++)
                    acc[i] += sigm(gs) * y[i];
            } else {
                matvec(fg, L->wg, xn, s->F, E);
                matvec(fu, L->wu, xn, s->F, E);
                for (int i = 0; i < s->F; i++)
                    fg[i] = ref_silu(fg[i]) * fu[i];
                matvec(acc, L->wd, fg, E, s->F);
            }
            for (int i = 0; i < E; i++)
                x[i] += acc[i];
        }
        ref_rms(xn, x, E, m->onorm, 1);
        matvec(out + (size_t)t * s->V, m->out, xn, s->V, E);
    }
    free(x), free(xn), free(y), free(mix), free(cv), free(z), free(o), free(bb), free(aa),
        free(hist), free(S);
    free(kc), free(vc), free(qg), free(q), free(g), free(att), free(sc), free(fg), free(fu),
        free(acc), free(lg);
}

/* ------------------------------------------------------------ the cases */

static void check_hparams(const sl_model_t *m, const spec_t *s) {
    const sl_hparams_t *hp = model_hparams(m);
    CHECK(hp->n_layer == s->L && hp->full_attn_interval == s->every &&
          hp->n_layer_kv == s->L / s->every);
    CHECK(model_state_floats(m) ==
          (size_t)(s->L - s->L / s->every) *
              ((size_t)(s->CK - 1) * conv_ch(s) + (size_t)s->HV * s->DK * s->DK));
}

#define MODEL_CASES_NAME "qwen35"
#include "model_cases.h"

static spec_t dense_spec(void) {
    return (spec_t){.V = 96,
                    .E = 48,
                    .L = 6,
                    .H = 4,
                    .K = 2,
                    .D = 32,
                    .F = 64,
                    .every = 3,
                    .NROT = 8,
                    .DK = 16,
                    .HK = 2,
                    .HV = 6,
                    .CK = 4,
                    .sections = {11, 11, 10, 0},
                    .wtype = SL_TYPE_F32};
}
static spec_t moe_spec(void) {
    spec_t s = dense_spec();
    s.moe = true, s.NE = 6, s.KU = 2, s.FE = 24, s.FS = 40, s.L = 4, s.every = 2;
    return s;
}

static void test_dense(void) {
    spec_t s = dense_spec();
    run_case("qwen35 f32", &s, 1e-4, 1);
    run_case("qwen35 f32 3 threads", &s, 1e-4, 3);
    s.HV = 2; /* one value head per key head */
    s.K = 4;  /* MHA */
    run_case("qwen35 f32 HV = HK, MHA", &s, 1e-4, 2);
    s = dense_spec();
    s.wtype = SL_TYPE_Q8_0; /* rows a whole number of 32-blocks */
    s.E = 64, s.DK = 32, s.HV = 4;
    run_case("qwen35 q8_0", &s, 3e-2, 2);
    s = dense_spec();
    s.CK = 2, s.every = 2, s.L = 4;
    run_case("qwen35 conv 2, every 2nd", &s, 1e-4, 2);
}

/* Qwen3-Next: HF's grouped V heads, ssm_ba, NEOX RoPE; the split
 * attn_qkv / attn_gate of the current converter and the older fused ssm_in */
static void test_next(void) {
    spec_t s = moe_spec();
    s.next = true;
    run_case("qwen3next f32", &s, 1e-4, 2);
    s.legacy = true;
    run_case("qwen3next ssm_in f32", &s, 1e-4, 1);
    s.wtype = SL_TYPE_Q8_0;
    s.E = 64, s.DK = 32, s.HV = 4, s.FE = 32, s.FS = 64;
    run_case("qwen3next ssm_in q8_0", &s, 3e-2, 2);
}

static void test_moe(void) {
    spec_t s = moe_spec();
    run_case("qwen35moe f32", &s, 1e-4, 2);
    s.wtype = SL_TYPE_Q8_0;
    s.E = 64, s.DK = 32, s.HV = 4, s.FE = 32, s.FS = 64;
    run_case("qwen35moe q8_0", &s, 3e-2, 1);
}

/* Each mutated reference is far from the model (which matches the right one). */
static void test_mutations(void) {
    static const mutation_t muts[] = {{MUT_GATE_SIGN, "gate sign"},
                                      {MUT_NO_L2, "no L2 norm"},
                                      {MUT_CONV_NO_STATE, "conv without state"},
                                      {MUT_NO_OUT_GATE, "no output gate"},
                                      {MUT_ROPE_FULL, "rope over the whole head"},
                                      {MUT_V_GROUPED, "V heads grouped"}};
    const spec_t s = dense_spec();
    check_mutations(&s, 4242, 3, muts, sizeof muts / sizeof muts[0]);
}

/* Sequences at different positions in one model_forward_batch over a
 * paged cache, each with its own state, give what each gives alone. */
static void test_batch(void) {
    const spec_t s = dense_spec();
    check_batch(&s, "batch of 3 vs alone", NULL);
}

static void test_validation(void) {
    const spec_t s = dense_spec(), sm = moe_spec();
    expect_load_error(&s, &(write_opts_t){.skip = "blk.0.ssm_a", .group_count = -1, .conv = -1},
                      "blk.0.ssm_a");
    expect_load_error(
        &s, &(write_opts_t){.skip = "blk.1.attn_gate.weight", .group_count = -1, .conv = -1},
        "blk.1.attn_gate.weight");
    expect_load_error(
        &s, &(write_opts_t){.bad = "blk.0.ssm_conv1d.weight", .group_count = -1, .conv = -1},
        "blk.0.ssm_conv1d.weight");
    expect_load_error(&s,
                      &(write_opts_t){.bad = "blk.2.attn_q.weight", .group_count = -1, .conv = -1},
                      "blk.2.attn_q.weight");
    expect_load_error(
        &s, &(write_opts_t){.skip = "blk.2.attn_q_norm.weight", .group_count = -1, .conv = -1},
        "attn_q_norm");
    expect_load_error(&s, &(write_opts_t){.group_count = 4, .conv = -1}, "group_count");
    expect_load_error(&s, &(write_opts_t){.group_count = 0, .conv = -1}, "group_count");
    expect_load_error(&s, &(write_opts_t){.group_count = -1, .conv = 0}, "conv_kernel");
    expect_load_error(&s, &(write_opts_t){.group_count = -1, .conv = 3}, "ssm_conv1d");
    expect_load_error(
        &sm,
        &(write_opts_t){.skip = "blk.0.ffn_gate_inp_shexp.weight", .group_count = -1, .conv = -1},
        "ffn_gate_inp_shexp");
    spec_t sn = moe_spec();
    sn.next = true;
    expect_load_error(&sn,
                      &(write_opts_t){.skip = "blk.0.ssm_ba.weight", .group_count = -1, .conv = -1},
                      "blk.0.ssm_ba.weight");
    sn.legacy = true; /* neither ssm_in nor attn_qkv */
    expect_load_error(&sn,
                      &(write_opts_t){.skip = "blk.0.ssm_in.weight", .group_count = -1, .conv = -1},
                      "blk.0.attn_qkv.weight");
}

/* llama.cpp's IMROPE on text positions: pairs whose section falls to the
 * fourth axis (position 0 for text) are not rotated. With sections
 * [0, 1, 1] and 4 pairs, pairs 0 and 2 stay; the reference built with
 * those two pairs unrotated matches, the plain one does not. */
static void test_imrope_sections(void) {
    spec_t s = dense_spec();
    s.sections[0] = 0, s.sections[1] = 1, s.sections[2] = 1, s.sections[3] = 0;
    ref_t rm;
    sl_model_t *m = load_ref(&rm, &s, 31337);
    if (!m) {
        ref_free(&rm);
        return;
    }
    char err[SL_ERR_MAX] = "";
    int32_t toks[N_TOK];
    make_tokens(toks, N_TOK, s.V, 5);
    float *got = malloc(sizeof(float) * N_TOK * s.V);
    double *want = malloc(sizeof(double) * N_TOK * s.V);
    sl_kv_t *kv = model_kv_new(m, N_TOK, SL_TYPE_F32, err, sizeof err);
    CHECK(model_forward(m, NULL, kv, toks, N_TOK, got, true, err, sizeof err) == 0);
    ref_forward(&rm, toks, N_TOK, want);
    const double e = test_rel_err(got, want, (size_t)N_TOK * s.V);
    CHECK_MSG(e <= 1e-4, "sections [0,1,1]: rel err %.3g", e);
    rm.var = MUT_IMROPE_ALL;
    ref_forward(&rm, toks, N_TOK, want);
    const double e_all = test_rel_err(got, want, (size_t)N_TOK * s.V);
    CHECK_MSG(e_all > 1e-3, "sections [0,1,1]: the model turns every pair (rel err %.3g)", e_all);
    fprintf(stderr, "     sections [0,1,1]                 rel err %.2e (all pairs: %.2e)\n", e,
            e_all);
    model_kv_free(kv);
    model_free(m);
    free(got), free(want);
    ref_free(&rm);
    unlink(model_path());
}

/* silica quantize: the conv kernel, ssm_a, dt bias and norms stay F32; the
 * quantized model is close to the F32 one */
static void test_quantize(void) {
    model_qplan_t p;
    char err[SL_ERR_MAX];
    CHECK(model_qplan_init(&p, "q4_K_M", 8, 2, false, err, sizeof err) == 0);
    CHECK(model_qplan_type(&p, "blk.0.ssm_conv1d.weight", 2, 4) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_a", 1, 8) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_dt.bias", 1, 8) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_norm.weight", 1, 256) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_out.weight", 2, 256) != SL_TYPE_F32);
    spec_t s = dense_spec();
    s.E = 256; /* rows a whole number of 256-blocks */
    s.DK = 32, s.HK = 2, s.HV = 4;
    ref_t rm;
    ref_init(&rm, &s, 5);
    static const char *const f32s[] = {"blk.0.ssm_conv1d.weight"};
    check_quantize(&rm, f32s, sizeof f32s / sizeof f32s[0], "blk.0.attn_qkv.weight", SL_TYPE_F32,
                   "quantized q8_0");
    ref_free(&rm);
}

/* A prefill longer than the model's internal step (256 tokens) carries the
 * state from step to step: the last logits equal the reference's. */
static void test_long_prefill(void) {
    const spec_t s = dense_spec();
    check_long_prefill(&s, false);
}

int main(void) {
    sl_kernels_init();
    RUN(test_dense);
    RUN(test_moe);
    RUN(test_next);
    RUN(test_mutations);
    RUN(test_batch);
    RUN(test_long_prefill);
    RUN(test_validation);
    RUN(test_imrope_sections);
    RUN(test_quantize);
    return test_summary();
}
