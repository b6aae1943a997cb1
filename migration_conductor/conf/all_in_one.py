"""Options of the [all_in_one] group: conductor and agents in one process.

The all-in-one mode is the embedded default: with the in-process ``fake:/`` transport the
conductor and the agents listed here run as threads of the same process, each agent with
its own virt driver and host name, exactly as they would as separate services.
"""

from oslo_config import cfg

from migration_conductor.conf import groups

all_in_one_group = cfg.OptGroup(
    'all_in_one', title='All-in-one mode',
    help='Agents run inside the conductor process (embedded default).')

all_in_one_opts = [
    cfg.ListOpt('agents',
                default=[],
                item_type=cfg.types.String(),
                help='Agents to run inside this process, as HOST=URI items: HOST is the '
                     'agent\'s host name, URI the libvirt connection URI of its host, or '
                     '"simulated://" for the simulated driver. Example: '
                     'lab-1=qemu+tcp://127.0.0.1:16601/system,'
                     'lab-2=qemu+tcp://127.0.0.1:16602/system'),
    cfg.IntOpt('startup_timeout',
               default=30, min=1,
               help='Seconds to wait for every in-process agent to register with the '
                    'conductor at start-up.'),
]


def register_opts(conf):
    groups.register(conf, all_in_one_group, all_in_one_opts)


def list_opts():
    return {all_in_one_group: all_in_one_opts}
