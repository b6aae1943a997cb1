"""Migration: one move of one instance, its status, progress and structured outcome.

``status`` only changes through :meth:`Migration.transition`, which enforces the state
machine of :mod:`migration_conductor.objects.migration_states`. A failure is recorded as
a :class:`MigrationError` (phase, host, code, message) so that an operator and a program
can both tell where and why a migration ended.
"""

from oslo_utils import versionutils

from migration_conductor.objects import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states
from migration_conductor.objects import profile as objects_profile


@base.MigrationConductorObjectRegistry.register
class MigrationError(base.MigrationConductorObject):
    """Why a migration failed: the step, the host involved, a code and a message."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'phase': fields.MigrationPhaseField(),
        'host': fields.StringField(nullable=True),
        'code': fields.StringField(),
        'message': fields.StringField(),
    }

    # The Migration table stores each field as an ``error_<field>`` column.
    FIELDS = ('phase', 'host', 'code', 'message')

    def db_columns(self):
        """The ``error_*`` column values of this error."""
        return {'error_' + name: getattr(self, name) for name in self.FIELDS}

    def __str__(self):
        return '%s failed on %s: %s (%s)' % (self.phase, self.host or '-',
                                            self.message, self.code)


@base.MigrationConductorObjectRegistry.register
class Migration(base.MigrationConductorObject):
    # Version 1.0: Initial version
    # Version 1.1: job_state, job_error, last_report_at, owner, queued_at and
    #              queue_position; timestamps keep their microseconds on the wire
    # Version 1.2: profile, strategy, forecast and events
    VERSION = '1.2'

    fields = {
        'uuid': fields.UUIDField(),
        'instance_uuid': fields.UUIDField(),
        'migration_type': fields.MigrationTypeField(default=fields.MigrationType.LIVE),
        'source_host': fields.StringField(),
        'dest_host': fields.StringField(nullable=True),
        'requested_dest': fields.StringField(nullable=True),
        'force': fields.BooleanField(default=False),
        'block_migration': fields.BlockMigrationField(
            default=fields.BlockMigration.AUTO),
        'status': fields.MigrationStatusField(),
        # Progress, in bytes (dirty_rate in bytes per second), from the libvirt job.
        'memory_total': fields.IntegerField(nullable=True),
        'memory_processed': fields.IntegerField(nullable=True),
        'memory_remaining': fields.IntegerField(nullable=True),
        'disk_total': fields.IntegerField(nullable=True),
        'disk_processed': fields.IntegerField(nullable=True),
        'disk_remaining': fields.IntegerField(nullable=True),
        'dirty_rate': fields.IntegerField(nullable=True),
        'iteration': fields.IntegerField(nullable=True),
        'expected_downtime_ms': fields.IntegerField(nullable=True),
        'downtime_ms': fields.IntegerField(nullable=True),
        'total_time_ms': fields.IntegerField(nullable=True),
        'error': fields.ObjectField('MigrationError', nullable=True),
        'started_at': fields.PreciseDateTimeField(nullable=True),
        'finished_at': fields.PreciseDateTimeField(nullable=True),
        'created_at': fields.PreciseDateTimeField(nullable=True),
        'updated_at': fields.PreciseDateTimeField(nullable=True),
        # The libvirt job as its source agent last reported it.
        'job_state': fields.JobStateField(nullable=True, default=None),
        'job_error': fields.StringField(nullable=True, default=None),
        'last_report_at': fields.PreciseDateTimeField(nullable=True, default=None),
        # The conductor that drives the migration's flow.
        'owner': fields.StringField(nullable=True, default=None),
        # Waiting for a slot of its hosts: since when, and its place in the queue
        # (1: next; filled by the conductor when it answers, not stored).
        'queued_at': fields.PreciseDateTimeField(nullable=True, default=None),
        'queue_position': fields.IntegerField(nullable=True, default=None),
        # The migration profile applied (its name), the strategy chosen before the
        # start, the forecast behind that choice (and, at the end, what happened), and
        # the decisions and observations of its story (filled by ``show``, not stored
        # on the row).
        'profile': fields.StringField(nullable=True, default=None),
        'strategy': fields.StrategyField(nullable=True, default=None),
        'forecast': fields.ObjectField('MigrationForecast', nullable=True, default=None),
        'events': fields.ObjectField('MigrationEventList', nullable=True, default=None),
    }

    _non_db_fields = ('error', 'queue_position', 'forecast', 'events')

    # The version of each object field sent with each version of this object.
    obj_relationships = {'error': [('1.0', '1.0')], 'forecast': [('1.2', '1.0')],
                         'events': [('1.2', '1.0')]}

    # Fields added by each version, for obj_make_compatible.
    _ADDED = {(1, 1): ('job_state', 'job_error', 'last_report_at', 'owner',
                       'queued_at', 'queue_position'),
              (1, 2): ('profile', 'strategy', 'forecast', 'events')}

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        for version, names in self._ADDED.items():
            if target < version:
                for name in names:
                    primitive.pop(name, None)

    @property
    def is_terminal(self):
        return self.status in migration_states.TERMINAL_STATES

    def transition(self, target):
        """Move to ``target`` if the state machine allows it.

        :raises InvalidMigrationTransition: the change is not allowed; nothing changes.
        """
        migration_states.check_transition(self.uuid, self.status, target)
        self.status = target

    @classmethod
    def from_db_row(cls, row):
        obj = super().from_db_row(row)
        if row.get('error_code'):
            obj.error = MigrationError(**{name: row.get('error_' + name)
                                          for name in MigrationError.FIELDS})
        else:
            obj.error = None
        obj.forecast = objects_profile.MigrationForecast.from_record(row.get('forecast'))
        obj.events = None
        obj.obj_reset_changes(recursive=True)
        return obj

    def obj_db_values(self, only_changed=False):
        values = super().obj_db_values(only_changed=only_changed)
        if 'error' in (self.obj_what_changed() if only_changed else self.fields):
            if self.obj_attr_is_set('error'):
                if self.error is not None:
                    values.update(self.error.db_columns())
                else:
                    values.update({'error_' + name: None
                                   for name in MigrationError.FIELDS})
        if 'forecast' in (self.obj_what_changed() if only_changed else self.fields):
            if self.obj_attr_is_set('forecast'):
                values['forecast'] = (None if self.forecast is None
                                      else self.forecast.to_record())
        return values


@base.MigrationConductorObjectRegistry.register
class MigrationList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('Migration')}
