"""The console scripts as an operator and a script run them: output, exit status, errors.

Each command runs as a real subprocess: the console script's entry point, with this
checkout's code (not the copy an installed script would import). A wrong setting must
end the command with exit status 2 and a single line naming the setting, never a
traceback; migctl's other statuses (see its module docstring) are each exercised by a
real run against a real conductor: the all-in-one mode with simulated agents inside
migctl, or, where two migctl runs must meet one conductor (abort a migration another
run waits for), a conductor process on RabbitMQ with a topic of its own.

Simulated hosts start empty; the child process seeds them from ``MC_TEST_SIMULATED``
(see :func:`_seed_simulated_hosts`, run when this file is the child's main module).
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
import uuid as uuidlib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
TIMESTAMP_MS = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$')
MIB = 1024 * 1024
# The test suite's profiles, pre-copy only by default (tests/migration-profiles.yaml).
PROFILES = ('[migration_profiles]\nprofiles_file = %s\ndefault_profile = precopy-only\n'
            % os.path.join(ROOT, 'tests', 'migration-profiles.yaml'))


# --- the child's side: test controls of the simulated hosts ----------------------------

def _seed_simulated_hosts(spec):
    """Give each simulated host of this process what ``spec`` says, when it starts.

    :param spec: {host: {'domains': [add_domain kwargs], 'fail_next': reason,
        'abort_too_late': [instance uuid whose job an abort does not stop, as when the
        abort loses the race against the switch-over], 'refuse_finish': True (the
        destination does not confirm the guest runs)}}.
    """
    from compute_agent import manager as agent_manager
    from compute_agent.virt import simulated
    from migration_conductor import exception

    init_host = simulated.SimulatedDriver.init_host
    abort_job = simulated.SimulatedDriver.abort_job
    finish = agent_manager.AgentManager.finish_on_destination

    def seeded_init_host(self):
        init_host(self)
        host = spec.get(self.host, {})
        if not getattr(self, '_test_seeded', False):
            self._test_seeded = True
            for domain in host.get('domains', ()):
                self.add_domain(**domain)
            if host.get('fail_next'):
                self.fail_next_migration(host['fail_next'])

    def late_abort_job(self, instance_uuid):
        if instance_uuid in spec.get(self.host, {}).get('abort_too_late', ()):
            return True
        return abort_job(self, instance_uuid)

    def unconfirmed_finish(self, context, migration_uuid, instance_uuid):
        if spec.get(self.host, {}).get('refuse_finish'):
            raise exception.InstanceStateConflict(instance_uuid=instance_uuid,
                                                  reason='injected: not confirmed')
        return finish(self, context, migration_uuid, instance_uuid)

    simulated.SimulatedDriver.init_host = seeded_init_host
    simulated.SimulatedDriver.abort_job = late_abort_job
    agent_manager.AgentManager.finish_on_destination = unconfirmed_finish


def _as_older_conductor():
    """Serve conductor API 1.3, which has no ``ping``."""
    import oslo_messaging as messaging

    from migration_conductor import manager
    del manager.ConductorManager.ping
    manager.ConductorManager.target = messaging.Target(version='1.3')


def _break_list_hosts():
    """The conductor fails in list_hosts with an error nobody expects."""
    from migration_conductor import manager

    def list_hosts(self, context):
        raise RuntimeError('injected fault')
    manager.ConductorManager.list_hosts = list_hosts


def _child_main(prog, argv):
    import migration_conductor.cmd  # noqa: F401 (first: it silences eventlet's notice)
    if os.environ.get('MC_TEST_SIMULATED'):
        _seed_simulated_hosts(json.loads(os.environ['MC_TEST_SIMULATED']))
    if os.environ.get('MC_TEST_OLDER_CONDUCTOR'):
        _as_older_conductor()
    if os.environ.get('MC_TEST_BREAK_LIST_HOSTS'):
        _break_list_hosts()
    [entry] = importlib.metadata.entry_points(group='console_scripts', name=prog)
    sys.argv = [prog] + argv
    return entry.load()()


# --- the test's side -------------------------------------------------------------------

def _command(prog, args):
    return [sys.executable, os.path.abspath(__file__), prog] + list(args)


def _env(simulated=None, **controls):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if simulated:
        env['MC_TEST_SIMULATED'] = json.dumps(simulated)
    for name, value in controls.items():
        env['MC_TEST_' + name.upper()] = str(value)
    return env


def _run(tmp_path, prog, args, config, timeout=90, simulated=None, **controls):
    path = tmp_path / ('%s.conf' % prog)
    path.write_text(config)
    return _run_with(path, prog, args, timeout=timeout, simulated=simulated, **controls)


def _run_with(config_path, prog, args, timeout=90, simulated=None, **controls):
    return subprocess.run(_command(prog, ['--config-file', str(config_path)] + args),
                          capture_output=True, text=True, timeout=timeout,
                          cwd=str(os.path.dirname(config_path)),
                          env=_env(simulated, **controls))


def _aio_config(tmp_path, extra=''):
    return ('[DEFAULT]\nstate_path = %s\n[agent]\nvirt_driver = simulated\n'
            '[all_in_one]\nagents = sim-1=simulated://,sim-2=simulated://\n%s%s'
            % (tmp_path, PROFILES, extra))


def _error_lines(stderr):
    """The lines of ``stderr`` that report an error (or a traceback); progress lines,
    indented, say ``error: ...`` of a migration that ended so."""
    return [line for line in stderr.splitlines()
            if not line.startswith('  ') and re.search(r'error:|Traceback', line, re.I)]


def _assert_one_line_error(result, prog, *needles, status=2):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()
             and not line.startswith('(all-in-one:')]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('%s: error: ' % prog), lines[0]
    assert 'Traceback' not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _assert_usage_error(result, *needles):
    """Exit 3: one error line first, then the usage; nothing was started for it."""
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].startswith('migctl: error: '), result.stderr
    assert _error_lines(result.stderr) == [lines[0]], result.stderr
    assert lines[1].startswith('usage: migctl'), result.stderr
    assert 'Traceback' not in result.stderr and 'all-in-one' not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _guest(name, **kwargs):
    spec = {'name': name, 'uuid': str(uuidlib.uuid4())}
    spec.update(kwargs)
    return spec


# A pre-copy that never converges: 4 GiB dirtied faster than the simulated link sends.
STUBBORN = {'memory_mb': 4096, 'dirty_rate_mib': 4096}


# --- configuration, transport, database ------------------------------------------------

def test_migctl_all_in_one_lists_hosts_as_json(tmp_path):
    result = _run(tmp_path, 'migctl', ['host', 'list', '-f', 'json'],
                  _aio_config(tmp_path))
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)
    assert sorted(h['host'] for h in hosts) == ['sim-1', 'sim-2']
    assert all(h['up'] is True for h in hosts)
    assert all(TIMESTAMP_MS.match(h['last_heartbeat']) for h in hosts), hosts
    assert 'all-in-one' in result.stderr
    # The embedded SQLite database was created under state_path.
    assert (tmp_path / 'migration_conductor.sqlite').exists()


@pytest.mark.parametrize('prog', ['migration-conductor', 'migctl'])
@pytest.mark.parametrize('url,needle', [
    ('bogus://nowhere', 'unknown messaging driver'),
    ('rabbit://guest:s3cret@127.0.0.1:1/', 'cannot connect to the message broker'),
])
def test_wrong_transport_url(tmp_path, prog, url, needle):
    args = ['host', 'list'] if prog == 'migctl' else []
    result = _run(tmp_path, prog, args, '[DEFAULT]\ntransport_url = %s\n' % url)
    line = _assert_one_line_error(result, prog, '[DEFAULT] transport_url', needle)
    assert 's3cret' not in line     # the password is masked


@pytest.mark.parametrize('config,needle', [
    ('[DEFAULT]\nrpc_response_timeout = soon\n', 'rpc_response_timeout'),
    ('[DEFAULT\n', 'configuration: '),
])
def test_migctl_bad_configuration_file_exits_2(tmp_path, config, needle):
    # Its own state_path: the machine's default one may hold an older database.
    config = config.replace('[DEFAULT]\n', '[DEFAULT]\nstate_path = %s\n' % tmp_path)
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', needle)


@pytest.mark.parametrize('prog', ['migration-conductor', 'migctl'])
def test_a_bad_profile_stops_the_conductor_with_one_line_naming_it(tmp_path, prog):
    profiles = tmp_path / 'profiles.yaml'
    profiles.write_text('gold:\n  max_downtime_ms: -5\n')
    config = ('[DEFAULT]\nstate_path = %s\n[agent]\nvirt_driver = simulated\n'
              '[all_in_one]\nagents = sim-1=simulated://\n[migration_profiles]\n'
              'profiles_file = %s\n' % (tmp_path, profiles))
    args = ['profile', 'list'] if prog == 'migctl' else []
    result = _run(tmp_path, prog, args, config)
    _assert_one_line_error(result, prog, "profiles_file %s: profile 'gold': "
                           'max_downtime_ms must be an integer from 1 to 60000, not -5'
                           % profiles)


def test_migctl_missing_configuration_file_exits_2(tmp_path):
    missing = str(tmp_path / 'no.conf')
    result = subprocess.run(_command('migctl', ['--config-file', missing, 'host',
                                                'list']),
                            capture_output=True, text=True, timeout=60, env=_env())
    _assert_one_line_error(result, 'migctl', 'no.conf')


def test_agent_refuses_the_in_process_transport(tmp_path):
    result = _run(tmp_path, 'migration-compute-agent', [],
                  '[DEFAULT]\ntransport_url = fake:/\n')
    _assert_one_line_error(result, 'migration-compute-agent',
                           '[DEFAULT] transport_url', 'all-in-one')


@pytest.mark.parametrize('url,needle', [
    ('nosuchdialect://x/y', 'nosuchdialect'),
    ('mysql+pymysql://root:s3cret@127.0.0.1:1/mc', '127.0.0.1:1'),
])
def test_wrong_database_url(tmp_path, url, needle):
    result = _run(tmp_path, 'migration-conductor-manage', ['db', 'version'],
                  '[database]\nconnection = %s\n' % url)
    line = _assert_one_line_error(result, 'migration-conductor-manage',
                                  '[database] connection', needle)
    assert 's3cret' not in line


def test_wrong_database_url_stops_the_conductor(tmp_path):
    result = _run(tmp_path, 'migration-conductor', [],
                  _aio_config(tmp_path, '[database]\nconnection = postgresql://'
                              'postgres@127.0.0.1:1/mc\n'))
    _assert_one_line_error(result, 'migration-conductor', '[database] connection')


def test_wrong_libvirt_uri_in_all_in_one(tmp_path):
    config = ('[DEFAULT]\nstate_path = %s\n[all_in_one]\n'
              'agents = lab-x=qemu+tcp://127.0.0.1:1/system\n' % tmp_path)
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', '[all_in_one] agents (host lab-x)',
                           'qemu+tcp://127.0.0.1:1/system')


def test_wrong_libvirt_uri_stops_the_agent(tmp_path):
    config = ('[DEFAULT]\ntransport_url = %s\n'
              '[libvirt]\nconnection_uri = qemu+tcp://127.0.0.1:1/system\n' % RABBIT)
    result = _run(tmp_path, 'migration-compute-agent', [], config)
    _assert_one_line_error(result, 'migration-compute-agent', '[libvirt] connection_uri',
                           'qemu+tcp://127.0.0.1:1/system')


def test_malformed_all_in_one_agents(tmp_path):
    config = '[DEFAULT]\nstate_path = %s\n[all_in_one]\nagents = lab-1\n' % tmp_path
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', '[all_in_one] agents', 'HOST=URI')


def test_manage_db_upgrade_then_version(tmp_path):
    config = '[database]\nconnection = sqlite:///%s/m.sqlite\n' % tmp_path
    before = _run(tmp_path, 'migration-conductor-manage', ['db', 'version'], config)
    assert before.returncode == 0 and 'empty' in before.stdout, before.stderr
    upgrade = _run(tmp_path, 'migration-conductor-manage', ['db', 'upgrade'], config)
    assert upgrade.returncode == 0, upgrade.stderr
    after = _run(tmp_path, 'migration-conductor-manage', ['db', 'version'], config)
    assert 'up to date' in after.stdout, after.stdout


def test_migctl_without_a_running_conductor_says_so_within_seconds(tmp_path):
    """The ping waits 5 s, not the 60 s of rpc_response_timeout (the default here)."""
    config = ('[DEFAULT]\ntransport_url = %s\n[conductor]\ntopic = mc_nobody_%s\n'
              % (RABBIT, uuidlib.uuid4().hex))
    started = time.monotonic()
    result = _run(tmp_path, 'migctl', ['host', 'list'], config, timeout=90)
    elapsed = time.monotonic() - started
    _assert_one_line_error(result, 'migctl', 'no conductor answered on topic mc_nobody_',
                           'within 5 s', 'rabbit://guest:***@127.0.0.1:5672/')
    assert elapsed < 15, elapsed


def test_migctl_ping_waits_at_most_rpc_response_timeout(tmp_path):
    config = ('[DEFAULT]\ntransport_url = %s\nrpc_response_timeout = 2\n'
              '[conductor]\ntopic = mc_nobody_%s\n' % (RABBIT, uuidlib.uuid4().hex))
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', 'no conductor answered', 'within 2 s')


# --- usage: exit 3, nothing started ----------------------------------------------------

@pytest.mark.parametrize('args,needles', [
    (['host', 'show'], ['host show: ', 'required: host']),
    (['migration', 'start', 'x', '--block-migration', 'maybe'],
     ['migration start: ', "invalid choice: 'maybe'"]),
    (['migration', 'list', '--limit', 'many'], ['--limit', "'many'"]),
    (['host', 'list', '--bogus'], ['unrecognized arguments: --bogus']),
    (['--ping-timeout', 'soon', 'host', 'list'], ['--ping-timeout', "'soon'"]),
    (['--config-file'], ['--config-file', 'expected one argument']),
])
def test_usage_errors_exit_3_with_one_line_and_the_usage(tmp_path, args, needles):
    config = tmp_path / 'migctl.conf'
    config.write_text(_aio_config(tmp_path))
    command = ['--config-file', str(config)] + args
    if args[0] == '--config-file':
        command = args
    result = subprocess.run(_command('migctl', command), capture_output=True, text=True,
                            timeout=60, env=_env())
    _assert_usage_error(result, *needles)


@pytest.mark.parametrize('args,needles', [
    (['frobnicate'], ["'frobnicate' is not a migctl command", "see 'migctl help'"]),
    (['migration'], ["'migration' is not a migctl command",
                     'did you mean: migration abort, migration force-complete']),
    (['--bogus', 'host', 'list'], ['unrecognized option --bogus']),
    (['help', 'frobnicate'], ["'frobnicate' is not a migctl command"]),
])
def test_unknown_command_is_one_line_exit_3(tmp_path, args, needles):
    result = _run(tmp_path, 'migctl', args, _aio_config(tmp_path))
    _assert_one_line_error(result, 'migctl', *needles, status=3)
    assert 'all-in-one' not in result.stderr


@pytest.mark.parametrize('with_config', [True, False])
def test_no_command_says_one_is_required_and_lists_them(tmp_path, with_config):
    if with_config:
        result = _run(tmp_path, 'migctl', [], _aio_config(tmp_path))
    else:
        result = subprocess.run(_command('migctl', []), capture_output=True, text=True,
                                timeout=60, env=_env(), cwd=str(tmp_path),
                                stdin=subprocess.DEVNULL)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith('migctl: error: a command is required\n')
    assert _error_lines(result.stderr) == ['migctl: error: a command is required']
    for command in ('host list', 'instance list', 'migration start', 'migration abort'):
        assert '\n  %s ' % command in result.stderr, result.stderr
    assert 'is not a migctl command' not in result.stderr + result.stdout


def test_help_lists_the_commands_and_the_exit_codes(tmp_path):
    result = _run(tmp_path, 'migctl', ['help'], _aio_config(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'usage: migctl ' in result.stdout and '  migration start ' in result.stdout
    assert 'exit status:' in result.stdout
    for code in ('0  success', '2  configuration or connection error',
                 '3  invalid or refused request', '4  not found', '5  the migration '
                 'ended failed', '6  the migration ended cancelled',
                 '7  the migration ended error'):
        assert code in result.stdout, code
    assert 'all-in-one' not in result.stderr


# --- typed errors of a real conductor (all-in-one) -------------------------------------

@pytest.mark.parametrize('args,needle', [
    (['host', 'show', 'nope'], 'Compute host nope could not be found.'),
    (['migration', 'show', '00000000-0000-4000-8000-000000000000'],
     'Migration 00000000-0000-4000-8000-000000000000 could not be found.'),
    (['migration', 'start', '00000000-0000-4000-8000-000000000000'],
     'Instance 00000000-0000-4000-8000-000000000000 could not be found.'),
])
def test_not_found_exits_4(tmp_path, args, needle):
    result = _run(tmp_path, 'migctl', args, _aio_config(tmp_path))
    _assert_one_line_error(result, 'migctl', needle, status=4)


@pytest.mark.parametrize('args,needle', [
    (['migration', 'list', '--status', 'bogus'], "unknown status 'bogus'"),
    (['migration', 'list', '--status', 'bogus'], "unknown status 'bogus'"),
])
def test_invalid_request_exits_3(tmp_path, args, needle):
    result = _run(tmp_path, 'migctl', args, _aio_config(tmp_path))
    _assert_one_line_error(result, 'migctl', needle, status=3)


def test_refused_destination_exits_3(tmp_path):
    guest = _guest('g-refused')
    result = _run(tmp_path, 'migctl', ['migration', 'start', guest['uuid'], '--host',
                                       'sim-1'], _aio_config(tmp_path),
                  simulated={'sim-1': {'domains': [guest]}})
    _assert_one_line_error(result, 'migctl', 'Host sim-1 cannot be the destination: it '
                           'is the source host.', status=3)


def test_policy_refusal_exits_3(tmp_path):
    policy = tmp_path / 'policy.yaml'
    policy.write_text('"migration_conductor:host:list": "!"\n')
    config = _aio_config(tmp_path, '[oslo_policy]\npolicy_file = %s\n' % policy)
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', 'Policy does not allow '
                           'migration_conductor:host:list', status=3)


def test_unexpected_error_in_the_conductor_exits_1_with_one_line(tmp_path):
    result = _run(tmp_path, 'migctl', ['host', 'list'], _aio_config(tmp_path),
                  break_list_hosts=1)
    _assert_one_line_error(result, 'migctl', 'internal error',
                           'RuntimeError: injected fault', status=1)


# --- a migration followed to its end (all-in-one) --------------------------------------

def test_wait_until_completed_shows_the_migration_for_people(tmp_path):
    """2 GiB dirtied at 200 MiB/s: pages are sent again, and the job takes about 2 s."""
    guest = _guest('g-dirty', memory_mb=2048, dirty_rate_mib=200)
    config = _aio_config(tmp_path)
    result = _run(tmp_path, 'migctl', ['migration', 'start', guest['uuid'], '--wait'],
                  config, simulated={'sim-1': {'domains': [guest]}})
    assert result.returncode == 0, result.stderr
    assert _error_lines(result.stderr) == [], result.stderr
    rows = dict(re.findall(r'^\| (\S.*?\S)\s+\| (.*?)\s*\|$', result.stdout, re.M))
    assert rows['status'] == 'completed'
    assert rows['guest memory'] == '2048.0 MiB'
    sent = re.match(r'^(\d+\.\d) MiB \((\d+\.\d) MiB of it sent again: pages the guest '
                    r'wrote after they were sent\)$', rows['memory sent'])
    assert sent and round(float(sent.group(1)) - float(sent.group(2)), 1) == 2048.0, rows
    assert rows['memory remaining'] == '0.0 MiB'
    assert rows['dirty rate'] == '200.0 MiB/s'
    assert re.match(r'^\d+ ms$', rows['downtime']), rows
    assert re.match(r'^\d\.\d\d s$', rows['job time (libvirt)']), rows
    assert re.match(r'^\d+(\.\d\d)? m?s$', rows['duration (request to end)']), rows
    assert 'expected downtime' not in rows      # only meaningful while the job runs
    assert (rows['profile'], rows['strategy (chosen before the start)']) == (
        'precopy-only', 'precopy')
    assert re.match(r'^precopy: \d+(\.\d\d)? m?s expected \(bound \d+\.\d s: memory / '
                    r'bandwidth\), \d+\.\d MiB sent, downtime \d+ ms; the profile sets '
                    r'it', rows['forecast']), rows['forecast']
    assert re.match(r'^took \d\.\d\d s against \d+(\.\d\d)? m?s forecast \(forecast '
                    r'[-+]\d+%\)', rows['forecast against what happened']), rows
    assert re.match(r'^\d\d:\d\d:\d\d forecast: precopy', rows['events']), rows['events']
    for label in ('requested at', 'job started at', 'finished at'):
        assert TIMESTAMP_MS.match(rows[label]), (label, rows[label])
    assert not [value for label, value in rows.items()
                if label not in ('uuid', 'instance') and re.search(r'\d{7,}', value)], \
        'a raw byte count in the table'
    progress = [line.strip() for line in result.stderr.splitlines()
                if line.startswith('  running: ')]
    assert progress, result.stderr
    assert all(re.match(r'^running: \d+\.\d MiB sent of 2048\.0 MiB guest memory', line)
               and 'MiB/s' in line for line in progress), progress
    assert re.search(r'^  completed on sim-2: downtime \d+ ms, \d+\.\d MiB sent, '
                     r'job time \d\.\d\d s', result.stderr, re.M), result.stderr

    migration_uuid = rows['uuid']
    shown = _run(tmp_path, 'migctl', ['migration', 'show', migration_uuid, '-f', 'json'],
                 config)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert (record['uuid'], record['status'], record['source_host'],
            record['dest_host'], record['force'], record['error']) == (
        migration_uuid, 'completed', 'sim-1', 'sim-2', False, None)
    assert record['memory_total'] == 2048 * MIB
    assert isinstance(record['memory_processed'], int)
    assert record['memory_processed'] > record['memory_total']
    assert float(sent.group(1)) == round(record['memory_processed'] / MIB, 1)
    for field in ('downtime_ms', 'total_time_ms', 'job_time_ms', 'duration_ms'):
        assert isinstance(record[field], int), (field, record[field])
    assert record['job_time_ms'] == record['total_time_ms'] > 1000
    assert (record['profile'], record['strategy']) == ('precopy-only', 'precopy')
    assert record['forecast']['memory_bytes'] == 2048 * MIB
    assert record['forecast']['actual_duration_s'] > 1
    assert [event['kind'] for event in record['events']][0] == 'forecast'
    for field in ('created_at', 'started_at', 'finished_at'):
        assert TIMESTAMP_MS.match(record[field]), (field, record[field])

    listed = _run(tmp_path, 'migctl', ['migration', 'list', '-c', 'uuid', '-c',
                                       'total_time_ms', '-c', 'duration_ms'], config)
    assert listed.returncode == 0, listed.stderr
    header, row = [line for line in listed.stdout.splitlines() if line.startswith('|')]
    assert [c.strip() for c in header.strip('|').split('|')] == [
        'uuid', 'job time (libvirt)', 'duration (request to end)']
    assert re.match(r'^\| %s \| \d\.\d\d s\s+\| \d+(\.\d\d)? m?s\s+\|$'
                    % migration_uuid, row), row


def test_wait_until_failed_exits_5(tmp_path):
    guest = _guest('g-fails')
    result = _run(tmp_path, 'migctl', ['migration', 'start', guest['uuid'], '--wait',
                                       '-f', 'json'], _aio_config(tmp_path),
                  simulated={'sim-1': {'domains': [guest],
                                       'fail_next': 'QEMU went away'}})
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert json.loads(result.stdout)['status'] == 'failed'
    [line] = _error_lines(result.stderr)
    assert line.startswith('migctl: error: migration ') and ' ended failed: ' in line
    assert 'QEMU went away' in line and 'Traceback' not in result.stderr


def test_wait_until_error_exits_7(tmp_path):
    guest = _guest('g-unconfirmed')
    result = _run(tmp_path, 'migctl', ['migration', 'start', guest['uuid'], '--wait',
                                       '-f', 'json'], _aio_config(tmp_path),
                  simulated={'sim-1': {'domains': [guest]},
                             'sim-2': {'refuse_finish': True}})
    assert result.returncode == 7, (result.stdout, result.stderr)
    assert json.loads(result.stdout)['status'] == 'error'
    [line] = _error_lines(result.stderr)
    assert ' ended error: ' in line and 'injected: not confirmed' in line


# --- one conductor, several migctl runs (RabbitMQ) -------------------------------------

RABBIT_GUESTS = {name: _guest(name, **STUBBORN) for name in ('stubborn-1', 'stubborn-2')}
RABBIT_GUESTS['late'] = _guest('late', memory_mb=8192)   # about 8 s of pre-copy


class _RabbitCloud:
    def __init__(self, work, topic):
        self.work = work
        self.topic = topic
        self.client_conf = work / 'migctl.conf'
        self.client_conf.write_text(
            '[DEFAULT]\ntransport_url = %s\n[conductor]\ntopic = %s\n' % (RABBIT, topic))

    def migctl(self, *args, timeout=90):
        return _run_with(self.client_conf, 'migctl', list(args), timeout=timeout)

    def migctl_json(self, *args):
        result = self.migctl(*args, '-f', 'json')
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_status(self, instance_uuid, statuses, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            migrations = self.migctl_json('migration', 'list', '--instance',
                                          instance_uuid)
            if migrations and migrations[0]['status'] in statuses:
                return migrations[0]
            assert time.monotonic() < deadline, migrations
            time.sleep(0.3)


def _start_conductor(work, topic, agents, simulated=None, **controls):
    """A migration-conductor process on RabbitMQ (agents in it); returns it once ready."""
    config = work / 'conductor.conf'
    log = work / 'conductor.log'
    config.write_text(
        '[DEFAULT]\ntransport_url = %s\nstate_path = %s\nhost = cli-conductor\n'
        'log_file = %s\n[conductor]\ntopic = %s\nmonitor_interval = 0.2\n'
        '[agent]\ntopic = %s_agents\nvirt_driver = simulated\nheartbeat_interval = 1\n'
        '[all_in_one]\nagents = %s\n%s' % (RABBIT, work, log, topic, topic, agents,
                                            PROFILES))
    with open(work / 'conductor.stderr', 'w') as stderr:
        process = subprocess.Popen(_command('migration-conductor', ['--config-file',
                                                                    str(config)]),
                                   stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=_env(simulated, **controls))
    ready = 'All-in-one: conductor and' if agents else 'Conductor serving on topic'
    deadline = time.monotonic() + 60
    while not (log.exists() and ready in log.read_text()):
        if process.poll() is not None:
            pytest.fail('migration-conductor exited %s: %s'
                        % (process.returncode, (work / 'conductor.stderr').read_text()))
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail('migration-conductor not ready after 60 s: %s' % log.read_text())
        time.sleep(0.2)
    return process


def _stop(process, topic, servers):
    """Stop the conductor process, then delete the queues it left on the broker."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    import kombu
    queues = [topic, '%s.cli-conductor' % topic, '%s_agents' % topic]
    queues += ['%s_agents.%s' % (topic, server) for server in servers]
    with kombu.Connection('amqp://guest:guest@127.0.0.1:5672//') as connection:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)


