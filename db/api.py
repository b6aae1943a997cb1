"""The conductor's database API: every read and write of a row goes through here.

Role: only conductor processes call this module (agents hold no database credentials).
Every function takes a :class:`~migration_conductor.context.RequestContext` first and
returns plain dicts (column name -> value, ``cpu_features`` as a list) or lists of
them, never ORM objects, so nothing outside this module can lazy-load or flush behind
the caller's back.

Transactions: each function runs in its own oslo.db enginefacade transaction, or joins
the one already open on the same context, so a caller can make several calls atomic::

    with db_api.context_manager.writer.using(ctx):
        db_api.instance_update(ctx, uuid, {'task_state': 'migrating'},
                               expected={'task_state': None})
        db_api.migration_create(ctx, {...})

On SQLite such a block should start with a write, as every function here does: oslo.db
begins SQLite transactions with a deferred BEGIN, and a transaction that has read
cannot wait for another writer's lock (it fails at once with "database is locked").

Concurrency: several conductor workers (and several conductor hosts) share the
database. What keeps them from stepping on each other is the conditional UPDATE:
:func:`instance_update` with ``expected`` and :func:`migration_update` with
``expected_status`` put the expectation in the WHERE clause of the same statement that
writes, so the database decides atomically which of two racing writers wins; the loser
matches no row and gets :class:`~migration_conductor.exception.InstanceStateConflict`
or :class:`~migration_conductor.exception.MigrationStateConflict`, and the row stays as
the winner wrote it. Never read a row, decide, then write it unconditionally.

Configuration: :func:`configure` sets the URL once per process, before the first call.
Tests point the API at a throwaway database without touching the process-wide
configuration: they swap the factory behind :data:`context_manager` with oslo.db's
``context_manager.patch_factory()`` and undo it afterwards (see
``tests/db_fixtures.py``, ``use_database()``).
"""

import collections.abc
import logging

from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import enginefacade
from oslo_utils import timeutils
from oslo_utils import uuidutils
import sqlalchemy as sa

from db import models
from db import sqlite
from db import validation
from migration_conductor import exception

LOG = logging.getLogger(__name__)

# The embedded default: WAL and a longer busy timeout on every SQLite connection.
sqlite.install()

context_manager = enginefacade.transaction_context()

_HOSTS = models.ComputeHost.__table__
_INSTANCES = models.Instance.__table__
_MIGRATIONS = models.Migration.__table__
_PROGRESS = models.MigrationProgress.__table__
_EVENTS = models.MigrationEvent.__table__
_SLOTS = models.MigrationSlot.__table__
_LOCKS = models.ConductorLock.__table__

# The figures a progress report carries that the migration's row keeps too (the latest).
PROGRESS_COLUMNS = ('memory_total', 'memory_processed', 'memory_remaining',
                    'disk_total', 'disk_processed', 'disk_remaining', 'dirty_rate',
                    'iteration', 'expected_downtime_ms', 'total_time_ms')


def configure(connection_url, **engine_kwargs):
    """Set the database of this process; call once, before any other function.

    :param connection_url: SQLAlchemy URL (``[database] connection``), e.g.
        ``mysql+pymysql://user:secret@db/conductor?charset=utf8mb4``.
    :param engine_kwargs: further oslo.db enginefacade options (``max_pool_size``,
        ``connection_recycle_time``, ``max_retries``, ...).
    :raises oslo_db.sqlalchemy.enginefacade.AlreadyStartedError: the API has already
        been used in this process.
    """
    global _configured
    try:
        context_manager.configure(connection=connection_url, **engine_kwargs)
    except enginefacade.AlreadyStartedError:
        # A second service of this process (a conductor started again after a stop,
        # in tests and the all-in-one mode) on the database already in use: harmless.
        if _configured != (connection_url, engine_kwargs):
            raise
    _configured = (connection_url, engine_kwargs)


_configured = None


# --- helpers -------------------------------------------------------------------------

def _get(session, table, column, value):
    row = session.execute(
        sa.select(table).where(table.c[column] == value)).one_or_none()
    return None if row is None else dict(row._mapping)


def _list(session, statement):
    return [dict(row._mapping) for row in session.execute(statement)]


