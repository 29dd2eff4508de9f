/* ledger-store.c — the ledger directory: each host's file read-modify-written under its
 * host lock, every host's file read (through a change cache), the .last-pass claim.
 * The file format is ledger.c's. */
#include "ledger-store.h"

#include "error.h"
#include "fileutil.h"
#include "protocol.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define LEDGER_SUFFIX  ".ledger"
#define LOCK_SUFFIX    ".lock"
#define LAST_PASS_NAME ".last-pass" /* not *.ledger: no host file */

static gboolean check_host_name(const char *host, GError **error)
{
    if (ic_ledger_host_name_is_valid(host))
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                "invalid host name '%s' for the ledger: use 1 to %d letters, digits, '.', '-' "
                "or '_', not starting with '.'",
                host != NULL ? host : "", IC_LEDGER_HOST_MAX_LEN);
    return FALSE;
}

char *ic_ledger_machine_id(void)
{
    const char *env = g_getenv("IMAGECACHE_MACHINE_ID");
    g_autofree char *text = NULL;
    if (env != NULL && *env != '\0')
        text = g_strdup(env);
    else if (!g_file_get_contents("/etc/machine-id", &text, NULL, NULL))
        return NULL;
    g_strstrip(text);
    return ic_ledger_machine_id_is_valid(text) ? g_steal_pointer(&text) : NULL;
}

/* ---- locking and writing ---- */

gboolean ic_ledger_open_dir(const char *ledger_dir, int *ret_dirfd, GError **error)
{
    /* The directory exists on every call but the first: open it, and make it
     * only when the open says it is missing (issue 15: a failing mkdir on
     * every hook run). */
    int fd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdir(ledger_dir, 0755) < 0 && errno != EEXIST)
            return ic_error_set_errno(error, errno, "creating the ledger directory", ledger_dir);
        fd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    *ret_dirfd = fd;
    return TRUE;
}

/* An OFD lock (owned by the open file description, not the process): it works
 * between threads, is released when the fd closes, and is honoured over NFS.
 * The wait is bounded (protocol.h): a writer of this host holds it only across
 * one file rewrite, so running out of time means something is stuck. */
static gboolean lock_file_at(int dirfd, const char *name, gint64 deadline, int *ret_fd,
                             GError **error)
{
    if (deadline <= 0)
        deadline = g_get_monotonic_time() + IC_PROTOCOL_HOST_WAIT_MS * 1000;
    return ic_protocol_lock_file_at(dirfd, -1, name, -1, TRUE, deadline, NULL, NULL, ret_fd, error);
}

/* The temp file of a host's ledger write: one fixed name per host,
 * "<host>.ledger.tmp". No two hosts' names meet: every host's file ends in
 * ".ledger", ".lock" or ".ledger.tmp", and the host names differ before it. */
#define TEMP_SUFFIX ".tmp"

/* TRUE for exactly "<file_name>.tmp.<8 hex digits>", the name an older
 * version's write (ic_file_write_atomic_at) gave its temp file. A prefix match
 * is not enough: host "a.ledger.tmp.x" is valid, and its ledger starts with
 * host "a"'s temp prefix. No host's own file has that exact shape (each ends
 * in ".ledger", ".lock" or ".ledger.tmp", or is longer). */
static gboolean is_old_temp(const char *entry, const char *prefix)
{
    if (!g_str_has_prefix(entry, prefix))
        return FALSE;
    const char *tail = entry + strlen(prefix);
    if (strlen(tail) != 8)
        return FALSE;
    for (; *tail != '\0'; tail++) {
        if (!g_ascii_isxdigit(*tail))
            return FALSE;
    }
    return TRUE;
}

/* Removes the "<host>.ledger.tmp.XXXXXXXX" files a crashed writer of an older
 * version left (it named its temp at random and listed the dir on every write
 * to find them; this version's fixed name needs neither). Only at the repair
 * (reconcile), never on the hook's path: it lists the whole shared dir. The
 * caller holds the host lock, which older writers took too, so none of this
 * host's writers owns one; the age is a second guard, for a lock the
 * filesystem does not enforce. Only regular files of this host's prefix:
 * another host's writer may be alive, and anything else was not ours. */
