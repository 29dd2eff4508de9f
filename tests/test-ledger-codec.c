/* test-ledger-codec.c — the ledger's host file codec against GKeyFile: the serialiser
 * writes the text itself, and must write byte for byte what the GKeyFile serialiser
 * it replaced wrote (kept below as the reference), so files written before and after
 * the change read the same and carry the same digest. */
#include "error.h"
#include "ledger.h"

#include <stdio.h>

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

/* ---- the reference: ic_ledger_host_parse as it was, all GKeyFile (GLib 2.74) ---- */

#define LEDGER_FORMAT       3
#define LEDGER_FORMAT_NAMES 2
#define LEDGER_FORMAT_PATHS 1
#define NAME_MAX_LEN        1024
#define DOMAIN_GROUP_PREFIX "domain "

static gboolean ref_format_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean ref_format_error(GError **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, IC_ERROR, IC_ERROR_FORMAT, msg);
    return FALSE;
}

/* The group holds exactly the keys in @expected (NULL-terminated), and may
 * hold @optional (NULL: none). */
static gboolean ref_check_keys_opt(GKeyFile *kf, const char *group, const char *const *expected,
                                   const char *optional, GError **error)
{
    gsize n = 0;
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, &n, NULL);
    for (gsize i = 0; i < n; i++) {
        if (!g_strv_contains(expected, keys[i]) && g_strcmp0(keys[i], optional) != 0)
            return ref_format_error(error, "unknown key '%s' in [%s]", keys[i], group);
    }
    for (gsize i = 0; expected[i] != NULL; i++) {
        if (!g_key_file_has_key(kf, group, expected[i], NULL))
            return ref_format_error(error, "missing key '%s' in [%s]", expected[i], group);
    }
    return TRUE;
}

static gboolean ref_check_keys(GKeyFile *kf, const char *group, const char *const *expected,
                               GError **error)
{
    return ref_check_keys_opt(kf, group, expected, NULL, error);
}

static gboolean ref_get_int(GKeyFile *kf, const char *group, const char *key, gint64 max,
                            gint64 *ret, GError **error)
{
    g_autofree char *text = g_key_file_get_value(kf, group, key, NULL);
    guint64 value = 0;
    if (text == NULL || !g_ascii_string_to_unsigned(text, 10, 0, (guint64)max, &value, NULL))
        return ref_format_error(error, "bad value '%s' for '%s' in [%s]", text ? text : "", key,
                                group);
    *ret = (gint64)value;
    return TRUE;
}

/* A base file entry: format 1 wrote absolute paths; format 2 writes names in
 * the base dir, and keeps an absolute path carried over from format 1. */
static gboolean ref_entry_is_valid(const char *entry, gint64 format)
{
    if (g_path_is_absolute(entry))
        return TRUE;
    return format != LEDGER_FORMAT_PATHS && strchr(entry, '/') == NULL && strcmp(entry, ".") != 0 &&
           strcmp(entry, "..") != 0;
}

/* @entries_format: 0 for a list of plain values, else the file's format, whose
 * rule ref_entry_is_valid applies to each value (base file entries). */
static gboolean ref_get_list(GKeyFile *kf, const char *group, const char *key,
                             gint64 entries_format, GPtrArray *into, GError **error)
{
    gsize n = 0;
    g_autoptr(GError) local_error = NULL;
    g_auto(GStrv) list = g_key_file_get_string_list(kf, group, key, &n, &local_error);
    if (list == NULL) {
        /* An empty list reads as an error in some GLib versions: accept "key=". */
        g_autofree char *raw = g_key_file_get_value(kf, group, key, NULL);
        if (raw != NULL && *raw == '\0')
            return TRUE;
        return ref_format_error(error, "bad list '%s' in [%s]: %s", key, group,
                                local_error ? local_error->message : "unreadable");
    }
    if (n > IC_LEDGER_MAX_LIST_ENTRIES)
        return ref_format_error(error, "more than %d entries in '%s' of [%s]",
                                IC_LEDGER_MAX_LIST_ENTRIES, key, group);
    for (gsize i = 0; i < n; i++) {
        if (list[i][0] == '\0' ||
            (entries_format != 0 && !ref_entry_is_valid(list[i], entries_format)))
            return ref_format_error(error, "bad entry '%s' in '%s' of [%s]", list[i], key, group);
        g_ptr_array_add(into, g_strdup(list[i]));
    }
    return TRUE;
}

static gboolean ref_parse_domain(GKeyFile *kf, const char *group, gint64 format,
                                 IcLedgerDomain **ret_domain, GError **error)
{
    static const char *const keys[] = {"name", "started", "base_files", "image_ids", NULL};
    const char *uuid = group + strlen(DOMAIN_GROUP_PREFIX);
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    if (!g_uuid_string_is_valid(uuid) || strcmp(lower, uuid) != 0)
        return ref_format_error(error, "bad domain uuid in group [%s]", group);
    if (!ref_check_keys_opt(kf, group, keys, format >= LEDGER_FORMAT ? "unknown" : NULL, error))
        return FALSE;

    g_autofree char *name = g_key_file_get_string(kf, group, "name", NULL);
    if (name == NULL || *name == '\0' || strlen(name) > NAME_MAX_LEN)
        return ref_format_error(error, "bad 'name' in [%s]", group);
    g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(uuid, name);
    if (!ref_get_int(kf, group, "started", G_MAXINT64, &domain->started, error) ||
        !ref_get_list(kf, group, "base_files", format, domain->base_files, error) ||
        !ref_get_list(kf, group, "image_ids", 0, domain->image_ids, error))
        return FALSE;
    if (g_key_file_has_key(kf, group, "unknown", NULL)) {
        domain->unknown = g_key_file_get_string(kf, group, "unknown", NULL);
        if (domain->unknown == NULL || *domain->unknown == '\0')
            return ref_format_error(error, "bad 'unknown' in [%s]", group);
    }
    *ret_domain = g_steal_pointer(&domain);
    return TRUE;
}

