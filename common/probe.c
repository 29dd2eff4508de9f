/* probe.c — reads qcow2/QED headers from a bounded file prefix and follows backing chains.
 * Every field is range-checked before use: the bytes come from files guests can write. */
#include "probe.h"

#include "error.h"
#include "fileutil.h"
#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
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
#define QCOW2_EXT_DATA_FILE    0x44415441u /* "DATA": the external data file's name */
#define QCOW2_INCOMPAT_DATA    (1u << 2)   /* incompatible bit: the data lives in the data file */
#define QCOW2_AUTOCLEAR_RAW    (1u << 1)   /* autoclear bit: data_file_raw */
#define QCOW2_MAX_DATA_NAME    4095        /* PATH_MAX: QEMU keeps no tighter limit */
#define QCOW2_MAX_EXTENSIONS   64          /* each type may appear once; QEMU defines six */
#define QCOW2_MAX_BACKING_FMT  15          /* QEMU's char backing_format[16] */

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

/* Frees what @info holds, not @info. */
static void image_info_clear(IcImageInfo *info)
{
    g_free(info->backing_name);
    g_free(info->backing_path);
    g_free(info->backing_format);
    g_free(info->data_file_name);
    g_free(info->data_file_path);
}

void ic_image_info_free(IcImageInfo *info)
{
    if (info == NULL)
        return;
    image_info_clear(info);
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

/* QEMU's bdrv_make_absolute_filename()/path_combine(): an absolute name as it
 * is, a relative one appended to the overlay's directory *as a string*; the
 * kernel resolves the result when QEMU opens it, following symlinks before
 * "..". Nothing is canonicalised here: "inst/vm1/../../_base/X" stays so. */
static char *qemu_join(const char *image_dir, const char *name)
{
    if (g_path_is_absolute(name) || image_dir == NULL || *image_dir == '\0')
        return g_strdup(name);
    if (g_str_has_suffix(image_dir, "/"))
        return g_strconcat(image_dir, name, NULL);
    return g_strconcat(image_dir, "/", name, NULL);
}

/* The file a backing or data-file name names, as QEMU opens it; NULL when it
 * is not a local file imagecache can follow: a protocol ("nbd:", "json:{…}"),
 * or "file:" with a relative name (QEMU takes that against its own working
 * directory, which imagecache cannot know). */
static char *name_to_path(const char *name, const char *image_dir)
{
    /* "file:" is QEMU's name for a plain file: what follows is the path. */
    if (g_str_has_prefix(name, "file:")) {
        const char *rest = name + strlen("file:");
        return g_path_is_absolute(rest) ? g_strdup(rest) : NULL;
    }
    if (name_has_protocol(name))
        return NULL;
    return qemu_join(image_dir, name);
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
    info->backing_path = name_to_path(name, image_dir);
}

/* Walks the qcow2 header extensions in [@start, @end) looking for the backing
 * format; QEMU ends the area at the backing name or at the end of the cluster. */
static gboolean qcow2_read_extensions(const guint8 *data, guint64 start, guint64 end,
                                      char **ret_backing_format, char **ret_data_file,
                                      GError **error)
{
    g_autofree char *backing_format = NULL;
    g_autofree char *data_file = NULL;
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
        } else if (type == QCOW2_EXT_DATA_FILE) {
            if (ext_len > QCOW2_MAX_DATA_NAME) {
                g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                            "qcow2 data file name of %u bytes is too long", ext_len);
                return FALSE;
            }
            g_free(data_file);
            data_file = header_string(data, end, offset, ext_len, "qcow2 data file name", error);
            if (data_file == NULL)
                return FALSE;
        }
        /* Data is padded to 8; past @end the loop ends anyway. */
        offset += ((guint64)ext_len + 7) & ~(guint64)7;
    }

    *ret_backing_format = g_steal_pointer(&backing_format);
    *ret_data_file = g_steal_pointer(&data_file);
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
    guint64 incompatible = 0, autoclear = 0;
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
        incompatible = be64_at(data + 72);
        autoclear = be64_at(data + 88);
    }

    g_autofree char *backing_name = NULL;
    g_autofree char *backing_format = NULL;
    g_autofree char *data_file = NULL;
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
    if (!qcow2_read_extensions(data, header_length, ext_end, &backing_format, &data_file, error))
        return FALSE;
    /* QEMU refuses an image that needs a data file but names none. */
    if ((incompatible & QCOW2_INCOMPAT_DATA) && (data_file == NULL || *data_file == '\0')) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "qcow2 image needs an external data file but names none");
        return FALSE;
    }

    g_autoptr(IcImageInfo) info = g_new0(IcImageInfo, 1);
    info->format = IC_IMAGE_FORMAT_QCOW2;
    info->version = version;
    info->virtual_size = size;
    set_backing(info, g_steal_pointer(&backing_name), image_dir);
    if (info->backing_name != NULL)
        info->backing_format = g_steal_pointer(&backing_format);
    /* A name without the incompatible bit is kept too: counting one file too
     * many keeps a file, one too few loses a disk. */
    if (data_file != NULL && *data_file != '\0') {
        info->data_file_path = name_to_path(data_file, image_dir);
        info->data_file_name = g_steal_pointer(&data_file);
        info->data_file_raw = (autoclear & QCOW2_AUTOCLEAR_RAW) != 0;
    }
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