def _insert(session, table, values):
    """INSERT a checked row; a duplicate key raises oslo.db's DBDuplicateEntry."""
    validation.check_required(table, values)
    session.execute(sa.insert(table).values(values))


def _update(session, table, where, values):
    """UPDATE the rows matching every clause of ``where``; return how many matched.

    NOTE: the MySQL dialects of SQLAlchemy connect with CLIENT_FOUND_ROWS, so the
    count is of matched rows there too, even when the values did not change.
    """
    if not values:
        raise exception.Invalid(reason='no column to update in %s' % table.name)
    return session.execute(sa.update(table).where(*where).values(values)).rowcount


def _equal(column, value):
    return column.is_(None) if value is None else column == value


def _check_expected(table, expected):
    if not isinstance(expected, collections.abc.Mapping):
        raise exception.Invalid(reason='expected must be a mapping of column names')
    validation.check_known(table, expected)
    return {name: validation.check_value(table.c[name], value, allow_null=True)
            for name, value in expected.items()}


def _is_duplicate(error):
    return isinstance(error, db_exc.DBDuplicateEntry)


# NOTE: two agents' first heartbeats (or two conductors) may INSERT the same key at
# once; the loser gets a duplicate-key error and its retry finds the row and updates.
_retry_upsert = oslo_db_api.wrap_db_retry(
    max_retries=3, retry_interval=0.1, retry_on_deadlock=True,
    exception_checker=_is_duplicate)


def _upsert(session, table, key, values):
    """UPDATE the row whose ``key`` column matches, or INSERT it when none does.

    NOTE: the UPDATE comes first on purpose. On SQLite, oslo.db begins transactions
    with a deferred BEGIN: a transaction that reads first and writes second cannot
    wait for another writer (SQLite refuses at once with "database is locked"),
    while one whose first statement writes waits for the lock. Every writer of this
    module starts with a write. Setting the key to itself keeps the UPDATE valid
    when ``values`` holds nothing else.
    """
    values = validation.check_values(table, values)
    if values.get(key) is None:
        raise exception.Invalid(reason='%s.%s is required' % (table.name, key))
    if not _update(session, table, [table.c[key] == values[key]], values):
        _insert(session, table, values)
    return _get(session, table, key, values[key])


# --- compute hosts -------------------------------------------------------------------

@_retry_upsert
@context_manager.writer
def compute_host_upsert(context, values):
    """Create the compute host named ``values['host']``, or update it if it exists.

    Agents report their inventory with each heartbeat; the conductor stores it here.

    :param context: RequestContext.
    :param values: column name -> value; must contain ``host``.
    :returns: the row as a dict.
    :raises Invalid: missing ``host``, unknown column or bad value (nothing written).
    """
    return _upsert(context.session, _HOSTS, 'host', values)


@context_manager.reader
def compute_host_get(context, host):
    """Return the compute host named ``host``.

    :param context: RequestContext.
    :param host: host name as the agent reports it.
    :returns: the row as a dict.
    :raises HostNotFound: no such host.
    """
    row = _get(context.session, _HOSTS, 'host', host)
    if row is None:
        raise exception.HostNotFound(host=host)
    return row


@context_manager.reader
def compute_host_list(context):
    """Return every compute host, ordered by name.

    :param context: RequestContext.
    :returns: list of row dicts.
    """
    return _list(context.session, sa.select(_HOSTS).order_by(_HOSTS.c.host))


@context_manager.writer
def compute_host_update(context, host, values):
    """Update columns of the compute host named ``host`` (for example disable it).

    :param context: RequestContext.
    :param host: host name.
    :param values: column name -> value; ``host`` itself cannot change.
    :returns: the updated row as a dict.
    :raises Invalid: unknown or read-only column, bad value (nothing written).
    :raises HostNotFound: no such host.
    """
    values = validation.check_values(_HOSTS, values, read_only=('host',))
    if not _update(context.session, _HOSTS, [_HOSTS.c.host == host], values):
        raise exception.HostNotFound(host=host)
    return _get(context.session, _HOSTS, 'host', host)


# --- instances -----------------------------------------------------------------------