@pytest.fixture(scope='module')
def rabbit_cloud(tmp_path_factory):
    """A conductor process with simulated agents sim-1 (holding RABBIT_GUESTS) and sim-2
    on RabbitMQ, on topics of its own; migctl reaches it as a deployment would."""
    work = tmp_path_factory.mktemp('rabbit-cloud')
    topic = 'mc_cli_%s' % uuidlib.uuid4().hex[:12]
    late = RABBIT_GUESTS['late']['uuid']
    process = _start_conductor(
        work, topic, 'sim-1=simulated://,sim-2=simulated://',
        simulated={'sim-1': {'domains': list(RABBIT_GUESTS.values()),
                             'abort_too_late': [late]}})
    try:
        yield _RabbitCloud(work, topic)
    finally:
        _stop(process, topic, ['sim-1', 'sim-2'])


def test_ping_then_the_call_over_rabbitmq(rabbit_cloud):
    # NOTE: imported here: this module is also the child's script, which must not
    # load oslo.messaging before migration_conductor.cmd silenced eventlet's notice.
    from migration_conductor import rpcapi
    result = rabbit_cloud.migctl('-v', 'host', 'list', '-f', 'json')
    assert result.returncode == 0, result.stderr
    assert sorted(h['host'] for h in json.loads(result.stdout)) == ['sim-1', 'sim-2']
    assert 'Conductor cli-conductor (API %s) answers on topic %s' % (
        rpcapi.RPC_API_VERSION, rabbit_cloud.topic) in result.stderr


