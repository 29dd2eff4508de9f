/* test-checksum.c — SHA-1 hashing, both sidecar formats, verification, and the
 * file helpers (bounded read, atomic write) the checksum module is built on. */
#include "checksum.h"
#include "error.h"
#include "fileutil.h"
#include "testutil.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW        ((gint64)1700000000)
#define SHA1_EMPTY "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define SHA1_ABC   "a9993e364706816aba3e25717850c26c9cd0d89d"
#define MIB        (1024 * 1024)

/* The reference suite's image contents. */
static const char testdata[] = "OpenStack Software delivers a massively scalable cloud "
                               "operating system.";

typedef struct {
    char *dir;
    int dirfd;
} Fixture;

static void fixture_setup(Fixture *fix, gconstpointer data)
{
    fix->dir = ic_test_mkdtemp();
    fix->dirfd = open(fix->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(fix->dirfd, >=, 0);
}

static void fixture_teardown(Fixture *fix, gconstpointer data)
{
    close(fix->dirfd);
    ic_test_rmtree(fix->dir);
    g_clear_pointer(&fix->dir, g_free);
}

static void put_file(Fixture *fix, const char *name, const char *contents, gssize len)
{
    g_free(ic_test_write_file(fix->dir, name, contents, len));
}

static char *fixture_path(Fixture *fix, const char *name)
{
    return g_build_filename(fix->dir, name, NULL);
}

static gboolean fixture_exists(Fixture *fix, const char *name)
{
    g_autofree char *path = fixture_path(fix, name);
    return ic_test_exists(path);
}

static void put_symlink(Fixture *fix, const char *target, const char *name)
{
    g_assert_cmpint(symlinkat(target, fix->dirfd, name), ==, 0);
}

static void put_dir(Fixture *fix, const char *name)
{
    g_assert_cmpint(mkdirat(fix->dirfd, name, 0755), ==, 0);
}

/* Deterministic, non-repeating-looking contents of @len bytes. */
static char *make_pattern(gsize len)
{
    char *data = g_malloc(len);
    guint32 x = 2463534242u;
    for (gsize i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (char)(x & 0xff);
    }
    return data;
}

static char *sha1_of(const char *data, gsize len)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA1, (const guchar *)data, len);
}

static IcChecksumOptions default_options(void)
{
    return (IcChecksumOptions){
        .rate_limit_bytes_per_sec = 0,
        .interval_seconds = 3600,
        .write_missing = TRUE,
        .cancel = NULL,
    };
}

static IcStoredChecksum *read_stored_ok(Fixture *fix, const char *name)
{
    g_autoptr(GError) error = NULL;
    IcStoredChecksum *stored = NULL;
    g_assert_true(ic_checksum_read_stored(fix->dirfd, name, &stored, &error));
    g_assert_no_error(error);
    return stored;
}

static char *hash_ok(Fixture *fix, const char *name, guint64 rate)
{
    g_autoptr(GError) error = NULL;
    char *hex = NULL;
    g_assert_true(ic_checksum_file(fix->dirfd, name, rate, NULL, &hex, &error));
    g_assert_no_error(error);
    g_assert_nonnull(hex);
    return hex;
}

static void hash_fails(Fixture *fix, const char *name, gint code)
{
    g_autoptr(GError) error = NULL;
    char *hex = NULL;
    g_assert_false(ic_checksum_file(fix->dirfd, name, 0, NULL, &hex, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(hex);
}

static void verify_ok(Fixture *fix, const char *name, const IcChecksumOptions *options, gint64 now,
                      IcChecksumResult *result)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_checksum_verify(fix->dirfd, name, options, now, result, &error));
    g_assert_no_error(error);
}

/* Verifies @name and checks only the resulting state. */
static void verify_expect(Fixture *fix, const char *name, const IcChecksumOptions *options,
                          IcChecksumState state)
{
    IcChecksumResult result = {0};
    verify_ok(fix, name, options, NOW, &result);
    g_assert_cmpstr(ic_checksum_state_to_string(result.state), ==,
                    ic_checksum_state_to_string(state));
    ic_checksum_result_clear(&result);
}

/* ---- reference counterparts ---- */

static void test_read_stored_checksum_missing(Fixture *fix, gconstpointer data)
{
    put_file(fix, "foo", testdata, -1);
    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "foo");
    g_assert_null(stored);
}

