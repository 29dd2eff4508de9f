/* imagecache-hook.c — the libvirt qemu hook: records in this host's usage ledger which base
 * files a domain uses when it is prepared, started, reconnected, migrated in or restored, and
 * drops it when it is released.
 *
 * libvirt runs it as `imagecache name op subop extra` with the domain XML on stdin and
 * waits for it inside every VM start, so it links GLib alone, never calls libvirt (the
 * daemon is blocked on us), never writes to stdout (for migrate and restore libvirt takes
 * stdout as replacement XML) and by default never blocks a start: an internal error is
 * logged to syslog and the hook exits 0, unless strict_prepare makes prepare fail. */
#include "config.h"
#include "domxml.h"
#include "error.h"
#include "fileutil.h"
#include "ledger-domain.h"
#include "ledger-store.h"
#include "protocol.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    ACTION_NONE,
    ACTION_RECORD,
    ACTION_DROP,
} Action;

/* Tests set IMAGECACHE_HOOK_LOG_STDERR=1 to see what went to syslog. */
static gboolean log_to_stderr;

/* What syslog(3) sends, without its one wait: glibc's send() blocks while the log
 * daemon's queue is full (a hung or restarting journald), and libvirtd waits for
 * the hook with no timeout, so a VM start hung (red team 8). The same line in the
 * same format, sent without waiting; FALSE when the daemon did not take it. Tests
 * name another socket in IMAGECACHE_HOOK_SYSLOG_SOCKET. */
static gboolean send_syslog(int priority, const char *msg)
{
    const char *path = g_getenv("IMAGECACHE_HOOK_SYSLOG_SOCKET");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    g_strlcpy(addr.sun_path, path != NULL ? path : "/dev/log", sizeof addr.sun_path);
    char stamp[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) != NULL)
        strftime(stamp, sizeof stamp, "%h %e %T ", &tm);
    g_autofree char *line = g_strdup_printf("<%d>%simagecache-hook[%d]: %s", LOG_DAEMON | priority,
                                            stamp, (int)getpid(), msg);
    static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
    for (guint i = 0; i < G_N_ELEMENTS(types); i++) {
        ic_autofd fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return FALSE;
        if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) < 0) {
            if (errno == EPROTOTYPE) /* a stream socket, as some syslog daemons make it */
                continue;
            return FALSE;
        }
        /* On a stream, the daemon splits messages at the NUL glibc sends after each. */
        gsize len = strlen(line) + (types[i] == SOCK_STREAM);
        return send(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len;
    }
    return FALSE;
}

static void hook_log(int priority, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void hook_log(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* What the daemon could not take goes to stderr, which libvirtd reads. */
    if (!send_syslog(priority, msg) || log_to_stderr)
        fprintf(stderr, "imagecache-hook: %s\n", msg);
}

/* GLib's default writer prints debug and info to stdout, which libvirt may take as
 * domain XML: route everything to syslog instead, and drop debug chatter. */
static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                                   gpointer user_data)
{
    if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        return G_LOG_WRITER_HANDLED;
    const char *message = NULL;
    for (gsize i = 0; i < n_fields; i++) {
        if (strcmp(fields[i].key, "MESSAGE") == 0)
            message = fields[i].value;
    }
    int priority = (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) ? LOG_ERR : LOG_WARNING;
    hook_log(priority, "%s", message != NULL ? message : "(no message)");
    return G_LOG_WRITER_HANDLED;
}

/* Whatever happens, nothing reaches libvirt through stdout. */
static void silence_stdout(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        close(STDOUT_FILENO);
        return;
    }
    if (fd != STDOUT_FILENO) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
}

static Action action_for(const char *op, const char *subop)
{
    static const char *const record_ops[] = {"prepare", "started", "reconnect",
                                             "migrate", "restore", NULL};
    if (strcmp(subop, "begin") == 0 && g_strv_contains(record_ops, op))
        return ACTION_RECORD;
    /* "stopped end" comes first, but release is the last word on a domain. */
    if (strcmp(op, "release") == 0 && strcmp(subop, "end") == 0)
        return ACTION_DROP;
    return ACTION_NONE;
}

/* Reads at most IC_DOMXML_MAX_BYTES + 1 bytes, so oversized input is detected
 * without reading it all. */
