"""Alembic environment of the conductor database.

Two ways in:

- programmatic (:mod:`db.migration`): the caller puts an open SQLAlchemy ``Connection``
  in ``config.attributes['connection']`` (or an ``Engine`` in
  ``config.attributes['engine']``) and sets ``config.attributes['configure_logger']`` to
  False so that the service's logging setup is left alone;
- the ``alembic`` command line: the URL comes from ``-x url=...`` (or ``sqlalchemy.url``
  in the ini file) and logging from the ini file. ``--sql`` (offline mode) works too.

When a connection is handed in, its transaction belongs to the caller (alembic joins it);
otherwise alembic opens and commits its own.
"""

import logging.config

from alembic import context
from alembic import util
import sqlalchemy as sa

from db import migration
from db import models

config = context.config
target_metadata = models.Base.metadata


def _configure_logging():
    if config.config_file_name and config.attributes.get('configure_logger', True):
        logging.config.fileConfig(config.config_file_name,
                                  disable_existing_loggers=False)


def _url():
    url = (context.get_x_argument(as_dictionary=True).get('url')
           or config.get_main_option('sqlalchemy.url'))
    if not url:
        raise util.CommandError('No database URL: pass -x url=<SQLAlchemy URL>.')
    return url


def _run_on(connection):
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=migration.VERSION_TABLE,
        # NOTE: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == 'sqlite',
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline():
    """Print the SQL of the migrations instead of running them (``alembic --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata,
                      version_table=migration.VERSION_TABLE,
                      literal_binds=True, dialect_opts={'paramstyle': 'named'})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run the migrations on the given connection, engine or URL (in that order)."""
    connection = config.attributes.get('connection')
    if connection is not None:
        _run_on(connection)
        return
    engine = config.attributes.get('engine')
    if engine is None:
        engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _run_on(connection)


_configure_logging()
if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
