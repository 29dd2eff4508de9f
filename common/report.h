/* report.h — the outcome of a pass: one row per base file, totals and events,
 * rendered as an aligned table or JSON. The plugin dispatches the same data. */
#pragma once

#include <glib.h>

#include "checksum.h"
#include "policy.h"
#include "scan.h"

G_BEGIN_DECLS

typedef enum {
    IC_ACTION_NONE = 0,
    IC_ACTION_TOUCHED, /* in use: mtime refreshed */
    IC_ACTION_REMOVED,
    IC_ACTION_WOULD_REMOVE, /* dry run or report */
    IC_ACTION_REMOVE_FAILED,
    IC_ACTION_QUARANTINED,      /* a corrupt unused file moved to <base_dir>/.quarantine/ */
    IC_ACTION_WOULD_QUARANTINE, /* dry run or report */
} IcAction;

const char *ic_action_to_string(IcAction action);

typedef struct {
    char *name; /* file name in the base dir; ".quarantine/<name>" for quarantined files */
    IcImageKind kind;
    char *fingerprint;
    char *image_id; /* where a witness knew it, else NULL */
    gboolean present;
    gboolean in_quarantine;
    gint64 size;
    gint64 mtime;
    guint local_users;
    guint remote_users;
    GPtrArray *users; /* char* */
    guint witnesses;  /* IcWitness bits */
    IcChecksumResult checksum;
    gint64 last_used;      /* when a domain last released it, 0 unknown */
    const char *pinned_by; /* the pinned_images pattern that matched, or NULL */
    IcPolicyDecision decision;
    IcAction action;
    char *error; /* why the action failed, NULL otherwise */
} IcImageRow;

typedef enum {
    IC_EVENT_INFO,
    IC_EVENT_WARNING,
    IC_EVENT_ERROR,
} IcEventLevel;

typedef struct {
    IcEventLevel level;
    char *file; /* base file concerned, NULL for the pass as a whole */
    char *message;
} IcEvent;

typedef struct {
    guint images;
    guint active;
    guint removable;
    guint too_young;
    guint corrupt;
    guint absent;
    guint kept;
    guint pinned;
    guint quarantined;
    guint64 bytes_quarantined;
    guint removed;
    guint remove_failed;
    guint64 bytes_total;
    guint64 bytes_active;
    guint64 bytes_removable;
    guint64 bytes_reclaimed;
} IcTotals;

/* What the ledger witness saw (the pass reads every host's ledger itself). */
typedef struct {
    gboolean known; /* FALSE when the ledger could not be read in full */
    guint hosts;
    guint stale_hosts;
} IcLedgerCounts;

typedef struct {
    char *base_dir;
    gboolean base_dir_exists;
    char *host;
    gint64 now;
    gboolean dry_run;   /* actions were only planned */
    GPtrArray *rows;    /* IcImageRow*, sorted by name */
    GPtrArray *skipped; /* IcSkippedEntry* from the scan */
    GPtrArray *events;  /* IcEvent*, in order */
    GPtrArray *notes;   /* char*, from the witnesses */
    IcTotals totals;
    double duration_seconds;
    gboolean disk_known; /* statvfs of the base dir's filesystem succeeded */
    guint64 disk_total_bytes;
    guint64 disk_used_bytes;
    gboolean disk_pressure; /* use was at or above the high watermark */
    IcLedgerCounts ledger;
    char *removal_deferred; /* why planned removals were kept this round (lock busy,
                               hold limit, cancelled), NULL when none were */
} IcReport;

IcReport *ic_report_new(const char *base_dir, const char *host, gint64 now);
void ic_report_free(IcReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcReport, ic_report_free)

IcImageRow *ic_report_add_row(IcReport *report, const char *name);

/* The row's users joined with ", " ("" when none); caller frees. */
char *ic_image_row_users_text(const IcImageRow *row);
const IcImageRow *ic_report_lookup(const IcReport *report, const char *name);
void ic_report_add_event(IcReport *report, IcEventLevel level, const char *file, const char *format,
                         ...) G_GNUC_PRINTF(4, 5);

/* Sorts rows and recomputes the totals from them. */
void ic_report_finish(IcReport *report);

/* Rows removed in this pass for @reason: how many and how many bytes. */
void ic_report_removed_by_reason(const IcReport *report, const char *reason, guint *ret_count,
                                 guint64 *ret_bytes);

/* The distinct reasons of the rows removed in this pass (static strings). */
GPtrArray *ic_report_removal_reasons(const IcReport *report);

/* Why @row gets its verdict, in full: each witness's answer, age and
 * thresholds, checksum state, pinning, disk pressure. For `report --explain`. */
char *ic_report_explain(const IcReport *report, const IcImageRow *row);

/* Logs every event once through g_log in the "imagecache" domain
 * (warnings as G_LOG_LEVEL_WARNING…): the edges call this, the library never logs. */
void ic_report_log_events(const IcReport *report);

/* Human output: an aligned table, a totals line, skipped entries and notes. */
char *ic_report_to_table(const IcReport *report);

/* One JSON object {"base_dir", "host", "now", "dry_run", "images": [...],
 * "totals": {...}, "skipped": [...], "events": [...], "notes": [...]}. */
char *ic_report_to_json(const IcReport *report);

G_END_DECLS
