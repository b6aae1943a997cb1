"""A rolling upgrade, end to end in one process: what the conductor sends older agents.

Only ``AgentAPI`` decides the form and version of a message, from the service version
each agent reported and the ``[upgrade_levels] compute_agent`` pin. These tests record
the version of every message it sends and run whole migrations with the forms of RPC
1.3: legacy dicts, no migration spec, and a source that does not report by itself, so
that the conductor asks it about the job.
"""

import functools

import pytest

from compute_agent import rpcapi as agent_rpcapi
from tests.functional import conftest
from tests.functional.test_live_migration import add_guest
from tests.functional.test_live_migration import wait_for
from tests.functional.test_live_migration import where

HOSTS = ('sim-1', 'sim-2')


@pytest.fixture
def sent(monkeypatch):
    """(host, method, version) of every message the conductor sends an agent."""
    messages = []
    original = agent_rpcapi.AgentAPI._call

    @functools.wraps(original)
    def call(self, context, host, method, version, *args, **kwargs):
        messages.append((host, method, version))
        return original(self, context, host, method, version, *args, **kwargs)
    monkeypatch.setattr(agent_rpcapi.AgentAPI, '_call', call)
    return messages


@pytest.fixture
def pinned_cloud(tmp_path):
    # A slower clock: the job runs long enough (about 1 s) to be asked about.
    with conftest.simulated_cloud(
            tmp_path, {('upgrade_levels', 'compute_agent'): '1.3',
                       ('simulated', 'time_scale'): 0.25}, hosts=HOSTS) as cloud:
        yield cloud


@pytest.fixture
def cloud(tmp_path):
    with conftest.simulated_cloud(tmp_path, hosts=HOSTS) as cloud:
        yield cloud


def _newer_than(version, cap):
    return tuple(map(int, version.split('.'))) > tuple(map(int, cap.split('.')))


def test_a_conductor_pinned_to_1_3_migrates_with_the_forms_of_1_3(pinned_cloud, sent):
    cloud = pinned_cloud
    uuid = add_guest(cloud, 'sim-1', 'g-pinned', memory_mb=4096, dirty_rate_mib=200)
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    assert sent, 'no message recorded'
    assert [m for m in sent if _newer_than(m[2], '1.3')] == []
    # Sent as 1.3 knows it: the start without a spec, and the job asked about,
    # since a source of 1.3 does not report by itself.
    assert ('sim-1', 'start_migration', '1.1') in sent
    assert any(m[:2] == ("sim-1", "get_migration_job") for m in sent), sent


@pytest.mark.parametrize('old_version,cap,start', [(3, '1.3', '1.1'), (4, '1.4', '1.4')])
def test_an_older_agent_is_sent_what_it_knows_while_the_other_gets_the_newest(
        cloud, sent, monkeypatch, old_version, cap, start):
    old = cloud.agents['sim-1'].manager
    report = old.build_host_report

    def report_as_older():
        host_report = report()
        host_report.host.service_version = old_version
        return host_report
    monkeypatch.setattr(old, 'build_host_report', report_as_older)
    uuid = add_guest(cloud, 'sim-1', 'g-mixed-%d' % old_version)  # registers sim-1 so
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    to_old = [m for m in sent if m[0] == 'sim-1']
    to_new = [m for m in sent if m[0] == 'sim-2']
    assert to_old and to_new
    assert [m for m in to_old if _newer_than(m[2], cap)] == []
    assert ('sim-1', 'start_migration', start) in to_old
    assert ('sim-2', 'check_destination', agent_rpcapi.RPC_API_VERSION) in to_new
