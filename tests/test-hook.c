/* test-hook.c — the real imagecache-hook binary (IMAGECACHE_HOOK) fed the domain XML libvirt
 * passes at each operation, Nova-style XML and hostile XML; the ledger it leaves is checked. */
#include "error.h"
#include "fileutil.h"
#include "imgwriter.h"
#include "ledger-store.h"
#include "protocol.h"
#include "testutil.h"
#include "usage.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <sys/resource.h>
#include <syslog.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_FP    "1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1"
#define NOVA_FP    "2a3b3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d2"
#define UUID_PREP  "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define UUID_START "3f2504e0-4f89-41d3-9a0c-0305e82c3302"
#define UUID_NOVA  "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"

typedef struct {
    const char *hook;
    char *root;
    char *instances;
    char *base_dir;
    char *ledger_dir;
    char *config;
} Fixture;

static void write_qcow2(const char *dir, const char *name, const char *backing)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *parent = g_path_get_dirname(path);
    g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_test_write_qcow2(path, 3, 1 << 20, backing, NULL, &error));
    g_assert_no_error(error);
}

static char *write_config(Fixture *f, const char *name, const char *host, gboolean strict,
                          const char *ledger_dir)
{
    g_autofree char *text =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=%s\n"
                        "ledger_dir=%s\nstrict_prepare=%s\n",
                        f->instances, host, ledger_dir, strict ? "true" : "false");
    return ic_test_write_file(f->root, name, text, -1);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->hook = g_getenv("IMAGECACHE_HOOK");
    f->root = ic_test_mkdtemp();
    f->instances = g_build_filename(f->root, "instances", NULL);
    f->base_dir = g_build_filename(f->instances, "_base", NULL);
    f->ledger_dir = g_build_filename(f->instances, "_ledger", NULL);
    f->config = write_config(f, "imagecache.conf", "hosta", FALSE, f->ledger_dir);

    /* The images the data files name: a relative backing name, a two-level chain. */
    write_qcow2(f->base_dir, BASE_FP, NULL);
    write_qcow2(f->base_dir, "mid.qcow2", BASE_FP);
    write_qcow2(f->base_dir, NOVA_FP, NULL);
    write_qcow2(f->instances, "vm-prepare/disk", "../_base/" BASE_FP);
    g_free(ic_test_write_file(f->instances, "vm-prepare/config.iso", "iso", -1));
    write_qcow2(f->instances, "vm-started/disk", "../_base/mid.qcow2");
    write_qcow2(f->instances, "vm-started/disk.local", NULL);
    g_autofree char *nova_base = g_build_filename(f->base_dir, NOVA_FP, NULL);
    write_qcow2(f->instances, UUID_NOVA "/disk", nova_base);
    g_free(ic_test_write_file(f->instances, UUID_NOVA "/disk.config", "iso", -1));
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    ic_test_rmtree(f->root);
    g_free(f->root);
    g_free(f->instances);
    g_free(f->base_dir);
    g_free(f->ledger_dir);
    g_free(f->config);
}

static gboolean have_hook(const Fixture *f)
{
    if (f->hook != NULL)
        return TRUE;
    g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
    return FALSE;
}

/* A data file with @INSTANCES@ replaced and, when @from is given, its one @from
 * replaced by @to, written to @out_name (default "stdin-<data_name>") for the
 * hook's stdin. */
static char *xml_file_edited(Fixture *f, const char *data_name, const char *from, const char *to,
                             const char *out_name)
{
    g_autofree char *src = ic_test_data_path("hook", data_name);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(src, &text, NULL, NULL));
    g_autoptr(GString) xml = g_string_new(text);
    g_string_replace(xml, "@INSTANCES@", f->instances, 0);
    if (from != NULL)
        g_assert_cmpuint(g_string_replace(xml, from, to, 1), ==, 1);
    g_autofree char *name = g_strconcat("stdin-", data_name, NULL);
    return ic_test_write_file(f->root, out_name != NULL ? out_name : name, xml->str,
                              (gssize)xml->len);
}

static char *xml_file(Fixture *f, const char *data_name)
{
    return xml_file_edited(f, data_name, NULL, NULL, NULL);
}

typedef struct {
    int status;
    char *out;
    char *err;
} HookRun;

static void hook_run_clear(HookRun *run)
{
    g_clear_pointer(&run->out, g_free);
    g_clear_pointer(&run->err, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(HookRun, hook_run_clear)

static GSubprocessLauncher *launcher_for(const char *config, const char *stdin_path,
                                         GSubprocessFlags flags)
{
    GSubprocessLauncher *launcher = g_subprocess_launcher_new(flags);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", config, TRUE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_HOOK_LOG_STDERR", "1", TRUE);
    /* The hook must keep stdout clean even with GLib's debug output on. */
    g_subprocess_launcher_setenv(launcher, "G_MESSAGES_DEBUG", "all", TRUE);
    if (stdin_path != NULL)
        g_subprocess_launcher_set_stdin_file_path(launcher, stdin_path);
    return launcher;
}

/* Runs the hook as libvirt does: `imagecache <name> <op> <subop> -`, XML on stdin. */
static void run_hook(Fixture *f, const char *config, const char *stdin_path, const char *op,
                     const char *subop, HookRun *run)
{
    g_autoptr(GSubprocessLauncher) launcher = launcher_for(
        config, stdin_path, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, f->hook, "vm", op, subop, "-", NULL);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_communicate_utf8(proc, NULL, NULL, &run->out, &run->err, &error));
    g_assert_no_error(error);
    g_assert_true(g_subprocess_get_if_exited(proc));
    run->status = g_subprocess_get_exit_status(proc);
    if (run->err != NULL && *run->err != '\0')
        g_test_message("hook %s %s stderr: %s", op, subop, run->err);
}

