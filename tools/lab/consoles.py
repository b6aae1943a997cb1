"""Reading the guests' serial console files and their heartbeat lines.

Each guest's serial port is a file under ``<state dir>/shared/consoles/`` that QEMU opens in
append mode, so after a live migration the destination QEMU continues the same file and a
reader sees one unbroken heartbeat sequence. The guest /init prints ``beat_hz`` lines per
second, with the verdict of its memory checks, and one line per round of checks::

    mc-heartbeat seq=17 touched_mib=64 dirty_pps=1000 check=ok
    mc-check round=4 ok frozen_mib=16 touched_mib=64 crc=89abcdef
    mc-check round=5 CORRUPT region=dirty page=812 expected=... found=...

Concurrency: QEMU appends while we read; a reader may see a last line cut short, which the
parser ignores (a heartbeat line only counts once it ends with a newline).
:class:`HeartbeatWatch` reads in a thread of its own.
"""

import os
import re
import threading
import time

HEARTBEAT_RE = re.compile(r'\bmc-heartbeat seq=(\d+)\b')
READY_RE = re.compile(r'\bmc-init ready touched_mib=(\d+)\b')
CHECK_RE = re.compile(r'\bmc-check round=(\d+) (ok|CORRUPT)\b')
VERDICT_RE = re.compile(r'\bcheck=(none|ok|CORRUPT)\b')
# Seconds between two looks of a HeartbeatWatch at the console file.
WATCH_POLL = 0.005
_TAIL_BYTES = 16384


def _read(path, tail_bytes=None):
    try:
        with open(path, 'rb') as f:
            if tail_bytes is not None:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - tail_bytes))
            data = f.read()
    except FileNotFoundError:
        return []
    text = data.decode('utf-8', 'replace').replace('\r', '')
    lines = text.split('\n')
    return lines[:-1]  # the part after the last newline is incomplete (or empty)


def heartbeats(path, tail_bytes=None):
    """[(seq, line), ...] of the complete heartbeat lines of a console file, oldest first."""
    found = []
    for line in _read(path, tail_bytes):
        match = HEARTBEAT_RE.search(line)
        if match:
            found.append((int(match.group(1)), line[match.start():].strip()))
    return found


def touched_mib(path):
    """MiB the guest's /init really touched (its "mc-init ready" line), or None."""
    for line in reversed(_read(path, tail_bytes=65536)):
        match = READY_RE.search(line)
        if match:
            return int(match.group(1))
    return None


def last_seq(path):
    """Sequence number of the newest heartbeat in the console file, or None."""
    beats = heartbeats(path, tail_bytes=_TAIL_BYTES)
    return beats[-1][0] if beats else None


def tail(path, lines):
    """The last lines lines of the console file (any content), without line ends."""
    return _read(path, tail_bytes=max(_TAIL_BYTES, lines * 200))[-lines:]


def reset(path):
    """Empty the console file before a fresh boot of its guest (no QEMU writes to it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb'):
        pass


def integrity(path):
    """(latest verdict of the guest's memory checks, whether any check ever failed).

    The verdict is ``ok``, ``CORRUPT`` or None (no round completed yet) as the newest
    ``mc-check`` line says; a CORRUPT line anywhere in the file counts for the second.
    """
    latest, corrupt = None, False
    for line in _read(path):
        match = CHECK_RE.search(line)
        if match:
            latest = match.group(2)
            corrupt = corrupt or latest == 'CORRUPT'
    return latest, corrupt


def check_rounds(path):
    """How many rounds of memory checks the guest's console shows (0: none yet).

    NOTE: the round counter restarts at each boot of the guest, not at a migration:
    a round completed after a move is one numbered above the last one before it.
    """
    count = 0
    for line in _read(path, tail_bytes=_TAIL_BYTES):
        match = CHECK_RE.search(line)
        if match:
            count = int(match.group(1))
    return count


class HeartbeatWatch:
    """Timestamps each heartbeat line of a console file as it arrives (a thread).

    The file is read from its size at :meth:`start` on, every :data:`WATCH_POLL`
    seconds; each complete heartbeat line gets the host's ``time.monotonic()`` and
    ``time.time()`` of the look that found it. Follows the file across a live
    migration (the destination's QEMU appends to the same file). Use as a context
    manager.
    """

    def __init__(self, path):
        self.path = path
        self._beats = []          # (seq, t_monotonic, t_wall)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='heartbeat-watch',
                                        daemon=True)
        self._lock = threading.Lock()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        try:
            self._offset = os.path.getsize(self.path)
        except FileNotFoundError:
            self._offset = 0
        self._partial = b''
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while not self._stop.wait(WATCH_POLL):
            try:
                size = os.path.getsize(self.path)
                if size <= self._offset:
                    continue
                with open(self.path, 'rb') as f:
                    f.seek(self._offset)
                    data = f.read(size - self._offset)
            except FileNotFoundError:
                continue
            now, wall = time.monotonic(), time.time()
            self._offset += len(data)
            text = (self._partial + data).replace(b'\r', b'')
            *lines, self._partial = text.split(b'\n')
            with self._lock:
                for line in lines:
                    match = HEARTBEAT_RE.search(line.decode('utf-8', 'replace'))
                    if match:
                        self._beats.append((int(match.group(1)), now, wall))

    def beats(self):
        """[(seq, t_monotonic, t_wall), ...] seen so far, oldest first."""
        with self._lock:
            return list(self._beats)

    def largest_gap(self):
        """(seconds, seq before, seq after) of the longest wait between two beats
        that arrived, or None with fewer than two."""
        beats = self.beats()
        gaps = [(b[1] - a[1], a[0], b[0]) for a, b in zip(beats, beats[1:])]
        return max(gaps) if gaps else None

    def stopped_beating(self, after_s):
        """Whether no beat arrived in the last ``after_s`` seconds."""
        beats = self.beats()
        return not beats or time.monotonic() - beats[-1][1] > after_s
