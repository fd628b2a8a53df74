/* deps: base gguf kernels model */
/*
 * test_mamba.c — the Mamba-2 hybrid architecture granitehybrid (IBM
 * Granite 4.0 H) against an independent reference written here plainly,
 * in double precision, token by token, in the Hugging Face convention
 * (GraniteMoeHybrid / Mamba2Mixer.torch_forward: in_proj rows [z | xBC |
 * dt], a depthwise causal conv [C][K] with bias and SiLU, dt =
 * softplus(dt + dt_bias), A = -exp(A_log), a [head_dim][d_state] state
 * per head, B and C repeat_interleave'd over a group's heads, the D skip,
 * MambaRMSNormGated: rmsnorm(y · ref_silu(z)) per group of d_inner / n_group;
 * Granite's embedding, attention, residual and logit scales).
 *
 * The test writes the weights as llama.cpp's converter does (ssm_a =
 * -exp(A_log) as [1, heads], ssm_d [1, heads], ssm_norm [d_inner / n_group,
 * n_group], the conv squeezed to [K, C], head_count_kv an array with 0 for
 * each Mamba-2 layer, q / k rows in llama's permuted order: the reference's
 * RoPE turns adjacent pairs of the file's rows, which is HF's rotate-half
 * on the unpermuted ones).
 *
 * nemotron_h (NVIDIA Nemotron-H) is the same mixer in its own layer
 * rhythm: each layer one sublayer after its norm — Mamba-2, attention
 * without RoPE, or an MLP down(relu(up x + b)²) + b — with per-layer
 * head_count_kv and feed_forward_length arrays telling them apart.
 *
 * Cases: prefill at once, token by token, chunks smaller than the conv
 * width; F32 and q8_0 weights; dense FFN and experts with the shared
 * expert; RoPE on and off; several threads; a batch of sequences at
 * different positions over the paged cache = each alone; a prefill longer
 * than the model's step; mutated references (no D skip, dt without its
 * bias, dt without softplus, a conv without its state, the norm ungated,
 * the norm over all of d_inner, B/C groups tiled instead of interleaved)
 * that the model must be far from; load errors; the quantizer keeping the
 * conv, A, D, dt bias and norms F32.
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

typedef struct {
    bool moe, rope;
    int V, E, L, H, K, D, F;
    unsigned attn_mask;     /* bit l: layer l is an attention layer */
    int NG, DS, NH, HD, CK; /* Mamba-2: groups, state size, heads, head size, conv width */
    int NE, KU, FE, FS;
    double es, as, rs, ls; /* granite scales: embedding, attention, residual, logit */
    /* nemotron_h: layer l is pattern[l] — 'M' Mamba-2, '*' attention, '-' an MLP
     * (relu² with biases, feed_forward_length[l] = F + 32·(l mod 2)) — each one sublayer;
     * NULL: granitehybrid (attn_mask) */
    const char *pattern;
    sl_type_t wtype;
} spec_t;

typedef enum {
    REF_OK,
    MUT_NO_D,           /* no D skip */
    MUT_DT_NO_BIAS,     /* softplus(dt) without dt_bias */
    MUT_DT_NO_SOFTPLUS, /* dt + dt_bias used raw */
    MUT_CONV_NO_STATE,  /* the conv sees only the current token */
    MUT_UNGATED_NORM,   /* rmsnorm(y), no ref_silu(z) */
    MUT_NORM_WHOLE,     /* the gated norm over all of d_inner */
    MUT_GROUP_TILED,    /* head h reads group h mod n_group */
    MUT_RELU_PLAIN,     /* nemotron_h's MLP with relu, not relu² */
    MUT_NO_SEL_BIAS,    /* nemotron_h_moe's experts chosen without the selection bias */
} variant_t;

typedef struct {
    double *an, *fn;
    float *win, *wout; /* Mamba-2: in_proj [VD + C + NH][E], out_proj [E][VD] */
    double *conv, *convb, *alog, *dtb, *dskip, *snorm;
    float *wq, *wk, *wv, *wo;
    float *wg, *wu, *wd;
    float *wr, *xg, *xu, *xd;
    double *bu, *bd; /* nemotron_h's MLP biases */
    double *eb;      /* nemotron_h_moe: the experts' selection bias */
} layer_t;

typedef struct {
    spec_t s;
    float *tok, *out;
    double *onorm;
    layer_t *l;
    variant_t var;
} ref_t;

static bool is_attn(const spec_t *s, int l) {
    return s->pattern ? s->pattern[l] == '*' : (s->attn_mask >> l) & 1u;
}
static bool is_mlp(const spec_t *s, int l) { /* '-' an MLP, 'E' (nemotron_h_moe) a MoE layer */
    return s->pattern && (s->pattern[l] == '-' || s->pattern[l] == 'E');
}
static bool is_moe_layer(const spec_t *s, int l) {
    return s->pattern && s->pattern[l] == 'E';
}
static bool is_mamba(const spec_t *s, int l) {
    return !is_attn(s, l) && !is_mlp(s, l);
}
static int ff_of(const spec_t *s,
                 int l) { /* nemotron_h: MLP layers of two widths (32-multiples for q8_0) */
    return s->F + 32 * (l % 2);
}
static int vd(const spec_t *s) {
    return s->NH * s->HD;
}
static int conv_ch(const spec_t *s) {
    return vd(s) + 2 * s->NG * s->DS;
}
static int n_attn(const spec_t *s) {
    int n = 0;
    for (int l = 0; l < s->L; l++)
        n += is_attn(s, l);
    return n;
}

