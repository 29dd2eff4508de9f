/* probe.c — reads qcow2/QED headers from a bounded file prefix and follows backing chains.
 * Every field is range-checked before use: the bytes come from files guests can write. */
#include "probe.h"

#include "error.h"
#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What ic_probe_image reads first (one page: header, extensions and backing name
 * all fit in it for images qemu-img writes), and the most it will read to reach a
 * backing name: QEMU keeps the name in the first cluster, and qcow2 clusters are
 * at most 2 MiB. A pass probes every instance disk and base file, so a 64 KiB
 * first read cost 2.6 GB of copying over 40,000 images. */
#define PROBE_READ_SIZE 4096
#define PROBE_READ_MAX  (2 * 1024 * 1024)

#define QCOW2_MAGIC            "QFI\xfb"
#define QCOW2_V2_HEADER_LENGTH 72
#define QCOW2_V3_HEADER_MIN    104
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21 /* QEMU's implementation limit: 2 MiB */
#define QCOW2_EXT_END          0x00000000u
#define QCOW2_EXT_BACKING_FMT  0xe2792acau
#define QCOW2_MAX_EXTENSIONS   64 /* each type may appear once; QEMU defines six */
#define QCOW2_MAX_BACKING_FMT  15 /* QEMU's char backing_format[16] */

#define QED_MAGIC                     "QED\0"
#define QED_HEADER_SIZE               64
#define QED_F_BACKING_FILE            0x01u
#define QED_F_NEED_CHECK              0x02u
#define QED_F_BACKING_FORMAT_NO_PROBE 0x04u
#define QED_FEATURE_MASK              (QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE)
#define QED_MIN_CLUSTER_SIZE          (4u * 1024)
#define QED_MAX_CLUSTER_SIZE          (64u * 1024 * 1024)
#define QED_MAX_TABLE_SIZE            16u
#define QED_MAX_BACKING_NAME          4095 /* QEMU reads it into a PATH_MAX buffer */

const char *ic_image_format_to_string(IcImageFormat format)
{
    switch (format) {
    case IC_IMAGE_FORMAT_RAW:
        return "raw";
    case IC_IMAGE_FORMAT_QCOW2:
        return "qcow2";
    case IC_IMAGE_FORMAT_QED:
        return "qed";
    }
    return "unknown";
}

void ic_image_info_free(IcImageInfo *info)
{
    if (info == NULL)
        return;
    g_free(info->backing_name);
    g_free(info->backing_path);
    g_free(info->backing_format);
    g_free(info);
}

static guint32 be32_at(const guint8 *p)
{
    return (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 | p[3];
}

static guint64 be64_at(const guint8 *p)
{
    return (guint64)be32_at(p) << 32 | be32_at(p + 4);
}

static guint32 le32_at(const guint8 *p)
{
    return (guint32)p[3] << 24 | (guint32)p[2] << 16 | (guint32)p[1] << 8 | p[0];
}

static guint64 le64_at(const guint8 *p)
{
    return (guint64)le32_at(p + 4) << 32 | le32_at(p);
}

/* QEMU's path_has_protocol(): a ':' before any '/' makes "nbd:…", "json:{…}" a
 * protocol, not a file, and QEMU would not look for it on disk either. */
static gboolean name_has_protocol(const char *name)
{
    return name[strcspn(name, ":/")] == ':';
}

/* Lexical resolution only: the backing name is what QEMU resolves against the
 * overlay's directory as given, so symlinks are not followed here. A relative
 * @image_dir is taken against the current directory. */
static char *resolve_backing_name(const char *name, const char *image_dir)
{
    if (g_path_is_absolute(name))
        return g_canonicalize_filename(name, NULL);
    g_autofree char *dir = g_canonicalize_filename(image_dir != NULL ? image_dir : ".", NULL);
    return g_canonicalize_filename(name, dir);
}

/* The magic matched, so a file too short for the fixed header is a damaged image. */
static gboolean header_fits(gsize len, gsize need, const char *what, GError **error)
{
    if (len >= need)
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                "%s header truncated: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes", what, len,
                need);
    return FALSE;
}

/* Copies the @size bytes at @offset of @data as a string, refusing anything that is
 * not wholly inside @limit (itself <= @len) or that holds a NUL. */
