"""Per-host migration slots and their first-come-first-served queues.

A running migration holds one outbound slot of its source and one inbound slot of its
destination, from the moment its flow passes ``AcquireMigrationSlots`` until its job
ended (``ReleaseMigrationSlots``, or the rollback). A host has
``[conductor] max_outbound_per_host`` and ``max_inbound_per_host`` of them.

Safety: taking the two slots is one database transaction whose unique index on (host,
direction, slot number) decides every race (:func:`db.api.migration_slots_take`), so no
number of waiting migrations, conductors or threads ever runs more migrations on a host
than its limits.

Fairness: a migration that cannot have both slots now waits in ``queued``; the queues
are first come first served per host: planning in arrival order, every waiting
migration counts against the free slots of both its hosts, whether it can go or not,
so a later migration never takes a slot an earlier one is waiting for on that host
(:func:`plan`). A queued migration's flow is parked (suspended, no thread held): the
conductor that drives it gives it its slots and resumes it as soon as they are free,
woken at once by a slot freed in this conductor, or at its next look at the queue
(``queue_poll_interval``) for one freed by another.

Concurrency: :class:`SlotQueue` is shared by the flows (their engine threads) and a
dispatcher thread of its own; the set of parked flows lives in the flows' services.
"""

import collections
import logging
import threading

from db import api as db_api
from migration_conductor import exception
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

OUT = 'out'
IN = 'in'

Waiter = collections.namedtuple('Waiter', 'uuid source dest')


def plan(waiters, in_use, limits):
    """The waiters that may take their slots now, first come first served per host.

    :param waiters: Waiter tuples in arrival order.
    :param in_use: {(host, 'out' or 'in'): slots held now}.
    :param limits: {'out': outbound limit, 'in': inbound limit}.
    :returns: the uuids that can go, in order. Each waiter, granted or not, counts
        against the free slots of its source (out) and destination (in) for every
        waiter after it.
    """
    taken = collections.Counter(in_use)
    granted = []
    for waiter in waiters:
        wanted = ((waiter.source, OUT), (waiter.dest, IN))
        if all(taken[key] < limits[key[1]] for key in wanted):
            granted.append(waiter.uuid)
        for key in wanted:
            taken[key] += 1
    return granted


def positions(waiters):
    """{uuid: place in the queue}: 1 + the earlier waiters that wait on its source's
    outbound or its destination's inbound slots."""
    result = {}
    for index, waiter in enumerate(waiters):
        ahead = sum(1 for other in waiters[:index]
                    if other.source == waiter.source or other.dest == waiter.dest)
        result[waiter.uuid] = ahead + 1
    return result


def _waiter(row):
    return Waiter(row['uuid'], row['source_host'], row['dest_host'])


