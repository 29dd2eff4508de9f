/* test-ledger.c — the usage ledger: file format, damage detection, locking, many writers,
 * hosts sharing a directory, and what a domain's disks make it use. */
#include "domxml.h"
#include "error.h"
#include "fileutil.h"
#include "imgwriter.h"
#include "ledger-domain.h"
#include "ledger-store.h"
#include "testutil.h"
#include "usage.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UUID_A "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define UUID_B "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
#define NOW    1700000000

typedef struct {
    char *root;
    char *ledger_dir;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->root = ic_test_mkdtemp();
    f->ledger_dir = g_build_filename(f->root, "_ledger", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    ic_test_rmtree(f->root);
    g_free(f->root);
    g_free(f->ledger_dir);
}

static IcLedgerDomain *make_domain(const char *uuid, const char *name, const char *base_file)
{
    IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
    if (base_file != NULL)
        g_ptr_array_add(domain->base_files, g_strdup(base_file));
    domain->started = NOW - 100;
    return domain;
}

static IcLedgerHost *read_host(const char *ledger_dir, const char *host)
{
    g_autoptr(IcLedger) ledger = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_read_all(ledger_dir, NOW, 3600, &ledger, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < ledger->errors->len; i++)
        g_test_message("ledger error: %s", (char *)ledger->errors->pdata[i]);
    g_assert_cmpuint(ledger->errors->len, ==, 0);
    for (guint i = 0; i < ledger->hosts->len; i++) {
        IcLedgerHost *h = ledger->hosts->pdata[i];
        if (strcmp(h->host, host) == 0)
            return g_ptr_array_steal_index(ledger->hosts, i);
    }
    return NULL;
}

#define FP_1 "1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1"

static void assert_user(const IcUsage *usage, const char *path)
{
    const IcUsers *users = ic_usage_lookup_path(usage, path);
    if (users == NULL)
        g_test_message("no user of '%s'", path);
    g_assert_nonnull(users);
    g_assert_cmpuint(users->remote, ==, 1);
}

/* A format-1 ledger written by a host mounting the share at /srv/nova, read by
 * one mounting it at /mnt/other: every entry inside a directory named like the
 * base dir is resolved against the reader's base dir; the one outside any
 * blocks removal instead of naming nothing; rewriting the file keeps them all. */
static void test_format1_upgrade(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *src = ic_test_data_path("ledger", "format1-other-mount.ledger");
    g_autofree char *text = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(src, &text, &len, NULL));
    g_assert_cmpint(g_mkdir_with_parents(f->ledger_dir, 0755), ==, 0);
    g_free(ic_test_write_file(f->ledger_dir, "hosta.ledger", text, (gssize)len));

    for (int round = 0; round < 2; round++) {
        g_autoptr(IcLedger) ledger = NULL;
        g_assert_true(ic_ledger_read_all(f->ledger_dir, NOW, 0, &ledger, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(ledger->errors->len, ==, 0);
        g_autoptr(IcUsage) usage = ic_usage_new();
        ic_ledger_add_usage(ledger, "hostb", "/mnt/other/_base", usage);
        assert_user(usage, "/mnt/other/_base/" FP_1);
        assert_user(usage, "/mnt/other/_base/" FP_1 "_10");
        g_assert_cmpint(
            ic_usage_last_used(usage, "/mnt/other/_base/0000000000000000000000000000000000000000"),
            ==, 1699900000);
        /* /srv/cache-link/2222…: not in a "_base"; it might be any base file. */
        g_assert_true(usage->incomplete);
        g_assert_nonnull(strstr(usage->notes->pdata[0], "/srv/cache-link/"));
        g_assert_cmpuint(ic_usage_lookup_path(usage, "/mnt/other/_base/" FP_1)->remote, ==, 1);

        if (round == 1) {
            /* After the rewrite: format 2, the new domain by name. */
            g_assert_cmpuint(((IcLedgerHost *)ledger->hosts->pdata[0])->domains->len, ==, 3);
            assert_user(usage, "/mnt/other/_base/new");
            break;
        }
        /* The hook's next write upgrades the file without losing a domain. */
        g_autoptr(IcLedgerDomain) fresh =
            make_domain("0a0a0a0a-1111-2222-3333-444444444444", "vm-new", "/srv/nova/_base/new");
        g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", fresh, NOW, &error));
        g_assert_no_error(error);
        g_autofree char *path = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
        g_autofree char *now_text = NULL;
        g_assert_true(g_file_get_contents(path, &now_text, NULL, NULL));
        g_assert_nonnull(strstr(now_text, "format=3\n"));
        g_assert_nonnull(strstr(now_text, "base_files=new;\n"));
    }
}

/* A name with a '/' (or "..") is no entry: a writer refuses it, a reader
 * reports the file as damaged. */
/* Red-team #1 and #6 at the ledger level: the unknown marker and the machine id
 * survive a round trip, a format-2 file (neither key) still reads, and a
 * reconcile (replace) refuses a file another machine wrote. */
static void test_unknown_and_machine(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) domain =
        make_domain("0a0a0a0a-1111-2222-3333-444444444444", "vm-u", "/srv/nova/_base/x");
    domain->unknown = g_strdup("disk 'vda' of domain 'vm-u': a json: backing");
    g_setenv("IMAGECACHE_MACHINE_ID", "aaaa0001", TRUE);
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", domain, NOW, &error));
    g_assert_no_error(error);
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpstr(host->machine_id, ==, "aaaa0001");
    const IcLedgerDomain *read = host->domains->pdata[0];
    g_assert_cmpstr(read->unknown, ==, domain->unknown);

    /* Another machine with the same host name: reconcile refuses, the file stays. */
    g_setenv("IMAGECACHE_MACHINE_ID", "bbbb0002", TRUE);
    g_autoptr(GPtrArray) none = g_ptr_array_new();
    g_assert_false(ic_ledger_replace_host(f->ledger_dir, "hosta", none, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "aaaa0001"));
    g_clear_error(&error);
    g_autoptr(IcLedgerHost) kept = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(kept->domains->len, ==, 1);
    g_unsetenv("IMAGECACHE_MACHINE_ID");

    /* A format-2 file: no machine_id, no unknown; read as before. */
    g_autoptr(IcLedgerHost) plain = NULL;
    {
        g_autoptr(IcLedgerDomain) known =
            make_domain("0a0a0a0a-1111-2222-3333-444444444445", "vm-k", "x");
        g_autoptr(IcLedgerHost) h = NULL;
        g_autofree char *text = NULL;
        g_autofree char *path = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        g_assert_true(ic_ledger_host_parse(text, strlen(text), &h, &error));
        g_clear_pointer(&h->machine_id, g_free);
        g_ptr_array_set_size(h->domains, 0);
        g_ptr_array_add(h->domains, g_steal_pointer(&known));
        g_autofree char *out = ic_ledger_host_serialize(h, NULL);
        g_autoptr(GString) body = g_string_new_len(out, strstr(out, "[end]\n") - out);
        g_assert_cmpuint(g_string_replace(body, "format=3\n", "format=2\n", 1), ==, 1);
        g_autofree char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, body->str, -1);
        g_string_append_printf(body, "[end]\ndomains=1\nsha256=%s\n", digest);
        g_assert_true(ic_ledger_host_parse(body->str, body->len, &plain, &error));
        g_assert_no_error(error);
        /* ...but a format-2 file may not carry the format-3 keys. */
        g_autoptr(GString) bad =
            g_string_new_len(body->str, strstr(body->str, "[end]\n") - body->str);
        g_assert_cmpuint(g_string_replace(bad, "name=vm-k\n", "name=vm-k\nunknown=x\n", 1), ==, 1);
        g_autofree char *bad_digest =
            g_compute_checksum_for_string(G_CHECKSUM_SHA256, bad->str, -1);
        g_string_append_printf(bad, "[end]\ndomains=1\nsha256=%s\n", bad_digest);
        g_autoptr(IcLedgerHost) refused = NULL;
        g_assert_false(ic_ledger_host_parse(bad->str, bad->len, &refused, &error));
        g_assert_nonnull(strstr(error->message, "unknown key 'unknown'"));
        g_clear_error(&error);
    }
    g_assert_null(plain->machine_id);
    g_assert_null(((IcLedgerDomain *)plain->domains->pdata[0])->unknown);
}

