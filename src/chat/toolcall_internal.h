/*
 * toolcall_internal.h — helpers shared by the toolcall_*.c files (not public).
 */
#ifndef SILICA_TOOLCALL_INTERNAL_H
#define SILICA_TOOLCALL_INTERNAL_H

#include "chat/toolcall.h"

/* Marker texts (UTF-8). DeepSeek's use U+FF5C FULLWIDTH VERTICAL LINE and
 * U+2581 LOWER ONE EIGHTH BLOCK, exactly as in its vocabulary. */
#define TC_DS_CALLS_BEGIN                                                                          \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "begin\xef\xbd\x9c>"
#define TC_DS_CALLS_END                                                                            \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "end\xef\xbd\x9c>"
#define TC_DS_CALL_BEGIN                                                                           \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "begin\xef\xbd\x9c>"
#define TC_DS_CALL_END                                                                             \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "end\xef\xbd\x9c>"
#define TC_DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81sep\xef\xbd\x9c>"

/* Harmony (gpt-oss) markers. */
#define TC_H_START "<|start|>"
#define TC_H_END "<|end|>"
#define TC_H_MESSAGE "<|message|>"
#define TC_H_CHANNEL "<|channel|>"
#define TC_H_CONSTRAIN "<|constrain|>"
#define TC_H_CALL "<|call|>"
#define TC_H_RETURN "<|return|>"

/* Qwen3-Coder XML calls: what JSON a parameter's schema lets its raw text
 * be (bits; tc_xml_param_kinds). The value is kept as a JSON string exactly
 * when tc_xml_is_string(): the schema allows strings (or says nothing about
 * the type: an undeclared parameter, {} or a bare description) and no
 * other type but null. Otherwise the text is parsed as JSON (booleans also
 * in any letter case), falling back to a string when it does not parse. The
 * parser and the grammar share this rule, so the grammar writes strings raw
 * and everything else as JSON of its schema. */
enum { TC_XK_STRING = 1, TC_XK_NULL = 2, TC_XK_BOOL = 4, TC_XK_OTHER = 8 };
int tc_xml_param_kinds(const json_t *schema);
static inline bool tc_xml_is_string(int kinds) {
    return (kinds & TC_XK_STRING) && !(kinds & (TC_XK_BOOL | TC_XK_OTHER));
}
#define TC_XML_PARAM_CLOSE "</parameter>"
#define TC_XML_MAX_PNAME 1024 /* bytes of a parameter name */

/* A function name as the platform accepts it: [a-zA-Z0-9_-]{1,64}. */
bool tc_name_valid(const char *s, size_t n);

/* The `parameters` schema of the tool named `name` in a tools array, or NULL. */
const json_t *tc_tool_params(const json_t *tools, const char *name);

#endif
