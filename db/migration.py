"""Create, upgrade and inspect the conductor's schema with alembic.

Used by ``migration-conductor-manage db sync`` and by the tests; the service itself
never changes the schema. Each call opens its own short-lived connection (no pool) and
runs the revisions inside one transaction: on PostgreSQL a failed upgrade leaves
nothing behind, while MariaDB commits each DDL statement on its own.

A connection URL that cannot be used (malformed, unknown dialect, driver not installed,
server not answering, credentials refused, database missing) raises
:class:`~migration_conductor.exception.ConfigurationError` naming ``[database]
connection`` and the URL with its password masked; the driver's error stays chained as
``__cause__``. Errors raised by a revision itself are not translated: they are bugs.

Several conductors may run ``db sync`` at once only if the operator serializes them;
alembic takes no lock of its own.
"""

import contextlib
import logging
import os
import re

from alembic import command
from alembic import config as alembic_config
from alembic import migration as alembic_migration
from alembic import script as alembic_script
import sqlalchemy as sa

from migration_conductor import exception

LOG = logging.getLogger(__name__)

# NOTE: not alembic's default 'alembic_version': taskflow's persistence tables live in
# the same database and their own alembic migrations use that default name.
VERSION_TABLE = 'migration_conductor_version'

SETTING = '[database] connection'
_ALEMBIC_INI = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'alembic.ini')


def mask_password(connection_url):
    """Return ``connection_url`` as text with its password replaced by ``***``.

    :param connection_url: a SQLAlchemy URL (string or ``sqlalchemy.engine.URL``), even
        a malformed one.
    :returns: the URL, safe to log or show.
    """
    try:
        return sa.engine.make_url(connection_url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        # NOTE: greedy up to the last '@' masks too much rather than too little.
        return re.sub(r'(://[^:@/]*:).*@', r'\1***@', str(connection_url))


def _one_line(error):
    return ' '.join(str(error).split())


def _configuration_error(reason):
    return exception.ConfigurationError(setting=SETTING, reason=reason)


def _make_engine(connection_url):
    masked = mask_password(connection_url)
    try:
        url = sa.engine.make_url(connection_url)
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    except sa.exc.NoSuchModuleError as exc:
        raise _configuration_error('unknown database type %r in %s'
                                   % (url.drivername, masked)) from exc
    except ImportError as exc:
        raise _configuration_error(
            'the database driver for %s is not installed (%s)'
            % (masked, _one_line(exc))) from exc
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise _configuration_error('%s is not a valid database URL (%s)'
                                   % (masked, _one_line(exc))) from exc


@contextlib.contextmanager
def _connect(connection_url):
    """Yield a connection inside a transaction committed on success.

    :raises ConfigurationError: when the URL cannot give a connection.
    """
    engine = _make_engine(connection_url)
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            reason = 'cannot connect to %s: %s' % (
                mask_password(connection_url),
                _one_line(exc.orig if exc.orig is not None else exc))
            raise _configuration_error(reason) from exc
        with connection, connection.begin():
            yield connection
    finally:
        engine.dispose()


def _config(connection=None):
    cfg = alembic_config.Config(_ALEMBIC_INI, attributes={'configure_logger': False})
    if connection is not None:
        cfg.attributes['connection'] = connection
    return cfg


def upgrade(connection_url, revision='head'):
    """Upgrade the schema to ``revision`` (an empty database gets every table).

    :param connection_url: SQLAlchemy URL of the database (``[database] connection``).
    :param revision: target alembic revision, ``head`` by default.
    :raises ConfigurationError: the URL cannot give a connection.
    """
    LOG.info('Upgrading database %s to revision %s',
             mask_password(connection_url), revision)
    with _connect(connection_url) as connection:
        command.upgrade(_config(connection), revision)


def downgrade(connection_url, revision):
    """Downgrade the schema to ``revision`` (``base`` drops every table and row).

    :param connection_url: SQLAlchemy URL of the database.
    :param revision: target alembic revision, e.g. ``base`` or ``-1``.
    :raises ConfigurationError: the URL cannot give a connection.
    """
    LOG.info('Downgrading database %s to revision %s',
             mask_password(connection_url), revision)
    with _connect(connection_url) as connection:
        command.downgrade(_config(connection), revision)


def version(connection_url):
    """Return the revision the database is at.

    :param connection_url: SQLAlchemy URL of the database.
    :returns: the alembic revision id, or None for a database never upgraded.
    :raises ConfigurationError: the URL cannot give a connection.
    """
    with _connect(connection_url) as connection:
        return alembic_migration.MigrationContext.configure(
            connection, opts={'version_table': VERSION_TABLE}).get_current_revision()


def head():
    """Return the newest revision shipped with this code (no database needed).

    :returns: the alembic revision id of the single head.
    """
    return alembic_script.ScriptDirectory.from_config(_config()).get_current_head()