static void test_read_stored_checksum(Fixture *fix, gconstpointer data)
{
    const char *csum_input = "fdghkfhkgjjksfdgjksjkghsdf";
    g_autofree char *contents = g_strdup_printf("%s\n", csum_input);
    put_file(fix, "aaa.sha1", contents, -1);

    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "aaa");
    g_assert_nonnull(stored);
    g_assert_cmpstr(stored->sha1, ==, csum_input);
    g_assert_cmpint(stored->format, ==, IC_SIDECAR_SHA1);
    g_assert_cmpint(stored->timestamp, ==, -1);
}

static void test_verify_checksum(Fixture *fix, gconstpointer data)
{
    IcChecksumOptions options = default_options();
    g_autofree char *real = sha1_of(testdata, strlen(testdata));
    put_file(fix, "aaa", testdata, -1);

    /* Checksum is valid. */
    put_file(fix, "aaa.sha1", real, -1);
    IcChecksumResult result = {0};
    verify_ok(fix, "aaa", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_OK);
    g_assert_cmpstr(result.actual, ==, real);
    ic_checksum_result_clear(&result);

    /* Checksum is invalid: the result carries what a caller logs as
     * "image verification failed". */
    put_file(fix, "aaa.sha1", "banana", -1);
    verify_ok(fix, "aaa", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_MISMATCH);
    g_assert_cmpstr(result.expected, ==, "banana");
    g_assert_cmpstr(result.actual, ==, real);
    g_assert_null(result.error);
    ic_checksum_result_clear(&result);

    /* Checksum file missing: no verdict, and a sidecar is written. */
    g_autofree char *sha1_path = fixture_path(fix, "aaa.sha1");
    g_assert_cmpint(g_unlink(sha1_path), ==, 0);
    verify_ok(fix, "aaa", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_NO_SIDECAR);
    g_assert_null(result.expected);
    g_assert_cmpstr(result.actual, ==, real);
    ic_checksum_result_clear(&result);

    g_assert_true(fixture_exists(fix, "aaa.info"));
    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "aaa");
    g_assert_nonnull(stored);
    g_assert_cmpint(stored->format, ==, IC_SIDECAR_INFO);
    g_assert_cmpstr(stored->sha1, ==, real);
    g_assert_cmpint(stored->timestamp, ==, NOW);
}

/* ---- hashing ---- */

static void test_hash_known(Fixture *fix, gconstpointer data)
{
    put_file(fix, "empty", "", 0);
    put_file(fix, "abc", "abc", -1);
    g_autofree char *empty = hash_ok(fix, "empty", 0);
    g_autofree char *abc = hash_ok(fix, "abc", 0);
    g_assert_cmpstr(empty, ==, SHA1_EMPTY);
    g_assert_cmpstr(abc, ==, SHA1_ABC);
}

static void test_hash_large(Fixture *fix, gconstpointer data)
{
    /* Several buffers' worth and a ragged tail. */
    const gsize len = 5 * MIB + 12345;
    g_autofree char *contents = make_pattern(len);
    put_file(fix, "big", contents, (gssize)len);

    g_autofree char *expected = sha1_of(contents, len);
    g_autofree char *actual = hash_ok(fix, "big", 0);
    g_assert_cmpstr(actual, ==, expected);
}

static void test_hash_rate_limit(Fixture *fix, gconstpointer data)
{
    const gsize len = 4 * MIB;
    g_autofree char *contents = make_pattern(len);
    put_file(fix, "img", contents, (gssize)len);

    gint64 start = g_get_monotonic_time();
    g_autofree char *actual = hash_ok(fix, "img", 8 * MIB);
    gint64 elapsed = g_get_monotonic_time() - start;

    /* A lower bound only: a loaded machine may take longer. */
    g_assert_cmpint(elapsed, >=, 400 * 1000);
    g_autofree char *expected = sha1_of(contents, len);
    g_assert_cmpstr(actual, ==, expected);
}

static gpointer cancel_later(gpointer data)
{
    g_usleep(150 * 1000);
    ic_cancel_cancel(data);
    return NULL;
}

static void test_hash_cancel(Fixture *fix, gconstpointer data)
{
    const gsize len = 8 * MIB;
    g_autofree char *contents = make_pattern(len);
    put_file(fix, "img", contents, (gssize)len);

    /* At 2 MiB/s this would take 4 s; another thread cancels it mid-file. */
    g_autoptr(IcCancel) cancel = ic_cancel_new();
    GThread *thread = g_thread_new("cancel", cancel_later, cancel);
    g_autoptr(GError) error = NULL;
    char *hex = NULL;
    g_assert_false(ic_checksum_file(fix->dirfd, "img", 2 * MIB, cancel, &hex, &error));
    g_thread_join(thread);
    g_assert_error(error, IC_ERROR, IC_ERROR_CANCELLED);
    g_assert_null(hex);
}

