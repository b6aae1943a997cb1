"""The state machine of a Migration: every allowed status change, and nothing else.

A migration moves forward through the sequence of DESIGN.md; at any point before the
switch-over it may end ``failed`` (rolled back cleanly: the guest runs on the source,
claims released) or ``cancelled`` (an operator aborted it). ``error`` means the rollback
itself could not restore the invariants and an operator must look. Once post-copy has
started the destination is authoritative, so ``running-postcopy`` can only go forward
(``completing``) or to ``error``; it never returns to the source.

The machine is an automaton ``FiniteMachine`` (as Ironic's provision states); events are
named after the target state, so a transition is validated by asking whether the event
of that name is allowed from the current state. The module holds one frozen machine and
validates with copies of it, which makes :func:`check_transition` safe to call from any
thread.
"""

from automaton import exceptions as automaton_exc
from automaton import machines

from migration_conductor import exception

ACCEPTED = 'accepted'
QUEUED = 'queued'
SCHEDULING = 'scheduling'
PRE_CHECKING = 'pre-checking'
CLAIMING = 'claiming'
PREPARING = 'preparing'
RUNNING = 'running'
RUNNING_POSTCOPY = 'running-postcopy'
COMPLETING = 'completing'
COMPLETED = 'completed'
CANCELLING = 'cancelling'
CANCELLED = 'cancelled'
ERROR = 'error'
FAILED = 'failed'

ALL_STATES = (ACCEPTED, SCHEDULING, PRE_CHECKING, CLAIMING, PREPARING, QUEUED,
              RUNNING, RUNNING_POSTCOPY, COMPLETING, COMPLETED, CANCELLING,
              CANCELLED, ERROR, FAILED)
TERMINAL_STATES = frozenset((COMPLETED, CANCELLED, ERROR, FAILED))
IN_FLIGHT_STATES = frozenset(ALL_STATES) - TERMINAL_STATES
# The destination holds a claim for the migration: from the claim (taken while
# ``claiming``) until the finish releases it (the arrived guest then counts as used)
# or a rollback does (``cancelling`` still ends with one). Earlier states have no
# destination claim yet; terminal states have released it.
CLAIM_HELD_STATES = frozenset((CLAIMING, PREPARING, QUEUED, RUNNING, RUNNING_POSTCOPY,
                               COMPLETING, CANCELLING))
# An operator may abort until the switch-over: before the job starts (the flow rolls
# back at its next step) and while it runs in pre-copy (the source aborts the job).
ABORTABLE_STATES = frozenset((ACCEPTED, SCHEDULING, PRE_CHECKING, CLAIMING, PREPARING,
                              QUEUED, RUNNING, CANCELLING))

# Before the data moves: a failure or an abort ends the migration cleanly. An abort
# first marks it CANCELLING; the flow sees that at its next step and rolls back.
_PRE_COPY_ENDINGS = (FAILED, ERROR, CANCELLED, CANCELLING)

_TRANSITIONS = {
    ACCEPTED: (SCHEDULING,) + _PRE_COPY_ENDINGS,
    SCHEDULING: (PRE_CHECKING,) + _PRE_COPY_ENDINGS,
    # A destination whose checks or claim fail sends the flow back to pick an alternate.
    PRE_CHECKING: (CLAIMING, SCHEDULING) + _PRE_COPY_ENDINGS,
    # A failed claim sends the flow to check the next candidate destination.
    CLAIMING: (PREPARING, PRE_CHECKING, SCHEDULING) + _PRE_COPY_ENDINGS,
    PREPARING: (QUEUED, RUNNING) + _PRE_COPY_ENDINGS,
    QUEUED: (RUNNING,) + _PRE_COPY_ENDINGS,
    RUNNING: (RUNNING_POSTCOPY, COMPLETING, CANCELLING, FAILED, ERROR),
    RUNNING_POSTCOPY: (COMPLETING, ERROR),
    # An abort can lose the race against the end of the job: then it completes.
    CANCELLING: (CANCELLED, COMPLETING, FAILED, ERROR),
    COMPLETING: (COMPLETED, ERROR),
}


def _build_machine():
    machine = machines.FiniteMachine()
    for state in ALL_STATES:
        machine.add_state(state, terminal=state in TERMINAL_STATES)
    for source, targets in _TRANSITIONS.items():
        for target in targets:
            machine.add_transition(source, target, target)
    machine.freeze()
    return machine


_MACHINE = _build_machine()


def allowed_targets(current):
    """Return the set of statuses a migration in ``current`` may move to."""
    return frozenset(_TRANSITIONS.get(current, ()))


_SOURCES = {target: frozenset(source for source, targets in _TRANSITIONS.items()
                              if target in targets)
            for target in ALL_STATES}


def allowed_sources(target):
    """Return the set of statuses from which a migration may move to ``target``."""
    return _SOURCES.get(target, frozenset())


def check_transition(migration_uuid, current, target):
    """Validate ``current -> target``.

    :param migration_uuid: used in the error message only.
    :raises InvalidMigrationTransition: if the state machine forbids the change or
        either status is unknown.
    """
    machine = _MACHINE.copy()
    try:
        machine.initialize(current)
        machine.process_event(target)
    except (automaton_exc.NotFound, automaton_exc.InvalidState):
        raise exception.InvalidMigrationTransition(
            migration_uuid=migration_uuid, current=current, target=target)