/* Formats QEMU reads as plain bytes: what they hold is the guest's, never a header. */
static gboolean format_is_raw(const char *format)
{
    static const char *const raw[] = {"raw", "file", "host_device", "host_cdrom", NULL};
    return g_strv_contains(raw, format);
}

static gboolean is_vmdk(const guint8 *data, gsize len)
{
    static const char descriptor[] = "# Disk DescriptorFile";
    return (len >= 4 && (memcmp(data, "KDMV", 4) == 0 || memcmp(data, "COWD", 4) == 0)) ||
           (len >= sizeof(descriptor) - 1 && memcmp(data, descriptor, sizeof(descriptor) - 1) == 0);
}

static IcImageInfo *raw_info(void)
{
    IcImageInfo *info = g_new0(IcImageInfo, 1);
    info->format = IC_IMAGE_FORMAT_RAW;
    return info;
}

gboolean ic_probe_parse_as(const guint8 *data, gsize len, const char *image_dir, const char *format,
                           IcImageInfo **ret_info, GError **error)
{
    g_return_val_if_fail(data != NULL || len == 0, FALSE);
    g_return_val_if_fail(ret_info != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    gboolean qcow2 = len >= 4 && memcmp(data, QCOW2_MAGIC, 4) == 0;
    gboolean qed = len >= 4 && memcmp(data, QED_MAGIC, 4) == 0;

    if (format != NULL) {
        /* A declared format is what QEMU opens the file as; the bytes are not
         * asked. Raw bytes are the guest's: whatever they look like, no header. */
        if (format_is_raw(format)) {
            *ret_info = raw_info();
            return TRUE;
        }
        if (g_str_equal(format, "qcow2") || g_str_equal(format, "qed")) {
            gboolean is_qcow2 = g_str_equal(format, "qcow2");
            if (is_qcow2 ? !qcow2 : !qed) {
                g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                            "declared format '%s' but the image is not in that format", format);
                return FALSE;
            }
            return is_qcow2 ? parse_qcow2(data, len, image_dir, ret_info, error)
                            : parse_qed(data, len, image_dir, ret_info, error);
        }
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "declared format '%s' is not one imagecache reads (raw, qcow2, qed)", format);
        return FALSE;
    }

    /* No declared format: probed, as QEMU probes. */
    if (qcow2)
        return parse_qcow2(data, len, image_dir, ret_info, error);
    if (qed)
        return parse_qed(data, len, image_dir, ret_info, error);
    /* QEMU would open it as VMDK, which can have a parent imagecache cannot read. */
    if (is_vmdk(data, len)) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "a VMDK image: not one imagecache reads");
        return FALSE;
    }
    *ret_info = raw_info();
    return TRUE;
}

gboolean ic_probe_parse(const guint8 *data, gsize len, const char *image_dir,
                        IcImageInfo **ret_info, GError **error)
{
    return ic_probe_parse_as(data, len, image_dir, NULL, ret_info, error);
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
        if (n < 0 && errno == ENOENT) {
            /* The open was deferred (GlusterFS open-behind) and the image is gone:
             * a stale handle, not an absent file. */
            g_set_error(error, IC_ERROR, IC_ERROR_STALE, "reading image '%s': %s", path,
                        g_strerror(ENOENT));
            return FALSE;
        }
        if (n < 0)
            return ic_error_set_errno(error, errno, "reading image", path);
        if (n == 0)
            break;
        done += (gsize)n;
    }
    *ret_read = done;
    return TRUE;
}

/* The name of the directory entry a symlinked (or "."/".."-ending) @path
 * lands on: the last component of the fully resolved path; NULL when it
 * cannot be told. */
static char *resolved_entry_name(const char *path)
{
    char *real = realpath(path, NULL);
    if (real == NULL)
        return NULL;
    char *base = g_path_get_basename(real);
    free(real);
    return base;
}

/* Resolves @name in @dirfd as the kernel does (symlinks followed, ".." after
 * them), without opening it: a device's or FIFO's open has side effects. Also
 * tells the directory entry the kernel lands on (IcDiskFile.entry_name): the
 * last component itself unless it is a symlink (or "." or ".."). For a plain
 * name, the common case, one lstat answers both. */
