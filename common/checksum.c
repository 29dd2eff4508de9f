#include "checksum.h"

#include "error.h"
#include "fileutil.h"
#include "jsonin.h"

#include <fcntl.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HASH_BUFFER_SIZE (1024 * 1024)
#define HASH_MIN_CHUNK   (64 * 1024)
#define SLEEP_SLICE_USEC (100 * 1000)
#define DROP_ALIGN       (2 * 1024 * 1024) /* the largest page-cache folio on x86-64 */
#define SIDECAR_MAX_SIZE (64 * 1024)
#define SIDECAR_TEXT_MAX 128

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD, EVP_MD_free)

const char *ic_checksum_state_to_string(IcChecksumState state)
{
    switch (state) {
    case IC_CHECKSUM_NOT_CHECKED:
        return "not_checked";
    case IC_CHECKSUM_OK:
        return "ok";
    case IC_CHECKSUM_RECENT:
        return "recent";
    case IC_CHECKSUM_NO_SIDECAR:
        return "no_sidecar";
    case IC_CHECKSUM_MISMATCH:
        return "mismatch";
    case IC_CHECKSUM_ERROR:
        return "error";
    }
    return "unknown";
}

void ic_stored_checksum_free(IcStoredChecksum *stored)
{
    if (stored == NULL)
        return;
    g_free(stored->sha1);
    g_free(stored);
}

void ic_checksum_result_clear(IcChecksumResult *result)
{
    g_clear_pointer(&result->expected, g_free);
    g_clear_pointer(&result->actual, g_free);
    g_clear_pointer(&result->error, g_free);
    result->state = IC_CHECKSUM_NOT_CHECKED;
}

/* Turns OpenSSL's error queue (emptied) into IC_ERROR_CRYPTO: "@what: lib errors". */
static gboolean set_crypto_error(GError **error, const char *what)
{
    g_autoptr(GString) msg = g_string_new(NULL);
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof(buf));
        if (msg->len > 0)
            g_string_append(msg, "; ");
        g_string_append(msg, buf);
    }
    g_set_error(error, IC_ERROR, IC_ERROR_CRYPTO, "%s: %s", what,
                msg->len > 0 ? msg->str : "unknown libcrypto error");
    return FALSE;
}

static gboolean check_cancelled(const IcCancel *cancel, const char *name, GError **error)
{
    if (!ic_cancel_is_cancelled(cancel))
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_CANCELLED, "hashing '%s' cancelled", name);
    return FALSE;
}

/* Sleeps until @deadline (monotonic µs) in slices, watching @cancel. */
static gboolean sleep_until(gint64 deadline, const IcCancel *cancel, const char *name,
                            GError **error)
{
    for (;;) {
        if (!check_cancelled(cancel, name, error))
            return FALSE;
        gint64 left = deadline - g_get_monotonic_time();
        if (left <= 0)
            return TRUE;
        g_usleep((gulong)MIN(left, SLEEP_SLICE_USEC));
    }
}

static char *digest_to_hex(const unsigned char *digest, unsigned int len)
{
    static const char hex[] = "0123456789abcdef";
    char *out = g_malloc(len * 2 + 1);
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[len * 2] = '\0';
    return out;
}

/* Which pages of [@offset, @offset + @len) (@offset page-aligned) are in the page
 * cache, one byte per page into @vec (bit 0 set: resident), through mincore(2) on
 * a short-lived mapping. The kernel tells only callers that own the file or may
 * write it (root does): otherwise, or when the mapping fails, every page reads as
 * absent, so hashing drops the file's pages behind it as it always did. */
static void page_residency(int fd, guint64 offset, gsize len, unsigned char *vec, gsize pages)
{
    memset(vec, 0, pages);
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)offset);
    if (map == MAP_FAILED)
        return;
    if (mincore(map, len, vec) < 0)
        memset(vec, 0, pages);
    munmap(map, len);
}

