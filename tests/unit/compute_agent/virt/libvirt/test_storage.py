"""Disks and shared pools with libvirt: parsing, pool lookups, the shared-disk decision.

Two libvirt ``test:///<file>`` hosts (each connection has a private state) model a
source and a destination: a pool of the same UUID on both is shared storage, pools of
distinct UUIDs are local. Fake connections stand in where the test driver cannot fail
the way a real libvirtd does (an internal error, a volume created since the last
refresh).
"""

import libvirt
import pytest

from compute_agent.virt.libvirt import driver as libvirt_driver
from compute_agent.virt.libvirt import host as libvirt_host
from compute_agent.virt.libvirt import storage
from migration_conductor import exception

GUEST = '11111111-2222-3333-4444-555555555555'
DISKLESS = '11111111-2222-3333-4444-666666666666'
SHARED_POOL = 'aaaaaaaa-0000-4000-8000-000000000001'
SOURCE_LOCAL_POOL = 'bbbbbbbb-0000-4000-8000-000000000001'
DEST_LOCAL_POOL = 'bbbbbbbb-0000-4000-8000-000000000002'
SHARED_PATH = '/nfs/guests/disk.qcow2'
LOCAL_PATH = '/var/lib/guests/data.raw'
ALLOCATED_MIB = 300
MIB = 2 ** 20

DEVICES = """
  <disk type='file' device='disk'>
    <driver name='qemu' type='qcow2'/>
    <source file='/nfs/guests/disk.qcow2'/>
    <target dev='vda' bus='virtio'/>
  </disk>
  <disk type='volume' device='disk'>
    <driver name='qemu' type='raw'/>
    <source pool='local' volume='data.raw'/>
    <target dev='vdb' bus='virtio'/>
  </disk>
  <disk type='block' device='disk'>
    <source dev='/dev/vg0/scratch'/>
    <target dev='vdc' bus='virtio'/>
  </disk>
  <disk type='file' device='cdrom'>
    <source file='/iso/install.iso'/>
    <target dev='hdc' bus='ide'/>
  </disk>
  <disk type='file' device='floppy'>
    <source file='/iso/floppy.img'/>
    <target dev='fda' bus='fdc'/>
  </disk>
  <disk type='network' device='disk'>
    <source protocol='rbd' name='pool/image'><host name='ceph' port='6789'/></source>
    <target dev='vde' bus='virtio'/>
  </disk>
"""


# libvirt itself refuses to define a disk without a source; the parser skips one.
EMPTY_DISK = """
  <disk type='file' device='disk'>
    <target dev='vdd' bus='virtio'/>
  </disk>
"""


def _domain(uuid, name, devices=''):
    return """
  <domain type='test'>
    <name>%s</name>
    <uuid>%s</uuid>
    <memory unit='MiB'>512</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices>%s</devices>
  </domain>""" % (name, uuid, devices)


def _pool(name, uuid, directory, volumes):
    """A dir pool; ``volumes``: names (1 GiB, 300 MiB allocated) or (name, MiB
    allocated). libvirt's test driver gives every pool 100 GiB: what the volumes do not
    take is free."""
    volumes = [(v, ALLOCATED_MIB) if isinstance(v, str) else v for v in volumes]
    return """
  <pool type='dir'>
    <name>%s</name>
    <uuid>%s</uuid>
    <target><path>%s</path></target>%s
  </pool>""" % (name, uuid, directory, ''.join(
        """
    <volume type='file'>
      <name>%s</name>
      <capacity unit='MiB'>%d</capacity>
      <allocation unit='MiB'>%d</allocation>
      <target><path>%s/%s</path></target>
    </volume>""" % (volume, max(1024, mib), mib, directory, volume)
        for volume, mib in volumes))


SHARED = _pool('shared', SHARED_POOL, '/nfs/guests', ['disk.qcow2'])
SOURCE_NODE = '<node>%s%s%s%s</node>' % (
    _domain(GUEST, 'guest'), _domain(DISKLESS, 'diskless'), SHARED,
    _pool('local', SOURCE_LOCAL_POOL, '/var/lib/guests', ['data.raw']))
# The destination has the shared pool, and a local pool of its own UUID that holds a
# volume at the same path as the source's local volume.
DEST_NODE = '<node>%s%s</node>' % (
    SHARED, _pool('local', DEST_LOCAL_POOL, '/var/lib/guests', ['data.raw']))


def _make_driver(tmp_path, name, node_xml, open_connection=None):
    node = tmp_path / ('%s.xml' % name)
    node.write_text(node_xml)
    drv = libvirt_driver.LibvirtDriver(name, 'test://%s' % node,
                                       open_connection=open_connection)
    drv.init_host()
    return drv


@pytest.fixture
def source(tmp_path):
    drv = _make_driver(tmp_path, 'source',
                       SOURCE_NODE.replace(_domain(GUEST, 'guest'),
                                           _domain(GUEST, 'guest', DEVICES)))
    yield drv
    drv.cleanup()


