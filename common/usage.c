#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "jsonin.h"
#include "probe.h"
#include "scan.h"

/* One row per witness bit, in bit order. */
static const struct {
    const char *name;
    gboolean always_listed;
} witness_table[] = {
    {"ledger", TRUE},
    {"libvirt", TRUE},
    {"instances_dir", TRUE},
    {"static", FALSE},
};
G_STATIC_ASSERT(1 << G_N_ELEMENTS(witness_table) == _IC_WITNESS_MAX);

/* The table row of a single witness bit, or -1. */
static gint witness_index(IcWitness witness)
{
    if (witness <= 0 || witness >= _IC_WITNESS_MAX || (witness & (witness - 1)) != 0)
        return -1;
    return g_bit_nth_lsf((gulong)witness, -1);
}

const char *ic_witness_to_string(IcWitness witness)
{
    gint i = witness_index(witness);
    return i >= 0 ? witness_table[i].name : "unknown";
}

gboolean ic_witness_always_listed(IcWitness witness)
{
    gint i = witness_index(witness);
    return i >= 0 && witness_table[i].always_listed;
}

static const struct {
    const char *name;
    gboolean blocks_removal;
    IcWitness witness;
    gboolean not_consulted;
} note_codes[] = {
    [IC_NOTE_LEDGER_DAMAGED] = {"ledger_damaged", TRUE, IC_WITNESS_LEDGER, FALSE},
    [IC_NOTE_LEDGER_STALE] = {"ledger_stale", FALSE, IC_WITNESS_LEDGER, FALSE},
    [IC_NOTE_LEDGER_DIR_MISSING] = {"ledger_dir_missing", TRUE, IC_WITNESS_LEDGER, TRUE},
    [IC_NOTE_LEDGER_UNREADABLE] = {"ledger_unreadable", TRUE, IC_WITNESS_LEDGER, TRUE},
    [IC_NOTE_LIBVIRT_UNREACHABLE] = {"libvirt_unreachable", FALSE, IC_WITNESS_LIBVIRT, TRUE},
    [IC_NOTE_LIBVIRT_UNSUPPORTED] = {"libvirt_unsupported", FALSE, IC_WITNESS_LIBVIRT, TRUE},
    [IC_NOTE_LIVE_DOMAIN_UNREADABLE] = {"live_domain_unreadable", TRUE, IC_WITNESS_LIBVIRT, FALSE},
    [IC_NOTE_INSTANCE_UNREADABLE] = {"instance_unreadable", TRUE, IC_WITNESS_INSTANCES_DIR, FALSE},
    [IC_NOTE_BASE_DIR_MISSING] = {"base_dir_missing", FALSE, 0, FALSE},
    [IC_NOTE_QUARANTINE_UNUSABLE] = {"quarantine_unusable", FALSE, 0, FALSE},
    [IC_NOTE_REMOVAL_DEFERRED] = {"removal_deferred", FALSE, 0, FALSE},
    [IC_NOTE_DOMAIN_USAGE_UNKNOWN] = {"domain_usage_unknown", TRUE, IC_WITNESS_LEDGER, FALSE},
    [IC_NOTE_HOST_NAME_COLLISION] = {"host_name_collision", TRUE, IC_WITNESS_LEDGER, FALSE},
};
G_STATIC_ASSERT(G_N_ELEMENTS(note_codes) == _IC_NOTE_MAX);

const char *ic_note_code_to_string(IcNoteCode code)
{
    return code < _IC_NOTE_MAX ? note_codes[code].name : "unknown";
}

gboolean ic_note_code_blocks_removal(IcNoteCode code)
{
    /* An unknown code blocks: when unsure, keep the file. */
    return code < _IC_NOTE_MAX ? note_codes[code].blocks_removal : TRUE;
}

IcWitness ic_note_code_witness(IcNoteCode code)
{
    return code < _IC_NOTE_MAX ? note_codes[code].witness : 0;
}

gboolean ic_note_code_not_consulted(IcNoteCode code)
{
    return code < _IC_NOTE_MAX && note_codes[code].not_consulted;
}

/* The base file paths of by_path that name one file (device, inode). */
typedef struct {
    IcFileId id;          /* first: the hash and equality of IcFileId apply */
    const IcUsers *first; /* the first path's users */
    GPtrArray *more;      /* const IcUsers*: further paths', or NULL */
} SameFile;

static void same_file_free(SameFile *same_file)
{
    if (same_file->more != NULL)
        g_ptr_array_unref(same_file->more);
    g_free(same_file);
}

/* Strings are kept in the usage's chunk, once each: a domain named in the
 * sets of many files costs its UUID, name and host once (issue 15). Every
 * string a set holds comes from its usage's chunk, so within a usage two
 * strings are equal exactly when they are the same pointer. The chunk's own
 * index (g_string_chunk_insert_const) hashes with g_str_hash, which put the
 * 600,000 UUIDs, names and paths of a 10x ledger on twice as many buckets per
 * string as the 60,000 of a 1x one (18 probes an insert against 9); the
 * usage's index hashes with ic_path_hash (5 probes at either size). */
