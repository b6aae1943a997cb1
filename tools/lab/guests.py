"""Lab guests: small persistent TCG domains booting the cloud kernel and the lab's /init.

A guest has no disk, no network and no graphics: direct kernel boot of ``images/vmlinuz``
with ``images/initramfs.img``, settings on the kernel command line, and its serial port in a
file under the shared consoles dir (appended to, so it survives live migrations between lab
hosts). The domain type is ``qemu`` (TCG): the KVM of this kind of machine cannot run stock
kernels (see LAB.md); the accelerator really in use is asked from QEMU (QMP ``query-kvm``).

Guests move between hosts behind the lab's back (that is what the project does), so where a
guest runs is always looked up on every running host, never taken from the state file. The
domain UUID is stable per guest name (:meth:`tools.lab.config.LabConfig.guest_uuid`) unless
a definition with another UUID already exists, which is then kept.

Concurrency: called under the lab lock for changes; lookups open one short libvirt
connection per host, one host after the other, from the calling thread.
"""

import dataclasses
import logging
import time
import xml.etree.ElementTree as ET

from tools.lab import consoles
from tools.lab import errors
from tools.lab import hostconf
from tools.lab import hosts as lab_hosts
from tools.lab import virt

LOG = logging.getLogger(__name__)

EMULATOR = '/usr/bin/qemu-system-x86_64'
# The pools a guest's disk can be in: storage every host sees, or the host's own.
DISK_POOLS = (lab_hosts.SHARED_POOL, lab_hosts.LOCAL_POOL)
DISK_MIB = 16
BOOT_TIMEOUT = 120  # seconds from "start" to the first heartbeat (TCG boot takes ~3 s)


@dataclasses.dataclass
class GuestInfo:
    """One guest as seen now."""

    name: str
    uuid: str
    host: str
    accelerator: str | None  # "kvm" or "tcg" while it runs, else None
    state: str = 'running'
    last_seq: int | None = None
    console_path: str | None = None

    def to_dict(self):
        return dataclasses.asdict(self)


def kernel_cmdline(touch_mib, dirty_pps, beat_hz=1, frozen_mib=16):
    # NOTE: unknown_nmi_panic=1 makes an NMI (Lab.panic_guest) panic the kernel: the
    # lab's way to kill a guest from outside, as a real crash would.
    return ('console=ttyS0 panic=-1 unknown_nmi_panic=1 quiet mc.touch_mib=%d '
            'mc.dirty_pps=%d mc.beat_hz=%d mc.frozen_mib=%d'
            % (touch_mib, dirty_pps, beat_hz, frozen_mib))


# The namespace of migration-conductor's element in a domain's <metadata> (the agent
# reads the guest's migration profile there).
METADATA_NAMESPACE = 'http://migration-conductor.org/xmlns/instance/1.0'