static guint count_lines(const char *text)
{
    guint n = 0;
    for (const char *p = text; p != NULL && *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

static IcLedger *read_ledger(const char *ledger_dir)
{
    IcLedger *ledger = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(
        ic_ledger_read_all(ledger_dir, g_get_real_time() / G_USEC_PER_SEC, 3600, &ledger, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ledger->errors->len, ==, 0);
    return ledger;
}

static const IcLedgerDomain *find_domain(const IcLedger *ledger, const char *host, const char *uuid)
{
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *h = ledger->hosts->pdata[i];
        if (strcmp(h->host, host) != 0)
            continue;
        for (guint j = 0; j < h->domains->len; j++) {
            const IcLedgerDomain *d = h->domains->pdata[j];
            if (strcmp(d->uuid, uuid) == 0)
                return d;
        }
    }
    return NULL;
}

/* The domain, which the test needs present (the release build's
 * -Wnull-dereference sees that g_assert_nonnull may return). */
static const IcLedgerDomain *get_domain(const IcLedger *ledger, const char *host, const char *uuid)
{
    const IcLedgerDomain *d = find_domain(ledger, host, uuid);
    if (d == NULL)
        g_error("domain %s of host %s is not in the ledger", uuid, host);
    return d;
}

static guint count_domains(const char *ledger_dir)
{
    g_autoptr(IcLedger) ledger = read_ledger(ledger_dir);
    guint n = 0;
    for (guint i = 0; i < ledger->hosts->len; i++)
        n += ((IcLedgerHost *)ledger->hosts->pdata[i])->domains->len;
    return n;
}

static char *base_path(Fixture *f, const char *name)
{
    return g_build_filename(f->base_dir, name, NULL);
}

static void assert_ok_silent(const HookRun *run)
{
    g_assert_cmpint(run->status, ==, 0);
    g_assert_cmpstr(run->out, ==, "");
    g_assert_cmpstr(run->err, ==, "");
}

/* ---- the operations ---- */

static void test_prepare(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    assert_ok_silent(&run);

    /* No <backingStore> at prepare: the chain came from the image headers. The
     * CD-ROM and the rbd disk are not users. */
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    const IcLedgerDomain *d = get_domain(ledger, "hosta", UUID_PREP);
    g_assert_cmpstr(d->name, ==, "ic-vm-prepare");
    g_assert_cmpuint(d->base_files->len, ==, 1);
    /* Named in the base dir, so a host mounting it elsewhere resolves it. */
    g_assert_cmpstr(d->base_files->pdata[0], ==, BASE_FP);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    g_assert_cmpint(d->started, <=, now);
    g_assert_cmpint(d->started, >, now - 60);
    /* The usage lock exists: prepare held it. */
    g_autofree char *lock = g_build_filename(f->ledger_dir, IC_PROTOCOL_LOCK_NAME, NULL);
    g_assert_true(ic_test_exists(lock));
}

/* Red team 8: a domain libvirt accepts, with <metadata> nested 130 levels and a
 * QEMU argument of 5,000 bytes (past the reader's caps, outside what it reads),
 * is recorded with its base file at prepare, silently. It was left unrecorded
 * (and reconcile failed for the whole host), so another host removed its base. */
static void test_past_caps_recorded(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autoptr(GString) extra = g_string_new("<metadata>");
    for (int i = 0; i < 130; i++)
        g_string_append(extra, "<a>");
    for (int i = 0; i < 130; i++)
        g_string_append(extra, "</a>");
    g_autofree char *long_value = g_strnfill(5000, 'x');
    g_string_append_printf(extra,
                           "</metadata><qemu:commandline "
                           "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                           "<qemu:arg value='%s'/></qemu:commandline></domain>",
                           long_value);
    g_autofree char *in =
        xml_file_edited(f, "prepare.xml", "</domain>", extra->str, "past-caps.xml");

    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    assert_ok_silent(&run);
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    const IcLedgerDomain *d = get_domain(ledger, "hosta", UUID_PREP);
    g_assert_cmpuint(d->base_files->len, ==, 1);
    g_assert_cmpstr(d->base_files->pdata[0], ==, BASE_FP);
    g_assert_null(d->unknown);
}

static void test_started(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "started.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "started", "begin", &run);
    assert_ok_silent(&run);

    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    const IcLedgerDomain *d = get_domain(ledger, "hosta", UUID_START);
    g_assert_cmpuint(d->base_files->len, ==, 2);
    g_assert_cmpstr(d->base_files->pdata[0], ==, BASE_FP);
    g_assert_cmpstr(d->base_files->pdata[1], ==, "mid.qcow2");

    /* reconnect (libvirtd restarted) records the same again. */
    g_auto(HookRun) again = {0};
    run_hook(f, f->config, in, "reconnect", "begin", &again);
    assert_ok_silent(&again);
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);
}

static void test_release(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) prepare = {0};
    run_hook(f, f->config, in, "prepare", "begin", &prepare);
    assert_ok_silent(&prepare);

    /* "stopped end" changes nothing; "release end" drops the domain. */
    g_auto(HookRun) stopped = {0};
    run_hook(f, f->config, in, "stopped", "end", &stopped);
    assert_ok_silent(&stopped);
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);

    g_auto(HookRun) release = {0};
    run_hook(f, f->config, in, "release", "end", &release);
    assert_ok_silent(&release);
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_null(find_domain(ledger, "hosta", UUID_PREP));
    const IcLedgerHost *host = ledger->hosts->pdata[0];
    g_assert_nonnull(g_hash_table_lookup(host->last_used, BASE_FP));
}

static void test_migrate_restore(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    /* libvirt takes stdout as replacement XML for these two: it must stay empty. */
    const char *ops[] = {"migrate", "restore"};
    g_autofree char *in = xml_file(f, "started.xml");
    for (guint i = 0; i < G_N_ELEMENTS(ops); i++) {
        g_auto(HookRun) run = {0};
        run_hook(f, f->config, in, ops[i], "begin", &run);
        assert_ok_silent(&run);
        g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);
        g_auto(HookRun) release = {0};
        run_hook(f, f->config, in, "release", "end", &release);
        assert_ok_silent(&release);
        g_assert_cmpuint(count_domains(f->ledger_dir), ==, 0);
    }
    /* Even failing, nothing goes to stdout. */
    g_autofree char *bad = xml_file(f, "malformed.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, bad, "migrate", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_cmpstr(run.out, ==, "");
    g_assert_cmpuint(count_lines(run.err), ==, 1);
}

static void test_nova(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "nova.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    assert_ok_silent(&run);
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    const IcLedgerDomain *d = get_domain(ledger, "hosta", UUID_NOVA);
    g_assert_cmpuint(d->base_files->len, ==, 1);
    g_assert_cmpuint(d->image_ids->len, ==, 2);
    g_assert_cmpstr(d->image_ids->pdata[0], ==, "155d900f-4e14-4e4c-a73d-069cbf4541e6");

    /* The image ref counts for every variant of its fingerprint. */
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "hosta", f->base_dir, usage);
    const IcUsers *users = ic_usage_lookup_image(usage, "155d900f-4e14-4e4c-a73d-069cbf4541e6");
    g_assert_nonnull(users);
    g_assert_cmpuint(users->local, ==, 1);
}

static void test_quiet_ops(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    /* Operations the hook has no business with: exit 0, say nothing, touch nothing. */
    const char *ops[][2] = {
        {"stopped", "end"},  {"prepare", "end"},    {"started", "end"},   {"migrate", "end"},
        {"attach", "begin"}, {"frobnicate", "now"}, {"release", "begin"}, {"", ""}};
    g_autofree char *in = xml_file(f, "prepare.xml");
    for (guint i = 0; i < G_N_ELEMENTS(ops); i++) {
        g_auto(HookRun) run = {0};
        run_hook(f, f->config, in, ops[i][0], ops[i][1], &run);
        assert_ok_silent(&run);
    }
    g_assert_false(ic_test_exists(f->ledger_dir));
}

typedef struct {
    const char *file;
    gboolean strict;
} HostileCase;

