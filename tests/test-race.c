/* test-race.c — the removal race, tried hard: simulated domains start and stop through the
 * real hook binary while passes with zero minimum ages remove whatever looks unused.
 *
 * The rule under test (design.md, "Removal protocol"): once a ledger write names a base
 * file, nothing removes that file until the domain's release drops it from the ledger. A
 * start may still find its file gone (the pass removed it before the hook recorded it):
 * the protocol allows that outcome, libvirt would then fail the start.
 *
 * The oracle is one inotify descriptor watching the base dir (IN_DELETE, IN_MOVED_FROM: a
 * removal or a quarantine) and the ledger dir (IN_MOVED_TO of this host's ledger file: the
 * hook's atomic rewrite). The kernel queues each event inside the system call that causes
 * it, so the order read from that one descriptor is the order things happened. At each
 * ledger rename the oracle reads the ledger and learns which base files are named; a
 * removal of a named file is a violation. When further ledger renames are already queued
 * behind the one being handled, the file read may be a later version: the oracle then
 * does not judge removals until the next rename it can read exactly (it counts them as
 * unjudged), so it never blames the protocol for its own lateness.
 *
 * Downloads are exclusive (write a temp file, link(2) it into place: never replaces an
 * existing file), so two domains "downloading" the same image cannot swap its inode. The
 * overlays live outside instances_path and the simulated QEMU never holds the file open,
 * so the ledger is the only witness and the /proc check cannot hide a broken lock.
 *
 * IMAGECACHE_STRESS_SECONDS sets how long the run lasts (default 15). */
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "imgwriter.h"
#include "ledger-store.h"
#include "pass.h"
#include "protocol.h"
#include "testutil.h"

#define BASE_FILES     4
#define DOMAINS        8
#define HOST           "racehost"
#define LEDGER_BALLAST 100

typedef struct _Race Race;

/* The judge: see the top of the file. */
typedef struct {
    Race *race;
    int fd;
    int wd_base;
    int wd_ledger;
    GThread *thread;
    GQueue *events;    /* Event*, read from fd and not yet handled */
    GHashTable *named; /* base file name -> itself: named by the ledger (when exact) */
    gboolean exact;    /* named is the ledger as of the last handled rename */
    gint stop;
    gint ledger_events; /* ledger renames handled (for the self-test's barrier) */
    gint violations;
    gint judged;   /* removals checked against an exact ledger */
    gint unjudged; /* removals while the oracle could not tell */
    gboolean overflow;
    GMutex lock; /* messages */
    GPtrArray *messages;
} Oracle;

typedef struct {
    int wd;
    guint32 mask;
    char *name;
} Event;

struct _Race {
    const char *hook;
    char *root;
    char *instances;
    char *base_dir;
    char *ledger_dir;
    char *overlays;
    char *downloads;
    char *config_path;
    IcConfig *config;
    char *names[BASE_FILES];
    Oracle oracle;

    gint stop;
    gint starts;
    gint starts_found_gone;
    gint removals;
    gint passes;
};

static void event_free(Event *event)
{
    g_free(event->name);
    g_free(event);
}

/* ---- the oracle ---- */

/* Appends every event the kernel has queued so far; @block waits up to 100 ms for one. */
static void oracle_read(Oracle *oracle, gboolean block)
{
    struct pollfd pfd = {.fd = oracle->fd, .events = POLLIN};
    if (poll(&pfd, 1, block ? 100 : 0) <= 0)
        return;
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t len = read(oracle->fd, buf, sizeof(buf));
        if (len < 0) {
            g_assert_cmpint(errno, ==, EAGAIN);
            return;
        }
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ie = (const struct inotify_event *)p;
            Event *event = g_new0(Event, 1);
            event->wd = ie->wd;
            event->mask = ie->mask;
            event->name = g_strdup(ie->len > 0 ? ie->name : "");
            g_queue_push_tail(oracle->events, event);
            p += sizeof(struct inotify_event) + ie->len;
        }
    }
}

static gboolean is_ledger_rename(const Oracle *oracle, const Event *event)
{
    return event->wd == oracle->wd_ledger && (event->mask & IN_MOVED_TO) &&
           g_str_equal(event->name, HOST ".ledger");
}

