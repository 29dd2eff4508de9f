/* bench-empty-glib.c — the start-up floor of a program linked to GLib (calls into
 * it so the linker keeps the library). */
#include <glib.h>

int main(void)
{
    return g_get_monotonic_time() > 0 ? 0 : 1;
}
