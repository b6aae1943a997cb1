"""Options of the [simulated] group: the in-memory virt driver used by tests."""

from oslo_config import cfg

from migration_conductor.conf import groups

simulated_group = cfg.OptGroup(
    'simulated', title='Simulated virt driver options',
    help='Inventory of a host modelled by the simulated virt driver, and the speed of '
         'its simulated live migrations.')

simulated_opts = [
    cfg.IntOpt('memory_mb', default=16384, min=1,
               help='Memory of the simulated host, in MiB.'),
    cfg.IntOpt('vcpus', default=8, min=1,
               help='Number of vCPUs of the simulated host.'),
    cfg.StrOpt('cpu_model', default='Skylake-Client-IBRS',
               help='CPU model name the simulated host reports.'),
    cfg.IntOpt('hypervisor_version', default=7002000, min=0,
               help='QEMU version the simulated host reports, as libvirt encodes it '
                    '(major * 1,000,000 + minor * 1,000 + release).'),
    cfg.IntOpt('bandwidth_mib', default=1024, min=1,
               help='Bandwidth, in MiB/s, at which the simulated host sends a live '
                    'migration when the migration sets no bandwidth of its own.'),
    cfg.FloatOpt('time_scale', default=1.0, min=0.001,
                 help='Real seconds per simulated second: simulated migrations wait '
                      'their modelled duration multiplied by this factor (0.01 runs them '
                      'a hundred times faster; the statistics keep the modelled times).'),
]


def register_opts(conf):
    groups.register(conf, simulated_group, simulated_opts)


def list_opts():
    return {simulated_group: simulated_opts}
