"""Finding, signalling and awaiting the processes of a lab host, through /proc.

A process belongs to lab host X when the directory it sees at ``/run`` is X's private run
dir (same device and inode, looked up through ``/proc/<pid>/root/run``). That identifies
libvirtd and every QEMU it started, even after libvirtd died, and never matches the machine's
own libvirtd or another lab's hosts. Zombies count as gone: PID 1 on some machines reaps them
late, and a zombie holds no namespace and no mount.

Concurrency: pure functions over /proc; processes may exit between two reads, so every read
tolerates a vanished pid.
"""

import logging
import os
import signal
import time

from tools.lab import errors

LOG = logging.getLogger(__name__)


def _pids():
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            yield int(entry)


def alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8', errors='replace') as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the last ')' (the command name may contain spaces or ')').
    state = stat.rsplit(')', 1)[-1].split()[0]
    return state not in ('Z', 'X')


def comm(pid):
    try:
        with open('/proc/%d/comm' % pid, encoding='utf-8', errors='replace') as f:
            return f.read().strip()
    except OSError:
        return None


def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
    except OSError:
        return ''


def _dir_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def host_pids(run_dir):
    """Pids of live processes whose /run is run_dir (the processes of one lab host)."""
    try:
        wanted = _dir_id(run_dir)
    except FileNotFoundError:
        return []
    found = []
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        try:
            if _dir_id('/proc/%d/root/run' % pid) == wanted and alive(pid):
                found.append(pid)
        except OSError:
            continue  # gone, a kernel thread, or no /run in its root
    return found


def pids_mentioning(text):
    """Pids of live processes whose command line contains text (e.g. the state dir)."""
    return [pid for pid in _pids()
            if pid != os.getpid() and text in cmdline(pid) and alive(pid)]


def mounts_mentioning(path):
    """Mount lines of any live process (and of this one) that come from or sit under path.

    Returns a list of "pid: mountinfo line" strings; empty when the lab left no mount behind.
    """
    found = []
    for pid in ['self'] + list(_pids()):
        try:
            with open('/proc/%s/mountinfo' % pid, encoding='utf-8', errors='replace') as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 5:
                continue
            root, mount_point = fields[3], fields[4]
            if any(p == path or p.startswith(path + '/') for p in (root, mount_point)):
                found.append('%s: %s' % (pid, line))
    return found


def terminate(pids, what, grace=10.0, kill_wait=10.0):
    """SIGTERM pids, SIGKILL those still alive after grace seconds, wait for all to exit.

    :returns: the pids that were signalled.

    :raises TeardownError: a process survived SIGKILL for kill_wait seconds.
    """
    pids = [pid for pid in pids if alive(pid)]
    if not pids:
        return []
    LOG.info('stopping %s: pids %s', what, ' '.join(map(str, pids)))
    _signal_all(pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    if left:
        LOG.warning('%s: pids %s ignored SIGTERM for %.0fs, sending SIGKILL', what,
                    ' '.join(map(str, left)), grace)
        _signal_all(left, signal.SIGKILL)
        left = wait_gone(left, kill_wait)
    if left:
        raise errors.TeardownError('%s: pids %s still alive after SIGKILL'
                                   % (what, ' '.join(map(str, left))))
    return pids


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids, timeout):
    """Wait until no pid in pids is alive; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)



def wait_reaped(pids, timeout):
    """Wait until the pids (already dead) have left the process table; return those left.

    NOTE: daemons are children of PID 1, and PID 1 of some machines reaps its zombies only
    every few seconds; waiting here means that after "lab stop" not even a zombie is listed.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if os.path.exists('/proc/%d' % pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
