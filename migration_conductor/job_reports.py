"""What source agents report about their migration jobs: recorded, logged, announced.

DESIGN step 8: the source agent's monitor (:mod:`compute_agent.migration_monitor`)
sends a progress reading of its running job every report interval and the job's end
the moment it happens. Whichever conductor receives a report (a cast to the topic may
reach any of them) records it here, in one conditional write: the figures become the
migration's latest, a ``migration_progress`` row keeps the reading, and the job's end
is written as ``job_state``; a report that arrives once the migration has moved on
(the job ended, the abort went through) changes nothing. The monitor task of the
conductor that drives the flow (:class:`~migration_conductor.flows.tasks.agent_tasks.
MonitorMigration`) reads these records; when it runs in this conductor it is also woken
at once (:class:`JobEvents`).

Concurrency: called from RPC threads; every write is its own transaction.
"""

import logging
import threading

from oslo_utils import timeutils

from db import api as db_api
from migration_conductor import exception
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

_MIB = 1024 * 1024
# The statuses in which a migration's job runs (or is being aborted), so that reports
# about it are recorded.
JOB_RUNNING_STATES = (states.RUNNING, states.RUNNING_POSTCOPY, states.CANCELLING)
# What a report may carry into the migration_progress table.
PROGRESS_RECORD_COLUMNS = db_api.PROGRESS_COLUMNS + ('postcopy',)


class JobEvents:
    """Wakes the monitor of a flow running in this conductor when a report arrives.

    A report may reach another conductor, or be lost: waiting is always bounded, so a
    missed wake-up only delays. Thread-safe: RPC threads notify, flow threads wait.
    """

    def __init__(self):
        self._events = {}
        self._lock = threading.Lock()

    def _event(self, migration_uuid):
        with self._lock:
            return self._events.setdefault(migration_uuid, threading.Event())

    def notify(self, migration_uuid):
        self._event(migration_uuid).set()

    def wait(self, migration_uuid, timeout):
        """Wait up to ``timeout`` s for a report; return whether one came."""
        event = self._event(migration_uuid)
        notified = event.wait(timeout)
        event.clear()
        return notified

    def forget(self, migration_uuid):
        with self._lock:
            self._events.pop(migration_uuid, None)


def mib(value):
    return None if value is None else round(value / _MIB, 1)


def describe_progress(progress):
    """One line of a job's progress for the logs (MiB, MiB/s, ms)."""
    if progress is None:
        return 'no statistics'
    disks = ''
    if progress.disk_total:
        disks = ', disks %s/%s MiB copied' % (mib(progress.disk_processed),
                                              mib(progress.disk_total))
    return ('memory %s MiB sent (of %s MiB, pages sent again included), %s MiB '
            'remaining, iteration %s, dirty rate %s MiB/s, expected downtime %s ms%s%s'
            % (mib(progress.memory_processed), mib(progress.memory_total),
               mib(progress.memory_remaining), progress.iteration,
               mib(progress.dirty_rate), progress.expected_downtime_ms,
               ', post-copy' if progress.postcopy else '', disks))


def record_progress(context, job, origin='push', generation=None):
    """Record one progress reading of a running job; return the row, or None.

    :param job: MigrationJob (state running, with progress).
    :param origin: ``push`` (the agent sent it) or ``poll`` (the conductor asked).
    :param generation: the writer's ownership generation (a conductor's own reading),
        see :func:`db.api.migration_update`.
    :raises OwnershipLost: with ``generation``, another conductor drives it now.
    """
    if job.progress is None:
        return None
    try:
        row = db_api.migration_progress_record(
            context, job.migration_uuid, job.progress.values(PROGRESS_RECORD_COLUMNS),
            origin, expected_status=JOB_RUNNING_STATES, generation=generation)
    except exception.MigrationNotFound:
        LOG.warning('Migration %s instance %s: progress from host %s about a migration '
                    'this conductor does not know; ignored', job.migration_uuid,
                    job.instance_uuid, job.host)
        return None
    if row is None:
        LOG.debug('Migration %s instance %s: progress from host %s ignored (the '
                  'migration is no longer running)', job.migration_uuid,
                  job.instance_uuid, job.host)
        return None
    LOG.info('Migration %s instance %s: progress on %s: %s', job.migration_uuid,
             job.instance_uuid, job.host, describe_progress(job.progress))
    if job.progress.postcopy and row['status'] == states.RUNNING:
        entered_postcopy(context, job.migration_uuid, job.instance_uuid, job.host,
                         'its progress report shows post-copy')
    return row


