"""What the claim and a dead or down destination decide, end to end.

The destination's check only says the guest would fit now; the claim, serialized by
the destination's resource tracker, is what reserves the room, so a claim refused
after a passed check sends the flow to the next candidate, and of two migrations that
both passed the check for the last room exactly one claim wins. A named destination
whose agent died but whose heartbeat is still recent fails the migration within
``[conductor] precheck_timeout``, asking that host nothing more; one known to be down
is refused by the request itself. Instances may be named by a unique name.

The conductor and three simulated agents run in this process (the ``cloud`` fixture
of test_live_migration); ``cloud.messages`` counts what the conductor sends to whom.
"""

import datetime
import functools
import threading
import time

import oslo_messaging as messaging
import pytest

from compute_agent import manager as agent_manager
from db import api as db_api
from migration_conductor import exception
from migration_conductor import inventory
from tests.functional import test_live_migration as live
from tests.functional import test_slot_queues as queues

cloud = live.cloud   # the fixture, shared
heartbeats_in_order = queues.heartbeats_in_order    # autouse: see there

GUEST_MB = 4096


def calls_to(cloud, host, method=None):
    """The methods the conductor called or cast on the agent of ``host``, in order."""
    return [m for sender, _kind, topic, server, m in list(cloud.messages)
            if sender.startswith('conductor') and server == host
            and topic == cloud.conf.agent.topic and (method is None or m == method)]


def room_mb(cloud, host):
    """Memory the tracker of ``host`` can still promise (what its check compares)."""
    agent = cloud.agents[host]
    inventory = agent.driver.get_host_inventory()
    tracker = agent.manager.tracker
    used = sum(d['memory_mb'] for d in agent.driver.list_instances())
    held = sum(c['memory_mb'] for c in tracker.claims())
    return inventory['memory_mb'] - tracker._reserved_memory_mb - used - held


def leave_room_for_one(cloud, host, memory_mb=GUEST_MB):
    """Make ``host``'s tracker promise room for exactly one more guest of
    ``memory_mb`` (with 1024 MiB to spare); the scheduler's view is unchanged."""
    tracker = cloud.agents[host].manager.tracker
    inventory = cloud.agents[host].driver.get_host_inventory()
    tracker._reserved_memory_mb = inventory['memory_mb'] - memory_mb - 1024


# --- 5. a claim refused by the claim itself goes to the next candidate ----------------

def test_claim_refused_after_a_passed_check_moves_to_the_next_candidate(cloud,
                                                                        monkeypatch):
    # The scheduler prefers sim-2 (sim-3 holds a large guest), and its check passes.
    queues.add_guest(cloud, 'sim-3', 'filler', memory_mb=8192)
    sim2 = cloud.agents['sim-2'].manager
    intruder = {'migration_uuid': '11111111-2222-4333-8444-555555555555',
                'instance_uuid': '66666666-7777-4888-8999-000000000000'}
    checked = []
    original_check = sim2.check_destination
    original_claim = sim2.claim_resources

    @functools.wraps(original_check)
    def check(context, migration_uuid, *args, **kwargs):
        answer = original_check(context, migration_uuid, *args, **kwargs)
        checked.append(migration_uuid)
        return answer

    @functools.wraps(original_claim)
    def claim(context, migration_uuid, instance_uuid, memory_mb, vcpus):
        # Between the check and the claim another migration takes all the room left.
        sim2.tracker.claim(intruder['migration_uuid'], intruder['instance_uuid'],
                           room_mb(cloud, 'sim-2'), 0)
        return original_claim(context, migration_uuid, instance_uuid, memory_mb, vcpus)

    # The RPC server looks the endpoint's methods up at each call.
    monkeypatch.setattr(sim2, 'check_destination', check)
    monkeypatch.setattr(sim2, 'claim_resources', claim)
    uuid = queues.add_guest(cloud, 'sim-1', 'g-claim-refused')
    del cloud.messages[:]
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid).uuid
    migration = live.wait_for(cloud, migration_uuid)

    assert (migration.status, migration.dest_host) == ('completed', 'sim-3'), \
        migration.error
    assert live.where(cloud, uuid) == {'sim-3': 'running'}
    assert checked == [migration_uuid]
    assert calls_to(cloud, 'sim-2', 'check_destination') == ['check_destination']
    assert calls_to(cloud, 'sim-2', 'claim_resources') == ['claim_resources']
    assert calls_to(cloud, 'sim-3', 'claim_resources') == ['claim_resources']
    # Nothing of this migration is left claimed on sim-2: only the intruder's claim.
    assert [c['migration_uuid'] for c in sim2.tracker.claims()] == [
        intruder['migration_uuid']]
    sim2.tracker.release(intruder['migration_uuid'])
    assert live.claims(cloud) == {}


