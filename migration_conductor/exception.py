"""Typed errors of migration-conductor: one place for every error a caller can see.

Each error has a stable ``code`` (what a program matches on), a ``message`` built from a
template (what an operator reads) and a ``phase`` hint. Errors raised in the conductor are
sent to RPC callers by oslo.messaging, which rebuilds them on the caller's side when this
module is in ``allowed_remote_exmods`` (see :mod:`migration_conductor.rpc`).
"""


class MigrationConductorError(Exception):
    """Base class: ``msg_fmt`` is filled with the keyword arguments given."""

    msg_fmt = 'An unknown error occurred.'
    code = 'unknown'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def __str__(self):
        return self.message


# --- configuration and start-up ------------------------------------------------------

class ConfigurationError(MigrationConductorError):
    """A setting is wrong: the message names the setting and says why, in one line."""

    msg_fmt = '%(setting)s: %(reason)s'
    code = 'configuration'


class ConductorUnavailable(MigrationConductorError):
    msg_fmt = ('no conductor answered on topic %(topic)s within %(timeout)s s '
               '(transport %(transport)s): is migration-conductor running?')
    code = 'conductor_unavailable'


class Invalid(MigrationConductorError):
    msg_fmt = 'Invalid input: %(reason)s'
    code = 'invalid'


# --- not found -------------------------------------------------------------------------

class NotFound(MigrationConductorError):
    msg_fmt = 'Resource could not be found.'
    code = 'not_found'


class HostNotFound(NotFound):
    msg_fmt = 'Compute host %(host)s could not be found.'
    code = 'host_not_found'


class InstanceNotFound(NotFound):
    msg_fmt = 'Instance %(instance_uuid)s could not be found.'
    code = 'instance_not_found'


class MigrationNotFound(NotFound):
    msg_fmt = 'Migration %(migration_uuid)s could not be found.'
    code = 'migration_not_found'


class ProfileNotFound(NotFound):
    msg_fmt = 'Migration profile %(profile)s does not exist (profiles: %(known)s).'
    code = 'profile_not_found'


# --- conflicts -------------------------------------------------------------------------

class Conflict(MigrationConductorError):
    msg_fmt = 'Conflict: %(reason)s'
    code = 'conflict'


class InvalidMigrationTransition(Conflict):
    msg_fmt = ('Migration %(migration_uuid)s cannot go from %(current)s to '
               '%(target)s.')
    code = 'invalid_transition'


class MigrationStateConflict(Conflict):
    msg_fmt = ('Migration %(migration_uuid)s is no longer %(expected)s '
               '(it is %(actual)s).')
    code = 'state_conflict'


class InstanceStateConflict(Conflict):
    msg_fmt = ('Instance %(instance_uuid)s is not in the expected state: '
               '%(reason)s.')
    code = 'instance_state_conflict'


class GuestDiedAfterSwitchOver(InstanceStateConflict):
    msg_fmt = ('Instance %(instance_uuid)s stopped running on %(host)s %(after).1f s '
               'after the switch-over (%(state)s), within the settle period: it '
               'crashed or panicked there.')
    code = 'guest_died'


class GuestDeadOnArrival(GuestDiedAfterSwitchOver):
    msg_fmt = ('Instance %(instance_uuid)s is %(state)s on %(host)s right after the '
               'switch-over, before its settle period: it crashed or panicked there '
               '(dead on arrival).')


class InsufficientResources(Conflict):
    msg_fmt = ('Host %(host)s cannot take instance %(instance_uuid)s: %(resource)s '
               'requested %(requested)s, free %(free)s.')
    code = 'insufficient_resources'


class InstanceNotRunning(Conflict):
    msg_fmt = ('Instance %(instance_uuid)s is %(power_state)s on host %(host)s; only a '
               'running instance can be live-migrated.')
    code = 'instance_not_running'


class ProfileCannotBeMet(Invalid):
    msg_fmt = ('Migration profile %(profile)s cannot be met for instance '
               '%(instance_uuid)s: %(reason)s')
    code = 'profile_cannot_be_met'


class ForceCompleteModeRefused(Invalid):
    msg_fmt = ('Migration %(migration_uuid)s cannot be forced to complete by %(mode)s: '
               '%(reason)s')
    code = 'force_complete_mode_refused'


class NoValidHost(MigrationConductorError):
    msg_fmt = 'No valid destination for instance %(instance_uuid)s: %(reason)s'
    code = 'no_valid_host'


class DestinationRefused(MigrationConductorError):
    msg_fmt = 'Host %(host)s cannot be the destination: %(reason)s'
    code = 'destination_refused'


class DestinationIsSource(DestinationRefused):
    msg_fmt = 'Host %(host)s cannot be the destination: it is the source host.'
    code = 'destination_is_source'


class HostUnavailable(DestinationRefused):
    """The host is down (no recent heartbeat) or disabled by an operator."""

    msg_fmt = 'Host %(host)s cannot be the destination: it is %(state)s.'
    code = 'host_unavailable'


class SourceHostUnavailable(MigrationConductorError):
    """The source host's agent is down or does not answer."""

    msg_fmt = 'Host %(host)s, the source, is %(state)s.'
    code = 'source_unavailable'


