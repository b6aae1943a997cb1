"""A small oslo.messaging process for test_rpc_trace: an RPC server or an RPC client.

Run as ``python rpc_trace_peer.py --config-file <role>.conf``, like a service. The
``[peer]`` group says what it does:

- ``role = server``: serves ``echo`` (returns its argument) and ``note`` on ``topic``
  as server ``server``, prints ``ready`` once its queues are declared, and on end of
  standard input prints what it received as JSON and exits.
- ``role = client``: sends ``calls`` calls of ``echo`` to ``topic``, ``casts`` casts of
  ``note`` to ``topic``/``server`` and ``fanouts`` fanout casts of ``note`` to
  ``topic``, prints ``done``, and waits for end of standard input (so its connections
  stay open while the test reads the trace), then exits.

Uses oslo.messaging directly (its threading executor); nothing of the project.
"""

import collections
import json
import sys
import threading

from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher

CONF = cfg.CONF
OPTS = [
    cfg.StrOpt('role', choices=['server', 'client'], required=True,
               help='Whether this process serves the topic or calls it.'),
    cfg.StrOpt('topic', required=True, help='The RPC topic.'),
    cfg.StrOpt('server', required=True, help='The server name of the RPC server.'),
    cfg.IntOpt('calls', default=0, help='How many calls a client sends.'),
    cfg.IntOpt('casts', default=0, help='How many casts a client sends.'),
    cfg.IntOpt('fanouts', default=0, help='How many fanout casts a client sends.'),
]


class Endpoint:
    """Counts what it receives (the executor runs it in several threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.received = collections.Counter()

    def echo(self, ctxt, value):
        with self._lock:
            self.received['echo'] += 1
        return value

    def note(self, ctxt, how):
        with self._lock:
            self.received['note:%s' % how] += 1


def _serve(transport):
    endpoint = Endpoint()
    target = messaging.Target(topic=CONF.peer.topic, server=CONF.peer.server)
    # NOTE: no executor argument, as in migration_conductor.rpc: threading is the
    # only executor left, and naming it is deprecated.
    server = messaging.get_rpc_server(transport, target, [endpoint],
                                      access_policy=dispatcher.DefaultRPCAccessPolicy)
    server.start()
    print('ready', flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()
    print(json.dumps(dict(endpoint.received)), flush=True)


def _send(transport):
    client = messaging.get_rpc_client(transport, messaging.Target(topic=CONF.peer.topic),
                                      timeout=30)
    for i in range(CONF.peer.calls):
        assert client.call({}, 'echo', value=i) == i
    for _ in range(CONF.peer.casts):
        client.prepare(server=CONF.peer.server).cast({}, 'note', how='cast')
    for _ in range(CONF.peer.fanouts):
        client.prepare(fanout=True).cast({}, 'note', how='fanout')
    print('done', flush=True)
    sys.stdin.read()


def main():
    CONF.register_opts(OPTS, group='peer')
    CONF(sys.argv[1:], project='rpc_trace_peer')
    transport = messaging.get_rpc_transport(CONF)
    try:
        (_serve if CONF.peer.role == 'server' else _send)(transport)
    finally:
        transport.cleanup()


if __name__ == '__main__':
    main()
