/*
 * test_json.h — JSON helpers for the unit tests of the translated API
 * routes (jansson): J parses test text, json_eq_text compares a value with
 * expected text (printing both when they differ), sse_events parses an SSE
 * stream of `event: NAME` / `data: {...}` pairs into an array of the data
 * objects, checking each one's "type" equals its event name.
 */
#ifndef SILICA_TEST_JSON_H
#define SILICA_TEST_JSON_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "test.h"

static json_t *J(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
    return v;
}

static bool json_eq_text(const json_t *v, const char *text) {
    json_t *w = J(text);
    bool eq = json_equal((json_t *)v, w);
    if (!eq) {
        char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(stderr, "    got  %s\n    want %s\n", a ? a : "?", text);
        free(a);
    }
    json_decref(w);
    return eq;
}

/* The SSE events of ev (text), parsed: an array of the data objects; each
 * event's `event:` line must equal its type and end with a blank line. */
static json_t *sse_events(const sl_buf_t *ev) {
    json_t *a = json_array();
    const char *p = ev->data ? ev->data : "";
    const char *end = p + ev->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl && !strncmp(p, "event: ", 7));
        if (!nl) break;
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(nl - p - 7), p + 7);
        p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl && !strncmp(p, "data: ", 6) && nl + 1 < end && nl[1] == '\n');
        if (!nl) break;
        json_t *d = json_loadb(p + 6, (size_t)(nl - p - 6), 0, NULL);
        const char *type = d ? json_string_value(json_object_get(d, "type")) : NULL;
        CHECK_MSG(type && !strcmp(type, name), "event %s", name);
        if (d) json_array_append_new(a, d);
        p = nl + 2;
    }
    return a;
}

#endif
