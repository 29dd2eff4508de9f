/* Red team, session 7 (issue 15): the pass's threaded tail. A real run (not a
 * preview) over a tree whose used files are found through identity (hard link,
 * a symlinked spelling of instances_path), image ids (variants), another host's
 * ledger and pins, with enough files that several threads decide rows and the
 * first read's usage is freed on its own thread while the removal runs.
 * The oracle is the one-thread pass (walk_threads 1, the collectd plugin's):
 * same tree, same clock, the JSON report must be the same to the byte, and no
 * used file may go. The error paths run while the free thread runs: a ledger
 * damaged, the base dir gone, a file unreadable, each under the removal's lock. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "jsonout.h"
#include "ledger-store.h"
#include "pass.h"
#include "remove.h"
#include "testutil.h"

#define NOW       ((gint64)1700000000)
#define DAY       ((gint64)86400)
#define N_UNUSED  1100
#define N_USED    64
#define N_TAIL    300
#define FP_ABSENT "0123456789abcdef0123456789abcdef01234567"

typedef struct {
    IcTestTree tree;
    IcConfig *config;
    GPtrArray *used;      /* names in the base dir some user needs */
    GPtrArray *domains_a; /* IcLedgerDomain*: testhost's, in uuid order */
    GPtrArray *domains_b; /* hostB's */
} Tree;

static char *base_path(const Tree *t, const char *name)
{
    return g_build_filename(t->tree.base_dir, name, NULL);
}

static void make_file(const Tree *t, const char *name)
{
    g_autofree char *path = ic_test_write_file(t->tree.base_dir, name, name, -1);
    ic_test_set_mtime(path, NOW - 10 * DAY);
}

/* Adds a domain of @host (testhost or hostB) using @base_file and @image_id to
 * @t's ledger-to-be; write_ledgers writes each host's file once (a write per
 * domain fsyncs each time, seconds on a loaded machine). */
static void record(Tree *t, const char *host, guint i, const char *base_file, const char *image_id)
{
    g_autofree char *uuid = g_strdup_printf("11111111-2222-3333-4444-%012u", i);
    g_autofree char *name = g_strdup_printf("vm%u", i);
    IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
    if (base_file != NULL)
        g_ptr_array_add(domain->base_files, g_strdup(base_file));
    if (image_id != NULL)
        g_ptr_array_add(domain->image_ids, g_strdup(image_id));
    g_ptr_array_add(g_str_equal(host, "hostB") ? t->domains_b : t->domains_a, domain);
}

static void write_ledgers(Tree *t)
{
    g_autoptr(GError) error = NULL;
    /* Recorded in uuid order, as a host file keeps them. */
    g_assert_true(
        ic_ledger_replace_host(t->config->ledger_dir, "testhost", t->domains_a, NOW - 60, &error));
    g_assert_true(
        ic_ledger_replace_host(t->config->ledger_dir, "hostB", t->domains_b, NOW - 60, &error));
    g_assert_no_error(error);
}

static IcConfig *load_config(const Tree *t, const char *pins)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nhost=testhost\npinned_images=%s\nquarantine_corrupt="
        "true\nchecksum_base_images=true\n",
        t->tree.root, pins);
    g_autofree char *conf = g_strconcat(t->tree.root, ".conf", NULL);
    g_assert_true(g_file_set_contents(conf, text, -1, &error));
    IcConfig *config = ic_config_new();
    g_assert_true(ic_config_load_file(config, conf, &error));
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    (void)g_unlink(conf);
    return config;
}

