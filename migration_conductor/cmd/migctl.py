"""``migctl``: the operator's command line, a client of the conductor's RPC API.

    migctl [--config-file F] [--ping-timeout S] COMMAND [ARGS]
    migctl host list | host show HOST | instance list [--host HOST]
    migctl migration start INSTANCE [--host H [--force]] [--wait]
    migctl migration list [--status S] [--host H] [--instance I] | migration show M
    migctl migration abort M | migration force-complete M [--mode pause|postcopy]
    migctl profile list | profile show NAME

Output is a table by default (``-f json``, ``-f yaml``, ``-f csv``, ``-f value`` from
cliff). The table is for people: sizes in MiB, times with their unit, labels in words,
figures that mean nothing any more (the expected downtime of a migration that ended)
left out. Every other format is for scripts: the fields keep their names and raw values
(bytes, milliseconds, ISO 8601 timestamps with milliseconds), plus ``job_time_ms`` and
``duration_ms`` for migrations; ``-c FIELD`` takes those names in every format.

With a broker transport, migctl sends RPC calls to the running conductor, after a
``ping`` that waits at most ``--ping-timeout`` seconds (default 5, and never longer than
``rpc_response_timeout``), so that a missing conductor is reported in seconds rather
than after the whole RPC timeout. A conductor older than API 1.4 has no ``ping``; the
error it answers with shows it is alive. With the in-process transport of the
all-in-one mode (the embedded default) there is no service to call across processes,
so migctl runs the conductor and the configured agents inside its own process for the
duration of the command, and says so on stderr (their log goes to ``[DEFAULT]
log_file``, or to stderr with ``-v``). Neither starts before the command line has been
parsed: a usage error starts nothing.

Exit status (a script may rely on these; every error is one line ``migctl: error: ...``
on stderr, never a traceback unless ``--debug`` asks for it):

    0  success (a command that follows a migration: it ended as the command intended)
    1  unexpected internal error
    2  configuration or connection error: a bad configuration file or option, the
       broker unreachable, no conductor answering
    3  invalid or refused request: command-line usage (also a missing or unknown
       command), invalid input, a conflict with the current state, a refused
       destination, no valid host, not allowed by policy
    4  not found: host, instance or migration
    5  the migration ended ``failed``
    6  the migration ended ``cancelled``
    7  the migration ended ``error`` (an operator must look)

5, 6 and 7 come from the commands that follow a migration to its end: ``migration
start`` with ``--wait`` (implied in the all-in-one mode, which must wait), ``migration
abort`` and ``migration force-complete``. Each exits 0 when the migration ended as
intended: completed (start, force-complete), cancelled (abort). An abort after which the
migration completed all the same (it lost the race against the switch-over) exits 3:
the request could not be honoured, as when the abort arrives after the switch-over and
the conductor refuses it; in both cases the instance runs on the destination.
"""

import argparse
import datetime
import logging
import sys
import time

from cliff import app
from cliff import commandmanager
from cliff import complete
from cliff import help as cliff_help
from cliff import lister
from cliff import show
from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher

from migration_conductor import cmd
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import rpc
from migration_conductor import rpcapi
from migration_conductor.objects import migration_states as states

PROG = 'migctl'
LOG = logging.getLogger(__name__)

# --- exit status -----------------------------------------------------------------------

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_CONFIG_ERROR = cmd.EXIT_CONFIG_ERROR   # 2, as every console script of the project
EXIT_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_MIGRATION_FAILED = 5
EXIT_MIGRATION_CANCELLED = 6
EXIT_MIGRATION_ERROR = 7

_ENDED_EXITS = {states.FAILED: EXIT_MIGRATION_FAILED,
                states.CANCELLED: EXIT_MIGRATION_CANCELLED,
                states.ERROR: EXIT_MIGRATION_ERROR}

# First match wins. NOTE: errors raised in the conductor arrive rebuilt by oslo.messaging
# as subclasses of the same classes, so isinstance() sorts them as well.
_ERROR_EXITS = (
    (exception.NotFound, EXIT_NOT_FOUND),
    ((exception.Invalid, exception.Conflict, exception.DestinationRefused,
      exception.CPUIncompatible, exception.NoValidHost, exception.PolicyNotAuthorized),
     EXIT_INVALID),
    ((exception.ConfigurationError, exception.ConductorUnavailable,
      exception.HypervisorUnavailable, cfg.Error), EXIT_CONFIG_ERROR),
)