/* Gives back to the page cache what the reader brought in, and only that: pages
 * that were cached before we read them are someone else's (a guest reading its
 * backing file) and stay. Runs of our pages are dropped behind the reader; an
 * open run is dropped up to a DROP_ALIGN boundary, so a large folio straddling
 * two chunks is dropped whole once the run ends (DONTNEED skips partial folios). */
typedef struct {
    int fd;
    guint64 run_start; /* start of the current run of pages we brought in */
    gboolean in_run;
} Dropper;

static void dropper_page(Dropper *d, guint64 page_offset, gboolean was_resident)
{
    if (!was_resident && !d->in_run) {
        d->run_start = page_offset;
        d->in_run = TRUE;
    } else if (was_resident && d->in_run) {
        (void)posix_fadvise(d->fd, (off_t)d->run_start, (off_t)(page_offset - d->run_start),
                            POSIX_FADV_DONTNEED);
        d->in_run = FALSE;
    }
}

static void dropper_flush(Dropper *d, guint64 upto, gboolean at_end)
{
    if (!d->in_run)
        return;
    guint64 end = at_end ? 0 : upto - upto % DROP_ALIGN; /* 0 length: to the end of file */
    if (!at_end && end <= d->run_start)
        return;
    (void)posix_fadvise(d->fd, (off_t)d->run_start, (off_t)(at_end ? 0 : end - d->run_start),
                        POSIX_FADV_DONTNEED);
    if (at_end)
        d->in_run = FALSE;
    else
        d->run_start = end;
}

struct IcRateLimit {
    GMutex lock;
    guint64 bytes_per_sec;
    gint64 start; /* monotonic µs of the first byte */
    guint64 total;
};

/* Counts @n more bytes read and returns when (monotonic µs) the reader may go
 * on: the time at which all the bytes read so far by every sharer fit the rate. */
static gint64 rate_limit_take(IcRateLimit *limit, guint64 n)
{
    g_mutex_lock(&limit->lock);
    limit->total += n;
    gint64 due = limit->start +
                 (gint64)((double)limit->total * G_USEC_PER_SEC / (double)limit->bytes_per_sec);
    g_mutex_unlock(&limit->lock);
    return due;
}

static gboolean hash_file(int dirfd, const char *name, guint64 rate_limit_bytes_per_sec,
                          IcRateLimit *shared, IcCancel *cancel, char **ret_sha1_hex,
                          GError **error);

gboolean ic_checksum_file(int dirfd, const char *name, guint64 rate_limit_bytes_per_sec,
                          IcCancel *cancel, char **ret_sha1_hex, GError **error)
{
    return hash_file(dirfd, name, rate_limit_bytes_per_sec, NULL, cancel, ret_sha1_hex, error);
}

/* @shared, when set, replaces the file's own rate limit (@rate_limit_bytes_per_sec
 * then only sizes the chunks). */
