"""The simulated driver: guests, CPU checks and pre-copy live migrations in one process.

Hosts are SimulatedDrivers registered in this process (fixture ``make_host``); model time
runs a hundred times faster than real time, so the model seconds quoted below are
hundredths of a second of the test.
"""

import threading
import time

import pytest

from compute_agent.virt import driver
from compute_agent.virt import simulated
from migration_conductor import exception

MIB = 1024 * 1024
WAIT = 10  # real seconds any single wait of these tests may take


def _start(source, instance_uuid, dest, **options):
    """Run live_migrate in a thread; returns (thread, outcome dict)."""
    outcome = {}

    def run():
        try:
            source.live_migrate(instance_uuid, dest.get_host_inventory()['libvirt_uri'],
                                None, options)
            outcome['ok'] = True
        except Exception as exc:  # inspected by the test
            outcome['error'] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for(predicate, what):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail('timed out waiting for %s' % what)


def _finish(thread, outcome):
    thread.join(WAIT)
    assert not thread.is_alive(), 'the migration did not end'
    return outcome


# --- guests -------------------------------------------------------------------------------

def test_get_find_pause_resume_and_destroy_an_instance(make_host):
    host = make_host()
    instance = host.add_domain('guest-1', memory_mb=1024, vcpus=2)
    assert host.get_instance(instance) == {
        'uuid': instance, 'name': 'guest-1', 'power_state': 'running', 'memory_mb': 1024,
        'vcpus': 2, 'migration_profile': None}
    assert host.find_instance(instance) == 'running'
    host.pause_instance(instance)
    host.pause_instance(instance)   # idempotent
    assert host.find_instance(instance) == 'paused'
    host.resume_instance(instance)
    host.resume_instance(instance)  # idempotent
    assert host.find_instance(instance) == 'running'
    assert host.destroy_instance(instance) is True
    assert host.destroy_instance(instance) is False
    assert host.find_instance(instance) is None
    with pytest.raises(exception.DomainNotFound) as info:
        host.get_instance(instance)
    assert instance in str(info.value) and host.host in str(info.value)
    for method in (host.pause_instance, host.resume_instance, host.remove_domain):
        with pytest.raises(exception.DomainNotFound):
            method(instance)
    assert host.get_job_stats(instance) is None
    assert host.get_completed_job_stats(instance) is None
    assert host.abort_job(instance) is False


def test_a_shut_off_guest_cannot_be_paused_or_resumed(make_host):
    host = make_host()
    instance = host.add_domain('guest-off', power_state='shutoff')
    for method in (host.pause_instance, host.resume_instance):
        with pytest.raises(exception.InstanceStateConflict):
            method(instance)


# --- CPU compatibility --------------------------------------------------------------------

def test_cpu_check_compares_the_source_model_with_this_host(make_host):
    skylake = make_host(cpu_model='Skylake-Client-IBRS')
    skylake_too = make_host(cpu_model='Skylake-Client-IBRS')
    epyc = make_host(cpu_model='EPYC-Milan')
    source_cpu = skylake.get_host_inventory()['cpu_xml']
    assert source_cpu == ('<cpu><arch>x86_64</arch><model>Skylake-Client-IBRS</model>'
                          '<vendor>Intel</vendor></cpu>')
    assert skylake_too.check_cpu_compatible(source_cpu) is None
    assert epyc.check_cpu_compatible(None) is None
    with pytest.raises(exception.CPUIncompatible) as info:
        epyc.check_cpu_compatible(source_cpu)
    assert info.value.code == 'cpu_incompatible'
    assert 'Skylake-Client-IBRS' in str(info.value) and 'EPYC-Milan' in str(info.value)
    assert epyc.host in str(info.value)
    for foreign in ('<cpu><arch>aarch64</arch><model>Skylake-Client-IBRS</model></cpu>',
                    'not xml at all', '<host/>'):
        with pytest.raises(exception.CPUIncompatible):
            skylake_too.check_cpu_compatible(foreign)


# --- migrations ---------------------------------------------------------------------------

