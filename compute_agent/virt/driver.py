"""The virt driver interface of the compute agent.

A driver is the agent's only way to its hypervisor. Two implementations stand behind this
interface: :mod:`compute_agent.virt.libvirt.driver` (a real libvirtd) and
:mod:`compute_agent.virt.simulated` (an in-memory host for tests and scale runs).

Drivers return plain dicts whose keys are the field names of the versioned objects
(``ComputeHost``, ``Instance``); the agent manager builds the objects. A driver instance
belongs to one agent (one host) and must be safe to call from several RPC threads: in
particular :meth:`ComputeDriver.live_migrate` blocks one thread for a whole migration
while other threads read its statistics, pause the guest or abort the job.

The instance and migration methods raise only the typed errors of
:mod:`migration_conductor.exception` (never a hypervisor library's own exceptions), so
they cross RPC intact.

Storage: a disk is described by a plain dict (see :data:`DISK_KEYS`). Whether a
destination shares a disk with the source is decided from storage pool identity only
(:meth:`ComputeDriver.shares_disk`), never from marker files written on one host and
looked for on another.

NOTE: the convention operators follow is that a pool on shared storage (NFS, a cluster
file system) is defined WITH THE SAME UUID on every host that mounts it, and that a local
pool has a UUID of its own on each host (what ``virsh pool-define`` gives by default). A
disk is then shared with a destination iff the destination has an active pool of the
same UUID holding a volume at the same path. A disk that is in no pool on the source is
never shared.
"""

import abc
import logging
import os

LOG = logging.getLogger(__name__)

# The options of ComputeDriver.live_migrate and their defaults.
MIGRATION_OPTION_DEFAULTS = {
    'bandwidth_mib': None,      # MiB/s; None: unlimited
    'max_downtime_ms': None,    # None: the hypervisor's default (QEMU: 300 ms)
    'block_migration': False,   # copy non-shared disks
    'auto_converge': False,     # throttle the guest's vCPUs when pre-copy lags
    'postcopy': False,          # permit post-copy (live_migrate never switches)
    'listen_address': None,     # where the destination listens for the data
    'migrate_disks': None,      # with block_migration: the targets to copy (None: all)
    'parallel_connections': 1,  # streams (multifd when more than 1)
    'compression': 'none',      # none, xbzrle, zlib or zstd (the last two: multifd)
    'postcopy_resume': False,   # resume a post-copy whose stream broke
}

# The keys of a job statistics dict (ComputeDriver.get_job_stats).
JOB_STATS_KEYS = ('type', 'memory_total', 'memory_processed', 'memory_remaining',
                  'disk_total', 'disk_processed', 'disk_remaining', 'dirty_rate',
                  'iteration', 'expected_downtime_ms', 'downtime_ms', 'total_time_ms',
                  'postcopy')
# The keys of a disk dict (ComputeDriver.get_instance_disks): the guest's device name
# ('vda'), the path of the file or block device, its format as the domain definition
# declares it ('qcow2', 'raw'; None when it declares none: never probed), the UUID of
# the storage pool holding the volume at that path (None when it is in no pool), and the
# bytes its data occupies in that pool (the volume's allocation: what a copy needs at
# least; None when unknown: a disk in no pool, or reported by an agent that predates
# the key).
DISK_KEYS = ('target', 'path', 'format', 'pool_uuid', 'allocation')
JOB_TYPES = ('none', 'unbounded', 'bounded', 'completed', 'failed', 'cancelled')
ACTIVE_JOB_TYPES = ('unbounded', 'bounded')


def normalize_migration_options(options, instance_uuid=None):
    """Return live_migrate options with every key present (defaults for missing ones).

    Unknown keys are logged and ignored, so that a newer conductor can send more.
    """
    options = options or {}
    unknown = sorted(set(options) - set(MIGRATION_OPTION_DEFAULTS))
    if unknown:
        LOG.warning('Instance %s: ignoring unknown migration options %s', instance_uuid,
                    ', '.join(unknown))
    merged = dict(MIGRATION_OPTION_DEFAULTS)
    merged.update((key, value) for key, value in options.items()
                  if key in MIGRATION_OPTION_DEFAULTS)
    return merged


def make_disk(target, path, disk_format=None, pool_uuid=None, allocation=None):
    """A disk dict (see :data:`DISK_KEYS`)."""
    return {'target': target, 'path': path, 'format': disk_format, 'pool_uuid': pool_uuid,
            'allocation': allocation}


