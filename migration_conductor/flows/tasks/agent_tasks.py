"""Tasks that call the agents: checks, claim, prepare, start, monitor, finish, clean up.

Every call is idempotent on the agent's side (keyed by the migration id), so a resumed
flow may repeat the call of a task that was running when its conductor died. Reverts
undo what their task did, log, and never raise.

Before the switch-over a failure reverts the flow (the guest stays on the source). Once
the job has completed the destination is authoritative: the finishing tasks never raise,
they record an ``error`` for an operator instead of undoing anything.
"""

import time

import oslo_messaging as messaging

from compute_agent import rpcapi as agent_rpcapi
from db import api as db_api
from migration_conductor import exception
from migration_conductor.flows import constants as c
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

_PROGRESS_KEYS = ('memory_total', 'memory_processed', 'memory_remaining', 'disk_total',
                  'disk_processed', 'disk_remaining', 'dirty_rate', 'iteration',
                  'expected_downtime_ms', 'total_time_ms')
_MIB = 1024 * 1024
# Seconds one finishing call (finish, clean up) may take before it is sent again. Both
# are quick and idempotent; a short attempt lets a call lost with the broker (a restart
# drops the messages of queues not declared again yet) be repeated within
# [conductor] service_down_time, where one attempt of rpc_response_timeout would not.
FINISH_ATTEMPT_TIMEOUT = 10


class CheckSourceHost(base.MigrationTask):
    """Facts of the guest and its host, from the source agent."""

    phase = fields.MigrationPhase.CHECK_SOURCE
    default_provides = c.SOURCE_FACTS

    def execute(self, migration_uuid, instance_uuid, source_host):
        self.status(migration_uuid, states.PRE_CHECKING)
        return self.services.agents.check_source(self.context, source_host,
                                                 migration_uuid, instance_uuid)


class CheckDestinationHost(base.MigrationTask):
    """The candidate judges the source's CPU, its own room and the guest's storage
    (inside the retry); returns its answer, with whether the disks must be copied.

    The request's ``block_migration`` is read from the migration's row, not from the
    flow's store, so flows persisted before it was checked resume unchanged.
    """

    phase = fields.MigrationPhase.CHECK_DESTINATION
    default_provides = c.DESTINATION_CHECK

    def execute(self, migration_uuid, instance_uuid, dest_host, source_facts,
                source_host):
        row = self.status(migration_uuid, states.PRE_CHECKING, dest_host=dest_host)
        requested = row['block_migration'] or fields.BlockMigration.AUTO
        dest = db_api.compute_host_get(self.context, dest_host)
        self.log(migration_uuid, instance_uuid, 'checking destination %s (block '
                 'migration %s)', dest_host, requested)
        answer = self.services.agents.check_destination(
            self.context, dest_host, migration_uuid, instance_uuid, source_facts,
            requested, service_version=dest['service_version'])
        if answer.get('copy_disks'):
            source = db_api.compute_host_get(self.context, source_host)
            if ((source['service_version'] or 0)
                    < agent_rpcapi.BLOCK_MIGRATION_SERVICE_VERSION):
                # An older source would copy every disk, the shared ones included.
                raise exception.StorageIncompatible(
                    host=dest_host, instance_uuid=instance_uuid,
                    reason='its disks %s need block migration, which the agent of the '
                           'source %s (service version %s) does not do: upgrade it'
                           % (', '.join(d['target'] for d in answer['copy_disks']),
                              source_host, source['service_version']))
        return answer


class ClaimResourcesOnDestination(base.MigrationTask):
    """Reserve the guest's memory and vCPUs on the destination until the end."""

    phase = fields.MigrationPhase.CLAIM

    def execute(self, migration_uuid, instance_uuid, dest_host, source_facts):
        self.status(migration_uuid, states.CLAIMING)
        instance = source_facts['instance']
        return self.services.agents.claim_resources(
            self.context, dest_host, migration_uuid, instance_uuid,
            instance['memory_mb'], instance['vcpus'])

    def revert(self, migration_uuid, instance_uuid, dest_host, *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            self.services.agents.release_resources(self.context, dest_host,
                                                   migration_uuid)
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not release the claim on '
                     '%s: %s', dest_host, exc, level=base.logging.ERROR)


class PrepareDestination(base.MigrationTask):
    """Get the destination's incoming address; on revert remove any incoming copy."""

    phase = fields.MigrationPhase.PREPARE
    default_provides = c.DESTINATION

    def execute(self, migration_uuid, instance_uuid, dest_host, destination_check=None):
        self.status(migration_uuid, states.PREPARING)
        return self.services.agents.prepare_destination(self.context, dest_host,
                                                        migration_uuid, instance_uuid)

    def revert(self, migration_uuid, instance_uuid, dest_host, destination_check=None,
               *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            self.services.agents.rollback_destination(
                self.context, dest_host, migration_uuid, instance_uuid,
                disks=copied_paths(destination_check))
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not roll back destination '
                     '%s: %s', dest_host, exc, level=base.logging.ERROR)