static gboolean hash_file(int dirfd, const char *name, guint64 rate_limit_bytes_per_sec,
                          IcRateLimit *shared, IcCancel *cancel, char **ret_sha1_hex,
                          GError **error)
{
    if (!check_cancelled(cancel, name, error))
        return FALSE;

    ic_autofd fd = ic_file_open_regular_at(dirfd, name, NULL, error);
    if (fd < 0)
        return FALSE;
    /* No readahead: it would cache pages ahead of the reader, which would then
     * look like someone else's. Each read asks for a whole chunk instead. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);

    g_autoptr(EVP_MD) md = EVP_MD_fetch(NULL, "SHA1", NULL);
    g_autoptr(EVP_MD_CTX) ctx = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL || !EVP_DigestInit_ex(ctx, md, NULL))
        return set_crypto_error(error, "starting SHA-1");

    /* At low rates, read smaller pieces so the throttle is smooth, not bursty. */
    const gsize page = (gsize)sysconf(_SC_PAGESIZE);
    gsize chunk = HASH_BUFFER_SIZE;
    if (rate_limit_bytes_per_sec > 0)
        chunk = (gsize)CLAMP(rate_limit_bytes_per_sec / 10, HASH_MIN_CHUNK, HASH_BUFFER_SIZE);
    chunk -= chunk % page;
    g_autofree unsigned char *buf = g_malloc(chunk);
    /* Residency of the pages from scanned_to to the end of the next read. */
    const gsize max_pages = chunk / page + 2;
    g_autofree unsigned char *vec = g_malloc(max_pages);
    Dropper dropper = {.fd = fd};
    guint64 scanned_to = 0; /* page-aligned: pages below were classified */

    gint64 start = g_get_monotonic_time();
    guint64 total = 0;
    for (;;) {
        if (!check_cancelled(cancel, name, error))
            return FALSE;
        guint64 window_end = total + chunk;
        window_end += (page - window_end % page) % page;
        gsize pages = (gsize)((window_end - scanned_to) / page);
        page_residency(fd, scanned_to, pages * page, vec, pages);

        gsize n;
        if (!ic_file_read_some(fd, buf, chunk, name, &n, error))
            return FALSE;
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, n))
            return set_crypto_error(error, "hashing");
        total += n;

        /* Drop what we read from the page cache: the cache is the guests' to keep. */
        guint64 read_end = total + (page - total % page) % page;
        for (gsize i = 0; scanned_to < read_end && i < pages; i++, scanned_to += page)
            dropper_page(&dropper, scanned_to, vec[i] & 1);
        dropper_flush(&dropper, scanned_to, FALSE);

        if (shared != NULL) {
            if (!sleep_until(rate_limit_take(shared, n), cancel, name, error))
                return FALSE;
        } else if (rate_limit_bytes_per_sec > 0) {
            gint64 due =
                start + (gint64)((double)total * G_USEC_PER_SEC / (double)rate_limit_bytes_per_sec);
            if (!sleep_until(due, cancel, name, error))
                return FALSE;
        }
    }
    dropper_flush(&dropper, scanned_to, TRUE);

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_DigestFinal_ex(ctx, digest, &digest_len))
        return set_crypto_error(error, "finishing SHA-1");

    g_debug("hashed '%s': %" G_GUINT64_FORMAT " bytes", name, total);
    *ret_sha1_hex = digest_to_hex(digest, digest_len);
    return TRUE;
}

/* A stored digest is one line of printable ASCII, not empty, bounded. */
static gboolean check_sidecar_text(const char *text, gsize len, GError **error)
{
    if (len == 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "empty checksum");
        return FALSE;
    }
    if (len > SIDECAR_TEXT_MAX) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "checksum too long: %" G_GSIZE_FORMAT " bytes, at most %d", len,
                    SIDECAR_TEXT_MAX);
        return FALSE;
    }
    for (gsize i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n' || c == '\r') {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "checksum spans more than one line");
            return FALSE;
        }
        if (c < 0x20 || c > 0x7e) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "checksum holds a non-printable byte 0x%02x at offset %" G_GSIZE_FORMAT, c,
                        i);
            return FALSE;
        }
    }
    return TRUE;
}

static IcStoredChecksum *stored_new(IcSidecarFormat format, const char *sha1, gsize len,
                                    gint64 timestamp)
{
    IcStoredChecksum *stored = g_new0(IcStoredChecksum, 1);
    stored->format = format;
    stored->sha1 = g_strndup(sha1, len);
    stored->timestamp = timestamp;
    return stored;
}

gboolean ic_checksum_parse_sha1_sidecar(const char *data, gsize len, IcStoredChecksum **ret_stored,
                                        GError **error)
{
    if (memchr(data, '\0', len) != NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "checksum holds a NUL byte");
        return FALSE;
    }
    /* Strip surrounding whitespace, as Nova's reader did. */
    const char *start = data;
    const char *end = data + len;
    while (start < end && g_ascii_isspace(*start))
        start++;
    while (end > start && g_ascii_isspace(end[-1]))
        end--;
    if (!check_sidecar_text(start, (gsize)(end - start), error))
        return FALSE;

    *ret_stored = stored_new(IC_SIDECAR_SHA1, start, (gsize)(end - start), -1);
    return TRUE;
}

