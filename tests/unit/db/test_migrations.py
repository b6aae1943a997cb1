"""The alembic revisions on SQLite, MariaDB and PostgreSQL.

- walk: from an empty database, upgrade one revision at a time to head, checking what
  each revision made; downgrade one at a time back to base; upgrade to head again;
- sync: after upgrading to head, the schema the revisions made and the one the models
  describe do not differ (oslo.db's ModelsMigrationsSync, i.e. alembic autogenerate);
- errors: an unusable URL gives ConfigurationError with the password masked;
- command line: ``alembic -c db/alembic.ini -x url=...`` works.

To test a new revision, add a ``_check_<revision>`` (after upgrade) and, when useful, a
``_post_downgrade_<revision>`` function below.
"""

import os
import subprocess
import sys
import unittest

from alembic import script as alembic_script
from oslo_db.sqlalchemy import test_migrations
import pytest
import sqlalchemy as sa

import db
from db import migration
from db import models
from migration_conductor import exception
from tests import db_fixtures

_DB_DIR = os.path.dirname(os.path.abspath(db.__file__))
_ALEMBIC_INI = os.path.join(_DB_DIR, 'alembic.ini')
_REPO_ROOT = os.path.dirname(_DB_DIR)

INITIAL_COLUMNS = {
    'compute_hosts': {
        'id', 'host', 'hypervisor_type', 'hypervisor_version', 'libvirt_version',
        'cpu_arch', 'cpu_vendor', 'cpu_model', 'cpu_features', 'cpu_xml',
        'memory_mb', 'memory_mb_free', 'vcpus', 'libvirt_uri', 'migration_address',
        'host_uuid', 'service_version', 'enabled', 'disabled_reason',
        'last_heartbeat', 'created_at', 'updated_at'},
    'instances': {
        'id', 'uuid', 'name', 'host', 'power_state', 'memory_mb', 'vcpus',
        'task_state', 'migration_profile', 'created_at', 'updated_at'},
    'migrations': {
        'id', 'uuid', 'instance_uuid', 'migration_type', 'source_host', 'dest_host',
        'requested_dest', 'force', 'block_migration', 'status', 'memory_total',
        'memory_processed', 'memory_remaining', 'disk_total', 'disk_processed',
        'disk_remaining', 'dirty_rate', 'iteration', 'expected_downtime_ms',
        'downtime_ms', 'total_time_ms', 'error_phase', 'error_host', 'error_code',
        'error_message', 'started_at', 'finished_at', 'created_at', 'updated_at'},
}


# What revision 5c2e8a41b7d3 adds (the agent-side monitor, slots and ownership).
MONITOR_COLUMNS = {
    'migrations': {'job_state', 'job_error', 'last_report_at', 'owner', 'generation',
                   'queued_at'},
    'migration_progress': {
        'id', 'migration_uuid', 'created_at', 'origin', 'memory_total',
        'memory_processed', 'memory_remaining', 'disk_total', 'disk_processed',
        'disk_remaining', 'dirty_rate', 'iteration', 'expected_downtime_ms',
        'total_time_ms', 'postcopy'},
    'migration_slots': {'id', 'host', 'direction', 'slot', 'migration_uuid',
                        'created_at'},
    'conductor_locks': {'id', 'name', 'holder', 'created_at', 'updated_at'},
}
NEW_TABLES = ('migration_progress', 'migration_slots', 'conductor_locks')

# What revision 8f3b1c9d2e47 adds (migration profiles).
PROFILE_COLUMNS = {
    'migrations': {'profile', 'strategy', 'forecast'},
    'migration_events': {'id', 'migration_uuid', 'created_at', 'kind', 'host',
                         'job_elapsed_s', 'message'},
}


def _columns_after(*revisions):
    columns = {table: set(names) for table, names in INITIAL_COLUMNS.items()}
    for added in revisions:
        for table, names in added.items():
            columns.setdefault(table, set()).update(names)
    return columns


def _head_columns():
    return _columns_after(MONITOR_COLUMNS, PROFILE_COLUMNS)


def _revisions():
    """Return the revisions from the first to the head."""
    scripts = alembic_script.ScriptDirectory(os.path.join(_DB_DIR, 'alembic'))
    return list(reversed(list(scripts.walk_revisions())))