static float *fmat(int n_out, int n_in, sl_type_t t) {
    float *w = malloc(sizeof(float) * (size_t)n_out * (size_t)n_in);
    const float a = 1.0f / sqrtf((float)n_in);
    for (size_t i = 0; i < (size_t)n_out * (size_t)n_in; i++)
        w[i] = rnd_sym(a);
    round_rows(w, n_out, n_in, t);
    return w;
}
/* values as the F32 file holds them */
static void to_f32(double *v, int n) {
    for (int i = 0; i < n; i++)
        v[i] = (float)v[i];
}

static void ref_init(ref_t *m, const spec_t *s, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->s = *s;
    rng_state = seed * 2654435761u + 1;
    const sl_type_t t = s->wtype;
    const int E = s->E, C = conv_ch(s), VD = vd(s), QD = s->H * s->D, KD = s->K * s->D;
    m->tok = fmat(s->V, E, SL_TYPE_F32);
    for (size_t i = 0; i < (size_t)s->V * E; i++)
        m->tok[i] *= sqrtf((float)E);
    round_rows(m->tok, s->V, E, t);
    m->out = fmat(s->V, E, t);
    m->onorm = dvec(E, 1, 0.2);
    to_f32(m->onorm, E);
    m->l = calloc((size_t)s->L, sizeof *m->l);
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
        L->an = dvec(E, 1, 0.2), L->fn = dvec(E, 1, 0.2);
        to_f32(L->an, E), to_f32(L->fn, E);
        if (is_moe_layer(s, l)) {
            /* a router unscaled (sigmoid saturates) and a wide selection bias: decisive choices */
            L->wr = fmat(s->NE, E, SL_TYPE_F32);
            L->eb = dvec(s->NE, 0, 2.0);
            to_f32(L->eb, s->NE);
            L->xu = fmat(s->NE * s->FE, E, t), L->xd = fmat(s->NE * E, s->FE, t);
            L->wu = fmat(s->FS, E, t), L->wd = fmat(E, s->FS, t);
            continue;
        }
        if (is_mlp(s, l)) {
            L->wu = fmat(ff_of(s, l), E, t), L->wd = fmat(E, ff_of(s, l), t);
            L->bu = dvec(ff_of(s, l), 0, 0.3), L->bd = dvec(E, 0, 0.3);
            to_f32(L->bu, ff_of(s, l)), to_f32(L->bd, E);
            continue;
        }
        if (!is_attn(s, l)) {
            L->win = fmat(VD + C + s->NH, E, t);
            L->wout = fmat(E, VD, t);
            L->conv = dvec(C * s->CK, 0, 0.6), L->convb = dvec(C, 0, 0.3);
            L->alog = dvec(s->NH, 0, 0.5), L->dtb = dvec(s->NH, -1, 0.5);
            L->dskip = dvec(s->NH, 1, 0.5), L->snorm = dvec(VD, 1, 0.2);
            to_f32(L->conv, C * s->CK), to_f32(L->convb, C), to_f32(L->dtb, s->NH);
            to_f32(L->dskip, s->NH), to_f32(L->snorm, VD);
        } else {
            L->wq = fmat(QD, E, t), L->wk = fmat(KD, E, t), L->wv = fmat(KD, E, t),
            L->wo = fmat(E, QD, t);
        }
        if (s->pattern) continue; /* nemotron_h: no FFN in a mixer layer */
        const int FF = s->moe ? s->FS : s->F;
        L->wg = fmat(FF, E, t), L->wu = fmat(FF, E, t), L->wd = fmat(E, FF, t);
        if (s->moe) {
            L->wr = fmat(s->NE, E, SL_TYPE_F32);
            for (size_t i = 0; i < (size_t)s->NE * E; i++)
                L->wr[i] *= 4.0f; /* decisive routing */
            L->xg = fmat(s->NE * s->FE, E, t), L->xu = fmat(s->NE * s->FE, E, t);
            L->xd = fmat(s->NE * E, s->FE, t);
        }
    }
}

static void ref_free(ref_t *m) {
    for (int l = 0; l < m->s.L; l++) {
        layer_t *L = &m->l[l];
        void *ps[] = {L->an,    L->fn,    L->win, L->wout, L->conv, L->convb, L->alog, L->dtb,
                      L->dskip, L->snorm, L->wq,  L->wk,   L->wv,   L->wo,    L->wg,   L->wu,
                      L->wd,    L->wr,    L->xg,  L->xu,   L->xd,   L->bu,    L->bd,   L->eb};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            free(ps[i]);
    }
    free(m->l), free(m->tok), free(m->out), free(m->onorm);
}

/* ------------------------------------------------------------ the file */

/* an F32 tensor of n0 × n1 values (n1 = 0: 1-D) */
static void add_f32(gguf_writer_t *w, const char *name, const double *v, int n0, int n1) {
    const int n = n0 * (n1 ? n1 : 1);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        f[i] = (float)v[i];
    const int64_t ne[2] = {n0, n1};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, n1 ? 2 : 1, ne, f) == 0);
    free(f);
}

