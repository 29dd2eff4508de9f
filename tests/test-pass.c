/* The pass with the rules beyond Nova, on real files: pinning, quarantine, swap and
 * ephemeral files, last-use ages from the ledger, and disk pressure on a real
 * size-limited tmpfs. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <gio/gio.h>

#include "imgwriter.h"
#include "ledger-store.h"
#include "pass.h"
#include "remove.h"
#include "testutil.h"

#define NOW  ((gint64)1700000000)
#define HOUR ((gint64)3600)
#define DAY  ((gint64)86400)
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static IcConfig *tree_config(const IcTestTree *tree, const char *extra)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=testhost\n%s",
                                            tree->root, extra ? extra : "");
    g_autofree char *path = ic_test_write_file(tree->root, "imagecache.conf", text, -1);
    IcConfig *config = ic_config_new();
    g_assert_true(ic_config_load_file(config, path, &error));
    g_assert_no_error(error);
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    return config;
}

static IcReport *run_pass(const IcConfig *config, IcPassMode mode, gint64 now)
{
    g_autoptr(GError) error = NULL;
    IcReport *report = NULL;
    IcPassOptions options = {.mode = mode};
    g_assert_true(ic_pass_run(config, NULL, &options, now, &report, &error));
    g_assert_no_error(error);
    return report;
}

static char *make_base(const IcTestTree *tree, const char *name, const char *data, gint64 mtime)
{
    char *path = ic_test_write_file(tree->base_dir, name, data, -1);
    ic_test_set_mtime(path, mtime);
    return path;
}

static const char *reason_of(const IcReport *report, const char *name)
{
    const IcImageRow *row = ic_report_lookup(report, name);
    g_assert_nonnull(row);
    return ic_reason_to_string(row->decision.reason);
}

/* An instance disk created on a host that mounts the share elsewhere names its
 * base file with that host's path, which does not exist here: the file is
 * still in use. A backing file that cannot be found and is in no base dir
 * might be any base file: nothing is removed. */
static void test_backing_in_other_mount(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config =
        tree_config(tree, "remove_unused_original_minimum_age_seconds=0\n");
    g_autofree char *a = make_base(tree, FP_A, "a", NOW - 10 * DAY);
    g_autofree char *b = make_base(tree, FP_B, "b", NOW - 10 * DAY);
    g_autofree char *disk = g_build_filename(tree->root, "inst-1", "disk", NULL);
    g_assert_cmpint(g_mkdir_with_parents(tree->root, 0755), ==, 0);
    g_autofree char *dir = g_path_get_dirname(disk);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, "/nonexistent-mount/novaB/_base/" FP_A,
                                      "raw", &error));
    g_assert_no_error(error);
    g_autofree char *disk2 = g_build_filename(tree->root, "inst-2", "disk", NULL);
    g_autofree char *dir2 = g_path_get_dirname(disk2);
    g_assert_cmpint(g_mkdir_with_parents(dir2, 0755), ==, 0);
    g_assert_true(
        ic_test_write_qcow2(disk2, 3, 1 << 20, "/nonexistent-mount/images/gone", "raw", &error));
    g_assert_no_error(error);

    g_autoptr(IcReport) blocked = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_cmpstr(reason_of(blocked, FP_A), ==, "in_use_local");
    g_assert_cmpstr(reason_of(blocked, FP_B), ==, "usage_unknown");
    g_assert_true(ic_test_exists(b));

    g_assert_cmpint(g_unlink(disk2), ==, 0);
    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_cmpstr(reason_of(report, FP_A), ==, "in_use_local");
    g_assert_true(ic_test_exists(a));
    g_assert_false(ic_test_exists(b));
}

static void test_pinned(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree, "pinned_images=" FP_A ";golden-*\n");
    g_autofree char *a = make_base(tree, FP_A, "a", NOW - 10 * DAY);
    g_autofree char *b = make_base(tree, FP_B, "b", NOW - 10 * DAY);

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_cmpstr(reason_of(report, FP_A), ==, "pinned");
    g_assert_cmpstr(ic_report_lookup(report, FP_A)->pinned_by, ==, FP_A);
    g_assert_cmpstr(reason_of(report, FP_B), ==, "unused");
    g_assert_true(ic_test_exists(a));
    g_assert_false(ic_test_exists(b));
    g_assert_cmpuint(report->totals.pinned, ==, 1);
}

static void test_quarantine(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config =
        tree_config(tree, "checksum_base_images=true\nquarantine_corrupt=true\n"
                          "quarantine_retention_seconds=100\n");
    g_autofree char *a = make_base(tree, FP_A, "rotten", NOW - 10 * DAY);
    g_free(ic_test_write_file(tree->base_dir, FP_A ".sha1",
                              "0000000000000000000000000000000000000000", -1));

    g_autoptr(IcReport) first = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_cmpint(ic_report_lookup(first, FP_A)->action, ==, IC_ACTION_QUARANTINED);
    g_assert_cmpuint(first->totals.quarantined, ==, 1);
    g_autofree char *moved = g_build_filename(tree->base_dir, IC_QUARANTINE_DIR, FP_A, NULL);
    g_autofree char *moved_sidecar =
        g_build_filename(tree->base_dir, IC_QUARANTINE_DIR, FP_A ".sha1", NULL);
    g_assert_false(ic_test_exists(a));
    g_assert_true(ic_test_exists(moved));
    g_assert_true(ic_test_exists(moved_sidecar));

    /* The next pass reports it in quarantine and leaves it until the retention passes;
     * the quarantine clock is the move (ctime), so "now" is the real time here. */
    gint64 moved_at = g_get_real_time() / G_USEC_PER_SEC;
    g_autoptr(IcReport) second = run_pass(config, IC_PASS_RUN, moved_at);
    const IcImageRow *row = ic_report_lookup(second, IC_QUARANTINE_DIR "/" FP_A);
    g_assert_nonnull(row);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_QUARANTINED);
    g_assert_true(ic_test_exists(moved));

    g_autoptr(IcReport) third = run_pass(config, IC_PASS_RUN, moved_at + 200);
    g_assert_cmpstr(reason_of(third, IC_QUARANTINE_DIR "/" FP_A), ==, "quarantine_expired");
    g_assert_false(ic_test_exists(moved));
    g_assert_false(ic_test_exists(moved_sidecar));
}