static gboolean ref_parse_last_used(GKeyFile *kf, IcLedgerHost *host, gint64 format, GError **error)
{
    static const char *const keys[] = {"paths", "times", NULL};
    if (!ref_check_keys(kf, "last_used", keys, error))
        return FALSE;
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) times = g_ptr_array_new_with_free_func(g_free);
    if (!ref_get_list(kf, "last_used", "paths", format, paths, error) ||
        !ref_get_list(kf, "last_used", "times", 0, times, error))
        return FALSE;
    if (paths->len != times->len)
        return ref_format_error(error, "[last_used] has %u paths but %u times", paths->len,
                                times->len);
    for (guint i = 0; i < paths->len; i++) {
        guint64 t = 0;
        if (!g_ascii_string_to_unsigned(times->pdata[i], 10, 0, G_MAXINT64, &t, NULL))
            return ref_format_error(error, "bad time '%s' in [last_used]",
                                    (const char *)times->pdata[i]);
        gint64 *value = g_new(gint64, 1);
        *value = (gint64)t;
        g_hash_table_replace(host->last_used, g_strdup(paths->pdata[i]), value);
    }
    return TRUE;
}

/* Splits @data at its last "[end]" line and checks the trailer byte for byte. */
static gboolean ref_check_trailer(const char *data, gsize len, guint64 *ret_domains, GError **error)
{
    const char *end = NULL;
    for (const char *p = data;
         (p = g_strstr_len(p, (gssize)(len - (gsize)(p - data)), "\n[end]\n")) != NULL; p++)
        end = p + 1;
    if (end == NULL)
        return ref_format_error(error, "no [end] group: the file is truncated");

    gsize body_len = (gsize)(end - data);
    /* @data need not be NUL-terminated: every read stays within @len. */
    gsize rest = len - body_len;
    const gsize prefix_len = strlen("[end]\ndomains=");
    guint64 domains = 0;
    if (rest < prefix_len || memcmp(end, "[end]\ndomains=", prefix_len) != 0)
        return ref_format_error(error, "the [end] group does not start with 'domains='");
    const char *count = end + prefix_len;
    const char *count_end = memchr(count, '\n', rest - prefix_len);
    g_autofree char *count_str =
        g_strndup(count, count_end != NULL ? (gsize)(count_end - count) : rest - prefix_len);
    if (!g_ascii_string_to_unsigned(count_str, 10, 0, IC_LEDGER_MAX_DOMAINS, &domains, NULL))
        return ref_format_error(error, "bad domain count '%s' in [end]", count_str);

    g_autofree char *expected = ref_end_trailer((guint)domains, data, body_len);
    if (len - body_len != strlen(expected) || memcmp(end, expected, len - body_len) != 0)
        return ref_format_error(error, "the [end] group does not match the contents (checksum "
                                       "mismatch or truncated): the file is damaged");
    *ret_domains = domains;
    return TRUE;
}