/* "sha1-timestamp": null → -1; else a non-negative number of seconds. */
static gboolean read_info_timestamp(IcJsonIn *in, gint64 *ret_timestamp, GError **error)
{
    if (ic_jsonin_null(in)) {
        *ret_timestamp = -1;
        return TRUE;
    }
    double value;
    if (!ic_jsonin_number(in, &value)) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "\"sha1-timestamp\" is not a number");
        return FALSE;
    }
    /* 2^53: beyond that a double is no longer a whole count of seconds. */
    if (!isfinite(value) || value < 0 || value > 9007199254740992.0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "\"sha1-timestamp\" out of range: %g", value);
        return FALSE;
    }
    /* Non-negative: truncation is the floor. */
    *ret_timestamp = (gint64)value;
    return TRUE;
}

static gboolean read_info_sha1(IcJsonIn *in, char **ret_sha1, GError **error)
{
    if (!ic_jsonin_peek(in, '"')) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "\"sha1\" is not a string");
        return FALSE;
    }
    g_autofree char *text = ic_jsonin_string(in);
    if (text == NULL)
        return FALSE; /* malformed: the caller says where */
    if (!check_sidecar_text(text, strlen(text), error)) {
        g_prefix_error(error, "\"sha1\": ");
        return FALSE;
    }
    *ret_sha1 = g_steal_pointer(&text);
    return TRUE;
}

typedef struct {
    char *sha1;
    gint64 timestamp;
    gboolean seen_timestamp;
} InfoMembers;

/* One member of the .info object (IcJsonInMemberFunc). A member given twice is
 * refused: readers that keep the first and readers that keep the last would see
 * two different checksums in one file. Other members, of any type, are skipped
 * (and checked as strictly). */
static gboolean read_info_member(IcJsonIn *in, const char *name, gpointer user_data, GError **error)
{
    InfoMembers *info = user_data;
    gboolean is_sha1 = g_str_equal(name, "sha1");
    if (!is_sha1 && !g_str_equal(name, "sha1-timestamp"))
        return ic_jsonin_skip_value(in);
    if (is_sha1 ? info->sha1 != NULL : info->seen_timestamp) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "\"%s\" given twice", name);
        return FALSE;
    }
    if (is_sha1)
        return read_info_sha1(in, &info->sha1, error);
    info->seen_timestamp = TRUE;
    return read_info_timestamp(in, &info->timestamp, error);
}

gboolean ic_checksum_parse_info_sidecar(const char *data, gsize len, IcStoredChecksum **ret_stored,
                                        GError **error)
{
    if (len > SIDECAR_MAX_SIZE) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT,
                    "info sidecar too large: %" G_GSIZE_FORMAT " bytes, at most %d", len,
                    SIDECAR_MAX_SIZE);
        return FALSE;
    }
    if (memchr(data, '\0', len) != NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "info sidecar holds a NUL byte");
        return FALSE;
    }

    InfoMembers info = {.timestamp = -1};
    g_autofree char *sha1 = NULL;
    gboolean ok = ic_jsonin_parse_object(data, len, read_info_member, &info, error);
    sha1 = g_steal_pointer(&info.sha1);
    if (!ok) {
        g_prefix_error(error, "info sidecar: ");
        return FALSE;
    }
    if (sha1 == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "info sidecar has no \"sha1\"");
        return FALSE;
    }
    *ret_stored = stored_new(IC_SIDECAR_INFO, sha1, strlen(sha1), info.timestamp);
    return TRUE;
}