static const char *intern(IcUsage *usage, const char *s)
{
    if (s == NULL)
        return NULL;
    const char *known = g_hash_table_lookup(usage->interned, s);
    if (known != NULL)
        return known;
    char *copy = g_string_chunk_insert(usage->strings, s);
    g_hash_table_add(usage->interned, copy);
    return copy;
}

static IcUsers *users_new(void)
{
    IcUsers *users = g_new0(IcUsers, 1);
    users->seen = NULL; /* made when the set grows past USERS_SEEN_MIN */
    users->users = users->inline_users;
    users->alloc = IC_USERS_INLINE;
    return users;
}

void ic_users_free(IcUsers *users)
{
    if (users == NULL)
        return;
    if (users->seen != NULL)
        g_hash_table_unref(users->seen);
    if (users->users != users->inline_users)
        g_free(users->users);
    g_free(users);
}

/* A key of IcUsers.seen: a UUID or a name, for a host when remote (a domain
 * that moved is on both hosts' ledgers until they are refreshed). Both are
 * the usage's strings, so they hash and compare as pointers. */
typedef struct {
    const char *id;
    const char *host; /* NULL for a user on this host */
} SeenKey;

static guint seen_key_hash(gconstpointer key)
{
    const SeenKey *k = key;
    return g_direct_hash(k->id) * 31 + g_direct_hash(k->host);
}

static gboolean seen_key_equal(gconstpointer a, gconstpointer b)
{
    const SeenKey *x = a, *y = b;
    return x->id == y->id && x->host == y->host;
}

IcUsage *ic_usage_new(void)
{
    IcUsage *usage = g_new0(IcUsage, 1);
    usage->strings = g_string_chunk_new(16 * 1024);
    usage->interned = g_hash_table_new(ic_path_hash, g_str_equal);
    /* Keys live in @strings: a table never frees them one by one. */
    usage->by_path =
        g_hash_table_new_full(ic_path_hash, g_str_equal, NULL, (GDestroyNotify)ic_users_free);
    usage->by_fingerprint =
        g_hash_table_new_full(ic_path_hash, g_str_equal, NULL, (GDestroyNotify)ic_users_free);
    usage->image_ids = g_hash_table_new(ic_path_hash, g_str_equal);
    usage->fingerprints = g_hash_table_new(ic_path_hash, g_str_equal);
    usage->notes = g_ptr_array_new_with_free_func(g_free);
    usage->note_codes = g_array_new(FALSE, FALSE, sizeof(IcNoteCode));
    usage->last_used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    usage->by_identity = g_hash_table_new_full(ic_file_id_hash, ic_file_id_equal,
                                               (GDestroyNotify)same_file_free, NULL);
    return usage;
}

void ic_usage_free(IcUsage *usage)
{
    if (usage == NULL)
        return;
    g_hash_table_unref(usage->by_path);
    g_hash_table_unref(usage->by_fingerprint);
    g_hash_table_unref(usage->image_ids);
    g_hash_table_unref(usage->fingerprints);
    g_ptr_array_unref(usage->notes);
    g_array_unref(usage->note_codes);
    g_hash_table_unref(usage->last_used);
    g_hash_table_unref(usage->by_identity);
    g_hash_table_unref(usage->interned);
    g_string_chunk_free(usage->strings);
    g_free(usage);
}

char *ic_user_label(const IcUser *user)
{
    const char *id = user->name ? user->name : user->uuid;
    return user->host ? g_strconcat(id, "@", user->host, NULL) : g_strdup(id);
}

/* Below this many users a set is searched user by user: most base files have
 * a handful of users, and a hash table with two keys per user was most of the
 * usage's memory (issue 15). Above it, IcUsers.seen indexes them. */
#define USERS_SEEN_MIN 16

/* TRUE when @id is @user's UUID or name, for the same host: what the keys
 * of IcUsers.seen say. All strings are the set's usage's. */
static gboolean user_is(const IcUser *user, const char *id, const char *host)
{
    return user->host == host && (user->uuid == id || user->name == id);
}

static void seen_add(IcUsers *users, guint index, const char *id)
{
    if (users->seen == NULL || id == NULL)
        return;
    /* Two users may share a name (two domains, one name) or one's name may be
     * another's UUID: the index answers as the search user by user does, with
     * the first of them, however late that one learnt the id. */
    SeenKey probe = {.id = id, .host = users->users[index].host};
    guint known = GPOINTER_TO_UINT(g_hash_table_lookup(users->seen, &probe));
    if (known != 0 && known - 1 <= index)
        return;
    SeenKey *key = g_new(SeenKey, 1);
    *key = (SeenKey){.id = id, .host = users->users[index].host};
    g_hash_table_insert(users->seen, key, GUINT_TO_POINTER(index + 1));
}