def test_remote_not_found_exits_4(rabbit_cloud):
    missing = '00000000-0000-4000-8000-0000000000aa'
    result = rabbit_cloud.migctl('migration', 'show', missing)
    _assert_one_line_error(result, 'migctl', 'Migration %s could not be found.' % missing,
                           status=4)


def test_wait_ends_cancelled_by_an_abort_from_another_run(rabbit_cloud):
    guest = RABBIT_GUESTS['stubborn-1']['uuid']
    waiting = subprocess.Popen(
        _command('migctl', ['--config-file', str(rabbit_cloud.client_conf), 'migration',
                            'start', guest, '--wait', '-f', 'json']),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        migration = rabbit_cloud.wait_status(guest, ('running',))
        aborted = rabbit_cloud.migctl('migration', 'abort', migration['uuid'], '-f',
                                      'json')
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)['status'] == 'cancelled'
    assert _error_lines(aborted.stderr) == []
    # The job ran: a progress line while cancelling has its figures, in MiB.
    assert all(re.match(r'^  cancelling: \d+\.\d MiB sent of 4096\.0 MiB guest memory',
                        line) for line in aborted.stderr.splitlines()
               if line.startswith('  cancelling')), aborted.stderr
    assert waiting.returncode == 6, (out, err)
    assert json.loads(out)['status'] == 'cancelled'
    assert _error_lines(err) == [
        'migctl: error: migration %s ended cancelled' % migration['uuid']]