static void test_bad_entry_name(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) domain = make_domain(UUID_A, "vm", "../etc/passwd");
    g_assert_false(ic_ledger_record_domain(f->ledger_dir, "hosta", domain, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
}

/* A long-running reader re-reads only the host files that changed, and still
 * sees every change and every file that went away. */
static void test_cache(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerCache) cache = ic_ledger_cache_new();
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "a");
    g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "b");
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hostb", b, NOW, &error));
    g_assert_no_error(error);

    guint files = 0;
    guint64 bytes = 0;
    for (int round = 0; round < 4; round++) {
        g_autoptr(IcLedger) ledger = NULL;
        g_assert_true(ic_ledger_read_all_cached(cache, f->ledger_dir, NOW, 3600, &ledger, &error));
        g_assert_no_error(error);
        ic_ledger_cache_last_read(cache, &files, &bytes);
        g_autoptr(IcUsage) usage = ic_usage_new();
        ic_ledger_add_usage(ledger, "hosta", "/i/_base", usage);
        switch (round) {
        case 0: /* the first pass reads everything */
            g_assert_cmpuint(files, ==, 2);
            g_assert_cmpuint(bytes, >, 0);
            g_assert_nonnull(ic_usage_lookup_path(usage, "/i/_base/b"));
            /* hostb starts another domain */
            g_ptr_array_add(b->base_files, g_strdup("b2"));
            g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hostb", b, NOW + 1, &error));
            break;
        case 1: /* only the changed file */
            g_assert_cmpuint(files, ==, 1);
            g_assert_nonnull(ic_usage_lookup_path(usage, "/i/_base/b2"));
            g_assert_nonnull(ic_usage_lookup_path(usage, "/i/_base/a"));
            break;
        case 2: /* nothing changed: nothing read, the same users */
            g_assert_cmpuint(files, ==, 0);
            g_assert_cmpuint(bytes, ==, 0);
            g_assert_nonnull(ic_usage_lookup_path(usage, "/i/_base/b2"));
            g_assert_nonnull(ic_usage_lookup_path(usage, "/i/_base/a"));
            g_assert_cmpuint(ledger->hosts->len, ==, 2);
            {
                g_autofree char *gone = g_build_filename(f->ledger_dir, "hostb.ledger", NULL);
                g_assert_cmpint(g_unlink(gone), ==, 0);
            }
            break;
        case 3: /* a file that went away is gone from the answer too */
            g_assert_cmpuint(ledger->hosts->len, ==, 1);
            g_assert_null(ic_usage_lookup_path(usage, "/i/_base/b2"));
            break;
        }
        g_assert_no_error(error);
    }
}

/* One removing pass per shared cache per interval: the first host claims it,
 * the others only report until the interval has passed; 0 switches it off. */
static void test_claim_pass(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(g_mkdir_with_parents(f->ledger_dir, 0755), ==, 0);
    char *note = NULL;
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hosta", NOW, 600, &note));
    g_assert_null(note);
    g_assert_false(ic_ledger_claim_pass(f->ledger_dir, "hostb", NOW + 10, 600, &note));
    g_assert_nonnull(strstr(note, "host 'hosta' ran the removal pass 10 s ago"));
    g_clear_pointer(&note, g_free);
    /* The claiming host's own next pass removes again. */
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hosta", NOW + 20, 600, &note));
    /* Once the interval has passed, any host may. */
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hostb", NOW + 620, 600, &note));
    g_assert_false(ic_ledger_claim_pass(f->ledger_dir, "hosta", NOW + 630, 600, &note));
    g_clear_pointer(&note, g_free);
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hosta", NOW + 630, 0, &note));
    /* A stamp from the future (a clock far ahead) does not stop removal for good. */
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hostc", NOW + 100000, 600, &note));
    g_assert_true(ic_ledger_claim_pass(f->ledger_dir, "hostb", NOW, 600, &note));
    g_assert_null(note);
    /* The stamp is no host file. */
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(f->ledger_dir, NOW, 0, &ledger, &error));
    g_assert_cmpuint(ledger->errors->len, ==, 0);
}

/* ---- format ---- */

/* ic_ledger_host_put_domain keeps the domains sorted and distinct by itself:
 * ic_ledger_host_find_domain's binary search relies on it within an edit (the
 * serialiser would hide a misplaced insert by sorting). */
static void test_put_domain_keeps_order(void)
{
    g_autoptr(IcLedgerHost) host = ic_ledger_host_new("hosta");
    static const guint order[] = {7, 2, 9, 0, 5, 2, 11, 1, 9, 6, 3, 0, 10, 4, 8};
    for (guint i = 0; i < G_N_ELEMENTS(order); i++) {
        g_autofree char *uuid =
            g_strdup_printf("%08x-0000-4000-8000-%012x", order[i] * 0x11111u, order[i]);
        ic_ledger_host_put_domain(host, ic_ledger_domain_new(uuid, "vm"));
        for (guint j = 1; j < host->domains->len; j++) {
            const IcLedgerDomain *before = host->domains->pdata[j - 1];
            const IcLedgerDomain *after = host->domains->pdata[j];
            g_assert_cmpstr(before->uuid, <, after->uuid);
        }
        guint place = G_MAXUINT;
        gint index = ic_ledger_host_find_domain(host, uuid, &place);
        g_assert_cmpint(index, >=, 0);
        g_assert_cmpuint(place, ==, (guint)index);
    }
    g_assert_cmpuint(host->domains->len, ==, 12); /* 0 to 11, repeats replaced */
    guint place = G_MAXUINT;
    g_assert_cmpint(
        ic_ledger_host_find_domain(host, "00000000-0000-4000-8000-000000000001", &place), ==, -1);
    g_assert_cmpuint(place, ==, 1);
}