static char *header_string(const guint8 *data, guint64 limit, guint64 offset, guint64 size,
                           const char *what, GError **error)
{
    if (offset > limit || size > limit - offset) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "%s (offset %" G_GUINT64_FORMAT ", size %" G_GUINT64_FORMAT
                    ") lies past the end of the header (%" G_GUINT64_FORMAT " bytes)",
                    what, offset, size, limit);
        return NULL;
    }
    if (memchr(data + offset, '\0', size) != NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "%s contains a NUL byte", what);
        return NULL;
    }
    return g_strndup((const char *)data + offset, size);
}

/* Fills the backing fields of @info from a name already cut out of the header. */
static void set_backing(IcImageInfo *info, char *name, const char *image_dir)
{
    /* QEMU treats an empty name as "no backing file". */
    if (name == NULL || name[0] == '\0') {
        g_free(name);
        return;
    }
    info->backing_name = name;
    /* "file:" is QEMU's name for a plain file: what follows is the path. */
    if (g_str_has_prefix(name, "file:"))
        info->backing_path = resolve_backing_name(name + strlen("file:"), image_dir);
    else if (!name_has_protocol(name))
        info->backing_path = resolve_backing_name(name, image_dir);
}

/* Walks the qcow2 header extensions in [@start, @end) looking for the backing
 * format; QEMU ends the area at the backing name or at the end of the cluster. */
static gboolean qcow2_read_extensions(const guint8 *data, guint64 start, guint64 end,
                                      char **ret_backing_format, GError **error)
{
    g_autofree char *backing_format = NULL;
    guint64 offset = start;

    for (guint count = 0; offset < end; count++) {
        if (count >= QCOW2_MAX_EXTENSIONS) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "more than %u qcow2 header extensions",
                        QCOW2_MAX_EXTENSIONS);
            return FALSE;
        }
        /* QEMU reads zeros (an end marker) past the end of a short file. */
        if (end - offset < 8)
            break;
        guint32 type = be32_at(data + offset);
        guint32 ext_len = be32_at(data + offset + 4);
        offset += 8;
        if (type == QCOW2_EXT_END)
            break;
        if (ext_len > end - offset) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "qcow2 header extension 0x%08x (%u bytes) runs past the header", type,
                        ext_len);
            return FALSE;
        }
        if (type == QCOW2_EXT_BACKING_FMT) {
            if (ext_len > QCOW2_MAX_BACKING_FMT) {
                g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                            "qcow2 backing format name of %u bytes is too long", ext_len);
                return FALSE;
            }
            g_free(backing_format);
            backing_format =
                header_string(data, end, offset, ext_len, "qcow2 backing format name", error);
            if (backing_format == NULL)
                return FALSE;
        }
        /* Data is padded to 8; past @end the loop ends anyway. */
        offset += ((guint64)ext_len + 7) & ~(guint64)7;
    }

    *ret_backing_format = g_steal_pointer(&backing_format);
    return TRUE;
}

