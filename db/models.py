"""SQLAlchemy models of the conductor's database.

Seven tables: ``compute_hosts`` (the inventory each agent reports with its heartbeat),
``instances`` (the guests the conductor may move, and the lock that keeps a second move
out), ``migrations`` (one row per move, its state, progress, structured error and the
conductor that drives it), ``migration_progress`` (every progress report of a running
job, as the source agent sent it), ``migration_events`` (the decisions and observations
of a migration's story), ``migration_slots`` (the per-host migration slots
each running migration holds: the database's unique index is what keeps a host within
its limits) and ``conductor_locks`` (who holds the lock a conductor without a jobboard
takes, so a second one can say who is in its way).

The models describe the schema; the alembic revisions in ``db/alembic/versions`` create
it, and a test checks that both agree on every backend. Nothing outside :mod:`db.api`
uses these classes: the API hands out plain dicts.

The same schema must behave the same on SQLite, MariaDB and PostgreSQL, hence:

- timestamps keep microseconds on MariaDB too (``DATETIME(6)``) and are naive UTC;
- MariaDB tables are InnoDB, ``utf8mb4`` with the binary collation, so that strings
  compare case-sensitively as they do on SQLite and PostgreSQL (two hosts ``Node1`` and
  ``node1`` are two hosts everywhere);
- constraints and indexes have explicit names (:data:`NAMING_CONVENTION`), so a later
  revision can drop them by name on every backend.
"""

import datetime

from oslo_serialization import jsonutils
from oslo_utils import timeutils
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy import orm

NAMING_CONVENTION = {
    'ix': 'ix_%(table_name)s_%(column_0_name)s',
    'uq': 'uniq_%(table_name)s0%(column_0_name)s',
}

# NOTE: a plain DATETIME on MariaDB drops the microseconds, so two heartbeats within a
# second would look equal there and nowhere else.
DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')

TABLE_ARGS = {
    'mysql_engine': 'InnoDB',
    'mysql_charset': 'utf8mb4',
    'mysql_collate': 'utf8mb4_bin',
}

# NOTE: a column's info['choices'] lists the only values db.api accepts for it.
BLOCK_MIGRATION_CHOICES = ('auto', 'true', 'false')
# The libvirt job's outcome as the source agent reports it (objects.fields.JobState).
JOB_STATE_CHOICES = ('running', 'completed', 'failed', 'cancelled', 'not-running',
                     'gone')
# A slot is taken on the source (outbound) and on the destination (inbound).
SLOT_DIRECTIONS = ('out', 'in')
# The strategies a migration may be given (objects.fields.Strategy.CHOSEN).
STRATEGY_CHOICES = ('precopy', 'auto-converge', 'postcopy-after-first-pass')
# What a migration event records (objects.fields.MigrationEventKind).
EVENT_KINDS = ('forecast', 'downtime-step', 'postcopy-requested', 'postcopy-started',
               'paused', 'abort-requested', 'postcopy-interrupted', 'postcopy-recovered',
               'action-failed', 'outcome')
# Where a progress record came from: pushed by the source agent's monitor, or read by
# the conductor from the agent after the source had been silent.
PROGRESS_ORIGINS = ('push', 'poll')


def _utcnow():
    # NOTE: looked up at call time so that tests can mock timeutils.utcnow.
    return timeutils.utcnow()


class JSONEncodedList(sa.types.TypeDecorator):
    """A list of JSON-serializable values stored as JSON text; NULL stays None."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Encode a list (or None) for the database."""
        if value is None:
            return None
        return jsonutils.dumps(list(value))

    def process_result_value(self, value, dialect):
        """Decode the stored text back into a list (or None)."""
        if value is None:
            return None
        return jsonutils.loads(value)


class JSONEncodedDict(sa.types.TypeDecorator):
    """A dict of JSON-serializable values stored as JSON text; NULL stays None."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return jsonutils.dumps(dict(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return jsonutils.loads(value)


class Base(orm.DeclarativeBase):
    """Declarative base carrying the shared metadata and naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """``created_at`` set on INSERT and ``updated_at`` on every UPDATE (naive UTC)."""

    created_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        DateTime, default=_utcnow)
    updated_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        DateTime, onupdate=_utcnow)


class ComputeHost(TimestampMixin, Base):
    """A libvirt host running a compute agent, as last reported by that agent."""

    __tablename__ = 'compute_hosts'
    __table_args__ = (
        sa.UniqueConstraint('host'),
        TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)
    hypervisor_type: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    hypervisor_version: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    libvirt_version: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    cpu_arch: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    cpu_vendor: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    cpu_model: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    cpu_features: orm.Mapped[list | None] = orm.mapped_column(JSONEncodedList)
    cpu_xml: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    memory_mb: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    memory_mb_free: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    vcpus: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    libvirt_uri: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    migration_address: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    host_uuid: orm.Mapped[str | None] = orm.mapped_column(sa.String(36))
    service_version: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    enabled: orm.Mapped[bool] = orm.mapped_column(
        sa.Boolean, nullable=False, default=True, server_default=sa.true())
    disabled_reason: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    last_heartbeat: orm.Mapped[datetime.datetime | None] = orm.mapped_column(DateTime)


