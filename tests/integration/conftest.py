"""Fixtures of the integration tier: real RabbitMQ, real MariaDB, real lab hosts.

A missing service fails the test with a message naming it; nothing is skipped.
:class:`Deployment` runs the conductor and one agent per lab host as separate
processes, as deployed, and drives them with ``migctl``.
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests import db_fixtures
from tools import lab as lab_api

RABBIT = ('127.0.0.1', 5672)
REDIS = ('127.0.0.1', 6379)
BIN = os.path.dirname(sys.executable)


def _require(name, address):
    """Fail (never skip) when the service ``name`` does not answer at ``address``."""
    try:
        socket.create_connection(address, timeout=3).close()
    except OSError as exc:
        pytest.fail('%s is required at %s:%d and does not answer (%s); start it with '
                    'tools/services.sh' % ((name,) + address + (exc,)))


def require_rabbitmq():
    """The transport URL of the local RabbitMQ, or fail."""
    _require('RabbitMQ', RABBIT)
    return 'rabbit://guest:guest@%s:%d/' % RABBIT


def require_redis():
    """The jobboard URL of the local Redis, or fail."""
    _require('Redis', REDIS)
    return 'redis://%s:%d/0' % REDIS


def missing_lab_prerequisites():
    """What this machine lacks to run lab hosts (empty when nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append('root privileges (namespaces, libvirtd)')
    for tool in ('libvirtd', 'qemu-system-x86_64', 'gcc', 'unshare', 'apt-get', 'dpkg'):
        if shutil.which(tool, path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin') is None:
            missing.append(tool)
    try:
        import libvirt  # noqa: F401
        import libvirt_qemu  # noqa: F401
    except ImportError as exc:
        missing.append('libvirt-python (%s)' % exc)
    return missing


@contextlib.contextmanager
def running_lab(state_dir, base_port, host_prefix, n_hosts=2):
    """A lab of ``n_hosts`` running hosts, torn down afterwards.

    Fails (never skips) when libvirt, QEMU or root are missing; stops the leftovers of
    an interrupted earlier run first. Each test module uses its own state dir, ports
    and host prefix, so labs never collide.
    """
    missing = missing_lab_prerequisites()
    if missing:
        pytest.fail('lab prerequisites missing: %s (run "python -m tools.lab install" as '
                    'root)' % ', '.join(missing), pytrace=False)
    with _only_user(state_dir):
        lab = lab_api.Lab(state_dir=state_dir, base_port=base_port,
                          host_prefix=host_prefix)
        lab.stop()
        try:
            lab.install()
            lab.start(n_hosts=n_hosts)
            yield lab
        finally:
            lab.stop()


@contextlib.contextmanager
def _only_user(state_dir):
    """Hold the lab at ``state_dir`` for this test run, or fail naming its holder.

    Two test runs on one machine (two clones, say) would share the lab's fixed state
    dir and ports: the second's start-up stops the first's hosts under its feet.
    """
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, 'test-run.lock'), 'a+') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pytest.fail('the lab at %s is in use by another test run (%s); two runs on '
                        'one machine would share its hosts and ports'
                        % (state_dir, lock.read().strip() or 'holder unknown'),
                        pytrace=False)
        lock.seek(0)
        lock.truncate()
        lock.write('pid %d, %s' % (os.getpid(), ' '.join(sys.argv)[:200]))
        lock.flush()
        yield


def last_heartbeat_seq(lab, name):
    """Sequence number of guest ``name``'s last heartbeat (-1 before the first)."""
    beats = lab.heartbeats(name)
    return beats[-1][0] if beats else -1


def wait_for_heartbeat_above(lab, name, seq, timeout=20):
    """Wait until guest ``name`` beats past ``seq``; return the new sequence number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = last_heartbeat_seq(lab, name)
        if last > seq:
            return last
        time.sleep(0.5)
    beats = lab.heartbeats(name)
    pytest.fail('guest %s: no heartbeat after seq %d within %ds (last: %s, console: %s)'
                % (name, seq, timeout, beats[-1] if beats else None,
                   lab.console_path(name)))


def assert_memory_intact_after_move(lab, name, rounds_before, timeout=30):
    """The guest's own checks of the memory it wrote before the move (frozen region,
    dirtied pages) complete a round after it and never failed."""
    from tools.lab import consoles
    path = lab.console_path(name)
    eventually(lambda: consoles.check_rounds(path), lambda n: n > rounds_before,
               timeout=timeout, interval=0.5)
    verdict, corrupt = consoles.integrity(path)
    assert (verdict, corrupt) == ('ok', False), consoles.tail(path, 5)


def check_rounds(lab, name):
    from tools.lab import consoles
    return consoles.check_rounds(lab.console_path(name))


def eventually(fetch, predicate, timeout=60, interval=1):
    """Poll ``fetch()`` until ``predicate`` holds; return the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        assert time.monotonic() < deadline, 'never matched: %s' % (value,)
        time.sleep(interval)


# The test suite's migration profiles (the functional tier's too).
PROFILES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             'migration-profiles.yaml')


