/*
 * ops.c — the element-wise and small kernels of the forward pass: RMS norm,
 * LayerNorm, softmax, SiLU/GELU (tanh and erf)/SwiGLU, rotary position
 * embedding (RoPE) and grouped-query attention over a KV cache (causal, or
 * bidirectional for encoders).
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
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SL_OPS_X86 1
#endif

/* ---- norms and activations ---- */

/* The sum of squares in double over 8 independent partial sums: one
 * running sum waits on each add's latency (a row of 896 took ~1 µs, 3 % of
 * a qwen3 prefill with its per-head q/k norms). */
static double sum_sq(const float *x, int64_t n) {
    double s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    double sum = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) sum += (double)x[i] * (double)x[i];
    return sum;
}

void sl_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    const double sum = sum_sq(x, n);
    const float scale = (float)(1.0 / sqrt(sum / (double)n + (double)eps));
    if (weight) {
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
    } else {
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
    }
}

/* Two passes in double: the mean, then the variance of the centred values
 * (no E[x²] - mean² cancellation when |mean| >> spread). Each out[i] is
 * written after x[i] is last read, so out may be x. */
void sl_layernorm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps) {
    if (n <= 0) return;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i];
    const double mean = sum / (double)n;
    double var = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)x[i] - mean;
        var += d * d;
    }
    const double inv = 1.0 / sqrt(var / (double)n + (double)eps);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)(((double)x[i] - mean) * inv);
        if (w) v *= w[i];
        if (b) v += b[i];
        out[i] = v;
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
static inline float gelu1(float v) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * v * (1.0f + tanhf(c * v * (1.0f + 0.044715f * v * v)));
}

void sl_gelu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = gelu1(x[i]);
}

/* Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)), written with erfc: 1 + erf(z) =
 * erfc(-z), which keeps its relative accuracy for negative x, where 1 + erf
 * would cancel to a few significant bits (x = -5: 5.7e-7 from 1 - 0.99999943).
 * Where erfc underflows (x below about -14, -inf included) the result is -0
 * rather than -inf · 0 = NaN. */
static inline float gelu_erf1(float v) {
    const float e = erfcf(-v * 0.70710678118654752f); /* 1/√2 */
    return e == 0.0f ? -0.0f : 0.5f * v * e;
}

void sl_gelu_erf(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = gelu_erf1(x[i]);
}

void sl_geglu(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gelu1(gate[i]) * up[i];
}

void sl_swiglu_oai(float *out, const float *gate, const float *up, int64_t n, float alpha,
                   float limit) {
    for (int64_t i = 0; i < n; i++) {
        const float g = fminf(gate[i], limit), u = fminf(fmaxf(up[i], -limit), limit);
        out[i] = g / (1.0f + expf(-alpha * g)) * (u + 1.0f);
    }
}

#ifdef SL_OPS_X86
/* expf for 8 lanes: n = round(x / ln2), r = x - n ln2 (two-part ln2), a
 * degree-6 polynomial for e^r on |r| <= ln2/2, scaled by 2^n. Relative error
 * below 2e-7 on [-87, 88]; inputs are clamped there (silu needs no more). */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) __m256 exp8(__m256 x) {
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

/* Two passes: the maximum (NaNs skipped: vmaxps returns its second
 * operand, the running maximum, when the first is NaN), then the first
 * index holding it. */
#ifdef SL_OPS_X86
__attribute__((target("avx2"))) static int64_t argmax_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    const __m256 v = _mm256_set1_ps(mx);
    for (i = 0; i + 8 <= n; i += 8) {
        const int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), v, _CMP_EQ_OQ));
        if (k) return i + __builtin_ctz((unsigned)k);
    }
    for (; i < n; i++)
        if (x[i] == mx) return i;
    return -1;
}
#endif

int64_t sl_argmax(const float *x, int64_t n) {
#ifdef SL_OPS_X86
    const sl_isa_t isa = sl_kernels_isa();
    if (isa == SL_ISA_AVX2 || isa == SL_ISA_AVX512) return argmax_avx2(x, n);
#endif
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    for (int64_t i = 0; i < n; i++)
        if (x[i] == mx) return i;
    return -1;
}

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

