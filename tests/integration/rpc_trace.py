"""Count RPC messages on the real RabbitMQ, by the OS process that really sent them.

:class:`BrokerTrace` is a context manager for the integration tier. It relies on nothing
the services say about themselves (not ``migration_conductor.rpc.add_observer``, not the
``connection_name`` oslo.messaging puts in its client properties): the broker says which
connection published a message, and the kernel says which process owns that connection.

How it works:

- **The firehose.** ``rabbitmqctl trace_on -p <vhost>`` makes RabbitMQ publish a copy of
  every message published in the vhost to the ``amq.rabbitmq.trace`` topic exchange,
  with routing key ``publish.<exchange>`` and headers naming the exchange, the routing
  keys, the queues it was routed to and the publishing connection (RabbitMQ's name for
  it, ``"127.0.0.1:41234 -> 127.0.0.1:5672"``). The trace binds an exclusive,
  auto-delete queue to ``publish.#`` before tracing is switched on and consumes it (no
  acks) in a background thread.
- **The envelope.** oslo.messaging's rabbit driver publishes JSON
  ``{"oslo.version": "2.0", "oslo.message": "<JSON string>"}``; the inner message of a
  call or cast holds ``method``, ``args`` and ``_unique_id``, a call also ``_msg_id`` and
  ``_reply_q``; a reply (published to the default exchange with the caller's
  ``reply_<uuid>`` queue as routing key) holds ``result``, ``failure``, ``ending`` and
  the call's ``_msg_id``. Each traced message is classified as ``call``, ``cast``,
  ``fanout`` (a cast to the ``<topic>_fanout`` exchange), ``reply``, ``heartbeat`` (the
  empty, non-ending reply of oslo.messaging's call monitor), ``notification`` or
  ``other`` (not an oslo.messaging RPC envelope). A reply is linked to its call by
  ``_msg_id``, so it reports the call's topic, server and method, and the caller as its
  recipient.
- **The sender.** A connection is resolved when its first message is seen, while it is
  still open: the client address and port of its name are looked up with ``ss -Htnp``
  among this machine's sockets connected to the broker's port, which gives the pid
  owning the socket; ``/proc/<pid>/cmdline`` gives a label (see :func:`default_label`:
  ``migration-compute-agent:agent-host-1`` for ``migration-compute-agent --config-file
  .../agent-host-1.conf``), unless the caller's ``labeler(pid)`` names it (asked when
  counts are read, so it may learn pids late). The owner is cached per connection
  (connections are long-lived). A background thread also snapshots the broker's client
  sockets and their owners every ``socket_poll_interval`` seconds, so a connection that
  lived that long is attributed even when it closed before its first message was read.
  A connection found nowhere is ``unknown:<connection name>`` with pid ``None``.

Concurrency model: one consumer thread and one socket-polling thread; everything they
record is guarded by one lock, and every read returns copies. The firehose is
asynchronous: call :meth:`BrokerTrace.drain` (a marker published through the broker,
then a quiet period) before reading counts.

Switching tracing on and off: every BrokerTrace on this machine registers itself in a
small state file under a file lock (``<tmpdir>/rabbitmq-trace-<vhost>.json``); tracing
is switched off only by the last live holder, and never when it was already on before
the first holder (someone traces by hand). A holder that died (SIGKILL) leaves tracing
on until the next BrokerTrace on this machine enters and leaves: that one drops it.

Limits:

- Cost: while tracing is on, RabbitMQ publishes every message of the vhost twice (and
  builds a trace copy of every delivery too, dropped unless bound), and every body comes
  to this test process. It sees *every* publish in the vhost, other test runs' included:
  filter by topic (:func:`on_topic`) with topics unique to the test.
- The broker and the senders must be on this machine and in this network namespace
  (``ss`` sees only its own namespace; as non-root it cannot see other users'
  processes); a process behind a proxy or on another host is ``unknown``.
- Attribution is per process: two services in one process (the all-in-one mode) share a
  label; a socket shared by several processes (inherited over ``fork``) is
  ``ambiguous`` and counts as unknown. Pids and ports are assumed not to be reused
  during one trace.
- A process that connects, publishes and disconnects within a few milliseconds (less
  than the poll interval, and before its first message is read) can be ``unknown``:
  a client doing one call and three casts to a trivial server and exiting at once was
  unknown in 3 runs of 5. A call that waits for real work (``migctl``) is normally
  resolved; keep test processes alive until :meth:`BrokerTrace.drain` returned. Each
  poll runs ``ss -p`` (about 10 ms: it reads every process's file descriptors).
- A trace connection lost (a broker restart) makes the trace incomplete: reads raise
  :class:`TraceError` instead of returning partial counts. Compressed bodies
  (``kombu_compression``) are not decoded (``other``). Only the broker node that
  ``rabbitmqctl`` talks to is traced.
"""