@_retry_upsert
@context_manager.writer
def instance_upsert(context, values):
    """Create the instance ``values['uuid']``, or update it if it exists.

    :param context: RequestContext.
    :param values: column name -> value; must contain ``uuid``.
    :returns: the row as a dict.
    :raises Invalid: missing ``uuid``, unknown column or bad value (nothing written).
    """
    return _upsert(context.session, _INSTANCES, 'uuid', values)


@context_manager.reader
def instance_get(context, uuid):
    """Return the instance ``uuid``.

    :param context: RequestContext.
    :param uuid: instance UUID.
    :returns: the row as a dict.
    :raises InstanceNotFound: no such instance.
    """
    row = _get(context.session, _INSTANCES, 'uuid', uuid)
    if row is None:
        raise exception.InstanceNotFound(instance_uuid=uuid)
    return row


@context_manager.reader
def instance_list(context, host=None, name=None):
    """Return instances, oldest first, filtered by every argument given.

    :param context: RequestContext.
    :param host: when given, only instances whose ``host`` is this one.
    :param name: when given, only instances of this (domain) name.
    :returns: list of row dicts.
    """
    statement = sa.select(_INSTANCES).order_by(_INSTANCES.c.id)
    if host is not None:
        statement = statement.where(_INSTANCES.c.host == host)
    if name is not None:
        statement = statement.where(_INSTANCES.c.name == name)
    return _list(context.session, statement)


@context_manager.writer
def instance_update(context, uuid, values, expected=None):
    """Update instance ``uuid``, atomically if ``expected`` is given.

    With ``expected`` the statement is ``UPDATE instances SET ... WHERE uuid = :uuid
    AND col = :value ...`` (``IS NULL`` for None): of two conductors racing to lock the
    same instance (``expected={'task_state': None}``), exactly one wins.

    :param context: RequestContext.
    :param uuid: instance UUID.
    :param values: column name -> new value; ``uuid`` itself cannot change.
    :param expected: column name -> value the row must still have, or None.
    :returns: the updated row as a dict.
    :raises Invalid: unknown or read-only column, bad value (nothing written).
    :raises InstanceNotFound: no such instance.
    :raises InstanceStateConflict: the row exists but does not match ``expected``; the
        reason names each column that differs and its actual value.
    """
    values = validation.check_values(_INSTANCES, values, read_only=('uuid',))
    expected = _check_expected(_INSTANCES, expected or {})
    where = [_INSTANCES.c.uuid == uuid]
    where.extend(_equal(_INSTANCES.c[name], value) for name, value in expected.items())
    session = context.session
    if _update(session, _INSTANCES, where, values):
        return _get(session, _INSTANCES, 'uuid', uuid)
    actual = _get(session, _INSTANCES, 'uuid', uuid)
    if actual is None:
        raise exception.InstanceNotFound(instance_uuid=uuid)
    differences = ['%s is %r, expected %r' % (name, actual[name], value)
                   for name, value in sorted(expected.items())
                   if actual[name] != value]
    raise exception.InstanceStateConflict(
        instance_uuid=uuid,
        reason='; '.join(differences) or 'it changed concurrently')


@context_manager.writer
def instance_delete(context, uuid, expected=None):
    """Delete instance ``uuid``, atomically if ``expected`` is given.

    :param context: RequestContext.
    :param uuid: instance UUID.
    :param expected: column name -> value the row must still have (as for
        :func:`instance_update`), e.g. ``{'power_state': 'missing', 'task_state':
        None}``: a guest that came back or a migration that locked it meanwhile is not
        deleted.
    :raises InstanceNotFound: no such instance.
    :raises InstanceStateConflict: the row does not match ``expected`` (nothing
        deleted).
    """
    expected = _check_expected(_INSTANCES, expected or {})
    where = [_INSTANCES.c.uuid == uuid]
    where.extend(_equal(_INSTANCES.c[name], value) for name, value in expected.items())
    session = context.session
    if session.execute(sa.delete(_INSTANCES).where(*where)).rowcount:
        return
    actual = _get(session, _INSTANCES, 'uuid', uuid)
    if actual is None:
        raise exception.InstanceNotFound(instance_uuid=uuid)
    raise exception.InstanceStateConflict(
        instance_uuid=uuid,
        reason='; '.join('%s is %r, expected %r' % (name, actual[name], value)
                         for name, value in sorted(expected.items())
                         if actual[name] != value) or 'it changed concurrently')


