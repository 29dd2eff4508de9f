#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"

const char *const ic_sidecar_suffixes[] = {".sha1", ".info", NULL};

const char *ic_image_kind_to_string(IcImageKind kind)
{
    switch (kind) {
    case IC_KIND_ORIGINAL:
        return "original";
    case IC_KIND_SMALL:
        return "small";
    case IC_KIND_RESIZED:
        return "resized";
    case IC_KIND_SWAP:
        return "swap";
    case IC_KIND_EPHEMERAL:
        return "ephemeral";
    case IC_KIND_IGNORED:
        break;
    }
    return "ignored";
}

gboolean ic_fingerprint_is_valid(const char *s)
{
    for (gsize i = 0; i < IC_FINGERPRINT_LEN; i++) {
        if (!g_ascii_isdigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return FALSE;
    }
    return s[IC_FINGERPRINT_LEN] == '\0';
}

static gboolean is_all_digits(const char *s)
{
    if (*s == '\0')
        return FALSE;
    for (; *s != '\0'; s++) {
        if (!g_ascii_isdigit(*s))
            return FALSE;
    }
    return TRUE;
}

static gboolean is_lower_alnum(const char *s, gsize max_len)
{
    gsize len = 0;
    for (; *s != '\0'; s++, len++) {
        if (!g_ascii_isdigit(*s) && !(*s >= 'a' && *s <= 'z'))
            return FALSE;
    }
    return len > 0 && len <= max_len;
}

/* swap_<MB> and ephemeral_<GB>_<ext>, as later Nova names them. */
static IcImageKind classify_volatile(const char *name)
{
    if (g_str_has_prefix(name, "swap_"))
        return is_all_digits(name + 5) && strlen(name + 5) <= 20 ? IC_KIND_SWAP : IC_KIND_IGNORED;
    if (!g_str_has_prefix(name, "ephemeral_"))
        return IC_KIND_IGNORED;
    const char *size = name + strlen("ephemeral_");
    const char *sep = strchr(size, '_');
    if (sep == NULL || sep == size || sep - size > 20)
        return IC_KIND_IGNORED;
    for (const char *p = size; p < sep; p++) {
        if (!g_ascii_isdigit(*p))
            return IC_KIND_IGNORED;
    }
    return is_lower_alnum(sep + 1, 64) ? IC_KIND_EPHEMERAL : IC_KIND_IGNORED;
}

/* The grammar is strict on purpose: a name that merely looks like a base file
 * (upper-case hex, 39 digits, "_5G") is ignored and so never removed. */
IcImageKind ic_scan_classify_name(const char *name, char **ret_fingerprint)
{
    IcImageKind volatile_kind = classify_volatile(name);
    if (volatile_kind != IC_KIND_IGNORED) {
        if (ret_fingerprint != NULL)
            *ret_fingerprint = NULL;
        return volatile_kind;
    }
    if (strnlen(name, IC_FINGERPRINT_LEN + 1) < IC_FINGERPRINT_LEN)
        return IC_KIND_IGNORED;

    char prefix[IC_FINGERPRINT_LEN + 1];
    memcpy(prefix, name, IC_FINGERPRINT_LEN);
    prefix[IC_FINGERPRINT_LEN] = '\0';
    if (!ic_fingerprint_is_valid(prefix))
        return IC_KIND_IGNORED;

    const char *suffix = name + IC_FINGERPRINT_LEN;
    IcImageKind kind;
    if (*suffix == '\0')
        kind = IC_KIND_ORIGINAL;
    else if (g_str_equal(suffix, "_sm"))
        kind = IC_KIND_SMALL;
    else if (suffix[0] == '_' && is_all_digits(suffix + 1) && strlen(suffix + 1) <= 20)
        kind = IC_KIND_RESIZED;
    else
        return IC_KIND_IGNORED;

    if (ret_fingerprint != NULL)
        *ret_fingerprint = g_strdup(prefix);
    return kind;
}

gboolean ic_scan_is_sidecar_temp(const char *name)
{
    const char *tmp = g_strrstr(name, ".tmp.");
    if (tmp == NULL || strlen(tmp + 5) != 8)
        return FALSE;
    for (const char *p = tmp + 5; *p != '\0'; p++) {
        if (!g_ascii_isxdigit(*p))
            return FALSE;
    }
    g_autofree char *target = g_strndup(name, (gsize)(tmp - name));
    for (const char *const *suffix = ic_sidecar_suffixes; *suffix != NULL; suffix++) {
        if (!g_str_has_suffix(target, *suffix))
            continue;
        target[strlen(target) - strlen(*suffix)] = '\0';
        return ic_scan_classify_name(target, NULL) != IC_KIND_IGNORED;
    }
    return FALSE;
}

char *ic_fingerprint_of_image_id(const char *image_id)
{
    return g_compute_checksum_for_string(G_CHECKSUM_SHA1, image_id, -1);
}

/* A file with its name and fingerprint (NULL: none) in the same allocation:
 * one malloc and one free per file instead of three, and a lookup by name
 * finds the struct beside the name it compared. At 100,000 files, freeing the
 * scan at the end of a pass missed the cache on every piece (issue 15). */
static IcBaseFile *base_file_new(const char *name, const char *fingerprint)
{
    gsize name_size = strlen(name) + 1;
    gsize fingerprint_size = fingerprint != NULL ? strlen(fingerprint) + 1 : 0;
    IcBaseFile *file = g_malloc0(sizeof(IcBaseFile) + name_size + fingerprint_size);
    file->name = memcpy((char *)(file + 1), name, name_size);
    if (fingerprint != NULL)
        file->fingerprint = memcpy(file->name + name_size, fingerprint, fingerprint_size);
    return file;
}

static void base_file_free(IcBaseFile *file)
{
    g_free(file);
}

static void skipped_entry_free(IcSkippedEntry *entry)
{
    g_free(entry->name);
    g_free(entry->why);
    g_free(entry);
}

void ic_scan_free(IcScan *scan)
{
    if (scan == NULL)
        return;
    g_free(scan->base_dir);
    g_clear_pointer(&scan->files, g_ptr_array_unref);
    g_clear_pointer(&scan->skipped, g_ptr_array_unref);
    g_clear_pointer(&scan->variants, g_hash_table_unref);
    g_clear_pointer(&scan->temps, g_ptr_array_unref);
    g_clear_pointer(&scan->by_name, g_hash_table_unref);
    g_clear_pointer(&scan->by_identity, g_hash_table_unref);
    g_free(scan);
}

static int compare_files(gconstpointer a, gconstpointer b)
{
    const IcBaseFile *fa = *(IcBaseFile *const *)a;
    const IcBaseFile *fb = *(IcBaseFile *const *)b;
    return strcmp(fa->name, fb->name);
}

static int compare_skipped(gconstpointer a, gconstpointer b)
{
    const IcSkippedEntry *ea = *(IcSkippedEntry *const *)a;
    const IcSkippedEntry *eb = *(IcSkippedEntry *const *)b;
    return strcmp(ea->name, eb->name);
}

static const char *describe_type(mode_t mode)
{
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISBLK(mode) || S_ISCHR(mode))
        return "a device node";
    return "not a regular file";
}