static gboolean ref_parse_groups(GKeyFile *kf, guint64 end_domains, IcLedgerHost **ret_host,
                                 GError **error)
{
    static const char *const header_keys[] = {"format", "host", "refreshed", "domains", NULL};
    static const char *const end_keys[] = {"domains", "sha256", NULL};
    gsize n_groups = 0;
    g_auto(GStrv) groups = g_key_file_get_groups(kf, &n_groups);
    if (n_groups < 2 || strcmp(groups[0], "ledger") != 0)
        return ref_format_error(error, "the first group is not [ledger]");
    if (strcmp(groups[n_groups - 1], "end") != 0)
        return ref_format_error(error, "the last group is not [end]");
    if (!ref_check_keys_opt(kf, "ledger", header_keys, "machine_id", error) ||
        !ref_check_keys(kf, "end", end_keys, error))
        return FALSE;

    gint64 format = 0, refreshed = 0, domains = 0;
    if (!ref_get_int(kf, "ledger", "format", G_MAXINT32, &format, error) ||
        !ref_get_int(kf, "ledger", "refreshed", G_MAXINT64, &refreshed, error) ||
        !ref_get_int(kf, "ledger", "domains", IC_LEDGER_MAX_DOMAINS, &domains, error))
        return FALSE;
    if (format != LEDGER_FORMAT && format != LEDGER_FORMAT_NAMES && format != LEDGER_FORMAT_PATHS)
        return ref_format_error(error,
                                "unsupported format %" G_GINT64_FORMAT
                                " (this version reads %d to %d): written by a newer imagecache?",
                                format, LEDGER_FORMAT_PATHS, LEDGER_FORMAT);
    g_autofree char *name = g_key_file_get_string(kf, "ledger", "host", NULL);
    if (!ic_ledger_host_name_is_valid(name))
        return ref_format_error(error, "bad host '%s' in [ledger]", name ? name : "");

    g_autoptr(IcLedgerHost) host = ic_ledger_host_new(name);
    host->refreshed = refreshed;
    if (g_key_file_has_key(kf, "ledger", "machine_id", NULL)) {
        host->machine_id = g_key_file_get_string(kf, "ledger", "machine_id", NULL);
        if (format < LEDGER_FORMAT || !ic_ledger_machine_id_is_valid(host->machine_id))
            return ref_format_error(error, "bad machine_id in [ledger]");
    }
    gboolean seen_last_used = FALSE;
    for (gsize i = 1; i + 1 < n_groups; i++) {
        const char *group = groups[i];
        if (strcmp(group, "last_used") == 0 && !seen_last_used) {
            seen_last_used = TRUE;
            if (!ref_parse_last_used(kf, host, format, error))
                return FALSE;
            continue;
        }
        if (!g_str_has_prefix(group, DOMAIN_GROUP_PREFIX))
            return ref_format_error(error, "unexpected group [%s]", group);
        IcLedgerDomain *domain = NULL;
        if (!ref_parse_domain(kf, group, format, &domain, error))
            return FALSE;
        g_ptr_array_add(host->domains, domain);
    }
    /* GKeyFile merges repeated groups: the counts catch a duplicated domain. */
    if ((guint64)domains != host->domains->len || end_domains != host->domains->len)
        return ref_format_error(error,
                                "the header counts %" G_GINT64_FORMAT
                                " domains, [end] %" G_GUINT64_FORMAT ", the file holds %u",
                                domains, end_domains, host->domains->len);
    g_ptr_array_sort(host->domains, ic_ledger_domain_compare);
    *ret_host = g_steal_pointer(&host);
    return TRUE;
}

static gboolean ref_parse(const char *data, gsize len, IcLedgerHost **ret_host, GError **error)
{
    if (len > IC_LEDGER_MAX_BYTES)
        return ref_format_error(error, "larger than %d bytes", IC_LEDGER_MAX_BYTES);
    if (memchr(data, '\0', len) != NULL)
        return ref_format_error(error, "a NUL byte in the file");

    guint64 end_domains = 0;
    if (!ref_check_trailer(data, len, &end_domains, error))
        return FALSE;

    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) kf_error = NULL;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &kf_error))
        return ref_format_error(error, "%s", kf_error->message);
    return ref_parse_groups(kf, end_domains, ret_host, error);
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

/* GLib 2.74's g_key_file_get_string() and _get_string_list() set their GError twice on a value
 * with an unknown escape and a trailing backslash ("a\\q\\") and warns about
 * it; both readers meet it alike on mutated files (the fast path leaves such a
 * file to the GKeyFile reader), so that one warning is dropped here. */
static gboolean is_gerror_overwrite(const char *domain, const char *message)
{
    return g_strcmp0(domain, "GLib") == 0 && strstr(message, "GError set over the top") != NULL;
}

static void drop_gerror_overwrite(const char *domain, GLogLevelFlags level, const char *message,
                                  gpointer data)
{
    if (!is_gerror_overwrite(domain, message))
        g_log_default_handler(domain, level, message, data);
}

static gboolean fatal_unless_gerror_overwrite(const char *domain, GLogLevelFlags level,
                                              const char *message, gpointer data)
{
    return !is_gerror_overwrite(domain, message);
}

/* In each test: the test framework resets the fatal handler between tests. */
static void tolerate_gerror_overwrite(void)
{
    g_test_log_set_fatal_handler(fatal_unless_gerror_overwrite, NULL);
    g_log_set_handler("GLib", G_LOG_LEVEL_WARNING | G_LOG_FLAG_FATAL, drop_gerror_overwrite, NULL);
}

/* ---- the reader: the canonical fast path against the GKeyFile reader ---- */

static gboolean strings_equal(const GPtrArray *a, const GPtrArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++) {
        if (strcmp(a->pdata[i], b->pdata[i]) != 0)
            return FALSE;
    }
    return TRUE;
}

static void assert_hosts_equal(const IcLedgerHost *a, const IcLedgerHost *b)
{
    g_assert_cmpstr(a->host, ==, b->host);
    g_assert_cmpstr(a->machine_id, ==, b->machine_id);
    g_assert_cmpint(a->refreshed, ==, b->refreshed);
    g_assert_cmpint(a->stale, ==, b->stale);
    g_assert_cmpuint(a->domains->len, ==, b->domains->len);
    for (guint i = 0; i < a->domains->len; i++) {
        const IcLedgerDomain *da = a->domains->pdata[i], *db = b->domains->pdata[i];
        g_assert_cmpstr(da->uuid, ==, db->uuid);
        g_assert_cmpstr(da->name, ==, db->name);
        g_assert_cmpstr(da->unknown, ==, db->unknown);
        g_assert_cmpint(da->started, ==, db->started);
        g_assert_true(strings_equal(da->base_files, db->base_files));
        g_assert_true(strings_equal(da->image_ids, db->image_ids));
    }
    g_assert_cmpuint(g_hash_table_size(a->last_used), ==, g_hash_table_size(b->last_used));
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, a->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const gint64 *other = g_hash_table_lookup(b->last_used, key);
        g_assert_nonnull(other);
        g_assert_cmpint(*(const gint64 *)value, ==, *other);
    }
}

