"""Where the lab keeps its files and which names and ports it uses.

:class:`LabConfig` is a frozen value built once per :class:`tools.lab.Lab` from arguments or
the environment (``MCLAB_STATE_DIR``, ``MCLAB_BASE_PORT``, ``MCLAB_HOST_PREFIX``,
``MCLAB_CACHE_DIR``); nothing here reads the environment at import time or touches the disk,
so it is safe to share between threads.

Layout under the state dir (default ``/var/lib/mclab``)::

    state.json, lock              small JSON state and the lock of mutating operations
    images/vmlinuz, init,         the guest kernel, the static /init, the initramfs
      initramfs.img
    cache/                        downloads (the kernel .deb is deleted once unpacked)
    shared/pool/                  storage pool "mc-shared" (seen by every host)
    shared/consoles/<guest>.log   guest serial consoles (appended to across migrations)
    hosts/<name>/{run,lib,log,etc,cache}
                                  private dirs bind-mounted over /run, /var/lib/libvirt,
                                  /var/log/libvirt, /etc/libvirt, /var/cache/libvirt
    hosts/<name>/start.log        output of the namespace set-up and of libvirtd's start
    hosts/<name>/hosts            the machine's /etc/hosts plus the host's own name,
                                  bind-mounted over /etc/hosts (see tools.lab.hosts)
"""

import dataclasses
import os
import uuid

DEFAULT_STATE_DIR = '/var/lib/mclab'
DEFAULT_BASE_PORT = 16600
DEFAULT_HOST_PREFIX = 'lab-'

# Directories every host gets a private copy of: namespace path -> name under hosts/<name>/.
PRIVATE_DIRS = {
    '/run': 'run',
    '/var/lib/libvirt': 'lib',
    '/var/log/libvirt': 'log',
    '/etc/libvirt': 'etc',
    '/var/cache/libvirt': 'cache',
}

# NOTE: a fixed namespace makes host and guest UUIDs stable across runs and machines, so a
# test or a database row can refer to "lab-1" or guest "g1" by UUID.
UUID_NAMESPACE = uuid.UUID('6d1c2f0e-7f7a-4d8e-9a57-1ab0c0ffee01')

# Incoming migration ports (QEMU listens there on the destination) come from a 16-port
# window per host, derived from the host's TCP port so that labs on the same network
# namespace never share a window: 49152 + (tcp_port % 1000) * 16 .. +15 (at most 65151).
# NOTE: two labs whose base ports differ by a multiple of 1000 would share windows.
MIGRATION_PORT_FIRST = 49152
MIGRATION_PORTS_PER_HOST = 16


def _env_int(name, default):
    value = os.environ.get(name)
    if value in (None, ''):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError('%s must be an integer, got %r' % (name, value)) from None


@dataclasses.dataclass(frozen=True)
class LabConfig:
    """Paths, names and ports of one lab (one state dir)."""

    state_dir: str
    base_port: int
    host_prefix: str
    cache_dir: str

    @classmethod
    def build(cls, state_dir=None, base_port=None, host_prefix=None, cache_dir=None):
        """Arguments win over the environment, which wins over the defaults.

        :raises ValueError: a value is unusable (the caller turns it into a LabError).
        """
        state_dir = os.path.abspath(
            state_dir or os.environ.get('MCLAB_STATE_DIR') or DEFAULT_STATE_DIR)
        for private in PRIVATE_DIRS:
            if state_dir == private or state_dir.startswith(private + '/'):
                raise ValueError('state dir %s is under %s, which every lab host replaces '
                                 'with a private copy' % (state_dir, private))
        if base_port is None:
            base_port = _env_int('MCLAB_BASE_PORT', DEFAULT_BASE_PORT)
        if not 1024 <= base_port <= 65000:
            raise ValueError('base port %d is outside 1024..65000' % base_port)
        host_prefix = host_prefix or os.environ.get('MCLAB_HOST_PREFIX') or DEFAULT_HOST_PREFIX
        cache_dir = os.path.abspath(cache_dir or os.environ.get('MCLAB_CACHE_DIR')
                                    or os.path.join(state_dir, 'cache'))
        return cls(state_dir=state_dir, base_port=base_port, host_prefix=host_prefix,
                   cache_dir=cache_dir)

    # --- files -----------------------------------------------------------------------

    @property
    def state_file(self):
        return os.path.join(self.state_dir, 'state.json')

    @property
    def lock_file(self):
        return os.path.join(self.state_dir, 'lock')

    @property
    def images_dir(self):
        return os.path.join(self.state_dir, 'images')

    @property
    def kernel_path(self):
        return os.path.join(self.images_dir, 'vmlinuz')

    @property
    def init_path(self):
        return os.path.join(self.images_dir, 'init')

    @property
    def initramfs_path(self):
        return os.path.join(self.images_dir, 'initramfs.img')

    @property
    def shared_pool_dir(self):
        return os.path.join(self.state_dir, 'shared', 'pool')

    @property
    def consoles_dir(self):
        return os.path.join(self.state_dir, 'shared', 'consoles')

    def console_path(self, guest_name):
        return os.path.join(self.consoles_dir, '%s.log' % guest_name)

    @property
    def hosts_dir(self):
        return os.path.join(self.state_dir, 'hosts')

    def host_dir(self, host_name):
        return os.path.join(self.hosts_dir, host_name)

    def private_dir(self, host_name, ns_path):
        """Host-side directory that host_name sees at ns_path (a key of PRIVATE_DIRS)."""
        return os.path.join(self.host_dir(host_name), PRIVATE_DIRS[ns_path])

    def libvirtd_log(self, host_name):
        return os.path.join(self.private_dir(host_name, '/var/log/libvirt'), 'libvirtd.log')

    def qemu_log(self, host_name, guest_name):
        return os.path.join(self.private_dir(host_name, '/var/log/libvirt'), 'qemu',
                            '%s.log' % guest_name)

    def hosts_file(self, host_name):
        """Host-side file that host_name sees at /etc/hosts."""
        return os.path.join(self.host_dir(host_name), 'hosts')

    def start_log(self, host_name):
        return os.path.join(self.host_dir(host_name), 'start.log')

    def pid_file(self, host_name):
        return os.path.join(self.private_dir(host_name, '/run'), 'libvirtd.pid')

    # --- names and ports -------------------------------------------------------------

    def host_name(self, index):
        return '%s%d' % (self.host_prefix, index)

    def tcp_port(self, index):
        return self.base_port + index

    @staticmethod
    def uri(tcp_port):
        return 'qemu+tcp://127.0.0.1:%d/system' % tcp_port

    @staticmethod
    def host_uuid(host_name):
        return str(uuid.uuid5(UUID_NAMESPACE, 'host/' + host_name))

    @staticmethod
    def shared_pool_uuid(pool_name):
        """The UUID a shared pool has on every host: how a host knows it shares it."""
        return str(uuid.uuid5(UUID_NAMESPACE, 'pool/' + pool_name))

    @staticmethod
    def guest_uuid(guest_name):
        return str(uuid.uuid5(UUID_NAMESPACE, 'guest/' + guest_name))

    @staticmethod
    def migration_ports(tcp_port):
        first = MIGRATION_PORT_FIRST + (tcp_port % 1000) * MIGRATION_PORTS_PER_HOST
        return first, first + MIGRATION_PORTS_PER_HOST - 1
