"""Tasks that call the agents: checks, claim, prepare, start, monitor, finish, clean up.

Every call is idempotent on the agent's side (keyed by the migration id), so a resumed
flow may repeat the call of a task that was running when its conductor died. Reverts
undo what their task did, log, and never raise.

What crosses the agent RPC is a versioned object (see :mod:`compute_agent.rpcapi`);
a task stores the objects it returns as their primitives in the flow, and the tasks
after it read them back with :func:`~.base.load`.

Before the switch-over a failure reverts the flow (the guest stays on the source). Once
the job has completed the destination is authoritative: the finishing tasks never raise,
they record an ``error`` for an operator instead of undoing anything.

Calls that decide nothing while the guest is at stake (pre-checks, the roll-back's)
wait ``[conductor] precheck_timeout`` at most: a host that does not answer in time is
unavailable, and the flow goes on without it (the next candidate, or the rollback).
"""

import time

import oslo_messaging as messaging

from db import api as db_api
from migration_conductor import exception
from migration_conductor import job_reports
from migration_conductor import objects
from migration_conductor.flows import constants as c
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

# Seconds one finishing call (finish, clean up) may take before it is sent again. Both
# are quick and idempotent; a short attempt lets a call lost with the broker (a restart
# drops the messages of queues not declared again yet) be repeated within
# [conductor] service_down_time, where one attempt of rpc_response_timeout would not.
FINISH_ATTEMPT_TIMEOUT = 10
# Seconds one start call may take before it is sent again: the agent answers once
# libvirt runs the job (well under a second on the lab), and a start asked again is
# harmless (the agent reads libvirt before it starts anything).
START_ATTEMPT_TIMEOUT = 15

JobState = fields.JobState


def _unavailable(task, host, what):
    return exception.HostUnavailable(
        host=host, state='not answering (no reply to %s within %d s)'
                         % (what, task.conf.conductor.precheck_timeout))


class CheckSourceHost(base.MigrationTask):
    """Facts of the guest and its host, from the source agent."""

    phase = fields.MigrationPhase.CHECK_SOURCE
    default_provides = c.SOURCE_FACTS

    def execute(self, migration_uuid, instance_uuid, source_host):
        row = self.status(migration_uuid, states.PRE_CHECKING, read_back=True)
        sample = self.profile_of(row).dirty_rate_sample_s
        timeout = self.conf.conductor.precheck_timeout + sample
        try:
            facts = self.services.agents.check_source(
                self.context, source_host, migration_uuid, instance_uuid,
                timeout=timeout, dirty_rate_sample_s=sample)
        except messaging.MessagingTimeout:
            raise exception.SourceHostUnavailable(
                host=source_host, state='not answering (no reply to the source check '
                                        'within %d s)' % timeout)
        return facts.obj_to_primitive()


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
        row = self.status(migration_uuid, states.PRE_CHECKING, read_back=True,
                          dest_host=dest_host)
        requested = row['block_migration'] or fields.BlockMigration.AUTO
        facts = base.load(objects.SourceFacts, source_facts, source_host)
        self.log(migration_uuid, instance_uuid, 'checking destination %s (block '
                 'migration %s)', dest_host, requested)
        try:
            answer = self.services.agents.check_destination(
                self.context, dest_host, migration_uuid, instance_uuid, facts,
                requested, timeout=self.conf.conductor.precheck_timeout)
        except messaging.MessagingTimeout:
            raise _unavailable(self, dest_host, 'the destination check')
        if answer.copy_disks:
            refusal = self.services.agents.block_migration_refusal(source_host)
            if refusal is not None:
                raise exception.StorageIncompatible(
                    host=dest_host, instance_uuid=instance_uuid,
                    reason='its disks %s need block migration, which %s'
                           % (', '.join(d.target for d in answer.copy_disks), refusal))
        return answer.obj_to_primitive()


