/* alerts.h — the notifications the collectd plugin sends, as plain data: the
 * alert state machine (a file turns corrupt, absent or unremovable, and back)
 * and the pass's failure and liveness notifications. */
#pragma once

#include <glib.h>

#include "metrics.h"
#include "report.h"

G_BEGIN_DECLS

typedef enum {
    IC_NOTIFY_FAILURE, /* collectd NOTIF_FAILURE */
    IC_NOTIFY_WARNING, /* collectd NOTIF_WARNING */
    IC_NOTIFY_OKAY,    /* collectd NOTIF_OKAY */
} IcNotifySeverity;

const char *ic_notify_severity_to_string(IcNotifySeverity severity);

typedef struct {
    IcNotifySeverity severity;
    char *file;            /* the base file: the notification's plugin_instance */
    const char *condition; /* static: "corrupt", "absent", "remove_failed", "pass_failed",
                            * "pass_overdue", "not_started" (type_instance) */
    char *message;
} IcNotification;

void ic_notification_free(IcNotification *notification);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcNotification, ic_notification_free)

/* The alert conditions of each base file as of the last report: a file turns
 * corrupt (FAILURE), an in-use file is absent (WARNING), a removal failed
 * (WARNING); each raises one notification when it starts and one OKAY when it
 * clears (the file verified good again, back, no longer failing, or gone). */
typedef struct _IcAlertState IcAlertState;

IcAlertState *ic_alert_state_new(void);
void ic_alert_state_free(IcAlertState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcAlertState, ic_alert_state_free)

/* Compares @report with @state, updates @state and returns the notifications
 * (IcNotification*, caller frees the array) for the conditions that changed,
 * in file order. A corrupt file whose checksum was not verified this time
 * (an error reading it) stays corrupt: OKAY needs a good digest or the file gone. */
GPtrArray *ic_alert_state_update(IcAlertState *state, const IcReport *report);

/* A pass failed with @message (@failed_passes in a row): one FAILURE
 * "pass_failed" (empty file) for the first failure, NULL for the next ones. */
IcNotification *ic_notification_pass_failed(guint failed_passes, const char *message);
/* The pass is overdue: none has finished for more than 2 x @pass_interval
 * (before the first, since @started):
 * the worker hangs. Updates *@overdue and returns one FAILURE "pass_overdue"
 * when it turns overdue, one OKAY when a pass finishes again, else NULL. */
IcNotification *ic_notification_liveness(gboolean *overdue, const IcPassStatus *status,
                                         gint64 started, gint64 now, gint64 pass_interval);
/* A pass succeeded after @failed_passes failures: one OKAY "pass_failed", NULL
 * when none had failed. */
IcNotification *ic_notification_pass_recovered(guint failed_passes);

G_END_DECLS
