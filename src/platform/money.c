/*
 * money.c — exact money: micro-yuan integers, their decimal text, and the
 * cost of a usage at a price. No floating point touches an amount.
 */
#include "platform/platform.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int plat_money_parse(const char *s, int64_t *out) {
    if (!s) return -1;
    bool neg = false;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    int64_t whole = 0, frac = 0;
    int ndig = 0, nfrac = 0;
    for (; *s >= '0' && *s <= '9'; s++, ndig++)
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, *s - '0', &whole))
            return -1;
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++, nfrac++) {
            if (nfrac >= 6) return -1; /* finer than a micro-yuan */
            frac = frac * 10 + (*s - '0');
        }
    }
    if (*s != '\0' || ndig + nfrac == 0) return -1;
    for (int i = nfrac; i < 6; i++) frac *= 10;
    int64_t v;
    if (__builtin_mul_overflow(whole, PLAT_MONEY_UNIT, &v) || __builtin_add_overflow(v, frac, &v))
        return -1;
    *out = neg ? -v : v;
    return 0;
}

void plat_money_format(int64_t micro, char *buf, size_t cap) {
    /* Work in unsigned so INT64_MIN has a magnitude. */
    uint64_t m = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
    char frac[8];
    snprintf(frac, sizeof frac, "%06" PRIu64, m % (uint64_t)PLAT_MONEY_UNIT);
    int keep = 6;
    while (keep > 2 && frac[keep - 1] == '0') keep--;
    frac[keep] = '\0';
    snprintf(buf, cap, "%s%" PRIu64 ".%s", micro < 0 ? "-" : "", m / (uint64_t)PLAT_MONEY_UNIT,
             frac);
}

int64_t plat_cost(const plat_price_t *pr, const plat_usage_t *u) {
    int64_t prompt = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    int64_t completion = u->completion_tokens > 0 ? u->completion_tokens : 0;
    if (cached > prompt) cached = prompt;
    /* tokens * (micro-yuan per 1M tokens) summed exactly, then rounded up
     * to whole micro-yuan: at most 1 micro-yuan above the exact price. */
    __int128 sum = (__int128)(prompt - cached) * pr->input + (__int128)cached * pr->cached_input +
                   (__int128)completion * pr->output;
    __int128 cost = (sum + 999999) / 1000000;
    return cost > INT64_MAX ? INT64_MAX : (int64_t)cost;
}
