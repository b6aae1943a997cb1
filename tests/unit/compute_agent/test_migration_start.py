"""MigrationJobs.start: it answers once libvirt runs the job, soon after it does.

(Reading libvirt back before a start, and the monitor: test_migration_jobs.py.)

A fake driver stands in for libvirt: its job appears after a given number of asks
(libvirt reports a job a few milliseconds after migrateToURI3 is called) and runs until
the test lets it end.
"""

import threading
import time

import pytest

from compute_agent import migration_jobs
from compute_agent.virt import driver as virt_driver
from migration_conductor import exception
from migration_conductor import objects

MIGRATION = '11111111-0000-4000-8000-0000000000aa'
INSTANCE = '22222222-0000-4000-8000-0000000000aa'


class FakeDriver:
    """A job that libvirt reports as running from the ``active_from``-th ask on."""

    def __init__(self, active_from, fail=None, postcopy=False):
        self.active_from = active_from
        self.fail = fail
        self.postcopy = postcopy
        self.asks = []            # time.monotonic() of each get_job_stats
        self.release = threading.Event()

    def live_migrate(self, instance_uuid, dest_uri, migrate_uri, options):
        if self.fail:
            raise self.fail
        self.release.wait(10)

    def in_postcopy(self, instance_uuid):
        return self.postcopy

    def resume_postcopy(self, instance_uuid, dest_uri, migrate_uri, options):
        raise exception.PostcopyUnrecoverable(instance_uuid=instance_uuid, host='src',
                                              reason='nothing to resume')

    def get_job_stats(self, instance_uuid):
        self.asks.append(time.monotonic())
        if self.fail:
            return virt_driver.empty_job_stats('none')
        running = len(self.asks) >= self.active_from and not self.release.is_set()
        return virt_driver.empty_job_stats('unbounded' if running else 'none')


def _start(driver, timeout=5):
    jobs = migration_jobs.MigrationJobs('src-host', driver, timeout)
    spec = objects.MigrationSpec(
        migration_uuid=MIGRATION, instance_uuid=INSTANCE, dest_host='dest',
        dest_uri='qemu+tcp://dest/system', migrate_uri='tcp://127.0.0.1',
        options=objects.MigrationOptions(),
        # The monitor's first reading comes long after these tests' asks.
        report_interval=60)
    began = time.monotonic()
    try:
        return jobs.start(spec), time.monotonic() - began
    finally:
        driver.release.set()


def test_start_answers_once_the_job_runs():
    # Ask 1 reads libvirt back before anything starts (no job: start one).
    driver = FakeDriver(active_from=3)
    status, _ = _start(driver)
    assert status.state == 'running'
    assert status.progress.job_type == 'unbounded'
    assert len(driver.asks) == 4          # the read-back, two asks, then its status


def test_start_asks_again_after_a_few_milliseconds_then_less_often():
    # After the read-back, the job runs from the third ask: 5 + 10 ms of waiting,
    # where a fixed 50 ms interval waited 100 ms.
    driver = FakeDriver(active_from=4)
    _, took = _start(driver)
    waits = [b - a for a, b in zip(driver.asks[1:], driver.asks[2:4])]
    assert waits[0] >= migration_jobs.START_POLL_FIRST
    assert waits[1] >= 2 * migration_jobs.START_POLL_FIRST
    assert took < 0.08, took


def test_the_interval_between_asks_grows_to_its_bound(monkeypatch):
    waits = []
    real_wait = threading.Event.wait

    def recording_wait(event, timeout=None):
        if timeout is None or timeout > migration_jobs.START_POLL_MAX:
            return real_wait(event, timeout)      # not the start's wait
        waits.append(timeout)
        return real_wait(event, 0)     # do not sleep: only the intervals matter

    monkeypatch.setattr(threading.Event, 'wait', recording_wait)
    driver = FakeDriver(active_from=9)     # the read-back, then 7 asks before it runs
    _start(driver)
    assert waits[:7] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.05, 0.05, 0.05])


def test_a_job_that_fails_at_once_is_reported_without_waiting_long():
    driver = FakeDriver(active_from=1, fail=exception.MigrationJobFailed(
        instance_uuid=INSTANCE, host='src-host', reason='destination refused'))
    began = time.monotonic()
    with pytest.raises(exception.MigrationJobFailed) as info:
        _start(driver)
    assert 'destination refused' in str(info.value)
    assert time.monotonic() - began < 1


