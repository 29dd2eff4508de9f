/* ledger.c — the per-host usage ledger files: format, locking, atomic rewrite, reading all hosts.
 *
 * A host file is GKeyFile text that checks itself:
 *
 *   # imagecache usage ledger: written by imagecache-hook under <host>.lock, do not edit
 *   [ledger]
 *   format=3
 *   host=<host>
 *   machine_id=<id>            the machine that wrote it (format 3; optional)
 *   refreshed=<epoch seconds>
 *   domains=<N>
 *
 *   [domain <uuid>]            one per domain, sorted by uuid
 *   name=<domain name>
 *   started=<epoch seconds>
 *   base_files=<name>;<name>;  base files by name, relative to the base dir
 *   image_ids=<id>;
 *   unknown=<reason>           only when a disk could not be followed (format 3):
 *                              the domain's base files are not all known
 *
 *   [last_used]
 *   paths=<name>;…             parallel lists: when each base file was last released
 *   times=<epoch seconds>;…
 *
 *   [end]
 *   domains=<N>
 *   sha256=<hex digest of every byte before the "[end]" line>
 *
 * The [end] group must be last, repeat the header's count and carry the digest,
 * so a truncated or damaged file is an error instead of a ledger with fewer users.
 *
 * Base files are named relative to the base dir because hosts mount the shared
 * storage at different paths (and device/inode numbers mean nothing across hosts):
 * each reader resolves a name against its own base dir. Format 1 named them by
 * absolute path; such files are still read, and an entry carried over from one
 * stays absolute until its domain is recorded again (readers resolve it by its
 * parent directory's name, see resolve_entry).
 *
 * Format 3 adds the optional machine_id and unknown keys; it reads formats 1
 * and 2 as before. Older versions refuse a format 3 file as damaged, which
 * keeps every base file (safe, and said) until they are upgraded. */
#include "ledger.h"

#include "domxml.h"
#include "error.h"
#include "fileutil.h"
#include "probe.h"
#include "protocol.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define LEDGER_FORMAT       3
#define LEDGER_FORMAT_NAMES 2 /* base files by name, without machine_id and unknown */
#define LEDGER_FORMAT_PATHS 1 /* base files by absolute path */
#define MACHINE_ID_MAX_LEN  64
#define LEDGER_SUFFIX       ".ledger"
#define LOCK_SUFFIX         ".lock"
#define HOST_MAX_LEN        253          /* a fully qualified DNS name */
#define LAST_PASS_NAME      ".last-pass" /* not *.ledger: no host file */
#define NAME_MAX_LEN        1024
#define MAX_LIST_ENTRIES    4096 /* base files or image ids of one domain */
#define MAX_LAST_USED       10000
#define DOMAIN_GROUP_PREFIX "domain "

IcLedgerDomain *ic_ledger_domain_new(const char *uuid, const char *name)
{
    IcLedgerDomain *domain = g_new0(IcLedgerDomain, 1);
    domain->uuid = g_strdup(uuid);
    domain->name = g_strdup(name);
    domain->base_files = g_ptr_array_new_with_free_func(g_free);
    domain->image_ids = g_ptr_array_new_with_free_func(g_free);
    return domain;
}

void ic_ledger_domain_free(IcLedgerDomain *domain)
{
    if (domain == NULL)
        return;
    g_free(domain->uuid);
    g_free(domain->name);
    g_free(domain->unknown);
    g_clear_pointer(&domain->base_files, g_ptr_array_unref);
    g_clear_pointer(&domain->image_ids, g_ptr_array_unref);
    g_free(domain);
}

char *ic_ledger_entry_name(const char *path)
{
    return g_path_is_absolute(path) ? g_path_get_basename(path) : g_strdup(path);
}

/* Marks @domain's usage unknown for @why (the first reason is kept). */
static void mark_unknown(IcLedgerDomain *domain, const char *why)
{
    if (domain->unknown == NULL)
        domain->unknown = g_utf8_make_valid(why, -1);
}

/* A text the ledger file can hold: GKeyFile refuses to read a value that is not
 * UTF-8, and one such value would make the whole file (every domain of the host)
 * unreadable. A value that is not is refused here, loudly, and the domain is
 * marked unknown instead, so no base file it may use is removed. */
static gboolean writable_text(IcLedgerDomain *domain, const char *what, const char *value)
{
    if (g_utf8_validate(value, -1, NULL))
        return TRUE;
    g_autofree char *shown = g_utf8_make_valid(value, -1);
    g_autofree char *why = g_strdup_printf("%s '%s' is not UTF-8", what, shown);
    g_message("domain '%s' (%s): %s: not written to the ledger; its usage is recorded as unknown",
              domain->uuid, domain->name, why);
    mark_unknown(domain, why);
    return FALSE;
}

/* A copy for the ledger file: base files by name (see ic_ledger_entry_name),
 * every value one the reader accepts (writable_text). */
static IcLedgerDomain *domain_copy(const IcLedgerDomain *src)
{
    g_autofree char *name = g_utf8_make_valid(src->name, -1);
    IcLedgerDomain *domain = ic_ledger_domain_new(src->uuid, name);
    if (src->unknown != NULL)
        mark_unknown(domain, src->unknown);
    writable_text(domain, "the domain name", src->name);
    for (guint i = 0; i < src->base_files->len; i++) {
        char *entry = ic_ledger_entry_name(g_ptr_array_index(src->base_files, i));
        if (!writable_text(domain, "base file", entry) ||
            g_ptr_array_find_with_equal_func(domain->base_files, entry, g_str_equal, NULL))
            g_free(entry);
        else
            g_ptr_array_add(domain->base_files, entry);
    }
    for (guint i = 0; i < src->image_ids->len; i++) {
        const char *id = g_ptr_array_index(src->image_ids, i);
        if (writable_text(domain, "image id", id))
            g_ptr_array_add(domain->image_ids, g_strdup(id));
    }
    domain->started = src->started;
    return domain;
}

static IcLedgerHost *host_new(const char *name)
{
    IcLedgerHost *host = g_new0(IcLedgerHost, 1);
    host->host = g_strdup(name);
    host->domains = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    host->last_used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return host;
}

void ic_ledger_host_free(IcLedgerHost *host)
{
    if (host == NULL)
        return;
    g_free(host->host);
    g_free(host->machine_id);
    g_clear_pointer(&host->domains, g_ptr_array_unref);
    g_clear_pointer(&host->last_used, g_hash_table_unref);
    g_free(host);
}

void ic_ledger_free(IcLedger *ledger)
{
    if (ledger == NULL)
        return;
    g_free(ledger->ledger_dir);
    g_clear_pointer(&ledger->hosts, g_ptr_array_unref);
    g_clear_pointer(&ledger->errors, g_ptr_array_unref);
    g_free(ledger);
}

gboolean ic_ledger_host_name_is_valid(const char *host)
{
    gsize len = host != NULL ? strlen(host) : 0;
    if (len == 0 || len > HOST_MAX_LEN || host[0] == '.')
        return FALSE;
    /* Host names become file names: letters, digits, '.', '-', '_' and nothing else. */
    for (const char *p = host; *p != '\0'; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            return FALSE;
    }
    return TRUE;
}