@pytest.fixture
def dest(tmp_path):
    drv = _make_driver(tmp_path, 'dest', DEST_NODE)
    yield drv
    drv.cleanup()


def _error(code, message='libvirt says no'):
    exc = libvirt_host.libvirtError(message)
    exc.err = (code, 10, message, 2, None, None, None, 0, 0)
    return exc


# --- parsing -------------------------------------------------------------------------

def test_parse_keeps_file_block_and_volume_disks_only():
    parsed = storage.parse_disks(_domain(GUEST, 'guest', DEVICES + EMPTY_DISK))
    assert parsed == [
        {'target': 'vda', 'path': SHARED_PATH, 'format': 'qcow2'},
        {'target': 'vdb', 'pool': 'local', 'volume': 'data.raw', 'format': 'raw'},
        {'target': 'vdc', 'path': '/dev/vg0/scratch', 'format': None},
    ]


def test_parse_a_diskless_domain():
    assert storage.parse_disks(_domain(DISKLESS, 'diskless')) == []


# --- the source: disks and their pools --------------------------------------------------

def test_source_reports_each_disk_with_its_pool(source):
    assert source.get_instance_disks(GUEST) == [
        {'target': 'vda', 'path': SHARED_PATH, 'format': 'qcow2',
         'pool_uuid': SHARED_POOL, 'allocation': ALLOCATED_MIB * MIB},
        {'target': 'vdb', 'path': LOCAL_PATH, 'format': 'raw',
         'pool_uuid': SOURCE_LOCAL_POOL, 'allocation': ALLOCATED_MIB * MIB},
        {'target': 'vdc', 'path': '/dev/vg0/scratch', 'format': None,
         'pool_uuid': None, 'allocation': None},   # in no pool
    ]


def test_source_reports_no_disk_for_a_diskless_guest(source):
    assert source.get_instance_disks(DISKLESS) == []


def test_a_volume_disk_of_an_unknown_pool_has_no_path_and_no_pool(tmp_path):
    devices = ("<disk type='volume' device='disk'><source pool='gone' volume='x.img'/>"
               "<target dev='vda' bus='virtio'/></disk>")
    drv = _make_driver(tmp_path, 'lone', '<node>%s</node>'
                       % _domain(GUEST, 'guest', devices))
    try:
        assert drv.get_instance_disks(GUEST) == [
            {'target': 'vda', 'path': None, 'format': None, 'pool_uuid': None,
             'allocation': None}]
    finally:
        drv.cleanup()


def test_source_disks_of_a_missing_guest_is_a_typed_error(source):
    with pytest.raises(exception.DomainNotFound):
        source.get_instance_disks('99999999-2222-3333-4444-555555555555')


# --- the destination: which disks it shares -------------------------------------------

def test_destination_shares_only_the_disk_of_the_same_pool_uuid(source, dest):
    shared, local, outside = source.get_instance_disks(GUEST)
    assert dest.shares_disk(shared)
    assert not dest.shares_disk(local)      # same path, but a pool of another UUID
    assert not dest.shares_disk(outside)    # in no pool on the source
    assert not dest.shares_disk(dict(shared, path='/nfs/guests/other.qcow2'))


def test_an_inactive_shared_pool_is_not_shared(source, dest):
    shared = source.get_instance_disks(GUEST)[0]
    dest._host.get_connection().storagePoolLookupByUUIDString(SHARED_POOL).destroy()
    assert not dest.shares_disk(shared)


def test_destination_without_the_pool_does_not_share(tmp_path, source):
    lone = _make_driver(tmp_path, 'lone', '<node></node>')
    try:
        assert not lone.shares_disk(source.get_instance_disks(GUEST)[0])
    finally:
        lone.cleanup()


# --- libvirt failures: "not found", never a crash -------------------------------------

class FailingConnection:
    """A test:/// connection whose named methods raise ``error`` (the rest delegates)."""

    def __init__(self, conn, error, methods):
        self._conn = conn
        self._error = error
        self._methods = methods

    def __getattr__(self, name):
        if name in self._methods:
            def fail(*_args, **_kwargs):
                raise self._error
            return fail
        return getattr(self._conn, name)


def _failing_driver(tmp_path, name, node_xml, error, methods):
    return _make_driver(tmp_path, name, node_xml,
                        open_connection=lambda uri: FailingConnection(
                            libvirt.open(uri), error, methods))


@pytest.mark.parametrize('method', ['storagePoolLookupByUUIDString',
                                    'storageVolLookupByPath'])
def test_a_libvirt_error_on_the_destination_means_not_shared(tmp_path, source, caplog,
                                                              method):
    shared = source.get_instance_disks(GUEST)[0]
    dest = _failing_driver(tmp_path, 'dest', DEST_NODE,
                           _error(libvirt.VIR_ERR_INTERNAL_ERROR, 'pool busy'), {method})
    try:
        assert dest.shares_disk(shared) is False
    finally:
        dest.cleanup()
    assert any('pool busy' in r.getMessage() for r in caplog.records)


