"""Control-plane overhead of one live migration, on loopback RabbitMQ and MariaDB.

    .venv/bin/python bench/control_plane.py [--migrations 20] [--soak 50] [--breakdown]
    .venv/bin/python bench/control_plane.py --real-hosts [--lab-state-dir DIR]
        [--lab-base-port PORT] [--lab-host-prefix PREFIX] [--guest NAME]
        [--disk-pool mc-shared|mc-local] [--migrations 10] [--soak 20] [--breakdown]
    .venv/bin/python bench/control_plane.py --compare-breakdown A[,A2...] B[,B2...]

Runs the conductor as its own process (``migration-conductor``, RabbitMQ transport,
MariaDB store, default options) and two agents in a second process, then live-migrates
one guest back and forth. Two modes:

* simulated (the default): two agents with the simulated driver (hosts bench-1 and
  bench-2), a simulated guest of 512 MiB;
* ``--real-hosts``: two agents with the libvirt driver on the first two hosts of a
  running lab (``python -m tools.lab ... start --hosts 2``; the lab options default to
  ``$MCLAB_STATE_DIR``, ``$MCLAB_BASE_PORT``, ``$MCLAB_HOST_PREFIX`` as for the lab),
  each agent configured as the integration tests do (``[libvirt] connection_uri`` of
  its lab host, ``trust_shared_pools = true``; agent host names are the lab's). The
  guest is a real TCG guest that only beats (256 MiB, 32 MiB touched, 0 pages/s
  dirtied): the bench starts it on the first host through the lab API and removes it
  at the end, or, with ``--guest NAME``, uses a lab guest already running (left in
  place). At the end the guest must still beat, or the run fails. With
  ``--disk-pool mc-shared|mc-local`` the guest the bench starts has a disk in that
  pool (shared: the destination finds it in its pool of the same UUID; local: every
  migration copies it), to measure the storage decision.

It measures, per migration:

* request -> libvirt call: from the caller sending ``live_migrate`` to the source
  agent's driver entering ``live_migrate`` (placement, checks, claim, prepare, start);
* job end -> completed: from the driver's ``live_migrate`` returning to the
  Migration's ``finished_at`` in the database (monitor, finish, cleanup, records);
* RPC messages per migration, by sender and receiver, next to Nova's happy path;
* the conductor's resident memory before and after ``--soak`` consecutive migrations.

With ``--breakdown`` the agents process also times, per migration, each agent call
(check_source ... start_migration), the driver, tracker and storage steps inside them
and (real hosts) each libvirt call, and the gaps between the agent calls (the
conductor's work: database, taskflow, RPC round trips); see :func:`_instrument`.

All times come from one clock (one machine). The figures are printed next to their
targets and next to the last saved run of the same mode (as ratios), and saved under
bench/results/ as ``control_plane-<mode>[-<disk pool>]-<date>.json`` (files without a mode
in their name are earlier simulated runs).
"""

import argparse
import collections
import functools
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)
BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(TOP, 'bench', 'results')
RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
MARIADB_ADMIN = dict(host='127.0.0.1', port=3306, user='root', password='')
TARGET_MS = 150.0
# Nova's happy path (DESIGN.md/issue 3): 5 round trips and 2 casts, 3 of its compute
# calls going compute to compute.
NOVA = {'calls': 5, 'casts': 2, 'compute_to_compute': 3}
HOSTS = ('bench-1', 'bench-2')
SIMULATED_GUEST = '0b0b0b0b-0000-4000-8000-000000000001'
SIMULATED, REAL = 'simulated', 'real'
# The real guest: it only beats (a dirtying guest under TCG is often corrupted by a
# multi-pass pre-copy, README "Facts about this machine").
REAL_GUEST = dict(memory_mib=256, touch_mib=32, dirty_pps=0)
# Agent calls of the path measured, in the order the flow makes them.
AGENT_STEPS = ('check_source', 'check_destination', 'claim_resources',
               'prepare_destination', 'start_migration')
FIGURES = ('request_to_call_ms', 'job_end_to_completed_ms')


# NOTE: the control plane alone: the project's default profile without its two
# deliberate waits (the 1 s dirty-rate measure before the start, the 3 s settle watch
# after the switch-over), which would otherwise dominate both figures.
BENCH_PROFILE = ('control-plane:\n  description: the default profile, no measure and '
                 'no settle watch\n  dirty_rate_sample_s: 0\n  settle_s: 0\n')


