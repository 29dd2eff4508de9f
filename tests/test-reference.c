/* Counterparts of the reference suite (Nova's test_imagecache.py, 2012): same
 * case names, same behaviour, on real files with an injected clock. The three
 * checksum cases live in test-checksum.c. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "imgwriter.h"
#include "pass.h"
#include "remove.h"
#include "scan.h"
#include "testutil.h"
#include "usage.h"

#define NOW ((gint64)1700000000)

static const char *const listing[] = {
    "00000001",
    "ephemeral_0_20_None",
    "e97222e91fc4241f49a7f520d1dcf446751129b3_sm",
    "e09c675c2d1cfac32dae3c2d83689c8c94bc693b_sm",
    "e97222e91fc4241f49a7f520d1dcf446751129b3",
    "17d1b00b81642842e514494a78e804e9a511637c",
    "17d1b00b81642842e514494a78e804e9a511637c_5368709120",
    "17d1b00b81642842e514494a78e804e9a511637c_10737418240",
    "00000004",
    NULL,
};

static void make_files(const char *dir, const char *const *names)
{
    for (; *names != NULL; names++)
        g_free(ic_test_write_file(dir, *names, "data", -1));
}

static IcConfig *tree_config(const IcTestTree *tree)
{
    g_autoptr(GError) error = NULL;
    IcConfig *config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    config->host = g_strdup("testhost");
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    return config;
}

static IcReport *run_pass(const IcConfig *config, IcUsage *usage, IcPassMode mode, gint64 now)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcUsage) empty = NULL;
    IcReport *report = NULL;
    IcPassOptions options = {.mode = mode};
    if (usage == NULL)
        usage = empty = ic_usage_new();
    g_assert_true(ic_pass_run(config, usage, &options, now, &report, &error));
    g_assert_no_error(error);
    return report;
}

/* The names of the rows with @verdict, sorted, as one string. */
static char *rows_with_verdict(const IcReport *report, IcVerdict verdict)
{
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (row->decision.verdict != verdict)
            continue;
        if (names->len > 0)
            g_string_append_c(names, ' ');
        g_string_append(names, row->name);
    }
    return g_string_free(names, FALSE);
}

/* ---- _list_base_images ---- */

static void test_list_base_images(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    make_files(tree->base_dir, listing);

    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_assert_no_error(error);
    g_assert_true(scan->exists);
    g_assert_cmpuint(scan->files->len, ==, 6);
    g_assert_nonnull(ic_scan_lookup(scan, "e97222e91fc4241f49a7f520d1dcf446751129b3"));
    g_assert_nonnull(ic_scan_lookup(scan, "17d1b00b81642842e514494a78e804e9a511637c_10737418240"));
    g_assert_null(ic_scan_lookup(scan, "00000004"));
    g_assert_cmpuint(scan->ignored, ==, 3);
    g_assert_cmpstr(scan->base_dir, ==, tree->base_dir);

    guint originals = 0;
    for (guint i = 0; i < scan->files->len; i++) {
        const IcBaseFile *file = g_ptr_array_index(scan->files, i);
        if (file->kind == IC_KIND_ORIGINAL)
            originals++;
    }
    g_assert_cmpuint(originals, ==, 2);
    g_assert_cmpint(ic_scan_lookup(scan, "17d1b00b81642842e514494a78e804e9a511637c")->kind, ==,
                    IC_KIND_ORIGINAL);
    g_assert_cmpint(
        ic_scan_lookup(scan, "17d1b00b81642842e514494a78e804e9a511637c_10737418240")->kind, ==,
        IC_KIND_RESIZED);
}

/* ---- _list_running_instances ---- */

