"""db.api for the agent-side monitor, the per-host slots and the flows' ownership.

The races (slots, ownership) run on the three backends: each one decides them with its
own locks and unique indexes, and every one must end the same way.
"""

import collections
import datetime
import threading

from oslo_utils import timeutils
import pytest

from db import api as db_api
from migration_conductor import context
from migration_conductor import exception
from tests.unit.db import test_api

MIB = 2 ** 20


@pytest.fixture
def ctx():
    return context.get_admin_context()


def _running(ctx, **values):
    return test_api._migration(ctx, status='running', **values)


# --- progress --------------------------------------------------------------------------

def test_a_progress_report_is_kept_and_becomes_the_migrations_latest(sqlite_api, ctx):
    uuid = _running(ctx)['uuid']
    first = (timeutils.utcnow() - datetime.timedelta(minutes=1)).replace(
        microsecond=250000)
    db_api.migration_progress_record(ctx, uuid, {'memory_total': 512 * MIB,
                                                 'memory_processed': 100 * MIB,
                                                 'dirty_rate': None, 'postcopy': None},
                                     'push', expected_status=['running'],
                                     reported_at=first)
    row = db_api.migration_progress_record(
        ctx, uuid, {'memory_processed': 300 * MIB, 'iteration': 2}, 'poll',
        expected_status=['running'])
    assert (row['memory_total'], row['memory_processed'], row['iteration']) == (
        512 * MIB, 300 * MIB, 2)
    assert row['last_report_at'] > first
    records = db_api.migration_progress_list(ctx, uuid)
    assert [(r['origin'], r['memory_processed'], r['postcopy']) for r in records] == [
        ('push', 100 * MIB, False), ('poll', 300 * MIB, False)]
    assert records[0]['created_at'] == first      # microseconds kept
    assert [r['origin'] for r in db_api.migration_progress_list(ctx, uuid, limit=1)] == \
        ['poll']


def test_a_report_arriving_after_the_migration_moved_on_changes_nothing(sqlite_api, ctx):
    uuid = test_api._migration(ctx, status='completing')['uuid']
    assert db_api.migration_progress_record(ctx, uuid, {'memory_processed': 1}, 'push',
                                            expected_status=['running']) is None
    assert db_api.migration_progress_list(ctx, uuid) == []
    assert db_api.migration_get(ctx, uuid)['memory_processed'] is None


def test_a_bad_progress_value_writes_nothing(sqlite_api, ctx):
    uuid = _running(ctx)['uuid']
    with pytest.raises(exception.Invalid):
        db_api.migration_progress_record(ctx, uuid, {'memory_processed': 'lots'}, 'push',
                                         expected_status=['running'])
    with pytest.raises(exception.Invalid):
        db_api.migration_progress_record(ctx, uuid, {}, 'guessed',
                                         expected_status=['running'])
    assert db_api.migration_progress_list(ctx, uuid) == []


# --- ownership ----------------------------------------------------------------------------

def test_the_writes_of_a_conductor_that_lost_the_migration_are_refused(backend_api, ctx):
    uuid = _running(ctx)['uuid']
    mine = db_api.migration_take_ownership(ctx, uuid, 'conductor-a')['generation']
    db_api.migration_update(ctx, uuid, {'iteration': 1}, generation=mine)
    theirs = db_api.migration_take_ownership(ctx, uuid, 'conductor-b')['generation']
    assert theirs == mine + 1
    with pytest.raises(exception.OwnershipLost) as info:
        db_api.migration_update(ctx, uuid, {'status': 'completing'},
                                expected_status=['running'], generation=mine)
    assert (info.value.kwargs['owner'], info.value.kwargs['actual']) == (
        'conductor-b', theirs)
    with pytest.raises(exception.OwnershipLost):
        db_api.migration_progress_record(ctx, uuid, {'iteration': 5}, 'poll',
                                         expected_status=['running'], generation=mine)
    row = db_api.migration_get(ctx, uuid)
    assert (row['status'], row['iteration'], row['owner']) == ('running', 1,
                                                               'conductor-b')
    assert db_api.migration_progress_list(ctx, uuid) == []
    # The owner's own writes go through; nobody may set the owner by an update.
    db_api.migration_update(ctx, uuid, {'status': 'completing'},
                            expected_status=['running'], generation=theirs)
    with pytest.raises(exception.Invalid):
        db_api.migration_update(ctx, uuid, {'owner': 'conductor-a'})


# --- slots -------------------------------------------------------------------------------

def _take(uuid, source='a', dest='b', out_limit=1, in_limit=1):
    return db_api.migration_slots_take(context.get_admin_context(), uuid,
                                       [(source, 'out', out_limit),
                                        (dest, 'in', in_limit)])


