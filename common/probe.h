/* probe.h — reading disk image headers (qcow2 v2/v3, QED, raw) and following backing chains.
 * No subprocess: the header bytes are parsed here, bounded, and malformed ones are errors. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IC_PROBE_MAX_CHAIN_DEPTH  16
#define IC_PROBE_MAX_BACKING_NAME 1023 /* QEMU's own limit */

typedef enum {
    IC_IMAGE_FORMAT_RAW = 0, /* no recognised header: raw has no backing file */
    IC_IMAGE_FORMAT_QCOW2,
    IC_IMAGE_FORMAT_QED,
} IcImageFormat;

const char *ic_image_format_to_string(IcImageFormat format);

typedef struct {
    IcImageFormat format;
    guint32 version;      /* qcow2 version (2 or 3); 0 otherwise */
    guint64 virtual_size; /* bytes, 0 for raw */
    char *backing_name;   /* as stored in the header, NULL when none */
    char *backing_path;   /* backing_name resolved against the image's directory */
    char *backing_format; /* from the header extension / QED flag, NULL when unknown */
} IcImageInfo;

void ic_image_info_free(IcImageInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcImageInfo, ic_image_info_free)

/* Parses the first @len bytes of an image file. @image_dir resolves a relative
 * backing name. A header that claims a format but is damaged (offsets past
 * @len, oversized names, NUL in a name) fails with IC_ERROR_FORMAT. Pure. */
gboolean ic_probe_parse(const guint8 *data, gsize len, const char *image_dir,
                        IcImageInfo **ret_info, GError **error);

/* Reads and parses the header of the image at @path (O_CLOEXEC, bounded read). */
gboolean ic_probe_image(const char *path, IcImageInfo **ret_info, GError **error);

/* The same, opening @name relative to @dirfd (spares the path walk when
 * many images share a directory); @path names it in messages and resolves a
 * relative backing name. */
gboolean ic_probe_image_at(int dirfd, const char *name, const char *path, IcImageInfo **ret_info,
                           GError **error);

/* Follows the backing chain of @path: *ret_chain receives the backing paths,
 * nearest first (not @path itself). A chain deeper than IC_PROBE_MAX_CHAIN_DEPTH
 * or one that loops fails with IC_ERROR_LIMIT; a missing backing file ends the
 * chain with it as the last element (it is still "used"). */
gboolean ic_probe_chain(const char *path, GPtrArray **ret_chain, GError **error);

/* What one walk over many disks has already read: base files are shared by
 * many overlays, so each header is probed once. Valid for one pass only. */
typedef struct _IcProbeCache IcProbeCache;
IcProbeCache *ic_probe_cache_new(void);
void ic_probe_cache_free(IcProbeCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcProbeCache, ic_probe_cache_free)

/* ic_probe_chain of the image @name in @dirfd (its path: @path), reading each
 * backing file's header through @cache (NULL: none). */
gboolean ic_probe_chain_cached(int dirfd, const char *name, const char *path, IcProbeCache *cache,
                               GPtrArray **ret_chain, GError **error);

G_END_DECLS
