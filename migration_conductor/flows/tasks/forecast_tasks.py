"""The forecast step: predict the migration under its profile, choose how it ends.

``ForecastMigration`` runs once the destination is chosen and claimed, before anything
is prepared or moved: from the guest's dirty rate (measured by the source check), its
size and the disks to copy, and the bandwidth the stream will get, it makes the
forecast of :mod:`migration_conductor.forecast`, stores it and the chosen strategy on
the migration, records it as an event, and turns the profile into the
:class:`~migration_conductor.objects.profile.CompletionPlan` the source agent's monitor
applies. A profile that cannot be met refuses the migration here
(``ProfileCannotBeMet``): the flow rolls back the claim and the migration ends
``failed`` with the forecast's reason, the guest untouched on the source.

The bandwidth, in order: the profile's limit (capped by ``[conductor] bandwidth_mib``
when both are set), the site-wide ``[conductor] bandwidth_mib``, the median throughput
of the last completed migrations between the same two hosts (``measured``), else
``[migration_profiles] assumed_bandwidth_mib``.
"""

import statistics

from db import api as db_api
from migration_conductor import forecast as migration_forecast
from migration_conductor import job_reports
from migration_conductor import objects
from migration_conductor import profiles as migration_profiles
from migration_conductor.flows import constants as c
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

MIB = 1024 * 1024
# Completed migrations between two hosts whose throughput gives the measured bandwidth.
MEASURED_MIGRATIONS = 5
# A migration shorter than this says little about the link (setup dominates).
MEASURED_MIN_JOB_MS = 1000


def bandwidth_limit_mib(conf, profile):
    """The migration's bandwidth limit in MiB/s (the profile's, capped by the site's),
    or 0 for none."""
    limits = [limit for limit in (profile.bandwidth_mib, conf.conductor.bandwidth_mib)
              if limit]
    return min(limits) if limits else 0


def measured_bandwidth(context, source_host, dest_host):
    """Bytes per second of the last completed migrations from source to destination
    (median), or None."""
    rows = db_api.migration_list(context, status=states.COMPLETED, host=source_host,
                                 limit=50)
    rates = [row['memory_processed'] / (row['total_time_ms'] / 1000.0)
             for row in rows
             if row['source_host'] == source_host and row['dest_host'] == dest_host
             and row['memory_processed'] and (row['total_time_ms'] or 0)
             >= MEASURED_MIN_JOB_MS][:MEASURED_MIGRATIONS]
    return statistics.median(rates) if rates else None


def completion_plan(profile, forecast, memory_bytes, disk_bytes):
    """The CompletionPlan of a migration under ``profile`` with that forecast."""
    schedule = migration_profiles.downtime_schedule(profile, memory_bytes, disk_bytes)
    after = 0
    if forecast.strategy == fields.Strategy.POSTCOPY_AFTER_FIRST_PASS:
        after = 1
    elif (forecast.strategy == fields.Strategy.PRECOPY and profile.postcopy_allowed
          and profile.max_precopy_passes):
        after = profile.max_precopy_passes
    return objects.CompletionPlan(
        postcopy_after_pass=after,
        profile=profile.name, strategy=forecast.strategy,
        downtime_at_s=[at for at, _ms in schedule],
        downtime_ms=[ms for _at, ms in schedule],
        budget_s=migration_profiles.completion_budget(profile, memory_bytes, disk_bytes),
        on_timeout=profile.on_timeout, postcopy_allowed=profile.postcopy_allowed)


class ForecastMigration(base.MigrationTask):
    """Forecast the migration under its profile; store it; return the plan."""

    phase = fields.MigrationPhase.CHECK_SOURCE
    default_provides = c.COMPLETION_PLAN

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host,
                source_facts, destination_check=None):
        self.ensure_driven(migration_uuid)
        row = db_api.migration_get(self.context, migration_uuid)
        profile = self.profile_of(row)
        facts = base.load(objects.SourceFacts, source_facts, source_host)
        memory = facts.instance.memory_mb * MIB
        copies = base.load(objects.DestinationCheck, destination_check, dest_host)
        disk_bytes = sum((disk.allocation if disk.obj_attr_is_set('allocation') else 0)
                         or 0 for disk in copies.copy_disks) if (
            copies is not None and copies.block_migration) else 0
        limit = bandwidth_limit_mib(self.conf, profile)
        if limit:
            bandwidth, source = limit * MIB, 'the limit'
        else:
            bandwidth = measured_bandwidth(self.context, source_host, dest_host)
            source = 'measured'
            if bandwidth is None:
                bandwidth = self.conf.migration_profiles.assumed_bandwidth_mib * MIB
                source = 'assumed'
        dirty_rate = facts.dirty_rate if facts.obj_attr_is_set('dirty_rate') else None
        resident = (facts.memory_resident if facts.obj_attr_is_set('memory_resident')
                    else None)
        result = migration_forecast.make(profile, instance_uuid, memory, dirty_rate,
                                         bandwidth, source, disk_bytes=disk_bytes,
                                         resident_bytes=resident)
        message = describe(profile, result)
        self.log(migration_uuid, instance_uuid, 'forecast under profile %s: %s',
                 profile.name, message)
        # NOTE: the status stays (the claim is held): one fenced write, which also
        # notices an operator's abort.
        self.status(migration_uuid, states.CLAIMING, strategy=result.strategy,
                    forecast=result.to_record())
        job_reports.record_event(self.context, objects.MigrationEvent(
            migration_uuid=migration_uuid, kind=fields.MigrationEventKind.FORECAST,
            message=message), instance_uuid)
        return completion_plan(profile, result, memory, disk_bytes).obj_to_primitive()


def describe(profile, forecast):
    """The forecast in one line (log, event, migctl)."""
    figures = ('%s: expected %.1f s (bound %.1f s), %.0f MiB sent, downtime %s ms'
               % (forecast.strategy, forecast.duration_s or 0, forecast.bound_s,
                  (forecast.bytes or 0) / MIB, forecast.downtime_ms))
    budget = ('' if forecast.budget_s is None else
              '; budget %.0f s, then %s' % (forecast.budget_s, profile.on_timeout))
    return '%s%s; %s' % (figures, budget, forecast.reason)
