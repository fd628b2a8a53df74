/*
 * cmd_mkmodel.c — `silica mkmodel`: writes a random-weight model in the
 * standard GGUF layout (tensor names, metadata keys and types exactly as
 * llama.cpp's converter writes them), optionally with a real tokenizer
 * imported from a Hugging Face tokenizer.json + tokenizer_config.json.
 *
 *   silica mkmodel --arch
 * llama|internlm2|qwen2|qwen3|qwen2moe|qwen3moe|qwen35|qwen35moe|qwen3next|chatglm|glm4|glm4moe|deepseek2|gpt-oss|phi3|gemma|gemma2|gemma3|gemma4|granite|granitemoe|granitehybrid|nemotron_h|nemotron_h_moe|smollm3|olmo2|ernie4_5|bert|nomic-bert
 * --out F.gguf [--vocab N]
 *       [--embd N] [--layers N] [--heads N] [--kv-heads N] [--head-dim N] [--ffn N]
 *       [--experts N --experts-used K --expert-ffn N]  (qwen2moe, qwen3moe, glm4moe, deepseek2,
 * gpt-oss; llama: Mixtral)
 *       [--shared-ffn N]                               (qwen2moe's shared expert)
 *       [--q-lora N] [--kv-lora N] [--qk-nope N] [--qk-rope N] [--v-head N]  (deepseek2's MLA)
 *       [--shared-experts N] [--dense-lead N] [--gating softmax|sigmoid]
 *       [--expert-groups N] [--expert-groups-used N]  (deepseek2's routing)
 *       [--swa N]                                      (gemma2/3's, OLMo 3's, gpt-oss's sliding
 * window)
 *       [--pooling mean|cls|rank] [--cls-out N] [--token-types N]  (bert)
 *       [--pooling mean|cls|last] [--token-types N]                (nomic-bert)
 *       [--pooling mean|cls|last]  (other archs: a decoder embedding model, as Qwen3-Embedding)
 *       [--pooling rank]           (other archs, with --tokenizer: a decoder reranker, as
 * Qwen3-Reranker)
 *       [--ctx N] [--tied|--untied] [--type f32|f16|q8_0|q4_K_M|...]
 *       [--seed S] [--tokenizer DIR] [--chat-template FILE] [--name NAME] [--rope-base F]
 *       [--rope-scaling linear|yarn --rope-factor F --rope-orig-ctx N]
 *       [--preset qwen2.5-0.5b] [-t THREADS]
 *
 * Weights are seeded pseudo-random normals × 0.02 (norm weights 1 ± 0.02),
 * so activations and logits stay in a sane range. Types per tensor follow
 * model_qplan_type (llama.cpp's mixes, q2_K to q6_K, and fallbacks included). For llama,
 * the converter's Q/K row permutation is only a layout convention, which
 * random weights need not reproduce.
 *
 * bert is the encoder llama.cpp's converter writes for BERT and XLM-RoBERTa
 * (BGE embedding models; BGE-reranker cross-encoders with --pooling rank):
 * learned position and token-type embeddings, LayerNorm with biases after
 * each sublayer, every projection with a bias, no output matrix; with rank
 * pooling the classifier head cls (E -> E) and cls.output (E -> --cls-out,
 * default 1). It has no RoPE and no grouped K/V heads, so --kv-heads,
 * --head-dim, --tied/--untied and the --rope-* options are refused for it.
 *
 * nomic-bert is the encoder of nomic-embed-text v1/v1.5 as llama.cpp's
 * converter writes it: bert's token-type embeddings and post-LayerNorms,
 * but no position table (RoPE rotating halves on Q and K, base --rope-base,
 * default 1000), one fused attn_qkv [E, 3E] (Q rows, then K, then V), a
 * gated FFN (ffn_up, ffn_gate, ffn_down: down(silu(gate x) · up x)) and no
 * biases but the LayerNorms'. Pooling mean (default), cls or last; --ctx
 * defaults to 2048. --cls-out and rank pooling, --kv-heads, --head-dim,
 * --tied/--untied and RoPE scaling are refused for it.
 *
 * deepseek2 is DeepSeek-V2 / V3 as llama.cpp's current converter writes it
 * (multi-head latent attention stored for the absorbed form, one "KV head"
 * of width kv_lora + qk_rope): per block attn_norm; Q either direct
 * (attn_q, --q-lora 0, V2-Lite) or through a rank --q-lora bottleneck
 * (attn_q_a, attn_q_a_norm, attn_q_b); attn_kv_a_mqa [E, kv_lora +
 * qk_rope] and attn_kv_a_norm [kv_lora]; the per-head decompressions as 3-D
 * tensors, attn_k_b [qk_nope, kv_lora, H] and attn_v_b [kv_lora, v_head,
 * H]; attn_output [H·v_head, E]; ffn_norm; then a dense gated FFN (--ffn
 * wide) in the first --dense-lead layers (default 1) and a MoE FFN after
 * them: F32 router, --experts experts --expert-ffn wide, --shared-experts
 * (default 1) shared experts fused into one FFN expert-ffn × shared-experts
 * wide. --gating softmax (default, V2: weights scale 1, not renormalized)
 * or sigmoid (V3: exp_probs_b selection bias, renormalized, scale 2.5);
 * --expert-groups / --expert-groups-used restrict the choice to the best
 * groups (default one group, so no restriction; groups used default to half
 * the groups, V3's 4 of 8, at least 1). Defaults are tiny and valid:
 * qk_nope 16, qk_rope 8, v_head 16, kv_lora 32; --kv-heads, --head-dim and
 * --shared-ffn are refused. With yarn scaling it writes the converter's
 * yarn_log_multiplier, 0.1 × V2's mscale_all_dim 0.707.
 *
 * gpt-oss is OpenAI's gpt-oss as llama.cpp's converter writes it: q/k/v
 * and output projections with biases, attn_sinks [heads] (one logit per
 * head, normal × 1), the FFN input norm named post_attention_norm, and in
 * every block a MoE FFN with a biased router (ffn_gate_inp.bias) and
 * biased experts (ffn_{gate,up}_exps.bias [expert_ffn, experts],
 * ffn_down_exps.bias [embd, experts]); attention.sliding_window (--swa,
 * default 128) on the even layers; RoPE base 150000 with YaRN factor 32
 * over 4096 positions unless --rope-* say otherwise.
 *
 * qwen35 / qwen35moe are Qwen3.5 / 3.6 as llama.cpp's converter writes them
 * (add_hybrid_tensors): Gated DeltaNet layers (--ssm-state, --ssm-groups,
 * --ssm-v-heads, --ssm-conv; default 16, 2, 4, 4) with a gated attention
 * layer every --attn-every (4), RoPE over a quarter of the head,
 * rope.dimension_sections in Qwen3.5's [11, 11, 10, 0] proportions over
 * the rotary pairs; qwen35moe with --experts and a
 * sigmoid-gated shared expert (--shared-ffn, default ffn). qwen3next
 * (Qwen3-Next) is qwen35moe as its converter writes it: HF's grouped V
 * heads, one ssm_ba [embd, 2 × v-heads] (per key head its value heads' b,
 * then their a), no rope.dimension_sections (NEOX RoPE).
 *
 * A decoder with --pooling rank is a reranker in Qwen3-Reranker's layout as
 * llama.cpp's converter writes it: pooling_type 4 (rank),
 * classifier.output_labels ["yes", "no"], the rerank prompt as
 * tokenizer.chat_template.rerank (and "rerank" in tokenizer.chat_templates)
 * with {query} and {document} to fill in, and cls.output.weight [E, 2]: the
 * rows of the output matrix (output.weight, or token_embd.weight when tied)
 * for the tokens "yes" and "no", looked up as exact entries of the imported
 * vocabulary (the converter's convert_tokens_to_ids), so it needs
 * --tokenizer. The rows are copied from the same random values and stored in
 * the output matrix's type, so they equal that matrix's rows bit for bit.
 * Unlike the converter, which drops an untied lm_head, output.weight is kept:
 * the file is still a whole decoder.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "gguf/gguf.h"
#include "model/model_quant.h"
#include "tokenizer/hf_import.h"
#include "tokenizer/tokenizer.h"

/* Qwen3-Reranker's prompt, as llama.cpp's converter writes it for
 * tokenizer.chat_template.rerank ({query} and {document} are filled in by
 * the server). */
static const char RERANK_TEMPLATE[] =
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n"
    "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
    "<Query>: {query}\n<Document>: {document}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n";

typedef struct mk {
    const char *arch, *out, *type, *tokenizer, *name, *scaling, *chat_template, *pooling;
    long vocab, embd, layers, heads, kv_heads, head_dim, ffn, ctx, seed, threads, orig_ctx;
    long experts, experts_used, expert_ffn, shared_ffn, swa;
    /* deepseek2: 0 (dense_lead, shared_experts: -1) until given or defaulted;
     * q_lora stays 0 for a direct Q projection */
    long q_lora, kv_lora, qk_nope, qk_rope, v_head, expert_groups, expert_groups_used, shared_experts, dense_lead;
    const char *gating; /* deepseek2: softmax | sigmoid */
    long token_types, cls_out; /* bert, nomic-bert; like kv_heads and ctx, -1 until given or defaulted */
    /* qwen35, qwen35moe: DeltaNet head size (key = value), key heads, value heads, conv width, and
     * every how many layers one attends; 0 until given or defaulted */
    long ssm_state, ssm_groups, ssm_v_heads, ssm_conv, attn_every;
    /* gemma4: the global layers' head size and KV heads, every how many layers one is global, the
     * layers sharing an earlier layer's KV, the per-layer embedding size; 0 until given or defaulted
     * (shared_kv, ple: -1); k_eq_v: global layers without attn_v (26B / 31B) */
    long global_head_dim, global_kv_heads, global_every, shared_kv, ple;
    bool k_eq_v;
    int tied; /* -1: default */
    double rope_base, rope_factor, eps;
} mk_t;

