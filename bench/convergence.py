"""Convergence on real lab guests: plain libvirt, ``nova-defaults`` and ``default``.

    .venv/bin/python bench/convergence.py [--runs 3] [--bandwidth-mib 32]
        [--memory-mib 512] [--touch-mib 128] [--rates idle,moderate,fast]
        [--modes libvirt,nova-defaults,default] [--nova-time-scale 0.02]
        [--libvirt-cap-s 90] [--label L]

A lab of two hosts (its own state dir and ports, started and stopped by the bench),
one TCG guest of a fixed size per run (``--memory-mib``, ``--touch-mib`` touched),
dirtying at one of three rates: ``idle`` (0 pages/s), ``moderate`` (2,000 pages/s,
about a quarter of the link) and ``fast`` (100,000 pages/s, faster than the link),
moved from the first host to the second over a fixed bandwidth limit, side by side:

- ``libvirt``: plain ``migrateToURI3`` with libvirt's and QEMU's defaults (peer to
  peer, live, the bandwidth limit, nothing else), aborted by the bench after
  ``--libvirt-cap-s`` seconds if it has not ended (reported as not completed);
- ``nova-defaults``: the conductor (all-in-one, in this process, SQLite) with the
  profile reproducing Nova's defaults, its waits shortened by ``--nova-time-scale``
  (0.02: the 800 s per GiB budget of a guest counted as 2 GiB is 32 s, downtime steps
  every 3 s instead of 150 s);
- ``default``: the conductor with the project's default profile.

Per run: completed or not, total time (request to end), downtime from libvirt, the
outage the guest saw (the largest gap between two heartbeats, the guest beating 20
times a second, each line timestamped on the host as it arrives), bytes sent, whether
the guest arrived intact (it keeps beating on the destination for 6 s and its memory
checks stay ``ok``), the forecast against the actual duration, and the ratio of the
total time to the bound (guest memory / bandwidth).

Prints a table (medians per case, and every run), saves it with every figure as
``bench/results/convergence-<date>.json`` and ``.md``, and a chart as ``.png``.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

from oslo_config import cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import warnings  # noqa: E402

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from migration_conductor import all_in_one  # noqa: E402
from migration_conductor import cmd  # noqa: E402
from migration_conductor import context as mc_context  # noqa: E402
from migration_conductor import rpc  # noqa: E402
from migration_conductor import rpcapi  # noqa: E402
from tools import lab as lab_api  # noqa: E402
from tools.lab import consoles  # noqa: E402

MIB = 1024 * 1024
RATES = {'idle': 0, 'moderate': 2000, 'fast': 100000}
MODES = ('libvirt', 'nova-defaults', 'default')
BEAT_HZ = 20
INTACT_WATCH_S = 6
RESULTS = os.path.join(ROOT, 'bench', 'results')
LAB = dict(state_dir='/var/tmp/mc-bench-convergence-lab', base_port=17000,
           host_prefix='cvg-')


def _conf(work, agents, args):
    """The all-in-one configuration of the conductor modes."""
    profiles = os.path.join(work, 'migration-profiles.yaml')
    with open(profiles, 'w') as stream:
        # nova-defaults with its waits shortened (a built-in name cannot be redefined).
        stream.write('nova-defaults-scaled:\n  description: nova-defaults, waits x %s\n'
                     '  strategy: precopy\n  max_downtime_ms: 500\n  downtime_steps: 10\n'
                     '  downtime_step_delay_s_per_gib: 75\n  completion_s_per_gib: 800\n'
                     '  min_guest_gib: 2\n  max_precopy_passes: 0\n  on_timeout: abort\n'
                     '  force_complete_mode: pause\n  postcopy_allowed: false\n'
                     '  auto_converge_allowed: false\n  time_scale: %s\n'
                     % (args.nova_time_scale, args.nova_time_scale))
    conf = cfg.ConfigOpts()
    cmd.register_all(conf)
    conf([], project='migration-conductor-bench')
    conf.set_override('state_path', work)
    conf.set_override('host', 'bench-conductor')
    conf.set_override('log_file', os.path.join(work, 'conductor.log'))
    conf.set_override('agents', agents, group='all_in_one')
    conf.set_override('trust_shared_pools', True, group='libvirt')
    conf.set_override('bandwidth_mib', args.bandwidth_mib, group='conductor')
    conf.set_override('monitor_interval', 0.5, group='conductor')
    conf.set_override('profiles_file', profiles, group='migration_profiles')
    conf.set_override('connection', 'sqlite:///%s' % os.path.join(work, 'bench.sqlite'),
                      group='database')
    return conf


class Conductor:
    """The project's conductor with one agent per lab host, in this process."""

    def __init__(self, work, hosts, args):
        agents = ['%s=%s' % (host.name, host.uri) for host in hosts]
        self.conf = _conf(work, agents, args)
        from db import migration as db_migration
        db_migration.upgrade(self.conf.database.connection)
        self.service = all_in_one.AllInOne(self.conf)
        self.service.start()
        self.api = rpcapi.ConductorAPI(self.conf, 'bench')
        self.context = mc_context.get_admin_context()

    def known(self, uuid, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for agent in self.service.agents:
                self.api.register_host(self.context, agent.manager.build_host_report())
            if any(i.uuid == uuid for i in self.api.list_instances(self.context)):
                return
            time.sleep(0.5)
        raise RuntimeError('the conductor never heard of guest %s' % uuid)

    def migrate(self, uuid, dest, profile, timeout=600):
        started = time.monotonic()
        migration = self.api.live_migrate(self.context, uuid, host=dest, profile=profile)
        while True:
            migration = self.api.get_migration(self.context, migration.uuid)
            if migration.status in ('completed', 'failed', 'cancelled', 'error'):
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError('migration %s still %s' % (migration.uuid,
                                                              migration.status))
            time.sleep(0.2)
        forecast = migration.forecast
        return {
            'completed': migration.status == 'completed', 'status': migration.status,
            'error': None if migration.error is None else str(migration.error),
            'total_s': time.monotonic() - started,
            'downtime_ms': migration.downtime_ms,
            'bytes': migration.memory_processed,
            'memory_total': migration.memory_total,
            'strategy': migration.strategy,
            'forecast_s': None if forecast is None else forecast.duration_s,
            'forecast_job_s': None if forecast is None else forecast.actual_duration_s,
            'dirty_rate_measured': None if forecast is None else forecast.dirty_rate,
            'events': [(e.kind, e.job_elapsed_s) for e in migration.events or []],
            # Every figure of the forecast, inputs included (what the unit tests of
            # the forecast replay: tests/unit/data/lab_forecasts.json).
            'forecast': None if forecast is None else {
                key: getattr(forecast, key) for key in forecast.fields
                if forecast.obj_attr_is_set(key)},
        }

    def stop(self):
        self.service.stop()
        rpc.cleanup()


def plain_libvirt(the_lab, source, dest, uuid, args):
    """migrateToURI3 with libvirt's defaults and the bandwidth limit only."""
    import libvirt
    src = libvirt.open(source.uri)
    dst = libvirt.open(dest.uri)
    try:
        dom = src.lookupByUUIDString(uuid)
        params = dict(lab_api.migration_params())
        params = {libvirt.VIR_MIGRATE_PARAM_URI: params['migrate_uri'],
                  libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: params['listen_address'],
                  libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: args.bandwidth_mib}
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        import threading
        outcome = {}

        def run():
            job_conn = libvirt.open(source.uri)
            try:
                job_conn.lookupByUUIDString(uuid).migrateToURI3(dest.uri, params, flags)
                outcome['ok'] = True
            except libvirt.libvirtError as exc:
                outcome['error'] = str(exc)
            finally:
                job_conn.close()

        started = time.monotonic()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        last = {}
        while thread.is_alive() and time.monotonic() - started < args.libvirt_cap_s:
            try:
                last = dom.jobStats(0)
            except libvirt.libvirtError:
                pass
            thread.join(0.5)
        if thread.is_alive():
            try:
                dom.abortJob()
            except libvirt.libvirtError:
                pass
            thread.join(30)
        total = time.monotonic() - started
        result = {'completed': bool(outcome.get('ok')), 'status': 'completed' if
                  outcome.get('ok') else 'not completed within %d s' % args.libvirt_cap_s
                  if 'error' in outcome and 'abort' in outcome['error']
                  else outcome.get('error', 'unknown'),
                  'error': outcome.get('error'), 'total_s': total,
                  'downtime_ms': None, 'bytes': last.get('memory_processed'),
                  'memory_total': last.get('memory_total'), 'strategy': 'precopy',
                  'forecast_s': None, 'forecast_job_s': None,
                  'dirty_rate_measured': None, 'events': [], 'forecast': None}
        if outcome.get('ok'):
            stats = dst.lookupByUUIDString(uuid).jobStats(
                libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
                | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED)
            result.update(downtime_ms=stats.get('downtime'),
                          bytes=stats.get('memory_processed'),
                          memory_total=stats.get('memory_total'))
        return result
    finally:
        src.close()
        dst.close()


def one_run(the_lab, conductor, source, dest, rate, mode, index, args):
    name = 'cvg-%s-%s-%d' % (rate, mode.replace('-', ''), index)
    guest = the_lab.start_guest(name, source.name, memory_mib=args.memory_mib,
                                touch_mib=args.touch_mib, dirty_pps=RATES[rate],
                                beat_hz=BEAT_HZ)
    path = the_lab.console_path(name)
    try:
        with consoles.HeartbeatWatch(path) as watch:
            time.sleep(2)     # a few beats and a first memory check before the move
            if mode == 'libvirt':
                result = plain_libvirt(the_lab, source, dest, guest.uuid, args)
            else:
                conductor.known(guest.uuid)
                profile = 'nova-defaults-scaled' if mode == 'nova-defaults' else mode
                result = conductor.migrate(guest.uuid, dest.name, profile)
            moved_at = time.monotonic()
            time.sleep(INTACT_WATCH_S)
            where = the_lab.guest(name)
            expected = dest.name if result['completed'] else source.name
            beating = not watch.stopped_beating(after_s=2.0)
            verdict, corrupt = consoles.integrity(path)
            gap = watch.largest_gap()
        result.update(
            rate=rate, mode=mode, run=index, guest=name, bandwidth_mib=args.bandwidth_mib,
            memory_mib=args.memory_mib, touch_mib=args.touch_mib,
            dirty_pps=RATES[rate], runs_on=where.host if where else None,
            guest_outage_ms=None if gap is None else round(gap[0] * 1000),
            intact=bool(where and where.host == expected and where.state == 'running'
                        and beating and verdict == 'ok' and not corrupt),
            memory_check=verdict, beating=beating,
            bound_s=args.memory_mib * MIB / (args.bandwidth_mib * MIB),
            watched_s=round(time.monotonic() - moved_at, 1))
        result['ratio_to_bound'] = round(result['total_s'] / result['bound_s'], 2)
        if result['forecast_s'] and result['forecast_job_s']:
            result['forecast_error'] = round(
                (result['forecast_s'] - result['forecast_job_s'])
                / result['forecast_job_s'], 3)
        else:
            result['forecast_error'] = None
        return result
    finally:
        the_lab.stop_guest(name)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows):
    cases = []
    for rate in RATES:
        for mode in MODES:
            runs = [r for r in rows if r['rate'] == rate and r['mode'] == mode]
            if not runs:
                continue
            cases.append({
                'rate': rate, 'mode': mode, 'runs': len(runs),
                'completed': sum(r['completed'] for r in runs),
                'intact': sum(r['intact'] for r in runs),
                'moved_intact': sum(r['intact'] and r['completed'] for r in runs),
                'total_s': _median([r['total_s'] for r in runs]),
                'ratio_to_bound': _median([r['ratio_to_bound'] for r in runs]),
                'downtime_ms': _median([r['downtime_ms'] for r in runs]),
                'guest_outage_ms': _median([r['guest_outage_ms'] for r in runs]),
                'bytes_mib': _median([(r['bytes'] or 0) / MIB for r in runs]),
                'forecast_error': _median([abs(r['forecast_error']) for r in runs
                                           if r['forecast_error'] is not None]),
                'strategy': ','.join(sorted({r['strategy'] or '-' for r in runs})),
            })
    return cases


