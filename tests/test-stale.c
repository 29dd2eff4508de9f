/* test-stale.c — the hook on a network filesystem's failures, injected into the real hook
 * binary by tests/fault-read.c: a read of its own ledger or of a backing file that fails
 * with ESTALE is retried by opening the path again; one that fails with ENOENT after a
 * successful open (GlusterFS open-behind) is an error or a retry, never "no ledger yet",
 * so no recorded domain is ever dropped. tests/multihost shows the same on GlusterFS. */
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "imgwriter.h"
#include "ledger-store.h"
#include "testutil.h"

#define UUID_1 "11111111-1111-4111-8111-111111111111"
#define UUID_2 "22222222-2222-4222-8222-222222222222"
#define FP_1   "1111111111111111111111111111111111111111"
#define FP_2   "2222222222222222222222222222222222222222"

typedef struct {
    const char *hook;
    const char *shim;
    char *root;
    char *config;
    char *ledger_dir;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->hook = g_getenv("IMAGECACHE_HOOK");
    f->shim = g_getenv("IMAGECACHE_FAULT_READ");
    f->root = ic_test_mkdtemp();
    g_autofree char *instances = g_build_filename(f->root, "instances", NULL);
    g_autofree char *base = g_build_filename(instances, "_base", NULL);
    f->ledger_dir = g_build_filename(instances, "_ledger", NULL);
    g_free(ic_test_write_file(base, FP_1, "one", -1));
    g_free(ic_test_write_file(base, FP_2, "two", -1));
    for (int i = 1; i <= 2; i++) {
        g_autofree char *overlay = g_strdup_printf("%s/dom%d.qcow2", f->root, i);
        g_autofree char *backing = g_strdup_printf("%s/%s", base, i == 1 ? FP_1 : FP_2);
        g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, backing, "raw", &error));
        g_assert_no_error(error);
    }
    g_autofree char *text =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=hosta\n", instances);
    f->config = ic_test_write_file(f->root, "imagecache.conf", text, -1);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    ic_test_rmtree(f->root);
    g_free(f->root);
    g_free(f->config);
    g_free(f->ledger_dir);
}

/* Runs `imagecache-hook dom<n> prepare begin -` with the fault in @fault_path (NULL: none). */
static void prepare(Fixture *f, int n, const char *fault_path, int fault_errno, int count)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", f->config, TRUE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_HOOK_LOG_STDERR", "1", TRUE);
    if (fault_path != NULL) {
        g_autofree char *err = g_strdup_printf("%d", fault_errno);
        g_autofree char *cnt = g_strdup_printf("%d", count);
        g_subprocess_launcher_setenv(launcher, "LD_PRELOAD", f->shim, TRUE);
        /* Under scripts/sanitize.sh the shim comes before ASan's runtime: allowed,
         * it only wraps read and pread. */
        const char *asan = g_getenv("ASAN_OPTIONS");
        g_autofree char *asan_options = g_strdup_printf("%s%sverify_asan_link_order=0",
                                                        asan ? asan : "", asan && *asan ? ":" : "");
        g_subprocess_launcher_setenv(launcher, "ASAN_OPTIONS", asan_options, TRUE);
        g_subprocess_launcher_setenv(launcher, "IC_FAULT_PATH", fault_path, TRUE);
        g_subprocess_launcher_setenv(launcher, "IC_FAULT_ERRNO", err, TRUE);
        g_subprocess_launcher_setenv(launcher, "IC_FAULT_COUNT", cnt, TRUE);
    }
    g_autofree char *name = g_strdup_printf("dom%d", n);
    g_autofree char *xml =
        g_strdup_printf("<domain type='qemu'><name>%s</name><uuid>%s</uuid><devices>"
                        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                        "<source file='%s/dom%d.qcow2'/><target dev='vda' bus='virtio'/></disk>"
                        "</devices></domain>",
                        name, n == 1 ? UUID_1 : UUID_2, f->root, n);
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, f->hook, name, "prepare", "begin", "-", NULL);
    g_assert_no_error(error);
    g_autoptr(GBytes) input = g_bytes_new(xml, strlen(xml));
    g_autoptr(GBytes) err = NULL;
    g_assert_true(g_subprocess_communicate(proc, input, NULL, NULL, &err, &error));
    g_assert_no_error(error);
    if (g_bytes_get_size(err) > 0)
        g_test_message("hook stderr: %.*s", (int)g_bytes_get_size(err),
                       (const char *)g_bytes_get_data(err, NULL));
}

/* The base files the ledger records for domain @uuid, ";"-joined; NULL: not recorded. */
static char *recorded(Fixture *f, const char *uuid)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(f->ledger_dir, 0, 0, &ledger, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ledger->errors->len, ==, 0);
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = ledger->hosts->pdata[i];
        for (guint j = 0; j < host->domains->len; j++) {
            const IcLedgerDomain *d = host->domains->pdata[j];
            if (g_str_equal(d->uuid, uuid)) {
                g_ptr_array_add(d->base_files, NULL);
                return g_strjoinv(";", (char **)d->base_files->pdata);
            }
        }
    }
    return NULL;
}

static gboolean ready(Fixture *f)
{
    if (f->hook != NULL && f->shim != NULL)
        return TRUE;
    g_test_skip("IMAGECACHE_HOOK or IMAGECACHE_FAULT_READ is not set: run through meson test");
    return FALSE;
}

typedef struct {
    int fault_errno;
    int count;
    gboolean records; /* the second domain gets recorded (a retry succeeded) */
} LedgerCase;

/* Reading its own ledger fails: the domain recorded before must survive. */
static void test_ledger_read(Fixture *f, gconstpointer data)
{
    const LedgerCase *c = data;
    if (!ready(f))
        return;
    prepare(f, 1, NULL, 0, 0);
    g_autofree char *one = recorded(f, UUID_1);
    g_assert_cmpstr(one, ==, FP_1);

    prepare(f, 2, "hosta.ledger", c->fault_errno, c->count);
    g_autofree char *still = recorded(f, UUID_1);
    g_assert_cmpstr(still, ==, FP_1); /* never rewritten as if there were no ledger */
    g_autofree char *two = recorded(f, UUID_2);
    if (c->records)
        g_assert_cmpstr(two, ==, FP_2);
    else
        g_assert_null(two);
}

/* Reading the backing file fails once with ESTALE: retried, the base file is recorded. */
static void test_backing_read(Fixture *f, gconstpointer data)
{
    const LedgerCase *c = data;
    if (!ready(f))
        return;
    prepare(f, 1, FP_1, c->fault_errno, c->count);
    g_autofree char *one = recorded(f, UUID_1);
    g_assert_cmpstr(one, ==, FP_1);
}

static const LedgerCase estale_once = {116 /* ESTALE */, 1, TRUE};
static const LedgerCase enoent_once = {2 /* ENOENT */, 1, TRUE};
static const LedgerCase enoent_always = {2, 1000, FALSE};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
#define ADD(path, data, fn) g_test_add(path, Fixture, data, fixture_setup, fn, fixture_teardown)
    ADD("/imagecache/stale/ledger-estale-retried", &estale_once, test_ledger_read);
    ADD("/imagecache/stale/ledger-enoent-after-open-retried", &enoent_once, test_ledger_read);
    ADD("/imagecache/stale/ledger-enoent-persistent-is-an-error", &enoent_always, test_ledger_read);
    ADD("/imagecache/stale/backing-estale-retried", &estale_once, test_backing_read);
    ADD("/imagecache/stale/backing-enoent-after-open-retried", &enoent_once, test_backing_read);
    return g_test_run();
}
