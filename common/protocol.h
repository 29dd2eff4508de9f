/* protocol.h — the removal protocol: the locks a starting VM and a removing pass share,
 * and the removal itself (bounded lock, filesystem witnesses re-read, re-decide, held-open,
 * identity and age re-check, unlink). Lock side: protocol-lock.c (GLib only, the hook links
 * it); removal side: protocol.c. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "cancel.h"
#include "config.h"
#include "ledger-store.h"
#include "report.h"
#include "usage.h"

G_BEGIN_DECLS

/* The usage lock: one file in the ledger dir whose name no host's file can take
 * (host names never start with '.'). Two one-byte OFD lock ranges in it:
 *  - the intent byte: a pass holds it exclusive from before it waits for the
 *    usage byte until it is done; a hook takes it shared and lets it go at once
 *    before it asks for the usage byte, so a waiting pass is not starved by a
 *    stream of starts (new starts queue behind it);
 *  - the usage byte: the hook holds it shared across its prepare ledger write,
 *    the pass exclusive while it re-reads, re-decides and unlinks. */
#define IC_PROTOCOL_LOCK_NAME   ".usage.lock"
#define IC_PROTOCOL_INTENT_BYTE 0
#define IC_PROTOCOL_USAGE_BYTE  1

/* The bounds (milliseconds). A pass waits at most REMOVAL_WAIT for the lock
 * (then removes nothing this round) and stops unlinking once it has held it for
 * HOLD_LIMIT. A VM start waits at most prepare_lock_wait_seconds (config, 20 s by
 * default: START_WAIT) for the usage lock (then the hook records without it, or
 * refuses under strict_prepare), plus HOST_WAIT for its host file's lock.
 * START_WAIT > REMOVAL_WAIT + HOLD_LIMIT leaves the pass's re-read under the lock
 * (ledgers, instance disks' headers, /proc) 10 s of margin. */
#define IC_PROTOCOL_REMOVAL_WAIT_MS 5000
#define IC_PROTOCOL_HOLD_LIMIT_MS   5000
#define IC_PROTOCOL_START_WAIT_MS   20000
#define IC_PROTOCOL_HOST_WAIT_MS    10000

/* TRUE to stop waiting (cancelled); see ic_protocol_lock_file_at. */
typedef gboolean (*IcProtocolStopFunc)(gpointer data);

/* Takes an OFD lock on byte @byte (-1: the whole file) of @name in @dirfd
 * (created 0644, never through a symlink), polling F_OFD_SETLK with backoff
 * (1 ms doubling to 50 ms) until @deadline_us (monotonic µs); never blocks in
 * the kernel, so the wait is bounded and cancellable. @fd >= 0 reuses an open
 * lock file and @name is only for messages. Errors: IC_ERROR_BUSY (deadline),
 * IC_ERROR_CANCELLED (@stop said so), IC_ERROR_IO. *ret_fd (when @fd < 0) holds
 * the lock until closed. */
gboolean ic_protocol_lock_file_at(int dirfd, int fd, const char *name, int byte, gboolean exclusive,
                                  gint64 deadline_us, IcProtocolStopFunc stop, gpointer stop_data,
                                  int *ret_fd, GError **error);

/* The hook's side, at prepare: the usage lock shared, waited for at most
 * @timeout_ms (after passing the intent byte). Creates the ledger dir's last
 * component when missing. IC_ERROR_BUSY on timeout. */
gboolean ic_protocol_lock_for_start(const char *ledger_dir, gint64 timeout_ms, int *ret_fd,
                                    GError **error);

/* The same in the ledger dir already open as @dirfd (ic_ledger_open_dir), so a
 * caller that then records in it opens it once; @ledger_dir names it in errors. */
gboolean ic_protocol_lock_for_start_at(int dirfd, const char *ledger_dir, gint64 timeout_ms,
                                       int *ret_fd, GError **error);

/* The pass's side: the intent byte, then the usage byte, both exclusive, within
 * @timeout_ms in all, cancellable by @cancel (may be NULL). IC_ERROR_BUSY
 * on timeout, IC_ERROR_CANCELLED when cancelled; closing *ret_fd releases both. */
gboolean ic_protocol_lock_for_removal(const char *ledger_dir, gint64 timeout_ms, IcCancel *cancel,
                                      int *ret_fd, GError **error);

/* The same with any stop function instead of @cancel. */
gboolean ic_protocol_lock_exclusive(const char *ledger_dir, gint64 timeout_ms,
                                    IcProtocolStopFunc stop, gpointer stop_data, int *ret_fd,
                                    GError **error);

/* ---- which ledger dir may be trusted ---- */

/* The file that proves a ledger dir outside instances_path is the shared
 * ledger (an unmounted share's mount point is an empty dir, which would read
 * as "no host uses anything"). Written only by `imagecachectl ledger --init`. */
#define IC_PROTOCOL_LEDGER_MARKER ".imagecache-ledger"

/* TRUE when the ledger dir is below instances_path with no symlink on the way
 * (a missing one is then a host with nothing recorded yet). */
gboolean ic_protocol_ledger_dir_is_local(const IcConfig *config);

/* Whether the ledger dir may be read and written. Local: TRUE; when missing,
 * @create makes it, else *ret_missing says so. Elsewhere: it must exist and
 * hold IC_PROTOCOL_LEDGER_MARKER, else IC_ERROR_UNSAFE saying how to confirm
 * it; it is never created. Every reader and writer of the ledger calls this
 * first (the pass, the hook, reconcile). */
gboolean ic_protocol_ledger_dir_check(const IcConfig *config, gboolean create,
                                      gboolean *ret_missing, GError **error);