static void remove_old_temps(int dirfd, const char *file_name, gint64 now)
{
    g_autofree char *prefix = g_strconcat(file_name, TEMP_SUFFIX ".", NULL);
    /* Best effort: a file left now is tried again at the next repair. */
    g_autoptr(DIR) dir = ic_dir_open_at(dirfd, ".", "the ledger directory", NULL);
    struct dirent *entry;
    while (dir != NULL && ic_dir_read(dir, "the ledger directory", ".", &entry, NULL) &&
           entry != NULL) {
        struct stat st;
        if (!is_old_temp(entry->d_name, prefix) ||
            fstatat(dirfd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            now - st.st_mtim.tv_sec < IC_LEDGER_OLD_TEMP_SECONDS)
            continue;
        g_debug("removing '%s' left by an interrupted ledger write", entry->d_name);
        (void)unlinkat(dirfd, entry->d_name, 0);
    }
}

/* One change to a host file: @apply edits the host as read. @keeps_others: it
 * changes one domain and leaves the others as read, so those are checked but
 * kept as their text (ic_ledger_host_parse_for_update); an edit that reads the
 * domains it changes (a release remembers their base files) decodes them all. */
typedef struct {
    gboolean (*apply)(IcLedgerHost *host, gpointer data, gint64 now, GError **error);
    gboolean keeps_others;
} LedgerEdit;

/* The read-modify-write of one host file, under its exclusive lock. A damaged
 * existing file stops the edit (its users must not be lost) unless @replace.
 * @expect (may be NULL): the file's bytes the caller decided from (empty: no
 * file); anything else under the lock fails with IC_ERROR_CHANGED. */
static gboolean ledger_update(int dirfd, const char *ledger_dir, const char *host_name,
                              gboolean replace, GBytes *expect, const LedgerEdit *edit,
                              gpointer data, gint64 now, gint64 deadline, GError **error)
{
    if (!check_host_name(host_name, error))
        return FALSE;
    ic_autofd own_dirfd = -1;
    if (dirfd < 0) {
        if (!ic_ledger_open_dir(ledger_dir, &own_dirfd, error))
            return FALSE;
        dirfd = own_dirfd;
    }

    g_autofree char *file_name = g_strconcat(host_name, LEDGER_SUFFIX, NULL);
    g_autofree char *lock_name = g_strconcat(host_name, LOCK_SUFFIX, NULL);
    ic_autofd lock_fd = -1;
    if (!lock_file_at(dirfd, lock_name, deadline, &lock_fd, error)) {
        g_prefix_error(error, "in '%s': ", ledger_dir);
        return FALSE;
    }
    if (replace)
        remove_old_temps(dirfd, file_name, now);

    g_autofree char *machine_id = ic_ledger_machine_id();
    g_autoptr(IcLedgerHost) host = NULL;
    g_autofree char *old = NULL;
    gsize old_len = 0;
    g_autoptr(GError) read_error = NULL;
    /* Recording a domain at VM start changes one group: the others are not decoded
     * and encoded again (LedgerEdit). @old outlives @host's use: both are freed on
     * return. */
    gboolean (*parse)(const char *, gsize, IcLedgerHost **, GError **) =
        edit->keeps_others ? ic_ledger_host_parse_for_update : ic_ledger_host_parse;
    if (ic_file_read_at(dirfd, file_name, IC_LEDGER_MAX_BYTES, &old, &old_len, &read_error)) {
        if (!parse(old, old_len, &host, &read_error) && !replace) {
            g_propagate_prefixed_error(
                error, g_steal_pointer(&read_error),
                "ledger file '%s/%s' is damaged, not changing it: ", ledger_dir, file_name);
            return FALSE;
        }
        if (host != NULL && strcmp(host->host, host_name) != 0 && !replace) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "ledger file '%s/%s' names host '%s', not changing it", ledger_dir,
                        file_name, host->host);
            return FALSE;
        }
        /* Even a repair must not overwrite another machine's domains. */
        if (host != NULL && host->machine_id != NULL && machine_id != NULL &&
            strcmp(host->machine_id, machine_id) != 0) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "ledger file '%s/%s' was written by machine '%s', this is machine '%s': "
                        "two hosts use the host name '%s' (cloned nodes?); set a distinct 'host' "
                        "in each one's config; not changing the file",
                        ledger_dir, file_name, host->machine_id, machine_id, host_name);
            return FALSE;
        }
    } else if (!g_error_matches(read_error, IC_ERROR, IC_ERROR_NOT_FOUND) && !replace) {
        g_propagate_prefixed_error(error, g_steal_pointer(&read_error), "in '%s': ", ledger_dir);
        return FALSE;
    }
    if (expect != NULL) {
        gsize expect_len = 0;
        const void *expect_data = g_bytes_get_data(expect, &expect_len);
        if (expect_len != (old ? old_len : 0) ||
            (expect_len > 0 && memcmp(expect_data, old, expect_len) != 0)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CHANGED,
                        "ledger file '%s/%s' changed meanwhile (a domain started or stopped)",
                        ledger_dir, file_name);
            return FALSE;
        }
    }
    if (host == NULL || strcmp(host->host, host_name) != 0) {
        g_clear_pointer(&host, ic_ledger_host_free);
        host = ic_ledger_host_new(host_name);
    }

    if (!edit->apply(host, data, now, error))
        return FALSE;
    host->refreshed = now;
    g_free(host->machine_id);
    host->machine_id = g_steal_pointer(&machine_id);

    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    /* One temp name per host, not a random one: every writer of this host
     * holds the host lock from the read to the rename, so no two use the name
     * at once, and a crashed writer's leftover is simply replaced by the next
     * write (unlinked, never opened). No listing of the shared dir to find
     * leftovers: at 1,000 hosts it is 2,000+ entries over the network on every
     * VM start (issue 15). */
    g_autofree char *temp_name = g_strconcat(file_name, TEMP_SUFFIX, NULL);
    if (!ic_file_write_atomic_fixed_at(dirfd, file_name, temp_name, text, len, 0644, error)) {
        g_prefix_error(error, "writing the ledger in '%s': ", ledger_dir);
        return FALSE;
    }
    return TRUE;
}

