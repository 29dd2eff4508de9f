#include "fileutil.h"

#include "error.h"

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int ic_file_open_regular_at(int dirfd, const char *name, struct stat *ret_st, GError **error)
{
    ic_autofd fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int errsv = errno;
        if (errsv == ELOOP) {
            g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE, "refusing to open '%s': a symlink", name);
            return -1;
        }
        (void)ic_error_set_errno(error, errsv, "opening", name);
        return -1;
    }

    struct stat st;
    if (fstat(fd, &st) < 0) {
        (void)ic_error_set_errno(error, errno, "inspecting", name);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE, "refusing to read '%s': not a regular file",
                    name);
        return -1;
    }
    if (ret_st != NULL)
        *ret_st = st;
    return ic_steal_fd(&fd);
}

gboolean ic_file_read_some(int fd, void *buf, gsize len, const char *name, gsize *ret_n,
                           GError **error)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int errsv = errno;
        /* An open file read back as "no such file": the open was deferred and the
         * file it named is gone. An error, never the file's absence. */
        if (errsv == ENOENT || errsv == ESTALE) {
            g_set_error(error, IC_ERROR, IC_ERROR_STALE, "reading '%s': %s", name,
                        g_strerror(errsv));
            return FALSE;
        }
        return ic_error_set_errno(error, errsv, "reading", name);
    }
    *ret_n = (gsize)n;
    return TRUE;
}

/* Sets the error and leaves errno as @errsv, for callers that keep the code. */
static gboolean set_listing_error(GError **error, int errsv, const char *what, const char *path)
{
    g_autofree char *listing = g_strconcat("listing ", what, NULL);
    (void)ic_error_set_errno(error, errsv, listing, path);
    errno = errsv;
    return FALSE;
}

DIR *ic_dir_fdopen(int fd, const char *what, const char *path, GError **error)
{
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int errsv = errno;
        close(fd);
        (void)set_listing_error(error, errsv, what, path);
    }
    return dir;
}

DIR *ic_dir_open_at(int dirfd, const char *path, const char *what, GError **error)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        (void)set_listing_error(error, errno, what, path);
        return NULL;
    }
    return ic_dir_fdopen(fd, what, path, error);
}

gboolean ic_dir_read(DIR *dir, const char *what, const char *path, struct dirent **ret_entry,
                     GError **error)
{
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL && errno != 0)
            return set_listing_error(error, errno, what, path);
        if (entry == NULL ||
            (!g_str_equal(entry->d_name, ".") && !g_str_equal(entry->d_name, ".."))) {
            *ret_entry = entry;
            return TRUE;
        }
    }
}

/* getdents64 fills struct dirent64 records; readdir's struct dirent is the
 * same record on this ABI, so an entry is handed out in place. */
G_STATIC_ASSERT(sizeof(struct dirent) == sizeof(struct dirent64));
G_STATIC_ASSERT(offsetof(struct dirent, d_name) == offsetof(struct dirent64, d_name));
G_STATIC_ASSERT(offsetof(struct dirent, d_reclen) == offsetof(struct dirent64, d_reclen));

void ic_dir_list_init(IcDirList *list, int fd)
{
    list->fd = fd;
    list->pos = 0;
    list->len = 0;
    list->end = FALSE;
}

