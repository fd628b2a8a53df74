/* deps: base gguf kernels model */
/*
 * test_model.c — the forward pass of llama / internlm2 / qwen2 / qwen3 /
 * qwen2moe / qwen3moe / chatglm / glm4 / glm4moe / phi3 / gemma / gemma2 / gemma3 /
 * granite / granitemoe / smollm3 / olmo2 / ernie4_5 / deepseek2 / gpt-oss against an
 * independent reference written here plainly, in double precision, in the
 * Hugging Face convention (rotate-halves RoPE, unpermuted Q/K rows;
 * deepseek2: HF DeepseekV2/V3's MLA attention with its kv_b_proj kept
 * whole, split into attn_k_b / attn_v_b only for the file).
 *
 * Each case builds a tiny random model, writes it with the GGUF writer in
 * the layout llama.cpp's converter produces (llama: Q/K rows permuted so that
 * adjacent-pair RoPE is right), loads it with model_load and compares
 * model_forward's logits — one prefill of all tokens, and token-by-token
 * decode — with the reference at every position. The reference uses the
 * weights as stored (quantized then dequantized) so only activation rounding
 * inside the matmul separates the two.
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
#include "model/model_quant.h"
#include "test.h"
#include "test_ref.h"

/* ------------------------------------------------------------ random */


/* ------------------------------------------------------------ the model */

typedef enum { SCALE_NONE, SCALE_LINEAR, SCALE_YARN, SCALE_LLAMA3 } scale_kind_t;

typedef struct {
    const char *arch; /* llama | internlm2 | qwen2 | qwen3 | qwen2moe | qwen3moe | chatglm | glm4 | glm4moe | phi3 |
                         gemma | gemma2 | gemma3 */
    int V, E, L, H, K, D, F, ctx;
    int NE, KU, FE; /* qwen3moe: experts, used per token, expert hidden size */
    int nextn;      /* glm4: extra trailing (multi-token prediction) layers in block_count, skipped */
    bool longrope;  /* phi3: LongRoPE short/long factors and attn_factor (orig_ctx: the original context) */
    bool use_long;  /* ... run with a context beyond orig_ctx: the long factors */
    int swa;        /* gemma2/3: sliding window of the local layers (even ones / 5 of every 6) */
    float acap, lcap; /* gemma2: attention score and final logit soft-capping */
    bool tied;
    sl_type_t wtype;
    scale_kind_t scale;
    float factor;
    int orig_ctx;
    int n_tok; /* tokens run_case feeds (0: 11) */
    /* deepseek2 (MLA): q LoRA rank QL (0: "lite", one q matrix), KV LoRA rank R, per head NOPE + ROPE
     * query/key dims and VH value dims; NS shared experts; NG expert groups of which GU are kept; LEAD
     * leading dense layers; gating 1 softmax, 2 sigmoid with a selection bias (0: the key absent, softmax);
     * the chosen weights renormalized (wnorm) and × wscale; YaRN's mscale_all_dim */
    int QL, R, NOPE, ROPE, VH, NS, NG, GU, LEAD, gating;
    bool wnorm;
    bool kvb_fused; /* written as the older converter did: attn_kv_b in place of attn_k_b / attn_v_b */
    float wscale, mscale_all;
} spec_t;

typedef struct {
    float *an, *fn, *qn, *kn, *bq, *bk, *bv;
    float *wq, *wk, *wv, *wo, *wg, *wu, *wd; /* HF order: [n_out][n_in] */
    float *wr, *xg, *xu, *xd;                /* MoE: router [NE][E]; experts [NE][FE][E], [NE][E][FE] */
    float *pan, *pfn;                        /* glm4: post-attention and post-FFN norms */
    float *wsg;                              /* qwen2moe: shared expert gate [E] (wg/wu/wd: the shared expert) */
    float *xb;                               /* glm4moe: expert selection bias [NE] (wg/wu/wd: the shared expert) */
    /* deepseek2: q LoRA down [QL][E] and its norm (wq: q_b [H*(NOPE+ROPE)][QL], or the lite q); kv_a
     * [R+ROPE][E] and its norm [R]; HF's kv_b_proj [H*(NOPE+VH)][R] (per head NOPE k rows, then VH v rows) */
    float *wqa, *qan, *wkva, *kvan, *wkvb;
    /* gpt-oss: attention sinks [H], the output projection's bias [E], the router's bias [NE], the
     * experts' biases [NE][FE] (gate, up) and [NE][E] (down) */
    float *sk, *bo, *br, *bxg, *bxu, *bxd;
} ref_layer_t;

/* REF_HF is right; the others are mutations (deepseek2): the score scale without YaRN's m², attn_k_b's
 * R × NOPE rows read as NOPE × R (the k block untransposed), cos/sin × ggml's YaRN mscale left in */
typedef enum {
    REF_HF,
    REF_NO_M2,
    REF_KB_UNTRANSPOSED,
    REF_ROPE_MSCALE,
    /* gpt-oss: no sinks; the sink's share put back into the keys' numerators (weights summing to
     * 1); SwiGLU without its clamp; the window on the odd layers; the router's weights the
     * softmax over all experts, not renormalized over the chosen */
    REF_NO_SINKS,
    REF_SINK_NUMERATOR,
    REF_NO_CLAMP,
    REF_SWA_ODD,
    REF_UNNORMALIZED
} ref_variant_t;

typedef struct {
    spec_t s;
    float *tok, *out, *onorm, *rope_freqs;
    float *rope_long, *rope_short;
    double attn_factor;
    ref_layer_t *l;
    double eps, base;
    ref_variant_t var;
} ref_model_t;

static bool is_glm(const spec_t *s) { return !strcmp(s->arch, "chatglm") || !strcmp(s->arch, "glm4"); }
/* adjacent-pair RoPE in the Hugging Face model itself (no converter permutation) */
static bool pair_rope(const spec_t *s) { return is_glm(s) || !strcmp(s->arch, "ernie4_5"); }
static bool is_gemma(const spec_t *s) { return !strncmp(s->arch, "gemma", 5); }
/* gemma2's local layers: the even ones; gemma3's: 5 of every 6 */
static bool is_olmo(const spec_t *s) { return !strcmp(s->arch, "olmo2"); }
static bool is_oss(const spec_t *s) {
    return !strcmp(s->arch, "gpt-oss");
}
static bool layer_swa(const spec_t *s, int l) {
    if (is_olmo(s)) return s->swa > 0 && l % 4 < 3; /* OLMo 3: 3 of every 4 layers */
    if (is_oss(s)) return l % 2 == 0;               /* gpt-oss: the even layers (HF layer_types) */
    return (!strcmp(s->arch, "gemma2") && l % 2 == 0) || (!strcmp(s->arch, "gemma3") && l % 6 < 5);
}
static bool is_ds(const spec_t *s) { return !strcmp(s->arch, "deepseek2"); }
static bool is_moe(const spec_t *s) {
    return !strcmp(s->arch, "qwen3moe") || !strcmp(s->arch, "qwen2moe") ||
           !strcmp(s->arch, "glm4moe") || !strcmp(s->arch, "granitemoe") || is_ds(s) || is_oss(s) ||
           (!strcmp(s->arch, "llama") && s->NE > 0); /* llama + experts: Mixtral */
}
static bool is_granite(const spec_t *s) { return !strncmp(s->arch, "granite", 7); }
/* Granite 3's scales (embedding, residual, query, 1/logit) */
#define GR_EMBD 12.0
#define GR_RES 0.22
#define GR_ATT 0.125
#define GR_LOGIT 8.0
/* glm4moe: layer 0 dense, the others experts + a shared expert of FE rows; deepseek2: LEAD dense layers */
static bool layer_moe(const spec_t *s, int l) {
    return is_moe(s) && s->NE > 0 && l >= (!strcmp(s->arch, "glm4moe") ? 1 : is_ds(s) ? s->LEAD : 0);
}
/* rows of the shared expert (0: none): qwen2moe F, glm4moe FE, deepseek2 NS·FE */
static int shexp_rows(const spec_t *s) {
    return !strcmp(s->arch, "qwen2moe") ? s->F : !strcmp(s->arch, "glm4moe") ? s->FE : is_ds(s) ? s->NS * s->FE : 0;
}
/* The type a matrix with rows of n_in is stored in: the spec's, F32 where n_in is no whole number of its
 * blocks (deepseek2's odd dims) */
static sl_type_t row_type(const spec_t *s, int n_in) { return sl_row_size(s->wtype, n_in) ? s->wtype : SL_TYPE_F32; }

static float *rnd_vec(size_t n, float center, float a) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = center + rnd_sym(a);
    return v;
}


static float *rnd_mat(int n_out, int n_in, sl_type_t t) {
    float *w = rnd_vec((size_t)n_out * n_in, 0.0f, 1.7f / sqrtf((float)n_in));
    round_rows(w, n_out, n_in, t);
    return w;
}

/* kv_b_proj (HF: per head NOPE k rows then VH v rows, each of R) to the current converter's attn_k_b (per
 * head the k block transposed: R rows of NOPE) and attn_v_b (per head the v block as it is: VH rows of R),
 * head after head; or back (to_hf). */
static void ds_kv_b(const spec_t *s, float *wkvb, float *kb, float *vb, bool to_hf) {
    const int NOPE = s->NOPE, VH = s->VH, R = s->R;
    for (int h = 0; h < s->H; h++) {
        float *blk = wkvb + (size_t)h * (NOPE + VH) * R, *v = vb + (size_t)h * VH * R;
        for (int r = 0; r < R; r++)
            for (int i = 0; i < NOPE; i++) {
                float *hf = &blk[(size_t)i * R + r], *f = &kb[((size_t)h * R + r) * NOPE + i];
                *(to_hf ? hf : f) = *(to_hf ? f : hf);
            }
        memcpy(to_hf ? blk + (size_t)NOPE * R : v, to_hf ? v : blk + (size_t)NOPE * R, sizeof(float) * VH * R);
    }
}

/* A deepseek2 layer: MLA attention; a dense FFN in the first LEAD layers, then experts and NS shared ones. */
static void ref_init_ds_layer(const spec_t *s, ref_layer_t *L, int l) {
    const int E = s->E, H = s->H, R = s->R, QIN = s->QL ? s->QL : E;
    L->an = rnd_vec(E, 1.0f, 0.2f);
    L->fn = rnd_vec(E, 1.0f, 0.2f);
    if (s->QL) {
        L->wqa = rnd_mat(s->QL, E, row_type(s, E));
        L->qan = rnd_vec(s->QL, 1.0f, 0.2f);
    }
    L->wq = rnd_mat(H * (s->NOPE + s->ROPE), QIN, row_type(s, QIN));
    L->wkva = rnd_mat(R + s->ROPE, E, row_type(s, E));
    L->kvan = rnd_vec(R, 1.0f, 0.2f);
    /* kv_b_proj as HF holds it, its values rounded as the file's k_b (rows along NOPE) and v_b (along R) */
    L->wkvb = rnd_vec((size_t)H * (s->NOPE + s->VH) * R, 0.0f, 1.7f / sqrtf((float)R));
    float *kb = malloc(sizeof(float) * (size_t)H * R * s->NOPE), *vb = malloc(sizeof(float) * (size_t)H * s->VH * R);
    ds_kv_b(s, L->wkvb, kb, vb, false);
    round_rows(kb, H * R, s->NOPE, row_type(s, s->NOPE));
    round_rows(vb, H * s->VH, R, row_type(s, R));
    ds_kv_b(s, L->wkvb, kb, vb, true);
    free(kb), free(vb);
    L->wo = rnd_mat(E, H * s->VH, row_type(s, H * s->VH));
    const int FD = layer_moe(s, l) ? shexp_rows(s) : s->F;
    if (layer_moe(s, l)) { /* softmax: ref_init's large router logits; sigmoid: ±0.5, left unsaturated */
        L->wr = rnd_vec((size_t)s->NE * E, 0.0f, s->gating == 2 ? 0.5f : 2.0f);
        L->xg = rnd_mat(s->NE * s->FE, E, row_type(s, E));
        L->xu = rnd_mat(s->NE * s->FE, E, row_type(s, E));
        L->xd = rnd_mat(s->NE * E, s->FE, row_type(s, s->FE));
        if (s->gating == 2) L->xb = rnd_vec(s->NE, 0.0f, 0.3f);
    }
    L->wg = rnd_mat(FD, E, row_type(s, E));
    L->wu = rnd_mat(FD, E, row_type(s, E));
    L->wd = rnd_mat(E, FD, row_type(s, FD));
}

