#include "pass.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "checksum.h"
#include "error.h"
#include "fileutil.h"
#include "policy.h"
#include "protocol.h"
#include "remove.h"
#include "scan.h"

/* What one pass works with; lives for the duration of ic_pass_run. */
typedef struct {
    const IcConfig *config;
    const IcUsage *given_usage;
    const IcPassOptions *options;
    gint64 now;
    char *base_dir;
    IcScan *scan;
    IcScan *quarantine;         /* <base_dir>/.quarantine, NULL when absent */
    gboolean quarantine_usable; /* .quarantine is absent or a real directory */
    IcUsage *asked;             /* the external witnesses' one answer, from before the lock */
    IcProtocolReading
        *reading; /* the ledger, read while the base dir was scanned; NULL once used */
    IcReport *report;
    int dirfd;
    GThread *freeing; /* freeing the first read's usage (free_usage_aside), NULL when none */
    IcUsage *kept;    /* the first read's usage, for IcPassOptions.keep */
} Pass;

struct IcPassKept {
    IcUsage *usage;
    IcScan *scan;
};

void ic_pass_kept_free(IcPassKept *kept)
{
    if (kept == NULL)
        return;
    ic_usage_free(kept->usage);
    ic_scan_free(kept->scan);
    g_free(kept);
}

/* Whether the caller takes what the pass would free at its end. */
static gboolean keeping(const IcPassOptions *options)
{
    return options->keep != NULL && options->mode != IC_PASS_RUN;
}

/* The scanned file behind a row, in the base dir or in quarantine. */
static const IcBaseFile *row_file(const Pass *pass, const IcImageRow *row)
{
    if (!row->in_quarantine)
        return ic_scan_lookup(pass->scan, row->name);
    g_autofree char *name = g_path_get_basename(row->name);
    return pass->quarantine ? ic_scan_lookup(pass->quarantine, name) : NULL;
}

/* The first read: the external witnesses are asked here, once; the
 * filesystem ones (ledger, instances dir) are read as the protocol re-reads them. */
static gboolean gather_usage(Pass *pass, IcUsage **ret_usage, GError **error)
{
    pass->asked = ic_usage_new();
    if (pass->options->witnesses != NULL)
        pass->options->witnesses(pass->asked, pass->now, pass->options->witnesses_data);
    return ic_protocol_reading_finish(g_steal_pointer(&pass->reading), pass->scan, pass->asked,
                                      pass->options->walk_threads, ret_usage, &pass->report->ledger,
                                      error);
}

/* The row keeps its own copy of the labels: @users' strings are the usage's,
 * which the row outlives. */
static void set_users(IcImageRow *row, const IcUsers *users)
{
    row->local_users = users->local;
    row->remote_users = users->remote;
    row->witnesses = users->witnesses;
    g_ptr_array_set_size(row->users, 0);
    for (guint i = 0; i < users->len; i++)
        g_ptr_array_add(row->users, ic_user_label(&users->users[i]));
}

/* The image id a witness knew for @fingerprint (NULL for swap/ephemeral files). */
static char *image_id_of(const IcUsage *usage, const char *fingerprint)
{
    return fingerprint ? g_strdup(g_hash_table_lookup(usage->image_ids, fingerprint)) : NULL;
}

/* 40 hex digits, either case: what a sidecar must hold to prove corruption
 * beyond doubt. */
static gboolean is_sha1_digest(const char *s)
{
    if (s == NULL || strlen(s) != IC_SHA1_HEX_LEN)
        return FALSE;
    for (; *s != '\0'; s++) {
        if (!g_ascii_isxdigit(*s))
            return FALSE;
    }
    return TRUE;
}

/* What the policy is told about @row given @usage; the one place facts are
 * assembled. A row the pass chose to evict for space keeps that choice. */