static void test_list_running_instances(void)
{
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_image_user(usage, "image-1", NULL, "inst-1", "testhost", TRUE, IC_WITNESS_STATIC);
    ic_usage_add_image_user(usage, "image-2", NULL, "inst-2", "testhost", TRUE, IC_WITNESS_STATIC);
    ic_usage_add_image_user(usage, "image-2", NULL, "inst-3", "remotehost", FALSE,
                            IC_WITNESS_STATIC);

    g_assert_cmpuint(g_hash_table_size(usage->by_fingerprint), ==, 2);
    const IcUsers *one = ic_usage_lookup_image(usage, "image-1");
    g_assert_nonnull(one);
    g_assert_cmpuint(one->local, ==, 1);
    g_assert_cmpuint(one->remote, ==, 0);
    g_autofree char *one_text = ic_test_users_text(one);
    g_assert_cmpstr(one_text, ==, "inst-1");

    const IcUsers *two = ic_usage_lookup_image(usage, "image-2");
    g_assert_nonnull(two);
    g_assert_cmpuint(two->local, ==, 1);
    g_assert_cmpuint(two->remote, ==, 1);
    g_autofree char *two_text = ic_test_users_text(two);
    g_assert_cmpstr(two_text, ==, "inst-2,inst-3@remotehost");

    /* image_popularity: every user, wherever it runs */
    g_assert_cmpuint(one->local + one->remote, ==, 1);
    g_assert_cmpuint(two->local + two->remote, ==, 2);
}

/* ---- _list_backing_images ---- */

typedef struct {
    const char *backing;          /* base file every instance disk is backed by */
    const char *const *instances; /* instance dirs with a disk */
} BackingCase;

static const char *const three_instances[] = {"instance-00000001", "instance-00000002",
                                              "instance-00000003", NULL};
static const char *const hamster_instance[] = {"banana-42-hamster", NULL};

static const BackingCase backing_small = {"e97222e91fc4241f49a7f520d1dcf446751129b3_sm",
                                          three_instances};
static const BackingCase backing_resized = {"e97222e91fc4241f49a7f520d1dcf446751129b3_10737418240",
                                            three_instances};
static const BackingCase backing_instancename = {"e97222e91fc4241f49a7f520d1dcf446751129b3_sm",
                                                 hamster_instance};

static void test_list_backing_images(IcTestTree *tree, gconstpointer data)
{
    const BackingCase *tc = data;
    g_autoptr(GError) error = NULL;
    g_autofree char *found = ic_test_write_file(tree->base_dir, tc->backing, "data", -1);
    ic_test_set_mtime(found, 1000000);

    for (const char *const *inst = tc->instances; *inst != NULL; inst++) {
        g_autofree char *dir = g_build_filename(tree->root, *inst, NULL);
        g_autofree char *disk = g_build_filename(dir, "disk", NULL);
        g_autofree char *backing = g_build_filename("..", "_base", tc->backing, NULL);
        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, backing, "raw", &error));
        g_assert_no_error(error);
    }

    g_autoptr(IcUsage) usage = ic_usage_new();
    const char *const skip[] = {"_base", NULL};
    g_assert_true(ic_usage_add_instances_dir(usage, tree->root, tree->base_dir, NULL, skip,
                                             "testhost", 0, &error));
    g_assert_no_error(error);

    /* inuse_images == [found] */
    g_assert_cmpuint(g_hash_table_size(usage->by_path), ==, 1);
    const IcUsers *users = ic_usage_lookup_path(usage, found);
    g_assert_nonnull(users);
    g_assert_cmpuint(users->local, ==, g_strv_length((char **)tc->instances));
    g_assert_false(usage->incomplete);

    /* and nothing stays unexplained: the file is active, not removable */
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcReport) report = run_pass(config, NULL, IC_PASS_REPORT, NOW);
    g_assert_cmpuint(report->rows->len, ==, 1);
    const IcImageRow *row = g_ptr_array_index(report->rows, 0);
    g_assert_cmpstr(row->name, ==, tc->backing);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_cmpuint(report->totals.removable, ==, 0);
}

/* ---- _find_base_file ---- */

