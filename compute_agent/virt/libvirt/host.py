"""The agent's connection to its libvirtd: the only module that imports ``libvirt``.

:class:`Host` owns one libvirt connection, opens it with a bounded wait, reopens it when
libvirtd restarted, and turns libvirt's answers into plain Python values. The connection
factory is injectable, so two agents (two hosts) can live in one process in tests. The
other modules of the libvirt driver use the constants and helpers exported here instead
of importing ``libvirt`` themselves.

Concurrency: the shared connection serves short calls from any thread (RPC handlers,
job monitors); the lock here only guards (re)opening it. A call that blocks for a whole
job (``migrateToURI3``) runs on a connection of its own (:meth:`Host.job_connection`):
libvirt's RPC client lets the thread waiting longest do the socket I/O for every thread
of a connection, and with libvirt 9.0 a short call sometimes waits behind that thread
until the job ends (seen on the lab: a state or job statistics read stuck for the
whole of a migration that could only end by being paused or aborted through that very
connection). Every other blocking call goes through :meth:`Host.call`, which waits a
bounded time: a wedged libvirtd or QEMU can block a call forever, and an RPC thread
must not hang with it.

What a libvirtd answers the same for as long as it runs (its host's capabilities, the
hypervisor type, its own version, the verdict on a given CPU) is read once per shared
connection and dropped with it (:meth:`Host._fact`): a reconnection, after libvirtd
restarted, reads it again. Host state (memory, free memory, the QEMU version, domains)
is read at every call.
"""

import concurrent.futures
import contextlib
import logging
import threading
from xml.etree import ElementTree

import libvirt
import libvirt_qemu

from migration_conductor import exception

LOG = logging.getLogger(__name__)

libvirtError = libvirt.libvirtError

# The namespace of the project's element in a domain's <metadata>.
METADATA_NAMESPACE = 'http://migration-conductor.org/xmlns/instance/1.0'
CALL_TIMEOUT = 30  # seconds a bounded libvirt call may take before the agent gives up
# The virtio-serial channel of the QEMU guest agent; libvirt says whether the guest
# opened it (state "connected").
GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0'
GUEST_PING = '{"execute": "guest-ping"}'
# CPU verdicts kept per connection (one per source CPU description seen); the oldest
# is dropped beyond.
CPU_COMPARISONS_KEPT = 64
_UNKNOWN = object()
_COMPARE_CPU = 'compare CPU'

# --- libvirt constants used by the rest of the driver ------------------------------------

MIGRATE_LIVE = libvirt.VIR_MIGRATE_LIVE
MIGRATE_PEER2PEER = libvirt.VIR_MIGRATE_PEER2PEER
MIGRATE_PERSIST_DEST = libvirt.VIR_MIGRATE_PERSIST_DEST
MIGRATE_UNDEFINE_SOURCE = libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
MIGRATE_NON_SHARED_DISK = libvirt.VIR_MIGRATE_NON_SHARED_DISK
MIGRATE_AUTO_CONVERGE = libvirt.VIR_MIGRATE_AUTO_CONVERGE
MIGRATE_POSTCOPY = libvirt.VIR_MIGRATE_POSTCOPY
MIGRATE_UNSAFE = libvirt.VIR_MIGRATE_UNSAFE
MIGRATE_PARALLEL = libvirt.VIR_MIGRATE_PARALLEL
MIGRATE_COMPRESSED = libvirt.VIR_MIGRATE_COMPRESSED
MIGRATE_POSTCOPY_RESUME = libvirt.VIR_MIGRATE_POSTCOPY_RESUME

PARAM_URI = libvirt.VIR_MIGRATE_PARAM_URI
PARAM_BANDWIDTH = libvirt.VIR_MIGRATE_PARAM_BANDWIDTH
PARAM_BANDWIDTH_POSTCOPY = libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY
PARAM_LISTEN_ADDRESS = libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS
PARAM_MIGRATE_DISKS = libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS
PARAM_PARALLEL_CONNECTIONS = libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS
PARAM_COMPRESSION = libvirt.VIR_MIGRATE_PARAM_COMPRESSION

