"""Disk: one disk of a guest as its source host reports it (storage pools decide).

The agents' virt drivers describe disks as plain dicts (``compute_agent.virt.driver``
``DISK_KEYS``); on the RPC wire a disk is this object, so that a field added later shows
in the object-hash test and an older peer is sent what it knows.
"""

from migration_conductor.objects import base
from migration_conductor.objects import fields

# The driver dict keys, in the order the driver interface documents them.
DRIVER_KEYS = ('target', 'path', 'format', 'pool_uuid', 'allocation')


@base.MigrationConductorObjectRegistry.register
class Disk(base.MigrationConductorObject):
    """The guest's device name, the file or block device behind it, its declared
    format (None when the domain declares none: never probed), the UUID of the pool
    holding that volume (None: in no pool, never shared) and the bytes it occupies
    there (None: unknown)."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'target': fields.StringField(),
        'path': fields.StringField(nullable=True),
        'format': fields.StringField(nullable=True),
        'pool_uuid': fields.StringField(nullable=True),
        'allocation': fields.IntegerField(nullable=True),
    }

    @classmethod
    def from_driver(cls, values):
        """A Disk from a driver's disk dict (missing keys are None)."""
        return cls(**{key: values.get(key) for key in DRIVER_KEYS})

    def to_driver(self):
        """The driver's disk dict of this disk."""
        return {key: getattr(self, key) if self.obj_attr_is_set(key) else None
                for key in DRIVER_KEYS}


@base.MigrationConductorObjectRegistry.register
class DiskList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('Disk')}

    @classmethod
    def from_driver(cls, disks):
        return cls(objects=[Disk.from_driver(disk) for disk in disks or ()])

    def to_driver(self):
        return [disk.to_driver() for disk in self]

    @property
    def paths(self):
        return [disk.path for disk in self]
