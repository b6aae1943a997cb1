"""AgentService: the claims restored at registration, and a conductor that cannot list them."""

import logging
from unittest import mock

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from compute_agent import service
from compute_agent.virt import simulated
from migration_conductor import cmd
from migration_conductor import rpc

HOST = 'restore-test-host'
CLAIM = {'migration_uuid': '11111111-0000-4000-8000-000000000001',
         'instance_uuid': '22222222-0000-4000-8000-000000000001',
         'memory_mb': 2048, 'vcpus': 2}


@pytest.fixture
def agent():
    """An agent (never started) whose conductor client is a mock."""
    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf([], project='migration-conductor-unit-tests')
    conf.set_override('claims_restore_timeout', 1, group='agent')
    driver = simulated.SimulatedDriver(HOST, conf)
    agent = service.AgentService(conf, HOST, driver)
    agent._conductor = mock.Mock()
    agent._conductor.register_host.return_value = mock.Mock(enabled=True)
    try:
        yield agent
    finally:
        driver.cleanup()
        rpc.cleanup()


def test_registration_restores_the_claims_the_conductor_lists(agent):
    agent._conductor.list_host_claims.return_value = [CLAIM]
    agent._register(timeout=1)
    assert agent.registered.is_set()
    agent._conductor.list_host_claims.assert_called_once_with(
        agent._context, HOST, timeout=mock.ANY)
    assert agent.manager.tracker.claims() == [dict(CLAIM, host=HOST)]


@pytest.mark.parametrize('error', [messaging.MessagingTimeout('no answer'),
                                   messaging.RemoteError('UnsupportedVersion')],
                         ids=['timeout', 'old-conductor'])
def test_an_agent_whose_claims_cannot_be_listed_still_starts_serving(agent, caplog,
                                                                     error):
    agent._conductor.list_host_claims.side_effect = error
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
    agent._conductor.list_host_claims.return_value = [CLAIM]
    agent._register(timeout=1)
    agent._conductor.list_host_claims.return_value = []     # its migration ended

    dropped = agent.reconcile_claims()

    assert [c['migration_uuid'] for c in dropped] == [CLAIM['migration_uuid']]
    assert agent.manager.tracker.claims() == []


def test_reconcile_keeps_every_claim_when_the_conductor_does_not_answer(agent):
    agent._conductor.list_host_claims.return_value = [CLAIM]
    agent._register(timeout=1)
    agent._conductor.list_host_claims.side_effect = messaging.MessagingTimeout('no')

    assert agent.reconcile_claims() == []
    assert [c['migration_uuid'] for c in agent.manager.tracker.claims()] == [
        CLAIM['migration_uuid']]
