"""db.api: most behaviour on SQLite, the conditional updates on all three backends.

``sqlite_api`` and ``backend_api`` (tests/db_fixtures.py) upgrade a throwaway database
to head and point db.api at it for one test.
"""

import datetime
import threading
from unittest import mock

from oslo_utils import timeutils
from oslo_utils import uuidutils
import pytest
import sqlalchemy as sa

from db import api as db_api
from db import models
from migration_conductor import context
from migration_conductor import exception

INSTANCE_UUID = '8c7bb0a2-52d6-4a2a-9d38-4b3f8a2f1c01'


@pytest.fixture
def ctx():
    return context.get_admin_context()


def _host(name='node1', **values):
    values.setdefault('hypervisor_type', 'QEMU')
    values.setdefault('cpu_features', ['vmx', 'avx2'])
    return dict(values, host=name)


def _migration(ctx, **values):
    values.setdefault('instance_uuid', INSTANCE_UUID)
    values.setdefault('status', 'accepted')
    values.setdefault('source_host', 'node1')
    return db_api.migration_create(ctx, values)


def _assert_plain(row):
    assert type(row) is dict
    assert all(isinstance(key, str) for key in row)


# --- compute hosts -------------------------------------------------------------------

def test_compute_host_upsert_creates_then_updates(sqlite_api, ctx):
    created = db_api.compute_host_upsert(ctx, _host(memory_mb=4096))
    _assert_plain(created)
    assert created['host'] == 'node1'
    assert created['cpu_features'] == ['vmx', 'avx2']
    assert created['enabled'] is True
    assert created['created_at'] is not None
    assert created['updated_at'] is None

    updated = db_api.compute_host_upsert(
        ctx, {'host': 'node1', 'memory_mb_free': 1024, 'cpu_features': ['sse4_2']})
    assert updated['id'] == created['id']
    assert updated['memory_mb'] == 4096
    assert updated['memory_mb_free'] == 1024
    assert updated['cpu_features'] == ['sse4_2']
    assert updated['updated_at'] is not None
    assert len(db_api.compute_host_list(ctx)) == 1


def test_compute_host_get_list_update(sqlite_api, ctx):
    db_api.compute_host_upsert(ctx, _host('node2'))
    db_api.compute_host_upsert(ctx, _host('node1', cpu_features=None))
    assert db_api.compute_host_get(ctx, 'node1')['cpu_features'] is None
    assert [h['host'] for h in db_api.compute_host_list(ctx)] == ['node1', 'node2']

    row = db_api.compute_host_update(ctx, 'node2', {'enabled': False,
                                                    'disabled_reason': 'maintenance'})
    assert row['enabled'] is False
    assert db_api.compute_host_get(ctx, 'node2')['disabled_reason'] == 'maintenance'


def test_compute_host_not_found(sqlite_api, ctx):
    with pytest.raises(exception.HostNotFound):
        db_api.compute_host_get(ctx, 'nowhere')
    with pytest.raises(exception.HostNotFound):
        db_api.compute_host_update(ctx, 'nowhere', {'enabled': False})


@pytest.mark.parametrize('values, words', [
    ({'host': 'node1', 'no_such_column': 1}, 'no_such_column'),
    ({'host': 'node1', 'id': 7}, 'id'),
    ({'host': 'node1', 'memory_mb': 'lots'}, 'compute_hosts.memory_mb'),
    ({'host': 'node1', 'memory_mb': 2 ** 31}, 'compute_hosts.memory_mb'),
    ({'host': 'node1', 'enabled': 1}, 'compute_hosts.enabled'),
    ({'host': 'node1', 'enabled': None}, 'must not be null'),
    ({'host': 'x' * 256}, 'compute_hosts.host'),
    ({'host': 'node1', 'cpu_features': 'vmx'}, 'list of strings'),
    ({'host': 'node1', 'last_heartbeat': '2024-01-01'}, 'datetime'),
    ({'memory_mb': 1}, 'compute_hosts.host is required'),
    (['host', 'node1'], 'mapping'),
])
def test_compute_host_upsert_invalid_writes_nothing(sqlite_api, ctx, values, words):
    with pytest.raises(exception.Invalid) as caught:
        db_api.compute_host_upsert(ctx, values)
    assert words in str(caught.value)
    assert db_api.compute_host_list(ctx) == []


