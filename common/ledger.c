/* ledger.c — the usage ledger's host file format, pure: the types, serialise and parse.
 * (The files themselves, locks and reads, are ledger-store.c's.)
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
 * parent directory's name, see ic_ledger_resolve_entry).
 *
 * Format 3 adds the optional machine_id and unknown keys; it reads formats 1
 * and 2 as before. Older versions refuse a format 3 file as damaged, which
 * keeps every base file (safe, and said) until they are upgraded. */
#include "ledger.h"

#include "error.h"
#include "fileutil.h"
#include "sha256.h"

#include <string.h>

#define LEDGER_FORMAT       3
#define LEDGER_FORMAT_NAMES 2 /* base files by name, without machine_id and unknown */
#define LEDGER_FORMAT_PATHS 1 /* base files by absolute path */
#define MACHINE_ID_MAX_LEN  64
#define NAME_MAX_LEN        1024
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

void ic_ledger_domain_mark_unknown(IcLedgerDomain *domain, const char *why)
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
    ic_ledger_domain_mark_unknown(domain, why);
    return FALSE;
}

IcLedgerDomain *ic_ledger_domain_writable_copy(const IcLedgerDomain *src)
{
    g_autofree char *name = g_utf8_make_valid(src->name, -1);
    IcLedgerDomain *domain = ic_ledger_domain_new(src->uuid, name);
    if (src->unknown != NULL)
        ic_ledger_domain_mark_unknown(domain, src->unknown);
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

IcLedgerHost *ic_ledger_host_new(const char *name)
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
    if (len == 0 || len > IC_LEDGER_HOST_MAX_LEN || host[0] == '.')
        return FALSE;
    /* Host names become file names: letters, digits, '.', '-', '_' and nothing else. */
    for (const char *p = host; *p != '\0'; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            return FALSE;
    }
    return TRUE;
}

