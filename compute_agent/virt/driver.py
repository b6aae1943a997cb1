"""The virt driver interface of the compute agent.

A driver is the agent's only way to its hypervisor. Two implementations stand behind this
interface: :mod:`compute_agent.virt.libvirt.driver` (a real libvirtd) and
:mod:`compute_agent.virt.simulated` (an in-memory host for tests and scale runs).

Drivers return plain dicts whose keys are the field names of the versioned objects
(``ComputeHost``, ``Instance``); the agent manager builds the objects. A driver instance
belongs to one agent (one host) and must be safe to call from several RPC threads.
"""

import abc


class ComputeDriver(abc.ABC):
    """What an agent needs from its hypervisor."""

    def __init__(self, host):
        """:param host: the agent's host name, used in logs and errors."""
        self.host = host

    @abc.abstractmethod
    def init_host(self):
        """Connect to the hypervisor.

        :raises HypervisorUnavailable: it cannot be reached; the message names the URI.
        """

    @abc.abstractmethod
    def get_host_inventory(self):
        """Return the host's inventory as ComputeHost field values.

        Keys: hypervisor_type, hypervisor_version, libvirt_version, cpu_arch,
        cpu_vendor, cpu_model, cpu_features, cpu_xml, memory_mb, memory_mb_free, vcpus,
        host_uuid, libvirt_uri.
        """

    @abc.abstractmethod
    def list_instances(self):
        """Return the guests defined on this host as Instance field values.

        Keys: uuid (the domain UUID), name, power_state, memory_mb, vcpus.
        """

    def cleanup(self):
        """Release the hypervisor connection (agent stop)."""
