"""Test-wide set-up: objects registered once, the eventlet notice silenced."""

import warnings

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from migration_conductor import objects  # noqa: E402

objects.register_all()


import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test fails: every tier must run, and a missing service must say so."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, 'wasxfail'):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = 'failed'
        report.longrepr = 'skipping is not allowed in this suite: %s' % (reason,)


_RAN = {'count': 0}


def pytest_runtest_logreport(report):
    if report.when == 'call':
        _RAN['count'] += 1


def pytest_sessionfinish(session, exitstatus):
    """Running no test is a failure, never pytest's 'no tests ran' status 5."""
    if _RAN['count'] == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