static void test_round_trip(void)
{
    g_autoptr(IcLedgerHost) host = g_new0(IcLedgerHost, 1);
    host->host = g_strdup("compute-1.example.org");
    host->refreshed = NOW;
    host->domains = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    host->last_used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    IcLedgerDomain *b =
        make_domain(UUID_B, "name with spaces; and = signs\nand a newline", "/i/_base/odd;name");
    g_ptr_array_add(b->image_ids, g_strdup("155d900f-4e14-4e4c-a73d-069cbf4541e6"));
    g_ptr_array_add(host->domains, b);
    IcLedgerDomain *a = make_domain(UUID_A, "instance-00000001", "/i/_base/aaaa");
    g_ptr_array_add(a->base_files, g_strdup("/i/_base/aaaa_10"));
    g_ptr_array_add(host->domains, a);
    IcLedgerDomain *empty = make_domain("00000000-0000-4000-8000-000000000000", "bare", NULL);
    g_ptr_array_add(host->domains, empty);
    gint64 *t = g_new(gint64, 1);
    *t = NOW - 5;
    g_hash_table_insert(host->last_used, g_strdup("/i/_base/old=1[x]"), t);

    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    g_assert_cmpuint(len, ==, strlen(text));

    g_autoptr(IcLedgerHost) back = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_host_parse(text, len, &back, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(back->host, ==, "compute-1.example.org");
    g_assert_cmpint(back->refreshed, ==, NOW);
    g_assert_cmpuint(back->domains->len, ==, 3);
    /* Sorted by uuid. */
    const IcLedgerDomain *first = back->domains->pdata[0];
    const IcLedgerDomain *second = back->domains->pdata[1];
    const IcLedgerDomain *third = back->domains->pdata[2];
    g_assert_cmpstr(first->name, ==, "bare");
    g_assert_cmpuint(first->base_files->len, ==, 0);
    g_assert_cmpuint(first->image_ids->len, ==, 0);
    g_assert_cmpstr(second->uuid, ==, UUID_A);
    g_assert_cmpuint(second->base_files->len, ==, 2);
    g_assert_cmpstr(second->base_files->pdata[1], ==, "/i/_base/aaaa_10");
    g_assert_cmpint(second->started, ==, NOW - 100);
    g_assert_cmpstr(third->name, ==, "name with spaces; and = signs\nand a newline");
    g_assert_cmpstr(third->base_files->pdata[0], ==, "/i/_base/odd;name");
    g_assert_cmpstr(third->image_ids->pdata[0], ==, "155d900f-4e14-4e4c-a73d-069cbf4541e6");
    const gint64 *back_t = g_hash_table_lookup(back->last_used, "/i/_base/old=1[x]");
    g_assert_nonnull(back_t);
    g_assert_cmpint(*back_t, ==, NOW - 5);

    /* Serialising is deterministic. */
    g_autofree char *again = ic_ledger_host_serialize(back, NULL);
    g_assert_cmpstr(again, ==, text);
}

static void test_valid_file(void)
{
    /* A file written by hand to the documented format: format 1 stays readable. */
    g_autofree char *path = ic_test_data_path("ledger", "valid.ledger");
    g_autofree char *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    g_autoptr(IcLedgerHost) host = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_host_parse(data, len, &host, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(host->host, ==, "hosta");
    g_assert_cmpuint(host->domains->len, ==, 2);
    const IcLedgerDomain *b = host->domains->pdata[1];
    g_assert_cmpstr(b->name, ==, "web 1");
    g_assert_cmpstr(b->base_files->pdata[0], ==, "/var/lib/nova/instances/_base/a;b");
    g_assert_cmpuint(g_hash_table_size(host->last_used), ==, 1);
}

typedef struct {
    const char *file;
    const char *message; /* a fragment of the error message */
} DamagedCase;

static const DamagedCase damaged_cases[] = {
    {"truncated.ledger", "truncated"},
    {"no-end.ledger", "no [end] group"},
    {"checksum.ledger", "checksum mismatch"},
    {"count-mismatch.ledger", "the header counts 2 domains"},
    {"duplicate-domain.ledger", "the file holds 1"},
    {"unknown-key.ledger", "unknown key 'owner'"},
    {"missing-key.ledger", "missing key 'started'"},
    {"bad-uuid.ledger", "bad domain uuid"},
    {"relative-path.ledger", "bad entry '_base/x'"},
    {"wrong-format.ledger", "unsupported format 99"},
    {"bad-number.ledger", "bad value '-5' for 'started'"},
    {"last-used-mismatch.ledger", "1 paths but 2 times"},
    {"group-after-end.ledger", "damaged"},
    {"not-keyfile.ledger", "not-keyfile"},
    {"empty.ledger", "no [end] group"},
    {"nul.ledger", "NUL"},
};

static void test_damaged_file(gconstpointer data)
{
    const DamagedCase *c = data;
    g_autofree char *path = ic_test_data_path("ledger", c->file);
    g_autofree char *text = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &text, &len, NULL));
    g_autoptr(IcLedgerHost) host = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_ledger_host_parse(text, len, &host, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
    g_assert_null(host);
    g_test_message("%s: %s", c->file, error->message);
    if (strcmp(c->file, "not-keyfile.ledger") != 0)
        g_assert_nonnull(strstr(error->message, c->message));
}

static void test_every_truncation(void)
{
    /* However much of a good file survives a crash, the rest never reads as valid. */
    g_autofree char *path = ic_test_data_path("ledger", "valid.ledger");
    g_autofree char *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    for (gsize cut = 0; cut < len; cut++) {
        g_autoptr(IcLedgerHost) host = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_false(ic_ledger_host_parse(data, cut, &host, &error));
        g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
    }
}

static void test_damaged_in_read_all(Fixture *f, gconstpointer data)
{
    g_autoptr(IcLedgerDomain) domain = make_domain(UUID_A, "vm", "/i/_base/a");
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", domain, NOW, &error));
    g_assert_no_error(error);

    g_autofree char *bad = NULL;
    g_autofree char *bad_path = ic_test_data_path("ledger", "truncated.ledger");
    g_assert_true(g_file_get_contents(bad_path, &bad, NULL, NULL));
    g_free(ic_test_write_file(f->ledger_dir, "hostb.ledger", bad, -1));
    /* A file whose name and contents disagree on the host. */
    g_autofree char *a_text = NULL;
    g_autofree char *a_path = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
    g_assert_true(g_file_get_contents(a_path, &a_text, NULL, NULL));
    g_free(ic_test_write_file(f->ledger_dir, "hostc.ledger", a_text, -1));
    /* Temp files and locks are not host files. */
    g_free(ic_test_write_file(f->ledger_dir, "hostd.ledger.tmp.1234", "junk", -1));
    g_free(ic_test_write_file(f->ledger_dir, "hostd.ledger.tmp", "junk", -1));

    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(f->ledger_dir, NOW, 3600, &ledger, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ledger->hosts->len, ==, 1);
    g_assert_cmpuint(ledger->errors->len, ==, 2);
    g_assert_nonnull(strstr(ledger->errors->pdata[0], "hostb.ledger"));
    g_assert_nonnull(strstr(ledger->errors->pdata[0], "truncated"));
    g_assert_nonnull(strstr(ledger->errors->pdata[1], "hostc.ledger"));
    g_assert_nonnull(strstr(ledger->errors->pdata[1], "names host 'hosta'"));

    /* A damaged file blocks removal: the usage is incomplete. */
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "hosta", "/i/_base", usage);
    g_assert_true(usage->incomplete);

    /* And a writer refuses to overwrite it. */
    g_autoptr(IcLedgerDomain) other = make_domain(UUID_B, "vm2", NULL);
    g_assert_false(ic_ledger_record_domain(f->ledger_dir, "hostb", other, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
    g_clear_error(&error);
    /* Only reconcile's replace repairs it. */
    g_autoptr(GPtrArray) domains = g_ptr_array_new();
    g_ptr_array_add(domains, other);
    g_assert_true(ic_ledger_replace_host(f->ledger_dir, "hostb", domains, NOW, &error));
    g_assert_no_error(error);
    g_autofree char *c_path = g_build_filename(f->ledger_dir, "hostc.ledger", NULL);
    g_assert_cmpint(g_unlink(c_path), ==, 0);
    g_autoptr(IcLedgerHost) b = read_host(f->ledger_dir, "hostb");
    g_assert_nonnull(b);
}

static void note_host(IcLedgerHost *host, gpointer data)
{
    g_ptr_array_add(data, g_strdup(host->host));
    ic_ledger_host_free(host);
}

/* Hosts are read one at a time (issue 15), handed out sorted by host name
 * ("a" before "a-b", whose file names sort the other way), and a damaged file
 * is reported, not handed out. */
static void test_read_each(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    const char *hosts[] = {"a-b", "a", "b"};
    for (guint i = 0; i < G_N_ELEMENTS(hosts); i++) {
        g_autoptr(IcLedgerDomain) domain = make_domain(UUID_A, "vm", "base");
        g_assert_true(ic_ledger_record_domain(f->ledger_dir, hosts[i], domain, NOW, &error));
        g_assert_no_error(error);
    }
    g_free(ic_test_write_file(f->ledger_dir, "c.ledger", "damaged", -1));
    g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) errors = NULL;
    g_assert_true(
        ic_ledger_read_each(NULL, f->ledger_dir, NOW, 3600, note_host, seen, &errors, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(seen->len, ==, 3);
    g_assert_cmpstr(seen->pdata[0], ==, "a");
    g_assert_cmpstr(seen->pdata[1], ==, "a-b");
    g_assert_cmpstr(seen->pdata[2], ==, "b");
    g_assert_cmpuint(errors->len, ==, 1);
    g_assert_nonnull(strstr(errors->pdata[0], "c.ledger"));
}

/* A host that released more distinct base files than a list may hold keeps
 * the newest: its file must stay readable (it read as damaged at 4,097, and
 * every later record on the host then failed). */
static void test_many_releases(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    for (guint round = 0; round < 2; round++) {
        g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(UUID_A, "vm");
        guint count = round == 0 ? IC_LEDGER_MAX_LIST_ENTRIES : 1;
        for (guint i = 0; i < count; i++)
            g_ptr_array_add(domain->base_files, g_strdup_printf("base-%u-%u", round, i));
        g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", domain, NOW, &error));
        g_assert_no_error(error);
        g_assert_true(ic_ledger_drop_domain(f->ledger_dir, "hosta", UUID_A, NOW + round, &error));
        g_assert_no_error(error);
    }
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(g_hash_table_size(host->last_used), ==, IC_LEDGER_MAX_LIST_ENTRIES);
    g_assert_true(g_hash_table_contains(host->last_used, "base-1-0"));
    g_autoptr(IcLedgerDomain) again = make_domain(UUID_B, "vm2", "base");
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", again, NOW + 2, &error));
    g_assert_no_error(error);
}

static void test_missing_dir(Fixture *f, gconstpointer data)
{
    g_autoptr(IcLedger) ledger = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_read_all(f->ledger_dir, NOW, 3600, &ledger, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ledger->hosts->len, ==, 0);
    g_assert_cmpuint(ledger->errors->len, ==, 0);

    /* A ledger dir that is a file is an error, not "no users". */
    g_free(ic_test_write_file(f->root, "file", "x", -1));
    g_autofree char *file = g_build_filename(f->root, "file", NULL);
    g_autoptr(IcLedger) none = NULL;
    g_assert_false(ic_ledger_read_all(file, NOW, 3600, &none, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
}

/* ---- writing ---- */

/* @body (a host file up to its [end] group) with its [end] group written anew for
 * @domains, so that a damage in the body reaches the domain checks. */
static char *with_end(const char *body, guint domains)
{
    g_autofree char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, body, -1);
    return g_strdup_printf("%s[end]\ndomains=%u\nsha256=%s\n", body, domains, digest);
}

/* Recording a domain keeps the host's other domains as their text (issue 15): every
 * check a reader makes on them must still refuse a damaged file before anything is
 * written, and leave the file as it was (its users must not be lost). Each file here is
 * what the serialiser writes but for one damage in the other domain, its digest written
 * anew, so that only the domain checks can see it. */
static void test_record_keeps_damaged(Fixture *f, gconstpointer data)
{
    g_autoptr(IcLedgerHost) host = ic_ledger_host_new("hosta");
    host->refreshed = NOW;
    IcLedgerDomain *a = make_domain(UUID_A, "vm-a", "a");
    g_ptr_array_add(a->base_files, g_strdup("b"));
    IcLedgerDomain *b = make_domain(UUID_B, "vm-b", "c");
    g_ptr_array_add(b->image_ids, g_strdup("img"));
    g_ptr_array_add(host->domains, a);
    g_ptr_array_add(host->domains, b);
    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    g_autofree char *body = g_strndup(text, strstr(text, "\n[end]\n") + 1 - text);
    g_autofree char *long_name = g_strnfill(1025, 'n');
    g_autofree char *long_name_line = g_strdup_printf("name=%s\n", long_name);
    g_autoptr(GString) long_list = g_string_new("base_files=");
    for (guint i = 0; i <= IC_LEDGER_MAX_LIST_ENTRIES; i++)
        g_string_append_printf(long_list, "f%u;", i);
    g_string_append_c(long_list, '\n');
    const struct {
        const char *from, *to;
    } damages[] = {
        {"base_files=c;\n", "base_files=x/c;\n"},
        {"base_files=c;\n", "base_files=..;\n"},
        {"base_files=c;\n", long_list->str},
        {"image_ids=img;\n", "image_ids=img;\nunknown=\n"},
        {"image_ids=img;\n", "image_ids=img;;\n"},
        {"name=vm-b\n", long_name_line},
        {"name=vm-b\n", "name=\n"},
        {"started=1699999900\n[domain " UUID_B, "started=-1\n"},
        {"9b1deb4d", "9B1DEB4D"},
        {"[domain " UUID_B, "[domain " UUID_A},
        {"domains=2\n", "domains=3\n"},
    };
    g_autofree char *path = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
    g_assert_cmpint(g_mkdir_with_parents(f->ledger_dir, 0755), ==, 0);
    g_autoptr(IcLedgerDomain) recorded =
        make_domain("0a0a0a0a-1111-2222-3333-444444444444", "vm-new", "new");
    for (guint i = 0; i < G_N_ELEMENTS(damages); i++) {
        g_autoptr(GString) damaged = g_string_new(body);
        if (g_str_has_prefix(damages[i].from, "started=")) {
            /* B's start, not A's: the second "started=" line. */
            const char *second = strstr(strstr(damaged->str, "started=") + 1, "started=");
            gsize at = (gsize)(second - damaged->str);
            g_string_erase(damaged, (gssize)at, (gssize)strlen("started=1699999900\n"));
            g_string_insert(damaged, (gssize)at, damages[i].to);
        } else {
            g_assert_cmpuint(g_string_replace(damaged, damages[i].from, damages[i].to, 1), ==, 1);
        }
        g_autofree char *file = with_end(damaged->str, 2);
        g_assert_true(g_file_set_contents(path, file, -1, NULL));
        g_autoptr(GError) error = NULL;
        g_test_message("damage %u: %s -> %.40s", i, damages[i].from, damages[i].to);
        g_assert_false(ic_ledger_record_domain(f->ledger_dir, "hosta", recorded, NOW, &error));
        g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
        g_autofree char *after = NULL;
        g_assert_true(g_file_get_contents(path, &after, NULL, NULL));
        g_assert_cmpstr(after, ==, file);
    }

    /* Undamaged, the record goes through and the other domains' groups are written back
     * as they were; they read as they were. */
    g_assert_true(g_file_set_contents(path, text, (gssize)len, NULL));
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", recorded, NOW + 5, &error));
    g_assert_no_error(error);
    g_autofree char *after = NULL;
    g_assert_true(g_file_get_contents(path, &after, NULL, NULL));
    const char *group_a = strstr(text, "\n[domain " UUID_A "]");
    const char *group_b = strstr(text, "\n[domain " UUID_B "]");
    g_autofree char *text_a = g_strndup(group_a, group_b - group_a);
    g_autofree char *text_b = g_strndup(group_b, strstr(text, "\n\n[end]") + 1 - group_b);
    g_assert_nonnull(strstr(after, text_a));
    g_assert_nonnull(strstr(after, text_b));
    g_autoptr(IcLedgerHost) read = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(read->domains->len, ==, 3);
    const IcLedgerDomain *read_b = read->domains->pdata[2];
    g_assert_cmpstr(read_b->uuid, ==, UUID_B);
    g_assert_cmpstr(read_b->name, ==, "vm-b");
    g_assert_cmpuint(read_b->base_files->len, ==, 1);
    g_assert_cmpstr(read_b->base_files->pdata[0], ==, "c");
}

static void test_record_drop(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "/i/_base/a");
    g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "/i/_base/b");
    a->started = NOW;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_no_error(error);
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", b, NOW + 1, &error));
    g_assert_no_error(error);

    /* Recorded again at "started": new files, the first start time kept. */
    g_ptr_array_add(a->base_files, g_strdup("/i/_base/a2"));
    a->started = NOW + 10;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW + 10, &error));
    g_assert_no_error(error);
    {
        g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
        g_assert_cmpuint(host->domains->len, ==, 2);
        const IcLedgerDomain *ra = host->domains->pdata[0];
        g_assert_cmpstr(ra->uuid, ==, UUID_A);
        g_assert_cmpuint(ra->base_files->len, ==, 2);
        g_assert_cmpint(ra->started, ==, NOW);
        g_assert_cmpint(host->refreshed, ==, NOW + 10);
    }

    /* Upper-case uuids from elsewhere match. */
    g_autofree char *upper = g_ascii_strup(UUID_A, -1);
    g_assert_true(ic_ledger_drop_domain(f->ledger_dir, "hosta", upper, NOW + 20, &error));
    g_assert_no_error(error);
    /* Dropping an unknown domain succeeds. */
    g_assert_true(ic_ledger_drop_domain(f->ledger_dir, "hosta", UUID_A, NOW + 30, &error));
    g_assert_no_error(error);

    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(host->domains->len, ==, 1);
    g_assert_cmpstr(((IcLedgerDomain *)host->domains->pdata[0])->uuid, ==, UUID_B);
    const gint64 *t = g_hash_table_lookup(host->last_used, "a2");
    g_assert_nonnull(t);
    g_assert_cmpint(*t, ==, NOW + 20);
    g_assert_nonnull(g_hash_table_lookup(host->last_used, "a"));
    g_assert_null(g_hash_table_lookup(host->last_used, "b"));
}

