"""Options of the [conductor] group: the central service that owns every migration."""

from oslo_config import cfg

conductor_group = cfg.OptGroup(
    'conductor', title='Conductor options',
    help='Options of the migration conductor service.')

conductor_opts = [
    cfg.StrOpt('topic',
               default='migration_conductor',
               help='RPC topic the conductor listens on. Callers (nova-api, migctl) and '
                    'agents send to this topic.'),
    cfg.IntOpt('service_down_time',
               default=60, min=1,
               help='Seconds after the last heartbeat of an agent after which its host '
                    'is considered down. Keep it at least three times '
                    '[agent] heartbeat_interval.'),
    cfg.IntOpt('rpc_response_timeout',
               default=60, min=1,
               help='Seconds the conductor waits for an agent to answer a call before '
                    'the call fails with a timeout.'),
]


def register_opts(conf):
    conf.register_group(conductor_group)
    conf.register_opts(conductor_opts, group=conductor_group)


def list_opts():
    return {conductor_group: conductor_opts}
