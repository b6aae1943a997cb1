"""A simulated host: the virt driver interface over an in-memory model.

Used by functional tests and scale experiments where no libvirtd runs. It models the
host's inventory (from the ``[simulated]`` options), a set of domains that tests add and
remove, and live migrations between simulated hosts of the same process, timed by the
pre-copy model of :mod:`compute_agent.virt.simulated_precopy`. It runs no guest.

Storage: a domain may have disks (the disk dicts of :mod:`compute_agent.virt.driver`,
declared by the test with ``add_domain(disks=...)``) and a host may have storage pools
(``add_pool(uuid, paths)``: the volume paths it holds). A test models shared storage by
adding a pool of the same UUID and paths to several hosts, local storage by pools of
distinct UUIDs, as operators do (see the NOTE of the driver interface). A migration
takes the domain's disks along; a block migration first creates the volumes it copies
in the destination's pool of their directory (``add_pool(directory=...)``), as libvirt
does, but no data moves (the simulated data plane carries memory only).

Hosts: every SimulatedDriver registers itself, by host name, in a process-wide registry
when created (and again in ``init_host``) and leaves it in ``cleanup``; a later driver
of the same name replaces an earlier one. ``live_migrate(dest_uri='simulated://<host>')``
moves the domain to the driver registered as ``<host>``.

A migration behaves as libvirt's peer-to-peer one does on the lab (see
:mod:`compute_agent.virt.libvirt.migration`): while it runs, the source shows the job's
statistics and the destination a paused incoming copy without statistics; at the end the
domain is gone from the source and runs on the destination (paused only if it was
paused when the job started), which keeps the completed job's statistics. An abort or a
failure leaves the guest on the source and nothing on the destination. Model time is
real time divided by ``[simulated] time_scale`` (a scale of 0.01 runs a migration of 10
model seconds in 0.1 s), and the statistics show model times.

Concurrency: one process-wide lock (with a condition) guards every simulated host's
domains. NOTE: one lock, not one per host, because a migration changes two hosts at
once; with a single lock that is atomic and no lock order can deadlock. A running
migration holds the lock only while it steps its model, and waits on the condition
between steps, so a pause, an abort or a destroy wakes it at once.
"""

import logging
import os
import threading
import time
import uuid as uuidlib
from xml.etree import ElementTree
from xml.sax import saxutils

from compute_agent.virt import driver
from compute_agent.virt import simulated_precopy
from migration_conductor import exception

LOG = logging.getLogger(__name__)

SIMULATED_URI = 'simulated://'
MIB = 1024 * 1024
DEFAULT_MAX_DOWNTIME_MS = 300   # QEMU's default maximum downtime
STEP = 0.02                     # real seconds between two steps of a running migration

_LOCK = threading.RLock()
_CHANGED = threading.Condition(_LOCK)
_HOSTS = {}   # host name -> SimulatedDriver


def get_simulated_host(name):
    """The SimulatedDriver registered as host ``name`` in this process, or None."""
    with _LOCK:
        return _HOSTS.get(name)


class _Domain:
    """One domain of a simulated host (guarded by the module lock)."""

    def __init__(self, uuid, name, memory_mb, vcpus, power_state, dirty_rate_mib,
                 disks=(), migration_profile=None):
        self.uuid = uuid
        self.migration_profile = migration_profile
        self.name = name
        self.memory_mb = memory_mb
        self.vcpus = vcpus
        self.power_state = power_state
        self.dirty_rate_mib = dirty_rate_mib
        self.disks = [dict(disk) for disk in disks]
        self.job = None              # _Job while this copy is a migration's source
        self.incoming = False        # the destination copy of a running migration
        self.completed_stats = None  # of the last migration that ended here
        self.postcopy_failed = False  # its migration failed after the switch
        self.interrupted = None       # the _Job of a post-copy whose stream broke
        self.cut_in_postcopy = None   # test control: 'cut' or 'lose' (see below)

    def to_dict(self):
        return {'uuid': self.uuid, 'name': self.name, 'power_state': self.power_state,
                'memory_mb': self.memory_mb, 'vcpus': self.vcpus,
                'migration_profile': self.migration_profile}