static gboolean check_host_name(const char *host, GError **error)
{
    if (ic_ledger_host_name_is_valid(host))
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                "invalid host name '%s' for the ledger: use 1 to %d letters, digits, '.', '-' "
                "or '_', not starting with '.'",
                host != NULL ? host : "", HOST_MAX_LEN);
    return FALSE;
}

static gint compare_domains(gconstpointer a, gconstpointer b)
{
    const IcLedgerDomain *da = *(IcLedgerDomain *const *)a;
    const IcLedgerDomain *db = *(IcLedgerDomain *const *)b;
    return strcmp(da->uuid, db->uuid);
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- serialising ---- */

static void set_list(GKeyFile *kf, const char *group, const char *key, GPtrArray *list)
{
    g_key_file_set_string_list(kf, group, key, (const char *const *)list->pdata, list->len);
}

static char *end_trailer(guint domains, const char *body, gsize body_len)
{
    g_autofree char *digest =
        g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)body, body_len);
    return g_strdup_printf("[end]\ndomains=%u\nsha256=%s\n", domains, digest);
}

char *ic_ledger_host_serialize(const IcLedgerHost *host, gsize *ret_len)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    /* A borrowed view: g_ptr_array_copy() would inherit the free function. */
    g_autoptr(GPtrArray) domains = g_ptr_array_sized_new(host->domains->len);
    for (guint i = 0; i < host->domains->len; i++)
        g_ptr_array_add(domains, host->domains->pdata[i]);
    g_ptr_array_sort(domains, compare_domains);

    g_key_file_set_integer(kf, "ledger", "format", LEDGER_FORMAT);
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
        g_autofree char *group = g_strconcat(DOMAIN_GROUP_PREFIX, domain->uuid, NULL);
        g_key_file_set_string(kf, group, "name", domain->name);
        g_key_file_set_int64(kf, group, "started", domain->started);
        set_list(kf, group, "base_files", domain->base_files);
        set_list(kf, group, "image_ids", domain->image_ids);
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
        g_ptr_array_sort(paths, compare_strings);
        g_autofree gint64 *times = g_new(gint64, paths->len);
        g_autoptr(GStrvBuilder) time_strs = g_strv_builder_new();
        for (guint i = 0; i < paths->len; i++) {
            times[i] = *(const gint64 *)g_hash_table_lookup(host->last_used, paths->pdata[i]);
            g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, times[i]);
            g_strv_builder_add(time_strs, s);
        }
        g_auto(GStrv) strv = g_strv_builder_end(time_strs);
        set_list(kf, "last_used", "paths", paths);
        g_key_file_set_string_list(kf, "last_used", "times", (const char *const *)strv, paths->len);
    }

    gsize body_len = 0;
    g_autofree char *body = g_key_file_to_data(kf, &body_len, NULL);
    /* GKeyFile separates groups with a blank line; keep the [end] group in that shape. */
    GString *out = g_string_new_len(body, (gssize)body_len);
    if (out->len > 0 && !g_str_has_suffix(out->str, "\n\n"))
        g_string_append_c(out, '\n');
    g_autofree char *trailer = end_trailer(domains->len, out->str, out->len);
    g_string_append(out, trailer);
    if (ret_len != NULL)
        *ret_len = out->len;
    return g_string_free(out, FALSE);
}

/* ---- parsing ---- */

/* 1 to MACHINE_ID_MAX_LEN of [A-Za-z0-9-] (systemd's machine-id is 32 hex digits). */
static gboolean machine_id_is_valid(const char *id)
{
    gsize len = id != NULL ? strlen(id) : 0;
    if (len == 0 || len > MACHINE_ID_MAX_LEN)
        return FALSE;
    for (const char *p = id; *p != '\0'; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-')
            return FALSE;
    }
    return TRUE;
}

char *ic_ledger_machine_id(void)
{
    const char *env = g_getenv("IMAGECACHE_MACHINE_ID");
    g_autofree char *text = NULL;
    if (env != NULL && *env != '\0')
        text = g_strdup(env);
    else if (!g_file_get_contents("/etc/machine-id", &text, NULL, NULL))
        return NULL;
    g_strstrip(text);
    return machine_id_is_valid(text) ? g_steal_pointer(&text) : NULL;
}

static gboolean format_error(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean format_error(GError **error, const char *fmt, ...)
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
static gboolean check_keys_opt(GKeyFile *kf, const char *group, const char *const *expected,
                               const char *optional, GError **error)
{
    gsize n = 0;
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, &n, NULL);
    for (gsize i = 0; i < n; i++) {
        if (!g_strv_contains(expected, keys[i]) && g_strcmp0(keys[i], optional) != 0)
            return format_error(error, "unknown key '%s' in [%s]", keys[i], group);
    }
    for (gsize i = 0; expected[i] != NULL; i++) {
        if (!g_key_file_has_key(kf, group, expected[i], NULL))
            return format_error(error, "missing key '%s' in [%s]", expected[i], group);
    }
    return TRUE;
}

static gboolean check_keys(GKeyFile *kf, const char *group, const char *const *expected,
                           GError **error)
{
    return check_keys_opt(kf, group, expected, NULL, error);
}

static gboolean get_int(GKeyFile *kf, const char *group, const char *key, gint64 max, gint64 *ret,
                        GError **error)
{
    g_autofree char *text = g_key_file_get_value(kf, group, key, NULL);
    guint64 value = 0;
    if (text == NULL || !g_ascii_string_to_unsigned(text, 10, 0, (guint64)max, &value, NULL))
        return format_error(error, "bad value '%s' for '%s' in [%s]", text ? text : "", key, group);
    *ret = (gint64)value;
    return TRUE;
}

/* A base file entry: format 1 wrote absolute paths; format 2 writes names in
 * the base dir, and keeps an absolute path carried over from format 1. */
static gboolean entry_is_valid(const char *entry, gint64 format)
{
    if (g_path_is_absolute(entry))
        return TRUE;
    return format != LEDGER_FORMAT_PATHS && strchr(entry, '/') == NULL && strcmp(entry, ".") != 0 &&
           strcmp(entry, "..") != 0;
}

/* @entries_format: 0 for a list of plain values, else the file's format, whose
 * rule entry_is_valid applies to each value (base file entries). */
static gboolean get_list(GKeyFile *kf, const char *group, const char *key, gint64 entries_format,
                         GPtrArray *into, GError **error)
{
    gsize n = 0;
    g_autoptr(GError) local_error = NULL;
    g_auto(GStrv) list = g_key_file_get_string_list(kf, group, key, &n, &local_error);
    if (list == NULL) {
        /* An empty list reads as an error in some GLib versions: accept "key=". */
        g_autofree char *raw = g_key_file_get_value(kf, group, key, NULL);
        if (raw != NULL && *raw == '\0')
            return TRUE;
        return format_error(error, "bad list '%s' in [%s]: %s", key, group,
                            local_error ? local_error->message : "unreadable");
    }
    if (n > MAX_LIST_ENTRIES)
        return format_error(error, "more than %d entries in '%s' of [%s]", MAX_LIST_ENTRIES, key,
                            group);
    for (gsize i = 0; i < n; i++) {
        if (list[i][0] == '\0' || (entries_format != 0 && !entry_is_valid(list[i], entries_format)))
            return format_error(error, "bad entry '%s' in '%s' of [%s]", list[i], key, group);
        g_ptr_array_add(into, g_strdup(list[i]));
    }
    return TRUE;
}

