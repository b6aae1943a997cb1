"""Configuration of migration-conductor: one module per option group.

Nothing here reads an option at import time. ``register_opts(conf)`` registers every group
on a ``cfg.ConfigOpts`` object; services call it once at start. ``CONF`` is the process-wide
object used by the console scripts; tests build their own ``cfg.ConfigOpts``.
"""

from oslo_config import cfg

from migration_conductor.conf import agent
from migration_conductor.conf import all_in_one
from migration_conductor.conf import conductor
from migration_conductor.conf import database
from migration_conductor.conf import default
from migration_conductor.conf import libvirt
from migration_conductor.conf import migration_profiles
from migration_conductor.conf import simulated
from migration_conductor.conf import upgrade_levels

CONF = cfg.CONF

_MODULES = (default, conductor, migration_profiles, agent, libvirt, simulated, all_in_one,
            upgrade_levels)


def register_opts(conf):
    """Register the option groups every service uses, on ``conf`` (idempotent).

    The ``[database]`` group is not among them: agents hold no database credentials,
    so only conductor-side commands call :func:`register_database_opts`.
    """
    for module in _MODULES:
        module.register_opts(conf)


def register_database_opts(conf):
    """Register ``[database]`` (conductor, migctl all-in-one, manage)."""
    database.register_opts(conf)