def _fmt(value, spec='%.1f'):
    return '-' if value is None else spec % value


def table(cases):
    lines = ['| dirty rate | mode | completed | guest alive | total s (median) | '
             'x bound | downtime ms | guest outage ms | MiB sent | |forecast error| | '
             'strategy |', '|' + '---|' * 11]
    for c in cases:
        lines.append('| %s | %s | %d/%d | %d/%d | %s | %s | %s | %s | %s | %s | %s |' % (
            c['rate'], c['mode'], c['completed'], c['runs'], c['intact'], c['runs'],
            _fmt(c['total_s']), _fmt(c['ratio_to_bound'], '%.2f'),
            _fmt(c['downtime_ms'], '%.0f'), _fmt(c['guest_outage_ms'], '%.0f'),
            _fmt(c['bytes_mib'], '%.0f'),
            _fmt(None if c['forecast_error'] is None else c['forecast_error'] * 100,
                 '%.0f %%'), c['strategy']))
    return '\n'.join(lines)


def chart(cases, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    width = 0.27
    for offset, mode in enumerate(MODES):
        xs, ratios, outages, labels = [], [], [], []
        for i, rate in enumerate(RATES):
            case = next((c for c in cases if c['rate'] == rate and c['mode'] == mode),
                        None)
            if case is None:
                continue
            xs.append(i + (offset - 1) * width)
            ratios.append(case['ratio_to_bound'] or 0)
            outages.append(case['guest_outage_ms'] or 0)
            labels.append('%d/%d' % (case['moved_intact'], case['runs']))
        bars = left.bar(xs, ratios, width, label=mode)
        for bar, label in zip(bars, labels):
            left.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha='center', va='bottom', fontsize=7)
        right.bar(xs, outages, width, label=mode)
    for axis, title in ((left, 'total time / bound (memory / bandwidth); labels: runs '
                               'moved with the guest intact'),
                        (right, 'outage seen by the guest (largest heartbeat gap), ms')):
        axis.set_xticks(range(len(RATES)))
        axis.set_xticklabels(['%s\n(%d pages/s)' % (r, p) for r, p in RATES.items()])
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=8)
    left.axhline(1.2, color='grey', linestyle='--', linewidth=0.8)
    right.set_yscale('symlog', linthresh=100)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--bandwidth-mib', type=int, default=32)
    parser.add_argument('--memory-mib', type=int, default=512)
    parser.add_argument('--touch-mib', type=int, default=128)
    parser.add_argument('--rates', default=','.join(RATES))
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--nova-time-scale', type=float, default=0.02)
    parser.add_argument('--libvirt-cap-s', type=float, default=90)
    parser.add_argument('--label', default='')
    parser.add_argument('--replot', metavar='JSON',
                        help='only redraw the table and chart of a saved run')
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as stream:
            cases = summarize(json.load(stream)['runs'])
        print(table(cases))
        chart(cases, args.replot[:-len('.json')] + '.png')
        return
    rates = args.rates.split(',')
    modes = args.modes.split(',')
    the_lab = lab_api.Lab(**LAB)
    the_lab.stop()
    the_lab.install()
    the_lab.start(n_hosts=2)
    work = tempfile.mkdtemp(prefix='mc-bench-convergence-')
    rows = []
    conductor = None
    try:
        source, dest = the_lab.hosts()[:2]
        if set(modes) - {'libvirt'}:
            conductor = Conductor(work, (source, dest), args)
        for index in range(1, args.runs + 1):
            for rate in rates:
                for mode in modes:
                    row = one_run(the_lab, conductor, source, dest, rate, mode, index,
                                  args)
                    rows.append(row)
                    print('%-9s %-14s run %d: %-9s intact %-5s total %6.1f s  downtime '
                          '%s ms  guest outage %s ms  %s' % (
                              rate, mode, index, 'completed' if row['completed'] else
                              'NOT', row['intact'], row['total_s'], row['downtime_ms'],
                              row['guest_outage_ms'], row['strategy']), flush=True)
    finally:
        if conductor is not None:
            conductor.stop()
        the_lab.stop()
    cases = summarize(rows)
    text = table(cases)
    print(text)
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    base = os.path.join(RESULTS, 'convergence-%s%s' % (
        args.label + '-' if args.label else '', stamp))
    with open(base + '.json', 'w') as stream:
        json.dump({'args': vars(args), 'cases': cases, 'runs': rows}, stream, indent=1,
                  default=str)
    with open(base + '.md', 'w') as stream:
        stream.write(text + '\n')
    chart(cases, base + '.png')
    print('saved %s.{json,md,png}' % base)


if __name__ == '__main__':
    main()
