"""ResourceClaim: room a destination reserves for an incoming guest, per migration."""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class ResourceClaim(base.MigrationConductorObject):
    """Memory and vCPUs held on ``host`` for ``migration_uuid`` until it ends."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'migration_uuid': fields.UUIDField(),
        'instance_uuid': fields.UUIDField(),
        'host': fields.StringField(nullable=True),
        'memory_mb': fields.IntegerField(),
        'vcpus': fields.IntegerField(),
    }

    KEYS = ('migration_uuid', 'instance_uuid', 'host', 'memory_mb', 'vcpus')

    @classmethod
    def from_legacy(cls, values, host=None):
        """From the resource tracker's (or an agent of RPC 1.1-1.3's) claim dict."""
        return cls(migration_uuid=values['migration_uuid'],
                   instance_uuid=values['instance_uuid'],
                   host=values.get('host', host), memory_mb=values['memory_mb'],
                   vcpus=values['vcpus'])

    def legacy(self):
        """The claim dict of the resource tracker (and of RPC 1.3's list_host_claims)."""
        return {key: getattr(self, key) for key in self.KEYS}


@base.MigrationConductorObjectRegistry.register
class ResourceClaimList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('ResourceClaim')}