class HypervisorTypeMismatch(DestinationRefused):
    msg_fmt = ('Host %(host)s cannot be the destination: its hypervisor type '
               '%(dest_type)s differs from the source\'s %(source_type)s.')
    code = 'hypervisor_type_mismatch'


class DestinationTooOld(DestinationRefused):
    msg_fmt = ('Host %(host)s cannot be the destination: its %(what)s %(dest_version)s '
               'is older than the source\'s %(source_version)s.')
    code = 'destination_older'


class StorageIncompatible(DestinationRefused):
    msg_fmt = ('Host %(host)s cannot be the destination: the storage of instance '
               '%(instance_uuid)s is not compatible: %(reason)s')
    code = 'storage_incompatible'


class InstanceAlreadyMigrating(Conflict):
    msg_fmt = ('Instance %(instance_uuid)s is already being moved by migration '
               '%(migration_uuid)s.')
    code = 'already_migrating'


class MigrationNotRunning(Conflict):
    msg_fmt = ('Migration %(migration_uuid)s is %(status)s: it can only be '
               '%(action)s while running.')
    code = 'migration_not_running'


class MigrationNotAbortable(Conflict):
    msg_fmt = ('Migration %(migration_uuid)s is %(status)s: it can only be aborted '
               'before its switch-over to the destination.')
    code = 'migration_not_abortable'


class MigrationAborted(Conflict):
    msg_fmt = 'Migration %(migration_uuid)s was aborted by an operator.'
    code = 'aborted'


class MigrationParked(MigrationConductorError):
    """The flow waits for a slot of its hosts: suspended, to be resumed (not a failure)."""

    msg_fmt = 'Migration %(migration_uuid)s waits for a migration slot of its hosts.'
    code = 'parked'


class ClaimLost(MigrationConductorError):
    """This conductor no longer holds the migration's job on the jobboard."""

    msg_fmt = ('Migration %(migration_uuid)s: this conductor lost its claim on the '
               'jobboard; another conductor drives it.')
    code = 'claim_lost'


class OwnershipLost(ClaimLost):
    """The database refused a write of a conductor that no longer drives the flow.

    Raised by :func:`db.api.migration_update` when the migration's ``generation`` is
    not the one the writer drives: another conductor took the migration over.
    """

    msg_fmt = ('Migration %(migration_uuid)s is driven by %(owner)s now (generation '
               '%(actual)s, not %(expected)s): write refused.')
    code = 'ownership_lost'


class SlotsBusy(Conflict):
    """A host has no free migration slot in that direction right now."""

    msg_fmt = ('Migration %(migration_uuid)s: host %(host)s has no free %(direction)s '
               'migration slot (%(used)s of %(limit)s taken).')
    code = 'slots_busy'


class ConductorLocked(ConfigurationError):
    """Another conductor without a jobboard drives this database's migrations."""

    msg_fmt = ('%(setting)s: another conductor without a jobboard already drives the '
               'migrations of this database (%(holder)s); two would both resume every '
               'unfinished migration. Stop it, or set [conductor] jobboard_url on '
               'every conductor to run several.')
    code = 'conductor_locked'


# --- virt driver -----------------------------------------------------------------------

class HypervisorUnavailable(MigrationConductorError):
    msg_fmt = 'Hypervisor at %(uri)s is unavailable: %(reason)s'
    code = 'hypervisor_unavailable'


class DomainNotFound(NotFound):
    msg_fmt = 'Domain %(instance_uuid)s is not defined on host %(host)s.'
    code = 'domain_not_found'


# --- authorization -----------------------------------------------------------------------

class PolicyNotAuthorized(MigrationConductorError):
    msg_fmt = 'Policy does not allow %(action)s to be performed.'
    code = 'forbidden'


# --- migration jobs ----------------------------------------------------------------------

class CPUIncompatible(MigrationConductorError):
    msg_fmt = ('The CPU of host %(host)s cannot run guests of the source host\'s CPU: '
               '%(reason)s')
    code = 'cpu_incompatible'


class MigrationJobFailed(MigrationConductorError):
    msg_fmt = ('The migration job of instance %(instance_uuid)s on host %(host)s failed: '
               '%(reason)s')
    code = 'migration_job_failed'


class MigrationJobCancelled(MigrationJobFailed):
    msg_fmt = ('The migration job of instance %(instance_uuid)s on host %(host)s was '
               'cancelled.')
    code = 'migration_job_cancelled'


class PostcopyUnrecoverable(MigrationJobFailed):
    """A post-copy that cannot be resumed: the destination lost the guest."""
    code = 'postcopy_unrecoverable'


class CompletionBudgetExceeded(MigrationJobFailed):
    msg_fmt = ('The migration of instance %(instance_uuid)s from %(host)s was ended by '
               'its profile: %(reason)s.')
    code = 'completion_budget_exceeded'


class HypervisorCallFailed(MigrationConductorError):
    msg_fmt = ('The hypervisor of host %(host)s could not %(action)s instance '
               '%(instance_uuid)s: %(reason)s')
    code = 'hypervisor_call_failed'
