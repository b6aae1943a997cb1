"""Running external commands for the lab, always with a timeout.

Each call blocks the calling thread until the command ends or its timeout expires; on timeout
the whole process group of the command is killed so nothing it forked survives. Output is
captured (or sent to a log file) and the failure is turned into a one-line LabError naming
what was being done.
"""

import logging
import os
import signal
import subprocess

from tools.lab import errors

LOG = logging.getLogger(__name__)

_ENV = dict(os.environ, LC_ALL='C', DEBIAN_FRONTEND='noninteractive')


def _tail(text, limit=300):
    text = ' '.join((text or '').split())
    return text[-limit:]


def run(argv, what, timeout, error=errors.LabError, cwd=None, check=True, log_path=None,
        stdin=subprocess.DEVNULL):
    """Run argv and return the CompletedProcess (stdout/stderr as text).

    :param what: short description used in logs and errors ("compile the guest /init").
    :param timeout: seconds before the command's process group is killed.
    :param error: LabError subclass raised on failure.
    :param log_path: when given, stdout and stderr are appended to that file instead of being
        captured, and the error message points to it.
    :raises error: the command failed (and check is true), could not start or timed out.
    """
    LOG.debug('%s: %s', what, ' '.join(argv))
    out = subprocess.PIPE
    log_file = None
    if log_path:
        log_file = open(log_path, 'ab')
        out = log_file
    where = ' (log: %s)' % log_path if log_path else ''
    try:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=out,
                                stderr=subprocess.STDOUT if log_path else subprocess.PIPE,
                                cwd=cwd, env=_ENV, start_new_session=True,
                                text=not log_path)
    except OSError as exc:
        if log_file:
            log_file.close()
        raise error('could not %s: cannot run %s: %s' % (what, argv[0], exc)) from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise errors.LabTimeout('could not %s: %s did not finish within %ds%s'
                                % (what, argv[0], timeout, where)) from None
    finally:
        if log_file:
            log_file.close()
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        detail = _tail(stderr or stdout) if not log_path else ''
        raise error('could not %s: %s exited with status %d%s%s'
                    % (what, argv[0], proc.returncode, ': ' + detail if detail else '', where))
    return result


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        LOG.warning('process %d did not exit after SIGKILL', proc.pid)
