"""Tasks that act on the conductor's database only."""

from db import api as db_api
from migration_conductor import exception
from migration_conductor import forecast
from migration_conductor import job_reports
from migration_conductor import objects
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

_MIGRATING = 'migrating'


class MarkMigrationFailedOnRevert(base.MigrationTask):
    """First task of every migration flow: on revert, record how and why it ended.

    The migration ends ``cancelled`` when an operator aborted it, else ``failed``, with
    a structured error (phase, host, code, message) taken from the task that failed;
    the instance is unlocked. Never raises.
    """

    default_provides = None

    def execute(self, migration_uuid, instance_uuid):
        self.log(migration_uuid, instance_uuid, 'flow started')

    def revert(self, migration_uuid, instance_uuid, *args, **kwargs):
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        failures = kwargs.get('flow_failures') or {}
        name, failure = next(iter(failures.items()), (None, None))
        phase = PHASES.get(name, fields.MigrationPhase.ROLLBACK)
        error = base.error_from_failure(phase, failure) if failure else None
        moved_to = None
        try:
            row = db_api.migration_get(self.context, migration_uuid)
            moved_to = self._switched_over(row)
            cancelled = (row['status'] == states.CANCELLING or
                         (failure is not None and failure.check(
                             exception.MigrationJobCancelled)))
            target = states.CANCELLED if cancelled else states.FAILED
            if moved_to:
                # The job completed before the rollback could stop it: the guest is on
                # the destination, and the records must say so.
                target = states.ERROR
                error = objects.MigrationError(
                    phase=phase, host=moved_to, code='switched_over', message=
                    'the guest runs on %s: the job completed before the rollback (%s)'
                    % (moved_to, error))
            if moved_to:
                unlock_instance(self.context, migration_uuid, instance_uuid,
                                host=moved_to, power_state=fields.PowerState.RUNNING)
            else:
                unlock_instance(self.context, migration_uuid, instance_uuid)
            # Last: whoever sees the terminal status also sees the instance unlocked.
            if row['status'] not in states.TERMINAL_STATES:
                values = {'finished_at': base.now(), 'expected_downtime_ms': None}
                if (error is not None and not cancelled) or moved_to:
                    values.update(error.db_columns())
                base.set_status(self.services, migration_uuid, target, **values)
            self.log(migration_uuid, instance_uuid, '%s: %s', target,
                     error or 'no error recorded', level=base.logging.WARNING)
        except Exception:  # a revert logs, it never raises
            base.LOG.exception('Migration %s instance %s: could not record the end of '
                               'the migration', migration_uuid, instance_uuid)
            unlock_instance(self.context, migration_uuid, instance_uuid)

    def _switched_over(self, row):
        """The destination if the guest runs there and not on the source, else None.

        Only asked when a job was started (``started_at``): before that the guest
        cannot have moved, and a destination that failed its checks (perhaps because
        its agent is dead) is not asked what it cannot know.
        """
        if not row['dest_host'] or row['started_at'] is None:
            return None
        agents = self.services.agents
        timeout = self.conf.conductor.precheck_timeout
        try:
            on_dest = agents.get_instance_state(self.context, row['dest_host'],
                                                row['instance_uuid'], timeout=timeout)
            on_source = agents.get_instance_state(self.context, row['source_host'],
                                                  row['instance_uuid'], timeout=timeout)
        except Exception as exc:
            self.log(row['uuid'], row['instance_uuid'], 'could not ask where the guest '
                     'runs after the rollback: %s', exc, level=base.logging.ERROR)
            return None
        if (on_dest == fields.PowerState.RUNNING
                and on_source != fields.PowerState.RUNNING):
            return row['dest_host']
        return None


def unlock_instance(context, migration_uuid, instance_uuid, transient_raises=False,
                    **values):
    """Clear the instance's migration lock (and write ``values``); never raises, but
    for a transient database error with ``transient_raises`` (for a caller that
    writes again, :meth:`base.MigrationTask.until_written`)."""
    values['task_state'] = None
    try:
        db_api.instance_update(context, instance_uuid, values,
                               expected={'task_state': _MIGRATING})
    except exception.InstanceStateConflict:
        base.LOG.warning('Migration %s instance %s: the instance was not locked any more',
                         migration_uuid, instance_uuid)
    except Exception as exc:
        if transient_raises and isinstance(exc, base.TRANSIENT_DB_ERRORS):
            raise
        base.LOG.exception('Migration %s instance %s: could not unlock the instance',
                           migration_uuid, instance_uuid)


