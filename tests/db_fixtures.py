"""Throwaway databases for tests, on SQLite, MariaDB and PostgreSQL.

Each database is created empty for one test and dropped after it:

- ``sqlite``: a file in the test's temporary directory;
- ``mysql``: a uniquely named database (``utf8mb4``) on the MariaDB server at
  127.0.0.1:3306, user root without password, driver PyMySQL;
- ``postgresql``: a uniquely named database on the PostgreSQL server at
  127.0.0.1:5432, user postgres with trust authentication, driver psycopg2.

The admin URLs can be overridden with ``MIGRATION_CONDUCTOR_TEST_MYSQL_URL`` and
``MIGRATION_CONDUCTOR_TEST_POSTGRESQL_URL``.

A server that does not answer FAILS the test, naming the server and its address: a
test that silently skips is a test that never runs in CI (oslo.db's opportunistic
fixtures skip unless told otherwise, which is why they are not used here).

Use the pytest fixtures (import them into a ``conftest.py``):

- ``sqlite_url``, ``mysql_url``, ``postgresql_url``: the URL of an empty database;
- ``database_url``: the same, parametrized over the three backends;
- ``sqlite_api``, ``backend_api``: the schema upgraded to head and :mod:`db.api`
  pointed at it for the duration of the test (``backend_api`` on all three backends).

or, outside pytest fixtures (unittest classes), the context managers
:func:`throwaway_database` and :func:`use_database`.
"""

import contextlib
import os
import pathlib
import tempfile
import uuid

from oslo_db.sqlalchemy import enginefacade
import pytest
import sqlalchemy as sa

from db import api as db_api
from db import migration

BACKENDS = ('sqlite', 'mysql', 'postgresql')

_SERVERS = {
    'mysql': (
        'MariaDB',
        os.environ.get('MIGRATION_CONDUCTOR_TEST_MYSQL_URL',
                       'mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4'),
    ),
    'postgresql': (
        'PostgreSQL',
        os.environ.get('MIGRATION_CONDUCTOR_TEST_POSTGRESQL_URL',
                       'postgresql+psycopg2://postgres@127.0.0.1:5432/postgres'),
    ),
}
_CONNECT_TIMEOUT = 5


def _admin_engine(backend):
    """Return an engine on the server's admin database, or fail the test."""
    label, admin_url = _SERVERS[backend]
    url = sa.engine.make_url(admin_url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              isolation_level='AUTOCOMMIT',
                              connect_args={'connect_timeout': _CONNECT_TIMEOUT})
    try:
        engine.connect().close()
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        pytest.fail('%s server at %s:%s (user %s) did not answer: %s. The database '
                    'tests need it running.'
                    % (label, url.host, url.port, url.username,
                       ' '.join(str(exc.orig).split())), pytrace=False)
    return engine, url


@contextlib.contextmanager
def _server_database(backend):
    engine, admin_url = _admin_engine(backend)
    name = 'mc_test_%s' % uuid.uuid4().hex[:16]
    if backend == 'mysql':
        create = ('CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin'
                  % name)
        drop = 'DROP DATABASE IF EXISTS `%s`' % name
    else:
        create = "CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0" % name
        # NOTE: WITH (FORCE) ends sessions a failed test left open (PostgreSQL 13+).
        drop = 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(create)
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(drop)
        engine.dispose()


@contextlib.contextmanager
def throwaway_database(backend, directory=None):
    """Create an empty database, yield its URL, drop it afterwards.

    :param backend: one of :data:`BACKENDS`.
    :param directory: where to put a SQLite file (a new temporary directory if None).
    :returns: (yields) the SQLAlchemy URL of the new database, as a string.
    :raises pytest.fail.Exception: the server of ``backend`` does not answer.
    """
    if backend == 'sqlite':
        with contextlib.ExitStack() as stack:
            if directory is None:
                directory = stack.enter_context(tempfile.TemporaryDirectory())
            path = pathlib.Path(directory) / ('mc_test_%s.db' % uuid.uuid4().hex[:8])
            yield 'sqlite:///%s' % path
        return
    if backend not in _SERVERS:
        raise ValueError('unknown backend %r, expected one of %s' % (backend, BACKENDS))
    with _server_database(backend) as url:
        yield url


@contextlib.contextmanager
def use_database(url):
    """Point :mod:`db.api` at the database ``url`` for the duration of the block.

    The process-wide :data:`db.api.context_manager` keeps its configuration: a fresh
    enginefacade manager is patched in front of it with oslo.db's ``patch_factory()``
    and removed (its pool disposed) on exit, so tests may switch databases freely.

    :param url: SQLAlchemy URL of a database whose schema is already in place.
    :returns: (yields) the patched-in transaction context manager.
    """
    manager = enginefacade.transaction_context()
    manager.configure(connection=url, max_retries=1, retry_interval=0)
    reset = db_api.context_manager.patch_factory(manager)
    try:
        yield manager
    finally:
        reset()
        manager.dispose_pool()


@contextlib.contextmanager
def api_on(backend, directory=None):
    """Yield the URL of a throwaway database at head that :mod:`db.api` uses."""
    with throwaway_database(backend, directory) as url:
        migration.upgrade(url)
        with use_database(url):
            yield url


@pytest.fixture
def sqlite_url(tmp_path):
    """URL of an empty SQLite database file."""
    with throwaway_database('sqlite', tmp_path) as url:
        yield url


@pytest.fixture
def mysql_url():
    """URL of an empty MariaDB database (fails the test if MariaDB is not up)."""
    with throwaway_database('mysql') as url:
        yield url


@pytest.fixture
def postgresql_url():
    """URL of an empty PostgreSQL database (fails the test if PostgreSQL is not up)."""
    with throwaway_database('postgresql') as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """URL of an empty database, once per backend."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_api(tmp_path):
    """db.api on a SQLite database at head; yields its URL."""
    with api_on('sqlite', tmp_path) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend_api(request, tmp_path):
    """db.api on a database at head, once per backend; yields its URL."""
    with api_on(request.param, tmp_path) as url:
        yield url