/* the largest lane (NaN lanes lose: vmaxps returns its second operand) */
__attribute__((target("avx2,fma"))) static float hmax256(__m256 v) {
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_max_ps(_mm_movehl_ps(r, r), r);
    r = _mm_max_ss(_mm_movehdup_ps(r), r);
    return _mm_cvtss_f32(r);
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
__attribute__((target("avx2,f16c"))) static void f16_row_avx2(float *o, const sl_f16_t *h, int n) {
    for (int i = 0; i < n; i += 8) _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
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

/* ---- paged attention ----
 *
 * Tiled ("flash") form: a work item is one KV head and a run of up to
 * ATT_ROWS / group consecutive tokens of one sequence, i.e. every query row
 * (token × head of that KV head's group) that reads the same keys. Keys are
 * taken a chunk at a time (converted to f32 once per chunk for F16/Q8_0
 * storage) and every row of the item passes over the
 * chunk while it is in L1: scores, an online softmax (running max and sum,
 * rescaling the partial output when the max grows) and the weighted sum of
 * values. So each key and value row is read (and converted) once per item
 * instead of once per query head and token.
 *
 * The chunk is 16 keys for F32 storage (one engine block: its rows are
 * used in place) and ATT_KB for the types converted into a buffer anyway
 * (F16, Q8_0), where a longer chunk spends less on the per-chunk softmax
 * bookkeeping (decode over 1000 F16 keys, 1 thread: 136-165 → 115-145 µs
 * per call with 64 against 16).
 *
 * With AVX2 the heads of one token (one GQA group: they see the same keys)
 * go through the chunk 3 or 2 rows at a time (att_rows_avx2), so every key
 * and value vector loaded serves several rows and up to 12 FMA chains run
 * at once; a lone row (MHA, an odd group) takes the one-row loops.
 * bench/bench_attention.c, 1 thread, F16 cache, best of interleaved runs:
 * decode at 2000 positions 24-25 → 35 GFLOP/s, a 512-token prefill 37 → 43. */

#define ATT_KB 64
#define ATT_KB_F32 16
#define ATT_ROWS 64
#define ATT_MAX_TILES 1024

static int att_chunk(sl_type_t kv_type) {
    return kv_type == SL_TYPE_F32 ? ATT_KB_F32 : ATT_KB;
}

static int att_tile_tokens(int group) {
    const int t = ATT_ROWS / group;
    return t < 1 ? 1 : t;
}

size_t sl_attention_paged_scratch(int n_head, int n_head_kv, int head_dim) {
    if (n_head <= 0 || n_head_kv <= 0 || head_dim <= 0) return 0;
    const int group = n_head / n_head_kv;
    const size_t rows = (size_t)att_tile_tokens(group) * (size_t)group;
    return 2 * (size_t)ATT_KB * (size_t)head_dim + 3 * (ATT_KB + 8) + 2 * rows + 8;
}

/* Keys [j0, j0 + n) of KV head offset hoff as f32 rows of hd floats (the
 * rows may lie in several blocks). F32 rows of a single block are used
 * where they are; anything else is converted or gathered into buf. Chunks
 * start at multiples of the chunk size (att_chunk: by storage type) whatever
 * the block size, so a paged cache and a contiguous one give bit-identical
 * results. */
static const float *att_rows_f32(const sl_attn_paged_t *a, const uint8_t *base, const int32_t *blocks,
                                 size_t hoff, int j0, int n, bool simd, float *buf) {
    const int bs = a->block_size, hd = a->head_dim;
    const sl_type_t t = a->kv_type;
    if (t == SL_TYPE_F32 && j0 / bs == (j0 + n - 1) / bs)
        return (const float *)(base + (size_t)blocks[j0 / bs] * a->block_stride + hoff +
                               (size_t)(j0 % bs) * a->row_bytes);
    for (int p = 0; p < n; p++) {
        const int j = j0 + p;
        const uint8_t *src = base + (size_t)blocks[j / bs] * a->block_stride + hoff + (size_t)(j % bs) * a->row_bytes;
        float *o = buf + (size_t)p * (size_t)hd;
        if (t == SL_TYPE_F32) {
            memcpy(o, src, (size_t)hd * sizeof(float));
            continue;
        }
#ifdef SL_OPS_X86
        if (simd && t == SL_TYPE_F16 && hd % 8 == 0) {
            f16_row_avx2(o, (const sl_f16_t *)src, hd);
            continue;
        }
#endif
        sl_dequantize_row(t, src, o, hd);
    }
    (void)simd;
    return buf;
}

/* One query row against nv keys K[0..nv) / values V[0..nv) (hd floats
 * each): updates the running max *m, running sum *l and the unnormalised
 * output out (hd floats). s holds nv (<= ATT_KB) floats and up to 7 past. */
static void att_row_scalar(const float *q, float *out, const float *K, const float *V, int nv, int hd, float scale,
                           float cap, float *m, float *l, float *s) {
    float mx = -INFINITY;
    for (int j = 0; j < nv; j++) {
        s[j] = dot_f32(q, K + (size_t)j * (size_t)hd, hd) * scale;
        if (cap > 0.0f) s[j] = cap * tanhf(s[j] / cap); /* soft-capping (Gemma 2) */
        if (s[j] > mx) mx = s[j];
    }
    const float mn = mx > *m ? mx : *m;
    const float c = *m == -INFINITY ? 0.0f : expf(*m - mn);
    float sum = 0.0f;
    for (int j = 0; j < nv; j++) sum += (s[j] = expf(s[j] - mn));
    *l = *l * c + sum;
    *m = mn;
    for (int i = 0; i < hd; i++) out[i] *= c;
    for (int j = 0; j < nv; j++) axpy_f32(out, s[j], V + (size_t)j * (size_t)hd, hd);
}

#ifdef SL_OPS_X86
/* 8 scores q · K[j..j+8) (hd floats each, hd % 8 == 0): 8 independent
 * FMA chains, then one transpose-and-add of the 8 sums. */
__attribute__((target("avx2,fma"))) static inline __m256 att_qk8(const float *q, const float *k0, int hd) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) a[r] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) a[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + (size_t)r * (size_t)hd + d), a[r]);
    }
    /* lanes: h01 = (s0 s1 s0 s1 | s0 s1 s0 s1 partials) ... */
    const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

