"""``migctl``: the operator's command line, a client of the conductor's RPC API.

    migctl [--config-file F] host list | host show HOST | instance list [--host HOST]
    migctl migration start INSTANCE [--host H [--force]] [--wait]
    migctl migration list [--status S] [--host H] [--instance I] | migration show M
    migctl migration abort M | migration force-complete M

Output is a table by default (``-f json``, ``-f yaml``, ``-f csv``, ``-f value`` from
cliff). With a broker transport, migctl sends RPC calls to the running conductor. With the
in-process transport of the all-in-one mode (the embedded default) there is no service to
call across processes, so migctl runs the conductor and the configured agents inside its
own process for the duration of the command, and says so on stderr.
"""

import logging
import sys
import time

from cliff import app
from cliff import commandmanager
from cliff import lister
from cliff import show
from oslo_config import cfg
import oslo_messaging as messaging

from migration_conductor import cmd
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import rpc
from migration_conductor import rpcapi

PROG = 'migctl'
LOG = logging.getLogger(__name__)

_HOST_COLUMNS = ('host', 'up', 'enabled', 'hypervisor_type', 'hypervisor_version',
                 'cpu_model', 'vcpus', 'memory_mb', 'memory_mb_free', 'libvirt_uri',
                 'last_heartbeat')
_HOST_LIST_COLUMNS = ('host', 'up', 'enabled', 'hypervisor_type', 'cpu_model', 'vcpus',
                      'memory_mb', 'memory_mb_free', 'last_heartbeat')
_INSTANCE_COLUMNS = ('uuid', 'name', 'host', 'power_state', 'memory_mb', 'vcpus',
                     'task_state')


def _value(obj, name):
    value = getattr(obj, name) if obj.obj_attr_is_set(name) else None
    if hasattr(value, 'isoformat'):
        return value.isoformat(timespec='seconds')
    if isinstance(value, list):
        return ','.join(value)
    return value


class _TypedErrors:
    """Mixin: a typed error of a command is one ``migctl: error:`` line, exit 2."""

    def run(self, parsed_args):
        try:
            return super().run(parsed_args)
        except cmd.EXPECTED_ERRORS as exc:
            cmd.print_error(PROG, exc)
            return cmd.EXIT_CONFIG_ERROR
        except messaging.MessagingTimeout:
            conf = self.app.conf
            cmd.print_error(PROG, exception.ConductorUnavailable(
                topic=conf.conductor.topic, timeout=conf.rpc_response_timeout,
                transport=rpc.mask_url(conf.transport_url)))
            return cmd.EXIT_CONFIG_ERROR


class HostList(_TypedErrors, lister.Lister):
    """List compute hosts: liveness, hypervisor and inventory."""

    def take_action(self, parsed_args):
        hosts = self.app.conductor.list_hosts(self.app.context)
        return (_HOST_LIST_COLUMNS,
                [[_value(h, c) for c in _HOST_LIST_COLUMNS] for h in hosts])


class HostShow(_TypedErrors, show.ShowOne):
    """Show one compute host."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Host name as its agent reports it.')
        return parser

    def take_action(self, parsed_args):
        host = self.app.conductor.get_host(self.app.context, parsed_args.host)
        return _HOST_COLUMNS, [_value(host, c) for c in _HOST_COLUMNS]


class InstanceList(_TypedErrors, lister.Lister):
    """List instances (libvirt domains) and the host each runs on."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--host', help='Only instances on this host.')
        return parser

    def take_action(self, parsed_args):
        instances = self.app.conductor.list_instances(self.app.context,
                                                      host=parsed_args.host)
        return (_INSTANCE_COLUMNS,
                [[_value(i, c) for c in _INSTANCE_COLUMNS] for i in instances])


