"""Tasks that take and give back the per-host migration slots (:mod:`..slots`).

``AcquireMigrationSlots`` is the gate before the start: it takes the outbound slot of
the source and the inbound slot of the destination when the migration's turn has come;
otherwise the migration becomes ``queued`` and its flow is parked: the task raises
MigrationParked after suspending its engine, the ``WaitForSlots`` retry around it
retries it when the flow is resumed, and the flow's thread is free meanwhile. The
dispatcher of :class:`~migration_conductor.slots.SlotQueue` resumes the flow once it
gave it its slots (or once an operator aborted it: the gate then reverts the flow).
"""

from taskflow.patterns import linear_flow
from taskflow import retry

from db import api as db_api
from migration_conductor import exception
from migration_conductor.flows.tasks import base
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states


class WaitForSlots(retry.Retry):
    """Run the gate again each time its parked flow is resumed; anything else than
    parking reverts the whole flow."""

    def execute(self, history, *args, **kwargs):
        return len(history)

    def on_failure(self, history, *args, **kwargs):
        # NOTE: the latest attempt only: every earlier one parked.
        if history.caused_by(exception.MigrationParked, index=-1):
            return retry.RETRY
        return retry.REVERT_ALL

    def revert(self, history, *args, **kwargs):
        pass


class AcquireMigrationSlots(base.MigrationTask):
    """Take the migration's slots on both hosts, or queue it and park its flow."""

    phase = fields.MigrationPhase.START

    def execute(self, migration_uuid, instance_uuid, source_host, dest_host):
        self.ensure_driven(migration_uuid)
        row = db_api.migration_get(self.context, migration_uuid)
        if row['status'] == states.CANCELLING:
            raise exception.MigrationAborted(migration_uuid=migration_uuid)
        slots = self.services.slots
        if slots.take(row):
            if row['status'] == states.QUEUED:
                self.log(migration_uuid, instance_uuid, 'leaves the queue: its slots on '
                         '%s and %s are taken', source_host, dest_host)
            return
        if row['status'] != states.QUEUED:
            row = self.status(migration_uuid, states.QUEUED, read_back=True,
                              queued_at=base.now())
        self.log(migration_uuid, instance_uuid, 'queued: %s', slots.queue_summary(row))
        self.services.park(migration_uuid)
        slots.wake()
        raise exception.MigrationParked(migration_uuid=migration_uuid)

    def revert(self, migration_uuid, instance_uuid, result=None, *args, **kwargs):
        failure = result if hasattr(result, 'check') else None
        if failure is not None and failure.check(exception.MigrationParked):
            return      # parked: it took nothing
        if not self.reverts_here(migration_uuid, instance_uuid):
            return
        if self.services.slots.release(migration_uuid):
            self.log(migration_uuid, instance_uuid, 'gave back its slots')


class ReleaseMigrationSlots(base.MigrationTask):
    """The job ended: give back the slots of both hosts (the queue moves on)."""

    phase = fields.MigrationPhase.MONITOR

    def execute(self, migration_uuid, instance_uuid):
        self.ensure_driven(migration_uuid)
        # Past the switch-over: a lost database connection is waited for, not failed.
        if self.until_written(migration_uuid, instance_uuid, 'the slots given back',
                              lambda: self.services.slots.release(migration_uuid)):
            self.log(migration_uuid, instance_uuid, 'gave back its slots')


def get_wait_for_slots_flow(services):
    """The gate in its retry: run again each time the parked flow resumes."""
    flow = linear_flow.Flow('wait-for-slots', retry=WaitForSlots('retry-until-slots'))
    flow.add(AcquireMigrationSlots(services))
    return flow
