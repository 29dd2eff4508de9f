/* test-domxml.c — the domain XML reader: real libvirt output, Nova metadata, hostile input. */
#include "domxml.h"
#include "error.h"
#include "testutil.h"

#include <string.h>

static IcDomain *parse_data_file(const char *name, GError **error)
{
    g_autofree char *path = ic_test_data_path("hook", name);
    g_autofree char *xml = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &xml, &len, NULL));
    IcDomain *domain = NULL;
    if (!ic_domxml_parse(xml, len, &domain, error))
        return NULL;
    return domain;
}

static IcDomain *parse_ok(const char *name)
{
    g_autoptr(GError) error = NULL;
    IcDomain *domain = parse_data_file(name, &error);
    g_assert_no_error(error);
    g_assert_nonnull(domain);
    return domain;
}

/* The disks whose backing chains matter (ic_domain_disk_is_file_disk) are
 * exactly those whose sources are @expected (NULL-terminated), in order. */
static void assert_file_disks(const IcDomain *domain, const char *const *expected)
{
    guint n = 0;
    for (guint i = 0; i < domain->disks->len; i++) {
        const IcDomainDisk *disk = g_ptr_array_index(domain->disks, i);
        if (!ic_domain_disk_is_file_disk(disk))
            continue;
        g_assert_nonnull(expected[n]);
        g_assert_cmpstr(disk->source_file, ==, expected[n]);
        n++;
    }
    g_assert_null(expected[n]);
}

static void test_prepare(void)
{
    g_autoptr(IcDomain) domain = parse_ok("prepare.xml");
    g_assert_cmpstr(domain->name, ==, "ic-vm-prepare");
    g_assert_cmpstr(domain->uuid, ==, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    g_assert_cmpuint(domain->disks->len, ==, 3);

    const IcDomainDisk *vda = g_ptr_array_index(domain->disks, 0);
    g_assert_cmpstr(vda->device, ==, "disk");
    g_assert_cmpstr(vda->target, ==, "vda");
    g_assert_cmpstr(vda->source_file, ==, "@INSTANCES@/vm-prepare/disk");
    g_assert_cmpuint(vda->backing_store->len, ==, 0);

    const IcDomainDisk *cdrom = g_ptr_array_index(domain->disks, 1);
    g_assert_cmpstr(cdrom->device, ==, "cdrom");
    const IcDomainDisk *rbd = g_ptr_array_index(domain->disks, 2);
    g_assert_null(rbd->source_file);

    /* Every file disk matters, the CD-ROM too (it can be a qcow2 overlay of a
     * base file); the raw network disk has no chain and no local file. */
    static const char *const file_disks[] = {"@INSTANCES@/vm-prepare/disk",
                                             "@INSTANCES@/vm-prepare/config.iso", NULL};
    assert_file_disks(domain, file_disks);
    g_assert_null(ic_domain_disk_unknown_reason(rbd));
    g_assert_cmpuint(domain->image_ids->len, ==, 0);
}

/* Red-team #2: a CD-ROM, LUN or floppy with a file or block source counts like a
 * disk; a volume, a dir or a network disk with a chain marks its usage unknown. */
static void test_every_device(void)
{
    static const char xml[] =
        "<domain type='kvm'><name>vm</name><uuid>3f2504e0-4f89-41d3-9a0c-0305e82c3309</uuid>"
        "<devices>"
        "<disk type='file' device='cdrom'><driver type='qcow2'/><source file='/i/cd'/>"
        "<target dev='hdc'/></disk>"
        "<disk type='block' device='lun'><source dev='/dev/sdz'/><target dev='sda'/></disk>"
        "<disk type='file' device='floppy'><source file='/i/fd'/><target dev='fda'/></disk>"
        "<disk type='file' device='cdrom'><target dev='hdd'/></disk>"
        "<disk type='volume' device='disk'><source pool='p' volume='v'/>"
        "<target dev='vdb'/></disk>"
        "<disk type='network' device='disk'><driver type='qcow2'/>"
        "<source protocol='gluster' name='vol/img'/><target dev='vdc'/></disk>"
        "<disk type='network' device='disk'><driver type='raw'/>"
        "<source protocol='rbd' name='pool/img'/><target dev='vdd'/></disk>"
        "</devices></domain>";
    g_autoptr(IcDomain) domain = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_domxml_parse(xml, strlen(xml), &domain, &error));
    g_assert_no_error(error);
    static const char *const file_disks[] = {"/i/cd", "/dev/sdz", "/i/fd", NULL};
    assert_file_disks(domain, file_disks);
    static const gboolean unknown[] = {FALSE, FALSE, FALSE, FALSE, TRUE, TRUE, FALSE};
    g_assert_cmpuint(domain->disks->len, ==, G_N_ELEMENTS(unknown));
    for (guint i = 0; i < domain->disks->len; i++)
        g_assert_cmpint(ic_domain_disk_unknown_reason(domain->disks->pdata[i]) != NULL, ==,
                        unknown[i]);
}