class ClaimResourcesOnDestination(base.MigrationTask):
    """Reserve the guest's memory and vCPUs on the destination until the end."""

    phase = fields.MigrationPhase.CLAIM

    def execute(self, migration_uuid, instance_uuid, dest_host, source_facts,
                source_host):
        self.status(migration_uuid, states.CLAIMING)
        instance = base.load(objects.SourceFacts, source_facts, source_host).instance
        try:
            claim = self.services.agents.claim_resources(
                self.context, dest_host, migration_uuid, instance_uuid,
                instance.memory_mb, instance.vcpus,
                timeout=self.conf.conductor.precheck_timeout)
        except messaging.MessagingTimeout:
            raise _unavailable(self, dest_host, 'the claim')
        return claim.obj_to_primitive()

    def revert(self, migration_uuid, instance_uuid, dest_host, *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            self.services.agents.release_resources(
                self.context, dest_host, migration_uuid,
                timeout=self.conf.conductor.precheck_timeout)
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not release the claim on %s '
                     '(%s); that agent drops it when it next compares its claims with '
                     'the conductor\'s', dest_host, exc, level=base.logging.ERROR)


def copied_disks(destination_check, dest_host=None):
    """The DiskList of the disks a migration copies, from the destination's answer."""
    check = base.load(objects.DestinationCheck, destination_check, dest_host)
    return check.copy_disks if check is not None else objects.DiskList(objects=[])


class PrepareDestination(base.MigrationTask):
    """Get the destination's incoming address; on revert remove any incoming copy."""

    phase = fields.MigrationPhase.PREPARE
    default_provides = c.DESTINATION

    def execute(self, migration_uuid, instance_uuid, dest_host, destination_check=None):
        self.status(migration_uuid, states.PREPARING)
        try:
            info = self.services.agents.prepare_destination(
                self.context, dest_host, migration_uuid, instance_uuid,
                timeout=self.conf.conductor.precheck_timeout)
        except messaging.MessagingTimeout:
            raise _unavailable(self, dest_host, 'the preparation')
        return info.obj_to_primitive()

    def revert(self, migration_uuid, instance_uuid, dest_host, destination_check=None,
               *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            self.services.agents.rollback_destination(
                self.context, dest_host, migration_uuid, instance_uuid,
                disks=copied_disks(destination_check, dest_host),
                timeout=self.conf.conductor.precheck_timeout)
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not roll back destination '
                     '%s: %s', dest_host, exc, level=base.logging.ERROR)


