"""The conductor's migration requests: accept, show, list, abort, force-complete.

Accepting a live migration validates the request, locks the instance against a second
move (a conditional UPDATE of its ``task_state``), creates the Migration in ``accepted``
and persists its flow, all before answering: oslo.messaging acknowledges a message
before running it, so only a committed migration may be acknowledged. The flow then runs
in the conductor's flow runner. Bad input raises a typed error and changes nothing: an
unknown or ambiguous instance, an unknown destination, and a named destination whose
agent is known to be down are refused before anything is written.

Instances are named by their UUID (the libvirt domain UUID) or by their name when it is
unique.

Called from RPC threads: every step is a conditional database write, so concurrent
requests for the same instance cannot both win.
"""

import logging

from oslo_utils import uuidutils

from db import api as db_api
from migration_conductor import exception
from migration_conductor import inventory
from migration_conductor import job_reports
from migration_conductor import objects
from migration_conductor import profiles as migration_profiles
from migration_conductor.flows import runner as flow_runner
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

MIGRATING = 'migrating'


def _check_uuid(value, what):
    if not uuidutils.is_uuid_like(value):
        raise exception.Invalid(reason='%s %r is not a UUID' % (what, value))


def resolve_instance(context, instance):
    """The row of the instance named ``instance``: its UUID, or its unique name.

    :raises Invalid: empty, or a name that several instances share (their UUIDs are
        listed).
    :raises InstanceNotFound: no instance has that UUID or name.
    """
    if not instance or not isinstance(instance, str):
        raise exception.Invalid(reason='an instance UUID or name is required, not %r'
                                % (instance,))
    if uuidutils.is_uuid_like(instance):
        return db_api.instance_get(context, instance)
    rows = db_api.instance_list(context, name=instance)
    if not rows:
        raise exception.InstanceNotFound(instance_uuid=instance)
    if len(rows) > 1:
        raise exception.Invalid(
            reason='%d instances are named %r (%s): name one by its UUID'
                   % (len(rows), instance, ', '.join(r['uuid'] for r in rows)))
    return rows[0]


