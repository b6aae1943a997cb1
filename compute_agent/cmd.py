"""``migration-compute-agent``: the agent of this host (``[DEFAULT] host``)."""

from oslo_config import cfg
from oslo_log import log as logging

from compute_agent import service
from compute_agent.virt import factory
from migration_conductor import cmd
from migration_conductor import exception
from migration_conductor import rpc

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
        agent.stop()
        rpc.cleanup()
    return 0


def main(argv=None):
    return cmd.run(PROG, _main, argv)
