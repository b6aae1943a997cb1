"""The configuration files of one lab host: libvirtd.conf, qemu.conf and its /etc/hosts.

Pure functions returning file contents; :mod:`tools.lab.hosts` writes them into the host's
private dirs before every start, so a changed setting takes effect on the next start.
"""

from xml.sax.saxutils import escape

LIBVIRTD_CONF = '''\
# Written by tools.lab for lab host {name}; rewritten at every start.
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "{tcp_port}"
# NOTE: no authentication: lab only, loopback only.
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
# libvirt refuses to migrate between hosts with the same UUID.
host_uuid = "{host_uuid}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''

QEMU_CONF = '''\
# Written by tools.lab for lab host {name}; rewritten at every start.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
# QEMU's stdout/stderr go straight to /var/log/libvirt/qemu/<guest>.log: no virtlogd.
stdio_handler = "file"
# NOTE: no cgroups: every lab host shares the machine's cgroup tree, and two hosts would
# otherwise both use machine/qemu-1-<guest> (same domain id, same name) for different QEMUs.
cgroup_controllers = [ ]
# NOTE: QEMU stays in the host's mount namespace (no private /dev per guest), which is how
# the lab finds a host's QEMU processes (see tools.lab.processes).
namespaces = [ ]
# Incoming migrations use ports no other lab host uses. NOTE: migration_address and
# migration_host cannot be 127.0.0.1 (libvirt rejects a local address there and refuses to
# start); see tools.lab.hosts for how the listen address stays on loopback.
migration_port_min = {migration_port_min}
migration_port_max = {migration_port_max}
'''


def libvirtd_conf(name, tcp_port, host_uuid):
    return LIBVIRTD_CONF.format(name=name, tcp_port=tcp_port, host_uuid=host_uuid)


def qemu_conf(name, migration_ports):
    return QEMU_CONF.format(name=name, migration_port_min=migration_ports[0],
                            migration_port_max=migration_ports[1])


def hosts_file(name, machine_hosts):
    """The host's /etc/hosts: the machine's, then the host's own name on loopback.

    So that libvirtd's lookups of its own hostname never reach DNS (see tools.lab.hosts).
    """
    lines = machine_hosts.rstrip('\n')
    head = '%s\n' % lines if lines else ''
    return ('%s# Added by tools.lab for lab host %s; rewritten at every start.\n'
            '127.0.0.1 %s\n' % (head, name, name))


def pool_xml(name, path, uuid=None):
    """A dir storage pool; path is as the host sees it (inside its namespace).

    :param uuid: the pool's UUID, or None for one of libvirt's choosing. A pool on
        storage every host sees gets the same UUID on every host (the project's rule for
        shared storage, see compute_agent.virt.driver).
    """
    uuid_xml = '<uuid>%s</uuid>' % escape(uuid) if uuid else ''
    return ("<pool type='dir'><name>%s</name>%s<target><path>%s</path></target></pool>"
            % (escape(name), uuid_xml, escape(path)))


def volume_xml(name, capacity_mib):
    """A raw volume of capacity_mib MiB."""
    return ("<volume><name>%s</name><capacity unit='MiB'>%d</capacity>"
            "<target><format type='raw'/></target></volume>" % (escape(name), capacity_mib))
