"""The conductor's migration requests: accept, show, list, abort, force-complete.

Accepting a live migration validates the request, locks the instance against a second
move (a conditional UPDATE of its ``task_state``), creates the Migration in ``accepted``
and persists its flow, all before answering: oslo.messaging acknowledges a message
before running it, so only a committed migration may be acknowledged. The flow then runs
in the conductor's flow runner. Bad input raises a typed error and changes nothing.

Called from RPC threads: every step is a conditional database write, so concurrent
requests for the same instance cannot both win.
"""

import logging

from oslo_utils import uuidutils

from db import api as db_api
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.flows import runner as flow_runner
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

MIGRATING = 'migrating'


def _check_uuid(value, what):
    if not uuidutils.is_uuid_like(value):
        raise exception.Invalid(reason='%s %r is not a UUID' % (what, value))


class MigrationAPI:
    """Migration requests of one conductor; ``runner`` runs their flows."""

    def __init__(self, conf, runner, agent_api, context, job_events):
        self._conf = conf
        self._runner = runner
        self._agents = agent_api
        self._context = context
        self._job_events = job_events

    def job_ended(self, migration_uuid):
        """Wake the monitor of ``migration_uuid`` if its flow runs in this conductor."""
        self._job_events.notify(migration_uuid)

    def live_migrate(self, context, instance_uuid, host=None, force=False,
                     block_migration=fields.BlockMigration.AUTO):
        """Accept a live migration; return the Migration (``accepted``).

        :raises Invalid, InstanceNotFound, InstanceNotRunning, HostNotFound,
            DestinationIsSource, InstanceAlreadyMigrating.
        """
        _check_uuid(instance_uuid, 'instance')
        if block_migration not in fields.BlockMigration.ALL:
            raise exception.Invalid(reason='block_migration must be one of %s, not %r'
                                    % ('/'.join(fields.BlockMigration.ALL),
                                       block_migration))
        if force and not host:
            raise exception.Invalid(reason='force needs a destination host')
        instance = db_api.instance_get(context, instance_uuid)
        if instance['power_state'] != fields.PowerState.RUNNING:
            raise exception.InstanceNotRunning(instance_uuid=instance_uuid,
                                               power_state=instance['power_state'],
                                               host=instance['host'])
        if host is not None:
            db_api.compute_host_get(context, host)
            if host == instance['host']:
                raise exception.DestinationIsSource(host=host)
        migration_uuid = uuidutils.generate_uuid()
        values = {'uuid': migration_uuid, 'instance_uuid': instance_uuid,
                  'migration_type': fields.MigrationType.LIVE,
                  'source_host': instance['host'], 'requested_dest': host,
                  'force': bool(force), 'block_migration': block_migration,
                  'status': states.ACCEPTED}
        with db_api.context_manager.writer.using(context):
            try:
                db_api.instance_update(context, instance_uuid, {'task_state': MIGRATING},
                                       expected={'task_state': None,
                                                 'host': instance['host']})
            except exception.InstanceStateConflict:
                raise self._already_migrating(context, instance_uuid)
            row = db_api.migration_create(context, values)
        try:
            self._runner.create(migration_uuid, flow_runner.store_for(row))
        except Exception:
            LOG.exception('Migration %s instance %s: could not persist its flow; '
                          'refusing the request', migration_uuid, instance_uuid)
            db_api.migration_update(context, migration_uuid,
                                    {'status': states.FAILED, 'error_phase': 'accept',
                                     'error_code': 'internal',
                                     'error_message': 'the flow could not be persisted'})
            db_api.instance_update(context, instance_uuid, {'task_state': None})
            raise
        LOG.info('Migration %s instance %s: accepted (live, from %s to %s%s)',
                 migration_uuid, instance_uuid, instance['host'],
                 host or 'a host the scheduler picks', ', forced' if force else '')
        self._runner.run(migration_uuid)
        return objects.Migration.from_db_row(row)

    def _already_migrating(self, context, instance_uuid):
        current = db_api.migration_list(context, instance_uuid=instance_uuid,
                                        status=sorted(states.IN_FLIGHT_STATES))
        return exception.InstanceAlreadyMigrating(
            instance_uuid=instance_uuid,
            migration_uuid=current[0]['uuid'] if current else 'unknown')

    def get(self, context, migration_uuid):
        _check_uuid(migration_uuid, 'migration')
        return objects.Migration.from_db_row(db_api.migration_get(context, migration_uuid))

    def list(self, context, status=None, host=None, instance_uuid=None, limit=None):
        if status is not None and status not in states.ALL_STATES:
            raise exception.Invalid(reason='unknown status %r (one of %s)'
                                    % (status, ', '.join(states.ALL_STATES)))
        if instance_uuid is not None:
            _check_uuid(instance_uuid, 'instance')
        rows = db_api.migration_list(context, status=status, host=host,
                                     instance_uuid=instance_uuid, limit=limit)
        return objects.MigrationList(objects=[objects.Migration.from_db_row(r)
                                              for r in rows])

    def abort(self, context, migration_uuid):
        """Abort a migration before its switch-over; the guest stays on the source.

        Before the job runs, the migration is marked ``cancelling`` and its flow rolls
        back at its next step (claims released, destination cleaned). While the job
        runs, the source agent is also asked to abort it.

        :raises MigrationNotAbortable: it is past the switch-over or ended (nothing
            changes).
        """
        migration = self.get(context, migration_uuid)
        if migration.status not in states.ABORTABLE_STATES:
            raise exception.MigrationNotAbortable(migration_uuid=migration_uuid,
                                                  status=migration.status)
        if migration.status != states.CANCELLING:
            try:
                db_api.migration_update(context, migration_uuid,
                                        {'status': states.CANCELLING},
                                        expected_status=migration.status)
            except exception.MigrationStateConflict:
                # The flow moved on meanwhile (e.g. the job started): decide again.
                return self.abort(context, migration_uuid)
        LOG.info('Migration %s instance %s: abort requested (it was %s)', migration_uuid,
                 migration.instance_uuid, migration.status)
        if migration.status in (states.RUNNING, states.CANCELLING):
            self._agents.abort_migration(self._context, migration.source_host,
                                         migration_uuid, migration.instance_uuid)
        return self.get(context, migration_uuid)

    def force_complete(self, context, migration_uuid):
        """Pause the guest on the source so that the running migration completes.

        :raises MigrationNotRunning: it is not running (nothing changes).
        """
        migration = self.get(context, migration_uuid)
        if migration.status != states.RUNNING:
            raise exception.MigrationNotRunning(migration_uuid=migration_uuid,
                                                status=migration.status,
                                                action='forced to complete')
        LOG.info('Migration %s instance %s: force-complete requested (the guest is '
                 'paused on %s until it runs on %s)', migration_uuid,
                 migration.instance_uuid, migration.source_host, migration.dest_host)
        self._agents.force_complete_migration(self._context, migration.source_host,
                                              migration_uuid, migration.instance_uuid)
        return self.get(context, migration_uuid)