EXIT_CODES_HELP = """exit status:
  0  success (for a command that follows a migration: it ended as intended)
  1  unexpected internal error
  2  configuration or connection error (config file or option, broker, no conductor)
  3  invalid or refused request (usage, invalid input, conflict, refused destination,
     no valid host, policy); also an abort after which the migration completed
  4  not found (host, instance, migration)
  5  the migration ended failed      (migration start --wait, abort, force-complete)
  6  the migration ended cancelled
  7  the migration ended error
Errors are one line "migctl: error: ..." on stderr. The table format is for people
(MiB, units, labels); -f json/yaml/csv/value keep raw fields (bytes, milliseconds)."""

DEFAULT_PING_TIMEOUT = 5.0
# ``ping`` is unknown to a conductor older than API 1.4: its answer proves it is alive.
_OLD_CONDUCTOR_ERRORS = (dispatcher.NoSuchMethod, dispatcher.UnsupportedVersion)


def exit_status(exc):
    """The exit status for error ``exc`` (see the module docstring)."""
    for classes, status in _ERROR_EXITS:
        if isinstance(exc, classes):
            return status
    return EXIT_INTERNAL_ERROR


def _print_error(text):
    print('%s: error: %s' % (PROG, text), file=sys.stderr)


def _report(exc):
    """Print ``exc`` as one line; return its exit status."""
    if isinstance(exc, cmd.EXPECTED_ERRORS):
        cmd.print_error(PROG, exc)
    elif isinstance(exc, messaging.RemoteError):
        # An error the conductor did not expect; its traceback is in its log.
        _print_error('internal error in the conductor: %s: %s'
                     % (exc.exc_type, (exc.value or '').split('\n', 1)[0]))
    else:
        name = type(exc).__name__
        # oslo.messaging rebuilds a builtin error of the conductor as <name>_Remote.
        where = ' in the conductor' if name.endswith('_Remote') else ''
        _print_error('internal error%s: %s: %s' % (where, name[:-len('_Remote')] if where
                                                   else name, _first_line(exc)))
    return exit_status(exc)


def _first_line(exc):
    return (getattr(exc, 'message', None) or str(exc)).split('\n', 1)[0]


def _exit_on_usage_error(parser):
    """Make ``parser`` report a usage error as one line plus the usage, exit 3.

    NOTE: argparse exits 2, which migctl gives to configuration and connection errors;
    argparse reports every usage error through ``parser.error``, so the instance's
    method is replaced (cliff builds the parsers, their class is not ours to choose).
    """
    def error(message):
        command = parser.prog[len(PROG):].strip()
        _print_error('%s: %s' % (command, message) if command else message)
        parser.print_usage(sys.stderr)
        raise SystemExit(EXIT_INVALID)

    parser.error = error
    return parser


class _UsageErrors:
    """Mixin of every command: a usage error exits 3 (see _exit_on_usage_error)."""

    def get_parser(self, prog_name):
        return _exit_on_usage_error(super().get_parser(prog_name))


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError('%r is not a number of seconds' % text)
    return value


# --- display ---------------------------------------------------------------------------

_MIB = 1024 * 1024


def _value(obj, name):
    """The field as a script reads it: raw, a timestamp with milliseconds, or None."""
    value = getattr(obj, name) if obj.obj_attr_is_set(name) else None
    if hasattr(value, 'isoformat'):
        return value.isoformat(timespec='milliseconds')
    if isinstance(value, list):
        return ','.join(value)
    return value


def _raw(obj, name):
    return getattr(obj, name) if obj.obj_attr_is_set(name) else None


def _mib(size):
    return '-' if size is None else '%.1f MiB' % (size / _MIB)


def _time(ms):
    if ms is None:
        return '-'
    if ms < 1000:
        return '%d ms' % ms
    if ms < 60000:
        return '%.2f s' % (ms / 1000.0)
    minutes, seconds = divmod(ms / 1000.0, 60)
    return '%d min %02.0f s' % (minutes, seconds)


def _utc(value):
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _job_time_ms(migration):
    """libvirt's job time (``total_time_ms``), or None when no job ran."""
    total = _raw(migration, 'total_time_ms')
    if not total or _raw(migration, 'started_at') is None:
        return None
    return total