typedef struct {
    const char *const *listing;
    const char *fingerprint;
    const char *expected; /* names, space-separated, in order */
    const char *kinds;    /* one letter per name: o(riginal) s(mall) r(esized) */
} FindCase;

#define FP "968dd6cc49e01aaa044ed11c0cce733e0fa44a6a"
static const char *const find_listing_none[] = {NULL};
static const char *const find_listing_small[] = {FP "_sm", NULL};
static const char *const find_listing_resized[] = {"00000001", "ephemeral_0_20_None",
                                                   FP "_10737418240", "00000004", NULL};
static const char *const find_listing_all[] = {
    "00000001", "ephemeral_0_20_None", FP "_sm", FP "_10737418240", "00000004", FP, NULL};

static const FindCase find_nothing = {find_listing_none, "549867354867", "", ""};
static const FindCase find_small = {find_listing_small, FP, FP "_sm", "s"};
static const FindCase find_resized = {find_listing_resized, FP, FP "_10737418240", "r"};
static const FindCase find_all = {find_listing_all, FP, FP " " FP "_sm " FP "_10737418240", "osr"};

static void test_find_base_file(IcTestTree *tree, gconstpointer data)
{
    const FindCase *tc = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    make_files(tree->base_dir, tc->listing);
    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_assert_no_error(error);

    const GPtrArray *variants = ic_scan_find_variants(scan, tc->fingerprint);
    GString *names = g_string_new(NULL);
    GString *kinds = g_string_new(NULL);
    for (guint i = 0; variants != NULL && i < variants->len; i++) {
        const IcBaseFile *file = g_ptr_array_index(variants, i);
        if (i > 0)
            g_string_append_c(names, ' ');
        g_string_append(names, file->name);
        g_string_append_c(kinds, ic_image_kind_to_string(file->kind)[0]);
    }
    g_assert_cmpstr(names->str, ==, tc->expected);
    g_assert_cmpstr(kinds->str, ==, tc->kinds);
    g_string_free(names, TRUE);
    g_string_free(kinds, TRUE);
}

/* ---- _remove_base_file ---- */

#define RESIZED FP "_10"

static void make_base_file(const IcTestTree *tree, const char *name, gint64 mtime)
{
    g_autofree char *path = ic_test_write_file(tree->base_dir, name, "data", -1);
    g_autofree char *sidecar = g_strconcat(name, ".sha1", NULL);
    g_autofree char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA1, "data", -1);
    g_free(ic_test_write_file(tree->base_dir, sidecar, digest, -1));
    ic_test_set_mtime(path, mtime);
}

static gboolean base_exists(const IcTestTree *tree, const char *name)
{
    g_autofree char *path = g_build_filename(tree->base_dir, name, NULL);
    return ic_test_exists(path);
}

static void test_remove_base_file(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    make_base_file(tree, RESIZED, NOW);

    /* Files are initially too new to delete */
    g_autoptr(IcReport) young = run_pass(config, NULL, IC_PASS_RUN, NOW);
    g_assert_cmpint(ic_report_lookup(young, RESIZED)->decision.verdict, ==, IC_VERDICT_TOO_YOUNG);
    g_assert_true(base_exists(tree, RESIZED));
    g_assert_true(base_exists(tree, RESIZED ".sha1"));

    /* Old files get cleaned up though */
    g_autoptr(IcReport) old = run_pass(config, NULL, IC_PASS_RUN, NOW + 3601);
    g_assert_cmpint(ic_report_lookup(old, RESIZED)->action, ==, IC_ACTION_REMOVED);
    g_assert_false(base_exists(tree, RESIZED));
    g_assert_false(base_exists(tree, RESIZED ".sha1"));
}

