/*
 * ops.c — the element-wise and small kernels of the forward pass: RMS norm,
 * softmax, SiLU/GELU/SwiGLU, rotary position embedding (RoPE) and causal
 * grouped-query attention over a KV cache.
 *
 * RoPE follows ggml's rope exactly (same float arithmetic, same YaRN
 * formulas), because GGUF files are converted for that convention: NORM
 * style rotates adjacent pairs (2i, 2i+1) — llama's converter permutes the Q
 * and K rows so that this matches Hugging Face's "rotate halves" — and NEOX
 * style rotates (i, i + n_rot/2) as qwen2/qwen3 expect.
 *
 * The attention kernel is scalar C with an AVX2+F16C variant of its two inner
 * loops (dot product and scaled accumulate), chosen from sl_kernels_isa().
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SL_OPS_X86 1
#endif

/* ---- norms and activations ---- */

void sl_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * (double)x[i];
    const float scale = (float)(1.0 / sqrt(sum / (double)n + (double)eps));
    if (weight) {
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
    } else {
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
    }
}

void sl_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }

void sl_silu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = silu1(x[i]);
}

/* tanh approximation, as ggml_gelu. */
void sl_gelu(float *x, int64_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * v * (1.0f + 0.044715f * v * v)));
    }
}

#ifdef SL_OPS_X86
/* expf for 8 lanes: n = round(x / ln2), r = x - n ln2 (two-part ln2), a
 * degree-6 polynomial for e^r on |r| <= ln2/2, scaled by 2^n. Relative error
 * below 2e-7 on [-87, 88]; inputs are clamped there (silu needs no more). */
__attribute__((target("avx2,fma"))) static __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static void swiglu_avx2(float *out, const float *gate, const float *up,
                                                              int64_t n) {
    int64_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = silu1(gate[i]) * up[i];
}
#endif

void sl_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#ifdef SL_OPS_X86
    const sl_isa_t isa = sl_kernels_isa();
    if (isa == SL_ISA_AVX2 || isa == SL_ISA_AVX512) {
        swiglu_avx2(out, gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = silu1(gate[i]) * up[i];
}

/* ---- RoPE (ggml's rope_yarn) ---- */

static float rope_yarn_ramp(float low, float high, int i0) {
    const float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

/* The dimension index at which a rotation makes n_rot full turns over the
 * original context. */
static float rope_yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

static void rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float freq_base, float beta_fast,
                                float beta_slow, float dims[2]) {
    const float start = floorf(rope_yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, freq_base));
    const float end = ceilf(rope_yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, freq_base));
    dims[0] = fmaxf(0.0f, start);
    dims[1] = fminf((float)(n_dims - 1), end);
}

