/* cancel.h — a cancellation flag: one thread raises it, the others poll it between steps.
 * The library's own GCancellable (GLib only), so its programs need not link GIO. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct IcCancel IcCancel;

/* A flag not yet raised; free it with ic_cancel_free once no thread polls it. */
IcCancel *ic_cancel_new(void);
void ic_cancel_free(IcCancel *cancel);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcCancel, ic_cancel_free)

/* Raises the flag, from any thread; it stays raised. NULL: nothing happens. */
void ic_cancel_cancel(IcCancel *cancel);

/* TRUE once ic_cancel_cancel was called; FALSE for NULL (nothing can cancel). */
gboolean ic_cancel_is_cancelled(const IcCancel *cancel);

/* ic_cancel_is_cancelled for callbacks that take a gpointer (the lock waits'
 * IcProtocolStopFunc). */
gboolean ic_cancel_stop_func(gpointer cancel);

G_END_DECLS