static gboolean resolve_image(int dirfd, const char *name, const char *path, struct stat *ret_st,
                              char **ret_entry_name, GError **error)
{
    g_autofree char *last = g_path_get_basename(path);
    gboolean plain =
        !g_str_equal(last, ".") && !g_str_equal(last, "..") && !g_str_has_suffix(path, "/");
    if (plain) {
        if (fstatat(dirfd, name, ret_st, AT_SYMLINK_NOFOLLOW) < 0)
            return ic_error_set_errno(error, errno, "opening image", path);
        if (!S_ISLNK(ret_st->st_mode)) {
            *ret_entry_name = g_steal_pointer(&last);
            return TRUE;
        }
    }
    if (fstatat(dirfd, name, ret_st, 0) < 0)
        return ic_error_set_errno(error, errno, "opening image", path);
    *ret_entry_name = resolved_entry_name(path);
    return TRUE;
}

/* Opens for reading the file @name in @dirfd whose resolution gave @st,
 * after checking its type: only a regular file or a block device (disks
 * live on LVM and iSCSI too) is ever opened; a name in an image header must
 * not make root open a device, a FIFO or a socket. The open must land on the
 * inode checked, or the file changed under us and is refused. */
static int open_for_reading(int dirfd, const char *name, const struct stat *st, const char *path,
                            GError **error)
{
    if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "image '%s' is not a regular file or block device", path);
        return -1;
    }
    ic_autofd fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening image", path), -1;
    struct stat again;
    if (fstat(fd, &again) < 0)
        return ic_error_set_errno(error, errno, "inspecting image", path), -1;
    if (again.st_dev != st->st_dev || again.st_ino != st->st_ino) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE, "image '%s' changed while it was opened",
                    path);
        return -1;
    }
    return ic_steal_fd(&fd);
}

/* Reads and parses the header of the image open as @fd (@st: its fstat). */
static gboolean probe_open_image(int fd, const struct stat *st, const char *path,
                                 const char *format, IcImageInfo **ret_info, GError **error)
{
    /* The first page on the stack: a 4 KiB malloc per disk is a large-bin
     * request, and each made malloc consolidate its fast bins (issue 15). */
    guint8 first[PROBE_READ_SIZE];
    g_autofree guint8 *grown = NULL;
    guint8 *buf = first;
    gsize len = 0;
    if (!read_at(fd, buf, PROBE_READ_SIZE, 0, &len, path, error))
        return FALSE;

    guint64 wanted = wanted_prefix(buf, len);
    if (wanted != 0 && len == PROBE_READ_SIZE) {
        gsize more = 0;
        grown = g_malloc(wanted);
        memcpy(grown, first, len);
        buf = grown;
        if (!read_at(fd, buf + len, wanted - len, len, &more, path, error))
            return FALSE;
        len += more;
    }

    g_autofree char *image_dir = g_path_get_dirname(path);
    g_autoptr(GError) local_error = NULL;
    if (ic_probe_parse_as(buf, len, image_dir, format, ret_info, &local_error))
        return TRUE;

    /* The first page is enough for almost every header; one whose extensions
     * run past it (they may fill the first cluster) gets a second, full read. */
    guint64 size = S_ISBLK(st->st_mode) ? PROBE_READ_MAX : (guint64)st->st_size;
    gsize whole = (gsize)MIN(size, (guint64)PROBE_READ_MAX);
    if (len == PROBE_READ_SIZE && whole > len) {
        g_clear_error(&local_error);
        grown = g_realloc(grown, whole);
        buf = grown;
        if (!read_at(fd, buf, whole, 0, &len, path, error))
            return FALSE;
        if (ic_probe_parse_as(buf, len, image_dir, format, ret_info, &local_error))
            return TRUE;
    }
    g_propagate_prefixed_error(error, g_steal_pointer(&local_error), "reading image '%s': ", path);
    return FALSE;
}

/* Reads and parses the header of the image @name in @dirfd, which resolved
 * to @st (see ic_probe_image_as). */
static gboolean probe_fd(int dirfd, const char *name, const struct stat *st, const char *path,
                         const char *format, IcImageInfo **ret_info, GError **error)
{
    /* A file QEMU reads as raw is never opened: its bytes are the guest's. */
    if (format != NULL && format_is_raw(format)) {
        *ret_info = raw_info();
        return TRUE;
    }
    ic_autofd fd = open_for_reading(dirfd, name, st, path, error);
    if (fd < 0)
        return FALSE;
    return probe_open_image(fd, st, path, format, ret_info, error);
}

gboolean ic_probe_image(const char *path, IcImageInfo **ret_info, GError **error)
{
    return ic_probe_image_as(AT_FDCWD, path, path, NULL, ret_info, error);
}

