"""Live migrations end to end in one process: conductor, flows, three simulated agents.

The simulated driver models pre-copy honestly (iterations, dirty rate, bandwidth,
convergence against the downtime target), sped up by ``[simulated] time_scale``. Each
test asserts the invariants of DESIGN.md: the guest runs on exactly one host, claims
match, the instance is unlocked, and the Migration ends in a terminal state with a
structured reason when it failed.
"""

import collections
import functools
import threading
import time

import oslo_messaging as messaging
import pytest

from compute_agent import manager as agent_manager
from compute_agent import rpcapi as agent_rpcapi
from db import api as db_api
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor.flows.tasks import agent_tasks
from migration_conductor.flows.tasks import database_tasks
from migration_conductor.flows.tasks import placement_tasks
from migration_conductor.flows.tasks import slot_tasks
from tests.functional import conftest

TERMINAL = ('completed', 'cancelled', 'failed', 'error')
HOSTS = conftest.SIM_HOSTS


@pytest.fixture
def cloud(tmp_path):
    with conftest.simulated_cloud(tmp_path) as handle:
        yield handle


def add_guest(cloud, host, name, memory_mb=512, vcpus=1, dirty_rate_mib=0):
    agent = cloud.agents[host]
    uuid = agent.driver.add_domain(name, memory_mb=memory_mb, vcpus=vcpus,
                                   dirty_rate_mib=dirty_rate_mib)
    # A registration is a call: the conductor has recorded the guest when it returns.
    cloud.conductor.register_host(cloud.admin, agent.manager.build_host_report())
    return uuid


def add_stubborn_guest(cloud, host, name):
    """A guest whose pre-copy never converges: 4 GiB, dirtied faster than the link.

    (A 512 MiB guest always converges: at 1 GiB/s it fits in a 500 ms downtime.)
    """
    return add_guest(cloud, host, name, memory_mb=4096, dirty_rate_mib=4096)


def wait_for(cloud, migration_uuid, statuses=TERMINAL, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        migration = cloud.conductor.get_migration(cloud.admin, migration_uuid)
        if migration.status in statuses:
            return migration
        assert time.monotonic() < deadline, 'still %s' % migration.status
        time.sleep(0.02)


def where(cloud, instance_uuid):
    """Host -> power state of the guest on every simulated host that defines it."""
    found = {}
    for host, agent in cloud.agents.items():
        state = agent.driver.find_instance(instance_uuid)
        if state is not None:
            found[host] = state
    return found


def claims(cloud):
    return {host: agent.manager.tracker.claims() for host, agent in cloud.agents.items()
            if agent.manager.tracker.claims()}


def instance_row(cloud, uuid):
    return db_api.instance_get(cloud.admin, uuid)


def assert_on_source_untouched(cloud, uuid, source):
    assert where(cloud, uuid) == {source: 'running'}
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == (source, None)
    assert claims(cloud) == {}


# --- happy paths: the three placement modes -------------------------------------------

def test_scheduler_chosen_migration_completes(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g1', dirty_rate_mib=50)
    accepted = cloud.conductor.live_migrate(cloud.admin, uuid)
    assert accepted.status == 'accepted' and accepted.source_host == 'sim-1'
    migration = wait_for(cloud, accepted.uuid)
    assert migration.status == 'completed', migration.error
    assert migration.dest_host in ('sim-2', 'sim-3')
    assert where(cloud, uuid) == {migration.dest_host: 'running'}
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state'], row['power_state']) == (
        migration.dest_host, None, 'running')
    assert migration.memory_processed >= 512 * 1024 * 1024
    assert migration.downtime_ms is not None and migration.total_time_ms > 0
    assert migration.finished_at is not None and migration.error is None
    assert claims(cloud) == {}


def test_admin_named_host_is_used(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g2')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-3').uuid)
    assert (migration.status, migration.dest_host) == ('completed', 'sim-3')
    assert where(cloud, uuid) == {'sim-3': 'running'}


