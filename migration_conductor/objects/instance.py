"""Instance: a guest, identified by its libvirt domain UUID, and where it runs."""

from migration_conductor.objects import base
from migration_conductor.objects import fields

# The keys of a driver's instance dict (ComputeDriver.get_instance).
DRIVER_KEYS = ('uuid', 'name', 'power_state', 'memory_mb', 'vcpus')


@base.MigrationConductorObjectRegistry.register
class Instance(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'uuid': fields.UUIDField(),
        'name': fields.StringField(),
        'host': fields.StringField(nullable=True),
        'power_state': fields.PowerStateField(default=fields.PowerState.UNKNOWN),
        'memory_mb': fields.IntegerField(),
        'vcpus': fields.IntegerField(),
        # Set while a migration owns the instance (the lock against a second move).
        'task_state': fields.StringField(nullable=True, default=None),
        'migration_profile': fields.StringField(nullable=True, default=None),
    }


@base.MigrationConductorObjectRegistry.register
class InstanceList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('Instance')}
