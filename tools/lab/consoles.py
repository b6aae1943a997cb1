"""Reading the guests' serial console files and their heartbeat lines.

Each guest's serial port is a file under ``<state dir>/shared/consoles/`` that QEMU opens in
append mode, so after a live migration the destination QEMU continues the same file and a
reader sees one unbroken heartbeat sequence. The guest /init prints one line per second::

    mc-heartbeat seq=17 touched_mib=64 dirty_pps=1000

Concurrency: QEMU appends while we read; a reader may see a last line cut short, which the
parser ignores (a heartbeat line only counts once it ends with a newline).
"""

import os
import re

HEARTBEAT_RE = re.compile(r'\bmc-heartbeat seq=(\d+)\b')
READY_RE = re.compile(r'\bmc-init ready touched_mib=(\d+)\b')
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
