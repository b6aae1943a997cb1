"""Faults in the rollback itself and after the switch-over, end to end in one process.

Before the switch-over a failure reverts the flow, and a revert that raises must not
stop the others. After it (the job completed: the guest runs on the destination)
nothing may revert: a clean-up that fails leaves a line naming what is left, and a
database that cannot take the completion now is written again until it can.
"""

import functools
import logging

from oslo_db import exception as db_exc
import pytest

from compute_agent import rpcapi as agent_rpcapi
from db import api as db_api
from migration_conductor import exception
from migration_conductor.flows.tasks import agent_tasks
from migration_conductor.flows.tasks import base
from tests.functional.test_live_migration import add_guest
from tests.functional.test_live_migration import add_stubborn_guest
from tests.functional.test_live_migration import claims
from tests.functional.test_live_migration import cloud  # noqa: F401 (fixture)
from tests.functional.test_live_migration import instance_row
from tests.functional.test_live_migration import wait_for
from tests.functional.test_live_migration import where

UNDO_CALLS = ('rollback_destination', 'release_resources', 'abort_migration')


@pytest.fixture
def undo_calls(monkeypatch):
    """The calls of the agents' client that undo a migration, as they are made."""
    made = []

    def record(method):
        original = getattr(agent_rpcapi.AgentAPI, method)

        @functools.wraps(original)
        def call(self, *args, **kwargs):
            made.append(method)
            return original(self, *args, **kwargs)
        monkeypatch.setattr(agent_rpcapi.AgentAPI, method, call)

    for method in UNDO_CALLS:
        record(method)
    return made


def _lines(caplog, migration_uuid, text):
    return [r.getMessage() for r in caplog.records
            if migration_uuid in r.getMessage() and text in r.getMessage()]


# --- before the switch-over: a revert that raises -----------------------------------------

def test_a_revert_that_raises_does_not_stop_the_rollback(cloud, monkeypatch, caplog,
                                                         undo_calls):
    """The destination's revert raises: the claim is still released after it, the
    job was aborted before it, and the migration ends failed with the first reason."""
    def monitor_fails(self, migration_uuid, *args, **kwargs):
        raise exception.MigrationConductorError('injected failure in the monitor')

    # taskflow passes a revert the arguments its signature names: keep them.
    def revert_raises(self, migration_uuid, instance_uuid, dest_host, *args, **kwargs):
        raise RuntimeError('injected failure of the revert')

    monkeypatch.setattr(agent_tasks.MonitorMigration, 'execute', functools.wraps(
        agent_tasks.MonitorMigration.execute)(monitor_fails))
    monkeypatch.setattr(agent_tasks.PrepareDestination, 'revert', revert_raises)
    caplog.set_level(logging.INFO)
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-revert-raises')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert migration.status == 'failed'
    assert migration.error.phase == 'monitor'
    assert 'injected failure in the monitor' in migration.error.message
    # The fault landed: the destination's revert ran and raised ...
    assert _lines(caplog, migration.uuid, 'the revert of PrepareDestination failed')
    # ... between the job's abort and the claim's release, which both happened.
    assert undo_calls == ['abort_migration', 'release_resources']
    assert claims(cloud) == {}
    assert where(cloud, uuid)['sim-1'] == 'running'
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == ('sim-1', None)


# --- after the switch-over -----------------------------------------------------------------

def test_a_clean_up_that_fails_still_completes_and_names_what_is_left(
        cloud, monkeypatch, caplog, undo_calls):
    attempts = []

    def cleanup_fails(self, context, host, migration_uuid, *args, **kwargs):
        attempts.append(host)
        raise exception.MigrationConductorError('injected: the undefine was refused')

    monkeypatch.setattr(agent_rpcapi.AgentAPI, 'cleanup_source', cleanup_fails)
    uuid = add_guest(cloud, 'sim-1', 'g-cleanup-fails')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert migration.status == 'completed', migration.error
    assert attempts == ['sim-1']                  # the fault landed, once (not a timeout)
    lines = _lines(caplog, migration.uuid, 'could not clean source sim-1')
    assert lines and 'the undefine was refused' in lines[0]
    assert 'stopped definition of the guest' in lines[0]
    assert undo_calls == []                       # nothing was undone
    assert where(cloud, uuid)['sim-2'] == 'running'
    assert where(cloud, uuid).get('sim-1') != 'running'
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == ('sim-2', None)


def _fail_writes(monkeypatch, function, when, error, times):
    """Make ``db_api.function`` raise ``error`` the first ``times`` calls matching
    ``when(args, kwargs)``; return the list of the calls that raised."""
    original = getattr(db_api, function)
    raised = []

    def write(*args, **kwargs):
        if len(raised) < times and when(args, kwargs):
            raised.append(function)
            raise error
        return original(*args, **kwargs)
    monkeypatch.setattr(db_api, function, write)
    return raised


def _status_is(status):
    return lambda args, kwargs: args[2].get('status') == status


PAST_SWITCHOVER_WRITES = {
    'the-slots-given-back': ('migration_slots_release', lambda args, kwargs: True),
    'the-switch-over': ('migration_update', _status_is('completing')),
    'the-completion': ('migration_update', _status_is('completed')),
    'the-instance-moved': ('instance_update', lambda args, kwargs: (
        args[2].get('host') == 'sim-2'
        and kwargs.get('expected') == {'task_state': 'migrating'})),
}


@pytest.mark.parametrize('write', sorted(PAST_SWITCHOVER_WRITES))
def test_a_write_past_the_switch_over_that_the_database_cannot_take_is_written_again(
        cloud, monkeypatch, caplog, undo_calls, write):
    """The database connection is lost twice at one write after the job completed:
    the write is made again and the migration completes; nothing is reverted."""
    monkeypatch.setattr(base, 'WRITE_AGAIN_AFTER', (0.01, 0.02))
    function, when = PAST_SWITCHOVER_WRITES[write]
    raised = _fail_writes(monkeypatch, function, when,
                          db_exc.DBConnectionError('injected: connection lost'), 2)
    uuid = add_guest(cloud, 'sim-1', 'g-%s' % write)
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert raised == [function] * 2               # the fault landed, twice
    assert migration.status == 'completed', migration.error
    assert len(_lines(caplog, migration.uuid, 'writing again')) == 2
    assert undo_calls == []
    assert where(cloud, uuid) == {'sim-2': 'running'}
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == ('sim-2', None)
    assert claims(cloud) == {}


def test_a_completion_the_database_refuses_ends_in_error_and_is_never_rolled_back(
        cloud, monkeypatch, undo_calls):
    raised = _fail_writes(monkeypatch, 'migration_update', _status_is('completed'),
                          db_exc.DBError('injected: refused'), 1)
    uuid = add_guest(cloud, 'sim-1', 'g-completion-refused')
    migration = wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host='sim-2').uuid)

    assert raised == ['migration_update']
    assert migration.status == 'error'
    assert (migration.error.phase, migration.error.host) == ('finish', 'sim-2')
    assert 'runs on sim-2 but its completion could not be recorded' in (
        migration.error.message)
    assert undo_calls == []
    assert where(cloud, uuid) == {'sim-2': 'running'}
    row = instance_row(cloud, uuid)
    assert (row['host'], row['task_state']) == ('sim-2', None)