def test_named_disabled_host_is_refused_but_forced_host_is_not(cloud):
    db_api.compute_host_update(cloud.admin, 'sim-2', {'enabled': False,
                                                      'disabled_reason': 'maintenance'})
    uuid = add_guest(cloud, 'sim-1', 'g3')
    refused = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert refused.status == 'failed'
    assert (refused.error.phase, refused.error.code, refused.error.host) == (
        'place', 'host_unavailable', 'sim-2')
    assert 'disabled' in refused.error.message
    assert_on_source_untouched(cloud, uuid, 'sim-1')
    forced = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2', force=True).uuid)
    assert (forced.status, forced.dest_host) == ('completed', 'sim-2')


def test_scheduler_skips_a_destination_whose_claim_fails(cloud):
    # sim-2 has the most free memory but its agent says there is no room.
    cloud.agents['sim-3'].driver.add_domain('filler', memory_mb=8192)
    cloud.agents['sim-3'].report_now()
    cloud.agents['sim-2'].manager.tracker._reserved_memory_mb = 10 ** 6
    uuid = add_guest(cloud, 'sim-1', 'g4')
    migration = wait_for(cloud, cloud.conductor.live_migrate(cloud.admin, uuid).uuid)
    assert (migration.status, migration.dest_host) == ('completed', 'sim-3')


# --- operator actions ------------------------------------------------------------------

def test_abort_leaves_the_guest_running_on_the_source(cloud):
    # Dirtying faster than the simulated link: pre-copy never converges.
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g5')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2').uuid
    wait_for(cloud, migration_uuid, statuses=('running',))
    time.sleep(0.3)
    cloud.conductor.abort_migration(cloud.admin, migration_uuid)
    migration = wait_for(cloud, migration_uuid)
    assert migration.status == 'cancelled'
    assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_force_complete_finishes_a_migration_that_would_not_converge(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g6')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2').uuid
    wait_for(cloud, migration_uuid, statuses=('running',))
    time.sleep(0.3)
    assert cloud.conductor.get_migration(cloud.admin, migration_uuid).status == 'running'
    cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    migration = wait_for(cloud, migration_uuid)
    assert migration.status == 'completed', migration.error
    # Paused to finish on the source, resumed on the destination.
    assert where(cloud, uuid) == {'sim-2': 'running'}


