"""The conductor lock: one conductor without a jobboard per database, on every backend.

A second lock on the same database is refused and names the holder; a lock on another
database (of the same server: MariaDB's locks are the server's) is not; the lock is
free again once its holder released it or its process died (its connection or file
closed).
"""

import subprocess
import sys
import textwrap

import pytest

from migration_conductor import conductor_lock
from migration_conductor import context
from migration_conductor import exception
from tests import db_fixtures
from tests.db_fixtures import backend_api  # noqa: F401


def _lock(url, holder):
    return conductor_lock.ConductorLock(url, holder, context.get_service_context())


def test_a_second_conductor_without_a_jobboard_is_refused_naming_the_first(backend_api):
    first = _lock(backend_api, 'conductor a (pid 1, topic t)')
    first.acquire()
    try:
        with pytest.raises(exception.ConductorLocked) as info:
            _lock(backend_api, 'conductor b (pid 2, topic t)').acquire()
        assert 'conductor a (pid 1, topic t)' in info.value.message
        assert info.value.message.startswith('[conductor] jobboard_url: ')
    finally:
        first.release()
    second = _lock(backend_api, 'conductor b (pid 2, topic t)')
    second.acquire()                       # free again once released
    second.release()


@pytest.mark.parametrize('backend', ['mysql', 'postgresql'])
def test_conductors_of_two_databases_of_one_server_do_not_exclude_each_other(backend):
    with db_fixtures.api_on(backend) as one, db_fixtures.throwaway_database(
            backend) as other:
        from db import migration
        migration.upgrade(other)
        first = _lock(one, 'conductor a')
        first.acquire()
        try:
            with db_fixtures.use_database(other):
                second = _lock(other, 'conductor b')
                second.acquire()
                second.release()
        finally:
            first.release()


def test_the_lock_of_a_killed_conductor_is_free_at_once(backend_api):
    """The holder's process dies without releasing (SIGKILL): its connection (or
    file) closes, and the lock is free at once."""
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent('''
        import sys, time
        from migration_conductor import conductor_lock, context
        from tests import db_fixtures
        with db_fixtures.use_database(sys.argv[1]):
            lock = conductor_lock.ConductorLock(sys.argv[1], 'doomed',
                                                context.get_service_context())
            lock.acquire()
            print('held', flush=True)
            time.sleep(600)
        '''), backend_api], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(exception.ConductorLocked):
            _lock(backend_api, 'too early').acquire()
        holder.kill()
        holder.wait(30)
        lock = _lock(backend_api, 'after the kill')
        lock.acquire()
        lock.release()
    finally:
        holder.kill()
