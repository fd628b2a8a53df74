/*
 * cmd_quantize.c — `silica quantize [-t THREADS] [-v] IN.gguf OUT.gguf TYPE`:
 * converts a model's 2-D weights to TYPE (f16, q8_0, q4_K_M, ...; see
 * model/model_quant.h for the per-tensor rules), keeping norms and biases
 * F32 and copying every metadata key.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "model/model_quant.h"

int cmd_quantize(int argc, char **argv) {
    const char *pos[3];
    int n_pos = 0;
    long threads = 0;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            if (!mcli_int(i + 1 < argc ? argv[i + 1] : NULL, 1, 1024, &threads)) {
                fprintf(stderr, "silica quantize: bad thread count\n");
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            verbose = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fprintf(stdout, "usage: silica quantize [-t THREADS] [-v] IN.gguf OUT.gguf TYPE\n");
            return 0;
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            n_pos++;
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "usage: silica quantize [-t THREADS] [-v] IN.gguf OUT.gguf TYPE\n");
        return 2;
    }
    const int nt = threads > 0 ? (int)threads : mcli_n_cores();
    sl_pool_t *pool = nt > 1 ? sl_pool_new(nt) : NULL;
    char err[SL_ERR_MAX];
    int rc = model_quantize_file(pos[0], pos[1], pos[2], pool, verbose, err, sizeof err);
    sl_pool_free(pool);
    if (rc) {
        fprintf(stderr, "silica quantize: %s\n", err);
        return 1;
    }
    return 0;
}
