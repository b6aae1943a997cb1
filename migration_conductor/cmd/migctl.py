"""``migctl``: the operator's command line, a client of the conductor's RPC API.

    migctl [--config-file F] host list | host show HOST | instance list [--host HOST]

Output is a table by default (``-f json``, ``-f yaml``, ``-f csv``, ``-f value`` from
cliff). With a broker transport, migctl sends RPC calls to the running conductor. With the
in-process transport of the all-in-one mode (the embedded default) there is no service to
call across processes, so migctl runs the conductor and the configured agents inside its
own process for the duration of the command, and says so on stderr.
"""

import logging
import sys

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


_COMMANDS = {
    'host list': HostList,
    'host show': HostShow,
    'instance list': InstanceList,
}


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
        self.conductor = rpcapi.ConductorAPI(conf)

    def _start_all_in_one(self):
        from migration_conductor import all_in_one
        self._all_in_one = all_in_one.AllInOne(self.conf)
        self._all_in_one.start()
        hosts = ', '.join(a.host for a in self._all_in_one.agents) or 'no agent'
        print('(all-in-one: conductor and %s running inside migctl)' % hosts,
              file=sys.stderr)

    def clean_up(self, cmd_obj, result, err):
        if self._all_in_one is not None:
            self._all_in_one.stop()
            self._all_in_one = None
        rpc.cleanup()


def _main(argv):
    return MigctlApp().run(argv)


def main(argv=None):
    return cmd.run(PROG, _main, argv)
