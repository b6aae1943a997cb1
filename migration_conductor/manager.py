"""The conductor's RPC endpoint: the one place where requests enter the conductor.

Runs in oslo.messaging's threading executor: several requests are served at once, each
in its own thread with its own database transaction. Every method but ``ping`` first
checks policy, then delegates to a domain module (:mod:`migration_conductor.inventory`,
:mod:`migration_conductor.job_reports`, ...).
"""

import logging

import oslo_messaging as messaging

from db import api as db_api
from migration_conductor import exception
from migration_conductor import inventory
from migration_conductor import migration_api
from migration_conductor import objects
from migration_conductor import policy
from migration_conductor import rpcapi

LOG = logging.getLogger(__name__)

# Typed errors are answers, not faults: oslo.messaging returns them to the caller
# without logging a traceback.
expected = messaging.expected_exceptions(exception.MigrationConductorError)


# Agents of this service version and newer know MigrationJob 1.1; what older ones
# (service version 4: RPC 1.4) know of the objects in get_host_migrations' answer.
_JOB_POSTCOPY_SERVICE_VERSION = 5
_MANIFEST_SERVICE_4 = {'HostMigrations': '1.0', 'MigrationJobList': '1.0',
                       'MigrationJob': '1.0', 'JobProgress': '1.0',
                       'ResourceClaimList': '1.0', 'ResourceClaim': '1.0'}