import collections
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import kombu

LOG = logging.getLogger(__name__)

DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672//'
TRACE_EXCHANGE = 'amq.rabbitmq.trace'
MARKER_PREFIX = 'rpc-trace-marker.'
FANOUT_SUFFIX = '_fanout'
REPLY_PREFIX = 'reply_'
# Kinds of message a process sends on its own initiative (a reply answers someone).
SENDS = frozenset(('call', 'cast', 'fanout'))
DEFAULT_FIELDS = ('sender', 'kind', 'topic', 'method')
_CTL_TIMEOUT = 60
_SBIN = ':/usr/sbin:/sbin'


class TraceError(Exception):
    """The trace cannot start, or what it recorded is incomplete."""


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """Who owns a connection's client socket.

    ``pid`` is None when no process or several processes own it (then ``pids`` says
    which); ``label`` is :func:`default_label` of ``cmdline`` (or ``unknown:<connection
    name>``, ``ambiguous:<labels>``, ``pid-<pid>`` for a process gone before it was
    seen); ``program`` is the program part of the command line.
    """
    label: str
    pid: int | None = None
    pids: tuple = ()
    cmdline: tuple = ()
    program: str | None = None


Target = collections.namedtuple('Target', 'kind topic server queue')
Target.__doc__ = """Where a message goes: ``kind`` is ``topic`` (any server of the topic),
``server`` (``<topic>.<server>``), ``fanout``, ``reply`` (``queue`` is the caller's reply
queue, ``topic``/``server`` those of the call answered), ``notification`` or ``other``."""


class TracedMessage:
    """One publish seen by the firehose (read-only for callers).

    Attributes: ``connection`` and ``channel`` (RabbitMQ's), ``process``
    (:class:`ProcessInfo`), ``exchange``, ``routing_keys``, ``routed_queues`` (the queues
    the broker put it in; empty when it was dropped), ``kind``, ``msg_id``, ``reply_q``,
    ``unique_id``, ``failure`` (the serialized remote exception of a failed reply),
    ``message`` (the decoded oslo.messaging message, or None), ``received``
    (``time.monotonic()`` when read) and ``call`` (for a reply: the call it answers, when
    the trace saw it).
    """

    def __init__(self, connection, channel, process, exchange, routing_keys,
                 routed_queues, message, topics, received, labeler=None):
        self.connection = connection
        self.channel = channel
        self.process = process
        self.exchange = exchange
        self.routing_keys = routing_keys
        self.routed_queues = routed_queues
        self.message = message
        self.received = received
        self.call = None
        self._labeler = labeler
        msg = message or {}
        self.msg_id = msg.get('_msg_id')
        self.reply_q = msg.get('_reply_q')
        self.unique_id = msg.get('_unique_id')
        self.failure = msg.get('failure')
        self.kind = _classify(exchange, msg, message is not None)
        self._method = msg.get('method') if isinstance(msg.get('method'), str) else None
        self._topic, self._server = _split_target(self.kind, exchange, self.routing_key,
                                                  topics)

    @property
    def routing_key(self):
        return self.routing_keys[0] if self.routing_keys else ''

    @property
    def sender(self):
        """The label of the sending process: the trace's labeler's, or its own."""
        if self.process.pid is not None and self._labeler is not None:
            label = self._labeler(self.process.pid)
            if label is not None:
                return label
        return self.process.label

    @property
    def pid(self):
        """The pid of the sending process, None when unknown or ambiguous."""
        return self.process.pid

    @property
    def program(self):
        return self.process.program

    @property
    def method(self):
        """The RPC method; for a reply, that of the call answered (None if unseen)."""
        if self.kind in ('reply', 'heartbeat'):
            return self.call.method if self.call else None
        return self._method

    @property
    def topic(self):
        """The target topic; for a reply, the topic of the call answered."""
        if self.kind in ('reply', 'heartbeat'):
            return self.call.topic if self.call else None
        return self._topic

    @property
    def server(self):
        """The target server (``<topic>.<server>``), or None; for a reply, the call's."""
        if self.kind in ('reply', 'heartbeat'):
            return self.call.server if self.call else None
        return self._server

    @property
    def recipient(self):
        """For a reply: the label of the process that made the call; else None.

        Who consumes a call or cast is not in its publish: see ``routed_queues``.
        """
        if self.kind in ('reply', 'heartbeat') and self.call:
            return self.call.sender
        return None

    @property
    def target(self):
        if self.kind in ('reply', 'heartbeat'):
            return Target('reply', self.topic, self.server, self.routing_key)
        if self.kind in ('call', 'cast'):
            return Target('server' if self._server else 'topic', self._topic,
                          self._server, None)
        if self.kind == 'fanout':
            return Target('fanout', self._topic, None, None)
        return Target(self.kind, self._topic, None, self.routing_key)

    def __repr__(self):
        return ('<TracedMessage %s from %s (pid %s) to %s/%s method=%s>'
                % (self.kind, self.sender, self.pid, self.exchange or '(default)',
                   self.routing_key, self.method))


