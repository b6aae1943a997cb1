"""Runs migration flows: persisted in the conductor's database, resumed after a restart.

Each migration gets a taskflow logbook and flow detail (both keyed by the migration's
id) in taskflow's SQL persistence tables, created *before* the request is acknowledged,
so an accepted migration is never lost. The flow is the one the registry
(:mod:`.registry`) holds for the migration's type, and its detail is saved under that
flow's name, so any registered flow is created, run, resumed and shared the same way.
Each flow runs in its own daemon thread, at most ``[conductor] migration_workers`` at
once, one engine per migration. When the conductor starts it resumes every flow whose
migration is not in a terminal state: each task already done is skipped, the one that
was running is run again (agent calls are idempotent).

Ownership: before its engine runs, this conductor takes the migration over in the
database (:func:`db.api.migration_take_ownership`: a new generation), and every status
change of the flow names that generation, so the database refuses the writes of a
conductor that lost the migration to another one (see :mod:`.tasks.base`).

Parked flows: a migration that waits for a slot of its hosts (``queued``) has its
engine suspended by its gate task; its thread ends, and the slot dispatcher
(:mod:`migration_conductor.slots`) runs the flow again once the slots are given.

Stopping the conductor does not wait for its flows: a migration can run for hours, and
the libvirt job does not need the conductor. A stopped conductor is treated exactly like
a crashed one; the next start resumes the flows.

Several conductors: with ``[conductor] jobboard_url`` set, every migration is also a
job on the Redis jobboard (:mod:`.jobboard`) and a conductor runs a flow only while it
holds the job's claim. The conductor that accepts a request claims its job at once; a
watcher thread renews the claims held, stops a flow whose claim was lost, and claims
the jobs nobody holds (those of a dead conductor once its claims expired). Without a
jobboard one conductor drives every migration of the database (it holds the conductor
lock, :mod:`migration_conductor.conductor_lock`) and resumes every unfinished flow
when it starts.

A flow whose claim was lost stops without a trace here, since another conductor may
already drive it. The watcher marks the claim lost, which fences the flow's
persistence at once (nothing more is saved, see :mod:`.persistence`). The flow's own
thread then suspends its engine (no further task starts, no revert runs) and raises
ClaimLost at the next check of the claim: every task checks before it acts, the
monitor at each look, a revert before it undoes anything (see
:meth:`.tasks.base.MigrationTask.ensure_driven`); a write that gets past that check
is refused by the database (the generation). NOTE: the watcher cannot suspend the
engine itself: the engine holds its storage lock while a task runs, and the watcher
would wait for the task, renewing no claim meanwhile.
"""

import collections
import contextlib
import logging
import queue
import threading

from oslo_utils import uuidutils
from taskflow import exceptions as taskflow_exc
from taskflow.persistence import models
from taskflow import states as flow_states

from db import api as db_api
from migration_conductor.flows import jobboard
from migration_conductor.flows import persistence
from migration_conductor.flows import registry
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)