static void test_started(void)
{
    g_autoptr(IcDomain) domain = parse_ok("started.xml");
    /* Upper-case UUIDs are accepted and normalised: they name ledger entries. */
    g_assert_cmpstr(domain->uuid, ==, "3f2504e0-4f89-41d3-9a0c-0305e82c3302");
    g_assert_cmpuint(domain->disks->len, ==, 2);

    const IcDomainDisk *vda = g_ptr_array_index(domain->disks, 0);
    g_assert_cmpuint(vda->backing_store->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(vda->backing_store, 0), ==, "@INSTANCES@/_base/mid.qcow2");
    g_assert_cmpstr(g_ptr_array_index(vda->backing_store, 1), ==,
                    "@INSTANCES@/_base/1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1");

    /* A network backing layer has no file. */
    const IcDomainDisk *vdb = g_ptr_array_index(domain->disks, 1);
    g_assert_cmpstr(vdb->source_file, ==, "@INSTANCES@/vm-started/disk.local");
    g_assert_cmpuint(vdb->backing_store->len, ==, 0);

    static const char *const file_disks[] = {"@INSTANCES@/vm-started/disk",
                                             "@INSTANCES@/vm-started/disk.local", NULL};
    assert_file_disks(domain, file_disks);
}

static void test_nova(void)
{
    g_autoptr(IcDomain) domain = parse_ok("nova.xml");
    g_assert_cmpstr(domain->name, ==, "instance-0000002a");
    /* <nova:root type="image"> and <nova:image>; the foreign namespace is ignored. */
    g_assert_cmpuint(domain->image_ids->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(domain->image_ids, 0), ==,
                    "155d900f-4e14-4e4c-a73d-069cbf4541e6");
    g_assert_cmpstr(g_ptr_array_index(domain->image_ids, 1), ==,
                    "a1b2c3d4-0000-4000-8000-00000000beef");
    /* The disk and the config drive (a CD-ROM counts like any file disk). */
    static const char *const file_disks[] = {
        "@INSTANCES@/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d/disk",
        "@INSTANCES@/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d/disk.config", NULL};
    assert_file_disks(domain, file_disks);
}

static void test_nova_volume(void)
{
    /* Another prefix, an older namespace version; a volume root is no image. */
    g_autoptr(IcDomain) domain = parse_ok("nova-volume.xml");
    g_assert_cmpuint(domain->image_ids->len, ==, 0);
    static const char *const file_disks[] = {
        "/dev/disk/by-path/ip-10.0.0.3:3260-iscsi-iqn.2010-10.org.openstack:volume-1-lun-1", NULL};
    assert_file_disks(domain, file_disks);
}

typedef struct {
    const char *file;
    int code;
} HostileCase;

static const HostileCase hostile_cases[] = {
    {"malformed.xml", IC_ERROR_FORMAT},         {"billion-laughs.xml", IC_ERROR_FORMAT},
    {"undeclared-entity.xml", IC_ERROR_FORMAT}, {"external-entity.xml", IC_ERROR_FORMAT},
    {"no-uuid.xml", IC_ERROR_FORMAT},           {"two-roots.xml", IC_ERROR_FORMAT},
};

static void test_hostile_file(gconstpointer data)
{
    const HostileCase *c = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcDomain) domain = parse_data_file(c->file, &error);
    g_assert_null(domain);
    g_assert_error(error, IC_ERROR, c->code);
}