typedef struct {
    guint accepted;
    guint refused;
} Verdicts;

typedef struct {
    guint accepted;
    guint refused;
    guint kept_as_text; /* domains the update path kept as their text */
} UpdateCounts;

static void assert_update_same(const char *data, gsize len, UpdateCounts *counts);

/* Two readers of @data agree: both accept, or both refuse with the same error. */
static void assert_verdicts_agree(const char *what, gboolean ok, const GError *error,
                                  gboolean other_ok, const GError *other_error, const char *data,
                                  gsize len)
{
    if (ok != other_ok)
        g_test_message("verdicts differ (%d, %s %d: %s) on:\n%.*s", ok, what, other_ok,
                       other_error ? other_error->message : "", (int)len, data);
    g_assert_cmpint(ok, ==, other_ok);
    if (!ok) {
        g_assert_nonnull(error);
        g_assert_error(error, other_error->domain, other_error->code);
        g_assert_cmpstr(error->message, ==, other_error->message);
    }
}

/* Both readers give the same verdict, the same message when they refuse, and
 * the same host when they accept; the update path too (every file a parse test
 * builds is checked with it). */
static void assert_same_verdict(const char *data, gsize len, Verdicts *verdicts)
{
    UpdateCounts counts = {0, 0, 0};
    assert_update_same(data, len, &counts);
    g_autoptr(IcLedgerHost) host = NULL, ref_host = NULL;
    g_autoptr(GError) error = NULL, ref_error = NULL;
    gboolean ok = ic_ledger_host_parse(data, len, &host, &error);
    gboolean ref_ok = ref_parse(data, len, &ref_host, &ref_error);
    assert_verdicts_agree("reference", ok, error, ref_ok, ref_error, data, len);
    if (!ok) {
        g_assert_null(host);
        verdicts->refused++;
        return;
    }
    g_assert_no_error(error);
    assert_hosts_equal(host, ref_host);
    verdicts->accepted++;
}

/* A text a reader may accept: no '/' (base file names), often empty-free. */
static char *random_entry(void)
{
    guint n = (guint)g_test_rand_int_range(g_test_rand_int_range(0, 8) == 0 ? 0 : 1, 6);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < n; i++) {
        const char *piece = pieces[g_test_rand_int_range(0, G_N_ELEMENTS(pieces))];
        if (strchr(piece, '/') == NULL)
            g_string_append(s, piece);
    }
    return g_string_free(s, FALSE);
}

static IcLedgerHost *random_readable_host(guint max_domains)
{
    static const char *const hosts[] = {"compute-1", "h.example.org", "a_b", "bad host", ".x"};
    static const char *const machines[] = {"0123456789abcdef0123456789abcdef", "m-1", "bad id", ""};
    IcLedgerHost *host = ic_ledger_host_new(
        hosts[g_test_rand_int_range(0, 8) == 0 ? g_test_rand_int_range(0, G_N_ELEMENTS(hosts))
                                               : 0]);
    host->refreshed = g_test_rand_int_range(0, 10) == 0 ? random_time() : 1700000000;
    if (g_test_rand_bit())
        host->machine_id = g_test_rand_int_range(0, 6) == 0
                               ? random_text(3)
                               : g_strdup(machines[g_test_rand_int_range(0, 2)]);
    guint n = (guint)g_test_rand_int_range(0, (gint32)max_domains + 1);
    for (guint i = 0; i < n; i++) {
        g_autofree char *uuid = random_uuid();
        if (g_test_rand_int_range(0, 30) == 0)
            uuid[0] = 'A';
        if (g_test_rand_int_range(0, 30) == 0)
            uuid[8] = 'x';
        g_autofree char *name = random_entry();
        IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
        domain->started = g_test_rand_int_range(0, 10) == 0 ? random_time() : 1700000000 + i;
        guint files = (guint)g_test_rand_int_range(0, 4);
        for (guint k = 0; k < files; k++)
            g_ptr_array_add(domain->base_files, g_test_rand_int_range(0, 20) == 0
                                                    ? g_strdup("/var/lib/_base/abs")
                                                    : random_entry());
        guint ids = (guint)g_test_rand_int_range(0, 3);
        for (guint k = 0; k < ids; k++)
            g_ptr_array_add(domain->image_ids, random_entry());
        if (g_test_rand_int_range(0, 4) == 0)
            domain->unknown = random_entry();
        g_ptr_array_add(host->domains, domain);
    }
    if (g_test_rand_bit()) {
        guint m = (guint)g_test_rand_int_range(1, 6);
        for (guint i = 0; i < m; i++) {
            gint64 *t = g_new(gint64, 1);
            *t = g_test_rand_int_range(0, 10) == 0 ? random_time() : 1700000000 - i;
            g_hash_table_replace(host->last_used, random_entry(), t);
        }
    }
    return host;
}

