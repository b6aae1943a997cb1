"""Outgoing live migrations of this host: start them, watch them, answer about them.

libvirt and QEMU own a running migration job; this module starts it (in a thread of its
own, since ``live_migrate`` blocks until the job ends), has it watched where it runs
(:mod:`compute_agent.migration_monitor`: progress reported to the conductor every
report interval), reports its end the moment it happens, and answers the conductor's
questions about it.

The truth is libvirt's. If this agent restarts while a job runs, the job goes on in
libvirtd: :meth:`MigrationJobs.start` asked again for the same migration reads libvirt
first and never issues a second ``migrateToURI3`` for a guest whose job already runs
(it watches that job) or already left (the guest is gone from this host), and
:meth:`MigrationJobs.status` and :meth:`MigrationJobs.adopt` take over the watching of a
job found running.

Concurrency: RPC threads call in concurrently. One lock guards the job table; a second
one serializes the starts of this host, so that reading libvirt back and creating the
job are one step; each job's threads write only its own record.
"""

import logging
import threading
import time

from compute_agent import completion
from compute_agent import migration_monitor
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import fields

LOG = logging.getLogger(__name__)

JobState = fields.JobState
# Seconds between two progress reports of a job started by a conductor that sends no
# interval (RPC 1.1-1.3).
DEFAULT_REPORT_INTERVAL = 1.0
# NOTE: how often start() asks whether the job runs yet: after 5 ms, then twice as long
# each time up to 50 ms. With a fixed 50 ms, start_migration answered 65 ms after it
# was called (median of 3 bench runs of 10 migrations on the lab) while the job was
# active about 10 ms in: libvirt reports the job 2.6 ms (2.6-4.0, 10 migrations) after
# migrateToURI3 is called, which the job's thread reaches 5-7 ms after it starts
# (its own connection, the domain, the maximum downtime). Each ask is two or three
# libvirt calls on the shared connection; the growing interval keeps a slow start
# cheap.
START_POLL_FIRST = 0.005
# Seconds before each attempt to resume a post-copy whose job failed (its stream
# broke): about half a minute in all, the longest a network blip is waited for.
POSTCOPY_RESUME_WAITS = (1, 2, 4, 8, 15)
# Seconds a resumed post-copy may move no memory before the attempt is given up.
# NOTE: on the lab (TCG) a resume can hang for ever: the destination QEMU's vCPU waits,
# holding QEMU's big lock, for a page only the resumed stream would bring, so its
# monitor never answers the query libvirt's resume makes (gdb: the vCPU thread in a
# page walk under do_interrupt_all, the main loop waiting for the lock, libvirtd's
# Prepare in query-migrate, the source's Perform waiting for it). The job's
# statistics stay readable on the shared connection, and show no byte moving.
POSTCOPY_RESUME_STALL_S = 30.0
# Seconds between two readings of a resumed job's statistics.
POSTCOPY_RESUME_POLL_S = 1.0
START_POLL_MAX = 0.05


class _Job:
    """One outgoing migration job (its threads write it, the table's lock guards it)."""

    def __init__(self, migration_uuid, instance_uuid, report_interval, adopted=False,
                 state=JobState.RUNNING, plan=None):
        self.migration_uuid = migration_uuid
        self.instance_uuid = instance_uuid
        self.report_interval = report_interval
        # What the monitor does to complete the job (CompletionPlan), or None.
        self.plan = plan
        self.started_at = time.monotonic()
        self.postcopy = False           # the job switched to post-copy (seen)
        self.postcopy_requested = False
        # Found in libvirt (this agent did not start it): its end is seen by the
        # monitor, not by a thread blocked in live_migrate.
        self.adopted = adopted
        self.state = state
        self.error = None
        self.force_completed = False
        self.done = threading.Event()
        if state != JobState.RUNNING:
            self.done.set()


