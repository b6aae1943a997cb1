"""Host: what is read once per libvirt connection, and what is read at every call.

A fake connection counts the libvirt calls and can "die" (``isAlive`` false, as after a
libvirtd restart) so that :class:`Host` opens the next one; each fake connection
answers as the libvirtd behind it would (its own host UUID, CPU, memory).
"""

import collections

import libvirt
import pytest

from compute_agent.virt.libvirt import host as libvirt_host

CAPS = """<capabilities><host><uuid>%s</uuid><cpu><arch>x86_64</arch>
<model>Skylake-Client</model><vendor>Intel</vendor>
<feature name='vmx'/><feature name='%s'/></cpu></host>
<guest><os_type>hvm</os_type></guest></capabilities>"""
CPU_A = "<cpu><arch>x86_64</arch><model>Skylake-Client</model></cpu>"
CPU_B = "<cpu><arch>x86_64</arch><model>Haswell</model></cpu>"
MIB = 2 ** 20


def _error(code, message):
    exc = libvirt_host.libvirtError(message)
    exc.err = (code, 10, message, 2, None, None, None, 0, 0)
    return exc


class FakeConnection:
    """One connection to a libvirtd of host ``host_uuid``; ``calls`` counts by name."""

    def __init__(self, host_uuid, feature='ssse3', free_mib=1000, qemu_version=7002000):
        self.host_uuid, self.feature = host_uuid, feature
        self.free_mib, self.qemu_version = free_mib, qemu_version
        self.alive = True
        self.calls = collections.Counter()
        self.cpu_answers = {}   # cpu_xml -> a result or a libvirtError to raise

    def _count(self, name):
        self.calls[name] += 1

    def isAlive(self):
        return self.alive

    def close(self):
        self._count('close')

    def getCapabilities(self):
        self._count('getCapabilities')
        return CAPS % (self.host_uuid, self.feature)

    def getInfo(self):
        self._count('getInfo')
        return ['x86_64', 4096, 2, 2000, 1, 1, 2, 1]

    def getFreeMemory(self):
        self._count('getFreeMemory')
        return self.free_mib * MIB

    def getType(self):
        self._count('getType')
        return 'QEMU'

    def getVersion(self):
        self._count('getVersion')
        return self.qemu_version

    def getLibVersion(self):
        self._count('getLibVersion')
        return 9000000

    def compareCPU(self, cpu_xml, flags):
        self._count('compareCPU')
        answer = self.cpu_answers.get(cpu_xml, libvirt.VIR_CPU_COMPARE_IDENTICAL)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Opener:
    """open_connection for Host: hands out the given connections in turn."""

    def __init__(self, *connections):
        self.connections = list(connections)
        self.opened = []

    def __call__(self, uri):
        conn = self.connections.pop(0)
        self.opened.append(conn)
        return conn


def _host(*connections):
    opener = Opener(*connections)
    return libvirt_host.Host('qemu+tcp://fake/system', open_connection=opener), opener


def test_capabilities_are_read_once_per_connection():
    conn = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    host, _ = _host(conn)
    first = host.get_capabilities()
    first['cpu_features'].append('changed by a caller')
    first['host_uuid'] = 'changed by a caller'
    second = host.get_capabilities()
    assert conn.calls['getCapabilities'] == 1
    assert second['host_uuid'] == 'aaaaaaaa-0000-4000-8000-000000000001'
    assert second['cpu_features'] == ['ssse3', 'vmx']
    assert second['cpu_model'] == 'Skylake-Client'
    assert '<model>Skylake-Client</model>' in second['cpu_xml']


def test_a_new_connection_reads_the_capabilities_again():
    # libvirtd restarted (the connection died) with another host UUID and CPU.
    old = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001', feature='ssse3')
    new = FakeConnection('bbbbbbbb-0000-4000-8000-000000000002', feature='avx2')
    host, opener = _host(old, new)
    assert host.get_capabilities()['host_uuid'] == old.host_uuid
    old.alive = False
    caps = host.get_capabilities()
    assert opener.opened == [old, new]
    assert caps['host_uuid'] == new.host_uuid
    assert caps['cpu_features'] == ['avx2', 'vmx']
    assert host.get_capabilities() == caps
    assert (old.calls['getCapabilities'], new.calls['getCapabilities']) == (1, 1)


def test_close_forgets_what_was_read_on_the_connection():
    old = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    new = FakeConnection('bbbbbbbb-0000-4000-8000-000000000002')
    host, _ = _host(old, new)
    host.get_capabilities()
    host.get_info()
    host.close()
    assert host.get_capabilities()['host_uuid'] == new.host_uuid
    host.get_info()
    assert new.calls['getCapabilities'] == 1
    assert new.calls['getType'] == new.calls['getLibVersion'] == 1


