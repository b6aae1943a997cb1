"""Options of the [migration_profiles] group: where profiles are defined, which applies.

The profiles themselves are defined in one YAML file (``profiles_file``), read and
validated when the conductor starts (:mod:`migration_conductor.profiles`).
"""

from oslo_config import cfg

from migration_conductor.conf import groups

profiles_group = cfg.OptGroup(
    'migration_profiles', title='Migration profiles',
    help='Migration profiles: named availability contracts (maximum downtime, '
         'completion budget, what to do when it runs out, whether post-copy and '
         'auto-converge are allowed, bandwidth) applied to live migrations.')

profiles_opts = [
    cfg.StrOpt('profiles_file',
               default='migration-profiles.yaml',  # profiles.PROFILES_FILE_DEFAULT
               help='YAML file defining the migration profiles, a mapping of profile '
                    'name to its settings (see the README and `migctl profile show '
                    'default` for every setting). A relative path is looked up next '
                    'to the configuration files. A missing file defines no profile: '
                    'only the built-in ones (default, nova-defaults) exist. A profile '
                    'the file gets wrong stops the conductor at start with one line '
                    'naming it.'),
    cfg.StrOpt('default_profile',
               default='default',
               help='The profile of a migration whose caller names none and whose '
                    'instance names none in its libvirt metadata.'),
    cfg.IntOpt('assumed_bandwidth_mib',
               default=1024, min=1,
               help='MiB/s the forecast assumes a migration stream carries when the '
                    'profile sets no bandwidth limit and no migration between the two '
                    'hosts completed yet to measure it from.'),
]


def register_opts(conf):
    groups.register(conf, profiles_group, profiles_opts)


def list_opts():
    return {profiles_group: profiles_opts}
