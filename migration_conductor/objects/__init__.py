"""Versioned objects shared by the conductor and the agents.

Call :func:`register_all` once before using ``objects.<Name>``; importing the modules
registers the classes and binds them as attributes of this package.
"""


def register_all():
    __import__('migration_conductor.objects.compute_host')
    __import__('migration_conductor.objects.host_report')
    __import__('migration_conductor.objects.instance')
    __import__('migration_conductor.objects.migration')
