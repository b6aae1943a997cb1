"""The agent's RPC endpoint: answers the conductor's calls about one host.

Runs in oslo.messaging's threading executor; the virt driver it uses is thread-safe.
The agent has no database access: what it knows comes from its hypervisor, and what it
reports goes to the conductor over RPC.
"""

import logging

import oslo_messaging as messaging

from compute_agent import rpcapi
from migration_conductor import objects

LOG = logging.getLogger(__name__)

# Bumped when an agent starts reporting something a conductor must know about; the
# conductor's scheduler refuses destinations older than the source.
SERVICE_VERSION = 1


class AgentManager:
    """Endpoint of the agent topic for one host; version must match :mod:`rpcapi`."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, host, driver, migration_address):
        self.host = host
        self.driver = driver
        self._migration_address = migration_address

    def build_host_report(self):
        """Read the host's inventory and guests from the hypervisor now."""
        inventory = self.driver.get_host_inventory()
        host = objects.ComputeHost(
            host=self.host, migration_address=self._migration_address,
            service_version=SERVICE_VERSION, **inventory)
        instances = objects.InstanceList(objects=[
            objects.Instance(host=self.host, **values)
            for values in self.driver.list_instances()])
        return objects.HostReport(host=host, instances=instances)

    def get_host_report(self, context):
        return self.build_host_report()
