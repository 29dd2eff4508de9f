/* cmd-verify.c — `imagecachectl verify FILE…`: checksum files against their sidecars. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "checksum.h"
#include "cli.h"
#include "error.h"

/* Verifies one file; TRUE when it is not known to be bad. */
static gboolean verify_one(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *name = g_path_get_basename(path);
    IcChecksumOptions options = {.interval_seconds = 0, .write_missing = FALSE};
    IcChecksumResult result = {0};

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
    case IC_CHECKSUM_NOT_CHECKED:
        printf("%s: not checked\n", path);
        break;
    }
    ic_checksum_result_clear(&result);
    return good;
}

int ic_cmd_verify(IcCli *cli, int argc, char **argv)
{
    int status = ic_cli_parse(cli, &argc, &argv, NULL, TRUE, "FILE… - verify base files",
                              "Hashes each FILE and compares it with its .info or .sha1 "
                              "sidecar. Exit status 1 when any file is corrupt or unreadable.");
    if (status != IC_EXIT_OK)
        return status;
    if (argc < 2) {
        fprintf(stderr, "imagecachectl: verify needs at least one FILE\n");
        return IC_EXIT_USAGE;
    }
    gboolean all_good = TRUE;
    for (int i = 1; i < argc; i++)
        all_good &= verify_one(argv[i]);
    return all_good ? IC_EXIT_OK : IC_EXIT_FAILED;
}
