/*
 * cli.h — the `silica` subcommands. Each lives in its own cli/cmd_*.c and
 * takes (argc, argv) with argv[0] the subcommand's name; returns the exit
 * status.
 */
#ifndef SILICA_CLI_H
#define SILICA_CLI_H

typedef int (*cli_cmd_fn)(int argc, char **argv);

/* Declared weak: a subcommand whose part is not built into this binary is
 * reported as unavailable instead of failing the link. */
#define CLI_COMMANDS(X)                                                                            \
    X("serve", cmd_serve, "serve models over the OpenAI-compatible HTTP API")                    \
    X("route", cmd_route, "route requests to several serve nodes by prompt prefix")              \
    X("admin", cmd_admin, "accounts, API keys, prices, usage")                                   \
    X("info", cmd_info, "print a GGUF file's metadata and tensor table")                         \
    X("logits", cmd_logits, "print logits for a prompt")                                         \
    X("generate", cmd_generate, "generate token ids / text")                                     \
    X("bench", cmd_bench, "measure prefill and decode speed")                                     \
    X("mkmodel", cmd_mkmodel, "write a random-weight GGUF model with a real tokenizer")          \
    X("quantize", cmd_quantize, "convert a GGUF model between tensor types")                     \
    X("tokenize", cmd_tokenize, "print the token ids of a text")                                 \
    X("detokenize", cmd_detokenize, "print the text of token ids")                               \
    X("chat-template", cmd_chat_template, "render a chat request with the model's template")

#define CLI_DECLARE(name, fn, help) int fn(int argc, char **argv) __attribute__((weak));
CLI_COMMANDS(CLI_DECLARE)
#undef CLI_DECLARE

#endif
