"""HostMigrations: what a (re)started agent must hold and watch for the conductor.

The conductor's answer to ``get_host_migrations``: the claims of migrations coming to
the host (held again after a restart) and the migrations leaving it whose libvirt job
may be running (watched again: the agent's monitor resumes reporting them).
"""

from migration_conductor.objects import base
from migration_conductor.objects import fields


@base.MigrationConductorObjectRegistry.register
class HostMigrations(base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.StringField(),
        'claims': fields.ObjectField('ResourceClaimList'),
        'outgoing': fields.ObjectField('MigrationJobList'),
        # Seconds between two progress reports of a job watched again.
        'report_interval': fields.FloatField(),
    }
