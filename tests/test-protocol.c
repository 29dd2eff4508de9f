/* The removal protocol (common/protocol.c) rule by rule: a witness changes between the
 * pass's first read and its re-read under the lock, through the seam; each test runs in
 * milliseconds, without sleeps. Also the locks' bounds, fairness and cancellation. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "ledger-store.h"
#include "pass.h"
#include "protocol.h"
#include "remove.h"
#include "testutil.h"

#define NOW  ((gint64)1700000000)
#define DAY  ((gint64)86400)
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define UUID "11111111-2222-3333-4444-555555555555"

typedef struct {
    IcTestTree tree;
    IcConfig *config;
    char *a; /* an unused, old base file: removable */
    char *b;
    /* what the seam does and saw */
    void (*act)(gpointer fix, IcProtocolStage stage, const char *name);
    GString *stages;
    guint witness_calls;
    guint witness_calls_before_lock; /* at BEFORE_LOCK: how many times libvirt was asked */
    int held_fd;
    void *mapped;
    IcCancel *cancel;
} Fixture;

static void fixture_setup(Fixture *fix, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    ic_test_tree_setup(&fix->tree, data);
    g_autofree char *text =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=testhost\n", fix->tree.root);
    g_autofree char *path = ic_test_write_file(fix->tree.root, "imagecache.conf", text, -1);
    fix->config = ic_config_new();
    g_assert_true(ic_config_load_file(fix->config, path, &error));
    g_assert_true(ic_config_finish(fix->config, &error));
    g_assert_no_error(error);
    fix->a = ic_test_write_file(fix->tree.base_dir, FP_A, "image a", -1);
    ic_test_set_mtime(fix->a, NOW - 10 * DAY);
    fix->b = ic_test_write_file(fix->tree.base_dir, FP_B, "image b", -1);
    ic_test_set_mtime(fix->b, NOW - 10 * DAY);
    fix->stages = g_string_new(NULL);
    fix->held_fd = -1;
}

static void fixture_teardown(Fixture *fix, gconstpointer data)
{
    ic_close_fdp(&fix->held_fd);
    if (fix->mapped != NULL)
        munmap(fix->mapped, 7);
    g_clear_pointer(&fix->cancel, ic_cancel_free);
    g_string_free(fix->stages, TRUE);
    g_free(fix->a);
    g_free(fix->b);
    ic_config_free(fix->config);
    ic_test_tree_teardown(&fix->tree, data);
}

static const char *stage_name(IcProtocolStage stage)
{
    switch (stage) {
    case IC_PROTOCOL_STAGE_BEFORE_LOCK:
        return "before_lock";
    case IC_PROTOCOL_STAGE_LOCKED:
        return "locked";
    case IC_PROTOCOL_STAGE_BEFORE_UNLINK:
        return "before_unlink";
    }
    return "?";
}

static void seam(IcProtocolStage stage, const char *name, gpointer data)
{
    Fixture *fix = data;
    g_string_append_printf(fix->stages, "%s%s%s%s", fix->stages->len ? " " : "", stage_name(stage),
                           name ? ":" : "", name ? name : "");
    if (stage == IC_PROTOCOL_STAGE_BEFORE_LOCK)
        fix->witness_calls_before_lock = fix->witness_calls;
    if (fix->act != NULL)
        fix->act(fix, stage, name);
}

/* Stands for libvirt: counts how often the pass asks it. */
static void external_witness(IcUsage *usage, gint64 now, gpointer data)
{
    Fixture *fix = data;
    fix->witness_calls++;
}

