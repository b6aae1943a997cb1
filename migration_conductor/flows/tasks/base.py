"""What every migration task shares: its services, status changes and error records.

A task is constructed with a :class:`Services` holder (configuration, the agents' RPC
client, the conductor's context, the slot queue, what the runner knows about the flows
it drives); nothing of it is persisted, so a resumed flow is rebuilt with the services
of the conductor that resumes it. Tasks run in the flow's engine thread.

Ownership: the runner makes this conductor the migration's owner (a new generation,
:func:`db.api.migration_take_ownership`) before it runs the flow, and every status
change of the flow names that generation in its conditional UPDATE. A conductor that
lost the migration to another is refused by the database itself: the task stops
(ClaimLost), the flow is suspended and nothing of it is saved or reverted here.

Reverts never raise: :class:`MigrationTask` guards each one, so that one failing undo
(logged) does not stop the rollback of the others and the migration's end is still
recorded by ``MarkMigrationFailedOnRevert``.

Past the switch-over nothing may revert: the guest runs on the destination. The
database writes of those tasks go through :meth:`MigrationTask.until_written`, which
writes again after a lost connection or a deadlock instead of failing the task.
"""

import functools
import logging
import threading
import time

from oslo_db import exception as db_exc
from oslo_utils import timeutils
from taskflow import task

from db import api as db_api
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

# Database errors after which the same write may succeed (the connection came back).
TRANSIENT_DB_ERRORS = (db_exc.DBConnectionError, db_exc.DBDeadlock)
# Waits between two attempts of a write past the switch-over: doubling up to the last.
WRITE_AGAIN_AFTER = (0.5, 1, 2, 4, 8, 15)


