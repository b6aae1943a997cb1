"""The lab: N real libvirt hosts on this one machine, and small test guests on them.

Python API used by the CLI (``python -m tools.lab``), the integration tests and the
project's jobs::

    lab = Lab()                        # state dir: MCLAB_STATE_DIR or /var/lib/mclab
    lab.install()                      # packages, kernel, guest /init, initramfs (idempotent)
    h1, h2 = lab.start(n_hosts=2)      # LabHost(name, uri, tcp_port, host_uuid, running, ...)
    g = lab.start_guest('g1', 'lab-1') # GuestInfo(name, uuid, host, accelerator, ...)
    lab.heartbeats('g1')               # [(seq, line), ...] from the guest's serial console
    lab.stop()                         # guests, libvirtds, QEMUs, namespaces: all gone

Each host is a libvirtd in its own mount and UTS namespace listening on
``qemu+tcp://127.0.0.1:<base_port + i>/system`` (see :mod:`tools.lab.hosts`); guests are TCG
domains with a heartbeat on a shared console file (see :mod:`tools.lab.guests`).

Concurrency: a Lab object holds only its configuration; every call reads the state afresh.
Operations that change the lab take an exclusive file lock in the state dir, so several
processes or threads (each with its own Lab or sharing one) can use the same lab safely.
Calls block the calling thread; every wait inside is bounded.
"""

import logging
import os

from tools.lab import config as lab_config
from tools.lab import consoles
from tools.lab import guests as lab_guests
from tools.lab import hosts as lab_hosts
from tools.lab import install as lab_install
from tools.lab import processes
from tools.lab import state as lab_state
from tools.lab import streams
from tools.lab import virt
from tools.lab.errors import GuestError
from tools.lab.errors import HostError
from tools.lab.errors import InstallError
from tools.lab.errors import LabError
from tools.lab.errors import LabTimeout
from tools.lab.errors import TeardownError
from tools.lab.guests import GuestInfo
from tools.lab.hosts import LabHost

__all__ = ['Lab', 'LabHost', 'GuestInfo', 'migration_params', 'LabError', 'InstallError',
           'HostError', 'GuestError', 'TeardownError', 'LabTimeout']

LOG = logging.getLogger(__name__)

REAP_TIMEOUT = 10  # seconds "stop" waits for PID 1 to reap the lab's exited daemons


def migration_params(**extra):
    """Typed parameters for migrateToURI3 between lab hosts: QEMU's migration stream goes
    over loopback, and the destination listens on loopback only.

    NOTE: without VIR_MIGRATE_PARAM_LISTEN_ADDRESS the destination QEMU listens on every
    address ("[::]"), and qemu.conf cannot say otherwise: libvirt refuses to start with
    migration_address (or migration_host) set to a local address such as 127.0.0.1.
    """
    params = {'migrate_uri': 'tcp://127.0.0.1',     # VIR_MIGRATE_PARAM_URI
              'listen_address': '127.0.0.1'}        # VIR_MIGRATE_PARAM_LISTEN_ADDRESS
    params.update(extra)
    return params