static IcPolicyFacts row_facts(Pass *pass, IcImageRow *row, const IcUsage *usage,
                               gboolean held_open)
{
    const IcBaseFile *file = row_file(pass, row);
    /* A quarantined file's users are those that still name it in the base dir. */
    g_autofree char *name = g_path_get_basename(row->name);
    g_autofree char *path = ic_path_join(pass->base_dir, name);
    gboolean identity = file != NULL && row->present && !row->in_quarantine;
    g_autoptr(IcUsers) users =
        ic_usage_users_of(usage, pass->base_dir, name, row->fingerprint, identity ? file->dev : 0,
                          identity ? file->ino : 0);
    set_users(row, users);
    row->last_used = ic_usage_last_used(usage, path);
    row->pinned_by = ic_config_pinned_by(pass->config, row->name, row->fingerprint, row->image_id);
    return (IcPolicyFacts){
        .kind = row->kind,
        .present = row->present,
        /* In quarantine, age counts from the move (the rename set ctime). */
        .mtime = row->in_quarantine && file ? file->ctime : row->mtime,
        .last_used = row->last_used,
        .disk_bytes = file ? file->disk_bytes : 0,
        .local_users = users->local,
        .remote_users = users->remote,
        .pinned = row->pinned_by != NULL,
        .usage_incomplete = usage->incomplete,
        .held_open = held_open,
        .checksum = row->checksum.state,
        .sidecar_is_digest = is_sha1_digest(row->checksum.expected),
        .quarantined = row->in_quarantine,
        .evict_for_space = row->decision.reason == IC_REASON_DISK_PRESSURE,
    };
}

static void decide(Pass *pass, IcImageRow *row, const IcUsage *usage, gboolean held_open)
{
    IcPolicyFacts facts = row_facts(pass, row, usage, held_open);
    row->decision = ic_policy_decide(&facts, pass->config, pass->now);
}

/* What the pass plans for a decided row; carried out under the lock later. */
static void plan_action(Pass *pass, IcImageRow *row)
{
    if (row->decision.verdict == IC_VERDICT_REMOVABLE)
        row->action = IC_ACTION_WOULD_REMOVE;
    else if (row->decision.quarantine && pass->quarantine_usable)
        row->action = IC_ACTION_WOULD_QUARANTINE;
}

static gboolean wanted(const Pass *pass, const IcBaseFile *file)
{
    if (file->kind == IC_KIND_SWAP || file->kind == IC_KIND_EPHEMERAL)
        return pass->config->collect_swap_and_ephemeral;
    return TRUE;
}

/* Whether the pass hashes @file: checksums on, and when explaining one file,
 * only that one (explaining must not hash the whole cache: the others stay
 * not_checked, which only the explained file's verdict could depend on). */
static gboolean checksum_due(const Pass *pass, const IcBaseFile *file)
{
    if (!pass->config->checksum_base_images)
        return FALSE;
    return pass->options->checksum_only == NULL ||
           g_str_equal(pass->options->checksum_only, file->name);
}

/* At most this many files are hashed at once, one thread per core below it: each
 * thread holds a 1 MiB buffer through the pass's peak, on a hypervisor whose cores
 * are the guests', and the rate limit is shared anyway. (`imagecachectl verify`,
 * run by an operator, takes one thread per core.) */
#define PASS_HASH_THREADS_MAX 4

/* The checksum step's work: one job per due file, in scan order. */
typedef struct {
    IcChecksumJob *jobs;
    guint n_jobs;
    guint next; /* the next job to hand to a row */
} Checksums;

static void checksums_clear(Checksums *checksums)
{
    for (guint j = 0; j < checksums->n_jobs; j++)
        ic_checksum_result_clear(&checksums->jobs[j].result);
    g_clear_pointer(&checksums->jobs, g_free);
    checksums->n_jobs = 0;
}

/* The checksum step, before any file is decided: every due file of the scan
 * is verified through ic_checksum_verify_many (one thread per core up to
 * PASS_HASH_THREADS_MAX, each file by one thread, the rate limit the total of
 * all of them: issue 15). FALSE when cancelled. Nothing is allocated when no file is due. */
static gboolean verify_checksums(Pass *pass, Checksums *ret_checksums, GError **error)
{
    GPtrArray *files = pass->scan->files;
    Checksums checksums = {0};
    for (guint i = 0; i < files->len; i++) {
        const IcBaseFile *file = g_ptr_array_index(files, i);
        checksums.n_jobs += wanted(pass, file) && checksum_due(pass, file);
    }
    if (checksums.n_jobs > 0)
        checksums.jobs = g_new0(IcChecksumJob, checksums.n_jobs);
    for (guint i = 0, j = 0; j < checksums.n_jobs; i++) {
        const IcBaseFile *file = g_ptr_array_index(files, i);
        if (wanted(pass, file) && checksum_due(pass, file))
            checksums.jobs[j++] = (IcChecksumJob){.dirfd = pass->dirfd, .name = file->name};
    }
    IcChecksumOptions checksum_options = {
        .rate_limit_bytes_per_sec = pass->options->checksum_rate_limit,
        .interval_seconds = pass->config->checksum_interval_seconds,
        .write_missing = pass->options->mode == IC_PASS_RUN,
        .cancel = pass->options->cancel,
    };
    guint threads = MIN(g_get_num_processors(), PASS_HASH_THREADS_MAX);
    if (checksums.n_jobs > 0 &&
        !ic_checksum_verify_many(checksums.jobs, checksums.n_jobs, &checksum_options, pass->now,
                                 threads, error)) {
        checksums_clear(&checksums);
        return FALSE;
    }
    *ret_checksums = checksums;
    return TRUE;
}