class _Job:
    """A running outgoing migration (guarded by the module lock)."""

    def __init__(self, model, dest, incoming, replaced, failure, started_paused):
        self.model = model
        self.dest = dest                  # the destination's SimulatedDriver
        self.incoming = incoming          # the _Domain placed on the destination
        self.replaced = replaced          # a shut-off definition it replaced there
        self.failure = failure            # reason of an injected failure, or None
        self.started_paused = started_paused
        self.abort_requested = False
        self.postcopy_permitted = False
        self.postcopy_requested = False
        self.postcopy = False             # switched: the destination runs the guest
        self.stream_cut = False           # a test cut its stream (post-copy)
        self.pull_left = 0.0              # seconds of pulling left when it broke


class SimulatedDriver(driver.ComputeDriver):
    """In-memory host; ``add_domain``/``remove_domain`` change what it reports."""

    def __init__(self, host, conf):
        super().__init__(host)
        self._conf = conf
        self._domains = {}
        # pool UUID -> {'paths': set, 'active': bool, 'directory': str or None,
        #               'free_bytes': int or None}
        self._pools = {}
        self._connected = False
        self._fail_next = None
        self.host_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, 'simulated.' + host))
        self._register()

    def _register(self):
        with _LOCK:
            if _HOSTS.get(self.host) not in (None, self):
                LOG.debug('Simulated host %s: replacing an earlier driver', self.host)
            _HOSTS[self.host] = self

    def init_host(self):
        self._register()
        self._connected = True

    def cleanup(self):
        with _CHANGED:
            if _HOSTS.get(self.host) is self:
                del _HOSTS[self.host]
            self._connected = False
            _CHANGED.notify_all()

    def get_host_inventory(self):
        sim = self._conf.simulated
        with _LOCK:
            used = sum(d.memory_mb for d in self._domains.values()
                       if d.power_state == 'running')
        return {
            'hypervisor_type': 'QEMU',
            'hypervisor_version': sim.hypervisor_version,
            'libvirt_version': 9000000,
            'cpu_arch': 'x86_64',
            'cpu_vendor': 'Intel',
            'cpu_model': sim.cpu_model,
            'cpu_features': [],
            'cpu_xml': ('<cpu><arch>x86_64</arch><model>%s</model><vendor>Intel</vendor>'
                        '</cpu>' % saxutils.escape(sim.cpu_model)),
            'memory_mb': sim.memory_mb,
            'memory_mb_free': max(sim.memory_mb - used, 0),
            'vcpus': sim.vcpus,
            'host_uuid': self.host_uuid,
            'libvirt_uri': SIMULATED_URI + self.host,
        }

    def list_instances(self):
        with _LOCK:
            return [domain.to_dict() for domain in self._domains.values()]

    # --- test controls ----------------------------------------------------------------

    def add_domain(self, name, memory_mb=512, vcpus=1, uuid=None,
                   power_state='running', dirty_rate_mib=0, disks=None,
                   migration_profile=None):
        """Define a domain on this simulated host; returns its UUID.

        :param dirty_rate_mib: MiB/s the guest dirties while it runs.
        :param migration_profile: the profile its metadata names (None: none).
        :param disks: its disks, as dicts with keys target and path, and optionally
            format, pool_uuid and allocation (None when missing); None: a diskless
            guest.
        """
        domain_uuid = uuid or str(uuidlib.uuid4())
        disks = [driver.make_disk(d['target'], d['path'], d.get('format'),
                                  d.get('pool_uuid'), d.get('allocation'))
                 for d in disks or ()]
        with _CHANGED:
            self._domains[domain_uuid] = _Domain(domain_uuid, name, memory_mb, vcpus,
                                                 power_state, dirty_rate_mib, disks,
                                                 migration_profile)
            _CHANGED.notify_all()
        return domain_uuid

    def add_pool(self, pool_uuid, paths=(), active=True, directory=None, free_bytes=None):
        """Define (or redefine) storage pool ``pool_uuid`` holding volumes at ``paths``.

        Add the same pool to several hosts to model shared storage. ``directory``: where
        its volumes are, for block migrations to create their copies in. ``free_bytes``:
        the room it reports (None: it cannot tell); a fixed figure, which copies made
        into the pool do not lower.
        """
        with _LOCK:
            self._pools[pool_uuid.lower()] = {'paths': set(paths), 'active': active,
                                              'directory': directory,
                                              'free_bytes': free_bytes}

    def volume_paths(self):
        """The paths of every volume of this host's pools."""
        with _LOCK:
            return sorted(set().union(*(p['paths'] for p in self._pools.values())))

    def set_dirty_rate(self, domain_uuid, dirty_rate_mib):
        """Change how fast a guest dirties its memory (MiB/s while it runs)."""
        with _CHANGED:
            self._lookup(domain_uuid).dirty_rate_mib = dirty_rate_mib
            _CHANGED.notify_all()

    def crash_domain(self, domain_uuid):
        """The guest's kernel panics: the domain is left crashed (as libvirt shows a
        pvpanic crash with on_crash=preserve)."""
        with _CHANGED:
            self._lookup(domain_uuid).power_state = 'crashed'
            _CHANGED.notify_all()

    def remove_domain(self, domain_uuid):
        """Undefine a domain; raises DomainNotFound if this host has none by that UUID."""
        if not self.destroy_instance(domain_uuid):
            raise exception.DomainNotFound(instance_uuid=domain_uuid, host=self.host)

    def fail_next_migration(self, reason='injected failure'):
        """Make the next live_migrate from this host fail midway (guest stays here)."""
        with _LOCK:
            self._fail_next = reason

    # --- one instance --------------------------------------------------------------------

    def _lookup(self, instance_uuid):
        domain = self._domains.get(instance_uuid)
        if domain is None:
            raise exception.DomainNotFound(instance_uuid=instance_uuid, host=self.host)
        return domain

    def get_instance(self, instance_uuid):
        with _LOCK:
            return self._lookup(instance_uuid).to_dict()

    def find_instance(self, instance_uuid):
        with _LOCK:
            domain = self._domains.get(instance_uuid)
            return domain.power_state if domain is not None else None

    def pause_instance(self, instance_uuid):
        self._change_run_state(instance_uuid, 'pause', 'paused')

    def resume_instance(self, instance_uuid):
        self._change_run_state(instance_uuid, 'resume', 'running')

    def _change_run_state(self, instance_uuid, action, target):
        with _CHANGED:
            domain = self._lookup(instance_uuid)
            if domain.power_state == target:
                LOG.info('Instance %s on simulated host %s is already %s', instance_uuid,
                         self.host, target)
                return
            if domain.power_state not in ('running', 'paused') or domain.incoming:
                raise exception.InstanceStateConflict(
                    instance_uuid=instance_uuid,
                    reason='cannot %s it on host %s: it is %s' % (
                        action, self.host,
                        'an incoming migration' if domain.incoming else domain.power_state))
            domain.power_state = target
            _CHANGED.notify_all()
        LOG.info('Instance %s on simulated host %s: %s', instance_uuid, self.host, target)

    def destroy_instance(self, instance_uuid):
        with _CHANGED:
            removed = self._domains.pop(instance_uuid, None)
            _CHANGED.notify_all()
        LOG.info('Instance %s: %s on simulated host %s', instance_uuid,
                 'destroyed and undefined' if removed else 'nothing to destroy', self.host)
        return removed is not None

    # --- storage ------------------------------------------------------------------------------

    def get_instance_disks(self, instance_uuid):
        with _LOCK:
            disks = [dict(disk) for disk in self._lookup(instance_uuid).disks]
        return sorted(disks, key=lambda disk: disk['target'])

    def has_pool_volume(self, pool_uuid, path):
        with _LOCK:
            pool = self._pools.get(pool_uuid.lower())
            return bool(pool and pool['active'] and path in pool['paths'])

    def _pool_at(self, directory):
        return next((p for p in self._pools.values()
                     if p['active'] and p['directory'] == directory), None)

    def has_volume_at(self, path):
        with _LOCK:
            pool = self._pool_at(os.path.dirname(path))
            return None if pool is None else path in pool['paths']

    def pool_free_bytes(self, directory):
        with _LOCK:
            pool = self._pool_at(os.path.normpath(directory))
            return None if pool is None else pool['free_bytes']

    def delete_disk_copies(self, instance_uuid, paths):
        deleted = []
        with _LOCK:
            for path in paths:
                for pool in self._pools.values():
                    if path in pool['paths']:
                        pool['paths'].discard(path)
                        deleted.append(path)
                        break
        LOG.info('Instance %s: deleted %s on host %s', instance_uuid,
                 ', '.join(deleted) or 'no volume', self.host)
        return deleted

    # --- migration ---------------------------------------------------------------------------

    def check_cpu_compatible(self, cpu_xml):
        if cpu_xml is None:
            return
        reason = self._cpu_incompatibility(cpu_xml)
        if reason is not None:
            LOG.warning('Simulated host %s cannot run guests of the CPU %r: %s', self.host,
                        cpu_xml[:200], reason)
            raise exception.CPUIncompatible(host=self.host, reason=reason)

    def _cpu_incompatibility(self, cpu_xml):
        try:
            cpu = ElementTree.fromstring(cpu_xml)
        except ElementTree.ParseError as exc:
            return 'cannot read the source CPU description: %s' % exc
        arch, model = cpu.findtext('arch'), cpu.findtext('model')
        own = self._conf.simulated.cpu_model
        if cpu.tag != 'cpu':
            return 'the source CPU description is a <%s>, not a <cpu>' % cpu.tag
        if arch not in (None, 'x86_64'):
            return 'CPU arch %s does not match host arch x86_64' % arch
        if model != own:
            return 'the source CPU model %s is not this host\'s model %s' % (model, own)
        return None

    def live_migrate(self, instance_uuid, dest_uri, migrate_uri, options):
        options = driver.normalize_migration_options(options, instance_uuid)
        with _CHANGED:
            domain, job = self._start_job(instance_uuid, dest_uri, options)
            _CHANGED.notify_all()
        LOG.info('Instance %s: simulated live migration from host %s to %s starts '
                 '(%d MiB, dirtying %s MiB/s, bandwidth %d MiB/s, max downtime %d ms)',
                 instance_uuid, self.host, job.dest.host, domain.memory_mb,
                 domain.dirty_rate_mib, job.model.bandwidth // MIB,
                 job.model.max_downtime * 1000)
        started = time.monotonic()
        try:
            self._run_job(instance_uuid, domain, job)
        except exception.MigrationJobCancelled:
            LOG.warning('Instance %s: simulated live migration from host %s to %s aborted '
                        'after %.2f s', instance_uuid, self.host, job.dest.host,
                        time.monotonic() - started)
            raise
        except exception.MigrationJobFailed as exc:
            LOG.error('Instance %s: simulated live migration from host %s to %s failed '
                      'after %.2f s: %s', instance_uuid, self.host, job.dest.host,
                      time.monotonic() - started, exc.kwargs.get('reason'))
            raise
        stats = job.incoming.completed_stats
        LOG.info('Instance %s: simulated live migration from host %s to %s completed in '
                 '%.2f s (model: %d ms, %d iterations, downtime %d ms)', instance_uuid,
                 self.host, job.dest.host, time.monotonic() - started,
                 stats['total_time_ms'], stats['iteration'], stats['downtime_ms'])

    def _failed(self, instance_uuid, reason):
        return exception.MigrationJobFailed(instance_uuid=instance_uuid, host=self.host,
                                            reason=reason)

    def _start_job(self, instance_uuid, dest_uri, options):
        """Check the request and set the job up on both hosts (under the lock)."""
        domain = self._lookup(instance_uuid)
        if domain.job is not None:
            raise self._failed(instance_uuid, 'another migration job is running')
        if domain.incoming or domain.power_state not in ('running', 'paused'):
            raise self._failed(instance_uuid, 'the domain is not active (%s)' % (
                'incoming migration' if domain.incoming else domain.power_state))
        if not (dest_uri or '').startswith(SIMULATED_URI):
            raise self._failed(instance_uuid, 'cannot reach %r: not a simulated host URI'
                               % dest_uri)
        dest_name = dest_uri[len(SIMULATED_URI):].strip('/')
        dest = _HOSTS.get(dest_name)
        if dest is None:
            raise self._failed(instance_uuid, 'no simulated host %r in this process'
                               % dest_name)
        if dest is self:
            raise self._failed(instance_uuid, 'the destination is the source host')
        existing = dest._domains.get(instance_uuid)
        if existing is not None and (existing.power_state != 'shutoff' or existing.job):
            raise self._failed(instance_uuid, 'domain %s already exists on host %s (%s)'
                               % (instance_uuid, dest_name, existing.power_state))
        sim = self._conf.simulated
        bandwidth_mib = options['bandwidth_mib'] or sim.bandwidth_mib
        max_downtime_ms = options['max_downtime_ms']
        if max_downtime_ms is None:
            max_downtime_ms = DEFAULT_MAX_DOWNTIME_MS
        model = simulated_precopy.PrecopyModel(
            domain.memory_mb * MIB, bandwidth_mib * MIB, max_downtime_ms / 1000.0,
            auto_converge=options['auto_converge'])
        if options['block_migration']:
            # As libvirt: the copies are created in the destination's pools first.
            wanted = options['migrate_disks']
            for disk in domain.disks:
                if wanted is None or disk['target'] in wanted:
                    pool = dest._pool_at(os.path.dirname(disk['path'] or ''))
                    if pool is None:
                        raise self._failed(instance_uuid, 'no storage pool on %s for a '
                                           'copy of %s' % (dest_name, disk['path']))
                    pool['paths'].add(disk['path'])
        incoming = _Domain(instance_uuid, domain.name, domain.memory_mb, domain.vcpus,
                           'paused', domain.dirty_rate_mib, domain.disks,
                           domain.migration_profile)
        incoming.incoming = True
        dest._domains[instance_uuid] = incoming
        failure, self._fail_next = self._fail_next, None
        domain.job = _Job(model, dest, incoming, existing, failure,
                          started_paused=domain.power_state == 'paused')
        domain.job.postcopy_permitted = bool(options['postcopy'])
        return domain, domain.job

    def _run_job(self, instance_uuid, domain, job):
        """Step the model until it converges, then stop-and-copy and switch over."""
        scale = self._conf.simulated.time_scale
        with _CHANGED:
            last = time.monotonic()
            while True:
                self._check_job(instance_uuid, domain, job)
                now = time.monotonic()
                dirty = domain.dirty_rate_mib * MIB if domain.power_state == 'running' else 0
                converged = job.model.advance((now - last) / scale, dirty)
                last = now
                if job.failure is not None and (
                        converged or job.model.processed >= job.model.memory_total / 2):
                    self._end_job(instance_uuid, domain, job)
                    raise self._failed(instance_uuid, job.failure)
                if converged:
                    break
                if job.postcopy_requested:
                    self._run_postcopy(instance_uuid, domain, job, scale)
                    return
                _CHANGED.wait(STEP)
            # Stop-and-copy: the guest is stopped while the rest is sent.
            deadline = time.monotonic() + job.model.downtime * scale
            while True:
                self._check_job(instance_uuid, domain, job)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                _CHANGED.wait(left)
            job.model.complete()
            self._switch_over(instance_uuid, domain, job)
            _CHANGED.notify_all()

    def _run_postcopy(self, instance_uuid, domain, job, scale):
        """Switch to post-copy: the destination runs the guest from now on and pulls
        what is left at the bandwidth; the source stays paused (under the lock)."""
        job.postcopy = True
        domain.power_state = 'paused'
        job.incoming.power_state = 'running'
        _CHANGED.notify_all()
        left = job.model.remaining
        LOG.info('Instance %s: simulated migration from host %s switched to post-copy '
                 '(%d MiB left to pull)', instance_uuid, self.host, left // MIB)
        cut, domain.cut_in_postcopy = domain.cut_in_postcopy, None
        if cut:
            job.stream_cut = True
            if cut == 'lose':
                job.dest._domains.pop(instance_uuid, None)
        self._pull(instance_uuid, domain, job, left / job.model.bandwidth * scale)

    def _pull(self, instance_uuid, domain, job, seconds):
        """The destination pulls the rest for ``seconds``; then the switch-over. A
        stream cut leaves both sides paused, the job resumable (under the lock)."""
        deadline = time.monotonic() + seconds
        while True:
            if (job.dest._domains.get(instance_uuid) is not job.incoming
                    and not job.stream_cut):
                # The destination lost the guest in post-copy: nobody has it whole.
                domain.job = None
                domain.postcopy_failed = True
                _CHANGED.notify_all()
                raise self._failed(instance_uuid, 'the destination lost the guest in '
                                   'post-copy')
            wait = deadline - time.monotonic()
            if job.stream_cut:
                job.stream_cut = False
                job.pull_left = max(wait, 0.0)
                domain.job, domain.interrupted = None, job
                domain.postcopy_failed = True
                job.incoming.power_state = 'paused'
                _CHANGED.notify_all()
                raise self._failed(instance_uuid, 'the migration stream broke in '
                                   'post-copy')
            if wait <= 0:
                break
            _CHANGED.wait(min(wait, STEP))
        job.model.converged, job.model.downtime = True, 0.0
        job.model.complete()
        domain.interrupted, domain.postcopy_failed = None, False
        self._switch_over(instance_uuid, domain, job)
        _CHANGED.notify_all()

    def cut_stream_in_postcopy(self, instance_uuid, lose_guest=False):
        """Test control: the guest's next migration stream breaks as soon as it runs
        in post-copy (both sides pause; the job can be resumed), and with
        ``lose_guest`` the destination's copy dies with it (nothing to resume)."""
        with _LOCK:
            self._lookup(instance_uuid).cut_in_postcopy = ('lose' if lose_guest
                                                           else 'cut')

    def resume_postcopy(self, instance_uuid, dest_uri, migrate_uri, options):
        with _CHANGED:
            domain = self._domains.get(instance_uuid)
            job = None if domain is None else domain.interrupted
            if job is None or job.dest._domains.get(instance_uuid) is not job.incoming:
                raise exception.PostcopyUnrecoverable(
                    instance_uuid=instance_uuid, host=self.host,
                    reason='the destination %s has no copy of the guest to resume'
                           % (job.dest.host if job else 'host'))
            LOG.info('Instance %s: simulated post-copy from host %s resumed',
                     instance_uuid, self.host)
            domain.job, domain.interrupted = job, None
            job.incoming.power_state = 'running'
            _CHANGED.notify_all()
            self._pull(instance_uuid, domain, job, job.pull_left)

    def _check_job(self, instance_uuid, domain, job):
        """Raise (after cleaning up) when the job was aborted or lost a side."""
        if job.abort_requested:
            self._end_job(instance_uuid, domain, job)
            raise exception.MigrationJobCancelled(instance_uuid=instance_uuid,
                                                  host=self.host)
        if self._domains.get(instance_uuid) is not domain:
            self._end_job(instance_uuid, domain, job)
            raise self._failed(instance_uuid, 'the domain was destroyed on the source')
        if job.dest._domains.get(instance_uuid) is not job.incoming:
            self._end_job(instance_uuid, domain, job)
            raise self._failed(instance_uuid, 'the incoming domain was destroyed on the '
                                              'destination %s' % job.dest.host)
        if _HOSTS.get(job.dest.host) is not job.dest:
            self._end_job(instance_uuid, domain, job)
            raise self._failed(instance_uuid, 'the destination host %s went away'
                               % job.dest.host)

    @staticmethod
    def _end_job(instance_uuid, domain, job):
        """Undo a job that did not complete: the guest stays on the source only."""
        domain.job = None
        dest_domains = job.dest._domains
        if dest_domains.get(instance_uuid) is job.incoming:
            if job.replaced is not None:
                dest_domains[instance_uuid] = job.replaced
            else:
                del dest_domains[instance_uuid]
        _CHANGED.notify_all()

    def _switch_over(self, instance_uuid, domain, job):
        del self._domains[instance_uuid]
        domain.job = None
        incoming = job.incoming
        incoming.incoming = False
        incoming.dirty_rate_mib = domain.dirty_rate_mib
        incoming.power_state = 'paused' if job.started_paused else 'running'
        incoming.completed_stats = job.model.stats('completed')

    def get_job_stats(self, instance_uuid):
        with _LOCK:
            domain = self._domains.get(instance_uuid)
            if domain is None:
                return None
            if domain.job is not None:
                stats = domain.job.model.stats('unbounded')
                stats['postcopy'] = domain.job.postcopy
                return stats
            # As libvirt: no statistics for an incoming migration on the destination.
            return driver.empty_job_stats('unbounded' if domain.incoming else 'none')

    def get_completed_job_stats(self, instance_uuid):
        with _LOCK:
            domain = self._domains.get(instance_uuid)
            if domain is None or domain.completed_stats is None:
                return None
            return dict(domain.completed_stats)

    def measure_dirty_rate(self, instance_uuid, seconds):
        time.sleep(seconds * self._conf.simulated.time_scale)
        with _LOCK:
            domain = self._lookup(instance_uuid)
            rate = domain.dirty_rate_mib if domain.power_state == 'running' else 0
            return int(rate * MIB)

    def in_postcopy(self, instance_uuid):
        with _LOCK:
            domain = self._domains.get(instance_uuid)
            if domain is None:
                return False
            return domain.postcopy_failed or (domain.job is not None
                                              and domain.job.postcopy)

    def set_max_downtime(self, instance_uuid, downtime_ms):
        with _CHANGED:
            job = self._running_job(instance_uuid, 'set the maximum downtime of')
            job.model.max_downtime = downtime_ms / 1000.0
            _CHANGED.notify_all()

    def start_postcopy(self, instance_uuid):
        with _CHANGED:
            job = self._running_job(instance_uuid, 'switch to post-copy the job of')
            if not job.postcopy_permitted:
                raise exception.HypervisorCallFailed(
                    host=self.host, action='switch to post-copy the job of',
                    instance_uuid=instance_uuid,
                    reason='the job was not started with post-copy permitted')
            job.postcopy_requested = True
            _CHANGED.notify_all()

    def _running_job(self, instance_uuid, action):
        domain = self._domains.get(instance_uuid)
        if domain is None or domain.job is None:
            raise exception.HypervisorCallFailed(host=self.host, action=action,
                                                 instance_uuid=instance_uuid,
                                                 reason='no migration job is running')
        return domain.job

    def abort_job(self, instance_uuid):
        with _CHANGED:
            domain = self._domains.get(instance_uuid)
            if domain is None or domain.job is None:
                LOG.info('Instance %s: no job to abort on simulated host %s', instance_uuid,
                         self.host)
                return False
            if domain.job.postcopy:
                # As libvirt: a job in post-copy cannot be aborted.
                raise exception.HypervisorCallFailed(
                    host=self.host, action='abort the job of', instance_uuid=instance_uuid,
                    reason='cannot abort migration in post-copy mode')
            domain.job.abort_requested = True
            _CHANGED.notify_all()
        LOG.info('Instance %s on simulated host %s: job abort requested', instance_uuid,
                 self.host)
        return True