static void ref_init(ref_model_t *m, const spec_t *s, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->s = *s;
    rng_state = seed * 2654435761u + 12345;
    m->eps = 1e-5;
    m->base = is_oss(s) ? 150000.0
              : !strcmp(s->arch, "llama") || !strcmp(s->arch, "internlm2") || is_glm(s) ||
                      is_granite(s) || !strcmp(s->arch, "smollm3") ||
                      !strcmp(s->arch, "ernie4_5") || is_ds(s) ||
                      (is_gemma(s) && strcmp(s->arch, "gemma3"))
                  ? 10000.0
                  : 1000000.0;
    m->tok = rnd_vec((size_t)s->V * s->E, 0.0f, 1.0f);
    round_rows(m->tok, s->V, s->E, s->wtype);
    m->out = s->tied ? m->tok : rnd_mat(s->V, s->E, s->wtype);
    m->onorm = rnd_vec(s->E, 1.0f, 0.2f);
    m->attn_factor = 1.0;
    if (s->longrope) {
        m->rope_long = malloc(sizeof(float) * (size_t)(s->D / 2));
        m->rope_short = malloc(sizeof(float) * (size_t)(s->D / 2));
        for (int i = 0; i < s->D / 2; i++) {
            m->rope_short[i] = 1.0f + (float)i * 0.05f;
            m->rope_long[i] = 1.0f + (float)i * 1.3f;
        }
        m->attn_factor = 1.19;
    }
    if (s->scale == SCALE_LLAMA3) {
        m->rope_freqs = malloc(sizeof(float) * (size_t)(s->D / 2));
        for (int i = 0; i < s->D / 2; i++)
            m->rope_freqs[i] = 1.0f + (float)i * 0.7f;
    }
    bool q2moe = !strcmp(s->arch, "qwen2moe"),
         qwen2 = !strcmp(s->arch, "qwen2") || q2moe || !strcmp(s->arch, "glm4moe") || is_oss(s);
    bool qwen3 =
        !strcmp(s->arch, "qwen3") || !strcmp(s->arch, "qwen3moe") || !strcmp(s->arch, "gemma3");
    m->l = calloc((size_t)s->L, sizeof *m->l);
    for (int l = 0; l < s->L; l++) {
        ref_layer_t *L = &m->l[l];
        if (is_ds(s)) {
            ref_init_ds_layer(s, L, l);
            continue;
        }
        L->an = rnd_vec(s->E, 1.0f, 0.2f);
        L->fn = rnd_vec(s->E, 1.0f, 0.2f);
        L->wq = rnd_mat(s->H * s->D, s->E, s->wtype);
        L->wk = rnd_mat(s->K * s->D, s->E, s->wtype);
        L->wv = rnd_mat(s->K * s->D, s->E, s->wtype);
        L->wo = rnd_mat(s->E, s->H * s->D, s->wtype);
        const bool moe = layer_moe(s, l), g45 = moe && !strcmp(s->arch, "glm4moe");
        if (moe) {
            /* a router of large logits, so that float rounding cannot swap
             * the k-th and (k+1)-th expert */
            L->wr = rnd_vec((size_t)s->NE * s->E, 0.0f, 2.0f);
            L->xg = rnd_mat(s->NE * s->FE, s->E, s->wtype);
            L->xu = rnd_mat(s->NE * s->FE, s->E, s->wtype);
            L->xd = rnd_mat(s->NE * s->E, s->FE, s->wtype);
        }
        if (q2moe && moe) L->wsg = rnd_vec(s->E, 0.0f, 0.3f);
        if (is_oss(s)) {
            /* sinks from -1.5 to 2.5: near the scores, some above a row's largest; expert biases of
             * ±7.5, so that the clamp at 7 bites on gate and up (both sides) */
            L->sk = rnd_vec(s->H, 0.5f, 2.0f);
            L->bo = rnd_vec(s->E, 0.0f, 0.3f);
            L->br = rnd_vec(s->NE, 0.0f, 1.0f);
            L->bxg = rnd_vec((size_t)s->NE * s->FE, 0.0f, 7.5f);
            L->bxu = rnd_vec((size_t)s->NE * s->FE, 0.0f, 7.5f);
            L->bxd = rnd_vec((size_t)s->NE * s->E, 0.0f, 0.3f);
        }
        if (g45) L->xb = rnd_vec(s->NE, 0.0f, 0.5f);
        const int FD = g45 ? s->FE : s->F; /* glm4moe's shared expert: FE rows */
        if (!moe || q2moe || g45) { /* the dense FFN, or the shared expert */
            L->wg = rnd_mat(FD, s->E, s->wtype);
            L->wu = rnd_mat(FD, s->E, s->wtype);
            L->wd = rnd_mat(s->E, FD, s->wtype);
        }
        if (!strcmp(s->arch, "glm4") || !strcmp(s->arch, "gemma2") || !strcmp(s->arch, "gemma3")) {
            L->pan = rnd_vec(s->E, 1.0f, 0.2f);
            L->pfn = rnd_vec(s->E, 1.0f, 0.2f);
        }
        if (qwen2 || is_glm(s)) {
            L->bq = rnd_vec((size_t)s->H * s->D, 0.0f, 0.3f);
            L->bk = rnd_vec((size_t)s->K * s->D, 0.0f, 0.3f);
            L->bv = rnd_vec((size_t)s->K * s->D, 0.0f, 0.3f);
        }
        if (qwen3) {
            L->qn = rnd_vec(s->D, 1.0f, 0.3f);
            L->kn = rnd_vec(s->D, 1.0f, 0.3f);
        }
        if (is_olmo(s)) { /* OLMo 2: q/k norms over the whole rows, post norms only */
            L->qn = rnd_vec((size_t)s->H * s->D, 1.0f, 0.3f);
            L->kn = rnd_vec((size_t)s->K * s->D, 1.0f, 0.3f);
            L->pan = rnd_vec(s->E, 1.0f, 0.2f);
            L->pfn = rnd_vec(s->E, 1.0f, 0.2f);
        }
    }
}

static void ref_free(ref_model_t *m) {
    for (int l = 0; l < m->s.L; l++) {
        ref_layer_t *L = &m->l[l];
        float *ps[] = {L->an,  L->fn,  L->qn,  L->kn,  L->bq,  L->bk,  L->bv,   L->wq,   L->wk,
                       L->wv,  L->wo,  L->wg,  L->wu,  L->wd,  L->wr,  L->xg,   L->xu,   L->xd,
                       L->pan, L->pfn, L->wsg, L->xb,  L->wqa, L->qan, L->wkva, L->kvan, L->wkvb,
                       L->sk,  L->bo,  L->br,  L->bxg, L->bxu, L->bxd};
        for (size_t i = 0; i < SL_ARRAY_LEN(ps); i++) free(ps[i]);
    }
    free(m->l);
    if (!m->s.tied) free(m->out);
    free(m->tok);
    free(m->onorm);
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->rope_short);
}

/* ------------------------------------------------------------ writing */

/* llama.cpp's convert_hf_to_gguf permute(): within each head, row
 * (s * D/2 + i) of the HF matrix becomes row (2i + s). */
static float *permute_rows(const float *w, int n_head, int D, int n_in) {
    float *p = malloc(sizeof(float) * (size_t)n_head * D * n_in);
    for (int h = 0; h < n_head; h++)
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < D / 2; i++)
                memcpy(p + ((size_t)h * D + 2 * i + s) * n_in, w + ((size_t)h * D + s * (D / 2) + i) * n_in,
                       sizeof(float) * n_in);
    return p;
}

/* n_mat matrices of n_out × n_in (3-D when n_mat > 1) */
static void add_mat(gguf_writer_t *w, const char *name, const float *data, int n_out, int n_in, sl_type_t t) {
    add_mats(w, name, data, n_out, n_in, 1, t);
}

static void add_vec(gguf_writer_t *w, const char *name, const float *data, int n) {
    int64_t ne[1] = {n};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, 1, ne, data) == 0);
}

static void set_u32(gguf_writer_t *w, const char *arch, const char *k, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    CHECK(gguf_writer_set_u32(w, key, v) == 0);
}
static void set_f32(gguf_writer_t *w, const char *arch, const char *k, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    CHECK(gguf_writer_set_f32(w, key, v) == 0);
}
static void set_bool(gguf_writer_t *w, const char *arch, const char *k, bool v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    CHECK(gguf_writer_set_bool(w, key, v) == 0);
}

/* skip: a tensor name to leave out (error tests); bad: one to give a wrong shape. */
static int write_model(const ref_model_t *m, const char *path, const char *skip, const char *bad) {
    const spec_t *s = &m->s;
    const char *a = s->arch;
    gguf_writer_t *w = gguf_writer_new();
    CHECK(gguf_writer_set_str(w, "general.architecture", a) == 0);
    CHECK(gguf_writer_set_str(w, "general.name", "test") == 0);
    set_u32(w, a, "context_length", (uint32_t)s->ctx);
    set_u32(w, a, "embedding_length", (uint32_t)s->E);
    set_u32(w, a, "block_count", (uint32_t)(s->L + s->nextn));
    if (s->nextn) set_u32(w, a, "nextn_predict_layers", (uint32_t)s->nextn);
    set_u32(w, a, "feed_forward_length", (uint32_t)s->F);
    set_u32(w, a, "attention.head_count", (uint32_t)s->H);
    set_u32(w, a, "attention.head_count_kv", (uint32_t)s->K);
    const bool ds = is_ds(s); /* MLA: the cached latent's key (R + ROPE) and value (R) lengths */
    set_u32(w, a, "attention.key_length", (uint32_t)(ds ? s->R + s->ROPE : s->D));
    set_u32(w, a, "attention.value_length", (uint32_t)(ds ? s->R : s->D));
    set_u32(w, a, "rope.dimension_count",
            (uint32_t)(ds ? s->ROPE : is_glm(s) || !strcmp(a, "glm4moe") ? s->D / 2 : s->D));
    set_f32(w, a, "attention.layer_norm_rms_epsilon", (float)m->eps);
    set_f32(w, a, "rope.freq_base", (float)m->base);
    if (!strcmp(a, "gemma2") || !strcmp(a, "gemma3") || is_oss(s) || (is_olmo(s) && s->swa))
        set_u32(w, a, "attention.sliding_window", (uint32_t)s->swa);
    if (is_granite(s)) {
        set_f32(w, a, "embedding_scale", (float)GR_EMBD);
        set_f32(w, a, "residual_scale", (float)GR_RES);
        set_f32(w, a, "attention.scale", (float)GR_ATT);
        set_f32(w, a, "logit_scale", (float)GR_LOGIT);
    }
    if (!strcmp(a, "gemma2")) {
        set_f32(w, a, "attn_logit_softcapping", s->acap);
        set_f32(w, a, "final_logit_softcapping", s->lcap);
    }
    if (s->NE) {
        set_u32(w, a, "expert_count", (uint32_t)s->NE);
        set_u32(w, a, "expert_used_count", (uint32_t)s->KU);
        /* Mixtral's and Granite MoE's files have no such key: experts n_ff wide */
        if (strcmp(a, "llama") && strcmp(a, "granitemoe"))
            set_u32(w, a, "expert_feed_forward_length", (uint32_t)s->FE);
        if (!strcmp(a, "qwen2moe")) set_u32(w, a, "expert_shared_feed_forward_length", (uint32_t)s->F);
        if (!strcmp(a, "glm4moe")) {
            set_u32(w, a, "expert_shared_count", 1);
            set_u32(w, a, "leading_dense_block_count", 1);
            set_f32(w, a, "expert_weights_scale", 1.5f);
            set_bool(w, a, "expert_weights_norm", true);
        }
    }
    if (ds) {
        set_u32(w, a, "attention.key_length_mla", (uint32_t)(s->NOPE + s->ROPE));
        set_u32(w, a, "attention.value_length_mla", (uint32_t)s->VH);
        if (s->QL) set_u32(w, a, "attention.q_lora_rank", (uint32_t)s->QL);
        set_u32(w, a, "attention.kv_lora_rank", (uint32_t)s->R);
        set_u32(w, a, "leading_dense_block_count", (uint32_t)s->LEAD);
        set_u32(w, a, "expert_shared_count", (uint32_t)s->NS);
        set_f32(w, a, "expert_weights_scale", s->wscale);
        set_bool(w, a, "expert_weights_norm", s->wnorm);
        if (s->gating) set_u32(w, a, "expert_gating_func", (uint32_t)s->gating);
        if (s->NG) {
            set_u32(w, a, "expert_group_count", (uint32_t)s->NG);
            set_u32(w, a, "expert_group_used_count", (uint32_t)s->GU);
        }
        if (s->scale == SCALE_YARN) set_f32(w, a, "rope.scaling.yarn_log_multiplier", 0.1f * s->mscale_all);
    }
    if (s->scale == SCALE_LINEAR || s->scale == SCALE_YARN) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        CHECK(gguf_writer_set_str(w, key, s->scale == SCALE_LINEAR ? "linear" : "yarn") == 0);
        set_f32(w, a, "rope.scaling.factor", s->factor);
        set_u32(w, a, "rope.scaling.original_context_length", (uint32_t)s->orig_ctx);
    }

    char n[96];
#define ADD_MAT(nm, data, no, ni)                                                                          \
    do {                                                                                                   \
        if (!skip || strcmp(skip, nm))                                                                     \
            add_mat(w, nm, data, (bad && !strcmp(bad, nm)) ? (no) - 1 : (no), ni, row_type(s, ni));         \
    } while (0)
#define ADD_MATS(nm, data, no, ni, k, t)                                                                   \
    do {                                                                                                   \
        if (!skip || strcmp(skip, nm))                                                                     \
            add_mats(w, nm, data, no, ni, (bad && !strcmp(bad, nm)) ? (k) - 1 : (k), t);                   \
    } while (0)
