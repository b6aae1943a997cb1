"""The console scripts as an operator runs them: output, and one-line errors.

Each command runs as a real subprocess: the console script's entry point, with this
checkout's code (an installed script imports the copy it was installed from, which may
be another checkout). A wrong setting must end the command with exit status 2 and a
single line naming the setting, never a traceback.
"""

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child_main(prog, argv):
    """Run console script ``prog`` (this file is the child's main module)."""
    import migration_conductor.cmd  # noqa: F401 (first: it silences eventlet's notice)
    [entry] = importlib.metadata.entry_points(group='console_scripts', name=prog)
    sys.argv = [prog] + argv
    return entry.load()()


def _command(prog, args):
    return [sys.executable, os.path.abspath(__file__), prog] + list(args)


def _run(tmp_path, prog, args, config, timeout=90):
    path = tmp_path / ('%s.conf' % prog)
    path.write_text(config)
    return subprocess.run(_command(prog, ['--config-file', str(path)] + args),
                          capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT))


def _aio_config(tmp_path, extra=''):
    return ('[DEFAULT]\nstate_path = %s\n[agent]\nvirt_driver = simulated\n'
            '[all_in_one]\nagents = sim-1=simulated://,sim-2=simulated://\n%s'
            % (tmp_path, extra))


def _assert_one_line_error(result, prog, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('%s: error: ' % prog), lines[0]
    assert 'Traceback' not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_migctl_all_in_one_lists_hosts_as_json(tmp_path):
    result = _run(tmp_path, 'migctl', ['host', 'list', '-f', 'json'],
                  _aio_config(tmp_path))
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)
    assert sorted(h['host'] for h in hosts) == ['sim-1', 'sim-2']
    assert all(h['up'] is True for h in hosts)
    assert 'all-in-one' in result.stderr
    # The embedded SQLite database was created under state_path.
    assert (tmp_path / 'migration_conductor.sqlite').exists()


def test_migctl_unknown_host_is_one_clear_line(tmp_path):
    result = _run(tmp_path, 'migctl', ['host', 'show', 'nope'], _aio_config(tmp_path))
    assert result.returncode != 0
    assert 'Compute host nope could not be found.' in result.stderr
    assert 'Traceback' not in result.stderr


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
    config = ('[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n'
              '[libvirt]\nconnection_uri = qemu+tcp://127.0.0.1:1/system\n')
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


def test_migctl_without_a_running_conductor(tmp_path):
    config = ('[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n'
              'rpc_response_timeout = 2\n[conductor]\ntopic = mc_nobody_%s\n'
              % tmp_path.name)
    result = _run(tmp_path, 'migctl', ['host', 'list'], config)
    _assert_one_line_error(result, 'migctl', 'no conductor answered on topic mc_nobody_',
                           'within 2 s', 'guest:***@')


if __name__ == '__main__':
    sys.exit(_child_main(sys.argv[1], sys.argv[2:]))
