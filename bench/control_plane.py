"""Control-plane overhead of one live migration, on loopback RabbitMQ and MariaDB.

    .venv/bin/python bench/control_plane.py [--migrations 20] [--soak 50]

Runs the conductor as its own process (``migration-conductor``, RabbitMQ transport,
MariaDB store, default options) and two agents with the simulated driver in a second
process, then live-migrates one guest back and forth. It measures, per migration:

* request -> libvirt call: from the caller sending ``live_migrate`` to the source
  agent's driver entering ``live_migrate`` (placement, checks, claim, prepare, start);
* job end -> completed: from the driver's ``live_migrate`` returning to the
  Migration's ``finished_at`` in the database (monitor, finish, cleanup, records);
* RPC messages per migration, by sender and receiver, next to Nova's happy path;
* the conductor's resident memory before and after ``--soak`` consecutive migrations.

All times come from one clock (one machine). The figures are printed next to their
targets (as ratios) and saved under bench/results/.
"""

import argparse
import collections
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)
BIN = os.path.dirname(sys.executable)
RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
MARIADB_ADMIN = dict(host='127.0.0.1', port=3306, user='root', password='')
TARGET_MS = 150.0
# Nova's happy path (DESIGN.md/issue 3): 5 round trips and 2 casts, 3 of its compute
# calls going compute to compute.
NOVA = {'calls': 5, 'casts': 2, 'compute_to_compute': 3}
HOSTS = ('bench-1', 'bench-2')


def _config(path, topic, db_url, extra=''):
    with open(path, 'w') as conf:
        conf.write('[DEFAULT]\ntransport_url = %s\nhost = bench-conductor\n'
                   '[conductor]\ntopic = %s_c\n[agent]\ntopic = %s_a\n'
                   'virt_driver = simulated\n[simulated]\ntime_scale = 0.01\n'
                   '[database]\nconnection = %s\n%s' % (RABBIT, topic, topic, db_url,
                                                       extra))


# --- the agents process ----------------------------------------------------------------

def run_agents(config, events_path):
    """Two simulated agents; every driver live_migrate call is timed to events_path."""
    from oslo_config import cfg

    from compute_agent import service
    from compute_agent.virt import simulated
    from migration_conductor import cmd
    from migration_conductor import rpc

    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf(['--config-file', config])
    events = open(events_path, 'a', buffering=1)
    original = simulated.SimulatedDriver.live_migrate

    def timed(self, instance_uuid, dest_uri, migrate_uri, options):
        entered = time.time()
        try:
            return original(self, instance_uuid, dest_uri, migrate_uri, options)
        finally:
            events.write(json.dumps({'entered': entered, 'ended': time.time()}) + '\n')

    simulated.SimulatedDriver.live_migrate = timed
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
    agents = [service.AgentService(conf, host, simulated.SimulatedDriver(host, conf))
              for host in HOSTS]
    for agent in agents:
        agent.start(register_timeout=60)
    agents[0].driver.add_domain('bench-guest', memory_mb=512, vcpus=1,
                                uuid='0b0b0b0b-0000-4000-8000-000000000001')
    agents[0].report_now()
    print('READY', flush=True)
    sys.stdin.read()           # until the benchmark closes our stdin
    with open(events_path + '.counts', 'w') as out:
        json.dump(counts, out)
    for agent in agents:
        agent.stop()


# --- the benchmark ---------------------------------------------------------------------

def _rss_kib(pid):
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return None


