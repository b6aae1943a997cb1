"""Two real agents report two real lab hosts and their guests to a real conductor.

Everything is a separate process, as deployed: the conductor (MariaDB store, RabbitMQ
transport), one ``migration-compute-agent`` per lab host (each reaching its own libvirtd
over TCP, with no database settings at all), and ``migctl`` as the operator's client.
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests import db_fixtures
from tests.integration import conftest as int_conftest
from tools import lab as lab_tools

BIN = os.path.dirname(sys.executable)
HEARTBEAT = 2


@pytest.fixture(scope='module')
def lab():
    lab = lab_tools.Lab(state_dir='/var/tmp/mc-int-agents-lab', base_port=16820,
                        host_prefix='int-')
    lab.install()
    hosts = lab.start(n_hosts=2)
    guests = [lab.start_guest('int-guest-%d' % i, host.name, memory_mib=256,
                              touch_mib=16, dirty_pps=50)
              for i, host in enumerate(hosts, start=1)]
    try:
        yield lab, hosts, guests
    finally:
        lab.stop()


@pytest.fixture(scope='module')
def deployment(lab, tmp_path_factory):
    """Conductor and two agents as processes; yields a function that runs migctl."""
    _lab, hosts, _guests = lab
    transport = int_conftest.require_rabbitmq()
    suffix = uuid.uuid4().hex[:8]
    common = ('[DEFAULT]\ntransport_url = %s\n[conductor]\ntopic = mc_int_%s\n'
              '[agent]\ntopic = mc_int_agent_%s\nheartbeat_interval = %d\n'
              % (transport, suffix, suffix, HEARTBEAT))
    work = tmp_path_factory.mktemp('deployment')
    processes = []
    with db_fixtures.throwaway_database('mysql') as db_url:
        conductor_conf = work / 'conductor.conf'
        conductor_conf.write_text(common + '[database]\nconnection = %s\n' % db_url)
        upgrade = subprocess.run([os.path.join(BIN, 'migration-conductor-manage'),
                                  '--config-file', str(conductor_conf), 'db', 'upgrade'],
                                 capture_output=True, text=True, timeout=120)
        assert upgrade.returncode == 0, upgrade.stderr
        try:
            conductor = _spawn('migration-conductor', conductor_conf, work)
            processes.append(conductor)
            # A call sent before the conductor has declared its queue is dropped by
            # RabbitMQ: wait until it serves before anyone calls it.
            _wait_for_log(conductor, work / 'migration-conductor-conductor.log',
                          'Conductor serving on topic')
            for host in hosts:
                agent_conf = work / ('agent-%s.conf' % host.name)
                # No [database] section: agents hold no database credentials.
                agent_conf.write_text(common.replace(
                    '[DEFAULT]\n', '[DEFAULT]\nhost = %s\n' % host.name) +
                    '[libvirt]\nconnection_uri = %s\n' % host.uri)
                processes.append(_spawn('migration-compute-agent', agent_conf, work))
            client_conf = work / 'migctl.conf'
            client_conf.write_text(common)
            yield lambda *args: _migctl(client_conf, *args), processes
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def _spawn(prog, config, work):
    log = open(work / ('%s-%s.log' % (prog, config.stem)), 'w')
    return subprocess.Popen([os.path.join(BIN, prog), '--config-file', str(config)],
                            stdout=log, stderr=subprocess.STDOUT)


def _wait_for_log(process, path, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert process.poll() is None, 'exited: %s' % path.read_text()[-2000:]
        assert time.monotonic() < deadline, 'no %r in %s' % (text, path)
        time.sleep(0.2)


def _migctl(config, *args):
    result = subprocess.run([os.path.join(BIN, 'migctl'), '--config-file', str(config)]
                            + list(args) + ['-f', 'json'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _eventually(fetch, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        assert time.monotonic() < deadline, 'never matched: %s' % (value,)
        time.sleep(1)


def test_both_lab_hosts_registered_and_up(lab, deployment):
    _lab, hosts, _guests = lab
    migctl, processes = deployment
    listed = _eventually(lambda: migctl('host', 'list'),
                         lambda rows: sorted(r['host'] for r in rows if r['up']) ==
                         sorted(h.name for h in hosts))
    for row in listed:
        assert row['hypervisor_type'] == 'QEMU'
        assert row['memory_mb'] > 0 and row['vcpus'] > 0
    shown = migctl('host', 'show', hosts[0].name)
    assert shown['libvirt_uri'] == hosts[0].uri
    assert all(p.poll() is None for p in processes), 'a service exited'


def test_guests_reported_on_their_hosts(lab, deployment):
    _lab, hosts, guests = lab
    migctl, _processes = deployment
    expected = {g.uuid: (g.name, g.host) for g in guests}
    rows = _eventually(lambda: migctl('instance', 'list'),
                       lambda rows: {r['uuid']: (r['name'], r['host']) for r in rows
                                     if r['power_state'] == 'running'} == expected)
    assert len(rows) == 2
    on_first = migctl('instance', 'list', '--host', hosts[0].name)
    assert [r['uuid'] for r in on_first] == [guests[0].uuid]


def test_a_guest_that_disappears_is_reported_missing(lab, deployment):
    the_lab, _hosts, guests = lab
    migctl, _processes = deployment
    gone = guests[1]
    _eventually(lambda: migctl('instance', 'list'),
                lambda rows: any(r['uuid'] == gone.uuid for r in rows))
    the_lab.stop_guest(gone.name)
    _eventually(lambda: migctl('instance', 'list'),
                lambda rows: {r['uuid']: r['power_state'] for r in rows}.get(gone.uuid)
                == 'missing')