class StartMigrationOnSource(base.MigrationTask):
    """Start the libvirt job on the source; returns once the job runs.

    The start is asked again after a timeout, or when the source's libvirt could not
    tell whether a job runs (for up to ``service_down_time``): an agent that restarted
    in the middle of it reads libvirt back and never starts a second job for a guest
    whose job runs or has finished.
    """

    phase = fields.MigrationPhase.START
    default_provides = c.JOB_STARTED

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host, destination,
                destination_check=None, completion_plan=None):
        # NOTE: destination_check and completion_plan are optional: a flow persisted
        # before the destination's check returned anything resumes with None (nothing
        # is copied, as then), one persisted before profiles with no plan (the job is
        # only watched, as then).
        conf = self.conf.conductor
        dest = db_api.compute_host_get(self.context, dest_host)
        info = base.load(objects.DestinationInfo, destination, dest_host)
        check = base.load(objects.DestinationCheck, destination_check, dest_host)
        plan = base.load(objects.CompletionPlan, completion_plan)
        block = bool(check is not None and check.block_migration)
        options = job_options(self.conf, self.services.profiles.get(plan.profile)
                              if plan is not None else None, plan)
        options.update(block_migration=block, listen_address=info.listen_address,
                       migrate_disks=([disk.target for disk in check.copy_disks]
                                      if block else None))
        spec = objects.MigrationSpec(
            migration_uuid=migration_uuid, instance_uuid=instance_uuid,
            dest_host=dest_host, dest_uri=dest['libvirt_uri'],
            migrate_uri=info.migrate_uri, options=objects.MigrationOptions(**options),
            report_interval=conf.monitor_interval, plan=plan)
        # NOTE: the job's state is cleared with the status change: what the source
        # reports from now on is about this job.
        self.status(migration_uuid, states.RUNNING, started_at=base.now(),
                    job_state=None, job_error=None)
        self.log(migration_uuid, instance_uuid, 'starting on %s towards %s (%s, data via '
                 '%s, block migration %s, %s)', source_host, dest_host,
                 dest['libvirt_uri'], info.migrate_uri, block,
                 'no plan' if plan is None else 'profile %s, strategy %s, budget %s'
                 % (plan.profile, plan.strategy, 'none' if plan.budget_s is None
                    else '%.0f s then %s' % (plan.budget_s, plan.on_timeout)))
        job = call_until_answered(
            self, migration_uuid, instance_uuid, source_host, 'start',
            lambda timeout: self.services.agents.start_migration(
                self.context, source_host, spec, timeout=timeout),
            attempt_timeout=START_ATTEMPT_TIMEOUT,
            # libvirt could not tell whether a job runs: nothing was started.
            also_retry=(exception.HypervisorCallFailed, exception.HypervisorUnavailable))
        # NOTE: an abort accepted between the RUNNING status and the job's start asked
        # the source to abort a job it did not have yet; ask again now that it runs.
        # (An abort accepted after this read finds the job on the source.)
        if (db_api.migration_get(self.context, migration_uuid)['status']
                == states.CANCELLING):
            self.log(migration_uuid, instance_uuid, 'aborted while the job started: '
                     'aborting it on %s', source_host)
            self.services.agents.abort_migration(self.context, source_host,
                                                 migration_uuid, instance_uuid)
        return job.obj_to_primitive()

    def revert(self, migration_uuid, instance_uuid, source_host, *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        try:
            aborted = self.services.agents.abort_migration(
                self.context, source_host, migration_uuid, instance_uuid,
                timeout=self.conf.conductor.precheck_timeout)
            if aborted:
                self.log(migration_uuid, instance_uuid, 'aborted the job on %s',
                         source_host)
        except Exception as exc:  # a revert logs, it never raises
            self.log(migration_uuid, instance_uuid, 'could not abort the job on %s: %s',
                     source_host, exc, level=base.logging.ERROR)


def job_options(conf, profile, plan):
    """The libvirt job's options from the migration's profile and plan (a dict of
    MigrationOptions fields; the caller adds where the data goes and what is copied).

    Post-copy is permitted on the job whenever the profile allows it, so that the
    budget or an operator's force-complete can switch to it; the job itself only
    switches when the monitor asks.
    """
    from migration_conductor.flows.tasks import forecast_tasks
    if profile is None:
        return {'bandwidth_mib': conf.conductor.bandwidth_mib or None,
                'max_downtime_ms': None, 'auto_converge': False, 'postcopy': False}
    return {
        'bandwidth_mib': forecast_tasks.bandwidth_limit_mib(conf, profile) or None,
        'max_downtime_ms': plan.downtime_ms[0] if plan.downtime_ms else
        profile.max_downtime_ms,
        'auto_converge': plan.strategy == fields.Strategy.AUTO_CONVERGE,
        'postcopy': bool(profile.postcopy_allowed),
        'parallel_connections': profile.parallel_connections,
        'compression': profile.compression,
    }


class MonitorMigration(base.MigrationTask):
    """Wait for the job's end, as the source agent reports it; decide the outcome.

    The source agent watches the job where it runs and reports its progress and its
    end (:mod:`compute_agent.migration_monitor`); whichever conductor receives a report
    records it (:mod:`migration_conductor.job_reports`), and this task, in the
    conductor that drives the flow, reads the migration's record at each report (woken
    at once when the report reached this conductor) or every ``monitor_interval``.

    It asks the source agent itself only after ``monitor_silence_timeout`` seconds
    without a report (or at each interval, for an agent older than RPC 1.4 that does
    not report); the answer is recorded as the agent's reports are. Nothing transient
    ends the job: a silent source (agent restarting, messages lost) is waited for; one
    silent for ``service_down_time`` is judged by the destination, which knows whether
    the guest runs there (completed), an incoming copy still waits there (the job goes
    on), or nothing is there (the job ended without a switch-over). Only the job's own
    state decides the outcome. A conductor that lost the migration stops following it
    at its next look (ClaimLost, its flow suspended).
    """

    phase = fields.MigrationPhase.MONITOR
    default_provides = c.JOB_RESULT

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host,
                job_started=None):
        conf = self.conf.conductor
        agents = self.services.agents
        started = base.load(objects.MigrationJob, job_started)
        if started is not None and started.ended:
            return self._outcome(migration_uuid, instance_uuid, source_host, dest_host,
                                 started)
        silence_bound = conf.monitor_interval
        if agents.reports_progress(source_host):
            silence_bound = max(conf.monitor_silence_timeout, conf.monitor_interval)
        last_report = object()
        heard_at = asked_at = time.monotonic()
        while True:
            self.ensure_driven(migration_uuid)
            row = db_api.migration_get(self.context, migration_uuid)
            if row['last_report_at'] != last_report:
                last_report, heard_at = row['last_report_at'], time.monotonic()
            if row['job_state'] in JobState.ENDED:
                return self._outcome(migration_uuid, instance_uuid, source_host,
                                     dest_host, _job_from_row(row, source_host))
            silent = time.monotonic() - heard_at
            if time.monotonic() - max(heard_at, asked_at) >= silence_bound:
                asked_at = time.monotonic()
                job = self._ask_source(migration_uuid, instance_uuid, source_host,
                                       dest_host, silent)
                if job is not None:
                    heard_at = time.monotonic()
                    if job.ended:
                        job_reports.record_end(self.context, job,
                                               generation=self._generation(
                                                   migration_uuid))
                        return self._outcome(migration_uuid, instance_uuid,
                                             source_host, dest_host, job)
                    self._record(job)
            # Woken at once by a report that reached this conductor.
            self.services.job_events.wait(migration_uuid, conf.monitor_interval)

    def _generation(self, migration_uuid):
        return self.services.generation(migration_uuid)

    def _record(self, job):
        try:
            job_reports.record_progress(self.context, job, origin='poll',
                                        generation=self._generation(job.migration_uuid))
        except exception.OwnershipLost:
            self.services.ownership_lost(job.migration_uuid)
            self.ensure_driven(job.migration_uuid)

    def _ask_source(self, migration_uuid, instance_uuid, source_host, dest_host,
                    silent):
        """The source's answer about the job (a MigrationJob), or None when there is
        none yet; after ``service_down_time`` of silence, the destination's verdict."""
        conf = self.conf.conductor
        self.log(migration_uuid, instance_uuid, 'no report from the source %s for %.1f '
                 's: asking it', source_host, silent,
                 level=base.logging.INFO if not self.services.agents.reports_progress(
                     source_host) else base.logging.WARNING)
        try:
            return self.services.agents.get_migration_job(
                self.context, source_host, migration_uuid, instance_uuid,
                timeout=max(int(conf.monitor_interval * 5), 5),
                report_interval=conf.monitor_interval)
        except (messaging.MessagingTimeout, exception.HypervisorUnavailable,
                exception.HypervisorCallFailed) as exc:
            if silent < conf.service_down_time:
                self.log(migration_uuid, instance_uuid, 'the source %s could not tell '
                         '(%s); the job goes on, waiting', source_host,
                         type(exc).__name__, level=base.logging.WARNING)
                return None
        return self._destination_verdict(migration_uuid, instance_uuid, source_host,
                                         dest_host, silent)

    def _destination_verdict(self, migration_uuid, instance_uuid, source_host,
                             dest_host, silent):
        try:
            state = self.services.agents.get_instance_state(
                self.context, dest_host, instance_uuid,
                timeout=self.conf.conductor.precheck_timeout)
        except Exception as exc:
            self.log(migration_uuid, instance_uuid, 'the source %s has been silent for '
                     '%d s and the destination %s does not answer either (%s): nobody '
                     'can tell, waiting', source_host, silent, dest_host,
                     type(exc).__name__, level=base.logging.WARNING)
            return None
        if state is None:
            self.log(migration_uuid, instance_uuid, 'the source %s has been silent for '
                     '%d s and %s has no copy of the guest: the job is over without a '
                     'switch-over', source_host, silent, dest_host,
                     level=base.logging.ERROR)
            return objects.MigrationJob(
                migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                host=source_host, state=JobState.FAILED,
                error='the source agent was silent for %d s and the destination %s '
                      'has no copy of the guest' % (silent, dest_host))
        if state == fields.PowerState.RUNNING:
            return objects.MigrationJob(
                migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                host=source_host, state=JobState.GONE)
        self.log(migration_uuid, instance_uuid, 'the source %s has been silent for %d s; '
                 'the incoming copy on %s is %s: the job goes on, waiting', source_host,
                 silent, dest_host, state, level=base.logging.WARNING)
        return None

    def _outcome(self, migration_uuid, instance_uuid, source_host, dest_host, job):
        self.services.job_events.forget(migration_uuid)
        if job.state == JobState.COMPLETED:
            return {'force_completed': job.force_completed}
        if job.state == JobState.CANCELLED:
            budget = self._budget_abort(migration_uuid)
            if budget is not None:
                raise exception.CompletionBudgetExceeded(
                    instance_uuid=instance_uuid, host=source_host, reason=budget)
            raise exception.MigrationJobCancelled(instance_uuid=instance_uuid,
                                                  host=source_host)
        if job.state == JobState.GONE and self._runs_on(dest_host, instance_uuid):
            self.log(migration_uuid, instance_uuid, 'the source has no job and the '
                     'guest runs on %s: the migration completed', dest_host)
            return {'force_completed': False}
        reason = job.error or 'the job ended (%s)' % job.state
        if (db_api.migration_get(self.context, migration_uuid)['status']
                == states.RUNNING_POSTCOPY):
            # NOTE: past the switch to post-copy nothing is reverted: the flow goes on
            # to record the loss (FinishOnDestination), never to roll back.
            self.log(migration_uuid, instance_uuid, 'the job failed in post-copy: %s',
                     reason, level=base.logging.ERROR)
            return {'force_completed': job.force_completed, 'postcopy_failed': reason}
        raise exception.MigrationJobFailed(instance_uuid=instance_uuid, host=source_host,
                                           reason=reason)

    def _budget_abort(self, migration_uuid):
        """The reason the source's monitor gave for aborting the job when the
        profile's budget ran out, or None (an operator's abort, or none recorded)."""
        if db_api.migration_get(self.context, migration_uuid)['status'] == \
                states.CANCELLING:
            return None
        aborts = [event for event in db_api.migration_event_list(self.context,
                                                                 migration_uuid)
                  if event['kind'] == fields.MigrationEventKind.ABORT_REQUESTED]
        return aborts[-1]['message'] if aborts else None

    def _runs_on(self, host, instance_uuid):
        try:
            return self.services.agents.get_instance_state(
                self.context, host, instance_uuid,
                timeout=self.conf.conductor.precheck_timeout) == fields.PowerState.RUNNING
        except Exception:
            return False