/* @text with its body edited at random, its [end] group written anew so that
 * the edit reaches the readers instead of the digest check. */
static GString *mutate(const char *text, gsize len)
{
    static const char *const inserts[] = {
        " ",        "\t",          ";",           "\\",         "\n",         "\r",
        "\v",       "=",           "[",           "]",          "#",          "0",
        "9",        "-",           "a",           "A",          "\xff",       "é",
        "\\s",      "\\;",         "\\x",         "\n\n",       "[ledger]\n", "[last_used]\n",
        "name=x\n", "unknown=y\n", "domains=1\n", "format=2\n", "k[de]=v\n",  "\n[domain ",
    };
    const char *end = g_strrstr_len(text, (gssize)len, "\n[end]\n");
    g_assert_nonnull(end);
    GString *body = g_string_new_len(text, end + 1 - text);
    guint edits = (guint)g_test_rand_int_range(1, 4);
    for (guint e = 0; e < edits && body->len > 0; e++) {
        gsize at = (gsize)g_test_rand_int_range(0, (gint32)body->len);
        switch (g_test_rand_int_range(0, 3)) {
        case 0: {
            gsize n = (gsize)g_test_rand_int_range(1, 4);
            g_string_erase(body, (gssize)at, (gssize)MIN(body->len - at, n));
            break;
        }
        case 1:
            g_string_insert(body, (gssize)at,
                            inserts[g_test_rand_int_range(0, G_N_ELEMENTS(inserts))]);
            break;
        default:
            body->str[at] = inserts[g_test_rand_int_range(0, G_N_ELEMENTS(inserts))][0];
            break;
        }
    }
    guint domains = 0;
    sscanf(end + strlen("\n[end]\ndomains="), "%u", &domains);
    if (g_test_rand_int_range(0, 10) == 0)
        domains++;
    g_autofree char *trailer = ref_end_trailer(domains, body->str, body->len);
    g_string_append(body, trailer);
    return body;
}

/* @body (up to its [end] group) with a fresh [end] group for @domains. */
static GString *with_trailer(const char *body, gsize len, guint domains)
{
    GString *text = g_string_new_len(body, (gssize)len);
    g_autofree char *trailer = ref_end_trailer(domains, body, len);
    g_string_append(text, trailer);
    return text;
}

/* Files no serialiser writes but an editor could: the fast path must decline
 * each, and the GKeyFile reader decides. */
