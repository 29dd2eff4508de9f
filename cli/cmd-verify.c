/* cmd-verify.c — `imagecachectl verify FILE…`: checksum files against their sidecars. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "cli.h"
#include "error.h"

/* A file to verify: @file as given, @path resolved, its directory open. */
typedef struct {
    const char *file;
    char *path;
    int dirfd;
    char *name;
} Target;

static void target_clear(Target *target)
{
    g_free(target->path);
    g_free(target->name);
    if (target->dirfd >= 0)
        close(target->dirfd);
}

/* Checks that the file is there and opens its directory; FALSE (said on
 * stderr) otherwise. A file that is not there is an error, never "not checked". */
static gboolean target_open(Target *target)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_path_get_dirname(target->path);
    struct stat st;

    if (lstat(target->path, &st) < 0) {
        if (errno == ENOENT && g_str_equal(target->file, target->path))
            fprintf(stderr, "imagecachectl: '%s' does not exist\n", target->file);
        else if (errno == ENOENT)
            fprintf(stderr, "imagecachectl: '%s' does not exist (looked for '%s')\n", target->file,
                    target->path);
        else
            fprintf(stderr, "imagecachectl: '%s': %s\n", target->path, g_strerror(errno));
        return FALSE;
    }
    target->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (target->dirfd < 0) {
        ic_error_set_errno(&error, errno, "opening directory", dir);
        ic_cli_print_error(error);
        return FALSE;
    }
    target->name = g_path_get_basename(target->path);
    return TRUE;
}

/* Prints the outcome for @path; TRUE when the file is not known to be bad. */
static gboolean print_result(const char *path, const IcChecksumResult *result)
{
    switch (result->state) {
    case IC_CHECKSUM_OK:
        printf("%s: ok (sha1 %s)\n", path, result->actual);
        return TRUE;
    case IC_CHECKSUM_NO_SIDECAR:
        printf("%s: no checksum sidecar to verify against (sha1 %s)\n", path, result->actual);
        return TRUE;
    case IC_CHECKSUM_MISMATCH:
        printf("%s: CORRUPT: expected sha1 %s, got %s\n", path, result->expected, result->actual);
        return FALSE;
    case IC_CHECKSUM_ERROR:
        printf("%s: error: %s\n", path, result->error);
        return FALSE;
    case IC_CHECKSUM_RECENT:
        printf("%s: not checked\n", path);
        return TRUE;
    case IC_CHECKSUM_NOT_CHECKED:
        /* It went away between the lstat and the hashing. */
        printf("%s: error: the file disappeared\n", path);
        return FALSE;
    }
    return FALSE;
}

/* Hashes the files that are there, several at once (one per core; the rate
 * limit is their total), and prints the results in the order given. */
static gboolean verify_all(IcCli *cli, char **files, guint n_files, guint64 rate_limit)
{
    g_autofree Target *targets = g_new0(Target, n_files);
    g_autofree IcChecksumJob *jobs = g_new0(IcChecksumJob, n_files);
    g_autofree guint *job_of = g_new0(guint, n_files); /* G_MAXUINT: not opened */
    guint n_jobs = 0;
    gboolean all_good = TRUE;

    for (guint i = 0; i < n_files; i++) {
        targets[i] = (Target){.file = files[i], .dirfd = -1};
        targets[i].path = ic_cli_base_file_path(cli, files[i]);
        job_of[i] = G_MAXUINT;
        if (!target_open(&targets[i])) {
            all_good = FALSE;
            continue;
        }
        jobs[n_jobs] = (IcChecksumJob){.dirfd = targets[i].dirfd, .name = targets[i].name};
        job_of[i] = n_jobs++;
    }

    IcChecksumOptions options = {
        .rate_limit_bytes_per_sec = rate_limit,
        .interval_seconds = 0,
        .write_missing = FALSE,
    };
    g_autoptr(GError) error = NULL;
    if (!ic_checksum_verify_many(jobs, n_jobs, &options, ic_cli_now(), 0, &error)) {
        ic_cli_print_error(error);
        all_good = FALSE;
    }
    for (guint i = 0; i < n_files; i++) {
        if (job_of[i] != G_MAXUINT) {
            all_good &= print_result(targets[i].path, &jobs[job_of[i]].result);
            ic_checksum_result_clear(&jobs[job_of[i]].result);
        }
        target_clear(&targets[i]);
    }
    return all_good;
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
    return verify_all(cli, argv + 1, (guint)argc - 1, rate_limit) ? IC_EXIT_OK : IC_EXIT_FAILED;
}