static void test_quarantine_keeps_in_use(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config =
        tree_config(tree, "checksum_base_images=true\nquarantine_corrupt=true\n");
    g_autofree char *a = make_base(tree, FP_A, "rotten", NOW - 10 * DAY);
    g_free(ic_test_write_file(tree->base_dir, FP_A ".sha1",
                              "0000000000000000000000000000000000000000", -1));
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_path_user(usage, a, NULL, "vm1", "testhost", TRUE, IC_WITNESS_STATIC);
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    g_assert_cmpint(ic_report_lookup(report, FP_A)->decision.verdict, ==, IC_VERDICT_CORRUPT);
    g_assert_cmpint(ic_report_lookup(report, FP_A)->action, ==, IC_ACTION_TOUCHED);
    g_assert_true(ic_test_exists(a));
}

/* Quarantine moves a file away only when nothing could need it: not while a
 * witness is unread, not while a process holds it open, not on the word of a
 * sidecar that is no digest at all; and quarantine never expires a file a
 * domain still names. */
static void test_quarantine_only_when_sure(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config =
        tree_config(tree, "checksum_base_images=true\nquarantine_corrupt=true\n"
                          "quarantine_retention_seconds=0\n");
    const char *zeros = "0000000000000000000000000000000000000000";
    g_autofree char *a = make_base(tree, FP_A, "rotten", NOW - 10 * DAY);
    g_free(ic_test_write_file(tree->base_dir, FP_A ".sha1", zeros, -1));
    g_autofree char *b = make_base(tree, FP_B, "fine", NOW - 10 * DAY);
    g_free(ic_test_write_file(tree->base_dir, FP_B ".sha1", "deadbeef", -1));

    /* held open by this very process */
    int fd = open(a, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_autoptr(IcReport) held = run_pass(config, IC_PASS_RUN, NOW);
    close(fd);
    g_assert_cmpint(ic_report_lookup(held, FP_A)->action, ==, IC_ACTION_NONE);
    g_assert_true(ic_test_exists(a));
    /* a sidecar that is no SHA-1: reported corrupt (the reference suite's rule), never moved */
    g_assert_cmpint(ic_report_lookup(held, FP_B)->decision.verdict, ==, IC_VERDICT_CORRUPT);
    g_assert_cmpint(ic_report_lookup(held, FP_B)->action, ==, IC_ACTION_NONE);
    g_assert_true(ic_test_exists(b));

    /* a witness that cannot be read */
    g_autoptr(IcUsage) unsure = ic_usage_new();
    ic_usage_add_note(unsure, IC_NOTE_INSTANCE_UNREADABLE, "a disk could not be read");
    g_autoptr(IcReport) incomplete = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    g_assert_true(ic_pass_run(config, unsure, &options, NOW, &incomplete, &error));
    g_assert_cmpint(ic_report_lookup(incomplete, FP_A)->action, ==, IC_ACTION_NONE);
    g_assert_true(ic_test_exists(a));

    /* sure: moved; then a domain names it in the base dir: it stays in quarantine */
    g_autoptr(IcReport) moved = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_cmpint(ic_report_lookup(moved, FP_A)->action, ==, IC_ACTION_QUARANTINED);
    g_autoptr(IcUsage) named = ic_usage_new();
    ic_usage_add_path_user(named, a, NULL, "vm1", "testhost", TRUE, IC_WITNESS_STATIC);
    g_autoptr(IcReport) kept = NULL;
    gint64 later = g_get_real_time() / G_USEC_PER_SEC + 10;
    g_assert_true(ic_pass_run(config, named, &options, later, &kept, &error));
    const IcImageRow *row = ic_report_lookup(kept, IC_QUARANTINE_DIR "/" FP_A);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_QUARANTINED);
    g_autofree char *moved_path = g_build_filename(tree->base_dir, IC_QUARANTINE_DIR, FP_A, NULL);
    g_assert_true(ic_test_exists(moved_path));
}