static void oracle_note(Oracle *oracle, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void oracle_note(Oracle *oracle, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_mutex_lock(&oracle->lock);
    if (oracle->messages->len < 20)
        g_ptr_array_add(oracle->messages, g_strdup_vprintf(fmt, ap));
    g_mutex_unlock(&oracle->lock);
    va_end(ap);
}

/* The base files (names in the base dir) the ledger names now. */
static GHashTable *read_named(Race *race)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(race->ledger_dir, HOST ".ledger", NULL);
    g_autofree char *data = NULL;
    gsize len = 0;
    GHashTable *named = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_assert_true(g_file_get_contents(path, &data, &len, &error));
    g_assert_no_error(error);
    g_autoptr(IcLedgerHost) host = NULL;
    g_assert_true(ic_ledger_host_parse(data, len, &host, &error)); /* never torn */
    g_assert_no_error(error);
    for (guint i = 0; i < host->domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(host->domains, i);
        for (guint j = 0; j < domain->base_files->len; j++) {
            /* A name in the base dir (ledger format 2) or an absolute path (format 1). */
            const char *file = g_ptr_array_index(domain->base_files, j);
            g_autofree char *dir = g_path_get_dirname(file);
            if (strchr(file, '/') == NULL)
                g_hash_table_add(named, g_strdup(file));
            else if (g_str_equal(dir, race->base_dir))
                g_hash_table_add(named, g_path_get_basename(file));
        }
    }
    return named;
}

static gboolean is_race_base_file(const Race *race, const char *name)
{
    for (int i = 0; i < BASE_FILES; i++) {
        if (g_str_equal(race->names[i], name))
            return TRUE;
    }
    return FALSE;
}

static void oracle_handle(Oracle *oracle, Event *event)
{
    Race *race = oracle->race;
    if (event->mask & IN_Q_OVERFLOW) {
        oracle->overflow = TRUE;
        oracle->exact = FALSE;
        return;
    }
    if (is_ledger_rename(oracle, event)) {
        g_autoptr(GHashTable) named = read_named(race);
        /* Every rename done before that read is queued by now: if none follows this
         * one, what was read is this very version. */
        oracle_read(oracle, FALSE);
        gboolean later = FALSE;
        for (GList *l = oracle->events->head; l != NULL && !later; l = l->next)
            later = is_ledger_rename(oracle, l->data);
        oracle->exact = !later;
        g_hash_table_remove_all(oracle->named);
        if (oracle->exact) {
            GHashTableIter iter;
            gpointer name;
            g_hash_table_iter_init(&iter, named);
            while (g_hash_table_iter_next(&iter, &name, NULL))
                g_hash_table_add(oracle->named, g_strdup(name));
        }
        g_atomic_int_inc(&oracle->ledger_events);
        return;
    }
    if (event->wd != oracle->wd_base || !(event->mask & (IN_DELETE | IN_MOVED_FROM)) ||
        !is_race_base_file(race, event->name))
        return;
    if (!oracle->exact) {
        g_atomic_int_inc(&oracle->unjudged);
    } else if (g_hash_table_contains(oracle->named, event->name)) {
        g_atomic_int_inc(&oracle->violations);
        oracle_note(oracle, "VIOLATION: '%s' %s while the ledger named it", event->name,
                    (event->mask & IN_DELETE) ? "removed" : "moved away");
    } else {
        g_atomic_int_inc(&oracle->judged);
    }
}

static gpointer oracle_thread(gpointer data)
{
    Oracle *oracle = data;
    for (;;) {
        gboolean stopping = g_atomic_int_get(&oracle->stop);
        /* After stop, one last read takes what the finished run left queued. */
        oracle_read(oracle, !stopping);
        Event *event;
        while ((event = g_queue_pop_head(oracle->events)) != NULL) {
            oracle_handle(oracle, event);
            event_free(event);
        }
        if (stopping)
            return NULL;
    }
}