def test_host_state_is_read_at_every_call():
    conn = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001', free_mib=1000)
    host, _ = _host(conn)
    first = host.get_info()
    conn.free_mib, conn.qemu_version = 600, 8000000     # a guest started; QEMU upgraded
    second = host.get_info()
    assert (first['memory_mb_free'], second['memory_mb_free']) == (1000, 600)
    assert (first['hypervisor_version'], second['hypervisor_version']) == (7002000,
                                                                           8000000)
    assert second == {'memory_mb': 4096, 'vcpus': 2, 'memory_mb_free': 600,
                      'hypervisor_type': 'QEMU', 'hypervisor_version': 8000000,
                      'libvirt_version': 9000000}
    for name in ('getInfo', 'getFreeMemory', 'getVersion'):
        assert conn.calls[name] == 2, name
    # Fixed while libvirtd runs: once per connection.
    assert conn.calls['getType'] == conn.calls['getLibVersion'] == 1


def test_a_cpu_verdict_is_kept_per_connection_and_cpu():
    old = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    new = FakeConnection('bbbbbbbb-0000-4000-8000-000000000002')
    incompatible = _error(libvirt.VIR_ERR_CPU_INCOMPATIBLE,
                          'the CPU is incompatible with host CPU: Host CPU does not '
                          'provide required features: avx2')
    old.cpu_answers[CPU_B] = incompatible
    host, _ = _host(old, new)
    assert host.compare_cpu(CPU_A) is None
    assert host.compare_cpu(CPU_A) is None
    assert 'avx2' in host.compare_cpu(CPU_B)
    assert host.compare_cpu(CPU_B) == host.compare_cpu(CPU_B)
    assert old.calls['compareCPU'] == 2          # once per CPU description
    old.cpu_answers[CPU_A] = libvirt.VIR_CPU_COMPARE_INCOMPATIBLE
    assert host.compare_cpu(CPU_A) is None       # same libvirtd: same verdict kept
    # Another libvirtd (restarted, maybe on other silicon) is asked again.
    old.alive = False
    new.cpu_answers[CPU_A] = libvirt.VIR_CPU_COMPARE_INCOMPATIBLE
    assert host.compare_cpu(CPU_A) == 'libvirt judges it incompatible'
    assert host.compare_cpu(CPU_B) is None
    assert new.calls['compareCPU'] == 2


@pytest.mark.parametrize('answer, verdict', [
    (_error(libvirt.VIR_ERR_INTERNAL_ERROR, 'internal error: cannot read cpu map'),
     "libvirt cannot compare it with this host's CPU: internal error: cannot read cpu "
     "map"),
    (_error(libvirt.VIR_ERR_NO_SUPPORT, 'this function is not supported'), None),
])
def test_a_failed_cpu_comparison_is_asked_again(answer, verdict):
    conn = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    conn.cpu_answers[CPU_A] = answer
    host, _ = _host(conn)
    assert host.compare_cpu(CPU_A) == verdict
    assert host.compare_cpu(CPU_A) == verdict
    assert conn.calls['compareCPU'] == 2
    del conn.cpu_answers[CPU_A]                  # libvirt answers now
    assert host.compare_cpu(CPU_A) is None
    assert host.compare_cpu(CPU_A) is None
    assert conn.calls['compareCPU'] == 3


def test_cpu_verdicts_beyond_the_bound_drop_the_oldest(monkeypatch):
    monkeypatch.setattr(libvirt_host, 'CPU_COMPARISONS_KEPT', 2)
    conn = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    host, _ = _host(conn)
    cpus = ['<cpu><model>m%d</model></cpu>' % i for i in range(3)]
    for cpu in cpus:
        host.compare_cpu(cpu)
    assert conn.calls['compareCPU'] == 3
    host.compare_cpu(cpus[2])
    host.compare_cpu(cpus[1])
    assert conn.calls['compareCPU'] == 3         # the two newest are kept
    host.compare_cpu(cpus[0])
    assert conn.calls['compareCPU'] == 4         # the oldest was dropped
    host.get_capabilities()                      # other facts do not count
    assert conn.calls['getCapabilities'] == 1


def test_a_fact_read_on_a_replaced_connection_is_not_kept():
    old = FakeConnection('aaaaaaaa-0000-4000-8000-000000000001')
    new = FakeConnection('bbbbbbbb-0000-4000-8000-000000000002')
    host, _ = _host(old, new)
    conn = host.get_connection()

    def read_while_libvirtd_restarts():
        old.alive = False
        host.get_connection()                    # another thread reconnects meanwhile
        return 'read on the old connection'

    assert host._fact(conn, ('k',), read_while_libvirtd_restarts) == \
        'read on the old connection'
    assert host._fact(host.get_connection(), ('k',), lambda: 'read on the new one') == \
        'read on the new one'
    assert host._fact(conn, ('k',), lambda: 'old again') == 'old again'
