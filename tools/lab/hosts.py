"""Lab hosts: one libvirtd per host, each in its own mount and UTS namespace.

A host is started by ``unshare --mount --uts`` running a short shell script that makes every
mount private, bind-mounts the host's private directories (see
:data:`tools.lab.config.PRIVATE_DIRS`) over /run, /var/lib/libvirt, /var/log/libvirt,
/etc/libvirt and /var/cache/libvirt, and a hosts file naming the host over /etc/hosts,
sets the hostname and execs ``libvirtd --listen -d``.
libvirtd daemonizes (its parent becomes PID 1), writes its pid to the private /run, and keeps
the namespace, and so the bind mounts, alive; when it and its QEMUs are gone, the namespace
and its mounts vanish with them. The machine's own libvirtd (if any) is never started or
contacted: the lab only talks to ``qemu+tcp://127.0.0.1:<port>/system`` of its hosts.

A host runs when the pid in its pidfile is a live ``libvirtd`` whose /run is the host's run
dir (:func:`tools.lab.processes.host_pids`), so a stale pidfile from a killed run, or a
recycled pid, is never taken for a running host.

Concurrency: called under the lab lock; starting several hosts launches them all first and
then waits for each, so their start-up (QEMU capability probing) overlaps.
"""

import dataclasses
import glob
import logging
import os
import shlex
import shutil
import time

from tools.lab import commands
from tools.lab import config as lab_config
from tools.lab import errors
from tools.lab import hostconf
from tools.lab import processes
from tools.lab import virt

LOG = logging.getLogger(__name__)

LIBVIRTD = '/usr/sbin/libvirtd'
LAUNCH_TIMEOUT = 60   # the daemonizing parent returns once the daemon is set up
READY_TIMEOUT = 90    # until the host answers on its URI (first start probes QEMU: slower)
PIDFILE_TIMEOUT = 15  # until the daemon's pidfile names a live libvirtd
STOP_GRACE = 15       # seconds between SIGTERM and SIGKILL for libvirtd and QEMU

SHARED_POOL = 'mc-shared'
LOCAL_POOL = 'mc-local'
LOCAL_POOL_PATH = '/var/lib/libvirt/images'  # as a host sees it: private to each host


@dataclasses.dataclass
class LabHost:
    """One lab host as seen now."""

    name: str
    index: int
    uri: str
    tcp_port: int
    host_uuid: str
    running: bool
    pid: int | None
    log_path: str
    migration_ports: tuple[int, int]

    def to_dict(self):
        return dataclasses.asdict(self)


def describe(config, name, record):
    """The LabHost for a host record of the state file, with its live pid and status."""
    pid = running_pid(config, name)
    return LabHost(name=name, index=record['index'], uri=config.uri(record['tcp_port']),
                   tcp_port=record['tcp_port'], host_uuid=record['host_uuid'],
                   running=pid is not None, pid=pid, log_path=config.libvirtd_log(name),
                   migration_ports=tuple(config.migration_ports(record['tcp_port'])))


def new_record(config, index):
    name = config.host_name(index)
    return {'index': index, 'tcp_port': config.tcp_port(index),
            'host_uuid': config.host_uuid(name)}


def running_pid(config, name):
    """Pid of the host's libvirtd when it runs, else None (stale pidfiles are ignored)."""
    try:
        with open(config.pid_file(name), encoding='utf-8') as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    if pid <= 0 or processes.comm(pid) != 'libvirtd':
        return None
    run_dir = config.private_dir(name, '/run')
    return pid if pid in processes.host_pids(run_dir) else None


# --- start -----------------------------------------------------------------------------

def start_hosts(config, records):
    """Start every host of records ({name: record}) that does not run; return LabHosts.

    :raises HostError: a host did not come up (the message names it and its logs).
    """
    if not os.access(LIBVIRTD, os.X_OK):
        raise errors.HostError('%s is missing: run "python -m tools.lab install"' % LIBVIRTD)
    launched = []
    for name, record in records.items():
        pid = running_pid(config, name)
        if pid is not None:
            LOG.info('host %s already runs (libvirtd pid %d, %s)', name, pid,
                     config.uri(record['tcp_port']))
            continue
        _launch(config, name, record)
        launched.append(name)
    for name in launched:
        _wait_ready(config, name, records[name])
    result = []
    for name, record in records.items():
        ensure_pools(config, name, record)
        result.append(describe(config, name, record))
    return result