static void oracle_start(Oracle *oracle, Race *race)
{
    oracle->race = race;
    oracle->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    g_assert_cmpint(oracle->fd, >=, 0);
    oracle->wd_base = inotify_add_watch(oracle->fd, race->base_dir, IN_DELETE | IN_MOVED_FROM);
    oracle->wd_ledger = inotify_add_watch(oracle->fd, race->ledger_dir, IN_MOVED_TO);
    g_assert_cmpint(oracle->wd_base, >=, 0);
    g_assert_cmpint(oracle->wd_ledger, >=, 0);
    oracle->events = g_queue_new();
    oracle->named = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    oracle->exact = TRUE; /* no ledger yet: nothing is named */
    oracle->messages = g_ptr_array_new_with_free_func(g_free);
    g_mutex_init(&oracle->lock);
    oracle->thread = g_thread_new("oracle", oracle_thread, oracle);
}

/* Stops the oracle once it has handled everything that happened so far. */
static void oracle_stop(Oracle *oracle)
{
    g_atomic_int_set(&oracle->stop, 1);
    g_thread_join(oracle->thread);
    for (guint i = 0; i < oracle->messages->len; i++)
        g_test_message("%s", (const char *)g_ptr_array_index(oracle->messages, i));
    g_test_message("oracle: %d removals judged allowed, %d violations, %d unjudged%s",
                   oracle->judged, oracle->violations, oracle->unjudged,
                   oracle->overflow ? ", EVENT QUEUE OVERFLOWED" : "");
    close(oracle->fd);
    g_queue_free_full(oracle->events, (GDestroyNotify)event_free);
    g_hash_table_unref(oracle->named);
    g_ptr_array_unref(oracle->messages);
    g_mutex_clear(&oracle->lock);
}

/* Waits until the oracle has handled @count ledger renames (bounded). */
static void oracle_wait_ledger_events(Oracle *oracle, gint count)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (g_atomic_int_get(&oracle->ledger_events) < count) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

/* ---- the simulated host ---- */

static void race_setup(Race *race)
{
    g_autoptr(GError) error = NULL;
    race->hook = g_getenv("IMAGECACHE_HOOK");
    /* On tmpfs when there is one: fsync is free there, so the hooks and passes
     * interleave thousands of times instead of waiting on the disk. */
    race->root = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR)
                     ? g_mkdtemp(g_strdup("/dev/shm/imagecache-race-XXXXXX"))
                     : ic_test_mkdtemp();
    g_assert_nonnull(race->root);
    race->instances = g_build_filename(race->root, "instances", NULL);
    race->base_dir = g_build_filename(race->instances, "_base", NULL);
    race->ledger_dir = g_build_filename(race->instances, "_ledger", NULL);
    race->overlays = g_build_filename(race->root, "overlays", NULL);
    race->downloads = g_build_filename(race->root, "downloads", NULL);
    g_assert_cmpint(g_mkdir_with_parents(race->base_dir, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(race->ledger_dir, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(race->overlays, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(race->downloads, 0755), ==, 0);
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=" HOST "\n"
                                            "ledger_dir=%s\n"
                                            "remove_unused_original_minimum_age_seconds=0\n"
                                            "remove_unused_resized_minimum_age_seconds=0\n",
                                            race->instances, race->ledger_dir);
    race->config_path = ic_test_write_file(race->root, "imagecache.conf", text, -1);
    race->config = ic_config_new();
    g_assert_true(ic_config_load_file(race->config, race->config_path, &error));
    g_assert_true(ic_config_finish(race->config, &error));
    g_assert_no_error(error);
    for (int i = 0; i < BASE_FILES; i++) {
        g_autofree char *id = g_strdup_printf("image-%d", i);
        race->names[i] = ic_fingerprint_of_image_id(id);
    }

    /* Ballast: domains of this host whose files are elsewhere. Each hook write then
     * takes a few milliseconds, as on a busy host, instead of a few dozen microseconds:
     * a hook that let its lock go before writing leaves a gap a pass can fall into. */
    g_autoptr(GPtrArray) ballast =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    for (int i = 0; i < LEDGER_BALLAST; i++) {
        g_autofree char *uuid = g_strdup_printf("0000ba11-0000-4000-8000-%012d", i);
        g_autofree char *name = g_strdup_printf("ballast-%d", i);
        IcLedgerDomain *domain = ic_ledger_domain_new(uuid, name);
        g_ptr_array_add(domain->base_files, g_strdup_printf("/nonexistent/ballast/%d", i));
        g_ptr_array_add(ballast, domain);
    }
    g_assert_true(ic_ledger_replace_host(race->ledger_dir, HOST, ballast,
                                         g_get_real_time() / G_USEC_PER_SEC, &error));
    g_assert_no_error(error);
}

static void race_teardown(Race *race)
{
    ic_test_rmtree(race->root);
    g_free(race->root);
    g_free(race->instances);
    g_free(race->base_dir);
    g_free(race->ledger_dir);
    g_free(race->overlays);
    g_free(race->downloads);
    g_free(race->config_path);
    ic_config_free(race->config);
    for (int i = 0; i < BASE_FILES; i++)
        g_free(race->names[i]);
}

static gboolean run_hook(Race *race, const char *name, const char *op, const char *subop,
                         const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", race->config_path, TRUE);
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, race->hook, name, op, subop, "-", NULL);
    g_assert_no_error(error);
    g_autoptr(GBytes) input = g_bytes_new(xml, strlen(xml));
    g_assert_true(g_subprocess_communicate(proc, input, NULL, NULL, NULL, &error));
    g_assert_no_error(error);
    return g_subprocess_get_if_exited(proc) && g_subprocess_get_exit_status(proc) == 0;
}

