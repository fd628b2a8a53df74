/* deps: base gguf kernels model */
/*
 * test_conformance.c — the forward pass against reference outputs of an
 * independent, widely used inference engine, on the tiny random-weight
 * models of the shared fixtures (see fixtures/README.md).
 *
 * For each line of CASES.tsv: feed the reference token ids, compare the last
 * position's logits within a tolerance of the largest |logit| (1e-3 for F16
 * weights, 2e-2 for Q8_0), then decode 16 tokens greedily and compare them
 * with the reference (all 16 for F16 models, the first for Q8_0).
 *
 * Fixtures are found through $SILICA_FIXTURES or ../shared/fixtures relative
 * to the repository root (the working directory of `make unit`); without
 * them the test says so and passes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/base.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test.h"

#define MAX_IDS 4096

static int parse_ids(char *s, int32_t *out, int max) {
    int n = 0;
    char *end;
    while (*s && n < max) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static float *read_logits_gz(const char *path, int *n_out) {
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    size_t cap = 1 << 16, n = 0;
    float *v = malloc(cap * sizeof(float));
    char line[128];
    while (v && gzgets(g, line, sizeof line)) {
        if (n == cap) {
            cap *= 2;
            float *nv = realloc(v, cap * sizeof(float));
            if (!nv) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
        }
        if (line[0] == '\n' || line[0] == '\0') continue;
        v[n++] = strtof(line, NULL);
    }
    gzclose(g);
    *n_out = (int)n;
    return v;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static bool model_is_q8(const sl_model_t *m) {
    const gguf_tensor_t *t = gguf_find_tensor(model_gguf(m), "blk.0.attn_q.weight");
    return t && t->type == SL_TYPE_Q8_0;
}

/* The model of the previous case, kept while consecutive cases share it. */
static sl_model_t *cur_model;
static char cur_path[1024];

static void run_case(const char *dir, char **col, sl_pool_t *pool) {
    char path[1024], err[SL_ERR_MAX] = "";
    snprintf(path, sizeof path, "%s/%s", dir, col[0]);
    if (!cur_model || strcmp(path, cur_path) != 0) {
        model_free(cur_model);
        cur_model = model_load(path, err, sizeof err);
        snprintf(cur_path, sizeof cur_path, "%s", path);
    }
    sl_model_t *m = cur_model;
    CHECK_MSG(m != NULL, "%s", err);
    if (!m) return;
    const int V = model_hparams(m)->n_vocab;
    static int32_t ids[MAX_IDS], want_gen[64];
    int n = parse_ids(col[2], ids, MAX_IDS);
    int n_gen = parse_ids(col[4], want_gen, 64);
    CHECK(n > 0 && n_gen == 16);

    snprintf(path, sizeof path, "%s/%s", dir, col[3]);
    int n_ref = 0;
    float *ref = read_logits_gz(path, &n_ref);
    CHECK_MSG(ref && n_ref == V, "%s: %d reference logits, vocabulary %d", path, n_ref, V);

    const bool q8 = model_is_q8(m);
    const double tol = q8 ? 2e-2 : 1e-3;
    sl_kv_t *kv = model_kv_new(m, n + n_gen + 1, SL_TYPE_F32, err, sizeof err);
    float *logits = malloc(sizeof(float) * (size_t)V);
    CHECK(kv && logits);
    if (ref && n_ref == V && kv && logits) {
        CHECK_MSG(model_forward(m, pool, kv, ids, n, logits, false, err, sizeof err) == 0, "%s", err);
        double md = 0, mx = 0;
        for (int i = 0; i < V; i++) {
            md = fmax(md, fabs((double)logits[i] - ref[i]));
            mx = fmax(mx, fabs((double)ref[i]));
        }
        CHECK_MSG(md <= tol * mx, "%s %s: logits differ by %.3g, allowed %.3g (max |logit| %.3g)", col[0],
                  col[1], md, tol * mx, mx);

        int32_t got[16];
        for (int i = 0; i < n_gen; i++) {
            got[i] = argmax(logits, V);
            if (i + 1 < n_gen &&
                model_forward(m, pool, kv, &got[i], 1, logits, false, err, sizeof err) != 0) {
                CHECK_MSG(false, "%s", err);
                break;
            }
        }
        const int n_check = q8 ? 1 : n_gen;
        int same = 0;
        while (same < n_check && got[same] == want_gen[same]) same++;
        CHECK_MSG(same == n_check, "%s %s: greedy token %d is %d, reference %d", col[0], col[1], same,
                  got[same], want_gen[same]);
        fprintf(stderr, "     %-22s %-7s logits max diff %.2e (%.1e of max), greedy %d/%d\n", col[0], col[1], md,
                md / mx, same, n_check);
    }
    free(logits);
    free(ref);
    model_kv_free(kv);
}

int main(void) {
    sl_kernels_init();
    const char *dir = getenv("SILICA_FIXTURES");
    if (!dir || !*dir) dir = "../shared/fixtures";
    char path[1024];
    snprintf(path, sizeof path, "%s/CASES.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("conformance: skipped (no fixtures)\n");
        fprintf(stderr, "conformance: skipped (no fixtures)\n");
        return 0;
    }
    sl_pool_t *pool = sl_pool_new(2);
    char line[8192];
    int n_cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        char *col[5] = {0};
        int nc = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, "\t", &save); tok && nc < 5; tok = strtok_r(NULL, "\t", &save))
            col[nc++] = tok;
        CHECK_MSG(nc == 5, "CASES.tsv line with %d columns", nc);
        if (nc != 5) continue;
        run_case(dir, col, pool);
        n_cases++;
    }
    fclose(f);
    model_free(cur_model);
    sl_pool_free(pool);
    CHECK(n_cases > 0);
    fprintf(stderr, "conformance: %d cases\n", n_cases);
    return test_summary();
}
