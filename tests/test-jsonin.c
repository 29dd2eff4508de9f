/* test-jsonin.c — the strict JSON reader (common/jsonin.c) and the .info sidecar read
 * and written without json-glib, cross-checked against json-glib (issue 15). */
#include "checksum.h"
#include "error.h"
#include "jsonin.h"
#include "testutil.h"

#include <json-glib/json-glib.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>

#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"

/* ---- the reader itself ---- */

typedef struct {
    const char *json;
    const char *text; /* what ic_jsonin_string gives; NULL: it must fail */
} StringCase;

static void test_strings(void)
{
    static const StringCase cases[] = {
        {"\"plain\"", "plain"},
        {" \t\n\r\"x\"", "x"},
        {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\" \\ / \b \f \n \r \t"},
        {"\"\\u00e9\\u20AC\"", "\xc3\xa9\xe2\x82\xac"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"}, /* a surrogate pair: U+1F600 */
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf"}, /* U+10FFFF */
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"",
         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f"},
        {"\"\"", ""},
        {"\"\\u0000\"", NULL},          /* a C string cannot hold it */
        {"\"\\ud800\"", NULL},          /* lone high surrogate */
        {"\"\\ud800x\"", NULL},         /* lone high surrogate, json-glib keeps it */
        {"\"\\ud800\\u0041\"", NULL},   /* high surrogate, then no low one */
        {"\"\\udc00\"", NULL},          /* lone low surrogate */
        {"\"\\u00\"", NULL},            /* short escape */
        {"\"\\u00g0\"", NULL},          /* not hex */
        {"\"\\x41\"", NULL},            /* not a JSON escape */
        {"\"\\'\"", NULL},              /* not a JSON escape */
        {"\"a\tb\"", NULL},             /* raw control character */
        {"\"\xff\"", NULL},             /* not UTF-8 */
        {"\"\xc3\"", NULL},             /* truncated sequence */
        {"\"\xc0\x80\"", NULL},         /* overlong */
        {"\"\xed\xa0\x80\"", NULL},     /* an encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", NULL}, /* beyond U+10FFFF */
        {"\"unterminated", NULL},
        {"\"ends in escape\\", NULL},
        {"'single'", NULL},
        {"plain", NULL},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        IcJsonIn in;
        ic_jsonin_init(&in, cases[i].json, strlen(cases[i].json));
        g_autofree char *text = ic_jsonin_string(&in);
        g_autofree char *shown = g_strescape(cases[i].json, NULL);
        g_test_message("string case %" G_GSIZE_FORMAT ": %s", i, shown);
        g_assert_cmpstr(text, ==, cases[i].text);
        if (text != NULL)
            g_assert_true(ic_jsonin_at_end(&in));
        else
            g_assert_nonnull(in.why);
    }
}

typedef struct {
    const char *json;
    gboolean ok;
    double value;
} NumberCase;

static void test_numbers(void)
{
    static const NumberCase cases[] = {
        {"0", TRUE, 0},
        {"-0", TRUE, 0},
        {"12", TRUE, 12},
        {"-3.25", TRUE, -3.25},
        {"1e3", TRUE, 1000},
        {"1E+3", TRUE, 1000},
        {"25e-1", TRUE, 2.5},
        {"1353971234.56", TRUE, 1353971234.56},
        {"9007199254740993", TRUE, 9007199254740992.0}, /* rounded to a double */
        {"+1", FALSE, 0},
        {"-", FALSE, 0},
        {".5", FALSE, 0},
        {"1.", FALSE, 0},
        {"1e", FALSE, 0},
        {"1e+", FALSE, 0},
        {"- 1", FALSE, 0},
        {"NaN", FALSE, 0},
        {"Infinity", FALSE, 0},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        IcJsonIn in;
        ic_jsonin_init(&in, cases[i].json, strlen(cases[i].json));
        double value = -1;
        g_test_message("number case %" G_GSIZE_FORMAT ": %s", i, cases[i].json);
        gboolean ok = ic_jsonin_number(&in, &value) && ic_jsonin_at_end(&in);
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok)
            g_assert_cmpfloat(value, ==, cases[i].value);
    }
    /* A leading zero stands alone, so "01", "00" and "0x10" leave trailing characters. */
    static const char *const zeros[] = {"01", "00", "-01", "0x10"};
    for (gsize i = 0; i < G_N_ELEMENTS(zeros); i++) {
        IcJsonIn in;
        ic_jsonin_init(&in, zeros[i], strlen(zeros[i]));
        double value;
        g_assert_true(ic_jsonin_number(&in, &value));
        g_assert_false(ic_jsonin_at_end(&in));
    }
    IcJsonIn in;
    ic_jsonin_init(&in, "1e400", 5);
    double value;
    g_assert_true(ic_jsonin_number(&in, &value));
    g_assert_true(isinf(value));
}