typedef struct {
    const char *skip, *bad; /* a tensor left out / written one row short */
    bool kv_scalar;         /* head_count_kv written as a scalar */
    int both;               /* nemotron_h: layer both - 1 given a feed_forward_length too */
    int groups;             /* ssm.group_count override (0: the spec's) */
} write_opts_t;

static int write_model(ref_t *m, const char *path, const write_opts_t *o) {
    const spec_t *s = &m->s;
    const char *A = s->pattern ? (s->moe ? "nemotron_h_moe" : "nemotron_h") : "granitehybrid";
    gguf_writer_t *w = gguf_writer_new();
    char key[128], n[96];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", A, k), key)
    CHECK(gguf_writer_set_str(w, "general.architecture", A) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("context_length"), 1024) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->E) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->L) == 0);
    if (s->pattern) { /* per layer, 0 but for the MLP layers */
        int32_t ffs[32];
        for (int l = 0; l < s->L; l++)
            ffs[l] = is_mlp(s, l) || (o && o->both == l + 1) ? ff_of(s, l) : 0;
        CHECK(gguf_writer_set_arr(w, KEY("feed_forward_length"), GGUF_VT_INT32, ffs,
                                  (size_t)s->L) == 0);
    } else {
        CHECK(gguf_writer_set_u32(w, KEY("feed_forward_length"),
                                  (uint32_t)(s->moe ? s->FE : s->F)) == 0);
    }
    CHECK(gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->H) == 0);
    if (o && o->kv_scalar) {
        CHECK(gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->K) == 0);
    } else {
        int32_t kvs[32];
        for (int l = 0; l < s->L; l++)
            kvs[l] = is_attn(s, l) ? s->K : 0;
        CHECK(gguf_writer_set_arr(w, KEY("attention.head_count_kv"), GGUF_VT_INT32, kvs,
                                  (size_t)s->L) == 0);
    }
    CHECK(gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s->D) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s->D) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s->D) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f) == 0);
    CHECK(gguf_writer_set_bool(w, KEY("rope.scaling.finetuned"), s->rope) == 0);
    CHECK(gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f) == 0);
    if (!s->pattern) { /* nemotron_h has none: es = rs = ls = 1, as = 1/sqrt(D) */
        CHECK(gguf_writer_set_f32(w, KEY("embedding_scale"), (float)s->es) == 0);
        CHECK(gguf_writer_set_f32(w, KEY("attention.scale"), (float)s->as) == 0);
        CHECK(gguf_writer_set_f32(w, KEY("residual_scale"), (float)s->rs) == 0);
        CHECK(gguf_writer_set_f32(w, KEY("logit_scale"), (float)s->ls) == 0);
    }
    CHECK(gguf_writer_set_u32(w, KEY("ssm.conv_kernel"), (uint32_t)s->CK) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.state_size"), (uint32_t)s->DS) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.group_count"),
                              (uint32_t)(o && o->groups ? o->groups : s->NG)) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.time_step_rank"), (uint32_t)s->NH) == 0);
    CHECK(gguf_writer_set_u32(w, KEY("ssm.inner_size"), (uint32_t)vd(s)) == 0);
    if (s->moe && s->pattern) { /* sigmoid routing, renormalized and scaled */
        CHECK(gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)s->FE) == 0);
        CHECK(gguf_writer_set_bool(w, KEY("expert_weights_norm"), true) == 0);
        CHECK(gguf_writer_set_f32(w, KEY("expert_weights_scale"), 2.5f) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_gating_func"), 2) == 0);
    }
    if (s->moe) {
        CHECK(gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->NE) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->KU) == 0);
        CHECK(gguf_writer_set_u32(w, KEY("expert_shared_feed_forward_length"), (uint32_t)s->FS) ==
              0);
    }