static const HostileCase hostile_cases[] = {
    {"malformed.xml", FALSE},
    {"malformed.xml", TRUE},
    {"billion-laughs.xml", FALSE},
    {"billion-laughs.xml", TRUE},
    {"external-entity.xml", FALSE},
    {"external-entity.xml", TRUE},
    {"undeclared-entity.xml", FALSE},
    {"no-uuid.xml", FALSE},
    {"huge", FALSE},
    {"huge", TRUE},
};

static char *generated_xml(Fixture *f, const char *kind)
{
    g_autoptr(GString) xml = g_string_new("<domain type='qemu'><name>hostile</name>"
                                          "<uuid>3f2504e0-4f89-41d3-9a0c-0305e82c33ff</uuid>"
                                          "<devices>");
    if (strcmp(kind, "huge") == 0) {
        /* Well-formed, just over the cap: a comment of 4 MiB. */
        g_string_append(xml, "<!--");
        while (xml->len <= 4 * 1024 * 1024)
            g_string_append(xml, "padding padding padding padding ");
        g_string_append(xml, "-->");
    } else {
        for (int i = 0; i < 10000; i++)
            g_string_append_printf(xml,
                                   "<disk type='file' device='disk'>"
                                   "<source file='%s/vm-prepare/disk'/></disk>",
                                   f->instances);
    }
    g_string_append(xml, "</devices></domain>");
    g_autofree char *name = g_strconcat("stdin-", kind, ".xml", NULL);
    return ic_test_write_file(f->root, name, xml->str, (gssize)xml->len);
}

/* Issue 12 item 7: a domain with more disks than the limit is recorded with
 * the disks that were read, and the rest is logged loudly (strict_prepare
 * refuses the start) instead of the whole domain going unrecorded. */
static void test_many_disks(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = generated_xml(f, "many-disks");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_cmpstr(run.out, ==, "");
    g_assert_cmpuint(count_lines(run.err), ==, 1);
    g_assert_nonnull(strstr(run.err, "past the limit"));
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    const IcLedgerDomain *d = get_domain(ledger, "hosta", "3f2504e0-4f89-41d3-9a0c-0305e82c33ff");
    g_assert_cmpuint(d->base_files->len, ==, 1);
    g_assert_cmpstr(d->base_files->pdata[0], ==, BASE_FP);

    g_autofree char *strict = write_config(f, "strict.conf", "hosta", TRUE, f->ledger_dir);
    g_auto(HookRun) refused = {0};
    run_hook(f, strict, in, "prepare", "begin", &refused);
    g_assert_cmpint(refused.status, ==, 1);
}

static void test_hostile(Fixture *f, gconstpointer data)
{
    const HostileCase *c = data;
    if (!have_hook(f))
        return;
    g_autofree char *in =
        g_str_has_suffix(c->file, ".xml") ? xml_file(f, c->file) : generated_xml(f, c->file);
    g_autofree char *config = c->strict
                                  ? write_config(f, "strict.conf", "hosta", TRUE, f->ledger_dir)
                                  : g_strdup(f->config);
    g_auto(HookRun) run = {0};
    run_hook(f, config, in, "prepare", "begin", &run);
    /* Logged once; the start goes ahead unless strict_prepare. */
    g_assert_cmpint(run.status, ==, c->strict ? 1 : 0);
    g_assert_cmpstr(run.out, ==, "");
    g_assert_cmpuint(count_lines(run.err), ==, 1);
    g_assert_true(strstr(run.err, "domain XML") != NULL || strstr(run.err, "<uuid>") != NULL);
    g_assert_false(ic_test_exists(f->ledger_dir));

    /* At other operations strictness does not apply. */
    g_auto(HookRun) started = {0};
    run_hook(f, config, in, "started", "begin", &started);
    g_assert_cmpint(started.status, ==, 0);
    g_assert_cmpuint(count_lines(started.err), ==, 1);
}

static void test_unwritable(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    /* A ledger dir under a regular file cannot be created, even by root. */
    g_free(ic_test_write_file(f->root, "plain", "x", -1));
    g_autofree char *bad_dir = g_build_filename(f->root, "plain", "ledger", NULL);
    g_autofree char *config = write_config(f, "bad.conf", "hosta", FALSE, bad_dir);
    g_autofree char *strict = write_config(f, "strict.conf", "hosta", TRUE, bad_dir);
    g_autofree char *in = xml_file(f, "prepare.xml");

    g_auto(HookRun) run = {0};
    run_hook(f, config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_cmpstr(run.out, ==, "");
    /* A ledger dir outside instances_path that is not a marked shared ledger: the
     * hook writes nothing there and says so once; the start goes ahead. */
    g_assert_cmpuint(count_lines(run.err), ==, 1);
    g_assert_nonnull(strstr(run.err, bad_dir));
    g_assert_nonnull(strstr(run.err, "unrecorded"));

    g_auto(HookRun) strict_run = {0};
    run_hook(f, strict, in, "prepare", "begin", &strict_run);
    g_assert_cmpint(strict_run.status, ==, 1);
    g_assert_cmpuint(count_lines(strict_run.err), ==, 1);
    g_assert_nonnull(strstr(strict_run.err, "strict_prepare"));

    /* Release with an unwritable ledger: logged, never fails. */
    g_auto(HookRun) release = {0};
    run_hook(f, strict, in, "release", "end", &release);
    g_assert_cmpint(release.status, ==, 0);
    g_assert_cmpuint(count_lines(release.err), ==, 1);
}

static void test_missing_disk(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *disk = g_build_filename(f->instances, "vm-prepare", "disk", NULL);
    g_assert_cmpint(g_unlink(disk), ==, 0);
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_cmpuint(count_lines(run.err), ==, 1);
    g_assert_nonnull(strstr(run.err, disk));
    /* The domain itself is still recorded. */
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);

    g_autofree char *strict = write_config(f, "strict.conf", "hosta", TRUE, f->ledger_dir);
    g_auto(HookRun) strict_run = {0};
    run_hook(f, strict, in, "prepare", "begin", &strict_run);
    g_assert_cmpint(strict_run.status, ==, 1);
}

static void limit_file_size(gpointer data)
{
    struct rlimit limit = {.rlim_cur = 64, .rlim_max = 64};
    setrlimit(RLIMIT_FSIZE, &limit);
}

/* Red team 8: under a file size limit (libvirtd's LimitFSIZE) smaller than the
 * ledger, SIGXFSZ killed the hook with nothing logged, and libvirt refused the
 * start. The write fails with EFBIG instead: logged, the temp file removed, the
 * old ledger kept, the start let through (strict_prepare would refuse it). */