static void test_bad_host(Fixture *f, gconstpointer data)
{
    const char *bad[] = {"", ".hidden", "../etc", "a/b", "host name", "h\n", NULL};
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", NULL);
    for (guint i = 0; bad[i] != NULL; i++) {
        g_autoptr(GError) error = NULL;
        g_assert_false(ic_ledger_record_domain(f->ledger_dir, bad[i], a, NOW, &error));
        g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    }
    g_autofree char *long_host = g_strnfill(254, 'h');
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_ledger_drop_domain(f->ledger_dir, long_host, UUID_A, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_true(ic_ledger_host_name_is_valid("compute-01.rack_2.example.org"));
    /* Nothing was created for a bad host. */
    g_assert_false(ic_test_exists(f->ledger_dir));
}

/* What a writer of host "hosta" may find under its temp name "hosta.ledger.tmp"
 * (issue 15: one fixed name per host, no listing of the shared dir). */
typedef enum {
    LEFTOVER_GARBAGE,  /* a crashed writer's file, longer than the next write */
    LEFTOVER_SYMLINK,  /* a symlink to a file elsewhere */
    LEFTOVER_DANGLING, /* a symlink to a path elsewhere that does not exist */
    LEFTOVER_HARDLINK, /* a hard link to a file elsewhere */
    LEFTOVER_DIR,      /* a directory: never a writer's leftover */
    LEFTOVER_FIFO,     /* a FIFO: opening it for writing would block until a reader comes */
} LeftoverKind;

typedef struct {
    const char *name;
    LeftoverKind kind;
} LeftoverCase;

static const LeftoverCase leftover_cases[] = {
    {"garbage", LEFTOVER_GARBAGE},   {"symlink", LEFTOVER_SYMLINK},
    {"dangling", LEFTOVER_DANGLING}, {"hard-link", LEFTOVER_HARDLINK},
    {"directory", LEFTOVER_DIR},     {"fifo", LEFTOVER_FIFO},
};

/* A leftover under the fixed temp name never blocks, corrupts or is followed
 * by the next write: the write's result is right, a file elsewhere that the
 * leftover names is untouched (nothing created where a dangling link points),
 * and no temp file is left. A directory there fails the write, is kept, and
 * the ledger stays as it was. */
static void test_leftover_temp(Fixture *f, gconstpointer data)
{
    const LeftoverCase *c = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "/i/_base/a");
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_no_error(error);

    g_autofree char *temp = g_build_filename(f->ledger_dir, "hosta.ledger.tmp", NULL);
    g_autofree char *garbage = g_strnfill(64 * 1024, 'x');
    g_autofree char *victim = ic_test_write_file(f->root, "victim", "precious", -1);
    g_autofree char *nowhere = g_build_filename(f->root, "nowhere", NULL);
    switch (c->kind) {
    case LEFTOVER_GARBAGE:
        g_free(ic_test_write_file(f->ledger_dir, "hosta.ledger.tmp", garbage, -1));
        break;
    case LEFTOVER_SYMLINK:
        g_assert_cmpint(symlink(victim, temp), ==, 0);
        break;
    case LEFTOVER_DANGLING:
        g_assert_cmpint(symlink(nowhere, temp), ==, 0);
        break;
    case LEFTOVER_HARDLINK:
        g_assert_cmpint(link(victim, temp), ==, 0);
        break;
    case LEFTOVER_DIR:
        g_assert_cmpint(g_mkdir(temp, 0755), ==, 0);
        break;
    case LEFTOVER_FIFO:
        g_assert_cmpint(mkfifo(temp, 0600), ==, 0);
        break;
    }

    /* A write that opened the FIFO would hang there (and with it the VM start
     * whose hook writes): end the test instead of waiting for meson's timeout. */
    alarm(30);

    g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "/i/_base/b");
    gboolean ok = ic_ledger_record_domain(f->ledger_dir, "hosta", b, NOW + 1, &error);
    alarm(0);
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_nonnull(host);
    if (c->kind == LEFTOVER_DIR) {
        g_assert_false(ok);
        g_assert_error(error, IC_ERROR, IC_ERROR_IO);
        g_assert_nonnull(strstr(error->message, "hosta.ledger.tmp"));
        g_assert_true(g_file_test(temp, G_FILE_TEST_IS_DIR));
        g_assert_cmpuint(host->domains->len, ==, 1);
        g_assert_cmpint(host->refreshed, ==, NOW);
        return;
    }
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_cmpuint(host->domains->len, ==, 2);
    g_assert_cmpint(host->refreshed, ==, NOW + 1);
    g_assert_false(ic_test_exists(temp));

    /* The host file is the new regular file, not the leftover's target. */
    g_autofree char *file = g_build_filename(f->ledger_dir, "hosta.ledger", NULL);
    GStatBuf st;
    g_assert_cmpint(g_lstat(file, &st), ==, 0);
    g_assert_true(S_ISREG(st.st_mode));
    g_assert_cmpuint(st.st_nlink, ==, 1);
    g_autofree char *kept = NULL;
    g_assert_true(g_file_get_contents(victim, &kept, NULL, NULL));
    g_assert_cmpstr(kept, ==, "precious");
    g_assert_false(ic_test_exists(nowhere));
}

