"""HostReport: what an agent tells the conductor at registration and every heartbeat."""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class HostReport(base.MigrationConductorObject):
    """The host's inventory and the guests its hypervisor runs right now."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.ObjectField('ComputeHost'),
        'instances': fields.ObjectField('InstanceList'),
    }
