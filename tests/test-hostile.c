/* test-hostile.c — a hostile base dir: entries that change between scan and removal,
 * links where sidecars should be, hard links. Each rule is "keep the file and report",
 * never follow out of the base dir, never delete anything outside the grammar. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "imgwriter.h"
#include "pass.h"
#include "probe.h"
#include "remove.h"
#include "scan.h"
#include "testutil.h"
#include "usage.h"

#define FP  "cccccccccccccccccccccccccccccccccccccccc"
#define NOW ((gint64)1700000000)

static IcRemoveExpect expect_for(const char *path)
{
    GStatBuf st;
    g_assert_cmpint(g_lstat(path, &st), ==, 0);
    return (IcRemoveExpect){.dev = st.st_dev, .ino = st.st_ino, .min_age = 0};
}

static int open_base(const IcTestTree *tree)
{
    g_autoptr(GError) error = NULL;
    int dirfd = -1;
    g_assert_true(ic_remove_open_base_dir(tree->base_dir, &dirfd, &error));
    return dirfd;
}

/* Replaced after the scan (a new download under the same name): kept. */
static void test_replaced_between_scan_and_removal(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = ic_test_write_file(tree->base_dir, FP, "old", -1);
    IcRemoveExpect expect = expect_for(path);
    g_autofree char *fresh = ic_test_write_file(tree->base_dir, FP ".new", "new", -1);
    g_assert_cmpint(g_rename(fresh, path), ==, 0);

    int dirfd = open_base(tree);
    g_assert_false(ic_remove_base_file(dirfd, FP, &expect, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CHANGED);
    g_assert_true(ic_test_exists(path));
    close(dirfd);
}

/* Gone after the scan: an error for that file, nothing else touched. */
static void test_vanished_between_scan_and_removal(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = ic_test_write_file(tree->base_dir, FP, "x", -1);
    IcRemoveExpect expect = expect_for(path);
    g_assert_cmpint(g_unlink(path), ==, 0);
    int dirfd = open_base(tree);
    g_assert_false(ic_remove_base_file(dirfd, FP, &expect, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_NOT_FOUND);
    close(dirfd);
}

/* Swapped for a symlink to a file outside the base dir: neither the link
 * nor its target is removed. */
static void test_became_symlink(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = ic_test_write_file(tree->base_dir, FP, "x", -1);
    g_autofree char *outside = ic_test_write_file(tree->root, "precious", "keep me", -1);
    IcRemoveExpect expect = expect_for(path);
    g_assert_cmpint(g_unlink(path), ==, 0);
    g_assert_cmpint(symlink(outside, path), ==, 0);

    int dirfd = open_base(tree);
    g_assert_false(ic_remove_base_file(dirfd, FP, &expect, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    g_assert_true(ic_test_exists(path));
    g_assert_true(ic_test_exists(outside));
    close(dirfd);
}

/* A symlink where a sidecar should be: the image is kept, the link's target
 * untouched. */
static void test_sidecar_symlink(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = ic_test_write_file(tree->base_dir, FP "_10", "x", -1);
    g_autofree char *outside = ic_test_write_file(tree->root, "passwd", "root:x:0:0", -1);
    g_autofree char *sidecar = g_build_filename(tree->base_dir, FP "_10.sha1", NULL);
    g_assert_cmpint(symlink(outside, sidecar), ==, 0);

    int dirfd = open_base(tree);
    g_assert_false(ic_remove_base_file(dirfd, FP "_10", NULL, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    g_assert_true(ic_test_exists(path));
    g_assert_true(ic_test_exists(sidecar));
    g_assert_true(ic_test_exists(outside));
    close(dirfd);
}

/* Names outside the grammar are refused even when asked directly. */
static void test_refuses_names_outside_grammar(IcTestTree *tree, gconstpointer data)
{
    static const char *const names[] = {
        "../precious", "ephemeral_0_20_None", "00000001", FP ".sha1", ".", ""};
    g_autofree char *outside = ic_test_write_file(tree->root, "precious", "keep me", -1);
    int dirfd = open_base(tree);
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(GError) error = NULL;
        g_assert_false(ic_remove_base_file(dirfd, names[i], NULL, NOW, &error));
        g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    }
    g_assert_true(ic_test_exists(outside));
    close(dirfd);
}

/* A hard link: removing the unused name leaves the used one's data intact. */
static void test_hard_link(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *used = ic_test_write_file(tree->base_dir, FP, "shared data", -1);
    g_autofree char *unused = g_build_filename(tree->base_dir, FP "_sm", NULL);
    g_assert_cmpint(link(used, unused), ==, 0);
    ic_test_set_mtime(used, NOW - 30 * 86400);

    g_autoptr(IcConfig) config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    g_assert_true(ic_config_finish(config, &error));
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_path_user(usage, used, NULL, "vm1", config->host, TRUE, IC_WITNESS_STATIC);
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    /* The other name is the same file (same inode): it is in use too. */
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    const IcImageRow *row = ic_report_lookup(report, FP "_sm");
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_true(ic_test_exists(unused));
    g_autofree char *contents = NULL;
    g_assert_true(g_file_get_contents(used, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "shared data");

    /* Once the used name is gone from every witness, both names age together. */
    g_clear_pointer(&report, ic_report_free);
    g_assert_true(ic_pass_run(config, NULL, &options, NOW + 2 * 86400, &report, &error));
    g_assert_cmpuint(report->totals.removed, ==, 2);
}

/* The overlays name their base file through a symlinked path (Nova wrote
 * /var/lib/nova/instances/_base/…, the config names the real directory): the
 * file is matched by identity and kept. */
static void test_base_file_named_through_symlink(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *base = ic_test_write_file(tree->base_dir, FP, "data", -1);
    ic_test_set_mtime(base, NOW - 30 * 86400);
    g_autofree char *link = g_strconcat(tree->root, "-link", NULL);
    g_assert_cmpint(symlink(tree->root, link), ==, 0);
    g_autofree char *backing = g_build_filename(link, "_base", FP, NULL);
    g_autofree char *disk = g_build_filename(tree->root, "instance-1", "disk", NULL);
    g_autofree char *disk_dir = g_path_get_dirname(disk);
    g_assert_cmpint(g_mkdir(disk_dir, 0755), ==, 0);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, backing, "raw", &error));

    g_autoptr(IcConfig) config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    g_assert_true(ic_config_finish(config, &error));
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    const IcImageRow *row = ic_report_lookup(report, FP);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_true(ic_test_exists(base));
    g_assert_cmpint(g_unlink(link), ==, 0);
}

static IcReport *run_tree(const IcTestTree *tree)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    g_assert_true(ic_config_finish(config, &error));
    IcReport *report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    return report;
}

/* An instance dir that is a symlink (moved to other storage) is followed. */
static void test_symlinked_instance_dir(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *base = ic_test_write_file(tree->base_dir, FP, "data", -1);
    ic_test_set_mtime(base, NOW - 30 * 86400);
    g_autofree char *elsewhere = g_strconcat(tree->root, "-elsewhere", NULL);
    g_autofree char *disk = g_build_filename(elsewhere, "vm1", "disk", NULL);
    g_autofree char *disk_dir = g_path_get_dirname(disk);
    g_assert_cmpint(g_mkdir_with_parents(disk_dir, 0755), ==, 0);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, base, "raw", &error));
    g_autofree char *target = g_build_filename(elsewhere, "vm1", NULL);
    g_autofree char *link = g_build_filename(tree->root, "vm1", NULL);
    g_assert_cmpint(symlink(target, link), ==, 0);

    g_autoptr(IcReport) report = run_tree(tree);
    g_assert_cmpint(ic_report_lookup(report, FP)->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_true(ic_test_exists(base));
    ic_test_rmtree(elsewhere);
}

/* An instance dir that cannot be read (here a symlink loop) might hide a
 * user of any base file: nothing is removed, and the report says why. */
static void test_unreadable_instance_dir(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = ic_test_write_file(tree->base_dir, FP, "data", -1);
    ic_test_set_mtime(base, NOW - 30 * 86400);
    g_autofree char *loop = g_build_filename(tree->root, "vm-loop", NULL);
    g_assert_cmpint(symlink(loop, loop), ==, 0);

    g_autoptr(IcReport) report = run_tree(tree);
    g_assert_cmpstr(ic_reason_to_string(ic_report_lookup(report, FP)->decision.reason), ==,
                    "usage_unknown");
    g_assert_true(ic_test_exists(base));
    g_assert_cmpuint(report->notes->len, ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(report->notes, 0), "vm-loop"));
}

/* The walk tells base files from the pass's scan instead of asking the kernel
 * again (issue 15); it must still find every user: a base file spelled as the
 * scan listed it, one reached through a hard link whose name is outside the
 * grammar (the inode is a scanned file's), and one replaced after the scan. */
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void add_overlay(const IcTestTree *tree, const char *instance, const char *backing)
{
    g_autofree char *dir = g_build_filename(tree->root, instance, NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_autofree char *disk = g_build_filename(dir, "disk", NULL);
    g_autofree char *backing_path = g_build_filename(tree->base_dir, backing, NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, backing_path, "raw", &error));
    g_assert_no_error(error);
}

static guint local_users(const IcUsage *usage, const IcTestTree *tree, const IcScan *scan,
                         const char *name)
{
    const IcBaseFile *file = ic_scan_lookup(scan, name);
    g_assert_nonnull(file);
    g_autoptr(IcUsers) users =
        ic_usage_users_of(usage, tree->base_dir, name, NULL, file->dev, file->ino);
    return users->local;
}

static void test_walk_told_by_scan(IcTestTree *tree, gconstpointer data)
{
    g_free(ic_test_write_file(tree->base_dir, FP_A, "image a", -1));
    g_autofree char *b = ic_test_write_file(tree->base_dir, FP_B, "image b", -1);
    g_autofree char *c = ic_test_write_file(tree->base_dir, FP, "image c", -1);
    g_autofree char *alias = g_build_filename(tree->base_dir, "alias", NULL);
    g_assert_cmpint(link(b, alias), ==, 0);
    add_overlay(tree, "vm-a", FP_A);
    add_overlay(tree, "vm-b", "alias");
    add_overlay(tree, "vm-c", FP);

    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    /* Re-downloaded after the scan: a new inode under the scanned name. */
    g_assert_cmpint(unlink(c), ==, 0);
    g_free(ic_test_write_file(tree->base_dir, FP, "image c, again", -1));

    const char *skip[] = {"_base", NULL};
    for (int with_scan = 0; with_scan <= 1; with_scan++) {
        const IcScan *known = with_scan ? scan : NULL;
        g_autoptr(IcUsage) usage = ic_usage_new();
        g_assert_true(ic_usage_add_instances_dir(usage, tree->root, tree->base_dir, known, skip,
                                                 "testhost", 0, &error));
        g_assert_no_error(error);
        ic_usage_index_identities(usage, known);
        g_assert_false(usage->incomplete);
        g_assert_cmpuint(local_users(usage, tree, scan, FP_A), ==, 1);
        g_assert_cmpuint(local_users(usage, tree, scan, FP_B), ==, 1);
        g_assert_cmpuint(local_users(usage, tree, scan, FP), ==, 1);
    }
}

/* One base file named by several spellings (symlinked dirs), each with its own
 * users: every spelling's users keep it, not only the first one indexed. */
static void test_identity_every_spelling(IcTestTree *tree, gconstpointer data)
{
    g_free(ic_test_write_file(tree->base_dir, FP_A, "image a", -1));
    g_autoptr(IcUsage) usage = ic_usage_new();
    const char *vms[] = {"vm-one", "vm-two", "vm-three"};
    for (guint i = 0; i < G_N_ELEMENTS(vms); i++) {
        g_autofree char *via = g_strdup_printf("%s/via%u", tree->root, i);
        g_assert_cmpint(symlink(tree->base_dir, via), ==, 0);
        g_autofree char *path = g_build_filename(via, FP_A, NULL);
        ic_usage_add_path_user(usage, path, NULL, vms[i], "testhost", TRUE, IC_WITNESS_STATIC);
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    ic_usage_index_identities(usage, scan);
    g_assert_cmpuint(local_users(usage, tree, scan, FP_A), ==, G_N_ELEMENTS(vms));
}

/* A file elsewhere that only shares a scanned base file's name is no base
 * file: its own header is read, so what it leads to is still found. */
static void test_scan_name_elsewhere(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *a = g_build_filename(tree->base_dir, FP_A, NULL);
    g_assert_true(ic_test_write_qcow2(a, 3, 1 << 20, NULL, NULL, &error));
    g_free(ic_test_write_file(tree->base_dir, FP_B, "image b", -1));
    g_autofree char *b = g_build_filename(tree->base_dir, FP_B, NULL);
    g_autofree char *other_dir = g_build_filename(tree->root, "other", NULL);
    g_assert_cmpint(g_mkdir_with_parents(other_dir, 0755), ==, 0);
    g_autofree char *other = g_build_filename(other_dir, FP_A, NULL);
    g_assert_true(ic_test_write_qcow2(other, 3, 1 << 20, b, "raw", &error));
    g_autofree char *disk1 = g_build_filename(tree->root, "disk1", NULL);
    g_autofree char *disk2 = g_build_filename(tree->root, "disk2", NULL);
    g_assert_true(ic_test_write_qcow2(disk1, 3, 1 << 20, a, "qcow2", &error));
    g_assert_true(ic_test_write_qcow2(disk2, 3, 1 << 20, other, "qcow2", &error));

    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_autoptr(IcProbeCache) cache = ic_probe_cache_new_for_scan(scan);
    g_autoptr(GPtrArray) files1 = NULL, files2 = NULL;
    /* disk1 first: the cache then holds the scanned FP_A's header. */
    g_assert_true(ic_probe_disk_files(AT_FDCWD, disk1, disk1, NULL, cache, &files1, &error));
    g_assert_true(ic_probe_disk_files(AT_FDCWD, disk2, disk2, NULL, cache, &files2, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(files2->len, ==, 3);
    g_assert_cmpstr(((IcDiskFile *)g_ptr_array_index(files2, 2))->path, ==, b);
}

#define ADD(path, func)                                                                            \
    g_test_add(path, IcTestTree, NULL, ic_test_tree_setup, func, ic_test_tree_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    ADD("/imagecache/hostile/replaced_between_scan_and_removal",
        test_replaced_between_scan_and_removal);
    ADD("/imagecache/hostile/vanished_between_scan_and_removal",
        test_vanished_between_scan_and_removal);
    ADD("/imagecache/hostile/became_symlink", test_became_symlink);
    ADD("/imagecache/hostile/sidecar_symlink", test_sidecar_symlink);
    ADD("/imagecache/hostile/refuses_names_outside_grammar", test_refuses_names_outside_grammar);
    ADD("/imagecache/hostile/hard_link", test_hard_link);
    ADD("/imagecache/hostile/walk_told_by_scan", test_walk_told_by_scan);
    ADD("/imagecache/hostile/identity_every_spelling", test_identity_every_spelling);
    ADD("/imagecache/hostile/scan_name_elsewhere", test_scan_name_elsewhere);
    ADD("/imagecache/hostile/symlinked_instance_dir", test_symlinked_instance_dir);
    ADD("/imagecache/hostile/unreadable_instance_dir", test_unreadable_instance_dir);
    ADD("/imagecache/hostile/base_file_named_through_symlink",
        test_base_file_named_through_symlink);
    return g_test_run();
}
