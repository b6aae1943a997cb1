"""The broker trace counts RPC messages by the OS process that really sent them.

Three processes use oslo.messaging directly over the real RabbitMQ
(``rpc_trace_peer.py``): one RPC server and two clients sending known, different numbers
of calls, casts and fanout casts to a topic unique to this run. The trace must attribute
each of them, and each reply of the server, to the right pid; the pids come from
``subprocess``, not from anything the processes report.
"""

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration import conftest as int_conftest
from tests.integration import rpc_trace

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'rpc_trace_peer.py')
SERVER_NAME = 'srv'
# Different numbers per client, so that a swapped attribution shows.
CLIENTS = {'client-1': {'calls': 3, 'casts': 2, 'fanouts': 1},
           'client-2': {'calls': 5, 'casts': 4, 'fanouts': 2}}
START_TIMEOUT = 30


def _require_broker_trace():
    """The transport URL; fails (never skips) without RabbitMQ or rabbitmqctl."""
    url = int_conftest.require_rabbitmq()
    if shutil.which('rabbitmqctl', path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin') \
            is None:
        pytest.fail('rabbitmqctl is required to switch on RabbitMQ\'s firehose tracer '
                    'and is not installed; start RabbitMQ with tools/services.sh (as '
                    'root)', pytrace=False)
    return url


@contextlib.contextmanager
def _trace(**kwargs):
    try:
        with rpc_trace.BrokerTrace(**kwargs) as trace:
            yield trace
    except rpc_trace.TraceError as exc:
        pytest.fail('broker trace: %s' % exc, pytrace=False)


class _Peers:
    """The peer processes of one test, killed at the end whatever happens."""

    def __init__(self, work, url, topic):
        self.work = work
        self.url = url
        self.topic = topic
        self.processes = {}

    def start(self, name, role, calls=0, casts=0, fanouts=0):
        config = self.work / ('%s.conf' % name)
        config.write_text('[DEFAULT]\ntransport_url = %s\n[peer]\nrole = %s\ntopic = %s\n'
                          'server = %s\ncalls = %d\ncasts = %d\nfanouts = %d\n'
                          % (self.url, role, self.topic, SERVER_NAME, calls, casts,
                             fanouts))
        process = subprocess.Popen(
            [sys.executable, PEER, '--config-file', str(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.work / ('%s.log' % name), 'w'), text=True, cwd=self.work)
        self.processes[name] = process
        return process

    def expect(self, name, word, timeout=START_TIMEOUT):
        """Wait for ``word`` on a line of ``name``'s output, or fail with its log."""
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
            line = process.stdout.readline() if ready else None
            if line is not None and line.strip() == word:
                return
            if line == '' or remaining <= 0:
                pytest.fail('%s: no %r within %ds (exit code %s); its log:\n%s'
                            % (name, word, timeout, process.poll(), self.log(name)))

    def log(self, name):
        return (self.work / ('%s.log' % name)).read_text()[-3000:]

    def finish(self, timeout=30):
        """Close every peer's standard input; return ``{name: rest of its output}``."""
        for process in self.processes.values():
            process.stdin.close()
        outputs = {}
        for name, process in list(self.processes.items()):
            outputs[name] = process.stdout.read()
            process.wait(timeout=timeout)
            assert process.returncode == 0, '%s exited %d:\n%s' % (
                name, process.returncode, self.log(name))
            del self.processes[name]
        return outputs

    def kill_all(self):
        for process in self.processes.values():
            process.kill()
            process.wait(timeout=30)
        self.processes.clear()


@pytest.fixture
def peers(tmp_path):
    url = _require_broker_trace()
    group = _Peers(tmp_path, url, 'rpc_trace_%s' % uuid.uuid4().hex)
    try:
        yield group
    finally:
        group.kill_all()


def test_each_message_is_attributed_to_the_process_that_sent_it(peers):
    topic = peers.topic
    mine = rpc_trace.on_topic(topic)
    roles = {}  # pid -> role, straight from subprocess
    with _trace(labeler=roles.get, topics=(topic,)) as trace:
        server = peers.start('server', 'server')
        roles[server.pid] = 'server'
        peers.expect('server', 'ready')
        for name, numbers in CLIENTS.items():
            roles[peers.start(name, 'client', **numbers).pid] = name
        for name in CLIENTS:
            peers.expect(name, 'done')
        # Every call was answered and every cast confirmed by the broker: all is
        # published; the firehose copies may still be on their way.
        trace.drain(where=mine)
        pids = {role: pid for pid, role in roles.items()}
        messages = trace.messages(mine)
        shown = '\n' + trace.format(where=mine)

        assert trace.unknown(mine) == [], shown
        assert trace.senders(mine) == {role: {pid} for role, pid in pids.items()}, shown

        expected = {('server', 'reply', topic, None, 'echo'):
                    sum(n['calls'] for n in CLIENTS.values())}
        for name, numbers in CLIENTS.items():
            expected[(name, 'call', topic, None, 'echo')] = numbers['calls']
            expected[(name, 'cast', topic, SERVER_NAME, 'note')] = numbers['casts']
            expected[(name, 'fanout', topic, None, 'note')] = numbers['fanouts']
        assert trace.counts('sender', 'kind', 'topic', 'server', 'method',
                            where=mine) == expected, shown

        # The same by pid, which no labeler touches: the kernel's answer.
        by_pid = {(pids[role], kind): n
                  for (role, kind, _topic, _server, _method), n in expected.items()}
        assert trace.counts('pid', 'kind', where=mine) == by_pid, shown

        # Each reply goes back to the process that called, and came from the server.
        assert trace.counts('sender', 'recipient',
                            where=lambda m: mine(m) and m.kind == 'reply') == {
            ('server', name): numbers['calls'] for name, numbers in CLIENTS.items()}

        for message in messages:
            role = roles[message.pid]
            # /proc agrees: the owner of the socket runs the peer with that role's file.
            assert message.process.cmdline[-1] == str(peers.work / ('%s.conf' % role))
            # ...and so does the label the trace gives without a labeler.
            assert message.process.label == 'rpc_trace_peer.py:%s' % role
            assert message.program == 'rpc_trace_peer.py'
            if message.kind == 'call':
                assert message.target == rpc_trace.Target('topic', topic, None, None)
                assert message.routed_queues == (topic,)
                assert message.reply_q.startswith(rpc_trace.REPLY_PREFIX)
            elif message.kind == 'cast':
                assert message.target == rpc_trace.Target('server', topic, SERVER_NAME,
                                                          None)
                assert message.routing_key == '%s.%s' % (topic, SERVER_NAME)
            elif message.kind == 'fanout':
                assert message.exchange == topic + rpc_trace.FANOUT_SUFFIX
            else:
                assert message.kind == 'reply', message
                assert message.failure is None
                assert message.target == rpc_trace.Target(
                    'reply', topic, None, message.call.reply_q)

    received = json.loads(peers.finish()['server'].strip().splitlines()[-1])
    # What the server says it received agrees with what the broker saw sent.
    assert received == {
        'echo': sum(n['calls'] for n in CLIENTS.values()),
        'note:cast': sum(n['casts'] for n in CLIENTS.values()),
        'note:fanout': sum(n['fanouts'] for n in CLIENTS.values())}


def test_an_inner_trace_leaves_tracing_on_for_the_outer_one():
    _require_broker_trace()
    with _trace() as outer:
        with _trace() as inner:
            inner.sync()
        # The marker only comes back while the firehose is on.
        outer.sync()
    state_path = outer._switch._state_path
    with open(state_path) as f:
        holders = json.load(f)['holders']
    assert not [h for h in holders if h.startswith('%d:' % os.getpid())], holders


@pytest.mark.parametrize('cmdline, label', [
    (['/v/bin/python3.11', '/v/bin/migration-conductor', '--config-file',
      '/w/conductor.conf'], 'migration-conductor:conductor'),
    (['/v/bin/python3.11', '-u', '/v/bin/migration-compute-agent',
      '--config-file=/w/agent-host-1.conf'], 'migration-compute-agent:agent-host-1'),
    (['/v/bin/python', '-m', 'pytest', 'tests'], 'pytest'),
    (['/usr/bin/migctl', '--config-file', '/w/migctl.conf', 'host', 'list'],
     'migctl:migctl'),
])
def test_default_label(cmdline, label):
    assert rpc_trace.default_label(cmdline) == label


def test_connection_names_and_targets():
    assert rpc_trace._parse_connection_name('127.0.0.1:41234 -> 127.0.0.1:5672') == (
        '127.0.0.1', 41234, 5672)
    assert rpc_trace._parse_connection_name('[::1]:41234 -> [::1]:5672') == (
        '::1', 41234, 5672)
    assert rpc_trace._parse_connection_name('<rabbit@host.1.2>') is None
    # A dotted server name splits at the topic's end; a known dotted topic too.
    assert rpc_trace._split_target('call', 'openstack', 'agents.host.example.com',
                                   ()) == ('agents', 'host.example.com')
    assert rpc_trace._split_target('cast', 'openstack', 'mc.agents.h1',
                                   ('mc.agents',)) == ('mc.agents', 'h1')