static gboolean parse_domain(GKeyFile *kf, const char *group, gint64 format,
                             IcLedgerDomain **ret_domain, GError **error)
{
    static const char *const keys[] = {"name", "started", "base_files", "image_ids", NULL};
    const char *uuid = group + strlen(DOMAIN_GROUP_PREFIX);
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    if (!g_uuid_string_is_valid(uuid) || strcmp(lower, uuid) != 0)
        return format_error(error, "bad domain uuid in group [%s]", group);
    if (!check_keys_opt(kf, group, keys, format >= LEDGER_FORMAT ? "unknown" : NULL, error))
        return FALSE;

    g_autofree char *name = g_key_file_get_string(kf, group, "name", NULL);
    if (name == NULL || *name == '\0' || strlen(name) > NAME_MAX_LEN)
        return format_error(error, "bad 'name' in [%s]", group);
    g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(uuid, name);
    if (!get_int(kf, group, "started", G_MAXINT64, &domain->started, error) ||
        !get_list(kf, group, "base_files", format, domain->base_files, error) ||
        !get_list(kf, group, "image_ids", 0, domain->image_ids, error))
        return FALSE;
    if (g_key_file_has_key(kf, group, "unknown", NULL)) {
        domain->unknown = g_key_file_get_string(kf, group, "unknown", NULL);
        if (domain->unknown == NULL || *domain->unknown == '\0')
            return format_error(error, "bad 'unknown' in [%s]", group);
    }
    *ret_domain = g_steal_pointer(&domain);
    return TRUE;
}

static gboolean parse_last_used(GKeyFile *kf, IcLedgerHost *host, gint64 format, GError **error)
{
    static const char *const keys[] = {"paths", "times", NULL};
    if (!check_keys(kf, "last_used", keys, error))
        return FALSE;
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) times = g_ptr_array_new_with_free_func(g_free);
    if (!get_list(kf, "last_used", "paths", format, paths, error) ||
        !get_list(kf, "last_used", "times", 0, times, error))
        return FALSE;
    if (paths->len != times->len)
        return format_error(error, "[last_used] has %u paths but %u times", paths->len, times->len);
    for (guint i = 0; i < paths->len; i++) {
        guint64 t = 0;
        if (!g_ascii_string_to_unsigned(times->pdata[i], 10, 0, G_MAXINT64, &t, NULL))
            return format_error(error, "bad time '%s' in [last_used]",
                                (const char *)times->pdata[i]);
        gint64 *value = g_new(gint64, 1);
        *value = (gint64)t;
        g_hash_table_replace(host->last_used, g_strdup(paths->pdata[i]), value);
    }
    return TRUE;
}

/* Splits @data at its last "[end]" line and checks the trailer byte for byte. */
static gboolean check_trailer(const char *data, gsize len, guint64 *ret_domains, GError **error)
{
    const char *end = NULL;
    for (const char *p = data;
         (p = g_strstr_len(p, (gssize)(len - (gsize)(p - data)), "\n[end]\n")) != NULL; p++)
        end = p + 1;
    if (end == NULL)
        return format_error(error, "no [end] group: the file is truncated");

    gsize body_len = (gsize)(end - data);
    /* @data need not be NUL-terminated: every read stays within @len. */
    gsize rest = len - body_len;
    const gsize prefix_len = strlen("[end]\ndomains=");
    guint64 domains = 0;
    if (rest < prefix_len || memcmp(end, "[end]\ndomains=", prefix_len) != 0)
        return format_error(error, "the [end] group does not start with 'domains='");
    const char *count = end + prefix_len;
    const char *count_end = memchr(count, '\n', rest - prefix_len);
    g_autofree char *count_str =
        g_strndup(count, count_end != NULL ? (gsize)(count_end - count) : rest - prefix_len);
    if (!g_ascii_string_to_unsigned(count_str, 10, 0, IC_LEDGER_MAX_DOMAINS, &domains, NULL))
        return format_error(error, "bad domain count '%s' in [end]", count_str);

    g_autofree char *expected = end_trailer((guint)domains, data, body_len);
    if (len - body_len != strlen(expected) || memcmp(end, expected, len - body_len) != 0)
        return format_error(error, "the [end] group does not match the contents (checksum "
                                   "mismatch or truncated): the file is damaged");
    *ret_domains = domains;
    return TRUE;
}

static gboolean parse_groups(GKeyFile *kf, guint64 end_domains, IcLedgerHost **ret_host,
                             GError **error)
{
    static const char *const header_keys[] = {"format", "host", "refreshed", "domains", NULL};
    static const char *const end_keys[] = {"domains", "sha256", NULL};
    gsize n_groups = 0;
    g_auto(GStrv) groups = g_key_file_get_groups(kf, &n_groups);
    if (n_groups < 2 || strcmp(groups[0], "ledger") != 0)
        return format_error(error, "the first group is not [ledger]");
    if (strcmp(groups[n_groups - 1], "end") != 0)
        return format_error(error, "the last group is not [end]");
    if (!check_keys_opt(kf, "ledger", header_keys, "machine_id", error) ||
        !check_keys(kf, "end", end_keys, error))
        return FALSE;

    gint64 format = 0, refreshed = 0, domains = 0;
    if (!get_int(kf, "ledger", "format", G_MAXINT32, &format, error) ||
        !get_int(kf, "ledger", "refreshed", G_MAXINT64, &refreshed, error) ||
        !get_int(kf, "ledger", "domains", IC_LEDGER_MAX_DOMAINS, &domains, error))
        return FALSE;
    if (format != LEDGER_FORMAT && format != LEDGER_FORMAT_NAMES && format != LEDGER_FORMAT_PATHS)
        return format_error(error,
                            "unsupported format %" G_GINT64_FORMAT
                            " (this version reads %d to %d): written by a newer imagecache?",
                            format, LEDGER_FORMAT_PATHS, LEDGER_FORMAT);
    g_autofree char *name = g_key_file_get_string(kf, "ledger", "host", NULL);
    if (!ic_ledger_host_name_is_valid(name))
        return format_error(error, "bad host '%s' in [ledger]", name ? name : "");

    g_autoptr(IcLedgerHost) host = host_new(name);
    host->refreshed = refreshed;
    if (g_key_file_has_key(kf, "ledger", "machine_id", NULL)) {
        host->machine_id = g_key_file_get_string(kf, "ledger", "machine_id", NULL);
        if (format < LEDGER_FORMAT || !machine_id_is_valid(host->machine_id))
            return format_error(error, "bad machine_id in [ledger]");
    }
    gboolean seen_last_used = FALSE;
    for (gsize i = 1; i + 1 < n_groups; i++) {
        const char *group = groups[i];
        if (strcmp(group, "last_used") == 0 && !seen_last_used) {
            seen_last_used = TRUE;
            if (!parse_last_used(kf, host, format, error))
                return FALSE;
            continue;
        }
        if (!g_str_has_prefix(group, DOMAIN_GROUP_PREFIX))
            return format_error(error, "unexpected group [%s]", group);
        IcLedgerDomain *domain = NULL;
        if (!parse_domain(kf, group, format, &domain, error))
            return FALSE;
        g_ptr_array_add(host->domains, domain);
    }
    /* GKeyFile merges repeated groups: the counts catch a duplicated domain. */
    if ((guint64)domains != host->domains->len || end_domains != host->domains->len)
        return format_error(error,
                            "the header counts %" G_GINT64_FORMAT
                            " domains, [end] %" G_GUINT64_FORMAT ", the file holds %u",
                            domains, end_domains, host->domains->len);
    g_ptr_array_sort(host->domains, compare_domains);
    *ret_host = g_steal_pointer(&host);
    return TRUE;
}