class MarkMigrationCompleted(base.MigrationTask):
    """Move the instance to the destination in the DB and end the migration.

    Past the switch-over: it never fails the flow (which would revert a migration
    whose guest runs on the destination). A write the database cannot take now is
    written again until it can (:meth:`base.MigrationTask.until_written`); any other
    error ends the migration ``error`` with its reason.
    """

    phase = fields.MigrationPhase.FINISH

    def execute(self, migration_uuid, instance_uuid, dest_host, finish_result):
        self.ensure_driven(migration_uuid)
        try:
            if finish_result.get('ok'):
                self._completed(migration_uuid, instance_uuid, dest_host,
                                finish_result.get('stats') or {})
            else:
                self._not_confirmed(migration_uuid, instance_uuid, dest_host,
                                    finish_result['error'])
        except exception.ClaimLost:
            raise
        except Exception as exc:
            self._failed_to_record(migration_uuid, instance_uuid, dest_host, exc)

    def _completed(self, migration_uuid, instance_uuid, dest_host, stats):
        # NOTE: the expected downtime only means something while the job runs.
        values = {'finished_at': base.now(), 'expected_downtime_ms': None}
        for key in ('memory_total', 'memory_processed', 'memory_remaining', 'disk_total',
                    'disk_processed', 'disk_remaining', 'downtime_ms', 'total_time_ms'):
            if stats.get(key) is not None:
                values[key] = stats[key]
        self._compare_forecast(migration_uuid, instance_uuid, values)
        self._write(migration_uuid, instance_uuid, 'the completion', states.COMPLETED,
                    values, host=dest_host, power_state=fields.PowerState.RUNNING)
        self.log(migration_uuid, instance_uuid, 'completed: now on %s (downtime %s ms, '
                 '%s MiB of memory sent, job %s ms)', dest_host,
                 values.get('downtime_ms'),
                 job_reports.mib(values.get('memory_processed')),
                 values.get('total_time_ms'))

    def _not_confirmed(self, migration_uuid, instance_uuid, dest_host, error):
        # The job completed: the guest is not on the source any more, but the
        # destination did not confirm it runs; an operator must look.
        values = dict(error, finished_at=base.now())
        self._compare_forecast(migration_uuid, instance_uuid, values)
        self._write(migration_uuid, instance_uuid, 'the error', states.ERROR, values,
                    host=dest_host, power_state=fields.PowerState.UNKNOWN)
        self.log(migration_uuid, instance_uuid, 'error: %s', error['error_message'],
                 level=base.logging.ERROR)

    def _compare_forecast(self, migration_uuid, instance_uuid, values):
        """Add to ``values`` the forecast completed with what happened (if any).

        NOTE: a comparison that cannot be made (the row cannot be read now) is only
        logged: it must never delay or change the end of the migration.
        """
        try:
            row = db_api.migration_get(self.context, migration_uuid)
        except Exception as exc:
            self.log(migration_uuid, instance_uuid, 'forecast not compared with what '
                     'happened: %s', exc, level=base.logging.WARNING)
            return
        result = objects.MigrationForecast.from_record(row.get('forecast'))
        if result is None:
            return
        forecast.compare(result, dict(row, **values))
        values['forecast'] = result.to_record()
        self.log(migration_uuid, instance_uuid, 'forecast %s s, actual %s s (error %s), '
                 'downtime forecast %s ms, actual %s ms, bytes forecast %s MiB, actual '
                 '%s MiB', result.duration_s, result.actual_duration_s,
                 'n/a' if result.duration_error is None
                 else '%+.0f%%' % (result.duration_error * 100), result.downtime_ms,
                 result.actual_downtime_ms, job_reports.mib(result.bytes),
                 job_reports.mib(result.actual_bytes))

    def _write(self, migration_uuid, instance_uuid, what, target, values, **instance):
        """Unlock the instance (on its new host), then the migration's end: last, so
        that whoever sees the end also sees the instance unlocked."""
        self.until_written(migration_uuid, instance_uuid, what, lambda: unlock_instance(
            self.context, migration_uuid, instance_uuid, transient_raises=True,
            **instance))
        self.until_written(migration_uuid, instance_uuid, what, lambda: self.status(
            migration_uuid, target, **values))

    def _failed_to_record(self, migration_uuid, instance_uuid, dest_host, exc):
        error = objects.MigrationError(
            phase=self.phase, host=dest_host, code='internal',
            message='the guest runs on %s but its completion could not be recorded: '
                    '%s: %s' % (dest_host, type(exc).__name__, exc))
        self.log(migration_uuid, instance_uuid, 'error: %s', error.message,
                 level=base.logging.ERROR)
        try:
            self.status(migration_uuid, states.ERROR, finished_at=base.now(),
                        **error.db_columns())
        except Exception:  # nothing past the switch-over may revert the flow
            base.LOG.exception('Migration %s instance %s: could not record the error '
                               'either; the migration needs an operator',
                               migration_uuid, instance_uuid)


# Task name -> the phase a failure in it is recorded under (filled by the flow module).
PHASES = {}
