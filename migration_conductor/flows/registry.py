"""The flows a conductor can run, keyed by migration type.

Each flow module registers itself at import with :func:`register`: the migration type it
serves (``objects.fields.MigrationType``), the name its flow details are saved under,
and the function that builds the flow from the conductor's task services. The runner
(:mod:`.runner`) only asks this registry: a new kind of migration (cold migration,
resize) adds a flow module and one line in :data:`FLOW_MODULES`, and creating, running,
resuming and sharing its migrations through the jobboard work as for live migrations.

Thread-safety: registration happens at import, before any flow runs; lookups only read.
"""

import collections
import importlib

from migration_conductor import exception

FlowType = collections.namedtuple('FlowType', 'migration_type name build')

# The modules that register the project's flows (imported by :func:`load_all`).
FLOW_MODULES = ('migration_conductor.flows.live_migration',)

_BY_TYPE = {}
_BY_NAME = {}


def register(migration_type, name, build):
    """Register the flow of ``migration_type``, saved as ``name``, built by
    ``build(services)``; returns the FlowType.

    :raises ValueError: the type or the name is registered already (to another flow).
    """
    flow_type = FlowType(migration_type, name, build)
    for registry, key in ((_BY_TYPE, migration_type), (_BY_NAME, name)):
        if registry.get(key, flow_type) != flow_type:
            raise ValueError('flow %r already registered for %r' % (registry[key], key))
    _BY_TYPE[migration_type] = flow_type
    _BY_NAME[name] = flow_type
    return flow_type


def unregister(migration_type):
    """Forget the flow of ``migration_type`` (tests)."""
    flow_type = _BY_TYPE.pop(migration_type, None)
    if flow_type is not None:
        _BY_NAME.pop(flow_type.name, None)


def load_all():
    for module in FLOW_MODULES:
        importlib.import_module(module)


def for_type(migration_type):
    """The FlowType of ``migration_type``.

    :raises Invalid: no flow serves that type of migration in this conductor.
    """
    load_all()
    try:
        return _BY_TYPE[migration_type]
    except KeyError:
        raise exception.Invalid(reason='no flow for %s migrations in this conductor '
                                       '(it has: %s)'
                                       % (migration_type, ', '.join(sorted(_BY_TYPE))))


def for_name(name):
    """The FlowType whose flow details are saved as ``name``.

    :raises Invalid: unknown (a flow of a newer conductor).
    """
    load_all()
    try:
        return _BY_NAME[name]
    except KeyError:
        raise exception.Invalid(reason='no flow named %r in this conductor (it has: %s)'
                                       % (name, ', '.join(sorted(_BY_NAME))))
