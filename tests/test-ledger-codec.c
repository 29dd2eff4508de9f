/* test-ledger-codec.c — the ledger's host file codec against GKeyFile: the serialiser
 * writes the text itself, and must write byte for byte what the GKeyFile serialiser
 * it replaced wrote (kept below as the reference), so files written before and after
 * the change read the same and carry the same digest. */
#include "ledger.h"

#include <string.h>

/* ---- the reference: ic_ledger_host_serialize as it was with GKeyFile (GLib 2.74) ---- */

static void ref_set_list(GKeyFile *kf, const char *group, const char *key, GPtrArray *list)
{
    g_key_file_set_string_list(kf, group, key, (const char *const *)list->pdata, list->len);
}

static gint ref_compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *ref_end_trailer(guint domains, const char *body, gsize body_len)
{
    g_autofree char *digest =
        g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)body, body_len);
    return g_strdup_printf("[end]\ndomains=%u\nsha256=%s\n", domains, digest);
}

static char *ref_serialize(const IcLedgerHost *host, gsize *ret_len)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GPtrArray) domains = g_ptr_array_sized_new(host->domains->len);
    for (guint i = 0; i < host->domains->len; i++)
        g_ptr_array_add(domains, host->domains->pdata[i]);
    g_ptr_array_sort(domains, ic_ledger_domain_compare);

    g_key_file_set_integer(kf, "ledger", "format", 3);
    g_key_file_set_comment(
        kf, "ledger", NULL,
        " imagecache usage ledger: written by imagecache-hook under its .lock, do not edit", NULL);
    g_key_file_set_string(kf, "ledger", "host", host->host);
    if (host->machine_id != NULL)
        g_key_file_set_string(kf, "ledger", "machine_id", host->machine_id);
    g_key_file_set_int64(kf, "ledger", "refreshed", host->refreshed);
    g_key_file_set_uint64(kf, "ledger", "domains", domains->len);

    for (guint i = 0; i < domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(domains, i);
        g_autofree char *group = g_strconcat("domain ", domain->uuid, NULL);
        g_key_file_set_string(kf, group, "name", domain->name);
        g_key_file_set_int64(kf, group, "started", domain->started);
        ref_set_list(kf, group, "base_files", domain->base_files);
        ref_set_list(kf, group, "image_ids", domain->image_ids);
        if (domain->unknown != NULL)
            g_key_file_set_string(kf, group, "unknown", domain->unknown);
    }

    if (host->last_used != NULL && g_hash_table_size(host->last_used) > 0) {
        g_autoptr(GPtrArray) paths = g_ptr_array_new();
        GHashTableIter iter;
        gpointer key;
        g_hash_table_iter_init(&iter, host->last_used);
        while (g_hash_table_iter_next(&iter, &key, NULL))
            g_ptr_array_add(paths, key);
        g_ptr_array_sort(paths, ref_compare_strings);
        g_autofree gint64 *times = g_new(gint64, paths->len);
        g_autoptr(GStrvBuilder) time_strs = g_strv_builder_new();
        for (guint i = 0; i < paths->len; i++) {
            times[i] = *(const gint64 *)g_hash_table_lookup(host->last_used, paths->pdata[i]);
            g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, times[i]);
            g_strv_builder_add(time_strs, s);
        }
        g_auto(GStrv) strv = g_strv_builder_end(time_strs);
        ref_set_list(kf, "last_used", "paths", paths);
        g_key_file_set_string_list(kf, "last_used", "times", (const char *const *)strv, paths->len);
    }

    gsize body_len = 0;
    g_autofree char *body = g_key_file_to_data(kf, &body_len, NULL);
    GString *out = g_string_new_len(body, (gssize)body_len);
    if (out->len > 0 && !g_str_has_suffix(out->str, "\n\n"))
        g_string_append_c(out, '\n');
    g_autofree char *trailer = ref_end_trailer(domains->len, out->str, out->len);
    g_string_append(out, trailer);
    if (ret_len != NULL)
        *ret_len = out->len;
    return g_string_free(out, FALSE);
}

/* ---- generated hosts ---- */

/* Pieces a value is made of: every character GKeyFile escapes, in every position
 * (leading, after a ';', after a '\\'), and the ones it must not. */
static const char *const pieces[] = {
    " ",
    "\t",
    ";",
    "\\",
    "\n",
    "\r",
    "a",
    "Z",
    "0",
    "-",
    "=",
    "[",
    "]",
    "#",
    ".",
    "/",
    "é",
    "日本",
    "\xf0\x9f\x98\x80",
    "\\s",
    "\\n",
    "  ",
    "\t ",
    "x y",
    "a;b",
    "\x7f",
};

static char *random_text(guint max_pieces)
{
    guint n = (guint)g_test_rand_int_range(0, (gint32)max_pieces + 1);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < n; i++)
        g_string_append(s, pieces[g_test_rand_int_range(0, G_N_ELEMENTS(pieces))]);
    return g_string_free(s, FALSE);
}

static char *random_uuid(void)
{
    /* A small pool now and then, so that two domains share a uuid. */
    if (g_test_rand_int_range(0, 20) == 0)
        return g_strdup_printf("00000000-0000-4000-8000-00000000000%d",
                               g_test_rand_int_range(0, 3));
    return g_strdup_printf(
        "%08x-%04x-4%03x-8%03x-%012" G_GINT64_MODIFIER "x", (guint)g_test_rand_int(),
        (guint)g_test_rand_int_range(0, 0x10000), (guint)g_test_rand_int_range(0, 0x1000),
        (guint)g_test_rand_int_range(0, 0x1000),
        ((guint64)(guint32)g_test_rand_int() << 16) ^ (guint64)(guint32)g_test_rand_int());
}