def test_force_complete_exits_0_then_an_abort_is_refused_with_3(rabbit_cloud):
    guest = RABBIT_GUESTS['stubborn-2']['uuid']
    started = rabbit_cloud.migctl_json('migration', 'start', guest)
    rabbit_cloud.wait_status(guest, ('running',))
    forced = rabbit_cloud.migctl('migration', 'force-complete', started['uuid'],
                                 '-f', 'json')
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)['status'] == 'completed'
    refused = rabbit_cloud.migctl('migration', 'abort', started['uuid'])
    _assert_one_line_error(refused, 'migctl', 'Migration %s is completed: it can only be '
                           'aborted before its switch-over' % started['uuid'], status=3)


def test_abort_that_the_migration_outran_exits_3(rabbit_cloud):
    """The abort is accepted but the job completes all the same (the simulated source
    does not stop it, as when the abort loses the race against the switch-over)."""
    guest = RABBIT_GUESTS['late']['uuid']
    started = rabbit_cloud.migctl_json('migration', 'start', guest)
    rabbit_cloud.wait_status(guest, ('running',))
    result = rabbit_cloud.migctl('migration', 'abort', started['uuid'], '-f', 'json')
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert json.loads(result.stdout)['status'] == 'completed', result.stderr
    assert _error_lines(result.stderr) == [
        'migctl: error: migration %s completed before the abort took effect: the '
        'instance runs on sim-2' % started['uuid']]