static void test_hash_cancelled_before(Fixture *fix, gconstpointer data)
{
    put_file(fix, "aaa", testdata, -1);
    g_autoptr(IcCancel) cancel = ic_cancel_new();
    ic_cancel_cancel(cancel);

    g_autoptr(GError) error = NULL;
    char *hex = NULL;
    g_assert_false(ic_checksum_file(fix->dirfd, "aaa", 0, cancel, &hex, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CANCELLED);

    /* verify: FALSE, nothing written, the result untouched. */
    g_clear_error(&error);
    IcChecksumOptions options = default_options();
    options.cancel = cancel;
    IcChecksumResult result = {0};
    g_assert_false(ic_checksum_verify(fix->dirfd, "aaa", &options, NOW, &result, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CANCELLED);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_NOT_CHECKED);
    g_assert_null(result.actual);
    g_assert_false(fixture_exists(fix, "aaa.info"));
}

static void test_hash_refuses_unsafe(Fixture *fix, gconstpointer data)
{
    put_file(fix, "real", testdata, -1);
    put_symlink(fix, "real", "link");
    put_dir(fix, "dir");
    g_autofree char *fifo = fixture_path(fix, "fifo");
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);

    hash_fails(fix, "link", IC_ERROR_UNSAFE);
    hash_fails(fix, "dir", IC_ERROR_UNSAFE);
    hash_fails(fix, "fifo", IC_ERROR_UNSAFE);
    hash_fails(fix, "absent", IC_ERROR_NOT_FOUND);

    /* verify reports it as an error state, not a failure. */
    IcChecksumOptions options = default_options();
    IcChecksumResult result = {0};
    verify_ok(fix, "link", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_ERROR);
    g_assert_nonnull(result.error);
    g_assert_null(result.actual);
    ic_checksum_result_clear(&result);
    g_assert_false(fixture_exists(fix, "link.info"));

    verify_expect(fix, "absent", &options, IC_CHECKSUM_NOT_CHECKED);
    g_assert_false(fixture_exists(fix, "absent.info"));
}

/* ---- sidecar parsing ---- */

typedef struct {
    const char *input;
    gssize len;       /* -1: strlen */
    const char *sha1; /* NULL: must fail with IC_ERROR_FORMAT */
    gint64 timestamp;
} SidecarCase;

static void check_parse(gboolean (*parse)(const char *, gsize, IcStoredChecksum **, GError **),
                        const SidecarCase *cases, gsize n_cases, IcSidecarFormat format)
{
    for (gsize i = 0; i < n_cases; i++) {
        const SidecarCase *c = &cases[i];
        gsize len = c->len < 0 ? strlen(c->input) : (gsize)c->len;
        g_autoptr(GError) error = NULL;
        g_autoptr(IcStoredChecksum) stored = NULL;
        g_test_message("case %" G_GSIZE_FORMAT ": '%s'", i, c->input);
        gboolean ok = parse(c->input, len, &stored, &error);
        if (c->sha1 == NULL) {
            g_assert_false(ok);
            g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
            g_assert_null(stored);
            continue;
        }
        g_assert_no_error(error);
        g_assert_true(ok);
        g_assert_cmpint(stored->format, ==, format);
        g_assert_cmpstr(stored->sha1, ==, c->sha1);
        g_assert_cmpint(stored->timestamp, ==, c->timestamp);
    }
}

static void test_parse_sha1(void)
{
    g_autofree char *too_long = g_strnfill(129, 'a');
    g_autofree char *longest = g_strnfill(128, 'a');
    const SidecarCase cases[] = {
        {SHA1_ABC, -1, SHA1_ABC, -1},
        {SHA1_ABC "\n", -1, SHA1_ABC, -1},
        {"  A9993E36 \r\n", -1, "A9993E36", -1}, /* as stored: compared case-insensitively */
        {"fdghkfhkgjjksfdgjksjkghsdf\n", -1, "fdghkfhkgjjksfdgjksjkghsdf", -1},
        {"a b", -1, "a b", -1},
        {longest, -1, longest, -1},
        {"", -1, NULL, 0},
        {" \n\n", -1, NULL, 0},
        {"abc\ndef\n", -1, NULL, 0},
        {"abc\0def", 7, NULL, 0},
        {"abc\x01", -1, NULL, 0},
        {"caf\xc3\xa9", -1, NULL, 0},
        {too_long, -1, NULL, 0},
    };
    check_parse(ic_checksum_parse_sha1_sidecar, cases, G_N_ELEMENTS(cases), IC_SIDECAR_SHA1);
}

