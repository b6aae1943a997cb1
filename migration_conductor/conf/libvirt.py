"""Options of the [libvirt] group: how an agent reaches its host's libvirtd."""

from oslo_config import cfg

from migration_conductor.conf import groups

libvirt_group = cfg.OptGroup(
    'libvirt', title='libvirt driver options',
    help='Options of the libvirt virt driver of the compute agent.')

libvirt_opts = [
    cfg.StrOpt('connection_uri',
               default='qemu:///system',
               help='libvirt connection URI of this host, for example '
                    'qemu:///system or qemu+tcp://127.0.0.1:16601/system.'),
    cfg.IntOpt('connect_timeout',
               default=10, min=1,
               help='Seconds to wait for libvirtd to accept the connection at start-up '
                    'before the agent gives up with an error naming the URI.'),
]


def register_opts(conf):
    groups.register(conf, libvirt_group, libvirt_opts)


def list_opts():
    return {libvirt_group: libvirt_opts}
