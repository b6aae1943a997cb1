"""Options of the [simulated] group: the in-memory virt driver used by tests."""

from oslo_config import cfg

simulated_group = cfg.OptGroup(
    'simulated', title='Simulated virt driver options',
    help='Inventory of a host modelled by the simulated virt driver.')

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
]


def register_opts(conf):
    conf.register_group(simulated_group)
    conf.register_opts(simulated_opts, group=simulated_group)


def list_opts():
    return {simulated_group: simulated_opts}