class StartMigrationOnSource(base.MigrationTask):
    """Start the libvirt job on the source; returns once the job runs."""

    phase = fields.MigrationPhase.START

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host, destination,
                destination_check=None):
        # NOTE: destination_check is optional: a flow persisted before the destination's
        # check returned anything resumes with None (nothing is copied, as then).
        conf = self.conf.conductor
        dest = db_api.compute_host_get(self.context, dest_host)
        block = bool((destination_check or {}).get('block_migration', False))
        options = {'bandwidth_mib': conf.bandwidth_mib or None,
                   'max_downtime_ms': conf.max_downtime_ms,
                   'block_migration': block,
                   'auto_converge': False, 'postcopy': False,
                   'listen_address': destination.get('listen_address')}
        if block:
            options['migrate_disks'] = [
                disk['target'] for disk in destination_check.get('copy_disks', ())]
        self.status(migration_uuid, states.RUNNING, started_at=base.now())
        self.log(migration_uuid, instance_uuid, 'starting on %s towards %s (%s, data via '
                 '%s, block migration %s)', source_host, dest_host, dest['libvirt_uri'],
                 destination['migrate_uri'], options['block_migration'])
        self.services.agents.start_migration(
            self.context, source_host, migration_uuid, instance_uuid,
            dest['libvirt_uri'], destination['migrate_uri'], options)
        # NOTE: an abort accepted between the RUNNING status and the job's start asked
        # the source to abort a job it did not have yet; ask again now that it runs.
        # (An abort accepted after this read finds the job on the source.)
        if (db_api.migration_get(self.context, migration_uuid)['status']
                == states.CANCELLING):
            self.log(migration_uuid, instance_uuid, 'aborted while the job started: '
                     'aborting it on %s', source_host)
            self.services.agents.abort_migration(self.context, source_host,
                                                 migration_uuid, instance_uuid)

    def revert(self, migration_uuid, instance_uuid, source_host, *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            aborted = self.services.agents.abort_migration(self.context, source_host,
                                                           migration_uuid, instance_uuid)
            if aborted:
                self.log(migration_uuid, instance_uuid, 'aborted the job on %s',
                         source_host)
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not abort the job on %s: %s',
                     source_host, exc, level=base.logging.ERROR)


class MonitorMigration(base.MigrationTask):
    """Follow the job on the source until it ends; persist and log its progress.

    The source agent answers from libvirt, so this task re-attaches after a conductor or
    agent restart by simply asking again. If the source agent stays silent longer than
    ``[conductor] service_down_time``, the destination is asked whether the guest runs
    there: if it does, the migration completed. A conductor that lost the migration's
    claim on the jobboard stops following at its next poll (ClaimLost, its flow
    suspended, see :mod:`migration_conductor.flows.runner`).
    """

    phase = fields.MigrationPhase.MONITOR
    default_provides = c.JOB_RESULT

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host):
        conf = self.conf.conductor
        last_answer = time.monotonic()
        while True:
            self.ensure_driven(migration_uuid)
            try:
                job = self.services.agents.get_migration_job(
                    self.context, source_host, migration_uuid, instance_uuid,
                    timeout=max(int(conf.monitor_interval * 5), 5))
                last_answer = time.monotonic()
            except messaging.MessagingTimeout:
                silent = time.monotonic() - last_answer
                if silent < conf.service_down_time:
                    self.log(migration_uuid, instance_uuid, 'source agent %s silent for '
                             '%d s', source_host, silent, level=base.logging.WARNING)
                    continue
                job = {'state': 'gone', 'stats': None,
                       'error': 'source agent silent for %d s' % silent}
            state = job['state']
            if state == 'running':
                self._record_progress(migration_uuid, instance_uuid, job['stats'])
                # Woken at once by the source's notice that the job ended.
                self.services.job_events.wait(migration_uuid, conf.monitor_interval)
                continue
            self.services.job_events.forget(migration_uuid)
            if state == 'completed':
                return {'force_completed': job.get('force_completed', False)}
            if state == 'cancelled':
                raise exception.MigrationJobCancelled(instance_uuid=instance_uuid,
                                                      host=source_host)
            if state == 'gone' and self._runs_on(dest_host, instance_uuid):
                self.log(migration_uuid, instance_uuid, 'the source has no job and the '
                         'guest runs on %s: the migration completed', dest_host)
                return {'force_completed': False}
            raise exception.MigrationJobFailed(
                instance_uuid=instance_uuid, host=source_host,
                reason=job.get('error') or 'the job ended (%s)' % state)

    def _runs_on(self, host, instance_uuid):
        try:
            return self.services.agents.get_instance_state(
                self.context, host, instance_uuid) == 'running'
        except Exception:
            return False

    def _record_progress(self, migration_uuid, instance_uuid, stats):
        if not stats:
            return
        values = {k: stats[k] for k in _PROGRESS_KEYS if stats.get(k) is not None}
        if values:
            db_api.migration_update(self.context, migration_uuid, values)
        disks = ''
        if stats.get('disk_total'):
            disks = ', disks %s/%s MiB copied' % (_mib(stats.get('disk_processed')),
                                                  _mib(stats['disk_total']))
        self.log(migration_uuid, instance_uuid, 'progress: memory %s/%s MiB sent, %s MiB '
                 'remaining, iteration %s, dirty rate %s MiB/s, expected downtime %s '
                 'ms%s', _mib(stats.get('memory_processed')),
                 _mib(stats.get('memory_total')), _mib(stats.get('memory_remaining')),
                 stats.get('iteration'), _mib(stats.get('dirty_rate')),
                 stats.get('expected_downtime_ms'), disks)