def test_abort_or_force_complete_of_a_finished_migration_is_refused(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g7')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid).uuid
    wait_for(cloud, migration_uuid)
    with pytest.raises(exception.MigrationNotAbortable):
        cloud.conductor.abort_migration(cloud.admin, migration_uuid)
    with pytest.raises(exception.MigrationNotRunning):
        cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    assert cloud.conductor.get_migration(cloud.admin, migration_uuid).status == 'completed'


def queue_behind_a_busy_migration(cloud):
    """sim-1 may send one migration at a time and sends one that does not converge
    (to sim-2); a second guest's migration to sim-3 then waits ``queued``.

    :returns: (the first migration's uuid, the second guest's uuid, the second
        migration's uuid).
    """
    cloud.conf.set_override('max_outbound_per_host', 1, group='conductor')
    first = add_stubborn_guest(cloud, 'sim-1', 'g-busy')
    second = add_guest(cloud, 'sim-1', 'g-waiting')
    first_uuid = cloud.conductor.live_migrate(cloud.admin, first, host='sim-2').uuid
    wait_for(cloud, first_uuid, statuses=('running',))
    second_uuid = cloud.conductor.live_migrate(cloud.admin, second, host='sim-3').uuid
    queued = wait_for(cloud, second_uuid, statuses=('queued',) + TERMINAL)
    assert queued.status == 'queued'
    return first_uuid, second, second_uuid


def test_per_host_limit_queues_the_second_migration_until_the_first_ends(cloud):
    first_uuid, second, second_uuid = queue_behind_a_busy_migration(cloud)
    # Queued means claimed and prepared, not started: the guest is still only on sim-1.
    assert [c['migration_uuid'] for c in claims(cloud)['sim-3']] == [second_uuid]
    assert where(cloud, second) == {'sim-1': 'running'}

    cloud.conductor.force_complete_migration(cloud.admin, first_uuid)
    assert wait_for(cloud, first_uuid).status == 'completed'
    migration = wait_for(cloud, second_uuid)
    assert migration.status == 'completed', migration.error
    assert where(cloud, second) == {'sim-3': 'running'}
    assert claims(cloud) == {}


def test_abort_while_queued_releases_the_claim_and_starts_nothing(cloud):
    first_uuid, second, second_uuid = queue_behind_a_busy_migration(cloud)

    aborted = cloud.conductor.abort_migration(cloud.admin, second_uuid)
    assert aborted.status == 'cancelling'
    migration = wait_for(cloud, second_uuid)
    assert migration.status == 'cancelled'
    assert migration.error is None      # an operator's choice, not a failure
    assert where(cloud, second) == {'sim-1': 'running'}
    row = instance_row(cloud, second)
    assert (row['host'], row['task_state']) == ('sim-1', None)
    assert 'sim-3' not in claims(cloud)
    # The first migration is untouched by it.
    assert cloud.conductor.get_migration(cloud.admin, first_uuid).status == 'running'
    cloud.conductor.abort_migration(cloud.admin, first_uuid)
    assert wait_for(cloud, first_uuid).status == 'cancelled'
    assert claims(cloud) == {}


def test_abort_during_the_pre_checks_rolls_back_at_the_next_step(cloud, monkeypatch):
    checking = threading.Event()
    proceed = threading.Event()
    original = agent_manager.AgentManager.check_destination

    checked = []

    @functools.wraps(original)
    def slow_check(self, *args, **kwargs):
        checked.append(self.host)
        checking.set()
        assert proceed.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(agent_manager.AgentManager, 'check_destination', slow_check)
    tried = []
    original_task = agent_tasks.CheckDestinationHost.execute

    @functools.wraps(original_task)
    def counted(self, migration_uuid, instance_uuid, dest_host, *args, **kwargs):
        tried.append(dest_host)
        return original_task(self, migration_uuid, instance_uuid, dest_host, *args,
                             **kwargs)

    monkeypatch.setattr(agent_tasks.CheckDestinationHost, 'execute', counted)
    uuid = add_guest(cloud, 'sim-1', 'g-checked')
    # The scheduler picks: two candidates, and the abort must not move on to the other.
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid).uuid
    assert checking.wait(30)
    assert cloud.conductor.get_migration(cloud.admin, migration_uuid).status == \
        'pre-checking'

    assert cloud.conductor.abort_migration(cloud.admin, migration_uuid).status == \
        'cancelling'
    proceed.set()
    migration = wait_for(cloud, migration_uuid)
    assert migration.status == 'cancelled'
    assert len(checked) == 1 and tried == checked, (checked, tried)
    assert_on_source_untouched(cloud, uuid, 'sim-1')


# --- failures ----------------------------------------------------------------------------

