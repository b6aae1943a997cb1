"""What every migration task shares: its services, status changes and error records.

A task is constructed with a :class:`Services` holder (configuration, the agents' RPC
client, an admin context); nothing of it is persisted, so a resumed flow is rebuilt with
the services of the conductor that resumes it. Tasks run in the flow's engine thread.
"""

import logging
import threading

from oslo_utils import timeutils
from taskflow import task

from db import api as db_api
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)


class Services:
    """Dependencies of the tasks, shared by every flow of one conductor."""

    def __init__(self, conf, agent_api, context, job_events=None):
        self.conf = conf
        self.agents = agent_api
        self.context = context
        self.job_events = job_events or JobEvents()
        # Set by the flow runner when several conductors share the migrations: the
        # jobboard's claims, and how to suspend the engine of a migration's flow.
        self.claims = None
        self.suspend_flow = None

    def drives(self, migration_uuid):
        """Whether this conductor still drives the migration (its claim not lost)."""
        return self.claims is None or not self.claims.fenced(migration_uuid)

    def stopped_for_lost_claim(self, migration_uuid):
        """Suspend the migration's flow if this conductor lost its claim; say so.

        Called in the flow's engine thread, from a task: taskflow's storage lock,
        which the engine holds while a task runs, lets that thread suspend its own
        engine (another thread would wait for the task to end). A suspended engine
        starts no other task and runs no revert.
        """
        if self.drives(migration_uuid):
            return False
        if self.suspend_flow is not None:
            self.suspend_flow(migration_uuid)
        return True


class JobEvents:
    """Wakes a flow's monitor when the source agent says its job ended.

    The notice is a cast that may reach another conductor or be lost: waiting is always
    bounded by the monitor's polling interval, so a missed notice only delays.
    Thread-safe: RPC threads notify, flow threads wait.
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
        """Wait up to ``timeout`` s for a notice; return whether one came."""
        event = self._event(migration_uuid)
        notified = event.wait(timeout)
        event.clear()
        return notified

    def forget(self, migration_uuid):
        with self._lock:
            self._events.pop(migration_uuid, None)


def set_status(services, migration_uuid, target, **values):
    """Move the migration to ``target`` (validated), writing ``values`` with it.

    One conditional UPDATE whose WHERE clause holds every status the state machine
    allows to reach ``target``, and ``target`` itself: a resumed task that already
    made the change only writes ``values`` again, and a concurrent change (an
    operator's abort) is never overwritten.

    :returns: the migration's row as written.
    :raises MigrationAborted: an operator aborted the migration (it is
        ``cancelling``) and ``target`` is a step forward (nothing is written).
    :raises InvalidMigrationTransition: the state machine forbids the change from the
        status the migration has (nothing is written).
    """
    values['status'] = target
    try:
        return db_api.migration_update(
            services.context, migration_uuid, values,
            expected_status=sorted(states.allowed_sources(target) | {target}))
    except exception.MigrationStateConflict as exc:
        if exc.kwargs['actual'] == states.CANCELLING:
            raise exception.MigrationAborted(migration_uuid=migration_uuid)
        states.check_transition(migration_uuid, exc.kwargs['actual'], target)
        raise   # not reached: the machine forbids what the WHERE clause excluded


class MigrationTask(task.Task):
    """Base of the migration tasks: ``phase`` names the step for error records."""

    phase = None

    def __init__(self, services, **kwargs):
        super().__init__(name=self.__class__.__name__, **kwargs)
        self.services = services

    @property
    def context(self):
        return self.services.context

    @property
    def conf(self):
        return self.services.conf

    def status(self, migration_uuid, target, **values):
        self.ensure_driven(migration_uuid)
        return set_status(self.services, migration_uuid, target, **values)

    def ensure_driven(self, migration_uuid):
        """Stop here (ClaimLost, the flow suspended) if another conductor may drive the
        migration now. Every task calls it before it acts (status changes call it)."""
        if self.services.stopped_for_lost_claim(migration_uuid):
            raise exception.ClaimLost(migration_uuid=migration_uuid)

    def reverts_here(self, migration_uuid, instance_uuid):
        """Whether a revert may act: not once this conductor lost the claim."""
        if self.services.stopped_for_lost_claim(migration_uuid):
            self.log(migration_uuid, instance_uuid, 'revert %s skipped: another conductor '
                     'drives the migration now', self.name, level=logging.WARNING)
            return False
        return True

    @staticmethod
    def log(migration_uuid, instance_uuid, message, *args, level=logging.INFO):
        """Log a line that carries the migration's and the instance's ids."""
        LOG.log(level, 'Migration %s instance %s: ' + message,
                migration_uuid, instance_uuid, *args)


def error_from_failure(phase, failure, host=None):
    """Build a MigrationError from a taskflow Failure (or exception)."""
    exc = getattr(failure, 'exception', failure)
    if isinstance(exc, exception.MigrationConductorError):
        code = exc.code
        host = exc.kwargs.get('host', host)
        message = exc.message
    else:
        code = 'internal'
        message = '%s: %s' % (type(exc).__name__ if exc else 'Error',
                              getattr(failure, 'exception_str', None) or exc)
    return objects.MigrationError(phase=phase, host=host, code=code, message=message)


def now():
    return timeutils.utcnow()

