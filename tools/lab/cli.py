"""``python -m tools.lab``: the command line of the lab (see :mod:`tools.lab`).

Commands::

    install                          install what is missing (idempotent)
    start [--hosts N]                start hosts <prefix>1..N (default 2)
    status [--json]                  hosts and guests, with accelerator and last heartbeat
    guest-start NAME --host H [--memory-mib M] [--touch-mib T] [--dirty-pps P]
                [--disk-pool mc-shared|mc-local] [--beat-hz N] [--frozen-mib F]
                [--profile NAME]
    guest-stop NAME                  destroy and undefine NAME wherever it runs, delete its disk
    guest-console NAME [--lines N]   last heartbeat lines of NAME (--raw: any console line)
    stop                             tear everything down (harmless when nothing runs)

Every failure prints one line ``lab: error: ...`` (what, which host, which log) and exits
with status 2. Logs go to stderr; results go to stdout. One command runs at a time per
state dir (the lab's lock serialises them).
"""

import argparse
import json
import logging
import sys

from tools import lab as lab_api
from tools.lab import guests as lab_guests


def _parser():
    parser = argparse.ArgumentParser(prog='python -m tools.lab',
                                     description='Real libvirt hosts on this machine, for '
                                                 'migration-conductor tests.')
    parser.add_argument('--state-dir', help='state dir (default $MCLAB_STATE_DIR or '
                                            '/var/lib/mclab)')
    parser.add_argument('--base-port', type=int,
                        help='host i listens on BASE_PORT+i (default $MCLAB_BASE_PORT or 16600)')
    parser.add_argument('--host-prefix',
                        help='host names are PREFIX1..N (default $MCLAB_HOST_PREFIX or lab-)')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logs')
    parser.add_argument('-q', '--quiet', action='store_true', help='warnings and errors only')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    sub.add_parser('install', help='install packages, kernel, guest /init and initramfs')
    start = sub.add_parser('start', help='start the lab hosts')
    start.add_argument('--hosts', type=int, default=2, help='number of hosts (default 2)')
    status = sub.add_parser('status', help='show hosts and guests')
    status.add_argument('--json', action='store_true', help='print JSON')
    sub.add_parser('stop', help='stop every guest and host of the lab')

    gstart = sub.add_parser('guest-start', help='define and start a test guest')
    gstart.add_argument('name')
    gstart.add_argument('--host', required=True, help='host to start it on, e.g. lab-1')
    gstart.add_argument('--memory-mib', type=int, default=512)
    gstart.add_argument('--touch-mib', type=int, default=64)
    gstart.add_argument('--dirty-pps', type=int, default=1000)
    gstart.add_argument('--beat-hz', type=int, default=1,
                        help='heartbeat lines per second (1 to 50)')
    gstart.add_argument('--frozen-mib', type=int, default=16,
                        help='MiB the guest writes once and checks for ever (0: none)')
    gstart.add_argument('--profile', default=None,
                        help='migration profile named in the guest\'s libvirt metadata')
    gstart.add_argument('--disk-pool', choices=lab_guests.DISK_POOLS, default=None,
                        help='give the guest a disk in this pool: mc-shared (storage every '
                             'host sees) or mc-local (the host\'s own); default: no disk')
    gstart.add_argument('--json', action='store_true', help='print JSON')
    gstop = sub.add_parser('guest-stop', help='destroy and undefine a test guest')
    gstop.add_argument('name')
    gconsole = sub.add_parser('guest-console', help="print a guest's last heartbeat lines")
    gconsole.add_argument('name')
    gconsole.add_argument('--lines', type=int, default=10)
    gconsole.add_argument('--raw', action='store_true', help='any console line, not only '
                                                             'heartbeats')
    return parser


def _print_hosts(hosts):
    for host in hosts:
        print('%-10s %-40s %-8s pid=%s' % (host.name, host.uri,
                                           'running' if host.running else 'stopped',
                                           host.pid if host.pid else '-'))


def _print_guest(guest):
    print('%-12s uuid=%s host=%s state=%s accelerator=%s last_seq=%s'
          % (guest.name, guest.uuid, guest.host, guest.state, guest.accelerator or '-',
             guest.last_seq if guest.last_seq is not None else '-'))


def _status(lab, as_json):
    hosts = lab.hosts()
    guests = lab.guests() if any(h.running for h in hosts) else []
    if as_json:
        print(json.dumps({'state_dir': lab.state_dir,
                          'hosts': [h.to_dict() for h in hosts],
                          'guests': [g.to_dict() for g in guests]}, indent=2))
        return
    print('state dir: %s' % lab.state_dir)
    print('hosts:')
    if hosts:
        _print_hosts(hosts)
    else:
        print('  (none started)')
    print('guests:')
    if guests:
        for guest in guests:
            _print_guest(guest)
    else:
        print('  (none)')


def run(args):
    lab = lab_api.Lab(state_dir=args.state_dir, base_port=args.base_port,
                      host_prefix=args.host_prefix)
    if args.command == 'install':
        done = lab.install()
        print('installed: %s' % ', '.join(done) if done else 'nothing to install')
    elif args.command == 'start':
        _print_hosts(lab.start(n_hosts=args.hosts))
    elif args.command == 'status':
        _status(lab, args.json)
    elif args.command == 'stop':
        lab.stop()
        print('lab stopped')
    elif args.command == 'guest-start':
        guest = lab.start_guest(args.name, args.host, memory_mib=args.memory_mib,
                                touch_mib=args.touch_mib, dirty_pps=args.dirty_pps,
                                disk_pool=args.disk_pool, beat_hz=args.beat_hz,
                                frozen_mib=args.frozen_mib, profile=args.profile)
        if args.json:
            print(json.dumps(guest.to_dict(), indent=2))
        else:
            _print_guest(guest)
    elif args.command == 'guest-stop':
        removed = lab.stop_guest(args.name)
        print('guest %s removed from %s' % (args.name, ', '.join(removed))
              if removed else 'guest %s not found' % args.name)
    elif args.command == 'guest-console':
        if args.raw:
            from tools.lab import consoles

            lines = consoles.tail(lab.console_path(args.name), args.lines)
        else:
            lines = [line for _, line in lab.heartbeats(args.name)[-args.lines:]]
        if not lines:
            raise lab_api.GuestError('no heartbeat from guest %s yet (console: %s)'
                                     % (args.name, lab.console_path(args.name)))
        print('\n'.join(lines))
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format='lab: %(message)s', stream=sys.stderr)
    try:
        import libvirt

        # NOTE: only the CLI silences libvirt's own stderr printer (a process-wide setting):
        # errors still raise, and the lab's message says the same in one line.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    except ImportError:
        pass
    try:
        return run(args)
    except lab_api.LabError as exc:
        print('lab: error: %s' % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('lab: error: interrupted', file=sys.stderr)
        return 2
