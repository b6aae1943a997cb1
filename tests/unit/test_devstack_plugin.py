"""The devstack plugin, run in bash against small stand-ins of devstack's functions.

No devstack is needed: each test sources ``devstack/settings`` and the plugin's lib (or
runs ``devstack/plugin.sh`` for one phase) in a bash process where the devstack functions
the plugin calls are stubs. The stubs behave like devstack where it matters: ``iniset``
really writes ini files, ``is_service_enabled``/``enable_service``/``disable_service``
follow ``ENABLED_SERVICES`` and ``DISABLED_SERVICES``, ``iniset_rpc_backend`` writes a
rabbit ``transport_url`` only when a broker is known; the others record their calls.
Bash runs with ``errexit``, ``nounset`` and ``pipefail`` (devstack's ``NOUNSET`` mode).

Every option the plugin writes must exist in the generated sample configuration, so a
renamed or removed option breaks this test.
"""

import os
import pwd
import re
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVSTACK = os.path.join(TOP, 'devstack')
PLUGIN = os.path.join(DEVSTACK, 'plugin.sh')
SETTINGS = os.path.join(DEVSTACK, 'settings')
LIB = os.path.join(DEVSTACK, 'lib', 'migration-conductor')
SAMPLE = os.path.join(TOP, 'etc', 'migration-conductor', 'migration-conductor.conf.sample')

HOST_IP = '192.0.2.10'
MC_HOST = 'compute-7'
DB_URL = 'mysql+pymysql://root:db-secret@192.0.2.1/%s?charset=utf8'
RABBIT_URL = 'rabbit://stackrabbit:rabbit-secret@192.0.2.1:5672/'

# A tiny iniset/iniget: DEFAULT is an ordinary section, keys keep their case.
INI_PY = r'''
import configparser
import sys

action, path, section, option = sys.argv[1:5]
parser = configparser.ConfigParser(interpolation=None, default_section='\0')
parser.optionxform = str
parser.read(path)
if action == 'get':
    print(parser.get(section, option, fallback=''))
else:
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, option, sys.argv[5] if len(sys.argv) > 5 else '')
    with open(path, 'w') as out:
        parser.write(out)
'''

STUBS = r'''
# Stand-ins for the devstack functions the plugin calls.
function _record { echo "$*" >> "$CALLS"; }

function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ,${ENABLED_SERVICES}, =~ ,${service}, ]] && return 0
    done
    return 1
}
function enable_service {
    local service
    for service in "$@"; do
        if [[ ,${DISABLED_SERVICES}, =~ ,${service}, ]]; then
            continue
        fi
        is_service_enabled $service || ENABLED_SERVICES+=",$service"
    done
}
function disable_service {
    local service
    for service in "$@"; do
        DISABLED_SERVICES+=",$service"
        ENABLED_SERVICES=$(echo ",$ENABLED_SERVICES," | sed -e "s/,$service,/,/g" \
            -e 's/^,//' -e 's/,$//')
    done
}

function iniset { "$PYTHON" -S -E "$STUB_DIR/ini.py" set "$@"; }
function iniget { "$PYTHON" -S -E "$STUB_DIR/ini.py" get "$@"; }
function iniset_rpc_backend {
    local file=$2
    local section=${3:-DEFAULT}
    if is_service_enabled rabbit || [[ -n "${RABBIT_HOST:-}" && -n "${RABBIT_PASSWORD:-}" ]]; then
        iniset $file $section transport_url "$STUB_RABBIT_URL"
    fi
}
function database_connection_url { printf "$STUB_DB_URL\n" "$1"; }
function recreate_database { _record recreate_database "$@"; }
function setup_logging { _record setup_logging "$@"; iniset $1 DEFAULT log_color False; }
function run_process { _record run_process "$@"; }
function stop_process { _record stop_process "$@"; }
function setup_develop { _record setup_develop "$@"; }
function install_package { _record install_package "$@"; }
function start_service { _record start_service "$@"; }
function trueorfalse {
    local default=$1 value=${!2:-$1}
    case "$value" in
        1|yes|Yes|YES|true|True|TRUE|on|On|ON) echo True ;;
        0|no|No|NO|false|False|FALSE|off|Off|OFF) echo False ;;
        *) echo "$default" ;;
    esac
}
function pip_install { _record pip_install "$@"; }
function get_python_exec_prefix { echo "$STUB_BIN"; }
function echo_summary { echo "$@"; }
function die { local line=$1; shift; echo "die (line $line): $*" >&2; exit 1; }
function sudo { "$@"; }
'''

