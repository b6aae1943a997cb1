"""Each RPC client and its endpoint share one version, every client method exists, and
the agent client does not send an older agent what it does not know."""

import inspect
import re

from oslo_config import cfg
import pytest

from compute_agent import manager as agent_manager
from compute_agent import rpcapi as agent_rpcapi
from migration_conductor import cmd
from migration_conductor import manager as conductor_manager
from migration_conductor import rpc
from migration_conductor import rpcapi as conductor_rpcapi

PAIRS = [
    (conductor_rpcapi, conductor_rpcapi.ConductorAPI, conductor_manager.ConductorManager),
    (agent_rpcapi, agent_rpcapi.AgentAPI, agent_manager.AgentManager),
]


@pytest.mark.parametrize('module,client,endpoint', PAIRS)
def test_client_and_endpoint_versions_agree(module, client, endpoint):
    assert endpoint.target.version == module.RPC_API_VERSION
    history = inspect.getdoc(module)
    assert '* %s - ' % module.RPC_API_VERSION in history, 'no history line for it'


@pytest.mark.parametrize('module,client,endpoint', PAIRS)
def test_every_client_method_has_an_endpoint(module, client, endpoint):
    public = [name for name, _ in inspect.getmembers(client, inspect.isfunction)
              if not name.startswith('_')]
    assert public
    for name in public:
        source = inspect.getsource(getattr(client, name))
        # The client sends a message named after itself.
        assert "'%s'" % name in source, name
        assert callable(getattr(endpoint, name, None)), (
            '%s.%s has no endpoint method' % (endpoint.__name__, name))
        prepared = re.findall(r"'(\d+\.\d+)'", source)
        assert prepared, '%s does not prepare() a version' % name
        assert all(v <= module.RPC_API_VERSION for v in prepared), (name, prepared)


@pytest.fixture
def agent_calls(monkeypatch):
    """(an AgentAPI, the list of (version, method, kwargs) it sends); nothing is sent."""
    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf([], project='migration-conductor-unit-tests')
    sent = []

    def call(cctxt, context, method, **kwargs):
        sent.append((cctxt._cctxt.target.version, method, kwargs))
        return {'host': 'h'}

    monkeypatch.setattr(rpc._ObservedCallContext, 'call', call)
    yield agent_rpcapi.AgentAPI(conf), sent
    rpc.cleanup()


@pytest.mark.parametrize('service_version,version,sends_block_migration', [
    (1, '1.1', False), (None, '1.1', False), (2, '1.2', True), (3, '1.2', True)])
def test_check_destination_sends_block_migration_only_to_agents_that_know_it(
        agent_calls, service_version, version, sends_block_migration):
    api, sent = agent_calls
    api.check_destination(None, 'h', 'm', 'i', {'disks': []}, 'false',
                          service_version=service_version)
    [(sent_version, method, kwargs)] = sent
    assert (sent_version, method) == (version, 'check_destination')
    assert ('block_migration' in kwargs) is sends_block_migration
    if sends_block_migration:
        assert kwargs['block_migration'] == 'false'


def test_the_current_agent_service_version_serves_the_current_rpc_version():
    assert agent_rpcapi.SERVICE_VERSION_CAPS[agent_manager.SERVICE_VERSION] == \
        agent_rpcapi.RPC_API_VERSION


@pytest.mark.parametrize('method', ['cleanup_source', 'rollback_destination'])
@pytest.mark.parametrize('disks,version', [(None, '1.1'), ([], '1.1'),
                                           (['/var/lib/guests/a.raw'], '1.3')])
def test_disks_to_delete_are_sent_with_1_3_only(agent_calls, method, disks, version):
    """Only agents of service version 3 copy disks, so only they get paths to delete;
    without any, the call stays one every agent serves."""
    api, sent = agent_calls
    getattr(api, method)(None, 'h', 'm', 'i', disks=disks)
    [(sent_version, sent_method, kwargs)] = sent
    assert (sent_version, sent_method) == (version, method)
    assert kwargs.get('disks') == (disks or None)
