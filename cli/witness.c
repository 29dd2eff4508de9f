/* witness.c — gathers the usage witnesses the CLI reads besides the instances dir. */
#include "cli.h"

void ic_cli_collect_usage(IcCli *cli, IcUsage *usage, gint64 now)
{
    (void)cli;
    (void)usage;
    (void)now;
}
