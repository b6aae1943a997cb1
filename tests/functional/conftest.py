"""Fixtures of the functional tier: the all-in-one mode in this process, on SQLite."""

from oslo_config import cfg
import pytest

from migration_conductor import all_in_one
from migration_conductor import cmd
from migration_conductor import context as mc_context
from migration_conductor import rpc
from migration_conductor import rpcapi
from tests import db_fixtures


def make_conf(tmp_path, agents, overrides=None):
    """A ConfigOpts for the all-in-one mode with ``agents`` (HOST=URI items).

    :param overrides: {(group, option): value}.
    """
    conf = cfg.ConfigOpts()
    cmd.register_all(conf)
    conf([], project='migration-conductor-functional-tests')
    conf.set_override('state_path', str(tmp_path))
    conf.set_override('host', 'conductor-1')
    conf.set_override('agents', agents, group='all_in_one')
    conf.set_override('heartbeat_interval', 1, group='agent')
    conf.set_override('virt_driver', 'simulated', group='agent')
    for (group, name), value in (overrides or {}).items():
        conf.set_override(name, value, group=group)
    return conf


@pytest.fixture
def aio(tmp_path):
    """Conductor and two simulated agents (sim-1, sim-2) running in this process."""
    with db_fixtures.api_on('sqlite', tmp_path) as url:
        conf = make_conf(tmp_path, ['sim-1=simulated://', 'sim-2=simulated://'])
        conf.set_override('connection', url, group='database')
        service = all_in_one.AllInOne(conf)
        service.start()
        try:
            yield AllInOneHandle(conf, service)
        finally:
            service.stop()
            rpc.cleanup()


class AllInOneHandle:
    """What a test needs: the services, a conductor client and contexts."""

    def __init__(self, conf, service):
        self.conf = conf
        self.service = service
        self.conductor = rpcapi.ConductorAPI(conf, 'test-client')
        self.admin = mc_context.get_admin_context()
        self.agents = {agent.host: agent for agent in service.agents}