/* Indexes the set once it is large. */
static void users_grow_index(IcUsers *users)
{
    if (users->seen != NULL || users->len <= USERS_SEEN_MIN)
        return;
    users->seen = g_hash_table_new_full(seen_key_hash, seen_key_equal, g_free, NULL);
    for (guint i = 0; i < users->len; i++) {
        seen_add(users, i, users->users[i].uuid);
        seen_add(users, i, users->users[i].name);
    }
}

static IcUser *users_find(const IcUsers *users, const char *id, const char *host)
{
    if (id == NULL)
        return NULL;
    if (users->seen != NULL) {
        SeenKey key = {.id = id, .host = host};
        guint index = GPOINTER_TO_UINT(g_hash_table_lookup(users->seen, &key));
        return index > 0 ? &users->users[index - 1] : NULL;
    }
    for (guint i = 0; i < users->len; i++) {
        if (user_is(&users->users[i], id, host))
            return &users->users[i];
    }
    return NULL;
}

/* Sets what was unknown of @user. */
static void users_learn(IcUsers *users, IcUser *user, const char *uuid, const char *name)
{
    guint index = (guint)(user - users->users);
    if (user->uuid == NULL && uuid != NULL) {
        user->uuid = uuid;
        seen_add(users, index, uuid);
    }
    if (user->name == NULL && name != NULL) {
        user->name = name;
        seen_add(users, index, name);
    }
}

/* Adds one user to @users unless the same user is already counted: two disks
 * of one domain, or two witnesses naming it (by UUID or by name), are one
 * user. Every string is the set's usage's (intern); @uuid is lowercase or
 * NULL; @host is NULL for a user on this host. */
static void users_add(IcUsers *users, const char *uuid, const char *name, const char *host,
                      guint witnesses)
{
    users->witnesses |= witnesses;
    IcUser *user = users_find(users, uuid, host);
    if (user == NULL) {
        /* By name only where a UUID is missing: two UUIDs that differ are two
         * domains, whatever their names. */
        user = users_find(users, name, host);
        if (user != NULL && uuid != NULL && user->uuid != NULL)
            user = NULL;
    }
    if (user != NULL) {
        users_learn(users, user, uuid, name);
        return;
    }
    if (users->len == users->alloc) {
        users->alloc *= 2;
        if (users->users == users->inline_users) {
            /* Past what the set holds itself: an array of its own from now on. */
            IcUser *grown = g_new(IcUser, users->alloc);
            memcpy(grown, users->inline_users, users->len * sizeof(IcUser));
            users->users = grown;
        } else {
            users->users = g_renew(IcUser, users->users, users->alloc);
        }
    }
    users->users[users->len++] = (IcUser){.uuid = uuid, .name = name, .host = host};
    seen_add(users, users->len - 1, uuid);
    seen_add(users, users->len - 1, name);
    if (host == NULL)
        users->local++;
    else
        users->remote++;
    users_grow_index(users);
}

static gboolean has_upper(const char *s)
{
    for (; *s != '\0'; s++) {
        if (g_ascii_isupper(*s))
            return TRUE;
    }
    return FALSE;
}

/* @s as the usage's string. A witness reports one domain's UUID, name and
 * host for each of its files in a row: the last few answers are checked
 * first, a strcmp where the chunk's table would hash the string and miss the
 * CPU's caches (issue 15). */
static const char *usage_intern(IcUsage *usage, const char *s)
{
    if (s == NULL)
        return NULL;
    for (guint i = 0; i < G_N_ELEMENTS(usage->recent); i++) {
        if (usage->recent[i] != NULL && strcmp(usage->recent[i], s) == 0)
            return usage->recent[i];
    }
    const char *interned = intern(usage, s);
    usage->recent[usage->recent_next] = interned;
    usage->recent_next = (usage->recent_next + 1) % G_N_ELEMENTS(usage->recent);
    return interned;
}

/* Adds a user as a witness reported it to @users, one of @usage's sets:
 * UUIDs compare lowercase. */
static void users_add_reported(IcUsage *usage, IcUsers *users, const char *uuid, const char *name,
                               const char *host, gboolean local, guint witnesses)
{
    g_return_if_fail(uuid != NULL || name != NULL);
    const char *lower = NULL;
    if (uuid != NULL && has_upper(uuid)) {
        g_autofree char *down = g_ascii_strdown(uuid, -1);
        lower = usage_intern(usage, down);
    } else {
        lower = usage_intern(usage, uuid);
    }
    /* A remote user is never taken for a local one, even without a host name. */
    const char *remote_host = local ? NULL : usage_intern(usage, host ? host : "");
    users_add(users, lower, usage_intern(usage, name), remote_host, witnesses);
}