def _classify(exchange, msg, decoded):
    if not decoded:
        return 'other'
    if isinstance(msg.get('method'), str):
        if exchange.endswith(FANOUT_SUFFIX):
            return 'fanout'
        return 'call' if msg.get('_msg_id') else 'cast'
    if '_msg_id' in msg and ('ending' in msg or 'result' in msg or 'failure' in msg):
        if (not msg.get('ending') and msg.get('result') is None
                and msg.get('failure') is None):
            return 'heartbeat'
        return 'reply'
    if 'event_type' in msg:
        return 'notification'
    return 'other'


def _split_target(kind, exchange, routing_key, topics):
    """(topic, server) of a call, cast or fanout; (routing key, None) otherwise."""
    if kind == 'fanout':
        return exchange[:-len(FANOUT_SUFFIX)], None
    if kind not in ('call', 'cast'):
        return (routing_key or None), None
    # NOTE: topics rarely hold a dot and host names often do: split at the first dot,
    # unless a topic the caller named says otherwise.
    for topic in sorted(topics, key=len, reverse=True):
        if routing_key == topic:
            return topic, None
        if routing_key.startswith(topic + '.'):
            return topic, routing_key[len(topic) + 1:]
    topic, _, server = routing_key.partition('.')
    return topic, (server or None)


def _decode(body):
    """The oslo.messaging message in ``body``, or None when it is not one."""
    try:
        outer = json.loads(body)
        if isinstance(outer, dict) and isinstance(outer.get('oslo.message'), str):
            outer = json.loads(outer['oslo.message'])
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    return outer if isinstance(outer, dict) else None


def on_topic(*topics):
    """A ``where`` predicate: messages to ``topics`` and the replies to their calls."""
    wanted = frozenset(topics)
    return lambda message: message.topic in wanted


def default_label(cmdline):
    """A short label for a command line (a sequence of arguments).

    The program is the script or module a Python interpreter runs (``python -m
    pytest`` is ``pytest``, ``python .../bin/migctl`` is ``migctl``), or the
    executable's name; each ``--config-file`` adds ``:<file name without .conf>``.
    Examples:
    ``migration-conductor:conductor``, ``migration-compute-agent:agent-host-1``.
    """
    program = _program(cmdline)
    configs = []
    args = list(cmdline)
    for i, arg in enumerate(args):
        if arg == '--config-file' and i + 1 < len(args):
            configs.append(args[i + 1])
        elif arg.startswith('--config-file='):
            configs.append(arg.split('=', 1)[1])
    stems = [re.sub(r'\.conf$', '', os.path.basename(path)) for path in configs]
    return ':'.join([program] + stems)


