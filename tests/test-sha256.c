/* test-sha256.c — ic_sha256_hex's two implementations (the x86 SHA extensions, GLib's
 * GChecksum) against GLib: the FIPS 180-4 examples, every length up to 1 KiB, random
 * unaligned buffers up to 64 KiB, and real ledger host files. On a CPU without the SHA
 * extensions only the portable path runs, and the test says so. */
#include "ledger.h"
#include "sha256.h"

#include <string.h>

static char *glib_sha256(const void *data, gsize len)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
}

/* Every implementation this machine has gives GLib's digest of @data. */
static void assert_all_agree(const void *data, gsize len)
{
    g_autofree char *expected = glib_sha256(data, len);
    g_autofree char *portable = ic_sha256_hex_with(IC_SHA256_PORTABLE, data, len);
    g_autofree char *chosen = ic_sha256_hex(data, len);
    if (ic_sha256_have_sha_ni()) {
        g_autofree char *sha_ni = ic_sha256_hex_with(IC_SHA256_SHA_NI, data, len);
        if (g_strcmp0(sha_ni, expected) != 0)
            g_test_message("length %" G_GSIZE_FORMAT ": SHA extensions differ", len);
        g_assert_cmpstr(sha_ni, ==, expected);
    }
    g_assert_cmpstr(portable, ==, expected);
    g_assert_cmpstr(chosen, ==, expected);
}

static void note_missing_sha_ni(void)
{
    if (!ic_sha256_have_sha_ni())
        g_test_message("no SHA extensions on this CPU: only the portable path is tested");
}