def test_compute_host_update_invalid_writes_nothing(sqlite_api, ctx):
    db_api.compute_host_upsert(ctx, _host(memory_mb=1))
    before = db_api.compute_host_get(ctx, 'node1')
    for values in ({'memory_mb': 2, 'bogus': 1}, {'host': 'node9'}, {}):
        with pytest.raises(exception.Invalid):
            db_api.compute_host_update(ctx, 'node1', values)
    assert db_api.compute_host_get(ctx, 'node1') == before


def test_aware_datetimes_are_stored_as_naive_utc(sqlite_api, ctx):
    paris = datetime.timezone(datetime.timedelta(hours=1))
    beat = datetime.datetime(2024, 5, 1, 13, 0, 0, 250000, tzinfo=paris)
    row = db_api.compute_host_upsert(ctx, _host(last_heartbeat=beat))
    assert row['last_heartbeat'] == datetime.datetime(2024, 5, 1, 12, 0, 0, 250000)


# --- instances -----------------------------------------------------------------------

def test_instance_upsert_creates_then_updates(sqlite_api, ctx):
    created = db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'name': 'vm1',
                                           'host': 'node1', 'memory_mb': 512})
    _assert_plain(created)
    assert created['power_state'] == 'unknown'
    updated = db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID,
                                           'power_state': 'running'})
    assert updated['id'] == created['id']
    assert updated['name'] == 'vm1'
    assert updated['power_state'] == 'running'
    assert db_api.instance_get(ctx, INSTANCE_UUID) == updated


def test_instance_not_found(sqlite_api, ctx):
    missing = uuidutils.generate_uuid()
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_get(ctx, missing)
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_update(ctx, missing, {'host': 'node2'})
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_update(ctx, missing, {'host': 'node2'},
                               expected={'task_state': None})
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_delete(ctx, missing)


def test_instance_list_by_host_and_delete(sqlite_api, ctx):
    uuids = [uuidutils.generate_uuid() for _ in range(3)]
    for uuid, host in zip(uuids, ('node1', 'node2', 'node1')):
        db_api.instance_upsert(ctx, {'uuid': uuid, 'host': host})
    assert [i['uuid'] for i in db_api.instance_list(ctx)] == uuids
    assert [i['uuid'] for i in db_api.instance_list(ctx, host='node1')] == [
        uuids[0], uuids[2]]
    assert db_api.instance_list(ctx, host='node3') == []
    db_api.instance_delete(ctx, uuids[0])
    assert [i['uuid'] for i in db_api.instance_list(ctx, host='node1')] == [uuids[2]]


def test_instance_invalid_writes_nothing(sqlite_api, ctx):
    with pytest.raises(exception.Invalid):
        db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'flavor': 'm1.small'})
    assert db_api.instance_list(ctx) == []
    db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'host': 'node1'})
    before = db_api.instance_get(ctx, INSTANCE_UUID)
    for values, expected in (({'host': 'node2', 'flavor': 'x'}, None),
                             ({'uuid': uuidutils.generate_uuid()}, None),
                             ({'host': 'node2'}, {'no_such_column': None}),
                             ({'host': 'node2'}, {'vcpus': 'two'})):
        with pytest.raises(exception.Invalid):
            db_api.instance_update(ctx, INSTANCE_UUID, values, expected=expected)
    assert db_api.instance_get(ctx, INSTANCE_UUID) == before


def test_instance_update_expected_names_what_differed(sqlite_api, ctx):
    db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'host': 'node1',
                                 'task_state': 'migrating'})
    with pytest.raises(exception.InstanceStateConflict) as caught:
        db_api.instance_update(ctx, INSTANCE_UUID, {'task_state': 'migrating'},
                               expected={'task_state': None, 'host': 'node1'})
    message = str(caught.value)
    assert "task_state is 'migrating', expected None" in message
    assert 'host' not in message


