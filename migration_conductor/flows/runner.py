"""Runs migration flows: persisted in the conductor's database, resumed after a restart.

Each migration gets a taskflow logbook and flow detail (both keyed by the migration's
id) in taskflow's SQL persistence tables, created *before* the request is acknowledged,
so an accepted migration is never lost. Each flow runs in its own daemon thread, at
most ``[conductor] migration_workers`` at once, one engine per migration. When the
conductor starts it resumes every flow whose migration is not in a terminal state: each
task already done is skipped, the one that was running is run again (agent calls are
idempotent).

Stopping the conductor does not wait for its flows: a migration can run for hours, and
the libvirt job does not need the conductor. A stopped conductor is treated exactly like
a crashed one; the next start resumes the flows.

NOTE: with several conductors on one database every conductor would resume every
unfinished flow; until the Redis jobboard claims flows per conductor, run one conductor.
"""

import contextlib
import logging
import queue
import threading

from taskflow import exceptions as taskflow_exc
from taskflow.persistence import models

from db import api as db_api
from migration_conductor.flows import live_migration
from migration_conductor.flows import persistence
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
        self._created = {}      # migration uuid -> flow detail, until its first run
        self._idle_flows = queue.SimpleQueue()
        self._lock = threading.Lock()

    def create(self, migration_uuid, store):
        """Persist the flow of a new migration (before the request is acknowledged)."""
        book = models.LogBook(name='migration-%s' % migration_uuid, uuid=migration_uuid)
        detail = models.FlowDetail(live_migration.FLOW_NAME, uuid=migration_uuid)
        detail.meta = {'store': store}
        book.add(detail)
        with contextlib.closing(self._backend.get_connection()) as conn:
            conn.save_logbook(book)
        with self._lock:
            # The first run takes the detail from here, not back from the database.
            self._created[migration_uuid] = detail

    def run(self, migration_uuid):
        """Run (or resume) the flow of ``migration_uuid`` in a thread of its own."""
        with self._lock:
            thread = self._threads.get(migration_uuid)
            if thread is not None and thread.is_alive():
                return thread
            thread = threading.Thread(target=self._run, args=(migration_uuid,),
                                      name='flow-%s' % migration_uuid, daemon=True)
            self._threads[migration_uuid] = thread
            thread.start()
        return thread

    def _load(self, migration_uuid):
        with self._lock:
            detail = self._created.pop(migration_uuid, None)
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
            self.create(migration_uuid, store_for(row))
            return self._load(migration_uuid)
        return book.find(migration_uuid)

    def _run(self, migration_uuid):
        try:
            with self._slots:
                detail = self._load(migration_uuid)
                store = detail.meta['store']
                flow = self._take_flow()
                engine = persistence.load(flow, detail, self._backend, store)
                try:
                    engine.run()
                except Exception as exc:
                    LOG.warning('Migration %s instance %s: flow reverted (%s)',
                                migration_uuid, store.get('instance_uuid'), exc)
                self._idle_flows.put(flow)
        finally:
            with self._lock:
                if self._threads.get(migration_uuid) is threading.current_thread():
                    del self._threads[migration_uuid]

    def _take_flow(self):
        """A flow object no engine is using, built if none is idle.

        NOTE: building one costs milliseconds (taskflow inspects every task's
        signature); a flow keeps no state of its own (that lives in the engine and
        its storage), so one that ended is reused. There are never more than
        ``migration_workers`` of them.
        """
        try:
            return self._idle_flows.get_nowait()
        except queue.Empty:
            return live_migration.get_live_migration_flow(self._services)

    def resume_unfinished(self):
        """Resume every migration not in a terminal state; return their ids."""
        rows = db_api.migration_list(self._services.context,
                                     status=sorted(states.IN_FLIGHT_STATES))
        for row in rows:
            LOG.info('Migration %s instance %s: resuming its flow (status %s)',
                     row['uuid'], row['instance_uuid'], row['status'])
            self.run(row['uuid'])
        return [row['uuid'] for row in rows]

    def wait(self, migration_uuid, timeout=None):
        """Wait for the flow of ``migration_uuid`` to end, if it runs here."""
        with self._lock:
            thread = self._threads.get(migration_uuid)
        if thread is not None:
            thread.join(timeout)

    def stop(self):
        """Forget the flows (they resume at the next start) and close persistence."""
        self._backend.close()


def store_for(row):
    """The flow store of a migration row: ids and the request's choices only."""
    return {'migration_uuid': row['uuid'], 'instance_uuid': row['instance_uuid'],
            'source_host': row['source_host'], 'requested_dest': row['requested_dest'],
            'force': bool(row['force'])}
