"""ComputeHost: one libvirt host as its agent reports it, and whether it is up."""

from oslo_utils import timeutils

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class ComputeHost(base.MigrationConductorObject):
    # Version 1.0: Initial version
    # Version 1.1: last_heartbeat keeps its microseconds on the wire
    VERSION = '1.1'

    fields = {
        'host': fields.StringField(),
        'hypervisor_type': fields.StringField(),
        'hypervisor_version': fields.IntegerField(),
        'libvirt_version': fields.IntegerField(),
        'cpu_arch': fields.StringField(nullable=True),
        'cpu_vendor': fields.StringField(nullable=True),
        'cpu_model': fields.StringField(nullable=True),
        'cpu_features': fields.ListOfStringsField(default=[]),
        'cpu_xml': fields.StringField(nullable=True),
        'memory_mb': fields.IntegerField(),
        'memory_mb_free': fields.IntegerField(nullable=True),
        'vcpus': fields.IntegerField(),
        'libvirt_uri': fields.StringField(),
        'migration_address': fields.StringField(),
        'host_uuid': fields.UUIDField(nullable=True),
        'service_version': fields.IntegerField(),
        'enabled': fields.BooleanField(default=True),
        'disabled_reason': fields.StringField(nullable=True),
        'last_heartbeat': fields.PreciseDateTimeField(nullable=True),
        # Not stored: filled by the conductor from last_heartbeat when it answers.
        'up': fields.BooleanField(nullable=True, default=None),
    }

    _non_db_fields = ('up',)

    def heartbeat_is_recent(self, service_down_time, now=None):
        """Whether the agent reported within the last ``service_down_time`` seconds."""
        if not self.obj_attr_is_set('last_heartbeat') or self.last_heartbeat is None:
            return False
        now = now or timeutils.utcnow(with_timezone=True)
        last = self.last_heartbeat
        if last.tzinfo is None:
            last = last.replace(tzinfo=now.tzinfo)
        return (now - last).total_seconds() <= service_down_time


@base.MigrationConductorObjectRegistry.register
class ComputeHostList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('ComputeHost')}