static void test_file_size_limit(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) first = {0};
    run_hook(f, f->config, in, "prepare", "begin", &first);
    assert_ok_silent(&first);
    g_autofree char *ledger = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
    g_autofree char *before = NULL;
    g_assert_true(g_file_get_contents(ledger, &before, NULL, NULL));

    g_autofree char *started = xml_file(f, "started.xml");
    g_autoptr(GSubprocessLauncher) launcher = launcher_for(
        f->config, started, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_set_child_setup(launcher, limit_file_size, NULL, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, f->hook, "vm", "prepare", "begin", "-", NULL);
    g_assert_no_error(error);
    g_autofree char *err = NULL;
    g_assert_true(g_subprocess_communicate_utf8(proc, NULL, NULL, NULL, &err, &error));
    g_assert_no_error(error);
    g_assert_true(g_subprocess_get_if_exited(proc));
    g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);
    g_assert_nonnull(strstr(err, "hosta.ledger"));
    g_assert_nonnull(strstr(err, g_strerror(EFBIG)));
    g_autofree char *after = NULL;
    g_assert_true(g_file_get_contents(ledger, &after, NULL, NULL));
    g_assert_cmpstr(after, ==, before);
    g_autofree char *temp = g_build_filename(f->ledger_dir, "hosta.ledger.tmp", NULL);
    g_assert_false(ic_test_exists(temp));
}

static void on_waited(GObject *source, GAsyncResult *result, gpointer done)
{
    g_subprocess_wait_finish(G_SUBPROCESS(source), result, NULL);
    *(gboolean *)done = TRUE;
}

/* The hook's prepare with a disk gone (so it logs), its syslog socket @socket_path. */
static GSubprocess *prepare_logging_to(Fixture *f, const char *socket_path)
{
    g_autofree char *in =
        xml_file_edited(f, "prepare.xml", "vm-prepare/disk'", "vm-prepare/gone'", "gone.xml");
    g_autoptr(GSubprocessLauncher) launcher = launcher_for(
        f->config, in, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_unsetenv(launcher, "IMAGECACHE_HOOK_LOG_STDERR");
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_HOOK_SYSLOG_SOCKET", socket_path, TRUE);
    g_autoptr(GError) error = NULL;
    GSubprocess *proc =
        g_subprocess_launcher_spawn(launcher, &error, f->hook, "vm", "prepare", "begin", "-", NULL);
    g_assert_no_error(error);
    return proc;
}

/* Red team 8: with the log daemon's queue full (a hung journald), syslog(3) blocked
 * the hook, and libvirtd, which waits for it without a timeout, hung the start. The
 * hook sends without waiting: the message a daemon cannot take goes to stderr, the
 * domain is recorded, the hook exits at once; a daemon that reads gets syslog's line. */
static void test_syslog_never_waits(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *path = g_build_filename(f->root, "log.sock", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocket) daemon = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, &error);
    g_assert_no_error(error);
    g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
    g_assert_true(g_socket_bind(daemon, address, FALSE, &error));
    g_assert_no_error(error);

    /* A daemon that reads: the line arrives as syslog(3) formats it. */
    g_autoptr(GSubprocess) first = prepare_logging_to(f, path);
    g_assert_true(g_subprocess_wait(first, NULL, &error));
    g_assert_cmpint(g_subprocess_get_exit_status(first), ==, 0);
    char line[4096] = "";
    g_socket_set_blocking(daemon, FALSE);
    gssize n = g_socket_receive(daemon, line, sizeof line - 1, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpint(n, >, 0);
    g_autofree char *pri = g_strdup_printf("<%d>", LOG_DAEMON | LOG_ERR);
    g_assert_true(g_str_has_prefix(line, pri));
    g_assert_nonnull(strstr(line, "imagecache-hook["));
    g_assert_nonnull(strstr(line, "vm-prepare/gone"));
    while (g_socket_receive(daemon, line, sizeof line, NULL, NULL) > 0)
        ;

    /* A daemon that no longer reads: its queue filled up to the last datagram. */
    g_autoptr(GSocket) writer = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, &error);
    g_assert_no_error(error);
    g_socket_set_blocking(writer, FALSE);
    guint sent = 0;
    while (g_socket_send_to(writer, address, "x", 1, NULL, NULL) == 1)
        sent++;
    g_assert_cmpuint(sent, >, 0);
    g_autoptr(GSubprocess) proc = prepare_logging_to(f, path);
    gboolean done = FALSE;
    g_subprocess_wait_async(proc, NULL, on_waited, &done);
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (!done && g_get_monotonic_time() < deadline)
        g_main_context_iteration(NULL, TRUE);
    if (!done) {
        g_subprocess_force_exit(proc);
        g_error("the hook waited 30 s on a log daemon whose queue is full");
    }
    g_assert_true(g_subprocess_get_if_exited(proc));
    g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);
    g_autoptr(GBytes) bytes =
        g_input_stream_read_bytes(g_subprocess_get_stderr_pipe(proc), 65536, NULL, &error);
    g_assert_no_error(error);
    gsize size = 0;
    const char *bytes_data = g_bytes_get_data(bytes, &size);
    g_autofree char *err = g_strndup(bytes_data, size);
    g_assert_nonnull(strstr(err, "vm-prepare/gone"));
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_nonnull(find_domain(ledger, "hosta", UUID_PREP));
}

static void test_bad_config(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *missing = g_build_filename(f->root, "nonexistent.conf", NULL);
    g_autofree char *bogus =
        ic_test_write_file(f->root, "bogus.conf", "[imagecache]\nno_such_key=1\n", -1);
    g_autofree char *in = xml_file(f, "prepare.xml");
    const char *configs[] = {missing, bogus};
    for (guint i = 0; i < G_N_ELEMENTS(configs); i++) {
        g_auto(HookRun) run = {0};
        run_hook(f, configs[i], in, "prepare", "begin", &run);
        g_assert_cmpint(run.status, ==, 0);
        g_assert_cmpuint(count_lines(run.err), ==, 1);
    }
}

static void test_concurrent(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    /* 64 domains start at once on one host: every one must be in the ledger. */
    enum { N = 64 };
    g_autofree char *src = ic_test_data_path("hook", "prepare.xml");
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(src, &text, NULL, NULL));
    GSubprocess *procs[N];
    for (int i = 0; i < N; i++) {
        g_autoptr(GString) xml = g_string_new(text);
        g_string_replace(xml, "@INSTANCES@", f->instances, 0);
        g_autofree char *uuid = g_strdup_printf("00000000-0000-4000-8000-%012d", i);
        g_autofree char *name = g_strdup_printf("<name>vm-%d</name>", i);
        g_string_replace(xml, UUID_PREP, uuid, 0);
        g_string_replace(xml, "<name>ic-vm-prepare</name>", name, 0);
        g_autofree char *file_name = g_strdup_printf("stdin-%d.xml", i);
        g_autofree char *path = ic_test_write_file(f->root, file_name, xml->str, (gssize)xml->len);
        g_autoptr(GSubprocessLauncher) launcher =
            launcher_for(f->config, path, G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
        g_autoptr(GError) error = NULL;
        const char *op = i % 2 == 0 ? "prepare" : "started";
        procs[i] =
            g_subprocess_launcher_spawn(launcher, &error, f->hook, "vm", op, "begin", "-", NULL);
        g_assert_no_error(error);
    }
    for (int i = 0; i < N; i++) {
        g_autoptr(GError) error = NULL;
        g_assert_true(g_subprocess_wait_check(procs[i], NULL, &error));
        g_assert_no_error(error);
        g_object_unref(procs[i]);
    }
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, N);
}