static gboolean parse_qcow2(const guint8 *data, gsize len, const char *image_dir,
                            IcImageInfo **ret_info, GError **error)
{
    if (!header_fits(len, QCOW2_V2_HEADER_LENGTH, "qcow2", error))
        return FALSE;

    guint32 version = be32_at(data + 4);
    guint64 backing_offset = be64_at(data + 8);
    guint32 backing_size = be32_at(data + 16);
    guint32 cluster_bits = be32_at(data + 20);
    guint64 size = be64_at(data + 24);

    if (version != 2 && version != 3) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "unsupported qcow2 version %u", version);
        return FALSE;
    }
    if (cluster_bits < QCOW2_MIN_CLUSTER_BITS || cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "invalid qcow2 cluster_bits %u",
                    cluster_bits);
        return FALSE;
    }
    guint64 cluster_size = G_GUINT64_CONSTANT(1) << cluster_bits;
    /* Nothing we parse may come from beyond the first cluster (QEMU's rule) nor beyond
     * what we were given. */
    guint64 limit = MIN((guint64)len, cluster_size);

    guint64 header_length = QCOW2_V2_HEADER_LENGTH;
    if (version == 3) {
        if (!header_fits(len, QCOW2_V3_HEADER_MIN, "qcow2 v3", error))
            return FALSE;
        header_length = be32_at(data + 100);
        if (header_length < QCOW2_V3_HEADER_MIN || header_length > limit) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "invalid qcow2 header_length %" G_GUINT64_FORMAT
                        " (header is %" G_GUINT64_FORMAT " bytes)",
                        header_length, limit);
            return FALSE;
        }
    }

    g_autofree char *backing_name = NULL;
    g_autofree char *backing_format = NULL;
    guint64 ext_end = limit;
    if (backing_offset != 0) {
        if (backing_size > IC_PROBE_MAX_BACKING_NAME) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "qcow2 backing file name of %u bytes is longer than %d", backing_size,
                        IC_PROBE_MAX_BACKING_NAME);
            return FALSE;
        }
        backing_name = header_string(data, limit, backing_offset, backing_size,
                                     "qcow2 backing file name", error);
        if (backing_name == NULL)
            return FALSE;
        ext_end = MAX(backing_offset, header_length);
    }
    if (!qcow2_read_extensions(data, header_length, ext_end, &backing_format, error))
        return FALSE;

    g_autoptr(IcImageInfo) info = g_new0(IcImageInfo, 1);
    info->format = IC_IMAGE_FORMAT_QCOW2;
    info->version = version;
    info->virtual_size = size;
    set_backing(info, g_steal_pointer(&backing_name), image_dir);
    if (info->backing_name != NULL)
        info->backing_format = g_steal_pointer(&backing_format);
    *ret_info = g_steal_pointer(&info);
    return TRUE;
}

static gboolean parse_qed(const guint8 *data, gsize len, const char *image_dir,
                          IcImageInfo **ret_info, GError **error)
{
    if (!header_fits(len, QED_HEADER_SIZE, "QED", error))
        return FALSE;

    guint32 cluster_size = le32_at(data + 4);
    guint32 table_size = le32_at(data + 8);
    guint32 header_clusters = le32_at(data + 12);
    guint64 features = le64_at(data + 16);
    guint64 image_size = le64_at(data + 48);
    guint32 backing_offset = le32_at(data + 56);
    guint32 backing_size = le32_at(data + 60);

    if (features & ~(guint64)QED_FEATURE_MASK) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "unsupported QED features 0x%" G_GINT64_MODIFIER "x", features);
        return FALSE;
    }
    /* The same sanity rules QEMU applies before it trusts any offset. */
    if (cluster_size < QED_MIN_CLUSTER_SIZE || cluster_size > QED_MAX_CLUSTER_SIZE ||
        (cluster_size & (cluster_size - 1)) != 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "invalid QED cluster size %u", cluster_size);
        return FALSE;
    }
    if (table_size == 0 || table_size > QED_MAX_TABLE_SIZE ||
        (table_size & (table_size - 1)) != 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "invalid QED table size %u", table_size);
        return FALSE;
    }

    g_autofree char *backing_name = NULL;
    if (features & QED_F_BACKING_FILE) {
        if (backing_size > QED_MAX_BACKING_NAME) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "QED backing file name of %u bytes is longer than %d", backing_size,
                        QED_MAX_BACKING_NAME);
            return FALSE;
        }
        guint64 limit = MIN((guint64)len, (guint64)header_clusters * cluster_size);
        backing_name = header_string(data, limit, backing_offset, backing_size,
                                     "QED backing file name", error);
        if (backing_name == NULL)
            return FALSE;
    }

    g_autoptr(IcImageInfo) info = g_new0(IcImageInfo, 1);
    info->format = IC_IMAGE_FORMAT_QED;
    info->virtual_size = image_size;
    set_backing(info, g_steal_pointer(&backing_name), image_dir);
    if (info->backing_name != NULL && (features & QED_F_BACKING_FORMAT_NO_PROBE))
        info->backing_format = g_strdup("raw");
    *ret_info = g_steal_pointer(&info);
    return TRUE;
}

