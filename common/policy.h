/* policy.h — the verdict on each base file, as a pure function of plain facts.
 * Every rule about keeping or removing a base file is here; no I/O, no clock. */
#pragma once

#include <glib.h>

#include "checksum.h"
#include "config.h"
#include "scan.h"

G_BEGIN_DECLS

typedef enum {
    IC_VERDICT_ACTIVE = 0, /* in use: kept, mtime refreshed */
    IC_VERDICT_REMOVABLE,  /* unused for longer than its threshold, or evicted for space */
    IC_VERDICT_TOO_YOUNG,  /* unused, but not for long enough yet */
    IC_VERDICT_CORRUPT,    /* checksum mismatch: kept (or quarantined) and reported */
    IC_VERDICT_ABSENT,     /* in use, but the file is not there */
    IC_VERDICT_KEPT, /* unused and old, but kept: pinned, removal off, usage unknown, held open */
    IC_VERDICT_QUARANTINED, /* a corrupt file in <base_dir>/.quarantine/ */
} IcVerdict;

const char *ic_verdict_to_string(IcVerdict verdict);

/* Why a file gets its verdict. The names are part of the JSON report
 * (docs/report.schema.json lists them: test-contrib checks the list) and of
 * the collectd values; a new reason is one enum value and one table row. */
typedef enum {
    IC_REASON_IN_USE_LOCAL = 0,
    IC_REASON_IN_USE_REMOTE,
    IC_REASON_CORRUPT,
    IC_REASON_PINNED,
    IC_REASON_HELD_OPEN,
    IC_REASON_DISK_PRESSURE,
    IC_REASON_TOO_YOUNG,
    IC_REASON_USAGE_UNKNOWN,
    IC_REASON_REMOVAL_DISABLED,
    IC_REASON_UNUSED,
    IC_REASON_QUARANTINED,
    IC_REASON_QUARANTINE_EXPIRED,
    IC_REASON_REMOVAL_DEFERRED, /* set by the removal protocol, not the policy */
    IC_REASON_ALREADY_GONE,     /* the same */
    _IC_REASON_MAX,
} IcReason;

typedef struct {
    const char *name;            /* in JSON ("reason"), events and metric names */
    const char *words;           /* the WHY column; the report fills in {users}, {threshold},
                                    {pinned_by}, {expected} and {actual} */
    const char *removed_value;   /* collectd count of removals for this reason, or NULL */
    const char *reclaimed_value; /* its bytes, NULL with removed_value */
} IcReasonInfo;

/* The table row of @reason (any value below _IC_REASON_MAX). */
const IcReasonInfo *ic_reason_info(IcReason reason);
const char *ic_reason_to_string(IcReason reason);

/* What the policy knows of one base file. */
typedef struct {
    IcImageKind kind;
    gboolean present; /* FALSE for a file users name but the scan did not find */
    gint64 mtime;
    gint64 last_used;  /* when a domain last released it (ledger), 0: unknown */
    gint64 disk_bytes; /* what removing it frees */
    guint local_users;
    guint remote_users;
    gboolean pinned;
    gboolean usage_incomplete; /* a witness could not be read: never remove */
    gboolean held_open;        /* a process has it open: never remove */
    IcChecksumState checksum;
    gboolean sidecar_is_digest; /* the sidecar held a well-formed SHA-1 */
    gboolean quarantined;       /* it sits in the quarantine dir; mtime is when it went there */
    gboolean evict_for_space;   /* chosen by ic_policy_select_for_space */
} IcPolicyFacts;

typedef struct {
    IcVerdict verdict;
    IcReason reason;
    gint64 age;          /* time unused: now - max(mtime, last_used), 0 when absent */
    gint64 threshold;    /* the minimum age that applied */
    gboolean quarantine; /* CORRUPT and may be moved to the quarantine dir */
} IcPolicyDecision;

/* The verdict on one file. Reasons, strongest rule first: IN_USE_LOCAL,
 * IN_USE_REMOTE (ACTIVE, or ABSENT when not present); CORRUPT (CORRUPT;
 * ->quarantine when it may be moved away: quarantine on, unused, not pinned,
 * not held open, every witness read, and the sidecar a real digest, so a
 * damaged sidecar never sends a good image away); PINNED, HELD_OPEN (KEPT);
 * TOO_YOUNG; USAGE_UNKNOWN, REMOVAL_DISABLED (KEPT); DISK_PRESSURE or UNUSED
 * (REMOVABLE); for quarantined files QUARANTINED or QUARANTINE_EXPIRED. */
IcPolicyDecision ic_policy_decide(const IcPolicyFacts *facts, const IcConfig *config, gint64 now);

typedef struct {
    guint64 total_bytes; /* 0: unknown, no eviction for space */
    guint64 used_bytes;
} IcDiskUsage;

/* Disk pressure, kubelet-style: when @disk is at or above the high watermark,
 * marks evict_for_space on unused files (too young for the age rule but past
 * the floor, not pinned, not corrupt), least recently used first, until the
 * files already removable plus those chosen bring use to the low watermark.
 * Returns how many were chosen. Pure. */
guint ic_policy_select_for_space(IcPolicyFacts *const *facts, guint n_facts, const IcConfig *config,
                                 const IcDiskUsage *disk, gint64 now);

G_END_DECLS
