"""The destination's settle watch: an arrived guest must keep running, and answer its
QEMU guest agent's ping when it has one, before the migration is confirmed."""

from oslo_messaging.rpc import dispatcher
import pytest

from compute_agent import manager
from migration_conductor import exception
from tests.unit.compute_agent.virt.conftest import make_host  # noqa: F401 (fixture)

MIGRATION = '11111111-0000-4000-8000-0000000000cc'


class Agent:
    """Only what AgentManager._settle uses: the driver and the host name."""

    def __init__(self, driver):
        self.driver = driver
        self.host = driver.host

    _settle = manager.AgentManager._settle
    _ping_guest_agent = manager.AgentManager._ping_guest_agent


@pytest.fixture
def arrived(make_host, monkeypatch):  # noqa: F811 (fixture)
    """(agent, guest uuid, pings): a guest running on a simulated host whose guest
    agent answers as ``pings['answer']`` says (None: it has none)."""
    driver = make_host()
    uuid = driver.add_domain('g')
    pings = {'answer': None, 'asked': 0}

    def ping(instance_uuid, timeout):
        assert (instance_uuid, timeout) == (uuid, manager.GUEST_AGENT_PING_TIMEOUT)
        pings['asked'] += 1
        return pings['answer']

    monkeypatch.setattr(driver, 'ping_guest_agent', ping)
    return Agent(driver), uuid, pings


@pytest.mark.parametrize('answer', [True, None])
def test_a_guest_that_answers_or_has_no_agent_settles(arrived, answer):
    agent, uuid, pings = arrived
    pings['answer'] = answer
    agent._settle(MIGRATION, uuid, 0.1)
    assert pings['asked'] == 1


def test_a_running_guest_whose_agent_does_not_answer_did_not_arrive_alive(arrived):
    agent, uuid, pings = arrived
    pings['answer'] = False
    with pytest.raises(exception.GuestDiedAfterSwitchOver) as info:
        agent._settle(MIGRATION, uuid, 0.1)
    assert 'its QEMU guest agent does not answer' in str(info.value)
    assert info.value.code == 'guest_died'


def test_no_settle_period_asks_nothing(arrived):
    agent, uuid, pings = arrived
    pings['answer'] = False
    agent._settle(MIGRATION, uuid, 0)
    assert pings['asked'] == 0


@pytest.mark.parametrize('state', ['shutoff', 'crashed'])
def test_a_guest_already_stopped_at_the_finish_is_dead_on_arrival(make_host,  # noqa: F811
                                                                   state):
    driver = make_host()
    uuid = driver.add_domain('g', power_state=state)
    with pytest.raises(dispatcher.ExpectedException) as expected:
        manager.AgentManager.finish_on_destination(Agent(driver), None, MIGRATION, uuid,
                                                   settle_s=3)
    info = expected.value.exc_info[1]
    assert isinstance(info, exception.GuestDeadOnArrival)
    assert info.code == 'guest_died'
    assert 'is %s on %s right after the switch-over' % (state, driver.host) in str(
        info)
