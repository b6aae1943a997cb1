"""Names of the values in a migration flow's store (ids and small dicts only).

Task results that are versioned objects are stored as their primitives (see
:func:`migration_conductor.flows.tasks.base.load`).
"""

MIGRATION_UUID = 'migration_uuid'
INSTANCE_UUID = 'instance_uuid'
SOURCE_HOST = 'source_host'
REQUESTED_DEST = 'requested_dest'
FORCE = 'force'
CANDIDATES = 'candidates'
DEST_HOST = 'dest_host'
SOURCE_FACTS = 'source_facts'            # SourceFacts
DESTINATION_CHECK = 'destination_check'  # DestinationCheck
DESTINATION = 'destination'              # DestinationInfo
COMPLETION_PLAN = 'completion_plan'      # CompletionPlan, from the forecast
JOB_STARTED = 'job_started'              # MigrationJob, as start answered
JOB_RESULT = 'job_result'
FINISH_RESULT = 'finish_result'