static void test_two_hosts(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    /* Two hosts sharing instance storage (and so the ledger dir). */
    g_autofree char *config_b = write_config(f, "b.conf", "hostb", FALSE, f->ledger_dir);
    g_autofree char *prep = xml_file(f, "prepare.xml");
    g_autofree char *started = xml_file(f, "started.xml");
    g_auto(HookRun) a = {0};
    run_hook(f, f->config, prep, "prepare", "begin", &a);
    assert_ok_silent(&a);
    g_auto(HookRun) b = {0};
    run_hook(f, config_b, started, "prepare", "begin", &b);
    assert_ok_silent(&b);

    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_cmpuint(ledger->hosts->len, ==, 2);
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "hosta", f->base_dir, usage);
    g_autofree char *orig = base_path(f, BASE_FP);
    const IcUsers *users = ic_usage_lookup_path(usage, orig);
    g_assert_nonnull(users);
    g_assert_cmpuint(users->local, ==, 1);
    g_assert_cmpuint(users->remote, ==, 1);
    g_assert_true(ic_test_users_have(users, "ic-vm-started@hostb"));

    /* hostb releasing its domain leaves hosta's entry alone. */
    g_auto(HookRun) release = {0};
    run_hook(f, config_b, started, "release", "end", &release);
    assert_ok_silent(&release);
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);
}

/* What the dynamic loader maps for the hook, as `ldd` lists it. */
static char **hook_libraries(Fixture *f)
{
    g_autofree char *out = NULL;
    g_autofree char *ldd = g_find_program_in_path("ldd");
    g_assert_nonnull(ldd); /* libc-bin: always there on Debian */
    const char *argv[] = {ldd, f->hook, NULL};
    int status = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                               &out, NULL, &status, &error));
    g_assert_no_error(error);
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        g_autofree char *line = g_strstrip(g_strdup(lines[i]));
        if (*line == '\0')
            continue;
        line[strcspn(line, " \t")] = '\0'; /* "libc.so.6 => /lib/...", "/lib64/ld-linux..." */
        g_ptr_array_add(names, g_path_get_basename(line));
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

static gboolean has_prefix_in(const char *name, const char *const *prefixes)
{
    for (guint i = 0; prefixes[i] != NULL; i++)
        if (g_str_has_prefix(name, prefixes[i]))
            return TRUE;
    return FALSE;
}

/* It runs inside every VM start: libvirt and libcrypto would cost ~25 ms, and
 * mapping libglib and libpcre2 at each exec most of what it pays over an empty
 * C program. So it loads libc (and what a sanitizer build adds) and nothing
 * else; with -Dhook_static_glib=false GLib too; with -Dhook_static_libc (the
 * default) nothing at all. */
static void test_links_libc_only(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    gboolean static_glib = g_strcmp0(g_getenv("IMAGECACHE_HOOK_STATIC_GLIB"), "true") == 0;
    if (g_strcmp0(g_getenv("IMAGECACHE_HOOK_STATIC_LIBC"), "true") == 0) {
        g_auto(GStrv) libraries = hook_libraries(f);
        /* ldd on a static PIE: "statically linked", nothing else. */
        g_assert_cmpstr(libraries[0], ==, "statically");
        g_assert_null(libraries[1]);
        return;
    }
    const char *always[] = {"linux-vdso.so", "ld-linux", "libc.so", "libm.so",
                            /* -Db_sanitize builds */
                            "libasan.so", "libubsan.so", "libstdc++.so", "libgcc_s.so", NULL};
    const char *glib[] = {"libglib-2.0.so", "libpcre2-8.so", NULL};
    g_auto(GStrv) libraries = hook_libraries(f);
    gboolean saw_libc = FALSE, saw_glib = FALSE;
    for (guint i = 0; libraries[i] != NULL; i++) {
        if (!has_prefix_in(libraries[i], always) &&
            (static_glib || !has_prefix_in(libraries[i], glib)))
            g_error("the hook loads '%s'", libraries[i]);
        saw_libc |= g_str_has_prefix(libraries[i], "libc.so");
        saw_glib |= g_str_has_prefix(libraries[i], "libglib-2.0.so");
    }
    g_assert_true(saw_libc); /* the listing was read at all */
    if (!static_glib)
        g_assert_true(saw_glib);
}

/* ---- the usage lock's bound (issue 11) ---- */

/* A pass holds the usage lock past the hook's bound: the hook gives up after
 * prepare_lock_wait_seconds; by default it records the domain anyway and lets
 * the start go ahead, with an error in the log; strict_prepare refuses it. */
static void test_prepare_lock_bound(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    gboolean strict = data != NULL;
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nhost=hosta\nledger_dir=%s\nstrict_prepare=%s\n"
        "prepare_lock_wait_seconds=1\n",
        f->instances, f->ledger_dir, strict ? "true" : "false");
    g_autofree char *config = ic_test_write_file(f->root, "bound.conf", text, -1);
    g_autoptr(GError) error = NULL;
    ic_autofd pass = -1;
    g_assert_true(ic_protocol_lock_for_removal(f->ledger_dir, 1000, NULL, &pass, &error));
    g_assert_no_error(error);

    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    gint64 started = g_get_monotonic_time();
    run_hook(f, config, in, "prepare", "begin", &run);
    gint64 waited = g_get_monotonic_time() - started;
    g_assert_cmpint(waited, >=, 1 * G_USEC_PER_SEC);
    g_assert_cmpint(waited, <, 5 * G_USEC_PER_SEC);
    g_assert_cmpstr(run.out, ==, "");
    if (strict) {
        g_assert_cmpint(run.status, ==, 1);
        g_assert_nonnull(strstr(run.err, "refusing the start"));
        g_assert_false(ic_test_exists(f->ledger_dir) && count_domains(f->ledger_dir) > 0);
    } else {
        g_assert_cmpint(run.status, ==, 0);
        g_assert_nonnull(strstr(run.err, "without it"));
        g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);
    }
}

/* Issue 11 item 4: any valid host name works, "usage" included (it once named
 * the global usage lock's file, so every prepare waited on itself). */
static void test_host_named_usage(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    const char *host = data;
    g_autofree char *config = write_config(f, "usage-host.conf", host, TRUE, f->ledger_dir);
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    gint64 started = g_get_monotonic_time();
    run_hook(f, config, in, "prepare", "begin", &run);
    g_assert_cmpint(g_get_monotonic_time() - started, <, 5 * G_USEC_PER_SEC);
    assert_ok_silent(&run);
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_nonnull(find_domain(ledger, host, UUID_PREP));
}

/* ---- red-team findings ---- */

#define UUID_RT "11111111-2222-3333-4444-0000000000aa"

/* A domain XML with one disk: <disk type=@type device=@device> over @source. */
static char *one_disk_xml(Fixture *f, const char *type, const char *device, const char *format,
                          const char *source)
{
    g_autofree char *text = g_strdup_printf(
        "<domain type='kvm'><name>vm-rt</name><uuid>" UUID_RT "</uuid><devices>"
        "<disk type='%s' device='%s'><driver name='qemu' type='%s'/>%s<target dev='vda'/>"
        "</disk></devices></domain>",
        type, device, format, source);
    return ic_test_write_file(f->root, "stdin-rt.xml", text, -1);
}

