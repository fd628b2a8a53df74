/*
 * jinja_lex.c — template source → tokens, with the whitespace rules Hugging
 * Face sets for chat templates.
 *
 * Like jinja2's lexer: newlines (\r\n, \r) are normalised to \n and one
 * trailing newline is dropped (keep_trailing_newline=False). Text between
 * tags becomes JT_DATA. Whitespace control:
 *   - `{%-` `{{-` `{#-` strip all whitespace before the tag;
 *   - `-%}` `-}}` `-#}` strip all whitespace after it;
 *   - trim_blocks: the first newline right after `%}` or `#}` is dropped
 *     (`+%}` keeps it);
 *   - lstrip_blocks: spaces/tabs between the start of a line and a `{%` or
 *     `{#` are dropped (`{%+` keeps them).
 * Inside a tag, an end delimiter only counts when (), [], {} are balanced,
 * so `{{ {'a': 1}}}` works as in jinja2. `{% raw %}..{% endraw %}` yields its
 * body as data.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"

typedef struct lexer {
    jz_arena_t *a;
    const char *s; /* normalised source */
    size_t n;
    size_t pos;
    jtok_t *toks;
    size_t ntoks, cap;
    char *err;
    size_t errlen;
    size_t lc_pos; /* line/col cursor: position lc_pos is at lc_line:lc_col */
    int lc_line, lc_col;
} lexer_t;

/* Line and column (1-based, in code points) of a position; incremental
 * because tokens are pushed in increasing order. */
static void lexer_line_col(lexer_t *L, size_t pos, int *line, int *col) {
    if (pos < L->lc_pos || L->lc_line == 0) {
        L->lc_pos = 0;
        L->lc_line = 1;
        L->lc_col = 1;
    }
    for (size_t i = L->lc_pos; i < pos; i++) {
        if (L->s[i] == '\n') {
            L->lc_line++;
            L->lc_col = 1;
        } else if (((unsigned char)L->s[i] & 0xC0) != 0x80) {
            L->lc_col++;
        }
    }
    L->lc_pos = pos;
    *line = L->lc_line;
    *col = L->lc_col;
}

static int lex_fail(lexer_t *L, size_t pos, const char *msg) {
    int line, col;
    lexer_line_col(L, pos, &line, &col);
    return sl_err(L->err, L->errlen, "%d:%d: %s", line, col, msg);
}