/* A host as read is sorted by uuid (the parser sorts or checks the order). */
static gint find_domain(const IcLedgerHost *host, const char *uuid)
{
    return ic_ledger_host_find_domain(host, uuid, NULL);
}

typedef struct {
    const char *path;
    gint64 time;
} LastUsed;

static gint compare_last_used(gconstpointer a, gconstpointer b)
{
    const LastUsed *la = a, *lb = b;
    if (la->time != lb->time)
        return la->time < lb->time ? -1 : 1;
    return strcmp(la->path, lb->path);
}

/* Keeps the newest IC_LEDGER_MAX_LIST_ENTRIES entries: the file cannot grow
 * without bound, and a longer list would read as a damaged file. */
static void trim_last_used(IcLedgerHost *host)
{
    guint size = g_hash_table_size(host->last_used);
    if (size <= IC_LEDGER_MAX_LIST_ENTRIES)
        return;
    g_autoptr(GArray) entries = g_array_sized_new(FALSE, FALSE, sizeof(LastUsed), size);
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, host->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        LastUsed entry = {key, *(gint64 *)value};
        g_array_append_val(entries, entry);
    }
    g_array_sort(entries, compare_last_used);
    g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < size - IC_LEDGER_MAX_LIST_ENTRIES; i++)
        g_ptr_array_add(doomed, g_strdup(g_array_index(entries, LastUsed, i).path));
    for (guint i = 0; i < doomed->len; i++)
        g_hash_table_remove(host->last_used, doomed->pdata[i]);
}

static void remember_release(IcLedgerHost *host, const IcLedgerDomain *domain, gint64 now)
{
    for (guint i = 0; i < domain->base_files->len; i++) {
        gint64 *value = g_new(gint64, 1);
        *value = now;
        g_hash_table_replace(host->last_used, g_strdup(g_ptr_array_index(domain->base_files, i)),
                             value);
    }
    trim_last_used(host);
}

