"""AgentService: the claims restored and the jobs watched again at registration, and a
conductor that cannot list them."""

import logging
import time
from unittest import mock

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from compute_agent import service
from compute_agent.virt import simulated
from migration_conductor import cmd
from migration_conductor import objects
from migration_conductor import rpc

HOST = 'restore-test-host'
CLAIM = {'migration_uuid': '11111111-0000-4000-8000-000000000001',
         'instance_uuid': '22222222-0000-4000-8000-000000000001',
         'memory_mb': 2048, 'vcpus': 2}


def listed(claims=(), outgoing=()):
    """The conductor's get_host_migrations answer."""
    return objects.HostMigrations(
        host=HOST, claims=objects.ResourceClaimList(objects=[
            objects.ResourceClaim.from_legacy(c, host=HOST) for c in claims]),
        outgoing=objects.MigrationJobList(objects=[
            objects.MigrationJob(migration_uuid=m, instance_uuid=i, host=HOST,
                                 state='running') for m, i in outgoing]),
        report_interval=0.05)


@pytest.fixture
def agent():
    """An agent (never started) whose conductor client is a mock."""
    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf([], project='migration-conductor-unit-tests')
    conf.set_override('claims_restore_timeout', 1, group='agent')
    driver = simulated.SimulatedDriver(HOST, conf)
    agent = service.AgentService(conf, HOST, driver)
    agent._conductor = agent.reporter._conductor = mock.Mock()
    agent._conductor.register_host.return_value = mock.Mock(enabled=True)
    try:
        yield agent
    finally:
        driver.cleanup()
        rpc.cleanup()


def test_registration_restores_the_claims_the_conductor_lists(agent):
    agent._conductor.get_host_migrations.return_value = listed([CLAIM])
    agent._register(timeout=1)
    assert agent.registered.is_set()
    agent._conductor.get_host_migrations.assert_called_once_with(
        agent._context, HOST, timeout=mock.ANY)
    assert agent.manager.tracker.claims() == [dict(CLAIM, host=HOST)]


def test_registration_watches_again_a_job_libvirt_still_runs(agent):
    """After a restart the agent's monitor reports the job the conductor lists as
    leaving this host, if libvirt runs it; a job that does not run is left alone."""
    running = agent.driver.add_domain('busy')
    idle = agent.driver.add_domain('idle')
    with mock.patch.object(agent.driver, 'get_job_stats', side_effect=lambda uuid: (
            dict(simulated.driver.empty_job_stats('unbounded'), memory_total=1)
            if uuid == running else simulated.driver.empty_job_stats('none'))):
        agent._conductor.get_host_migrations.return_value = listed(
            outgoing=[(CLAIM['migration_uuid'], running),
                      ('11111111-0000-4000-8000-000000000002', idle)])
        agent._register(timeout=1)
        assert agent.manager.jobs.watched() == [CLAIM['migration_uuid']]
        deadline = time.monotonic() + 5
        while not agent._conductor.migration_progress.called:
            assert time.monotonic() < deadline, 'no progress reported'
            time.sleep(0.02)
    job = agent._conductor.migration_progress.call_args[0][1]
    assert (job.migration_uuid, job.instance_uuid, job.state) == (
        CLAIM['migration_uuid'], running, 'running')


@pytest.mark.parametrize('error', [messaging.MessagingTimeout('no answer'),
                                   messaging.RemoteError('UnsupportedVersion')],
                         ids=['timeout', 'old-conductor'])
def test_an_agent_whose_claims_cannot_be_listed_still_starts_serving(agent, caplog,
                                                                     error):
    agent._conductor.get_host_migrations.side_effect = error
    with caplog.at_level(logging.WARNING, logger=service.__name__):
        agent._register(timeout=1)
    assert agent.registered.is_set()
    assert any(HOST in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    # Claims are served at once, not after claims_restore_timeout.
    claim = agent.manager.tracker.claim(CLAIM['migration_uuid'], CLAIM['instance_uuid'],
                                        CLAIM['memory_mb'], CLAIM['vcpus'])
    assert claim['host'] == HOST


def test_reconcile_drops_the_claims_the_conductor_no_longer_lists(agent):
    agent._conductor.get_host_migrations.return_value = listed([CLAIM])
    agent._register(timeout=1)
    agent._conductor.get_host_migrations.return_value = listed()  # its migration ended

    dropped = agent.reconcile_claims()

    assert [c['migration_uuid'] for c in dropped] == [CLAIM['migration_uuid']]
    assert agent.manager.tracker.claims() == []


def test_reconcile_keeps_every_claim_when_the_conductor_does_not_answer(agent):
    agent._conductor.get_host_migrations.return_value = listed([CLAIM])
    agent._register(timeout=1)
    agent._conductor.get_host_migrations.side_effect = messaging.MessagingTimeout('no')

    assert agent.reconcile_claims() == []
    assert [c['migration_uuid'] for c in agent.manager.tracker.claims()] == [
        CLAIM['migration_uuid']]