/* The usage another host's pass would see from the ledger alone. */
static IcUsage *ledger_usage(Fixture *f, const char *local_host)
{
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    IcUsage *usage = ic_usage_new();
    ic_ledger_add_usage(ledger, local_host, f->base_dir, usage);
    return usage;
}

static gboolean has_note(const IcUsage *usage, IcNoteCode code, const char *text)
{
    for (guint i = 0; i < usage->notes->len; i++) {
        if (g_array_index(usage->note_codes, IcNoteCode, i) == code &&
            strstr(usage->notes->pdata[i], text) != NULL)
            return TRUE;
    }
    return FALSE;
}

/* Red-team #1: a disk whose chain cannot be followed (json: backing, a chain
 * too deep) records the domain as unknown, and every pass keeps every file. */
static void test_unknown_chain(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    const char *kind = data;
    g_autofree char *disk = g_build_filename(f->instances, "vm-rt", "disk", NULL);
    if (strcmp(kind, "json") == 0) {
        write_qcow2(f->instances, "vm-rt/disk",
                    "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\","
                    "\"filename\":\"/nowhere/x\"}}");
    } else {
        /* Deeper than the probe follows: each layer backs onto the next. */
        write_qcow2(f->instances, "vm-rt/l0", "../_base/" BASE_FP);
        for (guint i = 1; i <= 300; i++) {
            g_autofree char *name = g_strdup_printf("vm-rt/l%u", i);
            g_autofree char *backing = g_strdup_printf("l%u", i - 1);
            write_qcow2(f->instances, name, backing);
        }
        g_autofree char *top = g_build_filename(f->instances, "vm-rt", "l300", NULL);
        g_assert_cmpint(rename(top, disk), ==, 0);
    }
    g_autofree char *source = g_strdup_printf("<source file='%s'/>", disk);
    g_autofree char *in = one_disk_xml(f, "file", "disk", "qcow2", source);
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_nonnull(strstr(run.err, "usage unknown"));

    g_autoptr(IcUsage) usage = ledger_usage(f, "hostb");
    g_assert_true(usage->incomplete);
    g_assert_true(has_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, "host 'hosta'"));
    g_assert_true(has_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, "vm-rt"));
    g_assert_true(has_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, disk));

    /* Released: known again. */
    g_auto(HookRun) release = {0};
    run_hook(f, f->config, in, "release", "end", &release);
    g_autoptr(IcUsage) after = ledger_usage(f, "hostb");
    g_assert_false(after->incomplete);
}

/* Red-team #2: a CD-ROM, LUN or floppy overlay of a base file is recorded; a
 * type='volume' disk marks the domain unknown. */
static void test_every_device(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    const char *device = data;
    write_qcow2(f->instances, "vm-rt/disk", "../_base/" BASE_FP);
    g_autofree char *disk = g_build_filename(f->instances, "vm-rt", "disk", NULL);
    g_autofree char *source = g_strdup_printf("<source file='%s'/>", disk);
    g_autofree char *in = one_disk_xml(f, "file", device, "qcow2", source);
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    assert_ok_silent(&run);
    g_autoptr(IcUsage) usage = ledger_usage(f, "hostb");
    g_assert_false(usage->incomplete);
    g_autofree char *base = base_path(f, BASE_FP);
    g_assert_nonnull(g_hash_table_lookup(usage->by_path, base));
}

static void test_volume_disk(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in =
        one_disk_xml(f, "volume", "disk", "qcow2", "<source pool='default' volume='v.qcow2'/>");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_autoptr(IcUsage) usage = ledger_usage(f, "hostb");
    g_assert_true(usage->incomplete);
    g_assert_true(has_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, "type='volume'"));
}

/* Red-team #7: a base file name that is not UTF-8 is never written (GKeyFile
 * would refuse the whole file on read); the domain is recorded as unknown. */
static void test_non_utf8_name(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_free(ic_test_write_file(f->base_dir, "weird\xff", "raw", -1));
    write_qcow2(f->instances, "vm-rt/disk", "../_base/weird\xff");
    g_autofree char *disk = g_build_filename(f->instances, "vm-rt", "disk", NULL);
    g_autofree char *source = g_strdup_printf("<source file='%s'/>", disk);
    g_autofree char *in = one_disk_xml(f, "file", "disk", "qcow2", source);
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_nonnull(strstr(run.err, "not UTF-8"));
    /* read_ledger asserts the file reads back without error. */
    g_autoptr(IcUsage) usage = ledger_usage(f, "hostb");
    g_assert_true(usage->incomplete);
    g_assert_true(has_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, "not UTF-8"));
    /* Another domain is still recorded in the same file. */
    g_autofree char *prep = xml_file(f, "prepare.xml");
    g_auto(HookRun) second = {0};
    run_hook(f, f->config, prep, "prepare", "begin", &second);
    assert_ok_silent(&second);
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 2);
}

/* Red-team #8: a usage-lock error other than BUSY still records the domain. */
static void test_lock_error_records(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_assert_cmpint(g_mkdir_with_parents(f->ledger_dir, 0755), ==, 0);
    g_autofree char *lock = g_build_filename(f->ledger_dir, ".usage.lock", NULL);
    g_assert_cmpint(g_mkdir(lock, 0755), ==, 0);
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    run_hook(f, f->config, in, "prepare", "begin", &run);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_nonnull(strstr(run.err, "without it"));
    g_assert_cmpuint(count_domains(f->ledger_dir), ==, 1);
}

/* Red-team #9: the usage lock and the host lock share one deadline at
 * prepare: prepare_lock_wait_seconds in all, both locks held by the test. */
static void test_one_deadline(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *text =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=hosta\nledger_dir=%s\n"
                        "prepare_lock_wait_seconds=1\n",
                        f->instances, f->ledger_dir);
    g_autofree char *config = ic_test_write_file(f->root, "bound.conf", text, -1);
    g_autoptr(GError) error = NULL;
    ic_autofd pass = -1;
    g_assert_true(ic_protocol_lock_for_removal(f->ledger_dir, 1000, NULL, &pass, &error));
    g_assert_no_error(error);
    ic_autofd dirfd = -1;
    g_assert_true(ic_ledger_open_dir(f->ledger_dir, &dirfd, &error));
    ic_autofd host_lock = -1;
    g_assert_true(ic_protocol_lock_file_at(dirfd, -1, "hosta.lock", -1, TRUE,
                                           g_get_monotonic_time() + G_USEC_PER_SEC, NULL, NULL,
                                           &host_lock, &error));
    g_assert_no_error(error);

    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) run = {0};
    gint64 started = g_get_monotonic_time();
    run_hook(f, config, in, "prepare", "begin", &run);
    gint64 waited = g_get_monotonic_time() - started;
    g_test_message("prepare waited %" G_GINT64_FORMAT " ms with both locks held", waited / 1000);
    g_assert_cmpint(run.status, ==, 0);
    g_assert_cmpint(waited, >=, 1 * G_USEC_PER_SEC);
    g_assert_cmpint(waited, <, 3 * G_USEC_PER_SEC);
}