DOMAIN_STATS_DIRTYRATE = libvirt.VIR_DOMAIN_STATS_DIRTYRATE
DIRTYRATE_MEASURED = 2    # dirtyrate.calc_status once the measure is done

ERR_NO_DOMAIN = libvirt.VIR_ERR_NO_DOMAIN
ERR_OPERATION_ABORTED = libvirt.VIR_ERR_OPERATION_ABORTED
ERR_OPERATION_INVALID = libvirt.VIR_ERR_OPERATION_INVALID
ERR_OPERATION_UNSUPPORTED = libvirt.VIR_ERR_OPERATION_UNSUPPORTED
ERR_NO_STORAGE_POOL = libvirt.VIR_ERR_NO_STORAGE_POOL
ERR_NO_STORAGE_VOL = libvirt.VIR_ERR_NO_STORAGE_VOL
ERR_MIGRATE_UNSAFE = libvirt.VIR_ERR_MIGRATE_UNSAFE
LIST_STORAGE_POOLS_ACTIVE = libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE

JOB_STATS_COMPLETED = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
JOB_STATS_KEEP_COMPLETED = libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED

JOB_TYPES = {
    libvirt.VIR_DOMAIN_JOB_NONE: 'none',
    libvirt.VIR_DOMAIN_JOB_BOUNDED: 'bounded',
    libvirt.VIR_DOMAIN_JOB_UNBOUNDED: 'unbounded',
    libvirt.VIR_DOMAIN_JOB_COMPLETED: 'completed',
    libvirt.VIR_DOMAIN_JOB_FAILED: 'failed',
    libvirt.VIR_DOMAIN_JOB_CANCELLED: 'cancelled',
}

# Domain state details (see :meth:`Host.get_state`).
INCOMING = 'incoming'     # paused as the destination of a running migration
POSTCOPY = 'postcopy'     # a migration of this domain runs in post-copy
MIGRATED = 'migrated'     # shut off because it migrated away
POSTCOPY_FAILED = 'postcopy-failed'   # its migration failed after the switch to post-copy

_STATE_DETAILS = {
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION): INCOMING,
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY): POSTCOPY,
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY): POSTCOPY,
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED): MIGRATED,
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED): POSTCOPY_FAILED,
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED):
        POSTCOPY_FAILED,
}

# Tried in order: a driver that does not know a flag refuses it ("unsupported flags").
_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
)

_POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: 'unknown',
    libvirt.VIR_DOMAIN_RUNNING: 'running',
    libvirt.VIR_DOMAIN_BLOCKED: 'running',
    libvirt.VIR_DOMAIN_PAUSED: 'paused',
    libvirt.VIR_DOMAIN_SHUTDOWN: 'running',
    libvirt.VIR_DOMAIN_SHUTOFF: 'shutoff',
    libvirt.VIR_DOMAIN_CRASHED: 'crashed',
    libvirt.VIR_DOMAIN_PMSUSPENDED: 'suspended',
}


def _ignore_libvirt_errors(_ctx, _err):
    """libvirt prints every error on stderr by default; we raise and log instead."""


libvirt.registerErrorHandler(_ignore_libvirt_errors, None)


