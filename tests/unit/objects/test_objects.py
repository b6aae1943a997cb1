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
    'ComputeHost': '1.0-cb56549b6bb368845b3f7d9cece35215',
    'ComputeHostList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'HostReport': '1.0-53b642c1f8e9c98a56550ae97a9237bb',
    'Instance': '1.0-236e47078dd5508f59773409823b6e46',
    'InstanceList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
    'Migration': '1.0-0117392a43021230b4e6f02a6673b563',
    'MigrationError': '1.0-146dc56505549ee4cea037ae23837847',
    'MigrationList': '1.0-15ecf022a68ddbb8c2a6739cfc9f8f5e',
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
