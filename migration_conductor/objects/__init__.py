"""Versioned objects shared by the conductor and the agents.

Call :func:`register_all` once before using ``objects.<Name>``; importing the modules
registers the classes and binds them as attributes of this package.
"""


_MODULES = ('claim', 'compute_host', 'destination', 'disk', 'host_migrations',
            'host_report', 'instance', 'migration', 'migration_job', 'migration_spec',
            'profile', 'source_facts')


def register_all():
    for name in _MODULES:
        __import__('migration_conductor.objects.%s' % name)
