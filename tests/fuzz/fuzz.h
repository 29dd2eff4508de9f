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
#include <string.h>

/* Prints the message, then abort()s on a warning or worse: GLib's own fatal path
 * raises SIGTRAP, which libFuzzer does not catch, so no reproducer would be saved. */
/* GLib 2.74's key-file string reader sets its GError twice on a value with an
 * invalid escape followed by a trailing backslash ("a\\q\\"), and warns: a GLib bug,
 * not ours (the parse still fails, and the ledger reads as damaged). Only that
 * warning is let through; any other GError set twice is still a crash. */
static inline gboolean ic_fuzz_is_glib_keyfile_bug(const GLogField *fields, gsize n_fields)
{
    for (gsize i = 0; i < n_fields; i++) {
        if (g_strcmp0(fields[i].key, "MESSAGE") != 0 || fields[i].length >= 0)
            continue;
        const char *message = fields[i].value;
        return strstr(message, "GError set over the top of a previous GError") != NULL &&
               strstr(message, "The overwriting error message was: Key file contains") != NULL;
    }
    return FALSE;
}

static inline GLogWriterOutput ic_fuzz_log_writer(GLogLevelFlags level, const GLogField *fields,
                                                  gsize n_fields, gpointer user_data)
{
    GLogWriterOutput out = g_log_writer_standard_streams(level, fields, n_fields, user_data);
    if ((level &
         (G_LOG_FLAG_FATAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) &&
        !ic_fuzz_is_glib_keyfile_bug(fields, n_fields))
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