/* Online-softmax step for one row whose nv scores (scaled) are in s and
 * whose chunk maximum is mx: s becomes exp(s - new max), *m and *l are
 * updated; returns the factor for the row's partial output. */
__attribute__((target("avx2,fma"))) static inline float att_softmax_step(float *s, int nv, float mx, float cap, float *m,
                                                                         float *l) {
    if (cap > 0.0f) { /* soft-capping (Gemma 2): s = cap · tanh(s / cap), tanh(t) = 1 - 2 / (e^2t + 1) */
        const __m256 cv = _mm256_set1_ps(cap), two = _mm256_set1_ps(2.0f), one = _mm256_set1_ps(1.0f);
        const __m256 k2 = _mm256_set1_ps(2.0f / cap);
        __m256 mx8 = _mm256_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 8 <= nv; j += 8) {
            const __m256 e = exp8(_mm256_mul_ps(_mm256_loadu_ps(s + j), k2));
            const __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
            const __m256 v = _mm256_mul_ps(cv, t);
            _mm256_storeu_ps(s + j, v);
            mx8 = _mm256_max_ps(v, mx8);
        }
        mx = hmax256(mx8);
        for (; j < nv; j++) {
            s[j] = cap * tanhf(s[j] / cap);
            if (s[j] > mx) mx = s[j];
        }
    }
    const float mn = mx > *m ? mx : *m;
    const float c = *m == -INFINITY ? 0.0f : expf(*m - mn);
    /* p = exp(s - mn), 8 lanes at a time; lanes past nv are not used */
    __m256 sv = _mm256_setzero_ps();
    int j;
    for (j = 0; j < nv; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(mn)));
        _mm256_storeu_ps(s + j, e);
    }
    for (j = 0; j + 8 <= nv; j += 8) sv = _mm256_add_ps(sv, _mm256_loadu_ps(s + j));
    float sum = hsum256(sv);
    for (; j < nv; j++) sum += s[j];
    *l = *l * c + sum;
    *m = mn;
    return c;
}

