"""The libvirt virt driver: the agent's hypervisor is a real libvirtd.

All libvirt access goes through :class:`compute_agent.virt.libvirt.host.Host` (the only
module that imports ``libvirt``); migration specifics live in
:mod:`compute_agent.virt.libvirt.migration`, disks and storage pools in
:mod:`compute_agent.virt.libvirt.storage`. This module maps both to the driver
interface and turns libvirt's errors into the project's typed errors.

Concurrency: no state of its own besides the Host; every method may be called from any
thread, while :meth:`LibvirtDriver.live_migrate` blocks another one.
"""

import contextlib
import logging
import time

from compute_agent.virt import driver
from compute_agent.virt.libvirt import host as libvirt_host
from compute_agent.virt.libvirt import migration
from compute_agent.virt.libvirt import storage
from migration_conductor import exception

LOG = logging.getLogger(__name__)

# NOTE: libvirtd looks its own hostname up (getaddrinfo) for every migration, while it
# holds the domain's lock; a lookup this slow stalls migrations and every call on the
# migrating domain. getHostname performs the same lookup, so init_host times it.
SLOW_HOSTNAME_LOOKUP_SECONDS = 1.0
# Seconds the request to switch a job to post-copy may take (LAB.md: it once never
# returned); the switch itself is confirmed from the job statistics.
POSTCOPY_CALL_TIMEOUT = 10