static void add_skipped(IcScan *scan, const char *name, const char *why)
{
    IcSkippedEntry *entry = g_new0(IcSkippedEntry, 1);
    entry->name = g_strdup(name);
    entry->why = g_strdup(why);
    g_ptr_array_add(scan->skipped, entry);
}

/* Records one directory entry; @name is already known to fit the grammar. */
static void scan_entry(IcScan *scan, int dirfd, const char *name, IcImageKind kind,
                       char *fingerprint)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        g_free(fingerprint);
        /* Gone between readdir and stat: nothing to report about it. */
        if (errno != ENOENT)
            add_skipped(scan, name, g_strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        g_free(fingerprint);
        add_skipped(scan, name, describe_type(st.st_mode));
        return;
    }

    IcBaseFile *file = base_file_new(name, fingerprint);
    g_free(fingerprint);
    file->kind = kind;
    file->size = st.st_size;
    file->disk_bytes = (gint64)st.st_blocks * 512;
    file->mtime = st.st_mtim.tv_sec;
    file->ctime = st.st_ctim.tv_sec;
    file->dev = st.st_dev;
    file->ino = st.st_ino;
    g_ptr_array_add(scan->files, file);
}

/* Sorting by name puts "<fp>" before "<fp>_<N>" and "<fp>_sm" last ('_' then
 * digits < 's'); the reference orders original, _sm, resized, so _sm moves up. */
static int compare_variants(gconstpointer a, gconstpointer b)
{
    const IcBaseFile *fa = *(IcBaseFile *const *)a;
    const IcBaseFile *fb = *(IcBaseFile *const *)b;
    if (fa->kind != fb->kind)
        return (int)fa->kind - (int)fb->kind;
    return strcmp(fa->name, fb->name);
}

static void index_variants(IcScan *scan)
{
    for (guint i = 0; i < scan->files->len; i++) {
        IcBaseFile *file = g_ptr_array_index(scan->files, i);
        if (file->fingerprint == NULL)
            continue; /* swap and ephemeral files belong to no image */
        GPtrArray *list = g_hash_table_lookup(scan->variants, file->fingerprint);
        if (list == NULL) {
            list = g_ptr_array_new();
            g_hash_table_insert(scan->variants, file->fingerprint, list);
        }
        g_ptr_array_add(list, file);
    }
    GHashTableIter iter;
    gpointer list;
    g_hash_table_iter_init(&iter, scan->variants);
    while (g_hash_table_iter_next(&iter, NULL, &list))
        g_ptr_array_sort(list, compare_variants);
}

/* The walk asks for a base file by name once per overlay: at 100,000 files a
 * binary search was 15 % of the report's CPU (issue 15). */
