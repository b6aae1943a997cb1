"""Two real agents report two real lab hosts and their guests to a real conductor.

Everything is a separate process, as deployed: the conductor (MariaDB store, RabbitMQ
transport), one ``migration-compute-agent`` per lab host (each reaching its own libvirtd
over TCP, with no database settings at all), and ``migctl`` as the operator's client.
"""

import pytest

from tests.integration import conftest as int_conftest

HEARTBEAT = 2


@pytest.fixture(scope='module')
def lab():
    with int_conftest.running_lab('/var/tmp/mc-int-agents-lab', 16820, 'int-') as lab:
        hosts = lab.hosts()
        guests = [lab.start_guest('int-guest-%d' % i, host.name, memory_mib=256,
                                  touch_mib=16, dirty_pps=50)
                  for i, host in enumerate(hosts, start=1)]
        yield lab, hosts, guests


@pytest.fixture(scope='module')
def deployment(lab, tmp_path_factory, mariadb_url):
    """Conductor and two agents as processes; yields (migctl, processes)."""
    _lab, hosts, _guests = lab
    cloud = int_conftest.Deployment(hosts, tmp_path_factory.mktemp('deployment'),
                                    heartbeat=HEARTBEAT)
    try:
        cloud.start(mariadb_url)
        yield cloud.migctl, list(cloud.processes.values())
    finally:
        cloud.stop()


def _eventually(fetch, predicate, timeout=60):
    return int_conftest.eventually(fetch, predicate, timeout=timeout)


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
