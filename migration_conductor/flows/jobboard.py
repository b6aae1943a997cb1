"""The jobboard through which several conductors share the migrations (taskflow, Redis).

Each accepted migration is posted as one job on taskflow's Redis jobboard; the job
names the migration's logbook, whose flow detail (in the conductors' shared database)
holds the flow's state. A conductor drives a migration only while it holds the job's
claim, an owner key in Redis that expires unless renewed: a dead conductor's claims
expire after ``[conductor] jobboard_claim_expiry`` seconds, and another conductor
claims the job and resumes the flow from its last finished task (every task is
idempotent). A job is consumed when its migration reaches a terminal status.

The claim is atomic in Redis (taskflow's Lua script), so two conductors never both
hold a job. A conductor whose claim is gone or held by another (after a pause longer
than the expiry), or which could not renew it for as long as the expiry (Redis out of
reach: the key has expired there, or will before Redis is back), has lost it: that
flow's persistence is fenced at once, and the flow stops at its next step (see
:mod:`.runner`).

Redis here is the place of the jobs, not of the migrations' state: if Redis loses its
data, a conductor that starts posts the jobs of the unfinished migrations again (under
a Redis lock, so that two conductors starting together do not post one twice).

Thread-safety: the board's Redis client is thread-safe; the set of held jobs is
guarded by a lock. RPC threads post and claim (on accept), the runner's watcher thread
claims, renews and releases.
"""

import logging
import threading
import time
import urllib.parse

import redis
from taskflow import exceptions as taskflow_exc
from taskflow.jobs import backends as job_backends

LOG = logging.getLogger(__name__)

_BOARD_NAME = 'migration-conductor'