/* Scores of a chunk: s = (q · K[j]) * scale for j < nv, returns their max
 * (a NaN score is skipped). */
__attribute__((target("avx2,fma"))) static inline float att_scores_avx2(const float *q, const float *K, int nv,
                                                                        int hd, float scale, float *s) {
    int j = 0;
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= nv; j += 8) {
        const __m256 s8 = _mm256_mul_ps(att_qk8(q, K + (size_t)j * (size_t)hd, hd), sc);
        _mm256_storeu_ps(s + j, s8);
        mx8 = _mm256_max_ps(s8, mx8);
    }
    float mx = hmax256(mx8);
    for (; j < nv; j++) {
        s[j] = dot_f32_avx2(q, K + (size_t)j * (size_t)hd, hd) * scale;
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

__attribute__((target("avx2,fma"))) static void att_row_avx2(const float *q, float *out, const float *K,
                                                               const float *V, int nv, int hd, float scale,
                                                               float cap, float *m, float *l, float *s) {
    const float mx = att_scores_avx2(q, K, nv, hd, scale, s);
    const __m256 cv = _mm256_set1_ps(att_softmax_step(s, nv, mx, cap, m, l));
    int d = 0, j;
    /* 64 output floats per pass: 8 independent FMA chains per key */
    for (; d + 64 <= hd; d += 64) {
        __m256 o[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) o[r] = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d + 8 * r));
        for (j = 0; j < nv; j++) {
            const __m256 p = _mm256_broadcast_ss(s + j);
            const float *v = V + (size_t)j * (size_t)hd + d;
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) o[r] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * r), o[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) _mm256_storeu_ps(out + d + 8 * r, o[r]);
    }
    for (; d + 32 <= hd; d += 32) {
        __m256 o0 = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d)), o1 = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d + 8));
        __m256 o2 = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d + 16)), o3 = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d + 24));
        for (j = 0; j < nv; j++) {
            const __m256 p = _mm256_broadcast_ss(s + j);
            const float *v = V + (size_t)j * (size_t)hd + d;
            o0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v), o0);
            o1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8), o1);
            o2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 16), o2);
            o3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 24), o3);
        }
        _mm256_storeu_ps(out + d, o0);
        _mm256_storeu_ps(out + d + 8, o1);
        _mm256_storeu_ps(out + d + 16, o2);
        _mm256_storeu_ps(out + d + 24, o3);
    }
    for (; d < hd; d += 8) {
        __m256 o0 = _mm256_mul_ps(cv, _mm256_loadu_ps(out + d));
        for (j = 0; j < nv; j++)
            o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j), _mm256_loadu_ps(V + (size_t)j * (size_t)hd + d), o0);
        _mm256_storeu_ps(out + d, o0);
    }
}

/* The 4 sums of a0..a3 (8 lanes each) in one 128-bit vector. */
__attribute__((target("avx2,fma"))) static inline __m128 hsum4x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* R (2 or 3) query rows of one token (the same keys) against the chunk,
 * hd % 32 == 0. Each key and value vector serves all R rows, and the
 * scores (4 keys × R rows) and sums (32 outputs × R rows) run up to 12
 * independent FMA chains: the one-row loops have 8, fewer than the FMA
 * latency × throughput of the core needs. s: R rows of ATT_KB + 8 floats. */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
att_rows_avx2(const int R, const float *q, float *out, size_t rs, const float *K, const float *V, int nv, int hd,
              float scale, float cap, float *m, float *l, float *s) {
    const size_t sst = ATT_KB + 8;
    const __m128 sc = _mm_set1_ps(scale);
    __m128 mx[3];
    for (int r = 0; r < R; r++) mx[r] = _mm_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 4 <= nv; j += 4) {
        const float *k = K + (size_t)j * (size_t)hd;
        __m256 acc[3][4];
#pragma GCC unroll 3
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
#pragma GCC unroll 3
            for (int r = 0; r < R; r++) {
                const __m256 x = _mm256_loadu_ps(q + (size_t)r * rs + d);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    acc[r][c] = _mm256_fmadd_ps(x, _mm256_loadu_ps(k + (size_t)c * (size_t)hd + d), acc[r][c]);
            }
        }