/* The index in @checksums of @file's job, G_MAXUINT when none was due: the
 * rows' files are taken in scan order, the jobs were made in it too. */
static guint checksum_job_of(Checksums *checksums, const IcBaseFile *file)
{
    if (checksums->next < checksums->n_jobs && checksums->jobs[checksums->next].name == file->name)
        return checksums->next++;
    return G_MAXUINT;
}

/* Reports what the operator must hear of @row's checksum: a corrupt file
 * (kept) or a file that could not be verified. */
static void report_checksum(Pass *pass, const IcImageRow *row)
{
    if (row->checksum.state == IC_CHECKSUM_MISMATCH)
        ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name,
                            "%s: image verification failed: expected sha1 %s, got %s, keeping "
                            "the file",
                            row->name, row->checksum.expected, row->checksum.actual);
    else if (row->checksum.state == IC_CHECKSUM_ERROR)
        ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name,
                            "%s: checksum not verified: %s", row->name, row->checksum.error);
}

/* Refreshing the mtime of a file in use makes age mean "unused for". */
static void touch_if_in_use(Pass *pass, IcImageRow *row)
{
    g_autoptr(GError) error = NULL;
    if (row->local_users + row->remote_users == 0)
        return;
    if (pass->options->mode != IC_PASS_RUN)
        return;
    if (ic_remove_touch(pass->dirfd, row->name, pass->now, &error))
        row->action = IC_ACTION_TOUCHED;
    else
        ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name,
                            "%s: could not refresh mtime of a file in use: %s", row->name,
                            error->message);
}

/* @row's facts from its scanned @file (and the image id a witness knew). */
static void fill_file_row(IcImageRow *row, const IcBaseFile *file, const IcUsage *usage)
{
    row->kind = file->kind;
    row->fingerprint = g_strdup(file->fingerprint);
    row->image_id = image_id_of(usage, file->fingerprint);
    row->present = TRUE;
    row->size = file->size;
    row->mtime = file->mtime;
}

/* Rows to a thread before a second one pays off: a row takes 2-4 us, a
 * thread about 50 us to start. */
#define ROWS_PER_DECIDE_THREAD 256
#define MAX_DECIDE_THREADS     4

/* The base dir's rows, in scan order: @files[i] is the scanned file of the
 * report's row @first + i, and @jobs[i] (when @jobs is not NULL) its job in
 * @checksums or G_MAXUINT. */
typedef struct {
    Pass *pass;
    const IcUsage *usage;
    const IcBaseFile **files;
    Checksums *checksums;
    const guint *jobs;
    guint first;
} FileRows;

/* Rows [begin, end) of @rows (indexes into @rows->files), filled and decided
 * by one thread. */
typedef struct {
    const FileRows *rows;
    guint begin;
    guint end;
} DecideShare;

static gpointer decide_share(gpointer data)
{
    const DecideShare *share = data;
    const FileRows *rows = share->rows;
    for (guint i = share->begin; i < share->end; i++) {
        IcImageRow *row = ic_image_row_new(rows->files[i]->name);
        guint job = rows->jobs != NULL ? rows->jobs[i] : G_MAXUINT;
        if (job != G_MAXUINT) {
            /* Taken: each job is one row's, in one thread's share. */
            row->checksum = rows->checksums->jobs[job].result;
            rows->checksums->jobs[job].result = (IcChecksumResult){0};
        }
        fill_file_row(row, rows->files[i], rows->usage);
        decide(rows->pass, row, rows->usage, FALSE);
        g_ptr_array_index(rows->pass->report->rows, rows->first + i) = row;
    }
    return NULL;
}

