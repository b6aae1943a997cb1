"""Instance disks and storage pools with libvirt: what a source reports about a guest's
disks, and whether a destination shares them.

The functions take the driver's :class:`~compute_agent.virt.libvirt.host.Host`; they
never import ``libvirt`` (its error codes come from ``host``). The rule they implement
is the one of :mod:`compute_agent.virt.driver` (see its NOTE): a disk is shared iff the
destination has an active pool of the same UUID as the source's pool of that disk, with
a volume at the same path. Nothing is written on any host to find out.

Failures: every pool or volume lookup is a bounded call (``Host.call``) and a
libvirtError there means "not found" (logged when it is not libvirt's plain "no such
pool/volume"), so a host that cannot prove it shares a disk does not share it and the
migration is refused with a reason instead of crashing the check. Reading the domain's
definition itself may fail: that error goes to the driver, which makes it typed.

Concurrency: no state; any thread may call these at any time.
"""

import logging
import os
from xml.etree import ElementTree

from compute_agent.virt import driver
from compute_agent.virt.libvirt import host as libvirt_host

LOG = logging.getLogger(__name__)

# <disk device=...> values that are the guest's disks (CD-ROMs and floppies are not).
DISK_DEVICES = ('disk', 'lun')
# <disk type=...> -> the <source> attribute that holds its path.
PATH_ATTRIBUTES = {'file': 'file', 'block': 'dev'}
VOLUME_TYPE = 'volume'
_NOT_FOUND = (libvirt_host.ERR_NO_STORAGE_POOL, libvirt_host.ERR_NO_STORAGE_VOL)


def parse_disks(domain_xml):
    """The disk devices of a domain definition, as written there (no lookup).

    NOTE: network disks (RBD, iSCSI, NBD...) are left out: every host reaches them over
    the network, so they never need copying. So are CD-ROMs, floppies and disks without
    a source (an empty drive).

    :param domain_xml: the domain's XML (``virDomain.XMLDesc``).
    :returns: a list of dicts with keys target, format (``<driver type>`` or None) and
        either path (file and block disks) or pool and volume (volume disks).
    """
    disks = []
    for disk in ElementTree.fromstring(domain_xml).findall('./devices/disk'):
        if disk.get('device', 'disk') not in DISK_DEVICES:
            continue
        parsed = _parse_source(disk)
        if parsed is None:
            continue
        parsed['format'] = _attribute(disk, 'driver', 'type')
        parsed['target'] = _attribute(disk, 'target', 'dev')
        disks.append(parsed)
    return disks


def _attribute(element, child, name):
    found = element.find(child)
    return found.get(name) if found is not None else None


def _parse_source(disk):
    """{'path': ...} or {'pool': ..., 'volume': ...} of a <disk>, or None to skip it."""
    source = disk.find('source')
    if source is None:
        return None
    disk_type = disk.get('type', 'file')
    if disk_type in PATH_ATTRIBUTES:
        path = source.get(PATH_ATTRIBUTES[disk_type])
        return {'path': path} if path else None
    if disk_type == VOLUME_TYPE:
        pool, volume = source.get('pool'), source.get('volume')
        return {'pool': pool, 'volume': volume} if pool and volume else None
    return None


def domain_disks(host, dom, instance_uuid):
    """The disks of a domain with the UUID of the pool of each (see driver.DISK_KEYS).

    :raises libvirtError: the domain's definition could not be read.
    :raises HypervisorUnavailable: libvirtd cannot be reached or does not answer.
    """
    domain_xml = host.call('read domain XML', dom.XMLDesc, 0)
    disks = []
    for parsed in parse_disks(domain_xml):
        if 'volume' in parsed:
            path, volume = _resolve_volume(host, parsed['pool'], parsed['volume'])
        else:
            path = parsed['path']
            volume = _lookup(host, 'look up the volume at %s' % path,
                             host.get_connection().storageVolLookupByPath, path)
        pool_uuid = allocation = None
        if volume is not None:
            pool_uuid = _pool_uuid_of_volume(host, volume, path)
            info = _lookup(host, 'read the size of the volume at %s' % path, volume.info)
            allocation = info[2] if info else None
        disks.append(driver.make_disk(parsed['target'], path, parsed['format'],
                                      pool_uuid, allocation))
        LOG.debug('Instance %s: disk %s at %s is in pool %s (%s bytes allocated)',
                  instance_uuid, parsed['target'], path, pool_uuid or 'none',
                  'unknown' if allocation is None else allocation)
    return sorted(disks, key=lambda disk: disk['target'] or '')


def has_pool_volume(host, pool_uuid, path):
    """Whether this host has the active pool ``pool_uuid`` with a volume at ``path``.

    NOTE: libvirt knows the volumes of a pool as of its last refresh, and on a shared
    pool another host may have created the file since. When the path is not found the
    pool is refreshed once and looked at again.
    """
    conn = host.get_connection()
    pool = _lookup(host, 'look up storage pool %s' % pool_uuid,
                   conn.storagePoolLookupByUUIDString, pool_uuid)
    if pool is None or not _lookup(host, 'check storage pool %s' % pool_uuid,
                                   pool.isActive):
        return False
    found = _pool_uuid_at(host, conn, path)
    if found is None:
        _lookup(host, 'refresh storage pool %s' % pool_uuid, pool.refresh, 0)
        found = _pool_uuid_at(host, conn, path)
    return found is not None and found.lower() == pool_uuid.lower()