def _prepare_dirs(config, name, record):
    """Create the host's private dirs, clear its runtime dir, write its configuration."""
    for ns_path in lab_config.PRIVATE_DIRS:
        os.makedirs(config.private_dir(name, ns_path), exist_ok=True)
    run_dir = config.private_dir(name, '/run')
    for entry in os.listdir(run_dir):  # leftovers of a killed run: sockets, pidfiles, status
        path = os.path.join(run_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(os.path.join(config.private_dir(name, '/var/lib/libvirt'), 'images'),
                exist_ok=True)
    os.makedirs(os.path.join(config.private_dir(name, '/var/log/libvirt'), 'qemu'),
                exist_ok=True)
    os.makedirs(config.shared_pool_dir, exist_ok=True)
    os.makedirs(config.consoles_dir, exist_ok=True)
    etc = config.private_dir(name, '/etc/libvirt')
    _write(os.path.join(etc, 'libvirtd.conf'),
           hostconf.libvirtd_conf(name, record['tcp_port'], record['host_uuid']))
    _write(os.path.join(etc, 'qemu.conf'),
           hostconf.qemu_conf(name, config.migration_ports(record['tcp_port'])))
    _write(config.hosts_file(name), hostconf.hosts_file(name, _machine_hosts()))


def _machine_hosts():
    try:
        with open('/etc/hosts', encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def _write(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def _launch_script(config, name):
    lines = ['set -e', 'mount --make-rprivate /']
    for ns_path in lab_config.PRIVATE_DIRS:
        lines.append('mkdir -p %s' % shlex.quote(ns_path))
        lines.append('mount --bind %s %s' % (shlex.quote(config.private_dir(name, ns_path)),
                                             shlex.quote(ns_path)))
    # NOTE: libvirtd resolves its own hostname (getaddrinfo) for every migration cookie,
    # holding the domain's lock; with the name unknown to /etc/hosts each lookup asks the
    # machine's DNS, and a slow resolver stalls the migration and every call on the domain
    # (measured with a resolver that never answers, 3 s timeout: a 2.9 s migration took
    # 25.4 s and virDomainGetState waited 3 s).
    lines.append('mount --bind %s /etc/hosts' % shlex.quote(config.hosts_file(name)))
    lines.append('hostname %s' % shlex.quote(name))
    lines.append('exec %s --listen -d' % LIBVIRTD)
    return '\n'.join(lines)


def _launch(config, name, record):
    leftovers = processes.host_pids(config.private_dir(name, '/run'))
    if leftovers:
        # QEMUs (or a wedged libvirtd) of a previous run whose libvirtd died: a new libvirtd
        # would not know them, so they go.
        processes.terminate(leftovers, 'leftover processes of host %s' % name,
                            grace=STOP_GRACE)
    if _listening(record['tcp_port']):
        raise errors.HostError('cannot start host %s: port %d on 127.0.0.1 is already in use '
                               '(another lab? set MCLAB_BASE_PORT)' % (name, record['tcp_port']))
    _prepare_dirs(config, name, record)
    start_log = config.start_log(name)
    with open(start_log, 'a', encoding='utf-8') as f:
        f.write('--- %s starting host %s on %s\n'
                % (time.strftime('%Y-%m-%d %H:%M:%S'), name, config.uri(record['tcp_port'])))
    LOG.info('starting host %s (%s)', name, config.uri(record['tcp_port']))
    commands.run(['unshare', '--mount', '--uts', '--propagation', 'private', '--',
                  '/bin/sh', '-c', _launch_script(config, name)],
                 'start libvirtd of host %s' % name, LAUNCH_TIMEOUT, error=errors.HostError,
                 log_path=start_log)


def _listening(port):
    """True when something listens on TCP port on 127.0.0.1 or on every address.

    NOTE: read from /proc/net/tcp{,6} instead of connecting: a probe connection makes
    libvirtd log an error ("End of file while reading data") that would hide real ones.
    """
    wanted = {'0100007F:%04X' % port, '00000000:%04X' % port,
              '00000000000000000000000000000000:%04X' % port,
              '00000000000000000000000001000000:%04X' % port}
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table, encoding='ascii') as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == '0A' and fields[1] in wanted:  # 0A: LISTEN
                        return True
        except (FileNotFoundError, StopIteration):
            continue
    return False


def _wait_ready(config, name, record):
    """Wait until the host answers on its URI with its own hostname."""
    logs = '%s, %s' % (config.libvirtd_log(name), config.start_log(name))
    uri = config.uri(record['tcp_port'])
    started = time.monotonic()
    seen_pid = None
    while True:
        pid = running_pid(config, name)
        waited = time.monotonic() - started
        if pid is None and (seen_pid is not None or waited > PIDFILE_TIMEOUT):
            raise errors.HostError('libvirtd of host %s exited during its start%s (logs: %s)'
                                   % (name, last_error(config.libvirtd_log(name)), logs))
        seen_pid = pid or seen_pid
        if pid is not None and _listening(record['tcp_port']):
            with virt.HostConnection(name, uri, logs) as host:
                hostname = host.call('get hostname', host.conn.getHostname)
            if hostname != name:
                raise errors.HostError('host %s at %s answers with hostname %r: is another '
                                       'libvirtd using port %d? (logs: %s)'
                                       % (name, uri, hostname, record['tcp_port'], logs))
            LOG.info('host %s is up (libvirtd pid %d, %s)', name, pid, uri)
            return
        if waited > READY_TIMEOUT:
            raise errors.LabTimeout('host %s did not answer on %s within %ds (logs: %s)'
                                    % (name, uri, READY_TIMEOUT, logs))
        time.sleep(0.2)


def last_error(log_path, limit=240):
    """': <message>' of the last error line of a libvirtd log, or '' when there is none."""
    try:
        with open(log_path, 'rb') as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return ''
    for line in reversed(lines):
        if ' : error : ' in line and 'daemonRunStateInit' not in line:
            return ': ' + line.split(' : error : ', 1)[1].strip()[:limit]
    return ''


def ensure_pools(config, name, record):
    """Define, start and autostart the pools mc-shared and mc-local on the host.

    mc-shared (a directory every host sees) has the same UUID on every host, mc-local (a
    directory private to the host) one of its own: the convention by which an agent
    tells shared storage from local storage. A mc-shared of another UUID (defined by an
    older lab) is defined again; its files stay.
    """
    wanted = {SHARED_POOL: (config.shared_pool_dir, config.shared_pool_uuid(SHARED_POOL)),
              LOCAL_POOL: (LOCAL_POOL_PATH, None)}
    log = config.libvirtd_log(name)
    with virt.HostConnection(name, config.uri(record['tcp_port']), log) as host:
        pools = {p.name(): p for p in host.call('list storage pools',
                                                host.conn.listAllStoragePools, 0)}
        for pool_name, (path, uuid) in wanted.items():
            pool = pools.get(pool_name)
            if pool is not None and uuid and host.call(
                    'read the UUID of pool %s' % pool_name, pool.UUIDString) != uuid:
                LOG.info('host %s: defining storage pool %s again with UUID %s', name,
                         pool_name, uuid)
                if host.call('check storage pool %s' % pool_name, pool.isActive):
                    host.call('stop storage pool %s' % pool_name, pool.destroy)
                host.call('undefine storage pool %s' % pool_name, pool.undefine)
                pool = None
            if pool is None:
                LOG.info('host %s: defining storage pool %s at %s', name, pool_name, path)
                pool = host.call('define storage pool %s' % pool_name,
                                 host.conn.storagePoolDefineXML,
                                 hostconf.pool_xml(pool_name, path, uuid), 0)
            if not host.call('check storage pool %s' % pool_name, pool.isActive):
                host.call('start storage pool %s' % pool_name, pool.create, 0)
            if not host.call('check autostart of pool %s' % pool_name, pool.autostart):
                host.call('autostart storage pool %s' % pool_name, pool.setAutostart, 1)


# --- stop ------------------------------------------------------------------------------

def stop_host(config, name, record):
    """Destroy and undefine the host's guests, stop its libvirtd and every QEMU it started.

    Works on a host whose libvirtd already died (its QEMUs are found through /proc).
    :returns: pids of the processes that were stopped.
    :raises TeardownError: a process of the host survived SIGKILL.
    """
    stopped = []
    pid = running_pid(config, name)
    if pid is not None and record is not None:
        try:
            _remove_guests(config, name, record)
        except errors.LabError as exc:
            LOG.warning('host %s: could not remove its guests through libvirt (%s); '
                        'killing its processes instead', name, exc)
        stopped += processes.terminate([pid], 'libvirtd of host %s' % name,
                                       grace=STOP_GRACE)
    run_dir = config.private_dir(name, '/run')
    stopped += processes.terminate(processes.host_pids(run_dir),
                                   'processes of host %s' % name, grace=STOP_GRACE)
    left = processes.host_pids(run_dir)
    if left:
        raise errors.TeardownError('host %s: pids %s still run after stop (log: %s)'
                                   % (name, ' '.join(map(str, left)),
                                      config.libvirtd_log(name)))
    # Definitions libvirt could not remove itself (it was dead): the lab starts guests afresh.
    for path in glob.glob(os.path.join(config.private_dir(name, '/etc/libvirt'), 'qemu',
                                       '*.xml')):
        os.unlink(path)
    LOG.info('host %s stopped', name)
    return stopped


def _remove_guests(config, name, record):
    log = config.libvirtd_log(name)
    with virt.HostConnection(name, config.uri(record['tcp_port']), log) as host:
        for dom in host.list_domains():
            guest = dom.name()
            if host.call('check guest %s' % guest, dom.isActive):
                LOG.info('host %s: destroying guest %s', name, guest)
                host.call('destroy guest %s' % guest, dom.destroy, error=errors.GuestError)
            if host.call('check guest %s' % guest, dom.isPersistent):
                LOG.info('host %s: undefining guest %s', name, guest)
                host.call('undefine guest %s' % guest, dom.undefine, error=errors.GuestError)
