/*
 * model_quant.c — per-tensor type choice (llama.cpp's rules for the file
 * types Silica can produce) and whole-file conversion. See model_quant.h.
 */
#include "model/model_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "gguf/gguf.h"

/* llama_ftype numbers (general.file_type). */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9, FT_Q2_K = 10,
    FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16,
    FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ2_XXS = 19, FT_IQ2_XS = 20, FT_IQ3_XS = 22, FT_IQ3_XXS = 23,
    FT_IQ1_S = 24, FT_IQ4_NL = 25, FT_IQ3_S = 26, FT_IQ3_M = 27, FT_IQ2_S = 28, FT_IQ2_M = 29, FT_IQ4_XS = 30,
    FT_IQ1_M = 31, FT_BF16 = 32, FT_MXFP4_MOE = 38,
};

/* The 1-2 bit file types that share llama.cpp's rules for attn_v, ffn_down
 * and attn_output; iq2_s / iq2_m lean on iq3_s where the others take q2_K. */
static bool ft_iq_low(int ft) {
    return ft == FT_IQ2_XXS || ft == FT_IQ2_XS || ft == FT_IQ1_S || ft == FT_IQ2_S || ft == FT_IQ2_M || ft == FT_IQ1_M;
}

/* mixed: llama.cpp's per-tensor rules of that file type apply (output
 * matrix, attn_v, ffn_down, attn_output); otherwise every 2-D weight gets
 * the base type ("q4_K" / "q5_K": all q4_K / q5_K, labelled as the _S
 * file type). */
static const struct {
    const char *name;
    sl_type_t base;
    bool mixed;
    int ftype;
} plans[] = {
    {"f32", SL_TYPE_F32, false, FT_F32},       {"f16", SL_TYPE_F16, false, FT_F16},
    {"bf16", SL_TYPE_BF16, false, FT_BF16},    {"q8_0", SL_TYPE_Q8_0, true, FT_Q8_0},
    {"q4_0", SL_TYPE_Q4_0, true, FT_Q4_0},     {"q4_1", SL_TYPE_Q4_1, true, FT_Q4_1},
    {"q5_0", SL_TYPE_Q5_0, true, FT_Q5_0},     {"q5_1", SL_TYPE_Q5_1, true, FT_Q5_1},
    {"q4_K", SL_TYPE_Q4_K, false, FT_Q4_K_S},  {"q5_K", SL_TYPE_Q5_K, false, FT_Q5_K_S},
    {"q6_K", SL_TYPE_Q6_K, true, FT_Q6_K},     {"q2_K", SL_TYPE_Q2_K, true, FT_Q2_K},
    {"q3_K_S", SL_TYPE_Q3_K, true, FT_Q3_K_S}, {"q3_K_M", SL_TYPE_Q3_K, true, FT_Q3_K_M},
    {"q3_K_L", SL_TYPE_Q3_K, true, FT_Q3_K_L}, {"q4_K_S", SL_TYPE_Q4_K, true, FT_Q4_K_S},
    {"q4_K_M", SL_TYPE_Q4_K, true, FT_Q4_K_M}, {"q5_K_S", SL_TYPE_Q5_K, true, FT_Q5_K_S},
    {"q5_K_M", SL_TYPE_Q5_K, true, FT_Q5_K_M}, {"iq4_nl", SL_TYPE_IQ4_NL, true, FT_IQ4_NL},
    {"iq4_xs", SL_TYPE_IQ4_XS, true, FT_IQ4_XS},
    /* the grid i-quants: llama.cpp's file types, whose main type is not
     * always the name's (iq2_s: iq2_xs; iq2_m: iq2_s; iq3_xs / iq3_m: iq3_s) */
    {"iq1_s", SL_TYPE_IQ1_S, true, FT_IQ1_S},    {"iq1_m", SL_TYPE_IQ1_M, true, FT_IQ1_M},
    {"iq2_xxs", SL_TYPE_IQ2_XXS, true, FT_IQ2_XXS}, {"iq2_xs", SL_TYPE_IQ2_XS, true, FT_IQ2_XS},
    {"iq2_s", SL_TYPE_IQ2_XS, true, FT_IQ2_S},   {"iq2_m", SL_TYPE_IQ2_S, true, FT_IQ2_M},
    {"iq3_xxs", SL_TYPE_IQ3_XXS, true, FT_IQ3_XXS}, {"iq3_xs", SL_TYPE_IQ3_S, true, FT_IQ3_XS},
    {"iq3_s", SL_TYPE_IQ3_S, true, FT_IQ3_S},    {"iq3_m", SL_TYPE_IQ3_S, true, FT_IQ3_M},
    /* gpt-oss's published files: the expert stacks mxfp4, the rest q8_0 */
    {"mxfp4_moe", SL_TYPE_MXFP4, true, FT_MXFP4_MOE},
};

