"""Tasks of the migration flows, grouped by where they act (database, agents)."""