/* The FIPS 180-4 examples (NIST's "SHA256.pdf" and the long-message test). */
static void test_fips(void)
{
    static const struct {
        const char *message;
        const char *digest;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", /* 448 bits */
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu", /* 896 bits */
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    note_missing_sha_ni();
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        gsize len = strlen(cases[i].message);
        g_autofree char *digest = ic_sha256_hex(cases[i].message, len);
        g_assert_cmpstr(digest, ==, cases[i].digest);
        assert_all_agree(cases[i].message, len);
    }

    gsize million = 1000000;
    g_autofree char *a = g_malloc(million);
    memset(a, 'a', million);
    g_autofree char *digest = ic_sha256_hex(a, million);
    g_assert_cmpstr(digest, ==, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    assert_all_agree(a, million);
}

static void fill_random(guint8 *buf, gsize len)
{
    for (gsize i = 0; i < len; i++)
        buf[i] = (guint8)g_test_rand_int_range(0, 256);
}

/* Every length from 0 to 1024: each way the padding can fall (one or two final
 * blocks, the length field on a block boundary), over 16 whole blocks. */
static void test_every_length(void)
{
    note_missing_sha_ni();
    g_autofree guint8 *buf = g_malloc(1024 + 1);
    fill_random(buf, 1024 + 1);
    for (gsize len = 0; len <= 1024; len++)
        assert_all_agree(buf, len);
    /* No data at all, as a caller with an empty buffer may pass it. */
    assert_all_agree(NULL, 0);
}

/* Random lengths up to 64 KiB starting at every alignment: the block loads are unaligned. */
static void test_random_unaligned(void)
{
    note_missing_sha_ni();
    const gsize max = 64 * 1024;
    g_autofree guint8 *buf = g_malloc(max + 16);
    fill_random(buf, max + 16);
    guint rounds = g_test_thorough() ? 2000 : 200;
    for (guint r = 0; r < rounds; r++) {
        gsize offset = (gsize)g_test_rand_int_range(0, 16);
        gsize len = (gsize)g_test_rand_int_range(0, (gint32)max + 1);
        assert_all_agree(buf + offset, len);
    }
    assert_all_agree(buf + 1, max);
}

/* A host as the hook writes it: @n domains, each with a base chain and an image id. */
static IcLedgerHost *generated_host(guint n)
{
    IcLedgerHost *host = ic_ledger_host_new("compute-17.example");
    host->machine_id = g_strdup("0123456789abcdef0123456789abcdef");
    host->refreshed = 1700000000 + n;
    for (guint d = 0; d < n; d++) {
        g_autofree char *uuid = g_strdup_printf("aaaaaaaa-0000-4000-8000-%012x", d);
        g_autofree char *name = g_strdup_printf("instance-%08x", d);
        IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
        domain->started = 1690000000 + d;
        g_autofree char *id = g_strdup_printf("%08x-1111-4222-8333-%012x", d * 7919, d);
        g_autofree char *fp = g_compute_checksum_for_string(G_CHECKSUM_SHA1, id, -1);
        g_ptr_array_add(domain->base_files, g_strdup(fp));
        g_ptr_array_add(domain->base_files, g_strdup_printf("%s_10737418240", fp));
        g_ptr_array_add(domain->image_ids, g_strdup(id));
        g_ptr_array_add(host->domains, domain);
        if (d % 5 == 0) {
            gint64 *t = g_new(gint64, 1);
            *t = 1695000000 + d;
            g_hash_table_replace(host->last_used, g_strdup_printf("%s_old", fp), t);
        }
    }
    return host;
}

/* The serialised host file's sha256= is GLib's digest of the bytes before its [end]
 * line, both implementations agree on that body, and the file reads back. */
static void test_ledger_files(void)
{
    note_missing_sha_ni();
    static const guint sizes[] = {0, 1, 2, 3, 10, 100, 101, 200, 1000};
    for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autoptr(IcLedgerHost) host = generated_host(sizes[i]);
        gsize len = 0;
        g_autofree char *text = ic_ledger_host_serialize(host, &len);
        const char *end = g_strrstr(text, "\n[end]\n");
        g_assert_nonnull(end);
        gsize body_len = (gsize)(end - text) + 1;
        g_autofree char *expected = glib_sha256(text, body_len);
        g_autofree char *line = g_strdup_printf("\nsha256=%s\n", expected);
        g_assert_true(g_str_has_suffix(text, line));
        assert_all_agree(text, body_len);
        assert_all_agree(text, len);

        g_autoptr(IcLedgerHost) back = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_true(ic_ledger_host_parse(text, len, &back, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(back->domains->len, ==, sizes[i]);
    }
}

/* The run-time check agrees with what the kernel saw in CPUID (Linux x86-64 only:
 * /proc/cpuinfo names the flags sha_ni, ssse3 and sse4_1). */
static void test_detection(void)
{
#if defined(__x86_64__) && defined(__linux__)
    /* Valgrind's virtual CPU lacks the SHA extensions /proc/cpuinfo shows
     * (scripts/valgrind.sh): there the check may only answer "no". */
    const char *preload = g_getenv("LD_PRELOAD");
    gboolean virtual_cpu = preload != NULL && strstr(preload, "vgpreload") != NULL;
    g_autofree char *cpuinfo = NULL;
    if (!g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL)) {
        g_test_skip("no /proc/cpuinfo");
        return;
    }
    const char *flags = strstr(cpuinfo, "\nflags");
    g_assert_nonnull(flags);
    g_autofree char *line = g_strndup(flags + 1, strcspn(flags + 1, "\n"));
    g_auto(GStrv) words = g_strsplit_set(line, " \t", -1);
    gboolean sha = g_strv_contains((const char *const *)words, "sha_ni");
    gboolean ssse3 = g_strv_contains((const char *const *)words, "ssse3");
    gboolean sse41 = g_strv_contains((const char *const *)words, "sse4_1");
    g_test_message("cpuinfo: sha_ni %d ssse3 %d sse4_1 %d", sha, ssse3, sse41);
    if (virtual_cpu) /* never claims what the CPU lacks (that would be SIGILL) */
        g_assert_true(!ic_sha256_have_sha_ni() || (sha && ssse3 && sse41));
    else
        g_assert_cmpint(ic_sha256_have_sha_ni(), ==, sha && ssse3 && sse41);
#elif !defined(__x86_64__)
    g_assert_false(ic_sha256_have_sha_ni());
#else
    g_test_skip("no /proc/cpuinfo to compare with");
#endif
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/sha256/detection", test_detection);
    g_test_add_func("/imagecache/sha256/fips", test_fips);
    g_test_add_func("/imagecache/sha256/every_length", test_every_length);
    g_test_add_func("/imagecache/sha256/random_unaligned", test_random_unaligned);
    g_test_add_func("/imagecache/sha256/ledger_files", test_ledger_files);
    return g_test_run();
}
