"""Options of the [upgrade_levels] group: RPC version caps during a rolling upgrade.

As Nova's group of that name: upgrade the conductors first, then the agents. Until every
agent runs the new release, the conductors may be told to send the agents nothing newer
than the old release understands; agents may likewise be capped towards a conductor.
"""

from oslo_config import cfg

from migration_conductor.conf import groups

upgrade_levels_group = cfg.OptGroup(
    'upgrade_levels', title='RPC version caps',
    help='Highest RPC API versions to send while services of several releases run.')

upgrade_levels_opts = [
    cfg.StrOpt('compute_agent',
               help='Highest version of the agents\' RPC API the conductor sends, e.g. '
                    '"1.3" while agents of the previous release still run. Unset: each '
                    'agent is sent the newest version its reported service version '
                    'serves. The conductor never sends more than either says.'),
    cfg.StrOpt('conductor',
               help='Highest version of the conductor\'s RPC API that agents and migctl '
                    'send, e.g. "1.3" if a conductor of the previous release still runs '
                    '(agents then report progress only when asked). Unset: the newest '
                    'this release knows.'),
]


def register_opts(conf):
    groups.register(conf, upgrade_levels_group, upgrade_levels_opts)


def list_opts():
    return {upgrade_levels_group: upgrade_levels_opts}
