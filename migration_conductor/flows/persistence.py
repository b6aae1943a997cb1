"""Where migration flows keep their state: taskflow's SQL tables in the conductor's DB.

taskflow saves an atom's details every time the engine changes its state or progress
(four times per task, each save reading the row back first), and that was most of the
time from a request to the libvirt call. This module saves once per task, with one
statement per save, without changing what a resume finds:

* :class:`SharedConnectionBackend` gives every caller the same connection object;
* :class:`_Connection` writes an atom's details with one UPDATE, and a flow's with one
  UPDATE plus the INSERTs of its new atoms (taskflow's own first reads the rows back
  to merge them, and rewrites every atom with every flow state change; merging only
  matters with two writers of one flow, and a flow has one engine, in one conductor);
* :class:`MigrationEngine` saves an atom when it ends (or fails, or reverts), not when
  it starts, and not the engine's automatic progress marks: a resumed flow runs the
  atom that was running again either way (see :class:`_Storage`);
* an engine can be fenced: once its ``fence`` says so (the conductor lost the
  migration's claim on the jobboard), it saves nothing more, so a conductor that lost
  a flow never writes over the flow of the conductor that took it.

Thread-safety: the connection keeps no state between operations; each operation runs
in its own transaction on the shared (thread-safe) SQLAlchemy engine. One engine runs
one flow in one thread.
"""

import contextlib
import logging
import threading

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from taskflow.engines.action_engine import engine as action_engine
from taskflow import exceptions as taskflow_exc
from taskflow.persistence import backends
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence import models
from taskflow import states
from taskflow import storage as taskflow_storage

from db import sqlite

LOG = logging.getLogger(__name__)


def upgrade_persistence(connection_url):
    """Create or upgrade taskflow's persistence tables in the conductor's database."""
    backend = backends.fetch({'connection': connection_url})
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
    finally:
        backend.close()


class _Connection(impl_sqlalchemy.Connection):
    """taskflow's SQL connection, saving an atom's details in one statement."""

    def update_atom_details(self, atom_detail):
        table = self._tables.atomdetails
        values = atom_detail.to_dict()
        try:
            with self._engine.begin() as conn:
                matched = conn.execute(sa.update(table)
                                       .where(table.c.uuid == atom_detail.uuid)
                                       .values(values)).rowcount
        except sa_exc.SQLAlchemyError:
            taskflow_exc.raise_with_cause(
                taskflow_exc.StorageFailure,
                "Failed updating atom details with uuid '%s'" % atom_detail.uuid)
        if not matched:
            raise taskflow_exc.NotFound(
                "No atom details found with uuid '%s'" % atom_detail.uuid)
        return atom_detail.copy()

    def update_flow_details(self, flow_detail):
        """Save the flow's own row and insert its new atoms, in one transaction.

        taskflow's storage calls this when the flow's state or meta changes and when
        it adds atoms; the atoms it already had were saved by
        :meth:`update_atom_details` each time they changed, so they are not written
        again (taskflow's own version reads and rewrites every atom of the flow).
        """
        flows = self._tables.flowdetails
        atoms = self._tables.atomdetails
        values = flow_detail.to_dict()
        try:
            with self._engine.begin() as conn:
                matched = conn.execute(sa.update(flows)
                                       .where(flows.c.uuid == flow_detail.uuid)
                                       .values(values)).rowcount
                if matched:
                    saved = set(conn.execute(
                        sa.select(atoms.c.uuid)
                        .where(atoms.c.parent_uuid == flow_detail.uuid)).scalars())
                    new = [dict(atom_detail.to_dict(), parent_uuid=flow_detail.uuid,
                                atom_type=models.atom_detail_type(atom_detail))
                           for atom_detail in flow_detail
                           if atom_detail.uuid not in saved]
                    if new:     # one multi-row INSERT (executemany)
                        conn.execute(sa.insert(atoms), new)
        except sa_exc.SQLAlchemyError:
            taskflow_exc.raise_with_cause(
                taskflow_exc.StorageFailure,
                "Failed updating flow details with uuid '%s'" % flow_detail.uuid)
        if not matched:
            raise taskflow_exc.NotFound(
                "No flow details found with uuid '%s'" % flow_detail.uuid)
        return flow_detail.copy()


