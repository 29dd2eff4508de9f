/* protocol-lock.c — the lock side of the removal protocol (protocol.h): bounded,
 * cancellable OFD locks and the hook's shared lock at prepare. GLib only: the hook links it. */
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "ledger-store.h"

#define BACKOFF_FIRST_US 1000
#define BACKOFF_MAX_US   50000

static gboolean try_lock(int fd, int byte, short type, gboolean *ret_taken, GError **error,
                         const char *name)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = byte < 0 ? 0 : byte,
        .l_len = byte < 0 ? 0 : 1,
        .l_pid = 0,
    };
    while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EACCES) {
            *ret_taken = FALSE;
            return TRUE;
        }
        return ic_error_set_errno(error, errno, "locking", name);
    }
    *ret_taken = TRUE;
    return TRUE;
}

gboolean ic_protocol_lock_file_at(int dirfd, int fd, const char *name, int byte, gboolean exclusive,
                                  gint64 deadline_us, IcProtocolStopFunc stop, gpointer stop_data,
                                  int *ret_fd, GError **error)
{
    ic_autofd own_fd = -1;
    if (fd < 0) {
        own_fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (own_fd < 0)
            return ic_error_set_errno(error, errno, "opening the lock file", name);
        fd = own_fd;
    }
    gint64 delay = BACKOFF_FIRST_US;
    gint64 started = g_get_monotonic_time();
    for (;;) {
        gboolean taken = FALSE;
        if (!try_lock(fd, byte, exclusive ? F_WRLCK : F_RDLCK, &taken, error, name))
            return FALSE;
        if (taken)
            break;
        /* Cancellation is checked between tries, so it is seen within BACKOFF_MAX_US. */
        if (stop != NULL && stop(stop_data)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CANCELLED, "cancelled while waiting for '%s'",
                        name);
            return FALSE;
        }
        gint64 now = g_get_monotonic_time();
        if (now >= deadline_us) {
            g_set_error(error, IC_ERROR, IC_ERROR_BUSY,
                        "'%s' still locked after %" G_GINT64_FORMAT " ms", name,
                        (now - started) / 1000);
            return FALSE;
        }
        g_usleep((gulong)MIN(delay, deadline_us - now));
        delay = MIN(delay * 2, BACKOFF_MAX_US);
    }
    if (own_fd >= 0)
        *ret_fd = ic_steal_fd(&own_fd);
    return TRUE;
}

static void unlock_byte(int fd, int byte)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    (void)fcntl(fd, F_OFD_SETLK, &fl);
}

/* Both sides take the intent byte first, then the usage byte, within one
 * deadline. A start only passes the intent byte (takes it shared and lets it
 * go), so it queues behind a pass that holds it while it waits for the usage
 * byte; a pass keeps it until it is done. */
static gboolean lock_usage(int dirfd, const char *ledger_dir, gint64 timeout_ms, gboolean exclusive,
                           IcProtocolStopFunc stop, gpointer stop_data, int *ret_fd, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + MAX(timeout_ms, 0) * 1000;
    ic_autofd own_dirfd = -1;
    if (dirfd < 0) {
        if (!ic_ledger_open_dir(ledger_dir, &own_dirfd, error))
            return FALSE;
        dirfd = own_dirfd;
    }
    ic_autofd fd = -1;
    if (!ic_protocol_lock_file_at(dirfd, -1, IC_PROTOCOL_LOCK_NAME, IC_PROTOCOL_INTENT_BYTE,
                                  exclusive, deadline, stop, stop_data, &fd, error)) {
        g_prefix_error(error, "in '%s': ", ledger_dir);
        return FALSE;
    }
    if (!exclusive)
        unlock_byte(fd, IC_PROTOCOL_INTENT_BYTE);
    if (!ic_protocol_lock_file_at(dirfd, fd, IC_PROTOCOL_LOCK_NAME, IC_PROTOCOL_USAGE_BYTE,
                                  exclusive, deadline, stop, stop_data, NULL, error)) {
        g_prefix_error(error, "in '%s': ", ledger_dir);
        return FALSE;
    }
    *ret_fd = ic_steal_fd(&fd);
    return TRUE;
}

gboolean ic_protocol_lock_for_start(const char *ledger_dir, gint64 timeout_ms, int *ret_fd,
                                    GError **error)
{
    return ic_protocol_lock_for_start_at(-1, ledger_dir, timeout_ms, ret_fd, error);
}

gboolean ic_protocol_lock_for_start_at(int dirfd, const char *ledger_dir, gint64 timeout_ms,
                                       int *ret_fd, GError **error)
{
    return lock_usage(dirfd, ledger_dir, timeout_ms, FALSE, NULL, NULL, ret_fd, error);
}