static IcUsers *table_get(IcUsage *usage, GHashTable *table, const char *key)
{
    IcUsers *users = g_hash_table_lookup(table, key);
    if (users == NULL) {
        users = users_new();
        g_hash_table_insert(table, g_string_chunk_insert(usage->strings, key), users);
    }
    return users;
}

void ic_usage_add_path_user(IcUsage *usage, const char *path, const char *uuid, const char *name,
                            const char *host, gboolean local, IcWitness witness)
{
    users_add_reported(usage, table_get(usage, usage->by_path, path), uuid, name, host, local,
                       witness);
}

void ic_usage_add_fingerprint_user(IcUsage *usage, const char *fingerprint, const char *uuid,
                                   const char *name, const char *host, gboolean local,
                                   IcWitness witness)
{
    users_add_reported(usage, table_get(usage, usage->by_fingerprint, fingerprint), uuid, name,
                       host, local, witness);
}

/* Remembers @image_id and its @fingerprint (NULL: computed); returns the
 * fingerprint as the usage's string. A fingerprint is a SHA-1, and a cloud's
 * domains share few images: each is computed once per usage. */
static const char *remember_image(IcUsage *usage, const char *image_id, const char *fingerprint)
{
    const char *known = g_hash_table_lookup(usage->fingerprints, image_id);
    if (known != NULL)
        return known;
    g_autofree char *computed = fingerprint ? NULL : ic_fingerprint_of_image_id(image_id);
    const char *id = intern(usage, image_id);
    const char *fp = intern(usage, fingerprint ? fingerprint : computed);
    g_hash_table_insert(usage->fingerprints, (gpointer)id, (gpointer)fp);
    /* The first image id a fingerprint was seen with is the one messages name. */
    if (!g_hash_table_contains(usage->image_ids, fp))
        g_hash_table_insert(usage->image_ids, (gpointer)fp, (gpointer)id);
    return fp;
}

void ic_usage_add_image_user(IcUsage *usage, const char *image_id, const char *uuid,
                             const char *name, const char *host, gboolean local, IcWitness witness)
{
    const char *fingerprint = remember_image(usage, image_id, NULL);
    ic_usage_add_fingerprint_user(usage, fingerprint, uuid, name, host, local, witness);
}

void ic_usage_add_note(IcUsage *usage, IcNoteCode code, const char *note)
{
    ic_usage_insert_note(usage, usage->notes->len, code, note);
}

void ic_usage_insert_note(IcUsage *usage, guint index, IcNoteCode code, const char *note)
{
    if (ic_note_code_blocks_removal(code))
        usage->incomplete = TRUE;
    g_ptr_array_insert(usage->notes, (gint)index, g_strdup(note));
    g_array_insert_val(usage->note_codes, index, code);
}

const IcUsers *ic_usage_lookup_path(const IcUsage *usage, const char *path)
{
    return g_hash_table_lookup(usage->by_path, path);
}

const IcUsers *ic_usage_lookup_fingerprint(const IcUsage *usage, const char *fingerprint)
{
    return g_hash_table_lookup(usage->by_fingerprint, fingerprint);
}

const IcUsers *ic_usage_lookup_image(const IcUsage *usage, const char *image_id)
{
    g_autofree char *fingerprint = ic_fingerprint_of_image_id(image_id);
    return ic_usage_lookup_fingerprint(usage, fingerprint);
}

/* Adds @from's users to @into. @owner: NULL when both sets are one usage's
 * (its strings are shared as they are), else @into's usage, into whose
 * strings @from's are interned. */
static void users_merge(IcUsers *into, const IcUsers *from, IcUsage *owner)
{
    if (from == NULL)
        return;
    into->witnesses |= from->witnesses;
    for (guint i = 0; i < from->len; i++) {
        const IcUser *user = &from->users[i];
        if (owner == NULL)
            users_add(into, user->uuid, user->name, user->host, 0);
        else
            users_add(into, intern(owner, user->uuid), intern(owner, user->name),
                      intern(owner, user->host), 0);
    }
}

/* Release times are kept by the base file's name within the base dir: the
 * hook, the CLI and other hosts may spell the base dir differently (a
 * symlinked instances_path, another mount point), but the name is the same. */
void ic_usage_add_last_used(IcUsage *usage, const char *path, gint64 when)
{
    g_autofree char *name = g_path_get_basename(path);
    gint64 *known = g_hash_table_lookup(usage->last_used, name);
    if (known != NULL) {
        *known = MAX(*known, when);
        return;
    }
    g_hash_table_insert(usage->last_used, g_steal_pointer(&name), g_memdup2(&when, sizeof(when)));
}

gint64 ic_usage_last_used(const IcUsage *usage, const char *path)
{
    g_autofree char *name = g_path_get_basename(path);
    const gint64 *known = g_hash_table_lookup(usage->last_used, name);
    return known ? *known : 0;
}