static void index_names(IcScan *scan)
{
    scan->by_name = g_hash_table_new(ic_path_hash, g_str_equal);
    for (guint i = 0; i < scan->files->len; i++) {
        IcBaseFile *file = g_ptr_array_index(scan->files, i);
        g_hash_table_insert(scan->by_name, file->name, file);
    }
}

static guint base_file_id_hash(gconstpointer key)
{
    const IcBaseFile *file = key;
    return ic_file_id_hash(&(IcFileId){.dev = file->dev, .ino = file->ino});
}

static gboolean base_file_id_equal(gconstpointer a, gconstpointer b)
{
    const IcBaseFile *x = a, *y = b;
    return x->dev == y->dev && x->ino == y->ino;
}

/* The walk asks of every overlay (a name outside the grammar) whether its
 * inode is a scanned file's. Indexed here, once, in the thread that scans
 * beside the ledger read, and shared by the walk's threads: each of them
 * built its own index of 100,000 identities, a key allocated apiece (issue 15). */
static void index_identities(IcScan *scan)
{
    scan->by_identity = g_hash_table_new(base_file_id_hash, base_file_id_equal);
    for (guint i = 0; i < scan->files->len; i++)
        g_hash_table_add(scan->by_identity, g_ptr_array_index(scan->files, i));
}

static void scan_temp(IcScan *scan, int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return;
    IcBaseFile *file = base_file_new(name, NULL);
    file->size = st.st_size;
    file->mtime = st.st_mtim.tv_sec;
    file->dev = st.st_dev;
    file->ino = st.st_ino;
    g_ptr_array_add(scan->temps, file);
}

gboolean ic_scan_base_dir(const char *base_dir, IcScan **ret_scan, GError **error)
{
    g_autoptr(IcScan) scan = g_new0(IcScan, 1);
    scan->base_dir = g_strdup(base_dir);
    scan->files = g_ptr_array_new_with_free_func((GDestroyNotify)base_file_free);
    scan->skipped = g_ptr_array_new_with_free_func((GDestroyNotify)skipped_entry_free);
    scan->variants =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_ptr_array_unref);
    scan->temps = g_ptr_array_new_with_free_func((GDestroyNotify)base_file_free);

    int dirfd = open(base_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) {
        int errsv = errno;
        if (errsv == ENOENT) {
            *ret_scan = g_steal_pointer(&scan);
            return TRUE;
        }
        if (errsv == ELOOP || errsv == ENOTDIR) {
            g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                        "base dir '%s' is not a directory (a symbolic link is not followed)",
                        base_dir);
            return FALSE;
        }
        return ic_error_set_errno(error, errsv, "opening base dir", base_dir);
    }

    g_autoptr(DIR) dir = ic_dir_fdopen(dirfd, "base dir", base_dir, error);
    if (dir == NULL)
        return FALSE;
    scan->exists = TRUE;

    for (;;) {
        struct dirent *entry;
        if (!ic_dir_read(dir, "base dir", base_dir, &entry, error))
            return FALSE;
        if (entry == NULL)
            break;
        char *fingerprint = NULL;
        IcImageKind kind = ic_scan_classify_name(entry->d_name, &fingerprint);
        if (kind == IC_KIND_IGNORED && ic_scan_is_sidecar_temp(entry->d_name))
            scan_temp(scan, dirfd, entry->d_name);
        else if (kind == IC_KIND_IGNORED)
            scan->ignored++;
        else
            scan_entry(scan, dirfd, entry->d_name, kind, fingerprint);
    }

    g_ptr_array_sort(scan->files, compare_files);
    g_ptr_array_sort(scan->skipped, compare_skipped);
    index_variants(scan);
    index_names(scan);
    index_identities(scan);
    *ret_scan = g_steal_pointer(&scan);
    return TRUE;
}

const IcBaseFile *ic_scan_lookup(const IcScan *scan, const char *name)
{
    if (scan->by_name != NULL)
        return g_hash_table_lookup(scan->by_name, name);
    /* An empty GPtrArray's pdata is NULL, and bsearch(…, NULL, 0, …) is undefined. */
    if (scan->files->len == 0)
        return NULL;
    IcBaseFile key = {.name = (char *)name};
    const IcBaseFile *key_ptr = &key;
    IcBaseFile **found =
        bsearch(&key_ptr, scan->files->pdata, scan->files->len, sizeof(gpointer), compare_files);
    return found ? *found : NULL;
}

const IcBaseFile *ic_scan_lookup_identity(const IcScan *scan, dev_t dev, ino_t ino)
{
    if (scan->by_identity == NULL)
        return NULL; /* no base dir: no file */
    IcBaseFile key = {.dev = dev, .ino = ino};
    return g_hash_table_lookup(scan->by_identity, &key);
}

const GPtrArray *ic_scan_find_variants(const IcScan *scan, const char *fingerprint)
{
    return g_hash_table_lookup(scan->variants, fingerprint);
}