/* Another host's temp files, of either naming, are not ours: a write, and the
 * repair's clean-up of this host's old temps, leave them alone. */
static void test_other_host_temps(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(g_mkdir(f->ledger_dir, 0755), ==, 0);
    g_autofree char *fixed = ic_test_write_file(f->ledger_dir, "hostb.ledger.tmp", "x", -1);
    g_autofree char *old = ic_test_write_file(f->ledger_dir, "hostb.ledger.tmp.0badf00d", "x", -1);
    ic_test_set_mtime(fixed, NOW - 86400);
    ic_test_set_mtime(old, NOW - 86400);
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_no_error(error);
    g_autoptr(GPtrArray) none =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    g_assert_true(ic_ledger_replace_host(f->ledger_dir, "hosta", none, NOW, &error));
    g_assert_no_error(error);
    /* Another host's writer may be alive: its temp file is not ours to remove. */
    g_assert_true(ic_test_exists(fixed));
    g_assert_true(ic_test_exists(old));
}

/* The random-named temps an older version's crashed writers left
 * ("<host>.ledger.tmp.<8 hex>"): the hook's write no longer lists the dir to
 * find them; the repair (reconcile) removes this host's once they are
 * IC_LEDGER_OLD_TEMP_SECONDS old, and keeps younger ones and anything that is
 * not a regular file. */
