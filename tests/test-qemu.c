/* test-qemu.c — issue 12: the seven reproduced cases where imagecache's answer to
 * "which files does this disk need" differed from QEMU's. Each layout is made with
 * real `qemu-img create`; each test checks what the instances walk and the hook's
 * recording (ic_ledger_domain_collect, also the libvirt witness) conclude, and that
 * QEMU (`qemu-img info --backing-chain`, `qemu-io`) agrees on the chain. */
#include "domxml.h"
#include "error.h"
#include "imgwriter.h"
#include "ledger-domain.h"
#include "ledger-store.h"
#include "probe.h"
#include "qemutest.h"
#include "testutil.h"
#include "usage.h"

#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define UUID "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define NOW  1700000000

typedef struct {
    char *root;     /* the temp dir; layout scripts run here */
    char *inst;     /* root/inst: instances_path */
    char *base_dir; /* root/inst/_base */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->root = ic_test_mkdtemp();
    f->inst = g_build_filename(f->root, "inst", NULL);
    f->base_dir = g_build_filename(f->inst, "_base", NULL);
    g_assert_cmpint(g_mkdir_with_parents(f->base_dir, 0755), ==, 0);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    ic_test_rmtree(f->root);
    g_free(f->root);
    g_free(f->inst);
    g_free(f->base_dir);
}

/* Runs @script in the fixture's root, with $ROOT set to it. */
static void layout(Fixture *f, const char *script)
{
    g_autofree char *full = g_strdup_printf("ROOT='%s'\n%s", f->root, script);
    ic_qemu_sh(f->root, full);
}

static char *in_root(Fixture *f, const char *rel)
{
    return g_build_filename(f->root, rel, NULL);
}

static char *base_file(Fixture *f, const char *name)
{
    return g_build_filename(f->base_dir, name, NULL);
}

/* The instances walk over the fixture. */
static IcUsage *walk(Fixture *f)
{
    IcUsage *usage = ic_usage_new();
    const char *skip[] = {"_base", NULL};
    g_autoptr(GError) error = NULL;
    g_assert_true(
        ic_usage_add_instances_dir(usage, f->inst, f->base_dir, NULL, skip, "hosta", 0, &error));
    g_assert_no_error(error);
    return usage;
}

static gboolean walk_uses(const IcUsage *usage, Fixture *f, const char *name)
{
    g_autofree char *path = base_file(f, name);
    return ic_usage_lookup_path(usage, path) != NULL;
}

static gboolean notes_mention(const IcUsage *usage, const char *text)
{
    for (guint i = 0; i < usage->notes->len; i++) {
        if (strstr(g_ptr_array_index(usage->notes, i), text) != NULL)
            return TRUE;
    }
    return FALSE;
}

/* A domain XML with @count disks, each @source read as @format (NULL: no <driver>). */
static IcDomain *domain_with(const char *source, const char *format, guint count)
{
    g_autoptr(GString) xml =
        g_string_new("<domain type='kvm'><name>vm</name><uuid>" UUID "</uuid><devices>");
    for (guint i = 0; i < count; i++) {
        g_string_append(xml, "<disk type='file' device='disk'>");
        if (format != NULL)
            g_string_append_printf(xml, "<driver name='qemu' type='%s'/>", format);
        g_string_append_printf(xml, "<source file='%s'/><target dev='vd%u'/></disk>", source, i);
    }
    g_string_append(xml, "</devices></domain>");
    g_autoptr(GError) error = NULL;
    IcDomain *domain = NULL;
    g_assert_true(ic_domxml_parse(xml->str, xml->len, &domain, &error));
    g_assert_no_error(error);
    return domain;
}

/* What the hook records (and the libvirt witness counts) for that domain. */
static IcLedgerDomain *collect(const char *source, const char *format, guint count,
                               const char *base_dir, GPtrArray **ret_problems)
{
    g_autoptr(IcDomain) domain = domain_with(source, format, count);
    return ic_ledger_domain_collect(domain, base_dir, NOW, ret_problems);
}