def test_converging_migration_moves_the_guest_with_plausible_stats(make_host):
    # 1 GiB dirtied at 32 MiB/s, sent at 64 MiB/s: each iteration sends half of the one
    # before (16 s, 8 s, ... model time) until 4 MiB are left, which take 62.5 ms.
    # Scale 0.05: the 32 model seconds take 1.6 s, time enough to watch.
    source, dest = make_host(time_scale=0.05), make_host(time_scale=0.05)
    instance = source.add_domain('guest-go', memory_mb=1024, vcpus=2, dirty_rate_mib=32)
    thread, outcome = _start(source, instance, dest, bandwidth_mib=64,
                             max_downtime_ms=100)
    samples = []
    while thread.is_alive():
        samples.append((source.get_job_stats(instance), dest.find_instance(instance),
                        dest.get_job_stats(instance)))
        time.sleep(0.05)
    assert _finish(thread, outcome) == {'ok': True}
    running = [(src, state, dst) for src, state, dst in samples
               if src and src['type'] == 'unbounded']
    assert len(running) >= 5, samples
    first, last = running[0][0], running[-1][0]
    assert last['memory_processed'] > first['memory_processed']
    assert last['total_time_ms'] > first['total_time_ms']
    assert last['iteration'] >= first['iteration']
    for src, state, dst in running[:-1]:
        assert (src['memory_total'], src['dirty_rate']) == (1024 * MIB, 32 * MIB)
        assert 0 < src['memory_remaining'] <= 1024 * MIB
        assert src['downtime_ms'] is None and src['expected_downtime_ms'] > 0
        # The incoming copy: paused, and (as with libvirt) no statistics there.
        assert state == 'paused'
        assert dst['type'] == 'unbounded' and dst['memory_processed'] is None

    assert source.find_instance(instance) is None
    assert source.get_job_stats(instance) is None
    assert dest.get_instance(instance) == {
        'uuid': instance, 'name': 'guest-go', 'power_state': 'running',
        'memory_mb': 1024, 'vcpus': 2, 'migration_profile': None}
    assert dest.get_job_stats(instance)['type'] == 'none'
    stats = dest.get_completed_job_stats(instance)
    assert stats == dest.get_completed_job_stats(instance)   # reading does not consume
    assert stats['type'] == 'completed'
    assert stats['iteration'] == 8
    assert stats['downtime_ms'] in (62, 63)
    assert stats['expected_downtime_ms'] is None
    assert stats['memory_remaining'] == 0
    assert stats['memory_processed'] == 2044 * MIB              # 1024 + 512 + ... + 4
    assert abs(stats['total_time_ms'] - 31937) <= 1            # 16 + 8 + ... + 0.0625 s
    assert stats['postcopy'] is False
    assert set(stats) == set(driver.JOB_STATS_KEYS)
    # The guest goes on dirtying at its rate on the destination, and can move back.
    assert dest.live_migrate(instance, 'simulated://' + source.host, None, {}) is None
    assert source.find_instance(instance) == 'running'


def test_non_converging_migration_goes_on_until_the_guest_is_paused(make_host):
    source, dest = make_host(), make_host()
    # Dirtied faster than sent: every iteration sends all 512 MiB again (8 model s).
    instance = source.add_domain('guest-busy', memory_mb=512, dirty_rate_mib=128)
    thread, outcome = _start(source, instance, dest, bandwidth_mib=64)
    stats = _wait_for(lambda: (lambda s: s if s and s['iteration'] >= 4 else None)(
        source.get_job_stats(instance)), 'four iterations')
    assert stats['memory_remaining'] == 512 * MIB
    assert stats['expected_downtime_ms'] == 8000
    assert thread.is_alive()
    source.pause_instance(instance)            # force complete: dirtying stops
    assert _finish(thread, outcome) == {'ok': True}
    assert source.find_instance(instance) is None
    # As libvirt does: the destination resumes a guest paused during the migration.
    assert dest.find_instance(instance) == 'running'
    done = dest.get_completed_job_stats(instance)
    assert done['downtime_ms'] <= 300
    assert done['memory_processed'] >= 4 * 512 * MIB


