/* cancel.c — the cancellation flag of cancel.h. */
#include "cancel.h"

struct IcCancel {
    gint cancelled; /* atomic: set once, never cleared */
};

IcCancel *ic_cancel_new(void)
{
    return g_new0(IcCancel, 1);
}

void ic_cancel_free(IcCancel *cancel)
{
    g_free(cancel);
}

void ic_cancel_cancel(IcCancel *cancel)
{
    if (cancel == NULL) /* as g_cancellable_cancel: nothing to cancel */
        return;
    g_atomic_int_set(&cancel->cancelled, 1);
}

gboolean ic_cancel_is_cancelled(const IcCancel *cancel)
{
    return cancel != NULL && g_atomic_int_get(&cancel->cancelled) != 0;
}

gboolean ic_cancel_stop_func(gpointer cancel)
{
    return ic_cancel_is_cancelled(cancel);
}