static gboolean entry_uses(const IcLedgerDomain *entry, const char *path)
{
    return g_ptr_array_find_with_equal_func(entry->base_files, path, g_str_equal, NULL);
}

/* QEMU and imagecache name the same files for the chain of @path (probed). */
static void assert_qemu_agrees(Fixture *f, const char *path)
{
    g_autofree char *err = NULL;
    g_autoptr(JsonArray) qemu = ic_qemu_chain(f->root, path, NULL, &err);
    if (qemu == NULL)
        g_error("qemu-img info failed on '%s': %s", path, err);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) chain = NULL;
    g_assert_true(ic_probe_chain(path, &chain, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(chain->len + 1, ==, json_array_get_length(qemu));
    for (guint i = 0; i < chain->len; i++) {
        const char *theirs = ic_qemu_member_filename(qemu, i + 1);
        if (!ic_qemu_same_file(f->root, g_ptr_array_index(chain, i), theirs))
            g_error("member %u: imagecache '%s', QEMU '%s'", i + 1,
                    (const char *)g_ptr_array_index(chain, i), theirs);
    }
}

/* Both witnesses that read disks, the instances walk and the hook's collect, see
 * that @disk (a qcow2 overlay) uses base file @name, and neither is left unsure. */
static void assert_both_use(Fixture *f, const char *disk, const char *name)
{
    g_autoptr(IcUsage) usage = walk(f);
    g_assert_false(usage->incomplete);
    g_assert_true(walk_uses(usage, f, name));

    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry = collect(disk, "qcow2", 1, f->base_dir, &problems);
    g_assert_null(problems);
    g_autofree char *path = base_file(f, name);
    g_assert_true(entry_uses(entry, path));
}

/* Item 1: an overlay in inst/vm1 (a symlink to inst/deep/a) names
 * ../../_base/X; the kernel takes ".." after the symlink: inst/_base/X. */
static void test_dotdot_through_symlink(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/deep/a\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "ln -s deep/a inst/vm1\n"
              "qemu-img create -q -f qcow2 -F raw -b ../../_base/X inst/vm1/disk 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm1/disk");
    assert_qemu_agrees(f, disk);

    assert_both_use(f, disk, "X");
}

/* Item 2: the backing file is an operator's symlink outside _base pointing
 * into it (images/current.img -> _base/X): X is what QEMU opens. */
static void test_symlink_into_base(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p images inst/vm2\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "ln -s ../inst/_base/X images/current.img\n"
              "qemu-img create -q -f qcow2 -F raw -b \"$ROOT/images/current.img\" "
              "inst/vm2/disk 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm2/disk");
    assert_qemu_agrees(f, disk);

    assert_both_use(f, disk, "X");
}

/* Item 3: a qcow2 external data file in _base holds the whole disk's data. */
static void test_data_file(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm3\n"
              "qemu-img create -q -f qcow2 -o \"data_file=$ROOT/inst/_base/D,data_file_raw=on\" "
              "inst/vm3/disk 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm3/disk");
    g_autofree char *d = base_file(f, "D");

    /* QEMU names it, and cannot read the disk without it. */
    g_autoptr(JsonArray) qemu = ic_qemu_chain(f->root, disk, NULL, NULL);
    g_assert_nonnull(qemu);
    g_assert_cmpstr(ic_qemu_member_data_file(qemu, 0), ==, d);
    layout(f, "qemu-io -r -c 'read 0 512' inst/vm3/disk >/dev/null\n"
              "mv inst/_base/D D.away\n"
              "! qemu-io -r -c 'read 0 512' inst/vm3/disk >/dev/null 2>&1\n"
              "mv D.away inst/_base/D\n");

    assert_both_use(f, disk, "D");
}

/* Item 4: an instance dir that is a symlink into a volume that is not mounted
 * hides its disks: usage unknown, with a note naming it. */