gboolean ic_dir_list_read(IcDirList *list, const char *what, const char *path,
                          struct dirent **ret_entry, GError **error)
{
    for (;;) {
        if (list->pos >= list->len) {
            if (list->end) {
                *ret_entry = NULL;
                return TRUE;
            }
            ssize_t n;
            do
                n = getdents64(list->fd, list->buf, sizeof(list->buf));
            while (n < 0 && errno == EINTR);
            /* As glibc's readdir: a directory removed while it is listed
             * answers ENOENT, which POSIX asks to take as the end. */
            if (n < 0 && errno != ENOENT)
                return set_listing_error(error, errno, what, path);
            if (n <= 0) {
                list->end = TRUE;
                continue;
            }
            list->pos = 0;
            list->len = (gsize)n;
        }
        struct dirent *entry = (struct dirent *)((char *)list->buf + list->pos);
        /* The kernel never hands out a record past what it filled. */
        if (entry->d_reclen == 0 || entry->d_reclen > list->len - list->pos)
            return set_listing_error(error, EIO, what, path);
        list->pos += entry->d_reclen;
        /* readdir skips deleted entries (inode 0), as some filesystems leave them. */
        if (entry->d_ino == 0 || g_str_equal(entry->d_name, ".") ||
            g_str_equal(entry->d_name, ".."))
            continue;
        *ret_entry = entry;
        return TRUE;
    }
}

void ic_dir_list_clear(IcDirList *list)
{
    ic_close_fdp(&list->fd);
}

/* Lists the directory holding @name: a network filesystem client answers a
 * listing from the server (GlusterFS's readdirplus replaces the kernel's cached
 * entries that point to a replaced file), so the next lookup finds the new file. */
static void refresh_dir(int dirfd, const char *name)
{
    g_autofree char *parent = g_path_get_dirname(name);
    /* Best effort: a retry follows whatever this listing does. */
    g_autoptr(DIR) dir = ic_dir_open_at(dirfd, parent, "directory", NULL);
    struct dirent *entry;
    while (dir != NULL && ic_dir_read(dir, "directory", parent, &entry, NULL) && entry != NULL)
        ;
}

gboolean ic_file_retry_stale(GError **error, guint *attempt, int dirfd, const char *name)
{
    if (!g_error_matches(*error, IC_ERROR, IC_ERROR_STALE) || *attempt >= IC_FILE_STALE_RETRIES)
        return FALSE;
    g_debug("%s: opening it again", (*error)->message);
    g_clear_error(error);
    g_usleep((gulong)IC_FILE_STALE_WAIT_US << *attempt);
    refresh_dir(dirfd, name);
    (*attempt)++;
    return TRUE;
}

static gboolean read_at_once(int dirfd, const char *name, gsize max_len, char **ret_data,
                             gsize *ret_len, GError **error);

gboolean ic_file_read_at(int dirfd, const char *name, gsize max_len, char **ret_data,
                         gsize *ret_len, GError **error)
{
    guint attempt = 0;
    g_autoptr(GError) local_error = NULL;
    while (!read_at_once(dirfd, name, max_len, ret_data, ret_len, &local_error)) {
        if (!ic_file_retry_stale(&local_error, &attempt, dirfd, name)) {
            g_propagate_error(error, g_steal_pointer(&local_error));
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean read_at_once(int dirfd, const char *name, gsize max_len, char **ret_data,
                             gsize *ret_len, GError **error)
{
    struct stat st;
    ic_autofd fd = ic_file_open_regular_at(dirfd, name, &st, error);
    if (fd < 0)
        return FALSE;
    if (st.st_size < 0 || (guint64)st.st_size > max_len) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT,
                    "'%s' is too large: %" G_GINT64_FORMAT " bytes, the limit is %" G_GSIZE_FORMAT,
                    name, (gint64)st.st_size, max_len);
        return FALSE;
    }

    /* The file may grow under us: read at most one byte past the limit. */
    max_len = MIN(max_len, G_MAXSIZE / 2);
    gsize cap = (gsize)st.st_size + 1;
    gsize len = 0;
    g_autofree char *buf = g_malloc(cap + 1);
    while (len <= max_len) {
        if (len == cap) {
            cap = MIN(cap * 2, max_len + 1);
            buf = g_realloc(buf, cap + 1);
        }
        gsize n;
        if (!ic_file_read_some(fd, buf + len, cap - len, name, &n, error))
            return FALSE;
        if (n == 0)
            break;
        len += n;
    }
    if (len > max_len) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT,
                    "'%s' is too large: over the limit of %" G_GSIZE_FORMAT " bytes", name,
                    max_len);
        return FALSE;
    }
    buf[len] = '\0';

    *ret_data = g_steal_pointer(&buf);
    if (ret_len != NULL)
        *ret_len = len;
    return TRUE;
}