def _job_from_row(row, source_host):
    """The job's end as recorded from the source's report."""
    return objects.MigrationJob(migration_uuid=row['uuid'],
                                instance_uuid=row['instance_uuid'], host=source_host,
                                state=row['job_state'], error=row['job_error'])


class FinishOnDestination(base.MigrationTask):
    """Confirm the guest runs on the destination; never raises (past switch-over)."""

    phase = fields.MigrationPhase.FINISH
    default_provides = c.FINISH_RESULT

    def execute(self, migration_uuid, instance_uuid, dest_host, source_host=None,
                job_result=None):
        self.until_written(migration_uuid, instance_uuid, 'the switch-over',
                           lambda: self.status(migration_uuid, states.COMPLETING))
        if job_result and job_result.get('postcopy_failed'):
            return self._lost_in_postcopy(migration_uuid, instance_uuid, source_host,
                                          dest_host, job_result['postcopy_failed'])
        try:
            settle = self._settle_s(migration_uuid)
            finish = call_until_answered(
                self, migration_uuid, instance_uuid, dest_host, 'finish',
                lambda timeout: self.services.agents.finish_on_destination(
                    self.context, dest_host, migration_uuid, instance_uuid,
                    timeout=timeout, settle_s=settle),
                attempt_timeout=FINISH_ATTEMPT_TIMEOUT + settle)
            return {'ok': True, 'stats': None if finish.progress is None
                    else finish.progress.to_stats()}
        except exception.ClaimLost:
            raise
        except Exception as failure:
            error = base.error_from_failure(self.phase, failure, host=dest_host)
            self.log(migration_uuid, instance_uuid, 'the job completed but the '
                     'destination %s did not confirm the guest: %s', dest_host, error,
                     level=base.logging.ERROR)
            return {'ok': False, 'stats': None, 'error': error.db_columns()}


    def _settle_s(self, migration_uuid):
        """The profile's settle period; 0 when the profile cannot be read (the finish
        must not fail for it)."""
        try:
            row = db_api.migration_get(self.context, migration_uuid)
            return self.profile_of(row).settle_s
        except Exception as exc:  # only the settle watch is lost
            self.log(migration_uuid, None, 'no settle watch: the profile cannot be read '
                     '(%s)', exc, level=base.logging.WARNING)
            return 0

    def _lost_in_postcopy(self, migration_uuid, instance_uuid, source_host, dest_host,
                          reason):
        """The job failed after the switch to post-copy: the guest's memory was split
        between the hosts, so neither copy is whole. Nothing is resumed or destroyed
        (the source copy stays paused, never resumed: it would run a stale guest next
        to whatever the destination has); an operator must decide."""
        try:
            state = self.services.agents.get_instance_state(
                self.context, dest_host, instance_uuid,
                timeout=self.conf.conductor.precheck_timeout)
        except Exception as exc:  # only describes the loss
            state = 'unknown (%s)' % type(exc).__name__
        error = objects.MigrationError(
            phase=fields.MigrationPhase.MONITOR, host=dest_host, code='postcopy_failed',
            message='the job failed in post-copy (%s): the guest is lost: its memory '
                    'was split between %s and %s and neither copy is whole; the copy '
                    'on %s stays paused and is never resumed, the destination\'s is '
                    '%s' % (reason, source_host or 'the source', dest_host,
                            source_host or 'the source', state or 'gone'))
        self.log(migration_uuid, instance_uuid, 'error: %s', error.message,
                 level=base.logging.ERROR)
        return {'ok': False, 'stats': None, 'error': error.db_columns()}


