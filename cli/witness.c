/* witness.c — the CLI's external witness: common/witnesses.c, fed the loaded config. */
#include "cli.h"
#include "witnesses.h"

void ic_cli_collect_usage(IcCli *cli, IcUsage *usage, gint64 now)
{
    (void)now;
    ic_witnesses_collect_live(cli->config, usage);
}