class SlotQueue:
    """Slots and queues of one conductor's flows.

    :param resume: callable(migration_uuid): run (resume) that migration's flow here.
    :param services: the flows' Services (which flows are parked here).
    """

    def __init__(self, conf, context):
        self._conf = conf
        self._context = context
        self.resume = None
        self.services = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None

    def limits(self):
        group = self._conf.conductor
        return {OUT: group.max_outbound_per_host, IN: group.max_inbound_per_host}

    def _wanted(self, row):
        limits = self.limits()
        return [(row['source_host'], OUT, limits[OUT]), (row['dest_host'], IN, limits[IN])]

    def _in_use(self, slots):
        in_use = collections.Counter()
        for slot in slots:
            in_use[(slot['host'], slot['direction'])] += 1
        return in_use

    def take(self, row):
        """Take the migration's two slots if its turn has come; return whether it
        holds them (already, or now).

        One database transaction reads the queue and the slots held, decides the turn
        (:func:`plan`, the migration counted after the queued ones unless it is one of
        them) and takes the slots.

        :param row: the migration's row (status, hosts).
        """
        def turn(queued, slots):
            waiters = [_waiter(r) for r in queued]
            if row['uuid'] not in {w.uuid for w in waiters}:
                waiters.append(_waiter(row))
            return row['uuid'] in plan(waiters, self._in_use(slots), self.limits())

        try:
            return bool(db_api.migration_slots_take(self._context, row['uuid'],
                                                    self._wanted(row), turn=turn))
        except exception.SlotsBusy as exc:
            LOG.info('Migration %s instance %s: %s', row['uuid'], row['instance_uuid'],
                     exc.message)
            return False

    def queue_summary(self, row):
        """Why ``row`` waits, for the logs: its place and what its hosts run."""
        waiters = [_waiter(r) for r in db_api.migration_list_queued(self._context)]
        if row['uuid'] not in {w.uuid for w in waiters}:
            waiters.append(_waiter(row))
        in_use = self._in_use(db_api.migration_slots_list(self._context))
        limits = self.limits()
        return ('place %d in the queue; %s sends %d of %d, %s receives %d of %d'
                % (positions(waiters)[row['uuid']], row['source_host'],
                   in_use[(row['source_host'], OUT)], limits[OUT], row['dest_host'],
                   in_use[(row['dest_host'], IN)], limits[IN]))

    def queue_positions(self):
        """{uuid: place} of every queued migration (for migctl show and list)."""
        return positions([_waiter(r) for r in db_api.migration_list_queued(self._context)])

    def release(self, migration_uuid):
        """Give back the migration's slots (idempotent); the queue looks again at once."""
        released = db_api.migration_slots_release(self._context, migration_uuid)
        if released:
            self.wake()
        return released

    def wake(self):
        self._wake.set()

    # --- the dispatcher ---------------------------------------------------------------

    def dispatch(self):
        """Give their slots to the parked migrations of this conductor whose turn has
        come, and resume their flows; resume the parked ones an operator aborted.

        :returns: the migration ids resumed.
        """
        stale = db_api.migration_slots_release_ended(self._context,
                                                     sorted(states.TERMINAL_STATES))
        if stale:
            LOG.warning('Gave back %d slot(s) still held by ended migrations', stale)
        parked = self.services.parked() if self.services is not None else set()
        if not parked:
            return []
        resumed = []
        queued = db_api.migration_list_queued(self._context)
        slots = db_api.migration_slots_list(self._context)
        grant = set(plan([_waiter(r) for r in queued], self._in_use(slots),
                         self.limits()))
        for row in queued:
            if row['uuid'] not in parked or row['uuid'] not in grant:
                continue
            try:
                db_api.migration_slots_take(self._context, row['uuid'], self._wanted(row))
            except exception.SlotsBusy as exc:
                LOG.info('Migration %s instance %s: still queued: %s', row['uuid'],
                         row['instance_uuid'], exc.message)
                continue
            LOG.info('Migration %s instance %s: its turn has come (slots of %s and %s '
                     'taken); resuming its flow', row['uuid'], row['instance_uuid'],
                     row['source_host'], row['dest_host'])
            resumed.append(row['uuid'])
        waiting = {row['uuid'] for row in queued}
        for migration_uuid in sorted(parked - waiting):
            # Not queued any more: aborted (cancelling) or ended by someone else.
            LOG.info('Migration %s: parked but no longer queued; resuming its flow',
                     migration_uuid)
            resumed.append(migration_uuid)
        for migration_uuid in resumed:
            if self.services.unpark(migration_uuid):
                self.resume(migration_uuid)
        return resumed

    def start(self):
        self._thread = threading.Thread(target=self._loop, name='slot-dispatcher',
                                        daemon=True)
        self._thread.start()

    def _loop(self):
        interval = self._conf.conductor.queue_poll_interval
        while not self._stopping.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.dispatch()
            except Exception:   # the database away: look again at the next interval
                LOG.exception('Could not look at the queued migrations; trying again in '
                              '%s s', interval)

    def stop(self):
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
