"""Field types of the project's versioned objects: every status is an enum."""

from oslo_versionedobjects import fields

from migration_conductor.objects import migration_states

# Re-exported so object modules import field types from one place.
BooleanField = fields.BooleanField
DateTimeField = fields.DateTimeField
IntegerField = fields.IntegerField
ListOfStringsField = fields.ListOfStringsField
ObjectField = fields.ObjectField
ListOfObjectsField = fields.ListOfObjectsField
StringField = fields.StringField
UUIDField = fields.UUIDField


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