def board_conf(url, namespace):
    """taskflow's Redis jobboard configuration from ``redis://[:password@]host[:port][/db]``.

    :raises ValueError: not a redis:// URL, or its database is not a number.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != 'redis':
        raise ValueError('the jobboard URL must start with redis://, not %r'
                         % parts.scheme)
    path = parts.path.strip('/')
    conf = {'board': 'redis', 'host': parts.hostname or '127.0.0.1',
            'port': parts.port or 6379, 'namespace': namespace,
            'db': int(path) if path else 0, 'socket_timeout': 5.0,
            'socket_connect_timeout': 5.0}
    if parts.password:
        conf['password'] = urllib.parse.unquote(parts.password)
    return conf


class MigrationJobs:
    """This conductor's view of the jobboard: post, claim, renew and release jobs."""

    def __init__(self, conf, persistence, owner):
        """:param persistence: the taskflow persistence backend holding the logbooks.
        :param owner: this conductor's name on the board (unique per process).
        :raises ValueError: ``[conductor] jobboard_url`` is malformed.
        """
        group = conf.conductor
        self._conf = board_conf(group.jobboard_url, group.jobboard_namespace)
        self._expiry = group.jobboard_claim_expiry
        self.owner = owner
        self._board = job_backends.fetch(_BOARD_NAME, dict(self._conf),
                                         persistence=persistence)
        self._board.connect()
        self._redis = redis.Redis(host=self._conf['host'], port=self._conf['port'],
                                  db=self._conf['db'],
                                  password=self._conf.get('password'),
                                  socket_timeout=5.0)
        self._held = {}         # migration uuid -> the job this conductor holds
        self._renewed = {}      # migration uuid -> monotonic time of the last renewal
        self._lost = set()      # migration uuids whose claim was lost, until forgotten
        self._lock = threading.Lock()

    def post(self, migration_uuid, book):
        """Post the job of a new migration (before its request is acknowledged)."""
        return self._board.post('migration-%s' % migration_uuid, book=book,
                                details={'migration_uuid': migration_uuid})

    def _jobs(self, only_unclaimed=False):
        for job in self._board.iterjobs(only_unclaimed=only_unclaimed,
                                        ensure_fresh=True):
            migration_uuid = (job.details or {}).get('migration_uuid')
            if migration_uuid:
                yield migration_uuid, job

    def unclaimed(self):
        """(migration uuid, job) of every job no conductor holds, oldest first."""
        return list(self._jobs(only_unclaimed=True))

    def claim(self, migration_uuid, job=None):
        """Try to hold the job of ``migration_uuid``; return the job, or None.

        The job when this conductor holds it (now or already); None when another
        conductor holds it, or there is no such job.
        """
        with self._lock:
            if migration_uuid in self._held:
                return self._held[migration_uuid]
        if job is None:
            job = next((j for m, j in self._jobs() if m == migration_uuid), None)
            if job is None:
                return None
        claimed_at = time.monotonic()
        try:
            self._board.claim(job, self.owner, expiry=self._expiry)
        except (taskflow_exc.UnclaimableJob, taskflow_exc.NotFound):
            return None
        with self._lock:
            self._held[migration_uuid] = job
            self._renewed[migration_uuid] = claimed_at
        return job

    def holds(self, migration_uuid):
        """Whether this conductor holds the job of ``migration_uuid`` (no Redis call).

        A lost claim is held until :meth:`forget`, but :meth:`fenced` at once.
        """
        with self._lock:
            return migration_uuid in self._held

    def fenced(self, migration_uuid):
        """Whether the flow of ``migration_uuid`` must save nothing more here: its
        claim was lost, or is not (or no longer) held."""
        with self._lock:
            return migration_uuid in self._lost or migration_uuid not in self._held

    def renew(self):
        """Renew every claim held; return the migration uuids whose claim was lost.

        A lost claim is fenced at once, and held until :meth:`forget`.
        """
        with self._lock:
            held = list(self._held.items())
        lost = []
        for migration_uuid, job in held:
            asked_at = time.monotonic()
            try:
                renewed = (self._board.find_owner(job) == self.owner
                           and job.extend_expiry(self._expiry))
            except taskflow_exc.JobFailure as exc:
                with self._lock:
                    silent = asked_at - self._renewed.get(migration_uuid, asked_at)
                if silent < self._expiry:
                    LOG.warning('Migration %s: could not renew its claim on the jobboard '
                                '(%s); it stays valid for %.1f s more', migration_uuid,
                                exc, self._expiry - silent)
                    continue
                LOG.error('Migration %s: could not renew its claim on the jobboard for '
                          '%.1f s (%s): it has expired', migration_uuid, silent, exc)
                renewed = False
            if renewed:
                with self._lock:
                    self._renewed[migration_uuid] = asked_at
            else:
                with self._lock:
                    self._lost.add(migration_uuid)
                lost.append(migration_uuid)
        return lost

    def forget(self, migration_uuid):
        """Stop counting a lost claim as held (its flow was stopped)."""
        with self._lock:
            self._held.pop(migration_uuid, None)
            self._renewed.pop(migration_uuid, None)
            self._lost.discard(migration_uuid)

    def release(self, migration_uuid, finished):
        """Consume the job of a finished migration, else give it back to the board."""
        with self._lock:
            job = self._held.pop(migration_uuid, None)
            self._renewed.pop(migration_uuid, None)
            if migration_uuid in self._lost:    # not ours to consume or abandon
                self._lost.discard(migration_uuid)
                job = None
        if job is None:
            return
        try:
            if finished:
                self._board.consume(job, self.owner)
            else:
                self._board.abandon(job, self.owner)
        except (taskflow_exc.JobFailure, taskflow_exc.NotFound) as exc:
            LOG.warning('Migration %s: could not %s its job on the jobboard (%s); its '
                        'claim expires in %s s', migration_uuid,
                        'consume' if finished else 'abandon', exc, self._expiry)

    def held(self):
        with self._lock:
            return sorted(self._held)

    def repost_missing(self, unfinished, load_book):
        """Post again the jobs of unfinished migrations that have none (Redis lost them).

        :param unfinished: migration uuids not in a terminal status.
        :param load_book: migration uuid -> its LogBook.
        :returns: the migration uuids posted again.
        """
        posted = []
        with self._redis.lock('%s:repost-lock' % self._conf['namespace'], timeout=60,
                              blocking_timeout=30):
            present = {m for m, _job in self._jobs()}
            for migration_uuid in unfinished:
                if migration_uuid not in present:
                    self.post(migration_uuid, load_book(migration_uuid))
                    posted.append(migration_uuid)
        return posted

    def close(self):
        self._board.close()
        self._redis.close()