def domain_xml(config, name, uuid, memory_mib, touch_mib, dirty_pps, disk_path=None,
               beat_hz=1, frozen_mib=16, profile=None):
    """The libvirt XML of a lab guest (string).

    :param beat_hz: heartbeat lines per second; :param frozen_mib: MiB the guest writes
        once and checks (see tools/lab/guest/init.c).
    :param profile: the migration profile its metadata names, or None.

    :param disk_path: a raw file attached as the guest's disk vda, or None for a diskless
        guest. The guest boots from its initramfs and never touches the disk: it is there
        for the storage checks and for libvirt to carry along.
    """
    dom = ET.Element('domain', type='qemu')
    ET.SubElement(dom, 'name').text = name
    ET.SubElement(dom, 'uuid').text = uuid
    ET.SubElement(dom, 'description').text = (
        'migration-conductor lab guest: touch_mib=%d dirty_pps=%d' % (touch_mib, dirty_pps))
    if profile:
        metadata = ET.SubElement(dom, 'metadata')
        instance = ET.SubElement(metadata, '{%s}instance' % METADATA_NAMESPACE)
        ET.SubElement(instance, '{%s}migration-profile' % METADATA_NAMESPACE).text = profile
    ET.SubElement(dom, 'memory', unit='MiB').text = str(memory_mib)
    ET.SubElement(dom, 'currentMemory', unit='MiB').text = str(memory_mib)
    ET.SubElement(dom, 'vcpu').text = '1'
    os_el = ET.SubElement(dom, 'os')
    ET.SubElement(os_el, 'type', arch='x86_64', machine='pc').text = 'hvm'
    ET.SubElement(os_el, 'kernel').text = config.kernel_path
    ET.SubElement(os_el, 'initrd').text = config.initramfs_path
    ET.SubElement(os_el, 'cmdline').text = kernel_cmdline(touch_mib, dirty_pps, beat_hz,
                                                          frozen_mib)
    features = ET.SubElement(dom, 'features')
    ET.SubElement(features, 'acpi')
    ET.SubElement(dom, 'clock', offset='utc')
    # NOTE: panic=-1 reboots on a kernel panic and a reboot destroys the domain, so a guest
    # that ran out of memory shows up as "shutoff" instead of looping.
    for event in ('on_poweroff', 'on_reboot', 'on_crash'):
        ET.SubElement(dom, event).text = 'destroy'
    devices = ET.SubElement(dom, 'devices')
    ET.SubElement(devices, 'emulator').text = EMULATOR
    if disk_path:
        disk = ET.SubElement(devices, 'disk', type='file', device='disk')
        ET.SubElement(disk, 'driver', name='qemu', type='raw', cache='none')
        ET.SubElement(disk, 'source', file=disk_path)
        ET.SubElement(disk, 'target', dev='vda', bus='virtio')
    serial = ET.SubElement(devices, 'serial', type='file')
    ET.SubElement(serial, 'source', path=config.console_path(name), append='on')
    ET.SubElement(serial, 'target', port='0')
    ET.SubElement(devices, 'controller', type='usb', model='none')
    ET.SubElement(devices, 'memballoon', model='none')
    # pvpanic: a panicking kernel tells QEMU, which tells libvirt (a crash event).
    panic = ET.SubElement(devices, 'panic', model='isa')
    ET.SubElement(panic, 'address', type='isa', iobase='0x505')
    return ET.tostring(dom, encoding='unicode')


def _connect(config, host):
    return virt.HostConnection(host.name, host.uri, config.libvirtd_log(host.name))


def _accelerator(config, conn, host, dom):
    """'kvm' or 'tcg', as QEMU itself reports it."""
    reply = conn.qmp(dom, 'query-kvm', log=config.qemu_log(host.name, dom.name()))
    return 'kvm' if reply and reply.get('enabled') else 'tcg'


def _info(config, conn, host, dom):
    name = dom.name()
    state = virt.state_name(conn.call('get state of guest %s' % name, dom.state, 0,
                                      error=errors.GuestError)[0])
    active = state in ('running', 'paused', 'blocked')
    return GuestInfo(name=name, uuid=dom.UUIDString(), host=host.name,
                     accelerator=_accelerator(config, conn, host, dom) if active else None,
                     state=state, last_seq=consoles.last_seq(config.console_path(name)),
                     console_path=config.console_path(name))


def list_guests(config, running_hosts):
    """GuestInfo of every domain on every running host, by host order then name."""
    result = []
    for host in running_hosts:
        with _connect(config, host) as conn:
            for dom in sorted(conn.list_domains(), key=lambda d: d.name()):
                try:
                    result.append(_info(config, conn, host, dom))
                except errors.LabError as exc:
                    if not _vanished(conn, dom):
                        raise
                    LOG.debug('guest vanished while listed: %s', exc)
    return result


def _vanished(conn, dom):
    try:
        conn.call('check guest', dom.isActive, error=None)
        return False
    except Exception as exc:  # a migration may remove it between two calls
        return virt.is_no_domain(exc)


def locate(config, running_hosts, name):
    """{host name: GuestInfo} of the hosts that have a domain called name."""
    found = {}
    for host in running_hosts:
        with _connect(config, host) as conn:
            dom = conn.find_domain(name)
            if dom is not None:
                found[host.name] = _info(config, conn, host, dom)
    return found


