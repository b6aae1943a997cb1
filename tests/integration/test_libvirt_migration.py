"""The libvirt virt driver on real lab hosts: inventory, CPU check and live migrations.

Two lab hosts of its own (``virt-1``/``virt-2``, ports 16841-16842, state dir
``/var/tmp/mc-virt-lab``) start once for the module, with one LibvirtDriver per host as
an agent would have. The tests run in file order: a light guest migrates while the
source's job statistics are watched; then one busy guest that never converges in pre-copy
(LAB.md: 512 MiB dirtying 256 MiB at 100,000 pages/s, sent at 32 MiB/s) is migrated
twice: aborted after 3 s, then forced to complete by pausing it after 3 s, each time
while four threads keep reading its state and job statistics. At most one
busy guest runs at a time (TCG costs a core per busy guest on a 2-core machine). The lab
is stopped at the end, and nothing of it is left running.

Missing prerequisites (root, libvirt, QEMU, libvirt-python) make the tests FAIL.
"""

import os
import threading
import time

import pytest

from compute_agent.virt.libvirt import driver as libvirt_driver
from migration_conductor import exception
from tests.integration import conftest as int_conftest
from tools import lab as lab_api

pytestmark = pytest.mark.timeout(300)

STATE_DIR = '/var/tmp/mc-virt-lab'
BASE_PORT = 16840
PREFIX = 'virt-'
# NOTE: a quiet guest. On this kind of machine a TCG guest that keeps dirtying memory
# during a bandwidth-limited pre-copy sometimes crashes on the destination right after
# the switch-over (kernel oops in its timer code: pages it wrote were not carried over),
# with plain libvirt-python calls as well, so a QEMU/TCG problem, not the driver's.
# Seen: 64 MiB touched, 500 pages/s, 32 MiB/s: 20 crashes in 23 migrations; 32 MiB,
# 500 pages/s, 64 MiB/s: 1 in 8; 32 MiB, no dirtying, 64 MiB/s: none in 6.
LIGHT = dict(memory_mib=256, touch_mib=32, dirty_pps=0)
BUSY = dict(memory_mib=512, touch_mib=256, dirty_pps=100000)     # never converges
MIGRATION_TIMEOUT = 120
OPTIONS = {'listen_address': '127.0.0.1', 'max_downtime_ms': 300,
           'block_migration': False, 'auto_converge': False, 'postcopy': False}
MIGRATE_URI = lab_api.migration_params()['migrate_uri']

TIMINGS = {}


@pytest.fixture(scope='module')
def lab():
    try:
        with int_conftest.running_lab(STATE_DIR, BASE_PORT, PREFIX) as lab:
            yield lab
    finally:
        print('timings: %s' % ', '.join('%s %.1fs' % item for item in TIMINGS.items()))


@pytest.fixture(scope='module')
def hosts(lab):
    return lab.hosts()


@pytest.fixture(scope='module')
def drivers(hosts):
    made = [libvirt_driver.LibvirtDriver(h.name, h.uri) for h in hosts]
    for drv in made:
        drv.init_host()
    yield made
    for drv in made:
        drv.cleanup()


class Migration:
    """LibvirtDriver.live_migrate in a thread, as the agent runs it."""

    def __init__(self, source, dest_host, instance_uuid, **options):
        self.source = source
        self.instance_uuid = instance_uuid
        self.outcome = {}
        self.thread = threading.Thread(
            target=self._run, args=(dest_host.uri, dict(OPTIONS, **options)),
            daemon=True)
        self.started = time.monotonic()
        self.took = None
        self.thread.start()

    def _run(self, dest_uri, options):
        try:
            self.source.live_migrate(self.instance_uuid, dest_uri, MIGRATE_URI, options)
            self.outcome['ok'] = True
        except Exception as exc:  # inspected by the test
            self.outcome['error'] = exc
        self.took = time.monotonic() - self.started

    def wait_running(self, timeout=30):
        """Wait until the source's job statistics show the running job."""
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and time.monotonic() < deadline:
            stats = self.source.get_job_stats(self.instance_uuid)
            if stats and stats['type'] == 'unbounded':
                return stats
            time.sleep(0.1)
        pytest.fail('the migration job of %s did not show up (outcome %s)'
                    % (self.instance_uuid, self.outcome))

    def join(self):
        self.thread.join(MIGRATION_TIMEOUT)
        if self.thread.is_alive():
            self.source.abort_job(self.instance_uuid)
            pytest.fail('migration of %s did not end within %ds'
                        % (self.instance_uuid, MIGRATION_TIMEOUT))
        return self.outcome


def test_inventory_names_each_host(hosts, drivers):
    for host, drv in zip(hosts, drivers):
        inventory = drv.get_host_inventory()
        assert inventory['libvirt_uri'] == host.uri
        assert inventory['host_uuid'] == host.host_uuid
        assert inventory['hypervisor_type'] == 'QEMU'
        assert inventory['cpu_arch'] == 'x86_64'
        assert inventory['cpu_xml'].startswith('<cpu>')
        assert inventory['memory_mb'] > inventory['memory_mb_free'] > 0
        assert drv.list_instances() == []


