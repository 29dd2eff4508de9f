/* clock.c — imagecachectl's clock. A file of its own: tests/fixed-clock.c
 * replaces it in a test build of the same commands (the golden-file tests). */
#include "cli.h"

gint64 ic_cli_now(void)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}