#define ADD_VEC(nm, data, len)                                                                             \
    do {                                                                                                   \
        if (!skip || strcmp(skip, nm)) add_vec(w, nm, data, (bad && !strcmp(bad, nm)) ? (len) - 1 : (len)); \
    } while (0)
    ADD_MAT("token_embd.weight", m->tok, s->V, s->E);
    ADD_VEC("output_norm.weight", m->onorm, s->E);
    if (!s->tied) ADD_MAT("output.weight", m->out, s->V, s->E);
    if (m->rope_freqs) ADD_VEC("rope_freqs.weight", m->rope_freqs, s->D / 2);
    if (m->rope_long) {
        ADD_VEC("rope_factors_long.weight", m->rope_long, s->D / 2);
        ADD_VEC("rope_factors_short.weight", m->rope_short, s->D / 2);
        set_f32(w, a, "rope.scaling.attn_factor", (float)m->attn_factor);
        set_u32(w, a, "rope.scaling.original_context_length", (uint32_t)s->orig_ctx);
    }
    const bool llama = !strcmp(a, "llama") || !strcmp(a, "internlm2") || !strcmp(a, "smollm3") || is_granite(s);
    for (int l = 0; l < s->L; l++) {
        const ref_layer_t *L = &m->l[l];
#define NM(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        if (!is_olmo(s)) {
            ADD_VEC(NM("attn_norm.weight"), L->an, s->E);
            ADD_VEC(NM(!strcmp(a, "glm4moe") || is_oss(s) ? "post_attention_norm.weight"
                                                          : "ffn_norm.weight"),
                    L->fn, s->E);
        }
        float *wq = llama ? permute_rows(L->wq, s->H, s->D, s->E) : L->wq;
        float *wk = llama ? permute_rows(L->wk, s->K, s->D, s->E) : L->wk;
        const int QD = s->H * s->D, KD = s->K * s->D;
        if (!strcmp(a, "chatglm") || !strcmp(a, "phi3")) { /* one fused QKV matrix (chatglm: and bias) */
            float *qkv = malloc(sizeof(float) * (size_t)(QD + 2 * KD) * s->E);
            float *b = malloc(sizeof(float) * (size_t)(QD + 2 * KD));
            memcpy(qkv, L->wq, sizeof(float) * (size_t)QD * s->E);
            memcpy(qkv + (size_t)QD * s->E, L->wk, sizeof(float) * (size_t)KD * s->E);
            memcpy(qkv + (size_t)(QD + KD) * s->E, L->wv, sizeof(float) * (size_t)KD * s->E);
            ADD_MAT(NM("attn_qkv.weight"), qkv, QD + 2 * KD, s->E);
            if (L->bq) {
                memcpy(b, L->bq, sizeof(float) * (size_t)QD);
                memcpy(b + QD, L->bk, sizeof(float) * (size_t)KD);
                memcpy(b + QD + KD, L->bv, sizeof(float) * (size_t)KD);
                ADD_VEC(NM("attn_qkv.bias"), b, QD + 2 * KD);
            }
            free(qkv);
            free(b);
        } else if (ds) { /* MLA */
            const int QK = s->H * (s->NOPE + s->ROPE);
            if (s->QL) {
                ADD_MAT(NM("attn_q_a.weight"), L->wqa, s->QL, s->E);
                ADD_VEC(NM("attn_q_a_norm.weight"), L->qan, s->QL);
                ADD_MAT(NM("attn_q_b.weight"), L->wq, QK, s->QL);
            } else {
                ADD_MAT(NM("attn_q.weight"), L->wq, QK, s->E);
            }
            ADD_MAT(NM("attn_kv_a_mqa.weight"), L->wkva, s->R + s->ROPE, s->E);
            ADD_VEC(NM("attn_kv_a_norm.weight"), L->kvan, s->R);
            if (s->kvb_fused) {
                ADD_MAT(NM("attn_kv_b.weight"), L->wkvb, s->H * (s->NOPE + s->VH), s->R);
            } else {
                float *kb = malloc(sizeof(float) * (size_t)s->H * s->R * s->NOPE);
                float *vb = malloc(sizeof(float) * (size_t)s->H * s->VH * s->R);
                ds_kv_b(s, L->wkvb, kb, vb, false);
                ADD_MATS(NM("attn_k_b.weight"), kb, s->R, s->NOPE, s->H, row_type(s, s->NOPE));
                ADD_MATS(NM("attn_v_b.weight"), vb, s->VH, s->R, s->H, row_type(s, s->R));
                free(kb), free(vb);
            }
        } else {
            ADD_MAT(NM("attn_q.weight"), wq, QD, s->E);
            ADD_MAT(NM("attn_k.weight"), wk, KD, s->E);
            ADD_MAT(NM("attn_v.weight"), L->wv, KD, s->E);
        }
        if (llama) {
            free(wq);
            free(wk);
        }
        if (L->pan) {
            ADD_VEC(NM("post_attention_norm.weight"), L->pan, s->E);
            ADD_VEC(NM("post_ffw_norm.weight"), L->pfn, s->E);
        }
        ADD_MAT(NM("attn_output.weight"), L->wo, s->E, ds ? s->H * s->VH : s->H * s->D);
        if (L->wr) {
            ADD_MATS(NM("ffn_gate_inp.weight"), L->wr, s->NE, s->E, 1, SL_TYPE_F32);
            ADD_MATS(NM("ffn_gate_exps.weight"), L->xg, s->FE, s->E, s->NE, row_type(s, s->E));
            ADD_MATS(NM("ffn_up_exps.weight"), L->xu, s->FE, s->E, s->NE, row_type(s, s->E));
            ADD_MATS(NM("ffn_down_exps.weight"), L->xd, s->E, s->FE, s->NE, row_type(s, s->FE));
            const int FS = shexp_rows(s);
            if (FS) {
                if (L->wsg) ADD_VEC(NM("ffn_gate_inp_shexp.weight"), L->wsg, s->E);
                if (L->xb) ADD_VEC(NM("exp_probs_b.bias"), L->xb, s->NE);
                ADD_MAT(NM("ffn_gate_shexp.weight"), L->wg, FS, s->E);
                ADD_MAT(NM("ffn_up_shexp.weight"), L->wu, FS, s->E);
                ADD_MAT(NM("ffn_down_shexp.weight"), L->wd, s->E, FS);
            }
        } else if (is_glm(s) || !strcmp(a, "phi3")) { /* gate rows then up rows in one ffn_up */
            float *gu = malloc(sizeof(float) * (size_t)2 * s->F * s->E);
            memcpy(gu, L->wg, sizeof(float) * (size_t)s->F * s->E);
            memcpy(gu + (size_t)s->F * s->E, L->wu, sizeof(float) * (size_t)s->F * s->E);
            ADD_MAT(NM("ffn_up.weight"), gu, 2 * s->F, s->E);
            ADD_MAT(NM("ffn_down.weight"), L->wd, s->E, s->F);
            free(gu);
        } else {
            ADD_MAT(NM("ffn_gate.weight"), L->wg, s->F, s->E);
            ADD_MAT(NM("ffn_up.weight"), L->wu, s->F, s->E);
            ADD_MAT(NM("ffn_down.weight"), L->wd, s->E, s->F);
        }
        if (L->bq && strcmp(a, "chatglm")) {
            ADD_VEC(NM("attn_q.bias"), L->bq, s->H * s->D);
            ADD_VEC(NM("attn_k.bias"), L->bk, s->K * s->D);
            ADD_VEC(NM("attn_v.bias"), L->bv, s->K * s->D);
        }
        if (L->sk) { /* gpt-oss: the expert biases 2-D, a row per expert */
            ADD_VEC(NM("attn_sinks.weight"), L->sk, s->H);
            ADD_VEC(NM("attn_output.bias"), L->bo, s->E);
            ADD_VEC(NM("ffn_gate_inp.bias"), L->br, s->NE);
            const char *bn[3] = {"ffn_gate_exps.bias", "ffn_up_exps.bias", "ffn_down_exps.bias"};
            const float *bd[3] = {L->bxg, L->bxu, L->bxd};
            for (int b = 0; b < 3; b++) /* F32 [FE or E, NE]; a bad one an expert short */
                if (!skip || strcmp(skip, NM(bn[b])))
                    add_mat(w, NM(bn[b]), bd[b], bad && !strcmp(bad, NM(bn[b])) ? s->NE - 1 : s->NE,
                            b < 2 ? s->FE : s->E, SL_TYPE_F32);
        }
        if (L->qn) {
            ADD_VEC(NM("attn_q_norm.weight"), L->qn, is_olmo(s) ? s->H * s->D : s->D);
            ADD_VEC(NM("attn_k_norm.weight"), L->kn, is_olmo(s) ? s->K * s->D : s->D);
        }
#undef NM
    }
#undef ADD_MAT
#undef ADD_MATS
#undef ADD_VEC
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    if (rc) fprintf(stderr, "write: %s\n", err);
    gguf_writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ reference */

static void ref_rmsnorm(double *out, const double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * sc * (w ? w[i] : 1.0);
}

static void ref_matvec(double *y, const float *w, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double s = 0;
        for (int i = 0; i < n_in; i++) s += (double)w[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

/* Hugging Face rotate-half RoPE with its scaling variants, written from the
 * HF formulas (not ggml's). */
static void ref_rope_base(const ref_model_t *m, double *v, int n_heads, int pos, double base, scale_kind_t sk);

/* gemma3's local layers: base 10000, no scaling */
static void ref_rope(const ref_model_t *m, double *v, int n_heads, int pos, bool local) {
    if (local)
        ref_rope_base(m, v, n_heads, pos, is_olmo(&m->s) ? m->base : 10000.0, SCALE_NONE);
    else
        ref_rope_base(m, v, n_heads, pos, m->base, m->s.scale);
}

/* HF's YaRN frequencies (_compute_yarn_parameters, DeepseekV2YarnRotaryEmbedding): pair i of D rotary
 * dims kept (extrapolated) below the correction range lo .. hi (the pairs turning beta_fast 32 ..
 * beta_slow 1 times in orig_ctx), interpolated (÷ factor) above it, ramped linearly between. */
static double ref_yarn_inv(const spec_t *s, double base, int D, int i) {
    const double beta_fast = 32, beta_slow = 1;
    const double lo = fmax(0, floor(D * log(s->orig_ctx / (beta_fast * 2 * M_PI)) / (2 * log(base))));
    double hi = fmin(D - 1, ceil(D * log(s->orig_ctx / (beta_slow * 2 * M_PI)) / (2 * log(base))));
    if (hi == lo) hi += 0.001;
    const double inv = pow(base, -2.0 * i / D), ramp = fmin(1, fmax(0, (i - lo) / (hi - lo)));
    return inv / s->factor * ramp + inv * (1 - ramp);
}

static void ref_rope_base(const ref_model_t *m, double *v, int n_heads, int pos, double base, scale_kind_t sk) {
    const spec_t *s = &m->s;
    /* glm4moe rotates the first half of each head (rotate-half within it) */
    const int HD = s->D, D = !strcmp(s->arch, "glm4moe") ? s->D / 2 : s->D, half = D / 2;
    for (int i = 0; i < half; i++) {
        double inv = pow(base, -2.0 * i / D), mscale = 1.0;
        if (s->longrope) { /* HF Phi3LongRoPEScaledRotaryEmbedding */
            inv /= s->use_long ? m->rope_long[i] : m->rope_short[i];
            mscale = m->attn_factor;
        }
        switch (sk) {
        case SCALE_NONE: break;
        case SCALE_LINEAR: inv /= s->factor; break;
        case SCALE_LLAMA3: inv /= m->rope_freqs[i]; break;
        case SCALE_YARN:
            inv = ref_yarn_inv(s, base, D, i);
            mscale = 0.1 * log(s->factor) + 1.0;
            break;
        }
        double th = pos * inv, c = cos(th) * mscale, sn = sin(th) * mscale;
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * HD;
            double a = x[i], b = x[i + half];
            x[i] = a * c - b * sn;
            x[i + half] = b * c + a * sn;
        }
    }
}

/* The router's choice (HF's MoE gates) of KU experts, pick, and their weights w: probabilities p of the
 * logits by softmax, or sigmoid (glm4moe, deepseek2 gating 2); the choice by p + the selection bias where
 * there is one; deepseek2 with NG groups (GU < NG kept): the experts in NG consecutive groups, each scored
 * by its 2 largest p + bias, only the GU best groups' experts eligible; the KU largest eligible, ties to
 * the lower index; w = their p, renormalized to sum 1 (but qwen2moe, deepseek2 unless wnorm), × a scale
 * (glm4moe 1.5, deepseek2 wscale). */
static void ref_route(const spec_t *s, const ref_layer_t *L, const double *x, int *pick, double *w,
                      ref_variant_t var) {
    if (is_oss(s)) { /* GptOssTopKRouter: the top k of the biased logits, softmax over those k */
        double lg[64], mx = -1e300, z = 0, zall = 0;
        bool used[64] = {false};
        ref_matvec(lg, L->wr, x, s->NE, s->E);
        for (int e = 0; e < s->NE; e++)
            mx = fmax(mx, lg[e] += L->br[e]);
        for (int j = 0; j < s->KU; j++) {
            int best = -1;
            for (int e = 0; e < s->NE; e++)
                if (!used[e] && (best < 0 || lg[e] > lg[best])) best = e;
            used[best] = true;
            pick[j] = best;
            z += (w[j] = exp(lg[best] - mx));
        }
        for (int e = 0; e < s->NE; e++)
            zall += exp(lg[e] - mx);
        for (int j = 0; j < s->KU; j++)
            w[j] /= var == REF_UNNORMALIZED ? zall : z;
        return;
    }
    const bool ds = is_ds(s), sig = ds ? s->gating == 2 : L->xb != NULL, norm = ds ? s->wnorm : !L->wsg;
    const int NE = s->NE, NG = ds && s->NG > 1 ? s->NG : 1, GS = NE / NG, GU = NG > 1 ? s->GU : 1;
    double p[64], sc[64], gsc[64], mx = -1e300, z = 0, wsum = 0;
    bool ok[64], kept[64] = {false};
    ref_matvec(p, L->wr, x, NE, s->E);
    for (int e = 0; e < NE; e++) mx = fmax(mx, p[e]);
    for (int e = 0; e < NE; e++) z += (p[e] = sig ? 1.0 / (1.0 + exp(-p[e])) : exp(p[e] - mx));
    for (int e = 0; e < NE; e++) {
        if (!sig) p[e] /= z;
        sc[e] = p[e] + (L->xb ? L->xb[e] : 0.0);
    }
    for (int g = 0; g < NG; g++) { /* the sum of the group's 2 largest */
        double a = -1e300, b = -1e300;
        for (int e = g * GS; e < (g + 1) * GS; e++) {
            if (sc[e] > a)
                b = a, a = sc[e];
            else
                b = fmax(b, sc[e]);
        }
        gsc[g] = a + b;
    }
    for (int j = 0; j < GU; j++) {
        int best = -1;
        for (int g = 0; g < NG; g++)
            if (!kept[g] && (best < 0 || gsc[g] > gsc[best])) best = g;
        kept[best] = true;
    }
    for (int e = 0; e < NE; e++) ok[e] = kept[e / GS];
    for (int j = 0; j < s->KU; j++) {
        int best = -1;
        for (int e = 0; e < NE; e++)
            if (ok[e] && (best < 0 || sc[e] > sc[best])) best = e;
        ok[best] = false;
        pick[j] = best;
        wsum += p[best];
    }
    for (int j = 0; j < s->KU; j++)
        w[j] = p[pick[j]] / (norm ? wsum : 1.0) * (ds ? s->wscale : L->xb ? 1.5 : 1.0);
}

/* The sparse block (HF Qwen3MoeSparseMoeBlock and kin): out = Σ w · down_e(silu(gate_e x) · up_e x) over
 * the routed experts, plus the shared expert (qwen2moe: gated by sigmoid(x · w)). g, u: scratch of
 * max(FE, shexp_rows) each. */
static void ref_moe(const spec_t *s, const ref_layer_t *L, const double *x, double *out, double *g,
                    double *u, ref_variant_t var) {
    const int E = s->E, FE = s->FE, FS = shexp_rows(s);
    int pick[64];
    double w[64], *y = calloc(E, sizeof(double));
    ref_route(s, L, x, pick, w, var);
    for (int i = 0; i < E; i++) out[i] = 0;
    for (int j = 0; j < s->KU; j++) {
        const int e = pick[j];
        ref_matvec(g, L->xg + (size_t)e * FE * E, x, FE, E);
        ref_matvec(u, L->xu + (size_t)e * FE * E, x, FE, E);
        for (int i = 0; i < FE && !L->bxg; i++)
            g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        for (int i = 0; i < FE && L->bxg;
             i++) { /* gpt-oss (GptOssExperts): biased, clamped, alpha 1.702 */
            double gg = g[i] + L->bxg[(size_t)e * FE + i], uu = u[i] + L->bxu[(size_t)e * FE + i];
            if (var != REF_NO_CLAMP) gg = fmin(gg, 7.0), uu = fmax(fmin(uu, 7.0), -7.0);
            g[i] = gg / (1 + exp(-1.702 * gg)) * (uu + 1);
        }
        ref_matvec(y, L->xd + (size_t)e * E * FE, g, E, FE);
        for (int i = 0; L->bxd && i < E; i++)
            y[i] += L->bxd[(size_t)e * E + i];
        for (int i = 0; i < E; i++) out[i] += w[j] * y[i];
    }
    if (FS) {
        double gs = 1.0;
        if (L->wsg) {
            gs = 0;
            for (int i = 0; i < E; i++) gs += (double)L->wsg[i] * x[i];
            gs = 1.0 / (1.0 + exp(-gs));
        }
        ref_matvec(g, L->wg, x, FS, E);
        ref_matvec(u, L->wu, x, FS, E);
        for (int i = 0; i < FS; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        ref_matvec(y, L->wd, g, E, FS);
        for (int i = 0; i < E; i++) out[i] += gs * y[i];
    }
    free(y);
}

/* DeepSeek's RoPE of the ROPE dims at x (HF DeepseekV2 interleaves q_pe / k_pe before rotate-half: adjacent
 * pairs (2i, 2i+1) turned by pos · base^(-2i/ROPE), YaRN-scaled). Its cos/sin keep magnitude 1 (mscale /
 * mscale_all_dim is 1); YaRN's m goes into the score scale instead. */
static void ref_rope_ds(const ref_model_t *m, double *x, int pos) {
    const spec_t *s = &m->s;
    const bool yarn = s->scale == SCALE_YARN;
    const double mag = yarn && m->var == REF_ROPE_MSCALE ? 1 + 0.1 * log(s->factor) : 1.0;
    for (int i = 0; i < s->ROPE / 2; i++) {
        const double inv = yarn ? ref_yarn_inv(s, m->base, s->ROPE, i) : pow(m->base, -2.0 * i / s->ROPE);
        const double c = cos(pos * inv) * mag, sn = sin(pos * inv) * mag, a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * sn;
        x[2 * i + 1] = b * c + a * sn;
    }
}

/* DeepSeek's multi-head latent attention (HF DeepseekV2Attention) over positions 0..n, its output added
 * to x: q from h (lite) or through the q LoRA and its norm, per head [q_nope | q_pe]; [c | k_pe] = kv_a h,
 * c normed; per head k_nope and v = kv_b_proj's k rows and v rows · c; q_pe and the one k_pe all heads
 * share turned; scores (q_nope·k_nope + q_pe·k_pe) · (NOPE+ROPE)^-0.5 · m², YaRN's
 * m = 1 + 0.1 mscale_all_dim ln(factor) (else 1). */
static void ref_mla(const ref_model_t *m, const ref_layer_t *L, double *x, int n) {
    const spec_t *s = &m->s;
    const int E = s->E, H = s->H, NOPE = s->NOPE, ROPE = s->ROPE, VH = s->VH, R = s->R, QK = NOPE + ROPE;
    double *q = calloc((size_t)n * H * QK, sizeof(double)), *kn = calloc((size_t)n * H * NOPE, sizeof(double));
    double *v = calloc((size_t)n * H * VH, sizeof(double)), *kpe = calloc((size_t)n * ROPE, sizeof(double));
    double *xn = calloc(E, sizeof(double)), *qa = calloc(s->QL + 1, sizeof(double));
    double *c = calloc(R + ROPE, sizeof(double)), *att = calloc((size_t)H * VH, sizeof(double));
    double *o = calloc(E, sizeof(double)), *p = calloc(n, sizeof(double));
    for (int t = 0; t < n; t++) {
        double *qt = q + (size_t)t * H * QK;
        ref_rmsnorm(xn, x + (size_t)t * E, L->an, E, m->eps);
        if (s->QL) {
            ref_matvec(qa, L->wqa, xn, s->QL, E);
            ref_rmsnorm(qa, qa, L->qan, s->QL, m->eps);
        }
        ref_matvec(qt, L->wq, s->QL ? qa : xn, H * QK, s->QL ? s->QL : E);
        ref_matvec(c, L->wkva, xn, R + ROPE, E);
        memcpy(kpe + (size_t)t * ROPE, c + R, sizeof(double) * ROPE);
        ref_rmsnorm(c, c, L->kvan, R, m->eps);
        for (int h = 0; h < H; h++) {
            const float *wk = L->wkvb + (size_t)h * (NOPE + VH) * R; /* NOPE k rows of R, then VH v rows */
            double *k = kn + ((size_t)t * H + h) * NOPE;
            ref_matvec(k, wk, c, NOPE, R);
            for (int i = 0; m->var == REF_KB_UNTRANSPOSED && i < NOPE; i++) {
                k[i] = 0; /* element f of the file's k_b (R rows of NOPE: wk transposed) taken as i * R + r */
                for (int r = 0, f = i * R; r < R; r++, f++) k[i] += wk[(size_t)(f % NOPE) * R + f / NOPE] * c[r];
            }
            ref_matvec(v + ((size_t)t * H + h) * VH, wk + (size_t)NOPE * R, c, VH, R);
            ref_rope_ds(m, qt + h * QK + NOPE, t);
        }
        ref_rope_ds(m, kpe + (size_t)t * ROPE, t);
    }
    const double mm = s->scale == SCALE_YARN && m->var != REF_NO_M2 ? 1 + 0.1 * s->mscale_all * log(s->factor) : 1;
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < H; h++) {
            const double *qh = q + ((size_t)t * H + h) * QK;
            double mx = -1e300, sum = 0;
            for (int j = 0; j <= t; j++) {
                double d = 0;
                for (int i = 0; i < NOPE; i++) d += qh[i] * kn[((size_t)j * H + h) * NOPE + i];
                for (int i = 0; i < ROPE; i++) d += qh[NOPE + i] * kpe[(size_t)j * ROPE + i];
                mx = fmax(mx, p[j] = d * mm * mm / sqrt((double)QK));
            }
            for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
            for (int i = 0; i < VH; i++) {
                double a = 0;
                for (int j = 0; j <= t; j++) a += p[j] / sum * v[((size_t)j * H + h) * VH + i];
                att[h * VH + i] = a;
            }
        }
        ref_matvec(o, L->wo, att, E, H * VH);
        for (int i = 0; i < E; i++) x[(size_t)t * E + i] += o[i];
    }
    free(q), free(kn), free(v), free(kpe), free(xn), free(qa), free(c), free(att), free(o), free(p);
}

