"""MigrationJobs and its monitor: start idempotent across restarts, reports, stalls.

Two simulated hosts in this process; a restart of the source agent is played by a new
MigrationJobs on the same driver (what the agent process knew is gone, libvirt's job is
not).
"""

import threading
import time
import uuid
from unittest import mock

import pytest

from compute_agent import migration_jobs
from compute_agent.virt import driver as virt_driver
from migration_conductor import exception
from migration_conductor import objects
from tests.unit.compute_agent.virt.conftest import make_host  # noqa: F401

WAIT = 10
MIGRATION = '11111111-0000-4000-8000-00000000000a'


class Reports:
    """Collects what the jobs' monitors report (thread-safe)."""

    def __init__(self):
        self.progress, self.ended = [], []
        self._lock = threading.Lock()
        self.changed = threading.Event()

    def record(self, kind, job):
        with self._lock:
            getattr(self, kind).append(job)
        self.changed.set()


class Reporter:
    def __init__(self, reports):
        self._reports = reports

    def progress(self, job):
        self._reports.record('progress', job)

    def ended(self, job):
        self._reports.record('ended', job)


def _wait(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for %s' % what
        time.sleep(0.01)


@pytest.fixture
def hosts(make_host):  # noqa: F811
    return make_host(), make_host()


def _spec(source, dest, instance_uuid, interval=0.02, **options):
    return objects.MigrationSpec(
        migration_uuid=MIGRATION, instance_uuid=instance_uuid, dest_host=dest.host,
        dest_uri=dest.get_host_inventory()['libvirt_uri'], migrate_uri=None,
        options=objects.MigrationOptions(**options), report_interval=interval)


def _jobs(source, reports=None):
    return migration_jobs.MigrationJobs(
        source.host, source, start_timeout=WAIT,
        reporter=Reporter(reports) if reports is not None else None)


def _stubborn(source):
    """A guest that never converges (4 GiB dirtied faster than the link)."""
    return source.add_domain('stubborn', memory_mb=4096, dirty_rate_mib=4096)


def test_the_monitor_reports_progress_and_the_end_at_once(hosts):
    source, dest = hosts
    reports = Reports()
    guest = source.add_domain('g', memory_mb=512, dirty_rate_mib=20)
    # 512 MiB at 32 MiB/s: 16 model seconds, 0.16 s of the test.
    job = _jobs(source, reports).start(_spec(source, dest, guest, bandwidth_mib=32))
    assert job.state == 'running'
    _wait(lambda: reports.ended, 'the end')
    (ended,) = reports.ended
    assert (ended.state, ended.migration_uuid, ended.host) == ('completed', MIGRATION,
                                                              source.host)
    assert reports.progress and all(p.state == 'running' and p.progress.active
                                    for p in reports.progress)
    assert dest.find_instance(guest) == 'running'


def test_a_restarted_agent_asked_to_start_again_watches_the_running_job(hosts):
    source, dest = hosts
    guest = _stubborn(source)
    with mock.patch.object(source, 'live_migrate', wraps=source.live_migrate) as issued:
        _jobs(source).start(_spec(source, dest, guest))
        # The agent restarts (its table is gone) and the conductor asks again.
        reports = Reports()
        again = _jobs(source, reports)
        job = again.start(_spec(source, dest, guest))
        assert job.state == 'running'
        assert issued.call_count == 1        # no second migrateToURI3
        _wait(lambda: reports.progress, 'a report of the job watched again')
        assert again.watched() == [MIGRATION]
        source.abort_job(guest)
        _wait(lambda: reports.ended, 'the end seen by the monitor')
    assert reports.ended[0].state in ('not-running', 'cancelled')
    assert source.find_instance(guest) == 'running' and dest.find_instance(guest) is None


def test_a_restarted_agent_never_starts_a_guest_that_left(hosts):
    source, dest = hosts
    guest = source.add_domain('g', memory_mb=256)
    first = _jobs(source)
    first.start(_spec(source, dest, guest))
    _wait(lambda: dest.find_instance(guest) == 'running', 'the switch-over')
    with mock.patch.object(source, 'live_migrate') as issued:
        job = _jobs(source).start(_spec(source, dest, guest))
    assert job.state == 'gone' and not issued.called


def test_a_stalled_statistics_read_never_ends_the_job(hosts):
    """Every read of the job's statistics fails for a while (libvirt not answering
    in time): the monitor only logs; the job completes and its end is reported."""
    source, dest = hosts
    reports = Reports()
    guest = source.add_domain('g', memory_mb=2048, dirty_rate_mib=50)
    original = source.get_job_stats
    stalled = threading.Event()
    stalled.set()
    stalls = []

    def stalling(instance_uuid):
        if stalled.is_set() and threading.current_thread().name.startswith('monitor'):
            stalls.append(instance_uuid)
            raise exception.HypervisorUnavailable(uri='simulated://',
                                                  reason='read job statistics: no '
                                                         'answer within 30 s')
        return original(instance_uuid)

    with mock.patch.object(source, 'get_job_stats', side_effect=stalling):
        jobs = _jobs(source, reports)
        jobs.start(_spec(source, dest, guest, bandwidth_mib=256))
        _wait(lambda: len(stalls) >= 3, 'stalled reads')
        assert reports.ended == [] and jobs.watched() == [MIGRATION]
        stalled.clear()
        _wait(lambda: reports.ended, 'the end')
    assert reports.ended[0].state == 'completed'
    assert dest.find_instance(guest) == 'running'


def test_status_of_an_unknown_migration_reads_libvirt(hosts):
    source, dest = hosts
    jobs = _jobs(source)
    here = source.add_domain('idle')
    assert jobs.status(MIGRATION, here).state == 'not-running'
    assert jobs.status(MIGRATION, str(uuid.uuid4())).state == 'gone'
    with mock.patch.object(source, 'get_job_stats',
                           return_value=virt_driver.empty_job_stats('completed')):
        assert jobs.status(MIGRATION, here).state == 'completed'
