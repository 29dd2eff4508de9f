/* Config file parsing: defaults, every key type, and errors that name key and file. */
#include "config.h"
#include "error.h"
#include "testutil.h"

static IcConfig *load(const char *contents, GError **error)
{
    g_autofree char *dir = ic_test_mkdtemp();
    g_autofree char *path = ic_test_write_file(dir, "imagecache.conf", contents, -1);
    IcConfig *config = ic_config_new();
    gboolean ok = ic_config_load_file(config, path, error);
    ic_test_rmtree(dir);
    if (!ok) {
        ic_config_free(config);
        return NULL;
    }
    return config;
}

static void test_defaults(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_cmpstr(config->instances_path, ==, "/var/lib/nova/instances");
    g_assert_cmpstr(config->base_dir_name, ==, "_base");
    g_assert_true(config->remove_unused_base_images);
    g_assert_cmpint(config->remove_unused_original_minimum_age_seconds, ==, 86400);
    g_assert_cmpint(config->remove_unused_resized_minimum_age_seconds, ==, 3600);
    g_assert_false(config->checksum_base_images);
    g_assert_cmpint(config->checksum_interval_seconds, ==, 3600);
    g_assert_cmpstr(config->libvirt_uri, ==, "qemu:///system");
    g_assert_null(config->ledger_dir);
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(config->ledger_dir, ==, "/var/lib/nova/instances/_ledger");
    g_assert_cmpstr(config->host, ==, g_get_host_name());
    g_autofree char *base = ic_config_base_dir(config);
    g_assert_cmpstr(base, ==, "/var/lib/nova/instances/_base");
}

static void test_load_all_keys(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = load("[imagecache]\n"
                                      "instances_path = /srv/instances\n"
                                      "base_dir_name=cache\n"
                                      "ledger_dir=/srv/ledger\n"
                                      "host=hv1\n"
                                      "remove_unused_base_images=false\n"
                                      "remove_unused_original_minimum_age_seconds=10\n"
                                      "remove_unused_resized_minimum_age_seconds=20\n"
                                      "checksum_base_images=yes\n"
                                      "checksum_interval_seconds=0\n"
                                      "libvirt_uri=qemu:///session\n"
                                      "strict_prepare=true\n",
                                      &error);
    g_assert_no_error(error);
    g_assert_cmpstr(config->instances_path, ==, "/srv/instances");
    g_assert_cmpstr(config->base_dir_name, ==, "cache");
    g_assert_cmpstr(config->ledger_dir, ==, "/srv/ledger");
    g_assert_cmpstr(config->host, ==, "hv1");
    g_assert_false(config->remove_unused_base_images);
    g_assert_cmpint(config->remove_unused_original_minimum_age_seconds, ==, 10);
    g_assert_cmpint(config->remove_unused_resized_minimum_age_seconds, ==, 20);
    g_assert_true(config->checksum_base_images);
    g_assert_cmpint(config->checksum_interval_seconds, ==, 0);
    g_assert_cmpstr(config->libvirt_uri, ==, "qemu:///session");
    g_assert_true(config->strict_prepare);
    g_assert_nonnull(config->source);
}

typedef struct {
    const char *contents;
    int code;
    const char *message_part; /* must appear in the message */
} BadCase;

static const BadCase bad_cases[] = {
    {"[imagecache]\nremove_unused_base_image=true\n", IC_ERROR_CONFIG,
     "unknown key 'remove_unused_base_image'"},
    {"[imagecache]\nchecksum_base_images=maybe\n", IC_ERROR_CONFIG,
     "key 'checksum_base_images': 'maybe' is not a boolean"},
    {"[imagecache]\nremove_unused_original_minimum_age_seconds=-5\n", IC_ERROR_CONFIG,
     "key 'remove_unused_original_minimum_age_seconds'"},
    {"[imagecache]\nchecksum_interval_seconds=1h\n", IC_ERROR_CONFIG, "'1h' is not a number"},
    /* every duration is bounded (issue 11 item 9): 10^13 s overflowed in µs */
    {"[imagecache]\nremove_unused_original_minimum_age_seconds=10000000000000\n", IC_ERROR_CONFIG,
     "key 'remove_unused_original_minimum_age_seconds': '10000000000000' is not a number of "
     "seconds from 0 to"},
    {"[imagecache]\nquarantine_retention_seconds=9223372036854775807\n", IC_ERROR_CONFIG,
     "key 'quarantine_retention_seconds'"},
    {"[imagecache]\nprepare_lock_wait_seconds=0\n", IC_ERROR_CONFIG,
     "key 'prepare_lock_wait_seconds': '0' is not a number of seconds from 1 to 300"},
    {"[imagecache]\nprepare_lock_wait_seconds=301\n", IC_ERROR_CONFIG,
     "key 'prepare_lock_wait_seconds'"},
    {"[imagecache]\ninstances_path=relative/path\n", IC_ERROR_CONFIG, "not an absolute path"},
    {"[imagecache]\nbase_dir_name=\n", IC_ERROR_CONFIG, "key 'base_dir_name'"},
    {"[nova]\ninstances_path=/x\n", IC_ERROR_CONFIG, "unknown group '[nova]'"},
    {"instances_path=/x\n", IC_ERROR_CONFIG, "imagecache.conf"},
    {"[imagecache\n", IC_ERROR_CONFIG, "imagecache.conf"},
};