/* Adjacent-pair rotary embedding (HF Glm4 / ChatGLM: the first R = D/2
 * dims of each head; ERNIE 4.5: all of them) rotated in pairs (2j, 2j+1)
 * by pos · base^(-2j/R); the rest pass through. */
static void ref_rope_glm(const ref_model_t *m, double *v, int n_heads, int pos) {
    const int D = m->s.D, R = is_glm(&m->s) ? D / 2 : D;
    for (int j = 0; j < R / 2; j++) {
        const double th = pos * pow(m->base, -2.0 * j / R), c = cos(th), sn = sin(th);
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * D;
            const double a = x[2 * j], b = x[2 * j + 1];
            x[2 * j] = a * c - b * sn;
            x[2 * j + 1] = b * c + a * sn;
        }
    }
}

/* All positions' logits of tokens[0..n): out is n × V. */
static void ref_forward(const ref_model_t *m, const int32_t *tok, int n, double *out) {
    const spec_t *s = &m->s;
    const int E = s->E, H = s->H, K = s->K, D = s->D, F = s->F, QD = H * D, KD = K * D;
    double *x = calloc((size_t)n * E, sizeof(double));
    double *q = calloc((size_t)n * QD, sizeof(double)), *k = calloc((size_t)n * KD, sizeof(double));
    double *v = calloc((size_t)n * KD, sizeof(double)), *att = calloc(QD, sizeof(double));
    double *xn = calloc(E, sizeof(double)), *o = calloc(E, sizeof(double));
    double *g = calloc(F + s->FE * (1 + s->NS), sizeof(double)), *u = calloc(F + s->FE * (1 + s->NS), sizeof(double));
    double *p = calloc(n, sizeof(double));
    const bool ds = is_ds(s);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++)
            x[(size_t)t * E + i] =
                m->tok[(size_t)tok[t] * E + i] * (is_gemma(s) ? sqrt((double)E) : is_granite(s) ? GR_EMBD : 1.0);
    for (int l = 0; l < s->L; l++) {
        const ref_layer_t *L = &m->l[l];
        if (ds) ref_mla(m, L, x, n);
        for (int t = 0; !ds && t < n; t++) {
            if (is_olmo(s))
                memcpy(xn, x + (size_t)t * E, sizeof(double) * (size_t)E);
            else
                ref_rmsnorm(xn, x + (size_t)t * E, L->an, E, m->eps);
            double *qt = q + (size_t)t * QD, *kt = k + (size_t)t * KD, *vt = v + (size_t)t * KD;
            ref_matvec(qt, L->wq, xn, QD, E);
            ref_matvec(kt, L->wk, xn, KD, E);
            ref_matvec(vt, L->wv, xn, KD, E);
            if (L->bq) {
                for (int i = 0; i < QD; i++) qt[i] += L->bq[i];
                for (int i = 0; i < KD; i++) kt[i] += L->bk[i], vt[i] += L->bv[i];
            }
            if (L->qn && is_olmo(s)) {
                ref_rmsnorm(qt, qt, L->qn, QD, m->eps);
                ref_rmsnorm(kt, kt, L->kn, KD, m->eps);
            } else if (L->qn) {
                for (int h = 0; h < H; h++) ref_rmsnorm(qt + h * D, qt + h * D, L->qn, D, m->eps);
                for (int h = 0; h < K; h++) ref_rmsnorm(kt + h * D, kt + h * D, L->kn, D, m->eps);
            }
            if (pair_rope(s)) {
                ref_rope_glm(m, qt, H, t);
                ref_rope_glm(m, kt, K, t);
            } else {
                /* gemma3's local RoPE (base 10000), OLMo 3's (the model's base, unscaled) */
                const bool local = layer_swa(s, l) && (!strcmp(s->arch, "gemma3") || is_olmo(s));
                if (!(!strcmp(s->arch, "smollm3") && (l + 1) % 4 == 0)) { /* SmolLM3: no RoPE on layers 3, 7, ... */
                    ref_rope(m, qt, H, t, local);
                    ref_rope(m, kt, K, t, local);
                }
            }
        }
        for (int t = 0; !ds && t < n; t++) {
            for (int h = 0; h < H; h++) {
                const int hk = h / (H / K);
                double mx = -1e300, sum = 0;
                /* gemma3's local layers: the last swa positions only */
                const bool win = is_oss(s) && m->var == REF_SWA_ODD ? l % 2 == 1 : layer_swa(s, l);
                const int j0 = win && t + 1 > s->swa ? t + 1 - s->swa : 0;
                for (int j = j0; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < D; i++) d += q[(size_t)t * QD + h * D + i] * k[(size_t)j * KD + hk * D + i];
                    p[j] = is_granite(s) ? d * GR_ATT : d / sqrt((double)D);
                    if (s->acap > 0) p[j] = s->acap * tanh(p[j] / s->acap); /* Gemma 2 soft-capping */
                    if (p[j] > mx) mx = p[j];
                }
                /* gpt-oss (HF eager_attention_forward): the head's sink logit joins the softmax,
                 * its probability dropped */
                const bool sink = L->sk && m->var != REF_NO_SINKS;
                if (sink) mx = fmax(mx, L->sk[h]);
                for (int j = j0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                const double ps = sink ? exp(L->sk[h] - mx) : 0;
                sum += ps;
                if (m->var == REF_SINK_NUMERATOR)
                    for (int j = j0; j <= t; j++)
                        p[j] += ps / (t + 1 - j0);
                for (int i = 0; i < D; i++) {
                    double a = 0;
                    for (int j = j0; j <= t; j++) a += p[j] / sum * v[(size_t)j * KD + hk * D + i];
                    att[h * D + i] = a;
                }
            }
            ref_matvec(o, L->wo, att, E, QD);
            for (int i = 0; L->bo && i < E; i++)
                o[i] += L->bo[i];
            if (L->pan) ref_rmsnorm(o, o, L->pan, E, m->eps);
            for (int i = 0; i < E; i++) x[(size_t)t * E + i] += o[i] * (is_granite(s) ? GR_RES : 1.0);
        }
        for (int t = 0; L->wr && t < n; t++) {
            ref_rmsnorm(xn, x + (size_t)t * E, L->fn, E, m->eps); /* (no MoE olmo2) */
            ref_moe(s, L, xn, o, g, u, m->var);
            for (int i = 0; i < E; i++) x[(size_t)t * E + i] += o[i] * (is_granite(s) ? GR_RES : 1.0);
        }
        for (int t = 0; !L->wr && t < n; t++) {
            if (is_olmo(s))
                memcpy(xn, x + (size_t)t * E, sizeof(double) * (size_t)E);
            else
                ref_rmsnorm(xn, x + (size_t)t * E, L->fn, E, m->eps);
            ref_matvec(g, L->wg, xn, F, E);
            ref_matvec(u, L->wu, xn, F, E);
            for (int i = 0; i < F; i++) /* gemma: tanh GELU (HF gelu_pytorch_tanh) */
                g[i] = (is_gemma(s) ? 0.5 * g[i] * (1 + tanh(sqrt(2 / M_PI) * (g[i] + 0.044715 * g[i] * g[i] * g[i])))
                                    : g[i] / (1 + exp(-g[i]))) *
                       u[i];
            ref_matvec(o, L->wd, g, E, F);
            if (L->pfn) ref_rmsnorm(o, o, L->pfn, E, m->eps);
            for (int i = 0; i < E; i++) x[(size_t)t * E + i] += o[i] * (is_granite(s) ? GR_RES : 1.0);
        }
    }
    for (int t = 0; t < n; t++) {
        ref_rmsnorm(xn, x + (size_t)t * E, m->onorm, E, m->eps);
        ref_matvec(out + (size_t)t * s->V, m->out, xn, s->V, E);
        if (is_granite(s))
            for (int i = 0; i < s->V; i++) out[(size_t)t * s->V + i] /= GR_LOGIT;
        if (s->lcap > 0) /* Gemma 2's final soft-capping */
            for (int i = 0; i < s->V; i++)
                out[(size_t)t * s->V + i] = s->lcap * tanh(out[(size_t)t * s->V + i] / s->lcap);
    }
    free(x), free(q), free(k), free(v), free(att), free(xn), free(o), free(g), free(u), free(p);
}