static void test_parse_info(void)
{
    const SidecarCase cases[] = {
        /* As Python's json.dump writes it, with a float time.time(). */
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": 1353971234.56}", -1, SHA1_ABC,
         1353971234},
        {"{\"sha1\": \"" SHA1_ABC "\"}", -1, SHA1_ABC, -1},
        {"{\"sha1-timestamp\": null, \"sha1\": \"" SHA1_ABC "\"}\n", -1, SHA1_ABC, -1},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": 1353971234, \"x\": [1, {}]}", -1,
         SHA1_ABC, 1353971234},
        {"\n{ \"sha1\" : \"" SHA1_ABC "\" }\n\n", -1, SHA1_ABC, -1},
        /* Damaged. */
        {"", -1, NULL, 0},
        {"not json", -1, NULL, 0},
        {"[1, 2]", -1, NULL, 0},
        {"null", -1, NULL, 0},
        {"\"" SHA1_ABC "\"", -1, NULL, 0},
        {"{}", -1, NULL, 0},
        {"{\"sha1\": 5}", -1, NULL, 0},
        {"{\"sha1\": null}", -1, NULL, 0},
        {"{\"sha1\": [\"" SHA1_ABC "\"]}", -1, NULL, 0},
        {"{\"sha1\": \"\"}", -1, NULL, 0},
        {"{\"sha1\": \"a\\nb\"}", -1, NULL, 0},
        {"{\"sha1\": \"" SHA1_ABC "\"", -1, NULL, 0},
        {"{\"sha1\": \"a99", -1, NULL, 0},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": \"soon\"}", -1, NULL, 0},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": -5}", -1, NULL, 0},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": 1e300}", -1, NULL, 0},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": true}", -1, NULL, 0},
        {"{\"sha1\": \"abc\"}\0trailing", 24, NULL, 0},
    };
    check_parse(ic_checksum_parse_info_sidecar, cases, G_N_ELEMENTS(cases), IC_SIDECAR_INFO);
}

static void test_info_too_large(void)
{
    gsize len = 64 * 1024 + 1;
    g_autofree char *big = g_strnfill(len, ' ');
    g_autoptr(GError) error = NULL;
    IcStoredChecksum *stored = NULL;
    g_assert_false(ic_checksum_parse_info_sidecar(big, len, &stored, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_LIMIT);
    g_assert_null(stored);
}

/* ---- sidecars on disk ---- */

static void test_read_prefers_info(Fixture *fix, gconstpointer data)
{
    put_file(fix, "aaa.sha1", "banana\n", -1);
    put_file(fix, "aaa.info", "{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": 1353971234.56}",
             -1);
    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "aaa");
    g_assert_nonnull(stored);
    g_assert_cmpint(stored->format, ==, IC_SIDECAR_INFO);
    g_assert_cmpstr(stored->sha1, ==, SHA1_ABC);
    g_assert_cmpint(stored->timestamp, ==, 1353971234);
}

