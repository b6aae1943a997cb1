"""MigrationSpec: what the conductor asks the source agent to start.

The destination (its libvirt URI for the peer-to-peer control connection, the address
of the data stream), the libvirt job's options, and how often the agent's monitor
reports the job's progress.
"""

from oslo_utils import versionutils

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class MigrationOptions(base.MigrationConductorObject):
    """Options of the libvirt job (``ComputeDriver.live_migrate``'s options)."""

    # Version 1.0: Initial version
    # Version 1.1: parallel_connections and compression
    VERSION = '1.1'

    fields = {
        'bandwidth_mib': fields.IntegerField(nullable=True, default=None),
        'max_downtime_ms': fields.IntegerField(nullable=True, default=None),
        'block_migration': fields.BooleanField(default=False),
        'auto_converge': fields.BooleanField(default=False),
        'postcopy': fields.BooleanField(default=False),
        'listen_address': fields.StringField(nullable=True, default=None),
        # With block_migration: the targets of the disks to copy (None: all).
        'migrate_disks': fields.ListOfStringsField(nullable=True, default=None),
        # Streams of a multifd migration (1: one connection, no multifd).
        'parallel_connections': fields.IntegerField(default=1),
        'compression': fields.CompressionField(default=fields.Compression.NONE),
    }

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        if versionutils.convert_version_to_tuple(target_version) < (1, 1):
            primitive.pop('parallel_connections', None)
            primitive.pop('compression', None)

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
    # Version 1.1: plan (what the monitor does to complete the job); options 1.1
    VERSION = '1.1'

    fields = {
        'migration_uuid': fields.UUIDField(),
        'instance_uuid': fields.UUIDField(),
        'dest_host': fields.StringField(),
        'dest_uri': fields.StringField(),
        'migrate_uri': fields.StringField(nullable=True, default=None),
        'options': fields.ObjectField('MigrationOptions'),
        # Seconds between two progress reports of the source agent's monitor.
        'report_interval': fields.FloatField(),
        # None: the monitor only watches (no profile, or a conductor of RPC 1.4).
        'plan': fields.ObjectField('CompletionPlan', nullable=True, default=None),
    }

    # The version of each object field sent with each version of this object.
    obj_relationships = {'options': [('1.0', '1.0'), ('1.1', '1.1')],
                         'plan': [('1.1', '1.0')]}

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        if versionutils.convert_version_to_tuple(target_version) < (1, 1):
            primitive.pop('plan', None)
