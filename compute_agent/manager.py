"""The agent's RPC endpoint: answers the conductor's calls about one host.

Every call about a migration is keyed by the migration's id and idempotent: asked twice
to claim, prepare, start or clean up, the agent answers with what it already did. The
agent never calls another agent; it only answers the conductor (and reports to it).

Runs in oslo.messaging's threading executor; the virt driver, the resource tracker and
the migration job table are thread-safe. The agent has no database access.
"""

import logging

import oslo_messaging as messaging

from compute_agent import migration_jobs
from compute_agent import resource_tracker
from compute_agent import rpcapi
from migration_conductor import exception
from migration_conductor import objects

LOG = logging.getLogger(__name__)

# Bumped when an agent starts reporting something a conductor must know about; the
# conductor's scheduler refuses destinations older than the source.
SERVICE_VERSION = 1

# Typed errors are answers to the conductor, not faults of the agent.
expected = messaging.expected_exceptions(exception.MigrationConductorError)


class AgentManager:
    """Endpoint of the agent topic for one host; version must match :mod:`rpcapi`."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, host, driver, conf, on_job_end=None):
        """:param on_job_end: see :class:`~compute_agent.migration_jobs.MigrationJobs`."""
        self.host = host
        self.driver = driver
        self._migration_address = conf.agent.migration_address
        self.tracker = resource_tracker.ResourceTracker(
            host, driver, conf.agent.reserved_host_memory_mb,
            conf.agent.cpu_allocation_ratio, conf.agent.claims_restore_timeout)
        self.jobs = migration_jobs.MigrationJobs(
            host, driver, conf.agent.migration_start_timeout, on_end=on_job_end)

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
    def check_source(self, context, migration_uuid, instance_uuid):
        """Facts of the source for the destination's checks.

        :raises DomainNotFound, InstanceNotRunning: the guest cannot leave from here.
        """
        instance = self.driver.get_instance(instance_uuid)
        if instance['power_state'] != 'running':
            raise exception.InstanceNotRunning(instance_uuid=instance_uuid,
                                               power_state=instance['power_state'],
                                               host=self.host)
        inventory = self.driver.get_host_inventory()
        LOG.info('Migration %(m)s instance %(i)s: source %(host)s checked (%(mem)s MiB, '
                 '%(cpu)s vCPUs)', {'m': migration_uuid, 'i': instance_uuid,
                                    'host': self.host, 'mem': instance['memory_mb'],
                                    'cpu': instance['vcpus']})
        return {'instance': instance, 'cpu_xml': inventory['cpu_xml'],
                'hypervisor_type': inventory['hypervisor_type'],
                'hypervisor_version': inventory['hypervisor_version']}

    @expected
    def check_destination(self, context, migration_uuid, instance_uuid, source):
        """Can this host take the instance described by ``source`` (from check_source)?

        :raises CPUIncompatible, InsufficientResources, InstanceStateConflict.
        :raises DestinationRefused: this agent restarted and does not know yet the claims
            it holds (see :meth:`ResourceTracker.restore`).
        """
        present = self.driver.find_instance(instance_uuid)
        if present == 'running':
            raise exception.InstanceStateConflict(
                instance_uuid=instance_uuid,
                reason='it already runs on the destination %s' % self.host)
        self.driver.check_cpu_compatible(source.get('cpu_xml'))
        instance = source['instance']
        self.tracker.check(migration_uuid, instance_uuid, instance['memory_mb'],
                           instance['vcpus'])
        LOG.info('Migration %(m)s instance %(i)s: destination %(host)s checked',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host})
        return {'host': self.host}

    @expected
    def claim_resources(self, context, migration_uuid, instance_uuid, memory_mb, vcpus):
        return self.tracker.claim(migration_uuid, instance_uuid, memory_mb, vcpus)

    @expected
    def release_resources(self, context, migration_uuid):
        return self.tracker.release(migration_uuid)

    @expected
    def prepare_destination(self, context, migration_uuid, instance_uuid):
        """Where the source sends the data (diskless guests need nothing else yet)."""
        return {'migrate_uri': 'tcp://%s' % self._migration_address,
                'listen_address': self._migration_address}

    # --- the migration job (1.1) ---------------------------------------------------------

    @expected
    def start_migration(self, context, migration_uuid, instance_uuid, dest_uri,
                        migrate_uri, options):
        return self.jobs.start(migration_uuid, instance_uuid, dest_uri, migrate_uri,
                               options)

    @expected
    def get_migration_job(self, context, migration_uuid, instance_uuid):
        return self.jobs.status(migration_uuid, instance_uuid)

    @expected
    def abort_migration(self, context, migration_uuid, instance_uuid):
        return self.jobs.abort(migration_uuid, instance_uuid)

    @expected
    def force_complete_migration(self, context, migration_uuid, instance_uuid):
        self.jobs.force_complete(migration_uuid, instance_uuid)

    # --- finish and roll back (1.1) --------------------------------------------------

    @expected
    def get_instance_state(self, context, instance_uuid):
        """Power state of the guest on this host, or None if it is not defined here."""
        return self.driver.find_instance(instance_uuid)

    @expected
    def finish_on_destination(self, context, migration_uuid, instance_uuid):
        """Confirm the guest runs here (resuming it if it was paused to finish).

        :returns: ``{'power_state', 'stats'}`` with the completed job's statistics.
        :raises InstanceStateConflict: the guest is not here or does not run.
        """
        state = self.driver.find_instance(instance_uuid)
        if state == 'paused':
            self.driver.resume_instance(instance_uuid)
            state = self.driver.find_instance(instance_uuid)
        if state != 'running':
            raise exception.InstanceStateConflict(
                instance_uuid=instance_uuid,
                reason='on destination %s it is %s' % (self.host, state or 'not defined'))
        stats = self.driver.get_completed_job_stats(instance_uuid)
        self.tracker.release(migration_uuid)   # the running domain now counts as used
        LOG.info('Migration %(m)s instance %(i)s: runs on destination %(host)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host})
        return {'power_state': state, 'stats': stats}

    @expected
    def cleanup_source(self, context, migration_uuid, instance_uuid):
        """Remove what the migration left on the source; the guest must not run here."""
        removed = self._remove_stopped_copy(
            instance_uuid,
            'it still runs on source %s; refusing to remove it' % self.host)
        self.jobs.forget(migration_uuid)
        LOG.info('Migration %(m)s instance %(i)s: source %(host)s cleaned%(what)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                  'what': ' (leftover definition removed)' if removed else ''})
        return removed

    @expected
    def rollback_destination(self, context, migration_uuid, instance_uuid):
        """Remove an incoming copy that did not take over, and release the claim.

        A running guest here is never removed: then the migration did switch over.
        """
        removed = self._remove_stopped_copy(
            instance_uuid, 'it runs on destination %s; refusing to roll back' % self.host)
        self.tracker.release(migration_uuid)
        LOG.info('Migration %(m)s instance %(i)s: destination %(host)s rolled back%(what)s',
                 {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                  'what': ' (incoming copy removed)' if removed else ''})
        return removed

    def _remove_stopped_copy(self, instance_uuid, refusal):
        """Destroy and undefine the guest here unless it runs; return what was removed.

        :raises InstanceStateConflict: with ``refusal`` as reason, if the guest runs here.
        """
        state = self.driver.find_instance(instance_uuid)
        if state == 'running':
            raise exception.InstanceStateConflict(instance_uuid=instance_uuid,
                                                  reason=refusal)
        return self.driver.destroy_instance(instance_uuid) if state else False