static void test_remove_base_file_original(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    make_base_file(tree, FP, NOW);

    g_autoptr(IcReport) young = run_pass(config, NULL, IC_PASS_RUN, NOW);
    g_assert_cmpint(ic_report_lookup(young, FP)->decision.verdict, ==, IC_VERDICT_TOO_YOUNG);
    g_assert_true(base_exists(tree, FP));
    g_assert_true(base_exists(tree, FP ".sha1"));

    /* This file should stay longer than a resized image */
    g_autoptr(IcReport) hour = run_pass(config, NULL, IC_PASS_RUN, NOW + 3601);
    g_assert_cmpint(ic_report_lookup(hour, FP)->decision.verdict, ==, IC_VERDICT_TOO_YOUNG);
    g_assert_true(base_exists(tree, FP));
    g_assert_true(base_exists(tree, FP ".sha1"));

    /* Originals don't stay forever though */
    g_autoptr(IcReport) day = run_pass(config, NULL, IC_PASS_RUN, NOW + 3600 * 25);
    g_assert_cmpint(ic_report_lookup(day, FP)->action, ==, IC_ACTION_REMOVED);
    g_assert_false(base_exists(tree, FP));
    g_assert_false(base_exists(tree, FP ".sha1"));
}

static void test_remove_base_file_dne(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    int dirfd = -1;
    g_assert_true(ic_remove_open_base_dir(tree->base_dir, &dirfd, &error));
    g_assert_false(ic_remove_base_file(dirfd, RESIZED, NULL, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_NOT_FOUND);
    close(dirfd);
}

static void test_remove_base_file_oserror(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(tree->base_dir, RESIZED, NULL);
    g_assert_cmpint(g_mkdir(path, 0755), ==, 0);
    ic_test_set_mtime(path, NOW - 3601);

    int dirfd = -1;
    g_assert_true(ic_remove_open_base_dir(tree->base_dir, &dirfd, &error));
    g_assert_false(ic_remove_base_file(dirfd, RESIZED, NULL, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    close(dirfd);
    g_assert_true(ic_test_exists(path));

    /* Through a pass: a removal that fails is logged, and the pass goes on.
     * A directory where a sidecar should be makes the unlink refuse. */
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *other = ic_test_write_file(tree->base_dir, FP "_20", "data", -1);
    g_autofree char *odd_sidecar = g_build_filename(tree->base_dir, FP "_20.info", NULL);
    g_autofree char *young = ic_test_write_file(tree->base_dir, FP "_30", "data", -1);
    g_assert_cmpint(g_mkdir(odd_sidecar, 0755), ==, 0);
    ic_test_set_mtime(other, NOW - 3601);
    ic_test_set_mtime(young, NOW - 4000);
    g_autoptr(IcReport) report = run_pass(config, NULL, IC_PASS_RUN, NOW);
    g_assert_cmpint(ic_report_lookup(report, FP "_20")->action, ==, IC_ACTION_REMOVE_FAILED);
    g_assert_cmpint(ic_report_lookup(report, FP "_30")->action, ==, IC_ACTION_REMOVED);
    g_assert_true(ic_test_exists(other));
    g_assert_cmpuint(report->totals.remove_failed, ==, 1);

    g_test_expect_message("imagecache", G_LOG_LEVEL_WARNING, "Failed to remove " FP "_20*");
    g_test_expect_message("imagecache", G_LOG_LEVEL_MESSAGE, "*removed*");
    ic_report_log_events(report);
    g_test_assert_expected_messages();
}

/* ---- _handle_base_image ---- */

#define IMG_ID "123"
#define IMG_FP "40bd001563085fc35165329ea1ff5c5ecbdbbeef" /* sha1("123") */

static void test_handle_base_image_unused(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    make_base_file(tree, IMG_FP "_sm", NOW - 3601);
    config->checksum_base_images = TRUE;

    g_autoptr(IcReport) report = run_pass(config, NULL, IC_PASS_REPORT, NOW);
    g_assert_cmpuint(report->rows->len, ==, 1);
    g_autofree char *removable = rows_with_verdict(report, IC_VERDICT_REMOVABLE);
    g_autofree char *corrupt = rows_with_verdict(report, IC_VERDICT_CORRUPT);
    g_assert_cmpstr(removable, ==, IMG_FP "_sm");
    g_assert_cmpstr(corrupt, ==, "");
}

static void test_handle_base_image_used(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    make_base_file(tree, IMG_FP "_sm", NOW - 3601);
    config->checksum_base_images = TRUE;
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_RUN, NOW);
    const IcImageRow *row = ic_report_lookup(report, IMG_FP "_sm");
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_cmpstr(row->image_id, ==, IMG_ID);
    g_assert_cmpuint(report->totals.removable, ==, 0);
    g_assert_cmpuint(report->totals.corrupt, ==, 0);
    /* in-use files have their mtime refreshed */
    g_assert_cmpint(row->action, ==, IC_ACTION_TOUCHED);
    g_autofree char *path = g_build_filename(tree->base_dir, IMG_FP "_sm", NULL);
    GStatBuf st;
    g_assert_cmpint(g_lstat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mtime, ==, NOW);
}

static void test_handle_base_image_used_remotely(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "otherhost", FALSE,
                            IC_WITNESS_STATIC);

    /* No base file here: used only elsewhere is no concern of this host. */
    g_autoptr(IcReport) none = run_pass(config, usage, IC_PASS_REPORT, NOW);
    g_assert_cmpuint(none->rows->len, ==, 0);
    g_assert_cmpuint(none->events->len, ==, 0);

    /* With the file here, a remote user keeps it (Nova's Grizzly fix). */
    make_base_file(tree, IMG_FP, NOW - 3 * 86400);
    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_RUN, NOW);
    const IcImageRow *row = ic_report_lookup(report, IMG_FP);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ACTIVE);
    g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "in_use_remote");
    g_assert_cmpuint(report->totals.removable, ==, 0);
    g_assert_cmpuint(report->totals.corrupt, ==, 0);
    g_assert_true(base_exists(tree, IMG_FP));
}