gboolean ic_probe_image_as(int dirfd, const char *name, const char *path, const char *format,
                           IcImageInfo **ret_info, GError **error)
{
    g_return_val_if_fail(path != NULL, FALSE);
    g_return_val_if_fail(ret_info != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    /* A file replaced through another host's mount leaves this host's handle
     * stale: look the name up again. */
    g_autoptr(GError) local_error = NULL;
    for (guint attempt = 0;;) {
        struct stat st;
        g_autofree char *entry_name = NULL;
        if (resolve_image(dirfd, name, path, &st, &entry_name, &local_error) &&
            probe_fd(dirfd, name, &st, path, format, ret_info, &local_error))
            return TRUE;
        if (!ic_file_retry_stale(&local_error, &attempt, dirfd, name)) {
            g_propagate_error(error, g_steal_pointer(&local_error));
            return FALSE;
        }
    }
}

/* ---- which files a disk needs ---- */

const char *ic_disk_file_role_to_string(IcDiskFileRole role)
{
    switch (role) {
    case IC_DISK_FILE_IMAGE:
        return "image";
    case IC_DISK_FILE_DATA:
        return "data-file";
    }
    return "unknown";
}

void ic_disk_file_free(IcDiskFile *file)
{
    if (file == NULL)
        return;
    /* path, name, format and entry_name live in the file's own allocation. */
    g_free(file->absent_dir);
    g_free(file);
}

/* Headers already read, by the file's identity and the format it was read
 * as: the same base file reached by many overlays (each spelling its name
 * differently) is read once. Only the names in the header are kept; they are
 * resolved against each spelling's directory afresh. */
struct _IcProbeCache {
    GHashTable *infos;   /* CachedProbe*, its own key (a set: no values array) */
    const IcScan *known; /* the pass's scan of the base dir, NULL: none (borrowed) */
};

/* A file read as a format (NULL: probed), and the answer: one allocation per
 * file. Each walk thread's cache holds every base file of the tree (100,000
 * at 10x); its key, format, answer and info in four allocations were most of
 * the cost of freeing it at the end of the walk (issue 15). */
typedef struct {
    IcFileId id;        /* first: the hash and equality of IcFileId apply */
    const char *format; /* @format_text, or NULL */
    gboolean has_info;  /* @info holds the answer, else @error does */
    IcImageInfo info;   /* its strings owned */
    GError *error;
    char format_text[];
} CachedProbe;

static guint probe_key_hash(gconstpointer key)
{
    const CachedProbe *k = key;
    return ic_file_id_hash(&k->id) ^ (k->format ? g_str_hash(k->format) : 0);
}

static gboolean probe_key_equal(gconstpointer a, gconstpointer b)
{
    const CachedProbe *x = a, *y = b;
    return ic_file_id_equal(&x->id, &y->id) && g_strcmp0(x->format, y->format) == 0;
}

static void cached_probe_free(CachedProbe *probe)
{
    if (probe->has_info)
        image_info_clear(&probe->info);
    g_clear_error(&probe->error);
    g_free(probe);
}

IcProbeCache *ic_probe_cache_new(void)
{
    return ic_probe_cache_new_for_scan(NULL);
}

IcProbeCache *ic_probe_cache_new_for_scan(const IcScan *known)
{
    IcProbeCache *cache = g_new0(IcProbeCache, 1);
    cache->infos = g_hash_table_new_full(probe_key_hash, probe_key_equal,
                                         (GDestroyNotify)cached_probe_free, NULL);
    cache->known = known;
    return cache;
}

void ic_probe_cache_free(IcProbeCache *cache)
{
    if (cache == NULL)
        return;
    g_hash_table_unref(cache->infos);
    g_free(cache);
}

/* The header of the file @name in @dirfd (@st), read as @format (NULL: probed), through
 * @cache when there is one. The info belongs to the cache (or to *ret_owned);
 * use only its names, not its paths (they are the first spelling's). */
static gboolean probe_cached(int dirfd, const char *name, const struct stat *st, const char *path,
                             const char *format, IcProbeCache *cache, const IcImageInfo **ret_info,
                             IcImageInfo **ret_owned, GError **error)
{
    if (cache == NULL) {
        if (!probe_fd(dirfd, name, st, path, format, ret_owned, error))
            return FALSE;
        *ret_info = *ret_owned;
        return TRUE;
    }
    CachedProbe key = {.id = {.dev = st->st_dev, .ino = st->st_ino}, .format = format};
    CachedProbe *known = g_hash_table_lookup(cache->infos, &key);
    if (known == NULL) {
        g_autoptr(IcImageInfo) info = NULL;
        g_autoptr(GError) probe_error = NULL;
        (void)probe_fd(dirfd, name, st, path, format, &info, &probe_error);
        /* A stale handle is the caller's to retry, not an answer to keep. */
        if (g_error_matches(probe_error, IC_ERROR, IC_ERROR_STALE)) {
            g_propagate_error(error, g_steal_pointer(&probe_error));
            return FALSE;
        }
        gsize format_len = format ? strlen(format) + 1 : 0;
        known = g_malloc0(sizeof(CachedProbe) + format_len);
        known->id = key.id;
        if (format != NULL) {
            memcpy(known->format_text, format, format_len);
            known->format = known->format_text;
        }
        if (info != NULL) {
            /* The strings move to the cache's copy; the shell is freed. */
            known->info = *info;
            known->has_info = TRUE;
            g_free(g_steal_pointer(&info));
        }
        known->error = g_steal_pointer(&probe_error);
        g_hash_table_add(cache->infos, known);
    }
    if (!known->has_info) {
        g_propagate_error(error, g_error_copy(known->error));
        return FALSE;
    }
    *ret_info = &known->info;
    return TRUE;
}

/* The scanned base file @path names when it is spelled "<base dir>/<name>"
 * exactly as the scan listed the base dir (Nova writes its overlays so), or
 * NULL. Its identity, type and entry are then the scan's lstat's: asking the
 * kernel again for each of 20,000 overlays cost two path walks apiece (issue
 * 15). The scan lists regular files only, so no symlink is taken for its
 * target. Whatever changed since the scan is caught where it matters: an open
 * lands on the identity checked (open_for_reading), and a removal re-checks
 * identity and age before it unlinks (protocol.c). */
static const IcBaseFile *scanned_base_file(const IcProbeCache *cache, const char *path)
{
    if (cache == NULL || cache->known == NULL)
        return NULL;
    const char *dir = cache->known->base_dir;
    gsize dir_len = strlen(dir);
    if (strncmp(path, dir, dir_len) != 0 || path[dir_len] != '/')
        return NULL;
    const char *entry = path + dir_len + 1;
    if (*entry == '\0' || strchr(entry, '/') != NULL)
        return NULL;
    return ic_scan_lookup(cache->known, entry);
}

static void stat_from_scan(const IcBaseFile *file, struct stat *ret_st)
{
    memset(ret_st, 0, sizeof(*ret_st));
    ret_st->st_dev = file->dev;
    ret_st->st_ino = file->ino;
    ret_st->st_mode = S_IFREG;
    ret_st->st_size = (off_t)file->size;
}

/* What the scan says of a present file landing on @entry_name with identity
 * @st (see IcBaseMatch). NONE only where the kernel's answer could make no
 * difference to this pass: a base file name the scan did not list as a
 * regular file, or a name outside the grammar (never a row) whose inode is no
 * scanned file's (so no row shares it under another name). */
static IcBaseMatch match_scan(IcProbeCache *cache, const char *entry_name, const struct stat *st)
{
    if (cache == NULL || cache->known == NULL || entry_name == NULL)
        return IC_BASE_MATCH_ASK;
    const IcBaseFile *scanned = ic_scan_lookup(cache->known, entry_name);
    if (scanned != NULL && scanned->dev == st->st_dev && scanned->ino == st->st_ino)
        return IC_BASE_MATCH_SCANNED;
    if (scanned != NULL)
        return IC_BASE_MATCH_ASK;
    if (ic_scan_classify_name(entry_name, NULL) != IC_KIND_IGNORED)
        return IC_BASE_MATCH_NONE;
    return ic_scan_lookup_identity(cache->known, st->st_dev, st->st_ino) != NULL
               ? IC_BASE_MATCH_ASK
               : IC_BASE_MATCH_NONE;
}

/* For a name that resolves to nothing: the kernel's path of the directory
 * it would be in; NULL when even that does not resolve. */
static char *absent_dir(const char *path)
{
    g_autofree char *last = g_path_get_basename(path);
    if (g_str_equal(last, "..") || g_str_equal(last, "."))
        return NULL;
    g_autofree char *dir = g_path_get_dirname(path);
    char *real_dir = realpath(dir, NULL);
    if (real_dir == NULL)
        return NULL;
    char *copy = g_strdup(real_dir);
    free(real_dir);
    return copy;
}

/* One member of the answer, with what the kernel says of it now: present
 * (@st, landing on @entry_name, taken), it is told by identity and entry name;
 * absent (@st NULL), by its directory. @scanned: the scan's entry @st and
 * @entry_name were taken from (read_member found it by that name), which
 * match_scan would find again; NULL: ask match_scan. */
static IcDiskFile *disk_file_new(const char *path, const char *name, IcDiskFileRole role,
                                 const char *format, const struct stat *st, char *entry_name,
                                 const IcBaseFile *scanned, IcProbeCache *cache)
{
    g_autofree char *owned_entry = entry_name;
    g_autofree char *absent_entry = st == NULL ? g_path_get_basename(path) : NULL;
    const char *entry = st != NULL ? owned_entry : absent_entry;
    /* One allocation holds the file and its strings: a walk makes two or
     * more files per disk (issue 15). */
    const char *texts[] = {path, name, format, entry};
    gsize sizes[G_N_ELEMENTS(texts)], total = sizeof(IcDiskFile);
    for (gsize i = 0; i < G_N_ELEMENTS(texts); i++) {
        sizes[i] = texts[i] != NULL ? strlen(texts[i]) + 1 : 0;
        total += sizes[i];
    }
    IcDiskFile *file = g_malloc0(total);
    char *at = (char *)(file + 1);
    char *copies[G_N_ELEMENTS(texts)] = {NULL};
    for (gsize i = 0; i < G_N_ELEMENTS(texts); i++) {
        if (texts[i] == NULL)
            continue;
        copies[i] = memcpy(at, texts[i], sizes[i]);
        at += sizes[i];
    }
    file->path = copies[0];
    file->name = copies[1];
    file->role = role;
    file->format = copies[2];
    file->entry_name = copies[3];
    if (st != NULL) {
        file->present = TRUE;
        file->dev = st->st_dev;
        file->ino = st->st_ino;
        file->base_match =
            scanned != NULL ? IC_BASE_MATCH_SCANNED : match_scan(cache, file->entry_name, st);
    } else {
        file->absent_dir = absent_dir(path);
    }
    return file;
}

IcDiskFile *ic_disk_file_new_for_path(const char *path)
{
    struct stat st;
    char *entry_name = NULL;
    gboolean present = resolve_image(AT_FDCWD, path, path, &st, &entry_name, NULL);
    return disk_file_new(path, NULL, IC_DISK_FILE_IMAGE, NULL, present ? &st : NULL, entry_name,
                         NULL, NULL);
}

static gboolean seen_identity(const IcFileId *seen, guint n_seen, const struct stat *st)
{
    for (guint i = 0; i < n_seen; i++) {
        if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino)
            return TRUE;
    }
    return FALSE;
}

