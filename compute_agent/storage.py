"""The destination's storage decision: can the guest's disks come here, and how?

The source reports the guest's disks with the pool of each (see
:meth:`compute_agent.virt.driver.ComputeDriver.get_instance_disks`); the destination's
driver says which of them it shares (same pool identity, see the driver interface's
NOTE). :func:`decide_block_migration` combines that with what the caller asked for
(``block_migration``: auto, true or false, see
:class:`migration_conductor.objects.fields.BlockMigration`).

NOTE: this version cannot copy disks yet (no volumes are created on the destination
and ``VIR_MIGRATE_NON_SHARED_DISK`` is never set), so a guest with a disk the destination
does not share is refused even with ``auto`` or ``true``, with a reason that says so,
instead of starting a migration that libvirt would fail or, worse, that would leave the
destination running on a disk that is not the guest's.

Pure functions: no state, any thread.
"""

from migration_conductor import exception
from migration_conductor.objects import fields


def decide_block_migration(host, instance_uuid, block_migration, disks, shares_disk):
    """Decide whether the migration copies disks; refuse when it cannot be done.

    :param host: this (the destination) host's name, for the error.
    :param instance_uuid: the guest's UUID, for the error.
    :param block_migration: 'auto', 'true' or 'false'.
    :param disks: the source's disk dicts (driver.DISK_KEYS); empty for a diskless
        guest.
    :param shares_disk: callable(disk) -> bool, the destination driver's judgement.
    :returns: a tuple (block_migration: bool, summary: str for the log). Always False
        for now (see the module's NOTE).
    :raises StorageIncompatible: with the reason.
    """
    local = [disk for disk in disks if not shares_disk(disk)]
    if not local:
        if block_migration == fields.BlockMigration.TRUE and disks:
            raise exception.StorageIncompatible(
                host=host, instance_uuid=instance_uuid,
                reason='block migration was requested but every disk is on storage '
                       'the destination shares')
        return False, _shared_summary(disks)
    if block_migration == fields.BlockMigration.FALSE:
        reason = ('%s on storage the destination does not share, and block migration '
                  'was refused' % _describe(local, 'is', 'are'))
    else:
        reason = ('%s need block migration, which this version does not do yet'
                  % _describe(local, 'would', 'would'))
    raise exception.StorageIncompatible(host=host, instance_uuid=instance_uuid,
                                        reason=reason)


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
