"""Integration tests of the lab (tools.lab) against real libvirt, QEMU and namespaces.

They start two lab hosts of their own (names ``tlab-1``/``tlab-2``, ports 16700+i, state dir
``/var/tmp/mclab-test``; override with MCLAB_TEST_STATE_DIR and MCLAB_TEST_BASE_PORT) so
they never collide with a lab started by hand on 16600+i. The hosts start once for the
module; the tests run in file order and the last one tears the lab down and checks that no
process and no mount is left.

Missing prerequisites (root, libvirt, QEMU, gcc, libvirt-python) make the tests FAIL with
a message naming what is missing: this module never skips.
"""

import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from tests.integration import conftest as int_conftest
from tools import lab as lab_api

pytestmark = pytest.mark.timeout(300)

STATE_DIR = os.environ.get('MCLAB_TEST_STATE_DIR', '/var/tmp/mclab-test')
BASE_PORT = int(os.environ.get('MCLAB_TEST_BASE_PORT', '16700'))
PREFIX = 'tlab-'
GUEST = 'tguest1'
# Small on purpose: under TCG a busy guest costs a whole core of this 2-core machine.
GUEST_SETTINGS = dict(memory_mib=256, touch_mib=32, dirty_pps=500)
MIGRATION_TIMEOUT = 120


def _lab_processes(state_dir, hosts_dir):
    """Live processes that belong to the lab: their /run is a host's run dir, or their
    command line mentions the state dir (QEMU's -kernel does)."""
    run_dirs = set()
    if os.path.isdir(hosts_dir):
        for name in os.listdir(hosts_dir):
            try:
                st = os.stat(os.path.join(hosts_dir, name, 'run'))
                run_dirs.add((st.st_dev, st.st_ino))
            except FileNotFoundError:
                pass
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        if int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    continue
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(errors='replace')
            st = None
            try:
                st = os.stat('/proc/%s/root/run' % pid)
            except OSError:
                pass
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state_dir in cmdline or (st is not None and (st.st_dev, st.st_ino) in run_dirs):
            found.append('%s %s' % (pid, cmdline[:120]))
    return found


def _lab_mounts(state_dir):
    found = []
    for pid in ['self'] + [p for p in os.listdir('/proc') if p.isdigit()]:
        try:
            with open('/proc/%s/mountinfo' % pid) as f:
                found += ['%s: %s' % (pid, line.strip()) for line in f if state_dir in line]
        except OSError:
            continue
    return found


@pytest.fixture(scope='module')
def lab():
    with int_conftest.running_lab(STATE_DIR, BASE_PORT, PREFIX) as lab:
        yield lab


@pytest.fixture(scope='module')
def hosts(lab):
    return lab.hosts()


def test_hosts_answer_with_their_own_identity(lab, hosts):
    assert [h.name for h in hosts] == ['tlab-1', 'tlab-2']
    assert [h.tcp_port for h in hosts] == [BASE_PORT + 1, BASE_PORT + 2]
    assert all(h.running and h.pid for h in hosts)
    seen_uuids = set()
    pool_uuids = {'mc-shared': set(), 'mc-local': set()}
    for host in hosts:
        assert host.uri == 'qemu+tcp://127.0.0.1:%d/system' % host.tcp_port
        conn = lab.open(host)
        try:
            assert conn.getHostname() == host.name
            caps = ET.fromstring(conn.getCapabilities())
            assert caps.findtext('host/uuid') == host.host_uuid
            seen_uuids.add(caps.findtext('host/uuid'))
            pools = {p.name(): p for p in conn.listAllStoragePools(0)}
            assert set(pools) >= {'mc-shared', 'mc-local'}
            assert all(pools[n].isActive() for n in ('mc-shared', 'mc-local'))
            shared = ET.fromstring(pools['mc-shared'].XMLDesc(0)).findtext('target/path')
            local = ET.fromstring(pools['mc-local'].XMLDesc(0)).findtext('target/path')
            assert shared == os.path.join(STATE_DIR, 'shared', 'pool')
            assert local == '/var/lib/libvirt/images'
            for name, uuids in pool_uuids.items():
                uuids.add(pools[name].UUIDString())
        finally:
            conn.close()
    assert len(seen_uuids) == 2
    # Shared storage is one pool UUID on every host; local storage one per host.
    assert len(pool_uuids['mc-shared']) == 1 and len(pool_uuids['mc-local']) == 2
    # Host UUIDs are stable per host name.
    assert hosts[0].host_uuid == lab_api.Lab(state_dir=STATE_DIR, base_port=BASE_PORT,
                                             host_prefix=PREFIX).hosts()[0].host_uuid


def test_hosts_resolve_their_own_name_without_dns(hosts):
    # libvirtd looks its hostname up for every migration while it holds the domain's
    # lock: the lookup must be answered by the host's /etc/hosts, never by DNS.
    for host in hosts:
        found = subprocess.run(
            ['nsenter', '--target', str(host.pid), '--mount', '--uts',
             'getent', '-s', 'files', 'hosts', host.name],
            capture_output=True, text=True, timeout=30, check=False)
        assert found.returncode == 0, (host.name, found.stdout, found.stderr)
        assert found.stdout.split() == ['127.0.0.1', host.name]


