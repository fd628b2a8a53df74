/*
 * toolcall.c — family detection and the streaming output parser.
 *
 * The parser is a state machine over the bytes not yet consumed (p->in from
 * p->pos). Every step either consumes bytes or waits for more; a step never
 * looks further than the bytes it has, so any split of the same text gives
 * the same events (tests check this with random piece sizes).
 *
 *   START      beginning of the output (and right after </think>): leading
 *              whitespace, an opening <think>, and the start-only call
 *              syntaxes (Llama 3 JSON, GLM-4 NAME\n{...}).
 *   REASONING  inside <think>: text up to </think> is reasoning.
 *   CONTENT    text up to the first trigger of the family is content; a tail
 *              that could be the start of a trigger is held back.
 *   CALL       a family-specific sub-machine (c.sub) parses the call; JSON is
 *              checked and compacted byte by byte by jsc_t (below). On success
 *              the call is committed; on failure its raw text (from the
 *              trigger on) becomes content and scanning goes on after it.
 *
 * Harmony (gpt-oss) uses the same states with its own steps (the section
 * "harmony" below): START between messages, CALL for a header and a call's
 * arguments, REASONING / CONTENT for a message body. Qwen3-Coder's XML calls
 * build their arguments object parameter by parameter (the section
 * "Qwen3-Coder" below).
 *
 * Whitespace: leading whitespace of content and reasoning is dropped, trailing
 * whitespace of reasoning is dropped, and whitespace in content is held until
 * more content follows (dropped before a call and, when the message has
 * calls, at the end). That keeps "text\n\n<tool_call>" from ending in "\n\n".
 */
#include "chat/toolcall_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------------ */
/* small helpers */

static bool is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool tc_name_valid(const char *s, size_t n) {
    if (n == 0 || n > TC_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char((unsigned char)s[i])) return false;
    return true;
}

const json_t *tc_tool_params(const json_t *tools, const char *name) {
    if (!json_is_array(tools) || !name) return NULL;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function");
        const char *nm = json_string_value(json_object_get(fn, "name"));
        if (nm && strcmp(nm, name) == 0) return json_object_get(fn, "parameters");
    }
    return NULL;
}

static bool has_tool(const json_t *tools, const char *name, size_t n) {
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *nm = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
        if (nm && strlen(nm) == n && memcmp(nm, name, n) == 0) return true;
    }
    return false;
}

static bool mem_has(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    if (!s || k > n) return false;
    return memmem(s, n, needle, k) != NULL;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of lit. */
static size_t partial_suffix(const char *s, size_t n, const char *lit) {
    size_t k = strlen(lit);
    size_t m = SL_MIN(n, k - 1);
    for (; m > 0; m--)
        if (memcmp(s + n - m, lit, m) == 0) return m;
    return 0;
}

/* UTF-8: how many bytes of s[0..n) form complete sequences (or invalid bytes,
 * which the emitter replaces); a trailing sequence that could still become
 * valid is not counted. */
static size_t utf8_seq_len(const unsigned char *s, size_t n, bool *valid) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *valid = true;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *valid = false;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) return 0; /* incomplete */
        unsigned char d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) {
            *valid = false;
            return 1;
        }
    }
    return need;
}

static size_t utf8_complete_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        bool v;
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i, &v);
        if (k == 0) break;
        i += k;
    }
    return i;
}

/* Appends s[0..n) with invalid sequences replaced by U+FFFD; an incomplete
 * tail is replaced too (only called on complete input). */
static int utf8_append_clean(sl_buf_t *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        bool v;
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i, &v);
        if (k == 0) {
            k = n - i;
            v = false;
        }
        if (v) {
            if (sl_buf_append(b, s + i, k)) return -1;
        } else if (sl_buf_puts(b, "\xef\xbf\xbd")) {
            return -1;
        }
        i += v ? k : 1; /* one replacement per invalid byte */
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* family detection */

static const char *const FAMILY_NAMES[TC_FAMILY_COUNT] = {
    "none", "hermes", "llama3",    "deepseek", "deepseek_v31",
    "glm4", "glm45",  "internlm2", "mistral",  "harmony", "qwen3_coder"};

const char *tc_family_name(tc_family_t f) {
    return (unsigned)f < TC_FAMILY_COUNT ? FAMILY_NAMES[f] : "unknown";
}

static bool tok(tc_has_token_fn has_token, void *ud, const char *t) {
    return has_token && has_token(ud, t);
}

tc_family_t tc_detect(const char *src, size_t len, tc_has_token_fn has_token, void *ud) {
    if (!src) len = 0;
    /* Template first: it says how calls are written back into the prompt,
     * which is the syntax the model was trained to produce. */
    if (mem_has(src, len, TC_H_CHANNEL) && mem_has(src, len, TC_H_MESSAGE))
        return TC_FAMILY_HARMONY;
    if (mem_has(src, len, TC_DS_CALLS_BEGIN) || mem_has(src, len, TC_DS_CALL_BEGIN)) {
        /* V2.5/V3/R1 write "type<sep>name\n```json"; V3.1 "name<sep>args". */
        return mem_has(src, len, "```json") ? TC_FAMILY_DEEPSEEK : TC_FAMILY_DEEPSEEK_V31;
    }
    if (mem_has(src, len, "<arg_key>")) return TC_FAMILY_GLM45;
    /* Qwen3-Coder / Qwen3.5 write <function=N> and <parameter=K> inside
     * <tool_call> (the vocabulary has no token for them: template only) */
    if (mem_has(src, len, "<function=") && mem_has(src, len, "<parameter="))
        return TC_FAMILY_QWEN3_CODER;
    if (mem_has(src, len, "<tool_call>")) return TC_FAMILY_HERMES;
    if (mem_has(src, len, "<|action_start|>") && mem_has(src, len, "<|plugin|>"))
        return TC_FAMILY_INTERNLM2;
    if (mem_has(src, len, "[TOOL_CALLS]")) return TC_FAMILY_MISTRAL;
    if (mem_has(src, len, "<|start_header_id|>") &&
        (mem_has(src, len, "ipython") || mem_has(src, len, "<|python_tag|>")))
        return TC_FAMILY_LLAMA3;
    if (mem_has(src, len, "[gMASK]") && mem_has(src, len, "<|assistant|>") &&
        mem_has(src, len, "<|observation|>"))
        return TC_FAMILY_GLM4;
    /* No tool markup in the template: the vocabulary's special tokens. */
    if (tok(has_token, ud, TC_H_CHANNEL) && tok(has_token, ud, TC_H_MESSAGE) &&
        tok(has_token, ud, TC_H_CALL))
        return TC_FAMILY_HARMONY;
    if (tok(has_token, ud, TC_DS_CALLS_BEGIN)) return TC_FAMILY_DEEPSEEK;
    if (tok(has_token, ud, "<arg_key>")) return TC_FAMILY_GLM45;
    if (tok(has_token, ud, "<tool_call>")) return TC_FAMILY_HERMES;
    if (tok(has_token, ud, "<|action_start|>") && tok(has_token, ud, "<|plugin|>"))
        return TC_FAMILY_INTERNLM2;
    if (tok(has_token, ud, "[TOOL_CALLS]")) return TC_FAMILY_MISTRAL;
    if (tok(has_token, ud, "<|python_tag|>")) return TC_FAMILY_LLAMA3;
    if (tok(has_token, ud, "<|observation|>") && tok(has_token, ud, "[gMASK]"))
        return TC_FAMILY_GLM4;
    return TC_FAMILY_NONE;
}

bool tc_detect_reasoning(const char *src, size_t len, tc_has_token_fn has_token, void *ud) {
    if (!src) len = 0;
    if (mem_has(src, len, "<think>") || mem_has(src, len, "</think>")) return true;
    /* Qwen3-Coder keeps Qwen3's vocabulary (<think> included) but does not
     * reason: its template, which writes XML calls, never opens a think
     * block (Qwen3.5's does, and is caught above) */
    if (tc_detect(src, len, NULL, NULL) == TC_FAMILY_QWEN3_CODER) return false;
    return tok(has_token, ud, "<think>") && tok(has_token, ud, "</think>");
}

bool tc_prompt_opens_think(const char *prompt, size_t len) {
    if (!prompt) return false;
    while (len > 0 && is_ws((unsigned char)prompt[len - 1]))
        len--;
    return len >= 7 && memcmp(prompt + len - 7, "<think>", 7) == 0;
}

/* ------------------------------------------------------------------ */
/* jsc: a streaming JSON checker that copies its input without insignificant
 * whitespace (strings and numbers verbatim) and reports where keys and
 * values begin and end. Compact JSON text is valid JSON, so arguments can be
 * streamed as they are checked and still equal the final text. */

#define JSC_DEPTH 64

enum {
    JS_VALUE,
    JS_ARR_FIRST,
    JS_STR,
    JS_ESC,
    JS_HEX,
    JS_NUM,
    JS_LIT,
    JS_AFTER,
    JS_KEY_OR_END,
    JS_KEY,
    JS_COLON,
    JS_DONE
};
enum { JSC_MORE = 0, JSC_DONE = 1, JSC_DONE_NC = 2, JSC_ERR = -1 };
enum { JE_KEY_BEGIN, JE_KEY_END, JE_VAL_BEGIN, JE_VAL_END };

typedef struct {
    unsigned char kind, depth;
    size_t pos; /* offset in the output: first byte (BEGIN) / one past the last (END) */
} jsc_ev_t;

typedef struct {
    int st, depth, nst, hex;
    bool in_key, any_top;
    char stack[JSC_DEPTH];
    const char *lit;
    int lit_i;
    jsc_ev_t ev[4];
    int nev;
} jsc_t;

static void jsc_init(jsc_t *j, bool any_top) {
    memset(j, 0, sizeof *j);
    j->st = JS_VALUE;
    j->any_top = any_top;
}

static void jsc_ev(jsc_t *j, int kind, size_t pos) {
    if (j->nev < 4) j->ev[j->nev++] = (jsc_ev_t){(unsigned char)kind, (unsigned char)j->depth, pos};
}

/* A value just ended (out->len is one past it). */
static int jsc_value_end(jsc_t *j, const sl_buf_t *out) {
    jsc_ev(j, JE_VAL_END, out->len);
    if (j->depth == 0) {
        j->st = JS_DONE;
        return JSC_DONE;
    }
    j->st = JS_AFTER;
    return JSC_MORE;
}

static bool num_can_end(int nst) {
    return nst == 1 || nst == 2 || nst == 4 || nst == 7;
}

