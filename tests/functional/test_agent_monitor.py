"""The job monitor in the source agent, end to end in one process (DESIGN step 8).

The source agent watches its job and reports it; the conductor records the reports
and asks the source only after ``monitor_silence_timeout`` without one. Transient
faults (lost reports, a statistics read that fails, a start whose answer was lost)
never end the job: only its own state decides. Each test proves its fault landed.
"""

import functools

import oslo_messaging as messaging
import pytest

from compute_agent import rpcapi as agent_rpcapi
from compute_agent import service as agent_service
from db import api as db_api
from migration_conductor import exception
from tests.functional import conftest
from tests.functional.test_live_migration import add_guest
from tests.functional.test_live_migration import wait_for
from tests.functional.test_live_migration import where

HOSTS = ('sim-1', 'sim-2')


@pytest.fixture
def cloud(tmp_path):
    """Two simulated hosts on a clock slow enough for a job of about 1.5 s."""
    with conftest.simulated_cloud(
            tmp_path, {('simulated', 'time_scale'): 0.25,
                       ('conductor', 'monitor_silence_timeout'): 0.5},
            hosts=HOSTS) as handle:
        yield handle


def migrate(cloud, name):
    """Move a 4 GiB guest dirtying 200 MiB/s from sim-1 to sim-2; the Migration."""
    uuid = add_guest(cloud, 'sim-1', name, memory_mb=4096, dirty_rate_mib=200)
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)
    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    return migration


def sent(cloud, sender, method):
    return [m for m in cloud.messages if m[0] == sender and m[4] == method]


def test_the_source_reports_the_job_and_the_conductor_never_asks(cloud):
    migration = migrate(cloud, 'g-reported')

    pushes = sent(cloud, 'agent:sim-1', 'migration_progress')
    records = db_api.migration_progress_list(cloud.admin, migration.uuid)
    assert len(pushes) >= 10
    assert len(records) >= 10
    assert len(sent(cloud, 'agent:sim-1', 'migration_job_ended')) == 1
    assert sent(cloud, 'conductor:conductor-1', 'get_migration_job') == []


def test_lost_reports_are_made_up_for_by_asking_the_source(cloud, monkeypatch):
    """Every report of the source is lost (a broker dropping casts): the conductor
    asks the source after the silence bound, and the migration completes."""
    lost = []
    monkeypatch.setattr(agent_service.JobReporter, 'progress',
                        lambda self, job: lost.append('progress'))
    monkeypatch.setattr(agent_service.JobReporter, 'ended',
                        lambda self, job: lost.append('ended'))
    migrate(cloud, 'g-lost-reports')

    assert 'ended' in lost and 'progress' in lost          # the fault landed
    assert sent(cloud, 'conductor:conductor-1', 'get_migration_job')


@pytest.mark.parametrize('when', ['before-the-start', 'while-the-job-runs'])
def test_failing_statistics_reads_never_end_the_job(cloud, monkeypatch, caplog, when):
    """The source's libvirt statistics reads time out: before the start (libvirt
    cannot tell whether a job runs: the start is asked again), or 8 times while the
    job runs (in the start's wait and the monitor): the job goes on and completes."""
    driver = cloud.agents['sim-1'].driver
    original = driver.get_job_stats
    failed = []

    def read(instance_uuid):
        stats = original(instance_uuid)
        running = stats is not None and stats['type'] == 'unbounded'
        if (len(failed) < (1 if when == 'before-the-start' else 8)
                and running == (when == 'while-the-job-runs')):
            failed.append(instance_uuid)
            raise exception.HypervisorCallFailed(
                host='sim-1', action='read the job statistics of',
                instance_uuid=instance_uuid, reason='injected: timed out after 5 s')
        return stats
    monkeypatch.setattr(driver, 'get_job_stats', read)
    migration = migrate(cloud, 'g-failed-reads-%s' % when)

    assert len(failed) == (1 if when == 'before-the-start' else 8)   # the fault landed
    if when == 'before-the-start':
        assert [r for r in caplog.records if migration.uuid in r.getMessage()
                and 'start: sim-1 could not answer' in r.getMessage()]


def test_a_start_whose_answer_was_lost_starts_one_job_only(cloud, monkeypatch):
    """The agent starts the job but its answer is lost: the conductor asks again and
    the agent, reading libvirt back, watches the job it runs instead of starting a
    second one."""
    driver = cloud.agents['sim-1'].driver
    starts = []
    original_migrate = driver.live_migrate

    def live_migrate(instance_uuid, *args, **kwargs):
        starts.append(instance_uuid)
        return original_migrate(instance_uuid, *args, **kwargs)
    monkeypatch.setattr(driver, 'live_migrate', live_migrate)

    answers = []
    original_start = agent_rpcapi.AgentAPI.start_migration

    @functools.wraps(original_start)
    def start(self, *args, **kwargs):
        job = original_start(self, *args, **kwargs)
        answers.append(job.state)
        if len(answers) == 1:
            raise messaging.MessagingTimeout('injected: the answer was lost')
        return job
    monkeypatch.setattr(agent_rpcapi.AgentAPI, 'start_migration', start)
    migration = migrate(cloud, 'g-start-again')

    assert answers == ['running', 'running']   # asked twice while the job ran
    assert len(starts) == 1                    # one migrateToURI3
    assert len(set(starts)) == 1 and starts[0] == migration.instance_uuid