static IcReport *run_with(Fixture *fix, IcPassMode mode, gint64 lock_timeout_ms,
                          gint64 hold_limit_ms)
{
    g_autoptr(GError) error = NULL;
    IcReport *report = NULL;
    IcPassOptions options = {
        .mode = mode,
        .cancel = fix->cancel,
        .witnesses = external_witness,
        .witnesses_data = fix,
        .lock_timeout_ms = lock_timeout_ms,
        .hold_limit_ms = hold_limit_ms,
        .seam = seam,
        .seam_data = fix,
    };
    g_assert_true(ic_pass_run(fix->config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    return report;
}

static IcReport *run(Fixture *fix)
{
    return run_with(fix, IC_PASS_RUN, 0, 0);
}

static const IcImageRow *row_of(const IcReport *report, const char *name)
{
    const IcImageRow *row = ic_report_lookup(report, name);
    g_assert_nonnull(row);
    return row;
}

static guint warnings(const IcReport *report)
{
    guint n = 0;
    for (guint i = 0; i < report->events->len; i++)
        n += ((const IcEvent *)g_ptr_array_index(report->events, i))->level != IC_EVENT_INFO;
    return n;
}

/* ---- the stages and the external witness ---- */

/* The stages come in order, and libvirt (the external witness) is asked once,
 * before the lock: never under it (libvirtd runs the prepare hook holding the
 * domain's lock, so asking it under ours deadlocks every start). */
static void test_stages_and_libvirt_once(Fixture *fix, gconstpointer data)
{
    g_autoptr(IcReport) report = run(fix);
    g_assert_cmpstr(fix->stages->str, ==,
                    "before_lock locked before_unlink:" FP_A " before_unlink:" FP_B);
    g_assert_cmpuint(fix->witness_calls, ==, 1);
    g_assert_cmpuint(fix->witness_calls_before_lock, ==, 1);
    g_assert_false(ic_test_exists(fix->a));
    g_assert_false(ic_test_exists(fix->b));
    g_assert_cmpuint(report->totals.removed, ==, 2);
    g_assert_null(report->removal_deferred);
}

/* ---- (a) a domain appears in a ledger ---- */

static void record_user_of_a(Fixture *fix, const char *host)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(UUID, "vm-late");
    g_ptr_array_add(domain->base_files, g_strdup(fix->a));
    g_assert_true(ic_ledger_record_domain(fix->config->ledger_dir, host, domain, NOW, &error));
    g_assert_no_error(error);
}

static void act_record_local(gpointer data, IcProtocolStage stage, const char *name)
{
    if (stage == IC_PROTOCOL_STAGE_LOCKED)
        record_user_of_a(data, "testhost");
}

static void act_record_remote(gpointer data, IcProtocolStage stage, const char *name)
{
    if (stage == IC_PROTOCOL_STAGE_LOCKED)
        record_user_of_a(data, "otherhost");
}

static void test_domain_appears(Fixture *fix, gconstpointer data)
{
    fix->act = data == NULL ? act_record_local : act_record_remote;
    g_autoptr(IcReport) report = run(fix);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_false(ic_test_exists(fix->b));
    const IcImageRow *row = row_of(report, FP_A);
    g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==,
                    data == NULL ? "in_use_local" : "in_use_remote");
    g_assert_cmpint(row->action, !=, IC_ACTION_REMOVED);
    g_assert_cmpint(row->action, !=, IC_ACTION_REMOVE_FAILED);
}

/* ---- (b) the mtime is refreshed, (c) the file is replaced ---- */

static void act_refresh(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_BEFORE_UNLINK && g_str_equal(name, FP_A))
        ic_test_set_mtime(fix->a, NOW);
}

static void test_mtime_refreshed(Fixture *fix, gconstpointer data)
{
    fix->act = act_refresh;
    g_autoptr(IcReport) report = run(fix);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_false(ic_test_exists(fix->b));
    g_assert_cmpint(row_of(report, FP_A)->action, ==, IC_ACTION_NONE);
    g_assert_cmpuint(report->totals.remove_failed, ==, 0);
}

static void act_replace(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage != IC_PROTOCOL_STAGE_BEFORE_UNLINK || !g_str_equal(name, FP_A))
        return;
    g_autofree char *fresh = ic_test_write_file(fix->tree.base_dir, "new", "new download", -1);
    ic_test_set_mtime(fresh, NOW - 10 * DAY); /* even as old: the identity differs */
    g_assert_cmpint(g_rename(fresh, fix->a), ==, 0);
}

static void test_replaced(Fixture *fix, gconstpointer data)
{
    fix->act = act_replace;
    g_autoptr(IcReport) report = run(fix);
    g_autofree char *contents = NULL;
    g_assert_true(g_file_get_contents(fix->a, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "new download");
    g_assert_cmpint(row_of(report, FP_A)->action, ==, IC_ACTION_NONE);
    g_assert_cmpuint(report->totals.remove_failed, ==, 0);
}

/* ---- (d) a process opens or maps it ---- */

static void act_open(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_LOCKED)
        fix->held_fd = open(fix->a, O_RDONLY | O_CLOEXEC);
}

