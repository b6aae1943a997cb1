"""Automatic completion of a migration job, applied by the source agent's monitor.

DESIGN step 8: the conductor turns the migration's profile into a
:class:`~migration_conductor.objects.profile.CompletionPlan` (absolute seconds and
milliseconds for this guest) and sends it with the start; the monitor
(:mod:`compute_agent.migration_monitor`) gives every reading of the running job to a
:class:`CompletionController`, which decides, next to the job it steers:

- downtime steps: at each step's time, the downtime allowed is raised;
- ``postcopy_after_pass`` N: once pre-copy starts pass N + 1 (libvirt's
  ``memory_iteration`` above N), the job is switched to post-copy: N = 1 for
  ``postcopy-after-first-pass``, and for a pre-copy the forecast expected to end in
  ``max_precopy_passes`` passes when post-copy is allowed (the forecast
  underestimated the guest);
- the budget: once the job ran for ``budget_s``, ``on_timeout`` is applied: switch to
  post-copy, pause the guest (pre-copy then converges; the destination resumes it), or
  abort (the guest stays here).

Each decision is reported to the conductor (``migration_event``), with its reason, and
logged. A switch to post-copy is never assumed from the call returning: it counts once
the job's statistics show it (``postcopy``) within ``postcopy_confirm_s``; a switch
that does not show is reported as failed and, when the switch was the budget's
action, the guest is paused instead so that the job still ends. Once the job runs in
post-copy nothing here aborts or pauses it: the destination is authoritative.

Concurrency: called from the job's monitor thread only; the driver calls are bounded.
"""

import logging
import time

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import fields

LOG = logging.getLogger(__name__)

Kind = fields.MigrationEventKind
Action = fields.CompletionAction