static gint64 random_time(void)
{
    switch (g_test_rand_int_range(0, 4)) {
    case 0:
        return 0;
    case 1:
        return G_MAXINT64 - g_test_rand_int_range(0, 2);
    case 2:
        return -(gint64)g_test_rand_int_range(0, G_MAXINT32);
    default:
        return 1700000000 + g_test_rand_int_range(0, 100000000);
    }
}

static void add_random_list(GPtrArray *list, guint max)
{
    guint n = (guint)g_test_rand_int_range(0, (gint32)max + 1);
    for (guint i = 0; i < n; i++)
        g_ptr_array_add(list, random_text(6));
}

static IcLedgerHost *random_host(guint max_domains)
{
    g_autofree char *name = g_strdup_printf("host-%d.example", g_test_rand_int_range(0, 1000));
    IcLedgerHost *host = ic_ledger_host_new(name);
    host->refreshed = random_time();
    if (g_test_rand_bit())
        host->machine_id = random_text(4);
    guint n = (guint)g_test_rand_int_range(0, (gint32)max_domains + 1);
    for (guint i = 0; i < n; i++) {
        g_autofree char *uuid = random_uuid();
        g_autofree char *dname = random_text(8);
        IcLedgerDomain *domain = ic_ledger_domain_new(uuid, dname);
        domain->started = random_time();
        add_random_list(domain->base_files, 5);
        add_random_list(domain->image_ids, 3);
        if (g_test_rand_int_range(0, 4) == 0)
            domain->unknown = random_text(6);
        g_ptr_array_add(host->domains, domain);
    }
    if (g_test_rand_bit()) {
        guint m = (guint)g_test_rand_int_range(1, 12);
        for (guint i = 0; i < m; i++) {
            gint64 *t = g_new(gint64, 1);
            *t = random_time();
            g_hash_table_replace(host->last_used, random_text(6), t);
        }
    }
    return host;
}

static void assert_same_as_reference(const IcLedgerHost *host)
{
    gsize len = 0, ref_len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    g_autofree char *ref = ref_serialize(host, &ref_len);
    if (len != ref_len || memcmp(text, ref, len) != 0) {
        g_test_message("reference (%" G_GSIZE_FORMAT " bytes):\n%s", ref_len, ref);
        g_test_message("serialised (%" G_GSIZE_FORMAT " bytes):\n%s", len, text);
    }
    g_assert_cmpmem(text, len, ref, ref_len);
    g_assert_cmpuint(strlen(text), ==, len);
}

static void test_generated(void)
{
    /* Small hosts, many of them: every escape in every position many times over. */
    for (guint i = 0; i < 3000; i++) {
        g_autoptr(IcLedgerHost) host = random_host(4);
        assert_same_as_reference(host);
    }
    /* A few busy hosts. */
    for (guint i = 0; i < 10; i++) {
        g_autoptr(IcLedgerHost) host = random_host(300);
        assert_same_as_reference(host);
    }
}

/* The cases worth naming, each written out. */
static void test_named(void)
{
    static const char *const values[] = {
        "",        " ",        "  lead",    "\tlead",  " \t mixed", "trail ", "trail\t",
        "in side", "in\tside", "a;b",       ";lead",   "a; b",      "a;\tb",  "back\\slash",
        "\\ x",    "\\\tx",    "new\nline", "\n lead", "\r\n",      "cr\r",   "[x]",
        "#c",      "k=v",      "é ü 日本",  "\\;",     ";;",        "; ;",
    };
    for (guint i = 0; i < G_N_ELEMENTS(values); i++) {
        g_autoptr(IcLedgerHost) host = ic_ledger_host_new("h");
        host->machine_id = g_strdup(values[i]);
        IcLedgerDomain *domain =
            ic_ledger_domain_new("3f2504e0-4f89-41d3-9a0c-0305e82c3301", values[i]);
        g_ptr_array_add(domain->base_files, g_strdup(values[i]));
        g_ptr_array_add(domain->base_files, g_strdup(values[i]));
        g_ptr_array_add(domain->image_ids, g_strdup(values[i]));
        domain->unknown = g_strdup(values[i]);
        g_ptr_array_add(host->domains, domain);
        gint64 *t = g_new(gint64, 1);
        *t = -1;
        g_hash_table_replace(host->last_used, g_strdup(values[i]), t);
        assert_same_as_reference(host);
    }
    /* Empty: no domains, no last_used; then empty lists. */
    g_autoptr(IcLedgerHost) empty = ic_ledger_host_new("h");
    assert_same_as_reference(empty);
    g_ptr_array_add(empty->domains,
                    ic_ledger_domain_new("3f2504e0-4f89-41d3-9a0c-0305e82c3301", "vm"));
    assert_same_as_reference(empty);
    /* Two domains with one uuid (GKeyFile merged them into one group). */
    IcLedgerDomain *twin = ic_ledger_domain_new("3f2504e0-4f89-41d3-9a0c-0305e82c3301", "twin");
    twin->unknown = g_strdup("why");
    g_ptr_array_add(twin->base_files, g_strdup("b"));
    g_ptr_array_add(empty->domains, twin);
    assert_same_as_reference(empty);
    g_ptr_array_add(empty->domains,
                    ic_ledger_domain_new("3f2504e0-4f89-41d3-9a0c-0305e82c3301", "third"));
    assert_same_as_reference(empty);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/imagecache/ledger-codec/serialize/named", test_named);
    g_test_add_func("/imagecache/ledger-codec/serialize/generated", test_generated);
    return g_test_run();
}
