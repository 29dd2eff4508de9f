/* fuzz-ledger.c — libFuzzer target for the usage-ledger host file parser.
 *
 * Each input is parsed twice: as it is (the checksummed [end] trailer must hold), and
 * with a correct trailer put in place of whatever ends it, so mutations of the body
 * reach the GKeyFile and group parsers instead of stopping at the checksum. Whatever
 * parses must serialise, re-parse to the same content and re-serialise to the same
 * bytes; the read-modify-write's parse must agree and serialise to the same bytes. */
#include "fuzz.h"

#include "error.h"
#include "ledger.h"

#include <string.h>

#define END_MARK "\n[end]\n"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ic_fuzz_init();
    return 0;
}

static gboolean same_list(GPtrArray *a, GPtrArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++) {
        if (strcmp(g_ptr_array_index(a, i), g_ptr_array_index(b, i)) != 0)
            return FALSE;
    }
    return TRUE;
}

/* A base file entry: a name in the base dir, or an absolute path (format 1). */
static gboolean entry_ok(const char *entry)
{
    return g_path_is_absolute(entry) ||
           (strchr(entry, '/') == NULL && strcmp(entry, ".") != 0 && strcmp(entry, "..") != 0);
}

static void check_same_host(const IcLedgerHost *a, const IcLedgerHost *b)
{
    IC_FUZZ_CHECK(strcmp(a->host, b->host) == 0);
    IC_FUZZ_CHECK(a->refreshed == b->refreshed);
    IC_FUZZ_CHECK(a->domains->len == b->domains->len);
    for (guint i = 0; i < a->domains->len; i++) {
        const IcLedgerDomain *da = g_ptr_array_index(a->domains, i);
        const IcLedgerDomain *db = g_ptr_array_index(b->domains, i);
        IC_FUZZ_CHECK(strcmp(da->uuid, db->uuid) == 0);
        IC_FUZZ_CHECK(strcmp(da->name, db->name) == 0);
        IC_FUZZ_CHECK(da->started == db->started);
        IC_FUZZ_CHECK(same_list(da->base_files, db->base_files));
        IC_FUZZ_CHECK(same_list(da->image_ids, db->image_ids));
    }
    IC_FUZZ_CHECK(g_hash_table_size(a->last_used) == g_hash_table_size(b->last_used));
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, a->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const gint64 *other = g_hash_table_lookup(b->last_used, key);
        IC_FUZZ_CHECK(other != NULL && *other == *(const gint64 *)value);
    }
}

static void check_host(const IcLedgerHost *host)
{
    IC_FUZZ_CHECK(ic_ledger_host_name_is_valid(host->host));
    IC_FUZZ_CHECK(host->refreshed >= 0 && !host->stale);
    IC_FUZZ_CHECK(host->domains->len <= IC_LEDGER_MAX_DOMAINS);
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(host->domains, i);
        IC_FUZZ_CHECK(g_uuid_string_is_valid(domain->uuid));
        IC_FUZZ_CHECK(domain->name != NULL && domain->name[0] != '\0');
        IC_FUZZ_CHECK(domain->started >= 0);
        if (i > 0) {
            const IcLedgerDomain *prev = g_ptr_array_index(host->domains, i - 1);
            IC_FUZZ_CHECK(strcmp(prev->uuid, domain->uuid) < 0);
        }
        for (guint j = 0; j < domain->base_files->len; j++)
            IC_FUZZ_CHECK(entry_ok(g_ptr_array_index(domain->base_files, j)));
    }
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, host->last_used);
    while (g_hash_table_iter_next(&iter, &key, &value))
        IC_FUZZ_CHECK(entry_ok(key) && *(const gint64 *)value >= 0);
}

/* A parsed host is a fixed point: serialise → parse gives the same host, and
 * serialising that gives the same bytes. */
static void check_round_trip(const IcLedgerHost *host)
{
    gsize len = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len);
    IC_FUZZ_CHECK(text != NULL && len == strlen(text));

    g_autoptr(IcLedgerHost) again = NULL;
    g_autoptr(GError) error = NULL;
    if (!ic_ledger_host_parse(text, len, &again, &error))
        g_error("a parsed ledger host does not re-parse: %s\n%s", error->message, text);
    check_host(again);
    check_same_host(host, again);

    gsize len2 = 0;
    g_autofree char *text2 = ic_ledger_host_serialize(again, &len2);
    IC_FUZZ_CHECK(len == len2 && memcmp(text, text2, len) == 0);
}

/* The read-modify-write's parse (other domains kept as their text) gives the same
 * verdict, and its host serialises to the same bytes as the decoded one. */
static void check_update_path(const char *data, gsize len, const IcLedgerHost *host)
{
    g_autoptr(IcLedgerHost) kept = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_ledger_host_parse_for_update(data, len, &kept, &error);
    IC_FUZZ_CHECK(ok == (host != NULL) && ok == (kept != NULL));
    if (!ok)
        return;
    gsize len1 = 0, len2 = 0;
    g_autofree char *text = ic_ledger_host_serialize(host, &len1);
    g_autofree char *kept_text = ic_ledger_host_serialize(kept, &len2);
    IC_FUZZ_CHECK(len1 == len2 && memcmp(text, kept_text, len1) == 0);
}

static void parse_and_check(const char *data, gsize len)
{
    g_autoptr(IcLedgerHost) host = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_ledger_host_parse(data, len, &host, &error);
    IC_FUZZ_CHECK(ok == (error == NULL) && ok == (host != NULL));
    check_update_path(data, len, host);
    if (!ok) {
        IC_FUZZ_CHECK(error->domain == IC_ERROR && error->code == IC_ERROR_FORMAT);
        return;
    }
    check_host(host);
    check_round_trip(host);
}

/* The input's body (up to its last "[end]" line, if any) with a trailer that
 * matches it, in the format ledger.c writes; the domain count is the number of
 * "[domain " group lines. */
static char *with_trailer(const char *data, gsize len, gsize *ret_len)
{
    gsize body_len = len;
    for (gsize i = len; i-- > 0;) {
        if (len - i >= strlen(END_MARK) && memcmp(data + i, END_MARK, strlen(END_MARK)) == 0) {
            body_len = i + 1;
            break;
        }
    }
    guint domains = 0;
    for (gsize i = 0; i < body_len; i++) {
        if ((i == 0 || data[i - 1] == '\n') && body_len - i >= 8 &&
            memcmp(data + i, "[domain ", 8) == 0)
            domains++;
    }
    g_autofree char *digest =
        g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, body_len);
    GString *out = g_string_new_len(data, (gssize)body_len);
    g_string_append_printf(out, "[end]\ndomains=%u\nsha256=%s\n", domains, digest);
    *ret_len = out->len;
    return g_string_free(out, FALSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_and_check((const char *)data, size);

    gsize fixed_len = 0;
    g_autofree char *fixed = with_trailer((const char *)data, size, &fixed_len);
    /* Exact size, as the input: nothing readable past the end. */
    g_autofree char *exact = g_malloc(fixed_len);
    memcpy(exact, fixed, fixed_len);
    parse_and_check(exact, fixed_len);
    return 0;
}