_MIGRATION_COLUMNS = ('uuid', 'instance_uuid', 'status', 'source_host', 'dest_host',
                      'requested_dest', 'force', 'memory_total', 'memory_processed',
                      'memory_remaining', 'dirty_rate', 'iteration',
                      'expected_downtime_ms', 'downtime_ms', 'total_time_ms',
                      'error', 'created_at', 'started_at', 'finished_at')
_MIGRATION_LIST_COLUMNS = ('uuid', 'instance_uuid', 'status', 'source_host', 'dest_host',
                           'downtime_ms', 'total_time_ms', 'created_at')
_MIB = 1024 * 1024


def _migration_row(migration, columns):
    row = []
    for column in columns:
        value = _value(migration, column)
        if column == 'error' and value is not None:
            value = str(value)
        row.append(value)
    return row


def _progress_line(migration):
    def mib(name):
        value = _value(migration, name)
        return '-' if value is None else '%.0f' % (value / _MIB)
    line = '%s' % migration.status
    if migration.status in ('running', 'running-postcopy', 'cancelling'):
        line += (': %s/%s MiB sent, %s MiB remaining, iteration %s, dirty %s MiB/s'
                 % (mib('memory_processed'), mib('memory_total'), mib('memory_remaining'),
                    _value(migration, 'iteration') or '-', mib('dirty_rate')))
    elif migration.status in ('scheduling', 'pre-checking', 'claiming', 'preparing'):
        line += ' (destination %s)' % (_value(migration, 'dest_host') or 'not chosen yet')
    return line


class _MigrationShow(_TypedErrors, show.ShowOne):
    def _show(self, migration):
        return _MIGRATION_COLUMNS, _migration_row(migration, _MIGRATION_COLUMNS)


class MigrationStart(_MigrationShow):
    """Start a live migration of an instance (admin)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('instance', help='UUID of the instance (its domain UUID).')
        parser.add_argument('--host', help='Destination host; default: the scheduler '
                                           'chooses.')
        parser.add_argument('--force', action='store_true',
                            help='With --host: only safety checks, no scheduler filters.')
        parser.add_argument('--block-migration', default='auto',
                            choices=['auto', 'true', 'false'],
                            help='Copy local disks (default: decided from storage pools).')
        parser.add_argument('--wait', action='store_true',
                            help='Follow the migration until it ends, printing its '
                                 'progress (always on in all-in-one mode).')
        return parser

    def take_action(self, parsed_args):
        migration = self.app.conductor.live_migrate(
            self.app.context, parsed_args.instance, host=parsed_args.host,
            force=parsed_args.force, block_migration=parsed_args.block_migration)
        print('migration %s accepted' % migration.uuid, file=sys.stderr)
        if parsed_args.wait or self.app.all_in_one:
            migration = self.app.follow(migration.uuid)
        return self._show(migration)


class MigrationShow(_MigrationShow):
    """Show one migration: status, progress, statistics, error."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('migration', help='UUID of the migration.')
        return parser

    def take_action(self, parsed_args):
        return self._show(self.app.conductor.get_migration(self.app.context,
                                                           parsed_args.migration))