def test_a_conductor_older_than_ping_counts_as_alive(tmp_path):
    topic = 'mc_cli_old_%s' % uuidlib.uuid4().hex[:12]
    process = _start_conductor(tmp_path, topic, '', older_conductor=1)
    try:
        cloud = _RabbitCloud(tmp_path, topic)
        result = cloud.migctl('-v', 'host', 'list', '-f', 'json')
    finally:
        _stop(process, topic, [])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert '(API older than 1.4) answers' in result.stderr


# --- display rules on records no run above produces ------------------------------------

def _migration(**fields):
    from migration_conductor import objects
    values = {'uuid': str(uuidlib.uuid4()), 'instance_uuid': str(uuidlib.uuid4()),
              'source_host': 'sim-1', 'dest_host': 'sim-2', 'requested_dest': None,
              'force': False, 'error': None, 'started_at': None, 'finished_at': None,
              'memory_total': None, 'memory_processed': None, 'memory_remaining': None,
              'dirty_rate': None, 'iteration': None, 'expected_downtime_ms': None,
              'downtime_ms': None, 'total_time_ms': None,
              'created_at': _at(0)}
    values.update(fields)
    return objects.Migration(**values)


def _at(seconds):
    import datetime
    return (datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds))


def _table(migration):
    from migration_conductor.cmd import migctl

    class Args:
        formatter = 'table'
        columns = []
    return dict(zip(*migctl._migration_view(Args(), migration)))


