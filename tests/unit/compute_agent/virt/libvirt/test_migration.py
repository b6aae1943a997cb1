"""The libvirt migration module without libvirtd: flags, parameters, statistics, errors.

The raw statistics below are what libvirt 9.0 returned on the lab (source while running,
destination after completion); fake domains raise libvirt's errors with the codes the lab
showed.
"""

import libvirt
import pytest

from compute_agent.virt import driver
from compute_agent.virt.libvirt import host as libvirt_host
from compute_agent.virt.libvirt import migration
from migration_conductor import exception

RUNNING_RAW = {
    'operation': 5, 'time_elapsed': 2006, 'downtime': 300, 'setup_time': 2,
    'data_total': 537403392, 'data_processed': 47006165, 'data_remaining': 477974528,
    'memory_total': 537403392, 'memory_processed': 47006165,
    'memory_remaining': 477974528, 'memory_bps': 33570900, 'memory_constant': 3062,
    'memory_normal': 11447, 'memory_normal_bytes': 46886912, 'memory_dirty_rate': 6425,
    'memory_iteration': 2, 'memory_postcopy_requests': 0, 'memory_page_size': 4096,
    'disk_total': 0, 'disk_processed': 0, 'disk_remaining': 0, 'type': 2}
COMPLETED_RAW = {
    'operation': 4, 'time_elapsed': 2091, 'time_elapsed_net': 2087, 'downtime': 74,
    'downtime_net': 70, 'setup_time': 5, 'data_total': 268967936,
    'data_processed': 111547102, 'data_remaining': 0, 'memory_total': 268967936,
    'memory_processed': 111547102, 'memory_remaining': 0, 'memory_bps': 72178992,
    'memory_constant': 39235, 'memory_normal': 27094, 'memory_normal_bytes': 110977024,
    'memory_dirty_rate': 0, 'memory_iteration': 3, 'memory_postcopy_requests': 0,
    'memory_page_size': 4096, 'disk_total': 0, 'disk_processed': 0, 'disk_remaining': 0,
    'type': 3}


def _error(code, message='libvirt says no'):
    exc = libvirt_host.libvirtError(message)
    exc.err = (code, 10, message, 2, None, None, None, 0, 0)
    return exc


class FakeDomain:
    """Answers jobStats/state/abortJob/migrateToURI3 as told; records the calls."""

    def __init__(self, stats=None, state=(libvirt.VIR_DOMAIN_RUNNING, 1), errors=None):
        self.stats = stats or {'type': 0}
        self._state = state
        self.errors = errors or {}
        self.calls = []

    def _answer(self, name, value, *args):
        self.calls.append((name,) + args)
        if name in self.errors:
            raise self.errors[name]
        return value

    def jobStats(self, flags=0):
        return self._answer('jobStats', dict(self.stats), flags)

    def state(self, flags=0):
        return self._answer('state', list(self._state))

    def abortJob(self):
        return self._answer('abortJob', 0)

    def migrateSetMaxDowntime(self, ms, flags=0):
        return self._answer('migrateSetMaxDowntime', 0, ms)

    def migrateToURI3(self, uri, params, flags):
        return self._answer('migrateToURI3', None, uri, params, flags)


@pytest.fixture
def host():
    return libvirt_host.Host('test:///default')   # only its bounded call() is used


