"""The live-migration flow: the sequence of DESIGN.md, one task per step, in order.

Read top to bottom, :func:`get_live_migration_flow` is that sequence:

 1. accept (before the flow: :mod:`migration_conductor.migration_api`), then
    ``MarkMigrationFailedOnRevert``: first task, whose only job is, on revert, to end
    the migration ``failed`` or ``cancelled`` with its reason and unlock the instance;
 2. place: ``SelectDestinations`` (scheduler, admin-named or forced host);
 3. check the source: ``CheckSourceHost`` (its facts: guest, CPU, disks);
 4. check the destination and 5. claim on it: ``CheckDestinationHost`` then
    ``ClaimResourcesOnDestination``, for each candidate in turn (``TryCandidates``,
    bounded), a refusal at either sending the flow to the next candidate;
 6. forecast: ``ForecastMigration`` (the profile's contract against the guest's
    measured dirty rate and the bandwidth: the strategy, the plan the source's monitor
    applies, or a refusal before anything moves);
    prepare the destination: ``PrepareDestination`` (its incoming address);
    then wait for a slot on both hosts: ``AcquireMigrationSlots`` (first come, first
    served per host; a migration that must wait is ``queued`` and its flow is parked:
    it holds no thread until a slot is given, see :mod:`migration_conductor.slots`);
 7. start on the source: ``StartMigrationOnSource`` (returns once libvirt runs the job);
 8. monitor: ``MonitorMigration`` (the source agent watches the job and reports;
    this task records nothing itself unless the source falls silent), then
    ``ReleaseMigrationSlots``;
 9. finish: ``FinishOnDestination``, ``CleanupSource``, ``MarkMigrationCompleted``;
10. roll back: every task's revert, in reverse order, before the switch-over (a
    revert that raises is logged and the others still run); after it nothing is
    undone: the finishing tasks never raise, they record ``error``, and a write the
    database cannot take then is written again until it can.

The flow is rebuilt by :func:`get_live_migration_flow` whenever a conductor runs or
resumes it; its state lives in taskflow's persistence tables.
"""

from taskflow.patterns import linear_flow
from taskflow import retry

from migration_conductor import exception
from migration_conductor.flows import constants as c
from migration_conductor.flows import registry
from migration_conductor.flows.tasks import agent_tasks
from migration_conductor.flows.tasks import database_tasks
from migration_conductor.flows.tasks import forecast_tasks
from migration_conductor.flows.tasks import placement_tasks
from migration_conductor.flows.tasks import slot_tasks
from migration_conductor.objects import fields

FLOW_NAME = 'live-migration'

_TASKS = (placement_tasks.SelectDestinations, agent_tasks.CheckSourceHost,
          agent_tasks.CheckDestinationHost, agent_tasks.ClaimResourcesOnDestination,
          forecast_tasks.ForecastMigration, agent_tasks.PrepareDestination, slot_tasks.AcquireMigrationSlots,
          agent_tasks.StartMigrationOnSource, agent_tasks.MonitorMigration,
          slot_tasks.ReleaseMigrationSlots, agent_tasks.FinishOnDestination,
          agent_tasks.CleanupSource, database_tasks.MarkMigrationCompleted)
database_tasks.PHASES.update({task.__name__: task.phase for task in _TASKS})


class TryCandidates(retry.ParameterizedForEach):
    """Check and claim each candidate destination in turn, best first.

    A candidate whose checks or claim fail sends the flow to the next one; once they
    are exhausted, or as soon as an operator aborted the migration (trying another
    host would not help), the whole flow reverts.
    """

    def on_failure(self, values, history, *args, **kwargs):
        if history.caused_by(exception.MigrationAborted):
            return retry.REVERT_ALL
        return super().on_failure(values, history, *args, **kwargs)


def get_live_migration_flow(services):
    """Build the flow; ``services`` gives the tasks their dependencies."""
    flow = linear_flow.Flow(FLOW_NAME)
    flow.add(database_tasks.MarkMigrationFailedOnRevert(services))
    flow.add(placement_tasks.SelectDestinations(services))
    flow.add(agent_tasks.CheckSourceHost(services))
    placement = linear_flow.Flow(
        'place-on-destination',
        # revert_all: once the candidates are exhausted the whole flow reverts (the
        # default would revert only this subflow and leave the migration unrecorded).
        retry=TryCandidates('try-candidates', provides=c.DEST_HOST,
                            rebind={'values': c.CANDIDATES}, revert_all=True))
    placement.add(agent_tasks.CheckDestinationHost(services),
                  agent_tasks.ClaimResourcesOnDestination(services))
    flow.add(placement)
    flow.add(forecast_tasks.ForecastMigration(services))
    flow.add(agent_tasks.PrepareDestination(services))
    flow.add(slot_tasks.get_wait_for_slots_flow(services))
    flow.add(agent_tasks.StartMigrationOnSource(services),
             agent_tasks.MonitorMigration(services),
             slot_tasks.ReleaseMigrationSlots(services),
             agent_tasks.FinishOnDestination(services),
             agent_tasks.CleanupSource(services),
             database_tasks.MarkMigrationCompleted(services))
    return flow


registry.register(fields.MigrationType.LIVE, FLOW_NAME, get_live_migration_flow)
