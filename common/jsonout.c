#include "jsonout.h"

#include "fileutil.h"

#include <errno.h>
#include <string.h>

/* Deep enough for every document we print (report: 3 levels); deeper is a bug. */
#define MAX_DEPTH 16

/* Output is gathered here and handed to stdio in blocks: the report writes
 * hundreds of thousands of small pieces, and each stdio call takes the
 * stream's lock (issue 15: 19 % of a report's instructions were stdio). */
#define OUT_BUFFER_BYTES (64 * 1024)

struct IcJsonWriter {
    FILE *out;
    GByteArray *memory; /* instead of @out: a share of elements formatted aside */
    gsize used;         /* bytes of @buffer not yet written to @out */
    char buffer[OUT_BUFFER_BYTES];
    guint depth;
    /* Per open container: has it had an element yet (the separator and whether
     * `}`/`]` goes on its own line depend on it). */
    gboolean has_elements[MAX_DEPTH];
    gboolean after_name; /* a member name was written, its value comes next */
    gboolean broken;     /* unbalanced or too deep: finish reports it */
};

IcJsonWriter *ic_json_writer_new(FILE *out)
{
    IcJsonWriter *w = g_new0(IcJsonWriter, 1);
    w->out = out;
    return w;
}

void ic_json_writer_free(IcJsonWriter *w)
{
    g_free(w);
}

static void flush(IcJsonWriter *w)
{
    if (w->used > 0 && w->memory != NULL)
        g_byte_array_append(w->memory, (const guint8 *)w->buffer, (guint)w->used);
    else if (w->used > 0)
        fwrite(w->buffer, 1, w->used, w->out);
    w->used = 0;
}

static void emit_len(IcJsonWriter *w, const char *s, gsize len)
{
    if (len > OUT_BUFFER_BYTES - w->used) {
        flush(w);
        if (len >= OUT_BUFFER_BYTES && w->memory != NULL) {
            g_byte_array_append(w->memory, (const guint8 *)s, (guint)len);
            return;
        }
        if (len >= OUT_BUFFER_BYTES) {
            fwrite(s, 1, len, w->out);
            return;
        }
    }
    memcpy(w->buffer + w->used, s, len);
    w->used += len;
}

static void emit(IcJsonWriter *w, const char *s)
{
    emit_len(w, s, strlen(s));
}

static void emit_char(IcJsonWriter *w, char c)
{
    if (w->used == OUT_BUFFER_BYTES)
        flush(w);
    w->buffer[w->used++] = c;
}

gboolean ic_json_writer_finish(IcJsonWriter *w, GError **error)
{
    flush(w);
    gboolean broken = w->broken || w->depth != 0 || w->after_name;
    int failed = ferror(w->out);
    ic_json_writer_free(w);
    if (broken) {
        g_set_error(error, IC_ERROR, IC_ERROR_FAILED, "JSON writer: unbalanced document");
        return FALSE;
    }
    if (failed) {
        g_set_error(error, IC_ERROR, IC_ERROR_IO, "writing the JSON output failed");
        return FALSE;
    }
    return TRUE;
}

/* A separator, a newline and the deepest indent: each element's start is one
 * copy of a part of it (a report writes hundreds of thousands; issue 15). */
static const char separator_indent[] = ",\n                                ";
G_STATIC_ASSERT(sizeof separator_indent - 1 == 2 + 2 * MAX_DEPTH);

static void indent(IcJsonWriter *w)
{
    emit_len(w, separator_indent + 2, 2 * w->depth);
}

/* Before any value or member name: the separator and indent of a new element,
 * unless the value follows its member name on the same line. */
static void begin_element(IcJsonWriter *w)
{
    if (w->after_name) {
        w->after_name = FALSE;
        return;
    }
    if (w->depth == 0)
        return;
    gboolean separated = w->has_elements[w->depth - 1];
    w->has_elements[w->depth - 1] = TRUE;
    /* ",\n" + indent after an element, "\n" + indent before the first. */
    emit_len(w, separator_indent + !separated, 1 + separated + 2 * w->depth);
}

/* A byte copied as it is: printable ASCII other than the two JSON quotes. */
static inline gboolean plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Bit 7 of each byte of @v set where that byte is zero; only whether any is
 * set is exact (a borrow may mark a byte above a zero one too). */
static inline guint64 zero_bytes(guint64 v)
{
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
}

/* Bit 7 set somewhere when a byte of @v is not a plain_byte(): below 0x20, 0x7f
 * or above, '"' or '\\'. */