def empty_job_stats(job_type):
    """A job statistics dict of that type with every value None (postcopy False)."""
    stats = dict.fromkeys(JOB_STATS_KEYS)
    stats['type'] = job_type
    stats['postcopy'] = False
    return stats


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

    # --- one instance ----------------------------------------------------------------------

    @abc.abstractmethod
    def get_instance(self, instance_uuid):
        """Return one guest of this host as Instance field values.

        :param instance_uuid: the domain UUID.
        :returns: dict with keys uuid, name, power_state ('running', 'paused', 'shutoff',
            'crashed', 'suspended' or 'unknown'), memory_mb, vcpus.
        :raises DomainNotFound: no domain with that UUID is defined on this host.
        """

    @abc.abstractmethod
    def find_instance(self, instance_uuid):
        """Return the guest's power state here, or None when it is not defined here.

        :param instance_uuid: the domain UUID.
        :returns: a power state string (see :meth:`get_instance`) or None.
        """

    @abc.abstractmethod
    def pause_instance(self, instance_uuid):
        """Pause the guest's vCPUs (no-op when already paused).

        Pausing the source during a pre-copy migration stops the dirtying, so the
        migration converges ("force complete").

        :raises DomainNotFound: the guest is not defined here.
        :raises InstanceStateConflict: the guest is not active (shut off).
        """

    @abc.abstractmethod
    def resume_instance(self, instance_uuid):
        """Resume a paused guest (no-op when it already runs).

        :raises DomainNotFound: the guest is not defined here.
        :raises InstanceStateConflict: the guest is neither paused nor running (shut off,
            or still the incoming copy of a running migration).
        """

    @abc.abstractmethod
    def destroy_instance(self, instance_uuid):
        """Stop the guest if it runs and remove its definition (managed save, NVRAM too).

        Used to clean a failed incoming copy on a destination or a leftover definition
        on a source. Idempotent.

        :returns: True if something was removed, False if nothing was there.
        """

    # --- storage ------------------------------------------------------------------------------

    @abc.abstractmethod
    def get_instance_disks(self, instance_uuid):
        """Return the guest's disks, as the source reports them for the destination.

        Only disk devices backed by a file, a block device or a pool volume count;
        CD-ROMs, floppies, disks without a source and network disks are left out.

        :param instance_uuid: the domain UUID.
        :returns: a list of disk dicts (keys :data:`DISK_KEYS`), sorted by target; an
            empty list for a diskless guest (kernel and initramfs).
        :raises DomainNotFound: the guest is not defined here.
        :raises HypervisorCallFailed: the hypervisor could not describe it.
        """

    @abc.abstractmethod
    def has_pool_volume(self, pool_uuid, path):
        """Whether this host has an ACTIVE storage pool ``pool_uuid`` with a volume at
        ``path``.

        A failing hypervisor lookup counts as "no" (logged), not as an error: a
        destination that cannot prove it shares a disk does not share it.

        :returns: bool.
        """

    def shares_disk(self, disk):
        """Whether this host (a destination) shares ``disk`` (reported by the source).

        See the module's NOTE: same pool UUID, active here, with a volume at the same
        path. A disk in no pool on the source is never shared.

        :param disk: a disk dict (keys :data:`DISK_KEYS`).
        :returns: bool.
        """
        if not disk.get('pool_uuid') or not disk.get('path'):
            return False
        return self.has_pool_volume(disk['pool_uuid'], disk['path'])

    @abc.abstractmethod
    def has_volume_at(self, path):
        """Whether the ACTIVE pool whose directory is that of ``path`` has a volume at
        ``path`` (as of now: the pool is refreshed first).

        :returns: True or False; None when no active pool is at that directory.
        """

    @abc.abstractmethod
    def pool_free_bytes(self, directory):
        """The bytes free in the ACTIVE pool whose directory is ``directory`` (as of
        now: the pool is refreshed first); None when no active pool is there or the
        hypervisor cannot tell (logged).
        """

    def disk_copy_refusal(self, disk):
        """Why this host (a destination) cannot take a copy of ``disk``, or None.

        A block migration writes the copy at the disk's own path, in a volume the
        hypervisor creates in the ACTIVE pool whose directory is that path's directory
        (libvirt does so when the migration starts). A file already at that path is
        never written over: it may be another guest's disk.

        :param disk: a disk dict (keys :data:`DISK_KEYS`) the source reported.
        :returns: None, or the reason, a phrase naming the path.
        """
        path = disk.get('path')
        if not path:
            return 'its path is unknown'
        found = self.has_volume_at(path)
        if found is None:
            return ('no active storage pool at %s to create its copy in'
                    % os.path.dirname(path))
        if found:
            return 'a volume already exists at %s' % path
        return None

    @abc.abstractmethod
    def delete_disk_copies(self, instance_uuid, paths):
        """Delete the volumes at ``paths`` here: the copies of a block migration that
        did not take over (on the destination) or the originals it copied (on the
        source, once the guest runs elsewhere). The caller checks that the guest does
        not run here. A path no volume is at is skipped; a failed deletion is logged.

        :returns: the paths deleted.
        """
    # --- migration ---------------------------------------------------------------------------

    @abc.abstractmethod
    def check_cpu_compatible(self, cpu_xml):
        """Check, on a destination, that this host can run guests of the source's CPU.

        :param cpu_xml: the ``<cpu>`` element of the SOURCE host's capabilities
            (``ComputeHost.cpu_xml``); None means nothing to check.
        :returns: None.
        :raises CPUIncompatible: this host's hypervisor judges that CPU incompatible (or
            cannot read it); the reason gives the hypervisor's words.
        """

    @abc.abstractmethod
    def live_migrate(self, instance_uuid, dest_uri, migrate_uri, options):
        """Live-migrate the guest to ``dest_uri`` and return when the job has ended.

        Runs on the source. BLOCKS for the whole migration: the caller runs it in a
        thread of its own, watches it with :meth:`get_job_stats` and ends it early with
        :meth:`abort_job` (or makes it converge with :meth:`pause_instance`). On
        success the guest runs (or stays paused, if it was paused when the job
        started) on the destination and is no longer defined here.

        :param instance_uuid: the domain UUID.
        :param dest_uri: the destination hypervisor's URI (``ComputeHost.libvirt_uri``).
        :param migrate_uri: where the migration data goes, e.g. ``tcp://127.0.0.1``;
            None lets the hypervisor choose.
        :param options: dict with keys bandwidth_mib (int MiB/s or None: unlimited),
            max_downtime_ms (int or None: the hypervisor's default, 300 ms for QEMU),
            block_migration (bool: copy non-shared disks), auto_converge (bool),
            postcopy (bool: permit post-copy; this call never switches to it) and
            listen_address (str or None: where the destination listens for the data).
            Missing keys take those defaults.
        :raises DomainNotFound: the guest is not defined here.
        :raises MigrationJobCancelled: the job was aborted; the guest stays here.
        :raises MigrationJobFailed: the job did not start or failed.
        """

    @abc.abstractmethod
    def get_job_stats(self, instance_uuid):
        """Return the statistics of the guest's current job on this host.

        :returns: None when the guest is not defined here, else a dict with keys type
            ('none', 'unbounded', 'bounded', 'completed', 'failed', 'cancelled'),
            memory_total, memory_processed, memory_remaining, disk_total,
            disk_processed, disk_remaining (bytes), dirty_rate (bytes/s), iteration,
            expected_downtime_ms, downtime_ms, total_time_ms and postcopy (bool: the
            job runs in post-copy). Values the hypervisor does not give are None; an
            incoming migration on a destination shows type 'unbounded' and no values.
        """

    @abc.abstractmethod
    def measure_dirty_rate(self, instance_uuid, seconds):
        """Measure how fast the guest dirties its memory; blocks about ``seconds``.

        :returns: bytes per second, or None when the hypervisor cannot measure it.
        :raises DomainNotFound: the guest is not defined here.
        :raises HypervisorUnavailable, HypervisorCallFailed: the measure failed.
        """

    @abc.abstractmethod
    def resume_postcopy(self, instance_uuid, dest_uri, migrate_uri, options):
        """Resume a post-copy migration whose stream broke; return once it ended.

        Blocks as :meth:`live_migrate` does, with the same arguments.

        :raises PostcopyUnrecoverable: the destination no longer has the guest (or
            nothing is left to resume): the guest is lost.
        :raises MigrationJobFailed: this attempt failed (another may succeed).
        """

    @abc.abstractmethod
    def in_postcopy(self, instance_uuid):
        """Whether the guest's migration from here switched to post-copy: its job runs
        in post-copy, or failed after the switch (the copy here is then incomplete and
        must never run again). Read now from the hypervisor; False when it is gone.

        :raises HypervisorUnavailable, HypervisorCallFailed: it could not be read.
        """

    def ping_guest_agent(self, instance_uuid, timeout):
        """Ping the guest's QEMU guest agent, waiting at most ``timeout`` seconds.

        :returns: True (it answered), False (the guest has a connected agent that did
            not answer, or the guest is gone), None (no agent to ask).
        """
        return None

    def resident_memory(self, instance_uuid):
        """Bytes of the guest's memory its hypervisor process holds (what a first pass
        sends, untouched pages being zero pages), or None when unknown."""
        return None

    @abc.abstractmethod
    def set_max_downtime(self, instance_uuid, downtime_ms):
        """Change the downtime allowed to the guest's running migration job.

        :raises HypervisorUnavailable, HypervisorCallFailed: the hypervisor refused.
        """

    @abc.abstractmethod
    def start_postcopy(self, instance_uuid):
        """Ask the guest's running job (started with ``postcopy``) to switch to
        post-copy. Returns once the hypervisor took the request: that the job really
        switched shows only in :meth:`get_job_stats` (``postcopy``).

        :raises HypervisorUnavailable, HypervisorCallFailed: the request failed or
            got no answer in time.
        """

    @abc.abstractmethod
    def get_completed_job_stats(self, instance_uuid):
        """Return the statistics of the guest's last completed migration on this host.

        Called on the DESTINATION after the migration succeeded: it has the real
        downtime and the bytes transferred (the source no longer has the guest).
        Reading does not consume them.

        :returns: a dict shaped as :meth:`get_job_stats` (type 'completed', downtime_ms
            set), or None when the guest is not here or has no completed job.
        """

    @abc.abstractmethod
    def abort_job(self, instance_uuid):
        """Abort the guest's running job on this host (the source of a migration).

        The blocked :meth:`live_migrate` then raises MigrationJobCancelled.

        :returns: True if a job was aborted, False if no job was running (or the
            guest is not here).
        """

    def cleanup(self):
        """Release the hypervisor connection (agent stop)."""
