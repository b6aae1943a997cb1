"""The lock of a conductor that runs without a jobboard: one driver per database.

Without ``[conductor] jobboard_url`` a conductor resumes every unfinished migration of
its database when it starts; two such conductors would both drive the same flows. So
such a conductor holds this lock for as long as it runs, and a second one refuses to
start with one line naming the holder (:class:`~migration_conductor.exception.
ConductorLocked`). The lock is the database's own, held by a connection of the
conductor's process, so it goes away with that process however it ends (a SIGKILLed
conductor restarted at once gets it back at once):

* MariaDB/MySQL: ``GET_LOCK(name, 0)``, the name naming the database (MySQL's locks
  are the server's, not a database's);
* PostgreSQL: ``pg_try_advisory_lock(key)`` (its advisory locks are the database's);
* SQLite (one machine): an exclusive ``flock`` on a file next to the database.

Who holds it is written in ``conductor_locks`` (for the refusal's message only).

NOTE: the database connection that holds the lock can be lost (the database
restarted); the lock is then gone too. Whoever takes the migrations over afterwards
bumps their generations, and the database refuses this conductor's writes from then on
(see :mod:`migration_conductor.flows.tasks.base`), so flows are never driven by two.
"""

import fcntl
import hashlib
import logging
import os

import sqlalchemy as sa

from db import api as db_api
from migration_conductor import exception

LOG = logging.getLogger(__name__)

NAME = 'migration-conductor'
SETTING = '[conductor] jobboard_url'


def _pg_key(name):
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], 'big',
                          signed=True)


class ConductorLock:
    """Held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, connection_url, holder, context):
        self._url = sa.engine.make_url(connection_url)
        self._holder = holder
        self._context = context
        self._engine = None
        self._connection = None
        self._file = None

    def acquire(self):
        """Take the lock, or refuse.

        :raises ConductorLocked: another conductor without a jobboard holds it.
        """
        backend = self._url.get_backend_name()
        if backend == 'sqlite':
            taken = self._acquire_file()
        else:
            taken = self._acquire_database(backend)
        if not taken:
            holder = db_api.conductor_lock_holder_get(self._context, NAME)
            raise exception.ConductorLocked(setting=SETTING,
                                            holder=holder or 'holder unknown')
        db_api.conductor_lock_holder_set(self._context, NAME, self._holder)
        LOG.info('Conductor lock of this database taken by %s (no jobboard: this '
                 'conductor drives every migration)', self._holder)

    def _acquire_file(self):
        database = self._url.database
        if not database or database == ':memory:':
            return True      # a private database: nobody else can drive it
        self._file = open(database + '.conductor-lock', 'a+')
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            return False
        return True

    def _acquire_database(self, backend):
        self._engine = sa.create_engine(self._url, poolclass=sa.pool.NullPool)
        self._connection = self._engine.connect()
        if backend in ('mysql', 'mariadb'):
            # NOTE: at most 64 characters; a long database name is hashed.
            name = '%s:%s' % (NAME, self._url.database)
            if len(name) > 64:
                name = '%s:%s' % (NAME, hashlib.sha256(name.encode()).hexdigest()[:40])
            taken = self._connection.execute(sa.text('SELECT GET_LOCK(:name, 0)'),
                                             {'name': name}).scalar()
        elif backend == 'postgresql':
            taken = self._connection.execute(
                sa.text('SELECT pg_try_advisory_lock(:key)'),
                {'key': _pg_key(NAME)}).scalar()
        else:
            LOG.warning('No conductor lock on %s databases: make sure a single '
                        'conductor without a jobboard runs', backend)
            taken = True
        self._connection.commit()
        if not taken:
            self._close()
        return bool(taken)

    def _close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def release(self):
        """Give the lock back (closing its connection or file releases it)."""
        self._close()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def holder_name(conf):
    return 'conductor %s (pid %d, topic %s)' % (conf.host, os.getpid(),
                                                conf.conductor.topic)