def _program(cmdline):
    args = list(cmdline)
    if not args:
        return '?'
    program = os.path.basename(args[0])
    if not re.match(r'python[\d.]*$', program):
        return program
    rest = args[1:]
    while rest and rest[0].startswith('-') and rest[0] not in ('-m', '-c', '-'):
        option = rest.pop(0)
        if option in ('-X', '-W') and rest:
            rest.pop(0)
    if len(rest) >= 2 and rest[0] == '-m':
        return rest[1]
    if rest and rest[0] == '-c':
        return program + ' -c'
    return os.path.basename(rest[0]) if rest else program


def _parse_connection_name(name):
    """``(client host, client port, server port)`` of a RabbitMQ connection name."""
    match = re.match(r'^\[?([^\]\s]+?)\]?:(\d+) -> \[?([^\]\s]+?)\]?:(\d+)$', name or '')
    if not match:
        return None
    return _host(match.group(1)), int(match.group(2)), int(match.group(4))


def _host(host):
    host = host.strip('[]')
    return host[len('::ffff:'):] if host.startswith('::ffff:') else host


def _split_address(address):
    host, _, port = address.rpartition(':')
    return _host(host), int(port)


def _client_sockets(server_port):
    """``{(client host, client port, server port): pids}`` of this namespace's sockets."""
    ss = shutil.which('ss', path=os.environ.get('PATH', '') + _SBIN)
    if ss is None:
        raise TraceError('ss (iproute2) is required to find the process owning a '
                         'connection to the broker, and is not installed')
    result = subprocess.run([ss, '-Htnp', 'dport', '=', ':%d' % server_port],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise TraceError('ss failed: %s' % result.stderr.strip())
    sockets = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        try:
            host, port = _split_address(fields[3])
            _peer_host, peer_port = _split_address(fields[4])
        except ValueError:
            continue
        if peer_port != server_port:
            continue
        pids = tuple(sorted({int(p) for p in re.findall(r'pid=(\d+)', line)}))
        sockets[(host, port, server_port)] = pids
    return sockets


def _read_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(arg.decode(errors='replace') for arg in raw.split(b'\0') if arg)


def _rabbitmqctl(*args):
    ctl = shutil.which('rabbitmqctl', path=os.environ.get('PATH', '') + _SBIN)
    if ctl is None:
        raise TraceError('rabbitmqctl is required to switch on RabbitMQ\'s firehose '
                         'tracer and is not installed (install rabbitmq-server; run '
                         'as root)')
    try:
        result = subprocess.run([ctl] + list(args), capture_output=True, text=True,
                                timeout=_CTL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TraceError('rabbitmqctl %s did not answer in %ds'
                         % (' '.join(args), _CTL_TIMEOUT))
    if result.returncode != 0:
        raise TraceError('rabbitmqctl %s failed (%d): %s' % (
            ' '.join(args), result.returncode,
            (result.stderr or result.stdout).strip()[-2000:]))
    return result.stdout


def _tracing_is_on(vhost):
    out = _rabbitmqctl('-q', '--no-table-headers', 'list_vhosts', 'name', 'tracing')
    for line in out.splitlines():
        name, _, tracing = line.rpartition('\t')
        if name == vhost:
            return tracing.strip() == 'true'
    raise TraceError('RabbitMQ has no vhost %r' % vhost)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _TracingSwitch:
    """Tracing on for the first holder on this machine, off after the last.

    NOTE: a firehose is per vhost, for the whole broker; two test runs (or two traces in
    one run) must not switch it off under each other. The holders are in a JSON file
    rewritten under an exclusive ``flock`` (which also serializes two traces of one
    process: each opens the lock file itself).
    """

    def __init__(self, vhost, state_dir=None):
        self.vhost = vhost
        base = os.path.join(state_dir or tempfile.gettempdir(),
                            'rabbitmq-trace-%s' % urllib.parse.quote(vhost, safe=''))
        self._state_path = base + '.json'
        self._lock_path = base + '.lock'
        self._token = '%d:%s' % (os.getpid(), uuid.uuid4().hex)

    @contextlib.contextmanager
    def _locked_state(self):
        with open(self._lock_path, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    with open(self._state_path) as f:
                        state = json.load(f)
                except (OSError, ValueError):
                    state = {}
                state.setdefault('holders', [])
                state.setdefault('was_on', None)
                try:
                    yield state
                finally:
                    # Written even when rabbitmqctl failed: callers change the state
                    # only for what already happened.
                    tmp = self._state_path + '.%d' % os.getpid()
                    with open(tmp, 'w') as f:
                        json.dump(state, f)
                    os.replace(tmp, self._state_path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _live(holders, but=None):
        return [h for h in holders if h != but and _alive(int(h.split(':', 1)[0]))]

    def acquire(self):
        with self._locked_state() as state:
            live = self._live(state['holders'])
            if not live and state['was_on'] is None:
                # First holder: remember whether someone else traces by hand.
                state['was_on'] = _tracing_is_on(self.vhost)
            # NOTE: dead holders (a SIGKILLed run) leave their was_on: it is the state
            # from before they switched tracing on, which their death did not restore.
            _rabbitmqctl('trace_on', '-p', self.vhost)
            state['holders'] = live + [self._token]

    def release(self):
        with self._locked_state() as state:
            live = self._live(state['holders'], but=self._token)
            state['holders'] = live
            if live:
                return
            if state['was_on']:
                LOG.info('Leaving tracing on for vhost %s: it was on before',
                         self.vhost)
            else:
                # NOTE: should this fail, was_on stays False: the next first holder
                # still knows tracing is ours to switch off.
                _rabbitmqctl('trace_off', '-p', self.vhost)
            state['was_on'] = None


class BrokerTrace:
    """Every message published in ``vhost`` while it is entered, by sending process.

    Enter it once (it is not reusable); what it recorded stays readable after exit.

    :param vhost: the RabbitMQ vhost to trace.
    :param url: an AMQP URL of the broker (the trace's own consumer and markers).
    :param labeler: ``labeler(pid) -> str or None``, the sender label of a pid, asked
        whenever a message's ``sender`` is read (so a mapping filled after the
        processes started is fine); None falls back to :func:`default_label` of the
        command line read from ``/proc`` when the connection was first seen.
    :param topics: known topics, to split ``<topic>.<server>`` routing keys correctly
        when topics hold dots (otherwise the first dot splits).
    :param socket_poll_interval: seconds between snapshots of the broker's client
        sockets (for processes that exit before their message is read); None: none.
    :param state_dir: where the tracing holders' state file lives (default: tmpdir).
    :raises TraceError: on entering, when rabbitmqctl, ss or the broker is missing.

    Example::

        with BrokerTrace(topics=(conductor_topic, agent_topic)) as trace:
            ...  # run the migration
            trace.drain(where=on_topic(conductor_topic, agent_topic))
            counts = trace.counts('program', 'kind', 'topic',
                                  where=on_topic(conductor_topic, agent_topic))
    """

    def __init__(self, vhost='/', url=DEFAULT_URL, labeler=None, topics=(),
                 socket_poll_interval=0.2, state_dir=None):
        self.vhost = vhost
        self.url = url
        self._labeler = labeler
        self._topics = tuple(topics)
        self._poll_interval = socket_poll_interval
        self._switch = _TracingSwitch(vhost, state_dir)
        self._server_port = kombu.Connection(url).port or 5672
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._messages = []
        self._calls = {}            # msg_id -> call
        self._orphan_replies = {}   # msg_id -> replies seen before their call
        self._markers = set()
        self._connections = {}      # connection name -> (address, ProcessInfo)
        self._sockets = {}          # (client host, client port, server port) -> pids
        self._processes = {}        # pid -> (label, cmdline, program)
        self._ports = {self._server_port}
        self._error = None
        self._conn = None
        self._threads = []
        self._tracing = False

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self):
        try:
            self._scan_sockets()
            self._start_consumer()
            self._switch.acquire()
            self._tracing = True
            self._start_thread(self._consume, 'rpc-trace-consumer')
            if self._poll_interval:
                self._start_thread(self._poll_sockets, 'rpc-trace-sockets')
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info):
        self._close()
        return False

    def _close(self):
        self._stop.set()
        try:
            if self._tracing:
                self._tracing = False
                self._switch.release()
        finally:
            for thread in self._threads:
                thread.join(timeout=10)
            self._threads = []
            if self._conn is not None:
                self._conn.release()
                self._conn = None

    def _start_thread(self, target, name):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_consumer(self):
        self._conn = kombu.Connection(self.url, connect_timeout=5)
        try:
            self._conn.connect()
        except Exception as exc:  # kombu raises socket, AMQP and auth errors alike
            raise TraceError('cannot connect to RabbitMQ at %s: %s'
                             % (self._conn.as_uri(), exc))
        exchange = kombu.Exchange(TRACE_EXCHANGE, type='topic', passive=True)
        queue = kombu.Queue('rpc-trace.%s.%d.%s' % (socket.gethostname(), os.getpid(),
                                                   uuid.uuid4().hex[:8]),
                            exchange=exchange, routing_key='publish.#', durable=False,
                            exclusive=True, auto_delete=True)
        # Declared (and bound) here, before tracing is on: no publish is missed.
        consumer = kombu.Consumer(self._conn.channel(), queues=[queue], no_ack=True,
                                  on_message=self._on_message)
        consumer.consume()

    def _consume(self):
        while not self._stop.is_set():
            try:
                self._conn.drain_events(timeout=0.2)
            except socket.timeout:
                continue
            except Exception as exc:
                if not self._stop.is_set():
                    LOG.exception('The RPC trace consumer failed')
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                return

    def _poll_sockets(self):
        while not self._stop.wait(self._poll_interval):
            try:
                self._scan_sockets()
            except Exception:
                LOG.exception('Scanning the broker\'s client sockets failed')

    # -- attribution ------------------------------------------------------------

    def _scan_sockets(self, ports=None):
        if ports is None:
            with self._cond:
                ports = set(self._ports)
        found = {}
        for port in sorted(ports):
            found.update(_client_sockets(port))
        for pids in set(found.values()):
            for pid in pids:
                self._process_of(pid)
        with self._cond:
            self._sockets.update(found)
            # A port now owned by another process: the old connection closed and a new
            # one took its address; its next messages belong to the new owner.
            for name, (address, info) in list(self._connections.items()):
                pids = found.get(address)
                if pids and pids != info.pids:
                    self._connections[name] = (address, self._info(name, pids))

    def _process_of(self, pid):
        with self._cond:
            known = self._processes.get(pid)
        if known is not None:
            return known
        cmdline = _read_cmdline(pid)
        label = default_label(cmdline) if cmdline else 'pid-%d' % pid
        known = (label, cmdline, _program(cmdline) if cmdline else None)
        with self._cond:
            return self._processes.setdefault(pid, known)

    def _info(self, name, pids):
        if not pids:
            return ProcessInfo(label='unknown:%s' % name)
        if len(pids) > 1:
            labels = ','.join(self._process_of(pid)[0] for pid in pids)
            return ProcessInfo(label='ambiguous:%s' % labels, pids=pids)
        label, cmdline, program = self._process_of(pids[0])
        return ProcessInfo(label=label, pid=pids[0], pids=pids, cmdline=cmdline,
                           program=program)

    def _resolve(self, name):
        with self._cond:
            known = self._connections.get(name)
        if known is not None:
            return known[1]
        address = _parse_connection_name(name)
        pids = ()
        if address is not None:
            with self._cond:
                self._ports.add(address[2])
            try:
                self._scan_sockets({address[2]})
            except TraceError:
                LOG.exception('Cannot look up the owner of connection %s', name)
            with self._cond:
                pids = self._sockets.get(address, ())
        info = self._info(name, pids)
        if info.pid is None:
            LOG.warning('RPC trace: no single process owns connection %s', name)
        with self._cond:
            self._connections[name] = (address, info)
        return info

    # -- recording --------------------------------------------------------------

    def _on_message(self, raw):
        headers = raw.headers or {}
        exchange = headers.get('exchange_name', '')
        routing_keys = tuple(headers.get('routing_keys') or ())
        if not exchange and routing_keys and routing_keys[0].startswith(MARKER_PREFIX):
            with self._cond:
                self._markers.add(routing_keys[0])
                self._cond.notify_all()
            return
        connection = headers.get('connection')
        if isinstance(connection, bytes):
            connection = connection.decode(errors='replace')
        message = TracedMessage(
            connection=connection, channel=headers.get('channel'),
            process=self._resolve(connection), exchange=exchange,
            routing_keys=routing_keys,
            routed_queues=tuple(headers.get('routed_queues') or ()),
            message=_decode(raw.body), topics=self._topics, received=time.monotonic(),
            labeler=self._labeler)
        with self._cond:
            self._messages.append(message)
            if message.kind == 'call' and message.msg_id:
                self._calls[message.msg_id] = message
                for reply in self._orphan_replies.pop(message.msg_id, ()):
                    reply.call = message
            elif message.kind in ('reply', 'heartbeat'):
                message.call = self._calls.get(message.msg_id)
                if message.call is None:
                    self._orphan_replies.setdefault(message.msg_id, []).append(message)
            self._cond.notify_all()

    # -- waiting ------------------------------------------------------------------

    def _check(self):
        if self._error is not None:
            raise TraceError('the trace is incomplete: its connection to RabbitMQ '
                             'failed (%s)' % self._error)

    def sync(self, timeout=10):
        """Return once every message the broker traced before this call was recorded.

        Publishes a marker through the broker and waits for its trace copy (the broker
        queues trace copies in order; RabbitMQ does not document an order between
        connections, and on one node this holds in practice).

        :raises TraceError: no marker within ``timeout`` (tracing off?) or a lost trace.
        """
        key = MARKER_PREFIX + uuid.uuid4().hex
        try:
            with kombu.Connection(self.url, connect_timeout=5) as conn:
                conn.Producer().publish(b'', exchange='', routing_key=key, retry=False)
        except Exception as exc:  # kombu raises socket, AMQP and auth errors alike
            raise TraceError('cannot publish the trace marker: %s' % exc)
        with self._cond:
            self._cond.wait_for(lambda: key in self._markers or self._error,
                                timeout=timeout)
            self._check()
            if key not in self._markers:
                raise TraceError('the trace marker did not come back within %ss: is '
                                 'tracing still on for vhost %r?' % (timeout, self.vhost))
            self._markers.discard(key)

    def wait_quiet(self, quiet=0.5, timeout=30, where=None):
        """Wait until no message (matching ``where``) arrived for ``quiet`` seconds.

        :raises TraceError: messages still arriving after ``timeout`` seconds.
        """
        start = time.monotonic()
        deadline = start + timeout
        while True:
            with self._cond:
                self._check()
                last = max((m.received for m in self._messages
                            if where is None or where(m)), default=start)
            now = time.monotonic()
            silent = now - max(last, start)
            if silent >= quiet:
                return
            if now >= deadline:
                raise TraceError('messages still arriving after %ss' % timeout)
            time.sleep(min(quiet - silent, 0.05) + 0.001)

    def drain(self, quiet=0.5, timeout=30, where=None):
        """:meth:`sync`, then :meth:`wait_quiet`: call it before reading counts."""
        self.sync(timeout=min(timeout, 10))
        self.wait_quiet(quiet=quiet, timeout=timeout, where=where)

    # -- reading --------------------------------------------------------------------

    def messages(self, where=None):
        """The messages recorded so far (matching ``where``), in arrival order."""
        with self._cond:
            self._check()
            return [m for m in self._messages if where is None or where(m)]

    def counts(self, *fields, where=None):
        """A Counter of the messages (matching ``where``) by ``fields``.

        :param fields: attribute names of :class:`TracedMessage` (``sender``, ``pid``,
            ``program``, ``kind``, ``topic``, ``server``, ``routing_key``, ``method``,
            ``recipient``, ``target``...) or callables of a message; default
            ``('sender', 'kind', 'topic', 'method')``.
        :returns: keys are tuples, or plain values when one field is given.
        """
        fields = fields or DEFAULT_FIELDS
        getters = [f if callable(f) else (lambda m, name=f: getattr(m, name))
                   for f in fields]
        counter = collections.Counter()
        for message in self.messages(where):
            values = tuple(get(message) for get in getters)
            counter[values[0] if len(values) == 1 else values] += 1
        return counter

    def senders(self, where=None):
        """``{label: set of pids}`` of the processes that sent matching messages."""
        grouped = collections.defaultdict(set)
        for message in self.messages(where):
            grouped[message.sender].add(message.pid)
        return dict(grouped)

    def unknown(self, where=None):
        """Matching messages whose connection no single local process owns."""
        return [m for m in self.messages(where) if m.pid is None]

    def format(self, where=None, fields=DEFAULT_FIELDS):
        """The counts as text, one line per key, for assertion messages."""
        counts = self.counts(*fields, where=where)
        return '\n'.join('%4d  %s' % (n, key)
                         for key, n in sorted(counts.items(), key=repr)) or '(none)'
