/*
 * cmd_logits.c — `silica logits --model M.gguf [--all] [-t N] [--kv-type
 * f32|f16] [--prompt TEXT] ID...`: feeds the ids (one prefill) and prints the
 * last position's logits, or every position's with --all, one float per line
 * ("%.6g"), n_vocab lines per position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/model_cli.h"

static void usage(void) {
    fprintf(stderr, "usage: silica logits --model M.gguf [--all] [-t THREADS] [--kv-type f32|f16] "
                    "[--prompt TEXT] ID...\n");
}

int cmd_logits(int argc, char **argv) {
    mcli_opts_t o = {.kv_type = SL_TYPE_F32};
    bool all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) {
            all = true;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            mcli_free(&o);
            return 0;
        }
        int r = mcli_parse_common(&o, argc, argv, &i, "logits");
        if (r < 0) goto bad;
        if (r == 0) {
            fprintf(stderr, "silica logits: unknown argument '%s'\n", argv[i]);
            usage();
            goto bad;
        }
    }
    sl_model_t *m;
    sl_pool_t *pool;
    if (mcli_setup(&o, &m, &pool, "logits")) goto bad;
    if (o.n_ids == 0) {
        fprintf(stderr, "silica logits: no token ids (give IDs or --prompt)\n");
        model_free(m);
        sl_pool_free(pool);
        goto bad;
    }
    int rc = 1;
    char err[SL_ERR_MAX];
    const size_t V = (size_t)model_hparams(m)->n_vocab;
    const size_t n_out = all ? o.n_ids : 1;
    float *logits = malloc(sizeof(float) * V * n_out);
    model_set_ctx(m, (int)o.n_ids);
    sl_kv_t *kv = model_kv_new(m, (int)o.n_ids, o.kv_type, err, sizeof err);
    if (!logits || !kv) {
        fprintf(stderr, "silica logits: %s\n", kv ? "out of memory" : err);
    } else if (model_forward(m, pool, kv, o.ids, (int)o.n_ids, logits, all, err, sizeof err) != 0) {
        fprintf(stderr, "silica logits: %s\n", err);
    } else {
        for (size_t i = 0; i < V * n_out; i++) printf("%.6g\n", (double)logits[i]);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    free(logits);
    model_kv_free(kv);
    sl_pool_free(pool);
    model_free(m);
    mcli_free(&o);
    return rc;
bad:
    mcli_free(&o);
    return 2;
}