def _duration_ms(migration):
    """The migration's wall time: from the request to its end (to now in flight)."""
    created = _raw(migration, 'created_at')
    if created is None:
        return None
    end = _raw(migration, 'finished_at')
    if end is None and migration.status in states.TERMINAL_STATES:
        end = _raw(migration, 'updated_at')
    if end is None:
        end = datetime.datetime.now(datetime.timezone.utc)
    return max(0, int((_utc(end) - _utc(created)).total_seconds() * 1000))


def _memory_sent(migration):
    sent, total = _raw(migration, 'memory_processed'), _raw(migration, 'memory_total')
    text = _mib(sent)
    if sent is not None and total and sent > total:
        text += (' (%s of it sent again: pages the guest wrote after they were sent)'
                 % _mib(sent - total))
    return text


def _expected_downtime(migration):
    # Only an estimate while the job runs: gone once it ended.
    if migration.status not in (states.RUNNING, states.RUNNING_POSTCOPY,
                                states.CANCELLING):
        return None
    value = _raw(migration, 'expected_downtime_ms')
    return None if value is None else _time(value)


def _duration(migration):
    text = _time(_duration_ms(migration))
    if migration.status not in states.TERMINAL_STATES and text != '-':
        text += ' so far'
    return text


def _timestamp(name):
    return lambda m: _value(m, name) or '-'


def _forecast_text(forecast):
    if forecast is None:
        return None
    return ('%s: %s expected (bound %.1f s: memory / bandwidth), %s sent, downtime %s; '
            '%s' % (forecast.strategy, _time(None if forecast.duration_s is None
                                             else int(forecast.duration_s * 1000)),
                    forecast.bound_s, _mib(forecast.bytes), _time(forecast.downtime_ms),
                    forecast.reason))


def _forecast_actual_text(forecast):
    if forecast is None or forecast.actual_duration_s is None:
        return None
    error = ('' if forecast.duration_error is None
             else ' (forecast %+.0f%%)' % (forecast.duration_error * 100))
    return ('took %s against %s forecast%s; downtime %s against %s; %s sent against '
            '%s' % (_time(int(forecast.actual_duration_s * 1000)),
                    _time(int((forecast.duration_s or 0) * 1000)), error,
                    _time(forecast.actual_downtime_ms), _time(forecast.downtime_ms),
                    _mib(forecast.actual_bytes), _mib(forecast.bytes)))


def _events_text(events):
    if not events:
        return None
    return '\n'.join('%s %s%s%s: %s' % (
        event.at.strftime('%H:%M:%S') if event.at else '-', event.kind,
        ' on %s' % event.host if event.host else '',
        '' if event.job_elapsed_s is None else ' at %.1f s' % event.job_elapsed_s,
        event.message) for event in events)


def _events_record(events):
    if events is None:
        return None
    return [{'kind': e.kind, 'host': e.host, 'job_elapsed_s': e.job_elapsed_s,
             'at': e.at.isoformat(timespec='milliseconds') if e.at else None,
             'message': e.message} for e in events]


def _plain(name):
    return lambda m: '-' if _value(m, name) is None else str(_value(m, name))


# (field as scripts name it, label in the table, its text in the table; None: no row)
_MIGRATION_VIEW = (
    ('uuid', 'uuid', _plain('uuid')),
    ('instance_uuid', 'instance', _plain('instance_uuid')),
    ('status', 'status', _plain('status')),
    ('source_host', 'source host', _plain('source_host')),
    ('dest_host', 'destination host', _plain('dest_host')),
    ('requested_dest', 'requested destination', _plain('requested_dest')),
    ('force', 'forced', lambda m: 'yes' if _raw(m, 'force') else 'no'),
    ('profile', 'profile', _plain('profile')),
    ('strategy', 'strategy (chosen before the start)', _plain('strategy')),
    ('forecast', 'forecast', lambda m: _forecast_text(_raw(m, 'forecast'))),
    ('forecast_actual', 'forecast against what happened',
     lambda m: _forecast_actual_text(_raw(m, 'forecast'))),
    ('memory_total', 'guest memory', lambda m: _mib(_raw(m, 'memory_total'))),
    ('memory_processed', 'memory sent', _memory_sent),
    ('memory_remaining', 'memory remaining', lambda m: _mib(_raw(m, 'memory_remaining'))),
    ('dirty_rate', 'dirty rate',
     lambda m: '-' if _raw(m, 'dirty_rate') is None else _mib(m.dirty_rate) + '/s'),
    ('iteration', 'iteration', _plain('iteration')),
    ('expected_downtime_ms', 'expected downtime', _expected_downtime),
    ('downtime_ms', 'downtime', lambda m: _time(_raw(m, 'downtime_ms'))),
    ('total_time_ms', 'job time (libvirt)', lambda m: _time(_job_time_ms(m))),
    ('duration_ms', 'duration (request to end)', _duration),
    ('error', 'error', _plain('error')),
    ('queue_position', 'place in the queue',
     lambda m: None if _raw(m, 'queue_position') is None else str(m.queue_position)),
    ('job_state', 'job (as its source reports it)', _plain('job_state')),
    ('owner', 'driven by conductor', _plain('owner')),
    ('created_at', 'requested at', _timestamp('created_at')),
    ('started_at', 'job started at', _timestamp('started_at')),
    ('finished_at', 'finished at', _timestamp('finished_at')),
    ('events', 'events', lambda m: _events_text(_raw(m, 'events'))),
)
_LABELS = {name: label for name, label, _text in _MIGRATION_VIEW}
_LABELS['job_time_ms'] = _LABELS['total_time_ms']
_TEXTS = {name: text for name, _label, text in _MIGRATION_VIEW}

