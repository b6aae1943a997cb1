"""Initial schema: compute_hosts, instances, migrations.

Revision ID: 1d8936902f05
Revises:
Create Date: 2026-11-25 17:00:00

NOTE: a revision describes the schema as it was when it was written, so it spells out
its column types here instead of importing :mod:`db.models` (which moves on).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '1d8936902f05'
down_revision = None
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')
_TABLE_ARGS = {
    'mysql_engine': 'InnoDB',
    'mysql_charset': 'utf8mb4',
    'mysql_collate': 'utf8mb4_bin',
}


def _timestamps():
    return [
        sa.Column('created_at', _DATETIME, nullable=True),
        sa.Column('updated_at', _DATETIME, nullable=True),
    ]


def upgrade():
    """Create the three tables."""
    op.create_table(
        'compute_hosts',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('hypervisor_type', sa.String(32), nullable=True),
        sa.Column('hypervisor_version', sa.Integer, nullable=True),
        sa.Column('libvirt_version', sa.Integer, nullable=True),
        sa.Column('cpu_arch', sa.String(32), nullable=True),
        sa.Column('cpu_vendor', sa.String(64), nullable=True),
        sa.Column('cpu_model', sa.String(255), nullable=True),
        sa.Column('cpu_features', sa.Text, nullable=True),
        sa.Column('cpu_xml', sa.Text, nullable=True),
        sa.Column('memory_mb', sa.Integer, nullable=True),
        sa.Column('memory_mb_free', sa.Integer, nullable=True),
        sa.Column('vcpus', sa.Integer, nullable=True),
        sa.Column('libvirt_uri', sa.String(255), nullable=True),
        sa.Column('migration_address', sa.String(255), nullable=True),
        sa.Column('host_uuid', sa.String(36), nullable=True),
        sa.Column('service_version', sa.Integer, nullable=True),
        sa.Column('enabled', sa.Boolean, nullable=False,
                  server_default=sa.true()),
        sa.Column('disabled_reason', sa.String(255), nullable=True),
        sa.Column('last_heartbeat', _DATETIME, nullable=True),
        *_timestamps(),
        sa.UniqueConstraint('host', name='uniq_compute_hosts0host'),
        **_TABLE_ARGS,
    )

    op.create_table(
        'instances',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('uuid', sa.String(36), nullable=False),
        sa.Column('name', sa.String(255), nullable=True),
        sa.Column('host', sa.String(255), nullable=True),
        sa.Column('power_state', sa.String(16), nullable=False,
                  server_default='unknown'),
        sa.Column('memory_mb', sa.Integer, nullable=True),
        sa.Column('vcpus', sa.Integer, nullable=True),
        sa.Column('task_state', sa.String(32), nullable=True),
        sa.Column('migration_profile', sa.String(255), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint('uuid', name='uniq_instances0uuid'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_instances_host', 'instances', ['host'])

    op.create_table(
        'migrations',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('uuid', sa.String(36), nullable=False),
        sa.Column('instance_uuid', sa.String(36), nullable=False),
        sa.Column('migration_type', sa.String(16), nullable=False,
                  server_default='live'),
        sa.Column('source_host', sa.String(255), nullable=True),
        sa.Column('dest_host', sa.String(255), nullable=True),
        sa.Column('requested_dest', sa.String(255), nullable=True),
        sa.Column('force', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        sa.Column('block_migration', sa.String(8), nullable=False,
                  server_default='auto'),
        sa.Column('status', sa.String(32), nullable=False),
        sa.Column('memory_total', sa.BigInteger, nullable=True),
        sa.Column('memory_processed', sa.BigInteger, nullable=True),
        sa.Column('memory_remaining', sa.BigInteger, nullable=True),
        sa.Column('disk_total', sa.BigInteger, nullable=True),
        sa.Column('disk_processed', sa.BigInteger, nullable=True),
        sa.Column('disk_remaining', sa.BigInteger, nullable=True),
        sa.Column('dirty_rate', sa.BigInteger, nullable=True),
        sa.Column('iteration', sa.Integer, nullable=True),
        sa.Column('expected_downtime_ms', sa.Integer, nullable=True),
        sa.Column('downtime_ms', sa.Integer, nullable=True),
        sa.Column('total_time_ms', sa.Integer, nullable=True),
        sa.Column('error_phase', sa.String(32), nullable=True),
        sa.Column('error_host', sa.String(255), nullable=True),
        sa.Column('error_code', sa.String(64), nullable=True),
        sa.Column('error_message', sa.Text, nullable=True),
        sa.Column('started_at', _DATETIME, nullable=True),
        sa.Column('finished_at', _DATETIME, nullable=True),
        *_timestamps(),
        sa.UniqueConstraint('uuid', name='uniq_migrations0uuid'),
        **_TABLE_ARGS,
    )
    op.create_index('ix_migrations_instance_uuid', 'migrations', ['instance_uuid'])
    op.create_index('ix_migrations_status', 'migrations', ['status'])


def downgrade():
    """Drop the three tables (and with them every row)."""
    op.drop_index('ix_migrations_status', table_name='migrations')
    op.drop_index('ix_migrations_instance_uuid', table_name='migrations')
    op.drop_table('migrations')
    op.drop_index('ix_instances_host', table_name='instances')
    op.drop_table('instances')
    op.drop_table('compute_hosts')