gboolean ic_probe_parse(const guint8 *data, gsize len, const char *image_dir,
                        IcImageInfo **ret_info, GError **error)
{
    g_return_val_if_fail(data != NULL || len == 0, FALSE);
    g_return_val_if_fail(ret_info != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    if (len >= 4 && memcmp(data, QCOW2_MAGIC, 4) == 0)
        return parse_qcow2(data, len, image_dir, ret_info, error);
    if (len >= 4 && memcmp(data, QED_MAGIC, 4) == 0)
        return parse_qed(data, len, image_dir, ret_info, error);

    IcImageInfo *info = g_new0(IcImageInfo, 1);
    info->format = IC_IMAGE_FORMAT_RAW;
    *ret_info = info;
    return TRUE;
}

/* How many bytes of the file the header needs so its backing name can be parsed;
 * 0 when the prefix we hold is enough or the header is not worth reading further. */
static guint64 wanted_prefix(const guint8 *data, gsize len)
{
    guint64 end = 0;

    if (len >= QCOW2_V2_HEADER_LENGTH && memcmp(data, QCOW2_MAGIC, 4) == 0) {
        guint64 offset = be64_at(data + 8);
        guint32 size = be32_at(data + 16);
        if (offset != 0 && offset <= PROBE_READ_MAX && size <= IC_PROBE_MAX_BACKING_NAME)
            end = offset + size;
    } else if (len >= QED_HEADER_SIZE && memcmp(data, QED_MAGIC, 4) == 0) {
        if (le64_at(data + 16) & QED_F_BACKING_FILE)
            end = (guint64)le32_at(data + 56) + le32_at(data + 60);
    }
    return end > len && end <= PROBE_READ_MAX ? end : 0;
}

/* Reads up to @len bytes at @offset; fewer only at end of file. */
static gboolean read_at(int fd, guint8 *buf, gsize len, gsize offset, gsize *ret_read,
                        const char *path, GError **error)
{
    gsize done = 0;

    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ic_error_set_errno(error, errno, "reading image", path);
        if (n == 0)
            break;
        done += (gsize)n;
    }
    *ret_read = done;
    return TRUE;
}

gboolean ic_probe_image(const char *path, IcImageInfo **ret_info, GError **error)
{
    return ic_probe_image_at(AT_FDCWD, path, path, ret_info, error);
}

gboolean ic_probe_image_at(int dirfd, const char *name, const char *path, IcImageInfo **ret_info,
                           GError **error)
{
    g_return_val_if_fail(path != NULL, FALSE);
    g_return_val_if_fail(ret_info != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    /* O_NONBLOCK so a FIFO planted in place of an image cannot hang the open. */
    ic_autofd fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening image", path);

    struct stat st;
    if (fstat(fd, &st) < 0)
        return ic_error_set_errno(error, errno, "inspecting image", path);
    /* Block devices hold disks too (LVM, iSCSI), raw or qcow2: their first
     * page is read like a file's. FIFOs, sockets and character devices never. */
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "image '%s' is not a regular file or block device", path);
        return FALSE;
    }

    g_autofree guint8 *buf = g_malloc(PROBE_READ_SIZE);
    gsize len = 0;
    if (!read_at(fd, buf, PROBE_READ_SIZE, 0, &len, path, error))
        return FALSE;

    guint64 wanted = wanted_prefix(buf, len);
    if (wanted != 0 && len == PROBE_READ_SIZE) {
        gsize more = 0;
        buf = g_realloc(buf, wanted);
        if (!read_at(fd, buf + len, wanted - len, len, &more, path, error))
            return FALSE;
        len += more;
    }

    g_autofree char *image_dir = g_path_get_dirname(path);
    g_autoptr(GError) local_error = NULL;
    if (ic_probe_parse(buf, len, image_dir, ret_info, &local_error))
        return TRUE;

    /* The first page is enough for almost every header; one whose extensions
     * run past it (they may fill the first cluster) gets a second, full read. */
    guint64 size = S_ISBLK(st.st_mode) ? PROBE_READ_MAX : (guint64)st.st_size;
    gsize whole = (gsize)MIN(size, (guint64)PROBE_READ_MAX);
    if (len == PROBE_READ_SIZE && whole > len) {
        g_clear_error(&local_error);
        buf = g_realloc(buf, whole);
        if (!read_at(fd, buf, whole, 0, &len, path, error))
            return FALSE;
        if (ic_probe_parse(buf, len, image_dir, ret_info, &local_error))
            return TRUE;
    }
    g_propagate_prefixed_error(error, g_steal_pointer(&local_error), "reading image '%s': ", path);
    return FALSE;
}

struct _IcProbeCache {
    GHashTable *backing; /* image path -> its backing path (NULL: none), or a probe error */
};