static void test_parse_named(void)
{
    tolerate_gerror_overwrite();
    static const char *const uuid_a = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    static const char *const uuid_b = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
    g_autoptr(IcLedgerHost) host = ic_ledger_host_new("compute-1");
    host->refreshed = 1700000000;
    host->machine_id = g_strdup("0123456789abcdef");
    for (guint i = 0; i < 2; i++) {
        IcLedgerDomain *domain = ic_ledger_domain_new(i == 0 ? uuid_a : uuid_b, "vm a");
        domain->started = 1700000000;
        g_ptr_array_add(domain->base_files, g_strdup("base a"));
        g_ptr_array_add(domain->base_files, g_strdup("b;c"));
        g_ptr_array_add(domain->image_ids, g_strdup("img"));
        g_ptr_array_add(host->domains, domain);
    }
    gint64 *t = g_new(gint64, 1);
    *t = 1690000000;
    g_hash_table_replace(host->last_used, g_strdup("old"), t);
    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    const char *end = g_strrstr_len(text, (gssize)len, "\n[end]\n") + 1;
    g_autoptr(GString) body = g_string_new_len(text, end - text);
    Verdicts v = {0, 0};
    assert_same_verdict(text, len, &v);
    g_assert_cmpuint(v.accepted, ==, 1);

    static const struct {
        const char *from, *to;
    } edits[] = {
        {"started=1700000000\n", "started=01700000000\n"},
        {"started=1700000000\n", "started=+1700000000\n"},
        {"started=1700000000\n", "started= 1700000000\n"},
        {"started=1700000000\n", "started=1700000000 \n"},
        {"refreshed=1700000000\n", "refreshed=-1\n"},
        {"name=vm a\n", "name= vm a\n"},
        {"name=vm a\n", "name=\\svm a\n"},
        {"name=vm a\n", "name=vm\\sa\n"},
        {"name=vm a\n", "name=vm a\\;\n"},
        {"name=vm a\n", "name=vm a\\q\n"},
        {"name=vm a\n", "name=vm a\\\n"},
        {"name=vm a\n", "name =vm a\n"},
        {"name=vm a\n", "name=vm a\r\n"},
        {"name=vm a\n", "name=vm a\v\n"},
        {"name=vm a\n", "name[de]=vm b\nname=vm a\n"},
        {"name=vm a\n", "name=vm a\nname=vm b\n"},
        {"name=vm a\n", "name=vm a\n# a comment\n"},
        {"name=vm a\n", "name=vm a\n\n"},
        {"name=vm a\nstarted=1700000000\n", "started=1700000000\nname=vm a\n"},
        {"base_files=base a;b\\;c;\n", "base_files=base a;b\\;c\n"},
        {"base_files=base a;b\\;c;\n", "base_files=base a; b\\;c;\n"},
        {"base_files=base a;b\\;c;\n", "base_files=base a;\\sb\\;c;\n"},
        {"base_files=base a;b\\;c;\n", "base_files=base a;;b\\;c;\n"},
        {"base_files=base a;b\\;c;\n", "base_files=base a;b\\;\\sc;\n"},
        {"base_files=base a;b\\;c;\n", "base_files=\n"},
        {"base_files=base a;b\\;c;\n", "base_files=/abs/_base/x;\n"},
        {"image_ids=img;\n", "image_ids=img;\nunknown=\n"},
        {"image_ids=img;\n", "image_ids=img;\nunknown=why\n"},
        {"image_ids=img;\n", "image_ids=img;\nother=1\n"},
        {"format=3\n", "format=2\n"},
        {"format=3\n", "format=1\n"},
        {"format=3\n", "format=03\n"},
        {"machine_id=0123456789abcdef\n", ""},
        {"machine_id=0123456789abcdef\n", "machine_id=bad id\n"},
        {"host=compute-1\n", "host=compute 1\n"},
        {"# imagecache", "#imagecache"},
        {"[ledger]\n", "[ledger]  \n"},
        {"[ledger]\n", "\n[ledger]\n"},
        {"[last_used]\npaths=old;\ntimes=1690000000;\n", ""},
        {"paths=old;\n", "paths=old;old;\n"},
        {"times=1690000000;\n", "times=1690000000;1;\n"},
        {"times=1690000000;\n", "times=1690000000\n"},
        {"3f2504e0", "3F2504E0"},
        /* 20 digits: 2^64 + 1 and 2^64 + 2 wrap to 1 and 2 in a 64-bit accumulator
         * (redteam6: the fast path's length bound alone keeps them out). */
        {"started=1700000000\n", "started=18446744073709551617\n"},
        {"refreshed=1700000000\n", "refreshed=18446744073709551616\n"},
        {"domains=2\n", "domains=18446744073709551618\n"},
        {"times=1690000000;\n", "times=18446744073709551617;\n"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(edits); i++) {
        g_autoptr(GString) edited = g_string_new_len(body->str, (gssize)body->len);
        g_assert_cmpuint(g_string_replace(edited, edits[i].from, edits[i].to, 1), ==, 1);
        g_autoptr(GString) file = with_trailer(edited->str, edited->len, 2);
        assert_same_verdict(file->str, file->len, &v);
    }

    /* The two domain groups swapped (unsorted), and one of them twice. */
    const char *a = strstr(body->str, "[domain 3f");
    const char *b = strstr(body->str, "[domain 9b");
    const char *after = strstr(body->str, "[last_used]");
    g_autoptr(GString) swapped = g_string_new_len(body->str, a - body->str);
    g_string_append_len(swapped, b, after - b);
    g_string_append_len(swapped, a, b - a);
    g_string_append(swapped, after);
    g_autoptr(GString) swapped_file = with_trailer(swapped->str, swapped->len, 2);
    assert_same_verdict(swapped_file->str, swapped_file->len, &v);
    for (guint count = 2; count <= 3; count++) {
        g_autoptr(GString) twice = g_string_new_len(body->str, b - body->str);
        g_string_append_len(twice, a, b - a);
        g_string_append(twice, b);
        if (count == 3)
            g_string_replace(twice, "domains=2\n", "domains=3\n", 1);
        g_autoptr(GString) twice_file = with_trailer(twice->str, twice->len, count);
        assert_same_verdict(twice_file->str, twice_file->len, &v);
    }

    /* More than one [end] line: the reader splits at the last one, as the
     * reference does (and as every reader before the search went backwards). */
    {
        g_autoptr(GString) inner = g_string_new_len(body->str, (gssize)body->len);
        g_assert_cmpuint(g_string_replace(inner, "\n[last_used]\n", "\n[end]\n\n[last_used]\n", 1),
                         ==, 1);
        g_autoptr(GString) inner_file = with_trailer(inner->str, inner->len, 2);
        assert_same_verdict(inner_file->str, inner_file->len, &v);
        g_autoptr(GString) again = g_string_new_len(text, (gssize)len);
        g_string_append_c(again, '\n');
        g_autoptr(GString) again_file = with_trailer(again->str, again->len, 2);
        assert_same_verdict(again_file->str, again_file->len, &v);
        g_autoptr(GString) bare = g_string_new_len(body->str, (gssize)body->len);
        g_string_append(bare, "[end]\n");
        assert_same_verdict(bare->str, bare->len, &v);
        static const char *const tiny[] = {"",        "\n",        "[end]\n",
                                           "\n[end]", "\n[end]\n", "\n[end]\ndomains=0\n"};
        for (guint i = 0; i < G_N_ELEMENTS(tiny); i++)
            assert_same_verdict(tiny[i], strlen(tiny[i]), &v);
    }

    /* The limits, at and one past, each alone (one past another limit would hide it):
     * the name's length, a domain's lists, the [last_used] lists. */
    for (guint past = 0; past <= 4; past++) {
        g_autoptr(IcLedgerHost) big = ic_ledger_host_new("compute-1");
        g_autofree char *name = g_strnfill(1024 + (past == 1), 'n');
        IcLedgerDomain *domain = ic_ledger_domain_new(uuid_a, name);
        for (guint i = 0; i < IC_LEDGER_MAX_LIST_ENTRIES + (past == 2); i++)
            g_ptr_array_add(domain->base_files, g_strdup_printf("f%u", i));
        for (guint i = 0; i < IC_LEDGER_MAX_LIST_ENTRIES + (past == 3); i++)
            g_ptr_array_add(domain->image_ids, g_strdup_printf("i%u", i));
        g_ptr_array_add(big->domains, domain);
        IcLedgerDomain *other = ic_ledger_domain_new(uuid_b, "vm b");
        g_ptr_array_add(big->domains, other);
        for (guint i = 0; i < IC_LEDGER_MAX_LIST_ENTRIES + (past == 4); i++) {
            gint64 *when = g_new(gint64, 1);
            *when = i;
            g_hash_table_replace(big->last_used, g_strdup_printf("u%u", i), when);
        }
        gsize big_len = 0;
        g_autofree char *big_text = ic_ledger_host_serialize(big, &big_len);
        guint refused = v.refused;
        assert_same_verdict(big_text, big_len, &v);
        g_assert_cmpuint(v.refused - refused, ==, past > 0);
    }
    g_test_message("named: %u accepted, %u refused", v.accepted, v.refused);
}

static void test_parse_generated(void)
{
    tolerate_gerror_overwrite();
    Verdicts v = {0, 0};
    for (guint i = 0; i < 3000; i++) {
        g_autoptr(IcLedgerHost) host =
            g_test_rand_int_range(0, 4) == 0 ? random_host(4) : random_readable_host(4);
        gsize len = 0;
        g_autofree char *text = ic_ledger_host_serialize(host, &len);
        assert_same_verdict(text, len, &v);
        for (guint m = 0; m < 4; m++) {
            g_autoptr(GString) mutated = mutate(text, len);
            assert_same_verdict(mutated->str, mutated->len, &v);
        }
    }
    g_test_message("generated: %u accepted, %u refused", v.accepted, v.refused);
    /* Both sides of the comparison were exercised. */
    g_assert_cmpuint(v.accepted, >, 1000);
    g_assert_cmpuint(v.refused, >, 1000);
}

/* ---- the read-modify-write that keeps other domains as their text ----
 *
 * The oracle is the full path as it was: every domain decoded, the edit as the store made
 * it (the old entry removed, the new one appended, the array sorted), serialised. The
 * update path (ic_ledger_host_parse_for_update, ic_ledger_host_put_domain) must give the
 * same verdict on every file and write the same bytes after the same edit. */

/* The store's edit before issue 15's session 6, on a fully decoded host. */
static void oracle_put(IcLedgerHost *host, IcLedgerDomain *domain)
{
    for (guint i = 0; i < host->domains->len; i++) {
        if (strcmp(((IcLedgerDomain *)host->domains->pdata[i])->uuid, domain->uuid) == 0) {
            g_ptr_array_remove_index(host->domains, i);
            break;
        }
    }
    g_ptr_array_add(host->domains, domain);
    g_ptr_array_sort(host->domains, ic_ledger_domain_compare);
}

static IcLedgerDomain *copy_domain(const IcLedgerDomain *src)
{
    IcLedgerDomain *domain = ic_ledger_domain_new(src->uuid, src->name);
    for (guint i = 0; i < src->base_files->len; i++)
        g_ptr_array_add(domain->base_files, g_strdup(src->base_files->pdata[i]));
    for (guint i = 0; i < src->image_ids->len; i++)
        g_ptr_array_add(domain->image_ids, g_strdup(src->image_ids->pdata[i]));
    domain->started = src->started;
    domain->unknown = g_strdup(src->unknown);
    return domain;
}

static IcLedgerDomain *random_recorded(const char *uuid, gint64 started)
{
    g_autofree char *name = random_entry();
    IcLedgerDomain *domain = ic_ledger_domain_new(uuid, *name ? name : "vm");
    domain->started = started;
    guint files = (guint)g_test_rand_int_range(0, 4);
    for (guint k = 0; k < files; k++) {
        g_autofree char *entry = random_entry();
        if (*entry != '\0')
            g_ptr_array_add(domain->base_files, g_steal_pointer(&entry));
    }
    if (g_test_rand_int_range(0, 4) == 0)
        domain->unknown = g_strdup("a disk could not be followed");
    return domain;
}

static void assert_update_same(const char *data, gsize len, UpdateCounts *counts)
{
    g_autoptr(IcLedgerHost) full = NULL, kept = NULL;
    g_autoptr(GError) error = NULL, kept_error = NULL;
    gboolean ok = ic_ledger_host_parse(data, len, &full, &error);
    gboolean kept_ok = ic_ledger_host_parse_for_update(data, len, &kept, &kept_error);
    assert_verdicts_agree("update path", kept_ok, kept_error, ok, error, data, len);
    if (!ok) {
        g_assert_null(kept);
        counts->refused++;
        return;
    }
    counts->accepted++;
    for (guint i = 0; i < kept->domains->len; i++) {
        const IcLedgerDomain *domain = kept->domains->pdata[i];
        if (domain->text != NULL) {
            g_assert_null(domain->base_files);
            counts->kept_as_text++;
        }
    }
    /* What the text holds is what the full parse decoded. */
    g_autoptr(IcLedgerHost) decoded = ic_ledger_host_copy(kept);
    assert_hosts_equal(decoded, full);

    /* The same edit on both: none, a new domain, or one of the file's recorded again, its
     * start kept (as the store keeps it). */
    g_autoptr(IcLedgerDomain) recorded = NULL;
    switch (full->domains->len > 0 ? g_test_rand_int_range(0, 3) : g_test_rand_int_range(0, 2)) {
    case 0:
        break;
    case 1: {
        g_autofree char *uuid = random_uuid();
        recorded = random_recorded(uuid, 1800000000);
        break;
    }
    default: {
        guint at = (guint)g_test_rand_int_range(0, (gint32)full->domains->len);
        const IcLedgerDomain *old = full->domains->pdata[at];
        /* Found in the kept host as the store finds it, with its start decoded. */
        gint index = ic_ledger_host_find_domain(kept, old->uuid, NULL);
        g_assert_cmpint(index, ==, (gint)at);
        const IcLedgerDomain *kept_old = kept->domains->pdata[index];
        g_assert_cmpint(kept_old->started, ==, old->started);
        recorded = random_recorded(old->uuid, old->started > 0 ? old->started : 1800000000);
        break;
    }
    }
    if (recorded != NULL) {
        oracle_put(full, copy_domain(recorded));
        ic_ledger_host_put_domain(kept, g_steal_pointer(&recorded));
    }
    full->refreshed = kept->refreshed = 1800000001;
    g_free(full->machine_id);
    g_free(kept->machine_id);
    full->machine_id = g_strdup("0123456789abcdef0123456789abcdef");
    kept->machine_id = g_strdup("0123456789abcdef0123456789abcdef");
    gsize full_len = 0, kept_len = 0;
    g_autofree char *full_text = ic_ledger_host_serialize(full, &full_len);
    g_autofree char *kept_text = ic_ledger_host_serialize(kept, &kept_len);
    g_assert_cmpmem(kept_text, kept_len, full_text, full_len);
}

/* The fuzz corpus as it is, and each file with its [end] group written anew. */
static void test_parse_corpus(void)
{
    tolerate_gerror_overwrite();
    Verdicts v = {0, 0};
    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "fuzz", "corpus", "ledger", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    const char *name;
    guint files = 0;
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *data = NULL;
        gsize len = 0;
        g_assert_true(g_file_get_contents(path, &data, &len, NULL));
        files++;
        assert_same_verdict(data, len, &v);
        const char *end = g_strrstr_len(data, (gssize)len, "\n[end]\n");
        if (end == NULL || memchr(data, '\0', len) != NULL)
            continue;
        for (guint m = 0; m < 200; m++) {
            g_autoptr(GString) mutated = mutate(data, len);
            assert_same_verdict(mutated->str, mutated->len, &v);
        }
    }
    g_test_message("corpus: %u files, %u accepted, %u refused", files, v.accepted, v.refused);
    g_assert_cmpuint(files, >, 0);
}