static gboolean write_all(int fd, const void *data, gsize len, const char *name, GError **error)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ic_error_set_errno(error, errno, "writing", name);
        }
        p += n;
        len -= (gsize)n;
    }
    return TRUE;
}

static gboolean fsync_dir(int dirfd, const char *name, GError **error)
{
    /* The directory's own fd when it can be synced (opened for reading, as the
     * ledger dir's is): the same inode as ".", without opening it again (issue
     * 15). An O_PATH fd or AT_FDCWD cannot (EBADF): "." is opened then. */
    if (fsync(dirfd) == 0)
        return TRUE;
    if (errno != EBADF)
        return ic_error_set_errno(error, errno, "syncing the directory of", name);
    ic_autofd fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening the directory of", name);
    if (fsync(fd) < 0)
        return ic_error_set_errno(error, errno, "syncing the directory of", name);
    return TRUE;
}

/* Writes, syncs and closes @fd (always closed). */
static gboolean write_sync_close(int fd, const void *data, gsize len, const char *tmp_name,
                                 GError **error)
{
    gboolean ok = write_all(fd, data, len, tmp_name, error);
    if (ok && fsync(fd) < 0)
        ok = ic_error_set_errno(error, errno, "syncing", tmp_name);
    if (close(fd) < 0 && ok)
        ok = ic_error_set_errno(error, errno, "closing", tmp_name);
    return ok;
}

/* The temp file's suffix. One getrandom(2), where g_random_int would open and
 * read /dev/urandom to seed GLib's generator for the one number a hook run
 * needs (issue 15). Its quality cannot matter: O_EXCL decides, and a clash is
 * retried with another number. */
static guint32 temp_suffix(void)
{
    guint32 value;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) == (ssize_t)sizeof value)
        return value;
    return g_random_int();
}

/* The common end of both atomic writes: @data into @fd (the new temp file
 * @tmp_name, always closed), synced, renamed over @name, the directory synced.
 * The temp file is removed on failure. */
static gboolean commit_temp(int dirfd, int fd, const char *tmp_name, const char *name,
                            const void *data, gsize len, GError **error)
{
    if (!write_sync_close(fd, data, len, tmp_name, error)) {
        (void)unlinkat(dirfd, tmp_name, 0);
        return FALSE;
    }
    if (renameat(dirfd, tmp_name, dirfd, name) < 0) {
        int errsv = errno;
        (void)unlinkat(dirfd, tmp_name, 0);
        return ic_error_set_errno(error, errsv, "replacing", name);
    }
    return fsync_dir(dirfd, name, error);
}

static gboolean check_plain_name(const char *name, GError **error)
{
    if (name[0] != '\0' && strchr(name, '/') == NULL)
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_FAILED, "invalid file name '%s'", name);
    return FALSE;
}

gboolean ic_file_write_atomic_at(int dirfd, const char *name, const void *data, gsize len,
                                 mode_t mode, GError **error)
{
    if (!check_plain_name(name, error))
        return FALSE;

    g_autofree char *tmp_name = NULL;
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        g_free(tmp_name);
        tmp_name = g_strdup_printf("%s.tmp.%08" G_GINT32_MODIFIER "x", name, temp_suffix());
        fd = openat(dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0 && (errno != EEXIST || attempt >= 16))
            return ic_error_set_errno(error, errno, "creating", tmp_name);
    }
    return commit_temp(dirfd, fd, tmp_name, name, data, len, error);
}

/* How often the fixed temp name is freed and created again before giving up:
 * a leftover needs one unlink; a name that reappears at once is someone else's
 * writer (the caller's serialisation is broken), not a leftover. */
#define FIXED_TEMP_ATTEMPTS 3