/* The copy of @domain to write: its start time stays that of @host's entry for
 * it, if any (*ret_index, may be NULL: that entry, or -1), since started means "first
 * recorded": prepare, then started, then reconnect. */
static IcLedgerDomain *copy_keeping_start(const IcLedgerHost *host, const IcLedgerDomain *domain,
                                          gint *ret_index)
{
    IcLedgerDomain *copy = ic_ledger_domain_writable_copy(domain);
    gint index = find_domain(host, domain->uuid);
    if (index >= 0) {
        const IcLedgerDomain *old = g_ptr_array_index(host->domains, index);
        if (old->started > 0)
            copy->started = old->started;
    }
    if (ret_index != NULL)
        *ret_index = index;
    return copy;
}

static gboolean edit_record(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    const IcLedgerDomain *domain = data;
    if (host->domains->len >= IC_LEDGER_MAX_DOMAINS && find_domain(host, domain->uuid) < 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "the ledger of host '%s' is full (%d domains)",
                    host->host, IC_LEDGER_MAX_DOMAINS);
        return FALSE;
    }
    /* At its place, replacing its old entry: the domains stay sorted, not sorted again. */
    ic_ledger_host_put_domain(host, copy_keeping_start(host, domain, NULL));
    return TRUE;
}
static const LedgerEdit record_edit = {edit_record, TRUE};

gboolean ic_ledger_record_domain_at(int dirfd, const char *ledger_dir, const char *host,
                                    const IcLedgerDomain *domain, gint64 now, gint64 deadline_us,
                                    GError **error)
{
    if (!ic_ledger_domain_check(domain, error))
        return FALSE;
    return ledger_update(dirfd, ledger_dir, host, FALSE, NULL, &record_edit, (gpointer)domain, now,
                         deadline_us, error);
}

gboolean ic_ledger_record_domain_until(const char *ledger_dir, const char *host,
                                       const IcLedgerDomain *domain, gint64 now, gint64 deadline_us,
                                       GError **error)
{
    return ic_ledger_record_domain_at(-1, ledger_dir, host, domain, now, deadline_us, error);
}

gboolean ic_ledger_record_domain(const char *ledger_dir, const char *host,
                                 const IcLedgerDomain *domain, gint64 now, GError **error)
{
    return ic_ledger_record_domain_until(ledger_dir, host, domain, now, 0, error);
}

static gboolean edit_drop(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    gint index = find_domain(host, data);
    if (index < 0)
        return TRUE;
    const IcLedgerDomain *old = g_ptr_array_index(host->domains, index);
    remember_release(host, old, now);
    g_ptr_array_remove_index(host->domains, (guint)index);
    return TRUE;
}
static const LedgerEdit drop_edit = {edit_drop, FALSE};

gboolean ic_ledger_drop_domain(const char *ledger_dir, const char *host, const char *uuid,
                               gint64 now, GError **error)
{
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    return ledger_update(-1, ledger_dir, host, FALSE, NULL, &drop_edit, lower, now, 0, error);
}

static gboolean edit_replace(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    GPtrArray *domains = data;
    g_autoptr(GPtrArray) fresh =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    for (guint i = 0; i < domains->len; i++)
        g_ptr_array_add(fresh, copy_keeping_start(host, g_ptr_array_index(domains, i), NULL));
    /* Domains that are gone were released while nobody was listening. */
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *old = g_ptr_array_index(host->domains, i);
        gboolean kept = FALSE;
        for (guint j = 0; j < fresh->len && !kept; j++)
            kept = strcmp(((IcLedgerDomain *)fresh->pdata[j])->uuid, old->uuid) == 0;
        if (!kept)
            remember_release(host, old, now);
    }
    g_ptr_array_sort(fresh, ic_ledger_domain_compare);
    g_ptr_array_unref(host->domains);
    host->domains = g_steal_pointer(&fresh);
    return TRUE;
}
static const LedgerEdit replace_edit = {edit_replace, FALSE};