static void test_handle_base_image_absent(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_REPORT, NOW);
    g_assert_cmpuint(report->totals.removable, ==, 0);
    g_assert_cmpuint(report->totals.corrupt, ==, 0);
    g_assert_cmpuint(report->totals.absent, ==, 1);
    g_assert_cmpint(ic_report_lookup(report, IMG_FP)->decision.verdict, ==, IC_VERDICT_ABSENT);

    g_test_expect_message("imagecache", G_LOG_LEVEL_WARNING, "*an absent base file*banana-42*");
    ic_report_log_events(report);
    g_test_assert_expected_messages();
}

static void test_handle_base_image_used_missing(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autofree char *missing = g_build_filename(tree->base_dir, IMG_FP "_sm", NULL);
    ic_usage_add_path_user(usage, missing, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_RUN, NOW);
    g_assert_cmpuint(report->totals.removable, ==, 0);
    g_assert_cmpuint(report->totals.corrupt, ==, 0);
    g_assert_cmpuint(report->totals.removed, ==, 0);
    const IcImageRow *row = ic_report_lookup(report, IMG_FP "_sm");
    g_assert_nonnull(row);
    g_assert_false(row->present);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ABSENT);
}

/* An absent base file named both by its path and by its image's fingerprint
 * is one row, not two: the fingerprint pass skips what the path pass added. */
static void test_handle_base_image_missing_once(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autofree char *missing = g_build_filename(tree->base_dir, IMG_FP, NULL);
    ic_usage_add_path_user(usage, missing, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_REPORT, NOW);
    guint rows = 0;
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (g_str_equal(row->name, IMG_FP)) {
            rows++;
            g_assert_false(row->present);
            g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ABSENT);
        }
    }
    g_assert_cmpuint(rows, ==, 1);
}

/* A witness may spell the base dir oddly ("//", as libvirt XML can): the
 * absent file is still this base dir's, and still reported. */
