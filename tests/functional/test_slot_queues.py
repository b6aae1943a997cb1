"""Per-host migration slots end to end: limits that nothing over-takes, fair queues.

A host runs at most ``[conductor] max_outbound_per_host`` migrations leaving it and
``max_inbound_per_host`` arriving at it; a migration that would exceed them waits
``queued`` (claimed and prepared, not started) in a first-come-first-served queue per
host, its flow parked: it holds no flow worker thread. The conductor and three
simulated agents run in this process (the ``cloud`` fixture of test_live_migration,
or ``conftest.simulated_cloud`` for options that must be set before the services
start).

Guests that never converge (``add_stubborn_guest``) keep a migration running until
the test force-completes or aborts it, so which migration waits behind which is
decided by the test, not by timing.
"""

import collections
import logging
import threading
import time

import pytest

from compute_agent import service as agent_service
from compute_agent.virt import simulated
from db import api as db_api
from migration_conductor import context as mc_context
from migration_conductor.objects import fields
from tests.functional import conftest
from tests.functional import test_live_migration as live

LOG = logging.getLogger(__name__)

cloud = live.cloud   # the fixture, shared

RUNNING_STATES = ('running', 'running-postcopy')


@pytest.fixture
def two_worker_cloud(tmp_path):
    """A cloud whose conductor runs at most two flows at once."""
    with conftest.simulated_cloud(
            tmp_path, {('conductor', 'migration_workers'): 2}) as handle:
        yield handle


# Held while a guest is added, and while an agent sends its heartbeat (see below).
_REPORTS = threading.Lock()


def _heartbeat_in_order(self):
    """AgentService.report_now, sent as a call under ``_REPORTS``."""
    with _REPORTS:
        try:
            self._conductor.register_host(self._context,
                                          self.manager.build_host_report(), timeout=10)
        except Exception:   # as the agent's own: the next heartbeat tries again
            LOG.exception('Host %s: heartbeat failed', self.host)


@pytest.fixture(autouse=True)
def heartbeats_in_order(monkeypatch):
    """Heartbeats never undo the registration of a guest just added.

    NOTE: test_live_migration's ``add_guest`` registers the host's new report from the
    test's thread while the agent's heartbeat thread casts its own: a heartbeat read
    before the guest was defined and applied after the registration marks the new
    guest ``missing`` (live_migrate then refuses it, InstanceNotRunning) until the next
    heartbeat. Here (autouse: set before the agents start) a heartbeat is a call made
    under the lock that :func:`add_guest` holds, so it is applied before a guest is
    added or read after it.
    """
    monkeypatch.setattr(agent_service.AgentService, 'report_now', _heartbeat_in_order)


def add_guest(cloud, host, name, memory_mb=512, vcpus=1, dirty_rate_mib=0):
    """test_live_migration's ``add_guest``, never overtaken by an older heartbeat."""
    with _REPORTS:
        return live.add_guest(cloud, host, name, memory_mb=memory_mb, vcpus=vcpus,
                              dirty_rate_mib=dirty_rate_mib)


def add_stubborn_guest(cloud, host, name):
    """A guest whose pre-copy never converges (see test_live_migration's)."""
    return add_guest(cloud, host, name, memory_mb=4096, dirty_rate_mib=4096)


def status(cloud, migration_uuid):
    return cloud.conductor.get_migration(cloud.admin, migration_uuid).status


def slots_of(migration_uuid=None):
    """The slots held, as (host, direction) pairs (of one migration, if given)."""
    context = mc_context.get_admin_context()
    return sorted((slot['host'], slot['direction'])
                  for slot in db_api.migration_slots_list(context)
                  if migration_uuid is None or slot['migration_uuid'] == migration_uuid)