#pragma GCC unroll 3
        for (int r = 0; r < R; r++) {
            const __m128 v = _mm_mul_ps(hsum4x8(acc[r][0], acc[r][1], acc[r][2], acc[r][3]), sc);
            _mm_storeu_ps(s + (size_t)r * sst + j, v);
            mx[r] = _mm_max_ps(v, mx[r]); /* a NaN score is skipped, as in att_scores_avx2 */
        }
    }
    float mf[3], c[3];
    for (int r = 0; r < R; r++) mf[r] = hmax256(_mm256_set_m128(mx[r], mx[r]));
    for (; j < nv; j++)
        for (int r = 0; r < R; r++) {
            float *sr = s + (size_t)r * sst;
            sr[j] = dot_f32_avx2(q + (size_t)r * rs, K + (size_t)j * (size_t)hd, hd) * scale;
            if (sr[j] > mf[r]) mf[r] = sr[j];
        }
    for (int r = 0; r < R; r++) c[r] = att_softmax_step(s + (size_t)r * sst, nv, mf[r], cap, &m[r], &l[r]);
    for (int d = 0; d < hd; d += 32) {
        __m256 o[3][4];
#pragma GCC unroll 3
        for (int r = 0; r < R; r++) {
            const __m256 cv = _mm256_set1_ps(c[r]);
#pragma GCC unroll 4
            for (int e = 0; e < 4; e++) o[r][e] = _mm256_mul_ps(cv, _mm256_loadu_ps(out + (size_t)r * rs + d + 8 * e));
        }
        for (j = 0; j < nv; j++) {
            const float *v = V + (size_t)j * (size_t)hd + d;
#pragma GCC unroll 3
            for (int r = 0; r < R; r++) {
                const __m256 p = _mm256_broadcast_ss(s + (size_t)r * sst + j);
#pragma GCC unroll 4
                for (int e = 0; e < 4; e++) o[r][e] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * e), o[r][e]);
            }
        }
#pragma GCC unroll 3
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int e = 0; e < 4; e++) _mm256_storeu_ps(out + (size_t)r * rs + d + 8 * e, o[r][e]);
    }
}

/* rs: floats from one row's q / out to the next (head_dim for the heads of
 * one token; n_head · head_dim for one head of consecutive tokens) */
__attribute__((target("avx2,fma"))) static void att_row3_avx2(const float *q, float *out, size_t rs, const float *K,
                                                                const float *V, int nv, int hd, float scale, float cap,
                                                                float *m, float *l, float *s) {
    att_rows_avx2(3, q, out, rs, K, V, nv, hd, scale, cap, m, l, s);
}
__attribute__((target("avx2,fma"))) static void att_row2_avx2(const float *q, float *out, size_t rs, const float *K,
                                                                const float *V, int nv, int hd, float scale, float cap,
                                                                float *m, float *l, float *s) {
    att_rows_avx2(2, q, out, rs, K, V, nv, hd, scale, cap, m, l, s);
}
#endif

struct attn_paged_job {
    const sl_attn_paged_t *a;
    bool simd;
    int n_tiles;
    const int *tile0; /* n_tiles + 1 batch token indices: tile i is [tile0[i], tile0[i+1]) */
    int next;         /* next work item to claim (atomic) */
};

/* Item it = tile * n_head_kv + KV head, claimed from the end (later tokens
 * of a prefill have longer rows). The tokens of a tile belong to one
 * sequence and have consecutive positions. */
