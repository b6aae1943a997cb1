"""Any flow registered for a migration type is created, run, resumed and shared.

A test flow stands for the cold migration of a later issue: registered for the
``cold`` type, it is persisted, run by the runner, interrupted mid-task (the conductor
dies: nothing is reverted or released), and resumed by a new conductor from the task
that was running, without a jobboard and with one (the dead conductor's claim expires
and the new one claims the job). Nothing in the runner names the flow.
"""

import collections
import threading
import uuid

import pytest

from db import api as db_api
from migration_conductor import conductor_lock
from migration_conductor import exception
from migration_conductor import service as conductor_service
from migration_conductor.flows import registry
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states
from tests.functional import conftest
from tests.functional import test_jobboard
from tests.functional import test_live_migration as live

RUNS = collections.Counter()
CRASH = threading.Event()


class Crash(BaseException):
    """The conductor dies inside a task: nothing reverts, nothing is released."""


class BeginColdMove(base.MigrationTask):
    def execute(self, migration_uuid):
        RUNS['begin'] += 1
        self.status(migration_uuid, states.SCHEDULING)


class CopyVolumes(base.MigrationTask):
    def execute(self, migration_uuid):
        RUNS['copy'] += 1
        if CRASH.is_set():
            CRASH.clear()
            raise Crash()


class MarkColdMoveCompleted(base.MigrationTask):
    def execute(self, migration_uuid):
        RUNS['end'] += 1
        for target in (states.PRE_CHECKING, states.CLAIMING, states.PREPARING,
                       states.RUNNING, states.COMPLETING, states.COMPLETED):
            self.status(migration_uuid, target)


def _cold_flow(services):
    from taskflow.patterns import linear_flow
    return linear_flow.Flow('test-cold-move').add(
        BeginColdMove(services), CopyVolumes(services), MarkColdMoveCompleted(services))


@pytest.fixture
def cold_flow():
    registry.register(fields.MigrationType.COLD, 'test-cold-move', _cold_flow)
    RUNS.clear()
    CRASH.clear()
    yield
    registry.unregister(fields.MigrationType.COLD)


@pytest.fixture(params=['no-jobboard', 'jobboard'])
def cloud(request, tmp_path):
    """Conductor and three simulated agents, with or without a Redis jobboard."""
    overrides = {}
    namespace = None
    if request.param == 'jobboard':
        test_jobboard._redis()
        namespace = 'mc-test-%s' % uuid.uuid4().hex[:8]
        overrides.update({('conductor', 'jobboard_url'): test_jobboard.REDIS_URL,
                          ('conductor', 'jobboard_namespace'): namespace,
                          ('conductor', 'jobboard_claim_expiry'): test_jobboard.EXPIRY,
                          ('conductor', 'jobboard_poll_interval'): 0.2})
    try:
        with conftest.simulated_cloud(tmp_path, overrides) as handle:
            yield handle
    finally:    # once the services stopped
        if namespace:
            client = test_jobboard._redis()
            for key in client.scan_iter('%s*' % namespace):
                client.delete(key)
            client.close()


def _cold_migration(cloud):
    row = db_api.migration_create(cloud.admin, {
        'uuid': str(uuid.uuid4()), 'instance_uuid': str(uuid.uuid4()),
        'migration_type': fields.MigrationType.COLD, 'source_host': 'sim-1',
        'status': states.ACCEPTED})
    return row['uuid']


def _runner(cloud):
    return cloud.service.conductor.runner


def test_a_registered_flow_runs_to_its_end(cold_flow, cloud):
    migration_uuid = _cold_migration(cloud)
    runner = _runner(cloud)
    runner.create(migration_uuid, fields.MigrationType.COLD,
                  {'migration_uuid': migration_uuid})
    runner.run(migration_uuid)
    runner.wait(migration_uuid, 30)
    assert db_api.migration_get(cloud.admin, migration_uuid)['status'] == 'completed'
    assert RUNS == {'begin': 1, 'copy': 1, 'end': 1}


# The crashing task kills its flow's thread, as the conductor's death would.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_registered_flow_is_resumed_by_a_new_conductor(cold_flow, cloud, monkeypatch):
    migration_uuid = _cold_migration(cloud)
    runner = _runner(cloud)
    if runner._jobs is not None:
        # A dying conductor gives nothing back: its claim must expire.
        monkeypatch.setattr(runner._jobs, 'release', lambda *args, **kwargs: None)
    CRASH.set()
    runner.create(migration_uuid, fields.MigrationType.COLD,
                  {'migration_uuid': migration_uuid})
    runner.run(migration_uuid)
    runner.wait(migration_uuid, 30)
    assert RUNS == {'begin': 1, 'copy': 1}
    assert db_api.migration_get(cloud.admin, migration_uuid)['status'] == 'scheduling'

    cloud.service.conductor.stop()      # the dead conductor's process is gone
    survivor = conductor_service.ConductorService(cloud.conf)
    survivor.start()
    try:
        live.wait_for(cloud, migration_uuid, timeout=30)
        row = db_api.migration_get(cloud.admin, migration_uuid)
        assert row['status'] == 'completed'
        assert row['owner'] == survivor.runner.owner
        # Resumed from the task that was running: the first one ran once.
        assert RUNS == {'begin': 1, 'copy': 2, 'end': 1}
    finally:
        survivor.stop()


def test_an_unregistered_migration_type_is_refused_before_anything_is_written(aio):
    registry.unregister(fields.MigrationType.COLD)
    runner = aio.service.conductor.runner
    with pytest.raises(exception.Invalid) as info:
        runner.create(str(uuid.uuid4()), fields.MigrationType.COLD, {})
    assert 'no flow for cold migrations' in info.value.message
    assert runner._created == {}


def test_a_second_conductor_without_a_jobboard_refuses_to_start(aio):
    """On the same database a second one would resume every unfinished migration the
    first drives: it stops at start with one line naming the first."""
    with pytest.raises(exception.ConductorLocked) as info:
        conductor_service.ConductorService(aio.conf).start()
    assert conductor_lock.holder_name(aio.conf) in info.value.message
    # The first one still serves.
    assert aio.conductor.list_hosts(aio.admin)