void sl_rope_apply(float *x, int n_heads, int head_dim, int32_t pos, const sl_rope_t *r) {
    const int n_dims = r->n_rot;
    if (n_dims <= 0 || n_dims > head_dim || (n_dims & 1)) return;
    const float theta_scale = powf(r->freq_base, -2.0f / (float)n_dims);
    float corr[2] = {0.0f, 0.0f};
    if (r->ext_factor != 0.0f)
        rope_yarn_corr_dims(n_dims, r->n_ctx_orig, r->freq_base, r->beta_fast, r->beta_slow, corr);
    const float freq_scale = r->freq_scale > 0.0f ? r->freq_scale : 1.0f;
    const float attn_factor = r->attn_factor != 0.0f ? r->attn_factor : 1.0f;

    /* theta is advanced by repeated multiplication in float, like ggml's
     * rope cache, so angles agree bit for bit at large positions. */
    float theta_extrap_base = (float)pos;
    for (int i0 = 0; i0 < n_dims; i0 += 2) {
        const float ff = r->freq_factors ? r->freq_factors[i0 / 2] : 1.0f;
        const float theta_extrap = theta_extrap_base / ff;
        theta_extrap_base *= theta_scale;

        const float theta_interp = freq_scale * theta_extrap;
        float theta = theta_interp;
        float mscale = attn_factor;
        if (r->ext_factor != 0.0f) {
            const float ramp_mix = rope_yarn_ramp(corr[0], corr[1], i0) * r->ext_factor;
            theta = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
        }
        const float c = cosf(theta) * mscale;
        const float s = sinf(theta) * mscale;

        const int a = r->style == SL_ROPE_NEOX ? i0 / 2 : i0;
        const int b = r->style == SL_ROPE_NEOX ? i0 / 2 + n_dims / 2 : i0 + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * (size_t)head_dim;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

/* ---- attention ---- */

static float dot_f32(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float dot_f16(const float *a, const sl_f16_t *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * sl_f16_to_f32(b[i]);
    return s;
}

static void axpy_f32(float *y, float alpha, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void axpy_f16(float *y, float alpha, const sl_f16_t *x, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * sl_f16_to_f32(x[i]);
}

#ifdef SL_OPS_X86
__attribute__((target("avx2,fma"))) static float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b,
                                                                int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float s = hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const float *a,
                                                                     const sl_f16_t *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 bv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bv, acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++) s += a[i] * sl_f16_to_f32(b[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static void axpy_f32_avx2(float *y, float alpha,
                                                                const float *x, int n) {
    const __m256 av = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

__attribute__((target("avx2,fma,f16c"))) static void axpy_f16_avx2(float *y, float alpha,
                                                                     const sl_f16_t *x, int n) {
    const __m256 av = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += alpha * sl_f16_to_f32(x[i]);
}
#endif

struct attn_job {
    const sl_attn_t *a;
    bool simd;
    int next; /* next work item to claim (atomic) */
};

/* Work item it = t * n_head + h. Threads claim items from a shared counter,
 * latest tokens (longest causal rows) first, so the triangle balances and a
 * thread that wakes late simply claims less (the job runs elastic). */
static void attn_worker(void *ctx, int ith, int nth) {
    struct attn_job *job = ctx;
    const sl_attn_t *a = job->a;
    const int hd = a->head_dim;
    const int group = a->n_head / a->n_head_kv;
    const int n_items = a->n_tok * a->n_head;
    const size_t n_keys_max = (size_t)a->pos0 + (size_t)a->n_tok;
    float *scores = a->scratch + (size_t)ith * n_keys_max;
    const bool f16 = a->kv_type == SL_TYPE_F16;
    (void)nth;

    for (;;) {
        const int claimed = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (claimed >= n_items) break;
        const int it = n_items - 1 - claimed;
        const int t = it / a->n_head, h = it % a->n_head;
        const int hk = h / group;
        const int n_keys = a->pos0 + t + 1;
        const float *q = a->q + ((size_t)t * (size_t)a->n_head + (size_t)h) * (size_t)hd;
        float *out = a->out + ((size_t)t * (size_t)a->n_head + (size_t)h) * (size_t)hd;
        const size_t koff = (size_t)hk * a->kv_head_stride;

        /* scores[j] = scale * q · k_j */
        for (int j = 0; j < n_keys; j++) {
            const size_t off = koff + (size_t)j * (size_t)hd;
            float d;
#ifdef SL_OPS_X86
            if (job->simd)
                d = f16 ? dot_f16_avx2(q, (const sl_f16_t *)a->k + off, hd)
                        : dot_f32_avx2(q, (const float *)a->k + off, hd);
            else
#endif
                d = f16 ? dot_f16(q, (const sl_f16_t *)a->k + off, hd)
                        : dot_f32(q, (const float *)a->k + off, hd);
            scores[j] = d * a->scale;
        }
        sl_softmax(scores, n_keys);

        /* out = sum_j p_j v_j */
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int j = 0; j < n_keys; j++) {
            const size_t off = koff + (size_t)j * (size_t)hd;
#ifdef SL_OPS_X86
            if (job->simd) {
                if (f16)
                    axpy_f16_avx2(out, scores[j], (const sl_f16_t *)a->v + off, hd);
                else
                    axpy_f32_avx2(out, scores[j], (const float *)a->v + off, hd);
                continue;
            }
#endif
            if (f16)
                axpy_f16(out, scores[j], (const sl_f16_t *)a->v + off, hd);
            else
                axpy_f32(out, scores[j], (const float *)a->v + off, hd);
        }
    }
}

void sl_attention(sl_pool_t *pool, const sl_attn_t *a) {
    struct attn_job job = {.a = a, .simd = false, .next = 0};
#ifdef SL_OPS_X86
    const sl_isa_t isa = sl_kernels_isa();
    job.simd = isa == SL_ISA_AVX2 || isa == SL_ISA_AVX512;
#endif
    sl_pool_run_elastic(pool, attn_worker, &job);
}

/* ---- paged attention ---- */

/* Dot of q with one Q8_0 row of n elements (n a multiple of 32). */
static float dot_q8_0(const float *a, const sl_block_q8_0 *b, int n) {
    float s = 0;
    for (int ib = 0; ib < n / 32; ib++) {
        float bs = 0;
        for (int i = 0; i < 32; i++) bs += a[ib * 32 + i] * (float)b[ib].qs[i];
        s += bs * sl_f16_to_f32(b[ib].d);
    }
    return s;
}

static void axpy_q8_0(float *y, float alpha, const sl_block_q8_0 *x, int n) {
    for (int ib = 0; ib < n / 32; ib++) {
        const float d = alpha * sl_f16_to_f32(x[ib].d);
        for (int i = 0; i < 32; i++) y[ib * 32 + i] += d * (float)x[ib].qs[i];
    }
}

#ifdef SL_OPS_X86
__attribute__((target("avx2,fma,f16c"))) static float dot_q8_0_avx2(const float *a,
                                                                      const sl_block_q8_0 *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    for (int ib = 0; ib < n / 32; ib++) {
        __m256 bacc = _mm256_setzero_ps();
        for (int i = 0; i < 32; i += 8) {
            const __m256 bv = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[ib].qs + i))));
            bacc = _mm256_fmadd_ps(_mm256_loadu_ps(a + ib * 32 + i), bv, bacc);
        }
        acc = _mm256_fmadd_ps(bacc, _mm256_set1_ps(sl_f16_to_f32(b[ib].d)), acc);
    }
    return hsum256(acc);
}

__attribute__((target("avx2,fma,f16c"))) static void axpy_q8_0_avx2(float *y, float alpha,
                                                                      const sl_block_q8_0 *x, int n) {
    for (int ib = 0; ib < n / 32; ib++) {
        const __m256 d = _mm256_set1_ps(alpha * sl_f16_to_f32(x[ib].d));
        for (int i = 0; i < 32; i += 8) {
            const __m256 xv = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[ib].qs + i))));
            float *yp = y + ib * 32 + i;
            _mm256_storeu_ps(yp, _mm256_fmadd_ps(d, xv, _mm256_loadu_ps(yp)));
        }
    }
}
#endif

