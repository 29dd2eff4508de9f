/* imgwriter.c — hand-built qcow2 and QED images laid out the way `qemu-img create`
 * lays them out, so QEMU opens them and the probe sees real-world headers. */
#include "imgwriter.h"

#include "error.h"

#include <string.h>

/* qcow2: 64 KiB clusters. Cluster 0 header, 1 refcount table, 2 refcount block,
 * 3.. the L1 table; every cluster in use has refcount 1. */
#define QCOW2_CLUSTER_BITS     16
#define QCOW2_CLUSTER_SIZE     (1u << QCOW2_CLUSTER_BITS)
#define QCOW2_L2_ENTRIES       (QCOW2_CLUSTER_SIZE / 8)
#define QCOW2_MAX_L1_CLUSTERS  16
#define QCOW2_V3_HEADER_LENGTH 104
#define QCOW2_EXT_BACKING_FMT  0xe2792acau

/* QED: qemu-img's defaults, 64 KiB clusters, a one-cluster header and a
 * four-cluster L1 table right after it. */
#define QED_CLUSTER_SIZE              65536u
#define QED_TABLE_SIZE                4u
#define QED_HEADER_SIZE               64u
#define QED_F_BACKING_FILE            0x01u
#define QED_F_BACKING_FORMAT_NO_PROBE 0x04u

static void put_be32(guint8 *p, guint32 v)
{
    p[0] = (guint8)(v >> 24);
    p[1] = (guint8)(v >> 16);
    p[2] = (guint8)(v >> 8);
    p[3] = (guint8)v;
}

static void put_be64(guint8 *p, guint64 v)
{
    put_be32(p, (guint32)(v >> 32));
    put_be32(p + 4, (guint32)v);
}

static void put_be16(guint8 *p, guint16 v)
{
    p[0] = (guint8)(v >> 8);
    p[1] = (guint8)v;
}

static void put_le32(guint8 *p, guint32 v)
{
    p[0] = (guint8)v;
    p[1] = (guint8)(v >> 8);
    p[2] = (guint8)(v >> 16);
    p[3] = (guint8)(v >> 24);
}

static void put_le64(guint8 *p, guint64 v)
{
    put_le32(p, (guint32)v);
    put_le32(p + 4, (guint32)(v >> 32));
}

static gboolean write_image(const char *path, const guint8 *data, gsize len, GError **error)
{
    g_autoptr(GError) local_error = NULL;

    /* No fsync: test images need no durability, and hundreds are written. */
    if (!g_file_set_contents_full(path, (const char *)data, (gssize)len, G_FILE_SET_CONTENTS_NONE,
                                  0644, &local_error)) {
        g_set_error(error, IC_ERROR, IC_ERROR_IO, "writing image '%s': %s", path,
                    local_error->message);
        return FALSE;
    }
    return TRUE;
}

gboolean ic_test_write_qcow2(const char *path, guint version, guint64 virtual_size,
                             const char *backing_name, const char *backing_format, GError **error)
{
    g_return_val_if_fail(version == 2 || version == 3, FALSE);

    gsize name_len = backing_name != NULL ? strlen(backing_name) : 0;
    gsize fmt_len = backing_format != NULL ? strlen(backing_format) : 0;
    guint64 l1_size = (virtual_size + (guint64)QCOW2_CLUSTER_SIZE * QCOW2_L2_ENTRIES - 1) /
                      ((guint64)QCOW2_CLUSTER_SIZE * QCOW2_L2_ENTRIES);
    guint64 l1_clusters = MAX((l1_size * 8 + QCOW2_CLUSTER_SIZE - 1) / QCOW2_CLUSTER_SIZE, 1);
    guint32 header_length = version == 2 ? 72 : QCOW2_V3_HEADER_LENGTH;
    gsize ext_len = (fmt_len != 0 ? 8 + ((fmt_len + 7) & ~(gsize)7) : 0) + 8;
    gsize name_offset = header_length + ext_len;

    if (l1_clusters > QCOW2_MAX_L1_CLUSTERS || name_offset + name_len > QCOW2_CLUSTER_SIZE) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "qcow2 image '%s' too large to write", path);
        return FALSE;
    }

    /* The file ends right after the L1 table entries, as qemu-img's does. */
    guint64 clusters = 3 + l1_clusters;
    gsize file_len = 3 * QCOW2_CLUSTER_SIZE + MAX(l1_size * 8, 8);
    g_autofree guint8 *img = g_malloc0(file_len);

    memcpy(img, "QFI\xfb", 4);
    put_be32(img + 4, version);
    if (name_len != 0) {
        put_be64(img + 8, name_offset);
        put_be32(img + 16, (guint32)name_len);
    }
    put_be32(img + 20, QCOW2_CLUSTER_BITS);
    put_be64(img + 24, virtual_size);
    put_be32(img + 36, (guint32)l1_size);
    put_be64(img + 40, 3 * (guint64)QCOW2_CLUSTER_SIZE);
    put_be64(img + 48, QCOW2_CLUSTER_SIZE);
    put_be32(img + 56, 1);
    if (version == 3) {
        put_be32(img + 96, 4); /* refcount_order: 16-bit refcounts */
        put_be32(img + 100, header_length);
    }

    guint8 *ext = img + header_length;
    if (fmt_len != 0) {
        put_be32(ext, QCOW2_EXT_BACKING_FMT);
        put_be32(ext + 4, (guint32)fmt_len);
        memcpy(ext + 8, backing_format, fmt_len);
    }
    /* The end marker is the zeroed 8 bytes that follow. */
    if (name_len != 0)
        memcpy(img + name_offset, backing_name, name_len);

    put_be64(img + QCOW2_CLUSTER_SIZE, 2 * (guint64)QCOW2_CLUSTER_SIZE);
    for (guint64 i = 0; i < clusters; i++)
        put_be16(img + 2 * QCOW2_CLUSTER_SIZE + 2 * i, 1);

    return write_image(path, img, file_len, error);
}

gboolean ic_test_write_qed(const char *path, guint64 virtual_size, const char *backing_name,
                           const char *backing_format, GError **error)
{
    gsize name_len = backing_name != NULL ? strlen(backing_name) : 0;
    guint64 features = 0;

    if (QED_HEADER_SIZE + name_len > QED_CLUSTER_SIZE) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "QED backing name for '%s' too long", path);
        return FALSE;
    }
    if (name_len != 0) {
        features |= QED_F_BACKING_FILE;
        if (g_strcmp0(backing_format, "raw") == 0)
            features |= QED_F_BACKING_FORMAT_NO_PROBE;
    }

    /* QEMU wants the L1 table wholly inside the file. */
    gsize file_len = (1 + QED_TABLE_SIZE) * QED_CLUSTER_SIZE;
    g_autofree guint8 *img = g_malloc0(file_len);

    memcpy(img, "QED\0", 4);
    put_le32(img + 4, QED_CLUSTER_SIZE);
    put_le32(img + 8, QED_TABLE_SIZE);
    put_le32(img + 12, 1);
    put_le64(img + 16, features);
    put_le64(img + 40, QED_CLUSTER_SIZE);
    put_le64(img + 48, virtual_size);
    if (name_len != 0) {
        put_le32(img + 56, QED_HEADER_SIZE);
        put_le32(img + 60, (guint32)name_len);
        memcpy(img + QED_HEADER_SIZE, backing_name, name_len);
    }

    return write_image(path, img, file_len, error);
}
