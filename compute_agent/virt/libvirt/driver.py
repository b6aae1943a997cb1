"""The libvirt virt driver: the agent's hypervisor is a real libvirtd.

All libvirt access goes through :class:`compute_agent.virt.libvirt.host.Host`; this
module maps it to the driver interface.
"""

import logging

from compute_agent.virt import driver
from compute_agent.virt.libvirt import host as libvirt_host

LOG = logging.getLogger(__name__)


class LibvirtDriver(driver.ComputeDriver):
    """Drives the libvirtd at ``uri``; ``advertised_uri`` is how other hosts reach it."""

    def __init__(self, host, uri, connect_timeout=10, advertised_uri=None,
                 open_connection=None):
        super().__init__(host)
        self._host = libvirt_host.Host(uri, connect_timeout=connect_timeout,
                                       open_connection=open_connection)
        self._advertised_uri = advertised_uri or uri

    def init_host(self):
        conn = self._host.get_connection()
        LOG.info('Host %(host)s: connected to libvirt at %(uri)s (hostname %(name)s)',
                 {'host': self.host, 'uri': self._host.uri, 'name': conn.getHostname()})

    def get_host_inventory(self):
        inventory = self._host.get_info()
        inventory.update(self._host.get_capabilities())
        inventory['libvirt_uri'] = self._advertised_uri
        return inventory

    def list_instances(self):
        return self._host.list_domains()

    def cleanup(self):
        self._host.close()