/* Adds the external data file @info names, if any, resolved against
 * @image_dir. It is never opened for reading: QEMU reads it as plain bytes
 * (the guest's), so only its identity is asked. */
static gboolean add_data_file(GPtrArray *files, const IcImageInfo *info, const char *image_dir,
                              const char *path, IcProbeCache *cache, GError **error)
{
    if (info->data_file_name == NULL)
        return TRUE;
    g_autofree char *data_path = name_to_path(info->data_file_name, image_dir);
    if (data_path == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "data file '%s' of '%s' is not a local file imagecache can follow",
                    info->data_file_name, path);
        return FALSE;
    }
    struct stat st;
    char *entry_name = NULL;
    g_autoptr(GError) stat_error = NULL;
    gboolean present = resolve_image(AT_FDCWD, data_path, data_path, &st, &entry_name, &stat_error);
    if (!present && !g_error_matches(stat_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
        g_set_error(error, IC_ERROR, stat_error->code, "inspecting data file '%s': %s", data_path,
                    stat_error->message);
        return FALSE;
    }
    g_ptr_array_add(files, disk_file_new(data_path, info->data_file_name, IC_DISK_FILE_DATA, "raw",
                                         present ? &st : NULL, entry_name, NULL, cache));
    return TRUE;
}

/* Opens the disk @name in @dirfd that its directory listing called a regular
 * file (d_type), and reads its header: the listing was the type check a
 * stat would make before the open, so the open follows no symlink and lands
 * on what the fstat after it must still find a regular file or a block device.
 * That fstat is the walk's one system call per disk beyond the floor's open and
 * read (issue 15), and it has three rules: the type (a device or FIFO renamed
 * in after the listing is never read), the identity that tells a disk
 * hard-linked to a base file (match_scan) and a chain that loops back to it.
 * FALSE with no error when the entry is no longer what was listed (a symlink
 * now: ELOOP): the caller resolves it the long way. */