/* ------------------------------------------------------------ cases */

static char tmp_path[256];
static const char *model_path(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/silica-test-model-%d.gguf", (int)getpid());
    return tmp_path;
}


static void run_case(const char *label, const spec_t *s, double tol, sl_type_t kv_type, int n_threads) {
    ref_model_t rm;
    ref_init(&rm, s, (uint64_t)(strlen(label) * 7919 + (size_t)s->wtype));
    const char *path = model_path();
    CHECK(write_model(&rm, path, NULL, NULL) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", label, err);
    if (!m) {
        ref_free(&rm);
        return;
    }
    if (s->use_long) model_set_ctx(m, s->orig_ctx + 1);
    const sl_hparams_t *hp = model_hparams(m);
    CHECK(hp->n_vocab == s->V && hp->n_layer == s->L && (is_ds(s) || hp->head_dim == s->D));
    CHECK(hp->tied_output == s->tied);

    /* N tokens in a cache of CAP positions, CAP - N left free for the context-full check */
    const int N = s->n_tok ? s->n_tok : 11, CAP = N + 21;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)N), *many = calloc((size_t)CAP, sizeof(int32_t));
    for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 37 + 5) % s->V);
    double *want = malloc(sizeof(double) * N * (size_t)s->V);
    ref_forward(&rm, toks, N, want);

    sl_pool_t *pool = n_threads > 1 ? sl_pool_new(n_threads) : NULL;
    float *got = malloc(sizeof(float) * N * (size_t)s->V);
    float *last = malloc(sizeof(float) * (size_t)s->V);

    /* Prefill: all positions at once. */
    sl_kv_t *kv = model_kv_new(m, CAP, kv_type, err, sizeof err);
    CHECK_MSG(kv != NULL, "%s: %s", label, err);
    CHECK_MSG(model_forward(m, pool, kv, toks, N, got, true, err, sizeof err) == 0, "%s", err);
    CHECK(model_kv_len(kv) == N);
    double e = test_rel_err(got, want, (size_t)N * s->V);
    CHECK_MSG(e <= tol, "%s prefill: rel err %.3g > %.3g", label, e, tol);

    /* Decode: one token at a time; each step's logits are the prefill's. */
    model_kv_truncate(kv, 0);
    double worst = 0;
    for (int t = 0; t < N; t++) {
        CHECK_MSG(model_forward(m, pool, kv, &toks[t], 1, last, false, err, sizeof err) == 0, "%s", err);
        double et = test_rel_err(last, want + (size_t)t * s->V, (size_t)s->V);
        if (et > worst) worst = et;
        double ep = 0, mx = 1e-30;
        for (int i = 0; i < s->V; i++) {
            ep = fmax(ep, fabs((double)last[i] - got[(size_t)t * s->V + i]));
            mx = fmax(mx, fabs((double)got[(size_t)t * s->V + i]));
        }
        CHECK_MSG(ep / mx <= tol, "%s decode vs prefill at %d: %.3g", label, t, ep / mx);
    }
    CHECK_MSG(worst <= tol, "%s decode: rel err %.3g > %.3g", label, worst, tol);

    /* Mixed: prefill 4, then a chunk of N - 6, then last-only logits of 2. */
    model_kv_truncate(kv, 0);
    CHECK(model_forward(m, pool, kv, toks, 4, last, false, err, sizeof err) == 0);
    CHECK(model_forward(m, pool, kv, toks + 4, N - 6, last, false, err, sizeof err) == 0);
    CHECK(model_forward(m, pool, kv, toks + N - 2, 2, last, false, err, sizeof err) == 0);
    e = test_rel_err(last, want + (size_t)(N - 1) * s->V, (size_t)s->V);
    CHECK_MSG(e <= tol, "%s chunked: rel err %.3g", label, e);

    /* Errors: out-of-range token, context full. */
    int32_t bad = s->V;
    CHECK(model_forward(m, pool, kv, &bad, 1, last, false, err, sizeof err) != 0);
    CHECK(strstr(err, "out of range") != NULL);
    CHECK(model_forward(m, pool, kv, many, CAP, last, false, err, sizeof err) != 0);
    CHECK(strstr(err, "context") != NULL);

    model_kv_free(kv);
    sl_pool_free(pool);
    model_free(m);
    free(got), free(last), free(want), free(toks), free(many);
    ref_free(&rm);
    unlink(path);
    fprintf(stderr, "     %-28s max rel err %.2e\n", label, worst);
}

static spec_t base_spec(const char *arch) {
    spec_t s = {.arch = arch, .V = 96, .E = 64, .L = 2, .H = 4, .K = 2, .D = 16, .F = 96, .ctx = 256,
                .tied = false, .wtype = SL_TYPE_F32, .scale = SCALE_NONE, .factor = 1, .orig_ctx = 64};
    if (is_moe(&s)) s.NE = 4, s.KU = 2, s.FE = 32;
    if (is_ds(&s)) { /* DeepSeek-V2-Lite's shape, small: no q LoRA, softmax routing, layer 0 dense */
        s.V = 120, s.L = 3, s.K = 1, s.NOPE = 16, s.ROPE = 8, s.VH = 12, s.R = 32, s.LEAD = 1;
        s.NE = 8, s.KU = 2, s.FE = 32, s.NS = 1, s.gating = 1, s.wscale = 1;
    }
    return s;
}

static void test_llama_f32(void) {
    spec_t s = base_spec("llama");
    run_case("llama f32 untied", &s, 1e-4, SL_TYPE_F32, 1);
    s.tied = true;
    s.K = 4; /* no GQA */
    run_case("llama f32 tied mha", &s, 1e-4, SL_TYPE_F32, 2);
    s = base_spec("llama");
    s.scale = SCALE_LLAMA3;
    run_case("llama f32 rope_freqs", &s, 1e-4, SL_TYPE_F32, 1);
    s.scale = SCALE_LINEAR;
    s.factor = 4;
    run_case("llama f32 linear x4", &s, 1e-4, SL_TYPE_F32, 1);
}

static void test_qwen2_f32(void) {
    spec_t s = base_spec("qwen2");
    s.tied = true;
    run_case("qwen2 f32 tied", &s, 1e-4, SL_TYPE_F32, 2);
    s.scale = SCALE_YARN;
    s.factor = 4;
    s.orig_ctx = 32;
    run_case("qwen2 f32 yarn x4", &s, 1e-4, SL_TYPE_F32, 1);
}

static void test_qwen3_f32(void) {
    spec_t s = base_spec("qwen3");
    s.H = 8;
    s.K = 2; /* group of 4 */
    run_case("qwen3 f32 untied gqa4", &s, 1e-4, SL_TYPE_F32, 2);
}

/* InternLM2: the llama layout (Q/K rows permuted by the converter, adjacent-
 * pair RoPE) under its own key prefix */
static void test_internlm2_f32(void) {
    spec_t s = base_spec("internlm2");
    run_case("internlm2 f32 untied", &s, 1e-4, SL_TYPE_F32, 1);
}

/* Qwen3-MoE: 8 experts, 2 per token (and 3 of 5 with a q8_0 copy); the
 * prefill groups the 11 tokens by expert, decode runs one token's two */
static void test_qwen3moe(void) {
    spec_t s = base_spec("qwen3moe");
    s.NE = 8, s.KU = 2, s.FE = 32;
    run_case("qwen3moe f32 8x2", &s, 1e-4, SL_TYPE_F32, 2);
    s.NE = 5, s.KU = 3, s.FE = 64, s.tied = true;
    s.wtype = SL_TYPE_Q8_0;
    run_case("qwen3moe q8_0 5x3 tied", &s, 4e-2, SL_TYPE_F32, 1);
    /* Qwen2-MoE: weights not renormalized, a sigmoid-gated shared expert,
     * q/k/v biases, NEOX RoPE */
    s = base_spec("qwen2moe");
    s.NE = 6, s.KU = 2, s.FE = 32;
    run_case("qwen2moe f32 6x2 shared", &s, 1e-4, SL_TYPE_F32, 2);
    /* GLM-4.5: layer 0 dense, then sigmoid routing with a selection bias,
     * renormalized × 1.5, a shared expert; q/k/v biases, half-head NEOX */
    s = base_spec("glm4moe");
    s.L = 3, s.NE = 6, s.KU = 2, s.FE = 32;
    run_case("glm4moe f32 6x2 shared", &s, 1e-4, SL_TYPE_F32, 2);
}

/* GLM: RoPE over the first half of each head in adjacent pairs (no row
 * permutation), gate+up in one ffn_up; chatglm's fused QKV + bias, glm4's
 * separate q/k/v with biases and its post-attention / post-FFN norms */
static void test_glm(void) {
    spec_t s = base_spec("chatglm");
    run_case("chatglm f32 fused qkv", &s, 1e-4, SL_TYPE_F32, 2);
    s = base_spec("glm4");
    s.H = 8, s.K = 2;
    run_case("glm4 f32 post norms gqa4", &s, 1e-4, SL_TYPE_F32, 1);
    s.wtype = SL_TYPE_Q8_0, s.tied = true;
    run_case("glm4 q8_0 tied", &s, 4e-2, SL_TYPE_F16, 2);
    /* a trailing next-token-prediction layer (its tensors absent here) is
     * not part of the forward pass */
    s = base_spec("glm4");
    s.nextn = 1;
    run_case("glm4 f32 nextn layer", &s, 1e-4, SL_TYPE_F32, 1);
}

/* Phi-3: fused QKV (no bias) and gate+up, NEOX RoPE; a 128k-style file's
 * LongRoPE factors (short within the original context, long beyond it,
 * chosen by model_set_ctx) and its attn_factor on cos/sin */
static void test_phi3(void) {
    spec_t s = base_spec("phi3");
    run_case("phi3 f32 fused", &s, 1e-4, SL_TYPE_F32, 1);
    s.longrope = true, s.orig_ctx = 64;
    run_case("phi3 f32 longrope short", &s, 1e-4, SL_TYPE_F32, 2);
    s.use_long = true;
    run_case("phi3 f32 longrope long", &s, 1e-4, SL_TYPE_F32, 1);
}

/* Gemma: embeddings × sqrt(n_embd), tanh-GELU FFN, tied output; Gemma 3:
 * q/k norms, post norms, 7 layers of which 0-4 and 6 attend to the last 4
 * positions with RoPE base 10000 and layer 5 to all with base 1e6 (here
 * linearly scaled ×8, as Gemma 3 4B+ is) */
static void test_gemma(void) {
    spec_t s = base_spec("gemma");
    s.tied = true;
    run_case("gemma f32 tied", &s, 1e-4, SL_TYPE_F32, 1);
    s = base_spec("gemma3");
    s.tied = true, s.L = 7, s.swa = 4, s.D = 32; /* head_dim 32 with 4 heads of a 64 embedding */
    s.scale = SCALE_LINEAR, s.factor = 8;
    run_case("gemma3 f32 swa 4", &s, 1e-4, SL_TYPE_F32, 2);
    s.wtype = SL_TYPE_Q8_0;
    run_case("gemma3 q8_0 swa 4 kv-f16", &s, 4e-2, SL_TYPE_F16, 1);
    /* Gemma 2: even layers windowed, one RoPE; scores capped at 2 and
     * logits at 3 (far below Gemma 2's 50 / 30, so the caps bend these
     * small random values) */
    s = base_spec("gemma2");
    s.tied = true, s.L = 3, s.swa = 4, s.acap = 2.0f, s.lcap = 3.0f;
    run_case("gemma2 f32 swa softcap", &s, 1e-4, SL_TYPE_F32, 2);
}

/* Granite 3: the llama layout with embedding ×12, each residual branch
 * ×0.22, query scale 1/8, logits ÷8; Granite MoE: renormalized softmax
 * routing */
/* Mixtral: the llama layout (permuted Q/K) with 8 experts choose 2,
 * renormalized softmax routing */
static void test_mixtral(void) {
    spec_t s = base_spec("llama");
    s.NE = 8, s.KU = 2, s.FE = s.F;
    run_case("llama+experts f32 (mixtral)", &s, 1e-4, SL_TYPE_F32, 2);
}

/* ERNIE 4.5 (dense): the llama graph with adjacent-pair RoPE on rows the
 * converter does not permute (the HF model rotates pairs), tied */
static void test_ernie(void) {
    spec_t s = base_spec("ernie4_5");
    s.tied = true;
    run_case("ernie4_5 f32 tied", &s, 1e-4, SL_TYPE_F32, 1);
}

static void test_granite(void) {
    spec_t s = base_spec("granite");
    run_case("granite f32", &s, 1e-4, SL_TYPE_F32, 1);
    s = base_spec("granitemoe");
    s.NE = 6, s.KU = 2, s.FE = s.F;
    run_case("granitemoe f32 6x2", &s, 1e-4, SL_TYPE_F32, 2);
}

/* SmolLM3: 5 layers, layer 3 (the 4th) attends without RoPE */
static void test_smollm3(void) {
    spec_t s = base_spec("smollm3");
    s.L = 5, s.tied = true;
    run_case("smollm3 f32 nope layer", &s, 1e-4, SL_TYPE_F32, 2);
}

/* OLMo 2: no norm before attention or the FFN, q/k RMS norms over the
 * whole projection, norms after both; OLMo 3: layers 0-2 and 4 attend to
 * the last 4 positions with unscaled RoPE, layer 3 to all with the file's
 * (here linear ×2) scaling */