static int jsc_feed(jsc_t *j, unsigned char c, sl_buf_t *out) {
    j->nev = 0;
again:
    switch (j->st) {
    case JS_VALUE:
    case JS_ARR_FIRST:
        if (is_ws(c)) return JSC_MORE;
        if (j->st == JS_ARR_FIRST && c == ']') {
            if (sl_buf_putc(out, ']')) return JSC_ERR;
            j->depth--;
            return jsc_value_end(j, out);
        }
        if (j->depth == 0 && !j->any_top && c != '{') return JSC_ERR;
        jsc_ev(j, JE_VAL_BEGIN, out->len);
        if (sl_buf_putc(out, (char)c)) return JSC_ERR;
        if (c == '{' || c == '[') {
            if (j->depth >= JSC_DEPTH) return JSC_ERR;
            j->stack[j->depth++] = (char)c;
            j->st = c == '{' ? JS_KEY_OR_END : JS_ARR_FIRST;
        } else if (c == '"') {
            j->st = JS_STR;
            j->in_key = false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            j->st = JS_NUM;
            j->nst = c == '-' ? 0 : c == '0' ? 1 : 2;
        } else if (c == 't' || c == 'f' || c == 'n') {
            j->st = JS_LIT;
            j->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
            j->lit_i = 1;
        } else {
            return JSC_ERR;
        }
        return JSC_MORE;
    case JS_KEY_OR_END:
    case JS_KEY:
        if (is_ws(c)) return JSC_MORE;
        if (j->st == JS_KEY_OR_END && c == '}') {
            if (sl_buf_putc(out, '}')) return JSC_ERR;
            j->depth--;
            return jsc_value_end(j, out);
        }
        if (c != '"') return JSC_ERR;
        jsc_ev(j, JE_KEY_BEGIN, out->len);
        if (sl_buf_putc(out, '"')) return JSC_ERR;
        j->st = JS_STR;
        j->in_key = true;
        return JSC_MORE;
    case JS_STR:
        if (c < 0x20) return JSC_ERR;
        if (sl_buf_putc(out, (char)c)) return JSC_ERR;
        if (c == '\\') {
            j->st = JS_ESC;
        } else if (c == '"') {
            if (j->in_key) {
                jsc_ev(j, JE_KEY_END, out->len);
                j->st = JS_COLON;
                return JSC_MORE;
            }
            return jsc_value_end(j, out);
        }
        return JSC_MORE;
    case JS_ESC:
        if (c == 'u') {
            j->st = JS_HEX;
            j->hex = 4;
        } else if (strchr("\"\\/bfnrt", c) && c) {
            j->st = JS_STR;
        } else {
            return JSC_ERR;
        }
        return sl_buf_putc(out, (char)c) ? JSC_ERR : JSC_MORE;
    case JS_HEX:
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return JSC_ERR;
        if (--j->hex == 0) j->st = JS_STR;
        return sl_buf_putc(out, (char)c) ? JSC_ERR : JSC_MORE;
    case JS_COLON:
        if (is_ws(c)) return JSC_MORE;
        if (c != ':') return JSC_ERR;
        j->st = JS_VALUE;
        return sl_buf_putc(out, ':') ? JSC_ERR : JSC_MORE;
    case JS_AFTER:
        if (is_ws(c)) return JSC_MORE;
        if (c == ',') {
            j->st = j->stack[j->depth - 1] == '{' ? JS_KEY : JS_VALUE;
            return sl_buf_putc(out, ',') ? JSC_ERR : JSC_MORE;
        }
        if ((c == '}' && j->stack[j->depth - 1] == '{') ||
            (c == ']' && j->stack[j->depth - 1] == '[')) {
            if (sl_buf_putc(out, (char)c)) return JSC_ERR;
            j->depth--;
            return jsc_value_end(j, out);
        }
        return JSC_ERR;
    case JS_NUM: {
        bool digit = c >= '0' && c <= '9';
        int next = -1;
        switch (j->nst) {
        case 0:
            next = c == '0' ? 1 : digit ? 2 : -1;
            break;
        case 1:
            next = c == '.' ? 3 : (c == 'e' || c == 'E') ? 5 : -2;
            break;
        case 2:
            next = digit ? 2 : c == '.' ? 3 : (c == 'e' || c == 'E') ? 5 : -2;
            break;
        case 3:
            next = digit ? 4 : -1;
            break;
        case 4:
            next = digit ? 4 : (c == 'e' || c == 'E') ? 5 : -2;
            break;
        case 5:
            next = (c == '+' || c == '-') ? 6 : digit ? 7 : -1;
            break;
        case 6:
            next = digit ? 7 : -1;
            break;
        case 7:
            next = digit ? 7 : -2;
            break;
        }
        if (next == -1) return JSC_ERR;
        if (next >= 0) {
            j->nst = next;
            return sl_buf_putc(out, (char)c) ? JSC_ERR : JSC_MORE;
        }
        /* c ends the number; it is then read in the state after the value */
        if (jsc_value_end(j, out) == JSC_DONE) return JSC_DONE_NC;
        goto again;
    }
    case JS_LIT:
        if (c != (unsigned char)j->lit[j->lit_i]) return JSC_ERR;
        if (sl_buf_putc(out, (char)c)) return JSC_ERR;
        if (j->lit[++j->lit_i] == 0) return jsc_value_end(j, out);
        return JSC_MORE;
    default:
        return JSC_ERR;
    }
}

/* At end of input: a top-level number that may end here is complete. */
static bool jsc_end_ok(const jsc_t *j) {
    return j->st == JS_DONE || (j->st == JS_NUM && j->depth == 0 && num_can_end(j->nst));
}

/* ------------------------------------------------------------------ */
/* parser state */

enum { ST_START, ST_REASONING, ST_CONTENT, ST_CALL };
enum { ROLE_OTHER, ROLE_NAME, ROLE_ARGS };

typedef struct {
    char *id, *name, *args;
} call_rec_t;

typedef struct {
    int sub;
    bool started; /* CALL_START emitted (incremental mode) */
    int index;    /* index given at CALL_START */
    sl_buf_t raw; /* text of this call from its trigger on, for the fallback */
    sl_buf_t name;
    sl_buf_t tmp;   /* scratch: DeepSeek type, GLM-4.5 key, Llama builtin key */
    sl_buf_t tmp2;  /* scratch: GLM-4.5 value */
    sl_buf_t canon; /* compact JSON of the envelope or of the arguments */
    sl_buf_t args;  /* arguments text built by the parser (GLM-4.5, Llama builtin, XML) */
    jsc_t js;
    bool envelope; /* canon holds {"name":..,"arguments":..} rather than the arguments */
    int role;      /* role of the current top-level key of an envelope */
    size_t key_beg, args_beg, args_end, name_beg;
    bool args_begun, args_done, args_is_string, name_known;
    size_t emitted; /* argument bytes already sent as CALL_ARGS */
    int npairs;
    /* Qwen3-Coder: the parameter being read (its raw text in tmp2) */
    int xkinds;   /* TC_XK_* of its schema */
    bool vstream; /* a plain string: escaped into args as it arrives */
    int vlead;    /* -1 undecided, else the leading newline bytes dropped (0/1) */
    size_t vsent; /* bytes of tmp2 already escaped into args */
} call_ctx_t;

struct tc_parser {
    tc_parser_opts_t o;
    sl_buf_t in;
    size_t pos;
    int state;
    bool final;
    bool allow_think; /* in ST_START: may an opening <think> come */
    bool content_started, reasoning_started;
    sl_buf_t ws_hold;  /* content whitespace waiting for more content */
    sl_buf_t rws_hold; /* reasoning whitespace waiting for more reasoning */
    sl_buf_t carry[2]; /* incomplete UTF-8 tails of content / reasoning deltas */
    sl_buf_t content, reasoning;
    call_ctx_t c;
    call_rec_t *calls;
    size_t n_calls, cap_calls;
    int next_index;
    int cb_status; /* first non-zero callback return */
    bool oom;
    uint64_t rng;
    tc_call_t *res_calls;
    tc_result_t res;
    bool done;
};

static const char *const TRIG_HERMES[] = {"<tool_call>", NULL};
static const char *const TRIG_LLAMA3[] = {"<|python_tag|>", NULL};
static const char *const TRIG_DEEPSEEK[] = {TC_DS_CALLS_BEGIN, TC_DS_CALL_BEGIN, NULL};
static const char *const TRIG_INTERNLM2[] = {"<|action_start|>", NULL};
static const char *const TRIG_MISTRAL[] = {"[TOOL_CALLS]", NULL};
/* a bare <function=...> (no <tool_call> around it) is read as a call too */
static const char *const TRIG_QWEN3_CODER[] = {"<tool_call>", "<function=", NULL};
static const char *const TRIG_NONE[] = {NULL};
/* harmony: a call's header with its recipient (the model writes it in
 * two orders; the start word "to=functions." is the role-order header of
 * the output's first message, whose "<|start|>assistant" is the prompt's) */
static const char *const TRIG_HARMONY[] = {TC_H_CHANNEL "commentary to=functions.",
                                           TC_H_CHANNEL "analysis to=functions.",
                                           TC_H_START "assistant to=functions.", NULL};

static const char *const *family_triggers(tc_family_t f) {
    switch (f) {
    case TC_FAMILY_HERMES:
    case TC_FAMILY_GLM45:
        return TRIG_HERMES;
    case TC_FAMILY_LLAMA3:
        return TRIG_LLAMA3;
    case TC_FAMILY_DEEPSEEK:
    case TC_FAMILY_DEEPSEEK_V31:
        return TRIG_DEEPSEEK;
    case TC_FAMILY_INTERNLM2:
        return TRIG_INTERNLM2;
    case TC_FAMILY_MISTRAL:
        return TRIG_MISTRAL;
    case TC_FAMILY_HARMONY:
        return TRIG_HARMONY;
    case TC_FAMILY_QWEN3_CODER:
        return TRIG_QWEN3_CODER;
    default:
        return TRIG_NONE;
    }
}

tc_trigger_t tc_trigger(tc_family_t f) {
    tc_trigger_t t;
    memset(&t, 0, sizeof t);
    t.lazy_supported = true;
    /* Qwen3-Coder: the grammar's calls begin with <tool_call> (a bare
     * <function= is parsed, never a lazy trigger) */
    const char *const *w = f == TC_FAMILY_QWEN3_CODER ? TRIG_HERMES : family_triggers(f);
    size_t n = 0;
    for (; n < 3 && w[n]; n++)
        t.words[n] = w[n];
    if (f == TC_FAMILY_LLAMA3) t.start_words[0] = "{";
    if (f == TC_FAMILY_HARMONY) t.start_words[0] = "to=functions.";
    /* GLM-4: no fixed trigger */
    if (f == TC_FAMILY_GLM4 || f == TC_FAMILY_NONE) t.lazy_supported = false;
    return t;
}

static const char *const MARK_HERMES[] = {"<tool_call>", "</tool_call>", NULL};
static const char *const MARK_GLM45[] = {"<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
                                         "<arg_value>", "</arg_value>", NULL};
static const char *const MARK_DEEPSEEK[] = {TC_DS_CALLS_BEGIN, TC_DS_CALLS_END, TC_DS_CALL_BEGIN,
                                            TC_DS_CALL_END,    TC_DS_SEP,       NULL};
static const char *const MARK_INTERNLM2[] = {"<|action_start|>", "<|plugin|>", "<|action_end|>",
                                             NULL};