/* For a dry run: whether ic_protocol_lock_for_removal could take the lock
 * (the ledger dir usable, the lock file openable or creatable, the filesystem
 * able to lock), without taking it and without creating anything. A holder
 * right now is no failure (the run waits for it). */
gboolean ic_protocol_lock_probe(const IcConfig *config, GError **error);

/* ---- the removal ---- */

typedef enum {
    IC_PROTOCOL_STAGE_BEFORE_LOCK, /* decided from the first read, lock not yet asked for (name
                                      NULL) */
    IC_PROTOCOL_STAGE_LOCKED,      /* exclusive usage lock held, nothing re-read yet (name NULL) */
    IC_PROTOCOL_STAGE_BEFORE_UNLINK, /* witnesses re-read and the file re-decided as still
                                        removable; about to re-check identity/age and unlink @name
                                      */
} IcProtocolStage;

/* Tests only: called at each stage (production leaves it NULL). */
typedef void (*IcProtocolSeamFunc)(IcProtocolStage stage, const char *name, gpointer user_data);

/* The witnesses that live on the filesystem, read afresh: every host's ledger in
 * config->ledger_dir and the instances dir; merged with @given (users the caller
 * knows directly) and @asked (what the external witnesses, libvirt, answered
 * before the lock), either may be NULL. A ledger that cannot be read (or a
 * missing ledger dir outside instances_path) marks the usage incomplete. Fails
 * only when the instances dir cannot be listed. @ret_counts may be NULL.
 * @ledger_cache (may be NULL) spares re-reading host files that did not change.
 * @known (may be NULL): the pass's scan of the base dir, taken before the lock;
 * base files spelled as it lists them are told from it, not asked again (the
 * removal re-checks each file's identity before it unlinks). */
gboolean ic_protocol_read_witnesses(const IcConfig *config, IcLedgerCache *ledger_cache,
                                    const IcScan *known, const IcUsage *given, const IcUsage *asked,
                                    guint walk_threads, gint64 now, IcUsage **ret_usage,
                                    IcLedgerCounts *ret_counts, GError **error);

/* ic_protocol_read_witnesses in two halves, for a pass that scans the base dir
 * meanwhile: the start merges @given and reads the ledger; the finish adds
 * @asked and the instances dir (told by @known) and consumes @reading. Free
 * an unfinished reading with ic_protocol_reading_free. */
typedef struct _IcProtocolReading IcProtocolReading;
IcProtocolReading *ic_protocol_reading_start(const IcConfig *config, IcLedgerCache *ledger_cache,
                                             const IcUsage *given, gint64 now);
gboolean ic_protocol_reading_finish(IcProtocolReading *reading, const IcScan *known,
                                    const IcUsage *asked, guint walk_threads, IcUsage **ret_usage,
                                    IcLedgerCounts *ret_counts, GError **error);
void ic_protocol_reading_free(IcProtocolReading *reading);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcProtocolReading, ic_protocol_reading_free)

/* Re-decides @row from @usage with the pure policy (and @held_open) and sets
 * row->action to what is planned now; the pass owns how facts are assembled. */
typedef void (*IcProtocolDecideFunc)(IcImageRow *row, const IcUsage *usage, gboolean held_open,
                                     gpointer data);

/* One planned removal or quarantine. */
typedef struct {
    IcImageRow *row;  /* row->action: IC_ACTION_WOULD_REMOVE or IC_ACTION_WOULD_QUARANTINE */
    gboolean scanned; /* the first read saw the file: @dev/@ino are its identity */
    dev_t dev;
    ino_t ino;
} IcProtocolPlan;

typedef struct {
    const IcConfig *config;
    int dirfd;            /* the base dir */
    const IcUsage *given; /* may be NULL */
    const IcUsage *asked; /* the external witnesses' answer from before the lock; may be NULL */
    const IcScan *known;  /* the scan the plans came from; may be NULL */
    guint walk_threads;   /* threads walking the instances dir; 0: one per core */
    gint64 now;
    IcCancel *cancel;       /* may be NULL */
    const char *proc_root;  /* NULL: "/proc" */
    gint64 lock_timeout_ms; /* 0: IC_PROTOCOL_REMOVAL_WAIT_MS */
    gint64 hold_limit_ms;   /* 0: IC_PROTOCOL_HOLD_LIMIT_MS */
    IcProtocolDecideFunc decide;
    gpointer decide_data;
    IcProtocolSeamFunc seam;
    gpointer seam_data;
} IcProtocolRemoval;

/* Carries out @plans (IcProtocolPlan*) on the base dir: takes the exclusive
 * usage lock (bounded, cancellable), re-reads only the filesystem witnesses
 * (@removal->asked is reused, never asked again under the lock), re-decides
 * each plan, keeps a file some process holds open or maps, re-checks identity
 * and age and unlinks relative to the base dir fd. What cannot be done (lock
 * busy, hold limit reached, cancelled) is kept, with an event and
 * report->removal_deferred saying why. A file already gone is reported as such,
 * not as a failure. Never fails: when the witnesses cannot be re-read or the
 * held-open check cannot run, everything is kept (usage_unknown) and said. */
void ic_protocol_remove(const IcProtocolRemoval *removal, GPtrArray *plans, IcReport *report);

/* A dry run's stand-in for ic_protocol_remove: when the run could not take the
 * lock (ic_protocol_lock_probe), @plans are kept as removal_deferred, with the
 * same note and event a run gives; otherwise they stay as planned. */
void ic_protocol_preview(const IcConfig *config, GPtrArray *plans, IcReport *report);

G_END_DECLS