#undef KEY
    const int E = s->E, C = conv_ch(s), VD = vd(s), QD = s->H * s->D, KD = s->K * s->D;
    const sl_type_t t = s->wtype;
    add_mats(w, "token_embd.weight", m->tok, s->V, E, 1, t);
    add_mats(w, "output.weight", m->out, s->V, E, 1, t);
    add_f32(w, "output_norm.weight", m->onorm, E, 0);
    for (int l = 0; l < s->L; l++) {
        layer_t *L = &m->l[l];
#define T(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
#define SKIP(x) (T(x), o && o->skip && !strcmp(o->skip, n))
#define SHORT(x) (T(x), o && o->bad && !strcmp(o->bad, n) ? 1 : 0)
        if (!SKIP("attn_norm.weight")) add_f32(w, n, L->an, E, 0);
        if (!s->pattern && !SKIP("ffn_norm.weight")) add_f32(w, n, L->fn, E, 0);
        if (is_moe_layer(s, l)) {
            add_mats(w, T("ffn_gate_inp.weight"), L->wr, s->NE, E, 1, SL_TYPE_F32);
            if (!SKIP("exp_probs_b.bias")) add_f32(w, n, L->eb, s->NE, 0);
            add_mats(w, T("ffn_up_exps.weight"), L->xu, s->FE, E, s->NE, t);
            add_mats(w, T("ffn_down_exps.weight"), L->xd, E, s->FE, s->NE, t);
            add_mats(w, T("ffn_up_shexp.weight"), L->wu, s->FS, E, 1, t);
            add_mats(w, T("ffn_down_shexp.weight"), L->wd, E, s->FS, 1, t);
            continue;
        }
        if (is_mlp(s, l)) {
            if (!SKIP("ffn_up.weight"))
                add_mats(w, n, L->wu, ff_of(s, l) - SHORT("ffn_up.weight"), E, 1, t);
            add_mats(w, T("ffn_down.weight"), L->wd, E, ff_of(s, l), 1, t);
            add_f32(w, T("ffn_up.bias"), L->bu, ff_of(s, l), 0);
            add_f32(w, T("ffn_down.bias"), L->bd, E, 0);
            continue;
        }
        if (!is_attn(s, l)) {
            if (!SKIP("ssm_in.weight"))
                add_mats(w, n, L->win, VD + C + s->NH - SHORT("ssm_in.weight"), E, 1, t);
            if (!SKIP("ssm_out.weight")) add_mats(w, n, L->wout, E, VD, 1, t);
            if (!SKIP("ssm_conv1d.weight"))
                add_f32(w, n, L->conv, s->CK, C - SHORT("ssm_conv1d.weight"));
            if (!SKIP("ssm_conv1d.bias")) add_f32(w, n, L->convb, C, 0);
            if (!SKIP("ssm_dt.bias")) add_f32(w, n, L->dtb, s->NH, 0);
            double *a = malloc(sizeof(double) * (size_t)s->NH);
            for (int h = 0; h < s->NH; h++)
                a[h] = -exp(L->alog[h]);
            if (!SKIP("ssm_a")) add_f32(w, n, a, 1, s->NH);
            for (int h = 0; h < s->NH; h++)
                L->alog[h] = log(-(double)(float)a[h]); /* what the file holds */
            free(a);
            if (!SKIP("ssm_d")) add_f32(w, n, L->dskip, 1, s->NH);
            if (!SKIP("ssm_norm.weight")) add_f32(w, n, L->snorm, VD / s->NG, s->NG);
        } else {
            if (!SKIP("attn_q.weight")) add_mats(w, n, L->wq, QD - SHORT("attn_q.weight"), E, 1, t);
            if (!SKIP("attn_k.weight")) add_mats(w, n, L->wk, KD, E, 1, t);
            if (!SKIP("attn_v.weight")) add_mats(w, n, L->wv, KD, E, 1, t);
            if (!SKIP("attn_output.weight")) add_mats(w, n, L->wo, E, QD, 1, t);
        }
        if (s->pattern) continue;
        if (s->moe) {
            add_mats(w, T("ffn_gate_inp.weight"), L->wr, s->NE, E, 1, SL_TYPE_F32);
            add_mats(w, T("ffn_gate_exps.weight"), L->xg, s->FE, E, s->NE, t);
            add_mats(w, T("ffn_up_exps.weight"), L->xu, s->FE, E, s->NE, t);
            add_mats(w, T("ffn_down_exps.weight"), L->xd, E, s->FE, s->NE, t);
            if (!SKIP("ffn_gate_shexp.weight")) add_mats(w, n, L->wg, s->FS, E, 1, t);
            add_mats(w, T("ffn_up_shexp.weight"), L->wu, s->FS, E, 1, t);
            add_mats(w, T("ffn_down_shexp.weight"), L->wd, E, s->FS, 1, t);
        } else {
            if (!SKIP("ffn_gate.weight")) add_mats(w, n, L->wg, s->F, E, 1, t);
            add_mats(w, T("ffn_up.weight"), L->wu, s->F, E, 1, t);
            add_mats(w, T("ffn_down.weight"), L->wd, E, s->F, 1, t);
        }
#undef T
#undef SKIP
#undef SHORT
    }
    char err[256];
    const int rc = gguf_writer_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ the reference */

static double softplus(double x) {
    return log1p(exp(x));
}
/* adjacent-pair RoPE over each head of the file's (permuted) rows */
static void rope(double *v, int n_heads, int D, int pos) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < D / 2; i++) {
            double *x = v + (size_t)h * D + 2 * i;
            const double th = pos * pow(10000.0, -2.0 * i / D), a = x[0], b = x[1];
            x[0] = a * cos(th) - b * sin(th);
            x[1] = a * sin(th) + b * cos(th);
        }
}

static void swiglu_ffn(const float *wg, const float *wu, const float *wd, const double *x, int E,
                       int F, double *y) {
    double *g = malloc(sizeof(double) * (size_t)F), *u = malloc(sizeof(double) * (size_t)F);
    matvec(g, wg, x, F, E);
    matvec(u, wu, x, F, E);
    for (int i = 0; i < F; i++)
        g[i] = ref_silu(g[i]) * u[i];
    matvec(y, wd, g, E, F);
    free(g), free(u);
}

