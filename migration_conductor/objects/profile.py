"""Migration profiles and what the conductor derives from one for a migration.

``MigrationProfile``: a named availability contract (maximum downtime, completion budget,
what to do when it runs out, what is allowed), defined in configuration
(:mod:`migration_conductor.profiles`) and shown by ``migctl profile list|show``.

``CompletionPlan``: what the source agent's monitor is told to do for one migration
(:mod:`compute_agent.completion`), in absolute terms (seconds, milliseconds): the
conductor turns the profile's per-GiB figures into a plan for the guest at hand, so the
agent applies a plan and knows nothing of profiles.

``MigrationForecast``: the conductor's prediction before the job starts (from the
guest's measured dirty rate and the bandwidth), the strategy chosen from it, and, once
the migration ended, what really happened next to it.

``MigrationEvent``: one decision or observation of a migration's story (a downtime
step, the switch to post-copy, a pause, an abort on budget), as recorded.
"""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class MigrationProfile(base.MigrationConductorObject):
    """A named availability contract; see ``migctl profile show NAME`` for its
    meaning in words. Times are seconds, sizes GiB or MiB/s as the names say; 0 means
    "none" where the help of :mod:`migration_conductor.profiles` says so."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'name': fields.StringField(),
        'description': fields.StringField(default=''),
        'builtin': fields.BooleanField(default=False),
        'strategy': fields.StrategyField(default=fields.Strategy.AUTO),
        'max_downtime_ms': fields.IntegerField(),
        'downtime_steps': fields.IntegerField(default=1),
        'downtime_step_delay_s_per_gib': fields.FloatField(default=0.0),
        'completion_s_per_gib': fields.FloatField(default=0.0),
        'completion_max_s': fields.FloatField(default=0.0),
        'min_guest_gib': fields.FloatField(default=0.0),
        'max_precopy_passes': fields.IntegerField(default=0),
        'on_timeout': fields.CompletionActionField(default=fields.CompletionAction.ABORT),
        'force_complete_mode': fields.CompletionActionField(
            default=fields.CompletionAction.PAUSE),
        'postcopy_allowed': fields.BooleanField(default=False),
        'auto_converge_allowed': fields.BooleanField(default=False),
        'bandwidth_mib': fields.IntegerField(default=0),
        'parallel_connections': fields.IntegerField(default=1),
        'compression': fields.CompressionField(default=fields.Compression.NONE),
        'dirty_rate_sample_s': fields.IntegerField(default=1),
        'time_scale': fields.FloatField(default=1.0),
        'settle_s': fields.FloatField(default=0.0),
    }


@base.MigrationConductorObjectRegistry.register
class MigrationProfileList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('MigrationProfile')}


@base.MigrationConductorObjectRegistry.register
class CompletionPlan(base.MigrationConductorObject):
    """What the source agent's monitor does for one migration (seconds from the start
    of the job, milliseconds of downtime)."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'profile': fields.StringField(),
        'strategy': fields.StrategyField(),
        # Downtime steps: at downtime_at_s[i] seconds, set downtime_ms[i].
        'downtime_at_s': fields.ListOfIntegersField(default=[]),
        'downtime_ms': fields.ListOfIntegersField(default=[]),
        # Seconds after which on_timeout is applied; None: no budget.
        'budget_s': fields.FloatField(nullable=True, default=None),
        'on_timeout': fields.CompletionActionField(default=fields.CompletionAction.ABORT),
        'postcopy_allowed': fields.BooleanField(default=False),
        # Switch to post-copy once pre-copy starts pass N + 1 (0: never): 1 for
        # post-copy after the first pass, and the profile's max_precopy_passes for a
        # pre-copy the forecast expected to end sooner (it underestimated).
        'postcopy_after_pass': fields.IntegerField(default=0),
        # Seconds a switch to post-copy may take to show in the job's statistics
        # before the monitor says it did not happen.
        'postcopy_confirm_s': fields.FloatField(default=10.0),
    }

    def steps(self):
        """[(at_s, downtime_ms), ...] in order."""
        return list(zip(self.downtime_at_s, self.downtime_ms))


@base.MigrationConductorObjectRegistry.register
class MigrationForecast(base.MigrationConductorObject):
    """The prediction made before the job starts, and what happened next to it.

    Sizes are bytes, rates bytes per second, durations seconds or milliseconds as the
    names say. ``converges``: pre-copy alone ends within the maximum downtime.
    """

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'memory_bytes': fields.IntegerField(),
        'dirty_rate': fields.IntegerField(nullable=True, default=None),
        'dirty_rate_source': fields.StringField(default='measured'),
        'bandwidth': fields.IntegerField(),
        'max_downtime_ms': fields.IntegerField(),
        'converges': fields.BooleanField(),
        'passes': fields.IntegerField(nullable=True, default=None),
        'duration_s': fields.FloatField(nullable=True, default=None),
        'bytes': fields.IntegerField(nullable=True, default=None),
        'downtime_ms': fields.IntegerField(nullable=True, default=None),
        'bound_s': fields.FloatField(),
        'budget_s': fields.FloatField(nullable=True, default=None),
        'strategy': fields.StrategyField(),
        'reason': fields.StringField(),
        # Filled once the migration ended.
        'actual_duration_s': fields.FloatField(nullable=True, default=None),
        'actual_bytes': fields.IntegerField(nullable=True, default=None),
        'actual_downtime_ms': fields.IntegerField(nullable=True, default=None),
        'duration_error': fields.FloatField(nullable=True, default=None),
    }

    # Stored as one JSON document in the migration's ``forecast`` column.
    def to_record(self):
        return {name: getattr(self, name) for name in self.fields
                if self.obj_attr_is_set(name)}

    @classmethod
    def from_record(cls, record):
        if not record:
            return None
        return cls(**{name: value for name, value in record.items()
                      if name in cls.fields})


@base.MigrationConductorObjectRegistry.register
class MigrationEvent(base.MigrationConductorObject):
    """One decision or observation of a migration (who made it, when, why)."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'migration_uuid': fields.UUIDField(),
        'kind': fields.MigrationEventKindField(),
        'host': fields.StringField(nullable=True, default=None),
        'at': fields.PreciseDateTimeField(nullable=True, default=None),
        # Seconds since the job started, when the event is about the job.
        'job_elapsed_s': fields.FloatField(nullable=True, default=None),
        'message': fields.StringField(),
    }


@base.MigrationConductorObjectRegistry.register
class MigrationEventList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('MigrationEvent')}