class MigrationList(_TypedErrors, lister.Lister):
    """List migrations, newest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--status', help='Only migrations in this status.')
        parser.add_argument('--host', help='Only migrations from or to this host.')
        parser.add_argument('--instance', help='Only migrations of this instance.')
        parser.add_argument('--limit', type=int, help='At most this many.')
        return parser

    def take_action(self, parsed_args):
        migrations = self.app.conductor.list_migrations(
            self.app.context, status=parsed_args.status, host=parsed_args.host,
            instance_uuid=parsed_args.instance, limit=parsed_args.limit)
        return (_MIGRATION_LIST_COLUMNS,
                [_migration_row(m, _MIGRATION_LIST_COLUMNS) for m in migrations])


class MigrationAbort(MigrationShow):
    """Abort a migration before its switch-over; the guest keeps running on the source."""

    def take_action(self, parsed_args):
        self.app.conductor.abort_migration(self.app.context, parsed_args.migration)
        return self._show(self.app.follow(parsed_args.migration))


class MigrationForceComplete(MigrationShow):
    """Force a running migration to complete (pauses the guest until it has moved)."""

    def take_action(self, parsed_args):
        self.app.conductor.force_complete_migration(self.app.context,
                                                    parsed_args.migration)
        return self._show(self.app.follow(parsed_args.migration))


_COMMANDS = {
    'host list': HostList,
    'host show': HostShow,
    'instance list': InstanceList,
    'migration start': MigrationStart,
    'migration show': MigrationShow,
    'migration list': MigrationList,
    'migration abort': MigrationAbort,
    'migration force-complete': MigrationForceComplete,
}

_TERMINAL = ('completed', 'cancelled', 'error', 'failed')


class MigctlApp(app.App):
    """cliff application; holds the configuration, the RPC client and the context."""

    def __init__(self):
        manager = commandmanager.CommandManager('migctl.commands')
        for name, command in _COMMANDS.items():
            manager.add_command(name, command)
        super().__init__(description='Operate migration-conductor.', version='0.1.0',
                         command_manager=manager, deferred_help=True)
        self.conf = None
        self.conductor = None
        self.context = None
        self._all_in_one = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument('--config-file', action='append', default=[],
                            help='Configuration file (repeatable); default: the standard '
                                 'locations of migration-conductor.conf.')
        return parser

    def configure_logging(self):
        super().configure_logging()
        # cliff logs at WARNING by default; keep the library chatter out of the output.
        if self.options.verbose_level <= 1:
            logging.getLogger().setLevel(logging.WARNING)
            # stevedore logs a failed driver load on its own; our error line says it.
            logging.getLogger('stevedore').setLevel(logging.CRITICAL)

    def initialize_app(self, argv):
        try:
            self._initialize(argv)
        except cmd.EXPECTED_ERRORS as exc:
            # cliff would log it and exit 1; an operator gets one line and status 2.
            cmd.print_error(PROG, exc)
            raise SystemExit(cmd.EXIT_CONFIG_ERROR)

    def _initialize(self, argv):
        conf = cfg.ConfigOpts()
        cmd.register_all(conf)
        args = []
        for path in self.options.config_file:
            args += ['--config-file', path]
        conf(args, project=cmd.PROJECT, prog=PROG)
        if conf.log_file or conf.log_dir:
            # The all-in-one services run in this process: their log tells the story.
            cmd.setup_logging(conf)
        self.conf = conf
        self.context = mc_context.get_admin_context()
        if rpc.is_in_process(conf) and argv and argv[0] != 'help':
            self._start_all_in_one()
        else:
            rpc.check_transport(conf)
        self.conductor = rpcapi.ConductorAPI(conf, 'migctl')

    def _start_all_in_one(self):
        from migration_conductor import all_in_one
        self._all_in_one = all_in_one.AllInOne(self.conf)
        self._all_in_one.start()
        hosts = ', '.join(a.host for a in self._all_in_one.agents) or 'no agent'
        print('(all-in-one: conductor and %s running inside migctl)' % hosts,
              file=sys.stderr)

    @property
    def all_in_one(self):
        return self._all_in_one is not None

    def follow(self, migration_uuid, interval=1.0):
        """Print progress lines on stderr until the migration ends; return it."""
        last = None
        while True:
            migration = self.conductor.get_migration(self.context, migration_uuid)
            line = _progress_line(migration)
            if line != last:
                print('  %s' % line, file=sys.stderr)
                last = line
            if migration.status in _TERMINAL:
                return migration
            time.sleep(interval)

    def clean_up(self, cmd_obj, result, err):
        if self._all_in_one is not None:
            self._all_in_one.stop()
            self._all_in_one = None
        rpc.cleanup()


def _main(argv):
    return MigctlApp().run(argv)


def main(argv=None):
    return cmd.run(PROG, _main, argv)
