/* fuzz-domxml.c — libFuzzer target for the domain-XML reader (GMarkup, Nova metadata).
 * Checks that a parsed domain keeps the limits the reader promises and that every
 * disk whose chain matters (ic_domain_disk_is_file_disk) names the file to follow. */
#include "fuzz.h"

#include "domxml.h"
#include "error.h"

#include <string.h>

/* domxml.c's own caps, restated: a change there should be a conscious one. */
#define FUZZ_MAX_BACKING_CHAIN 64
#define FUZZ_MAX_IMAGE_IDS     64
#define FUZZ_MAX_TEXT_LEN      1024

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ic_fuzz_init();
    return 0;
}

static void check_domain(const IcDomain *domain)
{
    IC_FUZZ_CHECK(domain->name != NULL && domain->name[0] != '\0');
    IC_FUZZ_CHECK(strlen(domain->name) <= FUZZ_MAX_TEXT_LEN);
    IC_FUZZ_CHECK(g_utf8_validate(domain->name, -1, NULL));
    IC_FUZZ_CHECK(domain->uuid != NULL && g_uuid_string_is_valid(domain->uuid));
    g_autofree char *lower = g_ascii_strdown(domain->uuid, -1);
    IC_FUZZ_CHECK(strcmp(lower, domain->uuid) == 0);

    IC_FUZZ_CHECK(domain->disks != NULL && domain->disks->len <= IC_DOMXML_MAX_DISKS);
    for (guint i = 0; i < domain->disks->len; i++) {
        const IcDomainDisk *disk = g_ptr_array_index(domain->disks, i);
        IC_FUZZ_CHECK(disk != NULL && disk->device != NULL && disk->backing_store != NULL);
        IC_FUZZ_CHECK(disk->backing_store->len <= FUZZ_MAX_BACKING_CHAIN);
        for (guint j = 0; j < disk->backing_store->len; j++) {
            const char *file = g_ptr_array_index(disk->backing_store, j);
            IC_FUZZ_CHECK(file != NULL && file[0] != '\0');
        }
        if (ic_domain_disk_is_file_disk(disk))
            IC_FUZZ_CHECK(disk->source_file != NULL && disk->source_file[0] != '\0');
    }

    IC_FUZZ_CHECK(domain->image_ids != NULL && domain->image_ids->len <= FUZZ_MAX_IMAGE_IDS);
    for (guint i = 0; i < domain->image_ids->len; i++) {
        const char *id = g_ptr_array_index(domain->image_ids, i);
        IC_FUZZ_CHECK(id != NULL && id[0] != '\0');
        for (guint j = 0; j < i; j++)
            IC_FUZZ_CHECK(strcmp(id, g_ptr_array_index(domain->image_ids, j)) != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(IcDomain) domain = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_domxml_parse((const char *)data, size, &domain, &error);
    IC_FUZZ_CHECK(ok == (error == NULL) && ok == (domain != NULL));
    if (!ok) {
        IC_FUZZ_CHECK(error->domain == IC_ERROR);
        IC_FUZZ_CHECK(error->code == IC_ERROR_FORMAT || error->code == IC_ERROR_LIMIT);
        return 0;
    }
    check_domain(domain);
    return 0;
}