static void merge_table(IcUsage *usage, GHashTable *into, GHashTable *from)
{
    GHashTableIter iter;
    gpointer key, users;
    g_hash_table_iter_init(&iter, from);
    while (g_hash_table_iter_next(&iter, &key, &users))
        users_merge(table_get(usage, into, key), users, usage);
}

void ic_usage_merge(IcUsage *into, const IcUsage *from)
{
    if (from == NULL)
        return;
    merge_table(into, into->by_path, from->by_path);
    merge_table(into, into->by_fingerprint, from->by_fingerprint);
    GHashTableIter iter;
    gpointer fingerprint, image_id;
    g_hash_table_iter_init(&iter, from->fingerprints);
    while (g_hash_table_iter_next(&iter, &image_id, &fingerprint))
        remember_image(into, image_id, fingerprint);
    for (guint i = 0; i < from->notes->len; i++)
        ic_usage_add_note(into, g_array_index(from->note_codes, IcNoteCode, i),
                          g_ptr_array_index(from->notes, i));
    into->incomplete |= from->incomplete;
    gpointer path, when;
    g_hash_table_iter_init(&iter, from->last_used);
    while (g_hash_table_iter_next(&iter, &path, &when))
        ic_usage_add_last_used(into, path, *(gint64 *)when);
}

/* The identity @path names now: the scan's for "<known->base_dir>/<name>"
 * of a scanned regular file (most paths are spelled so; the scan's lstat is
 * this pass's view of the base dir, and a removal re-checks identity before
 * it unlinks), else the kernel's. FALSE: absent. */
static gboolean path_identity(const char *path, const IcScan *known, dev_t *ret_dev, ino_t *ret_ino)
{
    if (known != NULL) {
        gsize dir_len = strlen(known->base_dir);
        const IcBaseFile *file = NULL;
        if (strncmp(path, known->base_dir, dir_len) == 0 && path[dir_len] == '/' &&
            strchr(path + dir_len + 1, '/') == NULL)
            file = ic_scan_lookup(known, path + dir_len + 1);
        if (file != NULL) {
            *ret_dev = file->dev;
            *ret_ino = file->ino;
            return TRUE;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return FALSE;
    *ret_dev = st.st_dev;
    *ret_ino = st.st_ino;
    return TRUE;
}

void ic_usage_index_identities(IcUsage *usage, const IcScan *known)
{
    GHashTableIter iter;
    gpointer path, users;
    g_hash_table_remove_all(usage->by_identity);
    g_hash_table_iter_init(&iter, usage->by_path);
    while (g_hash_table_iter_next(&iter, &path, &users)) {
        SameFile key = {0};
        if (!path_identity(path, known, &key.id.dev, &key.id.ino))
            continue; /* absent: matched by path, reported as absent */
        SameFile *same_file = g_hash_table_lookup(usage->by_identity, &key);
        if (same_file == NULL) {
            same_file = g_memdup2(&key, sizeof(key));
            same_file->first = users;
            g_hash_table_add(usage->by_identity, same_file);
            continue;
        }
        /* Borrowed, not merged into a copy: a copy of every path's users
         * was the usage's largest allocation and users_merge its hottest
         * function (issue 15); ic_usage_users_of merges them once. */
        if (same_file->more == NULL)
            same_file->more = g_ptr_array_new();
        g_ptr_array_add(same_file->more, users);
    }
}

IcUsers *ic_usage_users_of(const IcUsage *usage, const char *base_dir, const char *name,
                           const char *fingerprint, dev_t dev, ino_t ino)
{
    /* Every set merged here is @usage's: its strings are shared, none added. */
    IcUsers *users = users_new();
    g_autofree char *path = ic_path_join(base_dir, name);
    users_merge(users, ic_usage_lookup_path(usage, path), NULL);
    if (fingerprint != NULL)
        users_merge(users, ic_usage_lookup_fingerprint(usage, fingerprint), NULL);
    if (ino != 0) {
        SameFile key = {.id = {.dev = dev, .ino = ino}};
        const SameFile *same_file = g_hash_table_lookup(usage->by_identity, &key);
        if (same_file != NULL) {
            users_merge(users, same_file->first, NULL);
            for (guint i = 0; same_file->more != NULL && i < same_file->more->len; i++)
                users_merge(users, g_ptr_array_index(same_file->more, i), NULL);
        }
    }
    return users;
}

static gboolean is_instance_disk_name(const char *name)
{
    return g_str_equal(name, "disk") || g_str_has_prefix(name, "disk.");
}

/* An instance dir is named by its domain's UUID (Nova since 2013) or, in
 * older layouts, by the domain's name. */
static const char *instance_uuid(const char *instance)
{
    return g_uuid_string_is_valid(instance) ? instance : NULL;
}

static const char *instance_name(const char *instance)
{
    return g_uuid_string_is_valid(instance) ? NULL : instance;
}

/* Nova's <instance>/disk.info: a JSON object {"<disk path>": "<format>", …}
 * written when it made the disks, read with jsonin.h (the hook's library links
 * GLib alone): string keys and values, nothing else. */
#define DISK_INFO_NAME      "disk.info"
#define DISK_INFO_MAX_BYTES (64 * 1024)

/* One member of disk.info (IcJsonInMemberFunc): @formats gets disk name (the
 * path's last component) -> format. */
static gboolean read_disk_info_member(IcJsonIn *in, const char *path, gpointer formats,
                                      GError **error)
{
    if (!ic_jsonin_peek(in, '"')) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "the format of '%s' is not a string", path);
        return FALSE;
    }
    g_autofree char *format = ic_jsonin_string(in);
    if (format == NULL)
        return FALSE;
    g_autofree char *disk = g_path_get_basename(path);
    const char *known = g_hash_table_lookup(formats, disk);
    if (known != NULL && !g_str_equal(known, format)) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "disk '%s' given two formats ('%s', '%s')",
                    disk, known, format);
        return FALSE;
    }
    g_hash_table_replace(formats, g_steal_pointer(&disk), g_steal_pointer(&format));
    return TRUE;
}

