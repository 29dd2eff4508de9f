/* jsonin.h — a small strict JSON reader (RFC 8259) over a byte buffer: a cursor that
 * reads strings and numbers and skips any value. GLib only: the hook's library links it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* How deeply arrays and objects may nest inside a skipped value: the files read
 * (disk.info, the .info sidecar) are flat, so a deep one is damaged or hostile. */
#define IC_JSONIN_MAX_DEPTH 64

/* The cursor: [p, end) is what is left to read. On a failure p is where the
 * reader stopped and why (static) says what was wrong there. */
typedef struct {
    const char *start;
    const char *p;
    const char *end;
    const char *why;
} IcJsonIn;

void ic_jsonin_init(IcJsonIn *in, const char *data, gsize len);

/* Skips whitespace; TRUE when the next byte is @ch (left unread). */
gboolean ic_jsonin_peek(IcJsonIn *in, char ch);

/* Skips whitespace and reads @ch; FALSE (nothing read) when another byte or
 * the end comes first. */
gboolean ic_jsonin_expect(IcJsonIn *in, char ch);

/* Skips whitespace; TRUE when nothing else is left (trailing garbage: FALSE). */
gboolean ic_jsonin_at_end(IcJsonIn *in);

/* A string at the cursor, unescaped into UTF-8 (surrogate pairs joined), owned
 * by the caller. NULL when malformed (a raw control byte, invalid UTF-8, a bad
 * escape, a lone surrogate) or when it holds \u0000, which a C string cannot. */
char *ic_jsonin_string(IcJsonIn *in);

/* A number at the cursor (the JSON grammar exactly: no '+', no leading zeros,
 * no hex, no NaN) into *ret_value; FALSE when there is none. An integer beyond
 * a double's precision is rounded; beyond its range it is ±inf. */
gboolean ic_jsonin_number(IcJsonIn *in, double *ret_value);

/* Reads the literal null when it is next; FALSE (nothing read) otherwise. */
gboolean ic_jsonin_null(IcJsonIn *in);

/* Skips one value of any type, checking it as strictly as the readers above
 * (strings may hold \u0000 here), arrays and objects nested at most
 * IC_JSONIN_MAX_DEPTH deep. Duplicate member names are not looked for. */
gboolean ic_jsonin_skip_value(IcJsonIn *in);

/* Reads @data as one JSON object and nothing after it (whitespace aside),
 * calling @member for each member in order with the cursor at its value, which
 * @member must read (ic_jsonin_string, _number, _null, _skip_value). @member
 * returns FALSE to stop: with @error set for its own reasons, else the value
 * was malformed. Errors are IC_ERROR_FORMAT: "not a JSON object", "not JSON:
 * <why> at offset <n>", or @member's. Member names holding \u0000 are refused;
 * a name given twice reaches @member twice (it decides). */
typedef gboolean (*IcJsonInMemberFunc)(IcJsonIn *in, const char *name, gpointer user_data,
                                       GError **error);
gboolean ic_jsonin_parse_object(const char *data, gsize len, IcJsonInMemberFunc member,
                                gpointer user_data, GError **error);

G_END_DECLS
