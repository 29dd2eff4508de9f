/* cli.h — what imagecachectl's subcommands share: the loaded config and exit codes.
 * Each subcommand lives in its own cmd-<name>.c and only parses its options. */
#pragma once

#include <glib.h>

#include "config.h"
#include "pass.h"
#include "report.h"
#include "usage.h"

G_BEGIN_DECLS

/* Documented in man/imagecachectl.1.scd and the README; never renumbered. */
enum {
    IC_EXIT_OK = 0,
    IC_EXIT_FAILED = 1,   /* the pass or command itself failed, or the base dir is missing */
    IC_EXIT_USAGE = 2,    /* bad usage or config */
    IC_EXIT_PROBLEMS = 3, /* report/run: the pass found corrupt or in-use-but-absent files */
};

typedef struct {
    const char *config_path;  /* --config, or the default */
    gboolean config_explicit; /* --config was given */
    gboolean config_found;    /* the file existed and was loaded */
    IcConfig *config;
    /* The pass's report, left to the process's exit (main): freeing 100,000 rows
     * after the JSON is written took 60-90 ms at 10x, 26x the 1x (issue 15), one
     * cache miss per allocation, where exit drops the pages at once. */
    IcReport *report;
    /* What the pass would free before returning (the first read's usage, the
     * scan: 90-100 ms at 10x), left to the exit the same way. */
    IcPassKept *kept;
} IcCli;

/* Each returns an IC_EXIT_* code; argv[0] is the subcommand name. Errors are
 * printed to stderr once, as "imagecachectl: <message>". */
int ic_cmd_report(IcCli *cli, int argc, char **argv);
int ic_cmd_run(IcCli *cli, int argc, char **argv);
int ic_cmd_verify(IcCli *cli, int argc, char **argv);
int ic_cmd_ledger(IcCli *cli, int argc, char **argv);
int ic_cmd_reconcile(IcCli *cli, int argc, char **argv);
int ic_cmd_check_config(IcCli *cli, int argc, char **argv);

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

/* Parses the value of --rate-limit (see ic_config_parse_rate_limit); NULL
 * leaves @ret_bytes_per_sec alone. Returns an IC_EXIT_* code. */
int ic_cli_rate_limit(const char *value, guint64 *ret_bytes_per_sec);

/* The path of base file @file: a bare name (no '/') is a file in the base
 * dir, as `report --explain` reads it; anything else is a path. Caller frees. */
char *ic_cli_base_file_path(const IcCli *cli, const char *file);

/* Now, in epoch seconds. */
gint64 ic_cli_now(void);

G_END_DECLS