gboolean ic_ledger_host_snapshot(const char *ledger_dir, const char *host, GBytes **ret_snapshot,
                                 GError **error)
{
    if (!check_host_name(host, error))
        return FALSE;
    g_autofree char *file_name = g_strconcat(host, LEDGER_SUFFIX, NULL);
    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno != ENOENT)
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) read_error = NULL;
    if (dirfd >= 0 &&
        !ic_file_read_at(dirfd, file_name, IC_LEDGER_MAX_BYTES, &data, &len, &read_error) &&
        !g_error_matches(read_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
        g_propagate_prefixed_error(error, g_steal_pointer(&read_error), "in '%s': ", ledger_dir);
        return FALSE;
    }
    *ret_snapshot = data ? g_bytes_new_take(data, len) : g_bytes_new(NULL, 0);
    return TRUE;
}

gboolean ic_ledger_replace_host_if_unchanged(const char *ledger_dir, const char *host,
                                             GPtrArray *domains, gint64 now, GBytes *expect,
                                             GError **error)
{
    if (domains->len > IC_LEDGER_MAX_DOMAINS) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "more than %d domains", IC_LEDGER_MAX_DOMAINS);
        return FALSE;
    }
    for (guint i = 0; i < domains->len; i++) {
        if (!ic_ledger_domain_check(g_ptr_array_index(domains, i), error))
            return FALSE;
    }
    /* The repair: a damaged file is replaced rather than kept. */
    return ledger_update(-1, ledger_dir, host, TRUE, expect, &replace_edit, domains, now, 0, error);
}

gboolean ic_ledger_replace_host(const char *ledger_dir, const char *host, GPtrArray *domains,
                                gint64 now, GError **error)
{
    return ic_ledger_replace_host_if_unchanged(ledger_dir, host, domains, now, NULL, error);
}

/* ---- reading every host ---- */

/* Where one read of the ledger dir says what it could not read. */
typedef struct {
    const char *ledger_dir;
    GPtrArray *errors; /* char* */
} ReadErrors;

static void add_error(ReadErrors *errors, const char *name, const GError *error)
{
    g_ptr_array_add(errors->errors, g_strdup_printf("ledger file '%s/%s': %s", errors->ledger_dir,
                                                    name, error->message));
}

/* ---- the change cache ---- */

/* What a file looked like when it was parsed: a rewrite is a new file renamed
 * in, so its inode and ctime change even when size and mtime repeat. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} FileKey;

typedef struct {
    FileKey key;
    IcLedgerHost *host;
} CachedHost;

struct _IcLedgerCache {
    GHashTable *files; /* file name -> CachedHost* */
    guint64 bytes_read;
    guint files_read;
};

static void cached_host_free(CachedHost *cached)
{
    ic_ledger_host_free(cached->host);
    g_free(cached);
}

IcLedgerCache *ic_ledger_cache_new(void)
{
    IcLedgerCache *cache = g_new0(IcLedgerCache, 1);
    cache->files =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)cached_host_free);
    return cache;
}

void ic_ledger_cache_free(IcLedgerCache *cache)
{
    if (cache == NULL)
        return;
    g_hash_table_unref(cache->files);
    g_free(cache);
}

void ic_ledger_cache_last_read(const IcLedgerCache *cache, guint *ret_files, guint64 *ret_bytes)
{
    *ret_files = cache->files_read;
    *ret_bytes = cache->bytes_read;
}