static inline guint64 odd_bytes(guint64 v)
{
    const guint64 ones = 0x0101010101010101ULL;
    guint64 control = (v - 0x20 * ones) & ~v; /* below 0x20 (or 0x80 and above) */
    guint64 high = (v + ones) | v;            /* 0x7f and above: bytes below 0x80 do not carry */
    return (control | high | zero_bytes(v ^ ('"' * ones)) | zero_bytes(v ^ ('\\' * ones))) &
           (0x80 * ones);
}

/* Copies the @len bytes at @s to @out, eight at a time, and says whether they
 * were all plain_byte()s. Nearly every string of a report (names, fingerprints,
 * users, member names) is, and checking and copying them byte by byte was two
 * thirds of the JSON's instructions (issue 15). */
static gboolean copy_plain(char *out, const char *s, gsize len)
{
    guint64 odd = 0;
    if (len < 8) {
        for (gsize i = 0; i < len; i++) {
            odd |= !plain_byte((unsigned char)s[i]);
            out[i] = s[i];
        }
        return odd == 0;
    }
    guint64 v;
    gsize i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&v, s + i, 8);
        odd |= odd_bytes(v);
        memcpy(out + i, &v, 8);
    }
    /* The last eight bytes, overlapping the words above: no byte-sized tail. */
    memcpy(&v, s + len - 8, 8);
    odd |= odd_bytes(v);
    memcpy(out + len - 8, &v, 8);
    return odd == 0;
}

static void write_escape(IcJsonWriter *w, unsigned char c)
{
    switch (c) {
    case '"':
        emit(w, "\\\"");
        break;
    case '\\':
        emit(w, "\\\\");
        break;
    case '\b':
        emit(w, "\\b");
        break;
    case '\f':
        emit(w, "\\f");
        break;
    case '\n':
        emit(w, "\\n");
        break;
    case '\r':
        emit(w, "\\r");
        break;
    case '\t':
        emit(w, "\\t");
        break;
    default: {
        static const char hex[] = "0123456789abcdef";
        char escape[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        emit_len(w, escape, sizeof escape);
        break;
    }
    }
}

/* As json-glib 1.6: `"`, `\` and control characters escaped, the rest (UTF-8
 * included) as it is. Unlike json-glib, 0x1f is escaped too (JSON requires it).
 * Names come from the filesystem and may be any bytes: each byte that is not
 * part of a valid UTF-8 sequence becomes U+FFFD (as a decoder that replaces
 * does), so the output is always valid JSON; the text report shows the exact
 * bytes (\xNN). */
static void write_escaped(IcJsonWriter *w, const char *s)
{
    gsize len = strlen(s);
    if (len + 2 > OUT_BUFFER_BYTES - w->used)
        flush(w);
    if (len + 2 <= OUT_BUFFER_BYTES - w->used) {
        char *out = w->buffer + w->used;
        out[0] = '"';
        if (copy_plain(out + 1, s, len)) {
            out[len + 1] = '"';
            w->used += len + 2;
            return;
        }
        /* Not plain: what was copied past @used is written over below. */
    }
    const char *end = NULL; /* the terminating NUL, once a non-ASCII byte needs it */
    emit_char(w, '"');
    for (const char *p = s;;) {
        const char *run = p;
        while (plain_byte((unsigned char)*p))
            p++;
        emit_len(w, run, (gsize)(p - run));
        unsigned char c = (unsigned char)*p;
        if (c == '\0')
            break;
        if (c < 0x80) {
            write_escape(w, c);
            p++;
            continue;
        }
        if (end == NULL)
            end = p + strlen(p);
        gunichar ch = g_utf8_get_char_validated(p, end - p);
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            emit(w, "\\ufffd");
            p++;
            continue;
        }
        const char *next = g_utf8_next_char(p);
        emit_len(w, p, (gsize)(next - p));
        p = next;
    }
    emit_char(w, '"');
}

static void begin_container(IcJsonWriter *w, char open)
{
    begin_element(w);
    emit_char(w, open);
    if (w->depth == MAX_DEPTH) {
        w->broken = TRUE;
        return;
    }
    w->has_elements[w->depth++] = FALSE;
}

static void end_container(IcJsonWriter *w, char close)
{
    if (w->depth == 0 || w->after_name) {
        w->broken = TRUE;
        return;
    }
    w->depth--;
    if (w->has_elements[w->depth])
        emit_char(w, '\n');
    /* json-glib wrote an empty object as `{` + indent + `}`, an empty array as `[]`. */
    if (w->has_elements[w->depth] || close == '}')
        indent(w);
    emit_char(w, close);
}

void ic_json_begin_object(IcJsonWriter *w)
{
    begin_container(w, '{');
}