static void test_dangling_instance_dir(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm-ok\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "qemu-img create -q -f qcow2 -F raw -b ../_base/X inst/vm-ok/disk 1M\n"
              "ln -s \"$ROOT/unmounted-volume/vm4\" inst/vm4\n");
    /* QEMU could not open that disk either: nobody can tell what it uses. */
    g_autofree char *disk = in_root(f, "inst/vm4/disk");
    g_assert_null(ic_qemu_chain(f->root, disk, NULL, NULL));

    g_autoptr(IcUsage) usage = walk(f);
    g_assert_true(walk_uses(usage, f, "X"));
    g_assert_true(usage->incomplete);
    g_assert_true(notes_mention(usage, "vm4"));
}

/* Item 5: the hook spells the base file one way (the overlay's absolute name
 * through the real path), the pass another (instances_path through a
 * symlink): a file released a minute ago must read as released a minute ago. */
static void test_last_used_any_spelling(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm5\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "qemu-img create -q -f qcow2 -F raw -b \"$ROOT/inst/_base/X\" inst/vm5/disk 1M\n"
              "ln -s inst link\n");
    g_autofree char *disk = in_root(f, "link/vm5/disk");
    assert_qemu_agrees(f, disk);
    g_autofree char *link_base = in_root(f, "link/_base");
    g_autofree char *ledger_dir = in_root(f, "ledger");

    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry = collect(disk, "qcow2", 1, link_base, &problems);
    g_assert_null(problems);
    g_assert_cmpuint(entry->base_files->len, ==, 1);
    g_assert_true(ic_ledger_record_domain(ledger_dir, "hosta", entry, NOW, &error));
    g_assert_no_error(error);
    g_assert_true(ic_ledger_drop_domain(ledger_dir, "hosta", UUID, NOW + 60, &error));
    g_assert_no_error(error);

    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(ledger_dir, NOW + 120, 86400, &ledger, &error));
    g_assert_no_error(error);
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "hosta", link_base, usage);
    g_autofree char *x = g_build_filename(link_base, "X", NULL);
    g_assert_cmpint(ic_usage_last_used(usage, x), ==, NOW + 60);
    g_autofree char *real_x = base_file(f, "X");
    g_assert_cmpint(ic_usage_last_used(usage, real_x), ==, NOW + 60);
}

/* Item 6a: a raw disk (<driver type='raw'>) whose guest wrote a qcow2 header
 * naming nbd:… into it. QEMU reads it as raw: no backing file; imagecache
 * must not parse it (before: every removal on every host blocked). */
static void test_declared_raw_xml(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm6\n"
              "qemu-img create -q -f qcow2 -u -F raw -b nbd:localhost:10809 inst/vm6/guest 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm6/guest");
    g_autoptr(JsonArray) qemu = ic_qemu_chain(f->root, disk, "raw", NULL);
    g_assert_nonnull(qemu);
    g_assert_cmpuint(json_array_get_length(qemu), ==, 1);
    g_assert_cmpstr(ic_qemu_member_format(qemu, 0), ==, "raw");

    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry = collect(disk, "raw", 1, f->base_dir, &problems);
    g_assert_null(problems);
    g_assert_cmpuint(entry->base_files->len, ==, 0);
}

/* Item 6b: backing_fmt=raw in the overlay: the base is raw whatever its
 * first bytes look like. */
static void test_declared_raw_backing(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm6b\n"
              "qemu-img create -q -f qcow2 -u -F raw -b nbd:localhost:10809 inst/_base/R 1M\n"
              "qemu-img create -q -f qcow2 -u -F raw -b ../_base/R inst/vm6b/disk 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm6b/disk");
    g_autoptr(JsonArray) qemu = ic_qemu_chain(f->root, disk, NULL, NULL);
    g_assert_nonnull(qemu);
    g_assert_cmpuint(json_array_get_length(qemu), ==, 2);
    g_assert_cmpstr(ic_qemu_member_format(qemu, 1), ==, "raw");

    g_autoptr(IcUsage) usage = walk(f);
    g_assert_false(usage->incomplete);
    g_assert_true(walk_uses(usage, f, "R"));
}

/* Item 6c: Nova's disk.info declares the disk raw: the instances walk must
 * not parse the guest's bytes either. */
