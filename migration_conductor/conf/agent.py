"""Options of the [agent] group: the thin per-host compute agent."""

from oslo_config import cfg

from migration_conductor.conf import groups

agent_group = cfg.OptGroup(
    'agent', title='Compute agent options',
    help='Options of the per-host compute agent.')

agent_opts = [
    cfg.StrOpt('topic',
               default='compute_agent',
               help='RPC topic of the agents. Each agent listens on this topic with its '
                    'own host name as the server, so the conductor can address one host.'),
    cfg.StrOpt('virt_driver',
               default='libvirt',
               choices=[('libvirt', 'Drive a real libvirtd at [libvirt] connection_uri.'),
                        ('simulated', 'An in-memory model of a host, for tests and '
                                      'scale experiments; runs no guest.')],
               help='Virt driver the agent uses to run and inspect guests.'),
    cfg.IntOpt('heartbeat_interval',
               default=10, min=1,
               help='Seconds between two reports of this host\'s inventory and guests to '
                    'the conductor.'),
    cfg.StrOpt('migration_address',
               default='127.0.0.1',
               help='Address other hosts use to reach this host for the migration data '
                    'stream (QEMU migration and NBD). It must be reachable from every '
                    'other host of the deployment.'),
    cfg.StrOpt('advertised_libvirt_uri',
               help='libvirt URI under which other hosts reach this host\'s libvirtd for '
                    'peer-to-peer migration. Defaults to [libvirt] connection_uri.'),
    cfg.IntOpt('reserved_host_memory_mb',
               default=512, min=0,
               help='Memory in MiB kept for the host itself: never claimed for guests.'),
    cfg.FloatOpt('cpu_allocation_ratio',
                 default=4.0, min=0.0,
                 help='vCPUs this host may give to guests per physical CPU; claims for '
                      'incoming migrations fail beyond it.'),
    cfg.IntOpt('claims_restore_timeout',
               default=10, min=1,
               help='Seconds a pre-check or claim for an incoming migration waits, after '
                    'this agent started, for the agent to learn from the conductor the '
                    'claims it held before it restarted; past it the request is refused. '
                    'Keep it below [conductor] precheck_timeout.'),
    cfg.IntOpt('claims_reconcile_interval',
               default=60, min=0,
               help='Seconds between two comparisons of the claims this agent holds with '
                    'the ones the conductor lists for its host; a claim the conductor no '
                    'longer lists (its migration ended while the release was missed) is '
                    'dropped. 0 disables the comparison.'),
    cfg.IntOpt('migration_start_timeout',
               default=30, min=1,
               help='Seconds to wait for the libvirt migration job to appear after the '
                    'migration was started, before the start is reported as failed.'),
]


def register_opts(conf):
    groups.register(conf, agent_group, agent_opts)


def list_opts():
    return {agent_group: agent_opts}