void ic_json_end_object(IcJsonWriter *w)
{
    end_container(w, '}');
}

void ic_json_begin_array(IcJsonWriter *w)
{
    begin_container(w, '[');
}

void ic_json_end_array(IcJsonWriter *w)
{
    end_container(w, ']');
}

void ic_json_member_name(IcJsonWriter *w, const char *name)
{
    begin_element(w);
    write_escaped(w, name);
    emit(w, " : ");
    w->after_name = TRUE;
}

void ic_json_value_string(IcJsonWriter *w, const char *value)
{
    begin_element(w);
    if (value == NULL)
        emit(w, "null");
    else
        write_escaped(w, value);
}

void ic_json_value_int(IcJsonWriter *w, gint64 value)
{
    begin_element(w);
    char buf[IC_INT64_TEXT_SIZE];
    gsize len = 0;
    const char *text = ic_int64_text(value, buf, &len);
    emit_len(w, text, len);
}

void ic_json_value_bool(IcJsonWriter *w, gboolean value)
{
    begin_element(w);
    emit(w, value ? "true" : "false");
}

/* As json-glib 1.6: g_ascii_dtostr (%.17g), with ".0" added when it would read
 * back as an integer. Unlike json-glib, not after an exponent ("1e-300.0" is
 * not JSON). */
void ic_json_value_double(IcJsonWriter *w, double value)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    begin_element(w);
    g_ascii_dtostr(buf, sizeof buf, value);
    emit(w, buf);
    if (strpbrk(buf, ".eEn") == NULL)
        emit(w, ".0");
}

void ic_json_member_string(IcJsonWriter *w, const char *name, const char *value)
{
    ic_json_member_name(w, name);
    ic_json_value_string(w, value);
}

void ic_json_member_int(IcJsonWriter *w, const char *name, gint64 value)
{
    ic_json_member_name(w, name);
    ic_json_value_int(w, value);
}

void ic_json_member_bool(IcJsonWriter *w, const char *name, gboolean value)
{
    ic_json_member_name(w, name);
    ic_json_value_bool(w, value);
}

void ic_json_member_double(IcJsonWriter *w, const char *name, double value)
{
    ic_json_member_name(w, name);
    ic_json_value_double(w, value);
}

void ic_json_member_strings(IcJsonWriter *w, const char *name, const GPtrArray *strings)
{
    ic_json_member_name(w, name);
    ic_json_begin_array(w);
    for (guint i = 0; i < strings->len; i++)
        ic_json_value_string(w, g_ptr_array_index(strings, i));
    ic_json_end_array(w);
}

/* Elements to a chunk: each chunk is formatted by one thread into a buffer of
 * its own (about 230 KB for a report's rows) and written in order. */
#define ELEMENTS_PER_CHUNK  256
#define MAX_ELEMENT_THREADS 4
/* Per helper thread: one buffer written out while it formats the next. */
#define CHUNK_BUFFERS 2

typedef struct ParallelElements ParallelElements;

typedef struct {
    GByteArray *bytes;
    gboolean broken; /* the chunk's elements left their writer unbalanced */
    gint formatted;  /* atomic: 1 from formatted until written, 0 free */
} ChunkBuffer;

typedef struct {
    ParallelElements *job;
    guint index; /* 1..: the chunks index, index + threads, ... are its */
    IcJsonWriter *writer;
    ChunkBuffer buffers[CHUNK_BUFFERS];
    GThread *thread;
} ElementHelper;

struct ParallelElements {
    /* The main writer's containers when the elements began. */
    guint depth;
    gboolean has_elements[MAX_DEPTH];
    IcJsonElementFunc write;
    gconstpointer data;
    guint n;
    guint n_chunks;
    guint threads;
    /* Handing a buffer over: @formatted, set and read atomically, says whose
     * it is (the atomics are what ThreadSanitizer sees ordering the bytes);
     * the lock and condition only put the waiting side to sleep. */
    GMutex lock;
    GCond changed;
    ElementHelper helpers[MAX_ELEMENT_THREADS - 1];
};

static void write_chunk(const ParallelElements *job, IcJsonWriter *w, guint chunk)
{
    guint end = MIN((chunk + 1) * ELEMENTS_PER_CHUNK, job->n);
    for (guint i = chunk * ELEMENTS_PER_CHUNK; i < end; i++)
        job->write(w, job->data, i);
}

static void wait_for(ParallelElements *job, gint *formatted, gint value)
{
    if (g_atomic_int_get(formatted) == value)
        return;
    g_mutex_lock(&job->lock);
    while (g_atomic_int_get(formatted) != value)
        g_cond_wait(&job->changed, &job->lock);
    g_mutex_unlock(&job->lock);
}

