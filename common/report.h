/* report.h — the outcome of a pass: one row per base file, totals and events,
 * rendered as an aligned table or JSON. The plugin dispatches the same data. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdio.h>

#include "checksum.h"
#include "policy.h"
#include "scan.h"
#include "usage.h"

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
    GPtrArray *users; /* char*, NULL-terminated */
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

/* What the pass counted, one number per field; report.c's table describes
 * each (ic_totals_info), and every output lists them from it. */
typedef struct {
    guint64 images;
    guint64 bytes_total;
    guint64 active;
    guint64 bytes_active;
    guint64 removable;
    guint64 bytes_removable;
    guint64 too_young;
    guint64 corrupt;
    guint64 kept;
    guint64 pinned;
    guint64 absent;
    guint64 quarantined;
    guint64 bytes_quarantined;
    guint64 removed;
    guint64 bytes_reclaimed;
    guint64 remove_failed;
} IcTotals;

typedef enum {
    IC_TOTAL_COUNT, /* of base files */
    IC_TOTAL_BYTES, /* their sizes, summed */
} IcTotalUnit;

/* Where the table's totals lines show a total. */
typedef enum {
    IC_TOTAL_TEXT_NONE,
    IC_TOTAL_TEXT_HEAD,  /* starts the first line, "N words: " */
    IC_TOTAL_TEXT_LINE,  /* starts a new line */
    IC_TOTAL_TEXT_ITEM,  /* ", N words" */
    IC_TOTAL_TEXT_PAREN, /* " (N words)" after the one before */
} IcTotalText;

/* One total: its name in JSON "totals" and check perfdata, what it counts
 * (the rows with one of @verdicts or @actions, or pinned, or present), and how
 * the table text, the collectd values and the check show it. */
typedef struct {
    const char *name;
    IcTotalUnit unit;
    size_t offset;      /* of its guint64 in IcTotals */
    guint verdicts;     /* bits 1 << IcVerdict */
    guint actions;      /* bits 1 << IcAction */
    gboolean pinned;    /* rows with a pinned_images match */
    gboolean present;   /* rows whose file is there */
    IcTotalText text;   /* place in the table's totals lines */
    const char *words;  /* there ("too young"); NULL: the value alone */
    const char *metric; /* collectd type instance (type "count" or "bytes"), NULL: none */
    gboolean perfdata;  /* in `report --check`'s perfdata */
} IcTotalInfo;

/* The totals, in the order every output lists them; *ret_n of them. */
const IcTotalInfo *ic_totals_info(gsize *ret_n);
guint64 ic_totals_value(const IcTotals *totals, const IcTotalInfo *info);

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
    GPtrArray *notes;   /* char*, from the witnesses and the pass */
    GArray *note_codes; /* IcNoteCode of each note, same index */
    IcTotals totals;
    double duration_seconds;
    gboolean disk_known; /* statvfs of the base dir's filesystem succeeded */
    guint64 disk_total_bytes;
    guint64 disk_used_bytes;
    gboolean disk_pressure;             /* use was at or above the high watermark */
    gint64 disk_high_watermark_percent; /* from the config; 0: eviction for space is off */
    gint64 disk_low_watermark_percent;
    IcLedgerCounts ledger;
    char *removal_deferred; /* why planned removals were kept this round (lock busy,
                               hold limit, cancelled), NULL when none were */
} IcReport;

/* The version of the JSON documents below (docs/report.schema.json): raised
 * when a field changes meaning or goes away, not when one is added. */
#define IC_REPORT_FORMAT_VERSION 1

IcReport *ic_report_new(const char *base_dir, const char *host, gint64 now);
void ic_report_free(IcReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcReport, ic_report_free)

IcImageRow *ic_report_add_row(IcReport *report, const char *name);

/* A row for @name, in no report yet: for a caller that places it in
 * report->rows itself (the pass's decide threads, each in its own slots). */
IcImageRow *ic_image_row_new(const char *name);

/* Epoch seconds as ISO 8601 in UTC ("2026-11-29T17:11:54Z"; "@<epoch>" out of
 * range), as every human output prints times; caller frees. */
char *ic_format_time(gint64 epoch);

/* @text with control characters, invalid UTF-8 and '\\' as \\xNN: every name
 * a text report prints goes through it (a name may hold any bytes). */
char *ic_text_printable(const char *text);

/* The row's users joined with ", " ("" when none); caller frees. */
char *ic_image_row_users_text(const IcImageRow *row);
const IcImageRow *ic_report_lookup(const IcReport *report, const char *name);
void ic_report_add_event(IcReport *report, IcEventLevel level, const char *file, const char *format,
                         ...) G_GNUC_PRINTF(4, 5);

/* Adds a note with its code (see usage.h). */
void ic_report_add_note(IcReport *report, IcNoteCode code, const char *text);

/* TRUE when the pass found corrupt or in-use-but-absent files: what
 * `imagecachectl report` turns into its "problems found" exit status. */
gboolean ic_report_has_problems(const IcReport *report);

/* Sorts rows and recomputes the totals from them. */
void ic_report_finish(IcReport *report);

/* Rows removed in this pass for @reason: how many and how many bytes. */
void ic_report_removed_by_reason(const IcReport *report, IcReason reason, guint *ret_count,
                                 guint64 *ret_bytes);

/* Why @row gets its verdict, in full: each witness's answer (or that it was
 * not consulted), age ("in use" for a file in use) and thresholds, times in
 * ISO 8601, checksum state, pinning, disk pressure. For `report --explain`. */
char *ic_report_explain(const IcReport *report, const IcImageRow *row);

/* The same as one JSON object {"format_version", "base_dir", "host", "now",
 * "image": {as in "images"}, "why", "witnesses": [...], "filesystem", "notes"}. */
char *ic_report_explain_to_json(const IcReport *report, const IcImageRow *row);

/* Logs every event once through g_log in the "imagecache" domain
 * (warnings as G_LOG_LEVEL_WARNING…): the edges call this, the library never logs. */
void ic_report_log_events(const IcReport *report);

/* The states of a monitoring check (Monitoring Plugins guidelines: Nagios,
 * Icinga, Naemon), which are also its exit statuses. */
typedef enum {
    IC_CHECK_OK = 0,
    IC_CHECK_WARNING = 1,  /* removal is blocked or failed, or the disk is above the watermark */
    IC_CHECK_CRITICAL = 2, /* corrupt or in-use-but-absent files, or no base dir */
    IC_CHECK_UNKNOWN = 3,  /* the check could not run (the caller's case) */
} IcCheckState;

/* The report as one check line, "IMAGECACHE <STATE> - <summary> | <perfdata>",
 * and its state in @ret_state. Caller frees. */
char *ic_report_to_check(const IcReport *report, IcCheckState *ret_state);

/* Human output: an aligned table, a totals line, skipped entries and notes. */
char *ic_report_to_table(const IcReport *report);

/* One JSON object {"format_version", "base_dir", "base_dir_exists", "host",
 * "now", "dry_run", "duration_seconds", "filesystem": {...}, "images": [...],
 * "totals": {...}, "skipped": [...], "events": [...], "notes": [{"code", ...}]};
 * docs/report.schema.json is its schema. */
char *ic_report_to_json(const IcReport *report);

/* The same document streamed to @out as it is written (no whole copy of it in
 * memory); FALSE with @error set when writing failed. The rows are formatted
 * on up to @threads threads, this one included (0: one per core, up to 4),
 * chunk by chunk, and written in order: the same bytes. */
gboolean ic_report_write_json(const IcReport *report, FILE *out, guint threads, GError **error);

G_END_DECLS