# Machine fields: the existing names and raw values, then what migctl derives.
_MIGRATION_FIELDS = ('uuid', 'instance_uuid', 'status', 'source_host', 'dest_host',
                     'requested_dest', 'force', 'profile', 'strategy', 'forecast',
                     'memory_total', 'memory_processed',
                     'memory_remaining', 'dirty_rate', 'iteration',
                     'expected_downtime_ms', 'downtime_ms', 'total_time_ms',
                     'job_time_ms', 'duration_ms', 'error', 'queue_position',
                     'job_state', 'owner', 'queued_at', 'created_at', 'started_at',
                     'finished_at', 'events')
_MIGRATION_LIST_FIELDS = ('uuid', 'instance_uuid', 'status', 'queue_position',
                          'source_host', 'dest_host', 'downtime_ms', 'total_time_ms',
                          'job_time_ms', 'duration_ms', 'created_at')
_MIGRATION_LIST_VIEW = ('uuid', 'instance_uuid', 'status', 'queue_position',
                        'source_host', 'dest_host', 'downtime_ms', 'total_time_ms',
                        'duration_ms', 'created_at')
_DERIVED = {'job_time_ms': _job_time_ms, 'duration_ms': _duration_ms,
            'forecast': lambda m: (None if _raw(m, 'forecast') is None
                                   else m.forecast.to_record()),
            'events': lambda m: _events_record(_raw(m, 'events'))}


def _machine_row(migration, fields):
    row = []
    for field in fields:
        if field in _DERIVED:
            value = _DERIVED[field](migration)
        else:
            value = _value(migration, field)
        if field == 'error' and value is not None:
            value = str(value)
        row.append(value)
    return row


def _for_people(parsed_args):
    return parsed_args.formatter == 'table'


def _use_labels(parsed_args):
    """Let ``-c``/``--sort-column`` name a field as scripts do in the table too."""
    for option in ('columns', 'sort_columns'):
        names = getattr(parsed_args, option, None)
        if names:
            setattr(parsed_args, option, [_LABELS.get(n, n) for n in names])


def _migration_view(parsed_args, migration):
    """(columns, values) of one migration in the chosen format."""
    if not _for_people(parsed_args):
        return _MIGRATION_FIELDS, _machine_row(migration, _MIGRATION_FIELDS)
    _use_labels(parsed_args)
    rows = [(label, text(migration)) for _name, label, text in _MIGRATION_VIEW]
    rows = [(label, value) for label, value in rows if value is not None]
    return tuple(r[0] for r in rows), [r[1] for r in rows]


def _migration_list_view(parsed_args, migrations):
    if not _for_people(parsed_args):
        return (_MIGRATION_LIST_FIELDS,
                [_machine_row(m, _MIGRATION_LIST_FIELDS) for m in migrations])
    _use_labels(parsed_args)
    return (tuple(_LABELS[name] for name in _MIGRATION_LIST_VIEW),
            [[_dash(_TEXTS[name](m)) for name in _MIGRATION_LIST_VIEW]
             for m in migrations])


def _dash(text):
    return '-' if text is None else text