/* "Nova downloads the image" when it is missing: the whole file is written aside
 * and linked into place, which fails rather than replace a file another domain
 * downloaded meanwhile. */
static void download(Race *race, const char *base, int slot)
{
    g_autofree char *path = g_build_filename(race->base_dir, base, NULL);
    if (g_file_test(path, G_FILE_TEST_EXISTS))
        return;
    g_autofree char *name = g_strdup_printf("slot-%d", slot);
    g_autofree char *temp = ic_test_write_file(race->downloads, name, "data", -1);
    if (link(temp, path) != 0)
        g_assert_cmpint(errno, ==, EEXIST);
    g_assert_cmpint(unlink(temp), ==, 0);
}

static char *domain_xml(const char *name, const char *uuid, const char *overlay)
{
    return g_strdup_printf("<domain type='qemu'><name>%s</name><uuid>%s</uuid><devices>"
                           "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                           "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
                           "</devices></domain>",
                           name, uuid, overlay);
}

typedef struct {
    Race *race;
    int slot;
} DomainArgs;

/* One simulated domain, started and stopped over and over. */
static gpointer domain_thread(gpointer data)
{
    Race *race = ((DomainArgs *)data)->race;
    int slot = ((DomainArgs *)data)->slot;
    g_autoptr(GRand) rand = g_rand_new();

    while (!g_atomic_int_get(&race->stop)) {
        g_autoptr(GError) error = NULL;
        const char *base = race->names[g_rand_int_range(rand, 0, BASE_FILES)];
        g_autofree char *base_path = g_build_filename(race->base_dir, base, NULL);
        g_autofree char *name = g_strdup_printf("dom-%d", slot);
        g_autofree char *uuid = g_uuid_string_random();
        g_autofree char *overlay = g_strdup_printf("%s/%s.qcow2", race->overlays, name);

        download(race, base, slot);
        g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, base_path, "raw", &error));
        g_assert_no_error(error);
        g_autofree char *xml = domain_xml(name, uuid, overlay);

        g_assert_true(run_hook(race, name, "prepare", "begin", xml));
        g_atomic_int_inc(&race->starts);
        if (!g_file_test(base_path, G_FILE_TEST_EXISTS))
            g_atomic_int_inc(&race->starts_found_gone);
        else
            g_usleep(g_rand_int_range(rand, 500, 5000)); /* the domain runs */
        g_assert_true(run_hook(race, name, "release", "end", xml));
    }
    return NULL;
}

/* Sleeps up to @max_us: where a broken protocol leaves a gap, the gap grows. */
static void widen(guint max_us)
{
    g_usleep(g_random_int_range(0, (gint32)max_us));
}

static void race_seam(IcProtocolStage stage, const char *name, gpointer data)
{
    /* The pass reads the ledger itself, before the lock and again under it. The test
     * widens the gaps after the first read (before the lock) and after the re-read
     * (before the unlink), where a broken protocol lets a removal in. */
    if (stage == IC_PROTOCOL_STAGE_BEFORE_LOCK)
        widen(5000); /* no lock held yet: costs the hooks nothing */
    else if (stage == IC_PROTOCOL_STAGE_BEFORE_UNLINK)
        widen(2000);
}