def test_a_cancelled_migration_whose_job_never_ran_shows_no_job_time():
    from migration_conductor.cmd import migctl
    migration = _migration(status='cancelled', total_time_ms=0, memory_total=0,
                           memory_processed=0, finished_at=_at(1.5))
    rows = _table(migration)
    assert rows['job time (libvirt)'] == '-'
    assert rows['duration (request to end)'] == '1.50 s'
    assert rows['requested at'] == '2026-01-02T03:04:05.678+00:00'
    assert migctl._progress_line(_migration(status='cancelling', memory_total=0,
                                            memory_processed=0)) == \
        'cancelling (no job started: nothing sent)'
    assert migctl._progress_line(_migration(status='cancelling', started_at=_at(0))) == \
        'cancelling (no figures from the job yet)'


def test_expected_downtime_shows_while_the_job_runs_only():
    running = _migration(status='running', started_at=_at(0), memory_total=512 * MIB,
                         memory_processed=100 * MIB, memory_remaining=412 * MIB,
                         dirty_rate=0, iteration=1, expected_downtime_ms=412,
                         total_time_ms=100)
    rows = _table(running)
    assert rows['expected downtime'] == '412 ms'
    assert rows['duration (request to end)'].endswith(' so far')
    running.status = 'completed'
    running.finished_at = _at(2)
    assert 'expected downtime' not in _table(running)