def wait_until(predicate, what, timeout=60):
    """Wait for a state (never decides an outcome: a timeout fails the test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'still not %s' % what
        time.sleep(0.02)


def start_stubborn(cloud, source, dest, name):
    """A migration from ``source`` to ``dest`` that runs until it is ended by hand."""
    guest = add_stubborn_guest(cloud, source, name)
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, guest, host=dest).uuid
    assert live.wait_for(cloud, migration_uuid,
                         statuses=('running',) + live.TERMINAL).status == 'running'
    return guest, migration_uuid


def queue(cloud, guest, dest):
    """Ask for a migration that must wait; return its uuid once it is queued."""
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, guest, host=dest).uuid
    migration = live.wait_for(cloud, migration_uuid, statuses=('queued',) + live.TERMINAL
                              + RUNNING_STATES)
    assert migration.status == 'queued', migration.status
    return migration_uuid


def force_complete(cloud, migration_uuid):
    cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    migration = live.wait_for(cloud, migration_uuid)
    assert migration.status == 'completed', migration.error
    return migration


# --- 1. one inbound slot: the second migration to a host waits its turn ---------------

def test_inbound_limit_queues_a_migration_from_another_source(cloud):
    cloud.conf.set_override('max_inbound_per_host', 1, group='conductor')
    first, first_uuid = start_stubborn(cloud, 'sim-1', 'sim-2', 'g-in-first')
    second = add_stubborn_guest(cloud, 'sim-3', 'g-in-second')
    second_uuid = queue(cloud, second, 'sim-2')

    # Queued, not failed: claimed on the destination, nothing of it started.
    migration = cloud.conductor.get_migration(cloud.admin, second_uuid)
    assert (migration.status, migration.error, migration.started_at) == (
        'queued', None, None)
    assert migration.queued_at is not None and migration.dest_host == 'sim-2'
    assert migration.queue_position == 1
    listed = {m.uuid: m for m in cloud.conductor.list_migrations(cloud.admin)}
    assert listed[second_uuid].queue_position == 1
    assert listed[first_uuid].queue_position is None
    assert sorted(c['migration_uuid'] for c in live.claims(cloud)['sim-2']) == sorted(
        [first_uuid, second_uuid])
    assert slots_of(second_uuid) == []
    assert slots_of() == [('sim-1', 'out'), ('sim-2', 'in')]
    # Nothing else moved: the second guest is on its source only, the first one's job
    # still runs (its incoming copy paused on sim-2), both instances where they were.
    assert live.where(cloud, second) == {'sim-3': 'running'}
    assert live.where(cloud, first) == {'sim-1': 'running', 'sim-2': 'paused'}
    assert [live.instance_row(cloud, g)['host'] for g in (first, second)] == [
        'sim-1', 'sim-3']
    assert status(cloud, first_uuid) == 'running'

    force_complete(cloud, first_uuid)
    running = live.wait_for(cloud, second_uuid, statuses=RUNNING_STATES + live.TERMINAL)
    assert running.status == 'running'
    assert running.queue_position is None
    assert {m.uuid: m for m in cloud.conductor.list_migrations(cloud.admin)}[
        second_uuid].queue_position is None
    assert slots_of(second_uuid) == [('sim-2', 'in'), ('sim-3', 'out')]
    force_complete(cloud, second_uuid)
    assert live.where(cloud, first) == {'sim-2': 'running'}
    assert live.where(cloud, second) == {'sim-2': 'running'}
    assert live.claims(cloud) == {} and slots_of() == []


# --- 2. many queued migrations: the limits hold, first come first served --------------

class ConcurrencySampler(threading.Thread):
    """Counts, every ``interval`` seconds, the migrations running per host and
    direction, three ways: the slots held (database), the migrations ``running`` whose
    job has not ended (database), and the jobs the simulated hosts run (a job on its
    source, an incoming copy on its destination). Keeps the highest of each."""

    def __init__(self, cloud, interval=0.01):
        super().__init__(name='concurrency-sampler', daemon=True)
        self._cloud = cloud
        self._interval = interval
        self._halt = threading.Event()
        self.highest = {what: collections.Counter()
                        for what in ('slots', 'statuses', 'jobs')}
        self.most_queued = 0
        self.samples = 0
        self.error = None

    def run(self):
        try:
            while not self._halt.is_set():
                self._sample()
                self._halt.wait(self._interval)
            self._sample()
        except Exception as exc:    # reported by stop()
            self.error = exc

    def _sample(self):
        context = self._cloud.admin
        counts = {what: collections.Counter() for what in self.highest}
        for slot in db_api.migration_slots_list(context):
            counts['slots'][(slot['host'], slot['direction'])] += 1
        queued = 0
        for row in db_api.migration_list(context):
            if row['status'] == 'queued':
                queued += 1
            if (row['status'] in RUNNING_STATES
                    and row['job_state'] not in fields.JobState.ENDED):
                counts['statuses'][(row['source_host'], 'out')] += 1
                counts['statuses'][(row['dest_host'], 'in')] += 1
        with simulated._LOCK:
            for host, agent in self._cloud.agents.items():
                for domain in agent.driver._domains.values():
                    if domain.job is not None:
                        counts['jobs'][(host, 'out')] += 1
                    if domain.incoming:
                        counts['jobs'][(host, 'in')] += 1
        for what, count in counts.items():
            for key, value in count.items():
                self.highest[what][key] = max(self.highest[what][key], value)
        self.most_queued = max(self.most_queued, queued)
        self.samples += 1

    def stop(self):
        self._halt.set()
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def test_many_queued_migrations_never_exceed_the_limits_and_keep_their_order(cloud):
    cloud.conf.set_override('max_outbound_per_host', 1, group='conductor')
    cloud.conf.set_override('max_inbound_per_host', 1, group='conductor')
    # 64 MiB/s: a 768 MiB guest takes 12 model seconds (0.24 s here), long enough for
    # the jobs of the three hosts to overlap and for the sampler to see each.
    cloud.conf.set_override('bandwidth_mib', 64, group='conductor')
    sampler = ConcurrencySampler(cloud)
    sampler.start()
    accepted = []           # migration uuids, in the order they were accepted
    guests = {}             # migration uuid -> (guest, source, dest)

    def migrate(guest, source, dest, wait_for=('queued',) + RUNNING_STATES):
        migration_uuid = cloud.conductor.live_migrate(cloud.admin, guest, host=dest).uuid
        accepted.append(migration_uuid)
        guests[migration_uuid] = (guest, source, dest)
        # NOTE: the next request is sent once this one passed its gate (queued or
        # running), so that the order of arrival at the queues is that of acceptance.
        reached = live.wait_for(cloud, migration_uuid,
                                statuses=wait_for + live.TERMINAL)
        assert reached.status in wait_for, (reached.status, reached.error)
        return migration_uuid

    # Three migrations that never converge fill every slot: each host sends one and
    # receives one.
    blockers = []
    for index, (source, dest) in enumerate(
            [('sim-1', 'sim-2'), ('sim-3', 'sim-1'), ('sim-2', 'sim-3')]):
        guest = add_guest(cloud, source, 'g-block-%d' % index, memory_mb=1024,
                          dirty_rate_mib=1024)
        blockers.append(migrate(guest, source, dest, wait_for=('running',)))
    # Twelve more, four leaving each host, each to a named other host. The first two
    # leave sim-1: to sim-3 (whose inbound slot the third blocker holds), then to
    # sim-2 (free once the first blocker ends): the second must not overtake the first.
    routes = [('sim-1', 'sim-3'), ('sim-1', 'sim-2'), ('sim-2', 'sim-1'),
              ('sim-3', 'sim-2'), ('sim-2', 'sim-3'), ('sim-3', 'sim-1'),
              ('sim-1', 'sim-3'), ('sim-2', 'sim-1'), ('sim-3', 'sim-2'),
              ('sim-1', 'sim-2'), ('sim-2', 'sim-3'), ('sim-3', 'sim-1')]
    for index, (source, dest) in enumerate(routes):
        guest = add_guest(cloud, source, 'g-queued-%d' % index, memory_mb=768,
                          dirty_rate_mib=4)
        migrate(guest, source, dest)
    queued = cloud.conductor.list_migrations(cloud.admin, status='queued')

    # The first blocker ends: sim-1's outbound and sim-2's inbound slots are free, but
    # the head of sim-1's queue (to sim-3) still waits, and so does everything behind it.
    force_complete(cloud, blockers[0])
    for migration_uuid in blockers[1:]:
        cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    ended = {m: live.wait_for(cloud, m, timeout=120) for m in accepted}
    sampler.stop()

    limits = {'out': 1, 'in': 1}
    print('\nhighest concurrency per host (out/in) over %d samples, limits %d/%d, '
          'at most %d queued at once:' % (sampler.samples, limits['out'], limits['in'],
                                          sampler.most_queued))
    for what in ('jobs', 'statuses', 'slots'):
        highest = sampler.highest[what]
        print('  %-8s %s' % (what, '  '.join(
            '%s %d/%d' % (host, highest[(host, 'out')], highest[(host, 'in')])
            for host in live.HOSTS)))
    for what, highest in sampler.highest.items():
        for (host, direction), value in highest.items():
            assert value <= limits[direction], (what, host, direction, value)
    # Every one of the twelve waited, all at once, each with its place in line.
    assert len(queued) == len(routes) >= 10
    assert sorted(m.queue_position for m in queued)[0] == 1
    assert {m: e.status for m, e in ended.items()} == {m: 'completed' for m in accepted}
    for migration_uuid, (guest, source, dest) in guests.items():
        assert live.where(cloud, guest) == {dest: 'running'}, guest
        row = live.instance_row(cloud, guest)
        assert (row['host'], row['task_state']) == (dest, None)
    assert live.claims(cloud) == {}
    assert slots_of() == []

    # Every host did send and receive (the sampler saw the jobs).
    assert all(sampler.highest['jobs'][(h, d)] == 1 for h in live.HOSTS
               for d in ('out', 'in')), sampler.highest['jobs']
    assert sampler.most_queued >= 10

    # First come first served per host: the migrations leaving a host started in the
    # order they were accepted.
    for host in live.HOSTS:
        leaving = [m for m in accepted if guests[m][1] == host]
        started = sorted(leaving, key=lambda m: ended[m].started_at)
        assert started == leaving, host


# --- 3. a queued migration holds no thread and does not starve other hosts ------------

def test_queued_migrations_hold_no_worker_and_do_not_starve_idle_hosts(two_worker_cloud):
    cloud = two_worker_cloud
    assert cloud.conf.conductor.migration_workers == 2
    runner = cloud.service.conductor.runner
    cloud.conf.set_override('max_outbound_per_host', 1, group='conductor')
    busy_guest, busy = start_stubborn(cloud, 'sim-1', 'sim-2', 'g-busy')
    # More queued migrations than workers, all waiting for sim-1's one outbound slot.
    waiting = {}
    for index in range(3):
        guest = add_guest(cloud, 'sim-1', 'g-wait-%d' % index)
        waiting[queue(cloud, guest, 'sim-2')] = guest
    assert len(waiting) > cloud.conf.conductor.migration_workers

    def threads_of(uuids):
        with runner._lock:
            return {m for m, t in runner._threads.items() if m in uuids and t.is_alive()}

    # A parked flow's thread ends once its engine is suspended.
    wait_until(lambda: not threads_of(set(waiting)), 'parked without a thread')
    assert threads_of({busy}) == {busy}
    assert set(waiting) <= cloud.service.conductor.runner._services.parked()

    # sim-2 -> sim-3 uses neither sim-1's slots nor a worker held by the queued ones.
    other = add_guest(cloud, 'sim-2', 'g-elsewhere')
    other_uuid = cloud.conductor.live_migrate(cloud.admin, other, host='sim-3').uuid
    migration = live.wait_for(cloud, other_uuid, timeout=30)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, other) == {'sim-3': 'running'}
    assert {m: status(cloud, m) for m in waiting} == {m: 'queued' for m in waiting}
    assert not threads_of(set(waiting))
    assert status(cloud, busy) == 'running'

    cloud.conductor.abort_migration(cloud.admin, busy)
    assert live.wait_for(cloud, busy).status == 'cancelled'
    assert live.where(cloud, busy_guest) == {'sim-1': 'running'}
    for migration_uuid, guest in waiting.items():
        migration = live.wait_for(cloud, migration_uuid)
        assert migration.status == 'completed', migration.error
        assert live.where(cloud, guest) == {'sim-2': 'running'}
    assert live.claims(cloud) == {} and slots_of() == []
    wait_until(lambda: not threads_of(set(waiting) | {busy, other_uuid}),
               'every flow thread ended')


# --- 4. abort of a queued migration ---------------------------------------------------

def test_abort_of_a_queued_migration_touches_nothing_else(cloud):
    cloud.conf.set_override('max_outbound_per_host', 1, group='conductor')
    busy_guest, busy = start_stubborn(cloud, 'sim-1', 'sim-2', 'g-busy')
    doomed = add_guest(cloud, 'sim-1', 'g-doomed')
    doomed_uuid = queue(cloud, doomed, 'sim-3')
    kept = add_guest(cloud, 'sim-1', 'g-kept')
    kept_uuid = queue(cloud, kept, 'sim-3')
    assert [cloud.conductor.get_migration(cloud.admin, m).queue_position
            for m in (doomed_uuid, kept_uuid)] == [1, 2]
    slots_before = slots_of()
    assert sorted(c['migration_uuid'] for c in live.claims(cloud)['sim-3']) == sorted(
        [doomed_uuid, kept_uuid])

    assert cloud.conductor.abort_migration(cloud.admin, doomed_uuid).status == \
        'cancelling'
    migration = live.wait_for(cloud, doomed_uuid)
    assert migration.status == 'cancelled'
    assert migration.error is None and migration.started_at is None
    assert live.where(cloud, doomed) == {'sim-1': 'running'}
    row = live.instance_row(cloud, doomed)
    assert (row['host'], row['task_state']) == ('sim-1', None)
    assert slots_of(doomed_uuid) == []
    # The others are untouched: the busy one runs with its slots, the kept one is
    # still queued with its claim, now first in line.
    assert slots_of() == slots_before == [('sim-1', 'out'), ('sim-2', 'in')]
    assert [c['migration_uuid'] for c in live.claims(cloud)['sim-3']] == [kept_uuid]
    assert status(cloud, busy) == 'running'
    kept_now = cloud.conductor.get_migration(cloud.admin, kept_uuid)
    assert (kept_now.status, kept_now.queue_position) == ('queued', 1)
    assert live.where(cloud, kept) == {'sim-1': 'running'}
    assert live.where(cloud, busy_guest) == {'sim-1': 'running', 'sim-2': 'paused'}

    force_complete(cloud, busy)
    migration = live.wait_for(cloud, kept_uuid)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, kept) == {'sim-3': 'running'}
    assert live.where(cloud, doomed) == {'sim-1': 'running'}
    assert live.claims(cloud) == {} and slots_of() == []