# --- migrations ----------------------------------------------------------------------

@context_manager.writer
def migration_create(context, values):
    """Create a migration record.

    :param context: RequestContext.
    :param values: column name -> value; needs ``instance_uuid`` and ``status``;
        ``uuid`` is generated when absent.
    :returns: the new row as a dict.
    :raises Invalid: missing, unknown or bad values (nothing written).
    :raises Conflict: a migration with this ``uuid`` already exists.
    """
    values = validation.check_values(_MIGRATIONS, values)
    values.setdefault('uuid', uuidutils.generate_uuid())
    try:
        _insert(context.session, _MIGRATIONS, values)
    except db_exc.DBDuplicateEntry as exc:
        raise exception.Conflict(
            reason='migration %s already exists' % values['uuid']) from exc
    row = _get(context.session, _MIGRATIONS, 'uuid', values['uuid'])
    LOG.debug('Migration %s of instance %s created (%s)',
              row['uuid'], row['instance_uuid'], row['status'])
    return row


@context_manager.reader
def migration_get(context, uuid):
    """Return migration ``uuid``.

    :param context: RequestContext.
    :param uuid: migration UUID.
    :returns: the row as a dict.
    :raises MigrationNotFound: no such migration.
    """
    row = _get(context.session, _MIGRATIONS, 'uuid', uuid)
    if row is None:
        raise exception.MigrationNotFound(migration_uuid=uuid)
    return row


def _as_tuple(value):
    return (value,) if isinstance(value, str) else tuple(value)


@context_manager.reader
def migration_list(context, status=None, host=None, instance_uuid=None, limit=None):
    """Return migrations, newest first, filtered by every argument given.

    :param context: RequestContext.
    :param status: a status, or a list of statuses any of which matches.
    :param host: a host that is the source or the destination.
    :param instance_uuid: only migrations of this instance.
    :param limit: at most this many rows (a positive integer).
    :returns: list of row dicts.
    :raises Invalid: ``limit`` is not a positive integer.
    """
    table = _MIGRATIONS
    statement = sa.select(table).order_by(table.c.created_at.desc(),
                                          table.c.id.desc())
    if status is not None:
        statement = statement.where(table.c.status.in_(_as_tuple(status)))
    if host is not None:
        statement = statement.where(
            sa.or_(table.c.source_host == host, table.c.dest_host == host))
    if instance_uuid is not None:
        statement = statement.where(table.c.instance_uuid == instance_uuid)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise exception.Invalid(reason='limit must be a positive integer, not %r'
                                    % (limit,))
        statement = statement.limit(limit)
    return _list(context.session, statement)


@context_manager.reader
def migration_list_with_sizes(context, status, dest_host=None):
    """Return migrations in ``status`` with their instance's size, in one query.

    Each row is the migration's, plus ``instance_memory_mb`` and ``instance_vcpus``
    (None when the instance row is gone): what the claims of in-flight migrations
    weigh on their destinations.

    :param context: RequestContext.
    :param status: a status, or a list of statuses any of which matches.
    :param dest_host: only migrations towards this host.
    :returns: list of row dicts, oldest first.
    """
    table = _MIGRATIONS
    statement = (sa.select(table, _INSTANCES.c.memory_mb.label('instance_memory_mb'),
                           _INSTANCES.c.vcpus.label('instance_vcpus'))
                 .outerjoin(_INSTANCES, _INSTANCES.c.uuid == table.c.instance_uuid)
                 .where(table.c.status.in_(_as_tuple(status)))
                 .order_by(table.c.created_at, table.c.id))
    if dest_host is not None:
        statement = statement.where(table.c.dest_host == dest_host)
    return _list(context.session, statement)