static void attn_paged_worker(void *ctx, int ith, int nth) {
    struct attn_paged_job *job = ctx;
    const sl_attn_paged_t *a = job->a;
    const int hd = a->head_dim, bs = a->block_size, H = a->n_head;
    const int group = a->n_head / a->n_head_kv;
    const int n_items = job->n_tiles * a->n_head_kv;
    float *kbuf = a->scratch + (size_t)ith * sl_attention_paged_scratch(a->n_head, a->n_head_kv, hd);
    float *vbuf = kbuf + (size_t)ATT_KB * (size_t)hd, *s = vbuf + (size_t)ATT_KB * (size_t)hd;
    float *M = s + 3 * (ATT_KB + 8), *L = M + (size_t)att_tile_tokens(group) * (size_t)group;
    const int kb = att_chunk(a->kv_type);
    const int window = a->tok_keys ? 0 : a->window; /* causal only (sl_attention_paged asserts it) */
    bool simd = false;
#ifdef SL_OPS_X86
    simd = job->simd && hd % 8 == 0;
#endif
    (void)simd;
    (void)nth;

    for (;;) {
        const int claimed = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (claimed >= n_items) break;
        const int it = n_items - 1 - claimed;
        const int tile = it / a->n_head_kv, hk = it % a->n_head_kv;
        const int t0 = job->tile0[tile], nt = job->tile0[tile + 1] - t0, R = nt * group;
        /* causal: token ti sees keys 0 .. pos0 + ti, the tile's last token
         * all n_keys; non-causal (tok_keys): every token of the tile sees the
         * same n_keys (the tile builder splits where tok_keys differ) */
        const int pos0 = a->tok_pos[t0], n_keys = a->tok_keys ? a->tok_keys[t0] : pos0 + nt;
        /* sliding window (causal only): token ti sees keys from
         * first_key(ti); the chunks start at the chunk holding the tile's
         * first visible key */
#define FIRST_KEY(ti) (window > 0 && pos0 + (ti) + 1 > window ? pos0 + (ti) + 1 - window : 0)
        const int32_t *blocks = a->tok_blocks[t0];
        const size_t hoff = (size_t)hk * (size_t)bs * a->row_bytes;
        for (int r = 0; r < R; r++) {
            M[r] = -INFINITY;
            L[r] = 0.0f;
        }
        for (int ti = 0; ti < nt; ti++)
            memset(a->out + ((size_t)(t0 + ti) * (size_t)H + (size_t)hk * (size_t)group) * (size_t)hd, 0,
                   (size_t)group * (size_t)hd * sizeof(float));
        for (int j0 = FIRST_KEY(0) / kb * kb; j0 < n_keys;) {
            const int nk = n_keys - j0 < kb ? n_keys - j0 : kb;
            const float *K0 = att_rows_f32(a, a->k, blocks, hoff, j0, nk, job->simd, kbuf);
            const float *V0 = att_rows_f32(a, a->v, blocks, hoff, j0, nk, job->simd, vbuf);
#ifdef SL_OPS_X86
            /* non-causal with one query head per KV head (BERT): every
             * token of the tile sees the same nk keys, so the rows of
             * consecutive tokens go through the chunk 3 (or 2) at a time,
             * each key and value vector loaded once for all of them */
            if (a->tok_keys && group == 1 && simd && hd % 32 == 0 && nt > 1) {
                const size_t rs = (size_t)H * (size_t)hd;
                for (int ti = 0; ti < nt;) {
                    const int left = nt - ti, nr = left == 2 || left == 4 ? 2 : left >= 3 ? 3 : 1;
                    const size_t qo = ((size_t)(t0 + ti) * (size_t)H + (size_t)hk) * (size_t)hd;
                    if (nr > 1)
                        (nr == 3 ? att_row3_avx2 : att_row2_avx2)(a->q + qo, a->out + qo, rs, K0, V0, nk, hd,
                                                                  a->scale, a->softcap, &M[ti], &L[ti], s);
                    else
                        att_row_avx2(a->q + qo, a->out + qo, K0, V0, nk, hd, a->scale, a->softcap, &M[ti], &L[ti], s);
                    ti += nr;
                }
                j0 += nk;
                continue;
            }
#endif
            for (int ti = 0; ti < nt; ti++) {
                /* keys of the chunk this token sees: it sees n_keys - j0 >= nk
                 * non-causal, so nv = nk below for every row */
                const int lim = (a->tok_keys ? n_keys : pos0 + ti + 1) - j0;
                const int skip = FIRST_KEY(ti) > j0 ? FIRST_KEY(ti) - j0 : 0;
                if (lim <= skip || skip >= nk) continue;
                const int nv = (lim < nk ? lim : nk) - skip;
                const float *K = K0 + (size_t)skip * (size_t)hd, *V = V0 + (size_t)skip * (size_t)hd;
                for (int g = 0; g < group; g++) {
                    const size_t qo =
                        ((size_t)(t0 + ti) * (size_t)H + (size_t)(hk * group + g)) * (size_t)hd;
                    const int r = ti * group + g;
#ifdef SL_OPS_X86
                    /* the token's rows (consecutive heads) 3 at a time (2 where 2 or 4 are left) */
                    const int left = group - g, nr = left == 2 || left == 4 ? 2 : left >= 3 ? 3 : 1;
                    if (simd && nr > 1 && hd % 32 == 0) {
                        (nr == 3 ? att_row3_avx2 : att_row2_avx2)(a->q + qo, a->out + qo, (size_t)hd, K, V,
                                                                  nv, hd, a->scale, a->softcap, &M[r], &L[r], s);
                        g += nr - 1;
                        continue;
                    }
                    if (simd) {
                        att_row_avx2(a->q + qo, a->out + qo, K, V, nv, hd, a->scale, a->softcap, &M[r], &L[r], s);
                        continue;
                    }
#endif
                    att_row_scalar(a->q + qo, a->out + qo, K, V, nv, hd, a->scale, a->softcap, &M[r], &L[r], s);
                }
            }
            j0 += nk;
        }
#undef FIRST_KEY
        /* normalization: a sink logit joins the denominator only, rescaled
         * with the row's running max when it is the larger */
        for (int ti = 0; ti < nt; ti++)
            for (int g = 0; g < group; g++) {
                const int h = hk * group + g, r = ti * group + g;
                float *o = a->out + ((size_t)(t0 + ti) * (size_t)H + (size_t)h) * (size_t)hd;
                float c = 1.0f, l = L[r];
                if (a->sinks) {
                    const float mn = fmaxf(M[r], a->sinks[h]);
                    c = expf(M[r] - mn);
                    l = l * c + expf(a->sinks[h] - mn);
                }
                const float inv = c / l;
                for (int i = 0; i < hd; i++) o[i] *= inv;
            }
    }
}