static float paged_dot(sl_type_t t, bool simd, const float *q, const uint8_t *row, int n) {
#ifdef SL_OPS_X86
    if (simd) {
        if (t == SL_TYPE_F16) return dot_f16_avx2(q, (const sl_f16_t *)row, n);
        if (t == SL_TYPE_Q8_0) return dot_q8_0_avx2(q, (const sl_block_q8_0 *)row, n);
        return dot_f32_avx2(q, (const float *)row, n);
    }
#endif
    (void)simd;
    if (t == SL_TYPE_F16) return dot_f16(q, (const sl_f16_t *)row, n);
    if (t == SL_TYPE_Q8_0) return dot_q8_0(q, (const sl_block_q8_0 *)row, n);
    return dot_f32(q, (const float *)row, n);
}

static void paged_axpy(sl_type_t t, bool simd, float *y, float alpha, const uint8_t *row, int n) {
#ifdef SL_OPS_X86
    if (simd) {
        if (t == SL_TYPE_F16) axpy_f16_avx2(y, alpha, (const sl_f16_t *)row, n);
        else if (t == SL_TYPE_Q8_0) axpy_q8_0_avx2(y, alpha, (const sl_block_q8_0 *)row, n);
        else axpy_f32_avx2(y, alpha, (const float *)row, n);
        return;
    }
#endif
    (void)simd;
    if (t == SL_TYPE_F16) axpy_f16(y, alpha, (const sl_f16_t *)row, n);
    else if (t == SL_TYPE_Q8_0) axpy_q8_0(y, alpha, (const sl_block_q8_0 *)row, n);
    else axpy_f32(y, alpha, (const float *)row, n);
}