static void test_olmo2(void) {
    spec_t s = base_spec("olmo2");
    run_case("olmo2 f32", &s, 1e-4, SL_TYPE_F32, 1);
    s.L = 5, s.swa = 4, s.scale = SCALE_LINEAR, s.factor = 2;
    run_case("olmo3 f32 swa 4", &s, 1e-4, SL_TYPE_F32, 2);
}

/* DeepSeek-V2 / V3 (deepseek2): MLA attention (per-head k_nope / v from the normed latent through attn_k_b /
 * attn_v_b, one shared k_pe, adjacent-pair RoPE on the ROPE dims), layer 0 dense, then routed experts and
 * shared ones. V2-Lite's shape: no q LoRA, softmax routing; V3's: q LoRA, sigmoid routing with a selection
 * bias among the 2 best of 4 groups, renormalized × 2.5, 2 shared experts; then with YaRN ×4 (orig 32) run
 * to 40 positions; F16 and q8_0 KV caches; and q8_0 weights where the rows allow it (k_b's rows of NOPE 32,
 * v_b's of R 32; q_b's of 24 and attn_output's of 48 stay F32), the gating key absent (softmax). */
static spec_t ds_v3_spec(void) {
    spec_t s = base_spec("deepseek2");
    s.QL = 24, s.gating = 2, s.NE = 16, s.KU = 3, s.NG = 4, s.GU = 2, s.wnorm = true, s.wscale = 2.5f, s.NS = 2;
    return s;
}
static spec_t ds_yarn_spec(void) {
    spec_t s = ds_v3_spec();
    s.ROPE = 16, s.scale = SCALE_YARN, s.factor = 4, s.orig_ctx = 32, s.mscale_all = 0.707f, s.n_tok = 40;
    return s;
}

static void test_deepseek2(void) {
    spec_t s = base_spec("deepseek2");
    run_case("deepseek2 f32 lite", &s, 1e-4, SL_TYPE_F32, 1);
    run_case("deepseek2 f32 lite kv-f16", &s, 5e-3, SL_TYPE_F16, 2);
    s.R = 56; /* the cached row [c | k_pe] 64 long: a q8_0 KV cache */
    run_case("deepseek2 f32 lite kv-q8_0", &s, 4e-2, SL_TYPE_Q8_0, 2);
    s = ds_v3_spec();
    run_case("deepseek2 f32 v3 groups", &s, 1e-4, SL_TYPE_F32, 2);
    s = ds_yarn_spec();
    run_case("deepseek2 f32 v3 yarn x4", &s, 1e-4, SL_TYPE_F32, 1);
    run_case("deepseek2 f32 v3 yarn x4 kv-f16", &s, 5e-3, SL_TYPE_F16, 2);
    s = base_spec("deepseek2");
    s.NOPE = 32, s.gating = 0, s.wtype = SL_TYPE_Q8_0;
    run_case("deepseek2 q8_0 lite kv-f16", &s, 4e-2, SL_TYPE_F16, 2);
    s = ds_v3_spec();
    s.NOPE = 32, s.wtype = SL_TYPE_Q8_0;
    run_case("deepseek2 q8_0 v3", &s, 4e-2, SL_TYPE_F32, 1);

    /* the latent row is cached once: a KV block holds one F16 row of
     * kv_lora_rank + rope per layer and position, K and V both */
    s = base_spec("deepseek2");
    ref_model_t rm;
    ref_init(&rm, &s, 3);
    CHECK(write_model(&rm, model_path(), NULL, NULL) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    unlink(model_path());
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        CHECK(model_kv_block_bytes(m, 16, SL_TYPE_F16) == (size_t)16 * (size_t)s.L * (size_t)(s.R + s.ROPE) * 2);
        model_free(m);
    }
    ref_free(&rm);
}

/* The model of spec s (reference seed `seed`) matches its reference within tol, and both it and the
 * reference lie more than 10× tol from each of the n mutated references (so the comparison can
 * fail; the references' own distances are checked too, so the margins show while the model fails
 * to load). */
static void check_mutations(const char *label, const spec_t *s, uint64_t seed, double tol,
                            const ref_variant_t *muts, const char *const *names, size_t n) {
    ref_model_t rm;
    ref_init(&rm, s, seed);
    const int N = s->n_tok, NV = s->n_tok * s->V;
    int32_t toks[64];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 53 + 2) % s->V);
    double *want = malloc(sizeof(double) * NV), *mut = malloc(sizeof(double) * NV);
    float *got = malloc(sizeof(float) * NV), *wantf = malloc(sizeof(float) * NV);
    ref_forward(&rm, toks, N, want);
    for (int i = 0; i < NV; i++) wantf[i] = (float)want[i];
    const char *path = model_path();
    CHECK(write_model(&rm, path, NULL, NULL) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        sl_kv_t *kv = model_kv_new(m, N, SL_TYPE_F32, err, sizeof err);
        CHECK_MSG(model_forward(m, NULL, kv, toks, N, got, true, err, sizeof err) == 0, "%s", err);
        const double e = test_rel_err(got, want, (size_t)NV);
        CHECK_MSG(e <= tol, "%s mutation model: rel err %.3g", label, e);
        model_kv_free(kv);
    }
    for (size_t k = 0; k < n; k++) {
        rm.var = muts[k];
        ref_forward(&rm, toks, N, mut);
        const double er = test_rel_err(wantf, mut, (size_t)NV), em = m ? test_rel_err(got, mut, (size_t)NV) : er;
        CHECK_MSG(er > 10 * tol, "the %s reference is only %.3g from the right one", names[k], er);
        CHECK_MSG(em > 10 * tol, "against a %s reference: rel err only %.3g", names[k], em);
        fprintf(stderr, "     %s: against the %-24s reference %.2e (the references' distance %.2e)\n", label,
                names[k], em, er);
    }
    free(want), free(mut), free(got), free(wantf);
    model_free(m);
    ref_free(&rm);
    unlink(path);
}

/* The deepseek2 comparison can fail: on the YaRN model the output is near the right reference and far
 * (> 10× the tolerance) from one whose score scale lacks m², one reading attn_k_b untransposed, and one
 * whose cos/sin keep ggml's YaRN magnitude 1 + 0.1 ln(factor). The references' own distances are checked
 * too, so the margins show while the model fails to load. */
static void test_deepseek2_mutations(void) {
    const ref_variant_t muts[] = {REF_NO_M2, REF_KB_UNTRANSPOSED, REF_ROPE_MSCALE};
    const char *const names[] = {"score scale without m²", "k_b untransposed", "cos/sin × YaRN mscale"};
    const spec_t s = ds_yarn_spec();
    check_mutations("deepseek2", &s, 29, 1e-4, muts, names, SL_ARRAY_LEN(muts));
}

/* gpt-oss (HF GptOssForCausalLM as llama.cpp runs it): q/k/v/o biases, GQA, NEOX RoPE with YaRN ×32
 * on every layer, a sink logit per head in each softmax's denominator, a window of 4 on the even
 * layers (14 tokens: prefill and decode well past it), every layer's FFN routed experts (biased
 * router, top 2 of 4, softmax over the 2; biased experts, SwiGLU clamped at 7); F32 and q8_0
 * weights, F16 KV. */
static spec_t oss_spec(void) {
    spec_t s = base_spec("gpt-oss");
    s.L = 3, s.swa = 4, s.n_tok = 14, s.scale = SCALE_YARN, s.factor = 32, s.orig_ctx = 64;
    return s;
}

static void test_gpt_oss(void) {
    spec_t s = oss_spec();
    run_case("gpt-oss f32", &s, 1e-4, SL_TYPE_F32, 1);
    run_case("gpt-oss f32 kv-f16", &s, 5e-3, SL_TYPE_F16, 2);
    s.H = 8, s.K = 2, s.NE = 8, s.KU = 3; /* GQA 4, 3 of 8 experts */
    run_case("gpt-oss f32 gqa4 3-of-8", &s, 1e-4, SL_TYPE_F32, 3);
    /* q8_0: the matmuls round their inputs to 8 bits, and gpt-oss carries that rounding further
     * than the others (expert activations up to 7 · 8, the (up + 1) factor): 3-9e-2 over seeds at
     * n_embd 64, so n_embd 128 here (2-3e-2) */
    s = oss_spec();
    s.wtype = SL_TYPE_Q8_0, s.E = 128;
    run_case("gpt-oss q8_0", &s, 5e-2, SL_TYPE_F32, 2);
    run_case("gpt-oss q8_0 kv-f16", &s, 5e-2, SL_TYPE_F16, 1);
}

/* The gpt-oss comparison can fail: the model is near the right reference and far (> 10× the
 * tolerance) from one without sinks, one with the sink's share put back into the numerators, one
 * without the SwiGLU clamp, one windowing the odd layers instead of the even ones, and one
 * weighting the experts by the softmax over all of them (not renormalized over the chosen). */
static void test_gpt_oss_mutations(void) {
    const ref_variant_t muts[] = {REF_NO_SINKS, REF_SINK_NUMERATOR, REF_NO_CLAMP, REF_SWA_ODD,
                                  REF_UNNORMALIZED};
    const char *const names[] = {"no sinks", "sinks in the numerator", "unclamped SwiGLU",
                                 "odd window layers", "unrenormalized weights"};
    const spec_t s = oss_spec();
    check_mutations("gpt-oss", &s, 31, 1e-4, muts, names, SL_ARRAY_LEN(muts));
}

static void test_f16_and_q8(void) {
    spec_t s = base_spec("qwen3");
    s.wtype = SL_TYPE_F16;
    run_case("qwen3 f16", &s, 5e-3, SL_TYPE_F32, 1);
    s = base_spec("llama");
    s.wtype = SL_TYPE_F16;
    run_case("llama f16 kv-f16", &s, 8e-3, SL_TYPE_F16, 2);
    s = base_spec("qwen2");
    s.wtype = SL_TYPE_Q8_0;
    run_case("qwen2 q8_0", &s, 4e-2, SL_TYPE_F32, 2);
    s = base_spec("llama");
    s.wtype = SL_TYPE_Q8_0;
    s.tied = true;
    run_case("llama q8_0 tied", &s, 4e-2, SL_TYPE_F32, 1);
    /* q4_K (whole 256-element super-blocks): repacked into x8 panels at
     * load on AVX2, the tied embedding rows read back out of them */
    s = base_spec("qwen2");
    s.E = 256, s.D = 64, s.F = 512;
    s.wtype = SL_TYPE_Q4_K;
    s.tied = true;
    run_case("qwen2 q4_K tied", &s, 4e-2, SL_TYPE_F32, 2);
    /* the same for q5_K and q6_K (x8 decode and 4-token kernels), q3_K and
     * q2_K (GGUF rows, unpacked for the GEMM), iq4_xs and iq4_nl (GGUF
     * rows, tile / unpacked signed GEMM) */
    const sl_type_t more[] = {SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_Q3_K, SL_TYPE_Q2_K, SL_TYPE_IQ4_XS, SL_TYPE_IQ4_NL};
    for (size_t i = 0; i < SL_ARRAY_LEN(more); i++) {
        char label[32];
        snprintf(label, sizeof label, "qwen2 %s tied", sl_type_name(more[i]));
        s.wtype = more[i];
        run_case(label, &s, 4e-2, SL_TYPE_F32, 2);
    }
    /* the grid i-quants (GGUF rows: decode dots, tiles of dots, and with
     * 20 tokens the rows unpacked for the k-quant GEMM); one layer and a
     * 256-wide FFN, since their exhaustive-search quantizers (run for the
     * file and for the reference's rounding) dominate the test's time
     * under the sanitizers */
    s.L = 1, s.F = 256;
    const sl_type_t iq[] = {SL_TYPE_IQ2_XXS, SL_TYPE_IQ2_XS, SL_TYPE_IQ2_S, SL_TYPE_IQ3_XXS,
                            SL_TYPE_IQ3_S,   SL_TYPE_IQ1_S,  SL_TYPE_IQ1_M};
    for (size_t i = 0; i < SL_ARRAY_LEN(iq); i++) {
        char label[32];
        snprintf(label, sizeof label, "qwen2 %s tied", sl_type_name(iq[i]));
        s.wtype = iq[i];
        s.n_tok = 20;
        run_case(label, &s, 4e-2, SL_TYPE_F32, 2);
    }
}

/* A model with a missing or mis-shaped tensor fails to load with a message
 * naming the tensor. */
