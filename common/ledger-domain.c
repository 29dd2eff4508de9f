/* ledger-domain.c — what a domain uses, as the ledger records it: the base files its
 * disks' backing chains reach, read from the image headers at prepare (libvirt fills
 * <backingStore> only later) and from <backingStore> when libvirt wrote it. */
#include "ledger-domain.h"

#include "fileutil.h"
#include "probe.h"

#include <fcntl.h>
#include <string.h>

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the base file @file resolves to, named within @base_dir, when the
 * kernel resolves it into @base_dir (whatever path led there). */
static void add_if_base(GPtrArray *files, const char *base_dir, int base_fd, const IcDiskFile *file)
{
    g_autofree char *name = base_fd >= 0 ? ic_disk_file_base_name_at(file, base_fd, base_dir)
                                         : ic_disk_file_base_name(file, base_dir);
    if (name == NULL)
        return;
    g_autofree char *path = g_build_filename(base_dir, name, NULL);
    if (!g_ptr_array_find_with_equal_func(files, path, g_str_equal, NULL))
        g_ptr_array_add(files, g_steal_pointer(&path));
}

/* A path libvirt wrote (<backingStore>): resolved by the kernel like a chain member. */
static void add_path_if_base(GPtrArray *files, const char *base_dir, int base_fd, const char *path)
{
    g_autoptr(IcDiskFile) file = ic_disk_file_new_for_path(path);
    add_if_base(files, base_dir, base_fd, file);
}

IcLedgerDomain *ic_ledger_domain_collect(const IcDomain *domain, const char *base_dir, gint64 now,
                                         GPtrArray **ret_problems)
{
    g_autofree char *base = g_canonicalize_filename(base_dir, "/");
    g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_new(domain->uuid, domain->name);
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    entry->started = now;
    ic_autofd base_fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);

    /* A domain with more disks than we read is recorded with what was read,
     * and the rest is said loudly (the hook logs it, strict_prepare refuses). */
    if (domain->disks_over_limit > 0)
        g_ptr_array_add(
            problems, g_strdup_printf("domain '%s' has %u disks past the limit of %d that were "
                                      "not read: their base files are not recorded",
                                      domain->name, domain->disks_over_limit, IC_DOMXML_MAX_DISKS));

    if (domain->unread != NULL)
        g_ptr_array_add(problems, g_strdup_printf("domain '%s': %s", domain->name, domain->unread));

    for (guint i = 0; i < domain->disks->len; i++) {
        const IcDomainDisk *disk = g_ptr_array_index(domain->disks, i);
        const char *unknown = ic_domain_disk_unknown_reason(disk);
        if (unknown != NULL) {
            g_ptr_array_add(problems, g_strdup_printf("disk '%s' of domain '%s': %s",
                                                      disk->target ? disk->target : "?",
                                                      domain->name, unknown));
            continue;
        }
        if (!ic_domain_disk_is_file_disk(disk))
            continue;
        /* libvirt's own view of the chain (filled from started on): a cross-check
         * that can only add users, never hide one the headers name. */
        for (guint j = 0; j < disk->backing_store->len; j++)
            add_path_if_base(entry->base_files, base, base_fd,
                             g_ptr_array_index(disk->backing_store, j));

        /* The disk's declared format (<driver type>) is how QEMU opens it. */
        g_autoptr(GPtrArray) files = NULL;
        g_autoptr(GError) error = NULL;
        if (!ic_probe_disk_files(AT_FDCWD, disk->source_file, disk->source_file, disk->format, NULL,
                                 &files, &error)) {
            add_path_if_base(entry->base_files, base, base_fd, disk->source_file);
            g_ptr_array_add(problems,
                            g_strdup_printf("disk '%s' of domain '%s': %s", disk->source_file,
                                            domain->name, error->message));
            continue;
        }
        for (guint j = 0; j < files->len; j++)
            add_if_base(entry->base_files, base, base_fd, g_ptr_array_index(files, j));
    }
    g_ptr_array_sort(entry->base_files, compare_strings);

    for (guint i = 0; i < domain->image_ids->len; i++) {
        const char *id = g_ptr_array_index(domain->image_ids, i);
        if (!g_ptr_array_find_with_equal_func(entry->image_ids, id, g_str_equal, NULL))
            g_ptr_array_add(entry->image_ids, g_strdup(id));
    }
    g_ptr_array_sort(entry->image_ids, compare_strings);

    /* Whatever could not be followed leaves the domain's usage unknown: a
     * partial list would let other hosts' passes remove what it does use. */
    if (problems->len > 0)
        ic_ledger_domain_mark_unknown(entry, g_ptr_array_index(problems, 0));

    *ret_problems = problems->len > 0 ? g_steal_pointer(&problems) : NULL;
    return g_steal_pointer(&entry);
}