/* The tree; @t->used lists the files whose loss would break a VM or a rule. */
static void build_tree(Tree *t, guint n_unused)
{
    ic_test_tree_setup(&t->tree, NULL);
    t->domains_a = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    t->domains_b = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    t->used = g_ptr_array_new_with_free_func(g_free);
    t->config = load_config(t, ""); /* record() writes to its ledger_dir; the pins come last */
    g_autofree char *linked = g_strconcat(t->tree.root, "-link", NULL);
    (void)g_unlink(linked);
    g_assert_cmpint(symlink(t->tree.root, linked), ==, 0);

    GString *pins = g_string_new("");
    for (guint i = 0; i < n_unused; i++) {
        g_autofree char *id = g_strdup_printf("unused-%u", i);
        g_autofree char *fp = ic_fingerprint_of_image_id(id);
        make_file(t, fp);
        /* Sidecars: right, wrong (corrupt: kept, quarantined), unreadable as a digest. */
        g_autofree char *sidecar = g_strconcat(fp, ".sha1", NULL);
        if (i % 3 == 0) {
            g_autofree char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA1, fp, -1);
            g_free(ic_test_write_file(t->tree.base_dir, sidecar, digest, -1));
        } else if (i % 17 == 0) {
            g_free(ic_test_write_file(t->tree.base_dir, sidecar,
                                      "0000000000000000000000000000000000000000", -1));
        } else if (i % 19 == 0) {
            g_free(ic_test_write_file(t->tree.base_dir, sidecar, "one\ntwo", -1));
        }
        if (i % 40 == 0) {
            g_autofree char *sm = g_strconcat(fp, "_sm", NULL);
            g_autofree char *rs = g_strconcat(fp, "_20", NULL);
            make_file(t, sm);
            make_file(t, rs);
        }
    }
    for (guint i = 0; i < N_USED; i++) {
        g_autofree char *id = g_strdup_printf("used-%u", i);
        g_autofree char *fp = ic_fingerprint_of_image_id(id);
        g_autofree char *path = base_path(t, fp);
        const char *host = i % 2 ? "hostB" : "testhost";
        switch (i % 6) {
        case 0: /* by path, as written */
            make_file(t, fp);
            record(t, host, i, path, NULL);
            break;
        case 1: { /* through a symlinked spelling of instances_path */
            make_file(t, fp);
            g_autofree char *spelled = g_build_filename(linked, "_base", fp, NULL);
            record(t, host, i, spelled, NULL);
            break;
        }
        case 2: { /* a hard link with another base-dir name: @fp only by identity */
            make_file(t, fp);
            g_autofree char *other_id = g_strdup_printf("hardlink-%u", i);
            g_autofree char *other = ic_fingerprint_of_image_id(other_id);
            g_autofree char *other_path = base_path(t, other);
            g_assert_cmpint(link(path, other_path), ==, 0);
            record(t, host, i, other_path, NULL);
            g_ptr_array_add(t->used, g_strdup(other));
            break;
        }
        case 3: { /* by image id, running on a variant: every variant is kept */
            g_autofree char *image_id = g_strdup_printf("%08x-0000-4000-8000-%012x", i, i);
            g_autofree char *ifp = ic_fingerprint_of_image_id(image_id);
            g_autofree char *sm = g_strconcat(ifp, "_sm", NULL);
            g_autofree char *rs = g_strconcat(ifp, "_10", NULL);
            make_file(t, ifp);
            make_file(t, sm);
            make_file(t, rs);
            g_autofree char *sm_path = base_path(t, sm);
            record(t, host, i, sm_path, image_id);
            g_ptr_array_add(t->used, g_strdup(sm));
            g_ptr_array_add(t->used, g_strdup(rs));
            g_free(fp);
            fp = g_strdup(ifp);
            break;
        }
        case 4: /* pinned */
            make_file(t, fp);
            g_string_append_printf(pins, "%s%.12s*", pins->len ? ";" : "", fp);
            break;
        case 5: { /* a resized variant by a path with "//" and "/./" */
            g_autofree char *plain = g_strdup(fp);
            g_free(fp);
            fp = g_strdup_printf("%s_%u", plain, i + 3);
            make_file(t, fp);
            g_autofree char *spelled = g_strdup_printf("%s//./%s", t->tree.base_dir, fp);
            record(t, host, i, spelled, NULL);
            break;
        }
        }
        g_ptr_array_add(t->used, g_strdup(fp));
    }
    /* Absent but used, quarantined: rows after the base dir's, in no order, that
     * sort_rows sorts and merges in (a tail longer than a decide share). */
    g_autofree char *absent = base_path(t, FP_ABSENT);
    record(t, "testhost", 9999, absent, NULL);
    IcLedgerDomain *many = ic_ledger_domain_new("11111111-2222-3333-4444-999999999999", "many");
    for (guint i = 0; i < N_TAIL; i++) {
        g_autofree char *id = g_strdup_printf("absent-%u", i);
        g_autofree char *fp = ic_fingerprint_of_image_id(id);
        g_ptr_array_add(many->base_files, base_path(t, fp));
    }
    g_ptr_array_add(t->domains_b, many);
    write_ledgers(t);
    g_autofree char *qdir = g_build_filename(t->tree.base_dir, IC_QUARANTINE_DIR, NULL);
    g_assert_cmpint(g_mkdir(qdir, 0700), ==, 0);
    for (guint i = 0; i < N_TAIL; i++) {
        g_autofree char *id = g_strdup_printf("quarantined-%u", i);
        g_autofree char *qfp = ic_fingerprint_of_image_id(id);
        g_autofree char *qpath = ic_test_write_file(qdir, qfp, "rotten", -1);
        ic_test_set_mtime(qpath, NOW - (i % 2 ? DAY : 30 * DAY)); /* some old enough to go */
    }

    ic_config_free(t->config);
    t->config = load_config(t, pins->str);
    g_string_free(pins, TRUE);
}

