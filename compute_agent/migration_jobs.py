"""Outgoing live migrations of this host: start them, watch them, answer about them.

libvirt and QEMU own a running migration job; this module only starts it (in a thread,
since ``live_migrate`` blocks until the job ends), remembers how it ended, and reads its
statistics. If the agent restarts while a job runs, the job goes on in libvirtd and
:meth:`MigrationJobs.status` finds it again from libvirt alone.

Concurrency: RPC threads call in concurrently; one lock guards the job table, and each
job's thread writes only its own record.
"""

import logging
import threading
import time

from migration_conductor import exception

LOG = logging.getLogger(__name__)

RUNNING = 'running'
COMPLETED = 'completed'
FAILED = 'failed'
CANCELLED = 'cancelled'
NOT_RUNNING = 'not-running'   # the guest is here and no job runs
GONE = 'gone'                 # the guest is not on this host and no record says why

_LIBVIRT_ACTIVE = ('unbounded', 'bounded')

# NOTE: how often start() asks whether the job runs yet: after 5 ms, then twice as long
# each time up to 50 ms. With a fixed 50 ms, start_migration answered 65 ms after it
# was called (median of 3 bench runs of 10 migrations on the lab) while the job was
# active about 10 ms in: libvirt reports the job 2.6 ms (2.6-4.0, 10 migrations) after
# migrateToURI3 is called, which the job's thread reaches 5-7 ms after it starts
# (its own connection, the domain, the maximum downtime), so the first ask, at once,
# never finds it and the second came 50 ms later. Each ask is two or three libvirt
# calls on the shared connection; the growing interval keeps a slow start cheap.
START_POLL_FIRST = 0.005
START_POLL_MAX = 0.05


class _Job:
    def __init__(self, migration_uuid, instance_uuid):
        self.migration_uuid = migration_uuid
        self.instance_uuid = instance_uuid
        self.state = RUNNING
        self.error = None
        self.final_stats = None
        self.force_completed = False
        self.done = threading.Event()


class MigrationJobs:
    """The outgoing migration jobs of one host."""

    def __init__(self, host, driver, start_timeout, on_end=None):
        """:param on_end: called as ``on_end(migration_uuid, instance_uuid, state)``
            from the job's thread when a job ends (the agent tells the conductor)."""
        self.host = host
        self._driver = driver
        self._start_timeout = start_timeout
        self._on_end = on_end
        self._jobs = {}
        self._lock = threading.Lock()

    def start(self, migration_uuid, instance_uuid, dest_uri, migrate_uri, options):
        """Start the migration; return once libvirt runs the job (or it already ended).

        Idempotent: a second call for the same migration answers with its status.
        :raises MigrationJobFailed: the job did not start or failed at once.
        """
        with self._lock:
            job = self._jobs.get(migration_uuid)
            if job is None:
                job = _Job(migration_uuid, instance_uuid)
                self._jobs[migration_uuid] = job
                thread = threading.Thread(
                    target=self._run, name='migrate-%s' % migration_uuid,
                    args=(job, dest_uri, migrate_uri, options), daemon=True)
                thread.start()
                LOG.info('Migration %(m)s instance %(i)s: started from host %(host)s to '
                         '%(dest)s (data via %(uri)s)',
                         {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                          'dest': dest_uri, 'uri': migrate_uri})
        deadline = time.monotonic() + self._start_timeout
        interval = START_POLL_FIRST
        while not job.done.is_set() and time.monotonic() < deadline:
            stats = self._driver.get_job_stats(instance_uuid)
            if stats and stats['type'] in _LIBVIRT_ACTIVE:
                break
            job.done.wait(interval)
            interval = min(interval * 2, START_POLL_MAX)
        status = self.status(migration_uuid, instance_uuid)
        if status['state'] == FAILED:
            raise exception.MigrationJobFailed(instance_uuid=instance_uuid, host=self.host,
                                               reason=status['error'])
        return status

    def _run(self, job, dest_uri, migrate_uri, options):
        try:
            self._driver.live_migrate(job.instance_uuid, dest_uri, migrate_uri, options)
        except exception.MigrationJobCancelled as exc:
            job.state, job.error = CANCELLED, str(exc)
        except Exception as exc:  # the job's outcome, reported to the conductor
            job.state, job.error = FAILED, str(exc)
        else:
            job.state = COMPLETED
        LOG.info('Migration %(m)s instance %(i)s: job on host %(host)s ended: %(state)s'
                 '%(error)s', {'m': job.migration_uuid, 'i': job.instance_uuid,
                               'host': self.host, 'state': job.state,
                               'error': ' (%s)' % job.error if job.error else ''})
        job.done.set()
        if self._on_end is not None:
            try:
                self._on_end(job.migration_uuid, job.instance_uuid, job.state)
            except Exception:  # the conductor also polls: a lost notice only delays
                LOG.exception('Migration %s instance %s: could not report the end of '
                              'the job', job.migration_uuid, job.instance_uuid)

    def status(self, migration_uuid, instance_uuid):
        """Return ``{'state', 'stats', 'error', 'force_completed'}`` of a migration.

        ``state`` is running, completed, failed, cancelled, not-running (no job, the
        guest is here) or gone (no job, the guest is not here: ask the destination).
        """
        with self._lock:
            job = self._jobs.get(migration_uuid)
        stats = self._driver.get_job_stats(instance_uuid)
        if job is not None:
            return {'state': job.state, 'stats': stats, 'error': job.error,
                    'force_completed': job.force_completed}
        # Not started by this agent process: read the truth from libvirt alone.
        if stats is None:
            return {'state': GONE, 'stats': None, 'error': None, 'force_completed': False}
        state = RUNNING if stats['type'] in _LIBVIRT_ACTIVE else NOT_RUNNING
        return {'state': state, 'stats': stats, 'error': None, 'force_completed': False}

    def abort(self, migration_uuid, instance_uuid):
        """Ask libvirt to abort the job; return whether a job was running."""
        aborted = self._driver.abort_job(instance_uuid)
        LOG.info('Migration %(m)s instance %(i)s: abort requested on host %(host)s '
                 '(%(what)s)', {'m': migration_uuid, 'i': instance_uuid, 'host': self.host,
                                'what': 'job aborted' if aborted else 'no job running'})
        return aborted

    def force_complete(self, migration_uuid, instance_uuid):
        """Pause the guest so that pre-copy converges; the destination resumes it."""
        self._driver.pause_instance(instance_uuid)
        with self._lock:
            job = self._jobs.get(migration_uuid)
            if job is not None:
                job.force_completed = True
        LOG.info('Migration %(m)s instance %(i)s: paused on host %(host)s to force the '
                 'migration to complete', {'m': migration_uuid, 'i': instance_uuid,
                                           'host': self.host})

    def forget(self, migration_uuid):
        with self._lock:
            self._jobs.pop(migration_uuid, None)