/* Parses disk.info into disk name -> format. */
static gboolean parse_disk_info(const char *data, gsize len, GHashTable **ret_formats,
                                GError **error)
{
    g_autoptr(GHashTable) formats = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    if (!ic_jsonin_parse_object(data, len, read_disk_info_member, formats, error)) {
        g_prefix_error(error, "disk.info: ");
        return FALSE;
    }
    *ret_formats = g_steal_pointer(&formats);
    return TRUE;
}

/* The declared formats of an instance's disks (NULL when it has no disk.info). */
static gboolean read_disk_info(int instance_fd, GHashTable **ret_formats, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) local_error = NULL;
    if (!ic_file_read_at(instance_fd, DISK_INFO_NAME, DISK_INFO_MAX_BYTES, &data, &len,
                         &local_error)) {
        if (g_error_matches(local_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
            *ret_formats = NULL;
            return TRUE;
        }
        g_propagate_error(error, g_steal_pointer(&local_error));
        return FALSE;
    }
    return parse_disk_info(data, len, ret_formats, error);
}

gboolean ic_usage_parse_disk_info(const char *data, gsize len, GHashTable **ret_formats,
                                  GError **error)
{
    return parse_disk_info(data, len, ret_formats, error);
}

/* A file a disk needs that does not resolve into the base dir. Hosts sharing
 * the storage mount it at different paths, and an overlay created on another
 * host names its backing file with that host's spelling ("/srv/novaB/_base/<name>"),
 * which does not exist here: such a name, in a directory named like the base
 * dir, is the base file <name> here. Any other file that does not exist here
 * might be any base file (a mount this host lacks): usage unknown, never
 * "unused". A present file outside the base dir is no base file. */
static void add_foreign_file(IcUsage *usage, const IcDiskFile *file, const char *base_dir,
                             const char *uuid, const char *name, const char *host,
                             IcWitness witness)
{
    if (file->present)
        return;
    g_autofree char *canon = g_canonicalize_filename(file->path, "/");
    g_autofree char *parent = g_path_get_dirname(canon);
    g_autofree char *parent_name = g_path_get_basename(parent);
    g_autofree char *base_name = g_path_get_basename(base_dir);
    if (g_str_equal(parent_name, base_name)) {
        g_autofree char *entry = g_path_get_basename(canon);
        g_autofree char *here = g_build_filename(base_dir, entry, NULL);
        ic_usage_add_path_user(usage, here, uuid, name, host, TRUE, witness);
        return;
    }
    g_autofree char *note = g_strdup_printf(
        "domain '%s' needs '%s', which cannot be found here: its base file is unknown, so "
        "nothing is removed",
        name != NULL ? name : uuid, file->path);
    ic_usage_add_note(usage, IC_NOTE_INSTANCE_UNREADABLE, note);
}

/* Records the base files among @files (what one disk needs) as used by the
 * domain @uuid / @name. */
void ic_usage_add_disk_files(IcUsage *usage, const GPtrArray *files, const char *base_dir,
                             int base_fd, const char *uuid, const char *name, const char *host,
                             IcWitness witness)
{
    for (guint i = 0; i < files->len; i++) {
        const IcDiskFile *file = g_ptr_array_index(files, i);
        g_autofree char *owned = NULL;
        const char *base_name = base_fd >= 0
                                    ? ic_disk_file_base_name_ref(file, base_fd, base_dir, &owned)
                                    : (owned = ic_disk_file_base_name(file, base_dir));
        if (base_name == NULL) {
            add_foreign_file(usage, file, base_dir, uuid, name, host, witness);
            continue;
        }
        g_autofree char *path = ic_path_join(base_dir, base_name);
        ic_usage_add_path_user(usage, path, uuid, name, host, TRUE, witness);
    }
}

/* A disk an instance dir lists, and whether the listing said it is a regular
 * file (d_type: then the probe needs no stat before its open). One
 * allocation with its name. */