def _unique_columns(inspector, table):
    return {tuple(constraint['column_names'])
            for constraint in inspector.get_unique_constraints(table)}


def _indexed_columns(inspector, table):
    return {tuple(index['column_names']) for index in inspector.get_indexes(table)}


def _check_1d8936902f05(engine):
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= set(INITIAL_COLUMNS)
    for table, columns in INITIAL_COLUMNS.items():
        assert {c['name'] for c in inspector.get_columns(table)} == columns, table
    assert ('host',) in _unique_columns(inspector, 'compute_hosts')
    assert ('uuid',) in _unique_columns(inspector, 'instances')
    assert ('uuid',) in _unique_columns(inspector, 'migrations')
    assert ('host',) in _indexed_columns(inspector, 'instances')
    indexed = _indexed_columns(inspector, 'migrations')
    assert {('instance_uuid',), ('status',)} <= indexed


def _check_5c2e8a41b7d3(engine):
    inspector = sa.inspect(engine)
    for table, columns in _columns_after(MONITOR_COLUMNS).items():
        assert {c['name'] for c in inspector.get_columns(table)} == columns, table
    assert ('host', 'direction', 'slot') in _unique_columns(inspector, 'migration_slots')
    assert ('name',) in _unique_columns(inspector, 'conductor_locks')
    assert ('migration_uuid',) in _indexed_columns(inspector, 'migration_progress')
    assert ('migration_uuid',) in _indexed_columns(inspector, 'migration_slots')


def _check_8f3b1c9d2e47(engine):
    inspector = sa.inspect(engine)
    for table, columns in _head_columns().items():
        assert {c['name'] for c in inspector.get_columns(table)} == columns, table
    assert ('migration_uuid',) in _indexed_columns(inspector, 'migration_events')


def _post_downgrade_8f3b1c9d2e47(engine):
    inspector = sa.inspect(engine)
    assert 'migration_events' not in inspector.get_table_names()
    for table, columns in _columns_after(MONITOR_COLUMNS).items():
        assert {c['name'] for c in inspector.get_columns(table)} == columns, table


def _post_downgrade_5c2e8a41b7d3(engine):
    inspector = sa.inspect(engine)
    assert not set(inspector.get_table_names()) & set(NEW_TABLES)
    assert {c['name'] for c in inspector.get_columns('migrations')} == \
        INITIAL_COLUMNS['migrations']


def _post_downgrade_1d8936902f05(engine):
    assert not set(sa.inspect(engine).get_table_names()) & set(INITIAL_COLUMNS)


def _run_check(prefix, revision, engine):
    check = globals().get('%s_%s' % (prefix, revision))
    if check is not None:
        check(engine)


def test_models_cover_the_columns_of_every_revision():
    columns = _head_columns()
    assert set(models.Base.metadata.tables) == set(columns)
    for table, names in columns.items():
        assert set(models.Base.metadata.tables[table].columns.keys()) == names, table


def test_single_head():
    revisions = _revisions()
    assert revisions[0].down_revision is None
    assert migration.head() == revisions[-1].revision


def test_walk_versions(database_url):
    revisions = _revisions()
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        assert migration.version(database_url) is None
        for script in revisions:
            migration.upgrade(database_url, script.revision)
            assert migration.version(database_url) == script.revision
            _run_check('_check', script.revision, engine)
        for script in reversed(revisions):
            migration.downgrade(database_url, script.down_revision or 'base')
            assert migration.version(database_url) == script.down_revision
            _run_check('_post_downgrade', script.revision, engine)
        migration.upgrade(database_url)
        assert migration.version(database_url) == migration.head()
        _run_check('_check', revisions[-1].revision, engine)
    finally:
        engine.dispose()


class _ModelsMigrationsSync(test_migrations.ModelsMigrationsSync):
    """oslo.db's models-vs-migrations comparison on one throwaway database."""

    backend = None

    def setUp(self):
        super().setUp()
        self.url = self.enterContext(db_fixtures.throwaway_database(self.backend))
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        self.addCleanup(self.engine.dispose)

    def db_sync(self, engine):
        migration.upgrade(self.url)

    def get_engine(self):
        return self.engine

    def get_metadata(self):
        return models.Base.metadata

    def include_object(self, object_, name, type_, reflected, compare_to):
        # Our alembic version table is bookkeeping, not a model.
        if type_ == 'table' and name == migration.VERSION_TABLE:
            return False
        return super().include_object(object_, name, type_, reflected, compare_to)