static gboolean probe_listed_disk(int dirfd, const char *name, const char *path, const char *format,
                                  struct stat *ret_st, IcImageInfo **ret_info, GError **error)
{
    ic_autofd fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0 && errno == ELOOP)
        return FALSE;
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening image", path);
    if (fstat(fd, ret_st) < 0)
        return ic_error_set_errno(error, errno, "inspecting image", path);
    if (!S_ISREG(ret_st->st_mode) && !S_ISBLK(ret_st->st_mode)) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE,
                    "image '%s' is not a regular file or block device", path);
        return FALSE;
    }
    return probe_open_image(fd, ret_st, path, format, ret_info, error);
}

/* One chain member, found and read: @st, the entry it lands on and its header
 * (*ret_info: the cache's or *ret_owned). On failure *ret_resolved says
 * whether the name resolved at all (FALSE: nothing there). */
typedef struct {
    int dirfd;           /* the disk's directory for the disk itself; AT_FDCWD after */
    const char *at_name; /* the name opened in @dirfd */
    const char *path;    /* its path, as QEMU forms it */
    const char *format;  /* declared, NULL: probed */
    gboolean top;
    gboolean listed_regular; /* the disk's directory listing said a regular file */
} Member;

static gboolean read_member(const Member *member, IcProbeCache *cache, struct stat *ret_st,
                            char **ret_entry_name, const IcBaseFile **ret_scanned,
                            const IcImageInfo **ret_info, IcImageInfo **ret_owned,
                            gboolean *ret_resolved, GError **error)
{
    *ret_resolved = TRUE;
    *ret_scanned = NULL;
    /* A base file spelled as the scan listed it is known without a system
     * call; if its header must be read and the open does not land on the
     * scanned inode (it changed since), it is looked up afresh below. */
    const IcBaseFile *scanned = member->top ? NULL : scanned_base_file(cache, member->path);
    if (scanned != NULL) {
        stat_from_scan(scanned, ret_st);
        if (probe_cached(member->dirfd, member->at_name, ret_st, member->path, member->format,
                         cache, ret_info, ret_owned, NULL)) {
            *ret_entry_name = g_strdup(scanned->name);
            *ret_scanned = scanned;
            return TRUE;
        }
    }
    /* The disk itself is read afresh, never from the cache. */
    if (member->top && member->listed_regular &&
        !(member->format != NULL && format_is_raw(member->format))) {
        g_autoptr(GError) listed_error = NULL;
        if (probe_listed_disk(member->dirfd, member->at_name, member->path, member->format, ret_st,
                              ret_owned, &listed_error)) {
            *ret_info = *ret_owned;
            *ret_entry_name = g_path_get_basename(member->path);
            return TRUE;
        }
        /* A stale handle or an entry changed since the listing: the long way. */
        if (listed_error != NULL && !g_error_matches(listed_error, IC_ERROR, IC_ERROR_STALE)) {
            g_propagate_error(error, g_steal_pointer(&listed_error));
            return FALSE;
        }
    }
    /* A stale handle (a file replaced through another host's mount) is looked
     * up again, bounded. */
    for (guint attempt = 0;;) {
        g_autoptr(GError) open_error = NULL;
        g_clear_pointer(ret_entry_name, g_free);
        gboolean found = resolve_image(member->dirfd, member->at_name, member->path, ret_st,
                                       ret_entry_name, &open_error);
        if (found &&
            probe_cached(member->dirfd, member->at_name, ret_st, member->path, member->format,
                         member->top ? NULL : cache, ret_info, ret_owned, &open_error))
            return TRUE;
        if (!ic_file_retry_stale(&open_error, &attempt, member->dirfd, member->at_name)) {
            *ret_resolved = found;
            g_propagate_error(error, g_steal_pointer(&open_error));
            return FALSE;
        }
        g_clear_pointer(ret_owned, ic_image_info_free);
    }
}

