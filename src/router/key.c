/*
 * key.c — the affinity key of a request, and rendezvous hashing.
 *
 * A node's prefix cache holds the KV blocks of prompts it computed; a
 * request reuses them only on that node. So requests that share the
 * leading part of their prompt should land on the same node, and requests
 * that share nothing should spread. The key is:
 *
 *  - the client's `prompt_cache_key` (OpenAI's parameter for exactly this)
 *    with the model, when the body has one (a non-empty string);
 *  - otherwise the model and the leading bytes of the prompt, at most
 *    `budget` of them: the tools, the system (developer, instructions)
 *    messages and the first other message. Stopping after the first
 *    non-system message keeps a multi-turn conversation on one node (every
 *    turn starts the same way); the budget makes a long shared system
 *    prompt the whole key (those requests share its cache), while a short
 *    one is joined by the first user message (nothing worth sharing: they
 *    spread).
 *
 * Message text is normalised (role, then the text of string content or of
 * text parts), so the same conversation through /v1/chat/completions,
 * /v1/responses or /v1/messages gets the same key: all three render to the
 * same chat prompt on the node. Tools stay in each API's own JSON shape.
 *
 * Rendezvous (highest random weight) hashing: each node's weight for a key
 * is a hash of (key, node); the key goes to the node of highest weight
 * among the healthy ones. Removing a node moves only the keys it held
 * (their next-highest node takes them); adding one takes from each node
 * only the keys it now outweighs, about 1/n of them.
 */
#include "router/router.h"

#include <jansson.h>
#include <string.h>

/* ---- hashing ---- */

uint64_t rt_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return sl_mix64(h ^ (uint64_t)n);
}

uint64_t rt_weight(uint64_t key_hash, uint64_t node_hash) {
    return sl_mix64(key_hash ^ sl_mix64(node_hash + 0x9e3779b97f4a7c15ull));
}