def test_a_libvirt_error_on_the_source_means_no_pool(tmp_path):
    node = SOURCE_NODE.replace(_domain(GUEST, 'guest'), _domain(GUEST, 'guest', DEVICES))
    src = _failing_driver(tmp_path, 'source', node,
                          _error(libvirt.VIR_ERR_INTERNAL_ERROR), {'storageVolLookupByPath'})
    try:
        disks = src.get_instance_disks(GUEST)
    finally:
        src.cleanup()
    assert [d['pool_uuid'] for d in disks] == [None, SOURCE_LOCAL_POOL, None]


class FakeDomain:
    """A domain whose XMLDesc raises ``error``."""

    def __init__(self, error):
        self._error = error

    def XMLDesc(self, flags=0):
        raise self._error


@pytest.mark.parametrize('code,typed', [
    (libvirt.VIR_ERR_NO_DOMAIN, exception.DomainNotFound),
    (libvirt.VIR_ERR_INTERNAL_ERROR, exception.HypervisorCallFailed),
])
def test_an_unreadable_definition_is_a_typed_error(tmp_path, code, typed):
    class Connection(FailingConnection):
        def lookupByUUIDString(self, uuid):
            return FakeDomain(_error(code))

    drv = _make_driver(tmp_path, 'source', SOURCE_NODE,
                       open_connection=lambda uri: Connection(libvirt.open(uri), None, ()))
    try:
        with pytest.raises(typed):
            drv.get_instance_disks(GUEST)
    finally:
        drv.cleanup()


def test_a_volume_created_since_the_last_refresh_is_found_after_one(tmp_path):
    """On a shared pool another host may have created the file: refresh, look again."""
    refreshed = []

    class StalePool:
        def __init__(self, pool):
            self._pool = pool

        def isActive(self):
            return self._pool.isActive()

        def refresh(self, flags=0):
            refreshed.append(flags)
            return 0

    class StaleConnection(FailingConnection):
        def storagePoolLookupByUUIDString(self, uuid):
            return StalePool(self._conn.storagePoolLookupByUUIDString(uuid))

        def storageVolLookupByPath(self, path):
            if not refreshed:
                raise _error(libvirt.VIR_ERR_NO_STORAGE_VOL, 'no storage vol')
            return self._conn.storageVolLookupByPath(path)

    dest = _make_driver(tmp_path, 'dest', DEST_NODE,
                        open_connection=lambda uri: StaleConnection(
                            libvirt.open(uri), None, ()))
    try:
        assert dest.has_pool_volume(SHARED_POOL, SHARED_PATH) is True
        assert refreshed == [0]
    finally:
        dest.cleanup()


# --- block migration: where a copy can go, and deleting copies ---------------------------

def test_a_copy_goes_where_a_pool_holds_the_directory_and_no_file_is(source, dest):
    # The destination's local pool is at /var/lib/guests and already holds data.raw.
    assert dest.disk_copy_refusal({'target': 'vdb', 'path': LOCAL_PATH}) == (
        'a volume already exists at %s' % LOCAL_PATH)
    assert dest.disk_copy_refusal({'target': 'vdb',
                                   'path': '/var/lib/guests/new.raw'}) is None
    assert dest.disk_copy_refusal({'target': 'vdc', 'path': '/srv/elsewhere/x.raw'}) == (
        'no active storage pool at /srv/elsewhere to create its copy in')
    assert dest.disk_copy_refusal({'target': 'vdc', 'path': None}) == (
        'its path is unknown')


def test_deleting_copies_deletes_pool_volumes_only(dest):
    assert dest.delete_disk_copies(GUEST, [LOCAL_PATH, '/srv/none.raw']) == [LOCAL_PATH]
    assert dest.disk_copy_refusal({'target': 'vdb', 'path': LOCAL_PATH}) is None
    assert dest.delete_disk_copies(GUEST, [LOCAL_PATH]) == []     # idempotent


def test_free_space_is_read_from_the_pool_at_the_directory(tmp_path):
    # 100 GiB pools (libvirt's test driver): the local one holds a 99.75 GiB volume.
    drv = _make_driver(tmp_path, 'full', '<node>%s%s</node>' % (
        SHARED, _pool('local', DEST_LOCAL_POOL, '/var/lib/guests',
                      [('filler.raw', 100 * 1024 - 256)])))
    try:
        assert drv.pool_free_bytes('/var/lib/guests') == 256 * MIB
        assert drv.pool_free_bytes('/var/lib/guests/') == 256 * MIB
        assert drv.pool_free_bytes('/nfs/guests') == (100 * 1024 - ALLOCATED_MIB) * MIB
        assert drv.pool_free_bytes('/srv/elsewhere') is None
        drv._host.get_connection().storagePoolLookupByUUIDString(DEST_LOCAL_POOL).destroy()
        assert drv.pool_free_bytes('/var/lib/guests') is None     # inactive
    finally:
        drv.cleanup()
