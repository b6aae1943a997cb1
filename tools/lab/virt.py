"""The lab's only door to libvirt: connections to lab hosts and bounded libvirt calls.

libvirt calls block the calling thread, and a wedged libvirtd or QEMU can block them forever
(LAB.md saw a ``migrateStartPostCopy`` that never returned). Each call therefore runs in a
short-lived daemon thread and the caller waits at most ``timeout`` seconds for it; on timeout
the caller gets a LabTimeout naming the host and its log, and the stuck thread is abandoned
(it is a daemon thread, so it never keeps the process alive). libvirt-python releases the GIL
inside libvirt, so other threads keep running meanwhile.

One :class:`HostConnection` is used by one thread at a time; open one per thread.
"""

import json
import logging
import threading

from tools.lab import errors

try:
    import libvirt
except ImportError as _exc:  # NOTE: "lab install" must run before libvirt is installed
    libvirt = None
    _IMPORT_ERROR = _exc

LOG = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10
CALL_TIMEOUT = 60


def require_libvirt():
    """Raise HostError when libvirt-python (or the libvirt library) cannot be loaded."""
    if libvirt is None:
        raise errors.HostError('libvirt-python cannot be loaded (%s): run "python -m tools.lab '
                               'install" and the project\'s tools/bootstrap.sh' % _IMPORT_ERROR)


def bounded(what, fn, *args, timeout=CALL_TIMEOUT, host='?', log=None, error=errors.HostError):
    """Return fn(*args), run in a daemon thread and waited for at most timeout seconds.

    :raises error: libvirt raised (message: what, host, libvirt's words, log path); when
        error is None the libvirtError itself is raised.
    :raises LabTimeout: fn did not return in time.
    """
    box = {}

    def target():
        try:
            box['value'] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread below
            box['error'] = exc

    worker = threading.Thread(target=target, daemon=True, name='lab-libvirt-call')
    worker.start()
    worker.join(timeout)
    where = ' (log: %s)' % log if log else ''
    if worker.is_alive():
        raise errors.LabTimeout('%s on host %s: no answer from libvirt within %ds%s'
                                % (what, host, timeout, where))
    if 'error' in box:
        exc = box['error']
        if isinstance(exc, libvirt.libvirtError) and error is not None:
            raise error('%s on host %s failed: %s%s'
                        % (what, host, ' '.join(str(exc).split()), where)) from exc
        raise exc
    return box.get('value')


def open_uri(uri, timeout=CONNECT_TIMEOUT):
    """Open a read-write libvirt connection; raise libvirt.libvirtError or LabTimeout."""
    require_libvirt()
    return bounded('connect to %s' % uri, libvirt.open, uri, timeout=timeout, host=uri,
                   error=None)


class HostConnection:
    """A libvirt connection to one lab host, closed on exit of the with-block."""

    def __init__(self, host_name, uri, log_path, timeout=CONNECT_TIMEOUT):
        self.host_name = host_name
        self.uri = uri
        self.log_path = log_path
        self.timeout = timeout
        self.conn = None

    def __enter__(self):
        require_libvirt()
        try:
            self.conn = open_uri(self.uri, timeout=self.timeout)
        except libvirt.libvirtError as exc:
            raise errors.HostError('cannot connect to host %s at %s: %s (log: %s)'
                                   % (self.host_name, self.uri, _short(exc),
                                      self.log_path)) from exc
        except errors.LabTimeout:
            raise errors.LabTimeout('cannot connect to host %s at %s: no answer within %ds '
                                    '(log: %s)' % (self.host_name, self.uri, self.timeout,
                                                   self.log_path)) from None
        return self

    def __exit__(self, *exc_info):
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                bounded('close connection', conn.close, timeout=self.timeout,
                        host=self.host_name)
            except errors.LabError as exc:
                LOG.warning('%s', exc)

    def call(self, what, fn, *args, timeout=CALL_TIMEOUT, error=errors.HostError, log=None):
        """Bounded fn(*args) on this host; errors name the host and the log."""
        return bounded(what, fn, *args, timeout=timeout, host=self.host_name,
                       log=log or self.log_path, error=error)

    def find_domain(self, name):
        """The domain called name on this host, or None when it has no such domain.

        NOTE: searched in the domain list rather than with lookupByName, whose "not found"
        error libvirt would print on the stderr of every program using the lab.
        """
        for dom in self.list_domains():
            try:
                if dom.name() == name:
                    return dom
            except libvirt.libvirtError:
                continue
        return None

    def list_domains(self):
        return self.call('list guests', self.conn.listAllDomains, 0)

    def qmp(self, dom, command, log=None):
        """Run one QMP command on a running domain and return its decoded "return" value."""
        import libvirt_qemu  # NOTE: only here; the lab's only QEMU-specific libvirt call

        reply = self.call('QMP %s on guest %s' % (command, dom.name()),
                          libvirt_qemu.qemuMonitorCommand, dom,
                          json.dumps({'execute': command}), 0, error=errors.GuestError,
                          log=log)
        return json.loads(reply).get('return')


def _short(exc):
    return ' '.join(str(exc).split()) if exc is not None else 'unknown error'


def state_name(state_code):
    """libvirt's domain state number as a word ("running", "paused", "shutoff", ...)."""
    names = {
        libvirt.VIR_DOMAIN_NOSTATE: 'nostate',
        libvirt.VIR_DOMAIN_RUNNING: 'running',
        libvirt.VIR_DOMAIN_BLOCKED: 'blocked',
        libvirt.VIR_DOMAIN_PAUSED: 'paused',
        libvirt.VIR_DOMAIN_SHUTDOWN: 'shutdown',
        libvirt.VIR_DOMAIN_SHUTOFF: 'shutoff',
        libvirt.VIR_DOMAIN_CRASHED: 'crashed',
        libvirt.VIR_DOMAIN_PMSUSPENDED: 'pmsuspended',
    }
    return names.get(state_code, 'unknown(%s)' % state_code)


def is_no_domain(exc):
    """True when a libvirt error says the domain does not exist (any more)."""
    return (isinstance(exc, libvirt.libvirtError)
            and exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)