/* logits of every position of n tokens of one sequence (out: n × V) */
static void ref_forward(const ref_t *m, const int32_t *tok, int n, double *out) {
    const spec_t *s = &m->s;
    const int E = s->E, C = conv_ch(s), VD = vd(s), NH = s->NH, HD = s->HD, DS = s->DS, NG = s->NG;
    const int QD = s->H * s->D, KD = s->K * s->D, W = VD + C + NH;
    double *x = calloc((size_t)n * E, sizeof(double)), *xn = malloc(sizeof(double) * E);
    double *y = malloc(sizeof(double) * E), *acc = malloc(sizeof(double) * E);
    double *proj = malloc(sizeof(double) * W), *cv = malloc(sizeof(double) * C),
           *o = malloc(sizeof(double) * VD);
    /* per Mamba-2 layer: every token's conv input (xBC before the conv) and the SSM state */
    double **xin = calloc((size_t)s->L, sizeof *xin), **st = calloc((size_t)s->L, sizeof *st);
    double *K = malloc(sizeof(double) * (size_t)n * s->L * KD),
           *Vv = malloc(sizeof(double) * (size_t)n * s->L * KD);
    double *q = malloc(sizeof(double) * QD), *att = malloc(sizeof(double) * QD),
           *sc = malloc(sizeof(double) * n);
    for (int l = 0; l < s->L; l++)
        if (is_mamba(s, l)) {
            xin[l] = calloc((size_t)n * C, sizeof(double));
            st[l] = calloc((size_t)NH * HD * DS, sizeof(double));
        }
    for (int t = 0; t < n; t++) {
        double *xt = x + (size_t)t * E;
        for (int e = 0; e < E; e++)
            xt[e] = m->tok[(size_t)tok[t] * E + e] * s->es;
        for (int l = 0; l < s->L; l++) {
            const layer_t *L = &m->l[l];
            ref_rms(xn, xt, E, L->an, 0);
            if (is_moe_layer(
                    s, l)) { /* sigmoid routing: top k by p + bias, weighted by p / Σp × 2.5 */
                double p[64], sel[64], w[64] = {0};
                int pick[64];
                matvec(p, L->wr, xn, s->NE, E);
                for (int e = 0; e < s->NE; e++)
                    p[e] = 1 / (1 + exp(-p[e])),
                    sel[e] = p[e] + (m->var == MUT_NO_SEL_BIAS ? 0 : L->eb[e]);
                double wsum = 0;
                for (int k = 0; k < s->KU; k++) {
                    int b = -1;
                    for (int e = 0; e < s->NE; e++) {
                        bool used = false;
                        for (int j = 0; j < k; j++)
                            used = used || pick[j] == e;
                        if (!used && (b < 0 || sel[e] > sel[b])) b = e;
                    }
                    pick[k] = b, w[k] = p[b], wsum += p[b];
                }
                double *u = malloc(sizeof(double) * (size_t)(s->FE > s->FS ? s->FE : s->FS));
                for (int e = 0; e < E; e++)
                    acc[e] = 0;
                for (int k = 0; k <= s->KU; k++) { /* the chosen experts, then the shared one */
                    const bool sh = k == s->KU;
                    const int FL = sh ? s->FS : s->FE, ex = sh ? 0 : pick[k];
                    matvec(u, sh ? L->wu : L->xu + (size_t)ex * s->FE * E, xn, FL, E);
                    for (int i = 0; i < FL; i++) {
                        const double r = fmax(u[i], 0.0);
                        u[i] = m->var == MUT_RELU_PLAIN ? r : r * r;
                    }
                    matvec(y, sh ? L->wd : L->xd + (size_t)ex * E * s->FE, u, E, FL);
                    const double wk = sh ? 1.0 : w[k] / wsum * 2.5;
                    for (int e = 0; e < E; e++)
                        acc[e] += wk * y[e];
                }
                free(u);
                for (int e = 0; e < E; e++)
                    xt[e] += acc[e];
                continue;
            }
            if (is_mlp(s, l)) { /* nemotron_h: x += down(relu(up xn + bu)²) + bd */
                const int FL = ff_of(s, l);
                double *u = malloc(sizeof(double) * (size_t)FL);
                matvec(u, L->wu, xn, FL, E);
                for (int i = 0; i < FL; i++) {
                    const double r = fmax(u[i] + L->bu[i], 0.0);
                    u[i] = m->var == MUT_RELU_PLAIN ? r : r * r;
                }
                matvec(y, L->wd, u, E, FL);
                free(u);
                for (int e = 0; e < E; e++)
                    xt[e] += y[e] + L->bd[e];
                continue;
            }
            if (!is_attn(s, l)) {
                matvec(proj, L->win, xn, W, E);
                const double *z = proj, *xbc = proj + VD, *dtr = proj + VD + C;
                memcpy(xin[l] + (size_t)t * C, xbc, sizeof(double) * C);
                for (int c = 0; c < C; c++) { /* causal depthwise conv, left zero-padded */
                    double a = L->convb[c];
                    for (int k = 0; k < s->CK; k++) {
                        const int p = t - (s->CK - 1) + k;
                        if (p < 0 || (m->var == MUT_CONV_NO_STATE && p != t)) continue;
                        a += L->conv[(size_t)c * s->CK + k] * xin[l][(size_t)p * C + c];
                    }
                    cv[c] = ref_silu(a);
                }
                const double *xs = cv, *B = cv + VD, *Cm = cv + VD + NG * DS;
                for (int h = 0; h < NH; h++) {
                    const int g = m->var == MUT_GROUP_TILED ? h % NG : h / (NH / NG);
                    const double raw = dtr[h] + (m->var == MUT_DT_NO_BIAS ? 0 : L->dtb[h]);
                    const double dt = m->var == MUT_DT_NO_SOFTPLUS ? raw : softplus(raw);
                    const double dA = exp(dt * -exp(L->alog[h]));
                    for (int i = 0; i < HD; i++) {
                        double *row = st[l] + ((size_t)h * HD + i) * DS, yy = 0;
                        const double xv = xs[h * HD + i];
                        for (int d = 0; d < DS; d++) {
                            row[d] = row[d] * dA + dt * B[g * DS + d] * xv;
                            yy += row[d] * Cm[g * DS + d];
                        }
                        o[h * HD + i] = yy + (m->var == MUT_NO_D ? 0 : L->dskip[h] * xv);
                    }
                }
                if (m->var != MUT_UNGATED_NORM)
                    for (int i = 0; i < VD; i++)
                        o[i] *= ref_silu(z[i]);
                const int GS = m->var == MUT_NORM_WHOLE ? VD : VD / NG;
                for (int g = 0; g < VD / GS; g++)
                    ref_rms(o + g * GS, o + g * GS, GS, L->snorm + g * GS, 0);
                matvec(y, L->wout, o, E, VD);
            } else {
                double *kt = K + ((size_t)l * n + t) * KD, *vt = Vv + ((size_t)l * n + t) * KD;
                matvec(q, L->wq, xn, QD, E);
                matvec(kt, L->wk, xn, KD, E);
                matvec(vt, L->wv, xn, KD, E);
                if (s->rope) rope(q, s->H, s->D, t), rope(kt, s->K, s->D, t);
                for (int h = 0; h < s->H; h++) {
                    const int kh = h / (s->H / s->K);
                    double mx = -1e300, sum = 0;
                    for (int p = 0; p <= t; p++) {
                        const double *kp = K + ((size_t)l * n + p) * KD + kh * s->D;
                        double d = 0;
                        for (int i = 0; i < s->D; i++)
                            d += q[h * s->D + i] * kp[i];
                        sc[p] = d * s->as;
                        mx = fmax(mx, sc[p]);
                    }
                    for (int p = 0; p <= t; p++)
                        sum += (sc[p] = exp(sc[p] - mx));
                    for (int i = 0; i < s->D; i++) {
                        double a = 0;
                        for (int p = 0; p <= t; p++)
                            a += sc[p] * Vv[((size_t)l * n + p) * KD + kh * s->D + i];
                        att[h * s->D + i] = a / sum;
                    }
                }
                matvec(y, L->wo, att, E, QD);
            }
            for (int e = 0; e < E; e++)
                xt[e] += s->rs * y[e];
            if (s->pattern) continue; /* nemotron_h: the mixer is the whole layer */
            ref_rms(xn, xt, E, L->fn, 0);
            if (s->moe) { /* softmax over all experts, top k renormalized, plus the shared expert */
                double lg[64], p[64];
                matvec(lg, L->wr, xn, s->NE, E);
                double mx = -1e300, sum = 0;
                for (int e = 0; e < s->NE; e++)
                    mx = fmax(mx, lg[e]);
                for (int e = 0; e < s->NE; e++)
                    sum += (p[e] = exp(lg[e] - mx));
                bool used[64] = {false};
                int pick[64];
                double wsum = 0;
                for (int k = 0; k < s->KU; k++) {
                    int b = -1;
                    for (int e = 0; e < s->NE; e++)
                        if (!used[e] && (b < 0 || p[e] > p[b])) b = e;
                    used[b] = true, pick[k] = b, wsum += p[b] / sum;
                }
                swiglu_ffn(L->wg, L->wu, L->wd, xn, E, s->FS, acc);
                for (int k = 0; k < s->KU; k++) {
                    const int e = pick[k];
                    swiglu_ffn(L->xg + (size_t)e * s->FE * E, L->xu + (size_t)e * s->FE * E,
                               L->xd + (size_t)e * E * s->FE, xn, E, s->FE, y);
                    for (int d = 0; d < E; d++)
                        acc[d] += p[e] / sum / wsum * y[d];
                }
            } else {
                swiglu_ffn(L->wg, L->wu, L->wd, xn, E, s->F, acc);
            }
            for (int e = 0; e < E; e++)
                xt[e] += s->rs * acc[e];
        }
        ref_rms(xn, xt, E, m->onorm, 0);
        matvec(out + (size_t)t * s->V, m->out, xn, s->V, E);
        for (int v = 0; v < s->V; v++)
            out[(size_t)t * s->V + v] /= s->ls;
    }
    for (int l = 0; l < s->L; l++)
        free(xin[l]), free(st[l]);
    free(xin), free(st), free(x), free(xn), free(y), free(acc), free(proj), free(cv), free(o);
    free(K), free(Vv), free(q), free(att), free(sc);
}

