"""Policy over RPC: a compute agent's service context may report, and nothing more.

Runs the all-in-one mode in this process (in-process transport, SQLite), as
:mod:`tests.functional.conftest` sets it up: the conductor checks each call's context
when the call arrives over RPC, so these tests see what a compute agent would see. A
refused call must change nothing: each runs next to a migration that is running and a
guest that could be migrated, and the test compares the whole visible state before and
after.
"""

import time
import uuid as uuidlib

import pytest

from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import objects

TERMINAL = ('completed', 'cancelled', 'failed', 'error')


def _register(aio, host):
    # A registration is a call: the conductor has recorded the guests when it returns.
    aio.conductor.register_host(aio.admin, aio.agents[host].manager.build_host_report())


def _wait_for(aio, migration_uuid, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        migration = aio.conductor.get_migration(aio.admin, migration_uuid)
        if migration.status in statuses:
            return migration
        assert time.monotonic() < deadline, 'still %s' % migration.status
        time.sleep(0.02)


class Scene:
    """A running migration (of a guest that never converges) and an idle guest."""

    def __init__(self, aio):
        self.aio = aio
        # Read at each step: the flow polls and the simulated job moves faster.
        aio.conf.set_override('monitor_interval', 0.05, group='conductor')
        aio.conf.set_override('time_scale', 0.02, group='simulated')
        sim1 = aio.agents['sim-1']
        # 4 GiB dirtied faster than the simulated link: pre-copy never converges, so
        # the migration stays ``running`` until someone aborts or force-completes it.
        self.moving = sim1.driver.add_domain('g-moving', memory_mb=4096,
                                             dirty_rate_mib=4096)
        self.idle = sim1.driver.add_domain('g-idle')
        _register(aio, 'sim-1')
        self.migration = aio.conductor.live_migrate(
            aio.admin, self.moving, host='sim-2').uuid
        _wait_for(aio, self.migration, ('running',))

    def snapshot(self):
        """Everything a refused call could have changed, as the admin sees it."""
        aio, admin = self.aio, self.aio.admin
        return {
            'migrations': sorted(
                (m.uuid, m.instance_uuid, m.status, m.source_host, m.dest_host)
                for m in aio.conductor.list_migrations(admin)),
            'instances': sorted((i.uuid, i.host, i.task_state)
                                for i in aio.conductor.list_instances(admin)),
            'hosts': sorted((h.host, h.enabled) for h in aio.conductor.list_hosts(admin)),
            'guests': {(host, guest): agent.driver.find_instance(guest)
                       for host, agent in aio.agents.items()
                       for guest in (self.moving, self.idle)},
            'claims': {host: agent.manager.tracker.claims()
                       for host, agent in aio.agents.items()},
        }

    def end(self):
        self.aio.conductor.abort_migration(self.aio.admin, self.migration)
        assert _wait_for(self.aio, self.migration, TERMINAL).status == 'cancelled'


@pytest.fixture
def scene(aio):
    scene = Scene(aio)
    yield scene
    scene.end()


# method, rule it checks, arguments from the scene
OPERATOR_CALLS = {
    'list_hosts': ('list_hosts', 'migration_conductor:host:list', lambda s: {}),
    'get_host': ('get_host', 'migration_conductor:host:get', lambda s: {'host': 'sim-1'}),
    'list_instances': ('list_instances', 'migration_conductor:instance:list',
                       lambda s: {}),
    'live_migrate': ('live_migrate', 'migration_conductor:migration:create',
                     lambda s: {'instance_uuid': s.idle}),
    'live_migrate to a host': ('live_migrate', 'migration_conductor:migration:create',
                               lambda s: {'instance_uuid': s.idle, 'host': 'sim-2'}),
    'list_migrations': ('list_migrations', 'migration_conductor:migration:list',
                        lambda s: {}),
    'get_migration': ('get_migration', 'migration_conductor:migration:get',
                      lambda s: {'migration_uuid': s.migration}),
    'abort_migration': ('abort_migration', 'migration_conductor:migration:abort',
                        lambda s: {'migration_uuid': s.migration}),
    'force_complete_migration': (
        'force_complete_migration', 'migration_conductor:migration:force_complete',
        lambda s: {'migration_uuid': s.migration}),
}


@pytest.mark.parametrize('call', list(OPERATOR_CALLS))
def test_service_context_is_refused_operator_calls_and_changes_nothing(scene, call):
    method, rule, arguments = OPERATOR_CALLS[call]
    service = mc_context.get_service_context()
    before = scene.snapshot()
    with pytest.raises(exception.PolicyNotAuthorized) as info:
        getattr(scene.aio.conductor, method)(service, **arguments(scene))
    assert rule in str(info.value)     # refused by policy, not for its arguments
    assert scene.snapshot() == before


def _report_of_a_new_host(aio, host, guest_uuid):
    """sim-1's inventory renamed to ``host``, with one guest: no agent reports it."""
    report = aio.agents['sim-1'].manager.build_host_report()
    report.host.host = host
    report.host.host_uuid = str(uuidlib.uuid4())
    report.host.libvirt_uri = 'simulated://' + host
    report.instances = objects.InstanceList(objects=[objects.Instance(
        uuid=guest_uuid, name='g-reported', host=host, power_state='running',
        memory_mb=256, vcpus=1)])
    return report


def test_service_context_may_register_and_report(aio):
    service = mc_context.get_service_context()
    guest = str(uuidlib.uuid4())

    host = aio.conductor.register_host(service, _report_of_a_new_host(aio, 'sim-9', guest))
    assert (host.host, host.up) == ('sim-9', True)
    assert aio.conductor.get_host(aio.admin, 'sim-9').host == 'sim-9'
    assert [i.uuid for i in aio.conductor.list_instances(aio.admin, host='sim-9')] == [
        guest]

    # A heartbeat is a cast: its refusal would be silent, so look for its effect.
    # Nothing but this test reports sim-9; the guest stops running there.
    report = _report_of_a_new_host(aio, 'sim-9', guest)
    report.instances[0].power_state = 'paused'
    aio.conductor.report_host_state(service, report)
    deadline = time.monotonic() + 10
    while aio.conductor.list_instances(aio.admin, host='sim-9')[0].power_state != 'paused':
        assert time.monotonic() < deadline, 'the heartbeat of sim-9 was not recorded'
        time.sleep(0.05)

    assert aio.conductor.list_host_claims(service, 'sim-9') == []