struct attn_paged_job {
    const sl_attn_paged_t *a;
    bool simd;
    int next; /* next work item to claim (atomic) */
};

/* Item it = t * n_head + h, claimed from the end (later tokens of a
 * prefill chunk have longer rows). Keys are walked block by block, so the
 * block table is read once per block_size keys. */
static void attn_paged_worker(void *ctx, int ith, int nth) {
    struct attn_paged_job *job = ctx;
    const sl_attn_paged_t *a = job->a;
    const int hd = a->head_dim, bs = a->block_size;
    const int group = a->n_head / a->n_head_kv;
    const int n_items = a->n_tok * a->n_head;
    float *scores = a->scratch + (size_t)ith * ((size_t)a->max_keys + (size_t)hd);
    const uint8_t *kb = a->k, *vb = a->v;
    (void)nth;

    for (;;) {
        const int claimed = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (claimed >= n_items) break;
        const int it = n_items - 1 - claimed;
        const int t = it / a->n_head, h = it % a->n_head;
        const size_t hoff = (size_t)(h / group) * (size_t)bs * a->row_bytes;
        const int n_keys = a->tok_pos[t] + 1;
        const int32_t *blocks = a->tok_blocks[t];
        const float *q = a->q + ((size_t)t * (size_t)a->n_head + (size_t)h) * (size_t)hd;
        float *out = a->out + ((size_t)t * (size_t)a->n_head + (size_t)h) * (size_t)hd;

        for (int j0 = 0; j0 < n_keys; j0 += bs) {
            const uint8_t *base = kb + (size_t)blocks[j0 / bs] * a->block_stride + hoff;
            const int n = n_keys - j0 < bs ? n_keys - j0 : bs;
            for (int p = 0; p < n; p++)
                scores[j0 + p] =
                    paged_dot(a->kv_type, job->simd, q, base + (size_t)p * a->row_bytes, hd) * a->scale;
        }
        sl_softmax(scores, n_keys);
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int j0 = 0; j0 < n_keys; j0 += bs) {
            const uint8_t *base = vb + (size_t)blocks[j0 / bs] * a->block_stride + hoff;
            const int n = n_keys - j0 < bs ? n_keys - j0 : bs;
            for (int p = 0; p < n; p++)
                paged_axpy(a->kv_type, job->simd, out, scores[j0 + p], base + (size_t)p * a->row_bytes, hd);
        }
    }
}

void sl_attention_paged(sl_pool_t *pool, const sl_attn_paged_t *a) {
    struct attn_paged_job job = {.a = a, .simd = false, .next = 0};
#ifdef SL_OPS_X86
    const sl_isa_t isa = sl_kernels_isa();
    job.simd = isa == SL_ISA_AVX2 || isa == SL_ISA_AVX512;
#endif
    if (a->n_tok * a->n_head < 8)
        attn_paged_worker(&job, 0, 1);
    else
        sl_pool_run_elastic(pool, attn_paged_worker, &job);
}