gint ic_ledger_domain_compare(gconstpointer a, gconstpointer b)
{
    const IcLedgerDomain *da = *(IcLedgerDomain *const *)a;
    const IcLedgerDomain *db = *(IcLedgerDomain *const *)b;
    return strcmp(da->uuid, db->uuid);
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static IcLedgerDomain *decode_text(const IcLedgerDomain *domain);

IcLedgerHost *ic_ledger_host_copy(const IcLedgerHost *src)
{
    IcLedgerHost *host = ic_ledger_host_new(src->host);
    host->refreshed = src->refreshed;
    host->machine_id = g_strdup(src->machine_id);
    for (guint i = 0; i < src->domains->len; i++) {
        const IcLedgerDomain *d = g_ptr_array_index(src->domains, i);
        if (d->text != NULL) {
            g_ptr_array_add(host->domains, decode_text(d));
            continue;
        }
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

gint ic_ledger_host_find_domain(const IcLedgerHost *host, const char *uuid, guint *ret_place)
{
    IcLedgerDomain *const *domains = (IcLedgerDomain *const *)host->domains->pdata;
    guint low = 0, high = host->domains->len;
    gint found = -1;
    while (low < high && found < 0) {
        guint mid = low + (high - low) / 2;
        int cmp = strcmp(domains[mid]->uuid, uuid);
        if (cmp == 0) {
            found = (gint)mid;
            low = mid;
        } else if (cmp < 0) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    if (ret_place != NULL)
        *ret_place = low;
    return found;
}

void ic_ledger_host_put_domain(IcLedgerHost *host, IcLedgerDomain *domain)
{
    guint place = 0;
    gint index = ic_ledger_host_find_domain(host, domain->uuid, &place);
    if (index >= 0) {
        ic_ledger_domain_free(host->domains->pdata[index]);
        host->domains->pdata[index] = domain;
    } else {
        g_ptr_array_insert(host->domains, (gint)place, domain);
    }
}

/* ---- serialising ----
 *
 * The text is written directly, byte for byte what GKeyFile's setters and
 * g_key_file_to_data() (GLib 2.74) wrote before: GKeyFile's setters search their
 * keys linearly and every value was copied three times, which made writing a
 * busy host's file the hook's largest cost. tests/test-ledger-codec.c keeps the
 * GKeyFile serialiser and checks the two agree on generated hosts. */

#define LEDGER_COMMENT                                                                             \
    "# imagecache usage ledger: written by imagecache-hook under its .lock, do not edit\n"

/* GKeyFile's value escaping (g_key_file_parse_string_as_value): '\n', '\r' and
 * '\\' always; a space or tab only while no other character has been written
 * since the value's (or, in a list, the item's) start, since the reader strips
 * leading white space; the list separator ';' inside a list item. */
static void append_escaped(GString *out, const char *value, gboolean in_list)
{
    gboolean leading = TRUE;
    const char *run = value; /* plain bytes not yet appended, copied at once */
    for (const char *p = value; *p != '\0'; p++) {
        const char *escape = NULL;
        switch (*p) {
        case ' ':
            escape = leading ? "\\s" : NULL;
            break;
        case '\t':
            escape = leading ? "\\t" : NULL;
            break;
        case '\n':
            escape = "\\n";
            break;
        case '\r':
            escape = "\\r";
            break;
        case '\\':
            escape = "\\\\";
            break;
        case ';':
            if (in_list)
                escape = "\\;";
            else
                leading = FALSE;
            break;
        default:
            leading = FALSE;
            break;
        }
        if (escape == NULL)
            continue;
        g_string_append_len(out, run, p - run);
        g_string_append_len(out, escape, 2);
        run = p + 1;
        if (*p == '\\')
            leading = FALSE;
        else if (*p == ';')
            leading = TRUE;
    }
    g_string_append_len(out, run, (gssize)strlen(run));
}

static void append_string(GString *out, const char *key, const char *value)
{
    g_string_append(out, key);
    g_string_append_c(out, '=');
    append_escaped(out, value, FALSE);
    g_string_append_c(out, '\n');
}

static void append_number(GString *out, gint64 value)
{
    char buf[IC_INT64_TEXT_SIZE];
    gsize len = 0;
    const char *text = ic_int64_text(value, buf, &len);
    g_string_append_len(out, text, (gssize)len);
}

static void append_int(GString *out, const char *key, gint64 value)
{
    g_string_append(out, key);
    g_string_append_c(out, '=');
    append_number(out, value);
    g_string_append_c(out, '\n');
}

/* Each item followed by the separator, as g_key_file_set_string_list() does. */
static void append_list(GString *out, const char *key, const GPtrArray *list)
{
    g_string_append(out, key);
    g_string_append_c(out, '=');
    for (guint i = 0; i < list->len; i++) {
        append_escaped(out, g_ptr_array_index(list, i), TRUE);
        g_string_append_c(out, ';');
    }
    g_string_append_c(out, '\n');
}

static char *end_trailer(guint domains, const char *body, gsize body_len)
{
    /* The digest is most of the hook's CPU at prepare (the old file and the new one):
     * the CPU's SHA extensions where there are some, see sha256.c. */
    g_autofree char *digest = ic_sha256_hex(body, body_len);
    return g_strdup_printf("[end]\ndomains=%u\nsha256=%s\n", domains, digest);
}

/* @run: the domains sharing one uuid (normally one). GKeyFile merged them into
 * one group, each later value replacing an earlier one in place; such a file
 * is refused on reading (its counts disagree), but written as before. */
static void append_domain(GString *out, IcLedgerDomain *const *run, guint n)
{
    /* A domain kept as its text (ic_ledger_host_parse_for_update) is written back as it is:
     * the parser took it only if it is exactly what the lines below write for it. */
    if (n == 1 && run[0]->text != NULL) {
        g_string_append_len(out, run[0]->text, (gssize)run[0]->text_len);
        return;
    }
    g_autoptr(GPtrArray) decoded = NULL;
    for (guint i = 0; i < n && decoded == NULL; i++) {
        if (run[i]->text != NULL)
            decoded = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    }
    if (decoded != NULL) {
        for (guint i = 0; i < n; i++)
            g_ptr_array_add(decoded, run[i]->text != NULL ? decode_text(run[i]) : NULL);
    }
    const IcLedgerDomain *last = run[n - 1];
    if (decoded != NULL && decoded->pdata[n - 1] != NULL)
        last = decoded->pdata[n - 1];
    const char *unknown = NULL;
    for (guint i = 0; i < n; i++) {
        const IcLedgerDomain *d = run[i];
        if (decoded != NULL && decoded->pdata[i] != NULL)
            d = decoded->pdata[i];
        if (d->unknown != NULL)
            unknown = d->unknown;
    }
    g_string_append(out, "\n[" DOMAIN_GROUP_PREFIX);
    g_string_append(out, last->uuid);
    g_string_append(out, "]\n");
    append_string(out, "name", last->name);
    append_int(out, "started", last->started);
    append_list(out, "base_files", last->base_files);
    append_list(out, "image_ids", last->image_ids);
    if (unknown != NULL)
        append_string(out, "unknown", unknown);
}

static void append_last_used(GString *out, GHashTable *last_used)
{
    g_autoptr(GPtrArray) paths = g_ptr_array_sized_new(g_hash_table_size(last_used));
    GHashTableIter iter;
    gpointer key;
    g_hash_table_iter_init(&iter, last_used);
    while (g_hash_table_iter_next(&iter, &key, NULL))
        g_ptr_array_add(paths, key);
    g_ptr_array_sort(paths, compare_strings);
    g_string_append(out, "\n[last_used]\n");
    append_list(out, "paths", paths);
    g_string_append(out, "times=");
    for (guint i = 0; i < paths->len; i++) {
        const gint64 *time = g_hash_table_lookup(last_used, paths->pdata[i]);
        append_number(out, *time);
        g_string_append_c(out, ';');
    }
    g_string_append_c(out, '\n');
}

/* Whether @domains are sorted by uuid and distinct: as parsed and edited, they are. */
static gboolean is_sorted(const GPtrArray *domains)
{
    for (guint i = 1; i < domains->len; i++) {
        if (ic_ledger_domain_compare(&domains->pdata[i - 1], &domains->pdata[i]) >= 0)
            return FALSE;
    }
    return TRUE;
}

/* About the text's length, so that the buffer grows seldom: a domain's text where it is
 * kept, 256 bytes for any other. */
static gsize size_hint(const IcLedgerHost *host)
{
    gsize size = 512 + 64 * (host->last_used != NULL ? g_hash_table_size(host->last_used) : 0);
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *domain = host->domains->pdata[i];
        size += domain->text != NULL ? domain->text_len : 256;
    }
    return MIN(size, (gsize)IC_LEDGER_MAX_BYTES);
}

char *ic_ledger_host_serialize(const IcLedgerHost *host, gsize *ret_len)
{
    /* Sorted already when parsed and edited (checked in O(n)); else a borrowed view,
     * sorted: g_ptr_array_copy() would inherit the free function. */
    g_autoptr(GPtrArray) view = NULL;
    const GPtrArray *domains = host->domains;
    if (!is_sorted(domains)) {
        view = g_ptr_array_sized_new(host->domains->len);
        for (guint i = 0; i < host->domains->len; i++)
            g_ptr_array_add(view, host->domains->pdata[i]);
        g_ptr_array_sort(view, ic_ledger_domain_compare);
        domains = view;
    }

    GString *out = g_string_sized_new(size_hint(host));
    g_string_append(out, LEDGER_COMMENT "[ledger]\n");
    append_int(out, "format", LEDGER_FORMAT);
    append_string(out, "host", host->host);
    if (host->machine_id != NULL)
        append_string(out, "machine_id", host->machine_id);
    append_int(out, "refreshed", host->refreshed);
    append_int(out, "domains", domains->len);

    IcLedgerDomain *const *sorted = (IcLedgerDomain *const *)domains->pdata;
    for (guint i = 0, n = 1; i < domains->len; i += n) {
        for (n = 1; i + n < domains->len && strcmp(sorted[i]->uuid, sorted[i + n]->uuid) == 0; n++)
            ;
        append_domain(out, sorted + i, n);
    }
    if (host->last_used != NULL && g_hash_table_size(host->last_used) > 0)
        append_last_used(out, host->last_used);

    /* Groups are separated by a blank line, the [end] group too. */
    g_string_append_c(out, '\n');
    g_autofree char *trailer = end_trailer(domains->len, out->str, out->len);
    g_string_append(out, trailer);
    if (ret_len != NULL)
        *ret_len = out->len;
    return g_string_free(out, FALSE);
}

/* ---- parsing ---- */

gboolean ic_ledger_machine_id_is_valid(const char *id)
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
    if (n > IC_LEDGER_MAX_LIST_ENTRIES)
        return format_error(error, "more than %d entries in '%s' of [%s]",
                            IC_LEDGER_MAX_LIST_ENTRIES, key, group);
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

/* The last "\n[end]\n" in @data, or NULL. Searched from the end, where a whole
 * file has it: a search from the start read all of every file (4 % of the
 * instructions of a hook prepare). */
static const char *find_last_end_line(const char *data, gsize len)
{
    static const char line[] = "\n[end]\n";
    const gsize n = sizeof(line) - 1;
    for (gsize i = len >= n ? len - n + 1 : 0; i-- > 0;) {
        if (data[i] == '\n' && memcmp(data + i, line, n) == 0)
            return data + i;
    }
    return NULL;
}

/* Splits @data at its last "[end]" line and checks the trailer byte for byte. */
static gboolean check_trailer(const char *data, gsize len, guint64 *ret_domains,
                              gsize *ret_body_len, GError **error)
{
    const char *found = find_last_end_line(data, len);
    if (found == NULL)
        return format_error(error, "no [end] group: the file is truncated");
    const char *end = found + 1;

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
    *ret_body_len = body_len;
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

    g_autoptr(IcLedgerHost) host = ic_ledger_host_new(name);
    host->refreshed = refreshed;
    if (g_key_file_has_key(kf, "ledger", "machine_id", NULL)) {
        host->machine_id = g_key_file_get_string(kf, "ledger", "machine_id", NULL);
        if (format < LEDGER_FORMAT || !ic_ledger_machine_id_is_valid(host->machine_id))
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
    g_ptr_array_sort(host->domains, ic_ledger_domain_compare);
    *ret_host = g_steal_pointer(&host);
    return TRUE;
}

/* ---- parsing: the canonical fast path ----
 *
 * Every file this program writes is canonical: byte for byte what
 * ic_ledger_host_serialize writes for the host it holds. Such a file is read
 * here without GKeyFile, whose load and lookups were half of a hook prepare.
 * The reader never refuses: it either accepts a canonical file that the
 * GKeyFile reader below would accept with the same contents, or declines
 * (any other shape, escape, spelling of a number, or a value any check
 * refuses), and the GKeyFile reader decides, with its messages. What it
 * accepts is thus a subset of what GKeyFile accepts: tests/test-ledger-codec.c
 * compares both readers' verdicts and hosts on generated and mutated files. */

typedef struct {
    const char *p;
    const char *end;
} Cursor;

static gboolean take_literal(Cursor *c, const char *literal, gsize len)
{
    if ((gsize)(c->end - c->p) < len || memcmp(c->p, literal, len) != 0)
        return FALSE;
    c->p += len;
    return TRUE;
}
#define TAKE(c, literal) take_literal(c, literal, sizeof(literal) - 1)

static gboolean starts_with(const Cursor *c, const char *prefix)
{
    gsize len = strlen(prefix);
    return (gsize)(c->end - c->p) >= len && memcmp(c->p, prefix, len) == 0;
}

/* The rest of the line, without its '\n'; the cursor moves past the '\n'. */
static gboolean take_line(Cursor *c, const char **ret_line, gsize *ret_len)
{
    const char *nl = memchr(c->p, '\n', (gsize)(c->end - c->p));
    if (nl == NULL)
        return FALSE;
    *ret_line = c->p;
    *ret_len = (gsize)(nl - c->p);
    c->p = nl + 1;
    return TRUE;
}

/* GKeyFile reads a value's leading white space (any g_ascii_isspace) as
 * nothing, '\r' before a '\n' as nothing, and refuses values that are not
 * UTF-8: a canonical body holds no raw control byte but '\n' and '\t'. */
static gboolean body_is_plain(const char *data, gsize len)
{
    /* Without a branch per byte, so the compiler can check 16 or 32 at a time. */
    guchar any = 0, control = 0;
    for (gsize i = 0; i < len; i++) {
        guchar b = (guchar)data[i];
        control |= (guchar)((b < 0x20) & (b != '\n') & (b != '\t'));
        any |= b;
    }
    if (control)
        return FALSE;
    /* ASCII is UTF-8: only a body with other bytes needs the validator, which
     * would read it all again (4 % of a hook prepare's instructions). */
    return (any & 0x80) == 0 || g_utf8_validate_len(data, len, NULL);
}

/* Decodes one value (@in_list: one list item, up to its ';') into @out, if it
 * is exactly what append_escaped writes, with the same leading-space state;
 * @ret_consumed: the raw bytes read, the item's ';' included. */
static gboolean decode_value(const char *raw, gsize len, gboolean in_list, GString *out,
                             gsize *ret_consumed)
{
    gboolean leading = TRUE;
    g_string_truncate(out, 0);
    gsize i = 0;
    while (i < len) {
        /* A run of plain bytes, appended at once: most values hold no escape. Only its
         * first byte can be leading white space: any other byte ends the leading part. */
        gsize run = i;
        if (leading && i < len && (raw[i] == ' ' || raw[i] == '\t'))
            return FALSE;
        for (; i < len && raw[i] != '\\' && !(raw[i] == ';' && in_list); i++)
            ;
        if (i > run)
            leading = FALSE;
        g_string_append_len(out, raw + run, (gssize)(i - run));
        if (i == len)
            break;
        if (raw[i] == ';') {
            *ret_consumed = i + 1;
            return TRUE;
        }
        if (++i == len)
            return FALSE;
        switch (raw[i]) {
        case 's':
        case 't':
            if (!leading)
                return FALSE;
            g_string_append_c(out, raw[i] == 's' ? ' ' : '\t');
            break;
        case 'n':
            g_string_append_c(out, '\n');
            break;
        case 'r':
            g_string_append_c(out, '\r');
            break;
        case '\\':
            g_string_append_c(out, '\\');
            leading = FALSE;
            break;
        case ';':
            if (!in_list)
                return FALSE;
            g_string_append_c(out, ';');
            leading = TRUE;
            break;
        default:
            return FALSE;
        }
        i++;
    }
    /* A list item ends with its ';'. */
    *ret_consumed = len;
    return !in_list;
}

/* "key=<value>\n"; the decoded value in @buf. */
static gboolean take_string(Cursor *c, const char *key_eq, GString *buf)
{
    const char *line = NULL;
    gsize len = 0, used = 0;
    return take_literal(c, key_eq, strlen(key_eq)) && take_line(c, &line, &len) &&
           decode_value(line, len, FALSE, buf, &used);
}

/* A number as the serialiser prints it and get_int reads it. */
static gboolean parse_number(const char *text, gsize len, gint64 max, gint64 *ret)
{
    /* Digits accumulated here, not by g_ascii_string_to_unsigned (strtoull and a copy to
     * terminate the text: 3 % of a hook prepare's instructions outside SHA-256). At most 19
     * digits: below 10^19 < 2^64 the sum cannot wrap, so a 20-digit value (every valid
     * one is above G_MAXINT64) is never read as a small number. */
    guint64 value = 0;
    if (len == 0 || len > 19 || (text[0] == '0' && len > 1))
        return FALSE;
    for (gsize i = 0; i < len; i++) {
        if (!g_ascii_isdigit(text[i]))
            return FALSE;
        value = value * 10 + (guint64)(text[i] - '0');
    }
    if (value > (guint64)max)
        return FALSE;
    *ret = (gint64)value;
    return TRUE;
}

static gboolean take_number(Cursor *c, const char *key_eq, gint64 max, gint64 *ret)
{
    const char *line = NULL;
    gsize len = 0;
    return take_literal(c, key_eq, strlen(key_eq)) && take_line(c, &line, &len) &&
           parse_number(line, len, max, ret);
}

/* "key=<item>;<item>;\n" with get_list's rules (@entries_format as there); @into: NULL
 * to check the items without keeping them (a domain kept as its text). */
static gboolean take_list(Cursor *c, const char *key_eq, gint64 entries_format, GString *buf,
                          GPtrArray *into)
{
    const char *line = NULL;
    gsize len = 0;
    if (!take_literal(c, key_eq, strlen(key_eq)) || !take_line(c, &line, &len))
        return FALSE;
    guint n = 0;
    for (gsize at = 0, used = 0; at < len; at += used, n++) {
        if (!decode_value(line + at, len - at, TRUE, buf, &used) || buf->len == 0 ||
            n >= IC_LEDGER_MAX_LIST_ENTRIES ||
            (entries_format != 0 && !entry_is_valid(buf->str, entries_format)))
            return FALSE;
        if (into != NULL)
            g_ptr_array_add(into, g_strndup(buf->str, buf->len));
    }
    return TRUE;
}

/* What g_uuid_string_is_valid() accepts, in lower case only (as the writer
 * writes a uuid): 8-4-4-4-12 hex digits. */
static gboolean is_lower_uuid(const char *text, gsize len)
{
    if (len != 36)
        return FALSE;
    for (gsize i = 0; i < len; i++) {
        gboolean dash = i == 8 || i == 13 || i == 18 || i == 23;
        char ch = text[i];
        if (dash ? ch != '-' : !(g_ascii_isdigit(ch) || (ch >= 'a' && ch <= 'f')))
            return FALSE;
    }
    return TRUE;
}

#define DOMAIN_GROUP_START "\n[" DOMAIN_GROUP_PREFIX

/* One domain group, the cursor at its "\n[domain " line. @keep_text: every check made,
 * but only the uuid and started decoded, the rest kept as the group's text (see
 * ic_ledger_host_parse_for_update). */
static gboolean take_domain(Cursor *c, const char *previous_uuid, gboolean keep_text, GString *buf,
                            IcLedgerDomain **ret_domain)
{
    const char *start = c->p;
    const char *line = NULL;
    gsize len = 0;
    if (!TAKE(c, DOMAIN_GROUP_START) || !take_line(c, &line, &len) || len == 0 ||
        line[len - 1] != ']')
        return FALSE;
    if (!is_lower_uuid(line, len - 1))
        return FALSE;
    /* Sorted and distinct: GKeyFile merges a repeated group. */
    if (previous_uuid != NULL && memcmp(previous_uuid, line, len - 1) >= 0)
        return FALSE;
    if (!take_string(c, "name=", buf) || buf->len == 0 || buf->len > NAME_MAX_LEN)
        return FALSE;
    g_autoptr(IcLedgerDomain) domain = g_new0(IcLedgerDomain, 1);
    domain->uuid = g_strndup(line, len - 1);
    if (!keep_text) {
        domain->name = g_strndup(buf->str, buf->len);
        domain->base_files = g_ptr_array_new_with_free_func(g_free);
        domain->image_ids = g_ptr_array_new_with_free_func(g_free);
    }
    if (!take_number(c, "started=", G_MAXINT64, &domain->started) ||
        !take_list(c, "base_files=", LEDGER_FORMAT, buf, domain->base_files) ||
        !take_list(c, "image_ids=", 0, buf, domain->image_ids))
        return FALSE;
    if (starts_with(c, "unknown=")) {
        if (!take_string(c, "unknown=", buf) || buf->len == 0)
            return FALSE;
        if (!keep_text)
            domain->unknown = g_strndup(buf->str, buf->len);
    }
    if (keep_text) {
        domain->text = start;
        domain->text_len = (gsize)(c->p - start);
    }
    *ret_domain = g_steal_pointer(&domain);
    return TRUE;
}

/* The domain kept as @domain->text, decoded: the parser checked the text, so this cannot
 * fail. */
static IcLedgerDomain *decode_text(const IcLedgerDomain *domain)
{
    Cursor c = {domain->text, domain->text + domain->text_len};
    g_autoptr(GString) buf = g_string_sized_new(256);
    IcLedgerDomain *decoded = NULL;
    if (!take_domain(&c, NULL, FALSE, buf, &decoded) || c.p != c.end)
        g_error("a domain's text changed after it was parsed: %.*s", (int)domain->text_len,
                domain->text);
    return decoded;
}

static gboolean take_last_used(Cursor *c, GString *buf, IcLedgerHost *host)
{
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) times = g_ptr_array_new_with_free_func(g_free);
    if (!take_list(c, "paths=", LEDGER_FORMAT, buf, paths) ||
        !take_list(c, "times=", 0, buf, times) || paths->len != times->len)
        return FALSE;
    for (guint i = 0; i < paths->len; i++) {
        gint64 t = 0;
        /* Sorted and distinct, as the serialiser writes the table. */
        if ((i > 0 && strcmp(paths->pdata[i - 1], paths->pdata[i]) >= 0) ||
            !parse_number(times->pdata[i], strlen(times->pdata[i]), G_MAXINT64, &t))
            return FALSE;
        gint64 *value = g_new(gint64, 1);
        *value = t;
        g_hash_table_replace(host->last_used, g_strdup(paths->pdata[i]), value);
    }
    return TRUE;
}

/* @body: the file up to its [end] group. FALSE: not canonical, or refused by a
 * check; the GKeyFile reader decides. */
static gboolean parse_canonical(const char *body, gsize body_len, guint64 end_domains,
                                gboolean keep_text, IcLedgerHost **ret_host)
{
    if (!body_is_plain(body, body_len))
        return FALSE;
    Cursor c = {body, body + body_len};
    g_autoptr(GString) buf = g_string_sized_new(256);
    if (!TAKE(&c, LEDGER_COMMENT "[ledger]\nformat=" G_STRINGIFY(LEDGER_FORMAT) "\n") ||
        !take_string(&c, "host=", buf) || !ic_ledger_host_name_is_valid(buf->str))
        return FALSE;
    g_autoptr(IcLedgerHost) host = ic_ledger_host_new(buf->str);
    if (starts_with(&c, "machine_id=")) {
        if (!take_string(&c, "machine_id=", buf) || !ic_ledger_machine_id_is_valid(buf->str))
            return FALSE;
        host->machine_id = g_strndup(buf->str, buf->len);
    }
    gint64 domains = 0;
    if (!take_number(&c, "refreshed=", G_MAXINT64, &host->refreshed) ||
        !take_number(&c, "domains=", IC_LEDGER_MAX_DOMAINS, &domains))
        return FALSE;
    if (domains > 0 && (guint64)domains == end_domains) {
        g_ptr_array_unref(host->domains);
        host->domains = g_ptr_array_new_full((guint)domains, (GDestroyNotify)ic_ledger_domain_free);
    }
    while (starts_with(&c, DOMAIN_GROUP_START)) {
        const IcLedgerDomain *previous =
            host->domains->len > 0 ? host->domains->pdata[host->domains->len - 1] : NULL;
        IcLedgerDomain *domain = NULL;
        if (!take_domain(&c, previous != NULL ? previous->uuid : NULL, keep_text, buf, &domain))
            return FALSE;
        g_ptr_array_add(host->domains, domain);
    }
    if (TAKE(&c, "\n[last_used]\n") && !take_last_used(&c, buf, host))
        return FALSE;
    if (!TAKE(&c, "\n") || c.p != c.end || (guint64)domains != host->domains->len ||
        end_domains != host->domains->len)
        return FALSE;
    *ret_host = g_steal_pointer(&host);
    return TRUE;
}

static gboolean parse_host(const char *data, gsize len, gboolean keep_text, IcLedgerHost **ret_host,
                           GError **error)
{
    if (len > IC_LEDGER_MAX_BYTES)
        return format_error(error, "larger than %d bytes", IC_LEDGER_MAX_BYTES);
    if (memchr(data, '\0', len) != NULL)
        return format_error(error, "a NUL byte in the file");

    guint64 end_domains = 0;
    gsize body_len = 0;
    if (!check_trailer(data, len, &end_domains, &body_len, error))
        return FALSE;
    if (parse_canonical(data, body_len, end_domains, keep_text, ret_host))
        return TRUE;

    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) kf_error = NULL;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &kf_error))
        return format_error(error, "%s", kf_error->message);
    return parse_groups(kf, end_domains, ret_host, error);
}