static void usage(void) {
    fprintf(stderr,
            "usage: silica mkmodel --arch llama|internlm2|qwen2|qwen3|qwen2moe|qwen3moe|qwen35|qwen35moe|qwen3next|chatglm|glm4|glm4moe|deepseek2|gpt-oss|phi3|gemma|gemma2|gemma3|gemma4|granite|granitemoe|granitehybrid|nemotron_h|nemotron_h_moe|smollm3|olmo2|ernie4_5|bert|nomic-bert --out F.gguf [--vocab N]\n"
            "         [--embd N] [--layers N] [--heads N] [--kv-heads N] [--head-dim N] [--ffn N] [--ctx N] [--tied|--untied]\n"
            "         [--experts N --experts-used K --expert-ffn N] (qwen2moe, qwen3moe, glm4moe, deepseek2, gpt-oss; default 8, 2,\n"
            "          ffn / 2)\n"
            "         [--ssm-state N] [--ssm-groups N] [--ssm-v-heads N] [--ssm-conv N] [--attn-every N] (qwen35,\n"
            "          qwen35moe's DeltaNet: head size, key heads, value heads, conv width, attention every N layers;\n"
            "          default 16, 2, 4, 4, 4; granitehybrid's Mamba-2: state size, groups, heads of 2 x embd,\n"
            "          conv width, attention every N layers; default 16, 1, 4, 4, 4; nemotron_h: the same, with MLP\n"
            "          layers on the odd layers between; nemotron_h_moe: MoE layers there, with --experts)\n"
            "         [--global-head-dim N] [--global-kv-heads N] [--global-every N] [--shared-kv N] [--per-layer-embd N]\n"
            "          [--k-eq-v] (gemma4: the global layers' head size and KV heads, default 2 x head-dim and kv-heads; every\n"
            "          Nth layer global, default 5; the last N layers reading an earlier KV, default 0; per-layer embeddings,\n"
            "          default 0; global layers without attn_v; with --experts: the 26B-A4B's experts)\n"
            "         [--shared-ffn N] (qwen2moe's, qwen35moe's, granitehybrid's, nemotron_h_moe's shared expert; default ffn) [--swa N] (gemma2/3/4's window, default 512;\n"
            "          gpt-oss's, default 128)\n"
            "         [--q-lora N] [--kv-lora N] [--qk-nope N] [--qk-rope N] [--v-head N] (deepseek2's MLA; default 0\n"
            "          (direct Q), 32, 16, 8, 16) [--shared-experts N] [--dense-lead N] (deepseek2; default 1, 1)\n"
            "         [--gating softmax|sigmoid] [--expert-groups N] [--expert-groups-used N] (deepseek2; default\n"
            "          softmax, 1, groups / 2 or 1)\n"
            "         [--pooling mean|cls|rank] [--cls-out N] [--token-types N] (bert; default cls, 1, 2; --ctx 512)\n"
            "         [--pooling mean|cls|last] [--token-types N]  (nomic-bert; default mean, 2; --ctx 2048, --rope-base 1000)\n"
            "         [--pooling mean|cls|last]                                 (other archs: an embedding model)\n"
            "         [--pooling rank]  (other archs, with --tokenizer: a reranker, as Qwen3-Reranker)\n"
            "         [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_K|q3_K_S|q3_K_M|q3_K_L|q4_K|q4_K_S|q4_K_M\n"
            "                 |q5_K|q5_K_S|q5_K_M|q6_K|iq4_nl|iq4_xs|iq1_s|iq1_m|iq2_xxs|iq2_xs|iq2_s|iq2_m|iq3_xxs\n"
            "                 |iq3_xs|iq3_s|iq3_m|mxfp4_moe] [--seed S]\n"
            "         [--tokenizer DIR] [--chat-template FILE] [--name NAME] [--rope-base F] [--rope-scaling linear|yarn]\n"
            "         [--rope-factor F] [--rope-orig-ctx N] [--preset qwen2.5-0.5b] [-t THREADS]\n");
}

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */
static uint64_t rs[4];
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rnext(void) {
    uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
    rs[2] ^= rs[0], rs[3] ^= rs[1], rs[1] ^= rs[2], rs[0] ^= rs[3], rs[2] ^= t, rs[3] = rotl(rs[3], 45);
    return r;
}
static void rseed(uint64_t s) {
    for (int i = 0; i < 4; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        rs[i] = z ^ (z >> 31);
    }
}
/* Approximately standard normal: sum of four 16-bit uniforms (Irwin-Hall),
 * centred and scaled to unit variance. */
static float rnormal(void) {
    uint64_t r = rnext();
    double s = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) + (double)((r >> 32) & 0xffff) +
               (double)(r >> 48);
    return (float)((s / 65536.0 - 2.0) * 1.7320508075688772);
}

typedef struct {
    gguf_writer_t *w;
    model_qplan_t plan;
    sl_pool_t *pool;
    void **bufs;
    size_t n_bufs, cap_bufs;
    size_t bytes;
    /* a decoder reranker: when the tensor named cls_src (the output matrix)
     * is made, its rows cls_ids[0] ("yes") and cls_ids[1] ("no") are copied
     * to cls_rows (2 × n_in floats, owned here until add_cls_output) */
    const char *cls_src;
    int32_t cls_ids[2];
    float *cls_rows;
} out_t;

static int keep(out_t *o, void *p) {
    if (o->n_bufs == o->cap_bufs) {
        size_t nc = o->cap_bufs ? o->cap_bufs * 2 : 64;
        void **nb = realloc(o->bufs, nc * sizeof *nb);
        if (!nb) return -1;
        o->bufs = nb;
        o->cap_bufs = nc;
    }
    o->bufs[o->n_bufs++] = p;
    return 0;
}

/* Adds the tensor `name` of ne [n_in, n_out, n_mat] with n_dims dims from
 * f, its rows (n_out × n_mat, at least 1) of n_in floats, stored as type t.
 * Takes f over: it is freed, or kept until the file is written. */
static int add_rows(out_t *o, const char *name, sl_type_t t, uint32_t n_dims, int64_t n_in, int64_t n_out,
                    int64_t n_mat, float *f) {
    const int64_t rows = (n_out > 0 ? n_out : 1) * n_mat;
    const size_t n = (size_t)n_in * (size_t)rows; /* checked by the caller, who allocated f */
    const int64_t ne[3] = {n_in, n_out, n_mat};
    void *data = f;
    if (t != SL_TYPE_F32) {
        const size_t rb = sl_row_size(t, n_in);
        data = malloc(rb * (size_t)rows);
        if (!data || model_quantize_rows(o->pool, t, f, n_in, rows, data)) {
            free(data);
            free(f);
            fprintf(stderr, "silica mkmodel: cannot make '%s' as %s\n", name, sl_type_name(t));
            return -1;
        }
        free(f);
    }
    if (keep(o, data)) {
        free(data);
        return -1;
    }
    if (gguf_writer_add_tensor_ref(o->w, name, t, n_dims, ne, data)) return -1; /* data is kept: freed at the end */
    o->bytes += t == SL_TYPE_F32 ? n * 4 : sl_row_size(t, n_in) * (size_t)rows;
    return 0;
}

/* Adds a tensor of ne [n_in, n_out, n_mat] with n_dims dims (n_mat
 * matrices of n_out rows × n_in; n_out 0 and n_mat 1 for a vector) filled
 * with center + scale × normal, stored as the plan says: rows that do not
 * fit the plan's block type take its fallback, 3-D tensors included. The
 * reranker's source rows are copied on the way (see out_t). */
static int add_random_dims(out_t *o, const char *name, uint32_t n_dims, int64_t n_in, int64_t n_out,
                           int64_t n_mat, float center, float scale) {
    const int64_t rows = (n_out > 0 ? n_out : 1) * n_mat;
    size_t n;
    if (!sl_mul_size((size_t)n_in, (size_t)rows, &n)) return -1;
    float *f = malloc(n * sizeof(float));
    if (!f) return -1;
    for (size_t i = 0; i < n; i++) f[i] = center + scale * rnormal();
    if (o->cls_src && !strcmp(name, o->cls_src)) {
        if (o->cls_ids[0] >= rows || o->cls_ids[1] >= rows ||
            !(o->cls_rows = malloc(2 * (size_t)n_in * sizeof(float)))) {
            free(f);
            return -1;
        }
        for (int k = 0; k < 2; k++)
            memcpy(o->cls_rows + k * n_in, f + (size_t)o->cls_ids[k] * (size_t)n_in, (size_t)n_in * sizeof(float));
    }
    return add_rows(o, name, model_qplan_type(&o->plan, name, n_dims, n_in), n_dims, n_in, n_out, n_mat, f);
}

/* A decoder reranker's cls.output.weight [E, 2]: the rows copied from the
 * output matrix, "yes" then "no", in that matrix's type (so that they are
 * its rows bit for bit: each row is converted on its own). */
static int add_cls_output(out_t *o, int64_t E) {
    float *f = o->cls_rows;
    o->cls_rows = NULL;
    if (!f) return -1;
    return add_rows(o, "cls.output.weight", model_qplan_type(&o->plan, o->cls_src, 2, E), 2, E, 2, 1, f);
}

/* As add_random_dims, 3-D when n_mat > 1, 1-D when n_out == 0. */
static int add_random3(out_t *o, const char *name, int64_t n_in, int64_t n_out, int64_t n_mat, float center,
                       float scale) {
    const uint32_t n_dims = n_mat > 1 ? 3 : n_out > 0 ? 2 : 1;
    return add_random_dims(o, name, n_dims, n_in, n_out, n_mat, center, scale);
}

static int add_random(out_t *o, const char *name, int64_t n_in, int64_t n_out, float center, float scale) {
    return add_random3(o, name, n_in, n_out, 1, center, scale);
}

/* Layer l's SwiGLU FFN: dense (ffn_gate / up / down of F), or X experts of
 * FX behind a router (scaled up so that the top-k choice is not a coin
 * toss) plus a shared expert of FS, its sigmoid gate first when
 * shexp_gate (qwen35moe) */
static int add_swiglu_ffn(out_t *o, long l, bool moe, int64_t E, int64_t F, int64_t X, int64_t FX, int64_t FS,
                          bool shexp_gate, float sd) {
    char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
    if (!moe)
        return add_random(o, T("ffn_gate.weight"), E, F, 0, sd) || add_random(o, T("ffn_up.weight"), E, F, 0, sd) ||
               add_random(o, T("ffn_down.weight"), F, E, 0, sd);
    return add_random3(o, T("ffn_gate_inp.weight"), E, X, 1, 0, 1.0f) ||
           add_random3(o, T("ffn_gate_exps.weight"), E, FX, X, 0, sd) ||
           add_random3(o, T("ffn_up_exps.weight"), E, FX, X, 0, sd) ||
           add_random3(o, T("ffn_down_exps.weight"), FX, E, X, 0, sd) ||
           (shexp_gate && add_random(o, T("ffn_gate_inp_shexp.weight"), E, 0, 0, sd)) ||
           add_random(o, T("ffn_gate_shexp.weight"), E, FS, 0, sd) ||
           add_random(o, T("ffn_up_shexp.weight"), E, FS, 0, sd) ||
           add_random(o, T("ffn_down_shexp.weight"), FS, E, 0, sd);
#undef T
}

static int set_key_u32(gguf_writer_t *w, const char *arch, const char *k, long v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_writer_set_u32(w, key, (uint32_t)v);
}
static int set_key_f32(gguf_writer_t *w, const char *arch, const char *k, double v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_writer_set_f32(w, key, (float)v);
}

/* The encoders' (bert, nomic-bert: arch) keys beyond the shape ones every
 * architecture has, as llama.cpp's converter writes them: no head_count_kv,
 * LayerNorm's epsilon; RoPE's base only for nomic-bert (no
 * rope.dimension_count: the whole head turns); classifier.output_labels
 * only for more than one output (llama.cpp's n_cls_out defaults to 1),
 * named like transformers' defaults. */
static int set_bert_keys(gguf_writer_t *w, const char *arch, const mk_t *m, uint32_t pooling) {
    char key[128];
    int bad = 0;
    bad |= set_key_f32(w, arch, "attention.layer_norm_epsilon", m->eps);
    snprintf(key, sizeof key, "%s.attention.causal", arch);
    bad |= gguf_writer_set_bool(w, key, false);
    bad |= set_key_u32(w, arch, "pooling_type", pooling);
    if (!strcmp(arch, "nomic-bert")) bad |= set_key_f32(w, arch, "rope.freq_base", m->rope_base);
    bad |= gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)m->token_types);
    if (bad || m->cls_out <= 1) return bad ? -1 : 0;
    enum { LABEL_MAX = 32 }; /* "LABEL_" and up to 20 digits */
    const size_t n = (size_t)m->cls_out;
    char *text = malloc(n * LABEL_MAX);
    const char **labels = malloc(n * sizeof *labels);
    if (text && labels) {
        for (size_t i = 0; i < n; i++) {
            labels[i] = text + i * LABEL_MAX;
            snprintf(text + i * LABEL_MAX, LABEL_MAX, "LABEL_%zu", i);
        }
        snprintf(key, sizeof key, "%s.classifier.output_labels", arch);
        bad = gguf_writer_set_arr_str(w, key, labels, NULL, n);
    }
    const int rc = text && labels && !bad ? 0 : -1;
    free(labels);
    free(text);
    return rc;
}

