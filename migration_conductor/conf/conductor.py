"""Options of the [conductor] group: the central service that owns every migration."""

from oslo_config import cfg

from migration_conductor.conf import groups

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
    cfg.IntOpt('max_placement_attempts',
               default=3, min=1,
               help='How many destinations a migration tries, in the scheduler\'s order, '
                    'before it fails with "no valid host": a destination whose checks or '
                    'claim fail sends the migration to the next one.'),
    cfg.IntOpt('max_outbound_per_host',
               default=2, min=1,
               help='Migrations leaving one host at the same time; more wait in the '
                    '"queued" status, first come first served per host. Give every '
                    'conductor of a deployment the same value.'),
    cfg.IntOpt('max_inbound_per_host',
               default=2, min=1,
               help='Migrations arriving on one host at the same time; more wait in the '
                    '"queued" status, first come first served per host. Give every '
                    'conductor of a deployment the same value.'),
    cfg.FloatOpt('monitor_interval',
                 default=1.0, min=0.05,
                 help='Seconds between two progress reports of a running migration: the '
                      'source agent\'s monitor sends one this often, and the conductor '
                      'records each.'),
    cfg.FloatOpt('monitor_silence_timeout',
                 default=10.0, min=0.1,
                 help='Seconds without any report from the source agent of a running '
                      'migration after which the conductor asks that agent itself for '
                      'the job\'s state (a report lost, or the agent restarting). A '
                      'source that stays silent for [conductor] service_down_time is '
                      'judged by the destination: the guest runs there (the migration '
                      'completed), an incoming copy waits there (the job goes on), or '
                      'nothing is there (the job ended). Never shorter than '
                      'monitor_interval.'),
    cfg.IntOpt('precheck_timeout',
               default=15, min=1,
               help='Seconds a pre-check call (check source, check destination, claim, '
                    'prepare) or a roll-back call waits for an agent. A destination that '
                    'does not answer in time is refused as unavailable and the next '
                    'candidate is tried. Keep [agent] claims_restore_timeout below it.'),
    cfg.FloatOpt('queue_poll_interval',
                 default=2.0, min=0.1,
                 help='Seconds between two looks of a conductor at the migrations '
                      'queued for a slot of their hosts (a slot freed by this conductor '
                      'is given at once; one freed by another conductor is seen at the '
                      'next look).'),
    cfg.IntOpt('missing_instance_expiry',
               default=86400, min=0,
               help='Seconds after which an instance that its host no longer reports '
                    '(power state "missing") is forgotten, unless a migration holds it. '
                    '0 keeps such instances until an operator removes them (migctl '
                    'instance delete).'),
    cfg.IntOpt('migration_workers',
               default=16, min=1,
               help='Migrations this conductor drives at the same time (threads).'),
    cfg.IntOpt('bandwidth_mib',
               default=0, min=0,
               help='Site-wide cap on the bandwidth of every migration, in MiB/s (the '
                    'lower of it and the migration profile\'s limit applies); 0 means '
                    'no cap. The maximum downtime and everything else of a migration '
                    'come from its profile ([migration_profiles]).'),
    cfg.StrOpt('jobboard_url',
               default='', secret=True,
               help='Redis holding the taskflow jobboard through which several '
                    'conductors share the migrations, e.g. redis://127.0.0.1:6379/0 '
                    '(redis://:password@host:port/db). Each migration is a job that one '
                    'conductor claims and drives; when that conductor dies its claim '
                    'expires and another one resumes the migration. Empty: one conductor '
                    'drives every migration it accepts and resumes every unfinished one '
                    'when it starts (run a single conductor then).'),
    cfg.StrOpt('jobboard_namespace',
               default='migration_conductor',
               help='Prefix of the jobboard\'s keys in Redis; conductors that share '
                    'migrations share it.'),
    cfg.FloatOpt('jobboard_claim_expiry',
                 default=30, min=1,
                 help='Seconds a conductor\'s claim on a migration lives without being '
                      'renewed (it renews it every third of this): how long a dead '
                      'conductor\'s migrations wait before another conductor resumes '
                      'them.'),
    cfg.FloatOpt('jobboard_poll_interval',
                 default=2, min=0.1,
                 help='Seconds between two looks of a conductor for migrations no '
                      'conductor drives.'),
]


def register_opts(conf):
    groups.register(conf, conductor_group, conductor_opts)


def list_opts():
    return {conductor_group: conductor_opts}
