/* policy.h — the verdict on each base file, as a pure function of plain facts.
 * Every rule about keeping or removing a base file is here; no I/O, no clock. */
#pragma once

#include <glib.h>

#include "checksum.h"
#include "scan.h"

G_BEGIN_DECLS

typedef enum {
    IC_VERDICT_ACTIVE = 0,  /* in use: kept, mtime refreshed */
    IC_VERDICT_REMOVABLE,   /* unused for longer than its threshold */
    IC_VERDICT_TOO_YOUNG,   /* unused, but not for long enough yet */
    IC_VERDICT_CORRUPT,     /* checksum mismatch: kept and reported */
    IC_VERDICT_ABSENT,      /* in use locally, but the file is not there */
    IC_VERDICT_KEPT,        /* unused and old, but kept (removal off, usage incomplete) */
} IcVerdict;

const char *ic_verdict_to_string(IcVerdict verdict);

typedef struct {
    gboolean remove_unused;
    gint64 original_minimum_age;
    gint64 resized_minimum_age; /* also for _sm files */
} IcPolicyConfig;

/* What the policy knows of one base file. */
typedef struct {
    IcImageKind kind;
    gboolean present;         /* FALSE for a file users name but the scan did not find */
    gint64 mtime;
    guint local_users;
    guint remote_users;
    gboolean usage_incomplete; /* a witness could not be read: never remove */
    IcChecksumState checksum;
} IcPolicyFacts;

typedef struct {
    IcVerdict verdict;
    const char *reason;  /* static string: in_use_local, in_use_remote, unused, too_young, … */
    gint64 age;          /* now - mtime, 0 when absent */
    gint64 threshold;    /* the minimum age that applied */
} IcPolicyDecision;

IcPolicyDecision ic_policy_decide(const IcPolicyFacts *facts, const IcPolicyConfig *config,
                                  gint64 now);

G_END_DECLS