static char *nested(guint depth, const char *inner)
{
    g_autoptr(GString) s = g_string_new(NULL);
    for (guint i = 0; i < depth; i++)
        g_string_append(s, i % 2 ? "{\"k\":" : "[");
    g_string_append(s, inner);
    for (guint i = depth; i > 0; i--)
        g_string_append(s, (i - 1) % 2 ? "}" : "]");
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static gboolean skips(const char *json)
{
    IcJsonIn in;
    ic_jsonin_init(&in, json, strlen(json));
    return ic_jsonin_skip_value(&in) && ic_jsonin_at_end(&in);
}

static void test_skip(void)
{
    static const char *const good[] = {
        "true",
        "false",
        "null",
        "0",
        "\"s\"",
        "\"\\u0000\"",
        "[]",
        "{}",
        " [ 1 , \"a\" , { } ] ",
        "{\"a\": [null, true, false, -1.5e3], \"b\": {\"c\": {}}, \"a\": 2}",
    };
    static const char *const bad[] = {
        "",           "tru",       "nulll", "True", "[1,]",    "[1 2]",       "{\"a\" 1}",
        "{\"a\":1,}", "{1: 2}",    "{,}",   "[",    "{\"a\":", "\"\\ud800\"", "[01]",
        "{'a': 1}",   "/* c */ 1", "1true",
    };
    for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
        g_test_message("skip good %" G_GSIZE_FORMAT ": %s", i, good[i]);
        g_assert_true(skips(good[i]));
    }
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("skip bad %" G_GSIZE_FORMAT ": %s", i, bad[i]);
        g_assert_false(skips(bad[i]));
    }
    /* The depth limit: IC_JSONIN_MAX_DEPTH containers skip, one more does not. */
    g_autofree char *deepest = nested(IC_JSONIN_MAX_DEPTH, "1");
    g_autofree char *too_deep = nested(IC_JSONIN_MAX_DEPTH + 1, "1");
    g_assert_true(skips(deepest));
    g_assert_false(skips(too_deep));
    g_autofree char *very_deep = nested(20000, "1"); /* bounded: no stack overflow */
    g_assert_false(skips(very_deep));
}

/* ---- the .info sidecar against json-glib ---- */

/* json-glib's verdict on an .info sidecar: the reader imagecache used before
 * issue 15, kept here as the reference. */
static gboolean glib_parse_info(const char *data, gsize len, char **ret_sha1, gint64 *ret_timestamp)
{
    if (len > 64 * 1024 || memchr(data, '\0', len) != NULL)
        return FALSE;
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    if (!json_parser_load_from_data(parser, data, (gssize)len, NULL))
        return FALSE;
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
        return FALSE;
    JsonObject *obj = json_node_get_object(root);
    JsonNode *sha1 = json_object_get_member(obj, "sha1");
    if (sha1 == NULL || !JSON_NODE_HOLDS_VALUE(sha1) ||
        json_node_get_value_type(sha1) != G_TYPE_STRING)
        return FALSE;
    const char *text = json_node_get_string(sha1);
    gsize text_len = strlen(text);
    if (text_len == 0 || text_len > 128)
        return FALSE;
    for (gsize i = 0; i < text_len; i++)
        if (text[i] < 0x20 || text[i] > 0x7e)
            return FALSE;

    JsonNode *node = json_object_get_member(obj, "sha1-timestamp");
    gint64 timestamp = -1;
    if (node != NULL && !JSON_NODE_HOLDS_NULL(node)) {
        GType type = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node) : G_TYPE_INVALID;
        double value;
        if (type == G_TYPE_INT64)
            value = (double)json_node_get_int(node);
        else if (type == G_TYPE_DOUBLE)
            value = json_node_get_double(node);
        else
            return FALSE;
        if (!isfinite(value) || value < 0 || value > 9007199254740992.0)
            return FALSE;
        timestamp = (gint64)value;
    }
    *ret_sha1 = g_strdup(text);
    *ret_timestamp = timestamp;
    return TRUE;
}

