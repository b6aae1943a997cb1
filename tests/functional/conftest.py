"""Fixtures of the functional tier: the all-in-one mode in this process, on SQLite."""

import contextlib
import os

from oslo_config import cfg
import pytest

from migration_conductor import all_in_one
from migration_conductor import cmd
from migration_conductor import context as mc_context
from migration_conductor import rpc
from migration_conductor import rpcapi
from tests import db_fixtures


# The test suite's migration profiles; the default is pre-copy only (see the file).
PROFILES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             'migration-profiles.yaml')


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
    conf.set_override('profiles_file', PROFILES_FILE, group='migration_profiles')
    conf.set_override('default_profile', 'precopy-only', group='migration_profiles')
    for (group, name), value in (overrides or {}).items():
        conf.set_override(name, value, group=group)
    return conf


SIM_HOSTS = ('sim-1', 'sim-2', 'sim-3')
# A fast simulated clock and monitor, and a source silent for 20 s counted as down.
SIM_OPTIONS = {('simulated', 'time_scale'): 0.02,
               ('conductor', 'monitor_interval'): 0.05,
               ('conductor', 'service_down_time'): 20}


@contextlib.contextmanager
def simulated_cloud(tmp_path, overrides=None, hosts=SIM_HOSTS):
    """Conductor and simulated agents (``hosts``) in this process, on SQLite.

    :param overrides: {(group, option): value} over :data:`SIM_OPTIONS`, set before
        the services start (the flow runner reads some options only then).
    :returns: an :class:`AllInOneHandle` whose ``messages`` lists every RPC message
        sent meanwhile, as ``rpc.add_observer`` gives them.
    """
    with db_fixtures.api_on('sqlite', tmp_path) as url:
        conf = make_conf(tmp_path, ['%s=simulated://' % h for h in hosts],
                         {**SIM_OPTIONS, **(overrides or {})})
        conf.set_override('connection', url, group='database')
        service = all_in_one.AllInOne(conf)
        service.start()     # brings taskflow's persistence tables up to date too
        messages = []
        observer = lambda *m: messages.append(m)  # noqa: E731
        rpc.add_observer(observer)
        try:
            handle = AllInOneHandle(conf, service)
            handle.messages = messages
            yield handle
        finally:
            rpc.remove_observer(observer)
            service.stop()
            rpc.cleanup()


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