FAKE_MANAGE = '#!/bin/sh\necho "migration-conductor-manage $*" >> "$CALLS"\n'


def _sample_options():
    """(group, option) pairs documented in the generated sample configuration."""
    options = set()
    group = None
    with open(SAMPLE) as sample:
        for line in sample:
            header = re.match(r'^\[(\w+)\]$', line)
            if header:
                group = header.group(1)
                continue
            option = re.match(r'^#(\w+) =( |$)', line)
            if option and group:
                options.add((group, option.group(1)))
    return options


def _read_ini(path):
    """{section: {key: value}} of an ini file, DEFAULT being an ordinary section."""
    sections = {}
    current = None
    with open(path) as ini:
        for raw in ini:
            line = raw.strip()
            if not line or line.startswith(('#', ';')):
                continue
            if line.startswith('['):
                current = sections.setdefault(line[1:-1], {})
                continue
            key, _, value = line.partition('=')
            current[key.strip()] = value.strip()
    return sections


class Devstack:
    """One simulated devstack host: its directories, environment and recorded calls."""

    def __init__(self, tmp_path, enabled, disabled=(), **variables):
        self.tmp = tmp_path
        self.stub_dir = tmp_path / 'stubs'
        self.bin = tmp_path / 'bin'
        self.conf_dir = tmp_path / 'etc' / 'migration-conductor'
        self.data_dir = tmp_path / 'data'
        self.calls_file = tmp_path / 'calls'
        for directory in (self.stub_dir, self.bin, self.data_dir):
            directory.mkdir(exist_ok=True)
        (self.stub_dir / 'ini.py').write_text(INI_PY)
        (self.stub_dir / 'devstack-stubs.sh').write_text(STUBS)
        manage = self.bin / 'migration-conductor-manage'
        manage.write_text(FAKE_MANAGE)
        manage.chmod(0o755)
        self.calls_file.touch()
        self.disabled = list(disabled)
        self.env = {
            'PATH': os.environ['PATH'],
            'HOME': str(tmp_path),
            'LANG': 'C.UTF-8',
            'PYTHON': sys.executable,
            'STUB_DIR': str(self.stub_dir),
            'STUB_BIN': str(self.bin),
            'STUB_DB_URL': DB_URL,
            'STUB_RABBIT_URL': RABBIT_URL,
            'CALLS': str(self.calls_file),
            # What stackrc, local.conf and lib/database give a plugin.
            'DEST': str(tmp_path / 'opt-stack'),
            'DATA_DIR': str(self.data_dir),
            'STACK_USER': pwd.getpwuid(os.getuid()).pw_name,
            'HOST_IP': HOST_IP,
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'DATABASE_BACKENDS': 'mysql postgresql',
            'ENABLED_SERVICES': ','.join(enabled),
            'DISABLED_SERVICES': '',
            'MIGRATION_CONDUCTOR_DIR': TOP,
            'MIGRATION_CONDUCTOR_CONF_DIR': str(self.conf_dir),
            'MC_HOST': MC_HOST,
        }
        self.env.update(variables)

    @property
    def conductor_conf(self):
        return self.conf_dir / 'migration-conductor.conf'

    @property
    def agent_conf(self):
        return self.conf_dir / 'compute-agent.conf'

    @property
    def state_path(self):
        return self.data_dir / 'migration-conductor'

    def calls(self):
        return self.calls_file.read_text().splitlines()

    def run(self, body, check=True):
        """Run ``body`` after the stubs, local.conf's disable_service and settings."""
        lines = ['set -o errexit -o nounset -o pipefail',
                 'source "$STUB_DIR/devstack-stubs.sh"']
        if self.disabled:
            lines.append('disable_service %s' % ' '.join(self.disabled))
        lines += ['source "$MIGRATION_CONDUCTOR_DIR/devstack/settings"', body]
        result = subprocess.run(['bash', '-c', '\n'.join(lines)], env=self.env,
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, (
                'bash failed (%s)\nstdout:\n%s\nstderr:\n%s'
                % (result.returncode, result.stdout, result.stderr))
        return result

    def lib(self, *functions, check=True):
        return self.run('source "$MIGRATION_CONDUCTOR_DIR/devstack/lib/migration-conductor"\n'
                        + '\n'.join(functions), check=check)

    def plugin(self, *args):
        return self.run('source "$MIGRATION_CONDUCTOR_DIR/devstack/plugin.sh" %s'
                        % ' '.join(args))


def _assert_options_exist(path):
    known = _sample_options()
    written = {(section, key) for section, keys in _read_ini(path).items() for key in keys}
    unknown = sorted(written - known)
    assert not unknown, ('%s sets options that the sample configuration does not '
                         'document (renamed or removed?): %s' % (path, unknown))


# Syntax -------------------------------------------------------------------------------

@pytest.mark.parametrize('path', [PLUGIN, LIB, SETTINGS], ids=os.path.basename)
def test_bash_syntax(path):
    result = subprocess.run(['bash', '-n', path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sample_parser_sees_the_project_options():
    options = _sample_options()
    for expected in [('DEFAULT', 'host'), ('DEFAULT', 'transport_url'),
                     ('database', 'connection'), ('libvirt', 'connection_uri'),
                     ('agent', 'heartbeat_interval'), ('conductor', 'service_down_time')]:
        assert expected in options


# Configuration ------------------------------------------------------------------------

def test_single_node_writes_one_file_per_service(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'])
    host.lib('configure_migration_conductor')

    conductor = _read_ini(host.conductor_conf)
    assert conductor['DEFAULT']['transport_url'] == RABBIT_URL
    assert conductor['DEFAULT']['host'] == MC_HOST
    assert conductor['DEFAULT']['state_path'] == str(host.state_path)
    assert conductor['DEFAULT']['debug'] == 'True'
    assert conductor['database']['connection'] == DB_URL % 'migration_conductor'
    assert conductor['conductor']['service_down_time'] == '60'

    agent = _read_ini(host.agent_conf)
    assert 'database' not in agent
    assert 'db-secret' not in host.agent_conf.read_text()
    assert agent['DEFAULT']['transport_url'] == RABBIT_URL
    assert agent['DEFAULT']['host'] == MC_HOST
    assert agent['libvirt']['connection_uri'] == 'qemu:///system'
    assert agent['agent']['heartbeat_interval'] == '10'
    assert agent['agent']['migration_address'] == HOST_IP
    assert agent['agent']['virt_driver'] == 'libvirt'
    assert 'advertised_libvirt_uri' not in agent['agent']

    assert host.state_path.is_dir()
    for path in (host.conductor_conf, host.agent_conf):
        _assert_options_exist(path)


def test_files_parse_with_the_project_options(tmp_path):
    """The project's own option types accept every value the plugin wrote."""
    from oslo_config import cfg

    from migration_conductor import cmd

    host = Devstack(tmp_path, ['mysql', 'rabbit'])
    host.lib('configure_migration_conductor')

    agent = cfg.ConfigOpts()
    cmd.register_all(agent, database=False)
    agent([], project=cmd.PROJECT, default_config_files=[str(host.agent_conf)],
          default_config_dirs=[])
    assert agent.host == MC_HOST
    assert agent.transport_url == RABBIT_URL
    assert agent.agent.heartbeat_interval == 10
    assert agent.agent.migration_address == HOST_IP
    assert agent.libvirt.connection_uri == 'qemu:///system'
    assert agent.debug is True

    conductor = cfg.ConfigOpts()
    cmd.register_all(conductor)
    conductor([], project=cmd.PROJECT, default_config_files=[str(host.conductor_conf)],
              default_config_dirs=[])
    assert conductor.database.connection == DB_URL % 'migration_conductor'
    assert conductor.conductor.service_down_time == 60


def test_local_conf_variables_reach_the_files(tmp_path):
    host = Devstack(tmp_path, ['postgresql', 'rabbit'],
                    MC_CONDUCTOR_DB='mc_db',
                    MC_AGENT_LIBVIRT_URI='qemu+tcp://127.0.0.1:16601/system',
                    MC_AGENT_HEARTBEAT_INTERVAL='20',
                    MC_AGENT_VIRT_DRIVER='simulated',
                    MC_AGENT_MIGRATION_ADDRESS='198.51.100.4',
                    MC_AGENT_ADVERTISED_LIBVIRT_URI='qemu+tcp://198.51.100.4/system',
                    MC_AGENT_TRUST_SHARED_POOLS='yes',
                    MC_CONDUCTOR_JOBBOARD_URL='redis://192.0.2.1:6379/3',
                    MIGRATION_CONDUCTOR_STATE_PATH=str(tmp_path / 'state'))
    host.lib('configure_migration_conductor')

    conductor = _read_ini(host.conductor_conf)
    assert conductor['database']['connection'] == DB_URL % 'mc_db'
    assert conductor['conductor']['service_down_time'] == '120'
    assert conductor['conductor']['jobboard_url'] == 'redis://192.0.2.1:6379/3'
    assert conductor['DEFAULT']['state_path'] == str(tmp_path / 'state')
    agent = _read_ini(host.agent_conf)
    assert agent['libvirt'] == {'connection_uri': 'qemu+tcp://127.0.0.1:16601/system',
                                'trust_shared_pools': 'True'}
    assert agent['agent'] == {
        'virt_driver': 'simulated', 'heartbeat_interval': '20',
        'migration_address': '198.51.100.4',
        'advertised_libvirt_uri': 'qemu+tcp://198.51.100.4/system'}
    for path in (host.conductor_conf, host.agent_conf):
        _assert_options_exist(path)


def test_compute_only_host_has_no_conductor(tmp_path):
    """local.conf of a compute: ``disable_service mc-conductor``, broker on the controller."""
    host = Devstack(tmp_path, ['n-cpu'], disabled=['mc-conductor'],
                    RABBIT_HOST='192.0.2.1', RABBIT_PASSWORD='rabbit-secret')
    # A conductor file left from the time this host was a controller.
    host.conf_dir.mkdir(parents=True)
    host.conductor_conf.write_text('[database]\nconnection = %s\n' % DB_URL)

    result = host.lib('echo "ENABLED=$ENABLED_SERVICES"',
                      'configure_migration_conductor',
                      'init_migration_conductor',
                      'start_migration_conductor')

    assert 'ENABLED=n-cpu,mc-agent\n' in result.stdout
    assert not host.conductor_conf.exists()
    agent = _read_ini(host.agent_conf)
    assert 'database' not in agent
    assert agent['DEFAULT']['transport_url'] == RABBIT_URL
    assert agent['libvirt']['connection_uri'] == 'qemu:///system'
    calls = host.calls()
    assert not [c for c in calls if 'mc-conductor' in c or 'recreate_database' in c
                or 'migration-conductor-manage' in c], calls
    assert [c for c in calls if c.startswith('run_process')] == [
        'run_process mc-agent %s/migration-compute-agent --config-file %s '
        % (host.bin, host.agent_conf)]


def test_controller_only_host_has_no_agent(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'], disabled=['mc-agent'])
    host.lib('configure_migration_conductor', 'start_migration_conductor')
    assert host.conductor_conf.exists()
    assert not host.agent_conf.exists()
    assert [c for c in host.calls() if c.startswith('run_process')] == [
        'run_process mc-conductor %s/migration-conductor --config-file %s'
        % (host.bin, host.conductor_conf)]


def test_no_broker_stops_with_the_reason(tmp_path):
    host = Devstack(tmp_path, ['mysql'])
    result = host.lib('configure_migration_conductor', check=False)
    assert result.returncode != 0
    assert 'rabbit' in result.stderr


def test_sqlite_when_no_database_server(tmp_path):
    """Without mysql/postgresql the conductor gets SQLite and the real manage command
    creates the schema from the file the plugin wrote."""
    host = Devstack(tmp_path, ['rabbit'],
                    MIGRATION_CONDUCTOR_BIN_DIR=os.path.dirname(sys.executable))
    host.lib('configure_migration_conductor', 'init_migration_conductor')
    database = host.state_path / 'migration_conductor.sqlite'
    conductor = _read_ini(host.conductor_conf)
    assert conductor['database']['connection'] == 'sqlite:///%s' % database
    assert database.stat().st_size > 0
    assert 'recreate_database' not in '\n'.join(host.calls())
    _assert_options_exist(host.conductor_conf)


# plugin.sh dispatch -------------------------------------------------------------------

def test_plugin_dispatches_each_phase(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'])

    host.plugin('stack', 'install')
    assert host.calls() == ['setup_develop %s' % TOP]

    host.plugin('stack', 'post-config')
    assert 'transport_url' in _read_ini(host.conductor_conf)['DEFAULT']
    assert 'connection_uri' in _read_ini(host.agent_conf)['libvirt']

    host.calls_file.write_text('')
    host.plugin('stack', 'extra')
    assert host.calls() == [
        'recreate_database migration_conductor',
        'migration-conductor-manage --config-file %s db upgrade' % host.conductor_conf,
        'run_process mc-conductor %s/migration-conductor --config-file %s'
        % (host.bin, host.conductor_conf),
        'run_process mc-agent %s/migration-compute-agent --config-file %s '
        % (host.bin, host.agent_conf),
    ]

    host.calls_file.write_text('')
    host.plugin('unstack')
    assert host.calls() == ['stop_process mc-agent', 'stop_process mc-conductor']

    host.plugin('clean')
    assert not host.state_path.exists()
    assert not host.conductor_conf.exists()
    assert not host.agent_conf.exists()


def test_a_redis_of_its_own_makes_a_jobboard_for_several_conductors(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'], MC_CONDUCTOR_INSTALL_REDIS='True')
    host.plugin('stack', 'install')
    assert host.calls() == ['setup_develop %s' % TOP, 'install_package redis-server']
    host.plugin('stack', 'post-config')
    conductor = _read_ini(host.conductor_conf)
    assert conductor['conductor']['jobboard_url'] == 'redis://127.0.0.1:6379/0'
    _assert_options_exist(host.conductor_conf)
    host.calls_file.write_text('')
    host.plugin('stack', 'extra')
    assert host.calls()[2:4] == [
        'start_service redis-server',
        'run_process mc-conductor %s/migration-conductor --config-file %s'
        % (host.bin, host.conductor_conf)]


def test_one_conductor_without_a_jobboard_by_default(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'])
    host.lib('configure_migration_conductor')
    assert 'jobboard_url' not in _read_ini(host.conductor_conf)['conductor']
    assert _read_ini(host.agent_conf)['libvirt']['trust_shared_pools'] == 'False'


def test_plugin_does_nothing_when_no_service_is_enabled(tmp_path):
    host = Devstack(tmp_path, ['mysql', 'rabbit'], disabled=['mc-conductor', 'mc-agent'])
    for phase in (['stack', 'install'], ['stack', 'post-config'], ['stack', 'extra'],
                  ['unstack'], ['clean']):
        host.plugin(*phase)
    assert host.calls() == []
    assert not host.conf_dir.exists()
