"""Object fingerprints, state machine and row conversion of the versioned objects."""

import datetime

from oslo_versionedobjects import fixture
import pytest

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import base
from migration_conductor.objects import migration_states as states

# Changing an object's fields changes its fingerprint: bump its VERSION, add a
# "# Version x.y:" line and obj_make_compatible handling, then update the hash here.
EXPECTED_FINGERPRINTS = {
    'CompletionPlan': '1.0-420217ab0ed2006ee7c9b18e1ce63168',
    'ComputeHost': '1.1-82da0896a61b088f413baff3f591cc19',
    'ComputeHostList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'DestinationCheck': '1.0-8872f59b7df9840a49679c087925bb45',
    'DestinationFinish': '1.0-91e98f5fc1decbc2d50d3c102db56f17',
    'DestinationInfo': '1.0-04e146af3c25d7b976720fd016e9f6cb',
    'Disk': '1.0-a26b988a2d3e8b5a91702b0ce0a0c15d',
    'DiskList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'HostMigrations': '1.0-82bc212588a36d43a00668b37302a24b',
    'HostReport': '1.0-53b642c1f8e9c98a56550ae97a9237bb',
    'Instance': '1.0-236e47078dd5508f59773409823b6e46',
    'InstanceList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'JobProgress': '1.0-eee48cbea8d29bbf361c5661b4e4012f',
    'Migration': '1.2-f25f454d22c061de3d1b346ac35c1e80',
    'MigrationError': '1.0-146dc56505549ee4cea037ae23837847',
    'MigrationEvent': '1.0-3dc7c14d7a1673cb25f367c581282774',
    'MigrationEventList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'MigrationForecast': '1.0-5573789bd1b1877cdec6ba1b6d2d990a',
    'MigrationJob': '1.1-21915933fa4c0a6232fae0570451d8fd',
    'MigrationJobList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'MigrationList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'MigrationOptions': '1.1-d0dd093c6866c1488bce6586ed2649d2',
    'MigrationProfile': '1.0-8be0263f0a3459891954e59b05c18f92',
    'MigrationProfileList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'MigrationSpec': '1.1-55f8c9882a710201eef33d87e910f960',
    'ResourceClaim': '1.0-bd773706e27bfc03e92b134120b27317',
    'ResourceClaimList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'SourceFacts': '1.1-5129738db2d18695c5e780ecc915d2b9',
}

UUID_M = '11111111-1111-4111-8111-111111111111'
UUID_I = '22222222-2222-4222-8222-222222222222'


def test_object_fingerprints_match():
    checker = fixture.ObjectVersionChecker(
        base.MigrationConductorObjectRegistry.obj_classes())
    expected, actual = checker.test_hashes(EXPECTED_FINGERPRINTS)
    assert expected == actual, 'object fields changed without a version bump'


def _migration(status=states.ACCEPTED):
    return objects.Migration(uuid=UUID_M, instance_uuid=UUID_I, source_host='a',
                             status=status)


@pytest.mark.parametrize('path', [
    [states.SCHEDULING, states.PRE_CHECKING, states.CLAIMING, states.PREPARING,
     states.RUNNING, states.COMPLETING, states.COMPLETED],
    [states.SCHEDULING, states.PRE_CHECKING, states.SCHEDULING, states.PRE_CHECKING,
     states.CLAIMING, states.PREPARING, states.QUEUED, states.RUNNING,
     states.RUNNING_POSTCOPY, states.COMPLETING, states.COMPLETED],
    [states.SCHEDULING, states.PRE_CHECKING, states.FAILED],
    [states.SCHEDULING, states.PRE_CHECKING, states.CLAIMING, states.PREPARING,
     states.RUNNING, states.CANCELLING, states.CANCELLED],
])
def test_allowed_paths(path):
    migration = _migration()
    for target in path:
        migration.transition(target)
    assert migration.status == path[-1]
    assert migration.is_terminal


@pytest.mark.parametrize('current,target', [
    (states.ACCEPTED, states.COMPLETED),
    (states.RUNNING_POSTCOPY, states.CANCELLING),   # never back to the source
    (states.RUNNING_POSTCOPY, states.FAILED),
    (states.COMPLETED, states.RUNNING),              # terminal states are final
    (states.FAILED, states.SCHEDULING),
    (states.RUNNING, 'bogus'),
])
def test_forbidden_transitions_raise_and_change_nothing(current, target):
    migration = _migration(current)
    with pytest.raises(exception.InvalidMigrationTransition) as info:
        migration.transition(target)
    assert migration.status == current
    assert current in str(info.value) and target in str(info.value)


def test_every_in_flight_state_can_end():
    for state in states.IN_FLIGHT_STATES:
        assert states.allowed_targets(state), state
    for state in states.TERMINAL_STATES:
        assert not states.allowed_targets(state), state