def test_flags_and_params_follow_the_options():
    options = driver.normalize_migration_options({})
    base = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
            | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
    assert migration.migration_flags(options) == base
    assert migration.migration_params(None, options) == {}
    options = driver.normalize_migration_options(
        {'block_migration': True, 'auto_converge': True, 'postcopy': True,
         'bandwidth_mib': 32, 'listen_address': '127.0.0.1', 'unknown': 1})
    assert 'unknown' not in options
    assert migration.migration_flags(options) == (
        base | libvirt.VIR_MIGRATE_NON_SHARED_DISK | libvirt.VIR_MIGRATE_AUTO_CONVERGE
        | libvirt.VIR_MIGRATE_POSTCOPY)
    # Pools trusted: libvirt's file-system check of the disks not copied is skipped.
    assert migration.migration_flags(options, trust_shared_pools=True) == (
        base | libvirt.VIR_MIGRATE_NON_SHARED_DISK | libvirt.VIR_MIGRATE_AUTO_CONVERGE
        | libvirt.VIR_MIGRATE_POSTCOPY | libvirt.VIR_MIGRATE_UNSAFE)
    shared = driver.normalize_migration_options({'block_migration': False})
    assert migration.migration_flags(shared, trust_shared_pools=True) == (
        base | libvirt.VIR_MIGRATE_UNSAFE)
    # Only the disks named are copied: never a shared one over itself.
    some = driver.normalize_migration_options({'block_migration': True,
                                               'migrate_disks': ['vdb']})
    assert migration.migration_params(None, some) == {
        libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: ['vdb']}
    assert migration.migration_params(None, dict(some, block_migration=False)) == {}
    # Post-copy permitted: the bandwidth limit binds its post-copy phase too when
    # the agent is told so, else only pre-copy (libvirt's and Nova's way).
    assert migration.migration_params('tcp://127.0.0.1', options, limit_postcopy=True) == {
        libvirt.VIR_MIGRATE_PARAM_URI: 'tcp://127.0.0.1',
        libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 32,
        libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY: 32,
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: '127.0.0.1'}
    assert libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY not in migration.migration_params(
        'tcp://127.0.0.1', options)
    precopy = dict(options, postcopy=False)
    assert migration.migration_params(None, precopy, limit_postcopy=True) == {
        libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 32,
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: '127.0.0.1'}
    resume = dict(precopy, postcopy_resume=True)
    assert migration.migration_params(None, resume, limit_postcopy=True)[
        libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] == 32


def test_running_stats_are_converted():
    stats = migration.convert_stats(RUNNING_RAW)
    assert stats == {
        'type': 'unbounded', 'memory_total': 537403392, 'memory_processed': 47006165,
        'memory_remaining': 477974528, 'disk_total': 0, 'disk_processed': 0,
        'disk_remaining': 0, 'dirty_rate': 6425 * 4096, 'iteration': 2,
        'expected_downtime_ms': 300, 'downtime_ms': None, 'total_time_ms': 2006,
        'postcopy': False}


def test_completed_stats_carry_the_real_downtime():
    stats = migration.convert_stats(COMPLETED_RAW)
    assert (stats['type'], stats['downtime_ms'], stats['expected_downtime_ms']) == (
        'completed', 74, None)
    assert (stats['memory_processed'], stats['total_time_ms']) == (111547102, 2091)
    assert migration.convert_stats({'type': 0}) == driver.empty_job_stats('none')


def test_job_stats_of_the_source_tell_post_copy(host):
    dom = FakeDomain(RUNNING_RAW, state=(libvirt.VIR_DOMAIN_PAUSED,
                                         libvirt.VIR_DOMAIN_PAUSED_POSTCOPY))
    assert migration.job_stats(host, dom)['postcopy'] is True
    dom = FakeDomain(RUNNING_RAW)
    assert migration.job_stats(host, dom)['postcopy'] is False


@pytest.mark.parametrize('code, state, expected', [
    # The destination of an incoming migration: libvirt gives no statistics there.
    (libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
     (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION), 'unbounded'),
    # The source between QEMU's end and the undefine of UNDEFINE_SOURCE.
    (libvirt.VIR_ERR_OPERATION_INVALID,
     (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED), 'completed'),
    (libvirt.VIR_ERR_OPERATION_INVALID, (libvirt.VIR_DOMAIN_SHUTOFF, 1), 'none'),
])
def test_job_stats_without_statistics(host, code, state, expected):
    dom = FakeDomain(state=state, errors={'jobStats': _error(code)})
    assert migration.job_stats(host, dom) == driver.empty_job_stats(expected)


def test_job_stats_of_a_vanished_domain_are_none(host):
    dom = FakeDomain(errors={'jobStats': _error(libvirt.VIR_ERR_NO_DOMAIN)})
    assert migration.job_stats(host, dom) is None
    dom = FakeDomain(errors={'jobStats': _error(libvirt.VIR_ERR_OPERATION_INVALID),
                             'state': _error(libvirt.VIR_ERR_NO_DOMAIN)})
    assert migration.job_stats(host, dom) is None