@context_manager.writer
def migration_update(context, uuid, values, expected_status=None, generation=None,
                     read_back=True):
    """Update migration ``uuid``, atomically if ``expected_status`` is given.

    With ``expected_status`` the statement is ``UPDATE migrations SET ... WHERE uuid =
    :uuid AND status IN (:expected)``: a state transition made this way cannot be lost
    to, or overwrite, a concurrent one (an abort racing a completion, two conductors
    resuming the same flow). With ``generation`` the WHERE clause also says
    ``AND generation = :generation``: the write of a conductor that no longer drives
    the migration (another one took it over, see :func:`migration_take_ownership`) is
    refused by the database itself.

    :param context: RequestContext.
    :param uuid: migration UUID.
    :param values: column name -> new value; ``uuid`` itself cannot change.
    :param expected_status: the status the row must still have, or a list of
        acceptable statuses, or None for an unconditional update.
    :param generation: the ownership generation the writer drives, or None.
    :param read_back: False: return None instead of reading the row back (a write
        whose caller needs nothing more saves a round trip).
    :returns: the updated row as a dict (None without ``read_back``).
    :raises Invalid: unknown or read-only column, bad value (nothing written).
    :raises MigrationNotFound: no such migration.
    :raises OwnershipLost: the generation is not the writer's (checked first).
    :raises MigrationStateConflict: the status is not the expected one; carries the
        actual status.
    """
    values = validation.check_values(_MIGRATIONS, values,
                                     read_only=('uuid', 'owner', 'generation'))
    where = _migration_where(uuid, expected_status, generation)
    session = context.session
    if _update(session, _MIGRATIONS, where, values):
        if not read_back:
            return None
        row = _get(session, _MIGRATIONS, 'uuid', uuid)
        LOG.debug('Migration %s of instance %s updated: %s',
                  uuid, row['instance_uuid'], ', '.join(sorted(values)))
        return row
    raise _migration_conflict(session, uuid, expected_status, generation)


def _migration_where(uuid, expected_status, generation):
    where = [_MIGRATIONS.c.uuid == uuid]
    if expected_status is not None:
        where.append(_MIGRATIONS.c.status.in_(_as_tuple(expected_status)))
    if generation is not None:
        where.append(_MIGRATIONS.c.generation == generation)
    return where


def _migration_conflict(session, uuid, expected_status, generation):
    """The error that says why a conditional write of migration ``uuid`` matched no
    row (read back in the same transaction)."""
    actual = _get(session, _MIGRATIONS, 'uuid', uuid)
    if actual is None:
        return exception.MigrationNotFound(migration_uuid=uuid)
    if generation is not None and actual['generation'] != generation:
        LOG.debug('Migration %s of instance %s is driven by %s (generation %s), not '
                  'generation %s: write refused', uuid, actual['instance_uuid'],
                  actual['owner'], actual['generation'], generation)
        return exception.OwnershipLost(migration_uuid=uuid, owner=actual['owner'],
                                       actual=actual['generation'], expected=generation)
    expected_status = _as_tuple(expected_status or ())
    LOG.debug('Migration %s of instance %s is %s, not %s: update refused',
              uuid, actual['instance_uuid'], actual['status'],
              ' or '.join(expected_status))
    return exception.MigrationStateConflict(
        migration_uuid=uuid, expected=' or '.join(expected_status),
        actual=actual['status'])


@context_manager.writer
def migration_take_ownership(context, uuid, owner):
    """Make ``owner`` the conductor that drives migration ``uuid``.

    ``UPDATE migrations SET owner = :owner, generation = generation + 1``: every
    earlier owner's conditional writes (:func:`migration_update` with its
    ``generation``) are refused from now on. Whether ``owner`` may take the migration
    is decided before (the jobboard's claim, or the conductor lock).

    :returns: the row as written (its ``generation`` is the owner's).
    :raises MigrationNotFound: no such migration.
    """
    matched = context.session.execute(
        sa.update(_MIGRATIONS).where(_MIGRATIONS.c.uuid == uuid)
        .values(owner=validation.check_value(_MIGRATIONS.c.owner, owner),
                generation=_MIGRATIONS.c.generation + 1)).rowcount
    if not matched:
        raise exception.MigrationNotFound(migration_uuid=uuid)
    return _get(context.session, _MIGRATIONS, 'uuid', uuid)


