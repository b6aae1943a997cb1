"""A destination agent that restarts keeps the claims of migrations in flight towards it.

Claims live in the agent's memory; a restarted agent learns them again from the
conductor (``list_host_claims``) right after it registers. The migration towards the
restarted host is held ``queued`` (its source already runs its maximum of outgoing
migrations): claimed and prepared, not started, so nothing on the destination but the
claim reserves its room. The conductor and the simulated agents run in this process,
on the fake transport and SQLite (the ``cloud`` fixture of test_live_migration).
"""

from compute_agent import service as agent_service
from tests.functional import test_live_migration as live

cloud = live.cloud   # the fixture, shared

GUEST_MB = 4096


def restart_agent(cloud, host):
    """Stop the agent of ``host`` and start a new one over the same simulated host."""
    old = cloud.agents[host]
    old.stop()
    new = agent_service.AgentService(cloud.conf, host, old.driver)
    new.start(register_timeout=30)
    cloud.service.agents[cloud.service.agents.index(old)] = new   # stopped at teardown
    cloud.agents[host] = new
    return new


def test_restarted_destination_keeps_the_claim_of_a_migration_in_flight(cloud):
    cloud.conf.set_override('max_outbound_per_host', 1, group='conductor')
    # sim-2 has room for exactly one more guest of GUEST_MB (and 1024 MiB to spare).
    sim2 = cloud.agents['sim-2']
    room = (sim2.driver.get_host_inventory()['memory_mb']
            - cloud.conf.agent.reserved_host_memory_mb)
    live.add_guest(cloud, 'sim-2', 'filler', memory_mb=room - GUEST_MB - 1024)
    # sim-1 is busy with a migration that does not converge: the next one queues.
    busy = live.add_stubborn_guest(cloud, 'sim-1', 'g-busy')
    busy_uuid = cloud.conductor.live_migrate(cloud.admin, busy, host='sim-3').uuid
    live.wait_for(cloud, busy_uuid, statuses=('running',))
    held = live.add_guest(cloud, 'sim-1', 'g-held', memory_mb=GUEST_MB, vcpus=2)
    held_uuid = cloud.conductor.live_migrate(cloud.admin, held, host='sim-2').uuid
    assert live.wait_for(cloud, held_uuid,
                         statuses=('queued',) + live.TERMINAL).status == 'queued'
    expected = [{'migration_uuid': held_uuid, 'instance_uuid': held, 'host': 'sim-2',
                 'memory_mb': GUEST_MB, 'vcpus': 2}]
    assert sim2.manager.tracker.claims() == expected

    restarted = restart_agent(cloud, 'sim-2')
    assert restarted.manager.tracker is not sim2.manager.tracker
    assert restarted.manager.tracker.claims() == expected
    assert cloud.conductor.get_migration(cloud.admin, held_uuid).status == 'queued'

    # Another guest forced onto sim-2 (no scheduler filter) would fit in the 5 GiB left
    # there if the restarted agent had forgotten the claim; it does not.
    other = live.add_guest(cloud, 'sim-3', 'g-other', memory_mb=GUEST_MB)
    refused = live.wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, other, host='sim-2', force=True).uuid)
    assert refused.status == 'failed'
    assert (refused.error.code, refused.error.host) == ('insufficient_resources', 'sim-2')
    assert 'free 1024' in refused.error.message
    assert live.where(cloud, other) == {'sim-3': 'running'}
    assert restarted.manager.tracker.claims() == expected

    # Once sim-1 is free the held migration runs and ends; the restored claim goes.
    cloud.conductor.abort_migration(cloud.admin, busy_uuid)
    assert live.wait_for(cloud, busy_uuid).status == 'cancelled'
    migration = live.wait_for(cloud, held_uuid)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, held) == {'sim-2': 'running'}
    assert restarted.manager.tracker.claims() == []
    assert live.claims(cloud) == {}
