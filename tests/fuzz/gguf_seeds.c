/*
 * gguf_seeds.c — writes a few small, valid GGUF files (through the writer)
 * into a directory, as the seed corpus of fuzz_gguf. Usage: gguf_seeds DIR
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"

static int write_seed(const char *dir, const char *name, int variant) {
    gguf_writer_t *w = gguf_writer_new();
    if (!w) return -1;
    gguf_writer_set_str(w, "general.architecture", variant ? "qwen3" : "llama");
    gguf_writer_set_u32(w, "llama.block_count", 2);
    if (variant == 1) gguf_writer_set_u32(w, "general.alignment", 16);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_u64(w, "general.size", 12345);
    const char *toks[4] = {"<s>", "a", "bc", "\xe2\x96\x81x"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 4);
    float scores[4] = {0, -1, -2, -3};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, 4);
    int32_t types[4] = {3, 1, 1, 1};
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, 4);
    double d = 0.5;
    gguf_writer_set_val(w, "x.f64", GGUF_VT_FLOAT64, &d);
    float t0[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t q8[34] = {0x00, 0x3c, 1, 2, 3};
    gguf_writer_add_tensor(w, "token_embd.weight", SL_TYPE_F32, 2, (int64_t[]){4, 2}, t0);
    if (variant != 2)
        gguf_writer_add_tensor(w, "blk.0.attn_q.weight", SL_TYPE_Q8_0, 1, (int64_t[]){32}, q8);
    gguf_writer_add_tensor(w, "output_norm.weight", SL_TYPE_F16, 1, (int64_t[]){3}, t0);
    char path[1024], err[SL_ERR_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = gguf_writer_write(w, path, err, sizeof err);
    if (rc) fprintf(stderr, "gguf_seeds: %s\n", err);
    gguf_writer_free(w);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_seeds DIR\n");
        return 2;
    }
    int rc = write_seed(argv[1], "seed0.gguf", 0) | write_seed(argv[1], "seed1.gguf", 1) |
             write_seed(argv[1], "seed2.gguf", 2);
    return rc ? 1 : 0;
}
