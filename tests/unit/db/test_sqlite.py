"""The embedded default's SQLite set-up (db/sqlite.py)."""

import sqlite3

import sqlalchemy as sa

from db import api as db_api  # noqa: F401 (installs the set-up, as in the services)
from db import sqlite


def test_every_connection_gets_wal_and_the_longer_busy_timeout(sqlite_url):
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql(
                'PRAGMA journal_mode').scalar() == 'wal'
            assert connection.exec_driver_sql(
                'PRAGMA busy_timeout').scalar() == sqlite.BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_a_reader_in_a_transaction_does_not_keep_a_writer_out(sqlite_url):
    """What failed monitors with "database is locked": in the rollback journal a
    writer cannot commit while another connection reads in a transaction."""
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.connect() as setup:
            setup.exec_driver_sql('CREATE TABLE t (n INTEGER)')
            setup.exec_driver_sql('INSERT INTO t VALUES (1)')
            setup.commit()
        path = sqlite_url[len('sqlite:///'):]
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute('BEGIN')
        assert reader.execute('SELECT n FROM t').fetchall() == [(1,)]  # holds a read
        with engine.connect() as writer:
            # Short, so that a writer kept out fails at once instead of waiting 30 s.
            writer.exec_driver_sql('PRAGMA busy_timeout = 200')
            writer.exec_driver_sql('UPDATE t SET n = 2')
            writer.commit()
        assert reader.execute('SELECT n FROM t').fetchall() == [(1,)]  # its snapshot
        reader.execute('COMMIT')
        assert reader.execute('SELECT n FROM t').fetchall() == [(2,)]
        reader.close()
    finally:
        engine.dispose()
