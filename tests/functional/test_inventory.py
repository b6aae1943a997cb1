"""Agents register and heartbeat; the conductor keeps hosts and instances from reports.

Runs the all-in-one mode in this process (in-process transport, SQLite): the conductor
and two agents with simulated drivers talk over RPC as separate services would.
"""

import time

import pytest

from migration_conductor import context as mc_context
from migration_conductor import exception


def _instances(aio, host=None):
    return {i.uuid: i for i in aio.conductor.list_instances(aio.admin, host=host)}


def _eventually(aio, predicate, timeout=10):
    """Heartbeats are casts: poll the conductor until ``predicate(instances)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        instances = _instances(aio)
        if predicate(instances):
            return instances
        assert time.monotonic() < deadline, 'conductor state never matched: %s' % (
            {u: (i.host, i.power_state) for u, i in instances.items()})
        time.sleep(0.05)


def test_agents_register_with_inventory(aio):
    hosts = {h.host: h for h in aio.conductor.list_hosts(aio.admin)}
    assert sorted(hosts) == ['sim-1', 'sim-2']
    for host in hosts.values():
        assert host.up is True
        assert host.enabled is True
        assert host.hypervisor_type == 'QEMU'
        assert host.memory_mb == aio.conf.simulated.memory_mb
        assert host.vcpus == aio.conf.simulated.vcpus
        assert host.libvirt_uri == 'simulated://' + host.host
        assert host.last_heartbeat is not None
    assert hosts['sim-1'].host_uuid != hosts['sim-2'].host_uuid


def test_heartbeat_reports_domains_as_instances(aio):
    sim1 = aio.agents['sim-1']
    uuid = sim1.driver.add_domain('guest-a', memory_mb=512, vcpus=2)
    sim1.report_now()
    instance = _eventually(aio, lambda found: uuid in found)[uuid]
    assert (instance.name, instance.host, instance.power_state) == (
        'guest-a', 'sim-1', 'running')
    assert (instance.memory_mb, instance.vcpus) == (512, 2)
    assert list(_instances(aio, host='sim-2')) == []


def test_domain_gone_from_its_host_becomes_missing(aio):
    sim1 = aio.agents['sim-1']
    uuid = sim1.driver.add_domain('guest-b')
    sim1.report_now()
    _eventually(aio, lambda found: uuid in found)
    sim1.driver.remove_domain(uuid)
    sim1.report_now()
    _eventually(aio, lambda found: found[uuid].power_state == 'missing')


def test_running_copy_on_another_host_moves_the_instance(aio):
    sim1, sim2 = aio.agents['sim-1'], aio.agents['sim-2']
    uuid = sim1.driver.add_domain('guest-c')
    sim1.report_now()
    _eventually(aio, lambda found: uuid in found)
    # An incoming, paused copy does not take the instance from a host that runs it:
    # the report is applied (the agent's get_host_report call proves the domain is
    # there) and the instance stays.
    sim2.driver.add_domain('guest-c', uuid=uuid, power_state='paused')
    aio.conductor.register_host(aio.admin, sim2.manager.build_host_report())
    assert _instances(aio)[uuid].host == 'sim-1'
    # Once the source no longer has it and the destination runs it, it moves.
    sim1.driver.remove_domain(uuid)
    sim2.driver.remove_domain(uuid)
    sim2.driver.add_domain('guest-c', uuid=uuid, power_state='running')
    sim2.report_now()
    _eventually(aio, lambda found: found[uuid].host == 'sim-2')


def test_unknown_host_is_a_typed_error(aio):
    with pytest.raises(exception.HostNotFound) as info:
        aio.conductor.get_host(aio.admin, 'no-such-host')
    assert 'no-such-host' in str(info.value)
    with pytest.raises(exception.HostNotFound):
        aio.conductor.list_instances(aio.admin, host='no-such-host')


def test_non_admin_is_refused_and_nothing_is_returned(aio):
    member = mc_context.RequestContext(user_id='u', project_id='p', roles=['member'])
    with pytest.raises(exception.PolicyNotAuthorized) as info:
        aio.conductor.list_hosts(member)
    assert 'migration_conductor:host:list' in str(info.value)
    with pytest.raises(exception.PolicyNotAuthorized):
        aio.conductor.register_host(member, aio.agents['sim-1'].manager.build_host_report())


def test_conductor_calls_an_agent_by_host_name(aio):
    from compute_agent import rpcapi as agent_rpcapi
    sim2 = aio.agents['sim-2']
    uuid = sim2.driver.add_domain('guest-d')
    report = agent_rpcapi.AgentAPI(aio.conf).get_host_report(aio.admin, 'sim-2')
    assert report.host.host == 'sim-2'
    assert [i.uuid for i in report.instances] == [uuid]