static void test_swap_and_ephemeral(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *swap = make_base(tree, "swap_512", "s", NOW - 2 * DAY);
    g_autofree char *eph = make_base(tree, "ephemeral_20_40d1d2c", "e", NOW - 2 * DAY);

    g_autoptr(IcConfig) off = tree_config(tree, NULL);
    g_autoptr(IcReport) ignored = run_pass(off, IC_PASS_RUN, NOW);
    g_assert_cmpuint(ignored->rows->len, ==, 0);
    g_assert_true(ic_test_exists(swap));
    g_assert_true(ic_test_exists(eph));

    g_autoptr(IcConfig) on = tree_config(tree, "collect_swap_and_ephemeral=true\n");
    g_autoptr(IcReport) young = run_pass(on, IC_PASS_RUN, NOW - DAY - HOUR);
    g_assert_cmpstr(reason_of(young, "swap_512"), ==, "too_young"); /* originals' 24 h */
    g_autoptr(IcReport) collected = run_pass(on, IC_PASS_RUN, NOW);
    g_assert_cmpuint(collected->totals.removed, ==, 2);
    g_assert_false(ic_test_exists(swap));
    g_assert_false(ic_test_exists(eph));
}

/* A killed sidecar writer's temp file is removed once old; a fresh one may
 * belong to a live writer and stays. */
static void test_stale_sidecar_temps(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autofree char *old = make_base(tree, FP_A ".info.tmp.0000abcd", "{\"sh", NOW - 2 * HOUR);
    g_autofree char *fresh = make_base(tree, FP_A ".info.tmp.0000abce", "{\"sh", NOW - 60);
    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_false(ic_test_exists(old));
    g_assert_true(ic_test_exists(fresh));
    g_assert_cmpuint(report->rows->len, ==, 0);
}

/* Downloaded last year, used until an hour ago: not old. */
static void test_last_used_from_ledger(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autofree char *a = make_base(tree, FP_A, "a", NOW - 365 * DAY);
    g_autoptr(IcLedgerDomain) domain =
        ic_ledger_domain_new("11111111-2222-3333-4444-555555555555", "vm1");
    g_ptr_array_add(domain->base_files, g_strdup(a));
    g_assert_true(
        ic_ledger_record_domain(config->ledger_dir, "testhost", domain, NOW - DAY, &error));
    g_assert_true(
        ic_ledger_drop_domain(config->ledger_dir, "testhost", domain->uuid, NOW - HOUR, &error));
    g_assert_no_error(error);

    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(config->ledger_dir, NOW, DAY, &ledger, &error));
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "testhost", tree->base_dir, usage);
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    const IcImageRow *row = ic_report_lookup(report, FP_A);
    g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "too_young");
    g_assert_cmpint(row->decision.age, ==, HOUR);
    g_assert_cmpint(row->last_used, ==, NOW - HOUR);
    g_assert_true(ic_test_exists(a));
}

/* A long-running caller's change cache spares the first read's parsing, never
 * the removal's re-read under the lock: a cache knows a file by inode, size
 * and times, which a rewrite within a coarse filesystem's second can keep. The
 * cache's counters are the first read's after a pass that removed a file: a
 * re-read through it would have found nothing changed and counted 0. */
static void test_removal_rereads_every_host(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autofree char *unused = make_base(tree, FP_A, "a", NOW - 365 * DAY);
    g_autofree char *used = make_base(tree, FP_B, "b", NOW - 365 * DAY);
    const char *hosts[] = {"h1", "h2", "h3"};
    for (guint i = 0; i < G_N_ELEMENTS(hosts); i++) {
        g_autofree char *uuid = g_strdup_printf("11111111-2222-3333-4444-55555555555%u", i);
        g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(uuid, "vm");
        g_ptr_array_add(domain->base_files, g_strdup(used));
        g_assert_true(
            ic_ledger_record_domain(config->ledger_dir, hosts[i], domain, NOW - HOUR, &error));
        g_assert_no_error(error);
    }
    g_autoptr(IcLedgerCache) cache = ic_ledger_cache_new();
    IcPassOptions options = {.mode = IC_PASS_RUN, .ledger_cache = cache};
    g_autoptr(IcReport) report = NULL;
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    g_assert_false(ic_test_exists(unused)); /* the removal ran, so the re-read did */
    g_assert_true(ic_test_exists(used));
    guint files = 0;
    guint64 bytes = 0;
    ic_ledger_cache_last_read(cache, &files, &bytes);
    g_assert_cmpuint(files, ==, G_N_ELEMENTS(hosts));
}

/* Enough instances that the walk is shared between threads: every user is
 * counted once, whichever thread read its disk; one thread finds the same. */
static void test_many_instances(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    const guint instances = 4100, bases = 5;
    char *base_paths[5];
    for (guint b = 0; b < bases; b++) {
        g_autofree char *name = g_strdup_printf("%040u", b);
        base_paths[b] = make_base(tree, name, "data", NOW - 10 * DAY);
    }
    for (guint i = 0; i < instances; i++) {
        g_autofree char *disk = g_strdup_printf("%s/instance-%05u/disk", tree->root, i);
        g_autofree char *dir = g_path_get_dirname(disk);
        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, base_paths[i % bases], "raw", &error));
    }
    const char *const skip[] = {"_base", NULL};
    /* One thread per core, and the one thread the collectd plugin asks for. */
    for (guint max_threads = 0; max_threads <= 1; max_threads++) {
        g_autoptr(IcUsage) usage = ic_usage_new();
        g_assert_true(ic_usage_add_instances_dir(usage, tree->root, tree->base_dir, NULL, skip,
                                                 "testhost", max_threads, &error));
        g_assert_no_error(error);
        for (guint b = 0; b < bases; b++) {
            const IcUsers *users = ic_usage_lookup_path(usage, base_paths[b]);
            g_assert_nonnull(users);
            g_assert_cmpuint(users->local, ==, instances / bases);
            g_assert_cmpuint(users->len, ==, instances / bases);
        }
    }
    for (guint b = 0; b < bases; b++)
        g_free(base_paths[b]);
}