gboolean ic_checksum_read_stored(int dirfd, const char *name, IcStoredChecksum **ret_stored,
                                 GError **error)
{
    static const struct {
        const char *suffix;
        gboolean (*parse)(const char *, gsize, IcStoredChecksum **, GError **);
    } sidecars[] = {
        {".info", ic_checksum_parse_info_sidecar},
        {".sha1", ic_checksum_parse_sha1_sidecar},
    };

    for (gsize i = 0; i < G_N_ELEMENTS(sidecars); i++) {
        g_autofree char *path = g_strconcat(name, sidecars[i].suffix, NULL);
        g_autofree char *data = NULL;
        gsize len = 0;
        g_autoptr(GError) local_error = NULL;
        if (!ic_file_read_at(dirfd, path, SIDECAR_MAX_SIZE, &data, &len, &local_error)) {
            if (g_error_matches(local_error, IC_ERROR, IC_ERROR_NOT_FOUND))
                continue;
            g_propagate_error(error, g_steal_pointer(&local_error));
            return FALSE;
        }
        if (!sidecars[i].parse(data, len, ret_stored, error)) {
            g_prefix_error(error, "'%s': ", path);
            return FALSE;
        }
        return TRUE;
    }
    *ret_stored = NULL;
    return TRUE;
}

/* The .info text: compact JSON and a newline, byte for byte what json-glib's
 * generator wrote before (test-checksum compares the two). @sha1_hex passed
 * check_sidecar_text: printable ASCII, where only '"' and '\\' need escaping. */
static char *format_info_sidecar(const char *sha1_hex, gint64 timestamp)
{
    g_autoptr(GString) text = g_string_new("{\"sha1\":\"");
    for (const char *p = sha1_hex; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_c(text, '\\');
        g_string_append_c(text, *p);
    }
    g_string_append_c(text, '"');
    if (timestamp >= 0)
        g_string_append_printf(text, ",\"sha1-timestamp\":%" G_GINT64_FORMAT, timestamp);
    g_string_append(text, "}\n");
    return g_string_free(g_steal_pointer(&text), FALSE);
}

gboolean ic_checksum_write_sidecar(int dirfd, const char *name, const char *sha1_hex,
                                   gint64 timestamp, GError **error)
{
    if (!check_sidecar_text(sha1_hex, strlen(sha1_hex), error)) {
        g_prefix_error(error, "not writing the sidecar of '%s': ", name);
        return FALSE;
    }
    g_autofree char *text = format_info_sidecar(sha1_hex, timestamp);
    g_autofree char *path = g_strconcat(name, ".info", NULL);
    return ic_file_write_atomic_at(dirfd, path, text, strlen(text), 0644, error);
}

/* The sidecar's hash is recent enough to trust without re-reading the file. A
 * timestamp in the future (clock skew, a forged file) is not trusted. */
static gboolean is_recent(const IcStoredChecksum *stored, gint64 interval, gint64 now)
{
    if (stored == NULL || stored->timestamp < 0 || interval <= 0)
        return FALSE;
    gint64 age = now - stored->timestamp;
    return age >= 0 && age < interval;
}

static void result_set_error(IcChecksumResult *result, const char *message)
{
    result->state = IC_CHECKSUM_ERROR;
    g_free(result->error);
    result->error = g_strdup(message);
}