_JOB_STATES = (states.RUNNING, states.RUNNING_POSTCOPY, states.CANCELLING)
_BEFORE_JOB_STATES = (states.SCHEDULING, states.PRE_CHECKING, states.CLAIMING,
                      states.PREPARING)


def _progress_line(migration):
    """One line on a migration's progress, in the units of the table."""
    status = migration.status
    total = _raw(migration, 'memory_total')
    if status in _JOB_STATES:
        if not total:
            if _raw(migration, 'started_at') is None:
                return '%s (no job started: nothing sent)' % status
            return '%s (no figures from the job yet)' % status
        sent = _raw(migration, 'memory_processed') or 0
        line = '%s: %s sent of %s guest memory' % (status, _mib(sent), _mib(total))
        if sent > total:
            line += ' (%s sent again)' % _mib(sent - total)
        line += ', %s remaining, iteration %s' % (
            _mib(_raw(migration, 'memory_remaining')),
            _raw(migration, 'iteration') or '-')
        if _raw(migration, 'dirty_rate') is not None:
            line += ', dirtying %s/s' % _mib(migration.dirty_rate)
        if _expected_downtime(migration):
            line += ', expected downtime %s' % _expected_downtime(migration)
        return line
    if status == states.QUEUED:
        return ('queued (place %s in its hosts\' queues; %s to %s)'
                % (_raw(migration, 'queue_position') or '-',
                   _value(migration, 'source_host'), _value(migration, 'dest_host')))
    if status in _BEFORE_JOB_STATES:
        dest = _value(migration, 'dest_host') or 'not chosen yet'
        return '%s (destination %s)' % (status, dest)
    if status == states.COMPLETED:
        return ('completed on %s: downtime %s, %s sent, job time %s, %s since the '
                'request' % (_value(migration, 'dest_host'),
                             _time(_raw(migration, 'downtime_ms')),
                             _mib(_raw(migration, 'memory_processed')),
                             _time(_job_time_ms(migration)),
                             _time(_duration_ms(migration))))
    if status in (states.FAILED, states.ERROR) and _raw(migration, 'error'):
        return '%s: %s' % (status, migration.error)
    return status


# --- commands --------------------------------------------------------------------------

_HOST_COLUMNS = ('host', 'up', 'enabled', 'hypervisor_type', 'hypervisor_version',
                 'cpu_model', 'vcpus', 'memory_mb', 'memory_mb_free', 'libvirt_uri',
                 'last_heartbeat')
_HOST_LIST_COLUMNS = ('host', 'up', 'enabled', 'hypervisor_type', 'cpu_model', 'vcpus',
                      'memory_mb', 'memory_mb_free', 'last_heartbeat')
_INSTANCE_COLUMNS = ('uuid', 'name', 'host', 'power_state', 'memory_mb', 'vcpus',
                     'task_state')


class _ConductorCommand(_UsageErrors):
    """Mixin: reach the conductor, then act; an error is one line and an exit status.

    ``exit_status``: set by a command whose output is fine but whose outcome is not
    what it asked for (a followed migration that did not end as intended).
    """

    exit_status = EXIT_OK

    def run(self, parsed_args):
        try:
            self.app.connect()
            result = super().run(parsed_args)
        except Exception as exc:
            if self.app.options.debug:
                self.app.LOG.exception(exc)   # --debug asks for the traceback
            if isinstance(exc, messaging.MessagingTimeout):
                exc = self.app.conductor_unavailable(self.app.conf.rpc_response_timeout)
            return _report(exc)
        return result or self.exit_status

    def produce_output(self, parsed_args, column_names, data):
        try:
            return super().produce_output(parsed_args, column_names, data)
        except ValueError as exc:
            # cliff's answer to ``-c`` naming no column: a usage error, not a fault.
            raise exception.Invalid(reason=str(exc))


class HostList(_ConductorCommand, lister.Lister):
    """List compute hosts: liveness, hypervisor and inventory."""

    def take_action(self, parsed_args):
        hosts = self.app.conductor.list_hosts(self.app.context)
        return (_HOST_LIST_COLUMNS,
                [[_value(h, c) for c in _HOST_LIST_COLUMNS] for h in hosts])


