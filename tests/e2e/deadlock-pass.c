/* deadlock-pass.c — for tests/e2e-libvirt.sh: one real removal pass (the library's
 * ic_pass_run with the real witnesses: libvirt's live domains through
 * ic_witnesses_collect_live, every host's ledger read by the pass itself) that stops while
 * it holds the exclusive usage lock, so the test can start a VM exactly then.
 *
 *   deadlock-pass CONFIG LOCKED_FILE GO_FILE MAX_PAUSE_SECONDS
 *   deadlock-pass --start-bound CONFIG   (what a VM start may wait at most, and how long
 *                                         the hook waits for the usage lock, in seconds)
 *
 * At the protocol seam's IC_PROTOCOL_STAGE_LOCKED it creates LOCKED_FILE, then waits until
 * GO_FILE exists (or MAX_PAUSE_SECONDS pass) and goes on. (Before the protocol module the
 * pass asked its witnesses again under the lock; this program, pausing at the start of that
 * second call, showed the pass hang there in libvirt: tests/README.md.) Prints what the
 * pass did; exit 0 when it completed, 1 when it failed. */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>

#include "config.h"
#include "pass.h"
#include "protocol.h"
#include "witnesses.h"

typedef struct {
    const IcConfig *config;
    const char *locked_file;
    const char *go_file;
    double max_pause;
    guint witness_calls;
    gboolean paused;
} Deadlock;

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(now, "%T.%f");
    printf("deadlock-pass %s: %s\n", stamp, msg);
    fflush(stdout);
}

/* Holding the lock: says so, then waits for the test's go. */
static void pause_locked(Deadlock *d)
{
    if (d->paused)
        return;
    d->paused = TRUE;
    g_autoptr(GError) error = NULL;
    if (!g_file_set_contents(d->locked_file, "locked\n", -1, &error))
        g_error("%s", error->message);
    say("holding the usage lock; waiting for %s (at most %.0f s)", d->go_file, d->max_pause);
    gint64 deadline = g_get_monotonic_time() + (gint64)(d->max_pause * G_USEC_PER_SEC);
    while (!g_file_test(d->go_file, G_FILE_TEST_EXISTS) && g_get_monotonic_time() < deadline)
        g_usleep(20 * 1000);
    say("going on");
}

static void witnesses(IcUsage *usage, gint64 now, gpointer data)
{
    Deadlock *d = data;
    d->witness_calls++;
    say("asking the witnesses (call %u: libvirt)", d->witness_calls);
    ic_witnesses_collect_live(d->config, usage);
    say("witnesses answered (call %u)", d->witness_calls);
}

static void seam(IcProtocolStage stage, const char *name, gpointer data)
{
    if (stage == IC_PROTOCOL_STAGE_LOCKED)
        pause_locked(data);
}

int main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    gboolean start_bound = argc == 3 && g_str_equal(argv[1], "--start-bound");
    if (argc != 5 && !start_bound) {
        fprintf(stderr,
                "usage: %s CONFIG LOCKED_FILE GO_FILE MAX_PAUSE_SECONDS\n"
                "       %s --start-bound CONFIG\n",
                argv[0], argv[0]);
        return 2;
    }
    g_autoptr(IcConfig) config = ic_config_new();
    const char *config_path = start_bound ? argv[2] : argv[1];
    if (!ic_config_load_file(config, config_path, &error) || !ic_config_finish(config, &error)) {
        fprintf(stderr, "deadlock-pass: %s\n", error->message);
        return 2;
    }
    if (start_bound) {
        /* The README's bound: the hook's wait for the usage lock, then for its host
         * file's; and the first alone (a start that took that long, the hook gave up). */
        printf("%" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n",
               config->prepare_lock_wait_seconds + IC_PROTOCOL_HOST_WAIT_MS / 1000,
               config->prepare_lock_wait_seconds);
        return 0;
    }
    Deadlock d = {
        .config = config,
        .locked_file = argv[2],
        .go_file = argv[3],
        .max_pause = g_ascii_strtod(argv[4], NULL),
    };
    IcPassOptions options = {
        .mode = IC_PASS_RUN,
        .witnesses = witnesses,
        .witnesses_data = &d,
        .seam = seam,
        .seam_data = &d,
    };
    say("pass starts (pausing at the protocol seam's LOCKED stage)");
    g_autoptr(IcReport) report = NULL;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    if (!ic_pass_run(config, NULL, &options, now, &report, &error)) {
        say("pass failed: %s", error->message);
        return 1;
    }
    for (guint i = 0; i < report->notes->len; i++)
        say("note: %s", (const char *)g_ptr_array_index(report->notes, i));
    say("pass completed: %" G_GUINT64_FORMAT " removed, paused under the lock: %s",
        report->totals.removed, d.paused ? "yes" : "NO");
    return d.paused ? 0 : 1;
}
