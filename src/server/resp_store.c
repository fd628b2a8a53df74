/*
 * resp_store.c — the in-memory LRU of stored responses (resp_store.h).
 * A doubly linked list, most recently used first; lookups walk it, which
 * at the bound of RESP_STORE_ENTRIES entries costs microseconds next to a
 * generation.
 */
#include "server/resp_store.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *prev, *next;
    int64_t account;
    char *id;
    char *text;
    size_t len;
} entry_t;

struct resp_store {
    entry_t *head, *tail;
    size_t n, bytes;
    size_t max_entries, max_bytes;
};

resp_store_t *resp_store_new(size_t max_entries, size_t max_bytes) {
    resp_store_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->max_entries = max_entries ? max_entries : 1;
    st->max_bytes = max_bytes;
    return st;
}

static void unlink_entry(resp_store_t *st, entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        st->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(resp_store_t *st, entry_t *e) {
    e->prev = NULL;
    e->next = st->head;
    if (st->head) st->head->prev = e;
    st->head = e;
    if (!st->tail) st->tail = e;
}

static void drop(resp_store_t *st, entry_t *e) {
    unlink_entry(st, e);
    st->n--;
    st->bytes -= e->len;
    free(e->id);
    free(e->text);
    free(e);
}

void resp_store_free(resp_store_t *st) {
    if (!st) return;
    while (st->head)
        drop(st, st->head);
    free(st);
}

static entry_t *find(const resp_store_t *st, int64_t account, const char *id) {
    for (entry_t *e = st->head; e; e = e->next)
        if (e->account == account && !strcmp(e->id, id)) return e;
    return NULL;
}

int resp_store_put(resp_store_t *st, int64_t account, const char *id, const char *text,
                   size_t len) {
    if (len > st->max_bytes) return -1;
    entry_t *old = find(st, account, id);
    if (old) drop(st, old);
    entry_t *e = calloc(1, sizeof *e);
    if (!e) return -1;
    e->id = strdup(id);
    e->text = malloc(len + 1);
    if (!e->id || !e->text) {
        free(e->id);
        free(e->text);
        free(e);
        return -1;
    }
    memcpy(e->text, text, len);
    e->text[len] = '\0';
    e->len = len;
    e->account = account;
    while (st->tail && (st->n + 1 > st->max_entries || st->bytes + len > st->max_bytes))
        drop(st, st->tail);
    push_front(st, e);
    st->n++;
    st->bytes += len;
    return 0;
}

char *resp_store_get(resp_store_t *st, int64_t account, const char *id) {
    entry_t *e = find(st, account, id);
    if (!e) return NULL;
    unlink_entry(st, e);
    push_front(st, e);
    char *c = malloc(e->len + 1);
    if (c) memcpy(c, e->text, e->len + 1);
    return c;
}

bool resp_store_delete(resp_store_t *st, int64_t account, const char *id) {
    entry_t *e = find(st, account, id);
    if (!e) return false;
    drop(st, e);
    return true;
}

size_t resp_store_count(const resp_store_t *st) {
    return st->n;
}