def test_failed_libvirt_job_rolls_back(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g8', dirty_rate_mib=100)
    cloud.agents['sim-1'].driver.fail_next_migration('QEMU went away')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'failed'
    assert migration.error.phase in ('start', 'monitor')
    assert migration.error.host == 'sim-1'
    assert 'QEMU went away' in migration.error.message
    assert_on_source_untouched(cloud, uuid, 'sim-1')


PRE_SWITCHOVER_TASKS = [
    (placement_tasks.SelectDestinations, 'place'),
    (agent_tasks.CheckSourceHost, 'check-source'),
    (agent_tasks.CheckDestinationHost, 'check-destination'),
    (agent_tasks.ClaimResourcesOnDestination, 'claim'),
    (agent_tasks.PrepareDestination, 'prepare'),
    (slot_tasks.AcquireMigrationSlots, 'start'),
    (agent_tasks.StartMigrationOnSource, 'start'),
    (agent_tasks.MonitorMigration, 'monitor'),
]


@pytest.mark.parametrize('task_class,phase', PRE_SWITCHOVER_TASKS,
                         ids=[t.__name__ for t, _ in PRE_SWITCHOVER_TASKS])
def test_each_task_failing_rolls_back_cleanly(cloud, monkeypatch, task_class, phase):
    original = task_class.execute
    message = 'injected failure in %s' % task_class.__name__

    # taskflow reads a task's inputs from the signature of execute(): keep it.
    @functools.wraps(original)
    def fail_after_running(self, *args, **kwargs):
        # Except for the monitor (which would wait for the end of the job), the task
        # does its work first: its revert must undo it.
        if task_class is not agent_tasks.MonitorMigration:
            original(self, *args, **kwargs)
        raise exception.MigrationConductorError(message)

    monkeypatch.setattr(task_class, 'execute', fail_after_running)
    # A guest that does not converge: the job still runs when the revert aborts it.
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-%s' % task_class.__name__.lower())
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'failed'
    assert migration.error.phase == phase
    assert message in migration.error.message
    assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_job_that_completes_before_the_rollback_is_recorded_truthfully(cloud,
                                                                        monkeypatch):
    """A failure after the job ended cannot undo it: the record follows the guest."""
    original = agent_tasks.StartMigrationOnSource.execute

    @functools.wraps(original)
    def start_then_fail(self, migration_uuid, instance_uuid, *args, **kwargs):
        original(self, migration_uuid, instance_uuid, *args, **kwargs)
        while self.services.agents.get_migration_job(
                self.context, 'sim-1', migration_uuid, instance_uuid).state == 'running':
            time.sleep(0.01)
        raise exception.MigrationConductorError('injected failure after the job')

    monkeypatch.setattr(agent_tasks.StartMigrationOnSource, 'execute', start_then_fail)
    uuid = add_guest(cloud, 'sim-1', 'g-late')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'error'
    assert 'runs on sim-2' in migration.error.message
    assert where(cloud, uuid) == {'sim-2': 'running'}
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == ('sim-2', None)


def test_destination_that_cannot_confirm_ends_in_error_not_rollback(cloud, monkeypatch):
    def refuse(self, context, migration_uuid, instance_uuid):
        raise exception.InstanceStateConflict(instance_uuid=instance_uuid,
                                              reason='injected: not confirmed')

    uuid = add_guest(cloud, 'sim-1', 'g9')
    monkeypatch.setattr(type(cloud.agents['sim-2'].manager), 'finish_on_destination',
                        refuse)
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'error'
    assert (migration.error.phase, migration.error.host) == ('finish', 'sim-2')
    # Past the switch-over nothing is undone: the guest is on the destination only.
    assert set(where(cloud, uuid)) == {'sim-2'}
    assert instance_row(cloud, uuid)['task_state'] is None


def test_finishing_calls_lost_once_are_asked_again(cloud, monkeypatch):
    """A finish or clean-up call lost (a broker restart drops it) is sent again after a
    short attempt, not given up after one: the migration completes and the source is
    cleaned."""
    sent = []

    def lose_the_first(method):
        original = getattr(agent_rpcapi.AgentAPI, method)

        def call(self, *args, **kwargs):
            sent.append((method, kwargs.get('timeout')))
            if [m for m, _t in sent].count(method) == 1:
                raise messaging.MessagingTimeout('injected: lost with the broker')
            return original(self, *args, **kwargs)
        monkeypatch.setattr(agent_rpcapi.AgentAPI, method, call)

    lose_the_first('finish_on_destination')
    lose_the_first('cleanup_source')
    uuid = add_guest(cloud, 'sim-1', 'g-lost-calls')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}     # the source was cleaned
    timeout = min(agent_tasks.FINISH_ATTEMPT_TIMEOUT,
                  cloud.conf.conductor.rpc_response_timeout)
    assert sent == [('finish_on_destination', timeout)] * 2 + [
        ('cleanup_source', timeout)] * 2


# --- bad input: a typed error, and nothing changes ----------------------------------------

def _snapshot(cloud):
    return (len(cloud.conductor.list_migrations(cloud.admin)),
            [(i.uuid, i.host, i.task_state)
             for i in cloud.conductor.list_instances(cloud.admin)])


