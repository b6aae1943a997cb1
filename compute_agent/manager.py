"""The agent's RPC endpoint: answers the conductor's calls about one host.

Every call about a migration is keyed by the migration's id and idempotent: asked twice
to claim, prepare, start or clean up, the agent answers with what it already did. The
agent never calls another agent; it only answers the conductor (and reports to it).

Answers are the versioned objects of RPC 1.4 (SourceFacts, DestinationCheck,
ResourceClaim, DestinationInfo, MigrationJob, DestinationFinish). A conductor pinned to
an older version (``[upgrade_levels] compute_agent``) sends the plain dicts of that
release; each method takes both, and only here are they turned into objects.

Runs in oslo.messaging's threading executor; the virt driver, the resource tracker and
the migration job table are thread-safe. The agent has no database access.
"""

import logging
import time

import oslo_messaging as messaging

from compute_agent import migration_jobs
from compute_agent import resource_tracker
from compute_agent import rpcapi
from compute_agent import storage
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import fields

LOG = logging.getLogger(__name__)

# Bumped when an agent starts reporting something a conductor must know about; the
# conductor's scheduler refuses destinations older than the source, and calls an agent
# with the newest RPC version its service version serves (rpcapi.SERVICE_VERSION_CAPS).
# 1: live migration (RPC 1.1); 2: the source reports disks, the destination judges
# storage (RPC 1.2); 3: block migration of the disks not shared (RPC 1.3); 4: typed
# contract, the job monitor runs in the source agent and reports by itself (RPC 1.4);
# 5: migration profiles: the dirty rate measured, completion plans applied, post-copy
# (RPC 1.5).
SERVICE_VERSION = 5

# Seconds the QEMU guest agent of an arrived guest has to answer its ping.
GUEST_AGENT_PING_TIMEOUT = 5
# Seconds between two reads of an arrived guest's state during its settle period.
SETTLE_POLL = 0.25

# Typed errors are answers to the conductor, not faults of the agent.
expected = messaging.expected_exceptions(exception.MigrationConductorError)