typedef struct {
    gboolean regular;
    char name[];
} ListedDisk;

/* Probes one instance disk (as @format, NULL: probed) and records the files
 * it needs that live in the base dir. */
static void add_instance_disk(IcUsage *usage, const char *instance, int instance_fd,
                              const ListedDisk *disk, const char *disk_path, const char *format,
                              const char *base_dir, int base_fd, const char *host,
                              IcProbeCache *cache)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) files = NULL;
    if (!ic_probe_listed_disk_files(instance_fd, disk->name, disk_path, format, disk->regular,
                                    cache, &files, &error)) {
        g_autofree char *note = g_strdup_printf(
            "instance disk '%s' could not be read (%s): its base files are unknown, so nothing "
            "is removed",
            disk_path, error->message);
        ic_usage_add_note(usage, IC_NOTE_INSTANCE_UNREADABLE, note);
        return;
    }
    ic_usage_add_disk_files(usage, files, base_dir, base_fd, instance_uuid(instance),
                            instance_name(instance), host, IC_WITNESS_INSTANCES_DIR);
}

/* An instance dir or disk that cannot be read might name any base file. */
static void note_unreadable(IcUsage *usage, const char *instances_path, const char *instance,
                            const char *what, int errsv)
{
    g_autofree char *note = g_strdup_printf(
        "%s '%s/%s' could not be read (%s): its base files are unknown, so nothing is removed",
        what, instances_path, instance, g_strerror(errsv));
    ic_usage_add_note(usage, IC_NOTE_INSTANCE_UNREADABLE, note);
}

static gboolean is_disk_type(mode_t mode)
{
    return S_ISREG(mode) || S_ISBLK(mode);
}

