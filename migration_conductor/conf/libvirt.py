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
    cfg.BoolOpt('trust_shared_pools',
                default=False,
                help='Whether this agent, as a migration source, tells libvirt that '
                     'disks it does not copy are safe to leave in place '
                     '(VIR_MIGRATE_UNSAFE). The destination has already judged them '
                     'shared: the same pool UUID holding the same path on both hosts. '
                     'libvirt also refuses, with "Migration without shared storage is '
                     'unsafe", a disk on a file system it does not recognise as shared '
                     '(a cluster file system it does not know, or one directory seen by '
                     'several hosts on one machine, as in the lab). Leave it false where '
                     'shared pools are on NFS or another file system libvirt recognises, '
                     'so that its check stays as a second guard; set it true only where '
                     'every pool defined with one UUID on several hosts really is one '
                     'storage.'),
    cfg.BoolOpt('limit_postcopy_bandwidth',
                default=False,
                help='Whether this agent, as a migration source, holds the post-copy '
                     'phase of a job to the migration\'s bandwidth limit too '
                     '(bandwidth.postcopy). libvirt\'s bandwidth limit binds pre-copy '
                     'only: by default post-copy sends the rest of the memory as fast '
                     'as the link goes, as libvirt and Nova do. Limited, each page the '
                     'guest faults on waits behind the rest of the stream: on the lab the '
                     'largest pause a guest saw in post-copy grew from 97-179 ms to '
                     '454-1019 ms (8 moves each). Set it true where the migration '
                     'network must never carry more than the limit.'),
]


def register_opts(conf):
    groups.register(conf, libvirt_group, libvirt_opts)


def list_opts():
    return {libvirt_group: libvirt_opts}
