"""Names of the values in a migration flow's store (ids and small dicts only)."""

MIGRATION_UUID = 'migration_uuid'
INSTANCE_UUID = 'instance_uuid'
SOURCE_HOST = 'source_host'
REQUESTED_DEST = 'requested_dest'
FORCE = 'force'
CANDIDATES = 'candidates'
DEST_HOST = 'dest_host'
SOURCE_FACTS = 'source_facts'
DESTINATION_CHECK = 'destination_check'
DESTINATION = 'destination'
JOB_RESULT = 'job_result'
FINISH_RESULT = 'finish_result'
