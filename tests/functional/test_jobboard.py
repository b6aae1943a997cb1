"""Migrations as jobs on the Redis jobboard (real Redis at 127.0.0.1:6379).

The conductor and three simulated agents run in this process (fake transport, SQLite),
with ``[conductor] jobboard_url`` set and a namespace of the test's own. A conductor
that accepted a migration and died is played by a second owner on the same board: it
claims the job (with a short expiry) and never runs it, as a crashed conductor would
leave it.
"""

import contextlib
import threading
import time
import uuid

import pytest
import redis
from taskflow import exceptions as taskflow_exc

from migration_conductor import all_in_one
from migration_conductor import rpc
from migration_conductor.flows import jobboard
from migration_conductor.flows import persistence as flow_persistence
from tests import db_fixtures
from tests.functional import conftest
from tests.functional import test_live_migration as live

REDIS_URL = 'redis://127.0.0.1:6379/0'
EXPIRY = 1.5


def _redis():
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail('Redis at %s does not answer (%s): the jobboard tests need it; '
                    'tools/services.sh starts it' % (REDIS_URL, exc))
    return client


@pytest.fixture
def cloud(tmp_path):
    client = _redis()
    namespace = 'mc-test-%s' % uuid.uuid4().hex[:8]
    with db_fixtures.api_on('sqlite', tmp_path) as url:
        flow_persistence.upgrade_persistence(url)
        conf = conftest.make_conf(
            tmp_path, ['%s=simulated://' % h for h in live.HOSTS],
            {('simulated', 'time_scale'): 0.02,
             ('conductor', 'monitor_interval'): 0.05,
             ('conductor', 'service_down_time'): 20,
             ('conductor', 'jobboard_url'): REDIS_URL,
             ('conductor', 'jobboard_namespace'): namespace,
             ('conductor', 'jobboard_claim_expiry'): EXPIRY,
             ('conductor', 'jobboard_poll_interval'): 0.2})
        conf.set_override('connection', url, group='database')
        service = all_in_one.AllInOne(conf)
        service.start()
        try:
            handle = conftest.AllInOneHandle(conf, service)
            handle.namespace = namespace
            yield handle
        finally:
            service.stop()
            rpc.cleanup()
            for key in client.scan_iter('%s*' % namespace):
                client.delete(key)
            client.close()


def _eventually(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _runner(cloud):
    return cloud.service.conductor.runner


def _jobs_on_board(cloud):
    return [m for m, _job in _runner(cloud)._jobs._jobs()]


def test_an_accepted_migration_is_a_job_until_it_ends(cloud):
    uuid_ = live.add_guest(cloud, 'sim-1', 'g1')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid_,
                                                  host='sim-2').uuid
    migration = live.wait_for(cloud, migration_uuid)
    assert migration.status == 'completed', migration.error
    # Consumed once the migration ended: nothing left for another conductor to take.
    assert _eventually(lambda: _jobs_on_board(cloud) == [])
    assert _runner(cloud)._jobs.held() == []


def test_a_dead_conductors_migration_is_resumed_by_another(cloud, monkeypatch):
    """Conductor A accepts and claims, then dies; this conductor takes the job over."""
    runner = _runner(cloud)
    dead = jobboard.MigrationJobs(cloud.conf, runner._backend, 'conductor-a-dead')
    original_run = type(runner).run
    accepted_by_a = []

    def run_as_dead_conductor(self, migration_uuid, job=None):
        if not accepted_by_a:       # the first accept is conductor A's
            accepted_by_a.append(migration_uuid)
            with self._lock:
                posted = self._created.pop(migration_uuid)[1]
            assert dead.claim(migration_uuid, posted) is not None
            return None             # ... and A dies before running anything
        return original_run(self, migration_uuid, job)

    monkeypatch.setattr(type(runner), 'run', run_as_dead_conductor)
    try:
        uuid_ = live.add_guest(cloud, 'sim-1', 'g2')
        started = time.monotonic()
        migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid_,
                                                      host='sim-3').uuid
        assert accepted_by_a == [migration_uuid]
        # A's claim holds for a while: nobody drives the migration meanwhile.
        time.sleep(EXPIRY / 2)
        assert cloud.conductor.get_migration(cloud.admin,
                                             migration_uuid).status == 'accepted'

        migration = live.wait_for(cloud, migration_uuid)
        assert migration.status == 'completed', migration.error
        assert time.monotonic() - started >= EXPIRY
        assert live.where(cloud, uuid_) == {'sim-3': 'running'}
        assert _eventually(lambda: _jobs_on_board(cloud) == [])
    finally:
        dead.close()