def start_guest(config, running_hosts, name, host_name, memory_mib, touch_mib, dirty_pps,
                boot_timeout=BOOT_TIMEOUT, disk_pool=None, beat_hz=1, frozen_mib=16,
                profile=None):
    """Define and start guest name on host_name, or return it if it already runs anywhere.

    :param disk_pool: None for a diskless guest, else the lab pool (``mc-shared`` or
        ``mc-local``) where its disk, volume ``<name>.img`` of DISK_MIB MiB, is created on
        host_name (an existing one is reused).

    :returns: GuestInfo of the running guest.
    :raises GuestError: definition, start or boot failed (the message names the guest, the
        host, the console file and QEMU's log).
    """
    by_name = {h.name: h for h in running_hosts}
    if host_name not in by_name:
        raise errors.HostError('cannot start guest %s: host %s is not running (running: %s); '
                               'start it with "python -m tools.lab start"'
                               % (name, host_name, ', '.join(by_name) or 'none'))
    if disk_pool not in (None,) + DISK_POOLS:
        raise errors.GuestError('guest %s: unknown disk pool %r (lab pools: %s)'
                                % (name, disk_pool, ', '.join(DISK_POOLS)))
    if not 1 <= beat_hz <= 50:
        raise errors.GuestError('guest %s: beat_hz must be from 1 to 50, not %r'
                                % (name, beat_hz))
    if touch_mib + frozen_mib >= memory_mib:
        raise errors.GuestError('guest %s: touch_mib (%d) and frozen_mib (%d) must stay well '
                                'below memory_mib (%d)'
                                % (name, touch_mib, frozen_mib, memory_mib))
    found = locate(config, running_hosts, name)
    for where, info in found.items():
        if info.accelerator is not None:
            LOG.info('guest %s already runs on host %s (uuid %s, %s)', name, where, info.uuid,
                     info.accelerator)
            return info
    uuid = config.guest_uuid(name)
    for where, info in found.items():
        uuid = info.uuid  # keep the identity of an existing definition
        if where != host_name:
            LOG.info('guest %s: removing its stopped definition from host %s', name, where)
            with _connect(config, by_name[where]) as conn:
                dom = conn.find_domain(name)
                if dom is not None:
                    conn.call('undefine guest %s' % name, dom.undefine, error=errors.GuestError)
    host = by_name[host_name]
    console = config.console_path(name)
    qemu_log = config.qemu_log(host_name, name)
    consoles.reset(console)
    LOG.info('guest %s: starting on host %s (uuid %s, %d MiB, touch %d MiB, %d pages/s, '
             'disk in %s)', name, host_name, uuid, memory_mib, touch_mib, dirty_pps,
             disk_pool or 'no pool')
    with _connect(config, host) as conn:
        disk_path = _ensure_disk(conn, name, disk_pool) if disk_pool else None
        xml = domain_xml(config, name, uuid, memory_mib, touch_mib, dirty_pps, disk_path,
                         beat_hz=beat_hz, frozen_mib=frozen_mib, profile=profile)
        dom = conn.call('define guest %s' % name, conn.conn.defineXML, xml,
                        error=errors.GuestError, log=qemu_log)
        conn.call('start guest %s' % name, dom.create, error=errors.GuestError, log=qemu_log)
        try:
            _wait_boot(config, conn, host, dom, boot_timeout)
            touched = consoles.touched_mib(console)
            if touched != touch_mib:
                raise errors.GuestError('guest %s on host %s touched %s MiB instead of %d '
                                        '(too little memory? console: %s)'
                                        % (name, host_name, touched, touch_mib, console))
        except errors.LabError:
            _remove(conn, dom)
            raise
        info = _info(config, conn, host, dom)
    LOG.info('guest %s runs on host %s (uuid %s, accelerator %s)', name, host_name, info.uuid,
             info.accelerator)
    return info


def _disk_name(guest_name):
    return '%s.img' % guest_name


def _ensure_disk(conn, guest_name, pool_name):
    """The path of the guest's disk in pool_name on conn's host, created if missing."""
    pool = conn.call('look up storage pool %s' % pool_name, conn.conn.storagePoolLookupByName,
                     pool_name, error=errors.GuestError)
    conn.call('refresh storage pool %s' % pool_name, pool.refresh, 0, error=errors.GuestError)
    volume = _find_volume(conn, pool, _disk_name(guest_name))
    if volume is None:
        volume = conn.call('create the disk of guest %s' % guest_name, pool.createXML,
                           hostconf.volume_xml(_disk_name(guest_name), DISK_MIB), 0,
                           error=errors.GuestError)
    return conn.call('read the path of the disk of guest %s' % guest_name, volume.path,
                     error=errors.GuestError)