class LibvirtDriver(driver.ComputeDriver):
    """Drives the libvirtd at ``uri``; ``advertised_uri`` is how other hosts reach it."""

    def __init__(self, host, uri, connect_timeout=10, advertised_uri=None,
                 open_connection=None, trust_shared_pools=False,
                 limit_postcopy_bandwidth=False):
        """:param trust_shared_pools: see the option ``[libvirt] trust_shared_pools``.
        :param limit_postcopy_bandwidth: see ``[libvirt] limit_postcopy_bandwidth``.
        """
        super().__init__(host)
        self._trust_shared_pools = trust_shared_pools
        self._limit_postcopy_bandwidth = limit_postcopy_bandwidth
        self._host = libvirt_host.Host(uri, connect_timeout=connect_timeout,
                                       open_connection=open_connection)
        self._advertised_uri = advertised_uri or uri

    def init_host(self):
        conn = self._host.get_connection()
        started = time.monotonic()
        name = self._host.call('get hostname', conn.getHostname)
        took = time.monotonic() - started
        LOG.info('Host %(host)s: connected to libvirt at %(uri)s (hostname %(name)s)',
                 {'host': self.host, 'uri': self._host.uri, 'name': name})
        if took > SLOW_HOSTNAME_LOOKUP_SECONDS:
            LOG.warning('Host %(host)s: libvirt at %(uri)s took %(took).1f s to look up its '
                        'hostname %(name)s. It repeats that lookup for every migration while '
                        'holding the domain\'s lock, so each migration from or to this host '
                        'stalls as long: make the name resolvable locally (/etc/hosts) '
                        'rather than through DNS.',
                        {'host': self.host, 'uri': self._host.uri, 'took': took,
                         'name': name})

    def get_host_inventory(self):
        inventory = self._host.get_info()
        inventory.update(self._host.get_capabilities())
        inventory['libvirt_uri'] = self._advertised_uri
        return inventory

    def list_instances(self):
        return self._host.list_domains()

    def cleanup(self):
        self._host.close()

    # --- helpers -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _libvirt_errors(self, action, instance_uuid):
        """Turn an unexpected libvirtError into HypervisorCallFailed."""
        try:
            yield
        except libvirt_host.libvirtError as exc:
            reason = libvirt_host.error_message(exc)
            LOG.error('Instance %s: libvirt on host %s could not %s it: %s',
                      instance_uuid, self.host, action, reason)
            raise exception.HypervisorCallFailed(
                host=self.host, action=action, instance_uuid=instance_uuid,
                reason=reason) from exc

    def _find(self, instance_uuid, conn=None):
        with self._libvirt_errors('look up', instance_uuid):
            return self._host.find_domain(instance_uuid, conn)

    def _get(self, instance_uuid, conn=None):
        dom = self._find(instance_uuid, conn)
        if dom is None:
            raise exception.DomainNotFound(instance_uuid=instance_uuid, host=self.host)
        return dom

    def _vanished(self, instance_uuid, exc):
        """Whether a libvirtError says the domain is gone (then raise DomainNotFound)."""
        if exc.get_error_code() == libvirt_host.ERR_NO_DOMAIN:
            raise exception.DomainNotFound(instance_uuid=instance_uuid,
                                           host=self.host) from exc

    # --- one instance ----------------------------------------------------------------------

    def get_instance(self, instance_uuid):
        dom = self._get(instance_uuid)
        with self._libvirt_errors('read', instance_uuid):
            try:
                return self._host.describe_domain(dom)
            except libvirt_host.libvirtError as exc:
                self._vanished(instance_uuid, exc)
                raise

    def find_instance(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            return None
        with self._libvirt_errors('read the state of', instance_uuid):
            try:
                return self._host.get_state(dom)[0]
            except libvirt_host.libvirtError as exc:
                if exc.get_error_code() == libvirt_host.ERR_NO_DOMAIN:
                    return None
                raise

    def pause_instance(self, instance_uuid):
        self._change_run_state(instance_uuid, 'pause', 'paused')

    def resume_instance(self, instance_uuid):
        self._change_run_state(instance_uuid, 'resume', 'running')

    def _change_run_state(self, instance_uuid, action, target):
        dom = self._get(instance_uuid)
        with self._libvirt_errors(action, instance_uuid):
            try:
                state, detail = self._host.get_state(dom)
                if state == target:
                    LOG.info('Instance %s on host %s is already %s', instance_uuid,
                             self.host, target)
                    return
                if state not in ('running', 'paused') or detail == libvirt_host.INCOMING:
                    raise exception.InstanceStateConflict(
                        instance_uuid=instance_uuid,
                        reason='cannot %s it on host %s: it is %s' % (
                            action, self.host,
                            'an incoming migration' if detail == libvirt_host.INCOMING
                            else state))
                fn = dom.suspend if action == 'pause' else dom.resume
                self._host.call('%s domain' % action, fn)
            except libvirt_host.libvirtError as exc:
                self._vanished(instance_uuid, exc)
                raise
        LOG.info('Instance %s on host %s: %s', instance_uuid, self.host, target)

    def destroy_instance(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            LOG.info('Instance %s: nothing to destroy on host %s', instance_uuid, self.host)
            return False
        with self._libvirt_errors('destroy', instance_uuid):
            removed = self._host.destroy_domain(dom)
        LOG.info('Instance %s: %s on host %s', instance_uuid,
                 'destroyed and undefined' if removed else 'already gone', self.host)
        return removed

    # --- storage ---------------------------------------------------------------------------

    def get_instance_disks(self, instance_uuid):
        dom = self._get(instance_uuid)
        with self._libvirt_errors('read the disks of', instance_uuid):
            try:
                return storage.domain_disks(self._host, dom, instance_uuid)
            except libvirt_host.libvirtError as exc:
                self._vanished(instance_uuid, exc)
                raise

    def has_pool_volume(self, pool_uuid, path):
        return storage.has_pool_volume(self._host, pool_uuid, path)

    def has_volume_at(self, path):
        return storage.has_volume_at(self._host, path)

    def pool_free_bytes(self, directory):
        return storage.pool_free_bytes(self._host, directory)

    def delete_disk_copies(self, instance_uuid, paths):
        return storage.delete_volumes(self._host, instance_uuid, paths)

    # --- migration -------------------------------------------------------------------------

    def check_cpu_compatible(self, cpu_xml):
        if cpu_xml is None:
            return
        reason = self._host.compare_cpu(cpu_xml)
        if reason is not None:
            LOG.warning('Host %s cannot run guests of the CPU %r: %s', self.host,
                        ' '.join(cpu_xml.split())[:200], reason)
            raise exception.CPUIncompatible(host=self.host, reason=reason)

    def live_migrate(self, instance_uuid, dest_uri, migrate_uri, options):
        # NOTE: the job blocks its call until it ends: it gets a connection of its own,
        # so that the calls steering it (statistics, abort, pause) never wait behind it.
        with self._host.job_connection() as conn:
            dom = self._get(instance_uuid, conn)
            migration.migrate(self._host, dom, self.host, instance_uuid, dest_uri,
                              migrate_uri, options,
                              trust_shared_pools=self._trust_shared_pools,
                              limit_postcopy=self._limit_postcopy_bandwidth)

    def get_job_stats(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            return None
        with self._libvirt_errors('read the job statistics of', instance_uuid):
            return migration.job_stats(self._host, dom)

    def measure_dirty_rate(self, instance_uuid, seconds):
        dom = self._get(instance_uuid)
        with self._libvirt_errors('measure the dirty rate of', instance_uuid):
            return migration.measure_dirty_rate(self._host, dom, seconds)

    def resume_postcopy(self, instance_uuid, dest_uri, migrate_uri, options):
        self.live_migrate(instance_uuid, dest_uri, migrate_uri,
                          dict(options, postcopy_resume=True))

    def in_postcopy(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            return False
        with self._libvirt_errors('read the state of', instance_uuid):
            try:
                detail = self._host.get_state(dom)[1]
            except libvirt_host.libvirtError as exc:
                if exc.get_error_code() == libvirt_host.ERR_NO_DOMAIN:
                    return False
                raise
        return detail in (libvirt_host.POSTCOPY, libvirt_host.POSTCOPY_FAILED)

    def ping_guest_agent(self, instance_uuid, timeout):
        dom = self._find(instance_uuid)
        if dom is None:
            return False
        with self._libvirt_errors('read the definition of', instance_uuid):
            if not self._host.guest_agent_connected(dom):
                return None
        try:
            self._host.ping_guest_agent(dom, timeout)
        except (libvirt_host.libvirtError, exception.HypervisorUnavailable) as exc:
            LOG.warning('Instance %s: its guest agent on host %s did not answer a ping '
                        '(%s)', instance_uuid, self.host, exc)
            return False
        return True

    def resident_memory(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            return None
        try:
            stats = self._host.call('read memory statistics', dom.memoryStats)
        except (libvirt_host.libvirtError, exception.HypervisorUnavailable) as exc:
            LOG.warning('Instance %s: no memory statistics on host %s (%s)', instance_uuid,
                        self.host, exc)
            return None
        rss = stats.get('rss')
        return None if rss is None else int(rss) * 1024

    def set_max_downtime(self, instance_uuid, downtime_ms):
        dom = self._get(instance_uuid)
        with self._libvirt_errors('set the maximum downtime of', instance_uuid):
            migration.set_max_downtime(self._host, dom, downtime_ms)

    def start_postcopy(self, instance_uuid):
        dom = self._get(instance_uuid)
        with self._libvirt_errors('switch to post-copy the migration of', instance_uuid):
            migration.start_postcopy(self._host, dom, POSTCOPY_CALL_TIMEOUT)

    def get_completed_job_stats(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            return None
        with self._libvirt_errors('read the completed job statistics of', instance_uuid):
            return migration.completed_job_stats(self._host, dom)

    def abort_job(self, instance_uuid):
        dom = self._find(instance_uuid)
        if dom is None:
            LOG.info('Instance %s: no job to abort, it is not on host %s', instance_uuid,
                     self.host)
            return False
        with self._libvirt_errors('abort the job of', instance_uuid):
            aborted = migration.abort(self._host, dom)
        LOG.info('Instance %s on host %s: %s', instance_uuid, self.host,
                 'job aborted' if aborted else 'no job to abort')
        return aborted
