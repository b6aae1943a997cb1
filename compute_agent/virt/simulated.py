"""A simulated host: the virt driver interface over an in-memory model.

Used by functional tests and scale experiments where no libvirtd runs. It models the
host's inventory (from the ``[simulated]`` options) and a set of domains that tests add
and remove. It runs no guest. Thread-safe: one lock guards the domain table.
"""

import threading
import uuid as uuidlib

from compute_agent.virt import driver
from migration_conductor import exception

SIMULATED_URI = 'simulated://'


class SimulatedDriver(driver.ComputeDriver):
    """In-memory host; ``add_domain``/``remove_domain`` change what it reports."""

    def __init__(self, host, conf):
        super().__init__(host)
        self._conf = conf
        self._lock = threading.Lock()
        self._domains = {}
        self._connected = False
        self.host_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, 'simulated.' + host))

    def init_host(self):
        self._connected = True

    def get_host_inventory(self):
        sim = self._conf.simulated
        with self._lock:
            used = sum(d['memory_mb'] for d in self._domains.values()
                       if d['power_state'] == 'running')
        return {
            'hypervisor_type': 'QEMU',
            'hypervisor_version': sim.hypervisor_version,
            'libvirt_version': 9000000,
            'cpu_arch': 'x86_64',
            'cpu_vendor': 'Intel',
            'cpu_model': sim.cpu_model,
            'cpu_features': [],
            'cpu_xml': None,
            'memory_mb': sim.memory_mb,
            'memory_mb_free': max(sim.memory_mb - used, 0),
            'vcpus': sim.vcpus,
            'host_uuid': self.host_uuid,
            'libvirt_uri': SIMULATED_URI + self.host,
        }

    def list_instances(self):
        with self._lock:
            return [dict(domain) for domain in self._domains.values()]

    # --- test controls ----------------------------------------------------------------

    def add_domain(self, name, memory_mb=512, vcpus=1, uuid=None,
                   power_state='running'):
        """Define a domain on this simulated host; returns its UUID."""
        domain_uuid = uuid or str(uuidlib.uuid4())
        with self._lock:
            self._domains[domain_uuid] = {
                'uuid': domain_uuid, 'name': name, 'power_state': power_state,
                'memory_mb': memory_mb, 'vcpus': vcpus}
        return domain_uuid

    def remove_domain(self, domain_uuid):
        """Undefine a domain; raises DomainNotFound if this host has none by that UUID."""
        with self._lock:
            if self._domains.pop(domain_uuid, None) is None:
                raise exception.DomainNotFound(instance_uuid=domain_uuid, host=self.host)