class Host:
    """One libvirtd, reached at ``uri``."""

    def __init__(self, uri, connect_timeout=10, open_connection=None):
        """
        :param uri: libvirt connection URI.
        :param connect_timeout: seconds to wait for libvirtd to accept the connection.
        :param open_connection: callable(uri) -> virConnect; defaults to libvirt.open.
        """
        self.uri = uri
        self._timeout = connect_timeout
        self._open = open_connection or libvirt.open
        self._conn = None
        self._lock = threading.Lock()
        self._facts = {}   # read on self._conn (see _fact); guarded by _lock

    def _open_bounded(self):
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self._open, self.uri)
        pool.shutdown(wait=False)
        try:
            return future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason='no answer within %d s' % self._timeout)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason=exc.get_error_message() or str(exc)) from exc

    def get_connection(self):
        """Return an open connection, reopening it if libvirtd went away.

        :raises HypervisorUnavailable: libvirtd cannot be reached.
        """
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                LOG.warning('Connection to libvirt at %s was lost; reconnecting', self.uri)
            self._conn = self._open_bounded()
            self._facts = {}
            return self._conn

    def _fact(self, conn, key, read):
        """What ``read()`` returns, read once per connection ``conn``.

        Only for answers that cannot change while the libvirtd behind ``conn`` runs: a
        libvirtd that restarted is reached on a new connection, which reads them again.
        """
        value = self._known(conn, key)
        if value is _UNKNOWN:
            value = read()
            self._remember(conn, key, value)
        return value

    def _known(self, conn, key):
        """The value kept for ``key`` on ``conn``, or _UNKNOWN."""
        with self._lock:
            if conn is not self._conn:
                return _UNKNOWN
            return self._facts.get(key, _UNKNOWN)

    def _remember(self, conn, key, value):
        """Keep ``value`` for ``key`` while ``conn`` is the shared connection.

        A value read on a connection replaced meanwhile is not kept. CPU verdicts
        beyond CPU_COMPARISONS_KEPT drop the oldest one.
        """
        with self._lock:
            if conn is not self._conn:
                return
            self._facts[key] = value
            if key[0] == _COMPARE_CPU:
                verdicts = [k for k in self._facts if k[0] == _COMPARE_CPU]
                for old in verdicts[:max(len(verdicts) - CPU_COMPARISONS_KEPT, 0)]:
                    del self._facts[old]

    @contextlib.contextmanager
    def job_connection(self):
        """Yield a new connection for one long-blocking job call, closed afterwards.

        Only the job's own call (and the look-up of its domain) should use it; the
        statistics, abort and pause calls that steer the job stay on the shared
        connection, which the job then cannot stall (see the module docstring).

        :raises HypervisorUnavailable: libvirtd cannot be reached.
        """
        conn = self._open_bounded()
        try:
            yield conn
        finally:
            try:
                conn.close()
            except libvirt.libvirtError as exc:
                LOG.debug('Closing a job connection to %s failed: %s', self.uri,
                          error_message(exc))

    def close(self):
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None

    # --- inventory ------------------------------------------------------------------------

    def get_capabilities(self):
        """Return the host part of libvirt's capabilities as a dict (a copy).

        NOTE: read and parsed once per connection. libvirtd rebuilds the whole
        capabilities document (11 KB on the lab) at every ``getCapabilities``, and the
        agent asked for it three times per migration (the source's check, the
        destination's check and claim): 3.6-3.9 ms each on the lab (medians of 3 bench
        runs of 10 migrations, libvirt 9.0), 11 of the 33 ms the agents spent before
        the migration call. The host part used here (host UUID, host CPU) is fixed
        while libvirtd runs: its QEMU driver probes the host CPU once
        (virQEMUDriverGetHostCPU) and the UUID comes from its configuration.
        """
        conn = self.get_connection()
        caps = self._fact(conn, ('capabilities',),
                          lambda: self._parse_capabilities(conn.getCapabilities()))
        return dict(caps, cpu_features=list(caps['cpu_features']))

    @staticmethod
    def _parse_capabilities(caps_xml):
        caps = ElementTree.fromstring(caps_xml)
        cpu = caps.find('./host/cpu')
        features = sorted(f.get('name') for f in cpu.findall('feature')) \
            if cpu is not None else []
        return {
            'host_uuid': caps.findtext('./host/uuid'),
            'cpu_arch': cpu.findtext('arch') if cpu is not None else None,
            'cpu_model': cpu.findtext('model') if cpu is not None else None,
            'cpu_vendor': cpu.findtext('vendor') if cpu is not None else None,
            'cpu_features': features,
            'cpu_xml': (ElementTree.tostring(cpu, encoding='unicode')
                        if cpu is not None else None),
        }

    def get_info(self):
        """Return memory (MiB), free memory (MiB), CPUs, and hypervisor versions.

        NOTE: memory, free memory, CPUs and the hypervisor (QEMU) version are read at
        every call: memory changes, and libvirtd notices a QEMU upgraded under it. The
        hypervisor type and libvirtd's own version cannot change while it runs: read
        once per connection (two of the five calls, 0.2-0.3 ms per inventory on the
        lab, three inventories per migration).
        """
        conn = self.get_connection()
        info = conn.getInfo()
        return {
            'memory_mb': info[1],
            'vcpus': info[2],
            'memory_mb_free': conn.getFreeMemory() // (1024 * 1024),
            'hypervisor_type': self._fact(conn, ('type',), conn.getType),
            'hypervisor_version': conn.getVersion(),
            'libvirt_version': self._fact(conn, ('libvirt version',), conn.getLibVersion),
        }

    def list_domains(self):
        """Return every defined domain as dicts (uuid, name, power_state, memory, vcpus).

        A domain that disappears while being read is skipped.
        """
        result = []
        for dom in self.call('list domains', self.get_connection().listAllDomains, 0):
            try:
                result.append(self.describe_domain(dom))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return result

    def compare_cpu(self, cpu_xml):
        """Compare a host CPU description with this host's CPU.

        NOTE: ``compareCPU``, not ``compareHypervisorCPU``: the XML is the ``<cpu>`` of
        another host's capabilities (a host CPU, with every feature of the silicon), so
        the host-to-host comparison is the meaningful one. ``compareHypervisorCPU``
        judges what the hypervisor can give a guest, and on the lab's machines (TCG,
        kvm_pvm) it even rejects the host's own capabilities CPU.

        :returns: None when this host's CPU can run it (identical or superset) or when
            this libvirt driver cannot compare CPUs at all (logged), else the reason in
            libvirt's words (also when libvirt cannot read the XML).
        :raises HypervisorUnavailable: libvirtd cannot be reached or does not answer.

        NOTE: a verdict (compatible, or incompatible with libvirt's reason) is kept per
        connection and CPU description: it depends only on this host's CPU and
        libvirt's CPU map, both fixed while libvirtd runs. Every destination check
        compared the source's CPU again (1.1-4.2 ms, medians of 4 bench runs on the
        lab). Errors, and a driver that cannot compare, are asked again each time.
        """
        conn = self.get_connection()
        key = (_COMPARE_CPU, cpu_xml)
        verdict = self._known(conn, key)
        if verdict is _UNKNOWN:
            verdict, lasting = self._compare_cpu(conn, cpu_xml)
            if lasting:
                self._remember(conn, key, verdict)
        return verdict

    def _compare_cpu(self, conn, cpu_xml):
        """(verdict as :meth:`compare_cpu` returns it, whether it lasts while libvirtd
        runs)."""
        try:
            result = self.call('compare CPU', conn.compareCPU, cpu_xml,
                               libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
                return error_message(exc), True
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                # As Nova does: a driver that cannot compare (libvirt's test driver)
                # does not block migrations.
                LOG.warning('libvirt at %s cannot compare CPUs (%s); CPU check skipped',
                            self.uri, error_message(exc))
                return None, False
            return ('libvirt cannot compare it with this host\'s CPU: %s'
                    % error_message(exc), False)
        if result == libvirt.VIR_CPU_COMPARE_INCOMPATIBLE:
            return 'libvirt judges it incompatible', True
        if result == libvirt.VIR_CPU_COMPARE_ERROR:
            return 'libvirt could not compare it', False
        return None, True

    # --- domains ---------------------------------------------------------------------------

    def call(self, what, fn, *args, timeout=None):
        """Return fn(*args), waiting at most ``timeout`` (default CALL_TIMEOUT) seconds.

        The call runs in a daemon thread; on timeout that thread is abandoned (libvirt
        releases the GIL, so it costs nothing but a thread until libvirt answers).

        :raises libvirtError: what libvirt raised.
        :raises HypervisorUnavailable: no answer in time.
        """
        timeout = CALL_TIMEOUT if timeout is None else timeout
        box = {}

        def target():
            try:
                box['value'] = fn(*args)
            except BaseException as exc:  # handed over to the caller's thread below
                box['error'] = exc

        worker = threading.Thread(target=target, name='libvirt-call', daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason='%s: no answer within %d s' % (what, timeout))
        if 'error' in box:
            raise box['error']
        return box.get('value')

    def guest_agent_connected(self, dom):
        """Whether the domain has a QEMU guest agent channel that its guest opened."""
        xml = self.call('read the definition', dom.XMLDesc, 0)
        for target in ElementTree.fromstring(xml).iterfind('./devices/channel/target'):
            if (target.get('type'), target.get('name')) == ('virtio', GUEST_AGENT_CHANNEL):
                return target.get('state') == 'connected'
        return False

    def ping_guest_agent(self, dom, timeout):
        """Ask the guest's agent for a ``guest-ping``; waits at most ``timeout`` s.

        :raises libvirtError: the agent did not answer (libvirt's own timeout), or
            libvirt failed. :raises HypervisorUnavailable: libvirt did not answer.
        """
        self.call('ping the guest agent', libvirt_qemu.qemuAgentCommand, dom, GUEST_PING,
                  int(timeout), 0, timeout=timeout + 5)

    def find_domain(self, uuid, conn=None):
        """Return the virDomain with that UUID, or None when it is not defined here.

        :param conn: the connection to look it up on (the domain's calls go through
            it); the shared one by default.
        :raises HypervisorUnavailable: libvirtd cannot be reached or does not answer.
        :raises libvirtError: any other libvirt failure.
        """
        conn = conn or self.get_connection()
        try:
            return self.call('look up domain %s' % uuid, conn.lookupByUUIDString, uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN,
                                        libvirt.VIR_ERR_INVALID_ARG):
                return None
            raise

    def describe_domain(self, dom):
        """Return a domain as a dict (uuid, name, power_state, memory_mb, vcpus,
        migration_profile)."""
        state, max_mem_kib, _mem, vcpus, _cpu_time = self.call('read domain', dom.info)
        return {'uuid': dom.UUIDString(), 'name': dom.name(),
                'power_state': _POWER_STATES.get(state, 'unknown'),
                'memory_mb': max_mem_kib // 1024, 'vcpus': vcpus,
                'migration_profile': self.migration_profile(dom)}

    def migration_profile(self, dom):
        """The migration profile the domain's metadata names, or None.

        The element ``<mc:instance xmlns:mc="METADATA_NAMESPACE">`` of the domain's
        ``<metadata>``, holding ``<mc:migration-profile>NAME</mc:migration-profile>``.
        """
        try:
            xml = self.call('read domain metadata', dom.metadata,
                            libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NAMESPACE, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise
        try:
            element = ElementTree.fromstring(xml)
        except ElementTree.ParseError:
            LOG.warning('Domain %s: its migration-conductor metadata is not XML; no '
                        'profile taken from it', dom.UUIDString())
            return None
        for child in element.iter():
            if child.tag.rsplit('}', 1)[-1] == 'migration-profile' and child.text:
                return child.text.strip() or None
        return None

    def get_state(self, dom):
        """Return (power_state, detail) of a domain.

        detail is INCOMING, POSTCOPY, POSTCOPY_FAILED, MIGRATED or None.
        """
        state, reason = self.call('read domain state', dom.state, 0)
        return (_POWER_STATES.get(state, 'unknown'),
                _STATE_DETAILS.get((state, reason)))

    def destroy_domain(self, dom):
        """Stop a domain if it runs and undefine it if it is persistent.

        A transient domain (an incoming copy before its migration finished) vanishes
        when stopped. Undefining also removes managed save, snapshot and checkpoint
        metadata and NVRAM, which would otherwise make libvirt refuse.

        :returns: True if something was removed, False if it was already gone.
        """
        removed = False
        try:
            if self.call('check domain', dom.isActive):
                self.call('destroy domain', dom.destroy)
                removed = True
        except libvirt.libvirtError as exc:
            # Gone or stopped meanwhile (a migration may end just now): nothing to do.
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN,
                                            libvirt.VIR_ERR_OPERATION_INVALID):
                raise
        try:
            if self.call('check domain', dom.isPersistent):
                self._undefine(dom)
                removed = True
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        return removed

    def _undefine(self, dom):
        for flags in _UNDEFINE_FLAGS:
            try:
                return self.call('undefine domain', dom.undefineFlags, flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG,
                                                libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                LOG.debug('Instance %s: undefine with flags %#x refused (%s); trying '
                          'fewer', dom.UUIDString(), flags, error_message(exc))
        return self.call('undefine domain', dom.undefine)


def error_message(exc):
    """libvirt's message of a libvirtError, on one line."""
    return ' '.join((exc.get_error_message() or str(exc)).split())
