/* jsonin.c — the strict JSON reader of jsonin.h. Recursion only for nesting, bounded
 * by IC_JSONIN_MAX_DEPTH; every read is bounded by the buffer's end. */
#include "jsonin.h"

#include <string.h>

#include "error.h"

void ic_jsonin_init(IcJsonIn *in, const char *data, gsize len)
{
    *in = (IcJsonIn){.start = data, .p = data, .end = data + len};
}

/* Records why the read failed (the first reason only) and returns FALSE. */
static gboolean fail(IcJsonIn *in, const char *why)
{
    if (in->why == NULL)
        in->why = why;
    return FALSE;
}

static void skip_space(IcJsonIn *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

gboolean ic_jsonin_peek(IcJsonIn *in, char ch)
{
    skip_space(in);
    return in->p < in->end && *in->p == ch;
}

gboolean ic_jsonin_expect(IcJsonIn *in, char ch)
{
    if (!ic_jsonin_peek(in, ch))
        return fail(in, in->p < in->end ? "unexpected character" : "unexpected end");
    in->p++;
    return TRUE;
}

gboolean ic_jsonin_at_end(IcJsonIn *in)
{
    skip_space(in);
    if (in->p != in->end)
        return fail(in, "trailing characters after the value");
    return TRUE;
}

/* Four hex digits of a \u escape. */
static gboolean read_hex4(IcJsonIn *in, gunichar *ret_unit)
{
    if (in->end - in->p < 4)
        return fail(in, "short \\u escape");
    gunichar unit = 0;
    for (int i = 0; i < 4; i++) {
        if (!g_ascii_isxdigit(in->p[i]))
            return fail(in, "bad \\u escape");
        unit = unit << 4 | (gunichar)g_ascii_xdigit_value(in->p[i]);
    }
    in->p += 4;
    *ret_unit = unit;
    return TRUE;
}

/* After "\u": one code point, a surrogate pair joined; a lone surrogate has no
 * UTF-8 form and is refused. */
static gboolean read_unicode_escape(IcJsonIn *in, gunichar *ret_char)
{
    gunichar high;
    if (!read_hex4(in, &high))
        return FALSE;
    if (high >= 0xdc00 && high <= 0xdfff)
        return fail(in, "lone low surrogate");
    if (high < 0xd800 || high > 0xdbff) {
        *ret_char = high;
        return TRUE;
    }
    if (in->end - in->p < 2 || in->p[0] != '\\' || in->p[1] != 'u')
        return fail(in, "lone high surrogate");
    in->p += 2;
    gunichar low;
    if (!read_hex4(in, &low))
        return FALSE;
    if (low < 0xdc00 || low > 0xdfff)
        return fail(in, "lone high surrogate");
    *ret_char = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
    return TRUE;
}

/* One raw multi-byte UTF-8 sequence starting at the cursor, copied to @out
 * (may be NULL). */
static gboolean read_utf8(IcJsonIn *in, GString *out)
{
    gssize left = in->end - in->p;
    gsize n = (guchar)*in->p >= 0xf0 ? 4 : (guchar)*in->p >= 0xe0 ? 3 : 2;
    /* g_utf8_get_char_validated refuses overlong forms, surrogates and > U+10FFFF. */
    gunichar c = g_utf8_get_char_validated(in->p, MIN(left, (gssize)n));
    if (c == (gunichar)-1 || c == (gunichar)-2 || c < 0x80)
        return fail(in, "invalid UTF-8");
    if (out != NULL)
        g_string_append_len(out, in->p, (gssize)n);
    in->p += n;
    return TRUE;
}

static gboolean read_escape(IcJsonIn *in, GString *out)
{
    if (in->p >= in->end)
        return fail(in, "unterminated string");
    char ch = *in->p++;
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *simple = ch != '\0' ? strchr(from, ch) : NULL;
    if (simple != NULL) {
        if (out != NULL)
            g_string_append_c(out, to[simple - from]);
        return TRUE;
    }
    if (ch != 'u')
        return fail(in, "bad escape");
    gunichar c;
    if (!read_unicode_escape(in, &c))
        return FALSE;
    if (out == NULL)
        return TRUE;
    if (c == 0)
        return fail(in, "\\u0000 in a string read as text");
    g_string_append_unichar(out, c);
    return TRUE;
}

/* A string at the cursor into @out (NULL: only checked). */
static gboolean read_string(IcJsonIn *in, GString *out)
{
    if (!ic_jsonin_expect(in, '"'))
        return FALSE;
    for (;;) {
        if (in->p >= in->end)
            return fail(in, "unterminated string");
        guchar ch = (guchar)*in->p;
        if (ch == '"') {
            in->p++;
            return TRUE;
        }
        if (ch < 0x20)
            return fail(in, "control character in a string");
        if (ch == '\\') {
            in->p++;
            if (!read_escape(in, out))
                return FALSE;
        } else if (ch >= 0x80) {
            if (!read_utf8(in, out))
                return FALSE;
        } else {
            if (out != NULL)
                g_string_append_c(out, (char)ch);
            in->p++;
        }
    }
}

char *ic_jsonin_string(IcJsonIn *in)
{
    g_autoptr(GString) out = g_string_new(NULL);
    if (!read_string(in, out))
        return NULL;
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static gboolean at_digit(const IcJsonIn *in)
{
    return in->p < in->end && g_ascii_isdigit(*in->p);
}

static void skip_digits(IcJsonIn *in)
{
    while (at_digit(in))
        in->p++;
}

gboolean ic_jsonin_number(IcJsonIn *in, double *ret_value)
{
    skip_space(in);
    const char *start = in->p;
    if (in->p < in->end && *in->p == '-')
        in->p++;
    if (!at_digit(in))
        return fail(in, "not a number");
    if (*in->p == '0')
        in->p++; /* a leading zero stands alone: "01" ends after the 0 */
    else
        skip_digits(in);
    if (in->p < in->end && *in->p == '.') {
        in->p++;
        if (!at_digit(in))
            return fail(in, "no digit after the decimal point");
        skip_digits(in);
    }
    if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
        in->p++;
        if (in->p < in->end && (*in->p == '+' || *in->p == '-'))
            in->p++;
        if (!at_digit(in))
            return fail(in, "no digit in the exponent");
        skip_digits(in);
    }
    /* The grammar above is a subset of strtod's, so it reads exactly the span. */
    g_autofree char *text = g_strndup(start, (gsize)(in->p - start));
    *ret_value = g_ascii_strtod(text, NULL);
    return TRUE;
}

static gboolean read_literal(IcJsonIn *in, const char *word)
{
    gsize len = strlen(word);
    if ((gsize)(in->end - in->p) < len || memcmp(in->p, word, len) != 0)
        return fail(in, "unexpected word");
    in->p += len;
    return TRUE;
}

gboolean ic_jsonin_null(IcJsonIn *in)
{
    skip_space(in);
    if ((gsize)(in->end - in->p) < 4 || memcmp(in->p, "null", 4) != 0)
        return FALSE;
    in->p += 4;
    return TRUE;
}

static gboolean skip_value(IcJsonIn *in, guint depth);

/* The members or elements of a container whose opening bracket was read. */
static gboolean skip_container(IcJsonIn *in, char close, guint depth)
{
    if (depth >= IC_JSONIN_MAX_DEPTH)
        return fail(in, "nested too deeply");
    if (ic_jsonin_peek(in, close)) {
        in->p++;
        return TRUE;
    }
    for (;;) {
        if (close == '}' && (!read_string(in, NULL) || !ic_jsonin_expect(in, ':')))
            return FALSE;
        if (!skip_value(in, depth + 1))
            return FALSE;
        if (ic_jsonin_peek(in, close)) {
            in->p++;
            return TRUE;
        }
        if (!ic_jsonin_expect(in, ','))
            return FALSE;
    }
}

static gboolean skip_value(IcJsonIn *in, guint depth)
{
    skip_space(in);
    if (in->p >= in->end)
        return fail(in, "unexpected end");
    double ignored;
    switch (*in->p) {
    case '"':
        return read_string(in, NULL);
    case '{':
        in->p++;
        return skip_container(in, '}', depth);
    case '[':
        in->p++;
        return skip_container(in, ']', depth);
    case 't':
        return read_literal(in, "true");
    case 'f':
        return read_literal(in, "false");
    case 'n':
        return read_literal(in, "null");
    default:
        return ic_jsonin_number(in, &ignored);
    }
}

gboolean ic_jsonin_skip_value(IcJsonIn *in)
{
    return skip_value(in, 0);
}

static gboolean syntax_error(const IcJsonIn *in, GError **error)
{
    g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "not JSON: %s at offset %" G_GSIZE_FORMAT,
                in->why != NULL ? in->why : "unexpected character", (gsize)(in->p - in->start));
    return FALSE;
}