class MigrationAPI:
    """Migration requests of one conductor; ``runner`` runs their flows."""

    def __init__(self, conf, runner, agent_api, context, slots=None, profiles=None):
        self._conf = conf
        self._runner = runner
        self._agents = agent_api
        self._context = context
        self._slots = slots
        self._profiles = profiles or migration_profiles.Profiles()

    def live_migrate(self, context, instance_uuid, host=None, force=False,
                     block_migration=fields.BlockMigration.AUTO, profile=None):
        """Accept a live migration; return the Migration (``accepted``).

        :param instance_uuid: the instance's UUID, or its name if unique.
        :param profile: the migration profile's name; None: the one the instance's
            metadata names, else the default.
        :raises Invalid, InstanceNotFound, InstanceNotRunning, HostNotFound,
            DestinationIsSource, HostUnavailable, InstanceAlreadyMigrating,
            ProfileNotFound.
        """
        if profile is not None and not isinstance(profile, str):
            raise exception.Invalid(reason='profile must be a name, not %r' % (profile,))
        instance = resolve_instance(context, instance_uuid)
        instance_uuid = instance['uuid']
        chosen, chosen_by = self._profiles.choose(profile,
                                                  instance.get('migration_profile'))
        if block_migration not in fields.BlockMigration.ALL:
            raise exception.Invalid(reason='block_migration must be one of %s, not %r'
                                    % ('/'.join(fields.BlockMigration.ALL),
                                       block_migration))
        if force and not host:
            raise exception.Invalid(reason='force needs a destination host')
        if instance['power_state'] != fields.PowerState.RUNNING:
            raise exception.InstanceNotRunning(instance_uuid=instance_uuid,
                                               power_state=instance['power_state'],
                                               host=instance['host'])
        if host is not None:
            dest = inventory.host_from_row(db_api.compute_host_get(context, host),
                                           self._conf.conductor.service_down_time)
            if host == instance['host']:
                raise exception.DestinationIsSource(host=host)
            if not dest.up:
                # NOTE: even with force: a host whose agent is down cannot take a guest,
                # and the operator learns it now rather than from a failed migration.
                raise exception.HostUnavailable(
                    host=host, state='down (no heartbeat for %d s)'
                                     % self._conf.conductor.service_down_time)
        migration_uuid = uuidutils.generate_uuid()
        values = {'uuid': migration_uuid, 'instance_uuid': instance_uuid,
                  'migration_type': fields.MigrationType.LIVE,
                  'source_host': instance['host'], 'requested_dest': host,
                  'force': bool(force), 'block_migration': block_migration,
                  'status': states.ACCEPTED, 'profile': chosen.name}
        with db_api.context_manager.writer.using(context):
            try:
                db_api.instance_update(context, instance_uuid, {'task_state': MIGRATING},
                                       expected={'task_state': None,
                                                 'host': instance['host']})
            except exception.InstanceStateConflict:
                raise self._already_migrating(context, instance_uuid)
            row = db_api.migration_create(context, values)
        try:
            self._runner.create(migration_uuid, row['migration_type'],
                                flow_runner.store_for(row))
        except Exception:
            LOG.exception('Migration %s instance %s: could not persist its flow; '
                          'refusing the request', migration_uuid, instance_uuid)
            db_api.migration_update(context, migration_uuid,
                                    {'status': states.FAILED, 'error_phase': 'accept',
                                     'error_code': 'internal',
                                     'error_message': 'the flow could not be persisted'})
            db_api.instance_update(context, instance_uuid, {'task_state': None})
            raise
        LOG.info('Migration %s instance %s: accepted (live, from %s to %s%s, profile %s '
                 'chosen by the %s)', migration_uuid, instance_uuid, instance['host'],
                 host or 'a host the scheduler picks', ', forced' if force else '',
                 chosen.name, {'request': 'caller', 'instance': 'instance\'s metadata',
                               'default': 'default'}[chosen_by])
        self._runner.run(migration_uuid)
        return objects.Migration.from_db_row(row)

    def _already_migrating(self, context, instance_uuid):
        current = db_api.migration_list(context, instance_uuid=instance_uuid,
                                        status=sorted(states.IN_FLIGHT_STATES))
        return exception.InstanceAlreadyMigrating(
            instance_uuid=instance_uuid,
            migration_uuid=current[0]['uuid'] if current else 'unknown')

    def get(self, context, migration_uuid, events=True):
        """One Migration, with its queue position and (``events``) its events."""
        _check_uuid(migration_uuid, 'migration')
        migration = self._with_queue_positions(
            [db_api.migration_get(context, migration_uuid)])[0]
        if events:
            migration.events = objects.MigrationEventList(objects=[
                objects.MigrationEvent(migration_uuid=row['migration_uuid'],
                                       kind=row['kind'], host=row['host'],
                                       at=row['created_at'],
                                       job_elapsed_s=row['job_elapsed_s'],
                                       message=row['message'])
                for row in db_api.migration_event_list(context, migration_uuid)])
            migration.obj_reset_changes(['events'])
        return migration

    def list(self, context, status=None, host=None, instance_uuid=None, limit=None):
        """Migrations, newest first; ``instance_uuid`` may be a unique name."""
        if status is not None and status not in states.ALL_STATES:
            raise exception.Invalid(reason='unknown status %r (one of %s)'
                                    % (status, ', '.join(states.ALL_STATES)))
        if instance_uuid is not None:
            instance_uuid = resolve_instance(context, instance_uuid)['uuid']
        rows = db_api.migration_list(context, status=status, host=host,
                                     instance_uuid=instance_uuid, limit=limit)
        return objects.MigrationList(objects=self._with_queue_positions(rows))

    def _with_queue_positions(self, rows):
        """Migration objects, each queued one with its place in the queue."""
        positions = {}
        if self._slots is not None and any(r['status'] == states.QUEUED for r in rows):
            positions = self._slots.queue_positions()
        migrations = []
        for row in rows:
            migration = objects.Migration.from_db_row(row)
            migration.queue_position = positions.get(row['uuid'])
            migration.obj_reset_changes(['queue_position'])
            migrations.append(migration)
        return migrations

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
        elif migration.status == states.QUEUED and self._slots is not None:
            # Its flow is parked: the dispatcher resumes it, and it rolls back.
            self._slots.wake()
        return self.get(context, migration_uuid)

    def force_complete(self, context, migration_uuid, mode=None):
        """Make the running migration complete now: ``pause`` the guest on the source
        (pre-copy then converges; the destination resumes it) or switch the job to
        ``postcopy``. None: the profile's ``force_complete_mode``.

        :raises Invalid: an unknown mode.
        :raises ForceCompleteModeRefused: post-copy under a profile that forbids it, or
            with a source too old for it (nothing changes).
        :raises MigrationNotRunning: it is not running in pre-copy (nothing changes).
        """
        if mode is not None and mode not in fields.CompletionAction.FORCE_MODES:
            raise exception.Invalid(reason='mode must be one of %s, not %r' % (
                ', '.join(fields.CompletionAction.FORCE_MODES), mode))
        migration = self.get(context, migration_uuid, events=False)
        profile = self._profiles.get(migration.profile or self._profiles.default)
        mode = mode or profile.force_complete_mode
        if mode == fields.CompletionAction.POSTCOPY and not profile.postcopy_allowed:
            raise exception.ForceCompleteModeRefused(
                migration_uuid=migration_uuid, mode=mode,
                reason='its profile %s does not allow post-copy (use --mode pause)'
                       % profile.name)
        if migration.status != states.RUNNING:
            raise exception.MigrationNotRunning(migration_uuid=migration_uuid,
                                                status=migration.status,
                                                action='forced to complete')
        what = ('the guest is paused on %s until it runs on %s'
                % (migration.source_host, migration.dest_host)
                if mode == fields.CompletionAction.PAUSE else
                'the job switches to post-copy: %s runs the guest from then on'
                % migration.dest_host)
        LOG.info('Migration %s instance %s: force-complete requested by %s (%s)',
                 migration_uuid, migration.instance_uuid, mode, what)
        self._agents.force_complete_migration(self._context, migration.source_host,
                                              migration_uuid, migration.instance_uuid,
                                              mode=mode)
        job_reports.record_event(self._context, objects.MigrationEvent(
            migration_uuid=migration_uuid,
            kind=(fields.MigrationEventKind.PAUSED if mode == fields.CompletionAction.PAUSE
                  else fields.MigrationEventKind.POSTCOPY_STARTED),
            host=migration.source_host,
            message='force-complete by an operator: %s' % what), migration.instance_uuid)
        return self.get(context, migration_uuid)
