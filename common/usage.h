/* usage.h — who uses which base file: the witnesses' answers merged into one table.
 * Users are keyed by base file path and by image fingerprint; any user keeps a file. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "scan.h"

G_BEGIN_DECLS

typedef enum {
    IC_WITNESS_LEDGER = 1 << 0,        /* the hook's usage ledger */
    IC_WITNESS_LIBVIRT = 1 << 1,       /* live domains of this host */
    IC_WITNESS_INSTANCES_DIR = 1 << 2, /* <instances_path>/<name>/disk* backing chains */
    IC_WITNESS_STATIC = 1 << 3,        /* added directly (tests, usage lists) */
    _IC_WITNESS_MAX = 1 << 4,          /* one past the last bit; loops stop below it */
} IcWitness;

/* Every witness, in the order explain and JSON list them. */
#define IC_WITNESS_FOREACH(w) for (IcWitness w = 1; w < _IC_WITNESS_MAX; w <<= 1)

const char *ic_witness_to_string(IcWitness witness);
/* Whether `report --explain` lists @witness even where it named no user: the
 * three of design.md do; "static" (users a caller passed in) only when it did. */
gboolean ic_witness_always_listed(IcWitness witness);

/* What a note says, as a stable machine-readable code (JSON "code"); the
 * text says it for people. Each code fixes whether the note blocks removal and
 * which witness it is about. */
typedef enum {
    IC_NOTE_LEDGER_DAMAGED,         /* a host's ledger file is damaged */
    IC_NOTE_LEDGER_STALE,           /* a host's ledger is not refreshed (still counted) */
    IC_NOTE_LEDGER_DIR_MISSING,     /* ledger dir outside instances_path missing or unmarked */
    IC_NOTE_LEDGER_UNREADABLE,      /* the ledger dir could not be read */
    IC_NOTE_LIBVIRT_UNREACHABLE,    /* live domains not consulted: no connection */
    IC_NOTE_LIBVIRT_UNSUPPORTED,    /* live domains not consulted: built without libvirt */
    IC_NOTE_LIVE_DOMAIN_UNREADABLE, /* a live domain's XML or chain could not be read */
    IC_NOTE_INSTANCE_UNREADABLE,    /* an instance dir or disk could not be read */
    IC_NOTE_BASE_DIR_MISSING,       /* the base dir does not exist (unmounted share?) */
    IC_NOTE_QUARANTINE_UNUSABLE,    /* <base_dir>/.quarantine is not a directory */
    IC_NOTE_REMOVAL_DEFERRED,       /* planned removals kept this round (lock busy, cancelled) */
    IC_NOTE_DOMAIN_USAGE_UNKNOWN,   /* a recorded domain has a disk that could not be followed */
    IC_NOTE_HOST_NAME_COLLISION,    /* this host's ledger file was written by another machine */
    _IC_NOTE_MAX,
} IcNoteCode;

/* The code's stable name ("libvirt_unreachable"). */
const char *ic_note_code_to_string(IcNoteCode code);
/* Whether a note with @code means a witness might have named any base file. */
gboolean ic_note_code_blocks_removal(IcNoteCode code);
/* The witness a note with @code is about, 0 for none. */
IcWitness ic_note_code_witness(IcNoteCode code);
/* TRUE when a note with @code means its witness was not asked at all. */
gboolean ic_note_code_not_consulted(IcNoteCode code);

/* A user is a domain, known by its UUID and shown by its name. Witnesses know
 * different halves: the ledger and libvirt both, the instances dir only its
 * directory's name (the UUID under Nova, the domain's name in old layouts).
 * One domain named by several witnesses is one user. Its strings belong to
 * the IcUsage that made the set (each kept there once, however many files
 * the domain uses): they live as long as that usage. */
typedef struct {
    const char *uuid; /* lowercase; NULL where no witness told it */
    const char *name; /* NULL where no witness told it */
    const char *host; /* NULL for a user on this host */
} IcUser;

