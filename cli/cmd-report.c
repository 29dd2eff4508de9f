/* cmd-report.c — `imagecachectl report` and `run`: the pass, printed. */
#include <stdio.h>

#include "cli.h"
#include "ledger-store.h"
#include "pass.h"

static void collect_usage(IcUsage *usage, gint64 now, gpointer cli)
{
    ic_cli_collect_usage(cli, usage, now);
}

/* The row for @file (a base file name or path), or NULL after saying why. */
static const IcImageRow *explained_row(const IcReport *report, const char *file)
{
    g_autofree char *name = g_path_get_basename(file);
    const IcImageRow *row = ic_report_lookup(report, file);
    if (row == NULL)
        row = ic_report_lookup(report, name);
    if (row == NULL)
        fprintf(stderr,
                "imagecachectl: '%s' is not a base file in '%s' (base files are named <sha1>, "
                "<sha1>_sm or <sha1>_<size>)\n",
                file, report->base_dir);
    return row;
}

/* Prints why @file gets its verdict. */
static int explain(const IcReport *report, const char *file, gboolean json)
{
    const IcImageRow *row = explained_row(report, file);
    if (row == NULL)
        return IC_EXIT_FAILED;
    g_autofree char *text =
        json ? ic_report_explain_to_json(report, row) : ic_report_explain(report, row);
    fputs(text, stdout);
    if (json)
        fputc('\n', stdout);
    return IC_EXIT_OK;
}

/* The exit status of a pass that ran: a missing base dir (an unmounted share
 * looks the same) is a failure, not "nothing to do"; corrupt or absent files
 * are IC_EXIT_PROBLEMS, so `report` can serve as a check. */
static int pass_status(const IcReport *report)
{
    if (!report->base_dir_exists) {
        fprintf(stderr,
                "imagecachectl: warning: base dir '%s' does not exist (an unmounted share?): "
                "nothing was checked or removed\n",
                report->base_dir);
        return IC_EXIT_FAILED;
    }
    return ic_report_has_problems(report) ? IC_EXIT_PROBLEMS : IC_EXIT_OK;
}

typedef struct {
    IcPassMode mode;
    gboolean json;
    gboolean check; /* one Monitoring Plugins line; the exit status is its state */
    const char *explain_file;
    guint64 rate_limit;
} RunRequest;

static int run_pass(IcCli *cli, const RunRequest *request)
{
    g_autoptr(GError) error = NULL;
    IcReport *report = NULL; /* kept in @cli until the exit (IcCli.report) */
    IcPassKept *kept = NULL; /* likewise (IcCli.kept) */
    g_autofree char *explained_name =
        request->explain_file ? g_path_get_basename(request->explain_file) : NULL;
    /* Where hosts share the cache, one of them removes per interval. */
    IcPassMode mode = request->mode;
    g_autofree char *claim_note = NULL;
    if (mode == IC_PASS_RUN &&
        !ic_ledger_claim_pass(cli->config->ledger_dir, cli->config->host, ic_cli_now(),
                              cli->config->shared_pass_interval_seconds, &claim_note)) {
        fprintf(stderr, "imagecachectl: %s\n", claim_note);
        mode = IC_PASS_REPORT;
    }
    IcPassOptions options = {
        .mode = mode,
        .checksum_rate_limit = request->rate_limit,
        .checksum_only = explained_name,
        .witnesses = collect_usage,
        .witnesses_data = cli,
        .keep = &kept,
    };

    if (!ic_pass_run(cli->config, NULL, &options, ic_cli_now(), &report, &error)) {
        ic_cli_print_error(error);
        if (request->check) {
            printf("IMAGECACHE UNKNOWN - the pass could not run: %s\n", error->message);
            return IC_CHECK_UNKNOWN;
        }
        return IC_EXIT_FAILED;
    }
    g_clear_pointer(&cli->report, ic_report_free);
    cli->report = report;
    g_clear_pointer(&cli->kept, ic_pass_kept_free);
    cli->kept = kept;
    if (request->explain_file != NULL)
        return explain(report, request->explain_file, request->json);
    if (request->check) {
        IcCheckState state;
        g_autofree char *line = ic_report_to_check(report, &state);
        fputs(line, stdout);
        return (int)state;
    }
    ic_report_log_events(report);
    if (request->json) {
        /* Streamed: a report of 100,000 files is tens of MiB of JSON; its rows
         * formatted on as many threads as the pass used. */
        if (!ic_report_write_json(report, stdout, options.walk_threads, &error)) {
            ic_cli_print_error(error);
            return IC_EXIT_FAILED;
        }
        fputc('\n', stdout);
    } else {
        g_autofree char *text = ic_report_to_table(report);
        fputs(text, stdout);
    }
    return pass_status(report);
}

