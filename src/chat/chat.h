/*
 * chat.h — building a model's prompt from an OpenAI chat request by running
 * the model's own Jinja chat template (GGUF key `tokenizer.chat_template`).
 *
 * The template is parsed once (chat_tmpl_new) into an immutable tree; after
 * that, chat_render() may be called from any number of threads at once on
 * the same chat_tmpl_t (each render has its own interpreter state).
 *
 * Rendering is sandboxed: a template can only read the values it is given,
 * and every render is bounded in interpreter steps, call/recursion depth and
 * output bytes. A template error — syntax at parse time, or a runtime error
 * including the template's own raise_exception() — is returned as a message
 * with "line:col" of the offending spot; nothing on this path crashes or
 * aborts on outside input.
 *
 * The variables passed to the template are those Hugging Face transformers'
 * apply_chat_template passes: messages, tools (only when the request has
 * tools), add_generation_prompt, bos_token, eos_token, plus every key of
 * chat_template_kwargs (e.g. enable_thinking), plus the functions
 * raise_exception(msg) and strftime_now(fmt).
 */
#ifndef SILICA_CHAT_H
#define SILICA_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base/base.h"

typedef struct chat_tmpl chat_tmpl_t; /* opaque, immutable after chat_tmpl_new */

/* Parses a Jinja template source (len bytes; need not be NUL-terminated).
 * Returns NULL with "line:col: message" in err on a syntax error or OOM.
 * The caller frees the result with chat_tmpl_free. */
chat_tmpl_t *chat_tmpl_new(const char *source, size_t len, char *err, size_t errlen);
void chat_tmpl_free(chat_tmpl_t *t);

/* The template Silica uses for a model file that carries no chat template:
 * ChatML (<|im_start|>role\ncontent<|im_end|>\n ...). Caller frees. */
chat_tmpl_t *chat_tmpl_new_chatml(char *err, size_t errlen);
/* The ChatML fallback's Jinja source (static storage). */
const char *chat_tmpl_chatml_source(void);

/* True when the template reads a top-level variable of this name anywhere
 * (e.g. "tools": a template that never mentions tools cannot render them;
 * "enable_thinking": the model has a thinking switch). */
bool chat_tmpl_uses_var(const chat_tmpl_t *t, const char *name);

typedef struct chat_render_opts {
    const char *bos_token;      /* token text, e.g. "<|begin_of_text|>"; NULL = "" */
    const char *eos_token;      /* NULL = "" */
    bool add_generation_prompt; /* open an assistant turn at the end */
    const json_t *kwargs;       /* chat_template_kwargs object, or NULL; each key becomes
                                   a template variable (they may override the above) */
    time_t now;                 /* clock for strftime_now; 0 = current time */
    size_t max_steps;           /* interpreter step budget; 0 = CHAT_DEFAULT_MAX_STEPS */
    size_t max_output;          /* output byte limit; 0 = CHAT_DEFAULT_MAX_OUTPUT */
    size_t max_memory;          /* interpreter memory limit; 0 = CHAT_DEFAULT_MAX_MEMORY */
    bool harmony;               /* the model speaks harmony (gpt-oss): an assistant tool-call
                                   turn with both content and reasoning is given to the
                                   template as harmony writes it (docs/chat.md) */
} chat_render_opts_t;

#define CHAT_DEFAULT_MAX_STEPS ((size_t)20 * 1000 * 1000)
#define CHAT_DEFAULT_MAX_OUTPUT ((size_t)64 * 1024 * 1024)
#define CHAT_DEFAULT_MAX_MEMORY ((size_t)512 * 1024 * 1024)
#define CHAT_MAX_DEPTH 200 /* nested macro calls / expression depth */

/* Renders the prompt for an OpenAI chat request and appends it to `out`.
 *
 * `request` is an object with "messages" (array) and optionally "tools"
 * (array). Message shapes accepted, as the OpenAI API sends them:
 *   - content: a string, null, or an array of parts {type:"text", text};
 *     an array of text-only parts is joined into one string (what the
 *     templates of text models expect); other part types are an error.
 *   - assistant "tool_calls": [{id, type:"function", function:{name,
 *     arguments}}] where arguments is a JSON *string*: it is parsed into a
 *     mapping (templates iterate over it or run tojson on it); a string that
 *     is not valid JSON is kept as the string.
 *   - tool messages: {role:"tool", content, tool_call_id, name?}.
 *   - any other keys (e.g. reasoning_content) are passed through unchanged.
 * Returns 0, or -1 with a message in err: a request-shape problem (caller's
 * fault, a 400) or a template error ("template error at line:col: ...").
 * On error `out` may hold a partial prompt; the caller discards it. */
int chat_render(const chat_tmpl_t *t, const json_t *request, const chat_render_opts_t *o,
                sl_buf_t *out, char *err, size_t errlen);

/* Lower level: renders with exactly the given variables (an object; each key
 * becomes a template variable, no request normalisation). For tests and for
 * callers that build their own context. Only the limits and clock of `o`
 * (which may be NULL) are used. Same return convention. */
int chat_render_vars(const chat_tmpl_t *t, const json_t *vars, const chat_render_opts_t *o,
                     sl_buf_t *out, char *err, size_t errlen);

#endif