def _config(path, topic, db_url, extra=''):
    profiles = path + '.profiles.yaml'
    with open(profiles, 'w') as stream:
        stream.write(BENCH_PROFILE)
    with open(path, 'w') as conf:
        conf.write('[DEFAULT]\ntransport_url = %s\nhost = bench-conductor\n'
                   '[conductor]\ntopic = %s_c\n[agent]\ntopic = %s_a\n'
                   'virt_driver = simulated\n[simulated]\ntime_scale = 0.01\n'
                   '[migration_profiles]\nprofiles_file = %s\n'
                   'default_profile = control-plane\n'
                   '[database]\nconnection = %s\n%s' % (RABBIT, topic, topic, profiles,
                                                       db_url, extra))


def _agent_config(path, topic, host, uri):
    """An agent of a lab host, configured as the integration tests do (no database)."""
    with open(path, 'w') as conf:
        conf.write('[DEFAULT]\ntransport_url = %s\nhost = %s\n[conductor]\ntopic = %s_c\n'
                   '[agent]\ntopic = %s_a\nvirt_driver = libvirt\n'
                   '[libvirt]\nconnection_uri = %s\n'
                   # The lab's mc-shared is one directory on a local file system.
                   'trust_shared_pools = true\n' % (RABBIT, host, topic, topic, uri))


# --- the agents process: instrumentation -------------------------------------------------

_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', re.I)
_PATH = re.compile(r'/[^\s,;)]*')


class _StepLog:
    """Times nested steps per thread; writes one JSON line per step to ``path``.

    A step is recorded only inside a top-level step (an agent call, or the driver's
    ``live_migrate`` in the job's thread), so heartbeats and job polls of the monitor
    are left out. Each line: ``{"path": [top, ..., step], "start": t, "end": t}``.
    """

    def __init__(self, path):
        self._out = open(path, 'a', buffering=1)
        self._write_lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, label, fn, top=False):
        log = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = getattr(log._local, 'stack', None)
            if stack is None:
                stack = log._local.stack = []
            if not stack and not top:
                return fn(*args, **kwargs)
            name = label(args) if callable(label) else label
            stack.append(name)
            start = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.time()
                path = list(stack)
                stack.pop()
                with log._write_lock:
                    log._out.write(json.dumps({'path': path, 'start': start,
                                               'end': end}) + '\n')
        return timed

    def patch(self, owner, names, prefix, top=False):
        for name in names:
            setattr(owner, name, self.wrap(prefix + name, getattr(owner, name), top=top))


def _call_label(args):
    """'call: look up domain <uuid>' from Host.call(self, what, fn, ...)."""
    what = _PATH.sub('<path>', _UUID.sub('<uuid>', args[1]))
    return 'libvirt call: %s' % what


def _instrument(steps_path, driver_class, real):
    """Time the agent's steps on the path from the request to the libvirt call."""
    from compute_agent import manager as agent_manager
    from compute_agent import migration_jobs
    from compute_agent import resource_tracker
    from compute_agent import storage as agent_storage

    log = _StepLog(steps_path)
    log.patch(agent_manager.AgentManager, AGENT_STEPS, '', top=True)
    log.patch(agent_manager.AgentManager, ['_check_storage'], 'manager.')
    log.patch(migration_jobs.MigrationJobs, ['start', 'status'], 'jobs.')
    log.patch(resource_tracker.ResourceTracker, ['check', 'claim', '_free'], 'tracker.')
    log.patch(agent_storage, ['decide_block_migration'], 'storage.')
    names = ['get_instance', 'get_host_inventory', 'get_instance_disks', 'find_instance',
             'check_cpu_compatible', 'list_instances', 'shares_disk', 'disk_copy_refusal',
             'pool_free_bytes', 'get_job_stats']
    log.patch(driver_class, [n for n in names if hasattr(driver_class, n)], 'driver.')
    # The job's thread: live_migrate is a top-level step of its own.
    driver_class.live_migrate = log.wrap('live_migrate', driver_class.live_migrate,
                                         top=True)
    if not real:
        return
    import libvirt

    from compute_agent.virt.libvirt import host as libvirt_host
    from compute_agent.virt.libvirt import migration as libvirt_migration
    from compute_agent.virt.libvirt import storage as libvirt_storage

    log.patch(libvirt_host.Host, ['get_capabilities', 'get_info', 'list_domains',
                                  'compare_cpu', 'find_domain', 'describe_domain',
                                  'get_state', 'get_connection', '_open_bounded'], 'host.')
    # Host.call runs its libvirt function in a thread of its own: timed here, by what.
    libvirt_host.Host.call = log.wrap(_call_label, libvirt_host.Host.call)
    log.patch(libvirt_migration, ['migrate', 'job_stats'], 'migration.')
    log.patch(libvirt_storage, ['domain_disks', 'has_pool_volume', 'has_volume_at',
                                'pool_free_bytes', '_pool_at_directory',
                                '_refreshed_pool_at'], 'storage.')
    # libvirt calls made without Host.call (in the caller's thread).
    log.patch(libvirt.virConnect, ['getCapabilities', 'getInfo', 'getFreeMemory',
                                   'getType', 'getVersion', 'getLibVersion', 'isAlive',
                                   'getHostname'], 'libvirt ')
    log.patch(libvirt.virDomain, ['migrateToURI3', 'UUIDString', 'name'], 'libvirt ')


