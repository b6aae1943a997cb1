"""Field types of the project's versioned objects: every status is an enum.

Every enumeration the conductor and the agents share (migration status, job state, job
type, phase, power state, ...) is declared here once; modules compare against these
constants, never against string literals of their own.
"""

from oslo_utils import timeutils
from oslo_versionedobjects import fields

from migration_conductor.objects import migration_states

# Re-exported so object modules import field types from one place.
BooleanField = fields.BooleanField
DateTimeField = fields.DateTimeField
FloatField = fields.FloatField
IntegerField = fields.IntegerField
ListOfIntegersField = fields.ListOfIntegersField
ListOfStringsField = fields.ListOfStringsField
ObjectField = fields.ObjectField
ListOfObjectsField = fields.ListOfObjectsField
StringField = fields.StringField
UUIDField = fields.UUIDField


class PreciseDateTime(fields.DateTime):
    """A UTC timestamp that keeps its microseconds on the wire.

    NOTE: oslo.versionedobjects' DateTime serializes with ``%Y-%m-%dT%H:%M:%SZ``, so a
    timestamp read from the database (microseconds kept on every backend) arrived at
    migctl with whole seconds. The ISO 8601 text with a fraction is what
    ``timeutils.parse_isotime`` (DateTime's own parser) reads back, so a receiver that
    still has the plain DateTime reads it too.
    """

    def to_primitive(self, obj, attr, value):
        return value.astimezone(timeutils.iso8601.UTC).strftime(
            '%Y-%m-%dT%H:%M:%S.%fZ')


class PreciseDateTimeField(fields.AutoTypedField):
    AUTO_TYPE = PreciseDateTime()


class MigrationStatus(fields.Enum):
    ALL = migration_states.ALL_STATES

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class MigrationStatusField(fields.BaseEnumField):
    AUTO_TYPE = MigrationStatus()


class MigrationType(fields.Enum):
    LIVE = 'live'
    COLD = 'cold'
    ALL = (LIVE, COLD)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class MigrationTypeField(fields.BaseEnumField):
    AUTO_TYPE = MigrationType()


class BlockMigration(fields.Enum):
    """Whether disks are copied: decided from pool identities when ``auto``."""

    AUTO = 'auto'
    TRUE = 'true'
    FALSE = 'false'
    ALL = (AUTO, TRUE, FALSE)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class BlockMigrationField(fields.BaseEnumField):
    AUTO_TYPE = BlockMigration()


class PowerState(fields.Enum):
    """Power state of a guest as its host's hypervisor reports it.

    ``missing`` means the host that last ran the guest no longer reports it.
    """

    RUNNING = 'running'
    PAUSED = 'paused'
    SHUTOFF = 'shutoff'
    CRASHED = 'crashed'
    SUSPENDED = 'suspended'
    MISSING = 'missing'
    UNKNOWN = 'unknown'
    ALL = (RUNNING, PAUSED, SHUTOFF, CRASHED, SUSPENDED, MISSING, UNKNOWN)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class PowerStateField(fields.BaseEnumField):
    AUTO_TYPE = PowerState()


class MigrationPhase(fields.Enum):
    """Where a migration failed: a step of the sequence in DESIGN.md."""

    ACCEPT = 'accept'
    PLACE = 'place'
    CHECK_SOURCE = 'check-source'
    CHECK_DESTINATION = 'check-destination'
    CLAIM = 'claim'
    PREPARE = 'prepare'
    START = 'start'
    MONITOR = 'monitor'
    FINISH = 'finish'
    ROLLBACK = 'rollback'
    ALL = (ACCEPT, PLACE, CHECK_SOURCE, CHECK_DESTINATION, CLAIM, PREPARE, START,
           MONITOR, FINISH, ROLLBACK)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class MigrationPhaseField(fields.BaseEnumField):
    AUTO_TYPE = MigrationPhase()