/* Makes, fills and decides @n rows, each into its slot of the report's row
 * array (sized by the caller). At 100,000 files, deciding (about ten random
 * lookups a row into tables that no longer fit the cache) was the largest
 * serial step after the walk, and making the rows (three allocations each)
 * the next (37 ms; issue 15), so a large report's rows are made and decided by
 * one thread per core, each a contiguous share of them. What they read is not
 * written while they run (the usage, the scan, the config); what they write
 * is their own rows, their rows' slots and their rows' checksum jobs only.
 * Events and I/O stay with the caller, in row order. A caller that allows one thread (walk_threads
 * 1: the collectd plugin) decides in its own. */
static void decide_rows(const FileRows *rows, guint n)
{
    guint walk_threads = rows->pass->options->walk_threads;
    guint allowed = walk_threads > 0 ? MIN(walk_threads, MAX_DECIDE_THREADS) : MAX_DECIDE_THREADS;
    guint threads = MIN(MIN(g_get_num_processors(), allowed), MAX(n / ROWS_PER_DECIDE_THREAD, 1));
    DecideShare shares[MAX_DECIDE_THREADS];
    GThread *workers[MAX_DECIDE_THREADS] = {NULL};

    for (guint t = 0; t < threads; t++) {
        shares[t] = (DecideShare){
            .rows = rows,
            .begin = (guint)((guint64)n * t / threads),
            .end = (guint)((guint64)n * (t + 1) / threads),
        };
        if (t > 0)
            workers[t] = g_thread_new("imagecache-decide", decide_share, &shares[t]);
    }
    decide_share(&shares[0]);
    for (guint t = 1; t < threads; t++)
        g_thread_join(workers[t]);
}

/* The rows of the base dir's files, in scan order: made with their checksum
 * results, filled and decided (decide_rows), then, in the same order, their
 * checksum events, mtime refreshes and plans. */
static void process_files(Pass *pass, Checksums *checksums, const IcUsage *usage)
{
    GPtrArray *scanned = pass->scan->files;
    g_autofree const IcBaseFile **files = g_new(const IcBaseFile *, MAX(scanned->len, 1));
    /* Only when files were hashed (the 10x bench hashes none). */
    g_autofree guint *jobs = checksums->n_jobs > 0 ? g_new(guint, MAX(scanned->len, 1)) : NULL;
    FileRows rows = {.pass = pass,
                     .usage = usage,
                     .files = files,
                     .checksums = checksums,
                     .jobs = jobs,
                     .first = pass->report->rows->len};
    guint n = 0;
    for (guint i = 0; i < scanned->len; i++) {
        const IcBaseFile *file = g_ptr_array_index(scanned, i);
        if (!wanted(pass, file))
            continue;
        if (jobs != NULL)
            jobs[n] = checksum_job_of(checksums, file);
        files[n++] = file;
    }
    g_ptr_array_set_size(pass->report->rows, rows.first + n);
    decide_rows(&rows, n);
    for (guint i = 0; i < n; i++) {
        IcImageRow *row = g_ptr_array_index(pass->report->rows, rows.first + i);
        report_checksum(pass, row);
        touch_if_in_use(pass, row);
        plan_action(pass, row);
    }
}

static void process_quarantined(Pass *pass, const IcBaseFile *file, const IcUsage *usage)
{
    g_autofree char *name = g_build_filename(IC_QUARANTINE_DIR, file->name, NULL);
    IcImageRow *row = ic_report_add_row(pass->report, name);
    row->kind = file->kind;
    row->fingerprint = g_strdup(file->fingerprint);
    row->present = TRUE;
    row->in_quarantine = TRUE;
    row->size = file->size;
    row->mtime = file->mtime;
    row->checksum.state = IC_CHECKSUM_MISMATCH; /* why it is there */
    decide(pass, row, usage, FALSE);
    plan_action(pass, row);
}

/* Disk pressure: when the filesystem is above the high watermark, the policy
 * chooses unused files to evict, least recently used first. */
