"""The job monitor in the source agent, on real hosts, PostgreSQL and RabbitMQ.

A guest moved over a slow link for about half a minute: its source agent reports the
job's progress by itself every monitor_interval (1 s, the default), the conductor
persists every report and never asks the agent for the job's state. The messages are
counted on the broker itself (the firehose, :mod:`tests.integration.rpc_trace`) by the
process that sent each one, not by what the services say about themselves.

This module's deployment keeps its database on PostgreSQL (the others use MariaDB), so
the integration tier runs a real migration, its records and its queries on both.
"""

import collections

import pytest

from tests.integration import conftest as int_conftest
from tests.integration import rpc_trace
from tests.integration import test_live_migration as live

# 240 MiB of content at 8 MiB/s: about 30 s of pre-copy for a guest that dirties
# nothing (under TCG a multi-pass pre-copy of a dirtying guest arrives corrupted).
BANDWIDTH_MIB = 8
TOUCH_MIB = 240
MONITOR_INTERVAL = 1.0


@pytest.fixture(scope='module')
def lab():
    with int_conftest.running_lab('/var/tmp/mc-int-monitor-lab', 16880, 'mon-') as lab:
        yield lab, lab.hosts()


@pytest.fixture(scope='module')
def cloud(lab, tmp_path_factory, postgresql_url):
    _lab, hosts = lab
    deployment = int_conftest.Deployment(
        hosts, tmp_path_factory.mktemp('monitor'),
        conductor_opts='monitor_interval = %s\nbandwidth_mib = %d\n'
                       % (MONITOR_INTERVAL, BANDWIDTH_MIB))
    try:
        deployment.start(postgresql_url)
        yield deployment
    finally:
        deployment.stop()


def test_a_30_second_migration_is_reported_by_its_source_agent_alone(lab, cloud):
    the_lab, hosts = lab
    source, dest = hosts
    mine = rpc_trace.on_topic(cloud.conductor_topic, cloud.agent_topic)
    with live._known_guest(the_lab, cloud, 'mon-slow', source.name, memory_mib=512,
                           touch_mib=TOUCH_MIB, dirty_pps=0) as guest:
        before = int_conftest.last_heartbeat_seq(the_lab, 'mon-slow')
        with rpc_trace.BrokerTrace(topics=(cloud.conductor_topic,
                                           cloud.agent_topic)) as trace:
            migration_uuid = live._migrate(cloud, guest.uuid, '--host', dest.name)
            # NOTE: watched in the database, not with migctl: a migctl that calls and
            # exits at once can be gone before the trace learns whose connection it was.
            int_conftest.eventually(
                lambda: int_conftest.migration_status(cloud.db_url, migration_uuid),
                lambda status: status in ('completed', 'cancelled', 'failed', 'error'),
                timeout=240, interval=0.5)
            trace.drain(where=mine)
        migration = cloud.migctl('migration', 'show', migration_uuid)
        assert migration['status'] == 'completed', migration['error']
        live._assert_beats_on(the_lab, 'mon-slow', dest.name)
        assert int_conftest.last_heartbeat_seq(the_lab, 'mon-slow') > before

        job_seconds = migration['total_time_ms'] / 1000.0
        assert job_seconds >= 25, 'the job lasted %.1f s only' % job_seconds
        pushed = int_conftest.progress_records(cloud.db_url, migration['uuid'], 'push')
        polled = int_conftest.progress_records(cloud.db_url, migration['uuid'], 'poll')
        assert len(pushed) >= 25, (len(pushed), job_seconds)
        assert polled == []

        assert not trace.unknown(mine), trace.format(mine)
        print('\nRPC messages of a %.1f s migration, by sending process (broker trace):\n%s'
              % (job_seconds, trace.format(mine)))
        by_method = collections.Counter(
            (m.program, m.kind, m.method) for m in trace.messages(mine)
            if m.kind in rpc_trace.SENDS)
        # The conductor never asked the source agent for the job's state ...
        assert by_method[('migration-conductor', 'call', 'get_migration_job')] == 0
        # ... the source agent reported it, about once per monitor_interval ...
        reports = [m for m in trace.messages(mine)
                   if m.method == 'migration_progress' and m.kind == 'cast']
        assert {m.sender for m in reports} == {'migration-compute-agent:agent-%s'
                                               % source.name}
        assert len(reports) >= 25
        assert by_method[('migration-compute-agent', 'cast', 'migration_job_ended')] == 1
        # ... and no agent process sent anything to an agent.
        agent_to_agent = [m for m in trace.messages(mine)
                          if m.program == 'migration-compute-agent'
                          and m.kind in rpc_trace.SENDS
                          and m.topic == cloud.agent_topic]
        assert agent_to_agent == []
        conductor_calls = collections.Counter(
            m.method for m in trace.messages(mine)
            if m.program == 'migration-conductor' and m.kind == 'call')
        for method in ('check_source', 'check_destination', 'claim_resources',
                       'prepare_destination', 'start_migration',
                       'finish_on_destination', 'cleanup_source'):
            assert conductor_calls[method] == 1, conductor_calls