class Deployment:
    """Conductor (MariaDB, RabbitMQ) and one agent per lab host, as processes.

    :param hosts: LabHost objects of a running lab.
    :param work: a directory for config files and logs.
    :param conductor_opts: more ``[conductor]`` options (lines of ``name = value``).
    :param default_profile: the conductor's default migration profile, among those of
        ``tests/migration-profiles.yaml`` (pre-copy only unless a test says).
    :param libvirt_opts: more ``[libvirt]`` options of the agents (lines).
    """

    def __init__(self, hosts, work, heartbeat=2, conductor_opts='',
                 default_profile='precopy-only', libvirt_opts=''):
        self.hosts = hosts
        self.libvirt_opts = libvirt_opts
        self.work = work
        self.processes = {}
        suffix = uuid.uuid4().hex[:8]
        self.conductor_topic = 'mc_int_%s' % suffix
        self.agent_topic = 'mc_int_agent_%s' % suffix
        self.common = ('[DEFAULT]\ntransport_url = %s\n[conductor]\ntopic = mc_int_%s\n'
                       'service_down_time = 20\n%s[agent]\ntopic = mc_int_agent_%s\n'
                       'heartbeat_interval = %d\n[migration_profiles]\nprofiles_file = %s\n'
                       'default_profile = %s\n'
                       % (require_rabbitmq(), suffix, conductor_opts, suffix, heartbeat,
                          PROFILES_FILE, default_profile))
        assert self.conductor_topic in self.common and self.agent_topic in self.common
        self.client_conf = work / 'migctl.conf'
        self.client_conf.write_text(self.common)

    def start(self, db_url, conductors=('conductor',)):
        """Upgrade the database, then start ``conductors`` (their names) and agents."""
        self.db_url = db_url
        upgrade = subprocess.run([os.path.join(BIN, 'migration-conductor-manage'),
                                  '--config-file', str(self._conductor_conf(conductors[0])),
                                  'db', 'upgrade'],
                                 capture_output=True, text=True, timeout=120)
        assert upgrade.returncode == 0, upgrade.stderr
        for name in conductors:
            self.start_conductor(name)
        for host in self.hosts:
            self.start_agent(host)

    def _conductor_conf(self, name):
        path = self.work / ('%s.conf' % name)
        path.write_text(self.common.replace('[DEFAULT]\n', '[DEFAULT]\nhost = %s\n' % name)
                        + '[database]\nconnection = %s\n' % self.db_url)
        return path

    def start_conductor(self, name='conductor'):
        # A call sent before the conductor has declared its queue is dropped by
        # RabbitMQ: wait until it serves before anyone calls it.
        self._spawn(name, 'migration-conductor', self._conductor_conf(name),
                    wait_for='Conductor serving on topic')

    def start_agent(self, host):
        agent_conf = self.work / ('agent-%s.conf' % host.name)
        # No [database] section: agents hold no database credentials.
        agent_conf.write_text(
            self.common.replace('[DEFAULT]\n', '[DEFAULT]\nhost = %s\n' % host.name) +
            '[libvirt]\nconnection_uri = %s\n'
            # The lab's mc-shared is one directory on a local file system.
            'trust_shared_pools = true\n%s' % (host.uri, self.libvirt_opts))
        self._spawn(host.name, 'migration-compute-agent', agent_conf,
                    wait_for='registered with the conductor')

    def _spawn(self, name, prog, config, wait_for):
        log_path = self.work / ('%s.log' % name)
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, 'a')
        process = subprocess.Popen([os.path.join(BIN, prog), '--config-file', str(config)],
                                   stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        deadline = time.monotonic() + 90
        while wait_for not in log_path.read_text()[offset:]:
            assert process.poll() is None, '%s exited: %s' % (
                name, log_path.read_text()[-3000:])
            assert time.monotonic() < deadline, 'no %r in %s' % (wait_for, log_path)
            time.sleep(0.2)
        return process

    def kill(self, name):
        """SIGKILL one service (no clean-up at all), and wait for it to be gone."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(timeout=30)

    def log(self, name):
        return (self.work / ('%s.log' % name)).read_text()

    def migctl(self, *args, check=True, timeout=120):
        result = subprocess.run([os.path.join(BIN, 'migctl'), '--config-file',
                                 str(self.client_conf)] + list(args) + ['-f', 'json'],
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)
        return result

    def wait_migration(self, migration_uuid, statuses=('completed', 'cancelled',
                                                       'failed', 'error'), timeout=180):
        return eventually(lambda: self.migctl('migration', 'show', migration_uuid),
                          lambda m: m['status'] in statuses, timeout=timeout,
                          interval=0.5)

    def stop(self):
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@pytest.fixture(scope='module')
def mariadb_url():
    with db_fixtures.throwaway_database('mysql') as url:
        yield url


@pytest.fixture(scope='module')
def postgresql_url():
    with db_fixtures.throwaway_database('postgresql') as url:
        yield url


def progress_records(db_url, migration_uuid, origin=None):
    """The progress records the conductor persisted for a migration (read directly)."""
    import sqlalchemy as sa
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = ('SELECT origin, created_at, memory_processed FROM migration_progress '
                     'WHERE migration_uuid = :m ORDER BY id')
            rows = connection.execute(sa.text(query), {'m': migration_uuid}).all()
    finally:
        engine.dispose()
    return [row for row in rows if origin is None or row.origin == origin]


def migration_status(db_url, migration_uuid):
    """The migration's status read from the database (no RPC message)."""
    import sqlalchemy as sa
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text('SELECT status FROM migrations WHERE uuid = :m'),
                {'m': migration_uuid}).scalar()
    finally:
        engine.dispose()