static void act_map(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage != IC_PROTOCOL_STAGE_LOCKED)
        return;
    ic_autofd fd = open(fix->a, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    fix->mapped = mmap(NULL, 7, PROT_READ, MAP_SHARED, fd, 0);
    g_assert_true(fix->mapped != MAP_FAILED);
    /* the descriptor closes here: only the mapping holds the file */
}

static void test_held(Fixture *fix, gconstpointer data)
{
    fix->act = data == NULL ? act_open : act_map;
    g_autoptr(IcReport) report = run(fix);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_false(ic_test_exists(fix->b));
    g_assert_cmpstr(ic_reason_to_string(row_of(report, FP_A)->decision.reason), ==, "held_open");
}

/* ---- a witness fails between the reads ---- */

static void act_damage_ledger(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_LOCKED)
        g_free(
            ic_test_write_file(fix->config->ledger_dir, "otherhost.ledger", "not a ledger\n", -1));
}

/* Another host's ledger damaged after the first read: under the lock nothing
 * is removed (its users are unknown), and the report says which file failed,
 * not only that the usage was unknown. */
static void test_ledger_damaged_under_lock(Fixture *fix, gconstpointer data)
{
    fix->act = act_damage_ledger;
    g_autoptr(IcReport) report = run(fix);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_true(ic_test_exists(fix->b));
    g_assert_cmpstr(ic_reason_to_string(row_of(report, FP_B)->decision.reason), ==,
                    "usage_unknown");
    guint damaged = 0;
    for (guint i = 0; i < report->notes->len; i++) {
        if (g_array_index(report->note_codes, IcNoteCode, i) != IC_NOTE_LEDGER_DAMAGED)
            continue;
        g_assert_nonnull(strstr(g_ptr_array_index(report->notes, i), "otherhost.ledger"));
        damaged++;
    }
    g_assert_cmpuint(damaged, ==, 1);
}

/* ---- (e) the lock is busy, (f) cancelled ---- */

static void test_lock_busy(Fixture *fix, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    ic_autofd start = -1; /* a VM start holding it shared */
    g_assert_true(ic_protocol_lock_for_start(fix->config->ledger_dir, 1000, &start, &error));
    g_autoptr(IcReport) report = run_with(fix, IC_PASS_RUN, 20, 0);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_true(ic_test_exists(fix->b));
    g_assert_cmpuint(report->totals.removed, ==, 0);
    g_assert_cmpuint(report->totals.remove_failed, ==, 0);
    g_assert_cmpstr(ic_reason_to_string(row_of(report, FP_A)->decision.reason), ==,
                    "removal_deferred");
    g_assert_cmpint(row_of(report, FP_A)->decision.verdict, ==, IC_VERDICT_KEPT);
    g_assert_nonnull(report->removal_deferred);
    g_assert_nonnull(strstr(report->removal_deferred, "usage lock"));
    g_assert_cmpuint(warnings(report), ==, 1);
    g_assert_cmpstr(fix->stages->str, ==, "before_lock");
    /* the table and the JSON say so */
    g_autofree char *json = ic_report_to_json(report);
    g_assert_nonnull(strstr(json, "\"removal_deferred\" : \"2 planned removals kept"));
}

static void act_cancel(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_BEFORE_LOCK)
        ic_cancel_cancel(fix->cancel);
}

/* Shutdown while the pass waits for the lock: the wait ends well before its
 * bound and nothing is removed. */
static void test_cancel_during_wait(Fixture *fix, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    ic_autofd start = -1;
    g_assert_true(ic_protocol_lock_for_start(fix->config->ledger_dir, 1000, &start, &error));
    fix->cancel = ic_cancel_new();
    fix->act = act_cancel;
    gint64 started = g_get_monotonic_time();
    g_autoptr(IcReport) report = run_with(fix, IC_PASS_RUN, 60000, 0);
    g_assert_cmpint(g_get_monotonic_time() - started, <, 5 * G_USEC_PER_SEC);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_true(ic_test_exists(fix->b));
    g_assert_nonnull(strstr(report->removal_deferred, "cancelled"));
}

static void act_cancel_locked(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_BEFORE_UNLINK)
        ic_cancel_cancel(fix->cancel);
}