static FileKey file_key(const struct stat *st)
{
    return (FileKey){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

static gboolean same_key(const FileKey *a, const FileKey *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* One host file, parsed and checked against its name; NULL (and the reason in
 * ledger->errors) when it cannot be read, is damaged or names another host. */
static IcLedgerHost *read_host_file(ReadErrors *ledger, int dirfd, const char *name)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *host_name = g_strndup(name, strlen(name) - strlen(LEDGER_SUFFIX));
    if (!ic_ledger_host_name_is_valid(host_name)) {
        g_set_error(&error, IC_ERROR, IC_ERROR_FORMAT, "'%s' is not a valid host name", host_name);
        add_error(ledger, name, error);
        return NULL;
    }
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(IcLedgerHost) host = NULL;
    if (!ic_file_read_at(dirfd, name, IC_LEDGER_MAX_BYTES, &data, &len, &error) ||
        !ic_ledger_host_parse(data, len, &host, &error)) {
        add_error(ledger, name, error);
        return NULL;
    }
    if (strcmp(host->host, host_name) != 0) {
        g_set_error(&error, IC_ERROR, IC_ERROR_FORMAT, "the file names host '%s'", host->host);
        add_error(ledger, name, error);
        return NULL;
    }
    return g_steal_pointer(&host);
}

/* A host file through @cache: parsed again only when its identity, size or
 * times changed since the last read (the stat comes first, so a file replaced
 * while it is read is read again next time). Damaged files are never cached. */
static IcLedgerHost *read_host_file_cached(IcLedgerCache *cache, ReadErrors *ledger, int dirfd,
                                           const char *name)
{
    struct stat st;
    if (cache == NULL || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return read_host_file(ledger, dirfd, name);
    FileKey key = file_key(&st);
    CachedHost *known = g_hash_table_lookup(cache->files, name);
    if (known != NULL && same_key(&known->key, &key))
        return ic_ledger_host_copy(known->host);

    IcLedgerHost *host = read_host_file(ledger, dirfd, name);
    cache->files_read++;
    cache->bytes_read += (guint64)st.st_size;
    if (host == NULL) {
        g_hash_table_remove(cache->files, name);
        return NULL;
    }
    CachedHost *fresh = g_new0(CachedHost, 1);
    fresh->key = key;
    fresh->host = ic_ledger_host_copy(host);
    g_hash_table_replace(cache->files, g_strdup(name), fresh);
    return host;
}

/* Drops the cached files that are no longer listed. */
static void forget_gone_files(IcLedgerCache *cache, GPtrArray *names)
{
    g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < names->len; i++)
        g_hash_table_add(listed, names->pdata[i]);
    GHashTableIter iter;
    gpointer name;
    g_hash_table_iter_init(&iter, cache->files);
    while (g_hash_table_iter_next(&iter, &name, NULL)) {
        if (!g_hash_table_contains(listed, name))
            g_hash_table_iter_remove(&iter);
    }
}

/* Host files in the order of their hosts' names ("a" before "a-b", which
 * "a.ledger" and "a-b.ledger" are not), so hosts are handed out sorted. */
static gint compare_host_files(gconstpointer a, gconstpointer b)
{
    const char *fa = *(const char *const *)a, *fb = *(const char *const *)b;
    gsize la = strlen(fa) - strlen(LEDGER_SUFFIX), lb = strlen(fb) - strlen(LEDGER_SUFFIX);
    int cmp = strncmp(fa, fb, MIN(la, lb));
    if (cmp != 0)
        return cmp;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

static gboolean list_host_files(int dirfd, const char *ledger_dir, GPtrArray *names, GError **error)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "listing the ledger directory", ledger_dir);
    g_autoptr(DIR) dir = ic_dir_fdopen(fd, "the ledger directory", ledger_dir, error);
    if (dir == NULL)
        return FALSE;
    for (;;) {
        struct dirent *entry;
        if (!ic_dir_read(dir, "the ledger directory", ledger_dir, &entry, error))
            return FALSE;
        if (entry == NULL)
            break;
        /* Every *.ledger, hidden or odd names included: one that is not a host's
         * file is reported rather than skipped, since it might hold users. */
        if (g_str_has_suffix(entry->d_name, LEDGER_SUFFIX))
            g_ptr_array_add(names, g_strdup(entry->d_name));
    }
    g_ptr_array_sort(names, compare_host_files);
    return TRUE;
}

gboolean ic_ledger_read_each(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                             gint64 stale_seconds, IcLedgerHostFunc each, gpointer data,
                             GPtrArray **ret_errors, GError **error)
{
    if (cache != NULL) {
        cache->files_read = 0;
        cache->bytes_read = 0;
    }
    g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
    ReadErrors read_errors = {.ledger_dir = ledger_dir, .errors = errors};

    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT) {
            /* No host ever wrote: nobody recorded a user. */
            *ret_errors = g_steal_pointer(&errors);
            return TRUE;
        }
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    }

    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    if (!list_host_files(dirfd, ledger_dir, names, error))
        return FALSE;
    if (cache != NULL)
        forget_gone_files(cache, names);
    for (guint i = 0; i < names->len; i++) {
        IcLedgerHost *host = read_host_file_cached(cache, &read_errors, dirfd, names->pdata[i]);
        if (host == NULL)
            continue;
        host->stale = stale_seconds > 0 && now - host->refreshed > stale_seconds;
        each(host, data);
    }
    *ret_errors = g_steal_pointer(&errors);
    return TRUE;
}