void rt_rendezvous_order(uint64_t key_hash, const uint64_t *node_hash, int n, int *order) {
    uint64_t w[RT_MAX_BACKENDS];
    if (n > RT_MAX_BACKENDS) n = RT_MAX_BACKENDS;
    for (int i = 0; i < n; i++) {
        w[i] = rt_weight(key_hash, node_hash[i]);
        order[i] = i;
    }
    for (int i = 1; i < n; i++) { /* insertion sort: n is small */
        const int o = order[i];
        int j = i;
        while (j > 0 && (w[order[j - 1]] < w[o] || (w[order[j - 1]] == w[o] && order[j - 1] > o))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = o;
    }
}

/* ---- key building ---- */

/* The key under construction: prompt bytes count against `left`. */
typedef struct {
    sl_buf_t *b;
    size_t left;
    bool oom;
} kbuf_t;

/* Appends up to the budget; false once it is spent (or out of memory). */
static bool put(kbuf_t *k, const char *s, size_t n) {
    if (k->oom || k->left == 0) return false;
    if (n > k->left) n = k->left;
    if (sl_buf_append(k->b, s, n) != 0) {
        k->oom = true;
        return false;
    }
    k->left -= n;
    return k->left > 0;
}

static bool put_json(kbuf_t *k, const json_t *v) {
    if (json_is_string(v)) return put(k, json_string_value(v), json_string_length(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!s) {
        k->oom = true;
        return false;
    }
    const bool more = put(k, s, strlen(s));
    free(s);
    return more;
}

/* Content as text: a string, or the text of text parts (chat "text",
 * Responses "input_text"/"output_text", Anthropic "text"); other parts
 * (images, files, tool results) as their JSON. */
static bool put_content(kbuf_t *k, const json_t *c) {
    if (!json_is_array(c)) return put_json(k, c);
    size_t i;
    const json_t *part;
    json_array_foreach(c, i, part) {
        const json_t *text = json_object_get(part, "text");
        const bool more = json_is_string(text) ? put_json(k, text) : put_json(k, part);
        if (!more) return false;
    }
    return true;
}

static bool is_system_role(const char *role) {
    return role && (!strcmp(role, "system") || !strcmp(role, "developer"));
}

/* One message: role, a separator, its content (or, for an item without
 * content such as a Responses function call, its JSON), an end mark. */
static bool put_message(kbuf_t *k, const json_t *m) {
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    if (json_is_string(role) && !put(k, json_string_value(role), json_string_length(role)))
        return false;
    if (!put(k, "\x1f", 1)) return false;
    if (!(content && !json_is_null(content) ? put_content(k, content) : put_json(k, m)))
        return false;
    return put(k, "\x1e", 1);
}

/* Leading system/developer messages and the first other one. */
static void put_messages(kbuf_t *k, const json_t *msgs) {
    if (json_is_string(msgs)) { /* Responses' input as one string: a user message */
        if (put(k, "user\x1f", 5) && put_json(k, msgs)) put(k, "\x1e", 1);
        return;
    }
    if (!json_is_array(msgs)) return;
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        const json_t *role = json_object_get(m, "role");
        if (!put_message(k, m)) return;
        if (!is_system_role(json_string_value(role))) return;
    }
}

/* A system text given beside the messages (Responses' instructions,
 * Anthropic's system: a string or text blocks), as a system message. */
static bool put_system(kbuf_t *k, const json_t *sys) {
    if (!sys || json_is_null(sys)) return true;
    return put(k, "system\x1f", 7) && put_content(k, sys) && put(k, "\x1e", 1);
}

/* The first prompt of /v1/completions: a string, an array of strings (the
 * first), token ids, or an array of id arrays (the first). */
static void put_prompt(kbuf_t *k, const json_t *p) {
    if (json_is_array(p) && json_array_size(p) > 0) {
        const json_t *first = json_array_get(p, 0);
        if (json_is_string(first) || json_is_array(first)) p = first;
    }
    if (json_is_string(p)) {
        put_json(k, p);
        return;
    }
    if (!json_is_array(p)) return;
    size_t i;
    const json_t *id;
    json_array_foreach(p, i, id) {
        char t[24];
        const int n = snprintf(t, sizeof t, "%lld,", (long long)json_integer_value(id));
        if (!put(k, t, (size_t)n)) return;
    }
}

typedef enum { R_NONE, R_CHAT, R_COMPLETIONS, R_RESPONSES, R_MESSAGES } route_t;

static route_t route_of(const char *path) {
    if (!strncmp(path, "/anthropic/", 11)) path += 10; /* the Anthropic routes' second home */
    if (!strcmp(path, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(path, "/v1/completions")) return R_COMPLETIONS;
    if (!strcmp(path, "/v1/responses")) return R_RESPONSES;
    if (!strcmp(path, "/v1/messages")) return R_MESSAGES;
    return R_NONE;
}

rt_key_kind_t rt_affinity_key(const char *path, const char *body, size_t len, size_t budget,
                              sl_buf_t *key) {
    sl_buf_clear(key);
    const route_t route = route_of(path);
    if (route == R_NONE || !body || len == 0) return RT_KEY_NONE;
    json_error_t jerr;
    json_t *b = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        return RT_KEY_NONE;
    }
    const json_t *model = json_object_get(b, "model");
    const char *model_s = json_is_string(model) ? json_string_value(model) : "";
    rt_key_kind_t kind = RT_KEY_PREFIX;
    kbuf_t k = {key, (size_t)-1, false};
    /* the model and a separator; not counted against the budget */
    put(&k, model_s, strlen(model_s));
    put(&k, "\0", 1);
    const json_t *pck = json_object_get(b, "prompt_cache_key");
    if (json_is_string(pck) && json_string_length(pck) > 0) {
        kind = RT_KEY_CACHE_KEY;
        put(&k, "pck\0", 4);
        k.left = 4096; /* a key longer than this says nothing more */
        put_json(&k, pck);
    } else {
        k.left = budget ? budget : 1;
        const json_t *tools = json_object_get(b, "tools");
        const bool more = !tools || json_is_null(tools) ||
                          (json_is_array(tools) && json_array_size(tools) == 0) ||
                          (put(&k, "tools\x1f", 6) && put_json(&k, tools) && put(&k, "\x1e", 1));
        if (more) {
            switch (route) {
            case R_CHAT:
                put_messages(&k, json_object_get(b, "messages"));
                break;
            case R_RESPONSES:
                if (put_system(&k, json_object_get(b, "instructions")))
                    put_messages(&k, json_object_get(b, "input"));
                break;
            case R_MESSAGES:
                if (put_system(&k, json_object_get(b, "system")))
                    put_messages(&k, json_object_get(b, "messages"));
                break;
            case R_COMPLETIONS:
                if (put(&k, "text\x1f", 5)) put_prompt(&k, json_object_get(b, "prompt"));
                break;
            case R_NONE:
                break;
            }
        }
    }
    json_decref(b);
    if (k.oom) {
        sl_buf_clear(key);
        return RT_KEY_NONE;
    }
    return kind;
}

/* ---- stored responses ---- */

/* An id as the nodes make them (letters, digits, '_', '-'); anything else
 * is no id the router could have learned. */
static size_t copy_id(const char *s, size_t n, char *id, size_t cap) {
    if (n == 0 || n >= cap) return 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    memcpy(id, s, n);
    id[n] = '\0';
    return n;
}

size_t rt_response_ref(const char *path, const char *body, size_t len, char *id, size_t cap) {
    if (!strncmp(path, "/v1/responses/", 14) && path[14]) {
        const char *s = path + 14, *e = strchr(s, '/');
        return copy_id(s, e ? (size_t)(e - s) : strlen(s), id, cap);
    }
    static const char field[] = "previous_response_id";
    if (strcmp(path, "/v1/responses") != 0 || !body || !memmem(body, len, field, sizeof field - 1))
        return 0;
    json_error_t jerr;
    json_t *b = json_loadb(body, len, 0, &jerr);
    const json_t *v = json_object_get(b, field);
    const size_t n =
        json_is_string(v) ? copy_id(json_string_value(v), json_string_length(v), id, cap) : 0;
    json_decref(b);
    return n;
}

size_t rt_response_id_in(const char *head, size_t len, char *id, size_t cap) {
    /* the node writes the id first in the response object, compactly */
    static const char pat[] = "\"id\":\"resp_";
    const char *p = memmem(head, len, pat, sizeof pat - 1);
    if (!p) return 0;
    const char *s = p + 6, *end = head + len, *e = s;
    while (e < end && *e != '"' && *e != '\\')
        e++;
    if (e == end || *e != '"') return 0; /* not all there yet (or escaped: not ours) */
    /* copy_id refuses anything but id characters */
    return copy_id(s, (size_t)(e - s), id, cap);
}

size_t rt_body_model(const char *body, size_t len, char *out, size_t cap) {
    if (!body || len == 0 || !memmem(body, len, "\"model\"", 7)) return 0;
    json_error_t jerr;
    json_t *b = json_loadb(body, len, 0, &jerr);
    const json_t *m = json_object_get(b, "model");
    size_t n = 0;
    if (json_is_string(m) && json_string_length(m) > 0 && json_string_length(m) < cap) {
        n = json_string_length(m);
        memcpy(out, json_string_value(m), n);
        out[n] = '\0';
    }
    json_decref(b);
    return n;
}