@pytest.mark.parametrize('kwargs,error', [
    ({'instance_uuid': ''}, exception.Invalid),
    ({'instance_uuid': 'no-such-name'}, exception.InstanceNotFound),
    ({'instance_uuid': '00000000-0000-4000-8000-000000000000'}, exception.InstanceNotFound),
    ({'host': 'no-such-host'}, exception.HostNotFound),
    ({'host': 'sim-1'}, exception.DestinationIsSource),
    ({'force': True}, exception.Invalid),
    ({'block_migration': 'maybe'}, exception.Invalid),
])
def test_bad_requests_get_typed_errors_and_change_nothing(cloud, kwargs, error):
    uuid = add_guest(cloud, 'sim-1', 'g10')
    before = _snapshot(cloud)
    kwargs.setdefault('instance_uuid', uuid)
    with pytest.raises(error):
        cloud.conductor.live_migrate(cloud.admin, **kwargs)
    assert _snapshot(cloud) == before


def test_non_admin_cannot_migrate(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g11')
    member = mc_context.RequestContext(user_id='u', project_id='p', roles=['member'])
    before = _snapshot(cloud)
    with pytest.raises(exception.PolicyNotAuthorized):
        cloud.conductor.live_migrate(member, uuid)
    assert _snapshot(cloud) == before


def test_second_migration_of_the_same_instance_is_refused(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g12')
    first = cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2')
    wait_for(cloud, first.uuid, statuses=('running',))
    before = _snapshot(cloud)
    with pytest.raises(exception.InstanceAlreadyMigrating) as info:
        cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-3')
    assert first.uuid in str(info.value)
    assert _snapshot(cloud) == before
    cloud.conductor.abort_migration(cloud.admin, first.uuid)
    assert wait_for(cloud, first.uuid).status == 'cancelled'


def test_two_migrations_racing_for_the_last_room_cannot_both_win(cloud):
    # sim-2 has room for exactly one 4 GiB guest more.
    tracker = cloud.agents['sim-2'].manager.tracker
    inventory = cloud.agents['sim-2'].driver.get_host_inventory()
    tracker._reserved_memory_mb = inventory['memory_mb'] - 4096 - 1024
    first = add_guest(cloud, 'sim-1', 'big-1', memory_mb=4096, dirty_rate_mib=4096)
    second = add_guest(cloud, 'sim-3', 'big-2', memory_mb=4096, dirty_rate_mib=4096)
    m1 = cloud.conductor.live_migrate(cloud.admin, first, host='sim-2', force=True)
    m2 = cloud.conductor.live_migrate(cloud.admin, second, host='sim-2', force=True)
    deadline = time.monotonic() + 30
    while True:
        states = [cloud.conductor.get_migration(cloud.admin, m.uuid).status
                  for m in (m1, m2)]
        if 'failed' in states and 'running' in states:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.02)
    loser = m1 if states[0] == 'failed' else m2
    assert cloud.conductor.get_migration(cloud.admin, loser.uuid).error.code == \
        'insufficient_resources'
    assert [c['instance_uuid'] for c in tracker.claims()] == [
        first if loser is m2 else second]
    winner = m2 if loser is m1 else m1
    cloud.conductor.abort_migration(cloud.admin, winner.uuid)
    wait_for(cloud, winner.uuid)


# --- no agent talks to another agent -------------------------------------------------

def _roles(cloud, message):
    sender, kind, topic, server, method = message
    receiver = ('conductor' if topic == cloud.conf.conductor.topic
                else 'agent:%s' % server)
    return sender.split(':')[0], receiver.split(':')[0], kind, method


@pytest.mark.parametrize('outcome', ['completed', 'failed'])
def test_no_agent_sends_to_another_agent(cloud, outcome):
    uuid = add_guest(cloud, 'sim-1', 'g13', dirty_rate_mib=20)
    if outcome == 'failed':
        cloud.agents['sim-1'].driver.fail_next_migration('injected')
    del cloud.messages[:]
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == outcome
    pairs = collections.Counter((s, r) for s, r, _k, _m in
                                (_roles(cloud, m) for m in cloud.messages))
    assert pairs[('agent', 'agent')] == 0, pairs
    assert pairs[('conductor', 'agent')] > 0
    calls = [m for s, r, _k, m in (_roles(cloud, m) for m in cloud.messages)
             if s == 'conductor']
    for method in ('check_source', 'check_destination', 'claim_resources',
                   'prepare_destination', 'start_migration'):
        assert calls.count(method) == 1, (method, calls)
