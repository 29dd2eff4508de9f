/* fixed-clock.c — the clock of imagecachectl-fixed-clock, a test build of
 * imagecachectl whose "now" is $IMAGECACHE_TEST_NOW (epoch seconds), so that
 * its output can be compared byte for byte with tests/data/report/ golden files. */
#include <stdlib.h>

#include "cli.h"

gint64 ic_cli_now(void)
{
    const char *now = g_getenv("IMAGECACHE_TEST_NOW");
    if (now == NULL)
        g_error("imagecachectl-fixed-clock: IMAGECACHE_TEST_NOW is not set");
    return g_ascii_strtoll(now, NULL, 10);
}