# --- the agents process ------------------------------------------------------------------

def run_agents(mode, events_path, configs, breakdown):
    """Two agents; every driver live_migrate call is timed to events_path."""
    from oslo_config import cfg

    from compute_agent import service
    from compute_agent.virt import factory
    from migration_conductor import cmd
    from migration_conductor import rpc

    if mode == REAL:
        from compute_agent.virt.libvirt import driver as libvirt_driver
        driver_class = libvirt_driver.LibvirtDriver
    else:
        from compute_agent.virt import simulated
        driver_class = simulated.SimulatedDriver
    if breakdown:
        _instrument(events_path + '.steps', driver_class, mode == REAL)

    confs = []
    for config in configs:
        conf = cfg.ConfigOpts()
        cmd.register_all(conf, database=False)
        conf(['--config-file', config])
        confs.append(conf)
    events = open(events_path, 'a', buffering=1)
    original = driver_class.live_migrate

    def timed(self, instance_uuid, dest_uri, migrate_uri, options):
        entered = time.time()
        try:
            return original(self, instance_uuid, dest_uri, migrate_uri, options)
        finally:
            events.write(json.dumps({'entered': entered, 'ended': time.time()}) + '\n')

    driver_class.live_migrate = timed
    counts = collections.Counter()
    # Incoming conductor -> agent calls, counted at the agents' endpoint.
    from compute_agent import manager as agent_manager
    for name in dir(agent_manager.AgentManager):
        method = getattr(agent_manager.AgentManager, name)
        if (name.startswith('_') or name in ('target', 'build_host_report')
                or not callable(method)):
            continue

        def counting(self, context, *a, __method=method, __name=name, **kw):
            counts.update(['conductor call %s' % __name])
            return __method(self, context, *a, **kw)
        setattr(agent_manager.AgentManager, name, functools.wraps(method)(counting))
    rpc.add_observer(lambda sender, kind, topic, server, method:
                     counts.update(['%s %s %s' % (sender.split(':')[0], kind, method)]))
    if mode == REAL:
        agents = [service.AgentService(conf, conf.host, factory.load_driver(conf,
                                                                            conf.host))
                  for conf in confs]
    else:
        agents = [service.AgentService(confs[0], host,
                                       factory.load_driver(confs[0], host))
                  for host in HOSTS]
    for agent in agents:
        agent.start(register_timeout=60)
    if mode == SIMULATED:
        agents[0].driver.add_domain('bench-guest', memory_mb=512, vcpus=1,
                                    uuid=SIMULATED_GUEST)
        agents[0].report_now()
    print('READY', flush=True)
    sys.stdin.read()           # until the benchmark closes our stdin
    with open(events_path + '.counts', 'w') as out:
        json.dump(counts, out)
    for agent in agents:
        agent.stop()


# --- the benchmark -----------------------------------------------------------------------

def _rss_kib(pid):
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return None


def _cpu_ms(pid):
    """CPU time (user + system) the process has used, in ms."""
    with open('/proc/%d/stat' % pid) as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf('SC_CLK_TCK')


def _wait_ready(process, log_path, text, timeout=90):
    deadline = time.monotonic() + timeout
    while text not in open(log_path).read():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit('bench: %s did not start; see %s' % (process.args, log_path))
        time.sleep(0.1)