static void read_stored_fails(Fixture *fix, const char *name, gint code)
{
    g_autoptr(GError) error = NULL;
    IcStoredChecksum *stored = NULL;
    g_assert_false(ic_checksum_read_stored(fix->dirfd, name, &stored, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(stored);
}

static void test_read_damaged(Fixture *fix, gconstpointer data)
{
    static const char *const damaged[] = {
        "not json", "[\"" SHA1_ABC "\"]", "{\"sha1\": 42}",
        ("{\"sha1\": \"" SHA1_ABC), /* truncated */
    };
    IcChecksumOptions options = default_options();
    put_file(fix, "aaa", "abc", -1);
    for (gsize i = 0; i < G_N_ELEMENTS(damaged); i++) {
        put_file(fix, "aaa.info", damaged[i], -1);
        read_stored_fails(fix, "aaa", IC_ERROR_FORMAT);

        /* verify: an error state naming the sidecar; the file is left alone. */
        IcChecksumResult result = {0};
        verify_ok(fix, "aaa", &options, NOW, &result);
        g_assert_cmpint(result.state, ==, IC_CHECKSUM_ERROR);
        g_assert_nonnull(result.error);
        g_assert_nonnull(strstr(result.error, "aaa.info"));
        ic_checksum_result_clear(&result);

        g_autofree char *path = fixture_path(fix, "aaa.info");
        g_autofree char *contents = NULL;
        g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
        g_assert_cmpstr(contents, ==, damaged[i]);
    }

    put_file(fix, "bbb.sha1", "", 0);
    read_stored_fails(fix, "bbb", IC_ERROR_FORMAT);
}

static void test_read_unsafe_sidecar(Fixture *fix, gconstpointer data)
{
    put_file(fix, "target", "{\"sha1\": \"" SHA1_ABC "\"}", -1);
    put_symlink(fix, "target", "aaa.info");
    read_stored_fails(fix, "aaa", IC_ERROR_UNSAFE);

    put_symlink(fix, "target", "bbb.sha1");
    read_stored_fails(fix, "bbb", IC_ERROR_UNSAFE);

    put_dir(fix, "ccc.info");
    read_stored_fails(fix, "ccc", IC_ERROR_UNSAFE);

    /* A dangling symlink is refused too, not taken as "no sidecar". */
    put_symlink(fix, "nowhere", "ddd.sha1");
    read_stored_fails(fix, "ddd", IC_ERROR_UNSAFE);

    put_file(fix, "aaa", "abc", -1);
    IcChecksumOptions options = default_options();
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_ERROR);
}

static void put_info(Fixture *fix, const char *name, const char *sha1, gint64 timestamp)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_checksum_write_sidecar(fix->dirfd, name, sha1, timestamp, &error));
    g_assert_no_error(error);
}

static void test_write_sidecar(Fixture *fix, gconstpointer data)
{
    put_file(fix, "aaa", "abc", -1);
    put_info(fix, "aaa", SHA1_ABC, 1353971234);
    put_info(fix, "aaa", SHA1_ABC, NOW); /* over the old one */

    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "aaa");
    g_assert_cmpint(stored->format, ==, IC_SIDECAR_INFO);
    g_assert_cmpstr(stored->sha1, ==, SHA1_ABC);
    g_assert_cmpint(stored->timestamp, ==, NOW);

    put_info(fix, "bbb", SHA1_EMPTY, -1);
    g_autoptr(IcStoredChecksum) no_time = read_stored_ok(fix, "bbb");
    g_assert_cmpint(no_time->timestamp, ==, -1);

    /* Nothing but the image and the sidecars: no temporary files left. */
    g_autoptr(GDir) dir = g_dir_open(fix->dir, 0, NULL);
    g_assert_nonnull(dir);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *entry;
    while ((entry = g_dir_read_name(dir)) != NULL)
        g_ptr_array_add(names, g_strdup(entry));
    g_assert_cmpuint(names->len, ==, 3);
    g_assert_true(fixture_exists(fix, "aaa"));
    g_assert_true(fixture_exists(fix, "aaa.info"));
    g_assert_true(fixture_exists(fix, "bbb.info"));
}

/* ---- verification ---- */

static void test_verify_recent(Fixture *fix, gconstpointer data)
{
    IcChecksumOptions options = default_options();
    IcChecksumResult result = {0};
    put_file(fix, "aaa", "abc", -1);

    /* Hashed 10 s ago: trusted without reading; the wrong digest goes unnoticed. */
    put_info(fix, "aaa", "banana", NOW - 10);
    verify_ok(fix, "aaa", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_RECENT);
    g_assert_cmpstr(result.expected, ==, "banana");
    g_assert_null(result.actual);
    ic_checksum_result_clear(&result);

    /* As old as the interval: hashed again. */
    put_info(fix, "aaa", "banana", NOW - 3600);
    verify_ok(fix, "aaa", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_MISMATCH);
    g_assert_cmpstr(result.actual, ==, SHA1_ABC);
    ic_checksum_result_clear(&result);

    /* From the future: not trusted. */
    put_info(fix, "aaa", "banana", NOW + 100);
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_MISMATCH);

    /* No timestamp, or an interval of 0: always hashed. */
    put_info(fix, "aaa", "banana", -1);
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_MISMATCH);

    put_info(fix, "aaa", "banana", NOW - 10);
    options.interval_seconds = 0;
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_MISMATCH);

    /* A mismatch never rewrites the sidecar. */
    g_autoptr(IcStoredChecksum) stored = read_stored_ok(fix, "aaa");
    g_assert_cmpstr(stored->sha1, ==, "banana");
    g_assert_cmpint(stored->timestamp, ==, NOW - 10);
}