static void apply_disk_pressure(Pass *pass, const IcUsage *usage)
{
    IcReport *report = pass->report;
    struct statvfs vfs;
    if (statvfs(pass->base_dir, &vfs) != 0 || vfs.f_blocks == 0)
        return;
    /* As df counts: what is reserved for root is neither used nor available. */
    guint64 used = (guint64)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    guint64 available = (guint64)vfs.f_bavail * vfs.f_frsize;
    report->disk_known = TRUE;
    report->disk_used_bytes = used;
    report->disk_total_bytes = used + available;

    IcDiskUsage disk = {.total_bytes = used + available, .used_bytes = used};
    gint64 high = pass->config->disk_high_watermark_percent;
    report->disk_pressure = high > 0 && used * 100 >= (guint64)high * disk.total_bytes;
    if (!report->disk_pressure)
        return;

    g_autoptr(GPtrArray) rows = g_ptr_array_new();
    g_autoptr(GArray) facts = g_array_new(FALSE, FALSE, sizeof(IcPolicyFacts));
    for (guint i = 0; i < report->rows->len; i++) {
        IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (!row->present || row->in_quarantine)
            continue;
        IcPolicyFacts f = row_facts(pass, row, usage, FALSE);
        g_array_append_val(facts, f);
        g_ptr_array_add(rows, row);
    }
    g_autofree IcPolicyFacts **pointers = g_new(IcPolicyFacts *, facts->len);
    for (guint i = 0; i < facts->len; i++)
        pointers[i] = &g_array_index(facts, IcPolicyFacts, i);
    ic_policy_select_for_space(pointers, facts->len, pass->config, &disk, pass->now);
    for (guint i = 0; i < rows->len; i++) {
        IcImageRow *row = g_ptr_array_index(rows, i);
        if (!pointers[i]->evict_for_space)
            continue;
        row->decision = ic_policy_decide(pointers[i], pass->config, pass->now);
        plan_action(pass, row);
    }
}

static IcImageRow *add_absent_row(Pass *pass, const char *name, IcImageKind kind,
                                  const char *fingerprint, const IcUsage *usage)
{
    IcImageRow *row = ic_report_add_row(pass->report, name);
    row->kind = kind;
    row->fingerprint = g_strdup(fingerprint);
    row->image_id = image_id_of(usage, fingerprint);
    row->present = FALSE;
    decide(pass, row, usage, FALSE);
    g_autofree char *names = ic_image_row_users_text(row);
    ic_report_add_event(pass->report, IC_EVENT_WARNING, name,
                        "%s: warning -- an absent base file is in use! users: %s", name, names);
    return row;
}

/* A base file witnesses name but the scan did not find. */
typedef struct {
    char *name;
    IcImageKind kind;
    char *fingerprint;
} AbsentFile;

static void absent_file_free(AbsentFile *absent)
{
    g_free(absent->name);
    g_free(absent->fingerprint);
    g_free(absent);
}

/* Adds @name once: a witness may spell one path two ways ("<base>//X"), and
 * a file found by path is not found again by its fingerprint. @names holds the
 * names added so far (borrowed from @absent). */
static void absent_file_add(GPtrArray *absent, GHashTable *names, const char *name,
                            IcImageKind kind, const char *fingerprint)
{
    if (g_hash_table_contains(names, name))
        return;
    AbsentFile *file = g_new(AbsentFile, 1);
    *file = (AbsentFile){g_strdup(name), kind, g_strdup(fingerprint)};
    g_ptr_array_add(absent, file);
    g_hash_table_add(names, file->name);
}

static gint absent_file_compare(gconstpointer a, gconstpointer b)
{
    const AbsentFile *x = *(AbsentFile *const *)a, *y = *(AbsentFile *const *)b;
    return strcmp(x->name, y->name);
}

/* Files that witnesses name but the scan did not find. A fingerprint used only
 * on other hosts is no concern of this base dir (the reference suite's rule);
 * a path in this base dir is, whoever uses it. Their rows and warnings are added
 * in name order: the usage's tables iterate in an order that depends on how
 * many threads built them, and a report's events must not. */