/* One member: its name, the colon, then @member reads the value. */
static gboolean read_member(IcJsonIn *in, IcJsonInMemberFunc member, gpointer user_data,
                            GError **error)
{
    g_autofree char *name = ic_jsonin_string(in);
    if (name == NULL || !ic_jsonin_expect(in, ':'))
        return syntax_error(in, error);
    g_autoptr(GError) local_error = NULL;
    if (!member(in, name, user_data, &local_error)) {
        if (local_error == NULL)
            return syntax_error(in, error);
        g_propagate_error(error, g_steal_pointer(&local_error));
        return FALSE;
    }
    return TRUE;
}

gboolean ic_jsonin_parse_object(const char *data, gsize len, IcJsonInMemberFunc member,
                                gpointer user_data, GError **error)
{
    IcJsonIn in;
    ic_jsonin_init(&in, data, len);
    if (!ic_jsonin_expect(&in, '{')) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "not a JSON object");
        return FALSE;
    }
    if (ic_jsonin_peek(&in, '}')) {
        in.p++;
    } else {
        for (;;) {
            if (!read_member(&in, member, user_data, error))
                return FALSE;
            if (ic_jsonin_expect(&in, '}'))
                break;
            if (!ic_jsonin_expect(&in, ','))
                return syntax_error(&in, error);
        }
    }
    if (!ic_jsonin_at_end(&in))
        return syntax_error(&in, error);
    return TRUE;
}
