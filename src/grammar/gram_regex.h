/*
 * gram_regex.h — regex -> GBNF expression (internal to grammar/).
 */
#ifndef SILICA_GRAM_REGEX_H
#define SILICA_GRAM_REGEX_H

#include "grammar/gram_internal.h"

/* Appends a parenthesised GBNF expression for `re` to out. json_string:
 * the match lands inside a JSON string (see gram_regex.c). anchored_*: set
 * to whether the pattern starts with ^ / ends with $. 0 or -1 + err. */
int gram_regex_emit(const char *re, bool json_string, sl_buf_t *out, bool *anchored_start,
                    bool *anchored_end, char *err, size_t errlen);

#endif