int model_qplan_init(model_qplan_t *p, const char *type_name, int n_layer, int n_gqa, bool tied, char *err,
                     size_t errlen) {
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < SL_ARRAY_LEN(plans); i++) {
        if (strcasecmp(type_name, plans[i].name) != 0) continue;
        p->base = plans[i].base;
        p->mixed = plans[i].mixed;
        p->ftype = plans[i].ftype;
        p->n_layer = n_layer;
        p->n_gqa = n_gqa;
        p->tied = tied;
        snprintf(p->name, sizeof p->name, "%s", plans[i].name);
        return 0;
    }
    return sl_err(err, errlen,
                  "unknown type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K_S, q3_K_M, "
                  "q3_K_L, q4_K, q4_K_S, q4_K_M, q5_K, q5_K_S, q5_K_M, q6_K, iq4_nl, iq4_xs, iq1_s, iq1_m, "
                  "iq2_xxs, iq2_xs, iq2_s, iq2_m, iq3_xxs, iq3_xs, iq3_s, iq3_m, mxfp4_moe)",
                  type_name);
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and
 * every third one in between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long l = strtol(name + 4, &end, 10);
    return (end != name + 4 && *end == '.' && l >= 0 && l < 1000000) ? (int)l : -1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The type to use when rows of n_in elements do not fit t's blocks
 * (llama.cpp's fallbacks, except that q2_K / q3_K go to q4_0 where
 * llama.cpp takes iq4_nl: the same 4.5 bits, and what the q2_K / q3_K files
 * Silica wrote before iq4_nl existed here hold; the grid i-quants go to
 * iq4_nl as in llama.cpp). */
static sl_type_t fallback(sl_type_t t, int64_t n_in) {
    for (int guard = 0; guard < 4 && sl_row_size(t, n_in) == 0; guard++) {
        switch (t) {
        case SL_TYPE_Q2_K:
        case SL_TYPE_Q3_K: t = SL_TYPE_Q4_0; break;
        case SL_TYPE_IQ4_XS:
        case SL_TYPE_IQ2_XXS:
        case SL_TYPE_IQ2_XS:
        case SL_TYPE_IQ2_S:
        case SL_TYPE_IQ3_XXS:
        case SL_TYPE_IQ3_S:
        case SL_TYPE_IQ1_S:
        case SL_TYPE_IQ1_M: t = SL_TYPE_IQ4_NL; break;
        case SL_TYPE_Q4_K: t = SL_TYPE_Q5_0; break;
        case SL_TYPE_Q5_K: t = SL_TYPE_Q5_1; break;
        case SL_TYPE_Q6_K: t = SL_TYPE_Q8_0; break;
        default: t = SL_TYPE_F16; break;
        }
    }
    return sl_row_size(t, n_in) ? t : SL_TYPE_F32;
}

/* llama.cpp's rules for the grid i-quant file types (as without an
 * importance matrix); -1: the common rules below apply. */