/* A 4 MiB tmpfs filled past the high watermark: eviction in LRU order down to
 * the low mark, and no further. */
static void test_disk_pressure_tmpfs(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *mnt = g_build_filename(tree->root, "small", NULL);
    g_assert_cmpint(g_mkdir(mnt, 0755), ==, 0);
    if (mount("imagecache-test", mnt, "tmpfs", 0, "size=4m") != 0) {
        g_test_skip("cannot mount a tmpfs here (needs root)");
        return;
    }
    IcTestTree small = {.root = mnt, .base_dir = g_build_filename(mnt, "_base", NULL)};
    g_assert_cmpint(g_mkdir(small.base_dir, 0755), ==, 0);
    g_autoptr(IcConfig) config =
        tree_config(&small, "disk_high_watermark_percent=70\ndisk_low_watermark_percent=40\n"
                            "minimum_age_seconds=600\n");

    /* Six 512 KiB originals, unused for 1 to 6 hours: too young for the 24 h rule. */
    g_autofree char *blob = g_malloc0(512 * 1024);
    memset(blob, 'x', 512 * 1024);
    char names[6][41];
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    for (int i = 0; i < 6; i++) {
        g_snprintf(names[i], sizeof(names[i]), "%040d", i);
        g_autofree char *path = g_build_filename(small.base_dir, names[i], NULL);
        g_assert_true(g_file_set_contents(path, blob, 512 * 1024, NULL));
        ic_test_set_mtime(path, now - (6 - i) * HOUR); /* names[0] is the least recent */
    }

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, now);
    g_assert_true(report->disk_known);
    g_assert_true(report->disk_pressure);
    /* 3 MiB of 4 MiB (75 %) -> at most 40 % (1.6 MiB): the three oldest go. */
    for (int i = 0; i < 6; i++) {
        g_autofree char *path = g_build_filename(small.base_dir, names[i], NULL);
        const IcImageRow *row = ic_report_lookup(report, names[i]);
        g_test_message("%s: %s %s", names[i], ic_reason_to_string(row->decision.reason),
                       ic_action_to_string(row->action));
        if (i < 3) {
            g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "disk_pressure");
            g_assert_false(ic_test_exists(path));
        } else {
            g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "too_young");
            g_assert_true(ic_test_exists(path));
        }
    }
    g_autoptr(IcReport) after = run_pass(config, IC_PASS_RUN, now);
    g_assert_false(after->disk_pressure);
    g_assert_cmpuint(after->totals.removed, ==, 0);

    g_free(small.base_dir);
    g_assert_cmpint(umount(mnt), ==, 0);
}

/* The checksum step over several files in one pass (issue 15: the pass hashes them
 * through ic_checksum_verify_many): each file gets its own result, the events come
 * in the rows' order, a corrupt file is kept and reported, a missing sidecar is
 * written, a recent one is trusted without hashing. */
static void test_checksum_many(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config =
        tree_config(tree, "checksum_base_images=true\nchecksum_interval_seconds=3600\n");
    const char *zeros = "0000000000000000000000000000000000000000";
    static const struct {
        const char *name, *data;
        enum { RIGHT, WRONG, NONE, RECENT, DAMAGED } sidecar;
        IcChecksumState state;
    } files[] = {
        {"1111111111111111111111111111111111111111", "one", RIGHT, IC_CHECKSUM_OK},
        {"2222222222222222222222222222222222222222", "two", WRONG, IC_CHECKSUM_MISMATCH},
        {"3333333333333333333333333333333333333333", "three", NONE, IC_CHECKSUM_NO_SIDECAR},
        {"4444444444444444444444444444444444444444", "four", RECENT, IC_CHECKSUM_RECENT},
        {"5555555555555555555555555555555555555555", "five", DAMAGED, IC_CHECKSUM_ERROR},
        {"6666666666666666666666666666666666666666", "six", WRONG, IC_CHECKSUM_MISMATCH},
        {"7777777777777777777777777777777777777777", "seven", RIGHT, IC_CHECKSUM_OK},
    };
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        /* Old and unused, so removable but for the checksum; the one without a
         * sidecar young, so that the sidecar the pass writes stays to be seen. */
        gint64 mtime = files[i].sidecar == NONE ? NOW - 60 : NOW - 10 * DAY;
        g_free(make_base(tree, files[i].name, files[i].data, mtime));
        g_autofree char *sha1 = g_compute_checksum_for_string(G_CHECKSUM_SHA1, files[i].data, -1);
        g_autofree char *sha1_name = g_strconcat(files[i].name, ".sha1", NULL);
        g_autofree char *info_name = g_strconcat(files[i].name, ".info", NULL);
        g_autofree char *info = g_strdup_printf(
            "{\"sha1\": \"%s\", \"sha1-timestamp\": %" G_GINT64_FORMAT "}", sha1, NOW - 60);
        if (files[i].sidecar == RIGHT)
            g_free(ic_test_write_file(tree->base_dir, sha1_name, sha1, -1));
        else if (files[i].sidecar == WRONG)
            g_free(ic_test_write_file(tree->base_dir, sha1_name, zeros, -1));
        else if (files[i].sidecar == RECENT)
            g_free(ic_test_write_file(tree->base_dir, info_name, info, -1));
        else if (files[i].sidecar == DAMAGED)
            g_free(ic_test_write_file(tree->base_dir, sha1_name, "one\ntwo", -1));
    }

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NOW);
    g_autoptr(GString) expected_events = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        const IcImageRow *row = ic_report_lookup(report, files[i].name);
        g_assert_nonnull(row);
        g_assert_cmpstr(ic_checksum_state_to_string(row->checksum.state), ==,
                        ic_checksum_state_to_string(files[i].state));
        g_autofree char *sha1 = g_compute_checksum_for_string(G_CHECKSUM_SHA1, files[i].data, -1);
        g_autofree char *path = g_build_filename(tree->base_dir, files[i].name, NULL);
        if (files[i].state == IC_CHECKSUM_RECENT)
            g_assert_null(row->checksum.actual); /* trusted, not hashed */
        else if (files[i].state != IC_CHECKSUM_ERROR)
            g_assert_cmpstr(row->checksum.actual, ==, sha1);
        if (files[i].state == IC_CHECKSUM_MISMATCH) {
            /* corrupt: never removed, though unused and old, and reported */
            g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_CORRUPT);
            g_assert_true(ic_test_exists(path));
            g_string_append_printf(expected_events, "%s;", files[i].name);
        } else if (files[i].state == IC_CHECKSUM_ERROR) {
            g_string_append_printf(expected_events, "%s;", files[i].name);
        }
        if (files[i].state == IC_CHECKSUM_NO_SIDECAR) {
            g_autofree char *written = g_strconcat(path, ".info", NULL);
            g_assert_true(ic_test_exists(written));
        }
    }
    g_assert_cmpuint(report->totals.corrupt, ==, 2);
    /* One event per corrupt or unverifiable file, in the rows' (scan) order. */
    g_autoptr(GString) events = g_string_new(NULL);
    for (guint i = 0; i < report->events->len; i++) {
        const IcEvent *event = g_ptr_array_index(report->events, i);
        if (event->file != NULL && strstr(event->message, "sha1") != NULL)
            g_string_append_printf(events, "%s;", event->file);
        else if (event->file != NULL && strstr(event->message, "checksum not verified") != NULL)
            g_string_append_printf(events, "%s;", event->file);
    }
    g_assert_cmpstr(events->str, ==, expected_events->str);
}

