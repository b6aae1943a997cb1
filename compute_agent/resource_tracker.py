"""Claims on this host for incoming migrations (memory and vCPUs).

A claim reserves room for an instance that is about to arrive, from the destination's
pre-check until the migration finishes (the arrived domain then counts as used) or rolls
back (the claim is released). Free room is computed from what the hypervisor reports now
(every defined domain counts) minus the claims of instances not yet defined here.

Concurrency: one lock serializes every claim on this host, so two migrations racing for
the last room cannot both win. Claims are keyed by migration id and idempotent: asked
twice, the tracker answers with the claim it already holds.
"""

import logging
import threading

from migration_conductor import exception

LOG = logging.getLogger(__name__)


class ResourceTracker:
    """Memory and vCPU claims of one host."""

    def __init__(self, host, driver, reserved_memory_mb, cpu_allocation_ratio):
        self.host = host
        self._driver = driver
        self._reserved_memory_mb = reserved_memory_mb
        self._cpu_ratio = cpu_allocation_ratio
        self._claims = {}
        self._lock = threading.Lock()

    def _free(self):
        inventory = self._driver.get_host_inventory()
        domains = {d['uuid']: d for d in self._driver.list_instances()}
        pending = [c for c in self._claims.values() if c['instance_uuid'] not in domains]
        memory = (inventory['memory_mb'] - self._reserved_memory_mb
                  - sum(d['memory_mb'] for d in domains.values())
                  - sum(c['memory_mb'] for c in pending))
        vcpus = (int(inventory['vcpus'] * self._cpu_ratio)
                 - sum(d['vcpus'] for d in domains.values())
                 - sum(c['vcpus'] for c in pending))
        return memory, vcpus

    def check(self, instance_uuid, memory_mb, vcpus):
        """Raise InsufficientResources if the instance would not fit now."""
        with self._lock:
            self._check_locked(instance_uuid, memory_mb, vcpus)

    def _check_locked(self, instance_uuid, memory_mb, vcpus):
        free_memory, free_vcpus = self._free()
        if memory_mb > free_memory:
            raise exception.InsufficientResources(
                host=self.host, instance_uuid=instance_uuid, resource='memory (MiB)',
                requested=memory_mb, free=free_memory)
        if vcpus > free_vcpus:
            raise exception.InsufficientResources(
                host=self.host, instance_uuid=instance_uuid, resource='vCPUs',
                requested=vcpus, free=free_vcpus)

    def claim(self, migration_uuid, instance_uuid, memory_mb, vcpus):
        """Reserve room for ``instance_uuid``; return the claim (a dict).

        :raises InsufficientResources: not enough room; nothing is reserved.
        """
        with self._lock:
            existing = self._claims.get(migration_uuid)
            if existing is not None:
                return dict(existing)
            self._check_locked(instance_uuid, memory_mb, vcpus)
            claim = {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid,
                     'host': self.host, 'memory_mb': memory_mb, 'vcpus': vcpus}
            self._claims[migration_uuid] = claim
        LOG.info('Migration %(m)s instance %(i)s: claimed %(mem)s MiB and %(cpu)s vCPUs '
                 'on host %(host)s', {'m': migration_uuid, 'i': instance_uuid,
                                      'mem': memory_mb, 'cpu': vcpus, 'host': self.host})
        return dict(claim)

    def release(self, migration_uuid):
        """Drop the claim of ``migration_uuid``; return whether there was one."""
        with self._lock:
            claim = self._claims.pop(migration_uuid, None)
        if claim is not None:
            LOG.info('Migration %(m)s instance %(i)s: released its claim on host %(host)s',
                     {'m': migration_uuid, 'i': claim['instance_uuid'], 'host': self.host})
        return claim is not None

    def claims(self):
        with self._lock:
            return [dict(c) for c in self._claims.values()]
