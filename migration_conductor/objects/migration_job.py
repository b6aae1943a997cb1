"""The migration job as the source agent reports it: its state and its progress.

``JobProgress`` carries libvirt's job statistics (bytes, bytes per second, ms);
``MigrationJob`` is what the source agent says about one migration's job: in the answer
of ``start_migration`` and ``get_migration_job``, and in what its monitor pushes to the
conductor (``migration_progress`` while it runs, ``migration_job_ended`` when it ends).
"""

from oslo_utils import versionutils

from migration_conductor.objects import base
from migration_conductor.objects import fields

# The figures of a JobProgress (and of the driver's statistics dicts), besides type.
FIGURES = ('memory_total', 'memory_processed', 'memory_remaining', 'disk_total',
           'disk_processed', 'disk_remaining', 'dirty_rate', 'iteration',
           'expected_downtime_ms', 'downtime_ms', 'total_time_ms')


@base.MigrationConductorObjectRegistry.register
class JobProgress(base.MigrationConductorObject):
    """One reading of a job's statistics. Sizes are bytes: ``memory_processed``
    counts every page sent, pages sent again after the guest dirtied them included, so
    it grows past ``memory_total`` when pre-copy needs several passes. ``dirty_rate``
    is bytes per second; ``expected_downtime_ms`` is QEMU's estimate while the job
    runs, ``downtime_ms`` the real one once it completed; ``total_time_ms`` is
    libvirt's time of the job itself."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = dict({name: fields.IntegerField(nullable=True, default=None)
                   for name in FIGURES},
                  job_type=fields.JobTypeField(default=fields.JobType.UNKNOWN),
                  postcopy=fields.BooleanField(default=False))

    @classmethod
    def from_stats(cls, stats):
        """From a driver's job statistics dict (``ComputeDriver.get_job_stats``)."""
        job_type = stats.get('type')
        if job_type not in fields.JobType.ALL:
            job_type = fields.JobType.UNKNOWN
        return cls(job_type=job_type, postcopy=bool(stats.get('postcopy')),
                   **{name: stats.get(name) for name in FIGURES})

    def to_stats(self):
        """The driver's statistics dict of this reading (as RPC 1.1-1.3 sent it)."""
        stats = {name: getattr(self, name) for name in FIGURES}
        stats.update(type=self.job_type, postcopy=self.postcopy)
        return stats

    @property
    def active(self):
        return self.job_type in fields.JobType.ACTIVE

    def values(self, names=FIGURES):
        """The figures that are known, as a dict (for the database)."""
        return {name: getattr(self, name) for name in names
                if getattr(self, name) is not None}


@base.MigrationConductorObjectRegistry.register
class MigrationJob(base.MigrationConductorObject):
    """A migration's job on its source host: state, latest progress, how it ended."""

    # Version 1.0: Initial version
    # Version 1.1: postcopy
    VERSION = '1.1'

    obj_relationships = {'progress': [('1.0', '1.0')]}

    fields = {
        'migration_uuid': fields.UUIDField(),
        'instance_uuid': fields.UUIDField(),
        'host': fields.StringField(),
        'state': fields.JobStateField(),
        'progress': fields.ObjectField('JobProgress', nullable=True, default=None),
        'error': fields.StringField(nullable=True, default=None),
        # The guest was paused so that pre-copy converges (force complete).
        'force_completed': fields.BooleanField(default=False),
        # The job switched to post-copy (set at its end when it failed after the
        # switch: the source's copy is then incomplete, nothing may be rolled back).
        'postcopy': fields.BooleanField(default=False),
    }

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        if versionutils.convert_version_to_tuple(target_version) < (1, 1):
            primitive.pop('postcopy', None)

    @property
    def ended(self):
        return self.state in fields.JobState.ENDED

    @classmethod
    def from_legacy(cls, migration_uuid, instance_uuid, host, values):
        """From the status dict of an agent of RPC 1.1-1.3."""
        stats = values.get('stats')
        return cls(migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                   host=host, state=values['state'],
                   progress=None if not stats else JobProgress.from_stats(stats),
                   error=values.get('error'),
                   force_completed=bool(values.get('force_completed', False)))


@base.MigrationConductorObjectRegistry.register
class MigrationJobList(base.ObjectListBase, base.MigrationConductorObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {'objects': fields.ListOfObjectsField('MigrationJob')}