def test_a_claim_held_elsewhere_is_not_taken(cloud):
    runner = _runner(cloud)
    other = jobboard.MigrationJobs(cloud.conf, runner._backend, 'conductor-b')
    try:
        book_uuid = str(uuid.uuid4())
        runner.create(book_uuid, 'live', {'migration_uuid': book_uuid})
        posted = runner._created.pop(book_uuid)[1]
        assert other.claim(book_uuid, posted) is not None
        assert runner.run(book_uuid) is None            # held by conductor-b
        assert runner._jobs.claim(book_uuid) is None
        other.release(book_uuid, finished=True)
        assert book_uuid not in _jobs_on_board(cloud)
    finally:
        other.close()


def _flow_states(cloud, migration_uuid):
    """The flow and atom states as saved in the database (what a resume would find)."""
    with contextlib.closing(_runner(cloud)._backend.get_connection()) as conn:
        detail = next(iter(conn.get_logbook(migration_uuid)))
    return detail.state, {atom.name: atom.state for atom in detail}


def test_a_conductor_that_loses_its_claim_mid_migration_stops_without_a_trace(
        cloud, caplog):
    """While the job runs, its claim passes to conductor B (as after a pause of this
    conductor longer than the expiry): the flow stops at the monitor's next poll,
    reverts nothing and saves nothing. B gives the job back, this conductor claims it
    again and the migration completes."""
    runner = _runner(cloud)
    uuid_ = live.add_stubborn_guest(cloud, 'sim-1', 'g5')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid_, host='sim-2').uuid
    live.wait_for(cloud, migration_uuid, statuses=('running',))

    other = jobboard.MigrationJobs(cloud.conf, runner._backend, 'conductor-b')
    try:
        job = dict(other._jobs())[migration_uuid]
        _redis().delete(job.owner_key)              # this conductor's claim expired...
        assert other.claim(migration_uuid, job) is not None     # ... and B took it
        assert _eventually(lambda: migration_uuid not in runner._threads)
        assert not runner._jobs.holds(migration_uuid)
        time.sleep(0.5)   # nothing happens afterwards either
        assert cloud.conductor.get_migration(cloud.admin,
                                             migration_uuid).status == 'running'
        assert live.where(cloud, uuid_) == {'sim-1': 'running', 'sim-2': 'paused'}
        # Saved as it was while the job ran: no failure, no revert, the monitor to do.
        flow_state, atoms = _flow_states(cloud, migration_uuid)
        to_do = {'MonitorMigration', 'ReleaseMigrationSlots', 'FinishOnDestination',
                 'CleanupSource', 'MarkMigrationCompleted'}
        assert flow_state == 'RUNNING'
        assert {n: s for n, s in atoms.items() if n in to_do} == dict.fromkeys(
            to_do, 'PENDING')
        assert {s for n, s in atoms.items() if n not in to_do} == {'SUCCESS'}, atoms
        assert any('flow stopped here' in r.getMessage()
                   and migration_uuid in r.getMessage() for r in caplog.records)
        other.release(migration_uuid, finished=False)
    finally:
        other.close()

    assert _eventually(lambda: runner._jobs.holds(migration_uuid))
    cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    migration = live.wait_for(cloud, migration_uuid)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, uuid_) == {'sim-2': 'running'}
    assert _eventually(lambda: _jobs_on_board(cloud) == [])