static int iq_mixed_type(const model_qplan_t *p, const char *name, int l, int n) {
    const int ft = p->ftype;
    const bool s_m = ft == FT_IQ2_S || ft == FT_IQ2_M;
    if (!strcmp(name, "token_embd.weight")) { /* untied: the input table */
        if (ft == FT_IQ2_XXS || ft == FT_IQ2_XS || ft == FT_IQ1_S || ft == FT_IQ1_M) return SL_TYPE_Q2_K;
        if (s_m || ft == FT_IQ3_XXS) return SL_TYPE_IQ3_S;
        return -1;
    }
    if (l < 0) return -1;
    const bool v = ends_with(name, ".attn_v.weight"), down = ends_with(name, ".ffn_down.weight"),
               out = ends_with(name, ".attn_output.weight");
    const bool qk = ends_with(name, ".attn_q.weight") || ends_with(name, ".attn_k.weight");
    if (ft_iq_low(ft)) {
        if (v) return p->n_gqa >= 4 ? SL_TYPE_Q4_K : s_m ? SL_TYPE_IQ3_S : SL_TYPE_Q2_K;
        if (down) return l < n / 8 ? (s_m ? SL_TYPE_IQ3_S : SL_TYPE_Q2_K) : (int)p->base;
        if (out) return ft == FT_IQ1_S || ft == FT_IQ1_M ? SL_TYPE_IQ2_XXS : s_m ? SL_TYPE_IQ3_S : (int)p->base;
        return p->base;
    }
    switch (ft) {
    case FT_IQ3_XXS:
        if (v) return p->n_gqa >= 4 ? SL_TYPE_Q4_K : SL_TYPE_IQ3_S;
        if (qk) return SL_TYPE_IQ2_S;
        if (down) return l < n / 8 ? SL_TYPE_Q4_K : SL_TYPE_Q3_K;
        if (out) return SL_TYPE_IQ3_S;
        return p->base;
    case FT_IQ3_XS:
        if (v) return p->n_gqa >= 4 ? SL_TYPE_Q4_K : (int)p->base;
        if (qk) return SL_TYPE_IQ3_XXS;
        if (ends_with(name, ".ffn_gate.weight") || ends_with(name, ".ffn_up.weight"))
            return l >= n / 8 && l < 7 * n / 8 ? SL_TYPE_IQ3_XXS : (int)p->base;
        return p->base;
    case FT_IQ3_S: return v && p->n_gqa >= 4 ? SL_TYPE_Q4_K : (int)p->base;
    case FT_IQ3_M:
        if (v || out || ends_with(name, ".attn_qkv.weight")) return SL_TYPE_Q4_K;
        if (down) return l < n / 8 ? SL_TYPE_Q4_K : (int)p->base;
        return p->base;
    default: return -1;
    }
}

/* llama.cpp's llama_tensor_get_type for the file types above (dense
 * models; its 70B / expert / falcon special cases are not applied). */
static sl_type_t mixed_type(const model_qplan_t *p, const char *name, int64_t n_in) {
    const int ft = p->ftype, l = layer_of(name), n = p->n_layer;
    if (ft == FT_MXFP4_MOE) /* llama.cpp: 3-D (expert) tensors mxfp4, every other matrix q8_0 */
        return ends_with(name, "_exps.weight") ? SL_TYPE_MXFP4 : SL_TYPE_Q8_0;
    if (!strcmp(name, "output.weight") || (p->tied && !strcmp(name, "token_embd.weight"))) {
        if (n_in % sl_type_traits(p->base)->blck != 0) return SL_TYPE_Q8_0;
        if (ft_iq_low(ft) || ft == FT_IQ3_XXS) return SL_TYPE_Q5_K;
        return p->base == SL_TYPE_Q8_0 ? SL_TYPE_Q8_0 : SL_TYPE_Q6_K;
    }
    const int iq = iq_mixed_type(p, name, l, n);
    if (iq >= 0) return (sl_type_t)iq;
    if (l < 0) return p->base;
    if (ends_with(name, ".attn_v.weight")) {
        switch (ft) {
        case FT_Q2_K: return p->n_gqa >= 4 ? SL_TYPE_Q4_K : SL_TYPE_Q3_K;
        case FT_Q3_K_M: return l < 2 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K;
        case FT_Q3_K_L: return SL_TYPE_Q5_K;
        case FT_Q4_K_M:
        case FT_Q5_K_M: return use_more_bits(l, n) ? SL_TYPE_Q6_K : p->base;
        case FT_Q4_K_S: return l < 4 ? SL_TYPE_Q5_K : p->base;
        case FT_IQ4_NL:
        case FT_IQ4_XS: return p->n_gqa >= 4 ? SL_TYPE_Q5_K : p->base;
        default: return p->base;
        }
    }
    if (ends_with(name, ".ffn_down.weight") || ends_with(name, ".ffn_down_exps.weight") ||
        ends_with(name, ".ffn_down_shexp.weight")) {
        switch (ft) {
        case FT_Q2_K: return SL_TYPE_Q3_K;
        case FT_Q3_K_M: return l < n / 16 ? SL_TYPE_Q5_K : SL_TYPE_Q4_K;
        case FT_Q3_K_L: return SL_TYPE_Q5_K;
        case FT_Q4_K_M:
        case FT_Q5_K_M: return use_more_bits(l, n) ? SL_TYPE_Q6_K : p->base;
        case FT_Q4_K_S:
        case FT_IQ4_NL:
        case FT_IQ4_XS: return l < n / 8 ? SL_TYPE_Q5_K : p->base;
        default: return p->base;
        }
    }
    if (ends_with(name, ".attn_qkv.weight")) { /* fused QKV (chatglm) */
        switch (ft) {
        case FT_Q3_K_M:
        case FT_Q3_K_L: return SL_TYPE_Q4_K;
        case FT_Q4_K_M: return SL_TYPE_Q5_K;
        case FT_Q5_K_M: return SL_TYPE_Q6_K;
        default: return p->base;
        }
    }
    if (ends_with(name, ".attn_output.weight")) {
        switch (ft) {
        case FT_Q2_K: return SL_TYPE_Q3_K;
        case FT_Q3_K_M: return SL_TYPE_Q4_K;
        case FT_Q3_K_L: return SL_TYPE_Q5_K;
        default: return p->base;
        }
    }
    return p->base;
}

