"""Choosing the destination candidates (scheduler, named host, or forced host)."""

from db import api as db_api
from migration_conductor import exception
from migration_conductor import inventory
from migration_conductor import objects
from migration_conductor import scheduler
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states


class SelectDestinations(base.MigrationTask):
    """Return the candidate destinations, best first (at most max_placement_attempts)."""

    phase = fields.MigrationPhase.PLACE
    default_provides = 'candidates'

    def execute(self, migration_uuid, instance_uuid, source_host, requested_dest, force):
        self.status(migration_uuid, states.SCHEDULING)
        down_time = self.conf.conductor.service_down_time
        hosts = {row['host']: inventory.host_from_row(row, down_time)
                 for row in db_api.compute_host_list(self.context)}
        instance = objects.Instance.from_db_row(
            db_api.instance_get(self.context, instance_uuid))
        source = hosts.get(source_host)
        if source is None:
            raise exception.HostNotFound(host=source_host)
        inflight, inflight_memory = self._in_flight(migration_uuid)
        if requested_dest:
            dest = hosts.get(requested_dest)
            if dest is None:
                raise exception.HostNotFound(host=requested_dest)
            refusal = scheduler.check_host(dest, source, instance, down_time,
                                           force=force,
                                           inflight_memory_mb=inflight_memory)
            if refusal is not None:
                raise refusal
            candidates = [requested_dest]
        else:
            candidates = scheduler.select_destinations(
                list(hosts.values()), source, instance, down_time,
                self.conf.conductor.max_placement_attempts, inflight=inflight,
                inflight_memory_mb=inflight_memory)
        self.log(migration_uuid, instance_uuid, 'placement (%s): candidates %s',
                 'forced' if force else 'admin-named' if requested_dest else 'scheduler',
                 ', '.join(candidates))
        return candidates

    def _in_flight(self, migration_uuid):
        """Migrations in flight per host, and the memory claimed on each destination."""
        counts, memory = {}, {}
        for row in db_api.migration_list_with_sizes(
                self.context, status=sorted(states.IN_FLIGHT_STATES)):
            if row['uuid'] == migration_uuid:
                continue
            for host in (row['source_host'], row['dest_host']):
                if host:
                    counts[host] = counts.get(host, 0) + 1
            if row['dest_host']:
                memory[row['dest_host']] = (memory.get(row['dest_host'], 0)
                                            + (row['instance_memory_mb'] or 0))
        return counts, memory