def test_start_twice_is_harmless(lab, hosts):
    again = lab.start(n_hosts=2)
    assert [(h.name, h.pid, h.running) for h in again] == \
        [(h.name, h.pid, True) for h in hosts]


def test_guest_runs_and_beats(lab, hosts):
    info = lab.start_guest(GUEST, hosts[0].name, **GUEST_SETTINGS)
    assert info.host == 'tlab-1'
    assert info.accelerator in ('kvm', 'tcg')
    assert info.accelerator == 'tcg'  # domain type='qemu' (see LAB.md)
    assert info.uuid == lab.config.guest_uuid(GUEST)
    first = lab.heartbeats(GUEST)[-1][0]
    time.sleep(3)
    later = int_conftest.wait_for_heartbeat_above(lab, GUEST, first)
    assert later >= first + 2
    line = lab.heartbeats(GUEST)[-1][1]
    assert line.startswith('mc-heartbeat seq=%d ' % lab.heartbeats(GUEST)[-1][0])
    assert 'touched_mib=32 dirty_pps=500' in line
    # Idempotent: the running guest is returned as it is.
    again = lab.start_guest(GUEST, hosts[0].name, **GUEST_SETTINGS)
    assert (again.uuid, again.host) == (info.uuid, info.host)
    listed = [g for g in lab.guests() if g.name == GUEST]
    assert [(g.host, g.state, g.accelerator) for g in listed] == [('tlab-1', 'running', 'tcg')]


def test_a_guest_disk_lives_in_the_pool_asked_for_and_goes_with_the_guest(lab, hosts):
    with pytest.raises(lab_api.GuestError, match="unknown disk pool 'nowhere'"):
        lab.start_guest('tdisk', hosts[0].name, disk_pool='nowhere', **GUEST_SETTINGS)
    lab.start_guest('tdisk', hosts[0].name, disk_pool='mc-local', **GUEST_SETTINGS)
    image = os.path.join(lab.config.private_dir('tlab-1', '/var/lib/libvirt'), 'images',
                         'tdisk.img')
    try:
        assert os.path.getsize(image) == 16 * 2 ** 20
        conn = lab.open(hosts[0])
        try:
            disk = ET.fromstring(conn.lookupByName('tdisk').XMLDesc(0)).find(
                'devices/disk')
            assert disk.find('source').get('file') == '/var/lib/libvirt/images/tdisk.img'
            assert disk.find('target').get('dev') == 'vda'
        finally:
            conn.close()
    finally:
        lab.stop_guest('tdisk')
    assert not os.path.exists(image)


def test_live_migration_keeps_the_guest_beating(lab, hosts):
    import libvirt

    source, dest = hosts
    before = lab.heartbeats(GUEST)[-1][0]
    conn = lab.open(source)
    try:
        dom = conn.lookupByName(GUEST)
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        params = {libvirt.VIR_MIGRATE_PARAM_URI: 'tcp://127.0.0.1',
                  libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: '127.0.0.1'}
        assert params == lab_api.migration_params()
        outcome = {}

        def migrate():
            try:
                dom.migrateToURI3(dest.uri, params, flags)
                outcome['ok'] = True
            except libvirt.libvirtError as exc:
                outcome['error'] = exc

        worker = threading.Thread(target=migrate, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(MIGRATION_TIMEOUT)
        if worker.is_alive():
            dom.abortJob()
            pytest.fail('migration of %s did not finish within %ds'
                        % (GUEST, MIGRATION_TIMEOUT))
        assert 'error' not in outcome, outcome.get('error')
        took = time.monotonic() - started
    finally:
        conn.close()
    after = int_conftest.wait_for_heartbeat_above(lab, GUEST, before)
    int_conftest.wait_for_heartbeat_above(lab, GUEST, after)
    listed = [g for g in lab.guests() if g.name == GUEST]
    assert [(g.host, g.state) for g in listed] == [('tlab-2', 'running')], listed
    assert listed[0].uuid == lab.config.guest_uuid(GUEST)
    # One unbroken sequence in one console file: no restart, no line lost at the switch.
    seqs = [seq for seq, _ in lab.heartbeats(GUEST)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    print('migration took %.1fs, heartbeat %d -> %d' % (took, before, seqs[-1]))


def test_stop_leaves_no_process_and_no_mount(lab, hosts):
    assert _lab_processes(STATE_DIR, lab.config.hosts_dir), 'the lab should be running here'
    lab.stop()
    assert _lab_processes(STATE_DIR, lab.config.hosts_dir) == []
    assert _lab_mounts(STATE_DIR) == []
    assert not any(h.running for h in lab.hosts())
    lab.stop()  # twice: harmless
    assert lab.guests() == []