class ConductorManager:
    """Endpoint of the conductor topic; version must match :mod:`rpcapi`."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, conf, migrations, job_reports, profiles):
        """:param migrations: the MigrationAPI that accepts and drives migrations.
        :param job_reports: the JobReports that record what source agents report.
        :param profiles: the conductor's migration Profiles.
        """
        self._conf = conf
        self._policy = policy.Enforcer(conf)
        self._migrations = migrations
        self._job_reports = job_reports
        self._profiles = profiles

    def ping(self, context):
        """(1.4) Whether a conductor serves the topic (migctl asks before it calls).

        NOTE: no policy check: the answer (this conductor's host name and API version)
        tells a caller nothing a message on the topic could not.
        """
        return {'host': self._conf.host, 'api_version': rpcapi.RPC_API_VERSION}

    @property
    def _down_time(self):
        return self._conf.conductor.service_down_time

    # --- agents ------------------------------------------------------------------------

    @expected
    def register_host(self, context, report):
        self._policy.authorize(context, 'migration_conductor:host:report')
        host = inventory.record_report(context, report, self._down_time,
                                       self._conf.conductor.missing_instance_expiry)
        LOG.info('Agent of host %(host)s registered: %(type)s %(version)s, %(mem)s MiB, '
                 '%(vcpus)s vCPUs, %(n)d guest(s), libvirt at %(uri)s',
                 {'host': host.host, 'type': host.hypervisor_type,
                  'version': host.hypervisor_version, 'mem': host.memory_mb,
                  'vcpus': host.vcpus, 'n': len(report.instances),
                  'uri': host.libvirt_uri})
        return host

    @expected
    def report_host_state(self, context, report):
        self._policy.authorize(context, 'migration_conductor:host:report')
        inventory.record_report(context, report, self._down_time,
                                self._conf.conductor.missing_instance_expiry)
        LOG.debug('Heartbeat from host %(host)s with %(n)d guest(s)',
                  {'host': report.host.host, 'n': len(report.instances)})

    @expected
    def list_host_claims(self, context, host):
        """(1.3) The claims an agent must hold, e.g. after it restarted (dicts)."""
        self._policy.authorize(context, 'migration_conductor:host:report')
        return inventory.claims_for_host(context, host)

    @expected
    def get_host_migrations(self, context, host):
        """(1.4) The claims a (re)started agent holds and the jobs it watches again."""
        self._policy.authorize(context, 'migration_conductor:host:report')
        answer = inventory.host_migrations(context, host,
                                           self._conf.conductor.monitor_interval)
        try:
            version = db_api.compute_host_get(context, host).get('service_version')
        except exception.HostNotFound:
            version = None
        if version is not None and version < _JOB_POSTCOPY_SERVICE_VERSION:
            # NOTE: an agent of service version 4 knows MigrationJob 1.0: a primitive
            # of that version, which its serializer turns back into the objects.
            return answer.obj_to_primitive(target_version='1.0',
                                           version_manifest=_MANIFEST_SERVICE_4)
        return answer

    @expected
    def migration_progress(self, context, job):
        """(1.4) A source agent's progress reading of a running job."""
        self._policy.authorize(context, 'migration_conductor:host:report')
        self._job_reports.progress(job)

    # --- operators and nova-api ------------------------------------------------------------

    @expected
    def list_hosts(self, context):
        self._policy.authorize(context, 'migration_conductor:host:list')
        rows = db_api.compute_host_list(context)
        return objects.ComputeHostList(objects=[
            inventory.host_from_row(row, self._down_time) for row in rows])

    @expected
    def get_host(self, context, host):
        self._policy.authorize(context, 'migration_conductor:host:get')
        return inventory.host_from_row(db_api.compute_host_get(context, host),
                                       self._down_time)

    @expected
    def list_instances(self, context, host=None):
        self._policy.authorize(context, 'migration_conductor:instance:list')
        if host is not None:
            db_api.compute_host_get(context, host)  # HostNotFound for a typo
        rows = db_api.instance_list(context, host=host)
        return objects.InstanceList(objects=[
            objects.Instance.from_db_row(row) for row in rows])


    @expected
    def delete_instance(self, context, instance):
        """(1.4) Forget an instance its host no longer reports (``missing``).

        :param instance: its UUID, or its name if unique.
        """
        self._policy.authorize(context, 'migration_conductor:instance:delete')
        row = migration_api.resolve_instance(context, instance)
        inventory.forget_instance(context, row)
        return objects.Instance.from_db_row(row)

    # --- migrations (1.1) ------------------------------------------------------------

    @expected
    def live_migrate(self, context, instance_uuid, host=None, force=False,
                     block_migration='auto', profile=None):
        self._policy.authorize(context, 'migration_conductor:migration:create')
        if host is not None:
            self._policy.authorize(context, 'migration_conductor:migration:create:host')
        return self._migrations.live_migrate(context, instance_uuid, host=host,
                                             force=force, block_migration=block_migration,
                                             profile=profile)

    # --- migration profiles (1.5) --------------------------------------------------------

    @expected
    def list_profiles(self, context):
        self._policy.authorize(context, 'migration_conductor:profile:list')
        return objects.MigrationProfileList(objects=self._profiles.list())

    @expected
    def get_profile(self, context, name):
        self._policy.authorize(context, 'migration_conductor:profile:get')
        return self._profiles.get(name)

    @expected
    def get_migration(self, context, migration_uuid):
        self._policy.authorize(context, 'migration_conductor:migration:get')
        return self._migrations.get(context, migration_uuid)

    @expected
    def list_migrations(self, context, status=None, host=None, instance_uuid=None,
                        limit=None):
        self._policy.authorize(context, 'migration_conductor:migration:list')
        return self._migrations.list(context, status=status, host=host,
                                     instance_uuid=instance_uuid, limit=limit)

    @expected
    def abort_migration(self, context, migration_uuid):
        self._policy.authorize(context, 'migration_conductor:migration:abort')
        return self._migrations.abort(context, migration_uuid)

    @expected
    def force_complete_migration(self, context, migration_uuid, mode=None):
        self._policy.authorize(context, 'migration_conductor:migration:force_complete')
        return self._migrations.force_complete(context, migration_uuid, mode=mode)

    @expected
    def migration_event(self, context, event):
        """(1.5) A decision of a source agent's job monitor."""
        self._policy.authorize(context, 'migration_conductor:host:report')
        self._job_reports.event(event)

    @expected
    def migration_job_ended(self, context, migration_uuid, instance_uuid, state,
                            job=None):
        """(1.2) A source agent's notice that a job ended; 1.4 sends the MigrationJob."""
        self._policy.authorize(context, 'migration_conductor:host:report')
        if job is None:
            self._job_reports.ended_legacy(migration_uuid, instance_uuid, state)
        else:
            self._job_reports.ended(job)