static void keep_host(IcLedgerHost *host, gpointer data)
{
    g_ptr_array_add(((IcLedger *)data)->hosts, host);
}

gboolean ic_ledger_read_all(const char *ledger_dir, gint64 now, gint64 stale_seconds,
                            IcLedger **ret_ledger, GError **error)
{
    return ic_ledger_read_all_cached(NULL, ledger_dir, now, stale_seconds, ret_ledger, error);
}

gboolean ic_ledger_read_all_cached(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                                   gint64 stale_seconds, IcLedger **ret_ledger, GError **error)
{
    g_autoptr(IcLedger) ledger = g_new0(IcLedger, 1);
    ledger->ledger_dir = g_strdup(ledger_dir);
    ledger->hosts = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_host_free);
    ledger->read_at = now;
    if (!ic_ledger_read_each(cache, ledger_dir, now, stale_seconds, keep_host, ledger,
                             &ledger->errors, error))
        return FALSE;
    *ret_ledger = g_steal_pointer(&ledger);
    return TRUE;
}

static void add_entry_user(IcUsage *usage, const char *base_dir, const IcLedgerHost *host,
                           const IcLedgerDomain *domain, const char *entry, gboolean local)
{
    g_autofree char *path = ic_ledger_resolve_entry(entry, base_dir);
    if (path != NULL) {
        ic_usage_add_path_user(usage, path, domain->uuid, domain->name, host->host, local,
                               IC_WITNESS_LEDGER);
        return;
    }
    /* An old absolute path outside any base dir: it could name any base file
     * (a symlinked base dir, a mount we do not know), so nothing is removed.
     * The path itself still counts, for a file it reaches here. */
    ic_usage_add_path_user(usage, entry, domain->uuid, domain->name, host->host, local,
                           IC_WITNESS_LEDGER);
    g_autofree char *note = g_strdup_printf(
        "ledger of host '%s': domain '%s' names '%s', which is not in a directory named like "
        "the base dir: its base file is unknown, so nothing is removed (rewrite the entry with "
        "'imagecachectl reconcile' on that host)",
        host->host, domain->name, entry);
    ic_usage_add_note(usage, IC_NOTE_LEDGER_DAMAGED, note);
}

void ic_ledger_host_add_usage(const IcLedgerHost *host, const char *local_host,
                              const char *base_dir, gint64 read_at, IcUsage *usage)
{
    gboolean local = g_strcmp0(host->host, local_host) == 0;
    if (host->stale) {
        /* Losing a VM's base image is worse than keeping a file longer. */
        g_autofree char *note = g_strdup_printf(
            "ledger of host '%s' not refreshed for %" G_GINT64_FORMAT " s (still counted)",
            host->host, MAX(0, read_at - host->refreshed));
        ic_usage_add_note(usage, IC_NOTE_LEDGER_STALE, note);
    }
    g_autofree char *machine_id = local && host->machine_id != NULL ? ic_ledger_machine_id() : NULL;
    if (machine_id != NULL && strcmp(host->machine_id, machine_id) != 0) {
        /* Two machines share this host name: each rewrite drops the other's domains. */
        g_autofree char *note = g_strdup_printf(
            "ledger of host '%s' was written by machine '%s', this is machine '%s': two "
            "hosts use one host name and overwrite each other's domains, so nothing is "
            "removed (give each host its own 'host' in imagecache.conf)",
            host->host, host->machine_id, machine_id);
        ic_usage_add_note(usage, IC_NOTE_HOST_NAME_COLLISION, note);
    }
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(host->domains, i);
        if (domain->unknown != NULL) {
            g_autofree char *note = g_strdup_printf(
                "ledger of host '%s': domain '%s' (%s) has a disk whose base files are not "
                "known (%s): usage unknown, nothing is removed until it is released or "
                "recorded in full",
                host->host, domain->name, domain->uuid, domain->unknown);
            ic_usage_add_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, note);
        }
        for (guint j = 0; j < domain->base_files->len; j++)
            add_entry_user(usage, base_dir, host, domain, g_ptr_array_index(domain->base_files, j),
                           local);
        for (guint j = 0; j < domain->image_ids->len; j++)
            ic_usage_add_image_user(usage, g_ptr_array_index(domain->image_ids, j), domain->uuid,
                                    domain->name, host->host, local, IC_WITNESS_LEDGER);
    }
    GHashTableIter iter;
    gpointer path, when;
    g_hash_table_iter_init(&iter, host->last_used);
    while (g_hash_table_iter_next(&iter, &path, &when)) {
        /* Only an age: an entry that cannot be resolved is left out. */
        g_autofree char *resolved = ic_ledger_resolve_entry(path, base_dir);
        if (resolved != NULL)
            ic_usage_add_last_used(usage, resolved, *(const gint64 *)when);
    }
}