static void set_and_wake(ParallelElements *job, gint *formatted, gint value)
{
    g_mutex_lock(&job->lock);
    g_atomic_int_set(formatted, value);
    g_cond_broadcast(&job->changed);
    g_mutex_unlock(&job->lock);
}

/* A helper thread: its chunks, each into the next of its buffers once the
 * main thread has written what that buffer held. */
static gpointer format_chunks(gpointer data)
{
    ElementHelper *helper = data;
    ParallelElements *job = helper->job;
    IcJsonWriter *w = helper->writer;
    guint d = job->depth;
    for (guint k = 0, chunk = helper->index; chunk < job->n_chunks; k++, chunk += job->threads) {
        ChunkBuffer *buffer = &helper->buffers[k % CHUNK_BUFFERS];
        wait_for(job, &buffer->formatted, 0);
        /* The writer's state as the main thread's will be at this chunk: the
         * same containers, the array already holding the chunks before it. */
        memcpy(w->has_elements, job->has_elements, sizeof w->has_elements);
        w->depth = d;
        w->has_elements[d - 1] = TRUE;
        w->after_name = FALSE;
        w->broken = FALSE;
        w->memory = buffer->bytes;
        g_byte_array_set_size(w->memory, 0);
        write_chunk(job, w, chunk);
        flush(w);
        buffer->broken = w->broken || w->depth != d || w->after_name;
        set_and_wake(job, &buffer->formatted, 1);
    }
    return NULL;
}

void ic_json_write_elements(IcJsonWriter *w, guint n, IcJsonElementFunc write, gconstpointer data,
                            guint threads)
{
    guint n_chunks = (n + ELEMENTS_PER_CHUNK - 1) / ELEMENTS_PER_CHUNK;
    threads = MIN(MIN(threads, MAX_ELEMENT_THREADS), n_chunks);
    /* Outside an array (or after a member name) the elements' separators
     * would not be a chunk's own: no helpers there. */
    if (threads <= 1 || w->depth == 0 || w->after_name) {
        for (guint i = 0; i < n; i++)
            write(w, data, i);
        return;
    }
    ParallelElements job = {
        .depth = w->depth,
        .write = write,
        .data = data,
        .n = n,
        .n_chunks = n_chunks,
        .threads = threads,
    };
    g_mutex_init(&job.lock);
    g_cond_init(&job.changed);
    memcpy(job.has_elements, w->has_elements, sizeof job.has_elements);
    for (guint t = 1; t < threads; t++) {
        ElementHelper *helper = &job.helpers[t - 1];
        helper->job = &job;
        helper->index = t;
        helper->writer = g_new0(IcJsonWriter, 1);
        for (guint b = 0; b < CHUNK_BUFFERS; b++)
            helper->buffers[b].bytes = g_byte_array_new();
        helper->thread = g_thread_new("imagecache-json", format_chunks, helper);
    }
    for (guint chunk = 0; chunk < n_chunks; chunk++) {
        guint t = chunk % threads;
        if (t == 0) {
            write_chunk(&job, w, chunk);
            continue;
        }
        ElementHelper *helper = &job.helpers[t - 1];
        ChunkBuffer *buffer = &helper->buffers[(chunk / threads) % CHUNK_BUFFERS];
        wait_for(&job, &buffer->formatted, 1);
        emit_len(w, (const char *)buffer->bytes->data, buffer->bytes->len);
        w->has_elements[w->depth - 1] = TRUE;
        w->broken |= buffer->broken;
        set_and_wake(&job, &buffer->formatted, 0);
    }
    for (guint t = 1; t < threads; t++) {
        ElementHelper *helper = &job.helpers[t - 1];
        g_thread_join(helper->thread);
        for (guint b = 0; b < CHUNK_BUFFERS; b++)
            g_byte_array_unref(helper->buffers[b].bytes);
        ic_json_writer_free(helper->writer);
    }
    g_cond_clear(&job.changed);
    g_mutex_clear(&job.lock);
}

char *ic_json_to_string(IcJsonWriteFunc write, gconstpointer data)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL)
        g_error("open_memstream: %s", g_strerror(errno)); /* out of memory */
    IcJsonWriter *w = ic_json_writer_new(out);
    write(w, data);
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_json_writer_finish(w, &error);
    fclose(out);
    if (!ok)
        g_error("%s", error->message); /* a bug in @write, not an input */
    /* open_memstream's buffer is malloc'ed; hand the caller a g_free'able copy. */
    char *copy = g_strndup(text, len);
    free(text);
    return copy;
}
