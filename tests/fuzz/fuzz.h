/* fuzz.h — the libFuzzer entry points every target defines, and the helpers they share.
 * The same target links either libFuzzer's main (fuzzing) or replay.c (the unit suite). */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#include <stdlib.h>

/* Prints the message, then abort()s on a warning or worse: GLib's own fatal path
 * raises SIGTRAP, which libFuzzer does not catch, so no reproducer would be saved. */
static inline GLogWriterOutput ic_fuzz_log_writer(GLogLevelFlags level, const GLogField *fields,
                                                  gsize n_fields, gpointer user_data)
{
    GLogWriterOutput out = g_log_writer_standard_streams(level, fields, n_fields, user_data);
    if (level & (G_LOG_FLAG_FATAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
        abort();
    return out;
}

/* Makes GLib warnings and criticals (a tripped g_return_if_fail, a GError set twice)
 * crashes; called once by LLVMFuzzerInitialize of each target. */
static inline void ic_fuzz_init(void)
{
    g_log_set_writer_func(ic_fuzz_log_writer, NULL, NULL);
}

/* An invariant: unlike g_assert*, never compiled out, and aborts under any runner. */
#define IC_FUZZ_CHECK(expr)                                                                        \
    do {                                                                                           \
        if (G_UNLIKELY(!(expr)))                                                                   \
            g_error("%s:%d: invariant failed: %s", __FILE__, __LINE__, #expr);                     \
    } while (0)

G_END_DECLS
