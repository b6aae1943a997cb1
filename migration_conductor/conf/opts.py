"""Entry point of ``oslo-config-generator`` (namespace ``migration_conductor``)."""

from migration_conductor.conf import agent
from migration_conductor.conf import all_in_one
from migration_conductor.conf import conductor
from migration_conductor.conf import default
from migration_conductor.conf import libvirt
from migration_conductor.conf import migration_profiles
from migration_conductor.conf import simulated
from migration_conductor.conf import upgrade_levels

_MODULES = (default, conductor, migration_profiles, agent, libvirt, simulated, all_in_one,
            upgrade_levels)


def list_opts():
    """Return ``[(group, [opts])]`` for every option group of the project."""
    result = []
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            result.append((group, opts))
    return result