static void tree_new(Tree *t, guint n_unused)
{
    memset(t, 0, sizeof(*t));
    build_tree(t, n_unused);
}

static void tree_free(Tree *t)
{
    g_autofree char *link = g_strconcat(t->tree.root, "-link", NULL);
    (void)g_unlink(link);
    g_clear_pointer(&t->config, ic_config_free);
    g_clear_pointer(&t->used, g_ptr_array_unref);
    g_clear_pointer(&t->domains_a, g_ptr_array_unref);
    g_clear_pointer(&t->domains_b, g_ptr_array_unref);
    ic_test_tree_teardown(&t->tree, NULL);
}

static void assert_used_kept(const Tree *t, const IcReport *report)
{
    for (guint i = 0; i < t->used->len; i++) {
        const char *name = g_ptr_array_index(t->used, i);
        g_autofree char *path = base_path(t, name);
        if (!ic_test_exists(path))
            g_error("%s removed, but it is in use", name);
        const IcImageRow *row = ic_report_lookup(report, name);
        g_assert_nonnull(row);
        if (row->decision.verdict == IC_VERDICT_REMOVABLE || row->action == IC_ACTION_REMOVED)
            g_error("%s: verdict %d action %d, but it is in use", name, row->decision.verdict,
                    row->action);
    }
}

static void assert_sorted(const IcReport *report)
{
    for (guint i = 1; i < report->rows->len; i++) {
        const IcImageRow *a = g_ptr_array_index(report->rows, i - 1);
        const IcImageRow *b = g_ptr_array_index(report->rows, i);
        g_assert_cmpint(strcmp(a->name, b->name), <, 0);
    }
}

/* The report's rows and totals alone, as JSON: what the decide threads make. */
static void write_rows(IcJsonWriter *w, gconstpointer data)
{
    const IcReport *report = data;
    ic_json_begin_array(w);
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        g_autofree char *users = ic_image_row_users_text(row);
        ic_json_begin_object(w);
        ic_json_member_string(w, "name", row->name);
        ic_json_member_string(w, "fingerprint", row->fingerprint);
        ic_json_member_string(w, "image_id", row->image_id);
        ic_json_member_string(w, "pinned_by", row->pinned_by);
        ic_json_member_string(w, "users", users);
        ic_json_member_int(w, "local", row->local_users);
        ic_json_member_int(w, "remote", row->remote_users);
        ic_json_member_int(w, "witnesses", row->witnesses);
        ic_json_member_int(w, "last_used", row->last_used);
        ic_json_member_string(w, "verdict", ic_verdict_to_string(row->decision.verdict));
        ic_json_member_string(w, "reason", ic_reason_to_string(row->decision.reason));
        ic_json_member_string(w, "action", ic_action_to_string(row->action));
        ic_json_end_object(w);
    }
    ic_json_end_array(w);
}

static char *rows_json_of(IcReport *report)
{
    return ic_json_to_string(write_rows, report);
}

static char *json_of(IcReport *report)
{
    report->duration_seconds = 0;
    report->disk_used_bytes = 0;
    report->disk_total_bytes = 0;
    return ic_report_to_json(report);
}