# --- migrations ----------------------------------------------------------------------

def test_migration_create_and_get(sqlite_api, ctx):
    row = _migration(ctx, dest_host='node2', force=True)
    _assert_plain(row)
    assert uuidutils.is_uuid_like(row['uuid'])
    assert row['migration_type'] == 'live'
    assert row['block_migration'] == 'auto'
    assert row['force'] is True
    assert db_api.migration_get(ctx, row['uuid']) == row

    given = uuidutils.generate_uuid()
    assert _migration(ctx, uuid=given)['uuid'] == given
    with pytest.raises(exception.Conflict):
        _migration(ctx, uuid=given)


def test_migration_not_found(sqlite_api, ctx):
    missing = uuidutils.generate_uuid()
    with pytest.raises(exception.MigrationNotFound):
        db_api.migration_get(ctx, missing)
    with pytest.raises(exception.MigrationNotFound):
        db_api.migration_update(ctx, missing, {'status': 'running'})
    with pytest.raises(exception.MigrationNotFound):
        db_api.migration_update(ctx, missing, {'status': 'running'},
                                expected_status='accepted')


@pytest.mark.parametrize('values', [
    {'status': 'accepted'},
    {'instance_uuid': INSTANCE_UUID},
    {'instance_uuid': INSTANCE_UUID, 'status': 'accepted', 'speed': 1},
    {'instance_uuid': INSTANCE_UUID, 'status': 'accepted', 'block_migration': 'yes'},
    {'instance_uuid': INSTANCE_UUID, 'status': 'accepted', 'memory_total': 1.5},
    {'instance_uuid': INSTANCE_UUID, 'status': 'accepted', 'created_at': None},
])
def test_migration_create_invalid_writes_nothing(sqlite_api, ctx, values):
    with pytest.raises(exception.Invalid):
        db_api.migration_create(ctx, values)
    assert db_api.migration_list(ctx) == []


def test_migration_update_progress(sqlite_api, ctx):
    uuid = _migration(ctx)['uuid']
    started = timeutils.utcnow()
    row = db_api.migration_update(ctx, uuid, {
        'status': 'running', 'started_at': started, 'memory_total': 8 * 2 ** 30,
        'memory_processed': 2 ** 33 + 1, 'dirty_rate': 2 ** 40, 'iteration': 3})
    assert row['status'] == 'running'
    assert row['started_at'] == started
    assert row['memory_processed'] == 2 ** 33 + 1
    with pytest.raises(exception.Invalid):
        db_api.migration_update(ctx, uuid, {'status': 'completed', 'bogus': 1},
                                expected_status='running')
    assert db_api.migration_get(ctx, uuid) == row


def test_migration_update_accepts_a_list_of_expected_statuses(sqlite_api, ctx):
    uuid = _migration(ctx, status='running-postcopy')['uuid']
    row = db_api.migration_update(ctx, uuid, {'status': 'cancelling'},
                                  expected_status=['running', 'running-postcopy'])
    assert row['status'] == 'cancelling'
    with pytest.raises(exception.MigrationStateConflict) as caught:
        db_api.migration_update(ctx, uuid, {'status': 'cancelling'},
                                expected_status=('running', 'running-postcopy'))
    assert caught.value.kwargs['actual'] == 'cancelling'


