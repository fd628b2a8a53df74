/* deps: model kernels gguf base */
/*
 * test_batch.c — the batched forward pass over a paged KV cache against
 * the single-sequence forward pass: several sequences (prefill chunks and
 * decode tokens mixed in one batch, block tables scattered over the pool)
 * must give the logits each sequence gives alone, for F32, F16 and Q8_0 KV
 * and for qwen2 (biases, NEOX RoPE), llama (GQA) and qwen3moe (q/k norms,
 * 6 experts of which each token takes 2: the batch groups its tokens by
 * expert), gemma3 (sliding-window layers of 5 positions, scaled
 * embeddings, GELU) and gpt-oss (sinks, window of 5 on the even layers,
 * biased experts with the clamped SwiGLU, YaRN) shapes; copy-on-write
 * copies of a block must continue identically; bad tables are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

enum { V = 96, E = 64, L = 2, H = 4, K = 2, D = 32, F = 96, CTX = 256 };

static uint64_t rs = 777;
static float rnd(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

enum { NX = 6, KX = 2, FX = 48 }; /* qwen3moe: experts, used per token, expert hidden size */

/* n_mat matrices of n_out × n_in (3-D when n_mat > 1; 1-D when n_out == 1) */
static void add3(gguf_writer_t *w, const char *name, int n_out, int n_in, int n_mat, float scale, bool ones) {
    size_t n = (size_t)n_out * (size_t)n_in * (size_t)n_mat;
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = ones ? 1.0f + 0.1f * rnd() : rnd() * scale;
    int64_t ne[3] = {n_in, n_out, n_mat};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, n_mat > 1 ? 3 : n_out == 1 ? 1 : 2, ne, d) == 0);
    free(d);
}

static void add(gguf_writer_t *w, const char *name, int n_out, int n_in, float scale, bool ones) {
    add3(w, name, n_out, n_in, 1, scale, ones);
}

static void write_model(const char *path, const char *arch) {
    gguf_writer_t *w = gguf_writer_new();
    char k[128];
    gguf_writer_set_str(w, "general.architecture", arch);
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_writer_set_u32(w, KEY("context_length"), CTX);
    gguf_writer_set_u32(w, KEY("embedding_length"), E);
    gguf_writer_set_u32(w, KEY("block_count"), L);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), F);
    gguf_writer_set_u32(w, KEY("attention.head_count"), H);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"), K);
    gguf_writer_set_u32(w, KEY("attention.key_length"), D);
    gguf_writer_set_u32(w, KEY("attention.value_length"), D);
    gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f);
    const bool oss = !strcmp(arch, "gpt-oss"), bias = !strcmp(arch, "qwen2") || oss;
    const bool moe = !strcmp(arch, "qwen3moe") || oss, gemma3 = !strcmp(arch, "gemma3");
    if (gemma3 || oss) gguf_writer_set_u32(w, KEY("attention.sliding_window"), 5);
    if (oss) {
        gguf_writer_set_str(w, KEY("rope.scaling.type"), "yarn");
        gguf_writer_set_f32(w, KEY("rope.scaling.factor"), 32.0f);
        gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), 64);
    }
    if (moe) {
        gguf_writer_set_u32(w, KEY("expert_count"), NX);
        gguf_writer_set_u32(w, KEY("expert_used_count"), KX);
        gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), FX);
    }