class HostShow(_ConductorCommand, show.ShowOne):
    """Show one compute host."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', help='Host name as its agent reports it.')
        return parser

    def take_action(self, parsed_args):
        host = self.app.conductor.get_host(self.app.context, parsed_args.host)
        return _HOST_COLUMNS, [_value(host, c) for c in _HOST_COLUMNS]


class InstanceList(_ConductorCommand, lister.Lister):
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


class InstanceDelete(_ConductorCommand, show.ShowOne):
    """Forget an instance its host no longer reports (power state missing)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('instance', help='UUID of the instance, or its name if '
                                             'unique.')
        return parser

    def take_action(self, parsed_args):
        instance = self.app.conductor.delete_instance(self.app.context,
                                                      parsed_args.instance)
        return _INSTANCE_COLUMNS, [_value(instance, c) for c in _INSTANCE_COLUMNS]


class _MigrationShow(_ConductorCommand, show.ShowOne):
    def _follow_to(self, parsed_args, migration_uuid, intended):
        """Follow the migration to its end; set the exit status from how it ended."""
        migration = self.app.follow(migration_uuid)
        if migration.status == intended:
            return migration
        if migration.status == states.COMPLETED:
            # Only an abort intends another end than completed.
            _print_error('migration %s completed before the abort took effect: the '
                         'instance runs on %s' % (migration.uuid, migration.dest_host))
            self.exit_status = EXIT_INVALID
        else:
            error = _raw(migration, 'error')
            _print_error('migration %s ended %s%s' % (migration.uuid, migration.status,
                                                      ': %s' % error if error else ''))
            self.exit_status = _ENDED_EXITS.get(migration.status, EXIT_INTERNAL_ERROR)
        return migration


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
                            help='Copy local disks (default: decided from storage '
                                 'pools).')
        parser.add_argument('--profile',
                            help='Migration profile (see `migctl profile list`); '
                                 'default: the one the instance\'s metadata names, else '
                                 'the conductor\'s default.')
        parser.add_argument('--wait', action='store_true',
                            help='Follow the migration until it ends, printing its '
                                 'progress (always on in all-in-one mode); exit 0 '
                                 'only if it completed (5 failed, 6 cancelled, 7 '
                                 'error).')
        return parser

    def take_action(self, parsed_args):
        migration = self.app.conductor.live_migrate(
            self.app.context, parsed_args.instance, host=parsed_args.host,
            force=parsed_args.force, block_migration=parsed_args.block_migration,
            profile=parsed_args.profile)
        print('migration %s accepted' % migration.uuid, file=sys.stderr)
        if parsed_args.wait or self.app.all_in_one:
            migration = self._follow_to(parsed_args, migration.uuid, states.COMPLETED)
        return _migration_view(parsed_args, migration)


class MigrationShow(_MigrationShow):
    """Show one migration: status, progress, statistics, error."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('migration', help='UUID of the migration.')
        return parser

    def take_action(self, parsed_args):
        return _migration_view(parsed_args, self.app.conductor.get_migration(
            self.app.context, parsed_args.migration))


class MigrationList(_ConductorCommand, lister.Lister):
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
        return _migration_list_view(parsed_args, migrations)


class MigrationAbort(MigrationShow):
    """Abort a migration before its switch-over; the guest keeps running on the source.

    Follows the migration to its end: exit 0 once cancelled, 3 if it completed all
    the same, 5 failed, 7 error.
    """

    def take_action(self, parsed_args):
        self.app.conductor.abort_migration(self.app.context, parsed_args.migration)
        return _migration_view(parsed_args, self._follow_to(
            parsed_args, parsed_args.migration, states.CANCELLED))


class MigrationForceComplete(MigrationShow):
    """Force a running migration to complete: pause the guest until it has moved, or
    switch it to post-copy (the destination runs it at once).

    Follows the migration to its end: exit 0 once completed, 5 failed, 6 cancelled,
    7 error. Post-copy under a profile that does not allow it is refused (exit 3).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--mode', choices=['pause', 'postcopy'],
                            help='pause: the guest is paused until it runs on the '
                                 'destination; postcopy: the destination runs it at '
                                 'once and pulls the rest of its memory (a destination '
                                 'failure then loses the guest). Default: the '
                                 'profile\'s force_complete_mode.')
        return parser

    def take_action(self, parsed_args):
        self.app.conductor.force_complete_migration(self.app.context,
                                                    parsed_args.migration,
                                                    mode=parsed_args.mode)
        return _migration_view(parsed_args, self._follow_to(
            parsed_args, parsed_args.migration, states.COMPLETED))


