/* cmd-check-config.c — `imagecachectl check-config`: parse and validate, nothing else. */
#include <stdio.h>

#include "cli.h"

/* Facts worth a warning that do not make the config invalid: the paths may
 * be mounted or created later. */
static void warn_missing_dir(const char *key, const char *path)
{
    if (!g_file_test(path, G_FILE_TEST_IS_DIR))
        fprintf(stderr, "imagecachectl: warning: %s '%s' does not exist (yet?)\n", key, path);
}

int ic_cmd_check_config(IcCli *cli, int argc, char **argv)
{
    gboolean print = FALSE;
    const GOptionEntry entries[] = {
        {"print", 'p', 0, G_OPTION_ARG_NONE, &print,
         "Print every key with its effective value (defaults included)", NULL},
        G_OPTION_ENTRY_NULL,
    };
    /* ic_cli_parse loads and validates; a bad config already exited 2. */
    int status = ic_cli_parse(cli, &argc, &argv, entries, FALSE, "- check the config file",
                              "Parses and validates the config file, as every other command "
                              "would, and changes nothing: no pass, no hashing, no ledger. Exit "
                              "status 0 when valid, 2 when not.");
    if (status != IC_EXIT_OK)
        return status;
    if (!cli->config_found) {
        fprintf(stderr, "imagecachectl: no config file '%s' (pass --config FILE)\n",
                cli->config_path);
        return IC_EXIT_USAGE;
    }
    g_autofree char *base_dir = ic_config_base_dir(cli->config);
    warn_missing_dir("instances_path", cli->config->instances_path);
    warn_missing_dir("base dir", base_dir);
    if (print) {
        g_autofree char *data = ic_config_to_data(cli->config);
        fputs(data, stdout);
    } else {
        printf("%s: valid\n", cli->config_path);
    }
    return IC_EXIT_OK;
}
