"""Faults on the lab's data path: cutting the migration streams into a host.

QEMU's migration stream into a lab host is a TCP connection on loopback whose port is
in that host's migration port range (``qemu.conf`` ``migration_port_min``/``max``, see
:meth:`tools.lab.config.LabConfig.migration_ports`). :func:`cut_incoming` destroys both
ends of every such connection with ``ss -K`` (the kernel's SOCK_DESTROY), what a broken
link or a firewall reset does to a migration: each QEMU sees its socket fail at once.
Nothing else is touched: libvirt's own connections use the hosts' TCP ports, outside
every migration range.

Concurrency: one ``ss`` process per call; safe from any thread.
"""

import logging

from tools.lab import commands
from tools.lab import errors

LOG = logging.getLogger(__name__)

SS = 'ss'
SS_TIMEOUT = 10


def _range_filter(first, last):
    return ('( dport >= :{a} and dport <= :{b} ) or ( sport >= :{a} and sport <= :{b} )'
            .format(a=first, b=last))


def _ss(host, what, *options):
    """The lines ``ss`` prints for the established TCP connections on ``host``'s
    migration ports (``options``: more of its options, such as ``-K``)."""
    first, last = host.migration_ports
    result = commands.run([SS, '-H', '-t', '-n'] + list(options)
                          + ['state', 'established', _range_filter(first, last)],
                          '%s into host %s' % (what, host.name), SS_TIMEOUT,
                          error=errors.HostError)
    return [line for line in result.stdout.splitlines() if line.strip()]


def incoming(host):
    """The established TCP connections of migration streams into ``host`` (LabHost),
    as ``ss`` prints them (one line each, both ends counted)."""
    return _ss(host, 'list the migration streams')


def cut_incoming(host):
    """Destroy every migration stream into ``host``; returns how many socket ends were
    destroyed (0: no stream ran). :raises HostError: ``ss`` failed (the kernel lacks
    CONFIG_INET_DIAG_DESTROY, say)."""
    killed = _ss(host, 'cut the migration streams', '-K')
    first, last = host.migration_ports
    LOG.info('host %s: %d migration stream socket(s) on ports %d-%d destroyed',
             host.name, len(killed), first, last)
    left = incoming(host)
    if left:
        raise errors.HostError('host %s: %d migration stream socket(s) survived ss -K '
                               '(is CONFIG_INET_DIAG_DESTROY missing?): %s'
                               % (host.name, len(left), '; '.join(left)[:300]))
    return len(killed)