static void run_race(Race *race, double seconds)
{
    GThread *threads[DOMAINS];
    DomainArgs args[DOMAINS];
    oracle_start(&race->oracle, race);
    for (int i = 0; i < DOMAINS; i++) {
        args[i] = (DomainArgs){.race = race, .slot = i};
        threads[i] = g_thread_new("domain", domain_thread, &args[i]);
    }

    IcPassOptions options = {
        .mode = IC_PASS_RUN,
        .seam = race_seam,
        .seam_data = race,
    };
    gint64 deadline = g_get_monotonic_time() + (gint64)(seconds * G_USEC_PER_SEC);
    while (g_get_monotonic_time() < deadline) {
        g_autoptr(GError) error = NULL;
        g_autoptr(IcReport) report = NULL;
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        g_assert_true(ic_pass_run(race->config, NULL, &options, now, &report, &error));
        g_assert_no_error(error);
        race->passes++;
        race->removals += (gint)report->totals.removed;
    }
    g_atomic_int_set(&race->stop, 1);
    for (int i = 0; i < DOMAINS; i++)
        g_thread_join(threads[i]);
    oracle_stop(&race->oracle);
    g_test_message("%d passes, %d starts (%d found their base file gone), %d removals",
                   race->passes, race->starts, race->starts_found_gone, race->removals);
}

static gboolean have_hook(Race *race)
{
    if (race->hook != NULL)
        return TRUE;
    g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
    return FALSE;
}

static void test_never_removes_named(void)
{
    Race race = {0};
    const char *env = g_getenv("IMAGECACHE_STRESS_SECONDS");
    double seconds = env ? g_ascii_strtod(env, NULL) : 15.0;
    race_setup(&race);
    if (!have_hook(&race)) {
        race_teardown(&race);
        return;
    }
    run_race(&race, seconds);
    race_teardown(&race); /* first: a failed assertion aborts, and this tree is in /dev/shm */
    g_assert_false(race.oracle.overflow);
    g_assert_cmpint(race.oracle.violations, ==, 0);
    g_assert_cmpint(race.starts, >, 0);
    g_assert_cmpint(race.removals, >, 0);      /* unused files do get removed */
    g_assert_cmpint(race.oracle.judged, >, 0); /* and the oracle judged them */
}

/* The oracle itself, without any pass: a removal after the hook's ledger write is
 * a violation, one after the release is not. */
static void test_oracle_sees_removal(void)
{
    Race race = {0};
    race_setup(&race);
    if (!have_hook(&race)) {
        race_teardown(&race);
        return;
    }
    g_autoptr(GError) error = NULL;
    const char *base = race.names[0];
    g_autofree char *base_path = g_build_filename(race.base_dir, base, NULL);
    g_autofree char *overlay = g_build_filename(race.overlays, "dom.qcow2", NULL);
    g_autofree char *uuid = g_uuid_string_random();
    g_autofree char *xml = domain_xml("dom", uuid, overlay);
    g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, base_path, "raw", &error));
    g_assert_no_error(error);
    oracle_start(&race.oracle, &race);

    download(&race, base, 0);
    g_assert_true(run_hook(&race, "dom", "prepare", "begin", xml));
    oracle_wait_ledger_events(&race.oracle, 1);
    g_assert_cmpint(g_unlink(base_path), ==, 0); /* what no pass may do */
    download(&race, base, 0);
    g_assert_true(run_hook(&race, "dom", "release", "end", xml));
    oracle_wait_ledger_events(&race.oracle, 2);
    g_assert_cmpint(g_unlink(base_path), ==, 0); /* allowed */
    oracle_stop(&race.oracle);
    race_teardown(&race);

    g_assert_cmpint(race.oracle.violations, ==, 1);
    g_assert_cmpint(race.oracle.judged, ==, 1);
    g_assert_cmpint(race.oracle.unjudged, ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/race/oracle_sees_removal", test_oracle_sees_removal);
    g_test_add_func("/imagecache/race/never_removes_named", test_never_removes_named);
    return g_test_run();
}
