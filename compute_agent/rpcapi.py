"""Client side of the agents' RPC API, used by the conductor only.

Agents never call each other: this client is imported by conductor code, never by
``compute_agent`` modules that run in the agent.

API version history (the endpoint in :mod:`compute_agent.manager` carries the same
number; a test checks they agree):

* 1.0 - Initial version: get_host_report.
"""

import oslo_messaging as messaging

from migration_conductor import rpc

RPC_API_VERSION = '1.0'


class AgentAPI:
    """Calls to one agent: topic ``[agent] topic``, server = the agent's host name."""

    def __init__(self, conf):
        self._conf = conf
        target = messaging.Target(topic=conf.agent.topic, version=RPC_API_VERSION)
        self.client = rpc.get_client(conf, target, version_cap=RPC_API_VERSION,
                                     timeout=conf.conductor.rpc_response_timeout)

    def get_host_report(self, context, host):
        """Return the HostReport of ``host`` read from its hypervisor now."""
        cctxt = self.client.prepare(server=host, version='1.0')
        return cctxt.call(context, 'get_host_report')