static void test_handle_base_image_missing_odd_spelling(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autofree char *missing = g_strconcat(tree->base_dir, "//", IMG_FP "_sm", NULL);
    ic_usage_add_path_user(usage, missing, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_REPORT, NOW);
    const IcImageRow *row = ic_report_lookup(report, IMG_FP "_sm");
    g_assert_nonnull(row);
    g_assert_false(row->present);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_ABSENT);
}

static void test_handle_base_image_checksum_fails(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autoptr(IcUsage) usage = ic_usage_new();
    make_base_file(tree, IMG_FP, NOW);
    g_free(ic_test_write_file(tree->base_dir, IMG_FP, "banana", -1));
    config->checksum_base_images = TRUE;
    ic_usage_add_image_user(usage, IMG_ID, NULL, "banana-42", "testhost", TRUE, IC_WITNESS_STATIC);

    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_RUN, NOW);
    g_autofree char *removable = rows_with_verdict(report, IC_VERDICT_REMOVABLE);
    g_autofree char *corrupt = rows_with_verdict(report, IC_VERDICT_CORRUPT);
    g_assert_cmpstr(removable, ==, "");
    g_assert_cmpstr(corrupt, ==, IMG_FP);
    const IcImageRow *row = ic_report_lookup(report, IMG_FP);
    g_assert_cmpint(row->checksum.state, ==, IC_CHECKSUM_MISMATCH);
    g_assert_true(base_exists(tree, IMG_FP));

    g_test_expect_message("imagecache", G_LOG_LEVEL_WARNING, "*image verification failed*");
    ic_report_log_events(report);
    g_test_assert_expected_messages();
}

/* ---- verify_base_images ---- */

#define FP_42 "92cfceb39d57d914ed8b14d0e37643de0797ae56" /* sha1("42") */
#define FP_43 "17d1b00b81642842e514494a78e804e9a511637c"

static void test_verify_base_images(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    static const char *const base_files[] = {
        "00000001",
        "ephemeral_0_20_None",
        "e97222e91fc4241f49a7f520d1dcf446751129b3_sm",
        "e09c675c2d1cfac32dae3c2d83689c8c94bc693b_sm",
        FP_42,
        FP_43,
        FP_43 "_5368709120",
        FP_43 "_10737418240",
        "00000004",
        NULL,
    };
    make_files(tree->base_dir, base_files);
    for (const char *const *name = base_files; *name != NULL; name++) {
        g_autofree char *path = g_build_filename(tree->base_dir, *name, NULL);
        ic_test_set_mtime(path, 1000000);
    }
    g_autofree char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA1, "data", -1);
    g_free(ic_test_write_file(tree->base_dir, FP_42 ".sha1", digest, -1));

    /* instance-1 and instance-2 are backed by the 5 GiB resize of image 43;
     * instance-3 has no disk. */
    for (int i = 1; i <= 3; i++) {
        g_autofree char *dir = g_strdup_printf("%s/instance-%d", tree->root, i);
        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        if (i == 3)
            continue;
        g_autofree char *disk = g_build_filename(dir, "disk", NULL);
        g_autofree char *backing = g_build_filename(tree->base_dir, FP_43 "_5368709120", NULL);
        g_assert_true(ic_test_write_qcow2(disk, 2, 1 << 20, backing, NULL, &error));
        g_assert_no_error(error);
    }

    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_image_user(usage, "image-1", NULL, "instance-1", "testhost", TRUE,
                            IC_WITNESS_STATIC);
    ic_usage_add_image_user(usage, "image-2", NULL, "instance-2", "testhost", TRUE,
                            IC_WITNESS_STATIC);

    g_autoptr(IcConfig) config = tree_config(tree);
    config->remove_unused_base_images = TRUE;
    config->checksum_base_images = TRUE;
    g_autoptr(IcReport) report = run_pass(config, usage, IC_PASS_RUN, NOW);

    g_autofree char *active = rows_with_verdict(report, IC_VERDICT_ACTIVE);
    g_assert_cmpstr(active, ==, FP_43 "_5368709120");
    g_autofree char *removable = rows_with_verdict(report, IC_VERDICT_REMOVABLE);
    g_assert_cmpstr(removable, ==,
                    FP_43 " " FP_43 "_10737418240 " FP_42
                          " e09c675c2d1cfac32dae3c2d83689c8c94bc693b_sm"
                          " e97222e91fc4241f49a7f520d1dcf446751129b3_sm");
    g_assert_cmpuint(report->totals.removed, ==, 5);
    g_assert_cmpuint(report->totals.corrupt, ==, 0);
    g_assert_cmpint(ic_report_lookup(report, FP_42)->checksum.state, ==, IC_CHECKSUM_OK);

    /* what was removed is gone; what is not ours to touch stays */
    g_assert_false(base_exists(tree, FP_42));
    g_assert_false(base_exists(tree, FP_42 ".sha1"));
    g_assert_true(base_exists(tree, FP_43 "_5368709120"));
    g_assert_true(base_exists(tree, "00000001"));
    g_assert_true(base_exists(tree, "ephemeral_0_20_None"));
    g_assert_true(base_exists(tree, "00000004"));
}