/* Says the first line that differs (a report is thousands of lines). */
static void assert_same_text(const char *actual, const char *expected)
{
    g_auto(GStrv) a = g_strsplit(actual, "\n", -1);
    g_auto(GStrv) e = g_strsplit(expected, "\n", -1);
    for (guint i = 0; a[i] != NULL || e[i] != NULL; i++) {
        if (a[i] == NULL || e[i] == NULL || strcmp(a[i], e[i]) != 0) {
            /* Both kept for a look: $TMPDIR/redteam7-{one,several}.json */
            g_autofree char *one = g_build_filename(g_get_tmp_dir(), "redteam7-one.json", NULL);
            g_autofree char *several =
                g_build_filename(g_get_tmp_dir(), "redteam7-several.json", NULL);
            (void)g_file_set_contents(one, expected, -1, NULL);
            (void)g_file_set_contents(several, actual, -1, NULL);
            g_error("line %u: one thread: %s, several: %s", i + 1, e[i] ? e[i] : "(end)",
                    a[i] ? a[i] : "(end)");
        }
    }
}

typedef struct {
    const Tree *t;
    IcProtocolStage stage;
    int what;
} Fault;

enum { FAULT_NONE, FAULT_LEDGER_DAMAGED, FAULT_BASE_DIR_GONE, FAULT_UNREADABLE };

static void fault_seam(IcProtocolStage stage, const char *name, gpointer data)
{
    Fault *fault = data;
    if (stage != IC_PROTOCOL_STAGE_LOCKED || fault->what == FAULT_NONE)
        return;
    const Tree *t = fault->t;
    switch (fault->what) {
    case FAULT_LEDGER_DAMAGED: {
        g_autofree char *ledger = g_build_filename(t->config->ledger_dir, "hostB.ledger", NULL);
        g_assert_true(g_file_set_contents(ledger, "garbage\n\x01\x02", -1, NULL));
        break;
    }
    case FAULT_BASE_DIR_GONE: {
        g_autofree char *aside = g_strconcat(t->tree.base_dir, ".aside", NULL);
        g_assert_cmpint(g_rename(t->tree.base_dir, aside), ==, 0);
        break;
    }
    case FAULT_UNREADABLE:
        for (guint i = 0; i < t->used->len; i += 3) {
            g_autofree char *path = base_path(t, g_ptr_array_index(t->used, i));
            g_assert_cmpint(g_chmod(path, 0), ==, 0);
        }
        break;
    }
    fault->what = FAULT_NONE;
}