/* The rate limit is the total of the pass's hashing threads, not each one's
 * (issue 15): four files of 256 KiB at 1 MiB/s take a second however many
 * threads hash them; with a limit per thread, two threads would take half. */
static void test_checksum_rate_is_total(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree, "checksum_base_images=true\n");
    const char *names[] = {FP_A, FP_B, "cccccccccccccccccccccccccccccccccccccccc",
                           "dddddddddddddddddddddddddddddddddddddddd"};
    g_autofree char *data_block = g_malloc0(256 * 1024);
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *path =
            ic_test_write_file(tree->base_dir, names[i], data_block, 256 * 1024);
        ic_test_set_mtime(path, NOW - HOUR);
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_REPORT, .checksum_rate_limit = 1024 * 1024};
    gint64 start = g_get_monotonic_time();
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    double seconds = (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC;
    for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        g_assert_cmpint(ic_report_lookup(report, names[i])->checksum.state, ==,
                        IC_CHECKSUM_NO_SIDECAR);
    /* A lower bound only: a loaded machine can make it slower, never faster. */
    g_assert_cmpfloat(seconds, >=, 0.9);
}

/* The pass hashes its files at once, not one after another (issue 15): run by
 * imagecachectl under tests/fault-read.c's rendezvous, the first read of each of
 * two base files waits until both are being read; hashed one after another, the
 * first waits 10 s, fails, and its checksum is an error. */
static void test_checksum_parallel(IcTestTree *tree, gconstpointer data)
{
    const char *ctl = g_getenv("IMAGECACHE_CTL");
    const char *shim = g_getenv("IMAGECACHE_FAULT_READ");
    if (ctl == NULL || shim == NULL) {
        g_test_skip("IMAGECACHE_CTL or IMAGECACHE_FAULT_READ is not set: run through meson test");
        return;
    }
    if (g_get_num_processors() < 2) {
        g_test_skip("one core: the pass hashes one file at a time");
        return;
    }
    g_autofree char *node = ic_test_write_file(tree->root, "node.xml", "<node>\n</node>\n", -1);
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=testhost\n"
                                            "checksum_base_images=true\nlibvirt_uri=test://%s\n",
                                            tree->root, node);
    g_autofree char *config = ic_test_write_file(tree->root, "parallel.conf", text, -1);
    const char *names[] = {FP_A, FP_B};
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *sha1 = g_compute_checksum_for_string(G_CHECKSUM_SHA1, names[i], -1);
        g_autofree char *sidecar = g_strconcat(names[i], ".sha1", NULL);
        g_free(make_base(tree, names[i], names[i], NOW - 10 * DAY));
        g_free(ic_test_write_file(tree->base_dir, sidecar, sha1, -1));
    }

    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE);
    g_autofree char *where = g_strconcat(tree->base_dir, "/", NULL);
    g_subprocess_launcher_setenv(launcher, "LD_PRELOAD", shim, TRUE);
    /* Under scripts/sanitize.sh the shim comes before ASan's runtime (as in test-stale). */
    const char *asan_before = g_getenv("ASAN_OPTIONS");
    g_autofree char *asan =
        g_strdup_printf("%s:verify_asan_link_order=0", asan_before ? asan_before : "");
    g_subprocess_launcher_setenv(launcher, "ASAN_OPTIONS", asan, TRUE);
    g_subprocess_launcher_setenv(launcher, "IC_RENDEZVOUS_PATH", where, TRUE);
    g_subprocess_launcher_setenv(launcher, "IC_RENDEZVOUS_FILES", "2", TRUE);
    g_autoptr(GSubprocess) child = g_subprocess_launcher_spawn(launcher, &error, ctl, "--config",
                                                               config, "report", "--json", NULL);
    g_assert_no_error(error);
    g_autofree char *out = NULL;
    g_assert_true(g_subprocess_communicate_utf8(child, NULL, NULL, &out, NULL, &error));
    g_assert_no_error(error);
    /* Both verified: neither read failed at the rendezvous. */
    g_assert_null(strstr(out, "\"checksum\" : \"error\""));
    const char *ok = "\"checksum\" : \"ok\"";
    const char *first = strstr(out, ok);
    g_assert_nonnull(first);
    g_assert_nonnull(strstr(first + 1, ok));
    g_assert_true(g_subprocess_get_successful(child));
}