def test_a_claim_that_cannot_be_renewed_counts_as_held_until_it_expired(cloud,
                                                                        monkeypatch):
    jobs = jobboard.MigrationJobs(cloud.conf, _runner(cloud)._backend, 'conductor-c')
    try:
        book_uuid = str(uuid.uuid4())
        _runner(cloud).create(book_uuid, 'live', {'migration_uuid': book_uuid})
        assert jobs.claim(book_uuid, _runner(cloud)._created.pop(book_uuid)[1])

        def unreachable(job):
            raise taskflow_exc.JobFailure('Redis is out of reach')
        monkeypatch.setattr(jobs._board, 'find_owner', unreachable)
        assert jobs.renew() == []                   # may still be valid in Redis
        assert (jobs.holds(book_uuid), jobs.fenced(book_uuid)) == (True, False)
        time.sleep(EXPIRY)
        assert jobs.renew() == [book_uuid]          # has expired in Redis by now
        assert (jobs.holds(book_uuid), jobs.fenced(book_uuid)) == (True, True)
        jobs.forget(book_uuid)
        assert (jobs.holds(book_uuid), jobs.fenced(book_uuid)) == (False, True)
    finally:
        jobs.close()


@pytest.mark.parametrize('url', ['http://127.0.0.1:6379', 'redis://127.0.0.1/zero'])
def test_a_malformed_jobboard_url_is_refused(url):
    with pytest.raises(ValueError):
        jobboard.board_conf(url, 'ns')


def test_the_jobboard_url_gives_host_port_db_and_password():
    conf = jobboard.board_conf('redis://:s%40cret@db.example:6380/2', 'ns')
    assert (conf['host'], conf['port'], conf['db'], conf['password'],
            conf['namespace']) == ('db.example', 6380, 2, 's@cret', 'ns')
    assert jobboard.board_conf('redis://127.0.0.1', 'ns')['db'] == 0


def test_the_database_refuses_a_conductor_that_lost_the_migration_before_it_checks(
        cloud, caplog, monkeypatch):
    """Another conductor took the migration over in the database (a new generation)
    while this one still believes it holds the claim: this conductor's next status
    write is refused by the conditional UPDATE itself, its flow stops there (nothing
    finished, nothing reverted), and the migration is driven again once its job is
    claimed anew."""
    from db import api as db_api
    from migration_conductor.flows.tasks import agent_tasks
    runner = _runner(cloud)
    finished = []
    original = agent_tasks.FinishOnDestination.execute

    def finish(self, migration_uuid, instance_uuid, dest_host):
        finished.append(self.services.generation(migration_uuid))
        return original(self, migration_uuid, instance_uuid, dest_host)
    monkeypatch.setattr(agent_tasks.FinishOnDestination, 'execute', finish)
    # Until the checks below, the job given back is not claimed again.
    hold_back = threading.Event()
    claim_unclaimed = runner._claim_unclaimed
    monkeypatch.setattr(runner, '_claim_unclaimed',
                        lambda: claim_unclaimed() if hold_back.is_set() else [])

    uuid_ = live.add_stubborn_guest(cloud, 'sim-1', 'g-fenced')
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid_, host='sim-2').uuid
    live.wait_for(cloud, migration_uuid, statuses=('running',))
    mine = runner._services.generation(migration_uuid)
    theirs = db_api.migration_take_ownership(cloud.admin, migration_uuid,
                                             'conductor-b')['generation']
    assert runner._jobs.holds(migration_uuid) and not runner._jobs.fenced(migration_uuid)

    cloud.conductor.force_complete_migration(cloud.admin, migration_uuid)
    # The job completes; moving on to completing is this conductor's next write.
    assert _eventually(lambda: any('is driven by conductor-b now' in r.getMessage()
                                   for r in caplog.records), timeout=20)
    row = db_api.migration_get(cloud.admin, migration_uuid)
    assert (row['status'], row['owner'], row['generation']) == ('running', 'conductor-b',
                                                                theirs)
    assert finished == [mine]    # it reached the finish, whose first write was refused
    assert live.where(cloud, uuid_) == {'sim-2': 'running'}   # the job was not undone

    # Given back to the board, the job is claimed again: this conductor takes the
    # migration over (a generation newer than conductor-b's) and finishes it.
    hold_back.set()
    migration = live.wait_for(cloud, migration_uuid)
    assert migration.status == 'completed', migration.error
    assert finished[-1] > theirs
    assert live.where(cloud, uuid_) == {'sim-2': 'running'}