static IcReport *run(const Tree *t, IcPassMode mode, guint walk_threads, Fault *fault)
{
    g_autoptr(GError) error = NULL;
    IcReport *report = NULL;
    IcPassOptions options = {
        .mode = mode,
        .walk_threads = walk_threads,
        /* A loaded machine must not stop the removal at its 5 s hold limit (the
         * rest deferred): the two runs compared would differ by the clock. */
        .hold_limit_ms = 600 * 1000,
        .seam = fault ? fault_seam : NULL,
        .seam_data = fault,
    };
    g_assert_true(ic_pass_run(t->config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    return report;
}

/* A run decided by several threads, the usage freed aside, against the same
 * run by one thread: same report, every used file kept, rows in strcmp order. */
/* @report as JSON, the tree's temporary root (which differs between trees)
 * spelled <root>. */
static char *tree_json(const Tree *t, IcReport *report, gboolean whole)
{
    g_autofree char *json = whole ? json_of(report) : rows_json_of(report);
    g_auto(GStrv) parts = g_strsplit(json, t->tree.root, -1);
    return g_strjoinv("<root>", parts);
}

static void run_threads_agree(gboolean whole)
{
    g_autofree char *expected_preview = NULL;
    g_autofree char *expected_run = NULL;
    for (guint walk_threads = 1; walk_threads <= 2; walk_threads++) {
        Tree t;
        tree_new(&t, N_UNUSED);
        g_autoptr(IcReport) preview = run(&t, IC_PASS_DRY_RUN, walk_threads % 2, NULL);
        g_autofree char *preview_json = tree_json(&t, preview, whole);
        assert_used_kept(&t, preview);
        g_autoptr(IcReport) report = run(&t, IC_PASS_RUN, walk_threads % 2, NULL);
        g_autofree char *run_json = tree_json(&t, report, whole);
        assert_used_kept(&t, report);
        assert_sorted(report);
        g_test_message("walk_threads %u: removed %" G_GUINT64_FORMAT
                       ", quarantined %" G_GUINT64_FORMAT,
                       walk_threads % 2, report->totals.removed, report->totals.quarantined);
        if (expected_preview == NULL) {
            /* The tree has all it should (otherwise two empty reports agree). */
            g_assert_cmpuint(preview->rows->len, >, 1024); /* several decide threads */
            g_assert_cmpuint(preview->totals.removable, >, 900);
            g_assert_cmpuint(preview->totals.corrupt, >, 30);
            g_assert_cmpuint(report->totals.removed, >, 800);
            g_assert_cmpuint(report->totals.quarantined, >, N_TAIL);
            g_assert_cmpuint(report->totals.absent, ==, 1 + N_TAIL);
            expected_preview = g_steal_pointer(&preview_json);
            expected_run = g_steal_pointer(&run_json);
        } else {
            assert_same_text(preview_json, expected_preview);
            assert_same_text(run_json, expected_run);
        }
        tree_free(&t);
    }
}

static void test_run_threads_agree(void)
{
    run_threads_agree(FALSE);
}

/* The whole document, events and notes too: the events of absent rows came in
 * the order of a hash table (add_absent_rows iterated usage->by_path), which
 * differed with the threads that built the usage. Failed on main before
 * f25f0da (and before session 6); passes since. */
static void test_report_threads_agree(void)
{
    run_threads_agree(TRUE);
}

/* One tree, the same preview three times on one per core: the same document,
 * whatever order the walk's threads finished in. */
static void test_report_stable(void)
{
    Tree t;
    tree_new(&t, N_UNUSED);
    g_autofree char *expected = NULL;
    for (guint i = 0; i < 3; i++) {
        g_autoptr(IcReport) report = run(&t, IC_PASS_DRY_RUN, 0, NULL);
        g_autofree char *json = json_of(report);
        if (expected == NULL)
            expected = g_steal_pointer(&json);
        else
            assert_same_text(json, expected);
    }
    tree_free(&t);
}

/* Faults under the removal's lock, while the first read's usage is freed on
 * its own thread: the pass ends, no used file goes. */
static void test_fault(gconstpointer data)
{
    Tree t;
    tree_new(&t, N_UNUSED / 4); /* the free thread runs whatever the size */
    Fault fault = {.t = &t, .what = GPOINTER_TO_INT(data)};
    g_autoptr(IcReport) report = run(&t, IC_PASS_RUN, 0, &fault);
    g_assert_cmpint(fault.what, ==, FAULT_NONE); /* the seam ran */
    if (GPOINTER_TO_INT(data) == FAULT_BASE_DIR_GONE) {
        g_autofree char *aside = g_strconcat(t.tree.base_dir, ".aside", NULL);
        g_assert_cmpint(g_rename(aside, t.tree.base_dir), ==, 0);
    }
    if (GPOINTER_TO_INT(data) == FAULT_UNREADABLE) {
        for (guint i = 0; i < t.used->len; i += 3) {
            g_autofree char *path = base_path(&t, g_ptr_array_index(t.used, i));
            (void)g_chmod(path, 0600);
        }
    }
    g_test_message("removed %" G_GUINT64_FORMAT ", notes %u, events %u", report->totals.removed,
                   report->notes->len, report->events->len);
    for (guint i = 0; i < report->notes->len; i++)
        g_test_message("note: %s", (const char *)g_ptr_array_index(report->notes, i));
    for (guint i = 0; i < MIN(report->events->len, 3); i++)
        g_test_message("event: %s",
                       ((const IcEvent *)g_ptr_array_index(report->events, i))->message);
    assert_used_kept(&t, report);
    assert_sorted(report);
    tree_free(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/imagecache/redteam7/run_threads_agree", test_run_threads_agree);
    g_test_add_func("/imagecache/redteam7/report_threads_agree", test_report_threads_agree);
    g_test_add_func("/imagecache/redteam7/report_stable", test_report_stable);
    g_test_add_data_func("/imagecache/redteam7/fault/ledger_damaged",
                         GINT_TO_POINTER(FAULT_LEDGER_DAMAGED), test_fault);
    g_test_add_data_func("/imagecache/redteam7/fault/base_dir_gone",
                         GINT_TO_POINTER(FAULT_BASE_DIR_GONE), test_fault);
    g_test_add_data_func("/imagecache/redteam7/fault/unreadable", GINT_TO_POINTER(FAULT_UNREADABLE),
                         test_fault);
    return g_test_run();
}