/* ------------------------------------------------------------ the cases */

static void check_hparams(const sl_model_t *m, const spec_t *s) {
    const sl_hparams_t *hp = model_hparams(m);
    CHECK(hp->mamba2 && hp->ssm_hybrid && hp->n_layer == s->L && hp->n_layer_kv == n_attn(s));
    CHECK(model_state_floats(m) == (size_t)(s->L - n_attn(s)) * ((size_t)(s->CK - 1) * conv_ch(s) +
                                                                 (size_t)s->NH * s->HD * s->DS));
}

#define MODEL_CASES_NAME "mamba"
#include "model_cases.h"

static spec_t dense_spec(void) {
    return (spec_t){.V = 96,
                    .E = 48,
                    .L = 5,
                    .H = 4,
                    .K = 2,
                    .D = 16,
                    .F = 64,
                    .attn_mask = 1u << 2,
                    .NG = 2,
                    .DS = 8,
                    .NH = 4,
                    .HD = 8,
                    .CK = 4,
                    .es = 1.5,
                    .as = 0.2,
                    .rs = 0.6,
                    .ls = 2.0,
                    .wtype = SL_TYPE_F32};
}
/* Nemotron-H's kinds in its own rhythm: M - M * - M (Mamba-2, MLP, attention) */
static spec_t nemotron_spec(void) {
    spec_t s = dense_spec();
    s.pattern = "M-M*-M", s.L = 6;
    s.es = 1, s.rs = 1, s.ls = 1, s.as = 1 / sqrt((double)s.D);
    s.NG = 2, s.NH = 4;
    return s;
}
/* Nemotron 3 Nano's rhythm in small: M E M * E M (E: a MoE layer) */
static spec_t nemotron_moe_spec(void) {
    spec_t s = nemotron_spec();
    s.pattern = "MEM*EM", s.moe = true, s.NE = 6, s.KU = 2, s.FE = 32, s.FS = 48;
    return s;
}
static spec_t moe_spec(void) {
    spec_t s = dense_spec();
    s.moe = true, s.NE = 6, s.KU = 2, s.FE = 24, s.FS = 40, s.L = 4,
    s.attn_mask = (1u << 1) | (1u << 3);
    return s;
}