# --- 6. two migrations that both passed the check: the claim decides ------------------

def test_race_for_the_last_room_is_decided_inside_the_claim(cloud, monkeypatch):
    leave_room_for_one(cloud, 'sim-2')
    events = []
    lock = threading.Lock()
    both_checked = threading.Event()
    original_check = agent_manager.AgentManager.check_destination
    original_claim = agent_manager.AgentManager.claim_resources

    @functools.wraps(original_check)
    def check(self, context, migration_uuid, *args, **kwargs):
        answer = original_check(self, context, migration_uuid, *args, **kwargs)
        if self.host == 'sim-2':
            with lock:
                events.append(('checked', migration_uuid))
                if len(events) == 2:
                    both_checked.set()
        return answer

    @functools.wraps(original_claim)
    def claim(self, context, migration_uuid, *args, **kwargs):
        if self.host == 'sim-2':
            # Neither claims before both checks passed.
            assert both_checked.wait(30), events
            with lock:
                events.append(('claiming', migration_uuid))
            try:
                result = original_claim(self, context, migration_uuid, *args, **kwargs)
            except messaging.ExpectedException as wrapped:   # see manager.expected
                if isinstance(wrapped.exc_info[1], exception.InsufficientResources):
                    with lock:
                        events.append(('refused', migration_uuid))
                raise
            with lock:
                events.append(('claimed', migration_uuid))
            return result
        return original_claim(self, context, migration_uuid, *args, **kwargs)

    monkeypatch.setattr(agent_manager.AgentManager, 'check_destination', check)
    monkeypatch.setattr(agent_manager.AgentManager, 'claim_resources', claim)
    first = queues.add_guest(cloud, 'sim-1', 'g-race-1', memory_mb=GUEST_MB)
    second = queues.add_guest(cloud, 'sim-3', 'g-race-2', memory_mb=GUEST_MB)
    sources = {first: 'sim-1', second: 'sim-3'}
    # Named (not forced): the scheduler's filters pass (it sees 16 GiB free on sim-2),
    # and there is no other candidate to move on to.
    m1 = cloud.conductor.live_migrate(cloud.admin, first, host='sim-2').uuid
    m2 = cloud.conductor.live_migrate(cloud.admin, second, host='sim-2').uuid
    ended = {m: live.wait_for(cloud, m) for m in (m1, m2)}

    assert [e for e, _m in events[:2]] == ['checked', 'checked']
    assert sorted(e for e, _m in events[2:]) == ['claimed', 'claiming', 'claiming',
                                                 'refused']
    winner = next(m for e, m in events if e == 'claimed')
    loser = next(m for e, m in events if e == 'refused')
    assert {winner, loser} == {m1, m2}
    assert ended[winner].status == 'completed', ended[winner].error
    assert ended[loser].status == 'failed'
    assert (ended[loser].error.code, ended[loser].error.phase,
            ended[loser].error.host) == ('insufficient_resources', 'claim', 'sim-2')
    for migration_uuid, guest in ((m1, first), (m2, second)):
        expected = 'sim-2' if migration_uuid == winner else sources[guest]
        assert live.where(cloud, guest) == {expected: 'running'}
        row = live.instance_row(cloud, guest)
        assert (row['host'], row['task_state']) == (expected, None)
    assert live.claims(cloud) == {}


# --- 7. a named destination whose agent just died -------------------------------------

