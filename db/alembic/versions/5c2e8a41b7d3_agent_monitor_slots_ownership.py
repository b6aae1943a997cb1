"""Agent-side monitor, per-host slots and flow ownership.

Revision ID: 5c2e8a41b7d3
Revises: 1d8936902f05
Create Date: 2026-12-02 08:00:00

* ``migrations`` gains the job's state as the source agent reports it (``job_state``,
  ``job_error``, ``last_report_at``), who drives the flow (``owner``, ``generation``)
  and when it joined its hosts' queues (``queued_at``);
* ``migration_progress`` keeps every progress report;
* ``migration_slots`` holds the slots of running migrations (a unique index per host,
  direction and slot number);
* ``conductor_locks`` names the holder of a conductor lock.

NOTE: as the initial revision, this one spells out its column types instead of importing
:mod:`db.models`.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '5c2e8a41b7d3'
down_revision = '1d8936902f05'
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')
_TABLE_ARGS = {
    'mysql_engine': 'InnoDB',
    'mysql_charset': 'utf8mb4',
    'mysql_collate': 'utf8mb4_bin',
}
_MIGRATION_COLUMNS = (
    ('job_state', sa.String(16)),
    ('job_error', sa.Text),
    ('last_report_at', _DATETIME),
    ('owner', sa.String(255)),
    ('queued_at', _DATETIME),
)


def upgrade():
    """Add the columns and the three tables."""
    with op.batch_alter_table('migrations') as batch:
        for name, kind in _MIGRATION_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column('generation', sa.Integer, nullable=False,
                                   server_default='0'))

    op.create_table(
        'migration_progress',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('migration_uuid', sa.String(36), nullable=False),
        sa.Column('created_at', _DATETIME, nullable=True),
        sa.Column('origin', sa.String(8), nullable=False),
        sa.Column('memory_total', sa.BigInteger, nullable=True),
        sa.Column('memory_processed', sa.BigInteger, nullable=True),
        sa.Column('memory_remaining', sa.BigInteger, nullable=True),
        sa.Column('disk_total', sa.BigInteger, nullable=True),
        sa.Column('disk_processed', sa.BigInteger, nullable=True),
        sa.Column('disk_remaining', sa.BigInteger, nullable=True),
        sa.Column('dirty_rate', sa.BigInteger, nullable=True),
        sa.Column('iteration', sa.Integer, nullable=True),
        sa.Column('expected_downtime_ms', sa.Integer, nullable=True),
        sa.Column('total_time_ms', sa.Integer, nullable=True),
        sa.Column('postcopy', sa.Boolean, nullable=False, server_default=sa.false()),
        **_TABLE_ARGS,
    )
    op.create_index('ix_migration_progress_migration_uuid', 'migration_progress',
                    ['migration_uuid'])

    op.create_table(
        'migration_slots',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('direction', sa.String(3), nullable=False),
        sa.Column('slot', sa.Integer, nullable=False),
        sa.Column('migration_uuid', sa.String(36), nullable=False),
        sa.Column('created_at', _DATETIME, nullable=True),
        sa.UniqueConstraint('host', 'direction', 'slot',
                            name='uniq_migration_slots0host'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_migration_slots_migration_uuid', 'migration_slots',
                    ['migration_uuid'])

    op.create_table(
        'conductor_locks',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('holder', sa.String(255), nullable=False),
        sa.Column('created_at', _DATETIME, nullable=True),
        sa.Column('updated_at', _DATETIME, nullable=True),
        sa.UniqueConstraint('name', name='uniq_conductor_locks0name'),
        **_TABLE_ARGS,
    )


def downgrade():
    """Drop the three tables and the columns (their rows and values with them)."""
    op.drop_table('conductor_locks')
    op.drop_index('ix_migration_slots_migration_uuid', table_name='migration_slots')
    op.drop_table('migration_slots')
    op.drop_index('ix_migration_progress_migration_uuid',
                  table_name='migration_progress')
    op.drop_table('migration_progress')
    with op.batch_alter_table('migrations') as batch:
        batch.drop_column('generation')
        for name, _kind in reversed(_MIGRATION_COLUMNS):
            batch.drop_column(name)
