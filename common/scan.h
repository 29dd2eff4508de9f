/* scan.h — the base-dir name grammar and one pass over the base dir.
 * Which names are base files (original, _sm, _<N>) is decided here and only here. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define IC_FINGERPRINT_LEN 40 /* hex SHA-1 of the image id */

typedef enum {
    IC_KIND_IGNORED = 0, /* not a base file name: never touched */
    IC_KIND_ORIGINAL,    /* <sha1> */
    IC_KIND_SMALL,       /* <sha1>_sm */
    IC_KIND_RESIZED,     /* <sha1>_<N> */
    IC_KIND_SWAP,        /* swap_<MB>: managed only with collect_swap_and_ephemeral */
    IC_KIND_EPHEMERAL,   /* ephemeral_<GB>_<ext>: likewise */
} IcImageKind;

const char *ic_image_kind_to_string(IcImageKind kind);

/* The checksum sidecars a base file may have beside it, NULL-terminated
 * ("<name>.sha1", "<name>.info"): removal takes them with the image. */
extern const char *const ic_sidecar_suffixes[];

/* Classifies a directory entry name. For image base file names,
 * *ret_fingerprint (if non-NULL) receives the 40-char image fingerprint; swap
 * and ephemeral files have none (NULL). Pure. */
IcImageKind ic_scan_classify_name(const char *name, char **ret_fingerprint);

/* TRUE for "<base file>.<sidecar suffix>.tmp.<8 hex>", the temp name of an
 * atomic sidecar write (ic_file_write_atomic_at). */
gboolean ic_scan_is_sidecar_temp(const char *name);

/* TRUE for lowercase 40-hex-digit strings. */
gboolean ic_fingerprint_is_valid(const char *s);

/* The fingerprint (SHA-1 hex, GLib's GChecksum) of an image id. */
char *ic_fingerprint_of_image_id(const char *image_id);

typedef struct {
    char *name;
    IcImageKind kind;
    char *fingerprint;
    gint64 size;
    gint64 disk_bytes; /* allocated on disk (st_blocks), what eviction frees */
    gint64 mtime;      /* seconds since the epoch */
    gint64 ctime;
    dev_t dev;
    ino_t ino;
} IcBaseFile;

/* An entry whose name is a base file name but which is not a regular file
 * (symlink, directory, FIFO…): never touched, always reported. */
typedef struct {
    char *name;
    char *why;
} IcSkippedEntry;

typedef struct {
    char *base_dir;
    gboolean exists;         /* FALSE: the base dir is absent and the pass has nothing to do */
    GPtrArray *files;        /* IcBaseFile*, sorted by name */
    GPtrArray *skipped;      /* IcSkippedEntry*, sorted by name */
    guint ignored;           /* entries with names outside the grammar */
    GHashTable *variants;    /* fingerprint -> GPtrArray of IcBaseFile* (original, _sm, _<N>…) */
    GPtrArray *temps;        /* IcBaseFile*: sidecar temp files an interrupted writer left */
    GHashTable *by_name;     /* private: name -> IcBaseFile* of @files (ic_scan_lookup) */
    GHashTable *by_identity; /* private: the IcBaseFile* of @files by (device, inode) */
} IcScan;

void ic_scan_free(IcScan *scan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcScan, ic_scan_free)

/* Lists @base_dir without following symlinks (the base dir itself must be a
 * real directory). An absent base dir is no error: ret_scan->exists is FALSE. */
gboolean ic_scan_base_dir(const char *base_dir, IcScan **ret_scan, GError **error);

/* The file named @name, or NULL. */
const IcBaseFile *ic_scan_lookup(const IcScan *scan, const char *name);

/* A scanned file whose identity is @dev/@ino (one of them when hard links
 * give several names in the grammar one inode), or NULL. */
const IcBaseFile *ic_scan_lookup_identity(const IcScan *scan, dev_t dev, ino_t ino);

/* Every base file of image @fingerprint (the reference's _find_base_file):
 * the original first, then _sm, then the resized ones by name; NULL if none. */
const GPtrArray *ic_scan_find_variants(const IcScan *scan, const char *fingerprint);

G_END_DECLS