#undef KEY
    add(w, "token_embd.weight", V, E, 1.0f, false);
    add(w, "output_norm.weight", 1, E, 0, true);
    add(w, "output.weight", V, E, 0.5f, false);
    for (int l = 0; l < L; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
        add(w, T("attn_norm.weight"), 1, E, 0, true);
        add(w, T(oss ? "post_attention_norm.weight" : "ffn_norm.weight"), 1, E, 0, true);
        add(w, T("attn_q.weight"), H * D, E, 0.3f, false);
        add(w, T("attn_k.weight"), K * D, E, 0.3f, false);
        add(w, T("attn_v.weight"), K * D, E, 0.3f, false);
        add(w, T("attn_output.weight"), E, H * D, 0.3f, false);
        if (moe) {
            add(w, T("ffn_gate_inp.weight"), NX, E, 2.0f, false);
            add3(w, T("ffn_gate_exps.weight"), FX, E, NX, 0.3f, false);
            add3(w, T("ffn_up_exps.weight"), FX, E, NX, 0.3f, false);
            add3(w, T("ffn_down_exps.weight"), E, FX, NX, 0.3f, false);
            if (oss) { /* biases (the experts' 2-D: a row per expert), a sink logit per head */
                add(w, T("ffn_gate_inp.bias"), 1, NX, 1.0f, false);
                add(w, T("ffn_gate_exps.bias"), NX, FX, 7.5f, false);
                add(w, T("ffn_up_exps.bias"), NX, FX, 7.5f, false);
                add(w, T("ffn_down_exps.bias"), NX, E, 0.3f, false);
                add(w, T("attn_output.bias"), 1, E, 0.3f, false);
                add(w, T("attn_sinks.weight"), 1, H, 2.0f, false);
            } else {
                add(w, T("attn_q_norm.weight"), 1, D, 0, true);
                add(w, T("attn_k_norm.weight"), 1, D, 0, true);
            }
        } else {
            if (gemma3) {
                add(w, T("attn_q_norm.weight"), 1, D, 0, true);
                add(w, T("attn_k_norm.weight"), 1, D, 0, true);
                add(w, T("post_attention_norm.weight"), 1, E, 0, true);
                add(w, T("post_ffw_norm.weight"), 1, E, 0, true);
            }
            add(w, T("ffn_gate.weight"), F, E, 0.3f, false);
            add(w, T("ffn_up.weight"), F, E, 0.3f, false);
            add(w, T("ffn_down.weight"), E, F, 0.3f, false);
        }
        if (bias) {
            add(w, T("attn_q.bias"), 1, H * D, 0.2f, false);
            add(w, T("attn_k.bias"), 1, K * D, 0.2f, false);
            add(w, T("attn_v.bias"), 1, K * D, 0.2f, false);
        }
#undef T
    }
    char err[SL_ERR_MAX];
    CHECK_MSG(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
}