class Lab:
    """One lab: a state dir, a host-name prefix and a base TCP port.

    :param state_dir: default ``$MCLAB_STATE_DIR`` or ``/var/lib/mclab``.
    :param base_port: host i listens on base_port + i; default ``$MCLAB_BASE_PORT`` or 16600.
    :param host_prefix: hosts are <prefix>1..N; default ``$MCLAB_HOST_PREFIX`` or ``lab-``.
    :param cache_dir: downloads; default ``$MCLAB_CACHE_DIR`` or ``<state_dir>/cache``.
    :raises LabError: a setting is unusable.
    """

    def __init__(self, state_dir=None, base_port=None, host_prefix=None, cache_dir=None):
        try:
            self.config = lab_config.LabConfig.build(state_dir=state_dir, base_port=base_port,
                                                     host_prefix=host_prefix,
                                                     cache_dir=cache_dir)
        except ValueError as exc:
            raise LabError('bad lab setting: %s' % exc) from None

    def __repr__(self):
        return 'Lab(state_dir=%r, base_port=%d, host_prefix=%r)' % (
            self.config.state_dir, self.config.base_port, self.config.host_prefix)

    @property
    def state_dir(self):
        return self.config.state_dir

    def _locked(self):
        return lab_state.locked(self.config.lock_file)

    def _load(self):
        return lab_state.load(self.config.state_file)

    def _save(self, data):
        lab_state.save(self.config.state_file, data)

    # --- install -----------------------------------------------------------------------

    def install(self):
        """Install what is missing (packages, user, kernel, /init, initramfs).

        :returns: names of the steps that did something (empty on a second run).
        :raises InstallError: a step failed.
        """
        with self._locked():
            return lab_install.Installer(self.config).run()

    # --- hosts -------------------------------------------------------------------------

    def start(self, n_hosts=2):
        """Start hosts <prefix>1..n_hosts (those already running are left alone).

        :returns: list of LabHost, running.
        :raises HostError: a host did not start (message names it and its logs).
        """
        if n_hosts < 1:
            raise HostError('cannot start %d hosts: need at least one' % n_hosts)
        with self._locked():
            data = self._load()
            records = {}
            for index in range(1, n_hosts + 1):
                name = self.config.host_name(index)
                wanted = lab_hosts.new_record(self.config, index)
                old = data['hosts'].get(name)
                if old and old != wanted and lab_hosts.running_pid(self.config, name):
                    raise HostError('host %s already runs with %s; run "python -m tools.lab '
                                    'stop" before changing its port' % (name, old))
                records[name] = wanted
            data['hosts'].update(records)
            self._save(data)  # before starting: a failed start can still be stopped
            return lab_hosts.start_hosts(self.config, records)

    def hosts(self):
        """Every host this lab has started, running or not, in index order."""
        data = self._load()
        return [lab_hosts.describe(self.config, name, record)
                for name, record in sorted(data['hosts'].items(),
                                           key=lambda item: item[1]['index'])]

    def host(self, name):
        """The LabHost called name.

        :raises HostError: the lab has no such host.
        """
        for host in self.hosts():
            if host.name == name:
                return host
        raise HostError('the lab (state dir %s) has no host %s' % (self.state_dir, name))

    def running_hosts(self):
        return [host for host in self.hosts() if host.running]

    def open(self, host):
        """A new read-write libvirt connection (libvirt.virConnect) to host (name or LabHost).

        The caller closes it. :raises HostError: the host is not running or does not answer.
        """
        host = host if isinstance(host, LabHost) else self.host(host)
        if not host.running:
            raise HostError('host %s is not running (log: %s)' % (host.name, host.log_path))
        try:
            return virt.open_uri(host.uri)
        except Exception as exc:
            if isinstance(exc, LabError):
                raise
            raise HostError('cannot connect to host %s at %s: %s (log: %s)'
                            % (host.name, host.uri, ' '.join(str(exc).split()),
                               host.log_path)) from exc

    # --- guests ------------------------------------------------------------------------

    def start_guest(self, name, host, memory_mib=512, touch_mib=64, dirty_pps=1000,
                    boot_timeout=lab_guests.BOOT_TIMEOUT, disk_pool=None, beat_hz=1,
                    frozen_mib=16, profile=None):
        """Define (persistent) and start guest name on host, and wait for its first heartbeat.

        :param beat_hz: heartbeat lines per second (1 to 50).
        :param frozen_mib: MiB the guest writes at boot and checks for ever (0: none);
            its dirtied memory is checked too (``consoles.integrity``).
        :param profile: the migration profile its libvirt metadata names (None: none).

        :param disk_pool: None (diskless), or ``mc-shared`` or ``mc-local``: the pool of
            host where the guest's disk is created (see tools.lab.guests.start_guest).

        Idempotent: a guest already running anywhere in the lab is returned as it is.
        :param host: host name or LabHost.
        :returns: GuestInfo (uuid, host, accelerator "kvm" or "tcg", ...).
        :raises GuestError, HostError: the message names the guest, host and logs.
        """
        host_name = host.name if isinstance(host, LabHost) else host
        with self._locked():
            lab_install.Installer(self.config).check_images()
            info = lab_guests.start_guest(self.config, self.running_hosts(), name, host_name,
                                          memory_mib, touch_mib, dirty_pps, boot_timeout,
                                          disk_pool=disk_pool, beat_hz=beat_hz,
                                          frozen_mib=frozen_mib, profile=profile)
            data = self._load()
            data['guests'][name] = {'uuid': info.uuid, 'started_on': info.host,
                                    'memory_mib': memory_mib, 'touch_mib': touch_mib,
                                    'dirty_pps': dirty_pps, 'disk_pool': disk_pool,
                                    'beat_hz': beat_hz, 'frozen_mib': frozen_mib,
                                    'profile': profile}
            self._save(data)
            return info

    def stop_guest(self, name):
        """Destroy and undefine guest name wherever it is; a missing guest is not an error.

        :returns: names of the hosts it was removed from.
        """
        with self._locked():
            removed = lab_guests.stop_guest(self.config, self.running_hosts(), name)
            data = self._load()
            data['guests'].pop(name, None)
            self._save(data)
            return removed

    def guests(self):
        """GuestInfo of every domain on every running host (state, accelerator, last seq)."""
        return lab_guests.list_guests(self.config, self.running_hosts())

    def guest(self, name):
        """GuestInfo of guest name where it runs (or is defined), or None."""
        found = lab_guests.locate(self.config, self.running_hosts(), name)
        running = [info for info in found.values() if info.accelerator is not None]
        return (running or list(found.values()) or [None])[0]

    def console_path(self, name):
        return self.config.console_path(name)

    def panic_guest(self, name):
        """Make guest name's kernel panic where it runs; returns that host's name."""
        return lab_guests.panic_guest(self.config, self.running_hosts(), name)

    def cut_migration_streams(self, host):
        """Destroy every migration stream into ``host`` (name or LabHost), as a
        broken link would; returns how many socket ends were destroyed."""
        host_name = host.name if isinstance(host, LabHost) else host
        return streams.cut_incoming(self.host(host_name))

    def integrity(self, name):
        """(latest verdict of guest name's memory checks, whether any ever failed)."""
        return consoles.integrity(self.config.console_path(name))

    def heartbeats(self, name):
        """[(seq, line), ...] of guest name's heartbeats since its last fresh start."""
        return consoles.heartbeats(self.config.console_path(name))

    # --- teardown ----------------------------------------------------------------------

    def stop(self):
        """Destroy every guest, stop every host, and check nothing of the lab remains.

        Harmless when nothing runs. :raises TeardownError: a process or mount is left.
        """
        with self._locked():
            data = self._load()
            names = set(data['hosts'])
            if os.path.isdir(self.config.hosts_dir):
                names.update(os.listdir(self.config.hosts_dir))
            problems = []
            stopped = []
            for name in sorted(names):
                if not os.path.isdir(self.config.host_dir(name)):
                    continue
                try:
                    stopped += lab_hosts.stop_host(self.config, name, data['hosts'].get(name))
                except LabError as exc:
                    problems.append(str(exc))
            zombies = processes.wait_reaped(stopped, REAP_TIMEOUT)
            if zombies:
                LOG.info('pids %s exited but PID 1 has not reaped them yet',
                         ' '.join(map(str, zombies)))
            mounts = processes.mounts_mentioning(self.config.hosts_dir)
            if mounts:
                problems.append('lab mounts remain: %s' % '; '.join(mounts[:3]))
            data['guests'] = {}
            self._save(data)
            if problems:
                raise TeardownError('lab stop (state dir %s) left things behind: %s'
                                    % (self.state_dir, ' | '.join(problems)))
            LOG.info('lab stopped (state dir %s)', self.state_dir)
