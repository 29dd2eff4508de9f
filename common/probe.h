/* probe.h — reading disk image headers (qcow2 v2/v3, QED, raw) and following backing chains.
 * No subprocess: the header bytes are parsed here, bounded, and malformed ones are errors. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "scan.h"

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
    guint32 version;        /* qcow2 version (2 or 3); 0 otherwise */
    guint64 virtual_size;   /* bytes, 0 for raw */
    char *backing_name;     /* as stored in the header, NULL when none */
    char *backing_path;     /* backing_name as QEMU opens it: absolute, or appended to the
                             * image's directory as a string (not canonicalised: the kernel
                             * resolves it, symlinks before ".."); NULL for a protocol or a
                             * relative "file:" name */
    char *backing_format;   /* from the header extension / QED flag, NULL when unknown */
    char *data_file_name;   /* qcow2 external data file, as stored in the header; NULL: none */
    char *data_file_path;   /* that name as QEMU opens it, NULL when not a local file */
    gboolean data_file_raw; /* qcow2 autoclear bit data_file_raw */
} IcImageInfo;

void ic_image_info_free(IcImageInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcImageInfo, ic_image_info_free)

/* Parses the first @len bytes of an image file. @image_dir resolves a relative
 * backing name. A header that claims a format but is damaged (offsets past
 * @len, oversized names, NUL in a name) fails with IC_ERROR_FORMAT. Pure.
 * The format is probed from the bytes (as QEMU probes a disk with no declared
 * format). */
gboolean ic_probe_parse(const guint8 *data, gsize len, const char *image_dir,
                        IcImageInfo **ret_info, GError **error);

/* The same, read as the declared @format (NULL: probed). "raw" (and QEMU's
 * "file", "host_device", "host_cdrom") is raw whatever the bytes hold; "qcow2"
 * and "qed" must match the bytes; any other fails with IC_ERROR_FORMAT. */
gboolean ic_probe_parse_as(const guint8 *data, gsize len, const char *image_dir, const char *format,
                           IcImageInfo **ret_info, GError **error);

/* Reads and parses the header of the image at @path (O_CLOEXEC, bounded read). */
gboolean ic_probe_image(const char *path, IcImageInfo **ret_info, GError **error);

/* The same, opening @name relative to @dirfd (@path names it in messages and
 * resolves a relative backing name), read as the declared @format (NULL:
 * probed). A raw format is not even opened for reading. Anything but a
 * regular file or a block device is refused with IC_ERROR_UNSAFE before it
 * is opened for reading (the type is checked on the resolved name first; the
 * open is O_NOCTTY | O_NONBLOCK | O_CLOEXEC and must land on the inode
 * checked). */
gboolean ic_probe_image_as(int dirfd, const char *name, const char *path, const char *format,
                           IcImageInfo **ret_info, GError **error);

/* What one walk over many disks has already read: base files are shared by
 * many overlays, so each header is probed once. Valid for one pass only. */
typedef struct _IcProbeCache IcProbeCache;
IcProbeCache *ic_probe_cache_new(void);
/* The same for a pass that has listed the base dir (@known, borrowed, must
 * outlive the cache): a backing file named "<known->base_dir>/<name>" is
 * taken to be the scanned file (no system call), and each member is told
 * against the scan (IcBaseMatch). */
IcProbeCache *ic_probe_cache_new_for_scan(const IcScan *known);
void ic_probe_cache_free(IcProbeCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcProbeCache, ic_probe_cache_free)

typedef enum {
    IC_DISK_FILE_IMAGE, /* the disk itself or a backing file: a chain member */
    IC_DISK_FILE_DATA,  /* a qcow2 external data file (holds the image's data) */
} IcDiskFileRole;

const char *ic_disk_file_role_to_string(IcDiskFileRole role);

/* Whether a present file is a base file, as far as the pass's scan can tell
 * (only a scanned file can be a row, planned for removal or kept). */
typedef enum {
    IC_BASE_MATCH_ASK = 0, /* no scan, or its entry's identity differs: ask the kernel */
    IC_BASE_MATCH_SCANNED, /* entry_name is the scanned base file of this identity */
    IC_BASE_MATCH_NONE,    /* no scanned file has that name or (for a name outside the
                            * grammar) that inode: nothing this pass acts on */
} IcBaseMatch;