class MigrationJobs:
    """The outgoing migration jobs of one host."""

    def __init__(self, host, driver, start_timeout, reporter=None):
        """:param reporter: an object with ``progress(job)`` and ``ended(job)``
            (MigrationJob objects), called from the job's threads: the agent tells the
            conductor. None: nothing is reported (the conductor asks)."""
        self.host = host
        self._driver = driver
        self._start_timeout = start_timeout
        self._reporter = reporter
        self._jobs = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()

    # --- start ---------------------------------------------------------------------------

    def start(self, spec):
        """Start the migration ``spec`` describes; return once libvirt runs the job (or
        it has already ended).

        Idempotent, across agent restarts too: asked again for the same migration, the
        agent answers with the job it knows; not knowing it (it restarted), it reads
        libvirt and watches a job already running, or answers ``gone`` when the guest
        has left this host, or ``completed`` when libvirt says the job finished. Only
        a guest that is here with no job gets a (first) ``migrateToURI3``.

        :param spec: MigrationSpec.
        :returns: MigrationJob.
        :raises MigrationJobFailed: the job did not start or failed at once.
        :raises HypervisorUnavailable, HypervisorCallFailed: libvirt could not say
            whether a job runs (nothing is started); a reading that fails once the job
            is started is only logged.
        """
        with self._start_lock:
            job = self._get(spec.migration_uuid)
            if job is None:
                job = self._start_or_find(spec)
        deadline = time.monotonic() + self._start_timeout
        interval = START_POLL_FIRST
        while not job.done.is_set() and time.monotonic() < deadline:
            # The job is started (or known): a failed reading must not fail the start,
            # whose failure would abort the job.
            stats = self._stats_or_none(job, 'while it starts; asking again')
            if stats and stats['type'] in fields.JobType.ACTIVE:
                break
            job.done.wait(interval)
            interval = min(interval * 2, START_POLL_MAX)
        status = self.status(spec.migration_uuid, spec.instance_uuid)
        if status.state == JobState.FAILED:
            raise exception.MigrationJobFailed(instance_uuid=spec.instance_uuid,
                                               host=self.host, reason=status.error)
        return status

    def _start_or_find(self, spec):
        """The job of ``spec``: found running or ended in libvirt, or started now."""
        ids = {'m': spec.migration_uuid, 'i': spec.instance_uuid, 'host': self.host}
        stats = self._driver.get_job_stats(spec.instance_uuid)
        if stats is None:
            LOG.warning('Migration %(m)s instance %(i)s: not starting it: the guest is '
                        'not on host %(host)s (it may have left already)', ids)
            return self._record(_Job(spec.migration_uuid, spec.instance_uuid,
                                     spec.report_interval, adopted=True,
                                     state=JobState.GONE))
        if stats['type'] in fields.JobType.ACTIVE:
            LOG.warning('Migration %(m)s instance %(i)s: its job already runs in libvirt '
                        'on host %(host)s (this agent restarted): watching it, not '
                        'starting another', ids)
            return self._adopted(spec.migration_uuid, spec.instance_uuid,
                                 spec.report_interval)
        if stats['type'] == fields.JobType.COMPLETED:
            LOG.warning('Migration %(m)s instance %(i)s: libvirt on host %(host)s says '
                        'its job completed already: not starting another', ids)
            return self._record(_Job(spec.migration_uuid, spec.instance_uuid,
                                     spec.report_interval, adopted=True,
                                     state=JobState.COMPLETED))
        job = self._record(_Job(spec.migration_uuid, spec.instance_uuid,
                                spec.report_interval, plan=spec.plan))
        thread = threading.Thread(target=self._run, args=(job, spec), daemon=True,
                                  name='migrate-%s' % spec.migration_uuid)
        thread.start()
        self._watch(job)
        LOG.info('Migration %(m)s instance %(i)s: started from host %(host)s to %(dest)s '
                 '(%(uri)s, data via %(data)s)',
                 dict(ids, dest=spec.dest_host, uri=spec.dest_uri,
                      data=spec.migrate_uri))
        return job

    def _stats_or_none(self, job, then):
        """libvirt's statistics of ``job``'s guest, or None (logged, with ``then``)
        when they cannot be read."""
        try:
            return self._driver.get_job_stats(job.instance_uuid)
        except exception.MigrationConductorError as exc:
            LOG.warning('Migration %s instance %s: could not read the job\'s statistics '
                        'on host %s (%s); %s', job.migration_uuid, job.instance_uuid,
                        self.host, exc, then)
            return None

    def _record(self, job):
        with self._lock:
            self._jobs[job.migration_uuid] = job
        return job

    def _get(self, migration_uuid):
        with self._lock:
            return self._jobs.get(migration_uuid)

    def _adopted(self, migration_uuid, instance_uuid, report_interval):
        job = self._record(_Job(migration_uuid, instance_uuid, report_interval,
                                adopted=True))
        self._watch(job)
        return job

    def _watch(self, job):
        migration_monitor.JobMonitor(self, job).start()

    def _run(self, job, spec):
        try:
            self._driver.live_migrate(job.instance_uuid, spec.dest_uri, spec.migrate_uri,
                                      spec.options.to_driver())
        except exception.MigrationJobCancelled as exc:
            self.job_ended(job, JobState.CANCELLED, str(exc))
        except Exception as exc:  # the job's outcome, reported to the conductor
            if not self._failed_in_postcopy(job):
                self.job_ended(job, JobState.FAILED, str(exc))
                return
            job.postcopy = True
            failure = self._recover_postcopy(job, spec, exc)
            if failure is None:
                self.job_ended(job, JobState.COMPLETED)
            else:
                self.job_ended(job, JobState.FAILED, 'failed after the switch to '
                               'post-copy: %s' % failure)
        else:
            self.job_ended(job, JobState.COMPLETED)

    def _recover_postcopy(self, job, spec, cause):
        """Resume a post-copy whose job failed (its stream broke, say): attempts after
        each of :data:`POSTCOPY_RESUME_WAITS`, as long as the destination still has the
        guest. Returns None once the migration completed, else why it cannot.

        NOTE: no agent asks the destination: libvirt's resume (peer to peer) finds out
        itself whether the destination still holds the guest, and says so at once.
        """
        ids = (job.migration_uuid, job.instance_uuid, self.host)
        last = cause
        for attempt, wait in enumerate(POSTCOPY_RESUME_WAITS, start=1):
            completion.report(self, job, fields.MigrationEventKind.POSTCOPY_INTERRUPTED,
                              None, 'the post-copy job failed (%s); resuming it in %s s '
                              '(attempt %d of %d)' % (last, wait, attempt,
                                                      len(POSTCOPY_RESUME_WAITS)),
                              level=logging.WARNING)
            time.sleep(wait)
            try:
                self._resume_watched(job, spec)
            except exception.PostcopyUnrecoverable as exc:
                LOG.error('Migration %s instance %s: the post-copy from host %s cannot '
                          'be resumed: %s', *ids, exc)
                return exc
            except Exception as exc:  # this attempt failed; the next may not
                last = exc
                continue
            completion.report(self, job, fields.MigrationEventKind.POSTCOPY_RECOVERED,
                              None, 'the post-copy job was resumed (attempt %d) and '
                              'completed' % attempt)
            return None
        return last

    def _resume_watched(self, job, spec):
        """One attempt to resume the post-copy of ``job``; returns once it completed.

        The resume's ``migrateToURI3`` runs in a thread of its own and is watched from
        here: an attempt whose job moves no memory for :data:`POSTCOPY_RESUME_STALL_S`
        seconds is given up (its thread is left blocked in libvirt; the source's copy
        stays paused).

        :raises PostcopyUnrecoverable: the destination has nothing to resume, or the
            resume stalled.
        :raises: whatever else the attempt raised (the next one may succeed).
        """
        outcome = {}
        finished = threading.Event()

        def resume():
            try:
                self._driver.resume_postcopy(job.instance_uuid, spec.dest_uri,
                                             spec.migrate_uri, spec.options.to_driver())
            except Exception as exc:  # handed to the watching thread
                outcome['error'] = exc
            finally:
                finished.set()

        threading.Thread(target=resume, daemon=True,
                         name='resume-%s' % job.migration_uuid).start()
        moved, since = None, time.monotonic()
        while not finished.wait(POSTCOPY_RESUME_POLL_S):
            stats = self._stats_or_none(job, 'the resume goes on')
            if stats is None:
                continue
            if stats.get('memory_processed') != moved:
                moved, since = stats.get('memory_processed'), time.monotonic()
            elif time.monotonic() - since >= POSTCOPY_RESUME_STALL_S:
                raise exception.PostcopyUnrecoverable(
                    instance_uuid=job.instance_uuid, host=self.host,
                    reason='the resumed job moved no memory in %d s (the destination\'s '
                           'QEMU does not answer); its copy on host %s stays paused'
                           % (POSTCOPY_RESUME_STALL_S, self.host))
        if 'error' in outcome:
            raise outcome['error']

    def _failed_in_postcopy(self, job):
        """Whether the failed job had switched to post-copy (then the copy here is
        incomplete: the conductor must not roll back). When libvirt cannot tell, a
        switch this agent saw or asked for counts."""
        if job.postcopy:
            return True
        try:
            return self._driver.in_postcopy(job.instance_uuid)
        except exception.MigrationConductorError as exc:
            LOG.error('Migration %s instance %s: could not read whether the failed job '
                      'had switched to post-copy on host %s (%s); taking it as switched '
                      'if a switch was asked', job.migration_uuid, job.instance_uuid,
                      self.host, exc)
            return job.postcopy_requested

    # --- the job's end and its reports ----------------------------------------------------

    def job_ended(self, job, state, error=None):
        """Record how ``job`` ended and tell the conductor at once (job threads)."""
        if job.done.is_set():
            return
        job.state, job.error = state, error
        job.done.set()
        LOG.info('Migration %(m)s instance %(i)s: job on host %(host)s ended: %(state)s'
                 '%(error)s', {'m': job.migration_uuid, 'i': job.instance_uuid,
                               'host': self.host, 'state': state,
                               'error': ' (%s)' % error if error else ''})
        self._report('ended', self._describe(job, None))

    def job_progress(self, job, stats):
        """Report one reading of a running job's statistics (monitor thread)."""
        self._report('progress', self._describe(job, stats))

    def report_event(self, job, event):
        """Report a decision of the job's monitor (a MigrationEvent) to the conductor."""
        if self._reporter is None:
            return
        try:
            self._reporter.event(event)
        except Exception as exc:  # the decision is in this agent's log anyway
            LOG.warning('Migration %s instance %s: could not report the %s event to the '
                        'conductor (%s)', job.migration_uuid, job.instance_uuid,
                        event.kind, exc)

    def _report(self, what, job):
        if self._reporter is None:
            return
        try:
            getattr(self._reporter, what)(job)
        except Exception as exc:  # the conductor asks when it hears nothing
            LOG.warning('Migration %s instance %s: could not report the job\'s %s to the '
                        'conductor (%s); it will ask', job.migration_uuid,
                        job.instance_uuid, what, exc)

    def _describe(self, job, stats):
        return objects.MigrationJob(
            migration_uuid=job.migration_uuid, instance_uuid=job.instance_uuid,
            host=self.host, state=job.state,
            progress=None if not stats else objects.JobProgress.from_stats(stats),
            error=job.error, force_completed=job.force_completed, postcopy=job.postcopy)

    # --- answers -----------------------------------------------------------------------------

    def status(self, migration_uuid, instance_uuid, report_interval=None):
        """Return the MigrationJob of a migration, with a fresh reading of libvirt.

        For a migration this agent does not know (it restarted), libvirt alone says:
        ``running`` (and the job is watched again from now on, reported every
        ``report_interval`` seconds, when given), ``completed``, ``not-running`` (the
        guest is here, no job runs) or ``gone`` (the guest is not here: ask the
        destination).

        :raises HypervisorUnavailable, HypervisorCallFailed: libvirt could not be read
            for a migration this agent does not know (its state cannot be told).
        """
        job = self._get(migration_uuid)
        if job is not None:
            return self._describe(job, self._stats_or_none(job, 'answering without them'))
        stats = self._driver.get_job_stats(instance_uuid)
        if stats is None:
            state = JobState.GONE
        elif stats['type'] in fields.JobType.ACTIVE:
            if report_interval:
                with self._start_lock:
                    if self._get(migration_uuid) is None:
                        LOG.info('Migration %s instance %s: its job runs in libvirt on '
                                 'host %s; watching it again', migration_uuid,
                                 instance_uuid, self.host)
                        self._adopted(migration_uuid, instance_uuid, report_interval)
            state = JobState.RUNNING
        elif stats['type'] == fields.JobType.COMPLETED:
            state = JobState.COMPLETED
        else:
            state = JobState.NOT_RUNNING
        return objects.MigrationJob(
            migration_uuid=migration_uuid, instance_uuid=instance_uuid, host=self.host,
            state=state,
            progress=None if stats is None else objects.JobProgress.from_stats(stats))

    def adopt(self, migration_uuid, instance_uuid, report_interval):
        """Watch again the job of a migration leaving this host, if libvirt runs it.

        Called at registration for the migrations the conductor lists as leaving this
        host (after a restart). A job not running is left for the conductor to ask
        about. Returns whether a job is watched.
        """
        if self._get(migration_uuid) is not None:
            return True
        try:
            status = self.status(migration_uuid, instance_uuid,
                                 report_interval=report_interval)
        except exception.MigrationConductorError as exc:
            LOG.warning('Migration %s instance %s: could not read libvirt to watch its '
                        'job again (%s); the conductor will ask', migration_uuid,
                        instance_uuid, exc)
            return False
        return status.state == JobState.RUNNING

    def abort(self, migration_uuid, instance_uuid):
        """Ask libvirt to abort the job; return whether a job was running."""
        aborted = self._driver.abort_job(instance_uuid)
        LOG.info('Migration %(m)s instance %(i)s: abort requested on host %(host)s '
                 '(%(what)s)', {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                                'what': 'job aborted' if aborted else 'no job running'})
        return aborted

    def force_complete(self, migration_uuid, instance_uuid,
                       mode=fields.CompletionAction.PAUSE, confirm_s=10.0):
        """Make the running job complete now.

        ``pause``: pause the guest so that pre-copy converges (the destination resumes
        it). ``postcopy``: switch the job to post-copy and wait until its statistics
        show the switch (at most ``confirm_s`` seconds).

        :returns: True once done (for post-copy: confirmed).
        :raises HypervisorCallFailed: the switch to post-copy was refused or did not
            show in the job's statistics in time (nothing else was done).
        """
        ids = {'m': migration_uuid, 'i': instance_uuid, 'host': self.host}
        job = self._get(migration_uuid)
        if mode == fields.CompletionAction.POSTCOPY:
            if job is not None:
                job.postcopy_requested = True
            self._driver.start_postcopy(instance_uuid)
            deadline = time.monotonic() + confirm_s
            while True:
                stats = self._driver.get_job_stats(instance_uuid)
                if stats is not None and stats.get('postcopy'):
                    break
                if stats is None or stats['type'] not in fields.JobType.ACTIVE:
                    # The job ended meanwhile (completed): nothing left to force.
                    LOG.info('Migration %(m)s instance %(i)s: the job ended on host '
                             '%(host)s before it showed post-copy', ids)
                    return True
                if time.monotonic() >= deadline:
                    raise exception.HypervisorCallFailed(
                        host=self.host, action='switch to post-copy the job of',
                        instance_uuid=instance_uuid,
                        reason='the switch did not show in the job\'s statistics '
                               'within %.0f s' % confirm_s)
                time.sleep(0.05)
            if job is not None:
                job.postcopy = True
            LOG.info('Migration %(m)s instance %(i)s: switched to post-copy on host '
                     '%(host)s to force the migration to complete (confirmed from the '
                     'job\'s statistics)', ids)
            return True
        self._driver.pause_instance(instance_uuid)
        if job is not None:
            job.force_completed = True
        LOG.info('Migration %(m)s instance %(i)s: paused on host %(host)s to force the '
                 'migration to complete', ids)
        return True

    def forget(self, migration_uuid):
        with self._lock:
            self._jobs.pop(migration_uuid, None)

    def watched(self):
        """The migration ids whose job this agent watches now."""
        with self._lock:
            return sorted(m for m, job in self._jobs.items() if not job.done.is_set())