gboolean ic_ledger_host_parse(const char *data, gsize len, IcLedgerHost **ret_host, GError **error)
{
    if (len > IC_LEDGER_MAX_BYTES)
        return format_error(error, "larger than %d bytes", IC_LEDGER_MAX_BYTES);
    if (memchr(data, '\0', len) != NULL)
        return format_error(error, "a NUL byte in the file");

    guint64 end_domains = 0;
    if (!check_trailer(data, len, &end_domains, error))
        return FALSE;

    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) kf_error = NULL;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &kf_error))
        return format_error(error, "%s", kf_error->message);
    return parse_groups(kf, end_domains, ret_host, error);
}

/* ---- locking and writing ---- */

gboolean ic_ledger_open_dir(const char *ledger_dir, int *ret_dirfd, GError **error)
{
    if (mkdir(ledger_dir, 0755) < 0 && errno != EEXIST)
        return ic_error_set_errno(error, errno, "creating the ledger directory", ledger_dir);
    int fd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    *ret_dirfd = fd;
    return TRUE;
}

/* An OFD lock (owned by the open file description, not the process): it works
 * between threads, is released when the fd closes, and is honoured over NFS.
 * The wait is bounded (protocol.h): a writer of this host holds it only across
 * one file rewrite, so running out of time means something is stuck. */
static gboolean lock_file_at(int dirfd, const char *name, gint64 deadline, int *ret_fd,
                             GError **error)
{
    if (deadline <= 0)
        deadline = g_get_monotonic_time() + IC_PROTOCOL_HOST_WAIT_MS * 1000;
    return ic_protocol_lock_file_at(dirfd, -1, name, -1, TRUE, deadline, NULL, NULL, ret_fd, error);
}

/* TRUE for exactly "<file_name>.tmp.<8 hex digits>", the name
 * ic_file_write_atomic_at gives its temporary file. A prefix match is not
 * enough: host "a.ledger.tmp.x" is valid, and its ledger starts with host
 * "a"'s temp prefix. No host's own file has that exact shape (each ends in
 * ".ledger" or ".lock", or is longer). */
static gboolean is_own_temp(const char *entry, const char *prefix)
{
    if (!g_str_has_prefix(entry, prefix))
        return FALSE;
    const char *tail = entry + strlen(prefix);
    if (strlen(tail) != 8)
        return FALSE;
    for (; *tail != '\0'; tail++) {
        if (!g_ascii_isxdigit(*tail))
            return FALSE;
    }
    return TRUE;
}

/* Removes "<host>.ledger.tmp.XXXXXXXX" that a writer of this host left when it
 * crashed; the caller holds the host lock, so no live writer owns one. */
static void remove_stale_temps(int dirfd, const char *file_name)
{
    g_autofree char *prefix = g_strconcat(file_name, ".tmp.", NULL);
    /* Best effort: a temp file left now is removed by the next write. */
    g_autoptr(DIR) dir = ic_dir_open_at(dirfd, ".", "the ledger directory", NULL);
    struct dirent *entry;
    while (dir != NULL && ic_dir_read(dir, "the ledger directory", ".", &entry, NULL) &&
           entry != NULL) {
        if (is_own_temp(entry->d_name, prefix)) {
            g_debug("removing '%s' left by an interrupted ledger write", entry->d_name);
            (void)unlinkat(dirfd, entry->d_name, 0);
        }
    }
}

typedef gboolean (*LedgerEdit)(IcLedgerHost *host, gpointer data, gint64 now, GError **error);

/* The read-modify-write of one host file, under its exclusive lock. A damaged
 * existing file stops the edit (its users must not be lost) unless @replace.
 * @expect (may be NULL): the file's bytes the caller decided from (empty: no
 * file); anything else under the lock fails with IC_ERROR_CHANGED. */
static gboolean ledger_update(const char *ledger_dir, const char *host_name, gboolean replace,
                              GBytes *expect, LedgerEdit edit, gpointer data, gint64 now,
                              gint64 deadline, GError **error)
{
    if (!check_host_name(host_name, error))
        return FALSE;
    ic_autofd dirfd = -1;
    if (!ic_ledger_open_dir(ledger_dir, &dirfd, error))
        return FALSE;

    g_autofree char *file_name = g_strconcat(host_name, LEDGER_SUFFIX, NULL);
    g_autofree char *lock_name = g_strconcat(host_name, LOCK_SUFFIX, NULL);
    ic_autofd lock_fd = -1;
    if (!lock_file_at(dirfd, lock_name, deadline, &lock_fd, error)) {
        g_prefix_error(error, "in '%s': ", ledger_dir);
        return FALSE;
    }
    remove_stale_temps(dirfd, file_name);

    g_autofree char *machine_id = ic_ledger_machine_id();
    g_autoptr(IcLedgerHost) host = NULL;
    g_autofree char *old = NULL;
    gsize old_len = 0;
    g_autoptr(GError) read_error = NULL;
    if (ic_file_read_at(dirfd, file_name, IC_LEDGER_MAX_BYTES, &old, &old_len, &read_error)) {
        if (!ic_ledger_host_parse(old, old_len, &host, &read_error) && !replace) {
            g_propagate_prefixed_error(
                error, g_steal_pointer(&read_error),
                "ledger file '%s/%s' is damaged, not changing it: ", ledger_dir, file_name);
            return FALSE;
        }
        if (host != NULL && strcmp(host->host, host_name) != 0 && !replace) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "ledger file '%s/%s' names host '%s', not changing it", ledger_dir,
                        file_name, host->host);
            return FALSE;
        }
        /* Even a repair must not overwrite another machine's domains. */
        if (host != NULL && host->machine_id != NULL && machine_id != NULL &&
            strcmp(host->machine_id, machine_id) != 0) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "ledger file '%s/%s' was written by machine '%s', this is machine '%s': "
                        "two hosts use the host name '%s' (cloned nodes?); set a distinct 'host' "
                        "in each one's config; not changing the file",
                        ledger_dir, file_name, host->machine_id, machine_id, host_name);
            return FALSE;
        }
    } else if (!g_error_matches(read_error, IC_ERROR, IC_ERROR_NOT_FOUND) && !replace) {
        g_propagate_prefixed_error(error, g_steal_pointer(&read_error), "in '%s': ", ledger_dir);
        return FALSE;
    }
    if (expect != NULL) {
        gsize expect_len = 0;
        const void *expect_data = g_bytes_get_data(expect, &expect_len);
        if (expect_len != (old ? old_len : 0) ||
            (expect_len > 0 && memcmp(expect_data, old, expect_len) != 0)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CHANGED,
                        "ledger file '%s/%s' changed meanwhile (a domain started or stopped)",
                        ledger_dir, file_name);
            return FALSE;
        }
    }
    if (host == NULL || strcmp(host->host, host_name) != 0) {
        g_clear_pointer(&host, ic_ledger_host_free);
        host = host_new(host_name);
    }

    if (!edit(host, data, now, error))
        return FALSE;
    host->refreshed = now;
    g_free(host->machine_id);
    host->machine_id = g_steal_pointer(&machine_id);

    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    if (!ic_file_write_atomic_at(dirfd, file_name, text, len, 0644, error)) {
        g_prefix_error(error, "writing the ledger in '%s': ", ledger_dir);
        return FALSE;
    }
    return TRUE;
}