sl_type_t model_qplan_type(const model_qplan_t *p, const char *name, uint32_t n_dims, int64_t n_in) {
    /* the MoE router, the DeltaNet and Mamba-2 conv kernels (ssm_conv1d),
     * Mamba-2's grouped norm (ssm_norm, 2-D: [d_inner / n_group, n_group];
     * ssm_a and ssm_d have no .weight) and bert's position and token-type
     * tables stay F32, as the converter writes them and llama-quantize
     * leaves them */
    if (n_dims < 2 || !ends_with(name, ".weight") || ends_with(name, ".ffn_gate_inp.weight") ||
        ends_with(name, ".ssm_conv1d.weight") || ends_with(name, ".ssm_norm.weight") ||
        !strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight"))
        return SL_TYPE_F32;
    return fallback(p->mixed ? mixed_type(p, name, n_in) : p->base, n_in);
}

struct qrows_job {
    sl_type_t t;
    const float *src;
    int64_t n_in, n_rows;
    uint8_t *dst;
    size_t rb;
    int failed;
};

static void qrows_worker(void *ctx, int ith, int nth) {
    struct qrows_job *j = ctx;
    const int64_t per = (j->n_rows + nth - 1) / nth;
    const int64_t lo = SL_MIN(j->n_rows, per * ith), hi = SL_MIN(j->n_rows, lo + per);
    for (int64_t r = lo; r < hi; r++)
        if (sl_quantize_row(j->t, j->src + r * j->n_in, j->dst + (size_t)r * j->rb, j->n_in) != 0)
            __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
}

int model_quantize_rows(sl_pool_t *pool, sl_type_t t, const float *src, int64_t n_in, int64_t n_rows,
                        void *dst) {
    const size_t rb = sl_row_size(t, n_in);
    if (rb == 0 || !sl_can_quantize(t)) return -1;
    struct qrows_job j = {t, src, n_in, n_rows, dst, rb, 0};
    sl_pool_run(pool, qrows_worker, &j);
    return j.failed ? -1 : 0;
}

int model_quantize_file(const char *in_path, const char *out_path, const char *type_name, sl_pool_t *pool,
                        bool verbose, char *err, size_t errlen) {
    char e[SL_ERR_MAX];
    gguf_file_t *in = gguf_open(in_path, e, sizeof e);
    if (!in) return sl_err(err, errlen, "%s", e);
    int rc = -1;
    gguf_writer_t *w = gguf_writer_new();
    const size_t nt = gguf_n_tensors(in);
    void **bufs = calloc(nt ? nt : 1, sizeof *bufs);
    float *rowbuf = NULL;
    if (!w || !bufs) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }

    /* Layer count and tied output, for the mix rules. */
    int n_layer = 0;
    for (size_t i = 0; i < nt; i++) {
        int l = layer_of(gguf_tensor(in, i)->name);
        if (l + 1 > n_layer) n_layer = l + 1;
    }
    const bool tied = gguf_find_tensor(in, "output.weight") == NULL;
    /* query heads per KV head (q2_K's attn_v rule) */
    int n_gqa = 1;
    gguf_str_t arch;
    if (gguf_get_str(in, "general.architecture", &arch, NULL, 0) == 0 && arch.len < 64) {
        char key[96];
        snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.ptr);
        const uint32_t nh = gguf_get_u32_or(in, key, 0);
        snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
        uint32_t nkv = nh;
        const int64_t ki = gguf_find_key(in, key);
        /* per-layer KV heads: layer 0's, as llama.cpp's n_gqa() (gemma4); granitehybrid, nemotron_h: 0
         * for the layers without attention, so the first non-zero one */
        if (ki >= 0 && gguf_kv_type(in, (size_t)ki) == GGUF_VT_ARRAY) {
            const gguf_vtype_t at = gguf_arr_type(in, (size_t)ki);
            const uint8_t *ad = gguf_arr_data(in, (size_t)ki);
            nkv = 0;
            for (size_t i = 0; (at == GGUF_VT_INT32 || at == GGUF_VT_UINT32) && nkv == 0 && i < gguf_arr_len(in, (size_t)ki); i++) {
                uint32_t v;
                memcpy(&v, ad + 4 * i, 4);
                if (v <= (1u << 20)) nkv = v;
            }
        } else {
            nkv = gguf_get_u32_or(in, key, nh);
        }
        if (nh > 0 && nkv > 0 && nh % nkv == 0) n_gqa = (int)(nh / nkv);
    }
    model_qplan_t plan;
    if (model_qplan_init(&plan, type_name, n_layer, n_gqa, tied, err, errlen)) goto done;

    if (gguf_writer_copy_kv(w, in) != 0 || gguf_writer_set_u32(w, "general.file_type", (uint32_t)plan.ftype) ||
        gguf_writer_set_u32(w, "general.quantization_version", 2)) {
        sl_err(err, errlen, "out of memory copying metadata");
        goto done;
    }

    size_t in_bytes = 0, out_bytes = 0;
    for (size_t i = 0; i < nt; i++) {
        const gguf_tensor_t *t = gguf_tensor(in, i);
        const int64_t n_in = t->ne[0];
        int64_t n_rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++) n_rows *= t->ne[d];
        sl_type_t to = model_qplan_type(&plan, t->name, t->n_dims, n_in);
        const sl_type_traits_t *tr = sl_type_traits(t->type);
        in_bytes += t->nbytes;
        /* Already the wanted type, a 1-D tensor, or not something we read: copy. */
        if (to == t->type || t->n_dims < 2 || !tr || !tr->supported) {
            if (gguf_writer_add_tensor_ref(w, t->name, t->type, t->n_dims, t->ne, t->data)) {
                sl_err(err, errlen, "out of memory");
                goto done;
            }
            out_bytes += t->nbytes;
            continue;
        }
        const size_t rb_out = sl_row_size(to, n_in);
        size_t total;
        if (!sl_mul_size(rb_out, (size_t)n_rows, &total) || !(bufs[i] = malloc(total ? total : 1))) {
            sl_err(err, errlen, "out of memory converting '%s'", t->name);
            goto done;
        }
        /* Dequantize and requantize in slabs of rows to bound memory. */
        const int64_t slab = SL_MAX((int64_t)1, (int64_t)(1 << 22) / SL_MAX(n_in, (int64_t)1));
        free(rowbuf);
        rowbuf = malloc(sizeof(float) * (size_t)SL_MIN(slab, n_rows) * (size_t)n_in);
        if (!rowbuf) {
            sl_err(err, errlen, "out of memory");
            goto done;
        }
        const size_t rb_in = sl_row_size(t->type, n_in);
        for (int64_t r0 = 0; r0 < n_rows; r0 += slab) {
            const int64_t nr = SL_MIN(slab, n_rows - r0);
            for (int64_t r = 0; r < nr; r++)
                sl_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)(r0 + r) * rb_in,
                                  rowbuf + r * n_in, n_in);
            if (model_quantize_rows(pool, to, rowbuf, n_in, nr, (uint8_t *)bufs[i] + (size_t)r0 * rb_out)) {
                sl_err(err, errlen, "cannot convert '%s' to %s", t->name, sl_type_name(to));
                goto done;
            }
        }
        if (gguf_writer_add_tensor_ref(w, t->name, to, t->n_dims, t->ne, bufs[i])) {
            sl_err(err, errlen, "out of memory");
            goto done;
        }
        out_bytes += total;
        if (verbose)
            fprintf(stderr, "%-32s %-6s -> %-6s [%lld x %lld]\n", t->name, sl_type_name(t->type), sl_type_name(to),
                    (long long)n_in, (long long)n_rows);
    }
    if (gguf_writer_write(w, out_path, err, errlen) != 0) goto done;
    if (verbose)
        fprintf(stderr, "quantize: %s (%.1f MiB) -> %s (%.1f MiB) as %s\n", in_path, (double)in_bytes / 1048576.0,
                out_path, (double)out_bytes / 1048576.0, plan.name);
    rc = 0;
done:
    free(rowbuf);
    if (bufs)
        for (size_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    gguf_close(in);
    return rc;
}