/* A piece of a generated sidecar: its text and what it is. The expected
 * verdicts come from these tags, not from either reader. */
typedef enum {
    PIECE_VALID,   /* JSON, and both readers take it */
    PIECE_INVALID, /* not JSON (or refused by the sidecar's rules), both refuse it */
    PIECE_LENIENT, /* not JSON, but json-glib takes it: only we refuse it */
    PIECE_REFUSED, /* JSON, refused by our decision (documented in checksum.c / jsonin.h) */
} PieceKind;

typedef struct {
    const char *text;
    PieceKind kind;
} Piece;

/* Values of a member the sidecar does not read. */
static const Piece other_values[] = {
    {"\"plain\"", PIECE_VALID},
    {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", PIECE_VALID},
    {"\"\\u00e9\\u20ac \\ud83d\\ude00 \\u0000\"",
     PIECE_VALID}, /* \u0000 is fine in a skipped value */
    {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", PIECE_VALID},
    {"0", PIECE_VALID},
    {"-0", PIECE_VALID},
    {"-3.25e+2", PIECE_VALID},
    {"1E-5", PIECE_VALID},
    {"true", PIECE_VALID},
    {"false", PIECE_VALID},
    {"null", PIECE_VALID},
    {"[]", PIECE_VALID},
    {"{}", PIECE_VALID},
    {"[1, \"a\", {\"sha1\": [null, {}]}]", PIECE_VALID}, /* a nested "sha1" is not read */
    {"{\"sha1\": 5, \"sha1-timestamp\": \"x\"}", PIECE_VALID},
    {"+1", PIECE_INVALID},
    {"1e", PIECE_INVALID},
    {"-", PIECE_INVALID},
    {"[1,]", PIECE_INVALID},
    {"{\"a\" 1}", PIECE_INVALID},
    {"nul", PIECE_INVALID},
    {"True", PIECE_INVALID},
    {"NaN", PIECE_INVALID},
    {"\"\\u00\"", PIECE_INVALID},
    {"\"\xff\"", PIECE_INVALID},
    {"\"\xed\xa0\x80\"", PIECE_INVALID},
    {"[1 2]", PIECE_INVALID},
    {"\"unterminated", PIECE_INVALID},
    {"01", PIECE_LENIENT},
    {"-01", PIECE_LENIENT},
    {"0x10", PIECE_LENIENT},
    {"- 1", PIECE_LENIENT},
    {".5", PIECE_LENIENT},
    {"1.", PIECE_LENIENT},
    {"'single'", PIECE_LENIENT},
    {"\"\\x41\"", PIECE_LENIENT},
    {"\"\\'\"", PIECE_LENIENT},
    {"\"raw\ttab\"", PIECE_LENIENT},
    {"\"\\ud800x\"", PIECE_LENIENT},
    {"/* c */ 1", PIECE_LENIENT},
};

static const Piece sha1_values[] = {
    {"\"" SHA1_ABC "\"", PIECE_VALID},
    {"\"A9993E36\"", PIECE_VALID},
    {"\"a b \\u0041\\/\"", PIECE_VALID},
    {"\"\"", PIECE_INVALID},
    {"\"a\\nb\"", PIECE_INVALID},
    {"\"caf\\u00e9\"", PIECE_INVALID},
    {"5", PIECE_INVALID},
    {"null", PIECE_INVALID},
    {"[\"" SHA1_ABC "\"]", PIECE_INVALID},
    {"\"ab\\u0000cd\"", PIECE_REFUSED}, /* json-glib cut it to "ab" */
    {"\"a\\x41\"", PIECE_LENIENT},
};

/* NULL: no "sha1-timestamp" member. */
static const Piece timestamp_values[] = {
    {NULL, PIECE_VALID},
    {"null", PIECE_VALID},
    {"1353971234", PIECE_VALID},
    {"1353971234.56", PIECE_VALID},
    {"0", PIECE_VALID},
    {"1.5e9", PIECE_VALID},
    {"9007199254740992", PIECE_VALID},
    {"-5", PIECE_INVALID},
    {"1e300", PIECE_INVALID},
    {"1e400", PIECE_INVALID},
    {"9007199254740994", PIECE_INVALID},
    {"\"soon\"", PIECE_INVALID},
    {"true", PIECE_INVALID},
    {"[]", PIECE_INVALID},
    {"01", PIECE_LENIENT},
};

/* What may follow the object. */
static const Piece trailers[] = {
    {"", PIECE_VALID},     {"\n", PIECE_VALID},         {" \t\r\n", PIECE_VALID},
    {" x", PIECE_INVALID}, {"]", PIECE_INVALID},        {"\f", PIECE_INVALID},
    {"{}", PIECE_LENIENT}, {" /* c */", PIECE_LENIENT},
};

static PieceKind worst(PieceKind a, PieceKind b)
{
    /* INVALID wins (both refuse), then LENIENT/REFUSED (only we refuse). */
    if (a == PIECE_INVALID || b == PIECE_INVALID)
        return PIECE_INVALID;
    if (a != PIECE_VALID)
        return a;
    return b;
}

typedef struct {
    guint checked;
    guint both_accept;
    guint both_refuse;
    guint only_we_refuse;
} DiffCounts;

/* One generated document: our verdict is what the tags say; json-glib's agrees
 * except on LENIENT/REFUSED pieces, where it accepts what we refuse. */
static void check_document(const char *doc, PieceKind kind, DiffCounts *counts)
{
    gsize len = strlen(doc);
    g_autoptr(IcStoredChecksum) ours = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_checksum_parse_info_sidecar(doc, len, &ours, &error);
    g_autofree char *glib_sha1 = NULL;
    gint64 glib_timestamp = -2;
    gboolean glib_ok = glib_parse_info(doc, len, &glib_sha1, &glib_timestamp);
    counts->checked++;

    if (ok != (kind == PIECE_VALID) || (kind == PIECE_VALID && ok != glib_ok) ||
        (kind == PIECE_INVALID && glib_ok) ||
        ((kind == PIECE_LENIENT || kind == PIECE_REFUSED) && !glib_ok))
        g_error("document %s: expected kind %d, ours %s (%s), json-glib %s", g_strescape(doc, NULL),
                kind, ok ? "accepts" : "refuses", error != NULL ? error->message : "-",
                glib_ok ? "accepts" : "refuses");
    if (!ok) {
        g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
        if (glib_ok)
            counts->only_we_refuse++;
        else
            counts->both_refuse++;
        return;
    }
    counts->both_accept++;
    g_assert_cmpstr(ours->sha1, ==, glib_sha1);
    g_assert_cmpint(ours->timestamp, ==, glib_timestamp);
}

static void check_all_truncations(const char *doc, DiffCounts *counts)
{
    /* Every proper prefix: both readers must agree (no prefix of these
     * documents forms a construct only json-glib takes). */
    gsize len = strlen(doc);
    for (gsize cut = 0; cut < len; cut++) {
        g_autoptr(IcStoredChecksum) ours = NULL;
        gboolean ok = ic_checksum_parse_info_sidecar(doc, cut, &ours, NULL);
        g_autofree char *glib_sha1 = NULL;
        gint64 glib_timestamp = -2;
        g_autofree char *copy = g_strndup(doc, cut);
        gboolean glib_ok = glib_parse_info(copy, cut, &glib_sha1, &glib_timestamp);
        if (ok != glib_ok)
            g_error("prefix %" G_GSIZE_FORMAT " of %s: ours %d, json-glib %d", cut,
                    g_strescape(doc, NULL), ok, glib_ok);
        counts->checked++;
        if (ok) {
            g_assert_cmpstr(ours->sha1, ==, glib_sha1);
            g_assert_cmpint(ours->timestamp, ==, glib_timestamp);
        }
    }
}

static void test_info_differential(void)
{
    DiffCounts counts = {0};
    for (gsize s = 0; s < G_N_ELEMENTS(sha1_values); s++) {
        for (gsize t = 0; t < G_N_ELEMENTS(timestamp_values); t++) {
            for (gsize o = 0; o < G_N_ELEMENTS(other_values); o++) {
                for (gsize order = 0; order < 3; order++) {
                    const Piece *sha1 = &sha1_values[s];
                    const Piece *ts = &timestamp_values[t];
                    const Piece *other = &other_values[o];
                    const Piece *trail = &trailers[(s + t + o + order) % G_N_ELEMENTS(trailers)];
                    g_autofree char *sha1_member = g_strdup_printf("\"sha1\": %s", sha1->text);
                    g_autofree char *ts_member =
                        ts->text != NULL ? g_strdup_printf(", \"sha1-timestamp\":%s", ts->text)
                                         : g_strdup("");
                    g_autofree char *other_member =
                        g_strdup_printf("\"other\\u00e9\" : %s", other->text);
                    g_autofree char *doc = NULL;
                    if (order == 0)
                        doc = g_strdup_printf("{%s%s, %s}%s", sha1_member, ts_member, other_member,
                                              trail->text);
                    else if (order == 1)
                        doc = g_strdup_printf("\n{ %s, %s%s }%s", other_member, sha1_member,
                                              ts_member, trail->text);
                    else
                        doc = g_strdup_printf("{%s,%s%s}%s", sha1_member, other_member, ts_member,
                                              trail->text);
                    PieceKind kind =
                        worst(worst(sha1->kind, ts->kind), worst(other->kind, trail->kind));
                    check_document(doc, kind, &counts);
                    if (kind == PIECE_VALID && o < 4 && order == 0)
                        check_all_truncations(doc, &counts);
                }
            }
        }
    }

    /* Documents that are not of the generated shape. */
    static const Piece documents[] = {
        {"", PIECE_INVALID},
        {"   ", PIECE_INVALID},
        {"null", PIECE_INVALID},
        {"[]", PIECE_INVALID},
        {"\"" SHA1_ABC "\"", PIECE_INVALID},
        {"{}", PIECE_INVALID},
        {"{\"sha1-timestamp\": 5}", PIECE_INVALID},
        {"{\"SHA1\": \"" SHA1_ABC "\"}", PIECE_INVALID},
        {"{\"sha1\": \"" SHA1_ABC "\",}", PIECE_INVALID},
        {"{,\"sha1\": \"" SHA1_ABC "\"}", PIECE_INVALID},
        {"{\"sha1\": \"" SHA1_ABC "\" \"x\": 1}", PIECE_INVALID},
        {"{\"sha1\" \"" SHA1_ABC "\"}", PIECE_INVALID},
        {"{\"sha1\":: \"" SHA1_ABC "\"}", PIECE_INVALID},
        {"{sha1: \"" SHA1_ABC "\"}", PIECE_INVALID},
        {"{\"sh\\u0061\\u0031\": \"" SHA1_ABC "\"}", PIECE_VALID}, /* escaped member name */
        {"{'sha1': \"" SHA1_ABC "\"}", PIECE_LENIENT},
        {"\xef\xbb\xbf{\"sha1\": \"" SHA1_ABC "\"}",
         PIECE_REFUSED}, /* a BOM: Nova never writes one */
        /* Duplicates of a member read: refused (json-glib keeps the last). */
        {"{\"sha1\": \"aaaa\", \"sha1\": \"" SHA1_ABC "\"}", PIECE_REFUSED},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": 1, \"sha1-timestamp\": 2}",
         PIECE_REFUSED},
        {"{\"sha1\": \"" SHA1_ABC "\", \"sha1-timestamp\": null, \"sha1-timestamp\": 2}",
         PIECE_REFUSED},
        /* Duplicates of another member: skipped like any other. */
        {"{\"x\": 1, \"sha1\": \"" SHA1_ABC "\", \"x\": [2]}", PIECE_VALID},
        /* A NUL escaped in a member name: refused (json-glib cuts the name at it). */
        {"{\"sha1\": \"" SHA1_ABC "\", \"x\\u0000y\": 1}", PIECE_REFUSED},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(documents); i++)
        check_document(documents[i].text, documents[i].kind, &counts);

    /* Nesting in a skipped member: IC_JSONIN_MAX_DEPTH levels read, deeper refused
     * (json-glib has no limit). */
    g_autofree char *deepest = nested(IC_JSONIN_MAX_DEPTH, "1");
    g_autofree char *too_deep = nested(IC_JSONIN_MAX_DEPTH + 1, "1");
    g_autofree char *ok_doc = g_strdup_printf("{\"x\": %s, \"sha1\": \"" SHA1_ABC "\"}", deepest);
    g_autofree char *deep_doc =
        g_strdup_printf("{\"x\": %s, \"sha1\": \"" SHA1_ABC "\"}", too_deep);
    check_document(ok_doc, PIECE_VALID, &counts);
    check_document(deep_doc, PIECE_REFUSED, &counts);

    g_test_message("%u documents: %u accepted by both, %u refused by both, %u refused by us only "
                   "(documented)",
                   counts.checked, counts.both_accept, counts.both_refuse, counts.only_we_refuse);
    g_assert_cmpuint(counts.both_accept, >, 100);
    g_assert_cmpuint(counts.both_refuse, >, 100);
    g_assert_cmpuint(counts.only_we_refuse, >, 10);
}

/* The sidecar written without json-glib is byte for byte what json-glib's
 * generator wrote (the code before issue 15), newline included. */
static char *glib_format_info(const char *sha1, gint64 timestamp)
{
    g_autoptr(JsonBuilder) builder = json_builder_new();
    json_builder_begin_object(builder);
    json_builder_set_member_name(builder, "sha1");
    json_builder_add_string_value(builder, sha1);
    if (timestamp >= 0) {
        json_builder_set_member_name(builder, "sha1-timestamp");
        json_builder_add_int_value(builder, timestamp);
    }
    json_builder_end_object(builder);
    g_autoptr(JsonNode) root = json_builder_get_root(builder);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    g_autofree char *json = json_generator_to_data(gen, NULL);
    return g_strconcat(json, "\n", NULL);
}

static void test_write_matches_json_glib(void)
{
    static const struct {
        const char *sha1;
        gint64 timestamp;
    } cases[] = {
        {SHA1_ABC, 1700000000}, {SHA1_ABC, 0},
        {SHA1_ABC, -1},         {SHA1_ABC, G_GINT64_CONSTANT(9007199254740992)},
        {"A9993E36", 1},        {"with \"quote\" and \\ backslash /", 5},
    };
    g_autofree char *dir = ic_test_mkdtemp();
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(dirfd, >=, 0);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_assert_true(
            ic_checksum_write_sidecar(dirfd, "img", cases[i].sha1, cases[i].timestamp, &error));
        g_assert_no_error(error);
        g_autofree char *path = g_build_filename(dir, "img.info", NULL);
        g_autofree char *written = NULL;
        g_assert_true(g_file_get_contents(path, &written, NULL, NULL));
        g_autofree char *expected = glib_format_info(cases[i].sha1, cases[i].timestamp);
        g_assert_cmpstr(written, ==, expected);

        /* And it reads back as written. */
        g_autoptr(IcStoredChecksum) stored = NULL;
        g_assert_true(ic_checksum_parse_info_sidecar(written, strlen(written), &stored, &error));
        g_assert_cmpstr(stored->sha1, ==, cases[i].sha1);
        g_assert_cmpint(stored->timestamp, ==, cases[i].timestamp);
    }
    /* What a reader would refuse is not written. */
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_checksum_write_sidecar(dirfd, "bad", "a\nb", 1, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FORMAT);
    close(dirfd);
    ic_test_rmtree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_summary("Issue 15: the strict JSON reader and the .info sidecar without json-glib, "
                   "cross-checked against json-glib");
    g_test_add_func("/imagecache/jsonin/strings", test_strings);
    g_test_add_func("/imagecache/jsonin/numbers", test_numbers);
    g_test_add_func("/imagecache/jsonin/skip", test_skip);
    g_test_add_func("/imagecache/jsonin/info-differential", test_info_differential);
    g_test_add_func("/imagecache/jsonin/write-matches-json-glib", test_write_matches_json_glib);
    return g_test_run();
}
