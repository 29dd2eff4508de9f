/* cmd-report.c — `imagecachectl report` and `run`: the pass, printed. */
#include <stdio.h>

#include "cli.h"
#include "pass.h"

static void collect_usage(IcUsage *usage, gint64 now, gpointer cli)
{
    ic_cli_collect_usage(cli, usage, now);
}

static int run_pass(IcCli *cli, IcPassMode mode, gboolean json)
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
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, "- analyse the base dir",
                              "Shows every base file with its users, age, checksum state and "
                              "verdict. Changes nothing.");
    if (status != IC_EXIT_OK)
        return status;
    return run_pass(cli, IC_PASS_REPORT, json);
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
    int status = ic_cli_parse(cli, &argc, &argv, entries, "- run a pass",
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
    return run_pass(cli, dry_run ? IC_PASS_DRY_RUN : IC_PASS_RUN, json);
}
