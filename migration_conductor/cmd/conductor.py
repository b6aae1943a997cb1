"""``migration-conductor``: the conductor service (all-in-one when agents are listed)."""

from oslo_config import cfg
from oslo_log import log as logging

from migration_conductor import all_in_one
from migration_conductor import cmd
from migration_conductor import rpc
from migration_conductor import service

LOG = logging.getLogger(__name__)
PROG = 'migration-conductor'


def _main(argv):
    conf = cfg.ConfigOpts()
    cmd.prepare_service(conf, argv, PROG)
    rpc.check_transport(conf)
    if conf.all_in_one.agents:
        runner = all_in_one.AllInOne(conf)
    else:
        if rpc.is_in_process(conf):
            LOG.warning('The in-process transport %s is set and [all_in_one] agents is '
                        'empty: no agent can reach this conductor', conf.transport_url)
        runner = service.ConductorService(conf)
    runner.start()
    try:
        cmd.wait_for_signal()
    finally:
        cmd.stop_within(PROG, cmd.STOP_TIMEOUT, runner.stop, rpc.cleanup)
    return 0


def main(argv=None):
    return cmd.run(PROG, _main, argv)