def _find_volume(conn, pool, volume_name):
    names = conn.call('list the volumes of pool %s' % pool.name(), pool.listVolumes,
                      error=errors.GuestError)
    if volume_name not in names:
        return None
    return conn.call('look up volume %s' % volume_name, pool.storageVolLookupByName,
                     volume_name, error=errors.GuestError)


def _delete_disks(conn, guest_name):
    """Delete the guest's disk from every lab pool of conn's host; return the pools."""
    deleted = []
    for pool_name in DISK_POOLS:
        pool = conn.call('look up storage pool %s' % pool_name,
                         conn.conn.storagePoolLookupByName, pool_name, error=errors.GuestError)
        conn.call('refresh storage pool %s' % pool_name, pool.refresh, 0,
                  error=errors.GuestError)
        volume = _find_volume(conn, pool, _disk_name(guest_name))
        if volume is not None:
            conn.call('delete the disk of guest %s' % guest_name, volume.delete, 0,
                      error=errors.GuestError)
            deleted.append(pool_name)
    return deleted


def _wait_boot(config, conn, host, dom, timeout):
    name = dom.name()
    console = config.console_path(name)
    where = 'console: %s, log: %s' % (console, config.qemu_log(host.name, name))
    deadline = time.monotonic() + timeout
    while not consoles.heartbeats(console, tail_bytes=65536):
        if not conn.call('check guest %s' % name, dom.isActive, error=errors.GuestError):
            raise errors.GuestError('guest %s on host %s stopped during boot (%s)'
                                    % (name, host.name, where))
        if time.monotonic() > deadline:
            raise errors.LabTimeout('guest %s on host %s printed no heartbeat within %ds (%s)'
                                    % (name, host.name, timeout, where))
        time.sleep(0.5)


def _remove(conn, dom):
    """Best effort: destroy and undefine a guest that failed to start; never raises."""
    for what, fn in (('destroy', dom.destroy), ('undefine', dom.undefine)):
        try:
            conn.call('%s guest %s' % (what, dom.name()), fn, error=errors.GuestError)
        except errors.LabError as exc:
            LOG.warning('%s', exc)


def panic_guest(config, running_hosts, name):
    """Make guest ``name``'s kernel panic now (an NMI; see kernel_cmdline).

    :returns: the host it ran on. :raises GuestError: it runs nowhere.
    """
    for host in running_hosts:
        with _connect(config, host) as conn:
            dom = conn.find_domain(name)
            if dom is None or not dom.isActive():
                continue
            conn.call('inject an NMI into guest %s' % name, dom.injectNMI, 0,
                      error=errors.GuestError)
            LOG.info('guest %s on host %s: NMI injected (its kernel panics)', name,
                     host.name)
            return host.name
    raise errors.GuestError('guest %s runs on no host: nothing to panic' % name)


def stop_guest(config, running_hosts, name):
    """Destroy and undefine guest name on every running host, delete its disks (if any)
    from the lab pools; return the hosts it was on."""
    removed = []
    for host in running_hosts:
        with _connect(config, host) as conn:
            dom = conn.find_domain(name)
            if dom is None:
                continue
            if conn.call('check guest %s' % name, dom.isActive, error=errors.GuestError):
                LOG.info('guest %s: destroying it on host %s', name, host.name)
                conn.call('destroy guest %s' % name, dom.destroy, error=errors.GuestError,
                          log=config.qemu_log(host.name, name))
            if conn.call('check guest %s' % name, dom.isPersistent, error=errors.GuestError):
                conn.call('undefine guest %s' % name, dom.undefine, error=errors.GuestError)
            removed.append(host.name)
    for host in running_hosts:
        with _connect(config, host) as conn:
            for pool_name in _delete_disks(conn, name):
                LOG.info('guest %s: deleted its disk from pool %s of host %s', name,
                         pool_name, host.name)
    if not removed:
        LOG.info('guest %s: not found on any running host', name)
    return removed
