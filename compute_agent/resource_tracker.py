"""Claims on this host for incoming migrations (memory and vCPUs).

A claim reserves room for an instance that is about to arrive, from the destination's
pre-check until the migration finishes (the arrived domain then counts as used) or rolls
back (the claim is released). Free room is computed from what the hypervisor reports now
(every defined domain counts) minus the claims of instances not yet defined here.

Concurrency: one lock serializes every claim on this host, so two migrations racing for
the last room cannot both win. Claims are keyed by migration id and idempotent: asked
twice, the tracker answers with the claim it already holds.

Restart: claims live in memory, so a restarted agent must learn again the claims the
conductor knows it holds (:meth:`ResourceTracker.restore`, called once the agent has
registered). Until then the tracker does not know its free room: :meth:`check` and
:meth:`claim` wait for the restore (at most ``restore_timeout`` seconds, then refuse),
so no migration is admitted into room already promised to another. A release served
before the restore is remembered, so the restore does not bring that claim back.
"""

import logging
import threading
import time

from migration_conductor import exception

LOG = logging.getLogger(__name__)


class ResourceTracker:
    """Memory and vCPU claims of one host."""

    def __init__(self, host, driver, reserved_memory_mb, cpu_allocation_ratio,
                 restore_timeout):
        """:param restore_timeout: seconds :meth:`check` and :meth:`claim` wait for
        :meth:`restore` before they refuse."""
        self.host = host
        self._driver = driver
        self._reserved_memory_mb = reserved_memory_mb
        self._cpu_ratio = cpu_allocation_ratio
        self._restore_timeout = restore_timeout
        self._claims = {}
        self._held_since = {}   # migration id -> time.monotonic() when first held
        self._lock = threading.Lock()
        self._restored = threading.Event()
        self._released_before_restore = set()   # migration ids, guarded by _lock

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

    def _wait_for_restore(self, migration_uuid, instance_uuid):
        """Return once the claims held before a restart are known again.

        :raises DestinationRefused: they are still unknown after ``restore_timeout``.
        """
        if self._restored.is_set():
            return
        LOG.info('Migration %(m)s instance %(i)s: waiting up to %(t)s s for host '
                 '%(host)s to restore its claims', {'m': migration_uuid,
                                                    'i': instance_uuid, 'host': self.host,
                                                    't': self._restore_timeout})
        if not self._restored.wait(self._restore_timeout):
            raise exception.DestinationRefused(
                host=self.host, reason='it has not yet learned from the conductor the '
                'claims it held before it restarted')

    def check(self, migration_uuid, instance_uuid, memory_mb, vcpus):
        """Raise InsufficientResources if the instance would not fit now.

        :raises DestinationRefused: the claims held before a restart are not restored.
        """
        self._wait_for_restore(migration_uuid, instance_uuid)
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
        :raises DestinationRefused: the claims held before a restart are not restored.
        """
        self._wait_for_restore(migration_uuid, instance_uuid)
        with self._lock:
            existing = self._claims.get(migration_uuid)
            if existing is not None:
                return dict(existing)
            self._check_locked(instance_uuid, memory_mb, vcpus)
            claim = {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid,
                     'host': self.host, 'memory_mb': memory_mb, 'vcpus': vcpus}
            self._claims[migration_uuid] = claim
            self._held_since[migration_uuid] = time.monotonic()
        LOG.info('Migration %(m)s instance %(i)s: claimed %(mem)s MiB and %(cpu)s vCPUs '
                 'on host %(host)s', {'m': migration_uuid, 'i': instance_uuid,
                                      'mem': memory_mb, 'cpu': vcpus, 'host': self.host})
        return dict(claim)

    def release(self, migration_uuid):
        """Drop the claim of ``migration_uuid``; return whether there was one."""
        with self._lock:
            claim = self._claims.pop(migration_uuid, None)
            self._held_since.pop(migration_uuid, None)
            if not self._restored.is_set():
                self._released_before_restore.add(migration_uuid)
        if claim is not None:
            LOG.info('Migration %(m)s instance %(i)s: released its claim on host %(host)s',
                     {'m': migration_uuid, 'i': claim['instance_uuid'], 'host': self.host})
        return claim is not None

    def claims(self):
        with self._lock:
            return [dict(c) for c in self._claims.values()]

    def restore(self, claims):
        """Hold again the claims this host held before a restart; open the tracker.

        The room was promised before the restart, so it is not checked again. Keyed by
        migration id: a claim already held is kept as it is, and a claim released since
        this tracker was created is not brought back. Meant to be called once, when the
        agent has registered (with no claims if they could not be listed); calling it
        again only adds the claims not held.

        :param claims: dicts with ``migration_uuid``, ``instance_uuid``, ``memory_mb``
            and ``vcpus``, as the conductor's ``list_host_claims`` returns them.
        :returns: the claims restored (dicts, as :meth:`claim` returns them).
        """
        restored = []
        with self._lock:
            for values in claims:
                migration_uuid = values['migration_uuid']
                if (migration_uuid in self._claims
                        or migration_uuid in self._released_before_restore):
                    continue
                claim = {'migration_uuid': migration_uuid,
                         'instance_uuid': values['instance_uuid'], 'host': self.host,
                         'memory_mb': values['memory_mb'], 'vcpus': values['vcpus']}
                self._claims[migration_uuid] = claim
                self._held_since[migration_uuid] = time.monotonic()
                restored.append(dict(claim))
            self._released_before_restore.clear()
            self._restored.set()
        for claim in restored:
            LOG.info('Migration %(m)s instance %(i)s: restored its claim of %(mem)s MiB '
                     'and %(cpu)s vCPUs on host %(host)s after a restart',
                     {'m': claim['migration_uuid'], 'i': claim['instance_uuid'],
                      'mem': claim['memory_mb'], 'cpu': claim['vcpus'],
                      'host': self.host})
        return restored

    def reconcile(self, listed, asked_at):
        """Drop the claims the conductor no longer lists for this host.

        A claim can outlive its migration when the agent missed the release (it
        restarted between the conductor's listing and the rollback, or a release call
        was lost); it would keep room promised to nobody. Only claims held since
        before ``asked_at`` are judged: one taken while the listing was on its way is
        not in it yet.

        :param listed: the conductor's ``list_host_claims`` answer.
        :param asked_at: ``time.monotonic()`` taken before the listing was requested.
        :returns: the claims dropped (dicts).
        """
        wanted = {claim['migration_uuid'] for claim in listed}
        with self._lock:
            stale = [m for m, since in self._held_since.items()
                     if m not in wanted and since < asked_at]
            dropped = [self._claims.pop(m) for m in stale]
            for migration_uuid in stale:
                del self._held_since[migration_uuid]
        for claim in dropped:
            LOG.warning('Migration %(m)s instance %(i)s: dropped its claim on host '
                        '%(host)s (%(mem)s MiB, %(cpu)s vCPUs): the conductor no longer '
                        'lists it', {'m': claim['migration_uuid'],
                                     'i': claim['instance_uuid'], 'host': self.host,
                                     'mem': claim['memory_mb'], 'cpu': claim['vcpus']})
        return dropped