@pytest.mark.parametrize('postcopy', [False, True])
def test_a_job_failing_after_the_switch_to_post_copy_says_so(postcopy, monkeypatch):
    """libvirt's state of the source (paused, post-copy failed) decides: the
    conductor must then never roll the migration back. (A resume is tried first; here
    the destination has nothing to resume.)"""
    monkeypatch.setattr(migration_jobs, 'POSTCOPY_RESUME_WAITS', (0,))
    ended = []
    reporter = type('Reporter', (), {'progress': lambda self, job: None,
                                     'ended': lambda self, job: ended.append(job)})()
    driver = FakeDriver(active_from=1, fail=exception.MigrationJobFailed(
        instance_uuid=INSTANCE, host='src-host', reason='stream cut'), postcopy=postcopy)
    jobs = migration_jobs.MigrationJobs('src-host', driver, 5, reporter=reporter)
    spec = objects.MigrationSpec(
        migration_uuid=MIGRATION, instance_uuid=INSTANCE, dest_host='dest',
        dest_uri='qemu+tcp://dest/system', migrate_uri='tcp://127.0.0.1',
        options=objects.MigrationOptions(), report_interval=60)
    with pytest.raises(exception.MigrationJobFailed):
        jobs.start(spec)
    [job] = ended
    assert (job.state, job.postcopy) == ('failed', postcopy)
    assert ('after the switch to post-copy' in job.error) is postcopy
    assert ('nothing to resume' in job.error) is postcopy


class ResumingDriver(FakeDriver):
    """A post-copy whose stream broke; its resume blocks until the test lets it end,
    the job's statistics showing ``step`` more bytes moved at each reading."""

    def __init__(self, step):
        super().__init__(active_from=1, fail=exception.MigrationJobFailed(
            instance_uuid=INSTANCE, host='src-host', reason='stream cut'), postcopy=True)
        self.step = step
        self.moved = 0
        self.resuming = threading.Event()
        self.resume_done = threading.Event()

    def resume_postcopy(self, instance_uuid, dest_uri, migrate_uri, options):
        self.resuming.set()
        self.resume_done.wait(10)

    def get_job_stats(self, instance_uuid):
        if not self.resuming.is_set():
            return super().get_job_stats(instance_uuid)
        self.moved += self.step
        return dict(virt_driver.empty_job_stats('unbounded'), memory_processed=self.moved)


def _resume_ending(driver, monkeypatch, release_after=None):
    """Start a job that fails in post-copy; return (its report, seconds to it)."""
    monkeypatch.setattr(migration_jobs, 'POSTCOPY_RESUME_WAITS', (0,))
    monkeypatch.setattr(migration_jobs, 'POSTCOPY_RESUME_STALL_S', 0.5)
    monkeypatch.setattr(migration_jobs, 'POSTCOPY_RESUME_POLL_S', 0.05)
    ended = threading.Event()
    reports = []
    reporter = type('Reporter', (), {
        'progress': lambda self, job: None, 'event': lambda self, event: None,
        'ended': lambda self, job: (reports.append(job), ended.set())})()
    jobs = migration_jobs.MigrationJobs('src-host', driver, 5, reporter=reporter)
    spec = objects.MigrationSpec(
        migration_uuid=MIGRATION, instance_uuid=INSTANCE, dest_host='dest',
        dest_uri='qemu+tcp://dest/system', migrate_uri='tcp://127.0.0.1',
        options=objects.MigrationOptions(), report_interval=60)
    began = time.monotonic()
    try:
        jobs.start(spec)    # answers once the job failed, or runs again (the resume)
    except exception.MigrationJobFailed:
        pass
    if release_after is not None:
        threading.Timer(release_after, driver.resume_done.set).start()
    assert ended.wait(5)
    return reports[0], time.monotonic() - began


def test_a_resume_that_moves_no_memory_is_given_up_after_the_stall_bound(monkeypatch):
    driver = ResumingDriver(step=0)
    try:
        job, took = _resume_ending(driver, monkeypatch)
    finally:
        driver.resume_done.set()
    assert driver.resuming.is_set()             # the resume call was in flight
    assert job.state == 'failed'
    assert 'moved no memory' in job.error and 'stays paused' in job.error
    assert 0.5 <= took < 3


def test_a_slow_resume_that_moves_memory_is_waited_for(monkeypatch):
    driver = ResumingDriver(step=4096)
    job, took = _resume_ending(driver, monkeypatch, release_after=1.5)
    assert job.state == 'completed', job.error
    assert took >= 1.5                          # well past the 0.5 s stall bound