/* Red-team #6: two machines configured with one host name: the second one's
 * write is refused, loudly, and a pass notes the collision. */
static void test_host_collision(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) first = {0};
    g_setenv("IMAGECACHE_MACHINE_ID", "aaaa0001", TRUE);
    run_hook(f, f->config, in, "prepare", "begin", &first);
    assert_ok_silent(&first);

    g_autofree char *started_in = xml_file(f, "started.xml");
    g_setenv("IMAGECACHE_MACHINE_ID", "bbbb0002", TRUE);
    g_autofree char *strict = write_config(f, "strict.conf", "hosta", TRUE, f->ledger_dir);
    g_auto(HookRun) clone = {0};
    run_hook(f, strict, started_in, "prepare", "begin", &clone);
    g_assert_cmpint(clone.status, ==, 1);
    g_assert_nonnull(strstr(clone.err, "aaaa0001"));
    /* The first machine's domain is still there, the clone's was not written. */
    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_nonnull(find_domain(ledger, "hosta", UUID_PREP));
    g_assert_null(find_domain(ledger, "hosta", UUID_START));

    /* The clone's pass notes it and removes nothing. */
    g_autoptr(IcUsage) usage = ledger_usage(f, "hosta");
    g_assert_true(usage->incomplete);
    g_assert_true(has_note(usage, IC_NOTE_HOST_NAME_COLLISION, "bbbb0002"));
    g_unsetenv("IMAGECACHE_MACHINE_ID");
}

/* Lines of @trace (strace output) that contain every one of @needles (NULL-terminated). */
static guint count_trace_lines(char **lines, const char *const *needles)
{
    guint n = 0;
    for (char **line = lines; *line != NULL; line++) {
        gboolean all = TRUE;
        for (const char *const *needle = needles; *needle != NULL && all; needle++)
            all = strstr(*line, *needle) != NULL;
        n += all;
    }
    return n;
}

/* The hook's system calls for `<op> <subop>` with @stdin_path, as strace -f -y prints
 * them, split in lines; NULL (the test skipped) where strace is missing or cannot
 * trace. Asserts the hook exited 0. @env: "KEY=VALUE" to set, "KEY" to unset (or NULL). */
static char **trace_hook(Fixture *f, const char *stdin_path, const char *op, const char *subop,
                         const char *const *env)
{
    g_autofree char *strace = g_find_program_in_path("strace");
    if (strace == NULL) {
        g_test_skip("strace is not installed");
        return NULL;
    }
    g_autofree char *name = g_strdup_printf("%s-%s.strace", op, subop);
    g_autofree char *trace_path = g_build_filename(f->root, name, NULL);
    g_autoptr(GSubprocessLauncher) launcher =
        launcher_for(f->config, stdin_path, G_SUBPROCESS_FLAGS_NONE);
    for (guint i = 0; env != NULL && env[i] != NULL; i++) {
        g_auto(GStrv) pair = g_strsplit(env[i], "=", 2);
        if (pair[1] != NULL)
            g_subprocess_launcher_setenv(launcher, pair[0], pair[1], TRUE);
        else
            g_subprocess_launcher_unsetenv(launcher, pair[0]);
    }
    /* LeakSanitizer refuses to run under ptrace (scripts/sanitize.sh builds the hook with it). */
    const char *asan = g_getenv("ASAN_OPTIONS");
    g_autofree char *no_leaks =
        g_strconcat(asan ? asan : "", asan ? ":" : "", "detect_leaks=0", NULL);
    g_subprocess_launcher_setenv(launcher, "ASAN_OPTIONS", no_leaks, TRUE);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, strace, "-f", "-qq", "-y", "-o", trace_path,
                                    f->hook, "vm", op, subop, "-", NULL);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_wait(proc, NULL, &error));
    g_autofree char *trace = NULL;
    if (!g_file_get_contents(trace_path, &trace, NULL, NULL) || strstr(trace, "execve(") == NULL) {
        g_test_skip("strace cannot trace here (no ptrace?)");
        return NULL;
    }
    g_assert_true(g_subprocess_get_if_exited(proc));
    g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);
    return g_strsplit(trace, "\n", -1);
}

/* Issue 15: a prepare asks the kernel nothing it already knows. The ledger dir
 * is stat'ed once (the locality walk's lstat), opened once for the usage lock
 * and the host file, never made when it exists, and synced through that fd;
 * the temp file's name costs no /dev/urandom and no listing of the shared dir;
 * the write stays durable (file and dir fsync, rename). */
static void test_syscalls(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    g_autofree char *in = xml_file(f, "prepare.xml");
    g_auto(HookRun) first = {0};
    run_hook(f, f->config, in, "prepare", "begin", &first);
    assert_ok_silent(&first);

    /* The second prepare: the ledger dir and the lock file exist. */
    g_auto(GStrv) lines = trace_hook(f, in, "prepare", "begin", NULL);
    if (lines == NULL)
        return;
    g_autofree char *quoted = g_strdup_printf("\"%s\"", f->ledger_dir);

    const char *mkdir_calls[] = {"mkdir(", NULL};
    g_assert_cmpuint(count_trace_lines(lines, mkdir_calls), ==, 0);
    const char *dir_opens[] = {quoted, "O_DIRECTORY", NULL};
    g_assert_cmpuint(count_trace_lines(lines, dir_opens), ==, 1);
    const char *dir_stats[] = {quoted, "stat", NULL};
    g_assert_cmpuint(count_trace_lines(lines, dir_stats), ==, 1);
    const char *urandom[] = {"/dev/urandom", NULL};
    g_assert_cmpuint(count_trace_lines(lines, urandom), ==, 0);
    const char *fsyncs[] = {"fsync(", NULL};
    g_assert_cmpuint(count_trace_lines(lines, fsyncs), ==, 2);
    const char *renames[] = {"rename", NULL};
    g_assert_cmpuint(count_trace_lines(lines, renames), ==, 1);
    /* The directory is synced through the fd the hook opened it with. */
    g_autofree char *dir_fd = NULL;
    for (char **line = lines; *line != NULL && dir_fd == NULL; line++) {
        const char *result = strstr(*line, ") = ");
        if (strstr(*line, quoted) != NULL && strstr(*line, "O_DIRECTORY") != NULL && result)
            dir_fd = g_strdup_printf("fsync(%d<", atoi(result + 4));
    }
    g_assert_nonnull(dir_fd);
    const char *dir_sync[] = {dir_fd, NULL};
    g_assert_cmpuint(count_trace_lines(lines, dir_sync), ==, 1);
    const char *shared_lock[] = {"F_OFD_SETLK", "F_RDLCK", NULL};
    g_assert_cmpuint(count_trace_lines(lines, shared_lock), ==, 2);
    /* The ledger dir, shared by every host of a cell, is never listed: the
     * write's temp file has one name per host, so no leftover is looked for
     * (strace -y names each fd's file; the dir as the kernel names it). */
    g_autofree char *real_dir = realpath(f->ledger_dir, NULL);
    g_assert_nonnull(real_dir);
    g_autofree char *dir_named = g_strdup_printf("<%s>", real_dir);
    const char *dir_open_named[] = {dir_named, "O_DIRECTORY", NULL};
    g_assert_cmpuint(count_trace_lines(lines, dir_open_named), >=, 1);
    const char *listings[] = {"getdents", dir_named, NULL};
    g_assert_cmpuint(count_trace_lines(lines, listings), ==, 0);

    g_autoptr(IcLedger) ledger = read_ledger(f->ledger_dir);
    g_assert_nonnull(find_domain(ledger, "hosta", UUID_PREP));
}