@context_manager.reader
def migration_list_queued(context):
    """Return the migrations waiting in ``queued``, first come first.

    :returns: list of row dicts ordered by ``queued_at`` (then id).
    """
    table = _MIGRATIONS
    return _list(context.session, sa.select(table)
                 .where(table.c.status == 'queued')
                 .order_by(table.c.queued_at, table.c.id))


# --- progress of running jobs ---------------------------------------------------------

@context_manager.writer
def migration_progress_record(context, uuid, values, origin, expected_status,
                              generation=None, reported_at=None):
    """Record one progress report of migration ``uuid``'s job, in one transaction.

    The figures become the migration's latest (its row, with ``last_report_at``) and a
    row of ``migration_progress`` keeps the report, but only while the migration is in
    one of ``expected_status`` (and, with ``generation``, still driven by the writer):
    a report that arrives after the job ended or after an abort moved the migration
    on changes nothing.

    :param values: figures of the report: :data:`PROGRESS_COLUMNS` and ``postcopy``
        (None values are not written to the migration's row).
    :param origin: ``push`` (the source agent's monitor sent it) or ``poll`` (the
        conductor read it from the agent).
    :param expected_status: the statuses in which progress is recorded.
    :param generation: see :func:`migration_update`.
    :param reported_at: when the report was made (default now), naive or aware UTC.
    :returns: the migration's row as written, or None when its status did not match.
    :raises Invalid: a bad value (nothing written).
    :raises MigrationNotFound: no such migration.
    :raises OwnershipLost: the generation is not the writer's (nothing written).
    """
    values = dict(values, migration_uuid=uuid, origin=origin)
    if values.get('postcopy') is None:
        values['postcopy'] = False
    record = validation.check_values(_PROGRESS, values)
    record['created_at'] = validation.check_value(
        _PROGRESS.c.created_at, reported_at or timeutils.utcnow())
    latest = {name: record[name] for name in PROGRESS_COLUMNS
              if record.get(name) is not None}
    latest['last_report_at'] = record['created_at']
    session = context.session
    where = _migration_where(uuid, expected_status, generation)
    if not _update(session, _MIGRATIONS, where, latest):
        error = _migration_conflict(session, uuid, expected_status, generation)
        if isinstance(error, exception.MigrationStateConflict):
            return None
        raise error
    session.execute(sa.insert(_PROGRESS).values(record))
    return _get(session, _MIGRATIONS, 'uuid', uuid)


@context_manager.reader
def migration_progress_list(context, uuid, limit=None):
    """Return the progress records of migration ``uuid``, oldest first.

    :param limit: only the newest ``limit`` records (still oldest first).
    """
    table = _PROGRESS
    statement = (sa.select(table).where(table.c.migration_uuid == uuid)
                 .order_by(table.c.id.desc()))
    if limit is not None:
        statement = statement.limit(limit)
    return list(reversed(_list(context.session, statement)))


# --- events of a migration's story ---------------------------------------------------

@context_manager.writer
def migration_event_create(context, values):
    """Record one event of a migration (a decision or an observation); return it.

    :param values: ``migration_uuid``, ``kind``, ``message`` and optionally ``host``,
        ``job_elapsed_s`` and ``created_at`` (default now).
    :raises Invalid: a bad value (nothing written).
    """
    record = validation.check_values(_EVENTS, values, read_only=('id',))
    record.setdefault('created_at', timeutils.utcnow())
    _insert(context.session, _EVENTS, record)
    return record


@context_manager.reader
def migration_event_list(context, uuid):
    """The events of migration ``uuid``, oldest first."""
    table = _EVENTS
    return _list(context.session, sa.select(table).where(table.c.migration_uuid == uuid)
                 .order_by(table.c.id))


# --- per-host migration slots -----------------------------------------------------------