/* How reports show @user: "name" on this host, "name@host" on another (the
 * UUID where no witness knew the name); the caller frees it. */
char *ic_user_label(const IcUser *user);

/* Users a set holds in its own allocation: a base file has a handful (the
 * bench's trees: 4-6), and an array of its own cost each set a second
 * allocation, up to four reallocs while it grew, a free, and a cache miss on
 * every lookup at ten times the size (issue 15). */
#define IC_USERS_INLINE 6

typedef struct {
    guint local;      /* users on this host */
    guint remote;     /* users on other hosts sharing the storage */
    guint witnesses;  /* IcWitness bits of every witness that named a user */
    guint len;        /* users in @users */
    IcUser *users;    /* one per user, in the order witnesses first named them; points
                       * to @inline_users while they fit (never copy an IcUsers) */
    guint alloc;      /* private: room in @users */
    GHashTable *seen; /* private: each user's UUID and name -> index + 1; NULL while the
                       * set is small (searched user by user) */
    IcUser inline_users[IC_USERS_INLINE]; /* private: @users while they fit */
} IcUsers;

typedef struct {
    GHashTable *by_path;        /* absolute base file path -> IcUsers* */
    GHashTable *by_fingerprint; /* image fingerprint -> IcUsers* */
    GHashTable *image_ids;      /* fingerprint -> image id, where known (for messages) */
    GHashTable *fingerprints;   /* private: image id -> its fingerprint, each computed once */
    GPtrArray *notes;           /* char*: what a witness could not tell (unreachable, stale) */
    GArray *note_codes;         /* IcNoteCode of each note, same index (notes stays char*
                                 * for the readers that print it) */
    gboolean incomplete;        /* a witness could not be read in full: remove nothing */
    GHashTable *last_used;      /* base file name -> gint64* when a domain last released it */
    GHashTable *by_identity;    /* private: (device, inode) -> the IcUsers* of by_path whose
                                 * path names that file (borrowed); see below */
    GStringChunk *strings;      /* private: the table keys and every user's strings, each
                                 * user's once (issue 15: a domain's UUID, name and label
                                 * copied into every file's set were most of the memory) */
    GHashTable *interned;       /* private: the strings of @strings that are kept once */
    const char *recent[4];      /* private: the strings @strings gave last (usage_intern) */
    guint recent_next;          /* private: the slot of @recent to replace next */
} IcUsage;

IcUsage *ic_usage_new(void);
void ic_usage_free(IcUsage *usage);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcUsage, ic_usage_free)

/* Records that the domain with @uuid and @name (either may be NULL, not both;
 * on @host, @local says whether that is this host) reaches the base file
 * @path through its backing chain. A user is counted once per path however
 * many disks or witnesses name it: by its UUID, else by its name. */
void ic_usage_add_path_user(IcUsage *usage, const char *path, const char *uuid, const char *name,
                            const char *host, gboolean local, IcWitness witness);

/* Records that a domain runs image @image_id; the user counts for every
 * variant (original, _sm, _<N>) of the image's fingerprint. */
void ic_usage_add_image_user(IcUsage *usage, const char *image_id, const char *uuid,
                             const char *name, const char *host, gboolean local, IcWitness witness);

/* Same, by fingerprint, for witnesses that only know it (the ledger). */
void ic_usage_add_fingerprint_user(IcUsage *usage, const char *fingerprint, const char *uuid,
                                   const char *name, const char *host, gboolean local,
                                   IcWitness witness);

/* A note for the report; a @code that blocks removal marks the usage
 * incomplete, because a witness that could not be read might have named any
 * base file. */
void ic_usage_add_note(IcUsage *usage, IcNoteCode code, const char *note);

/* The same, placed at @index of the notes (a reader that learns of a damaged
 * file after it added others' notes keeps the damage first). */