static void test_verify_refresh(Fixture *fix, gconstpointer data)
{
    IcChecksumOptions options = default_options();
    IcChecksumResult result = {0};
    put_file(fix, "aaa", "abc", -1);

    /* Upper-case digest in an old .info: OK, and the timestamp is refreshed. */
    put_info(fix, "aaa", "A9993E364706816ABA3E25717850C26C9CD0D89D", NOW - 7200);
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_OK);
    g_autoptr(IcStoredChecksum) refreshed = read_stored_ok(fix, "aaa");
    g_assert_cmpint(refreshed->timestamp, ==, NOW);
    g_assert_cmpstr(refreshed->sha1, ==, SHA1_ABC);

    /* Without leave to write, nothing changes. */
    options.write_missing = FALSE;
    put_info(fix, "aaa", SHA1_ABC, NOW - 7200);
    verify_expect(fix, "aaa", &options, IC_CHECKSUM_OK);
    g_autoptr(IcStoredChecksum) kept = read_stored_ok(fix, "aaa");
    g_assert_cmpint(kept->timestamp, ==, NOW - 7200);

    /* ... and no sidecar is written for a file without one. */
    put_file(fix, "bbb", "", 0);
    verify_ok(fix, "bbb", &options, NOW, &result);
    g_assert_cmpint(result.state, ==, IC_CHECKSUM_NO_SIDECAR);
    g_assert_cmpstr(result.actual, ==, SHA1_EMPTY);
    ic_checksum_result_clear(&result);
    g_assert_false(fixture_exists(fix, "bbb.info"));

    /* A .sha1 sidecar is only read, never rewritten. */
    options.write_missing = TRUE;
    put_file(fix, "ccc", "abc", -1);
    put_file(fix, "ccc.sha1", SHA1_ABC "\n", -1);
    verify_expect(fix, "ccc", &options, IC_CHECKSUM_OK);
    g_assert_false(fixture_exists(fix, "ccc.info"));
}

