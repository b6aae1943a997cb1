"""The [database] group: oslo.db's options, with the embedded SQLite default.

oslo.db owns the options (``connection`` and the pool settings); this module only sets the
project's default connection, a SQLite file under ``[DEFAULT] state_path``.
"""

from oslo_db import options as db_options

DEFAULT_CONNECTION = 'sqlite:///$state_path/migration_conductor.sqlite'


def register_opts(conf):
    db_options.set_defaults(conf, connection=DEFAULT_CONNECTION)


def list_opts():
    # The options themselves are listed by the oslo.db namespace of the generator.
    return {}