if __name__ == '__main__':
    sys.exit(_child_main(sys.argv[1], sys.argv[2:]))


def test_instance_delete_forgets_only_an_instance_its_host_no_longer_reports(tmp_path):
    """A guest reported once, then gone from its host, is ``missing``: ``instance
    delete`` (by its name) forgets it; a guest still running is refused (status 3)."""
    config = tmp_path / 'migctl.conf'
    config.write_text(_aio_config(tmp_path))
    gone = {'name': 'gone-guest', 'uuid': str(uuidlib.uuid4())}
    kept = {'name': 'kept-guest', 'uuid': str(uuidlib.uuid4())}
    listed = _run_with(config, 'migctl', ['instance', 'list', '-f', 'json'],
                       simulated={'sim-1': {'domains': [gone, kept]}})
    assert {i['name']: i['power_state'] for i in json.loads(listed.stdout)} == {
        'gone-guest': 'running', 'kept-guest': 'running'}
    # Next time sim-1 reports only kept-guest: gone-guest is missing.
    listed = _run_with(config, 'migctl', ['instance', 'list', '-f', 'json'],
                       simulated={'sim-1': {'domains': [kept]}})
    assert {i['name']: i['power_state'] for i in json.loads(listed.stdout)} == {
        'gone-guest': 'missing', 'kept-guest': 'running'}

    refused = _run_with(config, 'migctl', ['instance', 'delete', 'kept-guest'],
                        simulated={'sim-1': {'domains': [kept]}})
    _assert_one_line_error(refused, 'migctl', 'only an instance its host no longer '
                           'reports (missing) can be forgotten', status=3)
    deleted = _run_with(config, 'migctl', ['instance', 'delete', 'gone-guest', '-f',
                                           'json'],
                        simulated={'sim-1': {'domains': [kept]}})
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)['uuid'] == gone['uuid']
    listed = _run_with(config, 'migctl', ['instance', 'list', '-f', 'json'],
                       simulated={'sim-1': {'domains': [kept]}})
    assert [i['name'] for i in json.loads(listed.stdout)] == ['kept-guest']
