#include "remove.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "scan.h"

gboolean ic_remove_open_base_dir(const char *base_dir, int *ret_dirfd, GError **error)
{
    int fd = open(base_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
            g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                        "base dir '%s' is not a directory (a symbolic link is not followed)",
                        base_dir);
            return FALSE;
        }
        return ic_error_set_errno(error, errno, "opening base dir", base_dir);
    }
    *ret_dirfd = fd;
    return TRUE;
}

/* Checks that each sidecar of @name is absent or a regular file before
 * anything is unlinked: something odd in a sidecar's place keeps the image. */
static gboolean check_sidecars(int dirfd, const char *name, GError **error)
{
    for (const char *const *suffix = ic_sidecar_suffixes; *suffix != NULL; suffix++) {
        g_autofree char *sidecar = g_strconcat(name, *suffix, NULL);
        struct stat st;
        if (fstatat(dirfd, sidecar, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return ic_error_set_errno(error, errno, "inspecting sidecar", sidecar);
        }
        if (!S_ISREG(st.st_mode)) {
            g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                        "sidecar '%s' is not a regular file, keeping the image", sidecar);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean remove_sidecars(int dirfd, const char *name, GError **error)
{
    for (const char *const *suffix = ic_sidecar_suffixes; *suffix != NULL; suffix++) {
        g_autofree char *sidecar = g_strconcat(name, *suffix, NULL);
        if (unlinkat(dirfd, sidecar, 0) < 0 && errno != ENOENT)
            return ic_error_set_errno(error, errno, "removing sidecar", sidecar);
    }
    return TRUE;
}

/* The refusals shared by removal and quarantine: grammar, type, identity. */
static gboolean check_removable(int dirfd, const char *name, const IcRemoveExpect *expect,
                                struct stat *ret_st, GError **error)
{
    if (ic_scan_classify_name(name, NULL) == IC_KIND_IGNORED) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "'%s' is not a base file name, refusing to remove it", name);
        return FALSE;
    }

    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ic_error_set_errno(error, errno, "inspecting base file", name);
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "'%s' is not a regular file, refusing to remove it", name);
        return FALSE;
    }
    if (expect != NULL && (st.st_dev != expect->dev || st.st_ino != expect->ino)) {
        g_set_error(error, IC_ERROR, IC_ERROR_CHANGED,
                    "'%s' was replaced since it was scanned, keeping it", name);
        return FALSE;
    }
    *ret_st = st;
    return check_sidecars(dirfd, name, error);
}

gboolean ic_remove_base_file(int dirfd, const char *name, const IcRemoveExpect *expect, gint64 now,
                             GError **error)
{
    struct stat st;
    if (!check_removable(dirfd, name, expect, &st, error))
        return FALSE;
    if (expect != NULL) {
        if (now - st.st_mtim.tv_sec < expect->min_age) {
            g_set_error(error, IC_ERROR, IC_ERROR_CHANGED,
                        "'%s' was used since it was scanned (age %" G_GINT64_FORMAT
                        " s < %" G_GINT64_FORMAT " s), keeping it",
                        name, (gint64)(now - st.st_mtim.tv_sec), expect->min_age);
            return FALSE;
        }
    }

    if (unlinkat(dirfd, name, 0) < 0)
        return ic_error_set_errno(error, errno, "removing base file", name);
    return remove_sidecars(dirfd, name, error);
}

gboolean ic_remove_quarantine(int dirfd, const char *name, const IcRemoveExpect *expect,
                              GError **error)
{
    struct stat st;
    if (!check_removable(dirfd, name, expect, &st, error))
        return FALSE;
    if (mkdirat(dirfd, IC_QUARANTINE_DIR, 0700) < 0 && errno != EEXIST)
        return ic_error_set_errno(error, errno, "creating", IC_QUARANTINE_DIR);
    ic_autofd qfd =
        openat(dirfd, IC_QUARANTINE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (qfd < 0)
        return ic_error_set_errno(error, errno, "opening", IC_QUARANTINE_DIR);
    /* Sidecars first: the image is what matters, and it moves last. */
    for (const char *const *suffix = ic_sidecar_suffixes; *suffix != NULL; suffix++) {
        g_autofree char *sidecar = g_strconcat(name, *suffix, NULL);
        if (renameat(dirfd, sidecar, qfd, sidecar) < 0 && errno != ENOENT)
            return ic_error_set_errno(error, errno, "quarantining sidecar", sidecar);
    }
    if (renameat(dirfd, name, qfd, name) < 0)
        return ic_error_set_errno(error, errno, "quarantining base file", name);
    return TRUE;
}

gboolean ic_remove_touch(int dirfd, const char *name, gint64 now, GError **error)
{
    struct timespec times[2] = {
        {.tv_sec = 0, .tv_nsec = UTIME_OMIT},
        {.tv_sec = (time_t)now, .tv_nsec = 0},
    };
    if (utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
        return ic_error_set_errno(error, errno, "touching base file", name);
    return TRUE;
}
