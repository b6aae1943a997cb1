"""SourceFacts: what the source agent says about a guest before it moves.

The answer of ``check_source``, given as is to every candidate destination's
``check_destination``: the guest (size, power state), the source host's CPU (the
``<cpu>`` of its capabilities), its hypervisor, the guest's disks with their pools and,
when asked, the guest's dirty rate (the forecast's input).
"""

from oslo_utils import versionutils

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class SourceFacts(base.MigrationConductorObject):
    # Version 1.0: Initial version
    # Version 1.1: dirty_rate, the guest's dirty rate measured before the move
    VERSION = '1.1'

    fields = {
        'host': fields.StringField(),
        'instance': fields.ObjectField('Instance'),
        'cpu_xml': fields.StringField(nullable=True),
        'hypervisor_type': fields.StringField(),
        'hypervisor_version': fields.IntegerField(),
        # None: the source did not report disks (an agent of service version 1), so
        # storage cannot be judged.
        'disks': fields.ObjectField('DiskList', nullable=True, default=None),
        # Bytes per second the guest dirtied, measured by libvirt over a few seconds
        # (None: not measured: not asked, not supported, or the measure failed).
        'dirty_rate': fields.IntegerField(nullable=True, default=None),
        # Bytes of the guest's memory its hypervisor process holds (QEMU's resident
        # set): what a first pass really sends, pages never touched being zero pages
        # that cost next to nothing (None: unknown).
        'memory_resident': fields.IntegerField(nullable=True, default=None),
    }

    # The version of each object field sent with each version of this object.
    obj_relationships = {'instance': [('1.0', '1.0')], 'disks': [('1.0', '1.0')]}

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        if versionutils.convert_version_to_tuple(target_version) < (1, 1):
            primitive.pop('dirty_rate', None)
            primitive.pop('memory_resident', None)

    def legacy(self):
        """The dict an agent of RPC 1.1-1.3 gives and takes (check_destination)."""
        from migration_conductor.objects import instance as instance_obj
        facts = {'instance': {key: getattr(self.instance, key)
                              for key in instance_obj.DRIVER_KEYS
                              if self.instance.obj_attr_is_set(key)},
                 'cpu_xml': self.cpu_xml, 'hypervisor_type': self.hypervisor_type,
                 'hypervisor_version': self.hypervisor_version}
        if self.disks is not None:
            facts['disks'] = self.disks.to_driver()
        return facts

    @classmethod
    def from_legacy(cls, host, values):
        """SourceFacts from the dict of an agent of RPC 1.1-1.3 (or one sent by a
        conductor pinned to those versions)."""
        from migration_conductor import objects
        disks = values.get('disks')
        return cls(host=host, instance=objects.Instance(host=host, **values['instance']),
                   cpu_xml=values.get('cpu_xml'),
                   hypervisor_type=values['hypervisor_type'],
                   hypervisor_version=values['hypervisor_version'],
                   disks=None if disks is None else objects.DiskList.from_driver(disks))
