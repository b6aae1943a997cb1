"""The job monitor of the source agent: it watches a migration job where it runs.

DESIGN step 8: the source agent follows its libvirt job locally and reports it to the
conductor, which persists and logs what it hears; the conductor asks the agent itself
only when the source has been silent for too long. One :class:`JobMonitor` thread per
outgoing job reads libvirt's job statistics every report interval and sends them as a
``migration_progress`` cast. The job's end is reported by the thread that ran the job
the moment ``live_migrate`` returns; for a job this agent found running after a restart
(no thread of its own blocks in ``migrateToURI3``), the monitor sees the end itself.

A job started with a completion plan is also steered here: every reading goes to its
:class:`~compute_agent.completion.CompletionController` (downtime steps, the switch to
post-copy, a pause or an abort when the budget runs out), which then reads the job
every :data:`PLAN_TICK` seconds at least (progress is still reported every report
interval).

A reading that fails or times out (libvirt's calls are bounded, LAB.md) is only logged:
it never ends or aborts the job. Only the job's own state decides its outcome.

Concurrency: a daemon thread per job; it writes its job's record only through
:meth:`MigrationJobs.job_ended <compute_agent.migration_jobs.MigrationJobs.job_ended>`
(which is idempotent) and calls the reporter, which must not block for long (casts
without retries).
"""

import logging
import threading
import time

from compute_agent import completion
from migration_conductor import exception
from migration_conductor.objects import fields

LOG = logging.getLogger(__name__)

# Failed readings in a row after which each further one is logged at debug level only.
_LOUD_FAILURES = 3
# Seconds between two readings of a job that has a completion plan (its decisions,
# e.g. the switch after the first pass, should not wait a whole report interval).
PLAN_TICK = 0.2


class JobMonitor(threading.Thread):
    """Watches one job of :class:`~compute_agent.migration_jobs.MigrationJobs`."""

    def __init__(self, jobs, job):
        super().__init__(name='monitor-%s' % job.migration_uuid, daemon=True)
        self._jobs = jobs
        self._job = job
        self._driver = jobs._driver
        self.readings = 0
        self.failures = 0

    def run(self):
        job = self._job
        ids = {'m': job.migration_uuid, 'i': job.instance_uuid, 'host': self._jobs.host}
        LOG.debug('Migration %(m)s instance %(i)s: monitor of the job on host %(host)s '
                  'started', ids)
        failed_in_a_row = 0
        controller = None
        tick = job.report_interval
        if job.plan is not None:
            controller = completion.CompletionController(self._jobs, job, job.plan)
            tick = min(tick, PLAN_TICK)
        reported_at = 0.0
        while not job.done.wait(tick):
            try:
                stats = self._driver.get_job_stats(job.instance_uuid)
            except exception.MigrationConductorError as exc:
                failed_in_a_row += 1
                self.failures += 1
                LOG.log(logging.WARNING if failed_in_a_row <= _LOUD_FAILURES
                        else logging.DEBUG,
                        'Migration %(m)s instance %(i)s: could not read the job\'s '
                        'statistics on host %(host)s (%(error)s, %(n)d in a row); the '
                        'job goes on', dict(ids, error=exc, n=failed_in_a_row))
                continue
            failed_in_a_row = 0
            self.readings += 1
            if job.done.is_set():
                break
            if stats is not None and stats['type'] in fields.JobType.ACTIVE:
                if controller is not None:
                    controller.step(stats)
                if time.monotonic() - reported_at >= job.report_interval * 0.999:
                    reported_at = time.monotonic()
                    self._jobs.job_progress(job, stats)
            elif job.adopted:
                self._adopted_job_ended(stats)
                break
        LOG.debug('Migration %(m)s instance %(i)s: monitor of the job on host %(host)s '
                  'stopped (%(state)s)', dict(ids, state=job.state))

    def _adopted_job_ended(self, stats):
        """A job found running after a restart is no longer active: say how it ended,
        as far as the source can tell (the destination has the rest)."""
        if stats is None:
            state = fields.JobState.GONE
        elif stats['type'] == fields.JobType.COMPLETED:
            state = fields.JobState.COMPLETED
        elif stats['type'] == fields.JobType.CANCELLED:
            state = fields.JobState.CANCELLED
        elif stats['type'] == fields.JobType.FAILED:
            state = fields.JobState.FAILED
        else:
            state = fields.JobState.NOT_RUNNING
        self._jobs.job_ended(self._job, state)
