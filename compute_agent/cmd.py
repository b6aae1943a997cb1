"""``migration-compute-agent``: the agent of this host (``[DEFAULT] host``)."""

# Imported first: it silences the eventlet library's import-time notice (futurist and
# oslo.messaging import eventlet; we never use it) before anything imports them.
from migration_conductor import cmd  # noqa: I100

from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from compute_agent import service  # noqa: E402
from compute_agent.virt import factory  # noqa: E402
from migration_conductor import exception  # noqa: E402
from migration_conductor import rpc  # noqa: E402

LOG = logging.getLogger(__name__)
PROG = 'migration-compute-agent'


def _main(argv):
    conf = cfg.ConfigOpts()
    cmd.prepare_service(conf, argv, PROG, database=False)
    if rpc.is_in_process(conf):
        raise exception.ConfigurationError(
            setting='[DEFAULT] transport_url',
            reason='the in-process transport %s only works inside the conductor process '
                   '(all-in-one mode); a separate agent needs a broker, e.g. '
                   'rabbit://user:password@host:5672/' % conf.transport_url)
    rpc.check_transport(conf)
    agent = service.AgentService(conf, conf.host, factory.load_driver(conf, conf.host))
    try:
        agent.start()
    except exception.HypervisorUnavailable as exc:
        setting = ('[libvirt] connection_uri' if conf.agent.virt_driver == 'libvirt'
                   else '[agent] virt_driver')
        raise exception.ConfigurationError(setting=setting, reason=str(exc)) from exc
    try:
        cmd.wait_for_signal()
    finally:
        cmd.stop_within(PROG, cmd.STOP_TIMEOUT, agent.stop, rpc.cleanup)
    return 0


def main(argv=None):
    return cmd.run(PROG, _main, argv)