static gint find_domain(const IcLedgerHost *host, const char *uuid)
{
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(host->domains, i);
        if (strcmp(domain->uuid, uuid) == 0)
            return (gint)i;
    }
    return -1;
}

typedef struct {
    const char *path;
    gint64 time;
} LastUsed;

static gint compare_last_used(gconstpointer a, gconstpointer b)
{
    const LastUsed *la = a, *lb = b;
    if (la->time != lb->time)
        return la->time < lb->time ? -1 : 1;
    return strcmp(la->path, lb->path);
}

/* Keeps the newest MAX_LAST_USED entries, so the file cannot grow without bound. */
static void trim_last_used(IcLedgerHost *host)
{
    guint size = g_hash_table_size(host->last_used);
    if (size <= MAX_LAST_USED)
        return;
    g_autoptr(GArray) entries = g_array_sized_new(FALSE, FALSE, sizeof(LastUsed), size);
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, host->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        LastUsed entry = {key, *(gint64 *)value};
        g_array_append_val(entries, entry);
    }
    g_array_sort(entries, compare_last_used);
    g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < size - MAX_LAST_USED; i++)
        g_ptr_array_add(doomed, g_strdup(g_array_index(entries, LastUsed, i).path));
    for (guint i = 0; i < doomed->len; i++)
        g_hash_table_remove(host->last_used, doomed->pdata[i]);
}

static void remember_release(IcLedgerHost *host, const IcLedgerDomain *domain, gint64 now)
{
    for (guint i = 0; i < domain->base_files->len; i++) {
        gint64 *value = g_new(gint64, 1);
        *value = now;
        g_hash_table_replace(host->last_used, g_strdup(g_ptr_array_index(domain->base_files, i)),
                             value);
    }
    trim_last_used(host);
}

static gboolean edit_record(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    const IcLedgerDomain *domain = data;
    if (host->domains->len >= IC_LEDGER_MAX_DOMAINS && find_domain(host, domain->uuid) < 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "the ledger of host '%s' is full (%d domains)",
                    host->host, IC_LEDGER_MAX_DOMAINS);
        return FALSE;
    }
    IcLedgerDomain *copy = domain_copy(domain);
    gint index = find_domain(host, domain->uuid);
    if (index >= 0) {
        /* started means "first recorded": prepare, then started, then reconnect. */
        const IcLedgerDomain *old = g_ptr_array_index(host->domains, index);
        if (old->started > 0)
            copy->started = old->started;
        g_ptr_array_remove_index(host->domains, (guint)index);
    }
    g_ptr_array_add(host->domains, copy);
    g_ptr_array_sort(host->domains, compare_domains);
    return TRUE;
}

static gboolean check_domain_entry(const IcLedgerDomain *domain, GError **error)
{
    g_autofree char *lower = g_ascii_strdown(domain->uuid ? domain->uuid : "", -1);
    if (domain->uuid == NULL || !g_uuid_string_is_valid(domain->uuid) ||
        strcmp(lower, domain->uuid) != 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "invalid domain uuid '%s'",
                    domain->uuid ? domain->uuid : "");
        return FALSE;
    }
    if (domain->name == NULL || *domain->name == '\0' || strlen(domain->name) > NAME_MAX_LEN) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "invalid name for domain '%s'", domain->uuid);
        return FALSE;
    }
    for (guint i = 0; i < domain->base_files->len; i++) {
        const char *entry = g_ptr_array_index(domain->base_files, i);
        if (!entry_is_valid(entry, LEDGER_FORMAT)) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "domain '%s' names base file '%s': neither an absolute path nor a name",
                        domain->name, entry);
            return FALSE;
        }
    }
    if (domain->base_files->len > MAX_LIST_ENTRIES || domain->image_ids->len > MAX_LIST_ENTRIES) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "domain '%s' names too many files",
                    domain->name);
        return FALSE;
    }
    return TRUE;
}

gboolean ic_ledger_record_domain_until(const char *ledger_dir, const char *host,
                                       const IcLedgerDomain *domain, gint64 now, gint64 deadline_us,
                                       GError **error)
{
    if (!check_domain_entry(domain, error))
        return FALSE;
    return ledger_update(ledger_dir, host, FALSE, NULL, edit_record, (gpointer)domain, now,
                         deadline_us, error);
}

gboolean ic_ledger_record_domain(const char *ledger_dir, const char *host,
                                 const IcLedgerDomain *domain, gint64 now, GError **error)
{
    return ic_ledger_record_domain_until(ledger_dir, host, domain, now, 0, error);
}

static gboolean edit_drop(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    gint index = find_domain(host, data);
    if (index < 0)
        return TRUE;
    const IcLedgerDomain *old = g_ptr_array_index(host->domains, index);
    remember_release(host, old, now);
    g_ptr_array_remove_index(host->domains, (guint)index);
    return TRUE;
}

gboolean ic_ledger_drop_domain(const char *ledger_dir, const char *host, const char *uuid,
                               gint64 now, GError **error)
{
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    return ledger_update(ledger_dir, host, FALSE, NULL, edit_drop, lower, now, 0, error);
}

static gboolean edit_replace(IcLedgerHost *host, gpointer data, gint64 now, GError **error)
{
    GPtrArray *domains = data;
    g_autoptr(GPtrArray) fresh =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    for (guint i = 0; i < domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(domains, i);
        IcLedgerDomain *copy = domain_copy(domain);
        gint index = find_domain(host, domain->uuid);
        if (index >= 0) {
            const IcLedgerDomain *old = g_ptr_array_index(host->domains, index);
            if (old->started > 0)
                copy->started = old->started;
        }
        g_ptr_array_add(fresh, copy);
    }
    /* Domains that are gone were released while nobody was listening. */
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *old = g_ptr_array_index(host->domains, i);
        gboolean kept = FALSE;
        for (guint j = 0; j < fresh->len && !kept; j++)
            kept = strcmp(((IcLedgerDomain *)fresh->pdata[j])->uuid, old->uuid) == 0;
        if (!kept)
            remember_release(host, old, now);
    }
    g_ptr_array_sort(fresh, compare_domains);
    g_ptr_array_unref(host->domains);
    host->domains = g_steal_pointer(&fresh);
    return TRUE;
}