def has_volume_at(host, path):
    """Whether the active pool at the directory of ``path`` has a volume there (after
    a refresh of that pool); None when no active pool is at that directory."""
    if _refreshed_pool_at(host, os.path.dirname(path)) is None:
        return None
    return _pool_uuid_at(host, host.get_connection(), path) is not None


def pool_free_bytes(host, directory):
    """The bytes available in the active pool at ``directory`` (refreshed first), or
    None when no active pool is there or libvirt cannot tell (logged).

    NOTE: libvirt's figure, the "Available" of ``virsh pool-info``, which operators
    see too. For a dir pool it counts the file system's free blocks, those reserved
    for root included: where QEMU runs unprivileged it cannot use that reserve (5% of
    an ext4 file system by default), so the check is optimistic by that much.
    """
    pool = _refreshed_pool_at(host, directory)
    if pool is None:
        return None
    info = _lookup(host, 'read the free space of the storage pool at %s' % directory,
                   pool.info)
    return info[3] if info else None


def delete_volumes(host, instance_uuid, paths):
    """Delete the volumes at ``paths``; return the paths deleted (see the driver)."""
    conn = host.get_connection()
    deleted = []
    for path in paths:
        volume = _lookup(host, 'look up the volume at %s' % path,
                         conn.storageVolLookupByPath, path)
        if volume is None and _refreshed_pool_at(host, os.path.dirname(path)) is not None:
            volume = _lookup(host, 'look up the volume at %s' % path,
                             conn.storageVolLookupByPath, path)
        if volume is None:
            LOG.info('Instance %s: no volume at %s on %s: nothing to delete', instance_uuid,
                     path, host.uri)
            continue
        try:
            host.call('delete the volume at %s' % path, volume.delete, 0)
        except libvirt_host.libvirtError as exc:
            LOG.error('Instance %s: could not delete the volume at %s on %s: %s',
                      instance_uuid, path, host.uri, libvirt_host.error_message(exc))
            continue
        LOG.info('Instance %s: deleted the volume at %s on %s', instance_uuid, path,
                 host.uri)
        deleted.append(path)
    return deleted


def _refreshed_pool_at(host, directory):
    """The active pool at ``directory``, refreshed so that it lists the files there
    now (another host may have written one), or None."""
    pool = _pool_at_directory(host, directory)
    if pool is not None:
        _lookup(host, 'refresh the storage pool at %s' % directory, pool.refresh, 0)
    return pool


def _pool_at_directory(host, directory):
    """The active pool whose target path is ``directory``, or None.

    NOTE: read from each pool's definition rather than with
    ``storagePoolLookupByTargetPath``, which not every libvirt driver implements.
    """
    conn = host.get_connection()
    pools = _lookup(host, 'list the storage pools', conn.listAllStoragePools,
                    libvirt_host.LIST_STORAGE_POOLS_ACTIVE) or []
    wanted = os.path.normpath(directory)
    for pool in pools:
        pool_xml = _lookup(host, 'read the definition of a storage pool', pool.XMLDesc, 0)
        target = ElementTree.fromstring(pool_xml).findtext('target/path') if pool_xml \
            else None
        if target and os.path.normpath(target) == wanted:
            return pool
    return None


def _pool_uuid_at(host, conn, path):
    volume = _lookup(host, 'look up the volume at %s' % path, conn.storageVolLookupByPath,
                     path)
    return _pool_uuid_of_volume(host, volume, path) if volume is not None else None


def _pool_uuid_of_volume(host, volume, path):
    pool = _lookup(host, 'look up the pool of the volume at %s' % path,
                   volume.storagePoolLookupByVolume)
    if pool is None:
        return None
    return _lookup(host, 'read the UUID of the pool of %s' % path, pool.UUIDString)


def _resolve_volume(host, pool_name, volume_name):
    """(path, virStorageVol) of volume ``volume_name`` of pool ``pool_name``, or Nones."""
    conn = host.get_connection()
    pool = _lookup(host, 'look up storage pool %s' % pool_name,
                   conn.storagePoolLookupByName, pool_name)
    if pool is None:
        return None, None
    volume = _lookup(host, 'look up volume %s in pool %s' % (volume_name, pool_name),
                     pool.storageVolLookupByName, volume_name)
    if volume is None:
        return None, None
    path = _lookup(host, 'read the path of volume %s' % volume_name, volume.path)
    return path, (volume if path else None)


def _lookup(host, what, fn, *args):
    """fn(*args) as a bounded call; None when libvirt raises (logged unless "not found").

    :raises HypervisorUnavailable: libvirtd cannot be reached or does not answer.
    """
    try:
        return host.call(what, fn, *args)
    except libvirt_host.libvirtError as exc:
        if exc.get_error_code() not in _NOT_FOUND:
            LOG.warning('libvirt at %s could not %s (%s); counted as not found', host.uri,
                        what, libvirt_host.error_message(exc))
        return None