static void expect_load_error_spec(const spec_t *sp, const char *skip, const char *bad, const char *needle) {
    spec_t s = *sp;
    const char *arch = s.arch;
    ref_model_t rm;
    ref_init(&rm, &s, 3);
    const char *path = model_path();
    CHECK(write_model(&rm, path, skip, bad) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m == NULL, "%s: loaded despite %s", arch, skip ? skip : bad);
    CHECK_MSG(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    model_free(m);
    ref_free(&rm);
    unlink(path);
}

static void expect_load_error(const char *arch, const char *skip, const char *bad, const char *needle) {
    spec_t s = base_spec(arch);
    expect_load_error_spec(&s, skip, bad, needle);
}

static void test_validation(void) {
    expect_load_error("gemma4x", NULL, NULL, "unsupported architecture 'gemma4x' (supported: llama, internlm2");
    expect_load_error("glm4", "blk.1.post_ffw_norm.weight", NULL, "blk.1.post_ffw_norm.weight");
    expect_load_error("chatglm", NULL, "blk.0.attn_qkv.weight", "shape");
    expect_load_error("chatglm", NULL, "blk.1.ffn_up.weight", "2·n_ff");
    expect_load_error("qwen3moe", "blk.1.ffn_down_exps.weight", NULL, "blk.1.ffn_down_exps.weight");
    expect_load_error("qwen2moe", "blk.1.ffn_gate_inp_shexp.weight", NULL, "blk.1.ffn_gate_inp_shexp.weight");
    expect_load_error("qwen2moe", NULL, "blk.0.ffn_down_shexp.weight", "shape");
    expect_load_error("qwen3moe", "blk.0.ffn_gate_inp.weight", NULL, "blk.0.ffn_gate_inp.weight");
    expect_load_error("qwen3moe", NULL, "blk.0.ffn_up_exps.weight", "shape");
    spec_t moe = base_spec("qwen3moe");
    moe.KU = moe.NE + 1;
    expect_load_error_spec(&moe, NULL, NULL, "expert_used_count");
    moe = base_spec("qwen3moe");
    moe.NE = 0;
    expect_load_error_spec(&moe, NULL, NULL, "expert_count");
    expect_load_error("llama", "blk.1.ffn_up.weight", NULL, "blk.1.ffn_up.weight");
    expect_load_error("qwen2", "blk.0.attn_k.bias", NULL, "blk.0.attn_k.bias");
    expect_load_error("qwen3", "blk.1.attn_q_norm.weight", NULL, "attn_q_norm");
    expect_load_error("llama", "output_norm.weight", NULL, "output_norm.weight");
    expect_load_error("llama", NULL, "blk.0.attn_v.weight", "blk.0.attn_v.weight");
    expect_load_error("qwen2", NULL, "blk.1.ffn_norm.weight", "shape");
    /* gpt-oss: sinks, biases (the experts' 2-D ones) and the FFN norm's name */
    spec_t oss = oss_spec();
    expect_load_error_spec(&oss, "blk.1.attn_sinks.weight", NULL, "blk.1.attn_sinks.weight");
    expect_load_error_spec(&oss, NULL, "blk.0.attn_sinks.weight", "blk.0.attn_sinks.weight");
    expect_load_error_spec(&oss, NULL, "blk.2.ffn_up_exps.bias", "blk.2.ffn_up_exps.bias");
    expect_load_error_spec(&oss, "blk.0.ffn_gate_inp.bias", NULL, "blk.0.ffn_gate_inp.bias");
    expect_load_error_spec(&oss, "blk.1.attn_output.bias", NULL, "blk.1.attn_output.bias");
    expect_load_error_spec(&oss, "blk.0.post_attention_norm.weight", NULL,
                           "blk.0.post_attention_norm.weight");
    /* deepseek2: the MLA tensors named; the older converter's attn_kv_b refused */
    expect_load_error("deepseek2", "blk.0.attn_k_b.weight", NULL, "blk.0.attn_k_b.weight");
    expect_load_error("deepseek2", NULL, "blk.1.attn_k_b.weight", "blk.1.attn_k_b.weight");
    spec_t ds = ds_v3_spec();
    expect_load_error_spec(&ds, "blk.2.exp_probs_b.bias", NULL, "blk.2.exp_probs_b.bias");
    ds = base_spec("deepseek2");
    ds.kvb_fused = true;
    expect_load_error_spec(&ds, NULL, NULL, "attn_k_b");
    char err[SL_ERR_MAX] = "";
    CHECK(model_load("/nonexistent/x.gguf", err, sizeof err) == NULL);
    CHECK(err[0] != '\0');
}

/* The type of blk.<l>.<what>.weight with rows of n_in under p. */
static sl_type_t plan_at(const model_qplan_t *p, int l, const char *what, int64_t n_in) {
    char n[96];
    snprintf(n, sizeof n, "blk.%d.%s.weight", l, what);
    return model_qplan_type(p, n, 2, n_in);
}

/* llama.cpp's per-tensor rules for its k-quant mixes and the fallbacks. */
static void test_quant_plan(void) {
    model_qplan_t p;
    char err[SL_ERR_MAX];
    CHECK(model_qplan_init(&p, "q4_k_m", 24, 7, true, err, sizeof err) == 0);
    CHECK(p.ftype == 15);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 1024) == SL_TYPE_Q6_K); /* tied: it is the output */
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 896) == SL_TYPE_Q8_0);  /* q6_K row fallback */
    CHECK(model_qplan_type(&p, "blk.0.attn_norm.weight", 1, 1024) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.attn_q.bias", 1, 1024) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.3.attn_q.weight", 2, 1024) == SL_TYPE_Q4_K);
    /* fused QKV one step up (llama.cpp's attn_qkv rule); the MoE router
     * stays F32; expert down projections follow ffn_down's layer rule */
    CHECK(model_qplan_type(&p, "blk.3.attn_qkv.weight", 2, 1024) == SL_TYPE_Q5_K);
    CHECK(model_qplan_type(&p, "blk.3.ffn_gate_inp.weight", 2, 1024) == SL_TYPE_F32);
    /* bert's position and token-type tables stay F32 */
    CHECK(model_qplan_type(&p, "position_embd.weight", 2, 1024) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "token_types.weight", 2, 1024) == SL_TYPE_F32);
    CHECK(model_qplan_type(&p, "blk.0.ffn_down_exps.weight", 3, 1024) == SL_TYPE_Q6_K);
    CHECK(model_qplan_type(&p, "blk.4.ffn_down_exps.weight", 3, 1024) == SL_TYPE_Q4_K);
    CHECK(model_qplan_type(&p, "blk.4.ffn_up_exps.weight", 3, 1024) == SL_TYPE_Q4_K);
    CHECK(model_qplan_type(&p, "blk.3.attn_q.weight", 2, 896) == SL_TYPE_Q5_0);
    /* use_more_bits(i, 24): i < 3, i >= 21, (i - 3) % 3 == 2 */
    int more[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23};
    for (int l = 0; l < 24; l++) {
        bool m = false;
        for (size_t k = 0; k < SL_ARRAY_LEN(more); k++) m |= more[k] == l;
        char n[64];
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
        CHECK_MSG(model_qplan_type(&p, n, 2, 4864) == (m ? SL_TYPE_Q6_K : SL_TYPE_Q4_K), "%s", n);
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
        CHECK_MSG(model_qplan_type(&p, n, 2, 1024) == (m ? SL_TYPE_Q6_K : SL_TYPE_Q4_K), "%s", n);
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
        CHECK(model_qplan_type(&p, n, 2, 1024) == SL_TYPE_Q4_K);
    }
    CHECK(model_qplan_init(&p, "q4_K_M", 24, 7, false, err, sizeof err) == 0);
    CHECK(model_qplan_type(&p, "output.weight", 2, 1024) == SL_TYPE_Q6_K);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 1024) == SL_TYPE_Q4_K);
    CHECK(plan_at(&p, 3, "attn_output", 1024) == SL_TYPE_Q4_K);
    CHECK(model_qplan_init(&p, "Q8_0", 2, 1, false, err, sizeof err) == 0);
    CHECK(model_qplan_type(&p, "output.weight", 2, 64) == SL_TYPE_Q8_0);
    CHECK(model_qplan_type(&p, "blk.0.ffn_up.weight", 2, 48) == SL_TYPE_F16); /* 48 % 32 != 0 */
    /* the 32-block types: the output matrix in q6_K, all else the type */
    CHECK(model_qplan_init(&p, "q4_0", 2, 1, false, err, sizeof err) == 0);
    CHECK(p.ftype == 2);
    CHECK(model_qplan_type(&p, "output.weight", 2, 1024) == SL_TYPE_Q6_K);
    CHECK(model_qplan_type(&p, "output.weight", 2, 96) == SL_TYPE_Q8_0); /* 96 % 256 != 0 */
    CHECK(model_qplan_type(&p, "output.weight", 2, 48) == SL_TYPE_F16);  /* nor a q4_0 row */
    CHECK(plan_at(&p, 0, "ffn_down", 1024) == SL_TYPE_Q4_0 && plan_at(&p, 1, "attn_v", 1024) == SL_TYPE_Q4_0);
    /* the pure q4_K: every weight */
    CHECK(model_qplan_init(&p, "q4_K", 8, 1, false, err, sizeof err) == 0);
    CHECK(model_qplan_type(&p, "output.weight", 2, 1024) == SL_TYPE_Q4_K && plan_at(&p, 0, "attn_v", 256) == SL_TYPE_Q4_K);
    /* q2_K: attn_v by query heads per KV head; ffn_down, attn_output q3_K */
    CHECK(model_qplan_init(&p, "q2_K", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 10);
    CHECK(plan_at(&p, 5, "attn_v", 512) == SL_TYPE_Q3_K && plan_at(&p, 5, "attn_q", 512) == SL_TYPE_Q2_K);
    CHECK(plan_at(&p, 5, "ffn_down", 512) == SL_TYPE_Q3_K && plan_at(&p, 5, "attn_output", 512) == SL_TYPE_Q3_K);
    CHECK(plan_at(&p, 5, "ffn_up", 512) == SL_TYPE_Q2_K && plan_at(&p, 5, "ffn_up", 96) == SL_TYPE_Q4_0);
    CHECK(model_qplan_type(&p, "output.weight", 2, 512) == SL_TYPE_Q6_K);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 512) == SL_TYPE_Q2_K);
    CHECK(model_qplan_init(&p, "q2_K", 16, 4, false, err, sizeof err) == 0);
    CHECK(plan_at(&p, 5, "attn_v", 512) == SL_TYPE_Q4_K);
    /* q3_K_S / M / L */
    CHECK(model_qplan_init(&p, "q3_K_S", 32, 4, false, err, sizeof err) == 0);
    CHECK(p.ftype == 11 && plan_at(&p, 0, "attn_v", 512) == SL_TYPE_Q3_K && plan_at(&p, 0, "ffn_down", 512) == SL_TYPE_Q3_K);
    CHECK(model_qplan_init(&p, "q3_K_M", 32, 4, false, err, sizeof err) == 0);
    CHECK(p.ftype == 12);
    for (int l = 0; l < 32; l++) {
        CHECK_MSG(plan_at(&p, l, "attn_v", 512) == (l < 2 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K), "q3_K_M attn_v %d", l);
        CHECK_MSG(plan_at(&p, l, "ffn_down", 512) == (l < 2 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K), "q3_K_M ffn_down %d", l);
        CHECK(plan_at(&p, l, "attn_output", 512) == SL_TYPE_Q4_K && plan_at(&p, l, "ffn_gate", 512) == SL_TYPE_Q3_K);
    }
    CHECK(model_qplan_init(&p, "q3_K_L", 32, 4, false, err, sizeof err) == 0);
    CHECK(p.ftype == 13 && plan_at(&p, 9, "attn_v", 512) == SL_TYPE_Q5_K && plan_at(&p, 9, "ffn_down", 512) == SL_TYPE_Q5_K);
    CHECK(plan_at(&p, 9, "attn_output", 512) == SL_TYPE_Q5_K && plan_at(&p, 9, "attn_k", 512) == SL_TYPE_Q3_K);
    CHECK(plan_at(&p, 9, "attn_output", 96) == SL_TYPE_Q5_1); /* q5_K row fallback */
    /* q4_K_S, q5_K_S */
    CHECK(model_qplan_init(&p, "q4_K_S", 24, 7, false, err, sizeof err) == 0);
    for (int l = 0; l < 24; l++) {
        CHECK(plan_at(&p, l, "attn_v", 512) == (l < 4 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K));
        CHECK(plan_at(&p, l, "ffn_down", 512) == (l < 3 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K));
    }
    CHECK(model_qplan_init(&p, "q5_K_S", 24, 7, true, err, sizeof err) == 0);
    CHECK(p.ftype == 16 && plan_at(&p, 0, "attn_v", 512) == SL_TYPE_Q5_K);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 512) == SL_TYPE_Q6_K);
    /* iq4_nl / iq4_xs (no importance matrix) */
    CHECK(model_qplan_init(&p, "iq4_xs", 24, 7, false, err, sizeof err) == 0);
    CHECK(p.ftype == 30 && plan_at(&p, 5, "attn_q", 512) == SL_TYPE_IQ4_XS);
    CHECK(plan_at(&p, 5, "attn_v", 512) == SL_TYPE_Q5_K && plan_at(&p, 2, "ffn_down", 512) == SL_TYPE_Q5_K);
    CHECK(plan_at(&p, 3, "ffn_down", 512) == SL_TYPE_IQ4_XS);
    CHECK(plan_at(&p, 5, "ffn_up", 896) == SL_TYPE_IQ4_NL); /* row fallback */
    CHECK(model_qplan_type(&p, "output.weight", 2, 512) == SL_TYPE_Q6_K);
    CHECK(model_qplan_init(&p, "iq4_nl", 24, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 25 && plan_at(&p, 5, "attn_v", 896) == SL_TYPE_IQ4_NL);
    CHECK(model_qplan_type(&p, "output.weight", 2, 896) == SL_TYPE_Q8_0); /* 896 % 256: q6_K falls back */
    /* the grid i-quant file types, llama.cpp's rules without an importance
     * matrix: iq2_m (main type iq2_s, iq3_s for attn_v / attn_output /
     * the first eighth's ffn_down and the untied embedding) */
    CHECK(model_qplan_init(&p, "IQ2_M", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 29 && plan_at(&p, 5, "attn_q", 512) == SL_TYPE_IQ2_S && plan_at(&p, 5, "ffn_up", 512) == SL_TYPE_IQ2_S);
    CHECK(plan_at(&p, 5, "attn_v", 512) == SL_TYPE_IQ3_S && plan_at(&p, 5, "attn_output", 512) == SL_TYPE_IQ3_S);
    CHECK(plan_at(&p, 1, "ffn_down", 512) == SL_TYPE_IQ3_S && plan_at(&p, 2, "ffn_down", 512) == SL_TYPE_IQ2_S);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 512) == SL_TYPE_IQ3_S);
    CHECK(model_qplan_type(&p, "output.weight", 2, 512) == SL_TYPE_Q5_K);
    CHECK(plan_at(&p, 5, "ffn_up", 896) == SL_TYPE_IQ4_NL); /* row fallback */
    CHECK(model_qplan_init(&p, "iq2_m", 16, 4, false, err, sizeof err) == 0);
    CHECK(plan_at(&p, 5, "attn_v", 512) == SL_TYPE_Q4_K);
    /* iq2_s's main type is iq2_xs; iq2_xxs / iq1_*: q2_K where iq2_m takes iq3_s */
    CHECK(model_qplan_init(&p, "iq2_s", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 28 && plan_at(&p, 5, "attn_q", 512) == SL_TYPE_IQ2_XS);
    CHECK(model_qplan_init(&p, "iq2_xxs", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 19 && plan_at(&p, 5, "attn_q", 512) == SL_TYPE_IQ2_XXS && plan_at(&p, 5, "attn_v", 512) == SL_TYPE_Q2_K);
    CHECK(plan_at(&p, 0, "ffn_down", 512) == SL_TYPE_Q2_K && plan_at(&p, 9, "ffn_down", 512) == SL_TYPE_IQ2_XXS);
    CHECK(plan_at(&p, 9, "attn_output", 512) == SL_TYPE_IQ2_XXS);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 512) == SL_TYPE_Q2_K);
    CHECK(model_qplan_init(&p, "iq1_m", 16, 2, true, err, sizeof err) == 0);
    CHECK(p.ftype == 31 && plan_at(&p, 9, "ffn_gate", 512) == SL_TYPE_IQ1_M);
    CHECK(plan_at(&p, 9, "attn_output", 512) == SL_TYPE_IQ2_XXS);
    CHECK(model_qplan_type(&p, "token_embd.weight", 2, 512) == SL_TYPE_Q5_K); /* tied: the output rule */
    CHECK(model_qplan_init(&p, "iq1_s", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 24 && plan_at(&p, 9, "ffn_up", 512) == SL_TYPE_IQ1_S);
    /* iq3_xxs, iq3_xs, iq3_s, iq3_m */
    CHECK(model_qplan_init(&p, "iq3_xxs", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 23 && plan_at(&p, 9, "ffn_up", 512) == SL_TYPE_IQ3_XXS && plan_at(&p, 9, "attn_v", 512) == SL_TYPE_IQ3_S);
    CHECK(plan_at(&p, 9, "attn_q", 512) == SL_TYPE_IQ2_S && plan_at(&p, 9, "attn_k", 512) == SL_TYPE_IQ2_S);
    CHECK(plan_at(&p, 1, "ffn_down", 512) == SL_TYPE_Q4_K && plan_at(&p, 9, "ffn_down", 512) == SL_TYPE_Q3_K);
    CHECK(plan_at(&p, 9, "attn_output", 512) == SL_TYPE_IQ3_S && model_qplan_type(&p, "output.weight", 2, 512) == SL_TYPE_Q5_K);
    CHECK(model_qplan_init(&p, "iq3_xs", 16, 4, false, err, sizeof err) == 0);
    CHECK(p.ftype == 22 && plan_at(&p, 9, "attn_v", 512) == SL_TYPE_Q4_K && plan_at(&p, 9, "attn_q", 512) == SL_TYPE_IQ3_XXS);
    CHECK(plan_at(&p, 1, "ffn_up", 512) == SL_TYPE_IQ3_S && plan_at(&p, 9, "ffn_up", 512) == SL_TYPE_IQ3_XXS);
    CHECK(plan_at(&p, 14, "ffn_gate", 512) == SL_TYPE_IQ3_S && plan_at(&p, 9, "ffn_down", 512) == SL_TYPE_IQ3_S);
    CHECK(model_qplan_init(&p, "iq3_s", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 26 && plan_at(&p, 9, "attn_v", 512) == SL_TYPE_IQ3_S && model_qplan_type(&p, "output.weight", 2, 512) == SL_TYPE_Q6_K);
    CHECK(model_qplan_init(&p, "iq3_m", 16, 2, false, err, sizeof err) == 0);
    CHECK(p.ftype == 27 && plan_at(&p, 9, "attn_q", 512) == SL_TYPE_IQ3_S && plan_at(&p, 9, "attn_v", 512) == SL_TYPE_Q4_K);
    CHECK(plan_at(&p, 9, "attn_output", 512) == SL_TYPE_Q4_K && plan_at(&p, 1, "ffn_down", 512) == SL_TYPE_Q4_K);
    CHECK(plan_at(&p, 9, "ffn_down", 512) == SL_TYPE_IQ3_S);
    /* mxfp4_moe (gpt-oss's files): expert stacks mxfp4, every other matrix
     * q8_0, the output included */
    CHECK(model_qplan_init(&p, "mxfp4_moe", 24, 8, false, err, sizeof err) == 0);
    CHECK(p.ftype == 38 && plan_at(&p, 3, "ffn_up_exps", 2880) == SL_TYPE_MXFP4);
    CHECK(plan_at(&p, 3, "ffn_down_exps", 2880) == SL_TYPE_MXFP4 && plan_at(&p, 3, "attn_v", 2880) == SL_TYPE_Q8_0);
    CHECK(plan_at(&p, 3, "ffn_gate_inp", 2880) == SL_TYPE_F32 && model_qplan_type(&p, "output.weight", 2, 2880) == SL_TYPE_Q8_0);
    CHECK(plan_at(&p, 3, "ffn_up_exps", 2884) == SL_TYPE_F16); /* rows not of 32-blocks */
    CHECK(model_qplan_init(&p, "q9_9", 2, 1, false, err, sizeof err) != 0);
    CHECK(strstr(err, "q9_9") != NULL);
}

/* Writes rm as an F32 file, converts it with `silica quantize`'s code to
 * type and loads the result (NULL on failure, checked); *path gets the
 * converted file's name for the caller to remove. */
static sl_model_t *quantize_and_load(ref_model_t *rm, const char *type, sl_pool_t *pool, char *path, size_t pathlen) {
    char src[300], err[SL_ERR_MAX] = "";
    snprintf(src, sizeof src, "%s", model_path());
    snprintf(path, pathlen, "%s.%s", src, type);
    CHECK(write_model(rm, src, NULL, NULL) == 0);
    CHECK_MSG(model_quantize_file(src, path, type, pool, false, err, sizeof err) == 0, "%s", err);
    unlink(src);
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    return m;
}

/* Relative error of the converted model's last-position logits against
 * the F32 reference over toks. */
static double quantized_logits_err(ref_model_t *rm, sl_model_t *m, sl_pool_t *pool, const int32_t *toks, int n) {
    const spec_t *s = &rm->s;
    char err[SL_ERR_MAX] = "";
    double *want = malloc(sizeof(double) * (size_t)n * (size_t)s->V);
    float *got = malloc(sizeof(float) * (size_t)s->V);
    ref_forward(rm, toks, n, want);
    sl_kv_t *kv = model_kv_new(m, n, SL_TYPE_F32, err, sizeof err);
    CHECK(model_forward(m, pool, kv, toks, n, got, false, err, sizeof err) == 0);
    const double e = test_rel_err(got, want + (size_t)(n - 1) * s->V, (size_t)s->V);
    model_kv_free(kv);
    free(want), free(got);
    return e;
}

/* silica quantize: an F32 model converted to q8_0 keeps its metadata and
 * 1-D tensors, and its logits stay near the F32 reference. */
static void test_quantize_file(void) {
    spec_t s = base_spec("qwen2");
    ref_model_t rm;
    ref_init(&rm, &s, 11);
    char dst[320];
    sl_pool_t *pool = sl_pool_new(2);
    sl_model_t *m = quantize_and_load(&rm, "q8_0", pool, dst, sizeof dst);
    if (m) {
        const gguf_file_t *g = model_gguf(m);
        CHECK(gguf_find_tensor(g, "blk.1.ffn_down.weight")->type == SL_TYPE_Q8_0);
        CHECK(gguf_find_tensor(g, "output.weight")->type == SL_TYPE_Q8_0);
        CHECK(gguf_find_tensor(g, "blk.0.attn_q.bias")->type == SL_TYPE_F32);
        CHECK(gguf_find_tensor(g, "output_norm.weight")->type == SL_TYPE_F32);
        CHECK(gguf_get_u32_or(g, "general.file_type", 99) == 7);
        CHECK(gguf_get_u32_or(g, "qwen2.block_count", 0) == (uint32_t)s.L);
        const int32_t toks[6] = {1, 50, 7, 90, 3, 3};
        const double e = quantized_logits_err(&rm, m, pool, toks, 6);
        CHECK_MSG(e < 5e-2, "quantized q8_0 logits off by %.3g", e);
        model_free(m);
    }
    sl_pool_free(pool);
    ref_free(&rm);
    unlink(dst);
}

/* silica quantize to a llama.cpp k-quant mix: the query heads per KV head
 * come from the file's metadata (q2_K's attn_v rule), every tensor gets
 * its rule's type, and the model runs close to the F32 reference. */
static void test_quantize_file_kmix(void) {
    spec_t s = base_spec("llama");
    s.E = 256, s.D = 64, s.H = 4, s.K = 1, s.F = 512, s.V = 96; /* GQA 4 */
    ref_model_t rm;
    ref_init(&rm, &s, 12);
    char dst[320];
    sl_pool_t *pool = sl_pool_new(2);
    sl_model_t *m = quantize_and_load(&rm, "q2_K", pool, dst, sizeof dst);
    if (m) {
        const gguf_file_t *g = model_gguf(m);
        CHECK(gguf_get_u32_or(g, "general.file_type", 99) == 10);
        CHECK(gguf_find_tensor(g, "blk.0.attn_v.weight")->type == SL_TYPE_Q4_K); /* 4 heads per KV head */
        CHECK(gguf_find_tensor(g, "blk.1.attn_q.weight")->type == SL_TYPE_Q2_K);
        CHECK(gguf_find_tensor(g, "blk.1.ffn_down.weight")->type == SL_TYPE_Q3_K);
        CHECK(gguf_find_tensor(g, "blk.0.attn_output.weight")->type == SL_TYPE_Q3_K);
        CHECK(gguf_find_tensor(g, "output.weight")->type == SL_TYPE_Q6_K);
        CHECK(gguf_find_tensor(g, "token_embd.weight")->type == SL_TYPE_Q2_K);
        const int32_t toks[5] = {1, 50, 7, 90, 3};
        /* 2-3 bit weights: near, not close */
        const double e = quantized_logits_err(&rm, m, pool, toks, 5);
        CHECK_MSG(e < 0.5, "quantized q2_K logits off by %.3g", e);
        model_free(m);
    }
    unlink(dst);
    /* the i-quant mixes: iq2_m (iq2_s, iq3_s for attn_output and the first
     * eighth's ffn_down, q4_K attn_v with GQA 4, q5_K output) and iq3_xxs */
    m = quantize_and_load(&rm, "iq2_m", pool, dst, sizeof dst);
    if (m) {
        const gguf_file_t *g = model_gguf(m);
        CHECK(gguf_get_u32_or(g, "general.file_type", 99) == 29);
        CHECK(gguf_find_tensor(g, "blk.0.attn_v.weight")->type == SL_TYPE_Q4_K);
        CHECK(gguf_find_tensor(g, "blk.1.attn_q.weight")->type == SL_TYPE_IQ2_S);
        CHECK(gguf_find_tensor(g, "blk.1.ffn_up.weight")->type == SL_TYPE_IQ2_S);
        CHECK(gguf_find_tensor(g, "blk.0.attn_output.weight")->type == SL_TYPE_IQ3_S);
        CHECK(gguf_find_tensor(g, "output.weight")->type == SL_TYPE_Q5_K);
        const int32_t toks[5] = {1, 50, 7, 90, 3};
        const double e = quantized_logits_err(&rm, m, pool, toks, 5);
        fprintf(stderr, "     iq2_m mix: logits rel err %.3g\n", e);
        CHECK_MSG(e < 0.6, "quantized iq2_m logits off by %.3g", e);
        model_free(m);
    }
    unlink(dst);
    m = quantize_and_load(&rm, "iq3_xxs", pool, dst, sizeof dst);
    if (m) {
        const gguf_file_t *g = model_gguf(m);
        CHECK(gguf_get_u32_or(g, "general.file_type", 99) == 23);
        CHECK(gguf_find_tensor(g, "blk.1.ffn_gate.weight")->type == SL_TYPE_IQ3_XXS);
        CHECK(gguf_find_tensor(g, "blk.1.attn_q.weight")->type == SL_TYPE_IQ2_S);
        const int32_t toks[5] = {1, 50, 7, 90, 3};
        const double e = quantized_logits_err(&rm, m, pool, toks, 5);
        fprintf(stderr, "     iq3_xxs mix: logits rel err %.3g\n", e);
        CHECK_MSG(e < 0.6, "quantized iq3_xxs logits off by %.3g", e);
        model_free(m);
    }
    sl_pool_free(pool);
    ref_free(&rm);
    unlink(dst);
}

/* A prefill longer than the model's internal step (256 tokens) goes in
 * several steps; every position still matches the reference. */
static void test_long_prefill(void) {
    spec_t s = base_spec("qwen3");
    s.L = 1;
    ref_model_t rm;
    ref_init(&rm, &s, 5);
    const char *path = model_path();
    CHECK(write_model(&rm, path, NULL, NULL) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        enum { N = 300 };
        static int32_t toks[N];
        for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 13 + 1) % s.V);
        double *want = malloc(sizeof(double) * N * (size_t)s.V);
        float *got = malloc(sizeof(float) * N * (size_t)s.V);
        ref_forward(&rm, toks, N, want);
        sl_pool_t *pool = sl_pool_new(2);
        sl_kv_t *kv = model_kv_new(m, N, SL_TYPE_F16, err, sizeof err);
        CHECK(model_forward(m, pool, kv, toks, N, got, true, err, sizeof err) == 0);
        double e = test_rel_err(got, want, (size_t)N * s.V);
        CHECK_MSG(e < 5e-3, "long prefill (f16 KV): rel err %.3g", e);
        CHECK(model_kv_len(kv) == N && model_kv_capacity(kv) == N);
        model_kv_free(kv);
        sl_pool_free(pool);
        free(want), free(got);
        model_free(m);
    }
    ref_free(&rm);
    unlink(path);
}

int main(void) {
    sl_kernels_init();
    RUN(test_llama_f32);
    RUN(test_qwen2_f32);
    RUN(test_qwen3_f32);
    RUN(test_internlm2_f32);
    RUN(test_qwen3moe);
    RUN(test_glm);
    RUN(test_phi3);
    RUN(test_gemma);
    RUN(test_mixtral);
    RUN(test_ernie);
    RUN(test_granite);
    RUN(test_smollm3);
    RUN(test_olmo2);
    RUN(test_deepseek2);
    RUN(test_deepseek2_mutations);
    RUN(test_gpt_oss);
    RUN(test_gpt_oss_mutations);
    RUN(test_f16_and_q8);
    RUN(test_long_prefill);
    RUN(test_validation);
    RUN(test_quant_plan);
    RUN(test_quantize_file);
    RUN(test_quantize_file_kmix);
    return test_summary();
}