/* A report as JSON, without what differs between two passes over the same
 * tree: the time the pass took and how full the filesystem is now. */
static char *report_json_without_timing(IcReport *report)
{
    report->duration_seconds = 0;
    report->disk_used_bytes = 0;
    report->disk_total_bytes = 0;
    return ic_report_to_json(report);
}

/* The report streamed as `report --json` writes it, its rows formatted on
 * @threads threads. */
static char *report_json_threads(const IcReport *report, guint threads)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    g_assert_nonnull(out);
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_report_write_json(report, out, threads, &error));
    g_assert_no_error(error);
    g_assert_cmpint(fclose(out), ==, 0);
    char *copy = g_strndup(text, len);
    free(text);
    return copy;
}

/* Issue 15: a large report's rows are decided by several threads (one per core,
 * each a share of the rows), the collectd plugin's (walk_threads 1) by one. The
 * reports are the same to the byte: every row's users, verdict, image id, pin
 * and checksum, the events in row order, the notes. 1,100 files with users
 * local, remote, by fingerprint and by image, pinned, corrupt, unverifiable,
 * young and old, and users of files that are gone. */
static void test_decide_threads(IcTestTree *tree, gconstpointer data)
{
    const guint n_files = 1100;
    g_autoptr(IcConfig) config = tree_config(
        tree,
        "checksum_base_images=true\npinned_images=image-7*\nremove_unused_base_images=true\n");
    g_autoptr(IcUsage) usage = ic_usage_new();
    for (guint i = 0; i < n_files; i++) {
        g_autofree char *image_id = g_strdup_printf("image-%u", i);
        g_autofree char *name = ic_fingerprint_of_image_id(image_id);
        g_autofree char *path =
            make_base(tree, name, image_id, i % 5 ? NOW - 10 * DAY : NOW - HOUR);
        g_autofree char *sidecar = g_strconcat(name, ".sha1", NULL);
        if (i % 17 == 0) /* corrupt */
            g_free(ic_test_write_file(tree->base_dir, sidecar, FP_B, -1));
        else if (i % 19 == 0) /* unverifiable */
            g_free(ic_test_write_file(tree->base_dir, sidecar, "one\ntwo", -1));
        g_autofree char *vm = g_strdup_printf("vm%u", i % 40);
        if (i % 3 == 0)
            ic_usage_add_path_user(usage, path, NULL, vm, "testhost", TRUE, IC_WITNESS_STATIC);
        if (i % 7 == 0)
            ic_usage_add_path_user(usage, path, NULL, vm, "other", FALSE, IC_WITNESS_STATIC);
        if (i % 11 == 0)
            ic_usage_add_fingerprint_user(usage, name, NULL, "fp-vm", "testhost", TRUE,
                                          IC_WITNESS_STATIC);
        if (i % 13 == 0)
            ic_usage_add_image_user(usage, image_id, NULL, "image-vm", "testhost", TRUE,
                                    IC_WITNESS_STATIC);
        if (i % 29 == 0) {
            g_autofree char *gone = g_strdup_printf("%s/%040u", tree->base_dir, i);
            ic_usage_add_path_user(usage, gone, NULL, vm, "testhost", TRUE, IC_WITNESS_STATIC);
        }
    }

    g_autofree char *expected = NULL;
    g_autoptr(IcReport) last = NULL;
    for (guint threads = 1; threads <= 3; threads++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(IcReport) report = NULL;
        /* 1: the plugin's one thread; 2: up to two; 3: one per core */
        IcPassOptions options = {.mode = IC_PASS_DRY_RUN, .walk_threads = threads % 3};
        g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
        g_assert_no_error(error);
        g_autofree char *json = report_json_without_timing(report);
        g_clear_pointer(&last, ic_report_free);
        last = g_steal_pointer(&report);
        if (expected == NULL) {
            /* The tree has all it should: otherwise two empty reports agree. */
            g_assert_cmpuint(last->rows->len, ==, n_files + n_files / 29 + 1);
            g_assert_cmpuint(last->totals.active, >, 0);
            g_assert_cmpuint(last->totals.removable, >, 0);
            g_assert_cmpuint(last->totals.too_young, >, 0);
            g_assert_cmpuint(last->totals.corrupt, >, 0);
            g_assert_cmpuint(last->totals.pinned, >, 0);
            g_assert_cmpuint(last->totals.absent, >, 0);
            g_assert_cmpuint(last->events->len, >, n_files / 17);
            expected = g_steal_pointer(&json);
            continue;
        }
        g_assert_cmpstr(json, ==, expected);
    }
    /* Its rows formatted on several threads (`report --json` at walk_threads
     * other than 1), chunk by chunk: the same bytes as on one. */
    for (guint threads = 0; threads <= 4; threads++) {
        g_autofree char *json = report_json_threads(last, threads);
        g_assert_cmpstr(json, ==, expected);
    }
}