static void add_absent_rows(Pass *pass, const IcUsage *usage)
{
    GHashTableIter iter;
    gpointer key, value;
    g_autoptr(GPtrArray) absent = g_ptr_array_new_with_free_func((GDestroyNotify)absent_file_free);

    /* The names added so far: searching the report's rows for each was
     * quadratic when many base files are gone. */
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    gsize dir_len = strlen(pass->base_dir);
    g_hash_table_iter_init(&iter, usage->by_path);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const char *path = key;
        /* Most paths are "<base_dir>/<name>", their name read in place; any
         * other spelling is taken apart as before. */
        g_autofree char *name_copy = NULL;
        const char *name = path + dir_len + 1;
        if (strncmp(path, pass->base_dir, dir_len) != 0 || path[dir_len] != '/' || *name == '\0' ||
            strchr(name, '/') != NULL) {
            g_autofree char *dir = g_path_get_dirname(path);
            if (!g_str_equal(dir, pass->base_dir))
                continue;
            name = name_copy = g_path_get_basename(path);
        }
        if (ic_scan_lookup(pass->scan, name) != NULL)
            continue;
        g_autofree char *fingerprint = NULL;
        IcImageKind kind = ic_scan_classify_name(name, &fingerprint);
        if (kind == IC_KIND_IGNORED)
            continue;
        absent_file_add(absent, names, name, kind, fingerprint);
    }

    g_hash_table_iter_init(&iter, usage->by_fingerprint);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const IcUsers *users = value;
        if (users->local == 0 || ic_scan_find_variants(pass->scan, key) != NULL)
            continue;
        /* Present files were skipped above: only an absent file can have the
         * name, and one found through its path keeps what its path said. */
        absent_file_add(absent, names, key, IC_KIND_ORIGINAL, key);
    }

    g_ptr_array_sort(absent, absent_file_compare);
    for (guint i = 0; i < absent->len; i++) {
        const AbsentFile *file = g_ptr_array_index(absent, i);
        add_absent_row(pass, file->name, file->kind, file->fingerprint, usage);
    }
}

/* The protocol's re-decision of @row (IcProtocolDecideFunc): the same facts
 * and policy as the first decision, from the usage re-read under the lock. */
static void redecide(IcImageRow *row, const IcUsage *usage, gboolean held_open, gpointer data)
{
    Pass *pass = data;
    decide(pass, row, usage, held_open);
    row->action = IC_ACTION_NONE;
    plan_action(pass, row);
    if (row->action == IC_ACTION_NONE)
        touch_if_in_use(pass, row);
}

/* Hands the planned removals to the removal protocol (protocol.c). */
static void remove_phase(Pass *pass)
{
    g_autoptr(GPtrArray) plans = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < pass->report->rows->len; i++) {
        IcImageRow *row = g_ptr_array_index(pass->report->rows, i);
        if (row->action != IC_ACTION_WOULD_REMOVE && row->action != IC_ACTION_WOULD_QUARANTINE)
            continue;
        IcProtocolPlan *plan = g_new0(IcProtocolPlan, 1);
        /* The identity a removal re-checks before it unlinks; a preview (report,
         * dry run) only defers or keeps rows, and at 100,000 files the lookups
         * of 20,000 planned rows took 20 ms (issue 15). */
        const IcBaseFile *file = pass->options->mode == IC_PASS_RUN ? row_file(pass, row) : NULL;
        plan->row = row;
        plan->scanned = file != NULL;
        plan->dev = file ? file->dev : 0;
        plan->ino = file ? file->ino : 0;
        g_ptr_array_add(plans, plan);
    }
    if (plans->len == 0)
        return;
    /* A dry run says removal_deferred where the run would. */
    if (pass->options->mode != IC_PASS_RUN) {
        ic_protocol_preview(pass->config, plans, pass->report);
        return;
    }

    IcProtocolRemoval removal = {
        .config = pass->config,
        .dirfd = pass->dirfd,
        .given = pass->given_usage,
        .asked = pass->asked,
        .known = pass->scan,
        .walk_threads = pass->options->walk_threads,
        .now = pass->now,
        .cancel = pass->options->cancel,
        .proc_root = pass->options->proc_root,
        .lock_timeout_ms = pass->options->lock_timeout_ms,
        .hold_limit_ms = pass->options->hold_limit_ms,
        .decide = redecide,
        .decide_data = pass,
        .seam = pass->options->seam,
        .seam_data = pass->options->seam_data,
    };
    ic_protocol_remove(&removal, plans, pass->report);
}

/* A writer killed mid-write leaves "<file>.info.tmp.XXXXXXXX"; the next run
 * removes those old enough that no live writer can own them. */
#define STALE_TEMP_SECONDS 3600

static void remove_stale_temps(Pass *pass)
{
    if (pass->options->mode != IC_PASS_RUN)
        return;
    for (guint i = 0; i < pass->scan->temps->len; i++) {
        const IcBaseFile *temp = g_ptr_array_index(pass->scan->temps, i);
        if (pass->now - temp->mtime < STALE_TEMP_SECONDS)
            continue;
        if (unlinkat(pass->dirfd, temp->name, 0) == 0)
            ic_report_add_event(pass->report, IC_EVENT_INFO, temp->name,
                                "%s: removed a temp file an interrupted sidecar write left",
                                temp->name);
    }
}