def copied_paths(destination_check):
    """The paths of the disks a migration copies, from the destination's answer."""
    return [disk['path'] for disk in (destination_check or {}).get('copy_disks', ())]


def _mib(value):
    return None if value is None else round(value / _MIB, 1)


class FinishOnDestination(base.MigrationTask):
    """Confirm the guest runs on the destination; never raises (past switch-over)."""

    phase = fields.MigrationPhase.FINISH
    default_provides = c.FINISH_RESULT

    def execute(self, migration_uuid, instance_uuid, dest_host):
        self.status(migration_uuid, states.COMPLETING)
        try:
            result = call_until_answered(
                self, migration_uuid, instance_uuid, dest_host, 'finish',
                lambda timeout: self.services.agents.finish_on_destination(
                    self.context, dest_host, migration_uuid, instance_uuid,
                    timeout=timeout))
            return {'ok': True, 'stats': result.get('stats')}
        except exception.ClaimLost:
            raise
        except Exception as failure:
            error = base.error_from_failure(self.phase, failure, host=dest_host)
            self.log(migration_uuid, instance_uuid, 'the job completed but the '
                     'destination %s did not confirm the guest: %s', dest_host, error,
                     level=base.logging.ERROR)
            return {'ok': False, 'stats': None, 'error': error.db_columns()}


def call_until_answered(task, migration_uuid, instance_uuid, host, what, call):
    """Return ``call(timeout)``, repeated after each timeout for up to
    ``[conductor] service_down_time`` seconds (at least twice).

    For idempotent calls made after the switch-over, when giving up leaves work for an
    operator: an agent restarting, or a message lost while the broker restarted, is
    waited for instead.

    :raises MessagingTimeout: no answer in time; any other error of the call at once.
    :raises ClaimLost: another conductor took the migration over meanwhile.
    """
    conf = task.conf.conductor
    attempt_timeout = max(1, min(FINISH_ATTEMPT_TIMEOUT, conf.rpc_response_timeout))
    deadline = time.monotonic() + conf.service_down_time
    attempts = 0
    while True:
        attempts += 1
        try:
            return call(attempt_timeout)
        except messaging.MessagingTimeout:
            if attempts >= 2 and time.monotonic() >= deadline:
                raise
            task.log(migration_uuid, instance_uuid, '%s: no answer from %s within %d s '
                     '(attempt %d); asking again', what, host, attempt_timeout, attempts,
                     level=base.logging.WARNING)
            task.ensure_driven(migration_uuid)


class CleanupSource(base.MigrationTask):
    """Remove what is left of the guest on the source; never raises."""

    phase = fields.MigrationPhase.FINISH

    def execute(self, migration_uuid, instance_uuid, source_host, finish_result,
                destination_check=None):
        self.ensure_driven(migration_uuid)
        if not finish_result.get('ok'):
            return
        try:
            call_until_answered(
                self, migration_uuid, instance_uuid, source_host, 'clean-up',
                lambda timeout: self.services.agents.cleanup_source(
                    self.context, source_host, migration_uuid, instance_uuid,
                    disks=copied_paths(destination_check), timeout=timeout))
        except exception.ClaimLost:
            raise
        except Exception as exc:
            self.log(migration_uuid, instance_uuid, 'could not clean source %s: %s',
                     source_host, exc, level=base.logging.ERROR)