static void assert_rejected(const char *xml, gsize len, int code)
{
    g_autoptr(GError) error = NULL;
    IcDomain *domain = NULL;
    g_assert_false(ic_domxml_parse(xml, len, &domain, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(domain);
}

static void test_huge(void)
{
    gsize len = IC_DOMXML_MAX_BYTES + 1;
    g_autofree char *xml = g_malloc(len);
    memset(xml, ' ', len);
    assert_rejected(xml, len, IC_ERROR_LIMIT);
}

static void test_many_disks(void)
{
    g_autoptr(GString) xml =
        g_string_new("<domain><name>d</name><uuid>3f2504e0-4f89-41d3-9a0c-0305e82c3300</uuid>"
                     "<devices>");
    for (int i = 0; i < 10000; i++)
        g_string_append_printf(xml, "<disk type='file'><source file='/d/%d'/></disk>", i);
    g_string_append(xml, "</devices></domain>");
    /* Issue 12 item 7: the domain is still read (so it can be recorded);
     * the disks past the limit are counted for the caller to report. */
    g_autoptr(GError) error = NULL;
    g_autoptr(IcDomain) domain = NULL;
    g_assert_true(ic_domxml_parse(xml->str, xml->len, &domain, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(domain->disks->len, ==, IC_DOMXML_MAX_DISKS);
    g_assert_cmpuint(domain->disks_over_limit, ==, 10000 - IC_DOMXML_MAX_DISKS);
    const IcDomainDisk *last = g_ptr_array_index(domain->disks, IC_DOMXML_MAX_DISKS - 1);
    g_assert_cmpstr(last->source_file, ==, "/d/255");
}

#define IDENTITY "<name>d</name><uuid>3f2504e0-4f89-41d3-9a0c-0305e82c3300</uuid>"

static IcDomain *parse_gstring(const GString *xml)
{
    g_autoptr(GError) error = NULL;
    IcDomain *domain = NULL;
    g_assert_true(ic_domxml_parse(xml->str, xml->len, &domain, &error));
    g_assert_no_error(error);
    g_assert_nonnull(domain);
    return domain;
}

/* Red team 8: libvirt accepts 130 levels of <metadata> and any attribute length in
 * <qemu:commandline>; refusing them left the domain unrecorded. Past the caps,
 * outside what is read: skipped, and the disks are still read. */
static void test_deep(void)
{
    g_autoptr(GString) xml = g_string_new("<domain>" IDENTITY "<metadata>");
    for (int i = 0; i < 1000; i++)
        g_string_append(xml, "<a>");
    for (int i = 0; i < 1000; i++)
        g_string_append(xml, "</a>");
    g_string_append(xml, "</metadata><devices><disk type='file'><source file='/d/1'/>"
                         "</disk></devices></domain>");
    g_autoptr(IcDomain) domain = parse_gstring(xml);
    g_assert_cmpuint(domain->disks->len, ==, 1);
    const IcDomainDisk *disk = g_ptr_array_index(domain->disks, 0);
    g_assert_cmpstr(disk->source_file, ==, "/d/1");
    g_assert_null(ic_domain_disk_unknown_reason(disk));
    g_assert_null(domain->unread);

    /* Unclosed past the cap: still malformed. */
    g_autoptr(GString) open = g_string_new("<domain>" IDENTITY);
    for (int i = 0; i < 1000; i++)
        g_string_append(open, "<a>");
    assert_rejected(open->str, open->len, IC_ERROR_FORMAT);
}

/* A disk whose own XML goes past a cap is unread: its usage is unknown. */
static void test_deep_disk(void)
{
    g_autoptr(GString) xml =
        g_string_new("<domain>" IDENTITY "<devices><disk type='file'><source file='/d/1'/>");
    for (int i = 0; i < 200; i++)
        g_string_append(xml, "<x>");
    for (int i = 0; i < 200; i++)
        g_string_append(xml, "</x>");
    g_string_append(xml,
                    "</disk><disk type='file'><source file='/d/2'/></disk></devices></domain>");
    g_autoptr(IcDomain) domain = parse_gstring(xml);
    g_assert_cmpuint(domain->disks->len, ==, 2);
    g_assert_nonnull(strstr(ic_domain_disk_unknown_reason(g_ptr_array_index(domain->disks, 0)),
                            "nested deeper"));
    g_assert_null(ic_domain_disk_unknown_reason(g_ptr_array_index(domain->disks, 1)));
}

static void test_long_attribute(void)
{
    g_autofree char *long_value = g_strnfill(5000, 'x');
    /* Where nothing is read (a QEMU argument): skipped. */
    g_autoptr(GString) elsewhere = g_string_new(NULL);
    g_string_printf(elsewhere,
                    "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>" IDENTITY
                    "<devices><disk type='file'><source file='/d/1'/></disk></devices>"
                    "<qemu:commandline><qemu:arg value='%s'/></qemu:commandline></domain>",
                    long_value);
    g_autoptr(IcDomain) domain = parse_gstring(elsewhere);
    g_assert_null(ic_domain_disk_unknown_reason(g_ptr_array_index(domain->disks, 0)));
    g_assert_null(domain->unread);

    /* A disk's path too long to be one: the disk is unread, not the domain refused. */
    g_autoptr(GString) source = g_string_new(NULL);
    g_string_printf(source,
                    "<domain>" IDENTITY "<devices><disk><source file='%s'/></disk>"
                    "</devices></domain>",
                    long_value);
    g_autoptr(IcDomain) with_disk = parse_gstring(source);
    const IcDomainDisk *disk = g_ptr_array_index(with_disk->disks, 0);
    g_assert_null(disk->source_file);
    g_assert_nonnull(strstr(ic_domain_disk_unknown_reason(disk), "longer than"));

    /* A Nova image ref that long: the image refs are unread. */
    g_autoptr(GString) nova = g_string_new(NULL);
    g_string_printf(nova,
                    "<domain>" IDENTITY "<metadata><nova:instance "
                    "xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
                    "<nova:root type='image' uuid='%s'/></nova:instance></metadata></domain>",
                    long_value);
    g_autoptr(IcDomain) with_ref = parse_gstring(nova);
    g_assert_cmpuint(with_ref->image_ids->len, ==, 0);
    g_assert_nonnull(with_ref->unread);
}

/* A <backingStore> chain past its cap and image refs past theirs: unread, not refused. */
static void test_chain_and_refs_over_cap(void)
{
    g_autoptr(GString) xml =
        g_string_new("<domain>" IDENTITY "<metadata><nova:instance "
                     "xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>");
    for (int i = 0; i < 70; i++)
        g_string_append_printf(xml, "<nova:image uuid='%08d-0000-4000-8000-000000000000'/>", i);
    g_string_append(xml, "</nova:instance></metadata><devices><disk type='file'>"
                         "<source file='/d/top'/>");
    for (int i = 0; i < 70; i++)
        g_string_append_printf(xml, "<backingStore type='file'><source file='/d/%d'/>", i);
    for (int i = 0; i < 70; i++)
        g_string_append(xml, "</backingStore>");
    g_string_append(xml, "</disk></devices></domain>");
    g_autoptr(IcDomain) domain = parse_gstring(xml);
    g_assert_nonnull(strstr(domain->unread, "image refs"));
    const IcDomainDisk *disk = g_ptr_array_index(domain->disks, 0);
    g_assert_nonnull(strstr(ic_domain_disk_unknown_reason(disk), "chain deeper"));
}

static void test_not_domain(void)
{
    const char *xml = "<network><name>n</name></network>";
    assert_rejected(xml, strlen(xml), IC_ERROR_FORMAT);
    assert_rejected("", 0, IC_ERROR_FORMAT);
    const char *bad_uuid = "<domain><name>n</name><uuid>not-a-uuid</uuid></domain>";
    assert_rejected(bad_uuid, strlen(bad_uuid), IC_ERROR_FORMAT);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add_func("/imagecache/domxml/prepare", test_prepare);
    g_test_add_func("/imagecache/domxml/started", test_started);
    g_test_add_func("/imagecache/domxml/every-device", test_every_device);
    g_test_add_func("/imagecache/domxml/nova", test_nova);
    g_test_add_func("/imagecache/domxml/nova-volume", test_nova_volume);
    for (gsize i = 0; i < G_N_ELEMENTS(hostile_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/domxml/hostile/%s", hostile_cases[i].file);
        g_test_add_data_func(path, &hostile_cases[i], test_hostile_file);
    }
    g_test_add_func("/imagecache/domxml/hostile/huge", test_huge);
    g_test_add_func("/imagecache/domxml/hostile/many-disks", test_many_disks);
    g_test_add_func("/imagecache/domxml/hostile/deep", test_deep);
    g_test_add_func("/imagecache/domxml/hostile/deep-disk", test_deep_disk);
    g_test_add_func("/imagecache/domxml/hostile/long-attribute", test_long_attribute);
    g_test_add_func("/imagecache/domxml/hostile/chain-and-refs-over-cap",
                    test_chain_and_refs_over_cap);
    g_test_add_func("/imagecache/domxml/not-domain", test_not_domain);

    return g_test_run();
}