class TestModelsMigrationsSyncSQLite(_ModelsMigrationsSync, unittest.TestCase):
    backend = 'sqlite'


class TestModelsMigrationsSyncMySQL(_ModelsMigrationsSync, unittest.TestCase):
    backend = 'mysql'


class TestModelsMigrationsSyncPostgreSQL(_ModelsMigrationsSync, unittest.TestCase):
    backend = 'postgresql'


def test_mysql_tables_are_innodb_utf8mb4_bin_with_microseconds(mysql_url):
    # NOTE: autogenerate does not compare the fractional seconds of a DATETIME.
    migration.upgrade(mysql_url)
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            tables = connection.execute(sa.text(
                'SELECT table_name, engine, table_collation '
                'FROM information_schema.tables WHERE table_schema = DATABASE()'
            )).all()
            datetimes = connection.execute(sa.text(
                'SELECT table_name, column_name, datetime_precision '
                'FROM information_schema.columns '
                "WHERE table_schema = DATABASE() AND data_type = 'datetime'"
            )).all()
    finally:
        engine.dispose()
    found = {name: (kind, collation) for name, kind, collation in tables}
    for table in INITIAL_COLUMNS:
        assert found[table] == ('InnoDB', 'utf8mb4_bin')
    expected = {(table.name, column.name)
                for table in models.Base.metadata.tables.values()
                for column in table.columns if isinstance(column.type, sa.DateTime)}
    assert {(table, column) for table, column, _ in datetimes} == expected
    assert {precision for _, _, precision in datetimes} == {6}


@pytest.mark.parametrize('url, expected', [
    ('nosuchdialect://db/x', "unknown database type 'nosuchdialect'"),
    ('not a url', 'is not a valid database URL'),
    ('mysql+mysqldb://root:secret@127.0.0.1/x', 'driver'),
    ('mysql+pymysql://root:secret@127.0.0.1:1/x', 'cannot connect to'),
    ('mysql+pymysql://nobody:secret@127.0.0.1:3306/x', 'cannot connect to'),
    ('postgresql+psycopg2://nobody:secret@127.0.0.1:5432/x', 'cannot connect to'),
    ('postgresql+psycopg2://postgres:secret@127.0.0.1:1/x', 'cannot connect to'),
    ('mysql+pymysql://root:secret@127.0.0.1:3306/mc_no_such_database',
     'cannot connect to'),
])
def test_unusable_url_is_a_configuration_error(url, expected):
    for call in (migration.version, migration.upgrade):
        with pytest.raises(exception.ConfigurationError) as caught:
            call(url)
        message = str(caught.value)
        assert message.startswith('[database] connection: ')
        assert expected in message
        assert '\n' not in message
        assert 'secret' not in message
        if '@' in url:
            assert ':***@' in message
        assert caught.value.__cause__ is not None


def test_mask_password():
    assert (migration.mask_password('mysql+pymysql://u:p4ss@h/d?charset=utf8mb4')
            == 'mysql+pymysql://u:***@h/d?charset=utf8mb4')
    assert (migration.mask_password('garbage://u:p4ss@h:port/d')
            == 'garbage://u:***@h:port/d')
    assert migration.mask_password('sqlite:///x.db') == 'sqlite:///x.db'


def _alembic_cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'alembic', '-c', _ALEMBIC_INI, *args],
        cwd='/', capture_output=True, text=True, timeout=120, check=False)


def test_command_line(sqlite_url):
    done = _alembic_cli('-x', 'url=%s' % sqlite_url, 'upgrade', 'head')
    assert done.returncode == 0, done.stderr
    assert migration.version(sqlite_url) == migration.head()
    done = _alembic_cli('-x', 'url=%s' % sqlite_url, 'current')
    assert done.returncode == 0, done.stderr
    assert migration.head() in done.stdout


def test_command_line_offline_sql():
    done = _alembic_cli('-x', 'url=postgresql+psycopg2://h/d', 'upgrade', 'head',
                        '--sql')
    assert done.returncode == 0, done.stderr
    assert 'CREATE TABLE migrations' in done.stdout


def test_command_line_without_url():
    done = _alembic_cli('current')
    assert done.returncode != 0
    assert 'No database URL' in done.stderr