gboolean ic_ledger_host_parse(const char *data, gsize len, IcLedgerHost **ret_host, GError **error)
{
    return parse_host(data, len, FALSE, ret_host, error);
}

gboolean ic_ledger_host_parse_for_update(const char *data, gsize len, IcLedgerHost **ret_host,
                                         GError **error)
{
    /* A file that is not canonical is decoded in full by the GKeyFile reader: its domains
     * are written anew by the serialiser, as the full path writes them. */
    return parse_host(data, len, TRUE, ret_host, error);
}

gboolean ic_ledger_domain_check(const IcLedgerDomain *domain, GError **error)
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
    if (domain->base_files->len > IC_LEDGER_MAX_LIST_ENTRIES ||
        domain->image_ids->len > IC_LEDGER_MAX_LIST_ENTRIES) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "domain '%s' names too many files",
                    domain->name);
        return FALSE;
    }
    return TRUE;
}

char *ic_ledger_resolve_entry(const char *entry, const char *base_dir)
{
    /* ic_path_join: g_build_filename's bytes without its varargs walk, for every
     * entry of every ledger a pass reads (issue 15). */
    if (!g_path_is_absolute(entry))
        return ic_path_join(base_dir, entry);
    /* Format 1: "<somebody's mount>/<base_dir_name>/<name>". */
    g_autofree char *canon = g_canonicalize_filename(entry, "/");
    g_autofree char *parent = g_path_get_dirname(canon);
    g_autofree char *parent_name = g_path_get_basename(parent);
    g_autofree char *base_name = g_path_get_basename(base_dir);
    if (strcmp(parent_name, base_name) != 0)
        return NULL;
    g_autofree char *name = g_path_get_basename(canon);
    return ic_path_join(base_dir, name);
}