class FlowRunner:
    """Creates, runs and resumes the flows of one conductor."""

    def __init__(self, conf, services):
        self._conf = conf
        self._services = services
        self._backend = persistence.SharedConnectionBackend(conf.database.connection)
        self._slots = threading.BoundedSemaphore(conf.conductor.migration_workers)
        self._threads = {}      # migration uuid -> the thread running its flow
        self._created = {}      # migration uuid -> (flow detail, job), until first run
        self._idle_flows = collections.defaultdict(queue.SimpleQueue)   # by flow name
        self._engines = {}      # migration uuid -> its running engine
        # Migrations asked to run while their thread was still ending (a flow that
        # parked while the slot it waits for was freed): run again once it ended.
        self._run_again = set()
        self._jobs = None
        self._watcher = None
        self._stopping = threading.Event()
        # This conductor's name as an owner of migrations (unique per process).
        self.owner = '%s-%s' % (conf.host, uuidutils.generate_uuid()[:8])
        if conf.conductor.jobboard_url:
            self._jobs = jobboard.MigrationJobs(conf, self._backend, self.owner)
            # NOTE: the tasks ask whether this conductor still drives a migration, and
            # suspend its flow when it does not (see the module's doc).
            services.claims = self._jobs
        services.suspend_flow = self._suspend
        if services.slots is not None:
            services.slots.resume = self.run
            services.slots.services = services
        self._lock = threading.Lock()

    def create(self, migration_uuid, migration_type, store):
        """Persist the flow of a new migration (before the request is acknowledged).

        :raises Invalid: no flow is registered for ``migration_type``.
        """
        flow_type = registry.for_type(migration_type)
        book = models.LogBook(name='migration-%s' % migration_uuid, uuid=migration_uuid)
        detail = models.FlowDetail(flow_type.name, uuid=migration_uuid)
        detail.meta = {'store': store}
        book.add(detail)
        with contextlib.closing(self._backend.get_connection()) as conn:
            conn.save_logbook(book)
        job = None if self._jobs is None else self._jobs.post(migration_uuid, book)
        with self._lock:
            # The first run takes the detail (and job) from here, not back from the
            # database (and the board).
            self._created[migration_uuid] = (detail, job)

    def run(self, migration_uuid, job=None):
        """Run (or resume) the flow of ``migration_uuid`` in a thread of its own.

        With a jobboard, only once this conductor holds the migration's job (``job``,
        or claimed here); returns None when another conductor holds it.
        """
        with self._lock:
            thread = self._threads.get(migration_uuid)
            if thread is not None and thread.is_alive():
                self._run_again.add(migration_uuid)
                return thread
        if self._jobs is not None and job is None:
            with self._lock:
                posted = self._created.get(migration_uuid, (None, None))[1]
            job = self._jobs.claim(migration_uuid, posted)
            if job is None:
                with self._lock:
                    self._created.pop(migration_uuid, None)
                LOG.info('Migration %s: another conductor drives it', migration_uuid)
                return None
        with self._lock:
            thread = self._threads.get(migration_uuid)
            if thread is not None and thread.is_alive():
                return thread   # the watcher claimed and started it meanwhile
            thread = threading.Thread(target=self._run, args=(migration_uuid, job),
                                      name='flow-%s' % migration_uuid, daemon=True)
            self._threads[migration_uuid] = thread
            thread.start()
        return thread

    def _load(self, migration_uuid):
        with self._lock:
            detail, _job = self._created.pop(migration_uuid, (None, None))
        if detail is not None:
            return detail
        with contextlib.closing(self._backend.get_connection()) as conn:
            try:
                book = conn.get_logbook(migration_uuid)
            except taskflow_exc.NotFound:
                book = None
        if book is None:
            # Accepted, then the conductor died before the flow was written.
            row = db_api.migration_get(self._services.context, migration_uuid)
            self.create(migration_uuid, row['migration_type'], store_for(row))
            return self._load(migration_uuid)
        return book.find(migration_uuid)

    def _take_over(self, migration_uuid):
        """Make this conductor the migration's owner (a new generation)."""
        row = db_api.migration_take_ownership(self._services.context, migration_uuid,
                                              self.owner)
        self._services.drive(migration_uuid, row['generation'])
        return row

    def _run(self, migration_uuid, job):
        parked = False
        try:
            with self._slots:
                detail = self._load(migration_uuid)
                store = detail.meta['store']
                row = self._take_over(migration_uuid)
                if row['status'] in states.TERMINAL_STATES:
                    LOG.info('Migration %s instance %s: already %s; nothing to run',
                             migration_uuid, row['instance_uuid'], row['status'])
                    return
                flow_name = detail.name
                flow = self._take_flow(flow_name)
                engine = persistence.load(flow, detail, self._backend, store,
                                          fence=self._fence_for(migration_uuid))
                with self._lock:
                    self._engines[migration_uuid] = engine
                failed = None
                try:
                    engine.run()
                except Exception as exc:
                    failed = exc
                # NOTE: a flow is suspended for two reasons only: its gate parked it
                # (waiting for slots) or this conductor lost it.
                parked = (engine.storage.get_flow_state() == flow_states.SUSPENDED
                          and self._services.drives(migration_uuid))
                if not self._services.drives(migration_uuid):
                    LOG.warning('Migration %s instance %s: flow stopped here (state %s): '
                                'another conductor drives it now', migration_uuid,
                                store.get('instance_uuid'), engine.storage.get_flow_state())
                elif parked:
                    LOG.info('Migration %s instance %s: flow parked until its slots are '
                             'free (no thread held)', migration_uuid,
                             store.get('instance_uuid'))
                elif failed is not None:
                    LOG.warning('Migration %s instance %s: flow reverted (%s)',
                                migration_uuid, store.get('instance_uuid'), failed)
                self._idle_flows[flow_name].put(flow)
        except Exception:
            LOG.exception('Migration %s: its flow could not run here', migration_uuid)
        finally:
            with self._lock:
                self._engines.pop(migration_uuid, None)
                if self._threads.get(migration_uuid) is threading.current_thread():
                    del self._threads[migration_uuid]
                again = migration_uuid in self._run_again
                self._run_again.discard(migration_uuid)
            if again and parked and not self._stopping.is_set():
                # Resumed while this thread was parking it: run it again now.
                self._services.unpark(migration_uuid)
                self.run(migration_uuid, job)
            elif not parked:
                self._services.forget(migration_uuid)
                if job is not None:
                    self._jobs.release(migration_uuid, self._finished(migration_uuid))

    def _fence_for(self, migration_uuid):
        return lambda: not self._services.drives(migration_uuid)

    def _finished(self, migration_uuid):
        try:
            row = db_api.migration_get(self._services.context, migration_uuid)
        except Exception:   # not reachable: another conductor will judge it
            LOG.exception('Migration %s: could not read its status', migration_uuid)
            return False
        return row['status'] in states.TERMINAL_STATES

    def _take_flow(self, name):
        """A flow of that name no engine is using, built if none is idle.

        NOTE: building one costs milliseconds (taskflow inspects every task's
        signature); a flow keeps no state of its own (that lives in the engine and
        its storage), so one that ended is reused. There are never more than
        ``migration_workers`` of them per flow name.
        """
        try:
            return self._idle_flows[name].get_nowait()
        except queue.Empty:
            return registry.for_name(name).build(self._services)

    def resume_unfinished(self):
        """Resume the unfinished migrations this conductor may drive; return their ids.

        Without a jobboard: every migration not in a terminal state. With one: the
        jobs nobody holds, claimed now (after posting again the jobs Redis lost); the
        watcher thread then goes on claiming, every ``jobboard_poll_interval``.
        """
        rows = db_api.migration_list(self._services.context,
                                     status=sorted(states.IN_FLIGHT_STATES))
        if self._jobs is None:
            for row in rows:
                LOG.info('Migration %s instance %s: resuming its flow (status %s)',
                         row['uuid'], row['instance_uuid'], row['status'])
                self.run(row['uuid'])
            return [row['uuid'] for row in rows]
        for migration_uuid in self._jobs.repost_missing(
                [row['uuid'] for row in rows], self._load_book):
            LOG.warning('Migration %s: its job was missing from the jobboard; posted '
                        'again', migration_uuid)
        resumed = self._claim_unclaimed()
        self._watcher = threading.Thread(target=self._watch, name='jobboard-watcher',
                                         daemon=True)
        self._watcher.start()
        return resumed

    def _load_book(self, migration_uuid):
        with contextlib.closing(self._backend.get_connection()) as conn:
            return conn.get_logbook(migration_uuid)

    def _claim_unclaimed(self):
        claimed = []
        for migration_uuid, job in self._jobs.unclaimed():
            with self._lock:
                busy = len(self._threads)
            if busy >= self._conf.conductor.migration_workers:
                break
            if self._jobs.claim(migration_uuid, job) is not None:
                LOG.info('Migration %s: claimed on the jobboard by %s; resuming its '
                         'flow', migration_uuid, self._jobs.owner)
                self.run(migration_uuid, job)
                claimed.append(migration_uuid)
        return claimed

    def _watch(self):
        """Renew the claims held, stop the flows whose claim is lost, claim more."""
        group = self._conf.conductor
        period = min(group.jobboard_poll_interval, group.jobboard_claim_expiry / 3.0)
        while not self._stopping.wait(period):
            try:
                for migration_uuid in self._jobs.renew():
                    self._stop_lost(migration_uuid)
                self._claim_unclaimed()
            except Exception:   # Redis away: try again next period
                LOG.exception('The jobboard could not be read; trying again in %s s',
                              period)

    def _stop_lost(self, migration_uuid):
        """Forget a lost claim (fenced already); its flow stops at its next check."""
        LOG.error('Migration %s: this conductor lost its claim on the jobboard; another '
                  'conductor may drive it now, so its flow stops at its next step, '
                  'saving nothing more', migration_uuid)
        self._jobs.forget(migration_uuid)
        if self._services.unpark(migration_uuid):
            self._services.forget(migration_uuid)

    def _suspend(self, migration_uuid):
        """Suspend the engine of a flow; called from that flow's own thread."""
        with self._lock:
            engine = self._engines.get(migration_uuid)
        if engine is not None:
            engine.suspend()

    def wait(self, migration_uuid, timeout=None):
        """Wait for the flow of ``migration_uuid`` to end (or park), if it runs here."""
        with self._lock:
            thread = self._threads.get(migration_uuid)
        if thread is not None:
            thread.join(timeout)

    def stop(self):
        """Forget the flows (they resume at the next start) and close persistence.

        With a jobboard the claims are left to expire, as a crashed conductor's would:
        the flow threads of this process may still be inside a task.
        """
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(10)
        if self._jobs is not None:
            self._jobs.close()
        self._backend.close()


def store_for(row):
    """The flow store of a migration row: ids and the request's choices only."""
    return {'migration_uuid': row['uuid'], 'instance_uuid': row['instance_uuid'],
            'source_host': row['source_host'], 'requested_dest': row['requested_dest'],
            'force': bool(row['force'])}