def _wait_ready(process, log_path, text, timeout=90):
    deadline = time.monotonic() + timeout
    while text not in open(log_path).read():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit('bench: %s did not start; see %s' % (process.args, log_path))
        time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--migrations', type=int, default=20)
    parser.add_argument('--soak', type=int, default=50)
    parser.add_argument('--agents-process', nargs=2, metavar=('CONFIG', 'EVENTS'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents_process:
        return run_agents(*args.agents_process)

    import pymysql
    from oslo_config import cfg

    from migration_conductor import cmd
    from migration_conductor import context as mc_context
    from migration_conductor import rpc
    from migration_conductor import rpcapi

    work = tempfile.mkdtemp(prefix='mc-bench-')
    topic = 'mc_bench_%s' % uuid.uuid4().hex[:8]
    db_name = topic
    admin = pymysql.connect(**MARIADB_ADMIN)
    admin.cursor().execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % db_name)
    db_url = 'mysql+pymysql://root@127.0.0.1:3306/%s?charset=utf8mb4' % db_name
    config = os.path.join(work, 'bench.conf')
    _config(config, topic, db_url)
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
                                   '--agents-process', config, events_path],
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
        guest = '0b0b0b0b-0000-4000-8000-000000000001'
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
                raise SystemExit('bench: migration %s ended %s' % (migration.uuid,
                                                                   status))
            return sent, float(finished)

        def read_events():
            with open(events_path) as lines:
                return [json.loads(line) for line in lines]

        runs = []
        rss_before = None
        total = max(args.migrations, args.soak)
        for i in range(total):
            if i == 5:
                rss_before = _rss_kib(conductor.pid)   # after warm-up
            sent, finished = migrate_once()
            event = read_events()[-1]
            runs.append({'request_to_call_ms': (event['entered'] - sent) * 1000,
                         'job_end_to_completed_ms': (finished - event['ended']) * 1000})
        rss_after = _rss_kib(conductor.pid)
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

    with open(events_path + '.counts') as counts_file:
        agent_counts = json.load(counts_file)
    first = runs[:args.migrations]
    median = {key: statistics.median(r[key] for r in first)
              for key in ('request_to_call_ms', 'job_end_to_completed_ms')}
    n = len(runs)
    agent_msgs = {k: v / n for k, v in agent_counts.items()}
    result = {
        'date': time.strftime('%Y-%m-%dT%H:%M:%S'),
        'migrations_timed': len(first), 'migrations_total': n,
        'median_ms': median,
        'p90_ms': {key: sorted(r[key] for r in first)[int(len(first) * 0.9) - 1]
                   for key in median},
        'target_ms': TARGET_MS,
        'ratio_to_target': {key: value / TARGET_MS for key, value in median.items()},
        'conductor_rss_kib': {'after_warmup': rss_before, 'after_all': rss_after,
                              'growth_kib': rss_after - rss_before},
        'messages_per_migration': {
            'caller_to_conductor_calls': {k: round(v / n, 2)
                                          for k, v in caller_calls.items()},
            'between_conductor_and_agents': {k: round(v, 2)
                                             for k, v in agent_msgs.items()}},
        'nova_happy_path': NOVA,
    }
    _report(result, args)
    out = os.path.join(TOP, 'bench', 'results',
                       'control_plane-%s.json' % time.strftime('%Y%m%d-%H%M%S'))
    with open(out, 'w') as saved:
        json.dump(result, saved, indent=1, sort_keys=True)
    print('saved %s' % os.path.relpath(out, TOP))


def _report(result, args):
    print('control-plane overhead, %d migrations timed (%d in all), loopback RabbitMQ '
          'and MariaDB, simulated agents' % (result['migrations_timed'],
                                            result['migrations_total']))
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
    msgs = result['messages_per_migration']
    print('RPC messages per migration (counted at the agents):')
    for name, value in sorted(msgs['caller_to_conductor_calls'].items()):
        print('  caller call %-28s %6.2f' % (name, value))
    for name, value in sorted(msgs['between_conductor_and_agents'].items()):
        print('  %-40s %6.2f' % (name, value))
    print('  Nova happy path: %(calls)d round trips + %(casts)d casts, '
          '%(compute_to_compute)d compute->compute calls' % result['nova_happy_path'])


if __name__ == '__main__':
    main()