static jtok_t *push(lexer_t *L, jtok_kind_t kind, size_t pos) {
    if (L->ntoks == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        jtok_t *nt = jz_alloc(L->a, nc * sizeof *nt);
        if (!nt) return NULL;
        if (L->ntoks) memcpy(nt, L->toks, L->ntoks * sizeof *nt);
        L->toks = nt;
        L->cap = nc;
    }
    jtok_t *t = &L->toks[L->ntoks++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    lexer_line_col(L, pos, &t->line, &t->col);
    return t;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int push_data(lexer_t *L, size_t start, size_t end) {
    if (end <= start) return 0;
    jtok_t *t = push(L, JT_DATA, start);
    if (!t) return -1;
    t->s = jz_strndup(L->a, L->s + start, end - start);
    t->n = end - start;
    return t->s ? 0 : -1;
}

static const char *const OPS[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(",
                                  ")",  "[",  "]",  "{",  "}",  ",",  ".", ":", "|", "=", "<", ">", ";"};

/* Decodes a Python string literal body with backslash escapes. */
static int lex_string(lexer_t *L, jtok_t *t) {
    char q = L->s[L->pos];
    size_t i = L->pos + 1;
    sl_buf_t b = {0};
    for (;;) {
        if (i >= L->n) {
            sl_buf_free(&b);
            return lex_fail(L, L->pos, "unterminated string literal");
        }
        char c = L->s[i];
        if (c == q) break;
        if (c != '\\' || i + 1 >= L->n) {
            if (sl_buf_putc(&b, c)) goto oom;
            i++;
            continue;
        }
        char e = L->s[i + 1];
        i += 2;
        uint32_t cp = 0;
        int hex = 0;
        switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case '\\': cp = '\\'; break;
        case '\'': cp = '\''; break;
        case '"': cp = '"'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'v': cp = 11; break;
        case '\n': continue; /* line continuation */
        case 'x': hex = 2; break;
        case 'u': hex = 4; break;
        case 'U': hex = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < L->n && L->s[i] >= '0' && L->s[i] <= '7'; k++, i++)
                    cp = cp * 8 + (uint32_t)(L->s[i] - '0');
            } else { /* unknown escape: kept as is */
                if (sl_buf_putc(&b, '\\') || sl_buf_putc(&b, e)) goto oom;
                continue;
            }
        }
        if (hex) {
            cp = 0;
            for (int k = 0; k < hex; k++, i++) {
                if (i >= L->n || !isxdigit((unsigned char)L->s[i])) {
                    sl_buf_free(&b);
                    return lex_fail(L, i, "truncated \\x/\\u escape in string literal");
                }
                char h = L->s[i];
                cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
            }
            if (cp > 0x10FFFF) {
                sl_buf_free(&b);
                return lex_fail(L, i, "escape out of Unicode range");
            }
        }
        char u[4];
        int un;
        if (cp < 0x80) {
            u[0] = (char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            un = 3;
        } else {
            u[0] = (char)(0xF0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            un = 4;
        }
        if (sl_buf_append(&b, u, (size_t)un)) goto oom;
    }
    t->s = jz_strndup(L->a, b.data ? b.data : "", b.len);
    t->n = b.len;
    sl_buf_free(&b);
    if (!t->s) return sl_err(L->err, L->errlen, "out of memory");
    L->pos = i + 1;
    return 0;
oom:
    sl_buf_free(&b);
    return sl_err(L->err, L->errlen, "out of memory");
}

/* Scans digits with optional single underscores between them. */
static size_t scan_digits(const char *s, size_t i, size_t n) {
    if (i >= n || !isdigit((unsigned char)s[i])) return i;
    while (i < n) {
        if (isdigit((unsigned char)s[i])) i++;
        else if (s[i] == '_' && i + 1 < n && isdigit((unsigned char)s[i + 1])) i++;
        else break;
    }
    return i;
}

static int lex_number(lexer_t *L) {
    size_t st = L->pos, i = scan_digits(L->s, st, L->n);
    bool is_float = false;
    if (i + 1 < L->n && L->s[i] == '.' && isdigit((unsigned char)L->s[i + 1])) {
        i = scan_digits(L->s, i + 1, L->n);
        is_float = true;
    }
    if (i < L->n && (L->s[i] == 'e' || L->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->n && (L->s[j] == '+' || L->s[j] == '-')) j++;
        size_t k = scan_digits(L->s, j, L->n);
        if (k > j) {
            i = k;
            is_float = true;
        }
    }
    char tmp[128];
    size_t m = 0;
    for (size_t k = st; k < i && m + 1 < sizeof tmp; k++)
        if (L->s[k] != '_') tmp[m++] = L->s[k];
    tmp[m] = 0;
    jtok_t *t = push(L, is_float ? JT_FLOAT : JT_INT, st);
    if (!t) return sl_err(L->err, L->errlen, "out of memory");
    if (is_float) {
        t->f = strtod(tmp, NULL);
    } else {
        errno = 0;
        char *end;
        long long v = strtoll(tmp, &end, 10);
        if (errno || m >= 19) {
            /* Python ints are unbounded; we hold 64 bits. */
            if (errno || strlen(tmp) > 19 || strcmp(tmp, "9223372036854775807") > 0)
                return lex_fail(L, st, "integer literal too large");
        }
        t->i = v;
    }
    L->pos = i;
    return 0;
}

/* At L->pos (after whitespace): is this the end delimiter of the tag?
 * Returns its length (incl. '-' / '+'), 0 if not. *strip_after set for '-',
 * *keep_nl for '+'. */
static size_t tag_end(lexer_t *L, char c1, bool *strip_after, bool *keep_nl) {
    const char *p = L->s + L->pos;
    size_t left = L->n - L->pos;
    *strip_after = *keep_nl = false;
    if (left >= 3 && (p[0] == '-' || p[0] == '+') && p[1] == c1 && p[2] == '}') {
        *strip_after = p[0] == '-';
        *keep_nl = p[0] == '+';
        return 3;
    }
    if (left >= 2 && p[0] == c1 && p[1] == '}') return 2;
    return 0;
}

/* Tokenizes a {{ }} or {% %} body up to its end delimiter. */
static int lex_tag(lexer_t *L, char c1, jtok_kind_t end_kind, size_t tag_start) {
    char stack[256];
    size_t depth = 0;
    for (;;) {
        while (L->pos < L->n && is_ws(L->s[L->pos])) L->pos++;
        if (L->pos >= L->n)
            return lex_fail(L, tag_start, c1 == '}' ? "unclosed '{{' (missing '}}')" : "unclosed '{%' (missing '%}')");
        bool strip_after, keep_nl;
        size_t el = depth == 0 ? tag_end(L, c1, &strip_after, &keep_nl) : 0;
        if (el) {
            if (!push(L, end_kind, L->pos)) return sl_err(L->err, L->errlen, "out of memory");
            L->pos += el;
            if (strip_after) {
                while (L->pos < L->n && is_ws(L->s[L->pos])) L->pos++;
            } else if (c1 == '%' && !keep_nl && L->pos < L->n && L->s[L->pos] == '\n') {
                L->pos++; /* trim_blocks */
            }
            return 0;
        }
        char c = L->s[L->pos];
        if (c == '\'' || c == '"') {
            jtok_t *t = push(L, JT_STRING, L->pos);
            if (!t) return sl_err(L->err, L->errlen, "out of memory");
            if (lex_string(L, t)) return -1;
            continue;
        }
        if (isdigit((unsigned char)c)) {
            if (lex_number(L)) return -1;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            size_t st = L->pos;
            while (L->pos < L->n && (isalnum((unsigned char)L->s[L->pos]) || L->s[L->pos] == '_')) L->pos++;
            jtok_t *t = push(L, JT_NAME, st);
            if (!t || !(t->s = jz_strndup(L->a, L->s + st, L->pos - st)))
                return sl_err(L->err, L->errlen, "out of memory");
            t->n = L->pos - st;
            continue;
        }
        const char *op = NULL;
        for (size_t k = 0; k < SL_ARRAY_LEN(OPS); k++) {
            size_t ol = strlen(OPS[k]);
            if (L->n - L->pos >= ol && !memcmp(L->s + L->pos, OPS[k], ol)) {
                op = OPS[k];
                break;
            }
        }
        if (!op) {
            char msg[64];
            snprintf(msg, sizeof msg, "unexpected character '%c'", isprint((unsigned char)c) ? c : '?');
            return lex_fail(L, L->pos, msg);
        }
        if (op[0] == '(' || op[0] == '[' || op[0] == '{') {
            if (depth >= sizeof stack) return lex_fail(L, L->pos, "brackets nested too deeply");
            stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
        } else if (op[0] == ')' || op[0] == ']' || op[0] == '}') {
            if (depth == 0 || stack[depth - 1] != op[0]) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected '%c'", op[0]);
                return lex_fail(L, L->pos, msg);
            }
            depth--;
        }
        jtok_t *t = push(L, JT_OP, L->pos);
        if (!t) return sl_err(L->err, L->errlen, "out of memory");
        t->s = op;
        t->n = strlen(op);
        L->pos += t->n;
    }
}

/* `{% raw %}` (with optional -/+): returns true and the body range. */
static bool match_word_tag(const char *s, size_t n, size_t i, const char *word, size_t *after, bool *strip_before,
                           bool *strip_after, size_t *body_end_data) {
    /* s[i..] starts with "{%" */
    size_t j = i + 2;
    *strip_before = false;
    if (j < n && (s[j] == '-' || s[j] == '+')) {
        *strip_before = s[j] == '-';
        j++;
    }
    while (j < n && is_ws(s[j])) j++;
    size_t wl = strlen(word);
    if (n - j < wl || memcmp(s + j, word, wl)) return false;
    j += wl;
    if (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_')) return false;
    while (j < n && is_ws(s[j])) j++;
    *strip_after = false;
    if (j < n && (s[j] == '-' || s[j] == '+')) {
        *strip_after = s[j] == '-';
        j++;
    }
    if (n - j < 2 || s[j] != '%' || s[j + 1] != '}') return false;
    *after = j + 2;
    (void)body_end_data;
    return true;
}

int jinja_lex(jz_arena_t *a, const char *src, size_t len, jtok_t **toks, size_t *ntoks, char *err,
              size_t errlen) {
    lexer_t L = {.a = a, .err = err, .errlen = errlen};
    /* Normalise newlines; drop one trailing newline. */
    char *s = jz_alloc(a, len + 1);
    if (!s) return sl_err(err, errlen, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    L.s = s;
    L.n = n;

    bool line_starting = true; /* the previous token ended at a line start */
    while (L.pos < n) {
        /* find the next tag opener */
        size_t i = L.pos;
        while (i + 1 < n && !(s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#'))) i++;
        if (i + 1 >= n) {
            if (push_data(&L, L.pos, n)) return sl_err(err, errlen, "out of memory");
            break;
        }
        char kind = s[i + 1];
        char mod = i + 2 < n ? s[i + 2] : 0;
        size_t data_end = i;
        if (mod == '-') {
            while (data_end > L.pos && is_ws(s[data_end - 1])) data_end--;
        } else if (mod != '+' && (kind == '%' || kind == '#')) {
            /* lstrip_blocks: whitespace between the line start and the tag */
            size_t ls = data_end;
            while (ls > L.pos && (s[ls - 1] == ' ' || s[ls - 1] == '\t')) ls--;
            bool at_line_start = ls > L.pos ? s[ls - 1] == '\n' : line_starting;
            if (at_line_start) data_end = ls;
        }
        if (push_data(&L, L.pos, data_end)) return sl_err(err, errlen, "out of memory");
        size_t tag_start = i;
        L.pos = i + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
        if (kind == '#') {
            size_t j = L.pos;
            while (j + 1 < n && !(s[j] == '#' && s[j + 1] == '}')) j++;
            if (j + 1 >= n) return lex_fail(&L, tag_start, "unclosed comment (missing '#}')");
            bool strip = j > L.pos && s[j - 1] == '-';
            bool keep = j > L.pos && s[j - 1] == '+';
            L.pos = j + 2;
            if (strip) {
                while (L.pos < n && is_ws(s[L.pos])) L.pos++;
            } else if (!keep && L.pos < n && s[L.pos] == '\n') {
                L.pos++;
            }
        } else if (kind == '{') {
            if (!push(&L, JT_VAR_BEGIN, tag_start)) return sl_err(err, errlen, "out of memory");
            if (lex_tag(&L, '}', JT_VAR_END, tag_start)) return -1;
        } else {
            size_t after;
            bool sb, sa;
            if (match_word_tag(s, n, tag_start, "raw", &after, &sb, &sa, NULL)) {
                size_t body = after, j = after;
                if (sa) {
                    while (body < n && is_ws(s[body])) body++;
                } else if (body < n && s[body] == '\n') {
                    body++;
                }
                for (;; j++) {
                    if (j + 1 >= n) return lex_fail(&L, tag_start, "unclosed raw block (missing endraw)");
                    size_t after2;
                    bool sb2, sa2;
                    if (s[j] == '{' && s[j + 1] == '%' &&
                        match_word_tag(s, n, j, "endraw", &after2, &sb2, &sa2, NULL)) {
                        size_t be = j;
                        if (sb2) {
                            while (be > body && is_ws(s[be - 1])) be--;
                        } else {
                            size_t ls = be;
                            while (ls > body && (s[ls - 1] == ' ' || s[ls - 1] == '\t')) ls--;
                            if (ls > body && s[ls - 1] == '\n') be = ls;
                        }
                        if (push_data(&L, body, be)) return sl_err(err, errlen, "out of memory");
                        L.pos = after2;
                        if (sa2) {
                            while (L.pos < n && is_ws(s[L.pos])) L.pos++;
                        } else if (L.pos < n && s[L.pos] == '\n') {
                            L.pos++;
                        }
                        break;
                    }
                }
            } else {
                if (!push(&L, JT_BLOCK_BEGIN, tag_start)) return sl_err(err, errlen, "out of memory");
                if (lex_tag(&L, '%', JT_BLOCK_END, tag_start)) return -1;
            }
        }
        line_starting = L.pos > 0 && s[L.pos - 1] == '\n';
    }
    if (!push(&L, JT_EOF, n)) return sl_err(err, errlen, "out of memory");
    *toks = L.toks;
    *ntoks = L.ntoks;
    return 0;
}