class SharedConnectionBackend(impl_sqlalchemy.SQLAlchemyBackend):
    """taskflow's SQL persistence, with one connection object for every caller.

    NOTE: taskflow's storage asks the backend for a connection for every atom state it
    saves, and each new connection builds its own MetaData and Table objects. Every
    statement then misses SQLAlchemy's compiled-statement cache (keyed by the tables),
    which measured as most of a migration's control-plane time, and fills that cache
    with copies of the tables (the conductor's memory grew with each migration). The
    connection keeps no state between operations (each opens its own transaction on
    the shared, thread-safe engine, and close() does nothing), so one can serve all.
    """

    def __init__(self, connection_url):
        # NOTE: every write of the connection is a whole transaction (engine.begin),
        # committed or rolled back before the connection goes back to the pool, so the
        # pool's own ROLLBACK at check-in would only cost a round trip per save. But
        # taskflow's reads (get_logbook) run on engine.connect() and leave their
        # transaction to the pool's reset: on SQLite, where one open transaction keeps
        # every writer out, a read without it blocked the next save of another flow
        # (a parked flow resumed), so the reset stays there.
        engine_args = {}
        sqlite.install()    # the embedded default shares the file with the API
        if not connection_url.startswith('sqlite'):
            engine_args['pool_reset_on_return'] = None
        super().__init__({'connection': connection_url, 'engine_args': engine_args})
        self._shared = None
        self._shared_lock = threading.Lock()

    def get_connection(self):
        with self._shared_lock:
            if self._shared is None:
                connection = _Connection(self, upgrade_lock=self._upgrade_lock)
                connection.validate(max_retries=self._max_retries)
                self._shared = connection
            return self._shared

    def close(self):
        with self._shared_lock:
            self._shared = None
        super().close()


class _Unsaved:
    """Stands for the connection of a fenced storage: every save is a no-op."""

    @staticmethod
    def update_flow_details(flow_detail):
        return flow_detail

    @staticmethod
    def update_atom_details(atom_detail):
        return atom_detail


class _Storage(taskflow_storage.Storage):
    """taskflow's storage, saving only what a resume needs.

    * An atom moving to RUNNING is recorded in memory only. A resumed engine runs an
      atom again whether it was left RUNNING or PENDING (every atom of a migration
      flow is idempotent), so the saved state says the same either way; SUCCESS,
      FAILURE, REVERTING and the rest are saved as taskflow saves them.
    * The engine's automatic progress marks (0.0 when a task starts, 1.0 when it
      ends) are not saved: the atom's state already says it and nothing reads them.
    * Once ``fence()`` is true nothing is saved at all; the engine goes on in memory.
    """

    def __init__(self, flow_detail, backend=None, scope_fetcher=None, fence=None):
        super().__init__(flow_detail, backend=backend, scope_fetcher=scope_fetcher)
        self._fence = fence
        self._fenced = False

    def _with_connection(self, functor, *args, **kwargs):
        if self._fence is not None and (self._fenced or self._fence()):
            if not self._fenced:
                self._fenced = True
                LOG.warning('Migration %s: its flow state is no longer saved here: this '
                            'conductor lost its claim on the migration',
                            self._flowdetail.uuid)
            return functor(_Unsaved, *args, **kwargs)
        return super()._with_connection(functor, *args, **kwargs)

    def set_atom_state(self, atom_name, state):
        if state != states.RUNNING:
            return super().set_atom_state(atom_name, state)
        with self._lock.write_lock():
            source, _clone = self._atomdetail_by_name(atom_name)
            source.state = state

    def set_task_progress(self, task_name, progress, details=None):
        if details is None:
            return      # the engine's own 0.0/1.0 mark: the atom state says it
        super().set_task_progress(task_name, progress, details=details)


class MigrationEngine(action_engine.SerialActionEngine):
    """The serial engine of one migration flow, with the storage above.

    ``fence``: None, or a callable returning True once this engine must save nothing.
    """

    fence = None

    @property
    def storage(self):
        # NOTE: ActionEngine builds its storage in a cached property of the same name;
        # this one builds the subclass once, with the same scope lookup.
        if self._migration_storage is None:
            def scope_fetcher(atom_name):
                if self._compiled:
                    return self._runtime.fetch_scopes_for(atom_name)
                return None
            self._migration_storage = _Storage(self._flow_detail, backend=self._backend,
                                               scope_fetcher=scope_fetcher,
                                               fence=self.fence)
        return self._migration_storage

    _migration_storage = None


def load(flow, flow_detail, backend, store, fence=None):
    """An engine for ``flow`` whose state lives in ``flow_detail``.

    ``store`` (ids and the request's choices, kept in the flow detail's meta) is
    injected as transient: it is already persisted with the flow detail, so it need
    not be written again at every (re)load. ``fence``: see :class:`MigrationEngine`.
    """
    engine = MigrationEngine(flow, flow_detail, backend, {})
    engine.fence = fence
    engine.storage.inject(store, transient=True)
    return engine