def test_named_destination_whose_agent_died_fails_within_the_precheck_timeout(cloud):
    cloud.conf.set_override('precheck_timeout', 2, group='conductor')
    uuid = queues.add_guest(cloud, 'sim-1', 'g-dead-dest')
    cloud.agents['sim-2'].stop()
    agents = cloud.service.conductor.runner._services.agents
    with pytest.raises(messaging.MessagingTimeout):
        agents.get_instance_state(cloud.admin, 'sim-2', uuid, timeout=1)
    # Its heartbeat is recent: the conductor still counts it up.
    assert inventory.host_from_row(db_api.compute_host_get(cloud.admin, 'sim-2'),
                                   cloud.conf.conductor.service_down_time).up
    del cloud.messages[:]

    started = time.monotonic()
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2').uuid
    migration = live.wait_for(cloud, migration_uuid)
    elapsed = time.monotonic() - started

    assert migration.status == 'failed'
    assert (migration.error.code, migration.error.host, migration.error.phase) == (
        'host_unavailable', 'sim-2', 'check-destination')
    bound = cloud.conf.conductor.precheck_timeout + 3
    assert elapsed < bound, elapsed
    # Asked once, never again: no claim, no preparation, no question in the rollback.
    assert calls_to(cloud, 'sim-2') == ['check_destination']
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


# --- 8. a named destination known to be down ------------------------------------------

@pytest.mark.parametrize('force', [False, True], ids=['named', 'forced'])
def test_named_destination_known_down_is_refused_by_the_request(cloud, force):
    uuid = queues.add_guest(cloud, 'sim-1', 'g-down-dest')
    # Its agent stopped long ago: no heartbeat for longer than service_down_time.
    cloud.agents['sim-2'].stop()
    down_time = cloud.conf.conductor.service_down_time
    db_api.compute_host_update(cloud.admin, 'sim-2', {
        'last_heartbeat': datetime.datetime.utcnow()
        - datetime.timedelta(seconds=down_time + 30)})
    del cloud.messages[:]

    with pytest.raises(exception.HostUnavailable) as info:
        cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2', force=force)
    assert 'sim-2' in str(info.value) and 'down' in str(info.value)
    assert len(cloud.conductor.list_migrations(cloud.admin)) == 0
    assert db_api.migration_list(cloud.admin) == []
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')
    assert calls_to(cloud, 'sim-2') == [] and calls_to(cloud, 'sim-1') == []


# --- 9. instances named by their name -------------------------------------------------

def test_an_instance_named_by_its_unique_name_migrates(cloud):
    uuid = queues.add_guest(cloud, 'sim-1', 'web-frontend-7')
    accepted = cloud.conductor.live_migrate(cloud.admin, 'web-frontend-7', host='sim-3')
    assert accepted.instance_uuid == uuid
    migration = live.wait_for(cloud, accepted.uuid)
    assert (migration.status, migration.dest_host) == ('completed', 'sim-3'), \
        migration.error
    assert live.where(cloud, uuid) == {'sim-3': 'running'}
    assert live.instance_row(cloud, uuid)['host'] == 'sim-3'


def test_a_name_two_instances_share_is_refused_naming_both(cloud):
    first = queues.add_guest(cloud, 'sim-1', 'twin')
    second = queues.add_guest(cloud, 'sim-2', 'twin')
    before = live._snapshot(cloud)
    with pytest.raises(exception.Invalid) as info:
        cloud.conductor.live_migrate(cloud.admin, 'twin', host='sim-3')
    assert first in str(info.value) and second in str(info.value)
    assert live._snapshot(cloud) == before
    assert db_api.migration_list(cloud.admin) == []
    assert live.where(cloud, first) == {'sim-1': 'running'}
    assert live.where(cloud, second) == {'sim-2': 'running'}


def test_an_unknown_name_is_not_found(cloud):
    queues.add_guest(cloud, 'sim-1', 'known')
    before = live._snapshot(cloud)
    with pytest.raises(exception.InstanceNotFound):
        cloud.conductor.live_migrate(cloud.admin, 'unknown', host='sim-3')
    assert live._snapshot(cloud) == before
    assert db_api.migration_list(cloud.admin) == []
