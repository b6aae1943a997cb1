"""The agent's connection to its libvirtd: the only module that imports ``libvirt``.

:class:`Host` owns one libvirt connection, opens it with a bounded wait, reopens it when
libvirtd restarted, and turns libvirt's answers into plain Python values. The connection
factory is injectable, so two agents (two hosts) can live in one process in tests.

Concurrency: libvirt connections are thread-safe; the lock here only guards (re)opening.
"""

import concurrent.futures
import logging
import threading
from xml.etree import ElementTree

import libvirt

from migration_conductor import exception

LOG = logging.getLogger(__name__)

libvirtError = libvirt.libvirtError

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
            return self._conn

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
        """Return the host part of libvirt's capabilities as a dict."""
        caps = ElementTree.fromstring(self.get_connection().getCapabilities())
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
        """Return memory (MiB), free memory (MiB), CPUs, and hypervisor versions."""
        conn = self.get_connection()
        info = conn.getInfo()
        return {
            'memory_mb': info[1],
            'vcpus': info[2],
            'memory_mb_free': conn.getFreeMemory() // (1024 * 1024),
            'hypervisor_type': conn.getType(),
            'hypervisor_version': conn.getVersion(),
            'libvirt_version': conn.getLibVersion(),
        }

    def list_domains(self):
        """Return every defined domain as dicts (uuid, name, power_state, memory, vcpus).

        A domain that disappears while being read is skipped.
        """
        result = []
        for dom in self.get_connection().listAllDomains(0):
            try:
                state, max_mem_kib, _mem, vcpus, _cpu_time = dom.info()
                result.append({'uuid': dom.UUIDString(), 'name': dom.name(),
                               'power_state': _POWER_STATES.get(state, 'unknown'),
                               'memory_mb': max_mem_kib // 1024, 'vcpus': vcpus})
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return result