static gboolean read_stdin(char **ret_xml, gsize *ret_len, GError **error)
{
    gsize cap = IC_DOMXML_MAX_BYTES + 1;
    gsize len = 0;
    gsize alloc = 64 * 1024;
    g_autofree char *buf = g_malloc(alloc);
    for (;;) {
        if (len == alloc) {
            alloc = MIN(alloc * 2, cap);
            buf = g_realloc(buf, alloc);
        }
        ssize_t n = read(STDIN_FILENO, buf + len, alloc - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ic_error_set_errno(error, errno, "reading the domain XML from", "stdin");
        }
        if (n == 0)
            break;
        len += (gsize)n;
        if (len >= cap) {
            g_set_error(error, IC_ERROR, IC_ERROR_LIMIT,
                        "the domain XML on stdin is larger than %d bytes", IC_DOMXML_MAX_BYTES);
            return FALSE;
        }
    }
    *ret_xml = g_steal_pointer(&buf);
    *ret_len = len;
    return TRUE;
}

/* IMAGECACHE_CONFIG, else the default file; a host without a config file still
 * records, with the built-in defaults. */
static IcConfig *load_config(GError **error)
{
    const char *env = g_getenv("IMAGECACHE_CONFIG");
    const char *path = env != NULL && *env != '\0' ? env : IC_CONFIG_DEFAULT_PATH;
    g_autoptr(IcConfig) config = ic_config_new();
    g_autoptr(GError) local_error = NULL;
    if (!ic_config_load_file(config, path, &local_error)) {
        gboolean optional = path != env;
        if (!optional || !g_error_matches(local_error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
            g_propagate_error(error, g_steal_pointer(&local_error));
            return NULL;
        }
    }
    if (!ic_config_finish(config, error))
        return NULL;
    return g_steal_pointer(&config);
}

/* At prepare QEMU has not opened the backing files yet: holding the usage lock
 * shared while we record means a concurrent removal either sees this domain in
 * the ledger or removed the file before we looked (and QEMU then fails cleanly).
 * The wait ends at @deadline (monotonic µs): past it, or on any other lock
 * error, a strict prepare refuses the start; otherwise the domain is recorded
 * without the lock, loudly, which still tells every later pass, and the start
 * goes ahead (an unrecorded domain would protect nothing at all). */
static gboolean lock_for_prepare(const IcConfig *config, int dirfd, const char *name,
                                 gboolean strict, gint64 deadline, int *ret_fd, GError **error)
{
    g_autoptr(GError) local_error = NULL;
    gint64 wait_ms = MAX(0, deadline - g_get_monotonic_time()) / 1000;
    if (ic_protocol_lock_for_start_at(dirfd, config->ledger_dir, wait_ms, ret_fd, &local_error))
        return TRUE;
    if (strict) {
        g_propagate_error(error, g_steal_pointer(&local_error));
        return FALSE;
    }
    if (g_error_matches(local_error, IC_ERROR, IC_ERROR_BUSY))
        hook_log(LOG_ERR,
                 "domain '%s' prepare: usage lock not free after %" G_GINT64_FORMAT
                 " s (%s): a removal pass holds it past its bound; recording the domain without "
                 "it and letting the start go ahead (a base file being removed right now may be "
                 "gone, and QEMU then fails to start)",
                 name, config->prepare_lock_wait_seconds, local_error->message);
    else
        hook_log(LOG_ERR,
                 "domain '%s' prepare: cannot take the usage lock (%s); recording the domain "
                 "without it and letting the start go ahead",
                 name, local_error->message);
    return TRUE;
}

/* One deadline for every wait of one hook run: at prepare,
 * prepare_lock_wait_seconds for the usage lock and the host lock together;
 * for the other operations, which take only the host lock, its own bound. */
static gint64 deadline_for(const IcConfig *config, const char *op)
{
    gint64 wait_ms = strcmp(op, "prepare") == 0 ? config->prepare_lock_wait_seconds * 1000
                                                : IC_PROTOCOL_HOST_WAIT_MS;
    return g_get_monotonic_time() + wait_ms * 1000;
}

static gboolean record(const IcConfig *config, const IcDomain *domain, const char *name,
                       const char *op, gboolean strict, GPtrArray **ret_problems, GError **error)
{
    gint64 deadline = deadline_for(config, op);
    /* Opened once, for the usage lock and the host file alike (issue 15). */
    ic_autofd dirfd = -1;
    if (!ic_ledger_open_dir(config->ledger_dir, &dirfd, error))
        return FALSE;
    ic_autofd usage_lock = -1;
    if (strcmp(op, "prepare") == 0 &&
        !lock_for_prepare(config, dirfd, name, strict, deadline, &usage_lock, error))
        return FALSE;

    g_autofree char *base_dir = ic_config_base_dir(config);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_collect(domain, base_dir, now, ret_problems);
    /* A deadline already past still tries the host lock once. */
    return ic_ledger_record_domain_at(dirfd, config->ledger_dir, config->host, entry, now,
                                      MAX(deadline, g_get_monotonic_time() + 1), error);
}

static gboolean drop(const IcConfig *config, const IcDomain *domain, GError **error)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    return ic_ledger_drop_domain(config->ledger_dir, config->host, domain->uuid, now, error);
}