class Instance(TimestampMixin, Base):
    """A guest the conductor knows about; ``task_state`` locks it during a move."""

    __tablename__ = 'instances'
    __table_args__ = (
        sa.UniqueConstraint('uuid'),
        TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), nullable=False)
    name: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255), index=True)
    power_state: orm.Mapped[str] = orm.mapped_column(
        sa.String(16), nullable=False, default='unknown', server_default='unknown')
    memory_mb: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    vcpus: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    task_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    migration_profile: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))


class Migration(TimestampMixin, Base):
    """One move of one instance: request, placement, state, progress and outcome.

    Sizes are bytes, ``dirty_rate`` is bytes per second, durations are milliseconds.
    The ``error_*`` columns hold the structured reason of a failed or cancelled move.
    """

    __tablename__ = 'migrations'
    __table_args__ = (
        sa.UniqueConstraint('uuid'),
        TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), nullable=False)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), nullable=False, index=True)
    migration_type: orm.Mapped[str] = orm.mapped_column(
        sa.String(16), nullable=False, default='live', server_default='live')
    source_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    dest_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    requested_dest: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    force: orm.Mapped[bool] = orm.mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false())
    block_migration: orm.Mapped[str] = orm.mapped_column(
        sa.String(8), nullable=False, default='auto', server_default='auto',
        info={'choices': BLOCK_MIGRATION_CHOICES})
    status: orm.Mapped[str] = orm.mapped_column(
        sa.String(32), nullable=False, index=True)
    memory_total: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    memory_processed: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    memory_remaining: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_total: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_processed: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_remaining: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    dirty_rate: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    iteration: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    expected_downtime_ms: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    downtime_ms: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    total_time_ms: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    error_phase: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    error_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    error_code: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    error_message: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    started_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(DateTime)
    finished_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(DateTime)
    # The libvirt job as the source agent last reported it (running until its end).
    job_state: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(16), info={'choices': JOB_STATE_CHOICES})
    job_error: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    last_report_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(DateTime)
    # Who drives the flow, and the generation of that ownership: every write of the
    # flow names its generation in the WHERE clause, so a conductor that lost the
    # migration to another (which took it with generation + 1) is refused by the
    # database itself.
    owner: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    generation: orm.Mapped[int] = orm.mapped_column(
        sa.Integer, nullable=False, default=0, server_default='0')
    # When the migration joined its hosts' queues (first come, first served).
    queued_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(DateTime)
    # The migration profile applied, the strategy chosen before the job started, and
    # the forecast behind it (objects.MigrationForecast as a JSON document, completed
    # with what happened once the migration ended).
    profile: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    strategy: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(32), info={'choices': STRATEGY_CHOICES})
    forecast: orm.Mapped[dict | None] = orm.mapped_column(JSONEncodedDict)


class MigrationProgress(Base):
    """One progress report of a running migration job (bytes, ms, bytes/s)."""

    __tablename__ = 'migration_progress'
    __table_args__ = (TABLE_ARGS,)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    migration_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), nullable=False, index=True)
    created_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        DateTime, default=_utcnow)
    origin: orm.Mapped[str] = orm.mapped_column(
        sa.String(8), nullable=False, info={'choices': PROGRESS_ORIGINS})
    memory_total: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    memory_processed: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    memory_remaining: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_total: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_processed: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    disk_remaining: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    dirty_rate: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    iteration: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    expected_downtime_ms: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    total_time_ms: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    postcopy: orm.Mapped[bool] = orm.mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false())


class MigrationEvent(Base):
    """One decision or observation of a migration (a downtime step, the switch to
    post-copy, a pause, an abort on budget, the forecast and the outcome)."""

    __tablename__ = 'migration_events'
    __table_args__ = (TABLE_ARGS,)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    migration_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), nullable=False, index=True)
    created_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        DateTime, default=_utcnow)
    kind: orm.Mapped[str] = orm.mapped_column(
        sa.String(32), nullable=False, info={'choices': EVENT_KINDS})
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    job_elapsed_s: orm.Mapped[float | None] = orm.mapped_column(sa.Float)
    message: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)


class MigrationSlot(Base):
    """A slot of a host held by a migration: ``out`` on its source, ``in`` on its
    destination. Slot numbers run from 0 to the host's limit - 1; the unique index on
    (host, direction, slot) makes taking one atomic on every backend."""

    __tablename__ = 'migration_slots'
    __table_args__ = (
        sa.UniqueConstraint('host', 'direction', 'slot'),
        TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)
    direction: orm.Mapped[str] = orm.mapped_column(
        sa.String(3), nullable=False, info={'choices': SLOT_DIRECTIONS})
    slot: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    migration_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), nullable=False, index=True)
    created_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        DateTime, default=_utcnow)


class ConductorLock(TimestampMixin, Base):
    """Who holds a conductor lock (the lock itself is the database's, see
    :mod:`migration_conductor.conductor_lock`)."""

    __tablename__ = 'conductor_locks'
    __table_args__ = (
        sa.UniqueConstraint('name'),
        TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)
    holder: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)
