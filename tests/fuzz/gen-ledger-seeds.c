/* gen-ledger-seeds.c — writes ledger host files with ic_ledger_host_serialize into the
 * directory given, as seeds for fuzz-ledger (tests/fuzz/make-seeds.sh runs it). */
#include "ledger.h"

#include <stdio.h>

static void add_domain(IcLedgerHost *host, const char *uuid, const char *name, gint64 started,
                       const char *const *base_files, const char *const *image_ids)
{
    IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
    domain->started = started;
    for (guint i = 0; base_files != NULL && base_files[i] != NULL; i++)
        g_ptr_array_add(domain->base_files, g_strdup(base_files[i]));
    for (guint i = 0; image_ids != NULL && image_ids[i] != NULL; i++)
        g_ptr_array_add(domain->image_ids, g_strdup(image_ids[i]));
    g_ptr_array_add(host->domains, domain);
}

static void add_last_used(IcLedgerHost *host, const char *path, gint64 when)
{
    gint64 *value = g_new(gint64, 1);
    *value = when;
    g_hash_table_replace(host->last_used, g_strdup(path), value);
}

static IcLedgerHost *new_host(const char *name, gint64 refreshed)
{
    IcLedgerHost *host = g_new0(IcLedgerHost, 1);
    host->host = g_strdup(name);
    host->refreshed = refreshed;
    host->domains = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    host->last_used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return host;
}

static void write_seed(const char *dir, const char *name, IcLedgerHost *host)
{
    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_file_set_contents(path, text, (gssize)len, &error))
        g_error("%s", error->message);
    ic_ledger_host_free(host);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static const char *const base[] = {
        "/var/lib/nova/instances/_base/1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1",
        "/var/lib/nova/instances/_base/1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1_10",
        NULL,
    };
    static const char *const odd[] = {"/srv/base/semi;colon", "/srv/base/back\\slash",
                                      "/srv/base/new\nline", "/srv/base/caf\xc3\xa9", NULL};
    static const char *const ids[] = {"155d900f-4e14-4e4c-a73d-069cbf4541e6",
                                      "a1b2c3d4-0000-4000-8000-00000000beef", NULL};

    write_seed(dir, "serialized-empty.ledger", new_host("compute-1", 1700000000));

    IcLedgerHost *host = new_host("compute-1.example.org", 1700000100);
    add_domain(host, "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "instance-0000002a", 1699999000, base,
               ids);
    write_seed(dir, "serialized-one.ledger", host);

    host = new_host("host_b-2", 1700000200);
    add_domain(host, "3f2504e0-4f89-41d3-9a0c-0305e82c3301", " lead and trail ", 1, odd, NULL);
    add_domain(host, "00000000-0000-4000-8000-000000000001", "x=y [z] #c", 0, NULL, ids);
    add_domain(host, "ffffffff-ffff-4fff-bfff-ffffffffffff", "\xe2\x9c\x93 unicode", G_MAXINT64,
               base, NULL);
    add_last_used(host, "/var/lib/nova/instances/_base/0000000000000000000000000000000000000000",
                  1699900000);
    add_last_used(host, "/srv/base/semi;colon", 0);
    write_seed(dir, "serialized-many.ledger", host);

    host = new_host("h", 0);
    add_last_used(host, base[0], 1699000000);
    add_last_used(host, base[1], 1699000001);
    write_seed(dir, "serialized-last-used.ledger", host);

    /* Format 3: the writer's machine id, a domain whose usage is unknown. */
    host = new_host("compute-3", 1700000300);
    host->machine_id = g_strdup("0123456789abcdef0123456789abcdef");
    add_domain(host, "3f2504e0-4f89-41d3-9a0c-0305e82c3303", "vm-u", 1700000000, NULL, NULL);
    IcLedgerDomain *unknown = g_ptr_array_index(host->domains, 0);
    unknown->unknown = g_strdup("disk 'vda' of domain 'vm-u': a json: backing; \\ [x]");
    write_seed(dir, "serialized-unknown.ledger", host);
    return 0;
}
