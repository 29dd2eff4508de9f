/* fuzz-sidecar.c — libFuzzer target for the checksum sidecar parsers: every input is
 * read both as a "<file>.sha1" and as a "<file>.info" (JSON) sidecar. */
#include "fuzz.h"

#include "checksum.h"
#include "error.h"

#include <string.h>

#define FUZZ_SIDECAR_TEXT_MAX 128 /* checksum.c's SIDECAR_TEXT_MAX */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ic_fuzz_init();
    return 0;
}

/* One line of printable ASCII, 1 to 128 bytes. */
static void check_text(const char *sha1)
{
    IC_FUZZ_CHECK(sha1 != NULL);
    gsize len = strlen(sha1);
    IC_FUZZ_CHECK(len > 0 && len <= FUZZ_SIDECAR_TEXT_MAX);
    for (gsize i = 0; i < len; i++)
        IC_FUZZ_CHECK(sha1[i] >= 0x20 && sha1[i] <= 0x7e);
}

static void check_result(gboolean ok, IcStoredChecksum *stored, GError *error,
                         IcSidecarFormat format)
{
    IC_FUZZ_CHECK(ok == (error == NULL) && ok == (stored != NULL));
    if (!ok) {
        IC_FUZZ_CHECK(error->domain == IC_ERROR);
        IC_FUZZ_CHECK(error->code == IC_ERROR_FORMAT || error->code == IC_ERROR_LIMIT);
        return;
    }
    IC_FUZZ_CHECK(stored->format == format);
    check_text(stored->sha1);
    IC_FUZZ_CHECK(stored->timestamp >= -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    g_autoptr(IcStoredChecksum) sha1 = NULL;
    g_autoptr(GError) sha1_error = NULL;
    gboolean ok = ic_checksum_parse_sha1_sidecar(text, size, &sha1, &sha1_error);
    check_result(ok, sha1, sha1_error, IC_SIDECAR_SHA1);
    if (ok) {
        /* Surrounding whitespace is stripped; a .sha1 file has no timestamp. */
        IC_FUZZ_CHECK(!g_ascii_isspace(sha1->sha1[0]));
        IC_FUZZ_CHECK(!g_ascii_isspace(sha1->sha1[strlen(sha1->sha1) - 1]));
        IC_FUZZ_CHECK(sha1->timestamp == -1);
        /* Re-reading what was kept, with a newline as a writer adds, keeps it. */
        g_autofree char *line = g_strconcat(sha1->sha1, "\n", NULL);
        g_autoptr(IcStoredChecksum) again = NULL;
        IC_FUZZ_CHECK(ic_checksum_parse_sha1_sidecar(line, strlen(line), &again, NULL));
        IC_FUZZ_CHECK(strcmp(again->sha1, sha1->sha1) == 0);
    }

    g_autoptr(IcStoredChecksum) info = NULL;
    g_autoptr(GError) info_error = NULL;
    ok = ic_checksum_parse_info_sidecar(text, size, &info, &info_error);
    check_result(ok, info, info_error, IC_SIDECAR_INFO);
    return 0;
}