/* One file a disk needs. Its strings but absent_dir live in its own
 * allocation: read them, never free or replace them (ic_disk_file_free). */
typedef struct {
    char *path; /* the name QEMU opens (see IcImageInfo.backing_path); the disk's own path */
    char *name; /* as written in the overlay's header; NULL for the disk itself */
    IcDiskFileRole role;
    char *format;     /* what it is read as: "raw", "qcow2", "qed" */
    gboolean present; /* FALSE: the name resolves to nothing (a base file gone: still needed) */
    dev_t dev;        /* identity after the kernel resolved the name (present only) */
    ino_t ino;
    char *entry_name;       /* the directory entry the kernel lands on: the last component, or
                             * a symlink's final target's; NULL when it cannot be told */
    char *absent_dir;       /* absent only: the kernel's path of its directory, NULL when even
                             * that does not resolve */
    IcBaseMatch base_match; /* present only */
} IcDiskFile;

void ic_disk_file_free(IcDiskFile *file);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcDiskFile, ic_disk_file_free)

/* Which files the disk @name in @dirfd (its path: @path) needs, answered as
 * QEMU would: the disk, its backing chain and each member's qcow2 external
 * data file, in order (*ret_files: IcDiskFile*, the disk first).
 *
 * @format is the disk's declared format (the domain XML's <driver type>, Nova's
 * disk.info); NULL probes it. Each backing file is read as the overlay
 * declares (qcow2 backing-format extension, QED's no-probe flag), probed only
 * when nothing declares it. A raw member is never opened: its bytes are the
 * guest's. Relative names are appended to the overlay's directory and resolved
 * by the kernel; "file:/abs" is a file. Fails (the caller must treat the disk
 * as an unknown user of every base file) on: a protocol or relative "file:"
 * name (IC_ERROR_FORMAT), a damaged header or a declared format that does not
 * match or is not raw/qcow2/qed (IC_ERROR_FORMAT), a device, FIFO or socket
 * (IC_ERROR_UNSAFE), a loop by identity or more than IC_PROBE_MAX_CHAIN_DEPTH
 * backing files (IC_ERROR_LIMIT), an absent disk (IC_ERROR_NOT_FOUND). An
 * absent backing file ends the chain and is still listed (present FALSE).
 * @cache (NULL: none) spares re-reading shared backing files; the disk itself
 * is read afresh. */
gboolean ic_probe_disk_files(int dirfd, const char *name, const char *path, const char *format,
                             IcProbeCache *cache, GPtrArray **ret_files, GError **error);

/* The same for a disk whose directory listing said what it is: with
 * @listed_regular (d_type DT_REG) the disk is opened without a stat first
 * (never through a symlink; the fstat after the open re-checks its type). */
gboolean ic_probe_listed_disk_files(int dirfd, const char *name, const char *path,
                                    const char *format, gboolean listed_regular,
                                    IcProbeCache *cache, GPtrArray **ret_files, GError **error);

/* A file named by something other than an image header (libvirt's
 * <backingStore>): stat'ed and resolved by the kernel, never opened. */
IcDiskFile *ic_disk_file_new_for_path(const char *path);

/* The name, within @base_dir, of the base file @file resolves to, or NULL when
 * the kernel does not resolve it into @base_dir: a present file must be the
 * very inode the base dir's entry of that name is (device and inode), so any
 * spelling of either counts; an absent one must resolve into the base dir's
 * directory (compared by identity). */
char *ic_disk_file_base_name(const IcDiskFile *file, const char *base_dir);

/* The same with @base_dir already open as @base_fd (O_PATH is enough): for
 * callers that ask about many files. */
char *ic_disk_file_base_name_at(const IcDiskFile *file, int base_fd, const char *base_dir);

/* The same, borrowed from @file (its entry name) where it can be, else
 * allocated into *ret_owned (which the caller frees): for the walk, which
 * asks about every file of 20,000-200,000 disks (issue 15). */
const char *ic_disk_file_base_name_ref(const IcDiskFile *file, int base_fd, const char *base_dir,
                                       char **ret_owned);

/* The backing chain of @path (probed format), nearest first, not @path itself:
 * each member's kernel-resolved path. For tests and tools; usage goes through
 * ic_probe_disk_files. */
gboolean ic_probe_chain(const char *path, GPtrArray **ret_chain, GError **error);

G_END_DECLS