class JobState(fields.Enum):
    """A migration job as the source agent sees it (from libvirt).

    ``not-running``: the guest is on the source and no job runs (it never started, or
    it ended and this agent did not see how); ``gone``: the guest is not on the source
    and no record says why (ask the destination).
    """

    RUNNING = 'running'
    COMPLETED = 'completed'
    FAILED = 'failed'
    CANCELLED = 'cancelled'
    NOT_RUNNING = 'not-running'
    GONE = 'gone'
    ALL = (RUNNING, COMPLETED, FAILED, CANCELLED, NOT_RUNNING, GONE)
    ENDED = (COMPLETED, FAILED, CANCELLED, NOT_RUNNING, GONE)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class JobStateField(fields.BaseEnumField):
    AUTO_TYPE = JobState()


class JobType(fields.Enum):
    """libvirt's job type (virDomainJobType) of the statistics read."""

    NONE = 'none'
    UNBOUNDED = 'unbounded'
    BOUNDED = 'bounded'
    COMPLETED = 'completed'
    FAILED = 'failed'
    CANCELLED = 'cancelled'
    UNKNOWN = 'unknown'
    ALL = (NONE, UNBOUNDED, BOUNDED, COMPLETED, FAILED, CANCELLED, UNKNOWN)
    ACTIVE = (UNBOUNDED, BOUNDED)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class JobTypeField(fields.BaseEnumField):
    AUTO_TYPE = JobType()


class Strategy(fields.Enum):
    """How a live migration gets to its end (a profile's choice, or the forecast's).

    ``auto``: the forecast chooses among what the profile allows (a profile's value
    only); ``precopy``: plain pre-copy; ``auto-converge``: pre-copy with QEMU throttling
    the guest's vCPUs when it lags; ``postcopy-after-first-pass``: pre-copy for one pass
    over the memory, then post-copy (the destination runs the guest and pulls the rest).
    """

    AUTO = 'auto'
    PRECOPY = 'precopy'
    AUTO_CONVERGE = 'auto-converge'
    POSTCOPY_AFTER_FIRST_PASS = 'postcopy-after-first-pass'
    ALL = (AUTO, PRECOPY, AUTO_CONVERGE, POSTCOPY_AFTER_FIRST_PASS)
    CHOSEN = (PRECOPY, AUTO_CONVERGE, POSTCOPY_AFTER_FIRST_PASS)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class StrategyField(fields.BaseEnumField):
    AUTO_TYPE = Strategy()


class CompletionAction(fields.Enum):
    """What ends a job whose completion budget ran out (or a force-complete)."""

    ABORT = 'abort'
    POSTCOPY = 'postcopy'
    PAUSE = 'pause'
    ALL = (ABORT, POSTCOPY, PAUSE)
    FORCE_MODES = (POSTCOPY, PAUSE)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class CompletionActionField(fields.BaseEnumField):
    AUTO_TYPE = CompletionAction()


class Compression(fields.Enum):
    """Compression of the migration stream (libvirt's ``compression`` methods)."""

    NONE = 'none'
    XBZRLE = 'xbzrle'
    ZLIB = 'zlib'
    ZSTD = 'zstd'
    ALL = (NONE, XBZRLE, ZLIB, ZSTD)
    # Methods QEMU applies only to a multifd stream (parallel connections).
    MULTIFD_ONLY = (ZLIB, ZSTD)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class CompressionField(fields.BaseEnumField):
    AUTO_TYPE = Compression()


class MigrationEventKind(fields.Enum):
    """A decision or observation recorded in a migration's story."""

    FORECAST = 'forecast'
    DOWNTIME_STEP = 'downtime-step'
    POSTCOPY_REQUESTED = 'postcopy-requested'
    POSTCOPY_STARTED = 'postcopy-started'
    PAUSED = 'paused'
    ABORT_REQUESTED = 'abort-requested'
    POSTCOPY_INTERRUPTED = 'postcopy-interrupted'
    POSTCOPY_RECOVERED = 'postcopy-recovered'
    ACTION_FAILED = 'action-failed'
    OUTCOME = 'outcome'
    ALL = (FORECAST, DOWNTIME_STEP, POSTCOPY_REQUESTED, POSTCOPY_STARTED, PAUSED,
           ABORT_REQUESTED, POSTCOPY_INTERRUPTED, POSTCOPY_RECOVERED, ACTION_FAILED,
           OUTCOME)

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class MigrationEventKindField(fields.BaseEnumField):
    AUTO_TYPE = MigrationEventKind()