static void test_verify_base_images_no_base(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup("/tmp/no/such/dir/name/please");
    g_assert_true(ic_config_finish(config, &error));
    g_autoptr(IcReport) report = run_pass(config, NULL, IC_PASS_RUN, NOW);
    g_assert_false(report->base_dir_exists);
    g_assert_cmpuint(report->rows->len, ==, 0);
}

#define ADD_TREE_TEST(path, func, data)                                                            \
    g_test_add(path, IcTestTree, data, ic_test_tree_setup, func, ic_test_tree_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    ADD_TREE_TEST("/imagecache/list_base_images", test_list_base_images, NULL);
    g_test_add_func("/imagecache/list_running_instances", test_list_running_instances);
    ADD_TREE_TEST("/imagecache/list_backing_images_small", test_list_backing_images,
                  &backing_small);
    ADD_TREE_TEST("/imagecache/list_backing_images_resized", test_list_backing_images,
                  &backing_resized);
    ADD_TREE_TEST("/imagecache/list_backing_images_instancename", test_list_backing_images,
                  &backing_instancename);
    ADD_TREE_TEST("/imagecache/find_base_file_nothing", test_find_base_file, &find_nothing);
    ADD_TREE_TEST("/imagecache/find_base_file_small", test_find_base_file, &find_small);
    ADD_TREE_TEST("/imagecache/find_base_file_resized", test_find_base_file, &find_resized);
    ADD_TREE_TEST("/imagecache/find_base_file_all", test_find_base_file, &find_all);
    ADD_TREE_TEST("/imagecache/remove_base_file", test_remove_base_file, NULL);
    ADD_TREE_TEST("/imagecache/remove_base_file_original", test_remove_base_file_original, NULL);
    ADD_TREE_TEST("/imagecache/remove_base_file_dne", test_remove_base_file_dne, NULL);
    ADD_TREE_TEST("/imagecache/remove_base_file_oserror", test_remove_base_file_oserror, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_unused", test_handle_base_image_unused, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_used", test_handle_base_image_used, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_used_remotely",
                  test_handle_base_image_used_remotely, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_absent", test_handle_base_image_absent, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_missing_once", test_handle_base_image_missing_once,
                  NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_missing_odd_spelling",
                  test_handle_base_image_missing_odd_spelling, NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_used_missing", test_handle_base_image_used_missing,
                  NULL);
    ADD_TREE_TEST("/imagecache/handle_base_image_checksum_fails",
                  test_handle_base_image_checksum_fails, NULL);
    ADD_TREE_TEST("/imagecache/verify_base_images", test_verify_base_images, NULL);
    g_test_add_func("/imagecache/verify_base_images_no_base", test_verify_base_images_no_base);
    return g_test_run();
}
