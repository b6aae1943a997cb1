"""Choosing a destination: filters over the recorded hosts, then a weigher.

The same filters serve the two checked modes (the scheduler chooses, or an admin names a
host); a forced host only gets the safety checks. What only the destination can judge
(CPU compatibility as its libvirt sees it, room for the guest now) is checked afterwards
by calls to that host's agent; a destination that fails them sends the migration to the
next candidate, in the order returned here.

Pure functions over objects: no RPC and no database access here.
"""

import collections

from migration_conductor import exception

Candidate = collections.namedtuple('Candidate', 'host reason')


def _safety_refusal(host, source, service_down_time):
    """Why ``host`` can never take a guest from ``source``: an error, or None."""
    if host.host == source.host:
        return exception.DestinationIsSource(host=host.host)
    if not host.heartbeat_is_recent(service_down_time):
        return exception.HostUnavailable(
            host=host.host, state='down (no heartbeat for %d s)' % service_down_time)
    if host.hypervisor_type != source.hypervisor_type:
        return exception.HypervisorTypeMismatch(host=host.host,
                                                dest_type=host.hypervisor_type,
                                                source_type=source.hypervisor_type)
    for what, attr in (('hypervisor version', 'hypervisor_version'),
                       ('agent version', 'service_version')):
        if getattr(host, attr) < getattr(source, attr):
            return exception.DestinationTooOld(
                host=host.host, what=what, dest_version=getattr(host, attr),
                source_version=getattr(source, attr))
    return None


def _filter_refusal(host, instance, inflight_memory_mb):
    if not host.enabled:
        return exception.HostUnavailable(
            host=host.host,
            state='disabled (%s)' % (host.disabled_reason or 'no reason given'))
    free = (host.memory_mb_free or 0) - inflight_memory_mb.get(host.host, 0)
    if free < instance.memory_mb:
        return exception.InsufficientResources(
            host=host.host, instance_uuid=instance.uuid, resource='memory (MiB)',
            requested=instance.memory_mb, free=free)
    if host.vcpus < instance.vcpus:
        return exception.InsufficientResources(
            host=host.host, instance_uuid=instance.uuid, resource='vCPUs',
            requested=instance.vcpus, free=host.vcpus)
    return None


def check_host(host, source, instance, service_down_time, force=False,
               inflight_memory_mb=None):
    """Return why ``host`` cannot be the destination (a typed error), or None.

    :param force: only the safety checks (host up, not the source, same hypervisor
        type, version not older).
    :returns: None, or the error to raise: DestinationIsSource, HostUnavailable,
        HypervisorTypeMismatch, DestinationTooOld or InsufficientResources.
    """
    refusal = _safety_refusal(host, source, service_down_time)
    if refusal is None and not force:
        refusal = _filter_refusal(host, instance, inflight_memory_mb or {})
    return refusal


def select_destinations(hosts, source, instance, service_down_time, limit,
                        inflight=None, inflight_memory_mb=None):
    """Order the hosts that pass every filter, best first.

    Weigher: most free memory (less what in-flight migrations will take), then fewest
    migrations in flight to or from the host, then name (deterministic).

    :param inflight: host name -> number of migrations in flight involving it.
    :returns: up to ``limit`` host names.
    :raises NoValidHost: no host passes; the message says why each was refused.
    """
    inflight = inflight or {}
    inflight_memory_mb = inflight_memory_mb or {}
    passed, refused = [], []
    for host in hosts:
        refusal = check_host(host, source, instance, service_down_time,
                             inflight_memory_mb=inflight_memory_mb)
        if refusal is None:
            passed.append(host)
        elif host.host != source.host:
            refused.append('%s (%s)' % (refusal.message, refusal.code))
    if not passed:
        raise exception.NoValidHost(
            instance_uuid=instance.uuid,
            reason='; '.join(refused) or 'no other compute host is known')
    passed.sort(key=lambda h: (-((h.memory_mb_free or 0)
                                 - inflight_memory_mb.get(h.host, 0)),
                               inflight.get(h.host, 0), h.host))
    return [h.host for h in passed[:limit]]