/* Shutdown begins between two unlinks: the next one is not made. */
static void test_cancel_between_unlinks(Fixture *fix, gconstpointer data)
{
    fix->cancel = ic_cancel_new();
    fix->act = act_cancel_locked;
    g_autoptr(IcReport) report = run(fix);
    g_assert_false(ic_test_exists(fix->a)); /* already under way when shutdown began */
    g_assert_true(ic_test_exists(fix->b));
    g_assert_cmpstr(ic_reason_to_string(row_of(report, FP_B)->decision.reason), ==,
                    "removal_deferred");
    g_assert_nonnull(strstr(report->removal_deferred, "cancelled"));
}

/* ---- the hold limit ---- */

static void act_overstay(gpointer data, IcProtocolStage stage, const char *name)
{
    if (stage != IC_PROTOCOL_STAGE_LOCKED)
        return;
    gint64 until = g_get_monotonic_time() + 2000; /* past the 1 ms limit, without sleeping */
    while (g_get_monotonic_time() < until)
        ;
}

static void test_hold_limit(Fixture *fix, gconstpointer data)
{
    fix->act = act_overstay;
    g_autoptr(IcReport) report = run_with(fix, IC_PASS_RUN, 0, 1);
    g_assert_true(ic_test_exists(fix->a));
    g_assert_true(ic_test_exists(fix->b));
    g_assert_nonnull(strstr(report->removal_deferred, "limit"));
    g_assert_cmpstr(ic_reason_to_string(row_of(report, FP_A)->decision.reason), ==,
                    "removal_deferred");
}

/* ---- item 7: a file already gone ---- */

static void act_other_pass(gpointer data, IcProtocolStage stage, const char *name)
{
    Fixture *fix = data;
    if (stage == IC_PROTOCOL_STAGE_BEFORE_UNLINK && g_str_equal(name, FP_A))
        g_assert_cmpint(g_unlink(fix->a), ==, 0);
}

static void test_already_gone(Fixture *fix, gconstpointer data)
{
    fix->act = act_other_pass;
    g_autoptr(IcReport) report = run(fix);
    const IcImageRow *row = row_of(report, FP_A);
    g_assert_cmpint(row->action, ==, IC_ACTION_NONE);
    g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "already_gone");
    g_assert_cmpuint(report->totals.remove_failed, ==, 0);
    g_assert_cmpuint(report->totals.removed, ==, 1); /* b */
    g_assert_cmpuint(warnings(report), ==, 0);
}

/* ---- dry-run and report change nothing ---- */

static GString *snapshot_out;

static int snapshot_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    g_string_append_printf(snapshot_out, "%s %o %jd %ju %ld.%09ld %ld.%09ld\n", path,
                           (unsigned)st->st_mode, (intmax_t)st->st_size, (uintmax_t)st->st_ino,
                           (long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long)st->st_ctim.tv_sec,
                           st->st_ctim.tv_nsec);
    return 0;
}

/* Every entry under the instances path: name, mode, size, inode, mtime, ctime. */
static char *snapshot_tree(const char *root)
{
    snapshot_out = g_string_new(NULL);
    g_assert_cmpint(nftw(root, snapshot_one, 16, FTW_PHYS), ==, 0);
    return g_string_free(g_steal_pointer(&snapshot_out), FALSE);
}

static void test_read_only_modes(Fixture *fix, gconstpointer data)
{
    IcPassMode mode = GPOINTER_TO_INT(data);
    /* a used file (a run would touch it), a sidecar-less one (a run writes it) */
    g_autoptr(GError) error = NULL;
    g_autofree char *text =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=testhost\nchecksum_base_images="
                        "true\n",
                        fix->tree.root);
    g_autofree char *path = ic_test_write_file(fix->tree.root, "imagecache.conf", text, -1);
    g_assert_true(ic_config_load_file(fix->config, path, &error));
    record_user_of_a(fix, "testhost");
    g_autofree char *before = snapshot_tree(fix->tree.root);
    g_autoptr(IcReport) report = run_with(fix, mode, 0, 0);
    g_autofree char *after = snapshot_tree(fix->tree.root);
    g_assert_cmpstr(after, ==, before);
    g_assert_cmpint(row_of(report, FP_B)->action, ==, IC_ACTION_WOULD_REMOVE);
    g_assert_cmpstr(fix->stages->str, ==, ""); /* the protocol is not even entered */
}

