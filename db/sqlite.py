"""SQLite, the embedded default, set up for several writers of one process.

Role: every SQLite connection this process opens (the database API's engine and
taskflow's persistence, which share the file in the embedded mode) gets

* ``journal_mode=WAL``: readers never block the writer nor it them. In the default
  rollback journal a writer must wait until no reader holds the file to commit; with
  the monitor's reports, the flows' saves and the operator's polling all at once it
  waited past its timeout and failed the write ("database is locked": seen failing a
  monitor, the migration then ending in ``error``). The mode is kept in the file.
* ``busy_timeout``: a writer waits up to :data:`BUSY_TIMEOUT_MS` for another writer
  instead of the driver's 5 s (writes are short; only a commit waits for another).
* ``synchronous=NORMAL``: WAL's usual durability (a commit survives a crash of the
  process, not necessarily a power loss of the machine), as for an embedded default.

Installed once per process by :func:`install` (a listener on SQLAlchemy's pools,
acting on sqlite3 connections only); MariaDB and PostgreSQL are untouched.
"""

import logging
import sqlite3
import threading

import sqlalchemy as sa

LOG = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30000

_installed = False
_lock = threading.Lock()


def _on_connect(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute('PRAGMA busy_timeout = %d' % BUSY_TIMEOUT_MS)
        try:
            cursor.execute('PRAGMA journal_mode = WAL')
        except sqlite3.OperationalError as exc:
            # Another connection holds the file while it is switched: it is switched
            # already (the mode is kept in the file) or the next connection does it.
            LOG.debug('SQLite journal mode not changed on this connection: %s', exc)
        cursor.execute('PRAGMA synchronous = NORMAL')
    finally:
        cursor.close()


def install():
    """Set up every SQLite connection opened from now on in this process (idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            sa.event.listen(sa.pool.Pool, 'connect', _on_connect)
            _installed = True