def test_guest_paused_before_the_migration_stays_paused_on_the_destination(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-paused', power_state='paused', dirty_rate_mib=500)
    source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert dest.find_instance(instance) == 'paused'
    assert dest.get_completed_job_stats(instance)['iteration'] == 1
    assert dest.get_completed_job_stats(instance)['downtime_ms'] == 0
    dest.resume_instance(instance)
    assert dest.find_instance(instance) == 'running'


def test_abort_leaves_the_guest_running_on_the_source_only(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-stay', memory_mb=512, dirty_rate_mib=128)
    thread, outcome = _start(source, instance, dest, bandwidth_mib=64)
    _wait_for(lambda: (source.get_job_stats(instance) or {}).get('iteration', 0) >= 2,
              'a second iteration')
    assert source.abort_job(instance) is True
    error = _finish(thread, outcome)['error']
    assert isinstance(error, exception.MigrationJobCancelled)
    assert isinstance(error, exception.MigrationJobFailed)
    assert instance in str(error) and source.host in str(error)
    assert source.find_instance(instance) == 'running'
    assert dest.find_instance(instance) is None
    assert source.get_job_stats(instance)['type'] == 'none'
    assert source.get_completed_job_stats(instance) is None
    assert source.abort_job(instance) is False
    # Nothing was left behind: the same guest migrates once it dirties less.
    source.set_dirty_rate(instance, 0)
    source.live_migrate(instance, 'simulated://' + dest.host, None, {'bandwidth_mib': 64})
    assert (source.find_instance(instance), dest.find_instance(instance)) == (None,
                                                                              'running')


def test_injected_failure_fails_midway_and_leaves_the_guest_on_the_source(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-fail', memory_mb=2048)
    source.fail_next_migration('migration stream broken')
    with pytest.raises(exception.MigrationJobFailed) as info:
        source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert not isinstance(info.value, exception.MigrationJobCancelled)
    assert 'migration stream broken' in str(info.value)
    assert source.find_instance(instance) == 'running'
    assert dest.find_instance(instance) is None
    # Only the next migration fails.
    source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert dest.find_instance(instance) == 'running'


def test_destroying_the_incoming_copy_fails_the_migration(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-cut', memory_mb=512, dirty_rate_mib=128)
    thread, outcome = _start(source, instance, dest, bandwidth_mib=64)
    _wait_for(lambda: dest.find_instance(instance) == 'paused', 'the incoming copy')
    with pytest.raises(exception.InstanceStateConflict):
        dest.resume_instance(instance)       # an incoming copy cannot run yet
    assert dest.abort_job(instance) is False   # the job belongs to the source
    assert dest.destroy_instance(instance) is True
    error = _finish(thread, outcome)['error']
    assert type(error) is exception.MigrationJobFailed
    assert 'destination' in str(error)
    assert source.find_instance(instance) == 'running'


def test_refused_migrations_change_nothing(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-x', dirty_rate_mib=128)
    with pytest.raises(exception.DomainNotFound):
        source.live_migrate('no-such-uuid', 'simulated://' + dest.host, None, {})
    for uri in ('simulated://no-such-host', 'simulated://' + source.host,
                'qemu+tcp://127.0.0.1/system'):
        with pytest.raises(exception.MigrationJobFailed):
            source.live_migrate(instance, uri, None, {})
    dest.add_domain('guest-x', uuid=instance)
    with pytest.raises(exception.MigrationJobFailed) as info:
        source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert 'already exists' in str(info.value)
    dest.destroy_instance(instance)
    # One job at a time.
    thread, outcome = _start(source, instance, dest, bandwidth_mib=64)
    _wait_for(lambda: source.get_job_stats(instance)['type'] == 'unbounded', 'the job')
    with pytest.raises(exception.MigrationJobFailed) as info:
        source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert 'another migration job' in str(info.value)
    source.abort_job(instance)
    assert isinstance(_finish(thread, outcome)['error'], exception.MigrationJobCancelled)
    assert source.find_instance(instance) == 'running'
    assert dest.find_instance(instance) is None


def test_a_shut_off_definition_on_the_destination_is_replaced(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-back', memory_mb=256)
    dest.add_domain('guest-back', uuid=instance, power_state='shutoff')
    source.live_migrate(instance, 'simulated://' + dest.host, None, {})
    assert dest.find_instance(instance) == 'running'


def test_auto_converge_makes_a_busy_guest_converge(make_host):
    source, dest = make_host(), make_host()
    instance = source.add_domain('guest-throttled', memory_mb=512, dirty_rate_mib=128)
    source.live_migrate(instance, 'simulated://' + dest.host, None,
                        {'bandwidth_mib': 64, 'auto_converge': True})
    stats = dest.get_completed_job_stats(instance)
    assert dest.find_instance(instance) == 'running'
    assert stats['iteration'] > 2 and stats['downtime_ms'] <= 300


def test_the_registry_follows_the_drivers(make_host):
    first = make_host(name='sim-registry-test')
    assert simulated.get_simulated_host('sim-registry-test') is first
    second = make_host(name='sim-registry-test')    # a restarted agent replaces it
    assert simulated.get_simulated_host('sim-registry-test') is second
    first.cleanup()                                 # the old one does not remove it
    assert simulated.get_simulated_host('sim-registry-test') is second
    second.cleanup()
    assert simulated.get_simulated_host('sim-registry-test') is None
