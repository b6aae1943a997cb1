"""tests/db_fixtures.py itself: a missing server fails the test, it never skips."""

import pytest
import sqlalchemy as sa

from tests import db_fixtures


@pytest.mark.parametrize('backend, label, url', [
    ('mysql', 'MariaDB', 'mysql+pymysql://root@127.0.0.1:1/?charset=utf8mb4'),
    ('postgresql', 'PostgreSQL', 'postgresql+psycopg2://postgres@127.0.0.1:1/postgres'),
])
def test_missing_server_fails_the_test(monkeypatch, backend, label, url):
    monkeypatch.setitem(db_fixtures._SERVERS, backend, (label, url))
    with pytest.raises(pytest.fail.Exception) as caught:
        with db_fixtures.throwaway_database(backend):
            pass
    assert '%s server at 127.0.0.1:1' % label in str(caught.value)


def test_server_database_is_dropped(database_url):
    # The database exists and is empty while the test runs...
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize('backend', ['mysql', 'postgresql'])
def test_throwaway_database_is_dropped_afterwards(backend):
    with db_fixtures.throwaway_database(backend) as url:
        name = sa.engine.make_url(url).database
    engine, _ = db_fixtures._admin_engine(backend)
    try:
        with engine.connect() as connection:
            if backend == 'mysql':
                names = connection.exec_driver_sql('SHOW DATABASES').scalars().all()
            else:
                names = connection.exec_driver_sql(
                    'SELECT datname FROM pg_database').scalars().all()
    finally:
        engine.dispose()
    assert name.startswith('mc_test_')
    assert name not in names