def test_completed_stats_are_kept_for_the_next_reader(host):
    dom = FakeDomain(COMPLETED_RAW)
    assert migration.completed_job_stats(host, dom)['downtime_ms'] == 74
    assert dom.calls == [('jobStats', libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
                          | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED)]
    assert migration.completed_job_stats(host, FakeDomain({'type': 0})) is None


def test_abort_without_a_job_returns_false(host):
    assert migration.abort(host, FakeDomain()) is True
    dom = FakeDomain(errors={'abortJob': _error(libvirt.VIR_ERR_OPERATION_INVALID,
                                                'no job is active on the domain')})
    assert migration.abort(host, dom) is False


def test_migrate_passes_flags_params_and_downtime(host):
    dom = FakeDomain()
    migration.migrate(host, dom, 'src', 'uuid-1', 'qemu+tcp://dest/system',
                      'tcp://127.0.0.1', {'max_downtime_ms': 123, 'bandwidth_mib': 32})
    assert dom.calls[0] == ('migrateSetMaxDowntime', 123)
    name, uri, params, flags = dom.calls[1]
    assert (name, uri) == ('migrateToURI3', 'qemu+tcp://dest/system')
    assert params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] == 32
    assert flags & libvirt.VIR_MIGRATE_UNDEFINE_SOURCE


def test_migrate_errors_become_job_errors(host):
    aborted = FakeDomain(errors={'migrateToURI3': _error(
        libvirt.VIR_ERR_OPERATION_ABORTED, "operation aborted: job 'migration out' "
                                           "canceled by client")})
    with pytest.raises(exception.MigrationJobCancelled) as info:
        migration.migrate(host, aborted, 'src', 'uuid-1', 'qemu+tcp://d/system', None, {})
    assert 'uuid-1' in str(info.value) and 'src' in str(info.value)
    failed = FakeDomain(errors={'migrateToURI3': _error(
        libvirt.VIR_ERR_OPERATION_FAILED, 'operation failed: job \n  was broken')})
    with pytest.raises(exception.MigrationJobFailed) as info:
        migration.migrate(host, failed, 'src', 'uuid-1', 'qemu+tcp://d/system', None, {})
    assert not isinstance(info.value, exception.MigrationJobCancelled)
    assert 'operation failed: job was broken' in str(info.value)


def test_libvirt_refusing_shared_disks_names_the_option_that_decides(host):
    unsafe = FakeDomain(errors={'migrateToURI3': _error(
        libvirt.VIR_ERR_MIGRATE_UNSAFE, 'Unsafe migration: Migration without shared '
                                        'storage is unsafe')})
    with pytest.raises(exception.MigrationJobFailed) as info:
        migration.migrate(host, unsafe, 'src', 'uuid-1', 'qemu+tcp://d/system', None, {})
    assert 'Migration without shared storage is unsafe' in str(info.value)
    assert '[libvirt] trust_shared_pools = true' in str(info.value)


AGENT_XML = """<domain type='qemu'><devices>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'
   state='%s'/></channel>
  <serial type='file'><target port='0'/></serial>
</devices></domain>"""


class FakeAgentDomain:
    def __init__(self, xml):
        self.xml = xml

    def XMLDesc(self, flags=0):
        return self.xml


@pytest.mark.parametrize('xml, connected', [
    (AGENT_XML % 'connected', True),
    (AGENT_XML % 'disconnected', False),      # the guest never opened its port
    ("<domain><devices><serial type='file'/></devices></domain>", False),
])
def test_a_guest_agent_counts_once_the_guest_opened_its_channel(host, xml, connected):
    assert host.guest_agent_connected(FakeAgentDomain(xml)) is connected


def test_the_guest_agent_ping_is_a_bounded_guest_ping(host, monkeypatch):
    sent = []
    monkeypatch.setattr(libvirt_host.libvirt_qemu, 'qemuAgentCommand',
                        lambda dom, command, timeout, flags: sent.append(
                            (command, timeout)) or '{"return": {}}')
    host.ping_guest_agent(FakeAgentDomain(''), 5)
    assert sent == [('{"execute": "guest-ping"}', 5)]