gboolean ic_file_write_atomic_fixed_at(int dirfd, const char *name, const char *tmp_name,
                                       const void *data, gsize len, mode_t mode, GError **error)
{
    if (!check_plain_name(name, error) || !check_plain_name(tmp_name, error))
        return FALSE;
    /* Created afresh (O_EXCL; O_NOFOLLOW for the record: O_CREAT|O_EXCL never
     * follows): whatever a crashed writer or anyone else left under the name
     * -- a regular file holding anything, a symlink, a hard link to a file
     * elsewhere -- is never opened, followed or truncated, only its name
     * unlinked. O_TRUNC instead would truncate the inode a planted hard link
     * shares. The common case makes the random-name write's calls exactly. */
    for (int attempt = 1;; attempt++) {
        int fd =
            openat(dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0)
            return commit_temp(dirfd, fd, tmp_name, name, data, len, error);
        if (errno != EEXIST || attempt >= FIXED_TEMP_ATTEMPTS)
            return ic_error_set_errno(error, errno, "creating", tmp_name);
        /* A directory is never a leftover of ours: unlinkat fails (EISDIR) and it is kept. */
        if (unlinkat(dirfd, tmp_name, 0) < 0 && errno != ENOENT)
            return ic_error_set_errno(error, errno, "removing the leftover temporary file",
                                      tmp_name);
        g_debug("removed '%s', left by an interrupted write", tmp_name);
    }
}

const char *ic_int64_text(gint64 value, char buf[IC_INT64_TEXT_SIZE], gsize *ret_len)
{
    char *p = buf + IC_INT64_TEXT_SIZE;
    guint64 magnitude = value < 0 ? -(guint64)value : (guint64)value;
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    if (value < 0)
        *--p = '-';
    *ret_len = (gsize)(buf + IC_INT64_TEXT_SIZE - p);
    return p;
}

char *ic_path_join(const char *dir, const char *name)
{
    gsize dir_len = strlen(dir);
    /* Only where g_build_filename would add exactly one separator and change
     * nothing else; anything else is left to it. */
    if (dir_len == 0 || dir[dir_len - 1] == '/' || name[0] == '\0' || name[0] == '/')
        return g_build_filename(dir, name, NULL);
    gsize name_len = strlen(name);
    char *path = g_malloc(dir_len + 1 + name_len + 1);
    memcpy(path, dir, dir_len);
    path[dir_len] = '/';
    memcpy(path + dir_len + 1, name, name_len + 1);
    return path;
}

guint ic_path_hash(gconstpointer path)
{
    const char *s = path;
    gsize len = strlen(s);
    guint64 h = 0x9e3779b97f4a7c15ull ^ len;
    guint64 word;
    /* Eight bytes a round, each mixed in by a multiply (as murmur's finaliser). */
    for (; len >= sizeof word; s += sizeof word, len -= sizeof word) {
        memcpy(&word, s, sizeof word);
        h = (h ^ word) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    word = 0;
    memcpy(&word, s, len);
    h = (h ^ word) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (guint)h;
}

/* Every bit of the identity mixed into every bit of the hash (murmur3's
 * finaliser): GHashTable takes a bucket as (hash * 11) modulo a prime just
 * below a power of two (131071 = 2^17 - 1 at 100,000 keys), and ext4 hands
 * out inodes in runs spaced by powers of two, so the plain inode number put
 * the runs on the same buckets. At 100,000 base files 60 % of them shared a
 * bucket, and the tables keyed by identity probed 20 to 40 times more per
 * file than at 10,000 (issue 15). */
guint ic_file_id_hash(gconstpointer id)
{
    const IcFileId *f = id;
    guint64 h = (guint64)f->ino ^ ((guint64)f->dev * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (guint)h;
}

gboolean ic_file_id_equal(gconstpointer a, gconstpointer b)
{
    const IcFileId *x = a, *y = b;
    return x->dev == y->dev && x->ino == y->ino;
}
