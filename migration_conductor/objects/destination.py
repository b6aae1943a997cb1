"""What a destination agent answers: its check, where the data goes, its finish.

``DestinationCheck`` is the answer of ``check_destination`` (whether disks are copied,
and which); ``DestinationInfo`` of ``prepare_destination`` (the address the migration
stream goes to); ``DestinationFinish`` of ``finish_on_destination`` (the guest runs
here, and the completed job's statistics, which only the destination keeps).
"""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class DestinationCheck(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.StringField(),
        'block_migration': fields.BooleanField(default=False),
        'copy_disks': fields.ObjectField('DiskList'),
    }

    @classmethod
    def from_legacy(cls, host, values):
        """From the dict of an agent of RPC 1.1-1.3 (1.1 judged no storage)."""
        from migration_conductor import objects
        return cls(host=values.get('host') or host,
                   block_migration=bool(values.get('block_migration', False)),
                   copy_disks=objects.DiskList.from_driver(values.get('copy_disks')))


@base.MigrationConductorObjectRegistry.register
class DestinationInfo(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.StringField(),
        'migrate_uri': fields.StringField(nullable=True),
        'listen_address': fields.StringField(nullable=True),
    }

    @classmethod
    def from_legacy(cls, host, values):
        return cls(host=host, migrate_uri=values.get('migrate_uri'),
                   listen_address=values.get('listen_address'))


@base.MigrationConductorObjectRegistry.register
class DestinationFinish(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.StringField(),
        'power_state': fields.PowerStateField(),
        # The completed job's statistics (real downtime, bytes); None when the
        # hypervisor kept none.
        'progress': fields.ObjectField('JobProgress', nullable=True, default=None),
    }

    @classmethod
    def from_legacy(cls, host, values):
        from migration_conductor import objects
        stats = values.get('stats')
        return cls(host=host, power_state=values['power_state'],
                   progress=None if stats is None
                   else objects.JobProgress.from_stats(stats))
