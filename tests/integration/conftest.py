"""Fixtures of the integration tier: real RabbitMQ, real MariaDB, real lab hosts.

A missing service fails the test with a message naming it; nothing is skipped.
"""

import socket

import pytest

RABBIT = ('127.0.0.1', 5672)


def require_rabbitmq():
    """Fail (never skip) when RabbitMQ does not answer."""
    try:
        socket.create_connection(RABBIT, timeout=3).close()
    except OSError as exc:
        pytest.fail('RabbitMQ is required at %s:%d and does not answer (%s); '
                    'start it with tools/services.sh' % (RABBIT + (exc,)))
    return 'rabbit://guest:guest@%s:%d/' % RABBIT
