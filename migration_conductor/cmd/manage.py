"""``migration-conductor-manage``: operator tasks on the conductor's database.

    migration-conductor-manage [--config-file F] db upgrade [--revision REV]
    migration-conductor-manage [--config-file F] db version
"""

import sys

from oslo_config import cfg

from db import migration as db_migration
from migration_conductor import cmd
from migration_conductor.flows import persistence as flow_persistence

PROG = 'migration-conductor-manage'


def _db_upgrade(conf):
    url = conf.database.connection
    before = db_migration.version(url)
    db_migration.upgrade(url, conf.command.revision)
    flow_persistence.upgrade_persistence(url)
    after = db_migration.version(url)
    print('database %s: %s -> %s' % (db_migration.mask_password(url), before or 'empty',
                                    after))


def _db_version(conf):
    url = conf.database.connection
    current = db_migration.version(url)
    head = db_migration.head()
    state = 'up to date' if current == head else 'needs upgrade to %s' % head
    print('%s (%s)' % (current or 'empty', state))


def _add_command_parsers(subparsers):
    db = subparsers.add_parser('db', help='Database schema.')
    db_sub = db.add_subparsers(dest='db_action')
    db_sub.required = True
    upgrade = db_sub.add_parser('upgrade', help='Upgrade the schema (default: newest).')
    upgrade.add_argument('--revision', default='head',
                         help='Alembic revision to upgrade to (default: head).')
    upgrade.set_defaults(func=_db_upgrade)
    version = db_sub.add_parser('version', help='Print the schema version.')
    version.set_defaults(func=_db_version)


def _main(argv):
    conf = cfg.ConfigOpts()
    cmd.register_all(conf)
    conf.register_cli_opt(cfg.SubCommandOpt(
        'command', title='Commands', handler=_add_command_parsers,
        help='Available commands'))
    conf(argv, project=cmd.PROJECT, prog=PROG)
    conf.command.func(conf)
    return 0


def main(argv=None):
    return cmd.run(PROG, _main, argv)


if __name__ == '__main__':
    sys.exit(main())
