/*
 * main.c — `silica SUBCOMMAND ...`: dispatch to the subcommands of cli.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct cli_entry {
    const char *name;
    cli_cmd_fn fn;
    const char *help;
};

#define CLI_ENTRY(name, fn, help) {name, fn, help},
static const struct cli_entry commands[] = {CLI_COMMANDS(CLI_ENTRY)};
#undef CLI_ENTRY

static void usage(FILE *out) {
    fprintf(out, "usage: silica COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "silica: '%s' is not built into this binary\n", argv[1]);
            return 2;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "silica: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
