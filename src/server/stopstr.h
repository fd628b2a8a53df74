/*
 * stopstr.h — stop strings over streamed text, never emitting any part of a
 * stop string even when it arrives split across tokens.
 *
 * Text is fed as the detokenizer produces it; stop_feed() appends to `out`
 * only what can no longer be part of a stop string: the longest suffix that
 * is a proper prefix of some stop string is held back until the next feed
 * decides it. When a stop string completes, the text before it is emitted,
 * the rest is dropped and the matcher reports the hit.
 */
#ifndef SILICA_SERVER_STOPSTR_H
#define SILICA_SERVER_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

typedef struct stop_matcher {
    char *const *stops; /* borrowed; empty strings are ignored */
    int n_stops;
    sl_buf_t hold;      /* text not yet emitted */
    bool hit;
    int hit_index;      /* which stop string completed (when hit) */
} stop_matcher_t;

void stop_init(stop_matcher_t *m, char *const *stops, int n_stops);
void stop_free(stop_matcher_t *m);
/* Returns 1 when a stop string completed (stop feeding), 0 otherwise, -1 on OOM. */
int stop_feed(stop_matcher_t *m, const char *text, size_t len, sl_buf_t *out);
/* End of generation without a hit: emits what was held back. */
int stop_flush(stop_matcher_t *m, sl_buf_t *out);

#endif