gboolean ic_probe_disk_files(int dirfd, const char *name, const char *path, const char *format,
                             IcProbeCache *cache, GPtrArray **ret_files, GError **error)
{
    return ic_probe_listed_disk_files(dirfd, name, path, format, FALSE, cache, ret_files, error);
}

gboolean ic_probe_listed_disk_files(int dirfd, const char *name, const char *path,
                                    const char *format, gboolean listed_regular,
                                    IcProbeCache *cache, GPtrArray **ret_files, GError **error)
{
    g_return_val_if_fail(path != NULL, FALSE);
    g_return_val_if_fail(ret_files != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func((GDestroyNotify)ic_disk_file_free);
    /* The chain's identities so far, to refuse a loop: at most one per member the
     * depth limit lets through, so on the stack (two allocations per disk less). */
    IcFileId seen[IC_PROBE_MAX_CHAIN_DEPTH + 1];
    guint n_seen = 0;
    g_autofree char *current = g_strdup(path);
    g_autofree char *current_name = NULL; /* as the overlay names it; NULL for the disk */
    g_autofree char *current_format = g_strdup(format);

    for (guint depth = 0;; depth++) {
        gboolean top = depth == 0;
        if (depth > IC_PROBE_MAX_CHAIN_DEPTH) {
            g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "backing chain of '%s' is deeper than %d",
                        path, IC_PROBE_MAX_CHAIN_DEPTH);
            return FALSE;
        }
        /* The disk itself is opened through the caller's @dirfd; its backing
         * files by the name QEMU forms, resolved by the kernel as QEMU's open is. */
        Member member = {
            .dirfd = top ? dirfd : AT_FDCWD,
            .at_name = top ? name : current,
            .path = current,
            .format = current_format,
            .top = top,
            .listed_regular = top && listed_regular,
        };
        struct stat st;
        char *entry_name = NULL;
        const IcImageInfo *info = NULL;
        g_autoptr(IcImageInfo) owned = NULL;
        g_autoptr(GError) open_error = NULL;
        gboolean resolved = TRUE;
        const IcBaseFile *scanned = NULL;
        if (!read_member(&member, cache, &st, &entry_name, &scanned, &info, &owned, &resolved,
                         &open_error)) {
            /* A backing file that is gone still names a base file in use: it
             * ends the chain. Only the disk itself must exist. */
            if (!top && !resolved && g_error_matches(open_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
                g_free(entry_name);
                g_ptr_array_add(files, disk_file_new(current, current_name, IC_DISK_FILE_IMAGE,
                                                     current_format, NULL, NULL, NULL, cache));
                break;
            }
            g_free(entry_name);
            g_propagate_error(error, g_steal_pointer(&open_error));
            return FALSE;
        }
        if (seen_identity(seen, n_seen, &st)) {
            g_free(entry_name);
            g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "backing chain of '%s' loops back to '%s'",
                        path, current);
            return FALSE;
        }
        g_assert(n_seen < G_N_ELEMENTS(seen)); /* the depth check above bounds it */
        seen[n_seen++] = (IcFileId){.dev = st.st_dev, .ino = st.st_ino};
        g_ptr_array_add(files, disk_file_new(current, current_name, IC_DISK_FILE_IMAGE,
                                             ic_image_format_to_string(info->format), &st,
                                             entry_name, scanned, cache));
        /* QEMU takes the names in this header against this file's directory
         * as it was named (not where a symlink to it points). */
        g_autofree char *image_dir = g_path_get_dirname(current);
        if (!add_data_file(files, info, image_dir, current, cache, error))
            return FALSE;
        if (info->backing_name == NULL)
            break;
        g_autofree char *next = name_to_path(info->backing_name, image_dir);
        /* A backing file over a protocol (nbd:, json:{…}) might still be a
         * base file underneath: that is not knowable here, so say so. */
        if (next == NULL) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "backing file '%s' of '%s' is not a local file imagecache can follow",
                        info->backing_name, current);
            return FALSE;
        }
        g_free(current_name);
        current_name = g_strdup(info->backing_name);
        g_free(current_format);
        /* The overlay's declared backing format, else probed (as QEMU does). */
        current_format = g_strdup(info->backing_format);
        g_free(current);
        current = g_steal_pointer(&next);
    }

    *ret_files = g_steal_pointer(&files);
    return TRUE;
}

