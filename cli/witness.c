/* witness.c — the CLI's witnesses: common/witnesses.c, fed the loaded config. */
#include "cli.h"
#include "witnesses.h"

void ic_cli_collect_usage(IcCli *cli, IcUsage *usage, gint64 now)
{
    ic_witnesses_collect(cli->config, usage, now, NULL);
}