def call_until_answered(task, migration_uuid, instance_uuid, host, what, call,
                        attempt_timeout=FINISH_ATTEMPT_TIMEOUT, also_retry=()):
    """Return ``call(timeout)``, repeated after each timeout for up to
    ``[conductor] service_down_time`` seconds (at least twice).

    For idempotent calls whose answer matters more than its speed (the start, and the
    calls made after the switch-over, when giving up leaves work for an operator): an
    agent restarting, or a message lost while the broker restarted, is waited for.

    :param also_retry: errors of the call after which it is asked again too (after
        ``monitor_interval``, at least 0.1 s), within the same bound.
    :raises MessagingTimeout: no answer in time; any other error of the call at once.
    :raises ClaimLost: another conductor took the migration over meanwhile.
    """
    conf = task.conf.conductor
    attempt_timeout = max(1, min(attempt_timeout, conf.rpc_response_timeout))
    deadline = time.monotonic() + conf.service_down_time
    attempts = 0
    while True:
        attempts += 1
        try:
            return call(attempt_timeout)
        except (messaging.MessagingTimeout,) + tuple(also_retry) as exc:
            if attempts >= 2 and time.monotonic() >= deadline:
                raise
            if isinstance(exc, messaging.MessagingTimeout):
                task.log(migration_uuid, instance_uuid, '%s: no answer from %s within '
                         '%d s (attempt %d); asking again', what, host, attempt_timeout,
                         attempts, level=base.logging.WARNING)
            else:   # answered at once: wait a little before asking again
                task.log(migration_uuid, instance_uuid, '%s: %s could not answer '
                         '(attempt %d: %s); asking again', what, host, attempts, exc,
                         level=base.logging.WARNING)
                time.sleep(max(conf.monitor_interval, 0.1))
        task.ensure_driven(migration_uuid)


class CleanupSource(base.MigrationTask):
    """Remove what is left of the guest on the source; never raises."""

    phase = fields.MigrationPhase.FINISH

    def execute(self, migration_uuid, instance_uuid, source_host, finish_result,
                destination_check=None, dest_host=None):
        self.ensure_driven(migration_uuid)
        if not finish_result.get('ok'):
            return
        disks = copied_disks(destination_check, dest_host)
        try:
            call_until_answered(
                self, migration_uuid, instance_uuid, source_host, 'clean-up',
                lambda timeout: self.services.agents.cleanup_source(
                    self.context, source_host, migration_uuid, instance_uuid,
                    disks=disks, timeout=timeout))
        except exception.ClaimLost:
            raise
        except Exception as exc:
            # The migration still completes: the guest runs on the destination.
            self.log(migration_uuid, instance_uuid, 'could not clean source %s (%s: '
                     '%s); to be removed there by hand: the stopped definition of the '
                     'guest%s', source_host, type(exc).__name__, exc,
                     ' and the originals of its copied disks %s' % ', '.join(disks.paths)
                     if disks.paths else '', level=base.logging.ERROR)