/* Logs a failure once; returns the exit code: 1 only for a strict prepare, which
 * libvirt turns into a refused start showing our stderr. @outcome says what
 * happens next when the start goes ahead. */
static int fail(const char *name, const char *op, gboolean strict, const char *message,
                const char *outcome)
{
    if (strict) {
        hook_log(LOG_ERR, "domain '%s' %s: %s; refusing the start (strict_prepare)", name, op,
                 message);
        if (!log_to_stderr)
            fprintf(stderr, "imagecache-hook: domain '%s' %s: %s\n", name, op, message);
        return 1;
    }
    hook_log(LOG_ERR, "domain '%s' %s: %s; %s", name, op, message, outcome);
    return 0;
}

#define UNRECORDED  "the domain goes ahead unrecorded ('imagecachectl reconcile' repairs the ledger)"
#define NOT_DROPPED "the ledger keeps the domain until 'imagecachectl reconcile'"
#define PARTIAL                                                                                    \
    "recorded with its usage unknown: no pass removes a base file until the domain is released "   \
    "or recorded in full"

static int run(const char *name, const char *op, Action action)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = load_config(&error);
    if (config == NULL)
        return fail(name, op, FALSE, error->message,
                    action == ACTION_DROP ? NOT_DROPPED : UNRECORDED);
    gboolean strict = config->strict_prepare && strcmp(op, "prepare") == 0;

    g_autofree char *xml = NULL;
    gsize len = 0;
    g_autoptr(IcDomain) domain = NULL;
    if (!read_stdin(&xml, &len, &error) || !ic_domxml_parse(xml, len, &domain, &error))
        return fail(name, op, strict, error->message,
                    action == ACTION_DROP ? NOT_DROPPED : UNRECORDED);

    /* A ledger dir that may be an unmounted share is never written (nor
     * created): a record there would hide under the share once it is mounted.
     * The start is refused under strict_prepare, else goes ahead unrecorded,
     * logged; this host's passes keep every base file until the share is back. */
    if (!ic_protocol_ledger_dir_check(config, TRUE, NULL, &error))
        return fail(name, op, strict, error->message,
                    action == ACTION_DROP ? NOT_DROPPED : UNRECORDED);

    if (action == ACTION_DROP) {
        if (!drop(config, domain, &error))
            return fail(name, op, FALSE, error->message, NOT_DROPPED);
        return 0;
    }

    g_autoptr(GPtrArray) problems = NULL;
    if (!record(config, domain, name, op, strict, &problems, &error))
        return fail(name, op, strict, error->message, UNRECORDED);
    if (problems == NULL)
        return 0;
    /* What could be read is recorded; each disk that could not be is logged. */
    int code = 0;
    for (guint i = 0; i < problems->len; i++) {
        if (fail(name, op, strict, g_ptr_array_index(problems, i), PARTIAL) != 0)
            code = 1;
    }
    return code;
}

int main(int argc, char **argv)
{
    silence_stdout();
    /* A file size limit (libvirtd's LimitFSIZE) must fail the ledger's write with
     * EFBIG, which is logged and handled, not kill the hook unheard: libvirt would
     * refuse the start with no reason given. */
    signal(SIGXFSZ, SIG_IGN);
    /* The hook never calls setlocale: it runs in the C locale, whose messages glibc
     * converts with its built-in ASCII converter. CHARSET or G_FILENAME_ENCODING
     * would make GLib convert through an iconv module, which a static hook loads
     * from the libc on disk, not its own (red team 8). */
    g_unsetenv("CHARSET");
    g_unsetenv("G_FILENAME_ENCODING");
    log_to_stderr = g_strcmp0(g_getenv("IMAGECACHE_HOOK_LOG_STDERR"), "1") == 0;
    g_log_set_writer_func(log_writer, NULL, NULL);

    if (argc < 4) {
        hook_log(LOG_ERR, "called with %d arguments, expected 'name op subop extra'; doing nothing",
                 argc - 1);
        return 0;
    }
    const char *name = argv[1];
    const char *op = argv[2];
    Action action = action_for(op, argv[3]);
    if (action == ACTION_NONE)
        return 0;
    return run(name, op, action);
}