/* The warnings of absent files come in name order, whatever order the
 * usage's tables iterate in: that order depends on how many threads built the
 * usage (the walk merges its shares), and a report's events must not. Names
 * by path and by fingerprint interleave. */
static void test_absent_in_name_order(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    const guint n_paths = 300, n_fingerprints = 100;
    g_autoptr(IcConfig) config = tree_config(tree, "remove_unused_base_images=true\n");
    g_autoptr(IcUsage) usage = ic_usage_new();
    for (guint i = 0; i < n_paths + n_fingerprints; i++) {
        /* Inserted in an order unlike the names' (i * 7919 spreads them). */
        g_autofree char *name = g_strdup_printf("%040u", (i * 7919u) % 100003u);
        if (i < n_paths) {
            g_autofree char *path = g_build_filename(tree->base_dir, name, NULL);
            ic_usage_add_path_user(usage, path, NULL, "vm", "testhost", TRUE, IC_WITNESS_STATIC);
        } else {
            ic_usage_add_fingerprint_user(usage, name, NULL, "vm", "testhost", TRUE,
                                          IC_WITNESS_STATIC);
        }
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_DRY_RUN};
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(report->totals.absent, ==, n_paths + n_fingerprints);
    const char *previous = "";
    guint warnings = 0;
    for (guint i = 0; i < report->events->len; i++) {
        const IcEvent *event = g_ptr_array_index(report->events, i);
        if (strstr(event->message, "an absent base file is in use") == NULL)
            continue;
        g_assert_cmpstr(previous, <, event->file);
        previous = event->file;
        warnings++;
    }
    g_assert_cmpuint(warnings, ==, n_paths + n_fingerprints);
}

/* One absent file a witness names two ways ("<base>/X" and "<base>//X", or by
 * path and by fingerprint) is one row, counted once, with the users of both
 * (red team 7: it was two rows, and totals.absent 2). */
static void test_absent_two_spellings(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autofree char *plain = g_build_filename(tree->base_dir, FP_A, NULL);
    g_autofree char *doubled = g_strdup_printf("%s//%s", tree->base_dir, FP_A);
    ic_usage_add_path_user(usage, plain, NULL, "vm1", "testhost", TRUE, IC_WITNESS_LIBVIRT);
    ic_usage_add_path_user(usage, doubled, NULL, "vm2", "testhost", TRUE, IC_WITNESS_LIBVIRT);
    ic_usage_add_fingerprint_user(usage, FP_A, NULL, "vm3", "testhost", TRUE, IC_WITNESS_LEDGER);
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_REPORT};
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(report->rows->len, ==, 1);
    g_assert_cmpuint(report->totals.absent, ==, 1);
    const IcImageRow *row = g_ptr_array_index(report->rows, 0);
    g_assert_cmpstr(row->name, ==, FP_A);
    g_assert_cmpuint(row->users->len, >=, 2);
}

/* Issue 15: a preview (report, dry run) hands what it would free at its end,
 * the first read's usage and the scan, to a caller that asks (imagecachectl
 * leaves them to its exit), and reports the same as without; a run frees them
 * (its removal re-reads the usage) and hands nothing. */