def test_slots_are_taken_all_or_none_and_given_back(sqlite_api, ctx):
    first, second, third = (_running(ctx)['uuid'] for _ in range(3))
    held = _take(first)
    assert sorted((s['host'], s['direction'], s['slot']) for s in held) == [
        ('a', 'out', 0), ('b', 'in', 0)]
    assert len(_take(first)) == 2                  # asked again: the same slots
    with pytest.raises(exception.SlotsBusy) as info:
        _take(second, source='c')                  # c has room, b does not
    assert (info.value.kwargs['host'], info.value.kwargs['direction']) == (
        'b', 'inbound')
    assert not [s for s in db_api.migration_slots_list(ctx)
                if s['migration_uuid'] == second]  # nothing of c was kept
    assert db_api.migration_slots_release(ctx, first) == 2
    assert db_api.migration_slots_release(ctx, first) == 0
    assert len(_take(second, source='c')) == 2
    assert {s['slot'] for s in _take(third, source='d', dest='b', in_limit=2)
            if s['host'] == 'b'} == {1}


def test_slots_of_ended_migrations_are_given_back(sqlite_api, ctx):
    ended, running = _running(ctx)['uuid'], _running(ctx)['uuid']
    _take(ended)
    _take(running, source='c', dest='d')
    db_api.migration_update(ctx, ended, {'status': 'completing'})
    assert db_api.migration_slots_release_ended(ctx, ['completed', 'completing']) == 2
    assert {s['migration_uuid'] for s in db_api.migration_slots_list(ctx)} == {running}


def test_racing_migrations_never_take_more_slots_than_a_host_has(backend_api):
    """Twelve migrations from twelve threads at once towards one host with 2 inbound
    slots: exactly two get them, whatever the backend."""
    ctx = context.get_admin_context()
    uuids = [_running(ctx)['uuid'] for _ in range(12)]
    barrier = threading.Barrier(len(uuids))
    outcomes = collections.Counter()

    def take(index):
        barrier.wait()
        try:
            _take(uuids[index], source='src-%d' % index, dest='busy', in_limit=2)
            outcomes['taken'] += 1
        except exception.SlotsBusy:
            outcomes['busy'] += 1

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(uuids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == {'taken': 2, 'busy': 10}
    inbound = [s for s in db_api.migration_slots_list(ctx) if s['host'] == 'busy']
    assert sorted(s['slot'] for s in inbound) == [0, 1]
    # No migration keeps its outbound slot without the inbound one.
    holders = {s['migration_uuid'] for s in db_api.migration_slots_list(ctx)}
    assert holders == {s['migration_uuid'] for s in inbound}


def test_queued_migrations_are_listed_first_come_first(sqlite_api, ctx):
    early = datetime.datetime(2026, 12, 2, 8, 0, 0)
    late = test_api._migration(ctx, status='queued',
                               queued_at=early + datetime.timedelta(seconds=1))
    early_uuid = test_api._migration(ctx, status='queued', queued_at=early)['uuid']
    _running(ctx)
    assert [r['uuid'] for r in db_api.migration_list_queued(ctx)] == [early_uuid,
                                                                      late['uuid']]


# --- instances and conductor locks --------------------------------------------------------

def test_an_instance_is_deleted_only_as_expected(sqlite_api, ctx):
    db_api.instance_upsert(ctx, {'uuid': test_api.INSTANCE_UUID, 'host': 'node1',
                                 'power_state': 'running', 'name': 'web'})
    with pytest.raises(exception.InstanceStateConflict) as info:
        db_api.instance_delete(ctx, test_api.INSTANCE_UUID,
                               expected={'power_state': 'missing'})
    assert "power_state is 'running'" in info.value.message
    assert [r['name'] for r in db_api.instance_list(ctx, name='web')] == ['web']
    db_api.instance_update(ctx, test_api.INSTANCE_UUID, {'power_state': 'missing'})
    db_api.instance_delete(ctx, test_api.INSTANCE_UUID,
                           expected={'power_state': 'missing', 'task_state': None})
    assert db_api.instance_list(ctx, name='web') == []


def test_the_holder_of_a_conductor_lock_is_recorded(sqlite_api, ctx):
    assert db_api.conductor_lock_holder_get(ctx, 'lock') is None
    db_api.conductor_lock_holder_set(ctx, 'lock', 'conductor a (pid 1)')
    db_api.conductor_lock_holder_set(ctx, 'lock', 'conductor b (pid 2)')
    assert db_api.conductor_lock_holder_get(ctx, 'lock') == 'conductor b (pid 2)'
