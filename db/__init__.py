"""The conductor's database: models, the enginefacade API and alembic migrations.

Only the conductor imports this package; compute agents never do (they hold no database
credentials). :mod:`db.api` is the only way the rest of the conductor reads or writes
rows, :mod:`db.migration` creates and upgrades the schema and :mod:`db.models` describes
it for both.
"""