static void test_state_strings(void)
{
    static const struct {
        IcChecksumState state;
        const char *name;
    } cases[] = {
        {IC_CHECKSUM_NOT_CHECKED, "not_checked"}, {IC_CHECKSUM_OK, "ok"},
        {IC_CHECKSUM_RECENT, "recent"},           {IC_CHECKSUM_NO_SIDECAR, "no_sidecar"},
        {IC_CHECKSUM_MISMATCH, "mismatch"},       {IC_CHECKSUM_ERROR, "error"},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
        g_assert_cmpstr(ic_checksum_state_to_string(cases[i].state), ==, cases[i].name);

    g_assert_cmpstr(ic_sidecar_suffixes[0], ==, ".sha1");
    g_assert_cmpstr(ic_sidecar_suffixes[1], ==, ".info");
    g_assert_null(ic_sidecar_suffixes[2]);
}

/* ---- fileutil ---- */

static void read_at_fails(Fixture *fix, const char *name, gsize max_len, gint code)
{
    g_autoptr(GError) error = NULL;
    char *contents = NULL;
    g_assert_false(ic_file_read_at(fix->dirfd, name, max_len, &contents, NULL, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(contents);
}

static void test_file_read_at(Fixture *fix, gconstpointer data)
{
    put_file(fix, "ten", "0123456789", -1);
    put_file(fix, "empty", "", 0);

    g_autoptr(GError) error = NULL;
    g_autofree char *contents = NULL;
    gsize len = 0;
    g_assert_true(ic_file_read_at(fix->dirfd, "ten", 10, &contents, &len, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(len, ==, 10);
    g_assert_cmpint(contents[10], ==, '\0');
    g_assert_cmpstr(contents, ==, "0123456789");

    g_autofree char *empty = NULL;
    g_assert_true(ic_file_read_at(fix->dirfd, "empty", 0, &empty, &len, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(len, ==, 0);
    g_assert_cmpstr(empty, ==, "");

    read_at_fails(fix, "ten", 9, IC_ERROR_LIMIT);
    read_at_fails(fix, "absent", 10, IC_ERROR_NOT_FOUND);
    put_symlink(fix, "ten", "link");
    read_at_fails(fix, "link", 10, IC_ERROR_UNSAFE);
    put_dir(fix, "dir");
    read_at_fails(fix, "dir", 10, IC_ERROR_UNSAFE);
    g_autofree char *fifo = fixture_path(fix, "fifo");
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    read_at_fails(fix, "fifo", 10, IC_ERROR_UNSAFE);
}

static guint count_entries(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    g_assert_nonnull(dir);
    guint n = 0;
    while (g_dir_read_name(dir) != NULL)
        n++;
    return n;
}

static void test_file_write_atomic(Fixture *fix, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_file_write_atomic_at(fix->dirfd, "f", "one", 3, 0600, &error));
    g_assert_no_error(error);
    g_assert_true(ic_file_write_atomic_at(fix->dirfd, "f", "second", 6, 0600, &error));
    g_assert_no_error(error);

    g_autofree char *contents = NULL;
    g_assert_true(ic_file_read_at(fix->dirfd, "f", 100, &contents, NULL, &error));
    g_assert_cmpstr(contents, ==, "second");
    g_assert_cmpuint(count_entries(fix->dir), ==, 1);

    /* The rename fails (a directory is in the way): the temporary file goes. */
    put_dir(fix, "d");
    g_assert_false(ic_file_write_atomic_at(fix->dirfd, "d", "x", 1, 0600, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
    g_clear_error(&error);
    g_assert_cmpuint(count_entries(fix->dir), ==, 2);

    /* Writing through a symlink replaces the link, never its target. */
    put_file(fix, "target", "keep", -1);
    put_symlink(fix, "target", "link");
    g_assert_true(ic_file_write_atomic_at(fix->dirfd, "link", "new", 3, 0600, &error));
    g_assert_no_error(error);
    g_autofree char *target = NULL;
    g_assert_true(ic_file_read_at(fix->dirfd, "target", 100, &target, NULL, &error));
    g_assert_cmpstr(target, ==, "keep");
    g_autofree char *link = NULL;
    g_assert_true(ic_file_read_at(fix->dirfd, "link", 100, &link, NULL, &error));
    g_assert_cmpstr(link, ==, "new");

    /* Only plain names. */
    g_assert_false(ic_file_write_atomic_at(fix->dirfd, "d/x", "x", 1, 0600, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FAILED);
    g_clear_error(&error);
    g_assert_cmpuint(count_entries(fix->dir), ==, 4);

    /* A directory fd that cannot be synced itself (O_PATH: EBADF) still gets
     * its directory synced, through "." (issue 15: the fd is tried first). */
    ic_autofd path_fd = open(fix->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(path_fd, >=, 0);
    g_assert_true(ic_file_write_atomic_at(path_fd, "f", "third", 5, 0600, &error));
    g_assert_no_error(error);
    g_autofree char *third = NULL;
    g_assert_true(ic_file_read_at(fix->dirfd, "f", 100, &third, NULL, &error));
    g_assert_cmpstr(third, ==, "third");
    g_assert_cmpuint(count_entries(fix->dir), ==, 4);
}

static void test_autofd(void)
{
    int saved;
    {
        ic_autofd fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        saved = fd;
    }
    g_assert_cmpint(fcntl(saved, F_GETFD), ==, -1);

    int kept;
    {
        ic_autofd fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        kept = ic_steal_fd(&fd);
        g_assert_cmpint(fd, ==, -1);
    }
    g_assert_cmpint(fcntl(kept, F_GETFD), !=, -1);
    close(kept);
}

/* Many files at once give each file the result verifying it alone gives. */
static void test_verify_many(Fixture *fix, gconstpointer data)
{
    g_autofree char *good_sha1 = sha1_of(testdata, strlen(testdata));
    put_file(fix, "good", testdata, -1);
    put_file(fix, "good.sha1", good_sha1, -1);
    put_file(fix, "bad", testdata, -1);
    put_file(fix, "bad.sha1", "0000000000000000000000000000000000000000", -1);
    put_file(fix, "bare", testdata, -1);
    const char *names[] = {"good", "bad", "bare", "absent", "good", "bad"};
    const IcChecksumState states[] = {IC_CHECKSUM_OK,         IC_CHECKSUM_MISMATCH,
                                      IC_CHECKSUM_NO_SIDECAR, IC_CHECKSUM_NOT_CHECKED,
                                      IC_CHECKSUM_OK,         IC_CHECKSUM_MISMATCH};
    IcChecksumJob jobs[G_N_ELEMENTS(names)];
    for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        jobs[i] = (IcChecksumJob){.dirfd = fix->dirfd, .name = names[i]};
    IcChecksumOptions options = default_options();
    options.write_missing = FALSE;

    g_autoptr(GError) error = NULL;
    g_assert_true(ic_checksum_verify_many(jobs, G_N_ELEMENTS(jobs), &options, NOW, 4, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < G_N_ELEMENTS(jobs); i++) {
        g_assert_cmpstr(ic_checksum_state_to_string(jobs[i].result.state), ==,
                        ic_checksum_state_to_string(states[i]));
        if (states[i] == IC_CHECKSUM_OK || states[i] == IC_CHECKSUM_NO_SIDECAR)
            g_assert_cmpstr(jobs[i].result.actual, ==, good_sha1);
        ic_checksum_result_clear(&jobs[i].result);
    }
}

/* The rate limit bounds all the threads together, not each one: 4 files of
 * 512 KiB at 2 MiB/s take at least 1 s however many threads read them (with a
 * limit per thread, 4 threads would take 0.25 s). */
static void test_verify_many_rate_is_total(Fixture *fix, gconstpointer data)
{
    const gsize len = MIB / 2;
    g_autofree char *contents = make_pattern(len);
    IcChecksumJob jobs[4];
    char *names[G_N_ELEMENTS(jobs)];
    for (guint i = 0; i < G_N_ELEMENTS(jobs); i++) {
        names[i] = g_strdup_printf("img%u", i);
        put_file(fix, names[i], contents, (gssize)len);
        jobs[i] = (IcChecksumJob){.dirfd = fix->dirfd, .name = names[i]};
    }
    IcChecksumOptions options = default_options();
    options.write_missing = FALSE;
    options.rate_limit_bytes_per_sec = 2 * MIB;

    g_autoptr(GError) error = NULL;
    gint64 start = g_get_monotonic_time();
    g_assert_true(ic_checksum_verify_many(jobs, G_N_ELEMENTS(jobs), &options, NOW, 4, &error));
    gint64 elapsed = g_get_monotonic_time() - start;
    g_assert_no_error(error);

    /* A lower bound only: a loaded machine may take longer. */
    g_assert_cmpint(elapsed, >=, 900 * 1000);
    g_autofree char *expected = sha1_of(contents, len);
    for (guint i = 0; i < G_N_ELEMENTS(jobs); i++) {
        g_assert_cmpstr(jobs[i].result.actual, ==, expected);
        ic_checksum_result_clear(&jobs[i].result);
        g_free(names[i]);
    }
}

#define ADD(path, func) g_test_add(path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    ADD("/imagecache/read_stored_checksum_missing", test_read_stored_checksum_missing);
    ADD("/imagecache/read_stored_checksum", test_read_stored_checksum);
    ADD("/imagecache/verify_checksum", test_verify_checksum);

    ADD("/imagecache/checksum/hash-known", test_hash_known);
    ADD("/imagecache/checksum/hash-large", test_hash_large);
    ADD("/imagecache/checksum/hash-rate-limit", test_hash_rate_limit);
    ADD("/imagecache/checksum/hash-cancel", test_hash_cancel);
    ADD("/imagecache/checksum/hash-cancelled-before", test_hash_cancelled_before);
    ADD("/imagecache/checksum/hash-refuses-unsafe", test_hash_refuses_unsafe);
    g_test_add_func("/imagecache/checksum/parse-sha1", test_parse_sha1);
    g_test_add_func("/imagecache/checksum/parse-info", test_parse_info);
    g_test_add_func("/imagecache/checksum/info-too-large", test_info_too_large);
    ADD("/imagecache/checksum/read-prefers-info", test_read_prefers_info);
    ADD("/imagecache/checksum/read-damaged", test_read_damaged);
    ADD("/imagecache/checksum/read-unsafe-sidecar", test_read_unsafe_sidecar);
    ADD("/imagecache/checksum/write-sidecar", test_write_sidecar);
    ADD("/imagecache/checksum/verify-recent", test_verify_recent);
    ADD("/imagecache/checksum/verify-refresh", test_verify_refresh);
    ADD("/imagecache/checksum/verify-many", test_verify_many);
    ADD("/imagecache/checksum/verify-many-rate-is-total", test_verify_many_rate_is_total);
    g_test_add_func("/imagecache/checksum/state-strings", test_state_strings);
    ADD("/imagecache/checksum/file-read-at", test_file_read_at);
    ADD("/imagecache/checksum/file-write-atomic", test_file_write_atomic);
    g_test_add_func("/imagecache/checksum/autofd", test_autofd);

    return g_test_run();
}