static void test_declared_raw_disk_info(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm6c\n"
              "qemu-img create -q -f qcow2 -u -F raw -b nbd:localhost:10809 inst/vm6c/disk 1M\n"
              "printf '{\"%s/inst/vm6c/disk\": \"raw\"}' \"$ROOT\" > inst/vm6c/disk.info\n");
    g_autofree char *disk = in_root(f, "inst/vm6c/disk");
    g_autoptr(JsonArray) qemu = ic_qemu_chain(f->root, disk, "raw", NULL);
    g_assert_nonnull(qemu);
    g_assert_cmpuint(json_array_get_length(qemu), ==, 1);

    g_autoptr(IcUsage) usage = walk(f);
    g_assert_false(usage->incomplete);
}

/* A disk.info that cannot be read leaves the formats unknown: the walk must
 * not guess (probing could parse a raw disk), so it blocks removal, saying so. */
static void test_disk_info_damaged(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm6f\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "qemu-img create -q -f qcow2 -F raw -b ../_base/X inst/vm6f/disk 1M\n"
              "printf '{\"%s/inst/vm6f/disk\": qcow2}' \"$ROOT\" > inst/vm6f/disk.info\n");
    g_autoptr(IcUsage) usage = walk(f);
    g_assert_true(usage->incomplete);
    g_assert_true(notes_mention(usage, "vm6f/disk.info"));
}

/* Did anything open @fifo (not O_PATH) since the watch was set? */
static gboolean fifo_opened(int inotify_fd)
{
    char buf[4096];
    ssize_t n = read(inotify_fd, buf, sizeof(buf));
    return n > 0;
}

/* Item 6d: a name in an image header is data, never an instruction to open
 * a device, FIFO or socket: its type is checked before any open. */
static void test_fifo_never_opened(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm6d inst/vm6e\n"
              "mkfifo fifo\n"
              /* A raw disk (disk.info) whose guest wrote a header naming the FIFO. */
              "qemu-img create -q -f qcow2 -u -F raw -b \"$ROOT/fifo\" inst/vm6e/disk 1M\n"
              "printf '{\"%s/inst/vm6e/disk\": \"raw\"}' \"$ROOT\" > inst/vm6e/disk.info\n");
    /* An overlay with no backing format (qemu-img no longer writes one): probed. */
    g_autofree char *fifo = in_root(f, "fifo");
    g_autofree char *overlay = in_root(f, "inst/vm6d/disk");
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, fifo, NULL, &error));
    g_assert_no_error(error);

    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    g_assert_cmpint(in, >=, 0);
    g_assert_cmpint(inotify_add_watch(in, fifo, IN_OPEN), >=, 0);

    g_autoptr(IcUsage) usage = walk(f);
    g_assert_false(fifo_opened(in));
    /* The probed overlay's chain is unknown (a FIFO is no image): noted. */
    g_assert_true(usage->incomplete);
    g_assert_true(notes_mention(usage, "vm6d"));
    g_assert_false(notes_mention(usage, "vm6e"));

    g_autoptr(GPtrArray) problems = NULL;
    IcLedgerDomain *entry = collect(overlay, "qcow2", 1, f->base_dir, &problems);
    g_clear_pointer(&entry, ic_ledger_domain_free);
    g_assert_nonnull(problems);
    g_assert_false(fifo_opened(in));
    close(in);
}

/* Item 7: a domain with more disks than the limit is recorded with the disks
 * read, and the rest reported loudly; before, the domain went unrecorded. */
static void test_many_disks(Fixture *f, gconstpointer data)
{
    if (!ic_qemu_have())
        return;
    layout(f, "mkdir -p inst/vm7\n"
              "qemu-img create -q -f raw inst/_base/X 1M\n"
              "qemu-img create -q -f qcow2 -F raw -b ../_base/X inst/vm7/disk 1M\n");
    g_autofree char *disk = in_root(f, "inst/vm7/disk");
    assert_qemu_agrees(f, disk);

    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry =
        collect(disk, "qcow2", IC_DOMXML_MAX_DISKS + 44, f->base_dir, &problems);
    g_autofree char *x = base_file(f, "X");
    g_assert_true(entry_uses(entry, x));
    g_assert_nonnull(problems);
    g_assert_cmpuint(problems->len, ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(problems, 0), "44 disks past the limit"));
}