static void test_old_temps(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(g_mkdir(f->ledger_dir, 0755), ==, 0);
    g_autofree char *old = ic_test_write_file(f->ledger_dir, "hosta.ledger.tmp.0badf00d", "x", -1);
    g_autofree char *young =
        ic_test_write_file(f->ledger_dir, "hosta.ledger.tmp.1234abcd", "x", -1);
    g_autofree char *odd = ic_test_write_file(f->ledger_dir, "hosta.ledger.tmp.0badf00", "x", -1);
    g_autofree char *link = g_build_filename(f->ledger_dir, "hosta.ledger.tmp.00000000", NULL);
    g_assert_cmpint(symlink(odd, link), ==, 0);
    ic_test_set_mtime(old, NOW - IC_LEDGER_OLD_TEMP_SECONDS - 1);
    ic_test_set_mtime(young, NOW - IC_LEDGER_OLD_TEMP_SECONDS + 60);
    ic_test_set_mtime(odd, NOW - 86400);
    const struct timespec link_times[2] = {{NOW - 86400, 0}, {NOW - 86400, 0}};
    g_assert_cmpint(utimensat(AT_FDCWD, link, link_times, AT_SYMLINK_NOFOLLOW), ==, 0);

    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "/i/_base/a");
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_no_error(error);
    g_assert_true(ic_test_exists(old)); /* not on the hook's path */

    g_autoptr(GPtrArray) live =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    g_ptr_array_add(live, make_domain(UUID_A, "vm-a", "/i/_base/a"));
    g_assert_true(ic_ledger_replace_host(f->ledger_dir, "hosta", live, NOW, &error));
    g_assert_no_error(error);
    g_assert_false(ic_test_exists(old));
    g_assert_true(ic_test_exists(young));
    g_assert_true(ic_test_exists(odd));
    g_assert_true(ic_test_exists(link));
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(host->domains->len, ==, 1);
}

/* Issue 11 item 5: a host whose name is another's plus ".ledger.tmp.<x>" is valid;
 * the other host's temp clean-up must not take its ledger for a leftover. */
static void test_temp_prefix_host(Fixture *f, gconstpointer data)
{
    const char *hosts[] = {"a.ledger.tmp.x", "a.ledger.tmp.0badf00d", "a.ledger.tmp", "a.ledger"};
    g_autoptr(GError) error = NULL;
    for (gsize i = 0; i < G_N_ELEMENTS(hosts); i++) {
        g_assert_true(ic_ledger_host_name_is_valid(hosts[i]));
        g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "/i/_base/b");
        g_assert_true(ic_ledger_record_domain(f->ledger_dir, hosts[i], b, NOW, &error));
        g_assert_no_error(error);
    }
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", NULL);
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "a", a, NOW, &error));
    g_assert_no_error(error);
    /* Host "a"'s repair, late enough that every file here is old to it. */
    g_autoptr(GPtrArray) live =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    gint64 later = g_get_real_time() / G_USEC_PER_SEC + 86400;
    g_assert_true(ic_ledger_replace_host(f->ledger_dir, "a", live, later, &error));
    g_assert_no_error(error);
    for (gsize i = 0; i < G_N_ELEMENTS(hosts); i++) {
        g_autoptr(IcLedgerHost) other = read_host(f->ledger_dir, hosts[i]);
        g_assert_nonnull(other);
        g_assert_cmpuint(other->domains->len, ==, 1);
    }
}

/* Issue 11 item 3: reconcile decides from a snapshot taken before it asks
 * libvirt; a domain a hook records after that is never dropped: the write is
 * refused (IC_ERROR_CHANGED) and reconcile asks again. */
static void test_replace_if_unchanged(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) empty = NULL;
    g_assert_true(ic_ledger_host_snapshot(f->ledger_dir, "hosta", &empty, &error));
    g_assert_cmpuint(g_bytes_get_size(empty), ==, 0);

    /* libvirt answered "no domains"; meanwhile a start was recorded */
    g_autoptr(GPtrArray) live =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    g_autoptr(IcLedgerDomain) late = make_domain(UUID_A, "vm-late", "/i/_base/a");
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", late, NOW, &error));
    g_assert_false(
        ic_ledger_replace_host_if_unchanged(f->ledger_dir, "hosta", live, NOW, empty, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CHANGED);
    g_clear_error(&error);
    g_autoptr(IcLedgerHost) kept = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(kept->domains->len, ==, 1);

    /* asked again from a fresh snapshot, the write goes through */
    g_autoptr(GBytes) fresh = NULL;
    g_assert_true(ic_ledger_host_snapshot(f->ledger_dir, "hosta", &fresh, &error));
    g_ptr_array_add(live, make_domain(UUID_A, "vm-late", "/i/_base/a"));
    g_assert_true(
        ic_ledger_replace_host_if_unchanged(f->ledger_dir, "hosta", live, NOW, fresh, &error));
    g_assert_no_error(error);
}

