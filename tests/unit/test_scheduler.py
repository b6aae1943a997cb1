"""The scheduler's filters: each refusal is a typed error with its own code."""

from oslo_utils import timeutils
import pytest

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor import scheduler

DOWN_TIME = 60
INSTANCE = objects.Instance(uuid='3f0c1a52-7a1e-4a39-9d2c-6a4f1f0b8e01', name='vm',
                            memory_mb=1024, vcpus=2)


def _host(name, **values):
    fields = dict(host=name, hypervisor_type='QEMU', hypervisor_version=7002000,
                  libvirt_version=9000000, memory_mb=8192, memory_mb_free=4096,
                  vcpus=4, libvirt_uri='qemu+tcp://127.0.0.1/system',
                  migration_address='127.0.0.1', service_version=1, enabled=True,
                  disabled_reason=None,
                  last_heartbeat=timeutils.utcnow(with_timezone=True))
    fields.update(values)
    return objects.ComputeHost(**fields)


SOURCE = _host('src')


# (host name, its differences from a good host): built in the test, so that the
# heartbeat is fresh however long after collection the test runs.
@pytest.mark.parametrize('name,values,error,code', [
    ('src', {}, exception.DestinationIsSource, 'destination_is_source'),
    ('h', {'last_heartbeat': None}, exception.HostUnavailable, 'host_unavailable'),
    ('h', {'enabled': False, 'disabled_reason': 'maintenance'},
     exception.HostUnavailable, 'host_unavailable'),
    ('h', {'hypervisor_type': 'Xen'}, exception.HypervisorTypeMismatch,
     'hypervisor_type_mismatch'),
    ('h', {'hypervisor_version': 6000000}, exception.DestinationTooOld,
     'destination_older'),
    ('h', {'service_version': 0}, exception.DestinationTooOld, 'destination_older'),
    ('h', {'memory_mb_free': 512}, exception.InsufficientResources,
     'insufficient_resources'),
    ('h', {'vcpus': 1}, exception.InsufficientResources, 'insufficient_resources'),
], ids=['source', 'down', 'disabled', 'hypervisor-type', 'hypervisor-older',
        'agent-older', 'memory', 'vcpus'])
def test_each_refusal_is_typed(name, values, error, code):
    host = _host(name, **values)
    refusal = scheduler.check_host(host, SOURCE, INSTANCE, DOWN_TIME)
    assert type(refusal) is error
    assert refusal.code == code
    assert isinstance(refusal, (exception.DestinationRefused,
                                exception.InsufficientResources))
    assert refusal.kwargs['host'] == host.host


def test_memory_claimed_by_migrations_in_flight_counts():
    host = _host('h', memory_mb_free=1500)
    assert scheduler.check_host(host, SOURCE, INSTANCE, DOWN_TIME) is None
    refusal = scheduler.check_host(host, SOURCE, INSTANCE, DOWN_TIME,
                                   inflight_memory_mb={'h': 1000})
    assert isinstance(refusal, exception.InsufficientResources)
    assert refusal.kwargs['free'] == 500


def test_forced_host_gets_the_safety_checks_only():
    full_and_disabled = _host('h', memory_mb_free=0, enabled=False)
    assert scheduler.check_host(full_and_disabled, SOURCE, INSTANCE, DOWN_TIME,
                                force=True) is None
    older = _host('h', hypervisor_version=1)
    assert isinstance(scheduler.check_host(older, SOURCE, INSTANCE, DOWN_TIME,
                                           force=True), exception.DestinationTooOld)


def test_no_valid_host_says_why_each_host_was_refused():
    hosts = [SOURCE, _host('a', enabled=False), _host('b', hypervisor_type='Xen')]
    with pytest.raises(exception.NoValidHost) as info:
        scheduler.select_destinations(hosts, SOURCE, INSTANCE, DOWN_TIME, limit=3)
    message = str(info.value)
    assert 'Host a cannot be the destination: it is disabled' in message
    assert '(host_unavailable)' in message and '(hypervisor_type_mismatch)' in message
    assert 'src' not in message.replace(INSTANCE.uuid, '')


def test_weigher_prefers_free_memory_then_fewer_migrations_in_flight():
    hosts = [SOURCE, _host('a', memory_mb_free=2048), _host('b', memory_mb_free=8192),
             _host('c', memory_mb_free=8192)]
    assert scheduler.select_destinations(hosts, SOURCE, INSTANCE, DOWN_TIME,
                                         limit=3, inflight={'b': 1}) == ['c', 'b', 'a']
    assert scheduler.select_destinations(hosts, SOURCE, INSTANCE, DOWN_TIME,
                                         limit=1) == ['b']
