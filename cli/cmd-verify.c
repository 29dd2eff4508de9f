/* cmd-verify.c — `imagecachectl verify FILE…`: checksum files against their sidecars. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "cli.h"
#include "error.h"

/* Verifies one file (@file as given, @path resolved); TRUE when it is not
 * known to be bad. A file that is not there is an error, never "not checked". */
static gboolean verify_one(const char *file, const char *path, guint64 rate_limit)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *name = g_path_get_basename(path);
    IcChecksumOptions options = {
        .rate_limit_bytes_per_sec = rate_limit,
        .interval_seconds = 0,
        .write_missing = FALSE,
    };
    IcChecksumResult result = {0};
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT && g_str_equal(file, path))
            fprintf(stderr, "imagecachectl: '%s' does not exist\n", file);
        else if (errno == ENOENT)
            fprintf(stderr, "imagecachectl: '%s' does not exist (looked for '%s')\n", file, path);
        else
            fprintf(stderr, "imagecachectl: '%s': %s\n", path, g_strerror(errno));
        return FALSE;
    }

    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        ic_error_set_errno(&error, errno, "opening directory", dir);
        ic_cli_print_error(error);
        return FALSE;
    }
    gboolean ok = ic_checksum_verify(dirfd, name, &options, ic_cli_now(), &result, &error);
    close(dirfd);
    if (!ok) {
        ic_cli_print_error(error);
        return FALSE;
    }

    gboolean good = TRUE;
    switch (result.state) {
    case IC_CHECKSUM_OK:
        printf("%s: ok (sha1 %s)\n", path, result.actual);
        break;
    case IC_CHECKSUM_NO_SIDECAR:
        printf("%s: no checksum sidecar to verify against (sha1 %s)\n", path, result.actual);
        break;
    case IC_CHECKSUM_MISMATCH:
        printf("%s: CORRUPT: expected sha1 %s, got %s\n", path, result.expected, result.actual);
        good = FALSE;
        break;
    case IC_CHECKSUM_ERROR:
        printf("%s: error: %s\n", path, result.error);
        good = FALSE;
        break;
    case IC_CHECKSUM_RECENT:
        printf("%s: not checked\n", path);
        break;
    case IC_CHECKSUM_NOT_CHECKED:
        /* It went away between the lstat and the hashing. */
        printf("%s: error: the file disappeared\n", path);
        good = FALSE;
        break;
    }
    ic_checksum_result_clear(&result);
    return good;
}

int ic_cmd_verify(IcCli *cli, int argc, char **argv)
{
    g_autofree char *rate_text = NULL;
    guint64 rate_limit = 0;
    const GOptionEntry entries[] = {
        {"rate-limit", 'r', 0, G_OPTION_ARG_STRING, &rate_text,
         "Hash at most RATE bytes/s (K, M, G suffixes: 50M is 50 MiB/s; default: unlimited)",
         "RATE"},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, TRUE, "FILE… - verify base files",
                              "Hashes each FILE and compares it with its .info or .sha1 "
                              "sidecar. A bare name is a file in the base dir. Exit status 1 "
                              "when any file is missing, corrupt or unreadable.");
    if (status != IC_EXIT_OK)
        return status;
    status = ic_cli_rate_limit(rate_text, &rate_limit);
    if (status != IC_EXIT_OK)
        return status;
    if (argc < 2) {
        fprintf(stderr, "imagecachectl: verify needs at least one FILE\n");
        return IC_EXIT_USAGE;
    }
    gboolean all_good = TRUE;
    for (int i = 1; i < argc; i++) {
        g_autofree char *path = ic_cli_base_file_path(cli, argv[i]);
        all_good &= verify_one(argv[i], path, rate_limit);
    }
    return all_good ? IC_EXIT_OK : IC_EXIT_FAILED;
}
