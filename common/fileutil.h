/* fileutil.h — small file helpers relative to a directory descriptor: safe open of a
 * regular file, bounded whole-file read, atomic rewrite, and an autoclose for fds. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <glib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

G_BEGIN_DECLS

/* Closes *fd when it is >= 0, keeping errno; for use as a cleanup function. */
static inline void ic_close_fdp(int *fd)
{
    if (*fd >= 0) {
        int errsv = errno;
        close(*fd);
        errno = errsv;
        *fd = -1;
    }
}

/* A file descriptor closed when it goes out of scope (GLib 2.74 lacks g_autofd):
 *   ic_autofd fd = openat(...);  ...  return ic_steal_fd(&fd); */
#define ic_autofd __attribute__((cleanup(ic_close_fdp))) int

/* Hands the descriptor on: returns *fdp and sets it to -1. */
static inline int ic_steal_fd(int *fdp)
{
    int fd = *fdp;
    *fdp = -1;
    return fd;
}

/* Opens @name relative to @dirfd read-only (O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK) and
 * checks it is a regular file. Returns the fd (caller closes) and fills @ret_st when
 * non-NULL; on failure -1 with IC_ERROR_NOT_FOUND (absent), IC_ERROR_UNSAFE (symlink,
 * directory, device, FIFO...) or IC_ERROR_IO. */
int ic_file_open_regular_at(int dirfd, const char *name, struct stat *ret_st, GError **error);

/* One read(2) of up to @len bytes from @fd, retried on EINTR. *ret_n is 0 at end
 * of file. Fails with IC_ERROR_IO naming @name; with IC_ERROR_STALE for ESTALE and
 * for ENOENT, which a read can only mean when the opened file went away under a
 * network filesystem's deferred open (GlusterFS open-behind): never "absent". */
gboolean ic_file_read_some(int fd, void *buf, gsize len, const char *name, gsize *ret_n,
                           GError **error);

/* A directory stream closed when it goes out of scope: g_autoptr(DIR). */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DIR, closedir)

/* A directory stream on @fd, which it takes over (closed on failure too). Errors
 * read "listing <what> '<path>': <strerror>" (IC_ERROR_IO, NOT_FOUND for ENOENT),
 * and errno keeps the code. */
DIR *ic_dir_fdopen(int fd, const char *what, const char *path, GError **error);

/* Opens the directory @path relative to @dirfd for reading (O_CLOEXEC); fails
 * as ic_dir_fdopen. */
DIR *ic_dir_open_at(int dirfd, const char *path, const char *what, GError **error);

/* The next entry of @dir other than "." and "..", or NULL in *ret_entry at the
 * end. A read error is not the end: it fails as ic_dir_fdopen does, so a
 * caller never mistakes a half-read directory for a whole one. */
gboolean ic_dir_read(DIR *dir, const char *what, const char *path, struct dirent **ret_entry,
                     GError **error);

/* A listing read straight with getdents64(2) into a buffer the caller holds
 * (on its stack): for the instances walk, which lists one small directory per
 * domain. fdopendir(3) costs each of them an fcntl(F_GETFL), an fstat and an
 * fcntl(F_SETFD) (the descriptor is already an O_DIRECTORY | O_CLOEXEC one),
 * and a 32 KiB buffer from malloc, which made malloc consolidate its fast
 * bins once per directory (issue 15). Entries read as readdir(3) gives them:
 * "." and ".." left out, deleted entries (inode 0) skipped, ENOENT (the
 * directory removed) the end. */
#define IC_DIR_LIST_BUFFER 8192
typedef struct {
    int fd;    /* owned: closed by ic_dir_list_clear */
    gsize pos; /* next entry in @buf */
    gsize len; /* bytes of @buf the last getdents64 filled */
    gboolean end;
    guint64 buf[IC_DIR_LIST_BUFFER / sizeof(guint64)]; /* aligned for struct dirent */
} IcDirList;

/* Starts listing the directory open as @fd (taken over). */
void ic_dir_list_init(IcDirList *list, int fd);

/* As ic_dir_read: the next entry other than "." and "..", NULL at the end; a
 * read error fails as ic_dir_read does (errno keeps the code). */
