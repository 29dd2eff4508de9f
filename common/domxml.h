/* domxml.h — reading a libvirt domain XML: identity, file-backed disks, Nova metadata.
 * GMarkup parser (GLib only, no external entities, no DTDs), input size capped. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IC_DOMXML_MAX_BYTES (4 * 1024 * 1024)
#define IC_DOMXML_MAX_DISKS 256

typedef struct {
    char *target; /* <target dev=…>, may be NULL */
    char *device; /* "disk", "cdrom", "floppy", "lun" */
    char *type;   /* <disk type=…>: "file", "block", "network", "volume", …; NULL if absent */
    char *source_file; /* <source file=…> (type='file') or dev= (type='block'), NULL for network */
    char *format;      /* <driver type=…>: the format QEMU opens it as; NULL when not declared */
    GPtrArray *
        backing_store; /* char*: <backingStore> chain files as libvirt filled them, nearest first */
    const char *unread; /* static: why part of the disk's XML was past a cap and not read */
} IcDomainDisk;

typedef struct _IcDomain {
    char *name;
    char *uuid;
    GPtrArray *disks; /* IcDomainDisk*: the <disk>s under <devices>, at most IC_DOMXML_MAX_DISKS */
    guint disks_over_limit; /* <disk>s past IC_DOMXML_MAX_DISKS, not read: callers must say so */
    GPtrArray *image_ids; /* char*: <nova:image uuid=…> and <nova:root …> image refs, unique */
    const char *unread;   /* static: why image refs were past a cap and not read */
} IcDomain;

void ic_domain_free(IcDomain *domain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcDomain, ic_domain_free)

/* Parses a domain XML document. Malformed XML, a missing <name> or <uuid>,
 * or input over IC_DOMXML_MAX_BYTES fail with IC_ERROR_FORMAT / IC_ERROR_LIMIT.
 * No other cap fails the domain (it must still be recorded): disks past
 * IC_DOMXML_MAX_DISKS are counted in ->disks_over_limit, a disk whose XML went
 * past a cap has ->unread set (ic_domain_disk_unknown_reason), image refs past
 * theirs set the domain's ->unread; callers record such a domain with unknown
 * usage. Elements nested past the cap outside a disk are skipped. Pure. */
gboolean ic_domxml_parse(const char *xml, gsize len, IcDomain **ret_domain, GError **error);

/* TRUE for a disk whose backing chain matters: a file or block source, whatever
 * its device (a CD-ROM, floppy or LUN can be a qcow2 overlay of a base file too). */
gboolean ic_domain_disk_is_file_disk(const IcDomainDisk *disk);

/* Why the files @disk uses cannot be known from the XML (part of it past a cap; a type='volume'
 * disk names a storage pool volume, a network disk of a format with a backing chain may chain to a
 * local file, a type='dir' disk exposes a directory), or NULL when they can (a file/block disk, an
 * empty drive, a raw network disk or one without a declared format, which libvirt opens as raw). A
 * domain with such a disk has unknown usage. Pure; the string is static. */
const char *ic_domain_disk_unknown_reason(const IcDomainDisk *disk);

G_END_DECLS