/* Nova's disk.info, read without json-glib (the hook's library links GLib alone). */
typedef struct {
    const char *name;
    const char *json;
    const char *disk; /* a disk name to look up, NULL: the parse must fail */
    const char *format;
    guint count;
} DiskInfoCase;

static const DiskInfoCase disk_info_cases[] = {
    {"nova",
     "{\"/var/lib/nova/instances/u/disk\": \"qcow2\", "
     "\"/var/lib/nova/instances/u/disk.config\": \"raw\"}\n",
     "disk.config", "raw", 2},
    {"empty", " { } ", "disk", NULL, 0},
    {"escapes", "{\"\\/i\\/u\\/disk\\u002eeph0\": \"r\\u0061w\"}", "disk.eph0", "raw", 1},
    {"same-twice", "{\"/a/disk\": \"raw\", \"/b/disk\": \"raw\"}", "disk", "raw", 1},
    {"two-formats", "{\"/a/disk\": \"raw\", \"/b/disk\": \"qcow2\"}", NULL, NULL, 0},
    {"array", "[\"disk\"]", NULL, NULL, 0},
    {"number", "{\"/a/disk\": 1}", NULL, NULL, 0},
    {"trailing-comma", "{\"/a/disk\": \"raw\",}", NULL, NULL, 0},
    {"trailing-garbage", "{\"/a/disk\": \"raw\"} x", NULL, NULL, 0},
    {"unterminated", "{\"/a/disk\": \"raw\"", NULL, NULL, 0},
    {"nul-escape", "{\"/a/disk\\u0000\": \"raw\"}", NULL, NULL, 0},
    {"control-char", "{\"/a/di\nsk\": \"raw\"}", NULL, NULL, 0},
};

static void test_disk_info(gconstpointer data)
{
    const DiskInfoCase *c = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(GHashTable) formats = NULL;
    gboolean ok = ic_usage_parse_disk_info(c->json, strlen(c->json), &formats, &error);
    if (c->disk == NULL) {
        g_assert_false(ok);
        g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
        return;
    }
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_cmpuint(g_hash_table_size(formats), ==, c->count);
    g_assert_cmpstr(g_hash_table_lookup(formats, c->disk), ==, c->format);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_summary("Issue 12: each reproduced difference from QEMU's answer, made with qemu-img");
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/imagecache/qemu/1-dotdot-through-symlinked-instance-dir", test_dotdot_through_symlink);
    ADD("/imagecache/qemu/2-symlink-outside-base-into-it", test_symlink_into_base);
    ADD("/imagecache/qemu/3-external-data-file", test_data_file);
    ADD("/imagecache/qemu/4-dangling-symlinked-instance-dir", test_dangling_instance_dir);
    ADD("/imagecache/qemu/5-last-used-any-spelling", test_last_used_any_spelling);
    ADD("/imagecache/qemu/6a-declared-raw-domain-xml", test_declared_raw_xml);
    ADD("/imagecache/qemu/6b-declared-raw-backing-format", test_declared_raw_backing);
    ADD("/imagecache/qemu/6c-declared-raw-disk-info", test_declared_raw_disk_info);
    ADD("/imagecache/qemu/6c-disk-info-damaged", test_disk_info_damaged);
    ADD("/imagecache/qemu/6d-fifo-never-opened", test_fifo_never_opened);
    ADD("/imagecache/qemu/7-many-disks", test_many_disks);
#undef ADD
    for (guint i = 0; i < G_N_ELEMENTS(disk_info_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/qemu/disk-info/%s", disk_info_cases[i].name);
        g_test_add_data_func(path, &disk_info_cases[i], test_disk_info);
    }
    return g_test_run();
}