class CompletionController:
    """Steers one job according to its plan; :meth:`step` at each reading."""

    def __init__(self, jobs, job, plan):
        self._jobs = jobs
        self._job = job
        self._plan = plan
        self._driver = jobs._driver
        self._steps = plan.steps()
        self._next_step = 0
        self._budget_applied = False
        self._postcopy_asked_at = None     # job seconds at the switch request
        self._postcopy_reason = None
        self._postcopy_is_timeout = False
        self.in_postcopy = False

    def step(self, stats):
        """Apply what the plan says for this reading of the running job."""
        elapsed = self._elapsed(stats)
        if stats.get('postcopy'):
            self._confirmed(elapsed)
            return
        if self._job.postcopy:
            # Past the switch (an operator's force-complete, say). A post-copy whose
            # stream broke shows as not in post-copy while it is resumed: nothing to do.
            return
        if self._postcopy_asked_at is not None:
            self._check_confirmation(elapsed)
            return
        self._downtime_steps(elapsed)
        after = self._postcopy_after_pass()
        if after and (stats.get('iteration') or 0) > after:
            self._switch(elapsed, '%s (%s MiB sent)' % (
                'the first pass over memory is done' if after == 1 else
                'pre-copy needs more than %d passes' % after,
                _mib(stats.get('memory_processed'))))
            return
        budget = self._plan.budget_s
        if budget is not None and elapsed >= budget and not self._budget_applied:
            self._budget_applied = True
            self._timeout(elapsed, budget)

    def _postcopy_after_pass(self):
        if self._plan.postcopy_after_pass:
            return self._plan.postcopy_after_pass
        # A plan of a conductor that did not set it: the strategy says.
        return 1 if self._plan.strategy == fields.Strategy.POSTCOPY_AFTER_FIRST_PASS else 0

    def _elapsed(self, stats):
        if stats.get('total_time_ms') is not None:
            return stats['total_time_ms'] / 1000.0
        return time.monotonic() - self._job.started_at

    def _downtime_steps(self, elapsed):
        due = None
        while (self._next_step < len(self._steps)
               and self._steps[self._next_step][0] <= elapsed):
            due = self._steps[self._next_step]
            self._next_step += 1
        if due is None or self._next_step == 1:
            return      # the first step is set before the job starts
        try:
            self._driver.set_max_downtime(self._job.instance_uuid, due[1])
        except exception.MigrationConductorError as exc:
            self._event(Kind.ACTION_FAILED, elapsed, 'could not raise the downtime '
                        'allowed to %d ms: %s' % (due[1], exc), level=logging.WARNING)
            return
        self._event(Kind.DOWNTIME_STEP, elapsed, 'downtime allowed raised to %d ms '
                    '(step %d of %d, due at %d s)' % (due[1], self._next_step - 1,
                                                     len(self._steps) - 1, due[0]))

    def _timeout(self, elapsed, budget):
        action = self._plan.on_timeout
        why = 'the completion budget of %.0f s ran out' % budget
        if action == Action.POSTCOPY and self._plan.postcopy_allowed:
            self._switch(elapsed, why, timeout=True)
        elif action == Action.ABORT:
            self._abort(elapsed, why)
        else:
            self._pause(elapsed, why)

    def _switch(self, elapsed, why, timeout=False):
        self._postcopy_asked_at = elapsed
        self._postcopy_reason = why
        self._postcopy_is_timeout = timeout
        self._job.postcopy_requested = True
        try:
            self._driver.start_postcopy(self._job.instance_uuid)
        except exception.MigrationConductorError as exc:
            # NOTE: a request that timed out may still switch: the statistics decide.
            self._event(Kind.ACTION_FAILED, elapsed, 'the request to switch to '
                        'post-copy failed (%s); watching the job\'s statistics' % exc,
                        level=logging.WARNING)
            return
        self._event(Kind.POSTCOPY_REQUESTED, elapsed, 'switch to post-copy requested: '
                    '%s' % why)

    def _confirmed(self, elapsed):
        if self.in_postcopy:
            return
        self.in_postcopy = True
        if self._job.postcopy:
            return      # an operator's force-complete switched it, and that was reported
        self._job.postcopy = True
        self._event(Kind.POSTCOPY_STARTED, elapsed, 'the job runs in post-copy (seen in '
                    'its statistics%s): the destination runs the guest from now on'
                    % ('' if self._postcopy_asked_at is None else
                       ', %.1f s after the request' % (elapsed - self._postcopy_asked_at)))

    def _check_confirmation(self, elapsed):
        if elapsed - self._postcopy_asked_at < self._plan.postcopy_confirm_s:
            return
        asked, self._postcopy_asked_at = self._postcopy_asked_at, None
        self._event(Kind.ACTION_FAILED, elapsed, 'the switch to post-copy requested at '
                    '%.1f s did not show in the job\'s statistics within %.0f s'
                    % (asked, self._plan.postcopy_confirm_s), level=logging.ERROR)
        if self._postcopy_is_timeout:
            self._pause(elapsed, 'the switch to post-copy did not happen')
        else:
            # Not asked again: the budget (if any) decides what happens next.
            self._plan.strategy = fields.Strategy.PRECOPY
            self._plan.postcopy_after_pass = 0

    def _pause(self, elapsed, why):
        try:
            self._driver.pause_instance(self._job.instance_uuid)
        except exception.MigrationConductorError as exc:
            self._event(Kind.ACTION_FAILED, elapsed, 'could not pause the guest (%s): '
                        '%s' % (why, exc), level=logging.ERROR)
            return
        self._job.force_completed = True
        self._event(Kind.PAUSED, elapsed, 'guest paused so that pre-copy converges: %s'
                    % why)

    def _abort(self, elapsed, why):
        self._event(Kind.ABORT_REQUESTED, elapsed, 'aborting the job: %s; the guest '
                    'stays on %s' % (why, self._jobs.host), level=logging.WARNING)
        try:
            self._driver.abort_job(self._job.instance_uuid)
        except exception.MigrationConductorError as exc:
            self._event(Kind.ACTION_FAILED, elapsed, 'could not abort the job: %s' % exc,
                        level=logging.ERROR)

    def _event(self, kind, elapsed, message, level=logging.INFO):
        report(self._jobs, self._job, kind, elapsed, message, level=level,
               profile=self._plan.profile)


def report(jobs, job, kind, elapsed, message, level=logging.INFO, profile=None):
    """Log a decision about ``job`` and report it to the conductor as an event."""
    LOG.log(level, 'Migration %s instance %s: on host %s%s%s: %s', job.migration_uuid,
            job.instance_uuid, jobs.host,
            '' if elapsed is None else ' at %.1f s of the job' % elapsed,
            '' if profile is None else ' (profile %s)' % profile, message)
    jobs.report_event(job, objects.MigrationEvent(
        migration_uuid=job.migration_uuid, kind=kind, host=jobs.host,
        job_elapsed_s=None if elapsed is None else round(elapsed, 3), message=message))


def _mib(value):
    return '?' if value is None else '%.0f' % (value / 2 ** 20)