gboolean ic_protocol_lock_exclusive(const char *ledger_dir, gint64 timeout_ms,
                                    IcProtocolStopFunc stop, gpointer stop_data, int *ret_fd,
                                    GError **error)
{
    return lock_usage(-1, ledger_dir, timeout_ms, TRUE, stop, stop_data, ret_fd, error);
}

/* ---- which ledger dir may be trusted ---- */

/* Local: named below instances_path ('..' is refused by the config) with no
 * symlink on the way, so it is on this host's own instances storage, and a
 * missing one means only that no domain was recorded yet. Anything else may be
 * a share, mounted or not. */
/* ic_protocol_ledger_dir_is_local; *ret_is_dir is TRUE when the walk's last
 * lstat found the ledger dir itself, a directory (no symlink on the way, so a
 * stat would say the same). */
static gboolean ledger_dir_walk(const IcConfig *config, gboolean *ret_is_dir)
{
    *ret_is_dir = FALSE;
    g_autofree char *prefix = g_strconcat(config->instances_path, G_DIR_SEPARATOR_S, NULL);
    if (!g_str_has_prefix(config->ledger_dir, prefix))
        return FALSE;
    g_auto(GStrv) parts = g_strsplit(config->ledger_dir + strlen(prefix), G_DIR_SEPARATOR_S, -1);
    g_autoptr(GString) path = g_string_new(config->instances_path);
    for (char **part = parts; *part != NULL; part++) {
        if (**part == '\0' || g_str_equal(*part, "."))
            continue;
        g_string_append_printf(path, "/%s", *part);
        struct stat st;
        *ret_is_dir = FALSE;
        if (lstat(path->str, &st) < 0)
            return errno == ENOENT;
        if (!S_ISDIR(st.st_mode))
            return FALSE;
        *ret_is_dir = TRUE;
    }
    return TRUE;
}

gboolean ic_protocol_ledger_dir_is_local(const IcConfig *config)
{
    gboolean is_dir;
    return ledger_dir_walk(config, &is_dir);
}

gboolean ic_protocol_ledger_dir_check(const IcConfig *config, gboolean create,
                                      gboolean *ret_missing, GError **error)
{
    if (ret_missing != NULL)
        *ret_missing = FALSE;
    gboolean is_dir = FALSE;
    if (ledger_dir_walk(config, &is_dir)) {
        /* The walk's lstat already answered for an existing dir (issue 15). */
        if (is_dir || g_file_test(config->ledger_dir, G_FILE_TEST_IS_DIR))
            return TRUE;
        if (!create) {
            if (ret_missing != NULL)
                *ret_missing = TRUE;
            return TRUE;
        }
        if (mkdir(config->ledger_dir, 0755) < 0 && errno != EEXIST)
            return ic_error_set_errno(error, errno, "creating the ledger directory",
                                      config->ledger_dir);
        return TRUE;
    }
    /* A share's mount point is an existing, empty directory while the share is
     * not mounted, and a missing one must not be created here (records written
     * into it would hide under the share once it is mounted). Only the marker,
     * put in the mounted share by 'imagecachectl ledger --init', proves it. */
    ic_autofd dirfd = open(config->ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (dirfd < 0 || fstatat(dirfd, IC_PROTOCOL_LEDGER_MARKER, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode)) {
        int errsv = errno;
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "usage ledger dir '%s' is outside instances_path and %s (an unmounted "
                    "share?): other hosts' users are unknown; mount the share, or confirm this "
                    "is the shared ledger with 'imagecachectl ledger --init'",
                    config->ledger_dir,
                    dirfd < 0 ? (errsv == ENOENT ? "does not exist" : g_strerror(errsv))
                              : "has no '" IC_PROTOCOL_LEDGER_MARKER "' marker");
        return FALSE;
    }
    return TRUE;
}

gboolean ic_protocol_lock_probe(const IcConfig *config, GError **error)
{
    gboolean missing = FALSE;
    if (!ic_protocol_ledger_dir_check(config, FALSE, &missing, error))
        return FALSE;
    /* A local dir not there yet is made by the run, in instances_path. */
    const char *dir = missing ? config->instances_path : config->ledger_dir;
    ic_autofd dirfd = -1;
    if (!ic_ledger_open_dir(dir, &dirfd, error))
        return FALSE;
    const char *name = IC_PROTOCOL_LOCK_NAME;
    ic_autofd fd = missing ? -1 : openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && (missing || errno == ENOENT)) {
        /* The run creates it: it can where it may write. */
        if (faccessat(dirfd, ".", W_OK, AT_EACCESS) < 0)
            return ic_error_set_errno(error, errno, "creating the lock file in", dir);
        return TRUE;
    }
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening the lock file", name);
    /* Asks whether the lock could be taken, takes nothing: a holder now (a
     * start, another pass) is waited for by the run, but a filesystem that
     * cannot lock fails it here as it would there. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 2};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return ic_error_set_errno(error, errno, "locking", name);
    return TRUE;
}