static const char *const MARK_MISTRAL[] = {"[TOOL_CALLS]", "[ARGS]", NULL};
static const char *const MARK_QWEN3_CODER[] = {"<tool_call>", "</tool_call>", "<function=",
                                               "</function>", "<parameter=", "</parameter>",
                                               NULL};
/* <|call|> and <|return|> end the turn (end-of-generation tokens): a grammar
 * never writes them, so they stay control tokens. */
static const char *const MARK_HARMONY[] = {TC_H_START,   TC_H_END,       TC_H_MESSAGE,
                                           TC_H_CHANNEL, TC_H_CONSTRAIN, NULL};

const char *const *tc_family_markers(tc_family_t f) {
    switch (f) {
    case TC_FAMILY_HERMES:
        return MARK_HERMES;
    case TC_FAMILY_GLM45:
        return MARK_GLM45;
    case TC_FAMILY_LLAMA3:
        return TRIG_LLAMA3;
    case TC_FAMILY_DEEPSEEK:
    case TC_FAMILY_DEEPSEEK_V31:
        return MARK_DEEPSEEK;
    case TC_FAMILY_INTERNLM2:
        return MARK_INTERNLM2;
    case TC_FAMILY_MISTRAL:
        return MARK_MISTRAL;
    case TC_FAMILY_HARMONY:
        return MARK_HARMONY;
    case TC_FAMILY_QWEN3_CODER:
        return MARK_QWEN3_CODER;
    default:
        return TRIG_NONE;
    }
}

/* ------------------------------------------------------------------ */
/* event delivery */

static void deliver(tc_parser_t *p, const tc_event_t *ev) {
    if (p->o.on_event && p->cb_status == 0) p->cb_status = p->o.on_event(p->o.ud, ev);
}

/* kind 0 content, 1 reasoning: emits the complete UTF-8 part of carry+s. */
static void emit_text(tc_parser_t *p, int kind, const char *s, size_t n, bool flush) {
    sl_buf_t *cb = &p->carry[kind];
    if (n && sl_buf_append(cb, s, n)) {
        p->oom = true;
        return;
    }
    size_t k = flush ? cb->len : utf8_complete_len(cb->data, cb->len);
    if (k == 0) return;
    sl_buf_t *dst = kind ? &p->reasoning : &p->content;
    size_t before = dst->len;
    if (utf8_append_clean(dst, cb->data, k)) {
        p->oom = true;
        return;
    }
    memmove(cb->data, cb->data + k, cb->len - k);
    cb->len -= k;
    if (cb->data) cb->data[cb->len] = 0;
    tc_event_t ev = {.kind = kind ? TC_EV_REASONING : TC_EV_CONTENT,
                     .text = dst->data + before,
                     .len = dst->len - before};
    if (ev.len) deliver(p, &ev);
}

/* Content with the whitespace rules of the file comment. */
static void emit_content(tc_parser_t *p, const char *s, size_t n) {
    if (!p->content_started) {
        while (n && is_ws((unsigned char)*s))
            s++, n--;
        if (!n) return;
        p->content_started = true;
    }
    size_t t = n;
    while (t && is_ws((unsigned char)s[t - 1]))
        t--;
    if (t) {
        if (p->ws_hold.len) emit_text(p, 0, p->ws_hold.data, p->ws_hold.len, false);
        sl_buf_clear(&p->ws_hold);
        emit_text(p, 0, s, t, false);
    }
    if (n > t && sl_buf_append(&p->ws_hold, s + t, n - t)) p->oom = true;
}

static void emit_reasoning(tc_parser_t *p, const char *s, size_t n) {
    if (!p->reasoning_started) {
        while (n && is_ws((unsigned char)*s))
            s++, n--;
        if (!n) return;
        p->reasoning_started = true;
    }
    size_t t = n;
    while (t && is_ws((unsigned char)s[t - 1]))
        t--;
    if (t) {
        if (p->rws_hold.len) emit_text(p, 1, p->rws_hold.data, p->rws_hold.len, false);
        sl_buf_clear(&p->rws_hold);
        emit_text(p, 1, s, t, false);
    }
    if (n > t && sl_buf_append(&p->rws_hold, s + t, n - t)) p->oom = true;
}