class AgentManager:
    """Endpoint of the agent topic for one host; version must match :mod:`rpcapi`."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, host, driver, conf, reporter=None):
        """:param reporter: receives the job monitors' reports (see
            :class:`~compute_agent.migration_jobs.MigrationJobs`)."""
        self.host = host
        self.driver = driver
        self._migration_address = conf.agent.migration_address
        self.tracker = resource_tracker.ResourceTracker(
            host, driver, conf.agent.reserved_host_memory_mb,
            conf.agent.cpu_allocation_ratio, conf.agent.claims_restore_timeout)
        self.jobs = migration_jobs.MigrationJobs(
            host, driver, conf.agent.migration_start_timeout, reporter=reporter)

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

    # --- pre-checks and claims (1.1) ---------------------------------------------------

    @expected
    def check_source(self, context, migration_uuid, instance_uuid,
                     dirty_rate_sample_s=0):
        """Facts of the source for the destination's checks.

        :param dirty_rate_sample_s: (1.5) measure the guest's dirty rate over that
            many seconds (0: not measured).
        :returns: SourceFacts (the guest, this host's CPU and hypervisor, the
            guest's disks with their pools, the dirty rate).
        :raises DomainNotFound, InstanceNotRunning: the guest cannot leave from here.
        :raises HypervisorCallFailed: its disks could not be read.
        """
        instance = self.driver.get_instance(instance_uuid)
        if instance['power_state'] != fields.PowerState.RUNNING:
            raise exception.InstanceNotRunning(instance_uuid=instance_uuid,
                                               power_state=instance['power_state'],
                                               host=self.host)
        inventory = self.driver.get_host_inventory()
        disks = self.driver.get_instance_disks(instance_uuid)
        dirty_rate = self._dirty_rate(migration_uuid, instance_uuid, dirty_rate_sample_s)
        LOG.info('Migration %(m)s instance %(i)s: source %(host)s checked (%(mem)s MiB, '
                 '%(cpu)s vCPUs, %(disks)d disk(s), dirty rate %(rate)s)',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                  'mem': instance['memory_mb'], 'cpu': instance['vcpus'],
                  'disks': len(disks),
                  'rate': 'not measured' if dirty_rate is None else '%.1f MiB/s over '
                          '%d s' % (dirty_rate / 2 ** 20, dirty_rate_sample_s)})
        return objects.SourceFacts(
            host=self.host, instance=objects.Instance(host=self.host, **instance),
            cpu_xml=inventory['cpu_xml'], hypervisor_type=inventory['hypervisor_type'],
            hypervisor_version=inventory['hypervisor_version'],
            disks=objects.DiskList.from_driver(disks), dirty_rate=dirty_rate,
            memory_resident=self.driver.resident_memory(instance_uuid)
            if dirty_rate_sample_s else None)

    def _dirty_rate(self, migration_uuid, instance_uuid, seconds):
        """The guest's dirty rate (bytes/s) measured now, or None (not asked, or the
        measure failed: the forecast then says it was not measured)."""
        if not seconds:
            return None
        try:
            return self.driver.measure_dirty_rate(instance_uuid, seconds)
        except exception.MigrationConductorError as exc:
            LOG.warning('Migration %s instance %s: could not measure the dirty rate on '
                        'host %s (%s); the forecast goes without it', migration_uuid,
                        instance_uuid, self.host, exc)
            return None

    @expected
    def check_destination(self, context, migration_uuid, instance_uuid, source,
                          block_migration=fields.BlockMigration.AUTO):
        """Can this host take the instance described by ``source`` (from check_source)?

        :param source: SourceFacts (1.4), or its dict (1.1-1.3).
        :param block_migration: 'auto', 'true' or 'false' (1.2; a 1.1 conductor sends
            none: 'auto').
        :returns: DestinationCheck: whether the migration copies disks, and which (see
            :mod:`compute_agent.storage`).
        :raises CPUIncompatible, InsufficientResources, InstanceStateConflict.
        :raises StorageIncompatible: the disks cannot come here as requested.
        :raises DestinationRefused: this agent restarted and does not know yet the claims
            it holds (see :meth:`ResourceTracker.restore`).
        """
        if not isinstance(source, objects.SourceFacts):
            source = objects.SourceFacts.from_legacy('unknown', source)
        present = self.driver.find_instance(instance_uuid)
        if present == fields.PowerState.RUNNING:
            raise exception.InstanceStateConflict(
                instance_uuid=instance_uuid,
                reason='it already runs on the destination %s' % self.host)
        self.driver.check_cpu_compatible(source.cpu_xml)
        self.tracker.check(migration_uuid, instance_uuid, source.instance.memory_mb,
                           source.instance.vcpus)
        copy = self._check_storage(migration_uuid, instance_uuid, source,
                                   block_migration)
        return objects.DestinationCheck(
            host=self.host, block_migration=bool(copy),
            copy_disks=objects.DiskList(objects=[
                objects.Disk(target=d['target'], path=d['path'], format=d['format'])
                for d in copy]))

    def _check_storage(self, migration_uuid, instance_uuid, source, block_migration):
        """The storage decision (see :mod:`compute_agent.storage`), logged once.

        NOTE: a source agent of service version 1 reports no ``disks``: then nothing
        can be judged and nothing is copied, as before storage was checked.
        """
        ids = {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
               'requested': block_migration}
        if source.disks is None:
            LOG.warning('Migration %(m)s instance %(i)s: destination %(host)s checked; '
                        'storage not judged (the source reports no disks), no block '
                        'migration (requested %(requested)s)', ids)
            return []
        try:
            copy, summary = storage.decide_block_migration(
                self.host, instance_uuid, block_migration, source.disks.to_driver(),
                self.driver.shares_disk, self.driver.disk_copy_refusal,
                self.driver.pool_free_bytes)
        except exception.StorageIncompatible as exc:
            LOG.info('Migration %(m)s instance %(i)s: destination %(host)s refuses the '
                     'storage (requested %(requested)s): %(reason)s',
                     dict(ids, reason=exc.kwargs['reason']))
            raise
        LOG.info('Migration %(m)s instance %(i)s: destination %(host)s checked; storage: '
                 '%(summary)s, block migration %(block)s (requested %(requested)s)',
                 dict(ids, summary=summary, block=bool(copy)))
        return copy

    @expected
    def claim_resources(self, context, migration_uuid, instance_uuid, memory_mb, vcpus):
        """:returns: the ResourceClaim held (the one already held when asked again)."""
        return objects.ResourceClaim.from_legacy(
            self.tracker.claim(migration_uuid, instance_uuid, memory_mb, vcpus))

    @expected
    def release_resources(self, context, migration_uuid):
        return self.tracker.release(migration_uuid)

    @expected
    def prepare_destination(self, context, migration_uuid, instance_uuid):
        """Where the source sends the data (diskless guests need nothing else yet).

        :returns: DestinationInfo.
        """
        return objects.DestinationInfo(host=self.host,
                                       migrate_uri='tcp://%s' % self._migration_address,
                                       listen_address=self._migration_address)

    # --- the migration job (1.1) ---------------------------------------------------------

    @expected
    def start_migration(self, context, migration_uuid, instance_uuid, dest_uri=None,
                        migrate_uri=None, options=None, spec=None):
        """Start the job (idempotent, across restarts too: see MigrationJobs.start).

        :param spec: MigrationSpec (1.4); 1.1-1.3 send dest_uri, migrate_uri and the
            options dict instead.
        :returns: MigrationJob.
        """
        if spec is None:
            spec = objects.MigrationSpec(
                migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                dest_host=dest_uri, dest_uri=dest_uri, migrate_uri=migrate_uri,
                options=objects.MigrationOptions.from_driver(options),
                report_interval=migration_jobs.DEFAULT_REPORT_INTERVAL)
        return self.jobs.start(spec)

    @expected
    def get_migration_job(self, context, migration_uuid, instance_uuid,
                          report_interval=None):
        """The job's state read now (a job running unwatched is watched again).

        :returns: MigrationJob.
        """
        return self.jobs.status(migration_uuid, instance_uuid,
                                report_interval=report_interval)

    @expected
    def abort_migration(self, context, migration_uuid, instance_uuid):
        return self.jobs.abort(migration_uuid, instance_uuid)

    @expected
    def force_complete_migration(self, context, migration_uuid, instance_uuid,
                                 mode=fields.CompletionAction.PAUSE):
        """Make the job complete: ``pause`` the guest, or (1.5) switch to
        ``postcopy`` (confirmed from the job's statistics)."""
        return self.jobs.force_complete(migration_uuid, instance_uuid, mode=mode)

    # --- finish and roll back (1.1) --------------------------------------------------

    @expected
    def get_instance_state(self, context, instance_uuid):
        """Power state of the guest on this host, or None if it is not defined here."""
        return self.driver.find_instance(instance_uuid)

    @expected
    def finish_on_destination(self, context, migration_uuid, instance_uuid,
                              settle_s=0):
        """Confirm the guest runs here (resuming it if it was paused to finish).

        :param settle_s: (1.5) then watch it that many seconds: a guest that crashes,
            panics or stops in that window did not arrive alive.
        :returns: DestinationFinish, with the completed job's statistics.
        :raises InstanceStateConflict: the guest is not here or does not run.
        :raises GuestDiedAfterSwitchOver: it stopped running within the settle period
            (GuestDeadOnArrival: it was shut off or crashed already).
        """
        state = self.driver.find_instance(instance_uuid)
        if state == fields.PowerState.PAUSED:
            self.driver.resume_instance(instance_uuid)
            state = self.driver.find_instance(instance_uuid)
        if state in (fields.PowerState.SHUTOFF, fields.PowerState.CRASHED):
            # NOTE: the incoming domain ran (the job completed) and stopped since: a
            # guest that panicked at once (pvpanic: shut off or crashed).
            LOG.error('Migration %s instance %s: the guest is %s on %s right after the '
                      'switch-over: it did not arrive alive', migration_uuid,
                      instance_uuid, state, self.host)
            raise exception.GuestDeadOnArrival(instance_uuid=instance_uuid,
                                               host=self.host, state=state)
        if state != fields.PowerState.RUNNING:
            raise exception.InstanceStateConflict(
                instance_uuid=instance_uuid,
                reason='on destination %s it is %s' % (self.host, state or 'not defined'))
        self._settle(migration_uuid, instance_uuid, settle_s)
        stats = self.driver.get_completed_job_stats(instance_uuid)
        self.tracker.release(migration_uuid)   # the running domain now counts as used
        LOG.info('Migration %(m)s instance %(i)s: runs on destination %(host)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host})
        return objects.DestinationFinish(
            host=self.host, power_state=state,
            progress=None if stats is None else objects.JobProgress.from_stats(stats))

    def _settle(self, migration_uuid, instance_uuid, seconds):
        """Watch the guest that arrived for ``seconds``; raise if it stops running.

        NOTE: the domain's state is read every SETTLE_POLL seconds: a guest whose
        kernel panics shows as crashed (pvpanic with on_crash=preserve), shut off
        (on_crash=destroy, or a reboot after panic=-1) or paused (QEMU's panic
        action), all of which libvirt's lifecycle events report too; a state read is
        what every one of them leaves behind, so a missed event cannot hide it.
        """
        if not seconds:
            return
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            state = self.driver.find_instance(instance_uuid)
            if state != fields.PowerState.RUNNING:
                LOG.error('Migration %s instance %s: the guest stopped running on %s '
                          '%.1f s after the switch-over (%s): it did not arrive alive',
                          migration_uuid, instance_uuid, self.host, elapsed,
                          state or 'gone')
                raise exception.GuestDiedAfterSwitchOver(
                    instance_uuid=instance_uuid, host=self.host, after=elapsed,
                    state=state or 'not defined any more')
            if elapsed >= seconds:
                self._ping_guest_agent(migration_uuid, instance_uuid, elapsed)
                LOG.info('Migration %s instance %s: the guest kept running on %s for '
                         'the settle period (%.1f s)', migration_uuid, instance_uuid,
                         self.host, seconds)
                return
            time.sleep(min(SETTLE_POLL, seconds - elapsed))

    def _ping_guest_agent(self, migration_uuid, instance_uuid, elapsed):
        """At the end of the settle period, a guest with a QEMU guest agent must
        answer its ping (a guest whose kernel hangs still shows as running)."""
        answered = self.driver.ping_guest_agent(instance_uuid, GUEST_AGENT_PING_TIMEOUT)
        if answered is None:
            LOG.debug('Migration %s instance %s: no guest agent to ping on %s',
                      migration_uuid, instance_uuid, self.host)
            return
        if not answered:
            LOG.error('Migration %s instance %s: the guest\'s agent did not answer a ping '
                      'on %s %.1f s after the switch-over: it did not arrive alive',
                      migration_uuid, instance_uuid, self.host, elapsed)
            raise exception.GuestDiedAfterSwitchOver(
                instance_uuid=instance_uuid, host=self.host, after=elapsed,
                state='its QEMU guest agent does not answer')
        LOG.info('Migration %s instance %s: the guest\'s agent answered a ping on %s',
                 migration_uuid, instance_uuid, self.host)

    @expected
    def cleanup_source(self, context, migration_uuid, instance_uuid, disks=None):
        """Remove what the migration left on the source; the guest must not run here.

        :param disks: the disks the migration copied (1.4: a DiskList; 1.3: their
            paths): their originals here are deleted.
        """
        removed = self._remove_stopped_copy(
            instance_uuid,
            'it still runs on source %s; refusing to remove it' % self.host)
        paths = _paths(disks)
        deleted = self.driver.delete_disk_copies(instance_uuid, paths) if paths else []
        self.jobs.forget(migration_uuid)
        LOG.info('Migration %(m)s instance %(i)s: source %(host)s cleaned%(what)s%(disks)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                  'what': ' (leftover definition removed)' if removed else '',
                  'disks': ' (copied disks deleted: %s)' % ', '.join(deleted)
                  if deleted else ''})
        return removed

    @expected
    def rollback_destination(self, context, migration_uuid, instance_uuid, disks=None):
        """Remove an incoming copy that did not take over, and release the claim.

        A running guest here is never removed: then the migration did switch over.

        :param disks: the disks the migration copied here (as for cleanup_source):
            deleted (the storage check made sure no file was at those paths before).
        """
        removed = self._remove_stopped_copy(
            instance_uuid, 'it runs on destination %s; refusing to roll back' % self.host)
        paths = _paths(disks)
        deleted = self.driver.delete_disk_copies(instance_uuid, paths) if paths else []
        self.tracker.release(migration_uuid)
        LOG.info('Migration %(m)s instance %(i)s: destination %(host)s rolled '
                 'back%(what)s%(disks)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                  'what': ' (incoming copy removed)' if removed else '',
                  'disks': ' (disk copies deleted: %s)' % ', '.join(deleted)
                  if deleted else ''})
        return removed

    def _remove_stopped_copy(self, instance_uuid, refusal):
        """Destroy and undefine the guest here unless it runs; return what was removed.

        :raises InstanceStateConflict: with ``refusal`` as reason, if the guest runs here.
        """
        state = self.driver.find_instance(instance_uuid)
        if state == fields.PowerState.RUNNING:
            raise exception.InstanceStateConflict(instance_uuid=instance_uuid,
                                                  reason=refusal)
        return self.driver.destroy_instance(instance_uuid) if state else False


def _paths(disks):
    """The paths of ``disks``: a DiskList (1.4) or a list of paths (1.3), or None."""
    if not disks:
        return []
    if isinstance(disks, objects.DiskList):
        return disks.paths
    return list(disks)