gboolean ic_ledger_host_snapshot(const char *ledger_dir, const char *host, GBytes **ret_snapshot,
                                 GError **error)
{
    if (!check_host_name(host, error))
        return FALSE;
    g_autofree char *file_name = g_strconcat(host, LEDGER_SUFFIX, NULL);
    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno != ENOENT)
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) read_error = NULL;
    if (dirfd >= 0 &&
        !ic_file_read_at(dirfd, file_name, IC_LEDGER_MAX_BYTES, &data, &len, &read_error) &&
        !g_error_matches(read_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
        g_propagate_prefixed_error(error, g_steal_pointer(&read_error), "in '%s': ", ledger_dir);
        return FALSE;
    }
    *ret_snapshot = data ? g_bytes_new_take(data, len) : g_bytes_new(NULL, 0);
    return TRUE;
}

gboolean ic_ledger_replace_host_if_unchanged(const char *ledger_dir, const char *host,
                                             GPtrArray *domains, gint64 now, GBytes *expect,
                                             GError **error)
{
    if (domains->len > IC_LEDGER_MAX_DOMAINS) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "more than %d domains", IC_LEDGER_MAX_DOMAINS);
        return FALSE;
    }
    for (guint i = 0; i < domains->len; i++) {
        if (!check_domain_entry(g_ptr_array_index(domains, i), error))
            return FALSE;
    }
    /* The repair: a damaged file is replaced rather than kept. */
    return ledger_update(ledger_dir, host, TRUE, expect, edit_replace, domains, now, 0, error);
}

gboolean ic_ledger_replace_host(const char *ledger_dir, const char *host, GPtrArray *domains,
                                gint64 now, GError **error)
{
    return ic_ledger_replace_host_if_unchanged(ledger_dir, host, domains, now, NULL, error);
}

/* ---- reading every host ---- */

static void add_error(IcLedger *ledger, const char *name, const GError *error)
{
    g_ptr_array_add(ledger->errors, g_strdup_printf("ledger file '%s/%s': %s", ledger->ledger_dir,
                                                    name, error->message));
}

/* ---- the change cache ---- */

/* What a file looked like when it was parsed: a rewrite is a new file renamed
 * in, so its inode and ctime change even when size and mtime repeat. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} FileKey;

typedef struct {
    FileKey key;
    IcLedgerHost *host;
} CachedHost;

struct _IcLedgerCache {
    GHashTable *files; /* file name -> CachedHost* */
    guint64 bytes_read;
    guint files_read;
};

static void cached_host_free(CachedHost *cached)
{
    ic_ledger_host_free(cached->host);
    g_free(cached);
}

IcLedgerCache *ic_ledger_cache_new(void)
{
    IcLedgerCache *cache = g_new0(IcLedgerCache, 1);
    cache->files =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)cached_host_free);
    return cache;
}

void ic_ledger_cache_free(IcLedgerCache *cache)
{
    if (cache == NULL)
        return;
    g_hash_table_unref(cache->files);
    g_free(cache);
}

void ic_ledger_cache_last_read(const IcLedgerCache *cache, guint *ret_files, guint64 *ret_bytes)
{
    *ret_files = cache->files_read;
    *ret_bytes = cache->bytes_read;
}

static FileKey file_key(const struct stat *st)
{
    return (FileKey){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

static gboolean same_key(const FileKey *a, const FileKey *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static IcLedgerHost *host_copy(const IcLedgerHost *src)
{
    IcLedgerHost *host = host_new(src->host);
    host->refreshed = src->refreshed;
    host->machine_id = g_strdup(src->machine_id);
    for (guint i = 0; i < src->domains->len; i++) {
        const IcLedgerDomain *d = g_ptr_array_index(src->domains, i);
        IcLedgerDomain *copy = ic_ledger_domain_new(d->uuid, d->name);
        for (guint j = 0; j < d->base_files->len; j++)
            g_ptr_array_add(copy->base_files, g_strdup(g_ptr_array_index(d->base_files, j)));
        for (guint j = 0; j < d->image_ids->len; j++)
            g_ptr_array_add(copy->image_ids, g_strdup(g_ptr_array_index(d->image_ids, j)));
        copy->started = d->started;
        copy->unknown = g_strdup(d->unknown);
        g_ptr_array_add(host->domains, copy);
    }
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, src->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value))
        g_hash_table_insert(host->last_used, g_strdup(key), g_memdup2(value, sizeof(gint64)));
    return host;
}

static IcLedgerHost *read_host_file(IcLedger *ledger, int dirfd, const char *name);

/* A host file through @cache: parsed again only when its identity, size or
 * times changed since the last read (the stat comes first, so a file replaced
 * while it is read is read again next time). Damaged files are never cached. */
static IcLedgerHost *read_host_file_cached(IcLedgerCache *cache, IcLedger *ledger, int dirfd,
                                           const char *name)
{
    struct stat st;
    if (cache == NULL || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return read_host_file(ledger, dirfd, name);
    FileKey key = file_key(&st);
    CachedHost *known = g_hash_table_lookup(cache->files, name);
    if (known != NULL && same_key(&known->key, &key))
        return host_copy(known->host);

    IcLedgerHost *host = read_host_file(ledger, dirfd, name);
    cache->files_read++;
    cache->bytes_read += (guint64)st.st_size;
    if (host == NULL) {
        g_hash_table_remove(cache->files, name);
        return NULL;
    }
    CachedHost *fresh = g_new0(CachedHost, 1);
    fresh->key = key;
    fresh->host = host_copy(host);
    g_hash_table_replace(cache->files, g_strdup(name), fresh);
    return host;
}

static IcLedgerHost *read_host_file(IcLedger *ledger, int dirfd, const char *name)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *host_name = g_strndup(name, strlen(name) - strlen(LEDGER_SUFFIX));
    if (!ic_ledger_host_name_is_valid(host_name)) {
        g_set_error(&error, IC_ERROR, IC_ERROR_FORMAT, "'%s' is not a valid host name", host_name);
        add_error(ledger, name, error);
        return NULL;
    }
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(IcLedgerHost) host = NULL;
    if (!ic_file_read_at(dirfd, name, IC_LEDGER_MAX_BYTES, &data, &len, &error) ||
        !ic_ledger_host_parse(data, len, &host, &error)) {
        add_error(ledger, name, error);
        return NULL;
    }
    if (strcmp(host->host, host_name) != 0) {
        g_set_error(&error, IC_ERROR, IC_ERROR_FORMAT, "the file names host '%s'", host->host);
        add_error(ledger, name, error);
        return NULL;
    }
    return g_steal_pointer(&host);
}

/* Drops the cached files that are no longer listed. */
static void forget_gone_files(IcLedgerCache *cache, GPtrArray *names)
{
    g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < names->len; i++)
        g_hash_table_add(listed, names->pdata[i]);
    GHashTableIter iter;
    gpointer name;
    g_hash_table_iter_init(&iter, cache->files);
    while (g_hash_table_iter_next(&iter, &name, NULL)) {
        if (!g_hash_table_contains(listed, name))
            g_hash_table_iter_remove(&iter);
    }
}

static gint compare_hosts(gconstpointer a, gconstpointer b)
{
    const IcLedgerHost *ha = *(IcLedgerHost *const *)a;
    const IcLedgerHost *hb = *(IcLedgerHost *const *)b;
    return strcmp(ha->host, hb->host);
}