/* bert's tensors after token_embd.weight, in llama.cpp's names: the
 * position and token-type embeddings and their LayerNorm, then per block the
 * biased Q/K/V/output projections, the LayerNorm after attention, the biased
 * up/down FFN and the LayerNorm after it; with rank pooling the classifier
 * head (cls: E -> E, then cls.output: E -> cls_out). */
static int add_bert_tensors(out_t *o, const mk_t *m, bool rank) {
    const float sd = 0.02f;
    const int64_t E = m->embd, F = m->ffn;
    if (add_random(o, "token_types.weight", E, m->token_types, 0, sd) ||
        add_random(o, "position_embd.weight", E, m->ctx, 0, sd) ||
        add_random(o, "token_embd_norm.weight", E, 0, 1, sd) || add_random(o, "token_embd_norm.bias", E, 0, 0, sd))
        return -1;
    for (long l = 0; l < m->layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        if (add_random(o, T("attn_q.weight"), E, E, 0, sd) || add_random(o, T("attn_q.bias"), E, 0, 0, sd) ||
            add_random(o, T("attn_k.weight"), E, E, 0, sd) || add_random(o, T("attn_k.bias"), E, 0, 0, sd) ||
            add_random(o, T("attn_v.weight"), E, E, 0, sd) || add_random(o, T("attn_v.bias"), E, 0, 0, sd) ||
            add_random(o, T("attn_output.weight"), E, E, 0, sd) ||
            add_random(o, T("attn_output.bias"), E, 0, 0, sd) ||
            add_random(o, T("attn_output_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("attn_output_norm.bias"), E, 0, 0, sd) ||
            add_random(o, T("ffn_up.weight"), E, F, 0, sd) || add_random(o, T("ffn_up.bias"), F, 0, 0, sd) ||
            add_random(o, T("ffn_down.weight"), F, E, 0, sd) || add_random(o, T("ffn_down.bias"), E, 0, 0, sd) ||
            add_random(o, T("layer_output_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("layer_output_norm.bias"), E, 0, 0, sd))
            return -1;
#undef T
    }
    if (rank && (add_random(o, "cls.weight", E, E, 0, sd) || add_random(o, "cls.bias", E, 0, 0, sd) ||
                 add_random(o, "cls.output.weight", E, m->cls_out, 0, sd) ||
                 add_random(o, "cls.output.bias", m->cls_out, 0, 0, sd)))
        return -1;
    return 0;
}

/* nomic-bert's tensors after token_embd.weight, in llama.cpp's names: the
 * token-type embeddings and their LayerNorm (no position table: RoPE),
 * then per block the fused Q/K/V rows, the output projection, the
 * LayerNorm after attention, the gated FFN and the LayerNorm after it; no
 * bias but the LayerNorms'. */
static int add_nomic_tensors(out_t *o, const mk_t *m) {
    const float sd = 0.02f;
    const int64_t E = m->embd, F = m->ffn;
    if (add_random(o, "token_types.weight", E, m->token_types, 0, sd) ||
        add_random(o, "token_embd_norm.weight", E, 0, 1, sd) || add_random(o, "token_embd_norm.bias", E, 0, 0, sd))
        return -1;
    for (long l = 0; l < m->layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        if (add_random(o, T("attn_qkv.weight"), E, 3 * E, 0, sd) ||
            add_random(o, T("attn_output.weight"), E, E, 0, sd) ||
            add_random(o, T("attn_output_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("attn_output_norm.bias"), E, 0, 0, sd) ||
            add_random(o, T("ffn_up.weight"), E, F, 0, sd) || add_random(o, T("ffn_gate.weight"), E, F, 0, sd) ||
            add_random(o, T("ffn_down.weight"), F, E, 0, sd) ||
            add_random(o, T("layer_output_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("layer_output_norm.bias"), E, 0, 0, sd))
            return -1;
#undef T
    }
    return 0;
}

/* deepseek2's keys beyond the shape ones every architecture has and the
 * expert count, used count and width, as llama.cpp's converter writes them:
 * MLA stored for the absorbed form, one K/V head whose key is the latent
 * and the rotated part (kv_lora + qk_rope) and whose value the latent
 * (kv_lora), the per-head sizes of the decompressed form in the _mla keys;
 * q_lora_rank only with a Q bottleneck; routing as V2 (softmax, weights
 * scale 1, not renormalized) or V3 (sigmoid, renormalized, scale 2.5). */
static int set_deepseek2_keys(gguf_writer_t *w, const char *arch, const mk_t *m) {
    const bool sigmoid = !strcmp(m->gating, "sigmoid");
    char key[128];
    int bad = 0;
    bad |= set_key_u32(w, arch, "attention.head_count_kv", 1);
    bad |= set_key_u32(w, arch, "attention.key_length", m->kv_lora + m->qk_rope);
    bad |= set_key_u32(w, arch, "attention.value_length", m->kv_lora);
    bad |= set_key_u32(w, arch, "attention.key_length_mla", m->qk_nope + m->qk_rope);
    bad |= set_key_u32(w, arch, "attention.value_length_mla", m->v_head);
    if (m->q_lora > 0) bad |= set_key_u32(w, arch, "attention.q_lora_rank", m->q_lora);
    bad |= set_key_u32(w, arch, "attention.kv_lora_rank", m->kv_lora);
    bad |= set_key_f32(w, arch, "attention.layer_norm_rms_epsilon", m->eps);
    bad |= set_key_u32(w, arch, "rope.dimension_count", m->qk_rope);
    bad |= set_key_f32(w, arch, "rope.freq_base", m->rope_base);
    bad |= set_key_u32(w, arch, "leading_dense_block_count", m->dense_lead);
    bad |= set_key_u32(w, arch, "expert_shared_count", m->shared_experts);
    bad |= set_key_f32(w, arch, "expert_weights_scale", sigmoid ? 2.5 : 1.0);
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    bad |= gguf_writer_set_bool(w, key, sigmoid);
    bad |= set_key_u32(w, arch, "expert_gating_func", sigmoid ? 2 : 1); /* llama.cpp's 1 softmax, 2 sigmoid */
    bad |= set_key_u32(w, arch, "expert_group_count", m->expert_groups);
    bad |= set_key_u32(w, arch, "expert_group_used_count", m->expert_groups_used);
    return bad ? -1 : 0;
}

/* deepseek2's blocks, in llama.cpp's names and shapes (ne [n_in, n_out,
 * n_mat]; QK = qk_nope + qk_rope, R = kv_lora): attn_norm; attn_q [E, H·QK]
 * or attn_q_a [E, q_lora], attn_q_a_norm, attn_q_b [q_lora, H·QK];
 * attn_kv_a_mqa [E, R + qk_rope] (the latent rows, then the shared rotated
 * key), attn_kv_a_norm [R]; attn_k_b [qk_nope, R, H] and attn_v_b [R,
 * v_head, H], 3-D even for one head as the converter writes them;
 * attn_output [H·v_head, E]; ffn_norm; then the dense FFN (layers below
 * dense_lead) or the router, the experts and the shared experts fused into
 * one FFN expert_ffn × shared_experts wide, with sigmoid gating the
 * selection bias exp_probs_b. */
static int add_deepseek2_tensors(out_t *o, const mk_t *m) {
    const float sd = 0.02f;
    const int64_t E = m->embd, H = m->heads, QK = m->qk_nope + m->qk_rope, R = m->kv_lora, F = m->ffn;
    const int64_t X = m->experts, FX = m->expert_ffn, FS = m->expert_ffn * m->shared_experts;
    for (long l = 0; l < m->layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        if (add_random(o, T("attn_norm.weight"), E, 0, 1, sd)) return -1;
        if (m->q_lora == 0 ? add_random(o, T("attn_q.weight"), E, H * QK, 0, sd)
                           : add_random(o, T("attn_q_a.weight"), E, m->q_lora, 0, sd) ||
                                 add_random(o, T("attn_q_a_norm.weight"), m->q_lora, 0, 1, sd) ||
                                 add_random(o, T("attn_q_b.weight"), m->q_lora, H * QK, 0, sd))
            return -1;
        if (add_random(o, T("attn_kv_a_mqa.weight"), E, R + m->qk_rope, 0, sd) ||
            add_random(o, T("attn_kv_a_norm.weight"), R, 0, 1, sd) ||
            add_random_dims(o, T("attn_k_b.weight"), 3, m->qk_nope, R, H, 0, sd) ||
            add_random_dims(o, T("attn_v_b.weight"), 3, R, m->v_head, H, 0, sd) ||
            add_random(o, T("attn_output.weight"), H * m->v_head, E, 0, sd) ||
            add_random(o, T("ffn_norm.weight"), E, 0, 1, sd))
            return -1;
        if (l < m->dense_lead) {
            if (add_random(o, T("ffn_gate.weight"), E, F, 0, sd) || add_random(o, T("ffn_up.weight"), E, F, 0, sd) ||
                add_random(o, T("ffn_down.weight"), F, E, 0, sd))
                return -1;
            continue;
        }
        /* the router scaled up so that the top-k choice is not a coin toss */
        if (add_random3(o, T("ffn_gate_inp.weight"), E, X, 1, 0, 1.0f) ||
            add_random_dims(o, T("ffn_gate_exps.weight"), 3, E, FX, X, 0, sd) ||
            add_random_dims(o, T("ffn_up_exps.weight"), 3, E, FX, X, 0, sd) ||
            add_random_dims(o, T("ffn_down_exps.weight"), 3, FX, E, X, 0, sd) ||
            add_random(o, T("ffn_gate_shexp.weight"), E, FS, 0, sd) ||
            add_random(o, T("ffn_up_shexp.weight"), E, FS, 0, sd) ||
            add_random(o, T("ffn_down_shexp.weight"), FS, E, 0, sd))
            return -1;
        if (!strcmp(m->gating, "sigmoid") && add_random(o, T("exp_probs_b.bias"), X, 0, 0, 0.1f)) return -1;
#undef T
    }
    return 0;
}

/* A vector of n values center − exp(spread × normal) … (qwen35's ssm_a =
 * −exp(A_log)), F32 as the converter writes 1-D tensors. */
static int add_neg_exp(out_t *o, const char *name, int64_t n, float spread) {
    float *f = malloc((size_t)n * sizeof(float));
    if (!f) return -1;
    for (int64_t i = 0; i < n; i++) f[i] = -expf(spread * rnormal());
    return add_rows(o, name, SL_TYPE_F32, 1, n, 0, 1, f);
}

/* qwen35 / qwen35moe's blocks as llama.cpp's converter writes them (V heads
 * already in its tiled order, A_log as ssm_a = -exp(A_log), the conv
 * kernel squeezed to [conv, channels] and F32, the norms as multipliers —
 * the converter's +1 done): a DeltaNet layer where (l + 1) % attn_every
 * != 0, else a gated attention layer (attn_q of 2·heads·head_dim rows,
 * per head q then gate, with q/k norms); dense FFN or routed experts with
 * a sigmoid-gated shared expert. dt_bias centered at -1 and ssm_a at -1 so
 * that the state decays slowly (exp(-softplus(-1)) ≈ 0.73 per token). */
static int add_hybrid_tensors(out_t *o, const mk_t *m, bool moe, bool next) {
    const float sd = 0.02f;
    const int64_t E = m->embd, D = m->head_dim, QD = m->heads * D, KD = m->kv_heads * D;
    const int64_t HV = m->ssm_v_heads, VD = HV * m->ssm_state, C = 2 * m->ssm_groups * m->ssm_state + VD;
    const int64_t F = m->ffn, X = m->experts, FX = m->expert_ffn, FS = m->shared_ffn;
    for (long l = 0; l < m->layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        if (add_random(o, T("attn_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("post_attention_norm.weight"), E, 0, 1, sd))
            return -1;
        if ((l + 1) % m->attn_every != 0) {
            if (add_random(o, T("attn_qkv.weight"), E, C, 0, sd) || add_random(o, T("attn_gate.weight"), E, VD, 0, sd) ||
                add_random(o, T("ssm_conv1d.weight"), m->ssm_conv, C, 0, 0.3f) ||
                add_random(o, T("ssm_dt.bias"), HV, 0, -1, 0.5f) || add_neg_exp(o, T("ssm_a"), HV, 0.3f) ||
                (next ? add_random(o, T("ssm_ba.weight"), E, 2 * HV, 0, sd)
                      : add_random(o, T("ssm_beta.weight"), E, HV, 0, sd) ||
                            add_random(o, T("ssm_alpha.weight"), E, HV, 0, sd)) ||
                add_random(o, T("ssm_norm.weight"), m->ssm_state, 0, 1, sd) ||
                add_random(o, T("ssm_out.weight"), VD, E, 0, sd))
                return -1;
        } else if (add_random(o, T("attn_q.weight"), E, 2 * QD, 0, sd) ||
                   add_random(o, T("attn_k.weight"), E, KD, 0, sd) || add_random(o, T("attn_v.weight"), E, KD, 0, sd) ||
                   add_random(o, T("attn_output.weight"), QD, E, 0, sd) ||
                   add_random(o, T("attn_q_norm.weight"), D, 0, 1, sd) ||
                   add_random(o, T("attn_k_norm.weight"), D, 0, 1, sd)) {
            return -1;
        }
        if (add_swiglu_ffn(o, l, moe, E, F, X, FX, FS, true, sd)) return -1;
#undef T
    }
    return 0;
}

/* A Mamba-2 hybrid's layer l: '*' attention where (l + 1) % attn_every == 0,
 * else (nemotron_h) '-' an MLP on odd layers, else 'M' Mamba-2. */
static char mamba2_kind(const mk_t *m, long l, bool nemotron) {
    return (l + 1) % m->attn_every == 0 ? '*' : nemotron && l % 2 == 1 ? '-' : 'M';
}

/* granitehybrid (IBM Granite 4.0 H) as llama.cpp's converter writes it: a
 * Mamba-2 layer where (l + 1) % attn_every != 0 (head_count_kv 0 there),
 * else a plain attention layer (no RoPE: rope.scaling.finetuned false);
 * ssm_in [E, 2·d_inner + 2·groups·state + heads] (z, xBC, dt), the conv
 * [conv, channels] F32 with its bias, the dt bias, A_log as ssm_a =
 * -exp(A_log) and D, both [1, heads], ssm_norm [d_inner / groups, groups],
 * ssm_out; d_inner = 2 × embd (Mamba-2's expand) in --ssm-v-heads heads;
 * a dense SwiGLU FFN or routed experts plus an ungated shared expert.
 * nemotron_h (NVIDIA Nemotron-H): the same mixer and attention, but each
 * layer one sublayer after attn_norm, and MLP layers (ffn_up, ffn_down:
 * relu²) between them (mamba2_kind); no ffn_norm, no FFN in a mixer layer. */
static int add_mamba2_tensors(out_t *o, const mk_t *m, bool moe, bool nemotron) {
    const float sd = 0.02f;
    const int64_t E = m->embd, QD = m->heads * m->head_dim, KD = m->kv_heads * m->head_dim;
    const int64_t NH = m->ssm_v_heads, VD = 2 * E, NG = m->ssm_groups, C = VD + 2 * NG * m->ssm_state;
    const int64_t F = m->ffn, X = m->experts, FX = m->expert_ffn, FS = m->shared_ffn;
    for (long l = 0; l < m->layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        const char kind = mamba2_kind(m, l, nemotron);
        if (add_random(o, T("attn_norm.weight"), E, 0, 1, sd) ||
            (!nemotron && add_random(o, T("ffn_norm.weight"), E, 0, 1, sd)))
            return -1;
        if (kind == '-' && moe) { /* nemotron_h_moe: relu² experts (up, down) and shared expert */
            if (add_random3(o, T("ffn_gate_inp.weight"), E, X, 1, 0, 1.0f) ||
                add_random(o, T("exp_probs_b.bias"), X, 0, 0, 0.1f) ||
                add_random3(o, T("ffn_up_exps.weight"), E, FX, X, 0, sd) ||
                add_random3(o, T("ffn_down_exps.weight"), FX, E, X, 0, sd) ||
                add_random(o, T("ffn_up_shexp.weight"), E, FS, 0, sd) ||
                add_random(o, T("ffn_down_shexp.weight"), FS, E, 0, sd))
                return -1;
            continue;
        }
        if (kind == '-') {
            if (add_random(o, T("ffn_up.weight"), E, F, 0, sd) || add_random(o, T("ffn_down.weight"), F, E, 0, sd))
                return -1;
            continue;
        }
        if (kind == 'M') {
            float *a = malloc((size_t)NH * sizeof(float));
            if (!a) return -1;
            for (int64_t h = 0; h < NH; h++) a[h] = -expf(0.3f * rnormal());
            if (add_rows(o, T("ssm_a"), SL_TYPE_F32, 2, 1, NH, 1, a) ||
                add_random(o, T("ssm_in.weight"), E, VD + C + NH, 0, sd) ||
                add_random(o, T("ssm_conv1d.weight"), m->ssm_conv, C, 0, 0.3f) ||
                add_random(o, T("ssm_conv1d.bias"), C, 0, 0, 0.1f) ||
                add_random(o, T("ssm_dt.bias"), NH, 0, -1, 0.5f) || add_random(o, T("ssm_d"), 1, NH, 1, 0.3f) ||
                add_random(o, T("ssm_norm.weight"), VD / NG, NG, 1, sd) ||
                add_random(o, T("ssm_out.weight"), VD, E, 0, sd))
                return -1;
        } else if (add_random(o, T("attn_q.weight"), E, QD, 0, sd) ||
                   add_random(o, T("attn_k.weight"), E, KD, 0, sd) || add_random(o, T("attn_v.weight"), E, KD, 0, sd) ||
                   add_random(o, T("attn_output.weight"), QD, E, 0, sd)) {
            return -1;
        }
        if (nemotron) continue;
        if (add_swiglu_ffn(o, l, moe, E, F, X, FX, FS, false, sd)) return -1;
#undef T
    }
    return 0;
}

/* gemma4: layer l is global when (l + 1) % global_every == 0 */
static bool gemma4_global(const mk_t *m, long l) { return (l + 1) % m->global_every == 0; }

/* Gemma 4's keys as the converter writes them (over the common ones):
 * head_count_kv per layer, key/value_length the global layers' head size
 * and the _swa ones the window layers', rope.dimension_count the global
 * head size (proportional RoPE: rope_freqs says which pairs turn),
 * rope.dimension_count_swa, rope.freq_base_swa 10000, the window pattern
 * (one bool per layer), shared_kv_layers, the per-layer embedding size and
 * final_logit_softcapping 30. */
static int set_gemma4_keys(gguf_writer_t *w, const char *A, const mk_t *m) {
    int bad = 0;
    char key[128];
    bool *pat = malloc((size_t)m->layers * sizeof *pat);
    uint32_t *kv = malloc((size_t)m->layers * sizeof *kv);
    if (!pat || !kv) {
        free(pat), free(kv);
        return -1;
    }
    for (long l = 0; l < m->layers; l++) {
        pat[l] = !gemma4_global(m, l);
        kv[l] = (uint32_t)(pat[l] ? m->kv_heads : m->global_kv_heads);
    }
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", A);
    bad |= gguf_writer_set_arr(w, key, GGUF_VT_BOOL, pat, (size_t)m->layers);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", A);
    bad |= gguf_writer_set_arr(w, key, GGUF_VT_UINT32, kv, (size_t)m->layers);
    free(pat), free(kv);
    bad |= set_key_u32(w, A, "attention.key_length", m->global_head_dim);
    bad |= set_key_u32(w, A, "attention.value_length", m->global_head_dim);
    bad |= set_key_u32(w, A, "attention.key_length_swa", m->head_dim);
    bad |= set_key_u32(w, A, "attention.value_length_swa", m->head_dim);
    bad |= set_key_u32(w, A, "rope.dimension_count", m->global_head_dim);
    bad |= set_key_u32(w, A, "rope.dimension_count_swa", m->head_dim);
    bad |= set_key_f32(w, A, "rope.freq_base", m->rope_base);
    bad |= set_key_f32(w, A, "rope.freq_base_swa", 10000.0);
    bad |= set_key_f32(w, A, "attention.layer_norm_rms_epsilon", m->eps);
    bad |= set_key_u32(w, A, "attention.shared_kv_layers", m->shared_kv);
    bad |= set_key_u32(w, A, "embedding_length_per_layer_input", m->ple);
    bad |= set_key_f32(w, A, "final_logit_softcapping", 30.0);
    return bad;
}

/* Gemma 4's tensors: rope_freqs (1 on the first quarter of the global
 * head's pairs, 1e30 — unturned — on the rest: partial_rotary_factor 0.25
 * as "proportional" RoPE), the per-layer embedding tables when --per-layer-
 * embd, and per layer the attention (no attn_k / attn_v / attn_k_norm on
 * the shared-KV layers, no attn_v on the global ones with --k-eq-v), q/k
 * norms, post norms, the FFN, the per-layer branch and layer_output_scale
 * (0.8 ± 0.1, so that it shows). */
static int add_gemma4_tensors(out_t *o, const mk_t *m) {
    const float sd = 0.02f;
    const int64_t E = m->embd, P = m->ple, F = m->ffn, NL = m->layers, GH = m->global_head_dim;
    {
        float *f = malloc(sizeof(float) * (size_t)(GH / 2));
        if (!f) return -1;
        for (int64_t i = 0; i < GH / 2; i++) f[i] = i < GH / 4 / 2 ? 1.0f : 1e30f;
        if (add_rows(o, "rope_freqs.weight", SL_TYPE_F32, 1, GH / 2, 0, 1, f)) return -1;
    }
    if (P && (add_random(o, "per_layer_token_embd.weight", P * NL, m->vocab, 0, sd) ||
              add_random(o, "per_layer_model_proj.weight", E, P * NL, 0, sd) ||
              add_random(o, "per_layer_proj_norm.weight", P, 0, 1, sd)))
        return -1;
    for (long l = 0; l < NL; l++) {
        const bool global = gemma4_global(m, l), has_kv = l < NL - m->shared_kv;
        const int64_t D = global ? GH : m->head_dim, QD = m->heads * D,
                      KD = (global ? m->global_kv_heads : m->kv_heads) * D;
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        if (add_random(o, T("attn_norm.weight"), E, 0, 1, sd) || add_random(o, T("attn_q.weight"), E, QD, 0, sd) ||
            (has_kv && add_random(o, T("attn_k.weight"), E, KD, 0, sd)) ||
            (has_kv && !(global && m->k_eq_v) && add_random(o, T("attn_v.weight"), E, KD, 0, sd)) ||
            add_random(o, T("attn_output.weight"), QD, E, 0, sd) ||
            add_random(o, T("attn_q_norm.weight"), D, 0, 1, sd) ||
            (has_kv && add_random(o, T("attn_k_norm.weight"), D, 0, 1, sd)) ||
            add_random(o, T("post_attention_norm.weight"), E, 0, 1, sd) ||
            add_random(o, T("ffn_norm.weight"), E, 0, 1, sd) || add_random(o, T("ffn_gate.weight"), E, F, 0, sd) ||
            add_random(o, T("ffn_up.weight"), E, F, 0, sd) || add_random(o, T("ffn_down.weight"), F, E, 0, sd) ||
            add_random(o, T("post_ffw_norm.weight"), E, 0, 1, sd) ||
            (P && (add_random(o, T("inp_gate.weight"), E, P, 0, sd) || add_random(o, T("proj.weight"), P, E, 0, sd) ||
                   add_random(o, T("post_norm.weight"), E, 0, 1, sd))) ||
            add_random(o, T("layer_output_scale.weight"), 1, 0, 0.8f, 0.1f))
            return -1;
        /* the 26B-A4B's experts beside the dense MLP: the router (normal × 1: decisive) and its
         * input scale, the fused gate_up experts, the down experts and their output scales, the
         * branches' norms */
        const long X = m->experts, FX = m->expert_ffn;
        if (X && (add_random3(o, T("ffn_gate_inp.weight"), E, X, 1, 0, 1.0f) ||
                  add_random(o, T("ffn_gate_inp.scale"), E, 0, 1, sd) ||
                  add_random3(o, T("ffn_gate_up_exps.weight"), E, 2 * FX, X, 0, sd) ||
                  add_random3(o, T("ffn_down_exps.weight"), FX, E, X, 0, sd) ||
                  add_random(o, T("ffn_down_exps.scale"), X, 0, 1, sd) ||
                  add_random(o, T("pre_ffw_norm_2.weight"), E, 0, 1, sd) ||
                  add_random(o, T("post_ffw_norm_1.weight"), E, 0, 1, sd) ||
                  add_random(o, T("post_ffw_norm_2.weight"), E, 0, 1, sd)))
            return -1;
#undef T
    }
    return 0;
}

static int parse(mk_t *m, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--preset")) {
            if (!v || strcmp(v, "qwen2.5-0.5b") != 0) {
                fprintf(stderr, "silica mkmodel: known presets: qwen2.5-0.5b\n");
                return -1;
            }
            m->arch = "qwen2", m->vocab = 151936, m->embd = 896, m->layers = 24, m->heads = 14, m->kv_heads = 2;
            m->head_dim = 64, m->ffn = 4864, m->ctx = 32768, m->tied = 1, m->rope_base = 1000000.0, m->eps = 1e-6;
            m->name = "Qwen2.5-0.5B-shaped random";
            i++;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *n = !strcmp(a, "--vocab")      ? &m->vocab
                  : !strcmp(a, "--embd")     ? &m->embd
                  : !strcmp(a, "--layers")   ? &m->layers
                  : !strcmp(a, "--heads")    ? &m->heads
                  : !strcmp(a, "--kv-heads") ? &m->kv_heads
                  : !strcmp(a, "--head-dim") ? &m->head_dim
                  : !strcmp(a, "--ffn")      ? &m->ffn
                  : !strcmp(a, "--ctx")      ? &m->ctx
                  : !strcmp(a, "--seed")     ? &m->seed
                  : !strcmp(a, "--rope-orig-ctx") ? &m->orig_ctx
                  : !strcmp(a, "--experts") ? &m->experts
                  : !strcmp(a, "--experts-used") ? &m->experts_used
                  : !strcmp(a, "--expert-ffn") ? &m->expert_ffn
                  : !strcmp(a, "--shared-ffn") ? &m->shared_ffn
                  : !strcmp(a, "--swa") ? &m->swa
                  : !strcmp(a, "--token-types") ? &m->token_types
                  : !strcmp(a, "--cls-out") ? &m->cls_out
                  : !strcmp(a, "--q-lora") ? &m->q_lora
                  : !strcmp(a, "--kv-lora") ? &m->kv_lora
                  : !strcmp(a, "--qk-nope") ? &m->qk_nope
                  : !strcmp(a, "--qk-rope") ? &m->qk_rope
                  : !strcmp(a, "--v-head") ? &m->v_head
                  : !strcmp(a, "--expert-groups") ? &m->expert_groups
                  : !strcmp(a, "--expert-groups-used") ? &m->expert_groups_used
                  : !strcmp(a, "--shared-experts") ? &m->shared_experts
                  : !strcmp(a, "--dense-lead") ? &m->dense_lead
                  : !strcmp(a, "--ssm-state") ? &m->ssm_state
                  : !strcmp(a, "--ssm-groups") ? &m->ssm_groups
                  : !strcmp(a, "--ssm-v-heads") ? &m->ssm_v_heads
                  : !strcmp(a, "--ssm-conv") ? &m->ssm_conv
                  : !strcmp(a, "--attn-every") ? &m->attn_every
                  : !strcmp(a, "--global-head-dim") ? &m->global_head_dim
                  : !strcmp(a, "--global-kv-heads") ? &m->global_kv_heads
                  : !strcmp(a, "--global-every") ? &m->global_every
                  : !strcmp(a, "--shared-kv") ? &m->shared_kv
                  : !strcmp(a, "--per-layer-embd") ? &m->ple
                  : (!strcmp(a, "-t") || !strcmp(a, "--threads")) ? &m->threads
                                                                   : NULL;
        const char **s = !strcmp(a, "--arch")           ? &m->arch
                         : !strcmp(a, "--out")          ? &m->out
                         : !strcmp(a, "--type")         ? &m->type
                         : !strcmp(a, "--tokenizer")    ? &m->tokenizer
                         : !strcmp(a, "--chat-template") ? &m->chat_template
                         : !strcmp(a, "--name")         ? &m->name
                         : !strcmp(a, "--rope-scaling") ? &m->scaling
                         : !strcmp(a, "--pooling")      ? &m->pooling
                         : !strcmp(a, "--gating")       ? &m->gating
                                                        : NULL;
        double *d = !strcmp(a, "--rope-base") ? &m->rope_base : !strcmp(a, "--rope-factor") ? &m->rope_factor : NULL;
        if (n) {
            if (!mcli_int(v, 0, 1L << 30, n)) goto badval;
            i++;
        } else if (s) {
            if (!v) goto badval;
            *s = v;
            i++;
        } else if (d) {
            if (!mcli_float(v, d) || *d <= 0) goto badval;
            i++;
        } else if (!strcmp(a, "--tied")) {
            m->tied = 1;
        } else if (!strcmp(a, "--untied")) {
            m->tied = 0;
        } else if (!strcmp(a, "--k-eq-v")) {
            m->k_eq_v = true;
        } else if (!strcmp(a, "--preset")) {
            i++;
        } else {
            fprintf(stderr, "silica mkmodel: unknown argument '%s'\n", a);
            usage();
            return -1;
        }
        continue;
    badval:
        fprintf(stderr, "silica mkmodel: bad or missing value for %s\n", a);
        return -1;
    }
    return 0;
}

int cmd_mkmodel(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(), 0;
    mk_t m = {.type = "f32", .vocab = 0, .embd = 64, .layers = 2, .heads = 4, .kv_heads = -1, .head_dim = 0,
              .ffn = 128, .ctx = -1, .seed = 42, .tied = -1, .rope_base = 0, .rope_factor = 1, .eps = 1e-6,
              .token_types = -1, .cls_out = -1, .shared_experts = -1, .dense_lead = -1, .shared_kv = -1, .ple = -1};
    if (parse(&m, argc, argv)) return 2;
    if (!m.arch || !m.out) {
        fprintf(stderr, "silica mkmodel: --arch and --out are required\n");
        usage();
        return 2;
    }
    const bool qwen2moe = !strcmp(m.arch, "qwen2moe"), glm4moe = !strcmp(m.arch, "glm4moe");
    /* Granite 4.0 H: Mamba-2 layers and attention layers (with --experts: H Tiny / Small) */
    const bool ghybrid = !strcmp(m.arch, "granitehybrid");
    /* Nemotron-H: Mamba-2, attention and squared-ReLU MLP layers */
    /* Nemotron 3 Nano (nemotron_h_moe): MoE layers in place of the MLP ones */
    const bool nemotron_moe = !strcmp(m.arch, "nemotron_h_moe");
    const bool nemotron = nemotron_moe || !strcmp(m.arch, "nemotron_h"), mamba2 = ghybrid || nemotron;
    const bool granitemoe = !strcmp(m.arch, "granitemoe") || (ghybrid && m.experts > 0),
               granite = granitemoe || ghybrid || !strcmp(m.arch, "granite");
    const bool olmo2 = !strcmp(m.arch, "olmo2"), ds2 = !strcmp(m.arch, "deepseek2"),
               oss = !strcmp(m.arch, "gpt-oss");
    /* Qwen3.5 / 3.6: Gated DeltaNet layers and gated attention (qwen35moe: with routed and shared experts) */
    /* Qwen3-Next: qwen35moe's layers with HF's grouped V heads, a fused ssm_ba and plain NEOX RoPE */
    const bool next = !strcmp(m.arch, "qwen3next");
    const bool qwen35moe = !strcmp(m.arch, "qwen35moe") || next, hybrid = qwen35moe || !strcmp(m.arch, "qwen35");
    /* llama with --experts: Mixtral */
    /* llama with --experts: Mixtral; gemma4 with --experts: the 26B-A4B */
    const bool moe = !strcmp(m.arch, "qwen3moe") || qwen2moe || glm4moe || granitemoe || ds2 || nemotron_moe ||
                     oss || qwen35moe || ((!strcmp(m.arch, "llama") || !strcmp(m.arch, "gemma4")) && m.experts > 0),
               glm4 = !strcmp(m.arch, "glm4");
    const bool chatglm = !strcmp(m.arch, "chatglm"), glm = glm4 || chatglm, phi3 = !strcmp(m.arch, "phi3");
    const bool gemma3 = !strcmp(m.arch, "gemma3"), gemma2 = !strcmp(m.arch, "gemma2");
    const bool gemma4 = !strcmp(m.arch, "gemma4");
    const bool gemma = gemma3 || gemma2 || gemma4 || !strcmp(m.arch, "gemma");
    const bool llama_rope =
        !strcmp(m.arch, "llama") || !strcmp(m.arch, "internlm2") || !strcmp(m.arch, "smollm3") || glm || granite ||
        !strcmp(m.arch, "ernie4_5");
    /* the encoders: bert, and nomic-bert (bert's embeddings and LayerNorms
     * with RoPE, fused QKV and a gated FFN) */
    const bool nomic = !strcmp(m.arch, "nomic-bert"), encoder = nomic || !strcmp(m.arch, "bert");
    if (!llama_rope && !moe && !phi3 && !gemma && !olmo2 && !encoder && !hybrid && !mamba2 && strcmp(m.arch, "qwen2") &&
        strcmp(m.arch, "qwen3")) {
        fprintf(stderr, "silica mkmodel: --arch must be llama, internlm2, qwen2, qwen3, qwen2moe, "
                        "qwen3moe, qwen35, qwen35moe, qwen3next, chatglm, glm4, "
                        "glm4moe, deepseek2, gpt-oss, phi3, gemma, gemma2, gemma3, gemma4, granite, "
                        "granitemoe, granitehybrid, nemotron_h, nemotron_h_moe, smollm3, olmo2, "
                        "ernie4_5, bert or nomic-bert\n");
        return 2;
    }
    uint32_t pooling = 0; /* llama.cpp's pooling_type: 1 mean, 2 cls, 3 last, 4 rank */
    if (encoder) {
        if (m.kv_heads >= 0 || m.head_dim || m.tied >= 0 || (!nomic && m.rope_base != 0) || m.scaling ||
            m.rope_factor != 1 || m.orig_ctx) {
            fprintf(stderr, nomic ? "silica mkmodel: --kv-heads, --head-dim, --tied, --untied and RoPE scaling are "
                                    "not for nomic-bert\n"
                                  : "silica mkmodel: --kv-heads, --head-dim, --tied, --untied and the --rope-* "
                                    "options are not for bert\n");
            return 2;
        }
        if (nomic)
            pooling = !m.pooling || !strcmp(m.pooling, "mean") ? 1
                      : !strcmp(m.pooling, "cls")              ? 2
                      : !strcmp(m.pooling, "last")             ? 3
                                                               : 0;
        else
            pooling = !m.pooling || !strcmp(m.pooling, "cls") ? 2
                      : !strcmp(m.pooling, "mean")            ? 1
                      : !strcmp(m.pooling, "rank")            ? 4
                                                              : 0;
        if (pooling == 0) {
            fprintf(stderr, nomic ? "silica mkmodel: --pooling for nomic-bert must be mean, cls or last\n"
                                  : "silica mkmodel: --pooling must be mean, cls or rank\n");
            return 2;
        }
        if (m.cls_out >= 0 && pooling != 4) {
            fprintf(stderr, nomic ? "silica mkmodel: --cls-out is not for nomic-bert (no classifier head)\n"
                                  : "silica mkmodel: --cls-out is for --pooling rank\n");
            return 2;
        }
        if (m.cls_out == 0 || m.token_types == 0) {
            fprintf(stderr, "silica mkmodel: --cls-out and --token-types must be at least 1\n");
            return 2;
        }
        if (m.cls_out < 0) m.cls_out = 1;         /* one relevance score, llama.cpp's default */
        if (m.token_types < 0) m.token_types = 2; /* BERT's sentences A and B; XLM-R has 1 */
        m.kv_heads = m.heads;                     /* every head its own K and V */
        m.tied = 1; /* no output matrix: token_embd gets its type in the mixes, as in llama-quantize */
        m.eps = 1e-12;
        if (nomic && m.rope_base == 0) m.rope_base = 1000.0; /* nomic-embed-text's rotary_emb_base */
    } else if (m.cls_out >= 0 || m.token_types >= 0) {
        fprintf(stderr, "silica mkmodel: --cls-out and --token-types are for bert and nomic-bert\n");
        return 2;
    } else if (m.pooling) { /* a decoder embedding model (Qwen3-Embedding: last) or reranker */
        pooling = !strcmp(m.pooling, "mean")   ? 1
                  : !strcmp(m.pooling, "cls")  ? 2
                  : !strcmp(m.pooling, "last") ? 3
                  : !strcmp(m.pooling, "rank") ? 4
                                               : 0;
        if (pooling == 0) {
            fprintf(stderr, "silica mkmodel: --pooling for a decoder must be mean, cls, last or rank\n");
            return 2;
        }
        if (pooling == 4 && !m.tokenizer) {
            fprintf(stderr, "silica mkmodel: --pooling rank for a decoder needs --tokenizer (its head is the "
                            "output rows of the tokens \"yes\" and \"no\")\n");
            return 2;
        }
    }
    const bool decoder_rank = !encoder && pooling == 4;
    if (ds2) {
        if (m.kv_heads >= 0 || m.head_dim || m.shared_ffn) {
            fprintf(stderr, "silica mkmodel: --kv-heads, --head-dim and --shared-ffn are not for deepseek2 (see "
                            "--kv-lora, --qk-nope, --qk-rope, --v-head, --shared-experts)\n");
            return 2;
        }
        m.kv_heads = 1; /* MLA: one latent K/V head shared by every query head */
        if (m.kv_lora == 0) m.kv_lora = 32;
        if (m.qk_nope == 0) m.qk_nope = 16;
        if (m.qk_rope == 0) m.qk_rope = 8;
        if (m.v_head == 0) m.v_head = 16;
        if (m.shared_experts < 0) m.shared_experts = 1;
        if (m.dense_lead < 0) m.dense_lead = 1;
        if (m.expert_groups == 0) m.expert_groups = 1;
        /* V3's 4 of 8 groups; llama.cpp wants fewer used than there are */
        if (m.expert_groups_used == 0) m.expert_groups_used = SL_MAX(1, m.expert_groups / 2);
        if (!m.gating) m.gating = "softmax";
        if (strcmp(m.gating, "softmax") && strcmp(m.gating, "sigmoid")) {
            fprintf(stderr, "silica mkmodel: --gating must be softmax or sigmoid\n");
            return 2;
        }
    } else if (m.q_lora || m.kv_lora || m.qk_nope || m.qk_rope || m.v_head || m.expert_groups ||
               m.expert_groups_used || m.shared_experts >= 0 || m.dense_lead >= 0 || m.gating) {
        fprintf(stderr, "silica mkmodel: --q-lora, --kv-lora, --qk-nope, --qk-rope, --v-head, --expert-groups, "
                        "--expert-groups-used, --shared-experts, --dense-lead and --gating are for deepseek2\n");
        return 2;
    }
    if (m.kv_heads < 0) m.kv_heads = 2;
    if (m.ctx < 0) m.ctx = encoder && !nomic ? 512 : 2048;
    if (m.rope_base == 0)
        m.rope_base = oss                                       ? 150000.0
                      : llama_rope || ds2 || (gemma && !gemma3 && !gemma4) ? 10000.0
                                                                : 1000000.0;
    if (oss && !m.scaling) { /* gpt-oss's YaRN: factor 32 over an original context of 4096 */
        m.scaling = "yarn";
        if (m.rope_factor == 1) m.rope_factor = 32;
        if (m.orig_ctx == 0) m.orig_ctx = 4096;
    }
    if (gemma && m.tied < 0) m.tied = 1; /* Gemma ties its output to the embeddings */
    if ((gemma2 || gemma3 || gemma4) && m.swa == 0) m.swa = 512;
    if (oss && m.swa == 0) m.swa = 128;
    if (!gemma2 && !gemma3 && !gemma4 && !olmo2 && !oss && m.swa) {
        fprintf(stderr,
                "silica mkmodel: --swa is for gemma2, gemma3, gemma4, olmo2 (OLMo 3) and gpt-oss\n");
        return 2;
    }
    if (gemma4) { /* Gemma 4's proportions: global heads twice as wide, every 5th layer global */
        if (m.head_dim == 0) m.head_dim = m.heads ? m.embd / m.heads : 0;
        if (m.global_head_dim == 0) m.global_head_dim = 2 * m.head_dim;
        if (m.global_kv_heads == 0) m.global_kv_heads = m.kv_heads;
        if (m.global_every == 0) m.global_every = 5;
        if (m.shared_kv < 0) m.shared_kv = 0;
        if (m.ple < 0) m.ple = 0;
        /* llama.cpp's sharing rule: layer n_kv - 1 global, n_kv - 2 a window layer */
        const long n_kv = m.layers - m.shared_kv;
        const bool ok_share = m.shared_kv == 0 ||
                              (n_kv >= 2 && n_kv % m.global_every == 0 && m.global_every >= 2);
        if (m.global_head_dim < 2 || (m.global_head_dim & 1) || m.heads % m.global_kv_heads || !ok_share ||
            m.shared_kv >= m.layers || pooling) {
            fprintf(stderr, "silica mkmodel: gemma4 needs an even --global-head-dim, heads a multiple of "
                            "--global-kv-heads, --shared-kv leaving a global layer last and a window layer "
                            "before it (layers - shared-kv a multiple of --global-every >= 2) and no --pooling\n");
            return 2;
        }
    } else if (m.global_head_dim || m.global_kv_heads || m.global_every || m.shared_kv >= 0 || m.ple >= 0 ||
               m.k_eq_v) {
        fprintf(stderr, "silica mkmodel: --global-head-dim, --global-kv-heads, --global-every, --shared-kv, "
                        "--per-layer-embd and --k-eq-v are for gemma4\n");
        return 2;
    }
    if (moe) {
        if (m.experts == 0) m.experts = 8;
        if (m.experts_used == 0) m.experts_used = SL_MIN(2, m.experts);
        if (m.expert_ffn == 0) m.expert_ffn = SL_MAX(1, m.ffn / 2);
        if (granitemoe || !strcmp(m.arch, "llama")) m.expert_ffn = m.ffn; /* their experts are ffn wide */
        if (m.experts > 1024 || m.experts_used > m.experts || m.experts_used > 64) {
            fprintf(stderr, "silica mkmodel: need experts <= 1024 and experts-used <= min(experts, 64)\n");
            return 2;
        }
    } else if (m.experts || m.experts_used || m.expert_ffn) {
        fprintf(stderr, "silica mkmodel: --experts, --experts-used and --expert-ffn are for the MoE architectures\n");
        return 2;
    }
    /* deepseek2's routing: the experts split evenly into groups, each group
     * scored by the sum of its best two (so at least two experts a group when
     * there are groups), and the used experts found in the chosen groups */
    if (ds2 && (m.qk_rope & 1 || m.shared_experts < 1 || m.dense_lead > m.layers ||
                m.experts % m.expert_groups != 0 || m.expert_groups_used > m.expert_groups ||
                (m.expert_groups > 1 && m.experts / m.expert_groups < 2) ||
                m.experts_used > m.expert_groups_used * (m.experts / m.expert_groups))) {
        fprintf(stderr, "silica mkmodel: deepseek2 needs an even --qk-rope, --shared-experts >= 1, --dense-lead <= "
                        "layers, --expert-groups dividing --experts (two or more experts a group when more than "
                        "one group), --expert-groups-used <= --expert-groups and --experts-used no more than the "
                        "used groups hold\n");
        return 2;
    }
    if ((qwen2moe || qwen35moe || (ghybrid && moe) || nemotron_moe) && m.shared_ffn == 0) m.shared_ffn = m.ffn;
    if (!qwen2moe && !qwen35moe && !(ghybrid && moe) && !nemotron_moe && m.shared_ffn) {
        fprintf(stderr, "silica mkmodel: --shared-ffn is for qwen2moe, qwen35moe and granitehybrid with --experts\n");
        return 2;
    }
    if (hybrid) {
        if (m.ssm_state == 0) m.ssm_state = 16;
        if (m.ssm_groups == 0) m.ssm_groups = 2;
        if (m.ssm_v_heads == 0) m.ssm_v_heads = 2 * m.ssm_groups;
        if (m.ssm_conv == 0) m.ssm_conv = 4;
        if (m.attn_every == 0) m.attn_every = 4;
        if (m.ssm_v_heads % m.ssm_groups || m.ssm_conv > 64 || m.ssm_state > 4096 || m.attn_every > m.layers ||
            pooling) {
            fprintf(stderr, "silica mkmodel: qwen35 needs --ssm-v-heads a multiple of --ssm-groups, --ssm-conv <= "
                            "64, --ssm-state <= 4096, --attn-every <= layers, and no --pooling\n");
            return 2;
        }
    } else if (mamba2) { /* Mamba-2: d_inner = 2 × embd in --ssm-v-heads heads sharing B, C in --ssm-groups */
        if (m.ssm_state == 0) m.ssm_state = 16;
        if (m.ssm_groups == 0) m.ssm_groups = 1;
        if (m.ssm_v_heads == 0) m.ssm_v_heads = 4;
        if (m.ssm_conv == 0) m.ssm_conv = 4;
        if (m.attn_every == 0) m.attn_every = 4;
        if (m.ssm_v_heads % m.ssm_groups || (2 * m.embd) % m.ssm_v_heads || m.ssm_conv > 64 ||
            m.ssm_state > 4096 || m.attn_every > m.layers || m.layers > 4096 || pooling) {
            fprintf(stderr, "silica mkmodel: granitehybrid and nemotron_h need --ssm-v-heads a multiple of --ssm-groups and "
                            "dividing 2 x embd, --ssm-conv <= 64, --ssm-state <= 4096, --attn-every <= layers "
                            "<= 4096, and no --pooling\n");
            return 2;
        }
    } else if (m.ssm_state || m.ssm_groups || m.ssm_v_heads || m.ssm_conv || m.attn_every) {
        fprintf(stderr, "silica mkmodel: the --ssm-* options and --attn-every are for qwen35, qwen35moe, "
                        "granitehybrid and nemotron_h\n");
        return 2;
    }
    if (m.head_dim == 0) m.head_dim = m.heads ? m.embd / m.heads : 0;
    if (m.tied < 0) m.tied = 0;
    if (m.embd < 1 || m.layers < 1 || m.heads < 1 || m.kv_heads < 1 || m.ffn < 1 || m.ctx < 1 ||
        m.heads % m.kv_heads || (encoder && m.embd % m.heads != 0) ||
        (!(encoder && !nomic) && !ds2 && (m.head_dim < 2 || (m.head_dim & 1)))) {
        fprintf(stderr, "silica mkmodel: inconsistent shape (need heads %% kv-heads == 0, even head-dim; bert, "
                        "nomic-bert: heads dividing embd)\n");
        return 2;
    }
    char err[SL_ERR_MAX];
    long tok_vocab = 0;
    char tj[4096], tc[4096];
    if (m.tokenizer) {
        snprintf(tj, sizeof tj, "%s/tokenizer.json", m.tokenizer);
        snprintf(tc, sizeof tc, "%s/tokenizer_config.json", m.tokenizer);
        tok_vocab = tok_hf_vocab_size(tj, err, sizeof err);
        if (tok_vocab < 0) {
            fprintf(stderr, "silica mkmodel: %s\n", err);
            return 1;
        }
        if (m.vocab == 0) m.vocab = tok_vocab;
        if (m.vocab < tok_vocab) {
            fprintf(stderr, "silica mkmodel: --vocab %ld is smaller than the tokenizer's %ld tokens\n", m.vocab,
                    tok_vocab);
            return 2;
        }
    }
    if (m.vocab == 0) m.vocab = 256;
    int32_t yes_no[2] = {-1, -1};
    /* the converter's convert_tokens_to_ids("yes") and ("no"): exact vocabulary entries */
    if (decoder_rank) {
        sl_tok_t *tok = tok_load_hf_dir(m.tokenizer, err, sizeof err);
        if (!tok) {
            fprintf(stderr, "silica mkmodel: tokenizer: %s\n", err);
            return 1;
        }
        yes_no[0] = tok_find(tok, "yes", 3);
        yes_no[1] = tok_find(tok, "no", 2);
        tok_free(tok);
        if (yes_no[0] < 0 || yes_no[1] < 0) {
            fprintf(stderr, "silica mkmodel: --pooling rank: \"%s\" is not a single token of the tokenizer\n",
                    yes_no[0] < 0 ? "yes" : "no");
            return 2;
        }
    }

    out_t o = {0};
    int rc = 1;
    o.w = gguf_writer_new();
    const int nt = m.threads > 0 ? (int)m.threads : mcli_n_cores();
    o.pool = nt > 1 ? sl_pool_new(nt) : NULL;
    if (!o.w || model_qplan_init(&o.plan, m.type, (int)m.layers, (int)(m.heads / m.kv_heads), m.tied != 0, err,
                                     sizeof err)) {
        fprintf(stderr, "silica mkmodel: %s\n", o.w ? err : "out of memory");
        goto done;
    }
    const char *A = m.arch;
    char name[128];
    snprintf(name, sizeof name, "silica-random-%s", A);
    int bad = 0;
    bad |= gguf_writer_set_str(o.w, "general.architecture", A);
    bad |= gguf_writer_set_str(o.w, "general.name", m.name ? m.name : name);
    bad |= gguf_writer_set_u32(o.w, "general.file_type", (uint32_t)o.plan.ftype);
    bad |= gguf_writer_set_u32(o.w, "general.quantization_version", 2);
    if (!encoder) bad |= set_key_u32(o.w, A, "vocab_size", m.vocab); /* the encoders' converter writes none */
    bad |= set_key_u32(o.w, A, "context_length", m.ctx);
    bad |= set_key_u32(o.w, A, "embedding_length", m.embd);
    bad |= set_key_u32(o.w, A, "block_count", m.layers);
    if (nemotron) { /* per layer, 0 but for the MLP layers */
        int32_t *ffs = malloc((size_t)m.layers * sizeof *ffs);
        char key[128];
        snprintf(key, sizeof key, "%s.feed_forward_length", A);
        for (long l = 0; ffs && l < m.layers; l++) ffs[l] = mamba2_kind(&m, l, true) == '-' ? (int32_t)m.ffn : 0;
        bad |= !ffs || gguf_writer_set_arr(o.w, key, GGUF_VT_INT32, ffs, (size_t)m.layers);
        free(ffs);
    } else {
        bad |= set_key_u32(o.w, A, "feed_forward_length", m.ffn);
    }
    bad |= set_key_u32(o.w, A, "attention.head_count", m.heads);
    if (encoder) {
        bad |= set_bert_keys(o.w, A, &m, pooling);
    } else if (ds2) {
        bad |= set_deepseek2_keys(o.w, A, &m);
        if (pooling) bad |= set_key_u32(o.w, A, "pooling_type", pooling);
    } else if (gemma4) { /* set_gemma4_keys */
    } else {
        if (mamba2) { /* per layer, 0 but for the attention layers */
            int32_t *kvs = malloc((size_t)m.layers * sizeof *kvs);
            char key[128];
            snprintf(key, sizeof key, "%s.attention.head_count_kv", A);
            for (long l = 0; kvs && l < m.layers; l++)
                kvs[l] = mamba2_kind(&m, l, nemotron) == '*' ? (int32_t)m.kv_heads : 0;
            bad |= !kvs || gguf_writer_set_arr(o.w, key, GGUF_VT_INT32, kvs, (size_t)m.layers);
            free(kvs);
        } else {
            bad |= set_key_u32(o.w, A, "attention.head_count_kv", m.kv_heads);
        }
        bad |= set_key_u32(o.w, A, "attention.key_length", m.head_dim);
        bad |= set_key_u32(o.w, A, "attention.value_length", m.head_dim);
        /* GLM rotates the first half of each head, Qwen3.5 a quarter (partial_rotary_factor 0.25) */
        bad |= set_key_u32(o.w, A, "rope.dimension_count",
                           glm || glm4moe ? m.head_dim / 2 / 2 * 2
                           : hybrid       ? SL_MAX(2, m.head_dim / 4 / 2 * 2)
                                          : m.head_dim);
        bad |= set_key_f32(o.w, A, "rope.freq_base", m.rope_base);
        bad |= set_key_f32(o.w, A, "attention.layer_norm_rms_epsilon", m.eps);
        if (pooling) bad |= set_key_u32(o.w, A, "pooling_type", pooling);
    }
    if (moe) {
        bad |= set_key_u32(o.w, A, "expert_count", m.experts);
        bad |= set_key_u32(o.w, A, "expert_used_count", m.experts_used);
        bad |= set_key_u32(o.w, A, "expert_feed_forward_length", m.expert_ffn);
        if (qwen2moe || qwen35moe || ghybrid || nemotron_moe)
            bad |= set_key_u32(o.w, A, "expert_shared_feed_forward_length", m.shared_ffn);
        if (nemotron_moe) { /* Nemotron 3 Nano's routing: sigmoid with a selection bias, renormalized, scaled */
            char key[128];
            snprintf(key, sizeof key, "%s.expert_weights_norm", A);
            bad |= gguf_writer_set_bool(o.w, key, true);
            bad |= set_key_f32(o.w, A, "expert_weights_scale", 2.5);
            bad |= set_key_u32(o.w, A, "expert_gating_func", 2);
        }
        if (glm4moe) { /* GLM-4.5-Air's routing: sigmoid, renormalized, one shared expert, layer 0 dense */
            char key[128];
            bad |= set_key_u32(o.w, A, "expert_shared_count", 1);
            bad |= set_key_u32(o.w, A, "leading_dense_block_count", 1);
            bad |= set_key_u32(o.w, A, "expert_gating_func", 2);
            bad |= set_key_f32(o.w, A, "expert_weights_scale", 1.0);
            snprintf(key, sizeof key, "%s.expert_weights_norm", A);
            bad |= gguf_writer_set_bool(o.w, key, true);
        }
    }
    if (gemma2 || gemma3 || gemma4 || oss || (olmo2 && m.swa))
        bad |= set_key_u32(o.w, A, "attention.sliding_window", m.swa);
    if (gemma4) bad |= set_gemma4_keys(o.w, A, &m);
    if (hybrid) { /* the converter's keys; MRoPE sections in Qwen3.5's proportions ([11, 11, 10] for its 32
                   * rotary pairs), summing to this head's pairs (ggml asserts they fit the head); not Qwen3-Next's */
        const int32_t P = (int32_t)SL_MAX(2, m.head_dim / 4 / 2 * 2) / 2;
        const int32_t sections[4] = {(P + 2) / 3, (P + 1) / 3, P / 3, 0};
        char key[128];
        snprintf(key, sizeof key, "%s.rope.dimension_sections", A);
        if (!next) bad |= gguf_writer_set_arr(o.w, key, GGUF_VT_INT32, sections, 4);
        bad |= set_key_u32(o.w, A, "ssm.conv_kernel", m.ssm_conv);
        bad |= set_key_u32(o.w, A, "ssm.state_size", m.ssm_state);
        bad |= set_key_u32(o.w, A, "ssm.group_count", m.ssm_groups);
        bad |= set_key_u32(o.w, A, "ssm.time_step_rank", m.ssm_v_heads);
        bad |= set_key_u32(o.w, A, "ssm.inner_size", m.ssm_v_heads * m.ssm_state);
        bad |= set_key_u32(o.w, A, "full_attention_interval", m.attn_every);
    }
    if (mamba2) { /* the converter's Mamba-2 keys; Granite 4.0 H and Nemotron-H have no RoPE */
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.finetuned", A);
        bad |= gguf_writer_set_bool(o.w, key, false);
        bad |= set_key_u32(o.w, A, "ssm.conv_kernel", m.ssm_conv);
        bad |= set_key_u32(o.w, A, "ssm.state_size", m.ssm_state);
        bad |= set_key_u32(o.w, A, "ssm.group_count", m.ssm_groups);
        bad |= set_key_u32(o.w, A, "ssm.time_step_rank", m.ssm_v_heads);
        bad |= set_key_u32(o.w, A, "ssm.inner_size", 2 * m.embd);
    }
    if (granite) { /* Granite 3.x's scales */
        bad |= set_key_f32(o.w, A, "embedding_scale", 12.0);
        bad |= set_key_f32(o.w, A, "residual_scale", 0.22);
        bad |= set_key_f32(o.w, A, "attention.scale", 1.0 / (double)m.head_dim);
        bad |= set_key_f32(o.w, A, "logit_scale", 8.0);
    }
    if (gemma2) {
        bad |= set_key_f32(o.w, A, "attn_logit_softcapping", 50.0);
        bad |= set_key_f32(o.w, A, "final_logit_softcapping", 30.0);
    }
    if (m.scaling) {
        char key[128];
        if (strcmp(m.scaling, "linear") && strcmp(m.scaling, "yarn")) {
            fprintf(stderr, "silica mkmodel: --rope-scaling must be linear or yarn\n");
            goto done;
        }
        snprintf(key, sizeof key, "%s.rope.scaling.type", A);
        bad |= gguf_writer_set_str(o.w, key, m.scaling);
        bad |= set_key_f32(o.w, A, "rope.scaling.factor", m.rope_factor);
        bad |= set_key_u32(o.w, A, "rope.scaling.original_context_length", m.orig_ctx ? m.orig_ctx : m.ctx);
        /* the converter's 0.1 × mscale_all_dim (V2's 0.707) */
        if (ds2 && !strcmp(m.scaling, "yarn"))
            bad |= set_key_f32(o.w, A, "rope.scaling.yarn_log_multiplier", 0.1 * 0.707);
    }
    if (bad) {
        fprintf(stderr, "silica mkmodel: out of memory\n");
        goto done;
    }
    if (m.tokenizer && tok_hf_to_gguf(o.w, tj, tc, err, sizeof err) != 0) {
        fprintf(stderr, "silica mkmodel: tokenizer: %s\n", err);
        goto done;
    }
    if (m.chat_template) { /* replaces the tokenizer's own template */
        size_t tlen = 0;
        char *tsrc = sl_read_file(m.chat_template, &tlen, err, sizeof err);
        if (!tsrc || gguf_writer_set_str(o.w, "tokenizer.chat_template", tsrc) != 0) {
            fprintf(stderr, "silica mkmodel: --chat-template: %s\n", tsrc ? "out of memory" : err);
            free(tsrc);
            goto done;
        }
        free(tsrc);
    }
    if (decoder_rank) {
        const char *labels[2] = {"yes", "no"}, *names[1] = {"rerank"};
        char key[128];
        snprintf(key, sizeof key, "%s.classifier.output_labels", A);
        if (gguf_writer_set_arr_str(o.w, key, labels, NULL, 2) ||
            gguf_writer_set_str(o.w, "tokenizer.chat_template.rerank", RERANK_TEMPLATE) ||
            gguf_writer_set_arr_str(o.w, "tokenizer.chat_templates", names, NULL, 1)) {
            fprintf(stderr, "silica mkmodel: out of memory\n");
            goto done;
        }
        o.cls_src = m.tied ? "token_embd.weight" : "output.weight";
        o.cls_ids[0] = yes_no[0], o.cls_ids[1] = yes_no[1];
    }

    rseed((uint64_t)m.seed);
    const float sd = 0.02f;
    const int64_t E = m.embd, QD = m.heads * m.head_dim, KD = m.kv_heads * m.head_dim, F = m.ffn;
    if (add_random(&o, "token_embd.weight", E, m.vocab, 0, sd)) goto oom;
    if (nomic     ? add_nomic_tensors(&o, &m)
        : encoder ? add_bert_tensors(&o, &m, pooling == 4)
             : add_random(&o, "output_norm.weight", E, 0, 1, sd) ||
                   (!m.tied && add_random(&o, "output.weight", E, m.vocab, 0, sd)) ||
                   (decoder_rank && add_cls_output(&o, E)) ||
                   (ds2 && add_deepseek2_tensors(&o, &m)))
        goto oom;
    if (hybrid && add_hybrid_tensors(&o, &m, qwen35moe, next)) goto oom;
    if (mamba2 && add_mamba2_tensors(&o, &m, moe, nemotron)) goto oom;
    if (gemma4 && add_gemma4_tensors(&o, &m)) goto oom;
    /* the decoders' blocks (the encoders', deepseek2's, qwen35's, granitehybrid's, nemotron_h's and gemma4's are
     * written above) */
    for (long l = 0; !encoder && !ds2 && !hybrid && !mamba2 && !gemma4 && l < m.layers; l++) {
        char n[64];
#define T(s) (snprintf(n, sizeof n, "blk.%ld.%s", l, s), n)
        /* glm4moe and gpt-oss name their FFN input norm post_attention_norm;
         * olmo2 has none before attention or the FFN, q/k norms over the
         * whole rows */
        if ((!olmo2 &&
             (add_random(&o, T("attn_norm.weight"), E, 0, 1, sd) ||
              add_random(&o, T(glm4moe || oss ? "post_attention_norm.weight" : "ffn_norm.weight"),
                         E, 0, 1, sd))) ||
            add_random(&o, T("attn_output.weight"), QD, E, 0, sd))
            goto oom;
        if (olmo2 && (add_random(&o, T("attn_q_norm.weight"), QD, 0, 1, sd) ||
                      add_random(&o, T("attn_k_norm.weight"), KD, 0, 1, sd)))
            goto oom;
        const bool lmoe = moe && !(glm4moe && l == 0);
        /* chatglm: one fused QKV matrix and bias, phi3 one without bias; the
         * others three (glm4 with biases, as GLM-4-0414's converter writes
         * them) */
        if ((chatglm || phi3) && add_random(&o, T("attn_qkv.weight"), E, QD + 2 * KD, 0, sd))
            goto oom;
        if (chatglm && add_random(&o, T("attn_qkv.bias"), QD + 2 * KD, 0, 0, sd)) goto oom;
        if (!chatglm && !phi3 &&
            (add_random(&o, T("attn_q.weight"), E, QD, 0, sd) ||
             add_random(&o, T("attn_k.weight"), E, KD, 0, sd) ||
             add_random(&o, T("attn_v.weight"), E, KD, 0, sd)))
            goto oom;
        if ((glm4 || glm4moe || oss) && (add_random(&o, T("attn_q.bias"), QD, 0, 0, sd) ||
                                         add_random(&o, T("attn_k.bias"), KD, 0, 0, sd) ||
                                         add_random(&o, T("attn_v.bias"), KD, 0, 0, sd)))
            goto oom;
        if ((glm4 || gemma2 || gemma3 || olmo2) &&
            (add_random(&o, T("post_attention_norm.weight"), E, 0, 1, sd) ||
             add_random(&o, T("post_ffw_norm.weight"), E, 0, 1, sd)))
            goto oom;
        /* GLM, Phi-3: gate and up rows in one ffn_up [E, 2F] */
        if ((glm || phi3) && (add_random(&o, T("ffn_up.weight"), E, 2 * F, 0, sd) ||
                              add_random(&o, T("ffn_down.weight"), F, E, 0, sd)))
            goto oom;
        if (!lmoe && !glm && !phi3 &&
            (add_random(&o, T("ffn_gate.weight"), E, F, 0, sd) ||
             add_random(&o, T("ffn_up.weight"), E, F, 0, sd) ||
             add_random(&o, T("ffn_down.weight"), F, E, 0, sd)))
            goto oom;
        /* the router scaled up so that the top-k choice is not a coin toss */
        const long X = m.experts, FX = m.expert_ffn;
        if (lmoe && glm4moe &&
            (add_random(&o, T("exp_probs_b.bias"), X, 0, 0, 0.1f) ||
             add_random(&o, T("ffn_gate_shexp.weight"), E, FX, 0, sd) ||
             add_random(&o, T("ffn_up_shexp.weight"), E, FX, 0, sd) ||
             add_random(&o, T("ffn_down_shexp.weight"), FX, E, 0, sd)))
            goto oom;
        if (lmoe && (add_random3(&o, T("ffn_gate_inp.weight"), E, X, 1, 0, 1.0f) ||
                     add_random3(&o, T("ffn_gate_exps.weight"), E, FX, X, 0, sd) ||
                     add_random3(&o, T("ffn_up_exps.weight"), E, FX, X, 0, sd) ||
                     add_random3(&o, T("ffn_down_exps.weight"), FX, E, X, 0, sd)))
            goto oom;
        /* gpt-oss: the output projection's bias, a sink logit per head
         * (normal × 1, so that the sinks take a real share), the router's
         * and the experts' biases (2-D: a row per expert) */
        if (oss && (add_random(&o, T("attn_output.bias"), E, 0, 0, sd) ||
                    add_random(&o, T("attn_sinks.weight"), m.heads, 0, 0, 1.0f) ||
                    add_random(&o, T("ffn_gate_inp.bias"), X, 0, 0, sd) ||
                    add_random(&o, T("ffn_gate_exps.bias"), FX, X, 0, sd) ||
                    add_random(&o, T("ffn_up_exps.bias"), FX, X, 0, sd) ||
                    add_random(&o, T("ffn_down_exps.bias"), E, X, 0, sd)))
            goto oom;
        const long FS = m.shared_ffn;
        if (qwen2moe && (add_random(&o, T("ffn_gate_inp_shexp.weight"), E, 0, 0, sd) ||
                         add_random(&o, T("ffn_gate_shexp.weight"), E, FS, 0, sd) ||
                         add_random(&o, T("ffn_up_shexp.weight"), E, FS, 0, sd) ||
                         add_random(&o, T("ffn_down_shexp.weight"), FS, E, 0, sd)))
            goto oom;
        if ((!strcmp(A, "qwen2") || qwen2moe) && (add_random(&o, T("attn_q.bias"), QD, 0, 0, sd) ||
                                                  add_random(&o, T("attn_k.bias"), KD, 0, 0, sd) ||
                                                  add_random(&o, T("attn_v.bias"), KD, 0, 0, sd)))
            goto oom;
        if ((!strcmp(A, "qwen3") || !strcmp(A, "qwen3moe") || glm4moe || gemma3) &&
            (add_random(&o, T("attn_q_norm.weight"), m.head_dim, 0, 1, sd) ||
             add_random(&o, T("attn_k_norm.weight"), m.head_dim, 0, 1, sd)))
            goto oom;
#undef T
    }
    if (gguf_writer_write(o.w, m.out, err, sizeof err) != 0) {
        fprintf(stderr, "silica mkmodel: %s\n", err);
        goto done;
    }
    fprintf(stderr,
            "mkmodel: wrote %s (%s, %ld layers, embd %ld, vocab %ld, %s, %.1f MiB of tensors)\n",
            m.out, A, m.layers, m.embd, m.vocab, o.plan.name, (double)o.bytes / 1048576.0);
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "silica mkmodel: out of memory or bad shape while making tensors\n");
done:
    for (size_t i = 0; i < o.n_bufs; i++) free(o.bufs[i]);
    free(o.bufs);
    free(o.cls_rows);
    gguf_writer_free(o.w);
    sl_pool_free(o.pool);
    return rc;
}