# The settings of a profile, in the order `profile show` lists them.
_PROFILE_FIELDS = ('name', 'builtin', 'description', 'strategy', 'max_downtime_ms',
                   'downtime_steps', 'downtime_step_delay_s_per_gib',
                   'completion_s_per_gib', 'completion_max_s', 'min_guest_gib',
                   'max_precopy_passes', 'on_timeout', 'force_complete_mode',
                   'postcopy_allowed', 'auto_converge_allowed', 'bandwidth_mib',
                   'parallel_connections', 'compression', 'dirty_rate_sample_s',
                   'settle_s', 'time_scale')
_PROFILE_LIST_FIELDS = ('name', 'builtin', 'strategy', 'max_downtime_ms',
                        'completion_s_per_gib', 'completion_max_s', 'on_timeout',
                        'postcopy_allowed', 'auto_converge_allowed', 'bandwidth_mib')


class ProfileList(_ConductorCommand, lister.Lister):
    """List the migration profiles (availability contracts of migrations)."""

    def take_action(self, parsed_args):
        profiles = self.app.conductor.list_profiles(self.app.context)
        return (_PROFILE_LIST_FIELDS,
                [[_value(p, f) for f in _PROFILE_LIST_FIELDS] for p in profiles])


class ProfileShow(_ConductorCommand, show.ShowOne):
    """Show every setting of one migration profile."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('profile', help='Name of the profile.')
        return parser

    def take_action(self, parsed_args):
        profile = self.app.conductor.get_profile(self.app.context, parsed_args.profile)
        return _PROFILE_FIELDS, [_value(profile, f) for f in _PROFILE_FIELDS]


class _Help(_UsageErrors, cliff_help.HelpCommand):
    """print detailed help for another command"""

    def run(self, parsed_args):
        try:
            return super().run(parsed_args)
        except ValueError:
            # cliff raises it for a name that starts no command at all.
            _print_error("%r is not a migctl command; see 'migctl help'"
                         % ' '.join(parsed_args.cmd))
            return EXIT_INVALID


class _Complete(_UsageErrors, complete.CompleteCommand):
    """print bash completion command"""


_COMMANDS = {
    'host list': HostList,
    'host show': HostShow,
    'instance list': InstanceList,
    'instance delete': InstanceDelete,
    'migration start': MigrationStart,
    'migration show': MigrationShow,
    'migration list': MigrationList,
    'migration abort': MigrationAbort,
    'migration force-complete': MigrationForceComplete,
    'profile list': ProfileList,
    'profile show': ProfileShow,
}


class MigctlApp(app.App):
    """cliff application; holds the configuration, the RPC client and the context.

    Nothing is reached before a command runs (:meth:`connect`): the configuration is
    read in ``initialize_app``, the conductor only once the command line is known good.
    """

    NAME = PROG

    def __init__(self):
        manager = commandmanager.CommandManager('migctl.commands')
        for name, command in _COMMANDS.items():
            manager.add_command(name, command)
        super().__init__(description='Operate migration-conductor.', version='0.1.0',
                         command_manager=manager, deferred_help=True)
        # cliff adds its own help and complete; ours exit 3 on a usage error.
        manager.add_command('help', _Help)
        manager.add_command('complete', _Complete)
        self.conf = None
        self.conductor = None
        self.context = None
        self._all_in_one = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        argparse_kwargs = dict(argparse_kwargs or {}, prog=PROG, epilog=EXIT_CODES_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument('--config-file', action='append', default=[],
                            help='Configuration file (repeatable); default: the standard '
                                 'locations of migration-conductor.conf.')
        parser.add_argument('--ping-timeout', type=_seconds,
                            default=DEFAULT_PING_TIMEOUT, metavar='SECONDS',
                            help='With a broker: how long to wait for a conductor to '
                                 'answer a ping before the command (default %g, at '
                                 'most rpc_response_timeout; 0 skips the ping).'
                                 % DEFAULT_PING_TIMEOUT)
        return _exit_on_usage_error(parser)

    def configure_logging(self):
        super().configure_logging()
        # cliff logs at WARNING by default; keep the library chatter out of the output.
        if self.options.verbose_level <= 1:
            logging.getLogger().setLevel(logging.WARNING)
            # stevedore logs a failed driver load on its own; our error line says it.
            logging.getLogger('stevedore').setLevel(logging.CRITICAL)

    def initialize_app(self, argv):
        try:
            self._check_command(argv)
            self._initialize()
        except SystemExit:
            raise
        except Exception as exc:
            if self.options.debug:
                self.LOG.exception(exc)   # --debug asks for the traceback
            # cliff would log it and exit 1: one line and its status instead.
            raise SystemExit(_report(exc))

    def _check_command(self, argv):
        """Exit 3 unless ``argv`` starts with a command (cliff would go interactive)."""
        if not argv:
            if self.options.deferred_help:
                return   # ``migctl --help``: cliff prints it next
            _print_error('a command is required')
            self.parser.print_usage(sys.stderr)
            print('commands:', file=sys.stderr)
            for name, command in sorted(_COMMANDS.items()):
                summary = (command.__doc__ or '').split('\n', 1)[0].rstrip('.')
                print('  %-26s %s' % (name, summary), file=sys.stderr)
            print("See 'migctl help COMMAND' for the options of one.", file=sys.stderr)
            raise SystemExit(EXIT_INVALID)
        if argv[0].startswith('-'):
            _print_error('unrecognized option %s (options of a command go after the '
                         'command)' % argv[0])
            raise SystemExit(EXIT_INVALID)
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            words = [a for a in argv if not a.startswith('-')][:2]
            close = sorted(name for name in _COMMANDS if name.split()[0] == words[0])
            hint = ('did you mean: %s? ' % ', '.join(close)) if close else ''
            _print_error("%r is not a migctl command; %ssee 'migctl help'"
                         % (' '.join(words), hint))
            raise SystemExit(EXIT_INVALID)

    def _initialize(self):
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

    def connect(self):
        """Reach a conductor: start the all-in-one services, or check broker and ping.

        :raises ConfigurationError: the broker or an all-in-one agent cannot be reached.
        :raises ConductorUnavailable: no conductor answered the ping.
        """
        if self.conductor is not None:
            return
        if rpc.is_in_process(self.conf):
            self._start_all_in_one()
            self.conductor = rpcapi.ConductorAPI(self.conf, 'migctl')
            return
        rpc.check_transport(self.conf)
        self.conductor = rpcapi.ConductorAPI(self.conf, 'migctl')
        self._ping()

    def _ping(self):
        timeout = min(self.options.ping_timeout, self.conf.rpc_response_timeout)
        if timeout <= 0:
            return
        try:
            answer = self.conductor.ping(self.context, timeout=timeout)
        except messaging.MessagingTimeout:
            raise self.conductor_unavailable(timeout)
        except _OLD_CONDUCTOR_ERRORS:
            answer = {'api_version': 'older than 1.4'}
        except messaging.RemoteError as exc:
            # Over a broker the dispatcher's errors come back as a RemoteError.
            if exc.exc_type not in [e.__name__ for e in _OLD_CONDUCTOR_ERRORS]:
                raise
            answer = {'api_version': 'older than 1.4'}
        LOG.debug('Conductor %s (API %s) answers on topic %s', answer.get('host', '?'),
                  answer.get('api_version'), self.conf.conductor.topic)

    def conductor_unavailable(self, timeout):
        return exception.ConductorUnavailable(
            topic=self.conf.conductor.topic, timeout='%g' % timeout,
            transport=rpc.mask_url(self.conf.transport_url))

    def _start_all_in_one(self):
        from migration_conductor import all_in_one
        if self.options.verbose_level <= 1 and not (self.conf.log_file or
                                                     self.conf.log_dir):
            # NOTE: the services' log is theirs, not migctl's output: on stderr it
            # would break the one-line errors (a failed migration logs several lines,
            # an unexpected error a traceback). -v, or [DEFAULT] log_file, shows it.
            logging.getLogger().setLevel(logging.CRITICAL)
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
            if migration.status in states.TERMINAL_STATES:
                return migration
            time.sleep(interval)

    def clean_up(self, cmd_obj, result, err):
        if self._all_in_one is not None:
            self._all_in_one.stop()
            self._all_in_one = None
        rpc.cleanup()


def _main(argv):
    try:
        return MigctlApp().run(argv)
    except SystemExit as exc:
        # A usage error, --help or --version: a status to return, as for the others.
        return exc.code if isinstance(exc.code, int) else EXIT_OK


def main(argv=None):
    return cmd.run(PROG, _main, argv)
