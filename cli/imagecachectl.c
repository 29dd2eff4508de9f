/* imagecachectl — the operator's command: report, run, verify, ledger, reconcile.
 * This file holds option and config glue only; every rule lives in common/. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"

typedef struct {
    const char *name;
    int (*run)(IcCli *cli, int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"report", ic_cmd_report, "Analyse the base dir and show each file's verdict; change nothing"},
    {"run", ic_cmd_run, "Verify, refresh in-use files and remove unused ones as configured"},
    {"verify", ic_cmd_verify, "Checksum the given base files against their sidecars"},
    {"ledger", ic_cmd_ledger, "Show every host's usage ledger"},
    {"reconcile", ic_cmd_reconcile, "Rebuild this host's ledger from libvirt's live domains"},
    {"check-config", ic_cmd_check_config, "Parse and validate the config file; change nothing"},
};

static gboolean verbose;

static void log_to_stderr(const char *domain, GLogLevelFlags level, const char *message,
                          gpointer user_data)
{
    const char *label = "";
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        label = "error: ";
    else if (level & G_LOG_LEVEL_WARNING)
        label = "warning: ";
    else if (level & G_LOG_LEVEL_DEBUG) {
        if (!verbose)
            return;
        label = "debug: ";
    } else if (level & G_LOG_LEVEL_INFO) {
        if (!verbose)
            return;
    }
    fprintf(stderr, "imagecachectl: %s%s\n", label, message);
}

void ic_cli_print_error(const GError *error)
{
    fprintf(stderr, "imagecachectl: %s\n", error->message);
}

int ic_cli_rate_limit(const char *value, guint64 *ret_bytes_per_sec)
{
    g_autoptr(GError) error = NULL;
    if (value == NULL)
        return IC_EXIT_OK;
    if (!ic_config_parse_rate_limit(value, ret_bytes_per_sec, &error)) {
        g_prefix_error(&error, "option --rate-limit: ");
        ic_cli_print_error(error);
        return IC_EXIT_USAGE;
    }
    return IC_EXIT_OK;
}

char *ic_cli_base_file_path(const IcCli *cli, const char *file)
{
    if (strchr(file, '/') != NULL)
        return g_strdup(file);
    g_autofree char *base_dir = ic_config_base_dir(cli->config);
    return g_build_filename(base_dir, file, NULL);
}

static int load_config(IcCli *cli)
{
    g_autoptr(GError) error = NULL;

    cli->config = ic_config_new();
    if (!ic_config_load_file(cli->config, cli->config_path, &error)) {
        if (!cli->config_explicit && g_error_matches(error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
            /* No config on this host yet: analysing with the defaults is
             * harmless; `run` refuses later (see config_found). */
            g_clear_error(&error);
        } else {
            ic_cli_print_error(error);
            return IC_EXIT_USAGE;
        }
    } else {
        cli->config_found = TRUE;
    }
    if (!ic_config_finish(cli->config, &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_USAGE;
    }
    return IC_EXIT_OK;
}

int ic_cli_parse(IcCli *cli, int *argc, char ***argv, const GOptionEntry *entries,
                 gboolean take_files, const char *parameter_string, const char *summary)
{
    g_autofree char *config_path = NULL;
    const GOptionEntry common_entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
         "Config file (default: $IMAGECACHE_CONFIG or " IC_CONFIG_DEFAULT_PATH ")", "FILE"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Show debug messages", NULL},
        G_OPTION_ENTRY_NULL,
    };
    g_autoptr(GOptionContext) context = g_option_context_new(parameter_string);
    g_autoptr(GError) error = NULL;

    g_option_context_set_summary(context, summary);
    g_option_context_add_main_entries(context, common_entries, NULL);
    if (entries != NULL)
        g_option_context_add_main_entries(context, entries, NULL);
    if (!g_option_context_parse(context, argc, argv, &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_USAGE;
    }
    if (!take_files && *argc > 1) {
        fprintf(stderr, "imagecachectl: %s takes no arguments, got '%s' (options start with --)\n",
                (*argv)[0], (*argv)[1]);
        return IC_EXIT_USAGE;
    }

    const char *from_env = g_getenv("IMAGECACHE_CONFIG");
    if (config_path != NULL) {
        cli->config_path = g_steal_pointer(&config_path);
        cli->config_explicit = TRUE;
    } else if (from_env != NULL && *from_env != '\0') {
        cli->config_path = g_strdup(from_env);
        cli->config_explicit = TRUE;
    } else {
        cli->config_path = g_strdup(IC_CONFIG_DEFAULT_PATH);
    }
    return load_config(cli);
}

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: imagecachectl COMMAND [--config FILE] [OPTIONS]\n\nCommands:\n");
    for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'imagecachectl COMMAND --help' for a command's options.\n"
                 "Exit status: 0 success, 1 the command failed (or the base dir is missing),\n"
                 "2 usage or config error, 3 report/run found corrupt or absent files.\n");
}

/* Lets common options stand before the command too ("imagecachectl --config
 * F report"): the first argument that is not an option, nor the value of
 * --config, moves to argv[1]. */
static void move_command_first(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (g_str_equal(arg, "--config") || g_str_equal(arg, "-c")) {
            i++;
            continue;
        }
        if (arg[0] == '-')
            continue;
        char *command = argv[i];
        memmove(&argv[2], &argv[1], (gsize)(i - 1) * sizeof(char *));
        argv[1] = command;
        return;
    }
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    g_log_set_default_handler(log_to_stderr, NULL);

    if (argc < 2) {
        print_usage(stderr);
        return IC_EXIT_USAGE;
    }
    if (g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "-h") ||
        g_str_equal(argv[1], "help")) {
        print_usage(stdout);
        return IC_EXIT_OK;
    }
    if (g_str_equal(argv[1], "--version") || g_str_equal(argv[1], "-V")) {
        printf("imagecachectl %s\n", IC_VERSION);
        return IC_EXIT_OK;
    }
    move_command_first(argc, argv);
    for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (!g_str_equal(argv[1], commands[i].name))
            continue;
        IcCli cli = {0};
        int status = commands[i].run(&cli, argc - 1, argv + 1);
        g_free((char *)cli.config_path);
        /* A kept report borrows from the config (a row's pinned_by): then both go with it. */
        if (cli.report == NULL)
            ic_config_free(cli.config);
        /* cli.report and cli.kept are left to the exit (IcCli). exit() from here, not a return:
         * @cli stays on the stack, so they are still reachable to valgrind's
         * and LeakSanitizer's leak checks, which keep checking all the rest. */
        exit(status);
    }
    fprintf(stderr, "imagecachectl: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return IC_EXIT_USAGE;
}
