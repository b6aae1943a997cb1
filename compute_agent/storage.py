"""The destination's storage decision: can the guest's disks come here, and how?

The source reports the guest's disks with the pool of each (see
:meth:`compute_agent.virt.driver.ComputeDriver.get_instance_disks`); the destination's
driver says which of them it shares (same pool identity, see the driver interface's
NOTE) and whether it can take a copy of the others
(:meth:`~compute_agent.virt.driver.ComputeDriver.disk_copy_refusal`).
:func:`decide_block_migration` combines that with what the caller asked for
(``block_migration``: auto, true or false, see
:class:`migration_conductor.objects.fields.BlockMigration`):

========  ======================================  ====================================
request   every disk shared (or no disk)          some disks not shared
========  ======================================  ====================================
false     no copy                                 refused
auto      no copy                                 copy those disks, if this host can
true      refused when there are disks, else      copy those disks, if this host can
          no copy
========  ======================================  ====================================

Only the disks not shared are copied (libvirt's ``migrate_disks``): a shared disk is
never written over itself. A disk this host cannot take a copy of (no pool at its
directory, or a file already at its path) makes the whole migration refused, with the
reason of each; so does a pool without room for the copies going into it (the sum of
their allocations on the source against the pool's free bytes). A copy whose size the
source did not report (an older agent) is not counted, and the log says so.

Pure functions: no state, any thread.
"""

import math
import os

from migration_conductor import exception
from migration_conductor.objects import fields


def decide_block_migration(host, instance_uuid, block_migration, disks, shares_disk,
                           copy_refusal, free_bytes):
    """Decide which disks the migration copies; refuse when it cannot be done.

    :param host: this (the destination) host's name, for the error.
    :param instance_uuid: the guest's UUID, for the error.
    :param block_migration: 'auto', 'true' or 'false'.
    :param disks: the source's disk dicts (driver.DISK_KEYS); empty for a diskless
        guest.
    :param shares_disk: callable(disk) -> bool, the destination driver's judgement.
    :param copy_refusal: callable(disk) -> None or the reason this host cannot take a
        copy of the disk.
    :param free_bytes: callable(directory) -> the bytes free in this host's pool at
        that directory, or None when it cannot tell.
    :returns: a tuple (disks to copy: a list of disk dicts, empty when nothing is
        copied; summary: str for the log).
    :raises StorageIncompatible: with the reason.
    """
    local = [disk for disk in disks if not shares_disk(disk)]
    if not local:
        if block_migration == fields.BlockMigration.TRUE and disks:
            raise exception.StorageIncompatible(
                host=host, instance_uuid=instance_uuid,
                reason='block migration was requested but every disk is on storage '
                       'the destination shares')
        return [], _shared_summary(disks)
    if block_migration == fields.BlockMigration.FALSE:
        raise exception.StorageIncompatible(
            host=host, instance_uuid=instance_uuid,
            reason='%s on storage the destination does not share, and block migration '
                   'was refused' % _describe(local, 'is', 'are'))
    refusals = [(disk, copy_refusal(disk)) for disk in local]
    refused = ['disk %s (%s) cannot be copied here: %s'
               % (disk['target'], disk['path'] or 'path unknown', reason)
               for disk, reason in refusals if reason]
    refused.extend(_room_refusals(local, free_bytes))
    if refused:
        raise exception.StorageIncompatible(host=host, instance_uuid=instance_uuid,
                                            reason='; '.join(refused))
    shared = len(disks) - len(local)
    summary = 'copying %s' % _describe_sized(local)
    if shared:
        summary += '; %d disk(s) on shared pools' % shared
    return local, summary


def _room_refusals(local, free_bytes):
    """A reason for each pool that has less room than the copies going into it.

    A disk without a path has no pool to count it in (copy_refusal refused it).
    """
    by_directory = {}
    for disk in local:
        if disk['path']:
            by_directory.setdefault(os.path.dirname(disk['path']), []).append(disk)
    refused = []
    for directory, copies in sorted(by_directory.items()):
        free = free_bytes(directory)
        needed = sum(disk.get('allocation') or 0 for disk in copies)
        if free is not None and needed > free:
            refused.append('the storage pool at %s has %s free, the copy of %s needs %s'
                           % (directory, _size(free, math.floor), _describe_sized(copies),
                              _size(needed)))
    return refused


def _size(nbytes, rounding=math.ceil):
    """'12.5 MiB' (to a tenth, rounded up unless told), or 'size unknown' for None.

    NOTE: room is shown rounded down and needs rounded up, so that a refusal never
    reads "has 400.0 MiB free, needs 400.0 MiB".
    """
    if nbytes is None:
        return 'size unknown'
    return '%.1f MiB' % (rounding(nbytes * 10 / 2 ** 20) / 10)


def _describe_sized(disks):
    """'vda (/a, 16.0 MiB), vdb (/b, size unknown)'."""
    return ', '.join('%s (%s, %s)' % (disk['target'], disk['path'],
                                      _size(disk.get('allocation'))) for disk in disks)


def _describe(disks, singular_verb, plural_verb):
    """'disk vda (/path) is' or 'disks vda (/a), vdb (/b) are'."""
    names = ', '.join('%s (%s)' % (disk['target'], disk['path'] or 'path unknown')
                      for disk in disks)
    if len(disks) == 1:
        return 'disk %s %s' % (names, singular_verb)
    return 'disks %s %s' % (names, plural_verb)


def _shared_summary(disks):
    if not disks:
        return 'no disk'
    return 'all %d disk(s) on shared pools' % len(disks)
