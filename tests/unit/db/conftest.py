"""Database fixtures for the db tests (defined in tests/db_fixtures.py)."""

from tests.db_fixtures import backend_api  # noqa: F401
from tests.db_fixtures import database_url  # noqa: F401
from tests.db_fixtures import mysql_url  # noqa: F401
from tests.db_fixtures import postgresql_url  # noqa: F401
from tests.db_fixtures import sqlite_api  # noqa: F401
from tests.db_fixtures import sqlite_url  # noqa: F401