gboolean ic_dir_list_read(IcDirList *list, const char *what, const char *path,
                          struct dirent **ret_entry, GError **error);

/* Closes the directory; the list may be cleared twice. */
void ic_dir_list_clear(IcDirList *list);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(IcDirList, ic_dir_list_clear)

/* How often a stale handle is retried, and the wait before the first retry (it
 * doubles: 1.3 s in all). A GlusterFS client under its default caching can keep
 * serving a replaced file's old handle for about its 1 s entry/metadata timeouts;
 * with the settings README "Shared storage" asks for, no retry is needed. */
#define IC_FILE_STALE_RETRIES 8
#define IC_FILE_STALE_WAIT_US 5000

/* For a loop that opens @name (relative to @dirfd) and reads it: TRUE when @error
 * is IC_ERROR_STALE and fewer than IC_FILE_STALE_RETRIES retries were made
 * (*attempt counts them); it then clears @error, waits a little and lists the
 * file's directory, so that the caller's next open looks the path up afresh and
 * finds the file that replaced the stale one. */
gboolean ic_file_retry_stale(GError **error, guint *attempt, int dirfd, const char *name);

/* Reads the whole regular file @name (relative to @dirfd) into a NUL-terminated
 * buffer the caller frees, opening it again on a stale handle (ic_file_retry_stale).
 * Fails like ic_file_open_regular_at (IC_ERROR_NOT_FOUND only when the open finds
 * no file), with IC_ERROR_STALE when retries ran out, and with IC_ERROR_LIMIT when
 * the file holds more than @max_len bytes. @ret_len may be NULL. */
gboolean ic_file_read_at(int dirfd, const char *name, gsize max_len, char **ret_data,
                         gsize *ret_len, GError **error);

/* Replaces @name (a plain name in @dirfd, no '/') atomically with @data: writes
 * "<name>.tmp.<random>" (O_EXCL, O_NOFOLLOW), fsyncs, closes, renames it over
 * @name and fsyncs the directory. A crash leaves the old or the new file; on
 * failure the temporary file is removed and IC_ERROR_IO is set. */
gboolean ic_file_write_atomic_at(int dirfd, const char *name, const void *data, gsize len,
                                 mode_t mode, GError **error);

/* The same through the fixed temporary name @tmp_name (a plain name in @dirfd),
 * for a caller that serialises every writer of @tmp_name (a lock held across
 * the call): no random name, so nothing to list and clean up after a crash.
 * Whatever is found under @tmp_name (a crashed writer's leftover, a symlink, a
 * hard link) is unlinked, never opened or followed, and the file created
 * afresh (O_EXCL); a directory there fails the write (IC_ERROR_IO) and is kept. */
gboolean ic_file_write_atomic_fixed_at(int dirfd, const char *name, const char *tmp_name,
                                       const void *data, gsize len, mode_t mode, GError **error);

/* g_build_filename(@dir, @name, NULL), without its generic walk over every
 * element where the common case needs none: a report joins a base dir and a
 * name for each of 100,000 rows and 200,000 disk files (issue 15). */
char *ic_path_join(const char *dir, const char *name);

/* @value in decimal, as printf's "%" G_GINT64_FORMAT writes it, without
 * printf's machinery (a third of the JSON writer's cost, most of a ledger
 * row's): the digits end at the end of @buf; returns where they start and
 * their count in @ret_len. */
#define IC_INT64_TEXT_SIZE 20 /* "-9223372036854775808", no NUL */
const char *ic_int64_text(gint64 value, char buf[IC_INT64_TEXT_SIZE], gsize *ret_len);

/* A GHashFunc for paths and names, as keys of the large tables (base files
 * by name, users by path): g_str_hash takes a byte at a time, and hashing
 * 90-byte paths was a tenth of a report's instructions (issue 15). */
guint ic_path_hash(gconstpointer path);

/* A file's identity, as a key of hash tables: the functions below take an
 * IcFileId* or a pointer to a struct whose first member is one. */
typedef struct {
    dev_t dev;
    ino_t ino;
} IcFileId;

guint ic_file_id_hash(gconstpointer id);
gboolean ic_file_id_equal(gconstpointer a, gconstpointer b);

G_END_DECLS