static void test_dense(void) {
    spec_t s = dense_spec();
    run_case("granitehybrid f32", &s, 1e-4, 1);
    run_case("granitehybrid f32 3 threads", &s, 1e-4, 3);
    s.rope = true;
    s.attn_mask = (1u << 0) | (1u << 3);
    run_case("granitehybrid rope, attn 0 and 3", &s, 1e-4, 2);
    s = dense_spec();
    s.NG = 1, s.NH = 2, s.HD = 16, s.CK = 2; /* one group, conv width 2 */
    run_case("granitehybrid 1 group, conv 2", &s, 1e-4, 2);
    s = dense_spec();
    s.wtype = SL_TYPE_Q8_0, s.E = 64, s.HD = 16, s.F = 64; /* rows a whole number of 32-blocks */
    run_case("granitehybrid q8_0", &s, 3e-2, 2);
}

static void test_nemotron(void) {
    spec_t s = nemotron_spec();
    run_case("nemotron_h f32", &s, 1e-4, 1);
    run_case("nemotron_h f32 3 threads", &s, 1e-4, 3);
    s.pattern = "*-MM-M"; /* attention first */
    run_case("nemotron_h attention first", &s, 1e-4, 2);
    s = nemotron_spec();
    s.wtype = SL_TYPE_Q8_0, s.E = 64, s.HD = 16, s.F = 64; /* rows a whole number of 32-blocks */
    /* the square doubles the relative error of the q8_0-rounded activations going into it */
    run_case("nemotron_h q8_0", &s, 6e-2, 2);
}

static void test_nemotron_moe(void) {
    spec_t s = nemotron_moe_spec();
    run_case("nemotron_h_moe f32", &s, 1e-4, 2);
    /* the selection bias and the experts' square matter */
    static const mutation_t muts[] = {{MUT_NO_SEL_BIAS, "nemotron_h_moe: no selection bias"},
                                      {MUT_RELU_PLAIN, "nemotron_h_moe: relu, not squared"}};
    check_mutations(&s, 4244, 6, muts, sizeof muts / sizeof muts[0]);
    s.wtype = SL_TYPE_Q8_0, s.E = 64, s.HD = 16, s.FS = 64;
    run_case("nemotron_h_moe q8_0", &s, 6e-2, 1);
}

static void test_moe(void) {
    spec_t s = moe_spec();
    run_case("granitehybrid moe f32", &s, 1e-4, 2);
    s.wtype = SL_TYPE_Q8_0, s.E = 64, s.HD = 16, s.FE = 32, s.FS = 64;
    run_case("granitehybrid moe q8_0", &s, 3e-2, 1);
}

/* Each mutated reference is far from the model (which matches the right one). */
static void test_mutations(void) {
    static const mutation_t muts[] = {{MUT_NO_D, "no D skip"},
                                      {MUT_DT_NO_BIAS, "dt without its bias"},
                                      {MUT_DT_NO_SOFTPLUS, "dt without softplus"},
                                      {MUT_CONV_NO_STATE, "conv without state"},
                                      {MUT_UNGATED_NORM, "ungated norm"},
                                      {MUT_NORM_WHOLE, "norm over all of d_inner"},
                                      {MUT_GROUP_TILED, "B/C groups tiled"}};
    const spec_t s = dense_spec();
    check_mutations(&s, 4242, 3, muts, sizeof muts / sizeof muts[0]);
}

