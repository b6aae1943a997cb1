"""LibvirtDriver against libvirt's test driver: guests, typed errors, CPU check.

libvirt's ``test:///<file>`` driver has a private state per connection and supports the
domain life cycle, but no migration, job statistics or CPU comparison: those paths show
here that libvirt's errors leave the driver as typed errors. Migrations themselves run
on real lab hosts in tests/integration/test_libvirt_migration.py.
"""

import logging
import time

import libvirt
import pytest

from compute_agent.virt.libvirt import driver as libvirt_driver
from migration_conductor import exception

UUID = '11111111-2222-3333-4444-555555555555'
NODE_XML = """<node>
  <domain type='test'>
    <name>guest-a</name>
    <uuid>%s</uuid>
    <memory unit='MiB'>512</memory>
    <vcpu>2</vcpu>
    <os><type>hvm</type></os>
  </domain>
</node>
""" % UUID


@pytest.fixture
def driver(tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text(NODE_XML)
    drv = libvirt_driver.LibvirtDriver('test-host', 'test://%s' % node)
    drv.init_host()
    yield drv
    drv.cleanup()


def test_get_and_find_an_instance(driver):
    assert driver.get_instance(UUID) == {'uuid': UUID, 'name': 'guest-a',
                                         'power_state': 'running', 'memory_mb': 512,
                                         'vcpus': 2, 'migration_profile': None}
    assert driver.find_instance(UUID) == 'running'
    assert driver.list_instances() == [driver.get_instance(UUID)]
    missing = '99999999-2222-3333-4444-555555555555'
    assert driver.find_instance(missing) is None
    assert driver.find_instance('not-a-uuid') is None
    with pytest.raises(exception.DomainNotFound) as info:
        driver.get_instance(missing)
    assert missing in str(info.value) and 'test-host' in str(info.value)


def test_pause_and_resume_are_idempotent(driver):
    driver.pause_instance(UUID)
    driver.pause_instance(UUID)
    assert driver.find_instance(UUID) == 'paused'
    driver.resume_instance(UUID)
    driver.resume_instance(UUID)
    assert driver.find_instance(UUID) == 'running'


def test_destroy_removes_the_running_persistent_domain_once(driver):
    assert driver.destroy_instance(UUID) is True
    assert driver.find_instance(UUID) is None
    assert driver.destroy_instance(UUID) is False
    for method in (driver.pause_instance, driver.resume_instance, driver.get_instance):
        with pytest.raises(exception.DomainNotFound):
            method(UUID)
    assert driver.get_job_stats(UUID) is None
    assert driver.get_completed_job_stats(UUID) is None
    assert driver.abort_job(UUID) is False


def test_a_shut_off_domain_cannot_be_paused(driver):
    conn = driver._host.get_connection()
    conn.lookupByUUIDString(UUID).destroy()
    assert driver.find_instance(UUID) == 'shutoff'
    with pytest.raises(exception.InstanceStateConflict):
        driver.pause_instance(UUID)
    assert driver.destroy_instance(UUID) is True      # the definition goes
    assert driver.find_instance(UUID) is None


def test_unsupported_libvirt_calls_become_typed_errors(driver):
    # The test driver has no job statistics: no libvirtError leaves the driver.
    with pytest.raises(exception.HypervisorCallFailed) as info:
        driver.get_job_stats(UUID)
    assert UUID in str(info.value) and 'not supported' in str(info.value)
    with pytest.raises(exception.HypervisorCallFailed):
        driver.abort_job(UUID)
    with pytest.raises(exception.MigrationJobFailed) as info:
        driver.live_migrate(UUID, 'test:///default', None, {'max_downtime_ms': 100})
    assert 'maximum downtime' in str(info.value)
    with pytest.raises(exception.MigrationJobFailed) as info:
        driver.live_migrate(UUID, 'test:///default', 'tcp://127.0.0.1', {})
    assert not isinstance(info.value, exception.MigrationJobCancelled)
    with pytest.raises(exception.DomainNotFound):
        driver.live_migrate('99999999-2222-3333-4444-555555555555', 'test:///default',
                            None, {})


def test_cpu_check_without_cpu_or_without_support_passes(driver):
    assert driver.check_cpu_compatible(None) is None
    # The test driver cannot compare CPUs: the check is skipped (logged), as Nova does.
    assert driver.check_cpu_compatible('<cpu><arch>x86_64</arch></cpu>') is None


class _SlowHostnameConnection:
    """A libvirt connection whose hostname lookup takes ``delay`` seconds."""

    def __init__(self, conn, delay):
        self._conn = conn
        self._delay = delay

    def getHostname(self):
        time.sleep(self._delay)
        return self._conn.getHostname()

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.mark.parametrize('delay, warned', [(0.0, False), (0.05, True)])
def test_init_host_warns_when_libvirt_looks_its_hostname_up_slowly(
        tmp_path, monkeypatch, caplog, delay, warned):
    node = tmp_path / 'node.xml'
    node.write_text(NODE_XML)
    monkeypatch.setattr(libvirt_driver, 'SLOW_HOSTNAME_LOOKUP_SECONDS', 0.02)
    drv = libvirt_driver.LibvirtDriver(
        'test-host', 'test://%s' % node,
        open_connection=lambda uri: _SlowHostnameConnection(libvirt.open(uri), delay))
    caplog.set_level(logging.WARNING, logger=libvirt_driver.__name__)
    try:
        drv.init_host()
    finally:
        drv.cleanup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if warned:
        assert len(warnings) == 1
        assert 'Host test-host: libvirt at test://%s took' % node in warnings[0]
        assert '/etc/hosts' in warnings[0]
    else:
        assert warnings == []


class _TracedConnection:
    """A libvirt connection that records, in ``log``, which connection each call used."""

    def __init__(self, conn, log, index):
        self._conn, self._log, self._index = conn, log, index

    def lookupByUUIDString(self, uuid):
        return _TracedDomain(self._conn.lookupByUUIDString(uuid), self._log, self._index)

    def close(self):
        self._log.append((self._index, 'close'))
        return self._conn.close()

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _TracedDomain:
    def __init__(self, dom, log, index):
        self._dom, self._log, self._index = dom, log, index

    def __getattr__(self, name):
        method = getattr(self._dom, name)

        def traced(*args):
            self._log.append((self._index, name))
            return method(*args)
        return traced


def test_the_migration_job_runs_on_a_connection_of_its_own(tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text(NODE_XML)
    log, opened = [], []

    def open_connection(uri):
        opened.append(uri)
        return _TracedConnection(libvirt.open(uri), log, len(opened) - 1)

    drv = libvirt_driver.LibvirtDriver('test-host', 'test://%s' % node,
                                       open_connection=open_connection)
    drv.init_host()
    try:
        # libvirt's test driver cannot migrate: the job fails, as a typed error.
        with pytest.raises(exception.MigrationJobFailed):
            drv.live_migrate(UUID, 'qemu+tcp://127.0.0.1:1/system', None,
                             {'max_downtime_ms': None})
        assert drv.find_instance(UUID) == 'running'
    finally:
        drv.cleanup()
    # Connection 0 is the shared one; the job had connection 1, closed once it ended.
    assert len(opened) == 2
    job = log.index((1, 'migrateToURI3'))
    assert log[job + 1] == (1, 'close')
    assert (0, 'migrateToURI3') not in log
    # Calls about the guest stay on the shared connection, closed by cleanup().
    assert log[job + 2:] == [(0, 'state'), (0, 'close')]
