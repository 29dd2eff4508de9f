/* ledger.h — the usage ledger's host file format, pure: per host, which domains use which
 * base files; the types, the naming rules, serialise and parse. Files are ledger-store.h's. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IC_LEDGER_MAX_BYTES   (16 * 1024 * 1024)
#define IC_LEDGER_MAX_DOMAINS 100000
/* The most entries one list of a host file may hold (a domain's base files or
 * image ids, the [last_used] lists): the parser refuses more, so writers trim
 * to it. Older versions refuse more too: raising it breaks mixed clusters. */
#define IC_LEDGER_MAX_LIST_ENTRIES 4096
#define IC_LEDGER_HOST_MAX_LEN     253 /* a fully qualified DNS name */

typedef struct {
    char *uuid;
    char *name;
    GPtrArray *base_files; /* char*: base files its chains reach: names in the base dir (as
                            * written); absolute paths from collect or a format-1 file */
    GPtrArray *image_ids;  /* char*: Nova image refs (fingerprint = SHA-1 of the id) */
    gint64 started;        /* epoch seconds the domain was first recorded */
    char *unknown; /* NULL, or why its base files are not all known (a disk that could not be
                    * followed): every pass then treats usage as unknown until the domain is
                    * released or recorded in full */
    /* Set only by ic_ledger_host_parse_for_update: the domain's group as the file holds it,
     * checked by the parser but not decoded, within the parsed data; only uuid and started
     * are set then (name, base_files, image_ids and unknown are NULL), and the serialiser
     * writes the text back as it is (it is what the serialiser writes for the domain). */
    const char *text;
    gsize text_len;
} IcLedgerDomain;

typedef struct {
    char *host;
    char *machine_id;      /* the writing machine (/etc/machine-id), NULL before format 3 */
    gint64 refreshed;      /* epoch seconds of the last write */
    gboolean stale;        /* set by ic_ledger_read_all: not refreshed within the stale limit */
    GPtrArray *domains;    /* IcLedgerDomain*, sorted by uuid */
    GHashTable *last_used; /* base file entry -> gint64* epoch seconds of its last release */
} IcLedgerHost;

typedef struct {
    char *ledger_dir;
    GPtrArray *hosts;  /* IcLedgerHost*, sorted by host */
    GPtrArray *errors; /* char*: host files that could not be read (they block removal) */
    gint64 read_at;    /* the @now given to ic_ledger_read_all (for staleness notes) */
} IcLedger;

IcLedgerDomain *ic_ledger_domain_new(const char *uuid, const char *name);
void ic_ledger_domain_free(IcLedgerDomain *domain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerDomain, ic_ledger_domain_free)
/* An empty host named @name (no domains, nothing released). */
IcLedgerHost *ic_ledger_host_new(const char *name);
/* A deep copy (the store's cache hands out copies of what it keeps). */
IcLedgerHost *ic_ledger_host_copy(const IcLedgerHost *host);
void ic_ledger_host_free(IcLedgerHost *host);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerHost, ic_ledger_host_free)
void ic_ledger_free(IcLedger *ledger);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedger, ic_ledger_free)

/* A GCompareFunc for a GPtrArray of IcLedgerDomain*: by uuid, the files' order. */
gint ic_ledger_domain_compare(gconstpointer a, gconstpointer b);

/* Marks @domain's usage unknown for @why (the first reason is kept). */
void ic_ledger_domain_mark_unknown(IcLedgerDomain *domain, const char *why);

/* Whether @domain may be written: a lowercase uuid, a name of 1 to 1024 bytes,
 * base files as names or absolute paths, at most 4096 base files and image ids.
 * IC_ERROR_FORMAT or IC_ERROR_LIMIT otherwise. */
gboolean ic_ledger_domain_check(const IcLedgerDomain *domain, GError **error);

/* A copy for the ledger file: base files by name (see ic_ledger_entry_name),
 * every value one the reader accepts. A value that is not UTF-8 (a name made
 * valid, a base file or image id left out) is said (g_message) and marks the
 * copy's usage unknown. */
IcLedgerDomain *ic_ledger_domain_writable_copy(const IcLedgerDomain *domain);

/* TRUE for a host name usable as a ledger file name: 1 to IC_LEDGER_HOST_MAX_LEN
 * of [A-Za-z0-9._-], not starting with '.'. Writers fail with IC_ERROR_CONFIG on
 * any other. */
gboolean ic_ledger_host_name_is_valid(const char *host);

/* TRUE for a machine id the header may hold: 1 to 64 of [A-Za-z0-9-]
 * (systemd's machine-id is 32 hex digits). */
gboolean ic_ledger_machine_id_is_valid(const char *id);

/* Serialises / parses one host file. Parsing is strict: a damaged or
 * truncated file fails with IC_ERROR_FORMAT, never reads as "no users". */
char *ic_ledger_host_serialize(const IcLedgerHost *host, gsize *ret_len);
gboolean ic_ledger_host_parse(const char *data, gsize len, IcLedgerHost **ret_host, GError **error);

/* As ic_ledger_host_parse, for a read-modify-write that changes few domains (recording one at
 * VM start): the file is checked exactly as there and refused for the same reasons, but the
 * domains of a canonical file (one this program wrote) are kept as their text (see
 * IcLedgerDomain.text), pointing into @data, which must outlive the host. Serialised after
 * an edit, such a host is byte for byte what the fully decoded one is: decoding and writing
 * again the other domains was most of a hook prepare's CPU. Never hand such a host to a
 * reader: its domains' base files are not decoded (ic_ledger_host_copy decodes them). */
gboolean ic_ledger_host_parse_for_update(const char *data, gsize len, IcLedgerHost **ret_host,
                                         GError **error);

/* The index of the domain @uuid among @host's domains (sorted by uuid, as parsed), or -1;
 * @ret_place (may be NULL): where it is or would be inserted. */
gint ic_ledger_host_find_domain(const IcLedgerHost *host, const char *uuid, guint *ret_place);

/* Puts @domain (taken) at its place among @host's sorted domains, replacing the one with its
 * uuid, if any: the domains stay sorted without sorting them again. */
void ic_ledger_host_put_domain(IcLedgerHost *host, IcLedgerDomain *domain);

/* How the ledger file names base file @path: its name in the base dir (every
 * path the chains give lies directly in it); a name is kept as it is. */
char *ic_ledger_entry_name(const char *path);

/* The path, in this host's @base_dir, of ledger entry @entry: a name joined to
 * @base_dir; a format-1 absolute path "<mount>/<dir>/<name>" whose <dir> is
 * named like @base_dir, mapped onto @base_dir (another host's mount spelling);
 * NULL for any other absolute path (its base file is unknown). */
char *ic_ledger_resolve_entry(const char *entry, const char *base_dir);

G_END_DECLS
