/*
 * gram_cache.c — the process-wide cache of compiled grammar indexes, keyed
 * by (vocabulary, source kind, source text). A per-request JSON schema is
 * compiled and indexed once; later requests with the same schema text share
 * the index (and its lazily built caches). Entries are reference counted:
 * an entry in use is never freed; least recently used idle entries are
 * dropped beyond the limit.
 *
 * Building happens outside the cache lock (it can take tens of ms); two
 * threads missing on the same key may both build, the first insert wins.
 */
#include "grammar/gram_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct centry {
    uint64_t vocab_serial;
    const gram_vocab_t *v;
    int kind;
    char *text;
    size_t len;
    uint64_t hash;
    gram_t *g;
    gram_index_t *ix;
    long refs;
    uint64_t last_use;
    bool listed; /* false once evicted: freed on the last release */
    struct centry *next;
} centry_t;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static centry_t *cache_head;  /* listed entries */
static centry_t *retired;     /* evicted while in use */
static size_t cache_n, cache_limit = 64;
static uint64_t cache_clock;

static uint64_t text_hash(int kind, const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void entry_free(centry_t *e) {
    gram_index_free(e->ix);
    gram_free(e->g);
    free(e->text);
    free(e);
}

/* Drops idle entries beyond the limit, least recently used first. */
static void evict_locked(size_t limit) {
    while (cache_n > limit) {
        centry_t **victim = NULL;
        for (centry_t **p = &cache_head; *p; p = &(*p)->next)
            if ((*p)->refs == 0 && (!victim || (*p)->last_use < (*victim)->last_use)) victim = p;
        if (!victim) return; /* everything in use */
        centry_t *e = *victim;
        *victim = e->next;
        cache_n--;
        entry_free(e);
    }
}

static gram_t *compile(int kind, const char *text, size_t len, char *err, size_t errlen) {
    switch (kind) {
    case GRAM_SRC_JSON_ANY: return gram_json_any(false, err, errlen);
    case GRAM_SRC_JSON_OBJECT: return gram_json_any(true, err, errlen);
    default: break;
    }
    char *z = sl_strndup(text, len);
    if (!z) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    gram_t *g = NULL;
    if (kind == GRAM_SRC_GBNF) {
        g = gram_from_gbnf(z, err, errlen);
    } else if (kind == GRAM_SRC_REGEX) {
        g = gram_from_regex(z, err, errlen);
    } else if (kind == GRAM_SRC_JSON_SCHEMA) {
        json_error_t je;
        json_t *s = json_loadb(text, len, 0, &je);
        if (!s) sl_err(err, errlen, "json schema: %s", je.text);
        else g = gram_from_json_schema(s, err, errlen);
        json_decref(s);
    } else {
        sl_err(err, errlen, "grammar cache: unknown source kind %d", kind);
    }
    free(z);
    return g;
}

char *gram_source_to_gbnf(int kind, const char *text, size_t len, char *err, size_t errlen) {
    if (kind == GRAM_SRC_JSON_ANY || kind == GRAM_SRC_JSON_OBJECT)
        return gram_json_any_to_gbnf(kind == GRAM_SRC_JSON_OBJECT, err, errlen);
    if (kind != GRAM_SRC_GBNF && kind != GRAM_SRC_REGEX && kind != GRAM_SRC_JSON_SCHEMA) {
        sl_err(err, errlen, "grammar: unknown source kind %d", kind);
        return NULL;
    }
    if (kind == GRAM_SRC_JSON_SCHEMA) {
        json_error_t je;
        json_t *s = json_loadb(text ? text : "", len, 0, &je);
        if (!s) {
            sl_err(err, errlen, "json schema: %s", je.text);
            return NULL;
        }
        char *g = gram_json_schema_to_gbnf(s, err, errlen);
        json_decref(s);
        return g;
    }
    char *z = sl_strndup(text ? text : "", len);
    if (!z) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (kind == GRAM_SRC_GBNF) return z;
    char *g = gram_regex_to_gbnf(z, err, errlen);
    free(z);
    return g;
}

gram_index_t *gram_index_cached(const gram_vocab_t *v, int kind, const char *text, size_t len,
                                char *err, size_t errlen) {
    if (kind == GRAM_SRC_JSON_ANY || kind == GRAM_SRC_JSON_OBJECT || !text) len = 0;
    if (len && !text) return NULL;
    uint64_t vs = gram_vocab_serial(v), h = text_hash(kind, text ? text : "", len);
    pthread_mutex_lock(&cache_mu);
    for (centry_t *e = cache_head; e; e = e->next)
        if (e->vocab_serial == vs && e->kind == kind && e->hash == h && e->len == len &&
            (len == 0 || memcmp(e->text, text, len) == 0)) {
            e->refs++;
            e->last_use = ++cache_clock;
            pthread_mutex_unlock(&cache_mu);
            return e->ix;
        }
    pthread_mutex_unlock(&cache_mu);

    centry_t *n = calloc(1, sizeof *n);
    if (!n || !(n->text = malloc(len + 1))) {
        free(n);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (len) memcpy(n->text, text, len);
    n->text[len] = 0;
    n->len = len;
    n->kind = kind;
    n->hash = h;
    n->v = v;
    n->vocab_serial = vs;
    n->g = compile(kind, text, len, err, errlen);
    if (n->g) n->ix = gram_index_new(n->g, v, err, errlen);
    if (!n->ix) {
        entry_free(n);
        return NULL;
    }
    pthread_mutex_lock(&cache_mu);
    for (centry_t *e = cache_head; e; e = e->next) /* lost a race: use the first */
        if (e->vocab_serial == vs && e->kind == kind && e->hash == h && e->len == len &&
            (len == 0 || memcmp(e->text, n->text, len) == 0)) {
            e->refs++;
            e->last_use = ++cache_clock;
            pthread_mutex_unlock(&cache_mu);
            entry_free(n);
            return e->ix;
        }
    n->refs = 1;
    n->listed = true;
    n->last_use = ++cache_clock;
    n->next = cache_head;
    cache_head = n;
    cache_n++;
    evict_locked(cache_limit);
    pthread_mutex_unlock(&cache_mu);
    return n->ix;
}

void gram_index_release(gram_index_t *ix) {
    if (!ix) return;
    pthread_mutex_lock(&cache_mu);
    for (centry_t *e = cache_head; e; e = e->next)
        if (e->ix == ix) {
            if (e->refs > 0) e->refs--;
            evict_locked(cache_limit);
            pthread_mutex_unlock(&cache_mu);
            return;
        }
    for (centry_t **p = &retired; *p; p = &(*p)->next)
        if ((*p)->ix == ix) {
            centry_t *e = *p;
            if (--e->refs <= 0) {
                *p = e->next;
                entry_free(e);
            }
            break;
        }
    pthread_mutex_unlock(&cache_mu);
}

int gram_index_retain(gram_index_t *ix) {
    if (!ix) return -1;
    pthread_mutex_lock(&cache_mu);
    for (centry_t *e = cache_head; e; e = e->next)
        if (e->ix == ix) {
            e->refs++;
            pthread_mutex_unlock(&cache_mu);
            return 0;
        }
    for (centry_t *e = retired; e; e = e->next)
        if (e->ix == ix) {
            e->refs++;
            pthread_mutex_unlock(&cache_mu);
            return 0;
        }
    pthread_mutex_unlock(&cache_mu);
    return -1;
}

void gram_cache_set_limit(size_t max_entries) {
    pthread_mutex_lock(&cache_mu);
    cache_limit = max_entries;
    evict_locked(cache_limit);
    pthread_mutex_unlock(&cache_mu);
}

size_t gram_cache_size(void) {
    pthread_mutex_lock(&cache_mu);
    size_t n = cache_n;
    pthread_mutex_unlock(&cache_mu);
    return n;
}

/* Called by gram_vocab_free: entries of that vocabulary go (entries still
 * in use are retired and freed on their last release — the caller must not
 * free a vocabulary under live matchers, but this keeps the cache sound). */
void gram_cache_forget_vocab(uint64_t serial) {
    pthread_mutex_lock(&cache_mu);
    for (centry_t **p = &cache_head; *p;) {
        centry_t *e = *p;
        if (e->vocab_serial != serial) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        cache_n--;
        if (e->refs == 0) {
            entry_free(e);
        } else {
            e->listed = false;
            e->next = retired;
            retired = e;
        }
    }
    pthread_mutex_unlock(&cache_mu);
}
