"""Check the values given to :mod:`db.api` against the columns of a table.

The three backends do not reject the same things: SQLite stores a string in an integer
column and a 300-character host name in a ``VARCHAR(255)``, MariaDB in strict mode and
PostgreSQL refuse both, each with its own error. Checking here, before any SQL runs,
makes every backend accept and refuse the same values, with one typed error
(:class:`~migration_conductor.exception.Invalid`) that names the column, and nothing
written.
"""

import collections.abc
import datetime

import sqlalchemy as sa

from db import models
from migration_conductor import exception

# Columns the database fills in itself.
AUTOMATIC_COLUMNS = frozenset(('id', 'created_at', 'updated_at'))

_INT_RANGES = {
    sa.BigInteger: (-2 ** 63, 2 ** 63 - 1),
    sa.Integer: (-2 ** 31, 2 ** 31 - 1),
}


def _invalid(reason):
    return exception.Invalid(reason=reason)


def check_known(table, names):
    """Check that every name is a column of ``table``.

    :param table: a ``sqlalchemy.Table``.
    :param names: the column names given by the caller.
    :raises Invalid: naming the unknown columns.
    """
    unknown = sorted(set(names) - set(table.columns.keys()))
    if unknown:
        raise _invalid('unknown column(s) for %s: %s'
                       % (table.name, ', '.join(unknown)))


def check_names(table, names, read_only=()):
    """Check that every name is a column of ``table`` that callers may set.

    :param table: a ``sqlalchemy.Table``.
    :param names: the column names given by the caller.
    :param read_only: further columns the caller may not set here (a row's key).
    :raises Invalid: a name is not a column, or names a read-only column.
    """
    check_known(table, names)
    forbidden = sorted(set(names) & (AUTOMATIC_COLUMNS | set(read_only)))
    if forbidden:
        raise _invalid('column(s) of %s that cannot be set here: %s'
                       % (table.name, ', '.join(forbidden)))


def check_values(table, values, read_only=()):
    """Return a checked copy of ``values`` for an INSERT or UPDATE of ``table``.

    :param table: a ``sqlalchemy.Table``.
    :param values: mapping of column name to value.
    :param read_only: further columns the caller may not set here (a row's key).
    :returns: a new dict; aware datetimes are converted to naive UTC and tuples of
        strings (``cpu_features``) to lists.
    :raises Invalid: unknown or read-only column, or a value of the wrong type, too
        long, out of range, null where the column is NOT NULL, or not one of the
        column's ``info['choices']``.
    """
    if not isinstance(values, collections.abc.Mapping):
        raise _invalid('values for %s must be a mapping of column names, not %s'
                       % (table.name, type(values).__name__))
    check_names(table, values, read_only)
    return {name: check_value(table.columns[name], value)
            for name, value in values.items()}


def check_required(table, values):
    """Check that an INSERT gives every NOT NULL column that has no default.

    :param table: a ``sqlalchemy.Table``.
    :param values: the checked values of the new row.
    :raises Invalid: naming the missing columns.
    """
    missing = [column.name for column in table.columns
               if not column.nullable and not column.primary_key
               and column.default is None and column.server_default is None
               and column.name not in values]
    if missing:
        raise _invalid('a new row of %s needs: %s' % (table.name, ', '.join(missing)))


def check_value(column, value, allow_null=False):
    """Return ``value`` checked (and normalized) for ``column``.

    :param column: a ``sqlalchemy.Column`` of a :mod:`db.models` table.
    :param value: the value to store in (or compare with) that column.
    :param allow_null: accept None even for a NOT NULL column (for comparisons).
    :returns: the value to bind.
    :raises Invalid: the value does not fit the column.
    """
    where = '%s.%s' % (column.table.name, column.name)
    if value is None:
        if column.nullable or allow_null:
            return None
        raise _invalid('%s must not be null' % where)
    choices = column.info.get('choices')
    if choices is not None and value not in choices:
        raise _invalid('%s must be one of %s, not %r'
                       % (where, ', '.join(choices), value))
    checked, expected = _check_type(column.type, value)
    if expected is not None:
        raise _invalid('%s must be %s, not %r' % (where, expected, value))
    return checked


def _check_type(column_type, value):
    """Return (normalized value, None) or (None, description of what was expected)."""
    if isinstance(column_type, models.JSONEncodedList):
        if (isinstance(value, (list, tuple))
                and all(isinstance(item, str) for item in value)):
            return list(value), None
        return None, 'a list of strings'
    if isinstance(column_type, models.JSONEncodedDict):
        if isinstance(value, collections.abc.Mapping):
            return dict(value), None
        return None, 'a mapping'
    if isinstance(column_type, sa.Float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return None, 'a number'
    if isinstance(column_type, sa.Boolean):
        return (value, None) if isinstance(value, bool) else (None, 'a boolean')
    if isinstance(column_type, sa.Integer):
        low, high = next(bounds for kind, bounds in _INT_RANGES.items()
                         if isinstance(column_type, kind))
        if isinstance(value, int) and not isinstance(value, bool) \
                and low <= value <= high:
            return value, None
        return None, 'an integer from %d to %d' % (low, high)
    if isinstance(column_type, sa.DateTime):
        if not isinstance(value, datetime.datetime):
            return None, 'a datetime'
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value, None
    if isinstance(column_type, sa.String):
        length = column_type.length
        if isinstance(value, str) and (length is None or len(value) <= length):
            return value, None
        return None, ('a string' if length is None
                      else 'a string of at most %d characters' % length)
    return value, None