static void test_update_generated(void)
{
    tolerate_gerror_overwrite();
    UpdateCounts counts = {0, 0, 0};
    for (guint i = 0; i < 2000; i++) {
        guint max = g_test_rand_int_range(0, 10) == 0 ? 40 : 6;
        g_autoptr(IcLedgerHost) host =
            g_test_rand_int_range(0, 4) == 0 ? random_host(max) : random_readable_host(max);
        gsize len = 0;
        g_autofree char *text = ic_ledger_host_serialize(host, &len);
        assert_update_same(text, len, &counts);
        for (guint m = 0; m < 4; m++) {
            g_autoptr(GString) mutated = mutate(text, len);
            assert_update_same(mutated->str, mutated->len, &counts);
        }
    }
    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "fuzz", "corpus", "ledger", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *data = NULL;
        gsize len = 0;
        g_assert_true(g_file_get_contents(path, &data, &len, NULL));
        assert_update_same(data, len, &counts);
        if (g_strrstr_len(data, (gssize)len, "\n[end]\n") == NULL ||
            memchr(data, '\0', len) != NULL)
            continue;
        for (guint m = 0; m < 50; m++) {
            g_autoptr(GString) mutated = mutate(data, len);
            assert_update_same(mutated->str, mutated->len, &counts);
        }
    }
    g_test_message("update: %u accepted, %u refused, %u domains kept as text", counts.accepted,
                   counts.refused, counts.kept_as_text);
    /* Both verdicts, and the text path itself, were exercised. */
    g_assert_cmpuint(counts.accepted, >, 1000);
    g_assert_cmpuint(counts.refused, >, 1000);
    g_assert_cmpuint(counts.kept_as_text, >, 1000);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/imagecache/ledger-codec/serialize/named", test_named);
    g_test_add_func("/imagecache/ledger-codec/serialize/generated", test_generated);
    g_test_add_func("/imagecache/ledger-codec/parse/named", test_parse_named);
    g_test_add_func("/imagecache/ledger-codec/parse/generated", test_parse_generated);
    g_test_add_func("/imagecache/ledger-codec/parse/corpus", test_parse_corpus);
    g_test_add_func("/imagecache/ledger-codec/update/generated", test_update_generated);
    return g_test_run();
}
