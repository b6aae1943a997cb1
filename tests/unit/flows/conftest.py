"""Database fixtures for the flow tests (defined in tests/db_fixtures.py)."""

from tests.db_fixtures import database_url  # noqa: F401