static void test_unwritable(Fixture *f, gconstpointer data)
{
    /* A path under a regular file: fails even for root. */
    g_free(ic_test_write_file(f->root, "plain", "x", -1));
    g_autofree char *dir = g_build_filename(f->root, "plain", "ledger", NULL);
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", NULL);
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_ledger_record_domain(dir, "hosta", a, NOW, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
    g_assert_nonnull(strstr(error->message, dir));
}

static void test_concurrent_writers(Fixture *f, gconstpointer data)
{
    /* 64 processes update one host file at once: the lock makes every
     * read-modify-write see the previous one, so no entry is lost. */
    enum { N = 64 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        g_assert_cmpint(pids[i], >=, 0);
        if (pids[i] == 0) {
            g_autofree char *uuid = g_strdup_printf("00000000-0000-4000-8000-%012d", i);
            g_autofree char *name = g_strdup_printf("vm-%d", i);
            g_autofree char *file = g_strdup_printf("/i/_base/%d", i);
            IcLedgerDomain *d = make_domain(uuid, name, file);
            GError *error = NULL;
            gboolean ok = ic_ledger_record_domain(f->ledger_dir, "hosta", d, NOW + i, &error);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < N; i++) {
        int status = 0;
        g_assert_cmpint(waitpid(pids[i], &status, 0), ==, pids[i]);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    }
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(host->domains->len, ==, N);

    /* No temp file survives. */
    g_autoptr(GDir) dir = g_dir_open(f->ledger_dir, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL)
        g_assert_null(strstr(name, ".tmp"));
}

static void test_two_hosts(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "/i/_base/shared");
    g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "/i/_base/shared");
    g_ptr_array_add(b->image_ids, g_strdup("155d900f-4e14-4e4c-a73d-069cbf4541e6"));
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW, &error));
    g_assert_no_error(error);
    /* hostb last wrote long ago: stale but still counted. */
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hostb", b, NOW - 7200, &error));
    g_assert_no_error(error);

    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(f->ledger_dir, NOW, 3600, &ledger, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(ledger->hosts->len, ==, 2);
    g_assert_false(((IcLedgerHost *)ledger->hosts->pdata[0])->stale);
    g_assert_true(((IcLedgerHost *)ledger->hosts->pdata[1])->stale);

    /* Seen from hosta, hostb's user is remote; and the other way round. */
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "hosta", "/i/_base", usage);
    const IcUsers *users = ic_usage_lookup_path(usage, "/i/_base/shared");
    g_assert_nonnull(users);
    g_assert_cmpuint(users->local, ==, 1);
    g_assert_cmpuint(users->remote, ==, 1);
    g_assert_true(users->witnesses & IC_WITNESS_LEDGER);
    g_assert_true(ic_test_users_have(users, "vm-b@hostb"));
    const IcUsers *by_image = ic_usage_lookup_image(usage, "155d900f-4e14-4e4c-a73d-069cbf4541e6");
    g_assert_nonnull(by_image);
    g_assert_cmpuint(by_image->remote, ==, 1);
    g_assert_false(usage->incomplete);
    g_assert_cmpuint(usage->notes->len, ==, 1);
    g_assert_cmpstr(usage->notes->pdata[0], ==,
                    "ledger of host 'hostb' not refreshed for 7200 s (still counted)");

    g_autoptr(IcUsage) from_b = ic_usage_new();
    ic_ledger_add_usage(ledger, "hostb", "/i/_base", from_b);
    users = ic_usage_lookup_path(from_b, "/i/_base/shared");
    g_assert_cmpuint(users->local, ==, 1);
    g_assert_cmpuint(users->remote, ==, 1);
}

static void test_replace(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) a = make_domain(UUID_A, "vm-a", "/i/_base/a");
    g_autoptr(IcLedgerDomain) b = make_domain(UUID_B, "vm-b", "/i/_base/b");
    a->started = NOW - 500;
    g_assert_true(ic_ledger_record_domain(f->ledger_dir, "hosta", a, NOW - 500, &error));
    g_assert_no_error(error);

    g_autoptr(GPtrArray) live = g_ptr_array_new();
    g_ptr_array_add(live, b);
    g_assert_true(ic_ledger_replace_host(f->ledger_dir, "hosta", live, NOW, &error));
    g_assert_no_error(error);
    g_autoptr(IcLedgerHost) host = read_host(f->ledger_dir, "hosta");
    g_assert_cmpuint(host->domains->len, ==, 1);
    g_assert_cmpstr(((IcLedgerDomain *)host->domains->pdata[0])->uuid, ==, UUID_B);
    /* The vanished domain's files were released now. */
    const gint64 *t = g_hash_table_lookup(host->last_used, "a");
    g_assert_nonnull(t);
    g_assert_cmpint(*t, ==, NOW);
}

/* ---- from domain XML ---- */

static void write_qcow2(const char *path, const char *backing)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_test_write_qcow2(path, 3, 1024 * 1024, backing, NULL, &error));
    g_assert_no_error(error);
}

static IcDomain *domain_for(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static IcDomain *domain_for(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *devices = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *xml = g_strdup_printf(
        "<domain type='qemu'><name>vm</name><uuid>%s</uuid>%s<devices>%s</devices></domain>",
        UUID_A,
        "<metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
        "<nova:root type='image' uuid='img-2'/><nova:image uuid='img-1'/>"
        "<nova:image uuid='img-2'/></nova:instance></metadata>",
        devices);
    IcDomain *domain = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_domxml_parse(xml, strlen(xml), &domain, &error));
    g_assert_no_error(error);
    return domain;
}

static void test_from_xml(IcTestTree *tree, gconstpointer data)
{
    /* A two-level chain inside the base dir, reached through a relative name,
     * plus a layer outside it, a CD-ROM and a raw disk without a chain. */
    g_autofree char *orig = g_build_filename(tree->base_dir, "orig", NULL);
    g_autofree char *mid = g_build_filename(tree->base_dir, "mid", NULL);
    g_autofree char *vm_dir = g_build_filename(tree->root, "vm", NULL);
    g_autofree char *disk = g_build_filename(vm_dir, "disk", NULL);
    g_autofree char *outside = g_build_filename(tree->root, "outside.qcow2", NULL);
    g_autofree char *disk2 = g_build_filename(vm_dir, "disk.eph", NULL);
    g_autofree char *raw = g_build_filename(vm_dir, "disk.raw", NULL);
    g_assert_cmpint(g_mkdir(vm_dir, 0755), ==, 0);
    write_qcow2(orig, NULL);
    write_qcow2(mid, "orig");
    write_qcow2(disk, "../_base/mid");
    write_qcow2(outside, NULL);
    write_qcow2(disk2, outside);
    g_free(ic_test_write_file(vm_dir, "disk.raw", "raw bytes", -1));

    g_autoptr(IcDomain) domain =
        domain_for("<disk type='file' device='disk'><source file='%s'/></disk>"
                   "<disk type='file' device='disk'><source file='%s'/></disk>"
                   "<disk type='file' device='cdrom'><source file='%s/mid'/></disk>"
                   "<disk type='file' device='disk'><source file='%s'/></disk>"
                   "<disk type='network' device='disk'><source protocol='rbd' name='p/v'/></disk>",
                   disk, disk2, tree->base_dir, raw);

    g_autoptr(GPtrArray) problems = NULL;
    g_autofree char *base_slash = g_strconcat(tree->base_dir, "/", NULL);
    g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_collect(domain, base_slash, NOW, &problems);
    g_assert_null(problems);
    g_assert_null(entry->unknown);
    g_assert_cmpstr(entry->uuid, ==, UUID_A);
    g_assert_cmpint(entry->started, ==, NOW);
    g_assert_cmpuint(entry->base_files->len, ==, 2);
    g_assert_cmpstr(entry->base_files->pdata[0], ==, mid);
    g_assert_cmpstr(entry->base_files->pdata[1], ==, orig);
    g_assert_cmpuint(entry->image_ids->len, ==, 2);
    g_assert_cmpstr(entry->image_ids->pdata[0], ==, "img-1");
    g_assert_cmpstr(entry->image_ids->pdata[1], ==, "img-2");
}

