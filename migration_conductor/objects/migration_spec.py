"""MigrationSpec: what the conductor asks the source agent to start.

The destination (its libvirt URI for the peer-to-peer control connection, the address
of the data stream), the libvirt job's options, and how often the agent's monitor
reports the job's progress.
"""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class MigrationOptions(base.MigrationConductorObject):
    """Options of the libvirt job (``ComputeDriver.live_migrate``'s options)."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'bandwidth_mib': fields.IntegerField(nullable=True, default=None),
        'max_downtime_ms': fields.IntegerField(nullable=True, default=None),
        'block_migration': fields.BooleanField(default=False),
        'auto_converge': fields.BooleanField(default=False),
        'postcopy': fields.BooleanField(default=False),
        'listen_address': fields.StringField(nullable=True, default=None),
        # With block_migration: the targets of the disks to copy (None: all).
        'migrate_disks': fields.ListOfStringsField(nullable=True, default=None),
    }

    def to_driver(self):
        """The options dict of ``ComputeDriver.live_migrate`` (and of RPC 1.1-1.3)."""
        options = {name: getattr(self, name) for name in self.fields
                   if self.obj_attr_is_set(name)}
        if not options.get('block_migration'):
            options.pop('migrate_disks', None)
        return options

    @classmethod
    def from_driver(cls, options):
        known = {name: value for name, value in (options or {}).items()
                 if name in cls.fields}
        return cls(**known)


@base.MigrationConductorObjectRegistry.register
class MigrationSpec(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'migration_uuid': fields.UUIDField(),
        'instance_uuid': fields.UUIDField(),
        'dest_host': fields.StringField(),
        'dest_uri': fields.StringField(),
        'migrate_uri': fields.StringField(nullable=True, default=None),
        'options': fields.ObjectField('MigrationOptions'),
        # Seconds between two progress reports of the source agent's monitor.
        'report_interval': fields.FloatField(),
    }
