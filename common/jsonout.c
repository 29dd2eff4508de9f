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
    gsize used; /* bytes of @buffer not yet written to @out */
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
    if (w->used > 0)
        fwrite(w->buffer, 1, w->used, w->out);
    w->used = 0;
}

static void emit_len(IcJsonWriter *w, const char *s, gsize len)
{
    if (len > OUT_BUFFER_BYTES - w->used) {
        flush(w);
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

static void indent(IcJsonWriter *w)
{
    static const char spaces[] = "                                ";
    guint n = 2 * w->depth;
    while (n > 0) {
        guint chunk = MIN(n, sizeof spaces - 1);
        emit_len(w, spaces, chunk);
        n -= chunk;
    }
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
    emit(w, w->has_elements[w->depth - 1] ? ",\n" : "\n");
    w->has_elements[w->depth - 1] = TRUE;
    indent(w);
}

/* A byte copied as it is: printable ASCII other than the two JSON quotes. */
static inline gboolean plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
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