static double max_abs(const float *a, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

enum { NS = 4, BS = 4, NBLK = 64 };

/* Four sequences with different prompt lengths; in each round a sequence
 * feeds a chunk of its prompt (up to 5 tokens) or one decode token, all
 * sequences in one model_forward_batch call, and its logits are compared
 * with its own sl_kv_t fed the same tokens. Blocks are handed out from a
 * shuffled list so tables are scattered and interleaved. */
static void batch_vs_single(sl_model_t *m, sl_pool_t *pool, sl_type_t kvt, double tol) {
    char err[SL_ERR_MAX];
    sl_kv_pool_t *kp = model_kv_pool_new(m, NBLK, BS, kvt, err, sizeof err);
    CHECK_MSG(kp != NULL, "%s", err);
    if (!kp) return;
    {
        /* a block's raw regions (K, V) make up its bytes; out of range: none */
        size_t nk = 0, nv = 0, nx = 1;
        const uint8_t *k0 = model_kv_pool_block_data(kp, 0, 0, &nk),
                      *k1 = model_kv_pool_block_data(kp, 1, 0, &nx);
        CHECK(k0 && model_kv_pool_block_data(kp, 0, 1, &nv) &&
              nk + nv == model_kv_block_bytes(m, BS, kvt));
        CHECK(k1 == k0 + nk && nx == nk);
        CHECK(!model_kv_pool_block_data(kp, NBLK, 0, &nx) && nx == 0);
        CHECK(!model_kv_pool_block_data(kp, -1, 0, &nx) &&
              !model_kv_pool_block_data(kp, 0, 2, &nx));
    }
    int order[NBLK];
    for (int i = 0; i < NBLK; i++) order[i] = i;
    for (int i = NBLK - 1; i > 0; i--) {
        int j = (int)((rnd() + 1.0f) * 0.5f * (float)i);
        if (j > i) j = i;
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int next_blk = 0;
    sl_kv_t *kv[NS];
    int32_t toks[NS][64];
    int32_t tables[NS][16];
    int n_prompt[NS] = {11, 1, 6, 17}, n_past[NS] = {0}, n_blocks[NS] = {0};
    float *lb = malloc((size_t)NS * V * sizeof(float)), *ls = malloc(V * sizeof(float));
    for (int s = 0; s < NS; s++) {
        kv[s] = model_kv_new(m, CTX, kvt, err, sizeof err);
        for (int i = 0; i < 64; i++) toks[s][i] = (int32_t)((s * 37 + i * 11 + 3) % V);
    }
    double worst = 0;
    for (int round = 0; round < 8; round++) {
        sl_batch_seq_t b[NS];
        int nb = 0, who[NS];
        for (int s = 0; s < NS; s++) {
            if (round < s % 2) continue; /* some join later */
            int n = n_past[s] < n_prompt[s] ? SL_MIN(5, n_prompt[s] - n_past[s]) : 1;
            while (n_blocks[s] * BS < n_past[s] + n) tables[s][n_blocks[s]++] = order[next_blk++];
            b[nb] = (sl_batch_seq_t){.tokens = toks[s] + n_past[s], .n_tok = n, .n_past = n_past[s],
                                     .blocks = tables[s], .logits = lb + (size_t)nb * V};
            who[nb++] = s;
        }
        CHECK_MSG(model_forward_batch(m, pool, kp, b, nb, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < nb; i++) {
            const int s = who[i];
            CHECK(model_forward(m, pool, kv[s], b[i].tokens, b[i].n_tok, ls, false, err, sizeof err) == 0);
            double d = max_diff(lb + (size_t)i * V, ls, V) / fmax(1e-6, max_abs(ls, V));
            worst = fmax(worst, d);
            n_past[s] += b[i].n_tok;
        }
    }
    CHECK_MSG(worst <= tol, "kv %s: batched logits differ from single-sequence by %g (relative)",
              sl_type_name(kvt), worst);

    /* copy-on-write: sequence 0's partly filled last block copied to a fresh
     * block; the copy and the original continue with the same token and
     * must give the same logits as the single-sequence cache */
    if (n_past[0] % BS == 0) toks[0][n_past[0]] = 5; /* keep the test meaningful either way */
    int32_t t2[16];
    memcpy(t2, tables[0], sizeof t2);
    const int last = (n_past[0] - 1) / BS, fresh = order[next_blk++];
    model_kv_pool_copy(kp, fresh, tables[0][last], n_past[0] % BS ? n_past[0] % BS : BS);
    t2[last] = fresh;
    if ((n_past[0] + 1 + BS - 1) / BS > n_blocks[0]) {
        tables[0][n_blocks[0]] = order[next_blk++];
        t2[n_blocks[0]] = order[next_blk++];
    }
    sl_batch_seq_t b2[2] = {
        {.tokens = toks[0] + n_past[0], .n_tok = 1, .n_past = n_past[0], .blocks = tables[0], .logits = lb},
        {.tokens = toks[0] + n_past[0], .n_tok = 1, .n_past = n_past[0], .blocks = t2, .logits = lb + V},
    };
    CHECK(model_forward_batch(m, pool, kp, b2, 2, err, sizeof err) == 0);
    CHECK(model_forward(m, pool, kv[0], toks[0] + n_past[0], 1, ls, false, err, sizeof err) == 0);
    CHECK(max_diff(lb, lb + V, V) == 0.0);
    CHECK(max_diff(lb, ls, V) / max_abs(ls, V) <= tol);

    /* a table entry outside the pool is refused, not followed */
    int32_t badt[2] = {0, NBLK};
    sl_batch_seq_t bad = {.tokens = toks[1], .n_tok = 5, .n_past = 0, .blocks = badt, .logits = lb};
    CHECK(model_forward_batch(m, pool, kp, &bad, 1, err, sizeof err) == -1);
    CHECK(strstr(err, "outside the pool") != NULL);
    int32_t badtok = V;
    bad = (sl_batch_seq_t){.tokens = &badtok, .n_tok = 1, .n_past = 0, .blocks = tables[1], .logits = lb};
    CHECK(model_forward_batch(m, pool, kp, &bad, 1, err, sizeof err) == -1);

    for (int s = 0; s < NS; s++) model_kv_free(kv[s]);
    free(lb);
    free(ls);
    model_kv_pool_free(kp);
}

static void run_arch(const char *arch) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/silica-test-batch-%s-%d.gguf", arch, (int)getpid());
    write_model(path, arch);
    char err[SL_ERR_MAX];
    sl_model_t *m = model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        sl_pool_t *pool = sl_pool_new(2);
        batch_vs_single(m, NULL, SL_TYPE_F32, 1e-5);
        batch_vs_single(m, pool, SL_TYPE_F32, 1e-5);
        batch_vs_single(m, pool, SL_TYPE_F16, 1e-5);
        batch_vs_single(m, pool, SL_TYPE_Q8_0, 1e-5);
        CHECK(model_kv_block_bytes(m, 16, SL_TYPE_F16) == (size_t)2 * L * K * 16 * D * 2);
        CHECK(model_kv_block_bytes(m, 16, SL_TYPE_Q8_0) == (size_t)2 * L * K * 16 * 34);
        CHECK(model_kv_block_bytes(m, 16, SL_TYPE_Q4_0) == 0);
        sl_pool_free(pool);
        model_free(m);
    }
    unlink(path);
}

static void test_llama(void) { run_arch("llama"); }
static void test_qwen2(void) { run_arch("qwen2"); }
static void test_qwen3moe(void) { run_arch("qwen3moe"); }
static void test_gemma3(void) { run_arch("gemma3"); }
static void test_gpt_oss(void) {
    run_arch("gpt-oss");
}

int main(void) {
    RUN(test_llama);
    RUN(test_qwen2);
    RUN(test_qwen3moe);
    RUN(test_gemma3);
    RUN(test_gpt_oss);
    return test_summary();
}