static void add_instance_dir(IcUsage *usage, int parent_fd, const char *instances_path,
                             const char *instance, const char *base_dir, int base_fd,
                             const char *host, IcProbeCache *cache)
{
    /* Symlinked instance dirs are followed, as QEMU follows the paths in them. */
    int fd = openat(parent_fd, instance, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int errsv = errno;
        /* A plain file is no instance and one that vanished has nothing to
         * say; but a symlink whose target is missing (the volume holding it
         * not mounted) hides an instance's disks, and so does anything else. */
        struct stat lst;
        if (errsv == ENOENT && fstatat(parent_fd, instance, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(lst.st_mode)) {
            note_unreadable(usage, instances_path, instance, "symlinked instance dir", errsv);
            return;
        }
        if (errsv != ENOTDIR && errsv != ENOENT)
            note_unreadable(usage, instances_path, instance, "instance dir", errsv);
        return;
    }
    /* Listed by getdents64 into the stack: one domain's directory is a few
     * entries, and fdopendir would add three system calls and a 32 KiB
     * allocation to each (see IcDirList). */
    g_auto(IcDirList) dir;
    ic_dir_list_init(&dir, fd);
    g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func(g_free);
    gboolean have_disk_info = FALSE;
    struct dirent *entry;
    for (;;) {
        if (!ic_dir_list_read(&dir, "instance dir", instance, &entry, NULL)) {
            /* What was listed still counts; the note blocks removal. */
            note_unreadable(usage, instances_path, instance, "instance dir", errno);
            break;
        }
        if (entry == NULL)
            break;
        struct stat st;
        /* Nova's format list, not a disk (read below only when listed:
         * most instance dirs of a large host are walked for nothing else). */
        if (g_str_equal(entry->d_name, DISK_INFO_NAME)) {
            have_disk_info = TRUE;
            continue;
        }
        if (!is_instance_disk_name(entry->d_name))
            continue;
        /* d_type spares a stat per disk; a symlink or an unknown type is
         * followed, as QEMU would follow it. */
        if (entry->d_type != DT_REG && entry->d_type != DT_BLK) {
            if (fstatat(fd, entry->d_name, &st, 0) < 0) {
                /* A disk that vanished since readdir has nothing to say; a
                 * dangling symlink is a disk whose volume is mounted only on
                 * the host running its VM: its base files are unknown. */
                int errsv = errno;
                struct stat lst;
                if (errsv != ENOENT ||
                    (fstatat(fd, entry->d_name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                     S_ISLNK(lst.st_mode))) {
                    g_autofree char *disk = g_build_filename(instance, entry->d_name, NULL);
                    note_unreadable(usage, instances_path, disk,
                                    errsv == ENOENT ? "symlinked instance disk" : "instance disk",
                                    errsv);
                }
                continue;
            }
            if (!is_disk_type(st.st_mode))
                continue;
        }
        gsize name_size = strlen(entry->d_name) + 1;
        ListedDisk *disk = g_malloc(sizeof(ListedDisk) + name_size);
        memcpy(disk->name, entry->d_name, name_size);
        disk->regular = entry->d_type == DT_REG;
        g_ptr_array_add(disks, disk);
    }
    /* Nova's disk.info declares each disk's format: a raw disk is then never
     * parsed (its bytes are the guest's); without one, disks are probed. */
    g_autoptr(GHashTable) formats = NULL;
    g_autoptr(GError) info_error = NULL;
    if (disks->len > 0 && have_disk_info && !read_disk_info(fd, &formats, &info_error)) {
        g_autofree char *note = g_strdup_printf(
            "'%s/%s/%s' could not be read (%s): the formats of its disks are unknown, so "
            "nothing is removed",
            instances_path, instance, DISK_INFO_NAME, info_error->message);
        ic_usage_add_note(usage, IC_NOTE_INSTANCE_UNREADABLE, note);
        return;
    }
    g_autofree char *instance_path = ic_path_join(instances_path, instance);
    for (guint i = 0; i < disks->len; i++) {
        const ListedDisk *disk = g_ptr_array_index(disks, i);
        g_autofree char *path = ic_path_join(instance_path, disk->name);
        const char *format = formats ? g_hash_table_lookup(formats, disk->name) : NULL;
        add_instance_disk(usage, instance, fd, disk, path, format, base_dir, base_fd, host, cache);
    }
}

/* One share of the instance dirs, walked by one thread into its own usage. */
typedef struct {
    IcUsage *usage;
    int parent_fd;
    const char *instances_path;
    GPtrArray *instances;
    guint first, step;
    const char *base_dir;
    int base_fd;
    const IcScan *known;
    const char *host;
} InstancesShare;

static gpointer walk_share(gpointer data)
{
    InstancesShare *share = data;
    g_autoptr(IcProbeCache) cache = ic_probe_cache_new_for_scan(share->known);
    for (guint i = share->first; i < share->instances->len; i += share->step)
        add_instance_dir(share->usage, share->parent_fd, share->instances_path,
                         g_ptr_array_index(share->instances, i), share->base_dir, share->base_fd,
                         share->host, cache);
    return NULL;
}

/* Instance dirs to a thread before a second one pays off. */
#define INSTANCES_PER_THREAD 2000
#define MAX_WALK_THREADS     4

/* Reading 20,000 disk headers is system calls and waiting on the disk, so a
 * large instances dir is walked by one thread per core, each into its own
 * usage, merged at the end. */
static void walk_instances(IcUsage *usage, int parent_fd, const char *instances_path,
                           GPtrArray *instances, const char *base_dir, int base_fd,
                           const IcScan *known, const char *host, guint max_threads)
{
    guint allowed = max_threads > 0 ? MIN(max_threads, MAX_WALK_THREADS) : MAX_WALK_THREADS;
    guint threads =
        MIN(MIN(g_get_num_processors(), allowed), MAX(instances->len / INSTANCES_PER_THREAD, 1));
    InstancesShare shares[MAX_WALK_THREADS];
    GThread *workers[MAX_WALK_THREADS] = {NULL};

    for (guint t = 0; t < threads; t++) {
        shares[t] = (InstancesShare){
            .usage = t == 0 ? usage : ic_usage_new(),
            .parent_fd = parent_fd,
            .instances_path = instances_path,
            .instances = instances,
            .first = t,
            .step = threads,
            .base_dir = base_dir,
            .base_fd = base_fd,
            .known = known,
            .host = host,
        };
        if (t > 0)
            workers[t] = g_thread_new("imagecache-walk", walk_share, &shares[t]);
    }
    walk_share(&shares[0]);
    for (guint t = 1; t < threads; t++) {
        g_thread_join(workers[t]);
        ic_usage_merge(usage, shares[t].usage);
        ic_usage_free(shares[t].usage);
    }
}

gboolean ic_usage_add_instances_dir(IcUsage *usage, const char *instances_path,
                                    const char *base_dir, const IcScan *known,
                                    const char *const *skip_dirs, const char *host,
                                    guint max_threads, GError **error)
{
    int fd = open(instances_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return TRUE;
        return ic_error_set_errno(error, errno, "opening instances dir", instances_path);
    }
    g_autoptr(DIR) dir = ic_dir_fdopen(fd, "instances dir", instances_path, error);
    if (dir == NULL)
        return FALSE;
    g_autoptr(GPtrArray) instances = g_ptr_array_new_with_free_func(g_free);
    for (;;) {
        struct dirent *entry;
        if (!ic_dir_read(dir, "instances dir", instances_path, &entry, error))
            return FALSE;
        if (entry == NULL)
            break;
        if (skip_dirs == NULL || !g_strv_contains(skip_dirs, entry->d_name))
            g_ptr_array_add(instances, g_strdup(entry->d_name));
    }
    /* Held for the walk: each chain member is looked up in it by name. */
    ic_autofd base_fd = open(base_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    walk_instances(usage, dirfd(dir), instances_path, instances, base_dir, base_fd, known, host,
                   max_threads);
    return TRUE;
}