class _RealGuest:
    """The lab, its first two hosts, and the guest moved back and forth."""

    def __init__(self, args):
        from tools import lab as lab_api

        self.lab = lab_api.Lab(state_dir=args.lab_state_dir, base_port=args.lab_base_port,
                               host_prefix=args.lab_host_prefix)
        running = self.lab.running_hosts()
        if len(running) < 2:
            raise SystemExit('bench: --real-hosts needs two running lab hosts in %s (found '
                             '%d); start them with "python -m tools.lab --state-dir %s '
                             'start --hosts 2"' % (self.lab.state_dir, len(running),
                                                   self.lab.state_dir))
        self.hosts = running[:2]
        self.created = args.guest is None
        self.name = args.guest or 'mc-bench-%s' % uuid.uuid4().hex[:6]
        self.settings = dict(REAL_GUEST, disk_pool=args.disk_pool)
        if self.created:
            self.info = self.lab.start_guest(self.name, self.hosts[0].name,
                                             **self.settings)
        else:
            self.info = self.lab.guest(self.name)
            if self.info is None or self.info.host not in [h.name for h in self.hosts]:
                raise SystemExit('bench: guest %s does not run on %s' % (
                    self.name, ' or '.join(h.name for h in self.hosts)))
        self.uuid = self.info.uuid
        self.first_seq = self._last_seq()

    def _last_seq(self):
        beats = self.lab.heartbeats(self.name)
        return beats[-1][0] if beats else -1

    def still_beats(self, timeout=20):
        """The guest's last heartbeat sequence once it passed the one seen at start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seq = self._last_seq()
            if seq > self.first_seq:
                last = seq
                time.sleep(2.5)          # and it goes on beating where it runs now
                if self._last_seq() > last:
                    return self._last_seq()
            time.sleep(0.5)
        return None

    def describe(self):
        info = self.lab.guest(self.name)
        return {'lab_state_dir': self.lab.state_dir,
                'hosts': {h.name: h.uri for h in self.hosts},
                'guest': self.name, 'guest_uuid': self.uuid, 'guest_created': self.created,
                'guest_settings': self.settings if self.created else None,
                'accelerator': info.accelerator if info else None,
                'runs_on_at_end': info.host if info else None}

    def remove(self):
        if self.created:
            self.lab.stop_guest(self.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--migrations', type=int, default=20)
    parser.add_argument('--soak', type=int, default=50)
    parser.add_argument('--real-hosts', action='store_true',
                        help='agents with the libvirt driver on two running lab hosts')
    parser.add_argument('--lab-state-dir', help='the lab (default as the lab: '
                                                '$MCLAB_STATE_DIR or /var/lib/mclab)')
    parser.add_argument('--lab-base-port', type=int)
    parser.add_argument('--lab-host-prefix')
    parser.add_argument('--guest', help='a running lab guest to move (default: the bench '
                                        'starts one and removes it at the end)')
    parser.add_argument('--disk-pool', choices=('mc-shared', 'mc-local'),
                        help='the guest the bench starts gets a disk in this lab pool '
                             '(mc-local: every migration copies it); default diskless')
    parser.add_argument('--pause', type=float, default=0.0,
                        help='seconds to wait between two migrations (default none: '
                             'each starts once the last one completed)')
    parser.add_argument('--breakdown', action='store_true',
                        help='time each agent step and the gaps between them')
    parser.add_argument('--label', help='a word added to the result\'s file name and '
                                        'saved in it (e.g. the code measured)')
    parser.add_argument('--compare-breakdown', nargs=2, metavar=('A', 'B'),
                        help='print the breakdowns of two saved results side by side '
                             '(each may be several results separated by commas)')
    parser.add_argument('--agents-process', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents_process:
        mode, breakdown, events = args.agents_process[:3]
        return run_agents(mode, events, args.agents_process[3:], breakdown == 'yes')
    if args.compare_breakdown:
        return _compare_breakdowns(*args.compare_breakdown)
    mode = REAL if args.real_hosts else SIMULATED

    import pymysql
    from oslo_config import cfg

    from migration_conductor import cmd
    from migration_conductor import context as mc_context
    from migration_conductor import rpc
    from migration_conductor import rpcapi

    real = _RealGuest(args) if mode == REAL else None
    work = tempfile.mkdtemp(prefix='mc-bench-')
    topic = 'mc_bench_%s' % uuid.uuid4().hex[:8]
    db_name = topic
    admin = pymysql.connect(**MARIADB_ADMIN)
    admin.cursor().execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % db_name)
    db_url = 'mysql+pymysql://root@127.0.0.1:3306/%s?charset=utf8mb4' % db_name
    config = os.path.join(work, 'bench.conf')
    _config(config, topic, db_url)
    if real:
        agent_configs = []
        for host in real.hosts:
            path = os.path.join(work, 'agent-%s.conf' % host.name)
            _agent_config(path, topic, host.name, host.uri)
            agent_configs.append(path)
    else:
        agent_configs = [config]
    events_path = os.path.join(work, 'events.jsonl')
    procs = []
    try:
        subprocess.run([os.path.join(BIN, 'migration-conductor-manage'), '--config-file',
                        config, 'db', 'upgrade'], check=True, capture_output=True)
        conductor_log = os.path.join(work, 'conductor.log')
        conductor = subprocess.Popen([os.path.join(BIN, 'migration-conductor'),
                                      '--config-file', config],
                                     stdout=open(conductor_log, 'w'),
                                     stderr=subprocess.STDOUT)
        procs.append(conductor)
        _wait_ready(conductor, conductor_log, 'Conductor serving')
        agents_log = os.path.join(work, 'agents.log')
        agents = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                   '--agents-process', mode,
                                   'yes' if args.breakdown else 'no', events_path]
                                  + agent_configs,
                                  stdin=subprocess.PIPE, stdout=open(agents_log, 'w'),
                                  stderr=subprocess.STDOUT)
        procs.append(agents)
        _wait_ready(agents, agents_log, 'READY')

        conf = cfg.ConfigOpts()
        cmd.register_all(conf, database=False)
        conf(['--config-file', config])
        client = rpcapi.ConductorAPI(conf, 'bench')
        client_counts = collections.Counter()
        rpc.add_observer(lambda sender, kind, topic_, server, method:
                         client_counts.update([method]))
        ctx = mc_context.get_admin_context()
        guest = real.uuid if real else SIMULATED_GUEST
        db = pymysql.connect(database=db_name, autocommit=True, **MARIADB_ADMIN)

        def migrate_once():
            deadline = time.monotonic() + 60
            while True:     # the guest is known once the agent's report landed
                try:
                    sent = time.time()
                    migration = client.live_migrate(ctx, guest)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            # NOTE: the end is watched in the database, not through the conductor's
            # API: a caller polling every 20 ms would load the very process measured.
            cur = db.cursor()
            while True:
                time.sleep(0.02)
                cur.execute('SELECT status, UNIX_TIMESTAMP(finished_at) FROM migrations'
                            ' WHERE uuid=%s', (migration.uuid,))
                status, finished = cur.fetchone()
                if status in ('completed', 'failed', 'cancelled', 'error'):
                    break
            if status != 'completed':
                raise SystemExit('bench: migration %s ended %s (logs in %s)'
                                 % (migration.uuid, status, work))
            return sent, float(finished)

        def read_events():
            with open(events_path) as lines:
                return [json.loads(line) for line in lines]

        runs = []
        rss_before = None
        total = max(args.migrations, args.soak)
        for i in range(total):
            if i and args.pause:
                time.sleep(args.pause)
            if i == 5:
                rss_before = _rss_kib(conductor.pid)   # after warm-up
                cpu_before = (_cpu_ms(conductor.pid), _cpu_ms(agents.pid))
            sent, finished = migrate_once()
            event = read_events()[-1]
            runs.append({'sent': sent,
                         'request_to_call_ms': (event['entered'] - sent) * 1000,
                         'job_end_to_completed_ms': (finished - event['ended']) * 1000,
                         'job_ms': (event['ended'] - event['entered']) * 1000})
        rss_after = _rss_kib(conductor.pid)
        cpu_after = (_cpu_ms(conductor.pid), _cpu_ms(agents.pid))
        caller_calls = dict(client_counts)
        db.close()
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30) if proc.stdin else proc.terminate()
            except subprocess.TimeoutExpired:
                proc.kill()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin.cursor().execute('DROP DATABASE IF EXISTS %s' % db_name)

    lab = None
    if real:
        beat = real.still_beats()
        lab = dict(real.describe(), heartbeat_seq_at_start=real.first_seq,
                   heartbeat_seq_at_end=beat)
        real.remove()
        if beat is None:
            raise SystemExit('bench: guest %s stopped beating after the migrations '
                             '(console: %s)' % (real.name,
                                                real.lab.console_path(real.name)))
    with open(events_path + '.counts') as counts_file:
        agent_counts = json.load(counts_file)
    first = runs[:args.migrations]
    median = {key: statistics.median(r[key] for r in first) for key in FIGURES}
    n = len(runs)
    agent_msgs = {k: v / n for k, v in agent_counts.items()}
    result = {
        'mode': mode,
        'date': time.strftime('%Y-%m-%dT%H:%M:%S'),
        'migrations_timed': len(first), 'migrations_total': n,
        'median_ms': median,
        'p90_ms': {key: _p90([r[key] for r in first]) for key in median},
        'per_migration_ms': {key: [round(r[key], 1) for r in first]
                             for key in FIGURES + ('job_ms',)},
        'target_ms': TARGET_MS,
        'ratio_to_target': {key: value / TARGET_MS for key, value in median.items()},
        'conductor_rss_kib': {'after_warmup': rss_before, 'after_all': rss_after,
                              'growth_kib': rss_after - rss_before},
        # CPU per migration after the warm-up (5 migrations), whole migrations.
        'cpu_ms_per_migration': {
            name: round((after - before) / (n - 5), 1)
            for name, before, after in zip(('conductor', 'agents'), cpu_before,
                                           cpu_after)},
        'messages_per_migration': {
            'caller_to_conductor_calls': {k: round(v / n, 2)
                                          for k, v in caller_calls.items()},
            'between_conductor_and_agents': {k: round(v, 2)
                                             for k, v in agent_msgs.items()}},
        'nova_happy_path': NOVA,
        'load_average': os.getloadavg(),
        'code': _code_version(),
        'label': args.label,
        'pause_s': args.pause,
    }
    if lab:
        result['lab'] = lab
        result['disk_pool'] = args.disk_pool
    if args.breakdown:
        result['breakdown'] = _breakdown(events_path + '.steps', runs, len(first))
    previous = _last_saved(mode, args.disk_pool)
    _report(result, previous)
    os.makedirs(RESULTS, exist_ok=True)
    tag = '-'.join([mode] + [t for t in (args.disk_pool, args.label) if t])
    out = os.path.join(RESULTS, 'control_plane-%s-%s.json'
                       % (tag, time.strftime('%Y%m%d-%H%M%S')))
    with open(out, 'w') as saved:
        json.dump(result, saved, indent=1, sort_keys=True)
    print('saved %s' % os.path.relpath(out, TOP))


def _code_version():
    """The commit measured, and the files of the services that differ from it."""
    def git(*argv):
        try:
            return subprocess.run(['git', '-C', TOP] + list(argv), capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    changed = git('status', '--porcelain', '--', 'compute_agent', 'migration_conductor',
                  'db')
    return {'commit': git('rev-parse', '--short', 'HEAD'),
            'changed_files': [line[3:] for line in (changed or '').splitlines()]}


def _p90(values):
    return sorted(values)[max(int(len(values) * 0.9) - 1, 0)]


# --- the breakdown -----------------------------------------------------------------------

def _breakdown(steps_path, runs, timed):
    """Per-step medians over the first ``timed`` migrations.

    Each step line is given to the migration whose request preceded its start. Returns
    ``{'steps': {path: {'median_ms', 'p90_ms', 'calls'}}, 'gaps': {...}}``: the time of
    each step (summed over its calls in one migration; ``calls`` per migration) and the
    gaps of the timeline (request -> check_source, between two agent calls: the
    conductor's work and the RPC round trips; live_migrate entry -> migrateToURI3).
    """
    with open(steps_path) as lines:
        steps = [json.loads(line) for line in lines]
    bounds = [r['sent'] for r in runs] + [float('inf')]
    per_migration = [collections.defaultdict(list) for _ in runs]
    for step in steps:
        for i in range(len(runs)):
            if bounds[i] <= step['start'] < bounds[i + 1]:
                per_migration[i][' > '.join(step['path'])].append(step)
                break
    paths = sorted({p for m in per_migration[:timed] for p in m})
    table = {}
    for path in paths:
        totals = [sum(s['end'] - s['start'] for s in m.get(path, ())) * 1000
                  for m in per_migration[:timed]]
        table[path] = {'median_ms': round(statistics.median(totals), 2),
                       'p90_ms': round(_p90(totals), 2),
                       'calls': round(statistics.mean(len(m.get(path, ()))
                                                      for m in per_migration[:timed]), 2)}
    gaps = collections.defaultdict(list)
    for run, m in zip(runs[:timed], per_migration[:timed]):
        marks = []
        for name in AGENT_STEPS:
            found = m.get(name)
            if not found:
                break
            marks.append((name, found[0]['start'], found[0]['end']))
        else:
            previous_name, previous_end = 'request', run['sent']
            for name, start, end in marks:
                gaps['%s -> %s (conductor, RPC)' % (previous_name, name)].append(
                    (start - previous_end) * 1000)
                previous_name, previous_end = name, end
            live = m.get('live_migrate')
            if live:
                gaps['start_migration entered -> live_migrate entered'].append(
                    (live[0]['start'] - marks[-1][1]) * 1000)
                call = [s for path, found in m.items() for s in found
                        if path.startswith('live_migrate > ')
                        and path.endswith(' > libvirt migrateToURI3')]
                if call:
                    gaps['live_migrate entered -> migrateToURI3'].append(
                        (call[0]['start'] - live[0]['start']) * 1000)
    return {'steps': table,
            'gaps': {k: {'median_ms': round(statistics.median(v), 2),
                         'p90_ms': round(_p90(v), 2)} for k, v in gaps.items()}}


def _print_breakdown(breakdown, other=None, titles=('this run', '')):
    """The breakdown table; with ``other``, both side by side."""
    def row(label, mine, theirs):
        cells = '%9s %9s %6s' % mine
        if other is not None:
            cells += '   %9s %9s %6s' % theirs
        print('  %-74s %s' % (label[:74], cells))

    def fmt(entry, calls=True):
        if entry is None:
            return ('-', '-', '-')
        return ('%.1f' % entry['median_ms'], '%.1f' % entry['p90_ms'],
                '%.1f' % entry['calls'] if calls and 'calls' in entry else '')

    head = ('median', 'p90', 'calls')
    print('  %-74s %9s %9s %6s' % ((titles[0],) + head) if other is None else
          '  %-74s %9s %9s %6s   %9s %9s %6s' % (('%s | %s' % titles,) + head + head))
    print('  gaps of the timeline (ms):')
    other_gaps = (other or {}).get('gaps', {})
    for name in sorted(set(breakdown['gaps']) | set(other_gaps), key=_gap_order):
        row('  ' + name, fmt(breakdown['gaps'].get(name), False),
            fmt(other_gaps.get(name), False))
    print('  agent steps (ms, summed per migration; calls per migration):')
    other_steps = (other or {}).get('steps', {})
    for path in _ordered_paths(set(breakdown['steps']) | set(other_steps)):
        depth = path.count(' > ')
        row('  ' + '  ' * depth + path.split(' > ')[-1], fmt(breakdown['steps'].get(path)),
            fmt(other_steps.get(path)))


def _gap_order(name):
    order = ['request'] + list(AGENT_STEPS)
    first = name.split(' ')[0]
    return (order.index(first) if first in order else len(order), name)


def _ordered_paths(paths):
    """Parents before children, top-level steps in the flow's order."""
    order = list(AGENT_STEPS) + ['live_migrate']

    def key(path):
        parts = path.split(' > ')
        top = order.index(parts[0]) if parts[0] in order else len(order)
        return (top, parts)
    return sorted(paths, key=key)


def _combine(results):
    """One breakdown from several runs: per entry, the median of the runs' medians and
    p90s, the range of their medians, and the mean of their calls."""
    combined = {}
    for part in ('steps', 'gaps'):
        entries = {}
        for result in results:
            for name, entry in result['breakdown'][part].items():
                entries.setdefault(name, []).append(entry)
        combined[part] = {}
        for name, found in entries.items():
            medians = [e['median_ms'] for e in found]
            entry = {'median_ms': statistics.median(medians),
                     'p90_ms': statistics.median(e['p90_ms'] for e in found),
                     'range_ms': (min(medians), max(medians)), 'runs': len(found)}
            if 'calls' in found[0]:
                entry['calls'] = statistics.mean(e['calls'] for e in found)
            combined[part][name] = entry
    return combined


def _compare_breakdowns(group_a, group_b):
    """Print two breakdowns side by side; each group is one saved result, or several
    separated by commas (then the median of their medians, see :func:`_combine`)."""
    groups = []
    for group in (group_a, group_b):
        results = []
        for path in group.split(','):
            with open(path) as saved:
                result = json.load(saved)
            if 'breakdown' not in result:
                raise SystemExit('bench: %s has no breakdown (run with --breakdown)'
                                 % path)
            results.append(result)
        groups.append(results)
    titles = tuple('%s x%d' % (results[0].get('mode', SIMULATED), len(results))
                   for results in groups)
    print('median of the runs\' medians (p90: median of their p90s), ms')
    _print_breakdown(_combine(groups[0]), _combine(groups[1]), titles=titles)


# --- the report --------------------------------------------------------------------------

def _last_saved(mode, disk_pool=None):
    """The last saved result of ``mode`` with a guest of the same disk pool (files
    without a mode are simulated runs), or None."""
    found = []
    for path in glob.glob(os.path.join(RESULTS, 'control_plane-*.json')):
        try:
            with open(path) as saved:
                result = json.load(saved)
        except (OSError, ValueError):
            continue
        if (result.get('mode', SIMULATED) == mode
                and result.get('disk_pool') == disk_pool):
            found.append((result.get('date', ''), path, result))
    if not found:
        return None
    date, path, result = max(found)
    result['_path'] = os.path.relpath(path, TOP)
    return result


def _messages(result):
    msgs = result['messages_per_migration']
    return (sum(msgs['caller_to_conductor_calls'].values())
            + sum(msgs['between_conductor_and_agents'].values()))


def _report(result, previous):
    print('control-plane overhead, %d migrations timed (%d in all), loopback RabbitMQ '
          'and MariaDB, %s agents' % (result['migrations_timed'],
                                      result['migrations_total'],
                                      'real lab' if result['mode'] == REAL
                                      else 'simulated'))
    if result.get('lab'):
        lab = result['lab']
        print('lab %s: hosts %s, guest %s (%s), heartbeat %s -> %s' % (
            lab['lab_state_dir'], ', '.join(lab['hosts']), lab['guest'], lab['accelerator'],
            lab['heartbeat_seq_at_start'], lab['heartbeat_seq_at_end']))
    print('%-34s %10s %10s %10s %8s' % ('', 'median ms', 'p90 ms', 'target ms', 'ratio'))
    for key, label in (('request_to_call_ms', 'request -> libvirt migrate call'),
                       ('job_end_to_completed_ms', 'job end -> completed')):
        print('%-34s %10.1f %10.1f %10.0f %8.2f' % (
            label, result['median_ms'][key], result['p90_ms'][key], TARGET_MS,
            result['ratio_to_target'][key]))
    rss = result['conductor_rss_kib']
    print('conductor RSS: %d KiB after warm-up, %d KiB after %d migrations '
          '(growth %+d KiB, %.2f%%)' % (rss['after_warmup'], rss['after_all'],
                                        result['migrations_total'], rss['growth_kib'],
                                        100.0 * rss['growth_kib'] / rss['after_warmup']))
    print('CPU per migration (after warm-up): conductor %(conductor).1f ms, agents '
          '%(agents).1f ms' % result['cpu_ms_per_migration'])
    msgs = result['messages_per_migration']
    print('RPC messages per migration (counted at the agents):')
    for name, value in sorted(msgs['caller_to_conductor_calls'].items()):
        print('  caller call %-28s %6.2f' % (name, value))
    for name, value in sorted(msgs['between_conductor_and_agents'].items()):
        print('  %-40s %6.2f' % (name, value))
    print('  Nova happy path: %(calls)d round trips + %(casts)d casts, '
          '%(compute_to_compute)d compute->compute calls' % result['nova_happy_path'])
    what = result['mode'] + (', disk in %s' % result['disk_pool']
                             if result.get('disk_pool') else '')
    if previous is None:
        print('no earlier %s run saved to compare with' % what)
    else:
        print('against the last saved %s run (%s, %s): this / last'
              % (what, previous['_path'], previous['date']))
        rows = []
        for key, label in (('request_to_call_ms', 'request -> libvirt migrate call'),
                           ('job_end_to_completed_ms', 'job end -> completed')):
            for stat in ('median_ms', 'p90_ms'):
                rows.append(('%s (%s)' % (label, stat.split('_')[0]),
                             result[stat][key], previous[stat][key]))
        rows.append(('conductor RSS growth KiB', result['conductor_rss_kib']['growth_kib'],
                     previous['conductor_rss_kib']['growth_kib']))
        rows.append(('RPC messages per migration', _messages(result), _messages(previous)))
        print('%-42s %10s %10s %8s' % ('', 'this', 'last', 'ratio'))
        for label, mine, theirs in rows:
            print('%-42s %10.1f %10.1f %8s' % (label, mine, theirs,
                                               '%.2f' % (mine / theirs) if theirs else '-'))
    if result.get('breakdown'):
        print('breakdown:')
        _print_breakdown(result['breakdown'])


if __name__ == '__main__':
    main()
