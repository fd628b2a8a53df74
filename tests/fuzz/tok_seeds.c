/*
 * tok_seeds.c — writes small, valid GGUF tokenizers (through the writer)
 * into a directory, as the seed corpus of fuzz_tokenizer: a byte-level BPE
 * with merges (Qwen2's and Qwen3.5's pre-tokenizers), a Gemma 4 raw-UTF-8
 * BPE, a SentencePiece BPE, a WordPiece and a Unigram model with a
 * precompiled_charsmap (a one-key double array). Usage: tok_seeds DIR
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"

static int write_seed(const char *dir, const char *name, gguf_writer_t *w) {
    char path[1024], err[SL_ERR_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = gguf_writer_write(w, path, err, sizeof err);
    if (rc) fprintf(stderr, "tok_seeds: %s\n", err);
    gguf_writer_free(w);
    return rc;
}

static gguf_writer_t *vocab(const char *model, const char *const *toks, size_t n, const int32_t *types) {
    gguf_writer_t *w = gguf_writer_new();
    float scores[16];
    for (size_t i = 0; i < n && i < 16; i++) scores[i] = -(float)i;
    gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    return w;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tok_seeds DIR\n");
        return 2;
    }
    int rc = 0;
    { /* byte-level BPE */
        const char *toks[] = {"<|endoftext|>", "H", "e", "l", "o", "\xC4\xA0", "He", "ll", "Hell", "Hello", "\xC4\xA0w"};
        const int32_t types[] = {3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        gguf_writer_t *w = vocab("gpt2", toks, 11, types);
        const char *merges[] = {"H e", "l l", "He ll", "Hell o", "\xC4\xA0 w"};
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 5);
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        rc |= write_seed(argv[1], "bpe.gguf", w);
    }
    { /* the same for Qwen3.5's pre-tokenizer (marks in words) */
        const char *toks[] = {"<|endoftext|>", "H", "e", "l", "o", "\xC4\xA0", "He", "ll", "Hell", "Hello", "\xC4\xA0w",
                              "\xCC", "\x81"};
        const int32_t types[] = {3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        gguf_writer_t *w = vocab("gpt2", toks, 13, types);
        const char *merges[] = {"H e", "l l", "He ll", "Hell o", "\xC4\xA0 w", "\xCC \x81"};
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 6);
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen35");
        rc |= write_seed(argv[1], "bpe-qwen35.gguf", w);
    }
    { /* Gemma 4: rank BPE over raw UTF-8 with <0xNN> byte fallback */
        const char *toks[] = {"<pad>", "<eos>", "<bos>", "<unk>", "\xE2\x96\x81", "a", "b", "\n", "ab",
                              ("\xE2\x96\x81" "ab"), "\n\n", "<0x41>", "<0xE4>"};
        const int32_t types[] = {3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 6, 6};
        gguf_writer_t *w = vocab("gemma4", toks, 13, types);
        const char *merges[] = {"a b", "\xE2\x96\x81 ab", "\n \n"};
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 3);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
        rc |= write_seed(argv[1], "gemma4.gguf", w);
    }
    { /* SentencePiece BPE with byte fallback */
        const char *toks[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", ("\xE2\x96\x81" "ab"), "<0x41>"};
        const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 6};
        gguf_writer_t *w = vocab("llama", toks, 8, types);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
        rc |= write_seed(argv[1], "spm.gguf", w);
    }
    { /* WordPiece */
        const char *toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\xE2\x96\x81hello", ("\xE2\x96\x81" "caf"), "e", "\xE2\x96\x81,"};
        const int32_t types[] = {3, 3, 3, 3, 3, 1, 1, 1, 1};
        gguf_writer_t *w = vocab("bert", toks, 9, types);
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
        gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
        rc |= write_seed(argv[1], "wpm.gguf", w);
    }
    { /* Unigram with a charsmap mapping "\xEF\xBC\xA1" (full-width A) to "a" */
        const char *toks[] = {"<pad>", "</s>", "<unk>", "\xE2\x96\x81", ("\xE2\x96\x81" "a"), "b", "a"};
        const int32_t types[] = {3, 3, 2, 1, 1, 1, 1};
        gguf_writer_t *w = vocab("t5", toks, 7, types);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true);
        gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
        /* nodes: root block 256, then one block per byte of the key */
        static uint32_t u[256 * 5];
        const uint8_t key[3] = {0xEF, 0xBC, 0xA1};
        u[0] = 256u << 10;
        for (uint32_t i = 0; i < 3; i++) {
            const uint32_t from = 256u * (i + 1), to = 256u * (i + 2), at = from ^ key[i];
            u[at] = ((at ^ to) << 10) | (i == 2 ? 1u << 8 : 0) | key[i];
        }
        u[256 * 4] = 1u << 31; /* the key's value: replacement offset 0 */
        static uint8_t blob[4 + sizeof u + 2];
        const uint32_t bytes = sizeof u;
        memcpy(blob, &bytes, 4); /* little-endian hosts */
        memcpy(blob + 4, u, sizeof u);
        memcpy(blob + 4 + sizeof u, "a", 2);
        gguf_writer_set_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_VT_UINT8, blob, sizeof blob);
        rc |= write_seed(argv[1], "ugm.gguf", w);
    }
    return rc ? 1 : 0;
}
