/* cli.h — what imagecachectl's subcommands share: the loaded config and exit codes.
 * Each subcommand lives in its own cmd-<name>.c and only parses its options. */
#pragma once

#include <glib.h>

#include "config.h"
#include "usage.h"

G_BEGIN_DECLS

enum {
    IC_EXIT_OK = 0,
    IC_EXIT_FAILED = 1, /* the pass or command itself failed */
    IC_EXIT_USAGE = 2,  /* bad usage or config */
};

typedef struct {
    const char *config_path;  /* --config, or the default */
    gboolean config_explicit; /* --config was given */
    gboolean config_found;    /* the file existed and was loaded */
    IcConfig *config;
} IcCli;

/* Each returns an IC_EXIT_* code; argv[0] is the subcommand name. Errors are
 * printed to stderr once, as "imagecachectl: <message>". */
int ic_cmd_report(IcCli *cli, int argc, char **argv);
int ic_cmd_run(IcCli *cli, int argc, char **argv);
int ic_cmd_verify(IcCli *cli, int argc, char **argv);
int ic_cmd_ledger(IcCli *cli, int argc, char **argv);
int ic_cmd_reconcile(IcCli *cli, int argc, char **argv);

/* Prints "imagecachectl: <error message>" to stderr. */
void ic_cli_print_error(const GError *error);

/* Parses a subcommand's options (@entries may be NULL) plus the common
 * --config, then loads the config into @cli. A command that does not
 * @take_files refuses any other argument ("run dry-run" must not run a
 * real pass). Returns an IC_EXIT_* code: IC_EXIT_OK to go on. */
int ic_cli_parse(IcCli *cli, int *argc, char ***argv, const GOptionEntry *entries,
                 gboolean take_files, const char *parameter_string, const char *summary);

/* The external witness the CLI can reach (the pass reads the ledger and the
 * instances dir itself): when built with libvirt, the live domains. Asked once
 * per pass, before the usage lock. An unreachable libvirt is noted, not fatal. */
void ic_cli_collect_usage(IcCli *cli, IcUsage *usage, gint64 now);

/* Now, in epoch seconds. */
gint64 ic_cli_now(void);

G_END_DECLS