def entered_postcopy(context, migration_uuid, instance_uuid, host, how):
    """The job runs in post-copy: the migration becomes ``running-postcopy``, after
    which the destination is authoritative (no abort, no roll back). Idempotent."""
    try:
        db_api.migration_update(context, migration_uuid,
                                {'status': states.RUNNING_POSTCOPY},
                                expected_status=states.RUNNING, read_back=False)
    except exception.MigrationStateConflict:
        return False
    LOG.warning('Migration %s instance %s: the job on %s runs in post-copy (%s): the '
                'destination is authoritative from now on; no abort or roll back',
                migration_uuid, instance_uuid, host, how)
    return True


def record_event(context, event, instance_uuid=None):
    """Record one decision or observation of a migration (a MigrationEvent) and log
    it; a ``postcopy-started`` event moves it to ``running-postcopy``."""
    values = {'migration_uuid': event.migration_uuid, 'kind': event.kind,
              'host': event.host, 'job_elapsed_s': event.job_elapsed_s,
              'message': event.message}
    if event.obj_attr_is_set('at') and event.at is not None:
        values['created_at'] = event.at
    try:
        db_api.migration_event_create(context, values)
    except exception.Invalid as exc:
        LOG.warning('Migration %s: event %s not recorded (%s)', event.migration_uuid,
                    event.kind, exc)
        return
    LOG.info('Migration %s instance %s: %s on %s%s: %s', event.migration_uuid,
             instance_uuid or '-', event.kind, event.host or 'the conductor',
             '' if event.job_elapsed_s is None else ' at %.1f s' % event.job_elapsed_s,
             event.message)
    if event.kind == fields.MigrationEventKind.POSTCOPY_STARTED:
        entered_postcopy(context, event.migration_uuid, instance_uuid, event.host,
                         event.message)


def record_end(context, job, generation=None):
    """Record that a migration's job ended (as the source says); return the row or None.

    :raises OwnershipLost: with ``generation``, another conductor drives it now.
    """
    values = {'job_state': job.state, 'job_error': job.error,
              'last_report_at': timeutils.utcnow()}
    if job.obj_attr_is_set('postcopy') and job.postcopy:
        # NOTE: first, so that whoever sees the end sees that it was past the switch.
        entered_postcopy(context, job.migration_uuid, job.instance_uuid, job.host,
                         'the source says its job had switched to post-copy')
    try:
        row = db_api.migration_update(context, job.migration_uuid, values,
                                      expected_status=JOB_RUNNING_STATES,
                                      generation=generation)
    except exception.MigrationStateConflict as exc:
        LOG.debug('Migration %s instance %s: the end of its job (%s) arrived when it '
                  'was %s; not recorded', job.migration_uuid, job.instance_uuid,
                  job.state, exc.kwargs['actual'])
        return None
    except exception.MigrationNotFound:
        LOG.warning('Migration %s instance %s: host %s reports the end of a job this '
                    'conductor does not know; ignored', job.migration_uuid,
                    job.instance_uuid, job.host)
        return None
    LOG.info('Migration %s instance %s: the source %s reports its job %s%s',
             job.migration_uuid, job.instance_uuid, job.host, job.state,
             ' (%s)' % job.error if job.error else '')
    return row


class JobReports:
    """The conductor's side of the agents' job reports (RPC threads)."""

    def __init__(self, context, events):
        self._context = context
        self.events = events

    def progress(self, job):
        if record_progress(self._context, job) is not None:
            self.events.notify(job.migration_uuid)

    def ended(self, job):
        record_end(self._context, job)
        self.events.notify(job.migration_uuid)

    def event(self, event):
        instance_uuid = None
        try:
            instance_uuid = db_api.migration_get(self._context,
                                                 event.migration_uuid)['instance_uuid']
        except exception.MigrationNotFound:
            LOG.warning('Migration %s: an event (%s) from %s about a migration this '
                        'conductor does not know; ignored', event.migration_uuid,
                        event.kind, event.host)
            return
        record_event(self._context, event, instance_uuid)
        self.events.notify(event.migration_uuid)

    def ended_legacy(self, migration_uuid, instance_uuid, state):
        """An agent of RPC 1.2-1.3 says only the job's state; it is asked for the
        rest (its monitor does not report)."""
        LOG.debug('Migration %s instance %s: the source reports its job %s',
                  migration_uuid, instance_uuid, state)
        self.events.notify(migration_uuid)