void sl_attention_paged(sl_pool_t *pool, const sl_attn_paged_t *a) {
    assert(!a->tok_keys || a->window == 0);
    struct attn_paged_job job = {.a = a, .simd = false};
#ifdef SL_OPS_X86
    const sl_isa_t isa = sl_kernels_isa();
    job.simd = isa == SL_ISA_AVX2 || isa == SL_ISA_AVX512;
#endif
    const int tmax = att_tile_tokens(a->n_head / a->n_head_kv);
    int tile0[ATT_MAX_TILES + 1];
    /* Tiles: runs of consecutive positions of one sequence (and one
     * tok_keys value), at most tmax tokens; at most ATT_MAX_TILES per pool
     * run. */
    for (int t = 0; t < a->n_tok;) {
        int n = 0;
        while (t < a->n_tok && n < ATT_MAX_TILES) {
            tile0[n++] = t;
            int e = t + 1;
            while (e < a->n_tok && e - t < tmax && a->tok_blocks[e] == a->tok_blocks[t] &&
                   a->tok_pos[e] == a->tok_pos[e - 1] + 1 && (!a->tok_keys || a->tok_keys[e] == a->tok_keys[t]))
                e++;
            t = e;
        }
        tile0[n] = t;
        job.n_tiles = n;
        job.tile0 = tile0;
        job.next = 0;
        if (n * a->n_head_kv < 2)
            attn_paged_worker(&job, 0, 1);
        else
            sl_pool_run_elastic(pool, attn_paged_worker, &job);
    }
}