const char *ic_disk_file_base_name_ref(const IcDiskFile *file, int base_fd, const char *base_dir,
                                       char **ret_owned)
{
    *ret_owned = NULL;
    /* Present: the base dir's entry of the name the kernel lands on must be
     * this very file (a symlink outside the base dir pointing into it, ".."
     * through a symlinked dir, another spelling of instances_path: all land
     * there). One lookup in the base dir, no path walk; none when the pass's
     * scan already answered (see IcBaseMatch). */
    if (file->present && file->base_match == IC_BASE_MATCH_SCANNED)
        return file->entry_name;
    if (file->present && file->base_match == IC_BASE_MATCH_NONE)
        return NULL;
    if (file->present) {
        struct stat st;
        if (file->entry_name != NULL &&
            fstatat(base_fd, file->entry_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_dev == file->dev && st.st_ino == file->ino)
            return file->entry_name;
        return NULL;
    }
    /* Absent (a base file gone, still needed): where its directory resolves. */
    if (file->absent_dir != NULL) {
        struct stat base_st, dir_st;
        if (fstat(base_fd, &base_st) == 0 && stat(file->absent_dir, &dir_st) == 0 &&
            dir_st.st_dev == base_st.st_dev && dir_st.st_ino == base_st.st_ino)
            return file->entry_name;
        return NULL;
    }
    /* Not even the directory resolves: the name as written, lexically. */
    g_autofree char *canon = g_canonicalize_filename(file->path, "/");
    g_autofree char *canon_base = g_canonicalize_filename(base_dir, "/");
    g_autofree char *parent = g_path_get_dirname(canon);
    if (g_str_equal(parent, canon_base))
        return *ret_owned = g_path_get_basename(canon);
    return NULL;
}

char *ic_disk_file_base_name_at(const IcDiskFile *file, int base_fd, const char *base_dir)
{
    char *owned = NULL;
    const char *name = ic_disk_file_base_name_ref(file, base_fd, base_dir, &owned);
    return owned != NULL ? owned : g_strdup(name);
}

char *ic_disk_file_base_name(const IcDiskFile *file, const char *base_dir)
{
    ic_autofd base_fd = open(base_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (base_fd < 0)
        return NULL;
    return ic_disk_file_base_name_at(file, base_fd, base_dir);
}

gboolean ic_probe_chain(const char *path, GPtrArray **ret_chain, GError **error)
{
    g_autoptr(GPtrArray) files = NULL;
    if (!ic_probe_disk_files(AT_FDCWD, path, path, NULL, NULL, &files, error))
        return FALSE;
    GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 1; i < files->len; i++) {
        const IcDiskFile *file = g_ptr_array_index(files, i);
        if (file->role != IC_DISK_FILE_IMAGE)
            continue;
        char *real = realpath(file->path, NULL);
        g_ptr_array_add(chain, real ? g_strdup(real) : g_canonicalize_filename(file->path, NULL));
        free(real);
    }
    *ret_chain = chain;
    return TRUE;
}
