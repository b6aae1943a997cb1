"""The lab's small JSON state file and the lock that serialises changes to the lab.

Concurrency: operations that change the lab (install, start, stop, guest-start, guest-stop)
hold an exclusive ``flock`` on ``<state dir>/lock`` for their whole duration, so two CLI runs
or two threads with their own :class:`tools.lab.Lab` never interleave. Reads (status, hosts,
heartbeats) take no lock: the state file is replaced atomically (write + rename), so a reader
sees the old or the new content, never half of it. The state is a cache of what the lab
started (host ports, pids); the truth is asked from the processes and from libvirt.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import time

from tools.lab import errors

LOG = logging.getLogger(__name__)

STATE_VERSION = 1
LOCK_TIMEOUT = 300  # seconds; a lab start or stop takes well under a minute


def empty_state():
    return {'version': STATE_VERSION, 'hosts': {}, 'guests': {}}


def load(path):
    """Return the state dict stored at path, or an empty state when there is none.

    :raises LabError: the file exists but is not a lab state file.
    """
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        return empty_state()
    except (OSError, ValueError) as exc:
        raise errors.LabError('cannot read lab state %s: %s (delete it after "stop" to start '
                              'afresh)' % (path, exc)) from exc
    if not isinstance(data, dict) or data.get('version') != STATE_VERSION:
        raise errors.LabError('lab state %s has an unknown format (version %r)'
                              % (path, data.get('version') if isinstance(data, dict) else None))
    data.setdefault('hosts', {})
    data.setdefault('guests', {})
    return data


def save(path, data):
    """Write data to path atomically (temporary file, fsync, rename)."""
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(lock_path, timeout=LOCK_TIMEOUT):
    """Hold the lab's exclusive lock; wait at most timeout seconds for it.

    :raises LabTimeout: another lab operation held the lock for too long.
    """
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        logged = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise errors.LabTimeout('another lab operation held %s for more than %ds'
                                        % (lock_path, timeout))
            if not logged:
                LOG.info('waiting for another lab operation to release %s', lock_path)
                logged = True
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