/* A prefill longer than the model's internal step (256 tokens) carries
 * the state from step to step. */
static void test_long_prefill(void) {
    const spec_t s = dense_spec();
    check_long_prefill(&s, false);
}

/* Sequences at different positions in one model_forward_batch over a
 * paged cache, each with its own state, give what each gives alone. */
static void test_batch(void) {
    const spec_t a = moe_spec(), b = nemotron_spec(), c = nemotron_moe_spec();
    check_batch(&a, "batch of 3 vs alone", NULL);
    check_batch(&b, "batch of 3, nemotron_h", NULL);
    check_batch(&c, "batch of 3, nemotron_h_moe", NULL);
}

/* nemotron_h's own parts: the MLP's square and the mixer's D skip matter */
static void test_nemotron_mutations(void) {
    static const mutation_t muts[] = {{MUT_RELU_PLAIN, "nemotron_h: relu, not squared"},
                                      {MUT_NO_D, "nemotron_h: no D skip"},
                                      {MUT_GROUP_TILED, "nemotron_h: B/C groups tiled"}};
    const spec_t s = nemotron_spec();
    check_mutations(&s, 4243, 4, muts, sizeof muts / sizeof muts[0]);
}

static void test_validation(void) {
    const spec_t s = dense_spec(), sm = moe_spec();
    expect_load_error(&s, &(write_opts_t){.skip = "blk.0.ssm_d"}, "blk.0.ssm_d");
    expect_load_error(&s, &(write_opts_t){.skip = "blk.1.ssm_conv1d.bias"},
                      "blk.1.ssm_conv1d.bias");
    expect_load_error(&s, &(write_opts_t){.skip = "blk.0.ssm_norm.weight"},
                      "blk.0.ssm_norm.weight");
    expect_load_error(&s, &(write_opts_t){.bad = "blk.0.ssm_in.weight"}, "blk.0.ssm_in.weight");
    expect_load_error(&s, &(write_opts_t){.bad = "blk.3.ssm_conv1d.weight"},
                      "blk.3.ssm_conv1d.weight");
    expect_load_error(&s, &(write_opts_t){.bad = "blk.2.attn_q.weight"}, "blk.2.attn_q.weight");
    expect_load_error(&s, &(write_opts_t){.skip = "blk.2.attn_k.weight"}, "blk.2.attn_k.weight");
    expect_load_error(&s, &(write_opts_t){.kv_scalar = true}, "head_count_kv");
    const spec_t sn = nemotron_spec();
    expect_load_error(&sn, &(write_opts_t){.both = 4}, "has both");
    expect_load_error(&sn, &(write_opts_t){.bad = "blk.1.ffn_up.weight"}, "blk.1.ffn_up.weight");
    expect_load_error(&sn, &(write_opts_t){.skip = "blk.0.ssm_d"}, "blk.0.ssm_d");
    const spec_t snm = nemotron_moe_spec();
    expect_load_error(&snm, &(write_opts_t){.skip = "blk.1.exp_probs_b.bias"},
                      "blk.1.exp_probs_b.bias");
    expect_load_error(&s, &(write_opts_t){.groups = 3}, "group_count");
    spec_t none = dense_spec();
    none.attn_mask = 0;
    expect_load_error(&none, NULL, "no attention layer");
    expect_load_error(&sm, &(write_opts_t){.skip = "blk.0.ffn_gate_shexp.weight"},
                      "ffn_gate_shexp");
}

/* silica quantize: the conv kernel and bias, A, D, the dt bias and the
 * norms stay F32; the quantized model is close to the F32 one */
static void test_quantize(void) {
    model_qplan_t p;
    char err[SL_ERR_MAX];
    CHECK(model_qplan_init(&p, "q4_K_M", 8, 2, false, err, sizeof err) == 0);
    CHECK(model_qplan_type(&p, "blk.0.ssm_conv1d.weight", 2, 4) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_conv1d.bias", 1, 256) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_a", 2, 1) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_d", 2, 1) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_norm.weight", 2, 256) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_in.weight", 2, 256) != SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ssm_out.weight", 2, 256) != SL_TYPE_F32);
    spec_t s = dense_spec();
    s.E = 256, s.HD = 32, s.DS = 16; /* rows a whole number of 256-blocks */
    ref_t rm;
    ref_init(&rm, &s, 5);
    static const char *const f32s[] = {"blk.0.ssm_conv1d.weight", "blk.0.ssm_a", "blk.0.ssm_d",
                                       "blk.0.ssm_norm.weight", "blk.0.ssm_dt.bias"};
    check_quantize(&rm, f32s, sizeof f32s / sizeof f32s[0], "blk.0.ssm_in.weight", SL_TYPE_F32,
                   "quantized q8_0");
    ref_free(&rm);
}

int main(void) {
    sl_kernels_init();
    RUN(test_dense);
    RUN(test_moe);
    RUN(test_nemotron);
    RUN(test_nemotron_mutations);
    RUN(test_nemotron_moe);
    RUN(test_mutations);
    RUN(test_batch);
    RUN(test_long_prefill);
    RUN(test_validation);
    RUN(test_quantize);
    return test_summary();
}