static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static uint64_t next_rand(tc_parser_t *p) {
    if (p->o.id_seed == 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) == (ssize_t)sizeof r) return r;
    }
    /* splitmix64 */
    uint64_t z = (p->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *new_call_id(tc_parser_t *p) {
    bool mistral = p->o.family == TC_FAMILY_MISTRAL;
    size_t n = mistral ? 9 : 24, off = mistral ? 0 : 5;
    char *id = malloc(off + n + 1);
    if (!id) return NULL;
    memcpy(id, "call_", off);
    for (size_t i = 0; i < n; i++)
        id[off + i] = ALNUM[next_rand(p) % (sizeof ALNUM - 1)];
    id[off + n] = 0;
    return id;
}

/* ------------------------------------------------------------------ */
/* calls */

static void call_reset(call_ctx_t *c) {
    sl_buf_clear(&c->raw);
    sl_buf_clear(&c->name);
    sl_buf_clear(&c->tmp);
    sl_buf_clear(&c->tmp2);
    sl_buf_clear(&c->canon);
    sl_buf_clear(&c->args);
    c->sub = 0;
    c->started = false;
    c->envelope = false;
    c->role = ROLE_OTHER;
    c->key_beg = c->args_beg = c->args_end = c->name_beg = 0;
    c->args_begun = c->args_done = c->args_is_string = c->name_known = false;
    c->emitted = 0;
    c->npairs = 0;
    c->xkinds = 0;
    c->vstream = false;
    c->vlead = -1;
    c->vsent = 0;
}

static void call_start_event(tc_parser_t *p, char **id_out) {
    call_ctx_t *c = &p->c;
    char *id = new_call_id(p);
    if (!id) {
        p->oom = true;
        return;
    }
    c->index = p->next_index++;
    c->started = true;
    tc_event_t ev = {.kind = TC_EV_CALL_START,
                     .index = c->index,
                     .id = id,
                     .name = c->name.data ? c->name.data : ""};
    deliver(p, &ev);
    *id_out = id;
}

/* Ids of started calls live in the record array slot reserved at start. */
static int reserve_call(tc_parser_t *p) {
    if (p->n_calls == p->cap_calls) {
        size_t nc = p->cap_calls ? p->cap_calls * 2 : 4;
        call_rec_t *r = realloc(p->calls, nc * sizeof *r);
        if (!r) return -1;
        p->calls = r;
        p->cap_calls = nc;
    }
    memset(&p->calls[p->n_calls], 0, sizeof p->calls[p->n_calls]);
    return 0;
}

/* Incremental mode: the call becomes visible (name known). */
static void call_begin_visible(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (!p->o.incremental || c->started) return;
    if (reserve_call(p)) {
        p->oom = true;
        return;
    }
    call_start_event(p, &p->calls[p->n_calls].id);
}

static void args_delta(tc_parser_t *p, const char *s, size_t n) {
    if (!n) return;
    tc_event_t ev = {.kind = TC_EV_CALL_ARGS, .index = p->c.index, .text = s, .len = n};
    deliver(p, &ev);
}

/* Incremental mode: send argument bytes checked so far (whole UTF-8 only). */
static void stream_args(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (!p->o.incremental || !c->started) return;
    if (c->envelope && c->args_begun && !c->args_is_string) {
        size_t end = c->args_done ? c->args_end : c->canon.len;
        size_t have = end - c->args_beg;
        size_t k = c->emitted +
                   utf8_complete_len(c->canon.data + c->args_beg + c->emitted, have - c->emitted);
        if (k > c->emitted) args_delta(p, c->canon.data + c->args_beg + c->emitted, k - c->emitted);
        c->emitted = k;
    }
}

/* Commits the call with final argument text args (valid JSON). */
static void call_commit(tc_parser_t *p, const char *args, size_t args_len) {
    call_ctx_t *c = &p->c;
    if (!c->started) {
        if (reserve_call(p)) {
            p->oom = true;
            return;
        }
        call_start_event(p, &p->calls[p->n_calls].id);
        if (p->oom) return;
    }
    call_rec_t *r = &p->calls[p->n_calls];
    if (args_len > c->emitted) args_delta(p, args + c->emitted, args_len - c->emitted);
    r->name = sl_strdup(c->name.data ? c->name.data : "");
    r->args = sl_strndup(args, args_len);
    if (!r->name || !r->args) {
        free(r->name);
        free(r->args);
        free(r->id);
        p->oom = true;
        return;
    }
    p->n_calls++;
    sl_buf_clear(&p->ws_hold); /* whitespace before a call is not content */
    tc_event_t ev = {.kind = TC_EV_CALL_END, .index = c->index};
    deliver(p, &ev);
    call_reset(c);
}

/* The call is malformed or truncated: its raw text becomes content. */
static void call_fail(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (c->started) {
        free(p->calls[p->n_calls].id);
        p->calls[p->n_calls].id = NULL;
        tc_event_t ev = {.kind = TC_EV_CALL_ABORT, .index = c->index};
        deliver(p, &ev);
    }
    if (c->raw.len) {
        /* held whitespace before it is content after all */
        if (p->ws_hold.len) emit_text(p, 0, p->ws_hold.data, p->ws_hold.len, false);
        sl_buf_clear(&p->ws_hold);
        emit_content(p, c->raw.data, c->raw.len);
    }
    call_reset(c);
    p->state = ST_CONTENT;
}

/* Checks a complete envelope {"name":..,"arguments"|"parameters":..} and
 * commits it. The arguments are taken from the compact text at the offsets
 * jsc reported (what incremental mode streamed); duplicate keys are refused
 * so that jansson and those offsets cannot disagree. */
static void envelope_commit(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    json_t *o = json_loadb(c->canon.data, c->canon.len, JSON_REJECT_DUPLICATES, NULL);
    const char *name = json_string_value(json_object_get(o, "name"));
    bool ok = name && tc_name_valid(name, strlen(name)) && c->name_known;
    if (ok && !c->args_begun && p->o.family == TC_FAMILY_LLAMA3)
        ok = false; /* plain JSON content */
    if (ok && c->started && strcmp(name, c->name.data ? c->name.data : "") != 0) ok = false;
    json_decref(o);
    if (!ok || (c->args_begun && !c->args_done)) {
        call_fail(p);
        return;
    }
    if (!c->args_begun) {
        call_commit(p, "{}", 2);
        return;
    }
    const char *a = c->canon.data + c->args_beg;
    size_t an = c->args_end - c->args_beg;
    if (a[0] == '{') {
        call_commit(p, a, an);
        return;
    }
    /* arguments given as a JSON string holding an object */
    json_t *str = a[0] == '"' ? json_loadb(a, an, JSON_DECODE_ANY, NULL) : NULL;
    json_t *inner = json_is_string(str)
                        ? json_loadb(json_string_value(str), json_string_length(str), 0, NULL)
                        : NULL;
    char *s = json_is_object(inner) ? json_dumps(inner, JSON_COMPACT) : NULL;
    json_decref(str);
    json_decref(inner);
    if (s && !c->emitted)
        call_commit(p, s, strlen(s));
    else
        call_fail(p);
    free(s);
}

/* ------------------------------------------------------------------ */
/* input primitives (all consumed bytes of a call go to c.raw) */

static const char *avail(const tc_parser_t *p, size_t *n) {
    *n = p->in.len - p->pos;
    return p->in.data ? p->in.data + p->pos : ""; /* (nothing fed yet) */
}

static void consume(tc_parser_t *p, size_t n) {
    if (n == 0) return;
    if (p->state == ST_CALL && sl_buf_append(&p->c.raw, p->in.data + p->pos, n)) p->oom = true;
    p->pos += n;
}

/* 1: at least one non-ws byte is next (ws consumed); 0: need more. */
static int skip_ws(tc_parser_t *p) {
    size_t n;
    const char *s = avail(p, &n);
    size_t i = 0;
    while (i < n && is_ws((unsigned char)s[i]))
        i++;
    consume(p, i);
    return i < n ? 1 : 0;
}

/* Which of the literals comes next (longest that can be decided): index >= 0
 * (consumed), -2 need more, -1 none. */
static int lit_any(tc_parser_t *p, const char *const *lits, int nlits) {
    size_t n;
    const char *s = avail(p, &n);
    int best = -1;
    size_t best_len = 0;
    bool partial = false;
    for (int i = 0; i < nlits; i++) {
        size_t k = strlen(lits[i]);
        if (n >= k) {
            if (memcmp(s, lits[i], k) == 0 && k > best_len) {
                best = i;
                best_len = k;
            }
        } else if (memcmp(s, lits[i], n) == 0) {
            partial = true;
        }
    }
    if (partial && !p->final) {
        /* a longer literal may still match: wait unless none could be longer */
        bool longer = false;
        for (int i = 0; i < nlits; i++)
            if (strlen(lits[i]) > best_len && n < strlen(lits[i]) && memcmp(s, lits[i], n) == 0)
                longer = true;
        if (longer) return -2;
    }
    if (best >= 0) consume(p, best_len);
    return best;
}

static int lit1(tc_parser_t *p, const char *lit) {
    const char *l[1] = {lit};
    int r = lit_any(p, l, 1);
    return r == 0 ? 1 : r == -2 ? 0 : -1;
}

/* Reads bytes up to `end` into dst (end consumed, not copied). 1 done,
 * 0 need more, -1 longer than max. */
static int read_until(tc_parser_t *p, const char *end, sl_buf_t *dst, size_t max) {
    size_t n;
    const char *s = avail(p, &n);
    size_t k = strlen(end);
    const char *hit = memmem(s, n, end, k);
    size_t take = hit ? (size_t)(hit - s) : n - partial_suffix(s, n, end);
    if (dst->len + take > max) return -1;
    if (sl_buf_append(dst, s, take)) {
        p->oom = true;
        return -1;
    }
    consume(p, take);
    if (!hit) return 0;
    consume(p, k);
    return 1;
}

static void envelope_event(tc_parser_t *p, const jsc_ev_t *e) {
    call_ctx_t *c = &p->c;
    if (e->depth != 1) return;
    switch (e->kind) {
    case JE_KEY_BEGIN:
        c->key_beg = e->pos;
        break;
    case JE_KEY_END: {
        json_t *k =
            json_loadb(c->canon.data + c->key_beg, e->pos - c->key_beg, JSON_DECODE_ANY, NULL);
        const char *ks = json_string_value(k);
        c->role = !ks                                                               ? ROLE_OTHER
                  : strcmp(ks, "name") == 0                                         ? ROLE_NAME
                  : (strcmp(ks, "arguments") == 0 || strcmp(ks, "parameters") == 0) ? ROLE_ARGS
                                                                                    : ROLE_OTHER;
        if (c->role == ROLE_ARGS && c->args_begun) c->role = ROLE_OTHER; /* second one: ignored */
        if (c->role == ROLE_NAME && c->name_known) c->role = ROLE_OTHER;
        json_decref(k);
        break;
    }
    case JE_VAL_BEGIN:
        if (c->role == ROLE_NAME) c->name_beg = e->pos;
        if (c->role == ROLE_ARGS) {
            c->args_beg = e->pos;
            c->args_begun = true;
            c->args_is_string = c->canon.data[e->pos] == '"';
        }
        break;
    case JE_VAL_END:
        if (c->role == ROLE_NAME) {
            json_t *v = json_loadb(c->canon.data + c->name_beg, e->pos - c->name_beg,
                                   JSON_DECODE_ANY, NULL);
            const char *vs = json_string_value(v);
            if (vs && tc_name_valid(vs, strlen(vs))) {
                sl_buf_clear(&c->name);
                if (sl_buf_puts(&c->name, vs)) p->oom = true;
                c->name_known = true;
            }
            json_decref(v);
        }
        if (c->role == ROLE_ARGS) {
            c->args_end = e->pos;
            c->args_done = true;
        }
        c->role = ROLE_OTHER;
        break;
    }
    /* Visible once the name is known and the arguments have begun. */
    if (c->name_known && c->args_begun && !c->args_is_string) call_begin_visible(p);
}

/* Feeds available bytes to c.js (into c.canon). 1 done, 0 need more, -1 bad. */
static int json_feed(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    size_t n;
    const char *s = avail(p, &n);
    size_t i = 0;
    int r = JSC_MORE;
    for (; i < n; i++) {
        r = jsc_feed(&c->js, (unsigned char)s[i], &c->canon);
        if (c->envelope)
            for (int k = 0; k < c->js.nev; k++)
                envelope_event(p, &c->js.ev[k]);
        if (r != JSC_MORE) break;
    }
    if (r == JSC_ERR) {
        consume(p, i);
        return -1;
    }
    consume(p, r == JSC_DONE ? i + 1 : i);
    if (r == JSC_DONE || r == JSC_DONE_NC) return 1;
    if (p->final && jsc_end_ok(&c->js)) return 1;
    return 0;
}

static void start_json(call_ctx_t *c, bool envelope, bool any_top) {
    jsc_init(&c->js, any_top);
    c->envelope = envelope;
    sl_buf_clear(&c->canon);
}

/* Arguments JSON (not an envelope) complete: commit it. */
static void args_json_commit(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    json_t *o = json_loadb(c->canon.data, c->canon.len, 0, NULL);
    bool ok = json_is_object(o);
    json_decref(o);
    if (ok)
        call_commit(p, c->canon.data, c->canon.len);
    else
        call_fail(p);
}

/* Incremental streaming for bare-argument families (canon = the arguments). */
static void stream_bare_args(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (!p->o.incremental || !c->started || c->envelope) return;
    size_t k =
        utf8_complete_len(c->canon.data + c->emitted, c->canon.len - c->emitted) + c->emitted;
    if (k > c->emitted) args_delta(p, c->canon.data + c->emitted, k - c->emitted);
    c->emitted = k;
}

/* GLM-4.5: one <arg_key>/<arg_value> pair into c.args as "key":value. */
static int glm45_pair(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    const json_t *params = tc_tool_params(p->o.tools, c->name.data);
    const json_t *props = json_object_get(params, "properties");
    /* key: trimmed */
    size_t kb = 0, ke = c->tmp.len;
    while (kb < ke && is_ws((unsigned char)c->tmp.data[kb]))
        kb++;
    while (ke > kb && is_ws((unsigned char)c->tmp.data[ke - 1]))
        ke--;
    /* (a NUL in a key: jansson, and so every later reader, refuses it) */
    if (memchr(c->tmp.data + kb, 0, ke - kb)) return -1;
    json_t *key = json_stringn(c->tmp.data + kb, ke - kb);
    if (!key) return -1;
    const json_t *ps = json_object_get(props, json_string_value(key));
    const char *type = json_string_value(json_object_get(ps, "type"));
    json_t *val = NULL;
    const char *v = c->tmp2.data ? c->tmp2.data : "";
    size_t vl = c->tmp2.len;
    if (!(type && strcmp(type, "string") == 0)) {
        size_t b = 0, e = vl;
        while (b < e && is_ws((unsigned char)v[b]))
            b++;
        while (e > b && is_ws((unsigned char)v[e - 1]))
            e--;
        val = json_loadb(v + b, e - b, JSON_DECODE_ANY, NULL);
    }
    if (!val) val = json_stringn(v, vl);
    char *ks = json_dumps(key, JSON_ENCODE_ANY | JSON_COMPACT);
    char *vs = val ? json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(key);
    json_decref(val);
    int rc = -1;
    if (ks && vs) {
        size_t before = c->args.len;
        rc = sl_buf_puts(&c->args, c->npairs ? "," : "{") || sl_buf_puts(&c->args, ks) ||
                     sl_buf_putc(&c->args, ':') || sl_buf_puts(&c->args, vs)
                 ? -1
                 : 0;
        c->npairs++;
        if (rc == 0 && p->o.incremental && c->started) {
            args_delta(p, c->args.data + before, c->args.len - before);
            c->emitted = c->args.len;
        }
    }
    free(ks);
    free(vs);
    sl_buf_clear(&c->tmp);
    sl_buf_clear(&c->tmp2);
    return rc;
}

static void glm45_commit(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (sl_buf_puts(&c->args, c->npairs ? "}" : "{}")) {
        p->oom = true;
        return;
    }
    call_commit(p, c->args.data, c->args.len);
}

/* Reads a name made of name chars up to (not including) a byte not in the
 * set. 1 done (stop byte next), 0 need more, -1 empty/too long. */
static int read_name(tc_parser_t *p, sl_buf_t *dst) {
    size_t n;
    const char *s = avail(p, &n);
    size_t i = 0;
    while (i < n && is_name_char((unsigned char)s[i]))
        i++;
    if (dst->len + i > TC_MAX_NAME) return -1;
    if (sl_buf_append(dst, s, i)) return -1;
    consume(p, i);
    if (i == n && !p->final) return 0;
    return dst->len ? 1 : -1;
}

/* ------------------------------------------------------------------ */
/* per-family call bodies: return 1 progress, 0 wait */

#define NEED(x)                                                                                    \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ == 0) return 0;                                                                     \
        if (r_ < 0) {                                                                              \
            call_fail(p);                                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static char peek(const tc_parser_t *p) {
    return p->in.data[p->pos];
}

/* Steps several call bodies share. Each returns what a body returns (1
 * progress, 0 wait), failing the call through NEED on a mismatch. */

/* Expects the '{' that opens a call's arguments, then moves to sub-state
 * next. envelope: the object is a {"name":..,"arguments":..} envelope rather
 * than the bare arguments. */
static int step_open_args(tc_parser_t *p, bool envelope, int next) {
    NEED(skip_ws(p));
    if (peek(p) != '{') NEED(-1);
    start_json(&p->c, envelope, false);
    p->c.sub = next;
    return 1;
}

/* Expects the literal that closes a call; a missing close is forgiven (the
 * call itself is complete). Commits the call and goes back to content. */
static int step_close(tc_parser_t *p, const char *close) {
    if (!skip_ws(p)) return 0;
    if (lit1(p, close) == 0) return 0;
    envelope_commit(p);
    p->state = ST_CONTENT;
    return 1;
}

/* Feeds bare arguments to their end, commits the call and goes back to
 * content (formats with nothing after the arguments). */
static int step_bare_args_last(tc_parser_t *p) {
    int r = json_feed(p);
    stream_bare_args(p);
    NEED(r);
    args_json_commit(p);
    p->state = ST_CONTENT;
    return 1;
}

static int body_hermes(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    switch (c->sub) {
    case 0:
        return step_open_args(p, true, 1);
    case 1: {
        int r = json_feed(p);
        stream_args(p);
        NEED(r);
        c->sub = 2;
        return 1;
    }
    case 2:
        return step_close(p, "</tool_call>");
    }
    return 0;
}

static int body_glm45(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    static const char *const next[] = {"<arg_key>", "</tool_call>"};
    switch (c->sub) {
    case 0: {
        if (!skip_ws(p)) return 0;
        NEED(read_name(p, &c->name));
        call_begin_visible(p);
        c->sub = 1;
        return 1;
    }
    case 1: {
        if (!skip_ws(p)) return 0;
        int r = lit_any(p, next, 2);
        if (r == -2) return 0;
        if (r == 0)
            c->sub = 2;
        else if (r == 1) {
            glm45_commit(p);
            p->state = ST_CONTENT;
        } else {
            NEED(-1);
        }
        return 1;
    }
    case 2:
        NEED(read_until(p, "</arg_key>", &c->tmp, 1024));
        c->sub = 3;
        return 1;
    case 3:
        if (!skip_ws(p)) return 0;
        NEED(lit1(p, "<arg_value>"));
        c->sub = 4;
        return 1;
    case 4:
        NEED(read_until(p, "</arg_value>", &c->tmp2, (size_t)64 << 20));
        NEED(glm45_pair(p) == 0 ? 1 : -1);
        c->sub = 1;
        return 1;
    }
    return 0;
}

static int body_deepseek(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    static const char *const blk[] = {TC_DS_CALL_BEGIN, TC_DS_CALLS_END};
    static const char *const fence[] = {"```json", "```"};
    bool v31 = p->o.family == TC_FAMILY_DEEPSEEK_V31;
    switch (c->sub) {
    case 0: { /* inside the block: a call or the end */
        if (!skip_ws(p)) return 0;
        int r = lit_any(p, blk, 2);
        if (r == -2) return 0;
        if (r == 0)
            c->sub = 1;
        else if (r == 1) {
            call_reset(c);
            p->state = ST_CONTENT;
        } else {
            NEED(-1);
        }
        return 1;
    }
    case 1:
        NEED(read_until(p, TC_DS_SEP, &c->tmp, 64));
        if (v31) {
            if (!tc_name_valid(c->tmp.data, c->tmp.len)) NEED(-1);
            if (sl_buf_append(&c->name, c->tmp.data, c->tmp.len)) NEED(-1);
            call_begin_visible(p);
            c->sub = 4;
        } else {
            c->sub = 2;
        }
        return 1;
    case 2:
        NEED(read_until(p, "\n", &c->name, TC_MAX_NAME));
        if (!tc_name_valid(c->name.data, c->name.len)) NEED(-1);
        call_begin_visible(p);
        c->sub = 3;
        return 1;
    case 3: {
        if (!skip_ws(p)) return 0;
        if (peek(p) != '`') {
            c->sub = 4;
            return 1;
        }
        int r = lit_any(p, fence, 2);
        if (r == -2) return 0;
        NEED(r >= 0 ? 1 : -1);
        c->sub = 4;
        return 1;
    }
    case 4:
        if (!skip_ws(p)) return 0;
        if (peek(p) != '{') NEED(-1);
        start_json(c, false, false);
        c->sub = 5;
        return 1;
    case 5: {
        int r = json_feed(p);
        stream_bare_args(p);
        NEED(r);
        c->sub = 6;
        return 1;
    }
    case 6: {
        if (!skip_ws(p)) return 0;
        if (peek(p) == '`') {
            int r = lit1(p, "```");
            if (r == 0) return 0;
            if (r < 0) NEED(-1);
            return 1;
        }
        int r = lit1(p, TC_DS_CALL_END);
        if (r == 0) return 0;
        args_json_commit(p);
        if (r < 0)
            p->state = ST_CONTENT; /* forgiven: see hermes */
        else if (p->state == ST_CALL)
            c->sub = 0;
        return 1;
    }
    }
    return 0;
}

static int body_internlm2(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    switch (c->sub) {
    case 0:
        if (!skip_ws(p)) return 0;
        NEED(lit1(p, "<|plugin|>"));
        c->sub = 1;
        return 1;
    case 1:
        return step_open_args(p, true, 2);
    case 2: {
        int r = json_feed(p);
        stream_args(p);
        NEED(r);
        c->sub = 3;
        return 1;
    }
    case 3:
        return step_close(p, "<|action_end|>");
    }
    return 0;
}

static int body_mistral(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    switch (c->sub) {
    case 0:
        NEED(skip_ws(p));
        if (peek(p) == '[') {
            consume(p, 1);
            c->sub = 1;
        } else {
            c->sub = 10;
        }
        return 1;
    case 1: /* array: an element or the end */
    case 3:
        NEED(skip_ws(p));
        if (c->sub == 1 && peek(p) == ']') {
            consume(p, 1);
            call_reset(c);
            p->state = ST_CONTENT;
            return 1;
        }
        if (peek(p) != '{') NEED(-1);
        start_json(c, true, false);
        c->sub = 2;
        return 1;
    case 2: {
        int r = json_feed(p);
        stream_args(p);
        NEED(r);
        envelope_commit(p);
        if (p->state == ST_CALL) c->sub = 4;
        return 1;
    }
    case 4: /* after an element */
        if (!skip_ws(p)) return 0;
        if (peek(p) == ',') {
            consume(p, 1);
            call_reset(c);
            c->sub = 3;
        } else {
            if (peek(p) == ']') consume(p, 1);
            call_reset(c);
            p->state = ST_CONTENT;
        }
        return 1;
    case 10: /* NAME[ARGS]{...} */
        NEED(read_name(p, &c->name));
        NEED(lit1(p, "[ARGS]"));
        call_begin_visible(p);
        c->sub = 11;
        return 1;
    case 11:
        return step_open_args(p, false, 12);
    case 12:
        return step_bare_args_last(p);
    }
    return 0;
}

static int body_llama3(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    switch (c->sub) {
    case 0: /* after <|python_tag|> */
        NEED(skip_ws(p));
        if (peek(p) == '{') {
            start_json(c, true, false);
            c->sub = 1;
        } else {
            c->sub = 5;
        }
        return 1;
    case 1: {
        int r = json_feed(p);
        stream_args(p);
        NEED(r);
        envelope_commit(p);
        if (p->state == ST_CALL) c->sub = 2;
        return 1;
    }
    case 2: /* after a call: "; {...}" continues */
        if (!skip_ws(p)) return 0;
        if (peek(p) == ';') {
            consume(p, 1);
            c->sub = 3;
        } else {
            call_reset(c);
            p->state = ST_CONTENT;
        }
        return 1;
    case 3:
        return step_open_args(p, true, 1);
    case 5: /* builtin: name.call(k=v, ...) */
        NEED(read_name(p, &c->name));
        NEED(lit1(p, ".call("));
        c->sub = 6;
        return 1;
    case 6:
        NEED(skip_ws(p));
        if (peek(p) == ')') {
            consume(p, 1);
            if (sl_buf_puts(&c->args, c->npairs ? "}" : "{}")) NEED(-1);
            call_commit(p, c->args.data, c->args.len);
            c->sub = 2;
            return 1;
        }
        NEED(read_name(p, &c->tmp));
        c->sub = 7;
        return 1;
    case 7:
        NEED(skip_ws(p));
        NEED(lit1(p, "="));
        c->sub = 17;
        return 1;
    case 17:
        NEED(skip_ws(p));
        start_json(c, false, true);
        c->sub = 8;
        return 1;
    case 8: {
        NEED(json_feed(p));
        json_t *k = json_stringn(c->tmp.data, c->tmp.len);
        char *ks = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
        json_decref(k);
        int bad = !ks || sl_buf_puts(&c->args, c->npairs ? "," : "{") ||
                  sl_buf_puts(&c->args, ks) || sl_buf_putc(&c->args, ':') ||
                  sl_buf_append(&c->args, c->canon.data, c->canon.len);
        free(ks);
        if (bad) NEED(-1);
        c->npairs++;
        sl_buf_clear(&c->tmp);
        c->sub = 9;
        return 1;
    }
    case 9:
        NEED(skip_ws(p));
        if (peek(p) == ',') {
            consume(p, 1);
            c->sub = 6;
            return 1;
        }
        if (peek(p) != ')') NEED(-1);
        consume(p, 1);
        if (sl_buf_putc(&c->args, '}')) NEED(-1);
        call_commit(p, c->args.data, c->args.len);
        c->sub = 2;
        return 1;
    }
    return 0;
}

static int body_glm4(tc_parser_t *p) {
    switch (p->c.sub) {
    case 0:
        return step_open_args(p, false, 1);
    case 1:
        return step_bare_args_last(p);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Qwen3-Coder (XML calls)
 *
 *   <tool_call>\n<function=NAME>\n
 *   <parameter=KEY>\nVALUE\n</parameter>\n ...
 *   </function>\n</tool_call>
 *
 * (the template's layout; any whitespace between the tags is accepted, and
 * a bare <function=...> without <tool_call> is read as a call too). A VALUE
 * is raw text up to the first </parameter>, less exactly one leading and one
 * trailing newline (the ones the format adds). Each parameter becomes one
 * "key":value pair of the arguments object, in c.args, by the kinds of its
 * schema (tc_xml_param_kinds): a plain string is escaped into c.args as it
 * arrives (so long string arguments stream), anything else is converted when
 * its </parameter> comes. c.args only ever grows, so incremental mode sends
 * it as it is built and the stream equals the result by construction. */

enum { X_OPEN = 0, X_NAME, X_PARAMS, X_PNAME, X_VALUE, X_CLOSE };

#define TC_XML_MAX_VALUE ((size_t)64 << 20) /* bytes of one parameter value */

/* Kinds a schema allows (TC_XK_* bits). top: the parameter's own schema,
 * where "no type information" means any text (a string); inside anyOf /
 * oneOf it means any JSON value. */
static int xml_value_kind(const json_t *v) {
    if (json_is_string(v)) return TC_XK_STRING;
    if (json_is_null(v)) return TC_XK_NULL;
    if (json_is_boolean(v)) return TC_XK_BOOL;
    return TC_XK_OTHER;
}

static int xml_type_kind(const json_t *t) {
    const char *s = json_string_value(t);
    if (!s) return TC_XK_OTHER;
    if (strcmp(s, "string") == 0) return TC_XK_STRING;
    if (strcmp(s, "null") == 0) return TC_XK_NULL;
    if (strcmp(s, "boolean") == 0) return TC_XK_BOOL;
    return TC_XK_OTHER;
}

static int xml_kinds(const json_t *s, int depth, bool top) {
    if (!json_is_object(s) || depth > 16) return top ? TC_XK_STRING : TC_XK_OTHER;
    const json_t *t = json_object_get(s, "type"), *v;
    size_t i;
    int k = 0;
    if (json_is_string(t)) return xml_type_kind(t);
    if (json_is_array(t) && json_array_size(t) > 0) {
        json_array_foreach(t, i, v) k |= xml_type_kind(v);
        return k;
    }
    const json_t *en = json_object_get(s, "enum");
    if (json_is_array(en) && json_array_size(en) > 0) {
        json_array_foreach(en, i, v) k |= xml_value_kind(v);
        return k;
    }
    if (json_object_get(s, "const")) return xml_value_kind(json_object_get(s, "const"));
    static const char *const alts[] = {"anyOf", "oneOf"};
    for (int a = 0; a < 2; a++) {
        const json_t *br = json_object_get(s, alts[a]);
        if (json_is_array(br) && json_array_size(br) > 0) {
            json_array_foreach(br, i, v) k |= xml_kinds(v, depth + 1, false);
            return k;
        }
    }
    /* keywords that only make sense for non-strings (or that we cannot see
     * through): the value is JSON */
    static const char *const json_kw[] = {
        "$ref",    "allOf",   "properties",       "items",            "prefixItems",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minItems", "maxItems", "required",       "additionalProperties"};
    for (size_t q = 0; q < SL_ARRAY_LEN(json_kw); q++)
        if (json_object_get(s, json_kw[q])) return TC_XK_OTHER;
    return top ? TC_XK_STRING : TC_XK_OTHER;
}

int tc_xml_param_kinds(const json_t *schema) {
    return xml_kinds(schema, 0, true);
}

/* Appends s[0..n) as the inside of a JSON string: '"', '\\' and control
 * characters escaped, other text verbatim, invalid UTF-8 replaced by U+FFFD
 * (one per byte, as for content). Escaping is per character, so escaping a
 * text in pieces cut at character boundaries gives the same bytes. */
static int json_escape_append(sl_buf_t *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        bool v;
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i, &v);
        if (k == 0) v = false; /* incomplete at the very end */
        if (!v) {
            if (sl_buf_puts(b, "\xef\xbf\xbd")) return -1;
            i++;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        int r = 0;
        if (c == '"')
            r = sl_buf_puts(b, "\\\"");
        else if (c == '\\')
            r = sl_buf_puts(b, "\\\\");
        else if (c == '\n')
            r = sl_buf_puts(b, "\\n");
        else if (c == '\r')
            r = sl_buf_puts(b, "\\r");
        else if (c == '\t')
            r = sl_buf_puts(b, "\\t");
        else if (c < 0x20)
            r = sl_buf_printf(b, "\\u%04x", c);
        else
            r = sl_buf_append(b, s + i, k);
        if (r) return -1;
        i += k;
    }
    return 0;
}

/* Incremental mode: sends what c.args gained. */
static void xml_emit(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (!p->o.incremental || !c->started || c->args.len <= c->emitted) return;
    args_delta(p, c->args.data + c->emitted, c->args.len - c->emitted);
    c->emitted = c->args.len;
}

/* The parameter name in c.tmp is complete: writes its key and, for a plain
 * string, the opening quote. 0, or -1 (a bad name: the call is malformed). */
static int xml_param_begin(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    const char *k = c->tmp.data ? c->tmp.data : "";
    size_t kn = c->tmp.len;
    if (kn == 0 || memchr(k, '<', kn) || memchr(k, '\n', kn) || memchr(k, 0, kn)) return -1;
    json_t *key = json_stringn(k, kn); /* NULL for invalid UTF-8 */
    char *ks = key ? json_dumps(key, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    const json_t *props = json_object_get(tc_tool_params(p->o.tools, c->name.data), "properties");
    c->xkinds = key ? tc_xml_param_kinds(json_object_get(props, json_string_value(key))) : 0;
    json_decref(key);
    if (!ks) return -1;
    /* nullable strings wait for their end ("null" is null) */
    c->vstream = tc_xml_is_string(c->xkinds) && !(c->xkinds & TC_XK_NULL);
    int bad = sl_buf_puts(&c->args, c->npairs ? "," : "{") || sl_buf_puts(&c->args, ks) ||
              sl_buf_putc(&c->args, ':') || (c->vstream && sl_buf_putc(&c->args, '"'));
    free(ks);
    if (bad) {
        p->oom = true;
        return -1;
    }
    c->npairs++;
    c->vlead = -1;
    c->vsent = 0;
    sl_buf_clear(&c->tmp);
    sl_buf_clear(&c->tmp2);
    xml_emit(p);
    return 0;
}

/* A streamed string value: escapes what is certain so far (not a trailing
 * newline, which may be the format's, nor an incomplete character). */
static void xml_value_stream(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (!c->vstream || c->tmp2.len == 0) return;
    if (c->vlead < 0) c->vsent = (size_t)(c->vlead = c->tmp2.data[0] == '\n');
    size_t end = c->tmp2.len;
    if (end > c->vsent && c->tmp2.data[end - 1] == '\n') end--;
    if (end <= c->vsent) return;
    size_t k = utf8_complete_len(c->tmp2.data + c->vsent, end - c->vsent);
    if (k == 0) return;
    if (json_escape_append(&c->args, c->tmp2.data + c->vsent, k)) {
        p->oom = true;
        return;
    }
    c->vsent += k;
    xml_emit(p);
}

/* True when s[0..n) is one JSON value (whitespace around allowed); its
 * compact text (strings and numbers verbatim) is appended to out. */
static bool json_value_compact(const char *s, size_t n, sl_buf_t *out) {
    size_t b = 0, e = n;
    while (b < e && is_ws((unsigned char)s[b]))
        b++;
    while (e > b && is_ws((unsigned char)s[e - 1]))
        e--;
    if (b == e) return false;
    jsc_t j;
    jsc_init(&j, true);
    size_t start = out->len;
    int r = JSC_MORE;
    size_t i = b;
    for (; i < e && r == JSC_MORE; i++)
        r = jsc_feed(&j, (unsigned char)s[i], out);
    bool ok = (r == JSC_DONE && i == e) || (r == JSC_MORE && jsc_end_ok(&j));
    if (ok) {
        /* jansson agrees (and refuses duplicate keys) */
        json_t *v = json_loadb(out->data + start, out->len - start,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        ok = v != NULL;
        json_decref(v);
    }
    if (!ok) out->len = start;
    if (out->data) out->data[out->len] = 0;
    return ok;
}

static bool eq_nocase(const char *s, size_t n, const char *lit) {
    if (strlen(lit) != n) return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != lit[i]) return false;
    }
    return true;
}

/* </parameter> came: the value (tmp2) less one leading and one trailing
 * newline becomes the pair's JSON value. 0 or -1 (out of memory). */
static int xml_param_end(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    const char *v = c->tmp2.data ? c->tmp2.data : "";
    size_t lead = c->tmp2.len > 0 && v[0] == '\n';
    size_t end = c->tmp2.len;
    if (end > lead && v[end - 1] == '\n') end--;
    int bad = 0;
    if (c->vstream) {
        if (c->vlead < 0) c->vsent = lead;
        bad = json_escape_append(&c->args, v + c->vsent, end - c->vsent) ||
              sl_buf_putc(&c->args, '"');
    } else {
        const char *s = v + lead;
        size_t n = end - lead;
        if ((c->xkinds & TC_XK_NULL) && n == 4 && memcmp(s, "null", 4) == 0) {
            bad = sl_buf_puts(&c->args, "null");
        } else if (!tc_xml_is_string(c->xkinds) && json_value_compact(s, n, &c->args)) {
            /* appended */
        } else if ((c->xkinds & TC_XK_BOOL) &&
                   (eq_nocase(s, n, "true") || eq_nocase(s, n, "false"))) {
            /* Python's True / False (the Qwen3-Coder template renders
             * booleans with |string) */
            bad = sl_buf_puts(&c->args, (s[0] | 0x20) == 't' ? "true" : "false");
        } else {
            bad = sl_buf_putc(&c->args, '"') || json_escape_append(&c->args, s, n) ||
                  sl_buf_putc(&c->args, '"');
        }
    }
    sl_buf_clear(&c->tmp2);
    c->vstream = false;
    if (bad) {
        p->oom = true;
        return -1;
    }
    xml_emit(p);
    return 0;
}

/* </function> came: the object is closed and checked (a parameter given
 * twice is a malformed call), then committed. */
static void xml_commit(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    if (sl_buf_puts(&c->args, c->npairs ? "}" : "{}")) {
        p->oom = true;
        return;
    }
    json_t *o =
        json_loadb(c->args.data, c->args.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    bool ok = json_is_object(o);
    json_decref(o);
    if (ok)
        call_commit(p, c->args.data, c->args.len);
    else
        call_fail(p);
}

static int body_xml(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    static const char *const next[] = {"<parameter=", "</function>"};
    switch (c->sub) {
    case X_OPEN: /* after <tool_call> */
        NEED(skip_ws(p));
        NEED(lit1(p, "<function="));
        c->sub = X_NAME;
        return 1;
    case X_NAME:
        NEED(read_name(p, &c->name));
        NEED(lit1(p, ">"));
        call_begin_visible(p);
        c->sub = X_PARAMS;
        return 1;
    case X_PARAMS: {
        if (!skip_ws(p)) return 0;
        int r = lit_any(p, next, 2);
        if (r == -2) return 0;
        if (r < 0) NEED(-1);
        c->sub = r == 0 ? X_PNAME : X_CLOSE;
        return 1;
    }
    case X_PNAME:
        NEED(read_until(p, ">", &c->tmp, TC_XML_MAX_PNAME));
        NEED(xml_param_begin(p) == 0 ? 1 : -1);
        c->sub = X_VALUE;
        return 1;
    case X_VALUE: {
        int r = read_until(p, TC_XML_PARAM_CLOSE, &c->tmp2, TC_XML_MAX_VALUE);
        if (r == 0) xml_value_stream(p);
        NEED(r);
        NEED(xml_param_end(p) == 0 ? 1 : -1);
        c->sub = X_PARAMS;
        return 1;
    }
    case X_CLOSE: /* after </function>: </tool_call>, forgiven when missing */
        if (!skip_ws(p)) return 0;
        if (lit1(p, "</tool_call>") == 0) return 0;
        xml_commit(p);
        p->state = ST_CONTENT;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* harmony (gpt-oss)
 *
 * The output is a sequence of messages. The prompt ends with the header's
 * start "<|start|>assistant", so the first message's header follows at once;
 * later ones begin with <|start|>. A header runs to <|message|>:
 *
 *   [assistant] [to=RECIPIENT] <|channel|>CHANNEL [to=RECIPIENT]
 *   [<|constrain|>TYPE | TYPE] <|message|>BODY (<|end|> | <|call|> | <|return|>)
 *
 * analysis -> reasoning; final and commentary without a recipient
 * (preambles) -> content; to=functions.NAME -> a call whose body is its JSON
 * arguments. <|call|> and <|return|> end generation, so they rarely reach the
 * parser; the end of the output closes the last message. States: START =
 * between messages (expects <|start|>), CALL/H_HDR = reading a header (its
 * bytes go to c.raw, so a broken header becomes content), REASONING /
 * CONTENT = a message body, CALL/H_ARGS* = a call body. Text that is no
 * header is content up to the next <|start|>. */

enum { H_HDR = 0, H_ARGS_OPEN, H_ARGS, H_ARGS_END };
#define TC_H_MAX_HEADER 256

static const char *const H_STOPS[] = {TC_H_END, TC_H_RETURN, TC_H_CALL, TC_H_START};

static void harmony_header_begin(tc_parser_t *p) {
    call_reset(&p->c);
    p->state = ST_CALL;
    p->c.sub = H_HDR;
}

/* A message body up to its end marker (or a <|start|> that opens the next
 * message without one). */
static int harmony_text(tc_parser_t *p, bool reasoning) {
    size_t n;
    const char *s = avail(p, &n);
    if (n == 0) return 0;
    size_t best = n;
    int bi = -1;
    for (int i = 0; i < 4; i++) {
        const char *h = memmem(s, n, H_STOPS[i], strlen(H_STOPS[i]));
        if (h && (size_t)(h - s) < best) {
            best = (size_t)(h - s);
            bi = i;
        }
    }
    size_t take = best;
    if (bi < 0 && !p->final) {
        size_t hold = 0;
        for (int i = 0; i < 4; i++)
            hold = SL_MAX(hold, partial_suffix(s, n, H_STOPS[i]));
        take = n - hold;
    }
    if (take) {
        if (reasoning)
            emit_reasoning(p, s, take);
        else
            emit_content(p, s, take);
        consume(p, take);
    }
    if (bi < 0) return take > 0;
    consume(p, strlen(H_STOPS[bi]));
    if (reasoning) {
        sl_buf_clear(&p->rws_hold);
        emit_text(p, 1, NULL, 0, true);
    }
    if (bi == 3)
        harmony_header_begin(p);
    else
        p->state = ST_START;
    return 1;
}

/* Between messages: whitespace, then <|start|> (or a header without it). */
static int harmony_start(tc_parser_t *p) {
    size_t n;
    const char *s = avail(p, &n);
    size_t ws = 0;
    while (ws < n && is_ws((unsigned char)s[ws]))
        ws++;
    consume(p, ws);
    if (ws == n) return 0;
    int r = lit1(p, TC_H_START);
    if (r == 0) return 0;
    harmony_header_begin(p);
    return 1;
}

static bool h_hdr_char(unsigned char ch) {
    return is_name_char(ch) || ch == '.' || ch == ':' || ch == '=' || ch == '/' || ch == ' ';
}

/* Whether s[0..n) can begin a header: it starts with the role, "to=" or
 * <|channel|>, and holds only header characters and the markers
 * <|channel|> / <|constrain|> (the last one possibly cut at the end). */
static bool h_header_prefix_ok(const char *s, size_t n) {
    static const char *const starts[] = {"assistant", "to=", TC_H_CHANNEL};
    static const char *const marks[] = {TC_H_CHANNEL, TC_H_CONSTRAIN};
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    if (i < n) {
        bool ok = false;
        for (int k = 0; k < 3; k++) {
            size_t m = SL_MIN(n - i, strlen(starts[k]));
            if (memcmp(s + i, starts[k], m) == 0) ok = true;
        }
        if (!ok) return false;
    }
    while (i < n) {
        if (s[i] == '<') {
            bool ok = false;
            for (int k = 0; k < 2 && !ok; k++) {
                size_t ml = strlen(marks[k]), m = SL_MIN(n - i, ml);
                if (memcmp(s + i, marks[k], m) == 0) {
                    ok = true;
                    i += m;
                }
            }
            if (!ok) return false;
        } else if (h_hdr_char((unsigned char)s[i])) {
            i++;
        } else {
            return false;
        }
    }
    return true;
}

/* The recipient of a complete header ("to=X": X up to a space or '<'), or
 * NULL; *len its length. */
static const char *h_recipient(const char *s, size_t n, size_t *len) {
    for (size_t i = 0; i + 3 <= n; i++) {
        if (memcmp(s + i, "to=", 3) != 0) continue;
        if (i > 0 && s[i - 1] != ' ' && s[i - 1] != '>') continue;
        size_t b = i + 3, e = b;
        while (e < n && s[e] != ' ' && s[e] != '<')
            e++;
        *len = e - b;
        return s + b;
    }
    return NULL;
}

/* The channel word after <|channel|> (empty when absent). */
static const char *h_channel(const char *s, size_t n, size_t *len) {
    const char *h = memmem(s, n, TC_H_CHANNEL, strlen(TC_H_CHANNEL));
    *len = 0;
    if (!h) return "";
    const char *b = h + strlen(TC_H_CHANNEL), *end = s + n, *e = b;
    while (e < end && is_name_char((unsigned char)*e))
        e++;
    *len = (size_t)(e - b);
    return b;
}

static int harmony_header(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    size_t n;
    const char *s = avail(p, &n);
    const size_t ml = strlen(TC_H_MESSAGE);
    const char *h = memmem(s, n, TC_H_MESSAGE, ml);
    size_t k = h ? (size_t)(h - s) : n - (p->final ? 0 : partial_suffix(s, n, TC_H_MESSAGE));
    if (c->tmp.len + k > TC_H_MAX_HEADER) k = TC_H_MAX_HEADER + 1 - c->tmp.len;
    if (k && sl_buf_append(&c->tmp, s, k)) NEED(-1);
    consume(p, k);
    if (c->tmp.len > TC_H_MAX_HEADER || !h_header_prefix_ok(c->tmp.data, c->tmp.len)) NEED(-1);
    if (!h) return k > 0;
    consume(p, ml);
    size_t rl = 0, cl = 0;
    const char *hdr = c->tmp.data ? c->tmp.data : ""; /* (an empty header) */
    const char *rcp = h_recipient(hdr, c->tmp.len, &rl);
    const char *ch = h_channel(hdr, c->tmp.len, &cl);
    const size_t fl = strlen("functions.");
    if (rcp && !p->o.no_calls && rl > fl && memcmp(rcp, "functions.", fl) == 0 &&
        tc_name_valid(rcp + fl, rl - fl)) {
        sl_buf_clear(&c->name);
        if (sl_buf_append(&c->name, rcp + fl, rl - fl)) NEED(-1);
        c->sub = H_ARGS_OPEN;
        return 1;
    }
    /* a message body: analysis is reasoning, anything else (final,
     * commentary preambles, messages to other recipients) is content;
     * consecutive messages of one kind are joined by a blank line */
    bool reasoning = !rcp && cl == 8 && memcmp(ch, "analysis", 8) == 0;
    call_reset(c);
    if (reasoning) {
        if (p->reasoning_started) emit_reasoning(p, "\n\n", 2);
        p->state = ST_REASONING;
    } else {
        if (p->content_started) emit_content(p, "\n\n", 2);
        p->state = ST_CONTENT;
    }
    return 1;
}

static int body_harmony(tc_parser_t *p) {
    call_ctx_t *c = &p->c;
    switch (c->sub) {
    case H_HDR:
        return harmony_header(p);
    case H_ARGS_OPEN:
        NEED(skip_ws(p));
        if (peek(p) != '{') NEED(-1);
        start_json(c, false, false);
        call_begin_visible(p);
        c->sub = H_ARGS;
        return 1;
    case H_ARGS: {
        int r = json_feed(p);
        stream_bare_args(p);
        NEED(r);
        c->sub = H_ARGS_END;
        return 1;
    }
    case H_ARGS_END: {
        /* the end marker; a missing one (end of output: <|call|> is an
         * end-of-generation token) or a next <|start|> is forgiven */
        if (!skip_ws(p)) {
            if (!p->final) return 0;
            args_json_commit(p);
            if (p->state == ST_CALL) p->state = ST_START;
            return 1;
        }
        int r = lit_any(p, H_STOPS, 4);
        if (r == -2) return 0;
        if (r < 0) NEED(-1);
        args_json_commit(p);
        if (p->state == ST_CALL) {
            if (r == 3)
                harmony_header_begin(p);
            else
                p->state = ST_START;
        }
        return 1;
    }
    }
    return 0;
}

static int step_call(tc_parser_t *p) {
    switch (p->o.family) {
    case TC_FAMILY_HERMES:
        return body_hermes(p);
    case TC_FAMILY_GLM45:
        return body_glm45(p);
    case TC_FAMILY_DEEPSEEK:
    case TC_FAMILY_DEEPSEEK_V31:
        return body_deepseek(p);
    case TC_FAMILY_INTERNLM2:
        return body_internlm2(p);
    case TC_FAMILY_MISTRAL:
        return body_mistral(p);
    case TC_FAMILY_LLAMA3:
        return body_llama3(p);
    case TC_FAMILY_GLM4:
        return body_glm4(p);
    case TC_FAMILY_HARMONY:
        return body_harmony(p);
    case TC_FAMILY_QWEN3_CODER:
        return body_xml(p);
    default:
        call_fail(p);
        return 1;
    }
}

/* ------------------------------------------------------------------ */
/* content, reasoning, start */

static void enter_call(tc_parser_t *p, size_t trigger_len, int sub) {
    call_reset(&p->c);
    p->state = ST_CALL;
    consume(p, trigger_len);
    p->c.sub = sub;
}

static int step_content(tc_parser_t *p) {
    size_t n;
    const char *s = avail(p, &n);
    if (n == 0) return 0;
    const char *const *trig = family_triggers(p->o.family);
    size_t best = n, best_len = 0;
    int best_i = -1;
    for (int i = 0; trig[i]; i++) {
        const char *h = memmem(s, n, trig[i], strlen(trig[i]));
        if (h && (size_t)(h - s) < best) {
            best = (size_t)(h - s);
            best_len = strlen(trig[i]);
            best_i = i;
        }
    }
    if (best_i >= 0) {
        emit_content(p, s, best);
        consume(p, best);
        /* DeepSeek: a bare <｜tool▁call▁begin｜> starts a block without its opener */
        int sub = 0;
        if ((p->o.family == TC_FAMILY_DEEPSEEK || p->o.family == TC_FAMILY_DEEPSEEK_V31) &&
            best_i == 1)
            sub = 1;
        /* Qwen3-Coder: a bare <function= (no <tool_call> around it) */
        if (p->o.family == TC_FAMILY_QWEN3_CODER && best_i == 1) sub = X_NAME;
        enter_call(p, best_len, sub);
        return 1;
    }
    size_t hold = 0;
    if (!p->final)
        for (int i = 0; trig[i]; i++)
            hold = SL_MAX(hold, partial_suffix(s, n, trig[i]));
    size_t take = n - hold;
    if (take == 0) return 0;
    emit_content(p, s, take);
    consume(p, take);
    return 1;
}

static int step_reasoning(tc_parser_t *p) {
    size_t n;
    const char *s = avail(p, &n);
    if (n == 0) return 0;
    const char *h = memmem(s, n, "</think>", 8);
    if (h) {
        size_t k = (size_t)(h - s);
        emit_reasoning(p, s, k);
        consume(p, k + 8);
        sl_buf_clear(&p->rws_hold);
        emit_text(p, 1, NULL, 0, true);
        p->state = ST_START;
        p->allow_think = false;
        return 1;
    }
    size_t hold = p->final ? 0 : partial_suffix(s, n, "</think>");
    if (n - hold == 0) return 0;
    emit_reasoning(p, s, n - hold);
    consume(p, n - hold);
    return 1;
}

static int step_start(tc_parser_t *p) {
    size_t n;
    const char *s = avail(p, &n);
    size_t ws = 0;
    while (ws < n && is_ws((unsigned char)s[ws]))
        ws++;
    if (ws == n && !p->final) return 0;
    const char *t = s + ws;
    size_t tn = n - ws;
    if (p->allow_think && p->o.reasoning) {
        size_t m = SL_MIN(tn, 7);
        if (tn > 0 && memcmp(t, "<think>", m) == 0) {
            if (tn < 7) {
                if (!p->final) return 0;
            } else {
                consume(p, ws + 7);
                p->state = ST_REASONING;
                p->allow_think = false;
                return 1;
            }
        }
    }
    p->allow_think = false;
    if (p->o.family == TC_FAMILY_LLAMA3 && tn > 0 && t[0] == '{') {
        consume(p, ws);
        call_reset(&p->c);
        p->state = ST_CALL;
        start_json(&p->c, true, false);
        p->c.sub = 1;
        return 1;
    }
    if (p->o.family == TC_FAMILY_GLM4 && tn > 0) {
        size_t i = 0;
        while (i < tn && i <= TC_MAX_NAME && is_name_char((unsigned char)t[i]))
            i++;
        if (i == tn && !p->final) return 0;
        if (i > 0 && i < tn && t[i] == '\n' && tc_name_valid(t, i) &&
            (!p->o.tools || has_tool(p->o.tools, t, i))) {
            consume(p, ws);
            call_reset(&p->c);
            p->state = ST_CALL;
            if (sl_buf_append(&p->c.name, t, i)) p->oom = true;
            consume(p, i + 1);
            call_begin_visible(p);
            return 1;
        }
    }
    p->state = ST_CONTENT;
    return 1;
}

static int run(tc_parser_t *p) {
    while (!p->oom) {
        int prog = 0;
        const bool harmony = p->o.family == TC_FAMILY_HARMONY;
        switch (p->state) {
        case ST_START:
            prog = harmony ? harmony_start(p) : step_start(p);
            break;
        case ST_REASONING:
            prog = harmony ? harmony_text(p, true) : step_reasoning(p);
            break;
        case ST_CONTENT:
            prog = harmony ? harmony_text(p, false) : step_content(p);
            break;
        case ST_CALL:
            prog = step_call(p);
            break;
        }
        if (!prog) break;
    }
    /* drop consumed input */
    if (p->pos > 0) {
        memmove(p->in.data, p->in.data + p->pos, p->in.len - p->pos);
        p->in.len -= p->pos;
        p->pos = 0;
        if (p->in.data) p->in.data[p->in.len] = 0;
    }
    if (p->oom) return -1;
    return p->cb_status;
}

/* ------------------------------------------------------------------ */
/* public */

tc_parser_t *tc_parser_new(const tc_parser_opts_t *o, char *err, size_t errlen) {
    if (!o || (unsigned)o->family >= TC_FAMILY_COUNT) {
        sl_err(err, errlen, "tool-call parser: bad options");
        return NULL;
    }
    tc_parser_t *p = calloc(1, sizeof *p);
    if (!p) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    p->o = *o;
    p->rng = o->id_seed;
    p->state = o->reasoning && o->think_open ? ST_REASONING : ST_START;
    p->allow_think = true;
    return p;
}

static bool is_marker(const tc_parser_t *p, const char *s, size_t n) {
    static const char *const extra[] = {
        "<think>",        "</think>",    "</tool_call>",  "<arg_key>",
        "</arg_key>",     "<arg_value>", "</arg_value>",  "<|plugin|>",
        "<|action_end|>", "[ARGS]",      TC_DS_CALLS_END, TC_DS_CALL_END,
        TC_DS_SEP,        "<function=",  "</function>",   "<parameter=",
        "</parameter>",   NULL};
    const char *const *trig = family_triggers(p->o.family);
    for (int i = 0; trig[i]; i++)
        if (strlen(trig[i]) == n && memcmp(trig[i], s, n) == 0) return true;
    if (p->o.family == TC_FAMILY_HARMONY) {
        /* every harmony marker, <|call|> / <|return|> included (they end a
         * message when they reach the parser) */
        static const char *const h[] = {TC_H_START,     TC_H_END,  TC_H_MESSAGE, TC_H_CHANNEL,
                                        TC_H_CONSTRAIN, TC_H_CALL, TC_H_RETURN};
        for (size_t i = 0; i < SL_ARRAY_LEN(h); i++)
            if (strlen(h[i]) == n && memcmp(h[i], s, n) == 0) return true;
        return false;
    }
    for (int i = 0; extra[i]; i++)
        if (strlen(extra[i]) == n && memcmp(extra[i], s, n) == 0) return true;
    return false;
}

int tc_parser_feed(tc_parser_t *p, const char *text, size_t len, bool special) {
    if (p->done) return -1;
    if (!len) return p->cb_status;
    if (special && !is_marker(p, text, len)) return p->cb_status;
    if (sl_buf_append(&p->in, text, len)) {
        p->oom = true;
        return -1;
    }
    return run(p);
}

bool tc_parser_in_reasoning(const tc_parser_t *p) {
    return p->state == ST_REASONING;
}

size_t tc_parser_reasoning_bytes(const tc_parser_t *p) {
    return p->reasoning.len + p->carry[1].len;
}

int tc_parser_finish(tc_parser_t *p) {
    if (p->done) return p->cb_status;
    p->final = true;
    run(p);
    if (p->state == ST_CALL) {
        /* truncated: a call is complete only in its closing states */
        call_ctx_t *c = &p->c;
        tc_family_t f = p->o.family;
        if ((f == TC_FAMILY_HERMES && c->sub == 2) || (f == TC_FAMILY_INTERNLM2 && c->sub == 3)) {
            envelope_commit(p);
        } else if ((f == TC_FAMILY_DEEPSEEK || f == TC_FAMILY_DEEPSEEK_V31) && c->sub == 6) {
            args_json_commit(p);
        } else if (f == TC_FAMILY_HARMONY && c->sub == H_ARGS_END) {
            args_json_commit(p);
        } else if (f == TC_FAMILY_QWEN3_CODER && c->sub == X_CLOSE) {
            xml_commit(p);
        } else {
            /* between calls of a block only whitespace is left in raw (held,
             * then dropped since there are calls); an opener with no call
             * after it goes back as content */
            call_fail(p);
        }
        p->state = ST_CONTENT;
        run(p);
    }
    size_t n;
    const char *s = avail(p, &n);
    if (n) {
        if (p->state == ST_REASONING)
            emit_reasoning(p, s, n);
        else
            emit_content(p, s, n);
        consume(p, n);
    }
    if (p->ws_hold.len && p->n_calls == 0) emit_text(p, 0, p->ws_hold.data, p->ws_hold.len, false);
    emit_text(p, 1, NULL, 0, true);
    emit_text(p, 0, NULL, 0, true);
    p->done = true;
    if (p->oom) return -1;

    /* result */
    p->res_calls = p->n_calls ? calloc(p->n_calls, sizeof *p->res_calls) : NULL;
    if (p->n_calls && !p->res_calls) return -1;
    for (size_t i = 0; i < p->n_calls; i++)
        p->res_calls[i] = (tc_call_t){p->calls[i].id, p->calls[i].name, p->calls[i].args};
    p->res.content = p->content.data ? p->content.data : "";
    p->res.content_len = p->content.len;
    p->res.reasoning = p->reasoning.data ? p->reasoning.data : "";
    p->res.reasoning_len = p->reasoning.len;
    p->res.calls = p->res_calls;
    p->res.n_calls = p->n_calls;
    p->res.finish_tool_calls = p->n_calls > 0;
    return p->cb_status;
}

const tc_result_t *tc_parser_result(const tc_parser_t *p) {
    return p->done ? &p->res : NULL;
}

void tc_parser_free(tc_parser_t *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->calls[i].id);
        free(p->calls[i].name);
        free(p->calls[i].args);
    }
    if (p->c.started && p->calls) free(p->calls[p->n_calls].id);
    free(p->calls);
    free(p->res_calls);
    sl_buf_t *bufs[] = {&p->in,      &p->ws_hold,   &p->rws_hold, &p->carry[0], &p->carry[1],
                        &p->content, &p->reasoning, &p->c.raw,    &p->c.name,   &p->c.tmp,
                        &p->c.tmp2,  &p->c.canon,   &p->c.args};
    for (size_t i = 0; i < SL_ARRAY_LEN(bufs); i++)
        sl_buf_free(bufs[i]);
    free(p);
}

json_t *tc_result_message_json(const tc_result_t *r) {
    json_t *m = json_object();
    if (!m) return NULL;
    int bad = json_object_set_new(m, "role", json_string("assistant"));
    if (r->content_len || r->n_calls == 0)
        bad |= json_object_set_new(m, "content", json_stringn(r->content, r->content_len));
    else
        bad |= json_object_set_new(m, "content", json_null());
    if (r->reasoning_len)
        bad |= json_object_set_new(m, "reasoning_content",
                                   json_stringn(r->reasoning, r->reasoning_len));
    if (r->n_calls) {
        json_t *arr = json_array();
        bad |= json_object_set_new(m, "tool_calls", arr);
        for (size_t i = 0; arr && i < r->n_calls; i++) {
            json_t *fn = json_pack("{s:s, s:s}", "name", r->calls[i].name, "arguments",
                                   r->calls[i].arguments);
            json_t *tcj = fn ? json_pack("{s:s, s:s, s:o}", "id", r->calls[i].id, "type",
                                         "function", "function", fn)
                             : NULL;
            bad |= !tcj || json_array_append_new(arr, tcj);
        }
    }
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *tc_event_delta_json(const tc_event_t *ev) {
    switch (ev->kind) {
    case TC_EV_CONTENT:
        return json_pack("{s:s%}", "content", ev->text, ev->len);
    case TC_EV_REASONING:
        return json_pack("{s:s%}", "reasoning_content", ev->text, ev->len);
    case TC_EV_CALL_START:
        return json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", ev->index,
                         "id", ev->id, "type", "function", "function", "name", ev->name,
                         "arguments", "");
    case TC_EV_CALL_ARGS:
        return json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index", ev->index, "function",
                         "arguments", ev->text, ev->len);
    default:
        return json_object(); /* END / ABORT carry nothing on the wire */
    }
}