static gboolean list_host_files(int dirfd, const char *ledger_dir, GPtrArray *names, GError **error)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ic_error_set_errno(error, errno, "listing the ledger directory", ledger_dir);
    g_autoptr(DIR) dir = ic_dir_fdopen(fd, "the ledger directory", ledger_dir, error);
    if (dir == NULL)
        return FALSE;
    for (;;) {
        struct dirent *entry;
        if (!ic_dir_read(dir, "the ledger directory", ledger_dir, &entry, error))
            return FALSE;
        if (entry == NULL)
            break;
        /* Every *.ledger, hidden or odd names included: one that is not a host's
         * file is reported rather than skipped, since it might hold users. */
        if (g_str_has_suffix(entry->d_name, LEDGER_SUFFIX))
            g_ptr_array_add(names, g_strdup(entry->d_name));
    }
    g_ptr_array_sort(names, compare_strings);
    return TRUE;
}

gboolean ic_ledger_read_all(const char *ledger_dir, gint64 now, gint64 stale_seconds,
                            IcLedger **ret_ledger, GError **error)
{
    return ic_ledger_read_all_cached(NULL, ledger_dir, now, stale_seconds, ret_ledger, error);
}

gboolean ic_ledger_read_all_cached(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                                   gint64 stale_seconds, IcLedger **ret_ledger, GError **error)
{
    if (cache != NULL) {
        cache->files_read = 0;
        cache->bytes_read = 0;
    }
    g_autoptr(IcLedger) ledger = g_new0(IcLedger, 1);
    ledger->ledger_dir = g_strdup(ledger_dir);
    ledger->hosts = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_host_free);
    ledger->errors = g_ptr_array_new_with_free_func(g_free);
    ledger->read_at = now;

    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT) {
            /* No host ever wrote: nobody recorded a user. */
            *ret_ledger = g_steal_pointer(&ledger);
            return TRUE;
        }
        return ic_error_set_errno(error, errno, "opening the ledger directory", ledger_dir);
    }

    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    if (!list_host_files(dirfd, ledger_dir, names, error))
        return FALSE;
    if (cache != NULL)
        forget_gone_files(cache, names);
    for (guint i = 0; i < names->len; i++) {
        IcLedgerHost *host = read_host_file_cached(cache, ledger, dirfd, names->pdata[i]);
        if (host == NULL)
            continue;
        host->stale = stale_seconds > 0 && now - host->refreshed > stale_seconds;
        g_ptr_array_add(ledger->hosts, host);
    }
    g_ptr_array_sort(ledger->hosts, compare_hosts);
    *ret_ledger = g_steal_pointer(&ledger);
    return TRUE;
}

char *ic_ledger_resolve_entry(const char *entry, const char *base_dir)
{
    if (!g_path_is_absolute(entry))
        return g_build_filename(base_dir, entry, NULL);
    /* Format 1: "<somebody's mount>/<base_dir_name>/<name>". */
    g_autofree char *canon = g_canonicalize_filename(entry, "/");
    g_autofree char *parent = g_path_get_dirname(canon);
    g_autofree char *parent_name = g_path_get_basename(parent);
    g_autofree char *base_name = g_path_get_basename(base_dir);
    if (strcmp(parent_name, base_name) != 0)
        return NULL;
    g_autofree char *name = g_path_get_basename(canon);
    return g_build_filename(base_dir, name, NULL);
}

static void add_entry_user(IcUsage *usage, const char *base_dir, const IcLedgerHost *host,
                           const IcLedgerDomain *domain, const char *entry, gboolean local)
{
    g_autofree char *path = ic_ledger_resolve_entry(entry, base_dir);
    if (path != NULL) {
        ic_usage_add_path_user(usage, path, domain->uuid, domain->name, host->host, local,
                               IC_WITNESS_LEDGER);
        return;
    }
    /* An old absolute path outside any base dir: it could name any base file
     * (a symlinked base dir, a mount we do not know), so nothing is removed.
     * The path itself still counts, for a file it reaches here. */
    ic_usage_add_path_user(usage, entry, domain->uuid, domain->name, host->host, local,
                           IC_WITNESS_LEDGER);
    g_autofree char *note = g_strdup_printf(
        "ledger of host '%s': domain '%s' names '%s', which is not in a directory named like "
        "the base dir: its base file is unknown, so nothing is removed (rewrite the entry with "
        "'imagecachectl reconcile' on that host)",
        host->host, domain->name, entry);
    ic_usage_add_note(usage, IC_NOTE_LEDGER_DAMAGED, note);
}

void ic_ledger_add_usage(const IcLedger *ledger, const char *local_host, const char *base_dir,
                         IcUsage *usage)
{
    for (guint i = 0; i < ledger->errors->len; i++)
        ic_usage_add_note(usage, IC_NOTE_LEDGER_DAMAGED, g_ptr_array_index(ledger->errors, i));
    g_autofree char *machine_id = ic_ledger_machine_id();

    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        gboolean local = g_strcmp0(host->host, local_host) == 0;
        if (host->stale) {
            /* Losing a VM's base image is worse than keeping a file longer. */
            g_autofree char *note = g_strdup_printf(
                "ledger of host '%s' not refreshed for %" G_GINT64_FORMAT " s (still counted)",
                host->host, MAX(0, ledger->read_at - host->refreshed));
            ic_usage_add_note(usage, IC_NOTE_LEDGER_STALE, note);
        }
        if (local && host->machine_id != NULL && machine_id != NULL &&
            strcmp(host->machine_id, machine_id) != 0) {
            /* Two machines share this host name: each rewrite drops the other's domains. */
            g_autofree char *note = g_strdup_printf(
                "ledger of host '%s' was written by machine '%s', this is machine '%s': two "
                "hosts use one host name and overwrite each other's domains, so nothing is "
                "removed (give each host its own 'host' in imagecache.conf)",
                host->host, host->machine_id, machine_id);
            ic_usage_add_note(usage, IC_NOTE_HOST_NAME_COLLISION, note);
        }
        for (guint j = 0; j < host->domains->len; j++) {
            const IcLedgerDomain *domain = g_ptr_array_index(host->domains, j);
            if (domain->unknown != NULL) {
                g_autofree char *note = g_strdup_printf(
                    "ledger of host '%s': domain '%s' (%s) has a disk whose base files are not "
                    "known (%s): usage unknown, nothing is removed until it is released or "
                    "recorded in full",
                    host->host, domain->name, domain->uuid, domain->unknown);
                ic_usage_add_note(usage, IC_NOTE_DOMAIN_USAGE_UNKNOWN, note);
            }
            for (guint k = 0; k < domain->base_files->len; k++)
                add_entry_user(usage, base_dir, host, domain,
                               g_ptr_array_index(domain->base_files, k), local);
            for (guint k = 0; k < domain->image_ids->len; k++)
                ic_usage_add_image_user(usage, g_ptr_array_index(domain->image_ids, k),
                                        domain->uuid, domain->name, host->host, local,
                                        IC_WITNESS_LEDGER);
        }
        GHashTableIter iter;
        gpointer path, when;
        g_hash_table_iter_init(&iter, host->last_used);
        while (g_hash_table_iter_next(&iter, &path, &when)) {
            /* Only an age: an entry that cannot be resolved is left out. */
            g_autofree char *resolved = ic_ledger_resolve_entry(path, base_dir);
            if (resolved != NULL)
                ic_usage_add_last_used(usage, resolved, *(const gint64 *)when);
        }
    }
}