def test_migration_list_filters_newest_first(sqlite_api, ctx):
    times = [datetime.datetime(2024, 1, 1, 0, 0, second) for second in range(4)]
    specs = [('node1', 'node2', 'completed', INSTANCE_UUID),
             ('node2', 'node3', 'running', INSTANCE_UUID),
             ('node3', None, 'accepted', uuidutils.generate_uuid()),
             ('node1', 'node3', 'error', uuidutils.generate_uuid())]
    made = []
    for when, (source, dest, status, instance) in zip(times, specs):
        with mock.patch.object(timeutils, 'utcnow', return_value=when):
            made.append(_migration(ctx, source_host=source, dest_host=dest,
                                   status=status, instance_uuid=instance)['uuid'])

    def uuids(**filters):
        return [m['uuid'] for m in db_api.migration_list(ctx, **filters)]

    assert uuids() == made[::-1]
    assert uuids(status='running') == [made[1]]
    assert uuids(status=['accepted', 'running']) == [made[2], made[1]]
    assert uuids(host='node2') == [made[1], made[0]]
    assert uuids(host='node3') == [made[3], made[2], made[1]]
    assert uuids(instance_uuid=INSTANCE_UUID) == [made[1], made[0]]
    assert uuids(host='node1', status='error') == [made[3]]
    assert uuids(limit=2) == [made[3], made[2]]
    assert uuids(host='node9') == []
    for bad in (0, -1, 'ten', True):
        with pytest.raises(exception.Invalid):
            db_api.migration_list(ctx, limit=bad)


def test_migration_list_with_sizes_joins_the_instances(backend_api, ctx):
    db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'host': 'node1',
                                 'memory_mb': 2048, 'vcpus': 2})
    gone = uuidutils.generate_uuid()
    towards_2 = _migration(ctx, source_host='node1', dest_host='node2',
                           status='running', instance_uuid=INSTANCE_UUID)['uuid']
    orphan = _migration(ctx, source_host='node3', dest_host='node2',
                        status='claiming', instance_uuid=gone)['uuid']
    _migration(ctx, source_host='node1', dest_host='node3', status='completed',
               instance_uuid=INSTANCE_UUID)

    rows = db_api.migration_list_with_sizes(ctx, status=['running', 'claiming'])
    assert [(r['uuid'], r['instance_memory_mb'], r['instance_vcpus']) for r in rows] \
        == [(towards_2, 2048, 2), (orphan, None, None)]
    assert [r['uuid'] for r in db_api.migration_list_with_sizes(
        ctx, status='running', dest_host='node2')] == [towards_2]
    assert db_api.migration_list_with_sizes(ctx, status='running',
                                            dest_host='node3') == []


def test_calls_share_the_callers_transaction(sqlite_api, ctx):
    db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'host': 'node1'})
    with pytest.raises(exception.Invalid):
        with db_api.context_manager.writer.using(ctx):
            db_api.instance_update(ctx, INSTANCE_UUID, {'task_state': 'migrating'},
                                   expected={'task_state': None})
            _migration(ctx, status=None)
    assert db_api.instance_get(ctx, INSTANCE_UUID)['task_state'] is None


# --- on every backend ----------------------------------------------------------------

def test_values_round_trip_the_same_everywhere(backend_api, ctx):
    beat = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456)
    db_api.compute_host_upsert(ctx, _host('Node1', last_heartbeat=beat,
                                          cpu_xml='<cpu>\u00e9</cpu>'))
    # Case-sensitive everywhere (utf8mb4_bin on MariaDB): a second host.
    db_api.compute_host_upsert(ctx, _host('node1'))
    assert [h['host'] for h in db_api.compute_host_list(ctx)] == ['Node1', 'node1']
    row = db_api.compute_host_get(ctx, 'Node1')
    assert row['last_heartbeat'] == beat
    assert row['cpu_xml'] == '<cpu>\u00e9</cpu>'
    assert row['enabled'] is True
    instance = db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID,
                                            'name': 'web \U0001F5A5'})
    assert instance['name'] == 'web \U0001F5A5'
    big = _migration(ctx, memory_total=2 ** 62, force=False)
    assert big['memory_total'] == 2 ** 62
    assert big['force'] is False


def test_migration_cas_loser_sees_the_winner(backend_api, ctx):
    uuid = _migration(ctx, status='running')['uuid']
    won = db_api.migration_update(
        ctx, uuid, {'status': 'completing', 'downtime_ms': 40},
        expected_status='running')
    assert won['status'] == 'completing'
    with pytest.raises(exception.MigrationStateConflict) as caught:
        db_api.migration_update(
            ctx, uuid, {'status': 'cancelling', 'error_message': 'aborted'},
            expected_status='running')
    assert caught.value.kwargs == {'migration_uuid': uuid, 'expected': 'running',
                                   'actual': 'completing'}
    assert db_api.migration_get(ctx, uuid) == won