static void test_keep(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    g_autoptr(IcConfig) config = tree_config(tree, "remove_unused_base_images=true\n");
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autofree char *used = make_base(tree, FP_A, "a", NOW - 10 * DAY);
    g_free(make_base(tree, FP_B, "b", NOW - 10 * DAY));
    ic_usage_add_path_user(usage, used, NULL, "vm", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autofree char *expected = NULL;
    for (int keep = 0; keep <= 1; keep++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(IcReport) report = NULL;
        g_autoptr(IcPassKept) kept = NULL;
        IcPassOptions options = {.mode = IC_PASS_REPORT, .keep = keep ? &kept : NULL};
        g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
        g_assert_no_error(error);
        g_assert_true(keep ? kept != NULL : kept == NULL);
        g_autofree char *json = report_json_without_timing(report);
        if (expected == NULL)
            expected = g_steal_pointer(&json);
        else
            g_assert_cmpstr(json, ==, expected);
    }
    g_assert_nonnull(strstr(expected, "\"would_remove\""));

    /* A run: nothing kept, the unused file removed. */
    g_autoptr(IcPassKept) kept = NULL;
    g_autoptr(IcReport) report = NULL;
    g_autoptr(GError) error = NULL;
    IcPassOptions run = {.mode = IC_PASS_RUN, .keep = &kept};
    g_assert_true(ic_pass_run(config, usage, &run, NOW, &report, &error));
    g_assert_no_error(error);
    g_assert_null(kept);
    g_assert_cmpuint(report->totals.removed, ==, 1);
}

#define ADD(path, func)                                                                            \
    g_test_add(path, IcTestTree, NULL, ic_test_tree_setup, func, ic_test_tree_teardown)

/* Issue 11 item 2: the WHY column names every user, and only them (row->users is a
 * GPtrArray, not NULL-terminated: joining it as a strv read past its end). */
static void test_table_names_users(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autofree char *a = make_base(tree, FP_A, "a", NOW - 10 * DAY);
    g_autoptr(IcUsage) usage = ic_usage_new();
    for (int i = 1; i <= 5; i++) {
        g_autofree char *user = g_strdup_printf("vm%d", i);
        ic_usage_add_path_user(usage, a, NULL, user, "testhost", TRUE, IC_WITNESS_STATIC);
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_REPORT};
    g_assert_true(ic_pass_run(config, usage, &options, NOW, &report, &error));
    g_autofree char *table = ic_report_to_table(report);
    g_auto(GStrv) lines = g_strsplit(table, "\n", -1);
    gboolean found = FALSE;
    for (char **line = lines; *line != NULL; line++) {
        if (!g_str_has_prefix(*line, FP_A))
            continue;
        g_assert_true(g_str_has_suffix(*line, "in use by vm1, vm2, vm3, vm4, vm5"));
        found = TRUE;
    }
    g_assert_true(found);
}

/* Issue 11 item 6: a file or a symlink named .quarantine in _base does not stop
 * the pass (anyone who can write _base could switch imagecache off): it is
 * noted, quarantine is left alone, removal goes on. */
static void test_quarantine_not_a_dir(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config =
        tree_config(tree, "checksum_base_images=true\nquarantine_corrupt=true\n");
    g_autofree char *elsewhere = g_build_filename(tree->root, "elsewhere", NULL);
    g_assert_cmpint(g_mkdir(elsewhere, 0700), ==, 0);
    g_autofree char *q = g_build_filename(tree->base_dir, IC_QUARANTINE_DIR, NULL);
    if (data == NULL)
        g_free(ic_test_write_file(tree->base_dir, IC_QUARANTINE_DIR, "not a dir", -1));
    else
        g_assert_cmpint(symlink(elsewhere, q), ==, 0);
    g_autofree char *a = make_base(tree, FP_A, "a", NOW - 10 * DAY);
    g_autofree char *b = make_base(tree, FP_B, "rotten", NOW - 10 * DAY);
    g_free(ic_test_write_file(tree->base_dir, FP_B ".sha1",
                              "0000000000000000000000000000000000000000", -1));

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NOW);
    g_assert_false(ic_test_exists(a)); /* removal goes on */
    g_assert_true(ic_test_exists(b));  /* the corrupt one stays where it is */
    g_assert_cmpint(ic_report_lookup(report, FP_B)->action, ==, IC_ACTION_NONE);
    g_assert_cmpuint(report->totals.remove_failed, ==, 0);
    gboolean noted = FALSE;
    for (guint i = 0; i < report->notes->len; i++)
        noted |= strstr(g_ptr_array_index(report->notes, i), "not a directory") != NULL;
    g_assert_true(noted);
    g_autofree char *moved = g_build_filename(elsewhere, FP_B, NULL);
    g_assert_false(ic_test_exists(moved));
    GDir *dir = g_dir_open(elsewhere, 0, NULL);
    g_assert_null(g_dir_read_name(dir));
    g_dir_close(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    ADD("/imagecache/pass/pinned", test_pinned);
    ADD("/imagecache/pass/backing_in_other_mount", test_backing_in_other_mount);
    ADD("/imagecache/pass/quarantine", test_quarantine);
    ADD("/imagecache/pass/quarantine_keeps_in_use", test_quarantine_keeps_in_use);
    ADD("/imagecache/pass/quarantine_only_when_sure", test_quarantine_only_when_sure);
    ADD("/imagecache/pass/swap_and_ephemeral", test_swap_and_ephemeral);
    ADD("/imagecache/pass/last_used_from_ledger", test_last_used_from_ledger);
    ADD("/imagecache/pass/removal_rereads_every_host", test_removal_rereads_every_host);
    ADD("/imagecache/pass/stale_sidecar_temps", test_stale_sidecar_temps);
    ADD("/imagecache/pass/many_instances", test_many_instances);
    ADD("/imagecache/pass/disk_pressure_tmpfs", test_disk_pressure_tmpfs);
    ADD("/imagecache/pass/table_names_users", test_table_names_users);
    ADD("/imagecache/pass/checksum_many", test_checksum_many);
    ADD("/imagecache/pass/checksum_parallel", test_checksum_parallel);
    ADD("/imagecache/pass/checksum_rate_is_total", test_checksum_rate_is_total);
    ADD("/imagecache/pass/decide_threads", test_decide_threads);
    ADD("/imagecache/pass/absent_in_name_order", test_absent_in_name_order);
    ADD("/imagecache/pass/absent_two_spellings", test_absent_two_spellings);
    ADD("/imagecache/pass/keep", test_keep);
    g_test_add("/imagecache/pass/quarantine_not_a_dir/file", IcTestTree, NULL, ic_test_tree_setup,
               test_quarantine_not_a_dir, ic_test_tree_teardown);
    g_test_add("/imagecache/pass/quarantine_not_a_dir/symlink", IcTestTree, "symlink",
               ic_test_tree_setup, test_quarantine_not_a_dir, ic_test_tree_teardown);
    return g_test_run();
}
