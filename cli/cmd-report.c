/* cmd-report.c — `imagecachectl report` and `run`: the pass, printed. */
#include <stdio.h>

#include "cli.h"
#include "pass.h"

static void collect_usage(IcUsage *usage, gint64 now, gpointer cli)
{
    ic_cli_collect_usage(cli, usage, now);
}

/* Prints why @file gets its verdict; @file is a base file name or path. */
static int explain(const IcReport *report, const char *file)
{
    g_autofree char *name = g_path_get_basename(file);
    const IcImageRow *row = ic_report_lookup(report, file);
    if (row == NULL)
        row = ic_report_lookup(report, name);
    if (row == NULL) {
        fprintf(stderr,
                "imagecachectl: '%s' is not a base file in '%s' (base files are named <sha1>, "
                "<sha1>_sm or <sha1>_<size>)\n",
                file, report->base_dir);
        return IC_EXIT_FAILED;
    }
    g_autofree char *text = ic_report_explain(report, row);
    fputs(text, stdout);
    return IC_EXIT_OK;
}

static int run_pass(IcCli *cli, IcPassMode mode, gboolean json, const char *explain_file)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {
        .mode = mode,
        .witnesses = collect_usage,
        .witnesses_data = cli,
    };

    if (!ic_pass_run(cli->config, NULL, &options, ic_cli_now(), &report, &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_FAILED;
    }
    if (explain_file != NULL)
        return explain(report, explain_file);
    ic_report_log_events(report);
    g_autofree char *text = json ? ic_report_to_json(report) : ic_report_to_table(report);
    fputs(text, stdout);
    if (json)
        fputc('\n', stdout);
    return IC_EXIT_OK;
}

int ic_cmd_report(IcCli *cli, int argc, char **argv)
{
    gboolean json = FALSE;
    g_autofree char *explain_file = NULL;
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        {"explain", 'e', 0, G_OPTION_ARG_FILENAME, &explain_file,
         "Explain the verdict on one base file: each witness, age, thresholds, checksum", "FILE"},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, FALSE, "- analyse the base dir",
                              "Shows every base file with its users, age, checksum state and "
                              "verdict. Changes nothing.");
    if (status != IC_EXIT_OK)
        return status;
    return run_pass(cli, IC_PASS_REPORT, json, explain_file);
}

int ic_cmd_run(IcCli *cli, int argc, char **argv)
{
    gboolean json = FALSE;
    gboolean dry_run = FALSE;
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        {"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
         "Decide as a run would, but change nothing", NULL},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, FALSE, "- run a pass",
                              "Verifies checksums, refreshes the mtime of base files in use and "
                              "removes unused ones, as the config says.");
    if (status != IC_EXIT_OK)
        return status;
    if (!cli->config_found && !dry_run) {
        fprintf(stderr,
                "imagecachectl: no config file '%s': 'run' removes files only with a config "
                "you wrote (pass --config FILE, or use --dry-run)\n",
                cli->config_path);
        return IC_EXIT_USAGE;
    }
    return run_pass(cli, dry_run ? IC_PASS_DRY_RUN : IC_PASS_RUN, json, NULL);
}