def test_allowed_sources_are_exactly_the_states_the_machine_lets_through():
    """set_status puts allowed_sources in a WHERE clause: it must match the machine."""
    for target in states.ALL_STATES:
        for current in states.ALL_STATES:
            try:
                states.check_transition('m', current, target)
                allowed = True
            except exception.InvalidMigrationTransition:
                allowed = False
            assert (current in states.allowed_sources(target)) == allowed, (
                current, target)
    assert states.allowed_sources(states.ACCEPTED) == frozenset()


def test_status_is_an_enum():
    with pytest.raises(ValueError):
        objects.Migration(status='almost-done')


def test_migration_error_round_trips_through_db_columns():
    migration = _migration(states.FAILED)
    migration.error = objects.MigrationError(
        phase='claim', host='b', code='no_room', message='not enough memory')
    values = migration.obj_db_values()
    assert values['error_phase'] == 'claim' and values['error_code'] == 'no_room'
    assert 'error' not in values
    again = objects.Migration.from_db_row(values)
    assert again.error.message == 'not enough memory' and again.error.host == 'b'
    assert not again.obj_what_changed()


def test_host_liveness_follows_heartbeat():
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    host = objects.ComputeHost(host='a', last_heartbeat=now - datetime.timedelta(
        seconds=30))
    assert host.heartbeat_is_recent(60, now=now)
    assert not host.heartbeat_is_recent(10, now=now)
    assert not objects.ComputeHost(host='b', last_heartbeat=None).heartbeat_is_recent(
        60, now=now)


def test_a_migration_sent_to_a_1_0_peer_has_none_of_the_fields_of_1_1():
    migration = _migration(states.QUEUED)
    migration.job_state = 'running'
    migration.owner = 'conductor-1'
    migration.queue_position = 2
    primitive = migration.obj_to_primitive(target_version='1.0')
    data = primitive['migration_conductor_object.data']
    assert primitive['migration_conductor_object.version'] == '1.0'
    assert not set(data) & {'job_state', 'job_error', 'last_report_at', 'owner',
                            'queued_at', 'queue_position'}
    assert data['status'] == states.QUEUED
    assert 'queue_position' in migration.obj_to_primitive()[
        'migration_conductor_object.data']


def test_a_migration_sent_to_a_1_1_peer_has_no_profile_forecast_or_events():
    migration = _migration(states.RUNNING)
    migration.profile = 'default'
    migration.strategy = 'precopy'
    migration.forecast = objects.MigrationForecast(
        memory_bytes=1, bandwidth=1, max_downtime_ms=1, converges=True, bound_s=1.0,
        strategy='precopy', reason='r')
    migration.events = objects.MigrationEventList(objects=[])
    data = migration.obj_to_primitive(target_version='1.1')[
        'migration_conductor_object.data']
    assert not set(data) & {'profile', 'strategy', 'forecast', 'events'}
    assert data['status'] == states.RUNNING
    again = objects.Migration.obj_from_primitive(migration.obj_to_primitive())
    assert again.forecast.reason == 'r' and again.profile == 'default'


def test_timestamps_keep_their_microseconds_on_the_wire():
    stamp = datetime.datetime(2026, 12, 2, 8, 0, 0, 123456)
    migration = _migration()
    migration.created_at = stamp
    again = objects.Migration.obj_from_primitive(migration.obj_to_primitive())
    assert again.created_at.replace(tzinfo=None) == stamp
    host = objects.ComputeHost(host='a', last_heartbeat=stamp)
    again = objects.ComputeHost.obj_from_primitive(host.obj_to_primitive())
    assert again.last_heartbeat.microsecond == 123456


def test_the_contract_objects_read_the_dicts_of_rpc_1_3():
    facts = {'instance': {'uuid': UUID_I, 'name': 'g', 'power_state': 'running',
                          'memory_mb': 512, 'vcpus': 2},
             'cpu_xml': '<cpu/>', 'hypervisor_type': 'QEMU',
             'hypervisor_version': 7002000,
             'disks': [{'target': 'vda', 'path': '/x', 'format': 'raw',
                        'pool_uuid': None, 'allocation': 10}]}
    source = objects.SourceFacts.from_legacy('src', facts)
    assert (source.instance.memory_mb, source.disks[0].allocation) == (512, 10)
    assert source.legacy() == facts
    job = objects.MigrationJob.from_legacy(
        UUID_M, UUID_I, 'src', {'state': 'running', 'error': None,
                                'stats': {'type': 'unbounded', 'memory_total': 5,
                                          'dirty_rate': 7}})
    assert (job.progress.job_type, job.progress.dirty_rate) == ('unbounded', 7)
    assert job.progress.active and not job.ended
    with pytest.raises(ValueError):
        objects.MigrationJob(migration_uuid=UUID_M, instance_uuid=UUID_I, host='h',
                             state='almost-done')