class Services:
    """Dependencies of the tasks, shared by every flow of one conductor."""

    def __init__(self, conf, agent_api, context, job_events=None, slots=None,
                 profiles=None):
        from migration_conductor import job_reports
        from migration_conductor import profiles as migration_profiles
        self.conf = conf
        self.profiles = profiles or migration_profiles.Profiles()
        self.agents = agent_api
        self.context = context
        self.job_events = job_events or job_reports.JobEvents()
        self.slots = slots
        # Set by the flow runner when several conductors share the migrations: the
        # jobboard's claims, and how to suspend the engine of a migration's flow.
        self.claims = None
        self.suspend_flow = None
        self._generations = {}   # migration uuid -> the generation this conductor drives
        self._lost = set()       # migration uuids the database says another one drives
        self._parked = set()     # migration uuids whose flow waits for a slot
        self._lock = threading.Lock()

    # --- ownership -------------------------------------------------------------------

    def drive(self, migration_uuid, generation):
        """Record that this conductor drives the migration with ``generation``."""
        with self._lock:
            self._generations[migration_uuid] = generation
            self._lost.discard(migration_uuid)

    def generation(self, migration_uuid):
        with self._lock:
            return self._generations.get(migration_uuid)

    def forget(self, migration_uuid):
        with self._lock:
            self._generations.pop(migration_uuid, None)
            self._lost.discard(migration_uuid)

    def drives(self, migration_uuid):
        """Whether this conductor still drives the migration: its jobboard claim is not
        lost and the database did not refuse it a write for another owner."""
        with self._lock:
            if migration_uuid in self._lost:
                return False
        return self.claims is None or not self.claims.fenced(migration_uuid)

    def ownership_lost(self, migration_uuid):
        """The database refused a write: another conductor drives the migration now."""
        with self._lock:
            self._lost.add(migration_uuid)

    def stopped_for_lost_claim(self, migration_uuid):
        """Suspend the migration's flow if this conductor lost it; say so.

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

    # --- parking (a flow waiting for a slot holds no thread) ---------------------------

    def park(self, migration_uuid):
        """Suspend the flow of a migration that waits for a slot (from its thread)."""
        with self._lock:
            self._parked.add(migration_uuid)
        if self.suspend_flow is not None:
            self.suspend_flow(migration_uuid)

    def unpark(self, migration_uuid):
        """Whether the migration was parked (and is not any more)."""
        with self._lock:
            if migration_uuid in self._parked:
                self._parked.discard(migration_uuid)
                return True
            return False

    def parked(self):
        with self._lock:
            return set(self._parked)


def set_status(services, migration_uuid, target, read_back=False, **values):
    """Move the migration to ``target`` (validated), writing ``values`` with it.

    One conditional UPDATE whose WHERE clause holds every status the state machine
    allows to reach ``target``, and ``target`` itself, and the generation this
    conductor drives: a resumed task that already made the change only writes
    ``values`` again, a concurrent change (an operator's abort) is never overwritten,
    and a conductor that lost the migration writes nothing.

    :param read_back: return the row as written (one more round trip); else None.
    :returns: the migration's row as written, or None.
    :raises MigrationAborted: an operator aborted the migration (it is
        ``cancelling``) and ``target`` is a step forward (nothing is written).
    :raises ClaimLost: another conductor drives the migration now (nothing written).
    :raises InvalidMigrationTransition: the state machine forbids the change from the
        status the migration has (nothing is written).
    """
    values['status'] = target
    try:
        return db_api.migration_update(
            services.context, migration_uuid, values,
            expected_status=sorted(states.allowed_sources(target) | {target}),
            generation=services.generation(migration_uuid), read_back=read_back)
    except exception.OwnershipLost:
        services.ownership_lost(migration_uuid)
        services.stopped_for_lost_claim(migration_uuid)
        raise
    except exception.MigrationStateConflict as exc:
        if exc.kwargs['actual'] == states.CANCELLING:
            raise exception.MigrationAborted(migration_uuid=migration_uuid)
        states.check_transition(migration_uuid, exc.kwargs['actual'], target)
        raise   # not reached: the machine forbids what the WHERE clause excluded


def load(cls, value, host=None):
    """The object of class ``cls`` a task stored as its primitive in the flow.

    Also reads what a flow persisted by a conductor of the previous release holds
    there: the plain dicts of RPC 1.3 (``from_legacy``).
    """
    if value is None or isinstance(value, cls):
        return value
    if 'migration_conductor_object.name' in value:
        return cls.obj_from_primitive(value)
    return cls.from_legacy(host, value)


class MigrationTask(task.Task):
    """Base of the migration tasks: ``phase`` names the step for error records."""

    phase = None

    def __init__(self, services, **kwargs):
        super().__init__(name=self.__class__.__name__, **kwargs)
        self.services = services
        if type(self).revert is not task.Task.revert:
            self.revert = self._guarded_revert()

    def _guarded_revert(self):
        """This task's revert (looked up when it runs), logging instead of raising."""
        @functools.wraps(self.revert)
        def revert(*args, **kwargs):
            try:
                return type(self).revert(self, *args, **kwargs)
            except Exception:  # one failed undo must not stop the others
                LOG.exception('Migration %s instance %s: the revert of %s failed; the '
                              'rollback goes on', kwargs.get('migration_uuid'),
                              kwargs.get('instance_uuid'), self.name)
        return revert

    @property
    def context(self):
        return self.services.context

    @property
    def conf(self):
        return self.services.conf

    def status(self, migration_uuid, target, read_back=False, **values):
        """Change the status (see :func:`set_status`); the row back with
        ``read_back``."""
        self.ensure_driven(migration_uuid)
        try:
            return set_status(self.services, migration_uuid, target,
                              read_back=read_back, **values)
        except exception.OwnershipLost as exc:
            self.log(migration_uuid, None, 'stopping here: %s', exc.message,
                     level=logging.WARNING)
            raise exception.ClaimLost(migration_uuid=migration_uuid) from exc

    def ensure_driven(self, migration_uuid):
        """Stop here (ClaimLost, the flow suspended) if another conductor may drive the
        migration now. Every task calls it before it acts (status changes call it)."""
        if self.services.stopped_for_lost_claim(migration_uuid):
            raise exception.ClaimLost(migration_uuid=migration_uuid)

    def until_written(self, migration_uuid, instance_uuid, what, write):
        """Return ``write()``, attempted again after each transient database error.

        For the writes past the switch-over, where failing the task would revert a
        migration whose guest already runs on the destination: as long as the
        database cannot be reached the task waits (one line per attempt, an error
        once ``[conductor] service_down_time`` has passed), and a conductor that lost
        the migration meanwhile stops here (ClaimLost). Any other error is raised.
        """
        began = time.monotonic()
        attempt = 0
        while True:
            try:
                return write()
            except TRANSIENT_DB_ERRORS as exc:
                wait = WRITE_AGAIN_AFTER[min(attempt, len(WRITE_AGAIN_AFTER) - 1)]
                attempt += 1
                late = time.monotonic() - began >= self.conf.conductor.service_down_time
                self.log(migration_uuid, instance_uuid, 'could not record %s (attempt '
                         '%d: %s); writing again in %s s, nothing is undone',
                         what, attempt, type(exc).__name__, wait,
                         level=logging.ERROR if late else logging.WARNING)
                time.sleep(wait)
                self.ensure_driven(migration_uuid)

    def profile_of(self, row):
        """The MigrationProfile of a migration's row (the default for a migration
        accepted before profiles existed).

        :raises ProfileNotFound: its profile is no longer defined.
        """
        return self.services.profiles.get(row.get('profile')
                                          or self.services.profiles.default)

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
                migration_uuid, instance_uuid or '-', *args)


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
