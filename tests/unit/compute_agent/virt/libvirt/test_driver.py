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
                                         'vcpus': 2}
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