def test_cpu_check_accepts_the_other_host_and_refuses_foreign_cpus(drivers):
    first, second = drivers
    first_cpu = first.get_host_inventory()['cpu_xml']
    assert second.check_cpu_compatible(first_cpu) is None
    assert first.check_cpu_compatible(second.get_host_inventory()['cpu_xml']) is None
    assert first.check_cpu_compatible(None) is None
    vendor = first.get_host_inventory()['cpu_vendor']
    other = 'AMD' if vendor == 'Intel' else 'Intel'
    foreign = {
        'arch': '<cpu><arch>aarch64</arch><model>cortex-a57</model></cpu>',
        'vendor': first_cpu.replace('<vendor>%s</vendor>' % vendor,
                                    '<vendor>%s</vendor>' % other),
        'nonsense': 'this is not a CPU',
    }
    reasons = {}
    for what, cpu_xml in foreign.items():
        with pytest.raises(exception.CPUIncompatible) as info:
            second.check_cpu_compatible(cpu_xml)
        assert second.host in str(info.value), what
        reasons[what] = info.value.kwargs['reason']
    print(reasons)
    assert 'arch' in reasons['arch']
    assert 'vendor' in reasons['vendor']


def test_live_migration_moves_a_beating_guest(lab, hosts, drivers):
    source, dest = drivers
    guest = lab.start_guest('virt-light', hosts[0].name, **LIGHT)
    instance = guest.uuid
    assert source.get_instance(instance)['power_state'] == 'running'
    assert source.get_completed_job_stats(instance) is None
    before = int_conftest.last_heartbeat_seq(lab, 'virt-light')
    migration = Migration(source, hosts[1], instance, bandwidth_mib=64)
    samples, incoming = [], set()
    while migration.thread.is_alive():
        stats = source.get_job_stats(instance)
        if stats is not None:
            samples.append(stats)
        incoming.add(dest.find_instance(instance))
        dest_stats = dest.get_job_stats(instance)
        assert dest_stats is None or dest_stats['type'] in ('unbounded', 'none')
        # The job lasts about a second (mostly zero pages): sample often enough to see
        # it several times even on a loaded machine.
        time.sleep(0.05)
    assert migration.join() == {'ok': True}
    TIMINGS['light migration'] = migration.took

    # (While QEMU sets the job up, libvirt shows it with all values 0.)
    running = [s for s in samples if s['type'] == 'unbounded' and s['memory_total']]
    assert len(running) >= 3, samples
    processed = [s['memory_processed'] for s in running]
    assert processed == sorted(processed) and processed[-1] > processed[0], processed
    # Guest RAM plus QEMU's other RAM blocks (ROMs): a little more than 256 MiB.
    assert all(256 <= s['memory_total'] / 2 ** 20 < 260 for s in running), running[0]
    assert running[-1]['total_time_ms'] > running[0]['total_time_ms']
    assert 'paused' in incoming       # the destination's incoming copy while it ran

    assert source.find_instance(instance) is None
    assert source.get_job_stats(instance) is None
    assert dest.get_instance(instance)['power_state'] == 'running'
    after = int_conftest.wait_for_heartbeat_above(lab, 'virt-light', before)
    int_conftest.wait_for_heartbeat_above(lab, 'virt-light', after)
    assert dest.find_instance(instance) == 'running', (
        'the guest died on the destination after the migration (see LIGHT above): see '
        '%s' % lab.console_path('virt-light'))
    seqs = [seq for seq, _ in lab.heartbeats('virt-light')]
    assert seqs == list(range(1, len(seqs) + 1))     # one unbroken sequence

    # The destination keeps the completed job's statistics, and reading keeps them.
    stats = dest.get_completed_job_stats(instance)
    assert stats == dest.get_completed_job_stats(instance)
    assert stats['type'] == 'completed'
    assert stats['downtime_ms'] is not None and 0 <= stats['downtime_ms'] < 5000
    assert stats['memory_processed'] > 32 * 1024 * 1024   # at least what was touched
    assert stats['memory_remaining'] == 0
    print('light guest: migrated in %.1fs (libvirt: %d ms, downtime %d ms, %d MiB sent, '
          '%d iterations)' % (migration.took, stats['total_time_ms'], stats['downtime_ms'],
                              stats['memory_processed'] // 2 ** 20, stats['iteration']))
    assert dest.destroy_instance(instance) is True
    assert dest.find_instance(instance) is None
    assert dest.destroy_instance(instance) is False


def test_disk_sizes_and_pool_room_are_what_the_file_system_says(lab, hosts, drivers):
    """What a block migration's room check reads: the allocation of a guest's disk in
    the source's mc-local pool, and the free bytes of the destination's mc-local pool."""
    source, dest = drivers
    guest = lab.start_guest('virt-disk', hosts[0].name, disk_pool='mc-local', **LIGHT)
    try:
        [disk] = source.get_instance_disks(guest.uuid)
        images = [lab.config.private_dir(h.name, '/var/lib/libvirt') + '/images'
                  for h in hosts]
        assert disk['path'] == '/var/lib/libvirt/images/virt-disk.img'
        assert disk['allocation'] == os.stat(
            os.path.join(images[0], 'virt-disk.img')).st_blocks * 512
        room = os.statvfs(images[1])
        free = dest.pool_free_bytes(os.path.dirname(disk['path']))
        # libvirt counts a dir pool's free blocks, those reserved for root included;
        # other writers on this file system may move it a little between the two reads.
        assert abs(free - room.f_bfree * room.f_frsize) < 16 * 2 ** 20
        assert dest.pool_free_bytes('/nowhere') is None
    finally:
        lab.stop_guest('virt-disk')


@pytest.fixture(scope='module')
def busy_guest(lab, hosts):
    started = time.monotonic()
    guest = lab.start_guest('virt-busy', hosts[0].name, **BUSY)
    TIMINGS['busy guest boot'] = time.monotonic() - started
    return guest


def read_while_it_runs(driver, instance_uuid, seconds=3, readers=4):
    """Read the guest's state and job statistics from ``readers`` threads at once for
    ``seconds`` while its migration job runs; return how many reads were answered.

    NOTE: libvirt 9.0's client once left such reads unanswered until the job ended
    when the job shared their connection (README: the libvirt client stall); any read
    that fails or is still waiting fails the test.
    """
    answered, failures = [], []
    deadline = time.monotonic() + seconds

    def read():
        count = 0
        try:
            while time.monotonic() < deadline:
                driver.find_instance(instance_uuid)
                driver.get_job_stats(instance_uuid)
                count += 1
        except Exception as exc:  # reported below
            failures.append(exc)
        answered.append(count)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck and not failures, (
        '%d reader(s) still waiting, failures: %s' % (stuck, failures))
    return sum(answered)


def test_abort_keeps_a_non_converging_guest_on_the_source(lab, hosts, drivers,
                                                          busy_guest):
    source, dest = drivers
    instance = busy_guest.uuid
    before = int_conftest.last_heartbeat_seq(lab, 'virt-busy')
    migration = Migration(source, hosts[1], instance, bandwidth_mib=32)
    migration.wait_running()
    assert read_while_it_runs(source, instance) > 0
    stats = source.get_job_stats(instance)
    assert stats['type'] == 'unbounded' and stats['memory_remaining'] > 0
    started = time.monotonic()
    assert source.abort_job(instance) is True
    outcome = migration.join()
    TIMINGS['abort to end'] = time.monotonic() - started
    TIMINGS['aborted migration'] = migration.took
    assert isinstance(outcome.get('error'), exception.MigrationJobCancelled), outcome
    assert source.find_instance(instance) == 'running'
    assert dest.find_instance(instance) is None
    assert source.get_job_stats(instance)['type'] == 'none'
    assert source.abort_job(instance) is False
    int_conftest.wait_for_heartbeat_above(
        lab, 'virt-busy', max(before, int_conftest.last_heartbeat_seq(lab, 'virt-busy')))


def test_pausing_forces_a_non_converging_migration_to_complete(lab, hosts, drivers,
                                                               busy_guest):
    source, dest = drivers
    instance = busy_guest.uuid
    migration = Migration(source, hosts[1], instance, bandwidth_mib=32)
    migration.wait_running()
    assert read_while_it_runs(source, instance) > 0
    assert migration.thread.is_alive()
    source.pause_instance(instance)
    assert source.find_instance(instance) == 'paused'
    paused_seq = int_conftest.last_heartbeat_seq(lab, 'virt-busy')
    assert migration.join() == {'ok': True}
    TIMINGS['force-completed migration'] = migration.took
    assert source.find_instance(instance) is None
    # NOTE: libvirt resumes the guest on the destination at the end, because it was
    # running when the job started (only a guest paused before the job stays paused).
    assert dest.find_instance(instance) == 'running'
    dest.resume_instance(instance)   # what the agent does after a force-complete: no-op
    assert dest.find_instance(instance) == 'running'
    int_conftest.wait_for_heartbeat_above(lab, 'virt-busy', paused_seq)
    stats = dest.get_completed_job_stats(instance)
    assert stats['type'] == 'completed'
    # Paused during the whole rest of the copy: the downtime is long.
    assert stats['downtime_ms'] > 1000
    print('busy guest: force-completed in %.1fs (downtime %d ms, %d MiB sent)'
          % (migration.took, stats['downtime_ms'], stats['memory_processed'] // 2 ** 20))


def test_stop_leaves_nothing_running(lab, drivers):
    lab.stop()
    assert not any(h.running for h in lab.hosts())
    assert lab.guests() == []
