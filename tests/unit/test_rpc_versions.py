"""Each RPC client and its endpoint share one version, and every client method exists."""

import inspect
import re

import pytest

from compute_agent import manager as agent_manager
from compute_agent import rpcapi as agent_rpcapi
from migration_conductor import manager as conductor_manager
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
