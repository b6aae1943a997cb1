"""MigrationJobs.start: it answers once libvirt runs the job, soon after it does.

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

MIGRATION = 'mmmmmmmm-0000-4000-8000-000000000001'
INSTANCE = 'iiiiiiii-0000-4000-8000-000000000001'


class FakeDriver:
    """A job that libvirt reports as running from the ``active_from``-th ask on."""

    def __init__(self, active_from, fail=None):
        self.active_from = active_from
        self.fail = fail
        self.asks = []            # time.monotonic() of each get_job_stats
        self.release = threading.Event()

    def live_migrate(self, instance_uuid, dest_uri, migrate_uri, options):
        if self.fail:
            raise self.fail
        self.release.wait(10)

    def get_job_stats(self, instance_uuid):
        self.asks.append(time.monotonic())
        if self.fail:
            return virt_driver.empty_job_stats('none')
        running = len(self.asks) >= self.active_from and not self.release.is_set()
        return virt_driver.empty_job_stats('unbounded' if running else 'none')


def _start(driver, timeout=5):
    jobs = migration_jobs.MigrationJobs('src-host', driver, timeout)
    began = time.monotonic()
    try:
        return jobs.start(MIGRATION, INSTANCE, 'qemu+tcp://dest/system',
                          'tcp://127.0.0.1', {}), time.monotonic() - began
    finally:
        driver.release.set()


def test_start_answers_once_the_job_runs():
    driver = FakeDriver(active_from=3)
    status, _ = _start(driver)
    assert status['state'] == migration_jobs.RUNNING
    assert status['stats']['type'] == 'unbounded'
    assert len(driver.asks) == 4          # three asks until it ran, then its status


def test_start_asks_again_after_a_few_milliseconds_then_less_often():
    # The job runs from the third ask: 5 + 10 ms of waiting, where a fixed 50 ms
    # interval waited 100 ms.
    driver = FakeDriver(active_from=3)
    _, took = _start(driver)
    waits = [b - a for a, b in zip(driver.asks, driver.asks[1:3])]
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
    driver = FakeDriver(active_from=8)
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