#define RATE_LIMIT_ENTRY(target)                                                                   \
    {                                                                                              \
        "rate-limit", 'r', 0, G_OPTION_ARG_STRING, (target),                                       \
            "Hash at most RATE bytes/s (K, M, G suffixes: 50M is 50 MiB/s; default: unlimited)",   \
            "RATE"                                                                                 \
    }

/* The common options, then --rate-limit's value into @request. */
static int parse_options(IcCli *cli, int *argc, char ***argv, const GOptionEntry *entries,
                         const char *parameter_string, const char *summary, char *const *rate_limit,
                         RunRequest *request)
{
    int status = ic_cli_parse(cli, argc, argv, entries, FALSE, parameter_string, summary);
    if (status != IC_EXIT_OK)
        return status;
    return ic_cli_rate_limit(*rate_limit, &request->rate_limit);
}

int ic_cmd_report(IcCli *cli, int argc, char **argv)
{
    RunRequest request = {.mode = IC_PASS_REPORT};
    g_autofree char *explain_file = NULL;
    g_autofree char *rate_limit = NULL;
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &request.json, "Print one JSON object", NULL},
        {"explain", 'e', 0, G_OPTION_ARG_FILENAME, &explain_file,
         "Explain the verdict on one base file: each witness, age, thresholds, checksum "
         "(hashes that file only)",
         "FILE"},
        {"check", 0, 0, G_OPTION_ARG_NONE, &request.check,
         "Print one monitoring-check line (Nagios, Icinga) and exit 0 OK, 1 WARNING, "
         "2 CRITICAL, 3 UNKNOWN",
         NULL},
        RATE_LIMIT_ENTRY(&rate_limit),
        G_OPTION_ENTRY_NULL,
    };
    int status = parse_options(cli, &argc, &argv, entries, "- analyse the base dir",
                               "Shows every base file with its users, age, checksum state and "
                               "verdict. Changes nothing. Exit status 3 when corrupt or "
                               "in-use-but-absent files are found, 1 when the base dir is "
                               "missing.",
                               &rate_limit, &request);
    if (status == IC_EXIT_OK && request.check && (request.json || explain_file != NULL)) {
        fprintf(stderr, "imagecachectl: --check prints its own line: not with --json or "
                        "--explain\n");
        status = IC_EXIT_USAGE;
    }
    if (status != IC_EXIT_OK) {
        /* A check that cannot run is UNKNOWN, whatever stopped it. */
        if (request.check) {
            printf("IMAGECACHE UNKNOWN - imagecachectl could not run (see its stderr)\n");
            return IC_CHECK_UNKNOWN;
        }
        return status;
    }
    request.explain_file = explain_file;
    return run_pass(cli, &request);
}

int ic_cmd_run(IcCli *cli, int argc, char **argv)
{
    RunRequest request = {.mode = IC_PASS_RUN};
    gboolean dry_run = FALSE;
    g_autofree char *rate_limit = NULL;
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &request.json, "Print one JSON object", NULL},
        {"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
         "Decide as a run would, but change nothing", NULL},
        RATE_LIMIT_ENTRY(&rate_limit),
        G_OPTION_ENTRY_NULL,
    };
    int status = parse_options(cli, &argc, &argv, entries, "- run a pass",
                               "Verifies checksums, refreshes the mtime of base files in use and "
                               "removes unused ones, as the config says. Exit status 3 when "
                               "corrupt or in-use-but-absent files are found, 1 when the base "
                               "dir is missing.",
                               &rate_limit, &request);
    if (status != IC_EXIT_OK)
        return status;
    if (!cli->config_found && !dry_run) {
        fprintf(stderr,
                "imagecachectl: no config file '%s': 'run' removes files only with a config "
                "you wrote (pass --config FILE, or use --dry-run)\n",
                cli->config_path);
        return IC_EXIT_USAGE;
    }
    if (dry_run)
        request.mode = IC_PASS_DRY_RUN;
    return run_pass(cli, &request);
}
