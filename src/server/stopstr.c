/*
 * stopstr.c — see stopstr.h. Stop strings are at most a few dozen bytes and
 * at most 4, so plain scans of the held text are cheaper than automata.
 */
#include "server/stopstr.h"

#include <string.h>

void stop_init(stop_matcher_t *m, char *const *stops, int n_stops) {
    memset(m, 0, sizeof *m);
    m->stops = stops;
    m->n_stops = n_stops;
}

void stop_free(stop_matcher_t *m) {
    sl_buf_free(&m->hold);
}

int stop_feed(stop_matcher_t *m, const char *text, size_t len, sl_buf_t *out) {
    if (m->hit) return 1;
    if (m->n_stops == 0) return sl_buf_append(out, text, len);
    if (sl_buf_append(&m->hold, text, len) != 0) return -1;
    const char *h = m->hold.data;
    size_t hl = m->hold.len;
    /* earliest complete stop string */
    size_t best = hl;
    int which = -1;
    for (int i = 0; i < m->n_stops; i++) {
        size_t sl = strlen(m->stops[i]);
        if (sl == 0 || sl > hl) continue;
        const char *p = memmem(h, hl, m->stops[i], sl);
        if (p && (size_t)(p - h) < best) {
            best = (size_t)(p - h);
            which = i;
        }
    }
    if (best < hl) {
        m->hit = true;
        m->hit_index = which;
        int rc = sl_buf_append(out, h, best);
        sl_buf_clear(&m->hold);
        return rc == 0 ? 1 : -1;
    }
    /* longest suffix of the held text that is a proper prefix of a stop */
    size_t keep = 0;
    for (int i = 0; i < m->n_stops; i++) {
        size_t sl = strlen(m->stops[i]);
        for (size_t k = SL_MIN(sl - (sl > 0), hl); k > keep; k--) {
            if (memcmp(h + hl - k, m->stops[i], k) == 0) {
                keep = k;
                break;
            }
        }
    }
    if (sl_buf_append(out, h, hl - keep) != 0) return -1;
    memmove(m->hold.data, h + hl - keep, keep);
    m->hold.len = keep;
    m->hold.data[keep] = '\0';
    return 0;
}

int stop_flush(stop_matcher_t *m, sl_buf_t *out) {
    if (m->hit || m->hold.len == 0) return 0;
    int rc = sl_buf_append(out, m->hold.data, m->hold.len);
    sl_buf_clear(&m->hold);
    return rc;
}
