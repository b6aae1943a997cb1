"""The live-migration flow: one task per step of the sequence in DESIGN.md.

    MarkMigrationFailedOnRevert      (on revert: failed/cancelled + reason, unlock)
    SelectDestinations               scheduling       -> candidates
    CheckSourceHost                  pre-checking     -> source_facts
    TryCandidates: each candidate in turn (at most max_placement_attempts):
        CheckDestinationHost         pre-checking
        ClaimResourcesOnDestination  claiming         (revert: release the claim)
    PrepareDestination               preparing        (revert: remove incoming copy)
    WaitForMigrationSlot             queued if the hosts are busy
    StartMigrationOnSource           running          (revert: abort the job)
    MonitorMigration                 running          (progress every monitor_interval)
    FinishOnDestination              completing       (never raises)
    CleanupSource                                     (never raises)
    MarkMigrationCompleted           completed        (instance moved in the DB)

The flow is rebuilt by :func:`get_live_migration_flow` whenever a conductor runs or
resumes it; its state lives in taskflow's persistence tables.
"""

from taskflow.patterns import linear_flow
from taskflow import retry

from migration_conductor import exception
from migration_conductor.flows import constants as c
from migration_conductor.flows.tasks import agent_tasks
from migration_conductor.flows.tasks import database_tasks
from migration_conductor.flows.tasks import placement_tasks

FLOW_NAME = 'live-migration'

_TASKS = (placement_tasks.SelectDestinations, agent_tasks.CheckSourceHost,
          agent_tasks.CheckDestinationHost, agent_tasks.ClaimResourcesOnDestination,
          agent_tasks.PrepareDestination, database_tasks.WaitForMigrationSlot,
          agent_tasks.StartMigrationOnSource, agent_tasks.MonitorMigration,
          agent_tasks.FinishOnDestination, agent_tasks.CleanupSource,
          database_tasks.MarkMigrationCompleted)
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
    flow.add(agent_tasks.PrepareDestination(services),
             database_tasks.WaitForMigrationSlot(services),
             agent_tasks.StartMigrationOnSource(services),
             agent_tasks.MonitorMigration(services),
             agent_tasks.FinishOnDestination(services),
             agent_tasks.CleanupSource(services),
             database_tasks.MarkMigrationCompleted(services))
    return flow
