"""Migration profiles: the profile, strategy and forecast of a migration, its events.

Revision ID: 8f3b1c9d2e47
Revises: 5c2e8a41b7d3
Create Date: 2026-12-02 21:00:00

* ``migrations`` gains ``profile`` (the name of the profile applied), ``strategy`` (the
  one chosen before the job started) and ``forecast`` (a JSON document);
* ``migration_events`` keeps the decisions and observations of each migration.

NOTE: column types are spelled out here instead of importing :mod:`db.models`.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '8f3b1c9d2e47'
down_revision = '5c2e8a41b7d3'
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')
_TABLE_ARGS = {
    'mysql_engine': 'InnoDB',
    'mysql_charset': 'utf8mb4',
    'mysql_collate': 'utf8mb4_bin',
}
_MIGRATION_COLUMNS = (
    ('profile', sa.String(64)),
    ('strategy', sa.String(32)),
    ('forecast', sa.Text),
)


def upgrade():
    """Add the columns and the table."""
    with op.batch_alter_table('migrations') as batch:
        for name, kind in _MIGRATION_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_table(
        'migration_events',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('migration_uuid', sa.String(36), nullable=False),
        sa.Column('created_at', _DATETIME, nullable=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('host', sa.String(255), nullable=True),
        sa.Column('job_elapsed_s', sa.Float, nullable=True),
        sa.Column('message', sa.Text, nullable=False),
        **_TABLE_ARGS,
    )
    op.create_index('ix_migration_events_migration_uuid', 'migration_events',
                    ['migration_uuid'])


def downgrade():
    """Drop the table and the columns (their rows and values with them)."""
    op.drop_index('ix_migration_events_migration_uuid', table_name='migration_events')
    op.drop_table('migration_events')
    with op.batch_alter_table('migrations') as batch:
        for name, _kind in reversed(_MIGRATION_COLUMNS):
            batch.drop_column(name)
