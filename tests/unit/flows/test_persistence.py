"""Flow persistence: one save per atom, and a resume that finds what it needs.

Runs small flows with :class:`MigrationEngine` on SQLite, MariaDB and PostgreSQL (the
statements differ per backend: row counts, multi-row INSERT), then reads the state
back through a second backend object, as a restarted conductor would.
"""

import collections
import contextlib
import uuid

import pytest
from taskflow import exceptions as taskflow_exc
from taskflow.patterns import linear_flow
from taskflow.persistence import models
from taskflow import states
from taskflow import task

from migration_conductor.flows import persistence


class Crash(BaseException):
    """Stands for the conductor dying in the middle of a task: nothing reverts."""


class Step(task.Task):
    """Counts its runs; raises ``Crash`` while ``crash`` names it."""

    runs = collections.Counter()
    crash = None

    def execute(self):
        Step.runs[self.name] += 1
        if Step.crash == self.name:
            raise Crash()
        return '%s-done' % self.name


def _flow():
    return linear_flow.Flow('f').add(Step('one'), Step('two'), Step('three'))


@pytest.fixture
def backend(database_url):
    persistence.upgrade_persistence(database_url)
    backend = persistence.SharedConnectionBackend(database_url)
    Step.runs.clear()
    Step.crash = None
    yield backend
    backend.close()


def _new_detail(backend):
    book = models.LogBook('book', uuid=str(uuid.uuid4()))
    detail = models.FlowDetail('f', uuid=str(uuid.uuid4()))
    detail.meta = {'store': {}}
    book.add(detail)
    backend.get_connection().save_logbook(book)
    return book.uuid, detail


def _reload(url, book_uuid):
    """The flow detail as another conductor reads it from the database."""
    other = persistence.SharedConnectionBackend(url)
    try:
        with contextlib.closing(other.get_connection()) as conn:
            book = conn.get_logbook(book_uuid)
        return next(iter(book))
    finally:
        other.close()


def _states(detail):
    return {atom.name: atom.state for atom in detail}


def test_each_task_is_saved_once_with_its_result(backend, database_url, monkeypatch):
    saves = collections.Counter()
    original = persistence._Connection.update_atom_details

    def counting(self, atom_detail):
        saves[atom_detail.name] += 1
        return original(self, atom_detail)
    monkeypatch.setattr(persistence._Connection, 'update_atom_details', counting)
    book_uuid, detail = _new_detail(backend)

    persistence.load(_flow(), detail, backend, {}).run()

    assert saves == {'one': 1, 'two': 1, 'three': 1}
    saved = _reload(database_url, book_uuid)
    assert saved.state == states.SUCCESS
    assert _states(saved) == {'one': states.SUCCESS, 'two': states.SUCCESS,
                              'three': states.SUCCESS}
    assert {atom.name: atom.results for atom in saved} == {
        'one': 'one-done', 'two': 'two-done', 'three': 'three-done'}
    assert all('progress' not in atom.meta for atom in saved)


def test_a_flow_resumed_after_a_crash_runs_the_unfinished_task_again(backend,
                                                                      database_url):
    book_uuid, detail = _new_detail(backend)
    Step.crash = 'two'
    with pytest.raises(Crash):
        persistence.load(_flow(), detail, backend, {}).run()
    saved = _reload(database_url, book_uuid)
    # 'two' was running: it is saved as not done, exactly what a resume must see.
    assert _states(saved) == {'one': states.SUCCESS, 'two': states.PENDING,
                              'three': states.PENDING}

    Step.crash = None
    resumed = persistence.SharedConnectionBackend(database_url)
    try:
        persistence.load(_flow(), saved, resumed, {}).run()
    finally:
        resumed.close()

    assert Step.runs == {'one': 1, 'two': 2, 'three': 1}
    assert _states(_reload(database_url, book_uuid)) == {
        'one': states.SUCCESS, 'two': states.SUCCESS, 'three': states.SUCCESS}


def test_the_store_is_injected_without_being_saved(backend, database_url):
    class Needs(task.Task):
        def execute(self, migration_uuid):
            return migration_uuid

    book_uuid, detail = _new_detail(backend)
    flow = linear_flow.Flow('f').add(Needs('needs'))
    persistence.load(flow, detail, backend, {'migration_uuid': 'm-1'}).run()

    saved = _reload(database_url, book_uuid)
    # Only the task: no injector atom holding a second copy of the store.
    assert {atom.name: atom.results for atom in saved} == {'needs': 'm-1'}


def test_saving_an_unknown_atom_or_flow_raises_not_found(backend):
    conn = backend.get_connection()
    with pytest.raises(taskflow_exc.NotFound):
        conn.update_atom_details(models.TaskDetail('ghost', uuid=str(uuid.uuid4())))
    with pytest.raises(taskflow_exc.NotFound):
        conn.update_flow_details(models.FlowDetail('ghost', uuid=str(uuid.uuid4())))


class Undo(task.Task):
    """Records its reverts."""

    reverted = []

    def execute(self):
        return 'undo-done'

    def revert(self, *args, **kwargs):
        Undo.reverted.append(self.name)


def test_a_fenced_engine_saves_nothing_and_a_suspended_one_reverts_nothing(
        backend, database_url):
    """What a conductor that lost its claim does: its flow stops without a trace."""
    fenced = []

    class LoseClaim(task.Task):
        def execute(self):
            # What the runner does when the claim is lost: fence, suspend, and the
            # monitor, seeing the claim forgotten, raises.
            fenced.append(True)
            engine.suspend()
            raise RuntimeError('claim lost')

    book_uuid, detail = _new_detail(backend)
    Undo.reverted = []
    flow = linear_flow.Flow('f').add(Undo('first'), LoseClaim('monitor'), Undo('after'))
    engine = persistence.load(flow, detail, backend, {}, fence=lambda: bool(fenced))
    engine.run()

    assert engine.storage.get_flow_state() == states.SUSPENDED
    assert Undo.reverted == []      # no revert ran: another conductor owns the flow
    saved = _reload(database_url, book_uuid)
    # As saved before the loss: 'first' done, the rest left for the new owner.
    assert _states(saved) == {'first': states.SUCCESS, 'monitor': states.PENDING,
                              'after': states.PENDING}
    assert saved.state == states.RUNNING