@context_manager.writer
def migration_slots_take(context, migration_uuid, wanted, turn=None):
    """Take one slot per ``(host, direction, limit)`` of ``wanted``: all or none.

    One transaction: for each host and direction the lowest free slot number below
    ``limit`` is inserted. Two conductors racing for the same last slot pick the same
    number, and the unique index on (host, direction, slot) lets exactly one of them
    insert it: the other gets SlotsBusy, and nothing of its transaction stays. A slot
    the migration already holds counts as taken (a repeated call is harmless).

    :param wanted: iterable of (host, 'out' or 'in', limit).
    :param turn: None, or ``turn(queued, slots)``: whether it is the migration's turn,
        asked in the same transaction with the queued migrations (first come first)
        and every slot held; False takes nothing. (One transaction instead of three:
        the gate of every migration asks.)
    :returns: the slot rows the migration holds.
    :raises SlotsBusy: a host has no free slot in that direction (nothing taken).
    """
    session = context.session
    # NOTE: the first statement writes (a no-op on the migration's row), so that on
    # SQLite this transaction waits for another writer instead of failing (see the
    # module's docstring).
    _update(session, _MIGRATIONS, [_MIGRATIONS.c.uuid == migration_uuid],
            {'generation': _MIGRATIONS.c.generation})
    table = _SLOTS
    slots = _list(session, sa.select(table))
    mine = [slot for slot in slots if slot['migration_uuid'] == migration_uuid]
    if len(mine) == len(list(wanted)) and mine:
        return mine
    if turn is not None:
        queued = _list(session, sa.select(_MIGRATIONS)
                       .where(_MIGRATIONS.c.status == 'queued')
                       .order_by(_MIGRATIONS.c.queued_at, _MIGRATIONS.c.id))
        if not turn(queued, slots):
            return []
    for host, direction, limit in wanted:
        validation.check_value(table.c.direction, direction)
        rows = [slot for slot in slots
                if slot['host'] == host and slot['direction'] == direction]
        if any(row['migration_uuid'] == migration_uuid for row in rows):
            continue
        busy = exception.SlotsBusy(migration_uuid=migration_uuid, host=host,
                                   direction=_DIRECTION_WORDS[direction],
                                   used=len(rows), limit=limit)
        if len(rows) >= limit:
            raise busy
        for slot in sorted(set(range(limit)) - {row['slot'] for row in rows}):
            # NOTE: each try in a savepoint: on PostgreSQL a failed INSERT aborts the
            # whole transaction, and a racer that took this number (unseen in our
            # snapshot) must not keep us from the next one.
            try:
                with session.begin_nested():
                    session.execute(sa.insert(table).values(
                        host=host, direction=direction, slot=slot,
                        migration_uuid=migration_uuid, created_at=timeutils.utcnow()))
                break
            except db_exc.DBDuplicateEntry:
                continue
        else:
            raise busy
    return _list(session, sa.select(table).where(table.c.migration_uuid
                                                 == migration_uuid))


_DIRECTION_WORDS = {'out': 'outbound', 'in': 'inbound'}


@context_manager.writer
def migration_slots_release(context, migration_uuid):
    """Give back every slot migration ``migration_uuid`` holds; return how many."""
    return context.session.execute(
        sa.delete(_SLOTS).where(_SLOTS.c.migration_uuid == migration_uuid)).rowcount


@context_manager.reader
def migration_slots_list(context):
    """Return every slot held, as rows (host, direction, slot, migration_uuid)."""
    return _list(context.session,
                 sa.select(_SLOTS).order_by(_SLOTS.c.host, _SLOTS.c.direction,
                                            _SLOTS.c.slot))


@context_manager.writer
def migration_slots_release_ended(context, statuses):
    """Give back the slots of migrations whose status is in ``statuses`` (the
    terminal ones: a flow that ended without releasing); return how many."""
    ended = sa.select(_MIGRATIONS.c.uuid).where(
        _MIGRATIONS.c.status.in_(_as_tuple(statuses)))
    return context.session.execute(
        sa.delete(_SLOTS).where(_SLOTS.c.migration_uuid.in_(ended))).rowcount


# --- conductor locks ---------------------------------------------------------------------

@context_manager.writer
def conductor_lock_holder_set(context, name, holder):
    """Record that ``holder`` (a phrase naming a conductor) holds lock ``name``."""
    return _upsert(context.session, _LOCKS, 'name', {'name': name, 'holder': holder})


@context_manager.reader
def conductor_lock_holder_get(context, name):
    """Return the recorded holder of lock ``name``, or None."""
    row = _get(context.session, _LOCKS, 'name', name)
    return None if row is None else row['holder']