static void test_from_xml_problems(IcTestTree *tree, gconstpointer data)
{
    /* One disk is missing: the other still counts, and the problem is told. */
    g_autofree char *orig = g_build_filename(tree->base_dir, "orig", NULL);
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    g_autofree char *libvirt_says = g_build_filename(tree->base_dir, "from-xml", NULL);
    write_qcow2(orig, NULL);
    write_qcow2(disk, orig);
    g_autoptr(IcDomain) domain =
        domain_for("<disk type='file' device='disk'><source file='%s/missing'/></disk>"
                   "<disk type='file' device='disk'><source file='%s'/>"
                   "<backingStore type='file'><source file='%s'/></backingStore></disk>",
                   tree->root, disk, libvirt_says);

    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry =
        ic_ledger_domain_collect(domain, tree->base_dir, NOW, &problems);
    g_assert_nonnull(problems);
    g_assert_cmpuint(problems->len, ==, 1);
    g_assert_nonnull(strstr(problems->pdata[0], "missing"));
    /* The headers' chain and libvirt's <backingStore> both count. */
    g_assert_cmpuint(entry->base_files->len, ==, 2);
    g_assert_cmpstr(entry->base_files->pdata[0], ==, libvirt_says);
    g_assert_cmpstr(entry->base_files->pdata[1], ==, orig);
    /* What was found is kept, but the domain's usage is unknown: the first problem says why. */
    g_assert_cmpstr(entry->unknown, ==, problems->pdata[0]);
}

/* XML past the reader's caps in what it reads (a disk's path too long to be one,
 * image refs past their cap): the domain is recorded, with the rest of what it
 * uses, and its usage is unknown, each reason told. */
static void test_from_xml_past_caps(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *orig = g_build_filename(tree->base_dir, "orig", NULL);
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    write_qcow2(orig, NULL);
    write_qcow2(disk, orig);
    g_autofree char *long_path = g_strnfill(5000, 'p');
    g_autoptr(IcDomain) domain =
        domain_for("<disk type='file' device='disk'><source file='%s'/></disk>"
                   "<disk type='file' device='disk'><source file='/%s'/></disk>",
                   disk, long_path);
    domain->unread = "more than 64 Nova image refs"; /* what the reader sets past that cap */

    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry =
        ic_ledger_domain_collect(domain, tree->base_dir, NOW, &problems);
    g_assert_nonnull(problems);
    g_assert_cmpuint(problems->len, ==, 2);
    g_assert_nonnull(strstr(problems->pdata[0], "image refs"));
    g_assert_nonnull(strstr(problems->pdata[1], "longer than"));
    g_assert_cmpuint(entry->base_files->len, ==, 1);
    g_assert_cmpstr(entry->base_files->pdata[0], ==, orig);
    g_assert_cmpstr(entry->unknown, ==, problems->pdata[0]);
}

/* An entry resolves to "<base_dir>/<name>" byte for byte as g_build_filename
 * spells it, whatever the spelling of the base dir; a format-1 absolute entry
 * only when its directory is named like the base dir. */
static void test_resolve_entry(void)
{
    static const char *const dirs[] = {"/i/_base", "/i/_base/", "//i//_base", "/i/./_base",
                                       "_base"};
    static const char *const names[] = {"f", "a/b", "f/", "f g", "0123456789abcdef"};
    for (gsize d = 0; d < G_N_ELEMENTS(dirs); d++) {
        for (gsize n = 0; n < G_N_ELEMENTS(names); n++) {
            g_autofree char *want = g_build_filename(dirs[d], names[n], NULL);
            g_autofree char *got = ic_ledger_resolve_entry(names[n], dirs[d]);
            g_assert_cmpstr(got, ==, want);
        }
        g_autofree char *want = g_build_filename(dirs[d], "f", NULL);
        g_autofree char *moved = ic_ledger_resolve_entry("/mnt/other/_base/f", dirs[d]);
        g_assert_cmpstr(moved, ==, want);
        g_autofree char *elsewhere = ic_ledger_resolve_entry("/mnt/other/images/f", dirs[d]);
        g_assert_null(elsewhere);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add_func("/imagecache/ledger/round-trip", test_round_trip);
    g_test_add_func("/imagecache/ledger/resolve-entry", test_resolve_entry);
    g_test_add_func("/imagecache/ledger/put-domain-keeps-order", test_put_domain_keeps_order);
    g_test_add_func("/imagecache/ledger/valid-file", test_valid_file);
    g_test_add("/imagecache/ledger/format1-upgrade", Fixture, NULL, fixture_setup,
               test_format1_upgrade, fixture_teardown);
    g_test_add("/imagecache/ledger/unknown-and-machine", Fixture, NULL, fixture_setup,
               test_unknown_and_machine, fixture_teardown);
    g_test_add("/imagecache/ledger/claim-pass", Fixture, NULL, fixture_setup, test_claim_pass,
               fixture_teardown);
    g_test_add("/imagecache/ledger/cache", Fixture, NULL, fixture_setup, test_cache,
               fixture_teardown);
    g_test_add("/imagecache/ledger/bad-entry-name", Fixture, NULL, fixture_setup,
               test_bad_entry_name, fixture_teardown);
    for (gsize i = 0; i < G_N_ELEMENTS(damaged_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/ledger/damaged/%s", damaged_cases[i].file);
        g_test_add_data_func(path, &damaged_cases[i], test_damaged_file);
    }
    g_test_add_func("/imagecache/ledger/damaged/every-truncation", test_every_truncation);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/imagecache/ledger/damaged/read-all", test_damaged_in_read_all);
    ADD("/imagecache/ledger/missing-dir", test_missing_dir);
    ADD("/imagecache/ledger/read-each", test_read_each);
    ADD("/imagecache/ledger/many-releases", test_many_releases);
    ADD("/imagecache/ledger/record-drop", test_record_drop);
    ADD("/imagecache/ledger/record-keeps-damaged", test_record_keeps_damaged);
    ADD("/imagecache/ledger/bad-host", test_bad_host);
    for (gsize i = 0; i < G_N_ELEMENTS(leftover_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/ledger/leftover-temp/%s", leftover_cases[i].name);
        g_test_add(path, Fixture, &leftover_cases[i], fixture_setup, test_leftover_temp,
                   fixture_teardown);
    }
    ADD("/imagecache/ledger/other-host-temps", test_other_host_temps);
    ADD("/imagecache/ledger/old-temps", test_old_temps);
    ADD("/imagecache/ledger/temp-prefix-host", test_temp_prefix_host);
    ADD("/imagecache/ledger/replace-if-unchanged", test_replace_if_unchanged);
    ADD("/imagecache/ledger/unwritable", test_unwritable);
    ADD("/imagecache/ledger/concurrent-writers", test_concurrent_writers);
    ADD("/imagecache/ledger/two-hosts", test_two_hosts);
    ADD("/imagecache/ledger/replace", test_replace);
#undef ADD
    g_test_add("/imagecache/ledger/from-xml", IcTestTree, NULL, ic_test_tree_setup, test_from_xml,
               ic_test_tree_teardown);
    g_test_add("/imagecache/ledger/from-xml-problems", IcTestTree, NULL, ic_test_tree_setup,
               test_from_xml_problems, ic_test_tree_teardown);
    g_test_add("/imagecache/ledger/from-xml-past-caps", IcTestTree, NULL, ic_test_tree_setup,
               test_from_xml_past_caps, ic_test_tree_teardown);

    return g_test_run();
}
