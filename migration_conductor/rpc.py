"""RPC plumbing shared by the conductor, the agents and the CLI (oslo.messaging).

Concurrency model: servers use oslo.messaging's ``threading`` executor, so every incoming
message runs in a thread of a bounded pool; endpoints must therefore be thread-safe. No
eventlet anywhere.

Transports are cached per URL inside a process: the all-in-one mode runs the conductor
and several agents in one process, and they must share one in-process ``fake:/``
transport to reach each other.
"""

import importlib
import logging
import threading

import kombu
import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
from oslo_messaging.rpc import dispatcher

from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor.objects import base as objects_base

LOG = logging.getLogger(__name__)

ALLOWED_REMOTE_EXMODS = ['migration_conductor.exception']
_TRANSPORTS = {}
_TRANSPORTS_LOCK = threading.Lock()
_PREFLIGHT_TIMEOUT = 5
DEFAULT_TRANSPORT_URL = 'fake:/'
_GLOBAL_ONLY_GROUPS = (('oslo_messaging._tracing.client', 'oslo_messaging_tracing'),
                       ('oslo_messaging._metrics.client', 'oslo_messaging_metrics'))


class RequestContextSerializer(messaging.Serializer):
    """Serializes the request context and the project's versioned objects."""

    def __init__(self, base=None):
        self._base = base or objects_base.MigrationConductorObjectSerializer()

    def serialize_entity(self, ctxt, entity):
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt, entity):
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt):
        return ctxt.to_dict()

    def deserialize_context(self, ctxt):
        return mc_context.RequestContext.from_dict(ctxt)


def _transport_error(url, reason):
    return exception.ConfigurationError(
        setting='[DEFAULT] transport_url',
        reason='%s: %s' % (mask_url(url), reason))


def register_opts(conf):
    """Register oslo.messaging's [DEFAULT] options, with the in-process default URL.

    ``transport_url`` defaults to ``fake:/``: conductor and agents in one process
    (all-in-one mode), the embedded default. Deployments set ``rabbit://...``.
    """
    for group, opts in messaging_opts.list_opts():
        if group is None:
            conf.register_opts(opts)
    conf.set_default('transport_url', DEFAULT_TRANSPORT_URL)
    # NOTE: oslo.messaging 18 reads [oslo_messaging_tracing] and [oslo_messaging_metrics]
    # on every call but registers them only on the global cfg.CONF; our services use
    # their own ConfigOpts (several services share a process in the all-in-one mode),
    # so register them here too. Older releases have neither module.
    for module_name, group in _GLOBAL_ONLY_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        conf.register_opts(getattr(module, group), group=group)


def mask_url(url):
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    if '@' not in url or '://' not in url:
        return url
    scheme, rest = url.split('://', 1)
    creds, _, tail = rest.rpartition('@')
    hosts = []
    for part in creds.split(','):
        user = part.split(':', 1)[0]
        hosts.append(user + ':***' if ':' in part else user)
    return '%s://%s@%s' % (scheme, ','.join(hosts), tail)


def get_transport(conf):
    """Return the process-wide RPC transport for ``conf.transport_url``.

    :raises ConfigurationError: the URL is malformed or names an unknown driver.
    """
    url = conf.transport_url or DEFAULT_TRANSPORT_URL
    with _TRANSPORTS_LOCK:
        transport = _TRANSPORTS.get(url)
        if transport is None:
            try:
                transport = messaging.get_rpc_transport(
                    conf, url=url, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)
            except messaging.InvalidTransportURL as exc:
                raise _transport_error(url, 'not a valid transport URL (%s)' % exc)
            except messaging.DriverLoadFailure as exc:
                raise _transport_error(url, 'unknown messaging driver (%s)' % exc)
            _TRANSPORTS[url] = transport
    return transport


def is_in_process(conf):
    """Whether the transport is the in-process one of the all-in-one mode."""
    return (conf.transport_url or DEFAULT_TRANSPORT_URL).startswith('fake:')


def check_transport(conf):
    """Fail fast, with one line naming the setting, when the broker does not answer.

    oslo.messaging retries an unreachable broker forever in the background; a service
    that starts with a wrong URL should say so at once instead.

    :raises ConfigurationError: no host of a ``rabbit://`` URL accepts a connection.
    """
    url = conf.transport_url or DEFAULT_TRANSPORT_URL
    get_transport(conf)
    parsed = messaging.TransportURL.parse(conf, url)
    if parsed.transport not in ('rabbit', 'amqp'):
        return
    errors = []
    for host in parsed.hosts or []:
        connection = kombu.Connection(
            hostname=host.hostname or '127.0.0.1', port=host.port or 5672,
            userid=host.username or 'guest', password=host.password or 'guest',
            virtual_host=parsed.virtual_host or '/',
            connect_timeout=_PREFLIGHT_TIMEOUT)
        try:
            connection.connect()
            return
        except Exception as exc:  # kombu raises socket, AMQP and auth errors alike
            errors.append('%s:%s %s' % (host.hostname, host.port, exc))
        finally:
            connection.release()
    raise _transport_error(url, 'cannot connect to the message broker (%s)'
                           % '; '.join(errors))


_OBSERVERS = []


def add_observer(observer):
    """Call ``observer(sender, kind, topic, server, method)`` for every message sent.

    Tests and the benchmark count messages by sender and receiver with it; with no
    observer, sending costs nothing more.
    """
    _OBSERVERS.append(observer)


def remove_observer(observer):
    _OBSERVERS.remove(observer)


class _ObservedCallContext:
    def __init__(self, cctxt, sender):
        self._cctxt = cctxt
        self._sender = sender

    def _notify(self, kind, method):
        target = self._cctxt.target
        for observer in list(_OBSERVERS):
            observer(self._sender, kind, target.topic, target.server, method)

    def can_send_version(self, version):
        """Whether ``version`` is within this context's version cap (see Nova)."""
        return self._cctxt.can_send_version(version)

    def call(self, ctxt, method, **kwargs):
        self._notify('call', method)
        return self._cctxt.call(ctxt, method, **kwargs)

    def cast(self, ctxt, method, **kwargs):
        self._notify('cast', method)
        return self._cctxt.cast(ctxt, method, **kwargs)


class Client:
    """An RPC client that knows who sends (``sender``, e.g. ``agent:host-1``)."""

    def __init__(self, client, sender):
        self._client = client
        self.sender = sender

    def prepare(self, **kwargs):
        return _ObservedCallContext(self._client.prepare(**kwargs), self.sender)


def get_client(conf, target, sender, version_cap=None, timeout=None):
    """Return an RPC client for ``target`` with the project's serializer.

    :param sender: who sends through this client, for observers (``conductor:<host>``,
        ``agent:<host>``, ``migctl``).
    """
    return Client(messaging.get_rpc_client(
        get_transport(conf), target, version_cap=version_cap,
        serializer=RequestContextSerializer(), timeout=timeout), sender)


def get_server(conf, target, endpoints):
    """Return a (not yet started) RPC server running ``endpoints`` in threads."""
    # NOTE: no executor argument: threading is oslo.messaging's only executor now, and
    # naming it is deprecated.
    return messaging.get_rpc_server(
        get_transport(conf), target, endpoints,
        serializer=RequestContextSerializer(),
        access_policy=dispatcher.DefaultRPCAccessPolicy)


def cleanup():
    """Close every cached transport (end of process or of a test)."""
    with _TRANSPORTS_LOCK:
        for transport in _TRANSPORTS.values():
            transport.cleanup()
        _TRANSPORTS.clear()