/* ---- what a domain uses ---- */

/* Adds the base file @file resolves to, named within @base_dir, when the
 * kernel resolves it into @base_dir (whatever path led there). */
static void add_if_base(GPtrArray *files, const char *base_dir, int base_fd, const IcDiskFile *file)
{
    g_autofree char *name = base_fd >= 0 ? ic_disk_file_base_name_at(file, base_fd, base_dir)
                                         : ic_disk_file_base_name(file, base_dir);
    if (name == NULL)
        return;
    g_autofree char *path = g_build_filename(base_dir, name, NULL);
    if (!g_ptr_array_find_with_equal_func(files, path, g_str_equal, NULL))
        g_ptr_array_add(files, g_steal_pointer(&path));
}

/* A path libvirt wrote (<backingStore>): resolved by the kernel like a chain member. */
static void add_path_if_base(GPtrArray *files, const char *base_dir, int base_fd, const char *path)
{
    g_autoptr(IcDiskFile) file = ic_disk_file_new_for_path(path);
    add_if_base(files, base_dir, base_fd, file);
}

IcLedgerDomain *ic_ledger_domain_collect(const IcDomain *domain, const char *base_dir, gint64 now,
                                         GPtrArray **ret_problems)
{
    g_autofree char *base = g_canonicalize_filename(base_dir, "/");
    g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_new(domain->uuid, domain->name);
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    entry->started = now;
    ic_autofd base_fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);

    /* A domain with more disks than we read is recorded with what was read,
     * and the rest is said loudly (the hook logs it, strict_prepare refuses). */
    if (domain->disks_over_limit > 0)
        g_ptr_array_add(
            problems, g_strdup_printf("domain '%s' has %u disks past the limit of %d that were "
                                      "not read: their base files are not recorded",
                                      domain->name, domain->disks_over_limit, IC_DOMXML_MAX_DISKS));

    for (guint i = 0; i < domain->disks->len; i++) {
        const IcDomainDisk *disk = g_ptr_array_index(domain->disks, i);
        const char *unknown = ic_domain_disk_unknown_reason(disk);
        if (unknown != NULL) {
            g_ptr_array_add(problems, g_strdup_printf("disk '%s' of domain '%s': %s",
                                                      disk->target ? disk->target : "?",
                                                      domain->name, unknown));
            continue;
        }
        if (!ic_domain_disk_is_file_disk(disk))
            continue;
        /* libvirt's own view of the chain (filled from started on): a cross-check
         * that can only add users, never hide one the headers name. */
        for (guint j = 0; j < disk->backing_store->len; j++)
            add_path_if_base(entry->base_files, base, base_fd,
                             g_ptr_array_index(disk->backing_store, j));

        /* The disk's declared format (<driver type>) is how QEMU opens it. */
        g_autoptr(GPtrArray) files = NULL;
        g_autoptr(GError) error = NULL;
        if (!ic_probe_disk_files(AT_FDCWD, disk->source_file, disk->source_file, disk->format, NULL,
                                 &files, &error)) {
            add_path_if_base(entry->base_files, base, base_fd, disk->source_file);
            g_ptr_array_add(problems,
                            g_strdup_printf("disk '%s' of domain '%s': %s", disk->source_file,
                                            domain->name, error->message));
            continue;
        }
        for (guint j = 0; j < files->len; j++)
            add_if_base(entry->base_files, base, base_fd, g_ptr_array_index(files, j));
    }
    g_ptr_array_sort(entry->base_files, compare_strings);

    for (guint i = 0; i < domain->image_ids->len; i++) {
        const char *id = g_ptr_array_index(domain->image_ids, i);
        if (!g_ptr_array_find_with_equal_func(entry->image_ids, id, g_str_equal, NULL))
            g_ptr_array_add(entry->image_ids, g_strdup(id));
    }
    g_ptr_array_sort(entry->image_ids, compare_strings);

    /* Whatever could not be followed leaves the domain's usage unknown: a
     * partial list would let other hosts' passes remove what it does use. */
    if (problems->len > 0)
        mark_unknown(entry, g_ptr_array_index(problems, 0));

    *ret_problems = problems->len > 0 ? g_steal_pointer(&problems) : NULL;
    return g_steal_pointer(&entry);
}

gboolean ic_ledger_domain_from_xml_domain(const IcDomain *domain, const char *base_dir, gint64 now,
                                          IcLedgerDomain **ret_entry, GError **error)
{
    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_collect(domain, base_dir, now, &problems);
    if (problems != NULL) {
        g_ptr_array_add(problems, NULL);
        g_autofree char *all = g_strjoinv("; ", (char **)problems->pdata);
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "%s", all);
        return FALSE;
    }
    *ret_entry = g_steal_pointer(&entry);
    return TRUE;
}

/* ---- one removing pass per shared cache ---- */

/* "host=<host>\ntime=<epoch seconds>\n"; FALSE when the file says anything else. */
static gboolean parse_last_pass(const char *text, char **ret_host, gint64 *ret_time)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    if (g_strv_length(lines) < 2 || !g_str_has_prefix(lines[0], "host=") ||
        !g_str_has_prefix(lines[1], "time="))
        return FALSE;
    guint64 t = 0;
    if (!g_ascii_string_to_unsigned(lines[1] + 5, 10, 0, G_MAXINT64, &t, NULL))
        return FALSE;
    *ret_host = g_strdup(lines[0] + 5);
    *ret_time = (gint64)t;
    return TRUE;
}

gboolean ic_ledger_claim_pass(const char *ledger_dir, const char *host, gint64 now, gint64 interval,
                              char **ret_note)
{
    *ret_note = NULL;
    if (interval <= 0)
        return TRUE;
    ic_autofd dirfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return TRUE; /* the pass itself reports an unreadable ledger dir */

    g_autofree char *text = NULL;
    g_autofree char *last_host = NULL;
    gint64 last = 0;
    if (ic_file_read_at(dirfd, LAST_PASS_NAME, 4096, &text, NULL, NULL) &&
        parse_last_pass(text, &last_host, &last) && g_strcmp0(last_host, host) != 0 &&
        last <= now && now - last < interval) {
        *ret_note = g_strdup_printf("host '%s' ran the removal pass %" G_GINT64_FORMAT
                                    " s ago (shared_pass_interval_seconds = %" G_GINT64_FORMAT
                                    "): this pass only reports",
                                    last_host, now - last, interval);
        return FALSE;
    }
    /* Ours now. Two hosts claiming at once both remove: the lock keeps that
     * safe; the stamp only spares the shared filesystem the repeated work. */
    g_autofree char *stamp = g_strdup_printf("host=%s\ntime=%" G_GINT64_FORMAT "\n", host, now);
    g_autoptr(GError) error = NULL;
    if (!ic_file_write_atomic_at(dirfd, LAST_PASS_NAME, stamp, strlen(stamp), 0644, &error))
        g_debug("not writing '%s/%s': %s", ledger_dir, LAST_PASS_NAME, error->message);
    return TRUE;
}