gboolean ic_checksum_verify(int dirfd, const char *name, const IcChecksumOptions *options,
                            gint64 now, IcChecksumResult *ret_result, GError **error)
{
    IcChecksumResult result = {.state = IC_CHECKSUM_NOT_CHECKED};
    g_autoptr(GError) local_error = NULL;

    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
        g_debug("not verifying '%s': absent", name);
        *ret_result = result;
        return TRUE;
    }

    g_autoptr(IcStoredChecksum) stored = NULL;
    if (!ic_checksum_read_stored(dirfd, name, &stored, &local_error)) {
        result_set_error(&result, local_error->message);
        goto done;
    }
    if (stored != NULL)
        result.expected = g_strdup(stored->sha1);

    if (is_recent(stored, options->interval_seconds, now)) {
        result.state = IC_CHECKSUM_RECENT;
        goto done;
    }

    if (!hash_file(dirfd, name, options->rate_limit_bytes_per_sec, options->shared_limit,
                   options->cancel, &result.actual, &local_error)) {
        if (g_error_matches(local_error, IC_ERROR, IC_ERROR_CANCELLED)) {
            ic_checksum_result_clear(&result);
            g_propagate_error(error, g_steal_pointer(&local_error));
            return FALSE;
        }
        result_set_error(&result, local_error->message);
        goto done;
    }

    if (stored == NULL) {
        result.state = IC_CHECKSUM_NO_SIDECAR;
        if (options->write_missing &&
            !ic_checksum_write_sidecar(dirfd, name, result.actual, now, &local_error))
            result_set_error(&result, local_error->message);
        goto done;
    }

    if (g_ascii_strcasecmp(stored->sha1, result.actual) != 0) {
        result.state = IC_CHECKSUM_MISMATCH;
        goto done;
    }
    result.state = IC_CHECKSUM_OK;
    /* Refresh the timestamp so the next pass may skip re-hashing; failing that
     * only costs a re-hash, the file is verified. */
    if (stored->format == IC_SIDECAR_INFO && options->write_missing &&
        !ic_checksum_write_sidecar(dirfd, name, result.actual, now, &local_error))
        g_debug("could not refresh the sidecar of '%s': %s", name, local_error->message);

done:
    g_debug("verified '%s': %s", name, ic_checksum_state_to_string(result.state));
    *ret_result = result;
    return TRUE;
}

typedef struct {
    IcChecksumJob *jobs;
    guint n_jobs;
    const IcChecksumOptions *options;
    gint64 now;
    gint next; /* atomic: the next job to take */
    GMutex lock;
    GError *error; /* the first failure (cancellation) */
} VerifyMany;

static gpointer verify_worker(gpointer data)
{
    VerifyMany *many = data;
    for (;;) {
        guint i = (guint)g_atomic_int_add(&many->next, 1);
        if (i >= many->n_jobs)
            return NULL;
        IcChecksumJob *job = &many->jobs[i];
        g_autoptr(GError) error = NULL;
        if (ic_checksum_verify(job->dirfd, job->name, many->options, many->now, &job->result,
                               &error))
            continue;
        job->result = (IcChecksumResult){.state = IC_CHECKSUM_NOT_CHECKED};
        g_mutex_lock(&many->lock);
        if (many->error == NULL)
            many->error = g_steal_pointer(&error);
        g_mutex_unlock(&many->lock);
    }
}

gboolean ic_checksum_verify_many(IcChecksumJob *jobs, guint n_jobs,
                                 const IcChecksumOptions *options, gint64 now, guint max_threads,
                                 GError **error)
{
    IcRateLimit limit = {.bytes_per_sec = options->rate_limit_bytes_per_sec,
                         .start = g_get_monotonic_time()};
    IcChecksumOptions shared = *options;
    if (options->rate_limit_bytes_per_sec > 0)
        shared.shared_limit = &limit;
    VerifyMany many = {.jobs = jobs, .n_jobs = n_jobs, .options = &shared, .now = now};
    g_mutex_init(&limit.lock);
    g_mutex_init(&many.lock);

    /* Hashing is CPU-bound on a cached file and I/O-bound on a cold one: one
     * thread per core keeps both busy without oversubscribing the host. */
    guint threads = max_threads > 0 ? max_threads : g_get_num_processors();
    threads = MIN(threads, n_jobs);
    g_autoptr(GPtrArray) workers = g_ptr_array_new();
    for (guint t = 1; t < threads; t++) {
        GThread *thread = g_thread_try_new("ic-verify", verify_worker, &many, NULL);
        if (thread == NULL)
            break; /* fewer threads: the work gets done all the same */
        g_ptr_array_add(workers, thread);
    }
    verify_worker(&many);
    for (guint t = 0; t < workers->len; t++)
        g_thread_join(g_ptr_array_index(workers, t));

    g_mutex_clear(&many.lock);
    g_mutex_clear(&limit.lock);
    if (many.error != NULL) {
        g_propagate_error(error, many.error);
        return FALSE;
    }
    return TRUE;
}