/* The quarantine dir, looked at without following a symlink: anyone who can
 * write _base could put a file or a link named .quarantine there, and that must
 * not stop the pass. Then quarantine is left alone this pass and a note says why. */
static gboolean scan_quarantine(Pass *pass, IcScan **ret_quarantine, GError **error)
{
    struct stat st;
    *ret_quarantine = NULL;
    if (fstatat(pass->dirfd, IC_QUARANTINE_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int saved_errno = errno;
        pass->quarantine_usable = saved_errno == ENOENT;
        if (saved_errno == ENOENT)
            return TRUE;
        g_autofree char *note =
            g_strdup_printf("'%s/%s' cannot be inspected (%s): quarantine is left alone this pass",
                            pass->base_dir, IC_QUARANTINE_DIR, g_strerror(saved_errno));
        ic_report_add_note(pass->report, IC_NOTE_QUARANTINE_UNUSABLE, note);
        return TRUE;
    }
    if (!S_ISDIR(st.st_mode)) {
        pass->quarantine_usable = FALSE;
        g_autofree char *note =
            g_strdup_printf("'%s/%s' is not a directory: quarantine is left alone this pass "
                            "(corrupt files stay where they are)",
                            pass->base_dir, IC_QUARANTINE_DIR);
        ic_report_add_note(pass->report, IC_NOTE_QUARANTINE_UNUSABLE, note);
        return TRUE;
    }
    pass->quarantine_usable = TRUE;
    g_autofree char *quarantine_dir = g_build_filename(pass->base_dir, IC_QUARANTINE_DIR, NULL);
    return ic_scan_base_dir(quarantine_dir, ret_quarantine, error);
}

static gpointer free_usage(gpointer usage)
{
    ic_usage_free(usage);
    return NULL;
}

/* Frees @usage, the first read's, once every row is decided: on a thread of
 * its own, joined when the report is finished, unless the caller allows one
 * thread (walk_threads 1: the collectd plugin). At 100,000 files freeing it
 * took 70-100 ms, one cache miss per allocation, serial at the end of the pass;
 * the plans, the scan's free and the rows' sort now go on meanwhile (issue 15). A
 * removal re-reads the witnesses into a usage of its own: this one is not
 * needed there, and is no longer held beside it. */
static void free_usage_aside(Pass *pass, IcUsage *usage)
{
    if (keeping(pass->options))
        pass->kept = usage;
    else if (pass->options->walk_threads != 1)
        pass->freeing = g_thread_new("imagecache-free", free_usage, usage);
    else
        ic_usage_free(usage);
}

static gboolean pass_body(Pass *pass, GError **error)
{
    g_autoptr(IcUsage) usage = NULL;

    if (!gather_usage(pass, &usage, error))
        return FALSE;
    /* The instances walk's threads freed their working memory into their own
     * malloc arenas, which glibc keeps; give it back before the rows grow (the
     * report's peak RSS at 10,000 files: 77 -> 73 MiB). */
    (void)malloc_trim(0);
    for (guint i = 0; i < usage->notes->len; i++)
        ic_report_add_note(pass->report, g_array_index(usage->note_codes, IcNoteCode, i),
                           g_ptr_array_index(usage->notes, i));
    if (!ic_remove_open_base_dir(pass->base_dir, &pass->dirfd, error))
        return FALSE;
    remove_stale_temps(pass);
    g_autoptr(IcScan) quarantine = NULL;
    if (!scan_quarantine(pass, &quarantine, error))
        return FALSE;
    pass->quarantine = quarantine;
    Checksums checksums;
    if (!verify_checksums(pass, &checksums, error))
        return FALSE;
    process_files(pass, &checksums, usage);
    checksums_clear(&checksums);
    for (guint i = 0; quarantine != NULL && i < quarantine->files->len; i++)
        process_quarantined(pass, g_ptr_array_index(quarantine->files, i), usage);
    add_absent_rows(pass, usage);
    apply_disk_pressure(pass, usage);
    free_usage_aside(pass, g_steal_pointer(&usage));
    remove_phase(pass);
    pass->quarantine = NULL;
    return TRUE;
}

/* The base dir scanned by a thread of its own. */
typedef struct {
    const char *base_dir;
    IcScan *scan;
    GError *error;
} ScanThread;

static gpointer scan_thread(gpointer data)
{
    ScanThread *st = data;
    (void)ic_scan_base_dir(st->base_dir, &st->scan, &st->error);
    return NULL;
}

/* The base dir is scanned while the ledger is read: neither needs the other,
 * and one after the other each left a core idle (issue 15). The scan, not the
 * ledger, gets the second thread: what it builds does not grow later, while
 * the usage the ledger starts grows through the walk, and a usage spread over
 * two threads' malloc arenas cost 22 MiB at 10x. A caller that allows one
 * thread (walk_threads 1: the collectd plugin) does both in its own. */
static gboolean scan_while_reading_ledger(const IcConfig *config, const IcPassOptions *options,
                                          const IcUsage *given, gint64 now, const char *base_dir,
                                          IcScan **ret_scan, IcProtocolReading **ret_reading,
                                          GError **error)
{
    ScanThread st = {.base_dir = base_dir};
    GThread *scanner =
        options->walk_threads != 1 ? g_thread_new("imagecache-scan", scan_thread, &st) : NULL;
    if (scanner == NULL)
        scan_thread(&st);
    *ret_reading = ic_protocol_reading_start(config, options->ledger_cache, given, now);
    if (scanner != NULL)
        g_thread_join(scanner);
    if (st.scan == NULL) {
        g_propagate_error(error, st.error);
        g_clear_pointer(ret_reading, ic_protocol_reading_free);
        return FALSE;
    }
    *ret_scan = st.scan;
    return TRUE;
}

gboolean ic_pass_run(const IcConfig *config, const IcUsage *usage, const IcPassOptions *options,
                     gint64 now, IcReport **ret_report, GError **error)
{
    gint64 started = g_get_monotonic_time();
    g_autofree char *base_dir = ic_config_base_dir(config);
    g_autoptr(IcReport) report = ic_report_new(base_dir, config->host, now);
    g_autoptr(IcScan) scan = NULL;

    report->dry_run = options->mode != IC_PASS_RUN;
    report->disk_high_watermark_percent = config->disk_high_watermark_percent;
    report->disk_low_watermark_percent = config->disk_low_watermark_percent;
    g_autoptr(IcProtocolReading) reading = NULL;
    GThread *freeing = NULL;
    g_autoptr(IcUsage) kept_usage = NULL;
    if (options->keep != NULL)
        *options->keep = NULL;
    if (!scan_while_reading_ledger(config, options, usage, now, base_dir, &scan, &reading, error))
        return FALSE;
    report->base_dir_exists = scan->exists;
    if (!scan->exists) {
        g_autofree char *note = g_strdup_printf(
            "base dir '%s' does not exist (an unmounted share?): nothing was checked or removed",
            base_dir);
        ic_report_add_note(report, IC_NOTE_BASE_DIR_MISSING, note);
    }
    if (scan->exists) {
        g_ptr_array_unref(report->skipped);
        report->skipped = g_ptr_array_ref(scan->skipped);
        Pass pass = {
            .config = config,
            .given_usage = usage,
            .options = options,
            .now = now,
            .base_dir = base_dir,
            .scan = scan,
            .report = report,
            .dirfd = -1,
            .reading = g_steal_pointer(&reading),
        };
        gboolean ok = pass_body(&pass, error);
        if (pass.dirfd >= 0)
            close(pass.dirfd);
        g_clear_pointer(&pass.asked, ic_usage_free);
        g_clear_pointer(&pass.reading, ic_protocol_reading_free);
        freeing = pass.freeing;
        kept_usage = pass.kept;
        if (!ok) {
            g_clear_pointer(&freeing, g_thread_join);
            return FALSE;
        }
    }
    /* Beside the usage's free (free_usage_aside), or left to the caller: the
     * rows copied what they needed of the scan, and the report holds its own
     * reference to the skipped. */
    if (keeping(options)) {
        IcPassKept *kept = g_new0(IcPassKept, 1);
        kept->usage = g_steal_pointer(&kept_usage);
        kept->scan = g_steal_pointer(&scan);
        *options->keep = kept;
    }
    g_clear_pointer(&scan, ic_scan_free);
    ic_report_finish(report);
    g_clear_pointer(&freeing, g_thread_join);
    report->duration_seconds = (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC;
    *ret_report = g_steal_pointer(&report);
    return TRUE;
}