typedef struct {
    char *backing_path;
    GError *error;
} CachedProbe;

static void cached_probe_free(CachedProbe *probe)
{
    g_free(probe->backing_path);
    g_clear_error(&probe->error);
    g_free(probe);
}

IcProbeCache *ic_probe_cache_new(void)
{
    IcProbeCache *cache = g_new0(IcProbeCache, 1);
    cache->backing =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)cached_probe_free);
    return cache;
}

void ic_probe_cache_free(IcProbeCache *cache)
{
    if (cache == NULL)
        return;
    g_hash_table_unref(cache->backing);
    g_free(cache);
}

/* The backing path of @path (NULL when none) as *ret_backing, through @cache
 * when there is one; @dirfd and @name open it. */
static gboolean probe_backing(int dirfd, const char *name, const char *path, IcProbeCache *cache,
                              char **ret_backing, GError **error)
{
    CachedProbe *known = cache ? g_hash_table_lookup(cache->backing, path) : NULL;
    if (known == NULL) {
        g_autoptr(IcImageInfo) info = NULL;
        known = g_new0(CachedProbe, 1);
        if (ic_probe_image_at(dirfd, name, path, &info, &known->error)) {
            known->backing_path = g_steal_pointer(&info->backing_path);
            /* A backing file over a protocol (nbd:, json:{…}) might still be a
             * base file underneath: that is not knowable here, so say so. */
            if (known->backing_path == NULL && info->backing_name != NULL)
                g_set_error(&known->error, IC_ERROR, IC_ERROR_FORMAT,
                            "backing file '%s' of '%s' is not a local file imagecache can "
                            "follow",
                            info->backing_name, path);
        }
        if (cache == NULL) {
            gboolean ok = known->error == NULL;
            if (ok)
                *ret_backing = g_steal_pointer(&known->backing_path);
            else
                g_propagate_error(error, g_steal_pointer(&known->error));
            cached_probe_free(known);
            return ok;
        }
        g_hash_table_insert(cache->backing, g_strdup(path), known);
    }
    if (known->error != NULL) {
        g_propagate_error(error, g_error_copy(known->error));
        return FALSE;
    }
    *ret_backing = g_strdup(known->backing_path);
    return TRUE;
}

gboolean ic_probe_chain(const char *path, GPtrArray **ret_chain, GError **error)
{
    return ic_probe_chain_cached(AT_FDCWD, path, path, NULL, ret_chain, error);
}

gboolean ic_probe_chain_cached(int dirfd, const char *name, const char *path, IcProbeCache *cache,
                               GPtrArray **ret_chain, GError **error)
{
    g_return_val_if_fail(path != NULL, FALSE);
    g_return_val_if_fail(ret_chain != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_add(seen, g_canonicalize_filename(path, NULL));

    const char *current = path;
    for (;;) {
        g_autofree char *backing_path = NULL;
        g_autoptr(GError) local_error = NULL;

        /* The top image is read afresh; what it leads to may come from the cache. */
        gboolean top = current == path;
        if (!probe_backing(top ? dirfd : AT_FDCWD, top ? name : current, current,
                           top ? NULL : cache, &backing_path, &local_error)) {
            /* A backing file that is gone still names a base file in use: it ends
             * the chain as its last element. Only the top image must exist. */
            if (current != path && g_error_matches(local_error, IC_ERROR, IC_ERROR_NOT_FOUND))
                break;
            g_propagate_error(error, g_steal_pointer(&local_error));
            return FALSE;
        }
        if (backing_path == NULL)
            break;
        /* Lexical paths: a loop through differently named symlinks is caught by
         * the depth limit instead. */
        if (g_hash_table_contains(seen, backing_path)) {
            g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "backing chain of '%s' loops back to '%s'",
                        path, backing_path);
            return FALSE;
        }
        if (chain->len >= IC_PROBE_MAX_CHAIN_DEPTH) {
            g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "backing chain of '%s' is deeper than %d",
                        path, IC_PROBE_MAX_CHAIN_DEPTH);
            return FALSE;
        }
        g_hash_table_add(seen, g_strdup(backing_path));
        g_ptr_array_add(chain, g_steal_pointer(&backing_path));
        current = g_ptr_array_index(chain, chain->len - 1);
    }

    *ret_chain = g_steal_pointer(&chain);
    return TRUE;
}
