"""Writing the guest initramfs: a gzip-compressed cpio archive in the "newc" format.

The archive holds what the kernel needs to run the lab's static /init: the directories /dev
and /proc, the character device /dev/console (5, 1) so init has a console from its first
instruction, and /init itself. It is written here in Python, so no cpio binary is needed.
The output is deterministic (mtime 0, fixed inode numbers): same /init, same bytes.

Concurrency: pure functions; :func:`write_initramfs` writes to a temporary file and renames,
so a QEMU starting meanwhile reads the old or the new image, never half of one.
"""

import gzip
import os
import stat

NEWC_MAGIC = b'070701'
TRAILER = 'TRAILER!!!'


def _pad4(length):
    return b'\0' * (-length % 4)


def newc_entry(ino, name, mode, data=b'', rdev=(0, 0), nlink=1):
    """One newc record: 110-byte header, NUL-terminated name, data, each padded to 4 bytes."""
    name_bytes = name.encode() + b'\0'
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
              len(name_bytes), 0)
    header = NEWC_MAGIC + b''.join(b'%08X' % value for value in fields)
    record = header + name_bytes
    record += _pad4(len(record))
    record += data + _pad4(len(data))
    return record


def build_archive(init_binary):
    """The uncompressed newc archive (bytes) holding /dev, /dev/console, /proc and /init."""
    entries = [
        ('dev', stat.S_IFDIR | 0o755, b'', (0, 0), 2),
        ('dev/console', stat.S_IFCHR | 0o600, b'', (5, 1), 1),
        ('proc', stat.S_IFDIR | 0o555, b'', (0, 0), 2),
        ('init', stat.S_IFREG | 0o755, init_binary, (0, 0), 1),
    ]
    out = [newc_entry(ino, name, mode, data, rdev, nlink)
           for ino, (name, mode, data, rdev, nlink) in enumerate(entries, start=1)]
    out.append(newc_entry(0, TRAILER, 0, nlink=1))
    return b''.join(out)


def write_initramfs(init_path, output_path):
    """Write the gzip-compressed initramfs for the static binary at init_path."""
    with open(init_path, 'rb') as f:
        archive = build_archive(f.read())
    tmp = '%s.%d.tmp' % (output_path, os.getpid())
    with open(tmp, 'wb') as f:
        f.write(gzip.compress(archive, compresslevel=6, mtime=0))
    os.replace(tmp, output_path)