def test_migration_cas_same_values_still_matches(backend_api, ctx):
    # NOTE: on MariaDB a no-op UPDATE changes 0 rows but matches 1; it must succeed.
    uuid = _migration(ctx, status='running')['uuid']
    row = db_api.migration_update(ctx, uuid, {'status': 'running'},
                                  expected_status='running')
    assert row['status'] == 'running'


def test_instance_cas_loser_sees_the_winner(backend_api, ctx):
    db_api.instance_upsert(ctx, {'uuid': INSTANCE_UUID, 'host': 'node1'})
    won = db_api.instance_update(ctx, INSTANCE_UUID, {'task_state': 'migrating'},
                                 expected={'task_state': None, 'host': 'node1'})
    with pytest.raises(exception.InstanceStateConflict) as caught:
        db_api.instance_update(ctx, INSTANCE_UUID, {'task_state': 'deleting'},
                               expected={'task_state': None, 'host': 'node1'})
    assert "task_state is 'migrating'" in str(caught.value)
    assert db_api.instance_get(ctx, INSTANCE_UUID) == won


def _race(update, outcomes):
    """Call ``update(name)`` for each name in ``outcomes``, each in its own thread,
    released together; return name -> returned row or raised Conflict."""
    barrier = threading.Barrier(len(outcomes))
    results = {}

    def run(name):
        barrier.wait()
        try:
            results[name] = update(name)
        except exception.Conflict as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == len(outcomes), 'a racing thread did not finish'
    return results


def test_migration_cas_two_threads_one_winner(backend_api):
    uuid = _migration(context.get_admin_context(), status='running')['uuid']

    def update(status):
        return db_api.migration_update(context.get_admin_context(), uuid,
                                       {'status': status}, expected_status='running')

    results = _race(update, ('completing', 'cancelling'))
    winners = [status for status, result in results.items() if isinstance(result, dict)]
    assert len(winners) == 1, results
    (loser,) = set(results) - set(winners)
    assert isinstance(results[loser], exception.MigrationStateConflict)
    assert results[loser].kwargs['actual'] == winners[0]
    row = db_api.migration_get(context.get_admin_context(), uuid)
    assert row['status'] == winners[0]


def test_instance_cas_two_threads_one_winner(backend_api):
    db_api.instance_upsert(context.get_admin_context(),
                           {'uuid': INSTANCE_UUID, 'host': 'node1'})

    def update(task_state):
        return db_api.instance_update(context.get_admin_context(), INSTANCE_UUID,
                                      {'task_state': task_state},
                                      expected={'task_state': None})

    results = _race(update, ('migrating', 'deleting'))
    winners = [state for state, result in results.items() if isinstance(result, dict)]
    assert len(winners) == 1, results
    (loser,) = set(results) - set(winners)
    assert isinstance(results[loser], exception.InstanceStateConflict)
    row = db_api.instance_get(context.get_admin_context(), INSTANCE_UUID)
    assert row['task_state'] == winners[0]


def test_concurrent_first_upserts_make_one_row(backend_api):
    def upsert(memory_mb):
        return db_api.compute_host_upsert(context.get_admin_context(),
                                          _host('node1', memory_mb=memory_mb))

    for _ in range(3):
        results = _race(upsert, (1024, 2048, 4096))
        assert all(isinstance(result, dict) for result in results.values()), results
        assert len({result['id'] for result in results.values()}) == 1
        rows = db_api.compute_host_list(context.get_admin_context())
        assert len(rows) == 1
        assert rows[0]['memory_mb'] in results
        with db_api.context_manager.writer.using(context.get_admin_context()) as s:
            s.execute(sa.delete(models.ComputeHost.__table__))