void ic_usage_insert_note(IcUsage *usage, guint index, IcNoteCode code, const char *note);

/* Remembers that a domain released the base file @path at @when (keeps the
 * latest). Keyed by the file's name within the base dir, so any spelling of
 * the base dir finds it. */
void ic_usage_add_last_used(IcUsage *usage, const char *path, gint64 when);

/* When a domain last released @path, or 0 when no witness knows. */
gint64 ic_usage_last_used(const IcUsage *usage, const char *path);

/* Adds everything @from knows (users, image ids, notes) to @into. */
void ic_usage_merge(IcUsage *into, const IcUsage *from);

const IcUsers *ic_usage_lookup_path(const IcUsage *usage, const char *path);
const IcUsers *ic_usage_lookup_fingerprint(const IcUsage *usage, const char *fingerprint);
const IcUsers *ic_usage_lookup_image(const IcUsage *usage, const char *image_id);

/* Indexes every path user by the identity (device, inode) of the file the
 * path names now, following symlinks (for a path into @known's base dir, the
 * scan's; @known may be NULL). Base files are matched by path first;
 * the identity catches the same file spelled another way (a symlinked
 * instances_path, "..", a bind mount), so such a user is never missed. */
void ic_usage_index_identities(IcUsage *usage, const IcScan *known);

/* The users of base file @name in @base_dir, merging its path, its
 * fingerprint and (after ic_usage_index_identities) its identity @dev/@ino
 * (@ino 0: none); a new IcUsers (possibly empty) the caller frees before
 * @usage, whose strings it shares. */
IcUsers *ic_usage_users_of(const IcUsage *usage, const char *base_dir, const char *name,
                           const char *fingerprint, dev_t dev, ino_t ino);
void ic_users_free(IcUsers *users);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcUsers, ic_users_free)

/* Records, as local users (the domain @uuid / @name, see
 * ic_usage_add_path_user), the base files in @base_dir among @files
 * (IcDiskFile*, from ic_probe_disk_files): each file is matched by where the
 * kernel resolves it, so a symlink or ".." leading into @base_dir counts.
 * @base_fd: @base_dir already open (O_PATH), or -1. */
void ic_usage_add_disk_files(IcUsage *usage, const GPtrArray *files, const char *base_dir,
                             int base_fd, const char *uuid, const char *name, const char *host,
                             IcWitness witness);

/* Parses Nova's disk.info ({"<disk path>": "<format>", …}) into a table of
 * disk name (last path component) -> format. Fails with IC_ERROR_FORMAT on
 * anything else, or on one name given two formats. */
gboolean ic_usage_parse_disk_info(const char *data, gsize len, GHashTable **ret_formats,
                                  GError **error);

/* The instances-dir witness (the reference's _list_backing_images): every
 * regular file named "disk" or "disk.*" in each <instances_path>/<name>/ is
 * read as <name>/disk.info declares (probed when it does not), and the files
 * it needs (ic_probe_disk_files) inside @base_dir are counted as local users:
 * the domain with UUID <name> when it is one (Nova's layout), else the domain
 * named <name>. @skip_dirs (NULL-terminated) are not instances (the base and
 * ledger dirs). @known (may be NULL): the pass's scan of @base_dir, which
 * spares the system calls that would tell base files again (ic_probe_cache_new_for_scan).
 * A disk whose header cannot be read is not fatal: it is noted
 * and marks the usage incomplete (it might use any base file); so are an
 * instance dir that is a dangling symlink (an unmounted volume) and a
 * disk.info that cannot be read. @max_threads: threads walking a large
 * instances dir, 0 for one per core (up to 4). */
gboolean ic_usage_add_instances_dir(IcUsage *usage, const char *instances_path,
                                    const char *base_dir, const IcScan *known,
                                    const char *const *skip_dirs, const char *host,
                                    guint max_threads, GError **error);

G_END_DECLS