/* ---- the locks themselves ---- */

/* The hook's side gives up within its bound while a pass holds the lock. */
static void test_start_wait_bounded(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *ledger_dir = g_build_filename(tree->root, "_ledger", NULL);
    ic_autofd pass = -1;
    g_assert_true(ic_protocol_lock_for_removal(ledger_dir, 1000, NULL, &pass, &error));
    ic_autofd start = -1;
    gint64 started = g_get_monotonic_time();
    g_assert_false(ic_protocol_lock_for_start(ledger_dir, 30, &start, &error));
    gint64 waited = g_get_monotonic_time() - started;
    g_assert_error(error, IC_ERROR, IC_ERROR_BUSY);
    g_assert_cmpint(waited, >=, 30 * 1000);
    g_assert_cmpint(waited, <, 2 * G_USEC_PER_SEC);
    g_clear_error(&error);
    /* released: the start goes through at once */
    ic_close_fdp(&pass);
    g_assert_true(ic_protocol_lock_for_start(ledger_dir, 30, &start, &error));
    g_assert_no_error(error);
}

/* Starts share the lock; a pass waits for them; a waiting pass holds the
 * intent byte, so a new start queues behind it instead of starving it. */
static void test_fairness(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *ledger_dir = g_build_filename(tree->root, "_ledger", NULL);
    ic_autofd start1 = -1, start2 = -1, start3 = -1, pass = -1;
    g_assert_true(ic_protocol_lock_for_start(ledger_dir, 30, &start1, &error));
    g_assert_true(ic_protocol_lock_for_start(ledger_dir, 30, &start2, &error));
    g_assert_false(ic_protocol_lock_for_removal(ledger_dir, 20, NULL, &pass, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_BUSY);
    g_clear_error(&error);

    /* a pass waiting: it holds the intent byte while the usage byte is shared */
    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ic_autofd intent = -1;
    g_assert_true(ic_protocol_lock_file_at(dirfd, -1, IC_PROTOCOL_LOCK_NAME,
                                           IC_PROTOCOL_INTENT_BYTE, TRUE, g_get_monotonic_time(),
                                           NULL, NULL, &intent, &error));
    g_assert_false(ic_protocol_lock_for_start(ledger_dir, 20, &start3, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_BUSY);
    g_clear_error(&error);

    /* the lock file's name is outside every host's namespace */
    g_autofree char *lock = g_build_filename(ledger_dir, IC_PROTOCOL_LOCK_NAME, NULL);
    g_assert_true(ic_test_exists(lock));
    g_assert_false(ic_ledger_host_name_is_valid(IC_PROTOCOL_LOCK_NAME));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
#define ADD(path, data, fn)                                                                        \
    g_test_add("/imagecache/protocol/" path, Fixture, data, fixture_setup, fn, fixture_teardown)
    ADD("stages-and-libvirt-once", NULL, test_stages_and_libvirt_once);
    ADD("domain-appears/local", NULL, test_domain_appears);
    ADD("domain-appears/remote", "remote", test_domain_appears);
    ADD("mtime-refreshed", NULL, test_mtime_refreshed);
    ADD("replaced", NULL, test_replaced);
    ADD("held/open", NULL, test_held);
    ADD("held/mapped", "mapped", test_held);
    ADD("ledger-damaged-under-lock", NULL, test_ledger_damaged_under_lock);
    ADD("lock-busy", NULL, test_lock_busy);
    ADD("cancel/during-wait", NULL, test_cancel_during_wait);
    ADD("cancel/between-unlinks", NULL, test_cancel_between_unlinks);
    ADD("hold-limit", NULL, test_hold_limit);
    ADD("already-gone", NULL, test_already_gone);
    ADD("read-only/dry-run", GINT_TO_POINTER(IC_PASS_DRY_RUN), test_read_only_modes);
    ADD("read-only/report", GINT_TO_POINTER(IC_PASS_REPORT), test_read_only_modes);
    g_test_add("/imagecache/protocol/lock/start-wait-bounded", IcTestTree, NULL, ic_test_tree_setup,
               test_start_wait_bounded, ic_test_tree_teardown);
    g_test_add("/imagecache/protocol/lock/fairness", IcTestTree, NULL, ic_test_tree_setup,
               test_fairness, ic_test_tree_teardown);
    return g_test_run();
}