/* A hook linked with a static libc must never load a module at run time: glibc
 * loads NSS and iconv modules with dlopen, built for the libc they came with, not
 * the one in the binary. Every operation, traced with GLib's debug messages on (so
 * that messages are converted): no NSS configuration, no NSS or gconv module, and
 * with a static libc no shared object at all. */
static void test_loads_nothing(Fixture *f, gconstpointer data)
{
    if (!have_hook(f))
        return;
    gboolean static_libc = g_strcmp0(g_getenv("IMAGECACHE_HOOK_STATIC_LIBC"), "true") == 0;
    g_autofree char *in = xml_file(f, "started.xml");
    g_autofree char *bad = xml_file(f, "malformed.xml");
    /* A disk that is gone: its error message comes from g_strerror, which converts. */
    g_autofree char *gone =
        xml_file_edited(f, "prepare.xml", "vm-prepare/disk'", "vm-prepare/gone'", "gone.xml");
    static const char *const to_syslog[] = {"IMAGECACHE_HOOK_LOG_STDERR", NULL};
    /* Red team 8: GLib takes the charset from CHARSET before it asks libc. */
    static const char *const charsets[] = {"CHARSET=ISO-8859-15", "G_FILENAME_ENCODING=ISO-8859-15",
                                           NULL};
    const struct {
        const char *op, *subop, *stdin_path;
        const char *const *env;
    } ops[] = {{"prepare", "begin", in},
               {"started", "begin", in},
               {"reconnect", "begin", in},
               {"migrate", "begin", in},
               {"restore", "begin", in},
               {"stopped", "end", in},
               {"release", "end", in},
               {"migrate", "begin", bad},
               /* an error as it goes out in production: syslog (its time zone, the socket) */
               {"migrate", "begin", bad, to_syslog},
               {"prepare", "begin", gone, charsets}};
    for (guint i = 0; i < G_N_ELEMENTS(ops); i++) {
        g_auto(GStrv) lines = trace_hook(f, ops[i].stdin_path, ops[i].op, ops[i].subop, ops[i].env);
        if (lines == NULL)
            return;
        guint opens = 0;
        for (char **line = lines; *line != NULL; line++) {
            if (strstr(*line, "open") == NULL)
                continue;
            opens++;
            g_assert_null(strstr(*line, "nsswitch"));
            g_assert_null(strstr(*line, "libnss"));
            /* GLib converts a message to the C locale's ASCII with iconv, which reads
             * gconv-modules.cache and uses glibc's built-in converter: no module. */
            gboolean module = strstr(*line, ".so") != NULL || strstr(*line, "ld.so.cache");
            if (static_libc ? module : module && strstr(*line, "/gconv/") != NULL)
                g_error("%s %s: the hook loads a module: %s", ops[i].op, ops[i].subop, *line);
        }
        g_assert_cmpuint(opens, >, 0); /* the trace saw the hook's opens at all */
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, data, fn) g_test_add(path, Fixture, data, fixture_setup, fn, fixture_teardown)
    ADD("/imagecache/hook/prepare", NULL, test_prepare);
    ADD("/imagecache/hook/past-caps-recorded", NULL, test_past_caps_recorded);
    ADD("/imagecache/hook/started", NULL, test_started);
    ADD("/imagecache/hook/release", NULL, test_release);
    ADD("/imagecache/hook/migrate-restore", NULL, test_migrate_restore);
    ADD("/imagecache/hook/nova", NULL, test_nova);
    ADD("/imagecache/hook/quiet-ops", NULL, test_quiet_ops);
    for (gsize i = 0; i < G_N_ELEMENTS(hostile_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/hook/hostile/%s%s", hostile_cases[i].file,
                            hostile_cases[i].strict ? "/strict" : "");
        ADD(path, &hostile_cases[i], test_hostile);
    }
    ADD("/imagecache/hook/many-disks", NULL, test_many_disks);
    ADD("/imagecache/hook/unwritable", NULL, test_unwritable);
    ADD("/imagecache/hook/missing-disk", NULL, test_missing_disk);
    ADD("/imagecache/hook/file-size-limit", NULL, test_file_size_limit);
    ADD("/imagecache/hook/syslog-never-waits", NULL, test_syslog_never_waits);
    ADD("/imagecache/hook/bad-config", NULL, test_bad_config);
    ADD("/imagecache/hook/concurrent", NULL, test_concurrent);
    ADD("/imagecache/hook/two-hosts", NULL, test_two_hosts);
    ADD("/imagecache/hook/links-libc-only", NULL, test_links_libc_only);
    ADD("/imagecache/hook/prepare-lock-bound/default", NULL, test_prepare_lock_bound);
    ADD("/imagecache/hook/prepare-lock-bound/strict", "strict", test_prepare_lock_bound);
    ADD("/imagecache/hook/host-named/usage", "usage", test_host_named_usage);
    ADD("/imagecache/hook/host-named/usage.lock", "usage.lock", test_host_named_usage);
    ADD("/imagecache/hook/redteam/unknown-chain/json", "json", test_unknown_chain);
    ADD("/imagecache/hook/redteam/unknown-chain/deep", "deep", test_unknown_chain);
    ADD("/imagecache/hook/redteam/device/cdrom", "cdrom", test_every_device);
    ADD("/imagecache/hook/redteam/device/lun", "lun", test_every_device);
    ADD("/imagecache/hook/redteam/device/floppy", "floppy", test_every_device);
    ADD("/imagecache/hook/redteam/volume-disk", NULL, test_volume_disk);
    ADD("/imagecache/hook/redteam/non-utf8-name", NULL, test_non_utf8_name);
    ADD("/imagecache/hook/redteam/lock-error-records", NULL, test_lock_error_records);
    ADD("/imagecache/hook/redteam/one-deadline", NULL, test_one_deadline);
    ADD("/imagecache/hook/redteam/host-collision", NULL, test_host_collision);
    ADD("/imagecache/hook/syscalls", NULL, test_syscalls);
    ADD("/imagecache/hook/loads-nothing", NULL, test_loads_nothing);
#undef ADD

    return g_test_run();
}