void ic_ledger_add_usage(const IcLedger *ledger, const char *local_host, const char *base_dir,
                         IcUsage *usage)
{
    for (guint i = 0; i < ledger->errors->len; i++)
        ic_usage_add_note(usage, IC_NOTE_LEDGER_DAMAGED, g_ptr_array_index(ledger->errors, i));
    for (guint i = 0; i < ledger->hosts->len; i++)
        ic_ledger_host_add_usage(g_ptr_array_index(ledger->hosts, i), local_host, base_dir,
                                 ledger->read_at, usage);
}

/* ---- one removing pass per shared cache ---- */

/* "host=<host>\ntime=<epoch seconds>\n"; FALSE when the file says anything else. */
static gboolean parse_last_pass(const char *text, char **ret_host, gint64 *ret_time)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    if (g_strv_length(lines) < 2 || !g_str_has_prefix(lines[0], "host=") ||
        !g_str_has_prefix(lines[1], "time="))
        return FALSE;
    guint64 t = 0;
    if (!g_ascii_string_to_unsigned(lines[1] + 5, 10, 0, G_MAXINT64, &t, NULL))
        return FALSE;
    *ret_host = g_strdup(lines[0] + 5);
    *ret_time = (gint64)t;
    return TRUE;
}

gboolean ic_ledger_claim_pass(const char *ledger_dir, const char *host, gint64 now, gint64 interval,
                              char **ret_note)
{
    *ret_note = NULL;
    if (interval <= 0)
        return TRUE;
    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return TRUE; /* the pass itself reports an unreadable ledger dir */

    g_autofree char *text = NULL;
    g_autofree char *last_host = NULL;
    gint64 last = 0;
    if (ic_file_read_at(dirfd, LAST_PASS_NAME, 4096, &text, NULL, NULL) &&
        parse_last_pass(text, &last_host, &last) && g_strcmp0(last_host, host) != 0 &&
        last <= now && now - last < interval) {
        *ret_note = g_strdup_printf("host '%s' ran the removal pass %" G_GINT64_FORMAT
                                    " s ago (shared_pass_interval_seconds = %" G_GINT64_FORMAT
                                    "): this pass only reports",
                                    last_host, now - last, interval);
        return FALSE;
    }
    /* Ours now. Two hosts claiming at once both remove: the lock keeps that
     * safe; the stamp only spares the shared filesystem the repeated work. */
    g_autofree char *stamp = g_strdup_printf("host=%s\ntime=%" G_GINT64_FORMAT "\n", host, now);
    g_autoptr(GError) error = NULL;
    if (!ic_file_write_atomic_at(dirfd, LAST_PASS_NAME, stamp, strlen(stamp), 0644, &error))
        g_debug("not writing '%s/%s': %s", ledger_dir, LAST_PASS_NAME, error->message);
    return TRUE;
}