static void test_bad(gconstpointer data)
{
    const BadCase *tc = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = load(tc->contents, &error);
    g_assert_null(config);
    g_assert_error(error, IC_ERROR, tc->code);
    g_assert_nonnull(strstr(error->message, tc->message_part));
    /* every message names the file */
    g_assert_nonnull(strstr(error->message, "imagecache.conf"));
}

static void test_missing_file(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_false(ic_config_load_file(config, "/nonexistent/imagecache.conf", &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "/nonexistent/imagecache.conf"));
}

/* A failed load leaves the config as it was: no half-applied file. */
static void test_failed_load_changes_nothing(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = ic_test_mkdtemp();
    g_autofree char *path = ic_test_write_file(
        dir, "imagecache.conf", "[imagecache]\ninstances_path=/srv/x\nbogus=1\n", -1);
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_false(ic_config_load_file(config, path, &error));
    g_assert_cmpstr(config->instances_path, ==, "/var/lib/nova/instances");
    ic_test_rmtree(dir);
}

static void test_set_override(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "checksum_base_images", "on", "collectd config", &error));
    g_assert_true(config->checksum_base_images);
    g_assert_false(ic_config_set(config, "nope", "1", "collectd config", &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_cmpstr(error->message, ==, "collectd config: unknown key 'nope'");
}

static void test_finish_rejects_bad_names(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "host", "../evil", "test", &error));
    g_assert_false(ic_config_finish(config, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_clear_error(&error);

    g_autoptr(IcConfig) other = ic_config_new();
    g_assert_true(ic_config_set(other, "base_dir_name", "a/b", "test", &error));
    g_assert_false(ic_config_finish(other, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
}

/* The dumped config reads back to the same values. */
static void test_to_data_round_trip(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "host", "hv7", "test", &error));
    g_assert_true(ic_config_finish(config, &error));
    g_autofree char *data = ic_config_to_data(config);
    g_autoptr(IcConfig) again = load(data, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(again->host, ==, "hv7");
    g_assert_cmpstr(again->ledger_dir, ==, config->ledger_dir);
    g_assert_cmpint(again->remove_unused_original_minimum_age_seconds, ==, 86400);
}

/* --rate-limit and ChecksumRateLimit: bytes/s, IEC suffixes, 0 unlimited. */
static const struct {
    const char *text;
    gboolean ok;
    guint64 bytes;
} rate_cases[] = {
    {"0", TRUE, 0},
    {"1048576", TRUE, 1048576},
    {"50M", TRUE, 50 * 1024 * 1024},
    {"50MiB", TRUE, 50 * 1024 * 1024},
    {" 2k ", TRUE, 2048},
    {"1G", TRUE, G_GUINT64_CONSTANT(1) << 30},
    {"1T", TRUE, G_GUINT64_CONSTANT(1) << 40},
    {"", FALSE, 0},
    {"M", FALSE, 0},
    {"-1", FALSE, 0},
    {"1.5M", FALSE, 0},
    {"50MB/s", FALSE, 0},
    {"50X", FALSE, 0},
    {"99999999999T", FALSE, 0},
};

static void test_rate_limit(void)
{
    for (gsize i = 0; i < G_N_ELEMENTS(rate_cases); i++) {
        g_autoptr(GError) error = NULL;
        guint64 bytes = 12345;
        gboolean ok = ic_config_parse_rate_limit(rate_cases[i].text, &bytes, &error);
        g_test_message("rate '%s'", rate_cases[i].text);
        g_assert_cmpint(ok, ==, rate_cases[i].ok);
        if (ok) {
            g_assert_no_error(error);
            g_assert_cmpuint(bytes, ==, rate_cases[i].bytes);
        } else {
            g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
            g_assert_nonnull(strstr(error->message, rate_cases[i].text));
            g_assert_cmpuint(bytes, ==, 12345);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/config/defaults", test_defaults);
    g_test_add_func("/imagecache/config/load_all_keys", test_load_all_keys);
    for (gsize i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_autofree char *path = g_strdup_printf("/imagecache/config/bad/%zu", i);
        g_test_add_data_func(path, &bad_cases[i], test_bad);
    }
    g_test_add_func("/imagecache/config/missing_file", test_missing_file);
    g_test_add_func("/imagecache/config/failed_load_changes_nothing",
                    test_failed_load_changes_nothing);
    g_test_add_func("/imagecache/config/set_override", test_set_override);
    g_test_add_func("/imagecache/config/finish_rejects_bad_names", test_finish_rejects_bad_names);
    g_test_add_func("/imagecache/config/to_data_round_trip", test_to_data_round_trip);
    g_test_add_func("/imagecache/config/rate_limit", test_rate_limit);
    return g_test_run();
}
