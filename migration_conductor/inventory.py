"""Host inventory: turn agents' reports into ComputeHost and Instance records.

Agents report at registration and then every ``[agent] heartbeat_interval`` seconds. The
report is the truth about what each hypervisor runs right now; this module reconciles it
with the database:

* the host row is upserted with the reported inventory and a fresh ``last_heartbeat``;
  ``enabled``/``disabled_reason`` belong to operators and are never overwritten;
* every reported domain becomes (or updates) the Instance of the same UUID, on this host;
* an instance recorded on this host but no longer reported is marked ``missing``, and
  forgotten once it has been missing for ``[conductor] missing_instance_expiry``
  seconds (an operator may also forget it at once: :func:`forget_instance`).

It also tells a (re)started agent which claims it must hold and which outgoing jobs it
must watch again: :func:`host_migrations` (and :func:`claims_for_host` for agents of
RPC 1.3).

An instance owned by a migration (``task_state`` set) is left alone: during a live
migration both hosts report the domain, and only the migration flow may move it.

Concurrency: reports from different agents run in parallel RPC threads; each report is
applied in its own transaction, per row, so two agents never contend on the same rows
except for an instance seen on both hosts, where the rule below decides.
"""

import logging

from oslo_utils import timeutils

from db import api as db_api
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import fields
from migration_conductor.objects import migration_states as states

LOG = logging.getLogger(__name__)

# Operator-owned columns: an agent's report never changes them.
_OPERATOR_COLUMNS = ('enabled', 'disabled_reason')


def host_from_row(row, service_down_time, now=None):
    """Build a ComputeHost from a DB row, with ``up`` derived from its heartbeat."""
    host = objects.ComputeHost.from_db_row(row)
    host.up = host.heartbeat_is_recent(service_down_time, now=now)
    host.obj_reset_changes(['up'])
    return host


def record_report(context, report, service_down_time, missing_expiry=0):
    """Apply one agent report; return the host as now recorded.

    :param report: a HostReport from the agent.
    :param service_down_time: seconds after which a host without heartbeat is down.
    :param missing_expiry: seconds after which an instance missing from this host's
        reports is forgotten; 0 keeps it.
    :returns: ComputeHost, with ``up`` set.
    """
    host_name = report.host.host
    values = report.host.obj_db_values()
    for column in _OPERATOR_COLUMNS:
        values.pop(column, None)
    values['last_heartbeat'] = timeutils.utcnow()
    row = db_api.compute_host_upsert(context, values)
    reported = set()
    for instance in report.instances:
        reported.add(instance.uuid)
        _record_instance(context, host_name, instance, service_down_time)
    for row_instance in db_api.instance_list(context, host=host_name):
        if (row_instance['uuid'] not in reported
                and not row_instance.get('task_state')
                and row_instance['power_state'] != fields.PowerState.MISSING):
            LOG.warning('Instance %(uuid)s is no longer reported by host %(host)s; '
                        'marking it missing',
                        {'uuid': row_instance['uuid'], 'host': host_name})
            db_api.instance_update(context, row_instance['uuid'],
                                   {'power_state': fields.PowerState.MISSING})
        elif (missing_expiry and row_instance['power_state'] == fields.PowerState.MISSING
              and not row_instance.get('task_state')
              and _older_than(row_instance['updated_at'], missing_expiry)):
            _forget(context, row_instance, 'missing for more than %d s' % missing_expiry)
    return host_from_row(row, service_down_time)


def _older_than(stamp, seconds):
    if stamp is None:
        return True
    return (timeutils.utcnow() - stamp).total_seconds() > seconds


def _forget(context, row, why):
    """Delete an instance row that is missing and not locked; True when deleted."""
    try:
        db_api.instance_delete(context, row['uuid'],
                               expected={'power_state': fields.PowerState.MISSING,
                                         'task_state': None})
    except (exception.InstanceStateConflict, exception.InstanceNotFound):
        return False
    LOG.warning('Instance %(uuid)s (%(name)s) forgotten: %(why)s (last on host %(host)s)',
                {'uuid': row['uuid'], 'name': row['name'], 'why': why,
                 'host': row['host']})
    return True


def forget_instance(context, instance_row):
    """Forget an instance its host no longer reports (an operator's request).

    :raises InstanceStateConflict: it is not ``missing``, or a migration holds it
        (nothing changes).
    """
    if (instance_row['power_state'] != fields.PowerState.MISSING
            or instance_row.get('task_state')):
        raise exception.InstanceStateConflict(
            instance_uuid=instance_row['uuid'],
            reason='it is %s on host %s%s; only an instance its host no longer reports '
                   '(missing) can be forgotten' % (
                       instance_row['power_state'], instance_row['host'],
                       ', held by a migration' if instance_row.get('task_state') else ''))
    if not _forget(context, instance_row, 'an operator asked'):
        raise exception.InstanceStateConflict(
            instance_uuid=instance_row['uuid'],
            reason='it changed meanwhile (reported again, or a migration took it)')


def claims_for_host(context, host):
    """The claims ``host`` must hold for migrations towards it, from the database.

    One claim per migration whose destination is ``host`` and whose status is one of
    :data:`~migration_conductor.objects.migration_states.CLAIM_HELD_STATES`, sized as
    its instance. A migration whose instance size is unknown is left out (logged): no
    honest claim can be made for it.

    :param context: RequestContext.
    :param host: the destination host's name.
    :returns: list of dicts ``{'migration_uuid', 'instance_uuid', 'memory_mb',
        'vcpus'}``, oldest migration first.
    """
    claims = []
    for row in db_api.migration_list_with_sizes(
            context, status=sorted(states.CLAIM_HELD_STATES), dest_host=host):
        if row['instance_memory_mb'] is None or row['instance_vcpus'] is None:
            LOG.warning('Migration %(m)s instance %(i)s: its size is unknown, so host '
                        '%(host)s is not told to hold a claim for it',
                        {'m': row['uuid'], 'i': row['instance_uuid'], 'host': host})
            continue
        claims.append({'migration_uuid': row['uuid'],
                       'instance_uuid': row['instance_uuid'],
                       'memory_mb': row['instance_memory_mb'],
                       'vcpus': row['instance_vcpus']})
    return claims


# The statuses in which a migration's job may run on its source.
_JOB_MAY_RUN_STATES = (states.RUNNING, states.RUNNING_POSTCOPY, states.CANCELLING)


def host_migrations(context, host, report_interval):
    """What the agent of ``host`` must hold and watch after it (re)started.

    :returns: HostMigrations: the claims of migrations towards ``host`` (as
        :func:`claims_for_host`) and the migrations leaving it whose job may run.
    """
    claims = objects.ResourceClaimList(objects=[
        objects.ResourceClaim.from_legacy(claim, host=host)
        for claim in claims_for_host(context, host)])
    outgoing = objects.MigrationJobList(objects=[
        objects.MigrationJob(migration_uuid=row['uuid'],
                             instance_uuid=row['instance_uuid'], host=host,
                             state=fields.JobState.RUNNING)
        for row in db_api.migration_list(context, status=list(_JOB_MAY_RUN_STATES))
        if row['source_host'] == host])
    return objects.HostMigrations(host=host, claims=claims, outgoing=outgoing,
                                  report_interval=report_interval)


def _record_instance(context, host_name, instance, service_down_time):
    values = {'uuid': instance.uuid, 'name': instance.name, 'host': host_name,
              'power_state': instance.power_state, 'memory_mb': instance.memory_mb,
              'vcpus': instance.vcpus, 'migration_profile': instance.migration_profile}
    try:
        current = db_api.instance_get(context, instance.uuid)
    except exception.InstanceNotFound:
        LOG.info('Instance %(uuid)s (%(name)s) found on host %(host)s',
                 {'uuid': instance.uuid, 'name': instance.name, 'host': host_name})
        db_api.instance_upsert(context, values)
        return
    if current.get('task_state'):
        # A migration owns it: record nothing that could move it.
        return
    if current['host'] not in (None, host_name) and not _should_move(
            context, current, instance, service_down_time):
        return
    if current['host'] != host_name:
        LOG.info('Instance %(uuid)s now reported by host %(host)s (was %(old)s)',
                 {'uuid': instance.uuid, 'host': host_name, 'old': current['host']})
    db_api.instance_upsert(context, values)


def _should_move(context, current, instance, service_down_time):
    """Whether a domain seen on a second host should take the instance there.

    The running copy wins. A non-running copy on another host (an incoming migration
    that has not switched over, or a stale definition) does not take the instance away
    from a host that is up and runs it.
    """
    if instance.power_state == fields.PowerState.RUNNING:
        return current['power_state'] != fields.PowerState.RUNNING or not _host_is_up(
            context, current['host'], service_down_time)
    return current['power_state'] != fields.PowerState.RUNNING


def _host_is_up(context, host_name, service_down_time):
    try:
        row = db_api.compute_host_get(context, host_name)
    except exception.HostNotFound:
        return False
    return host_from_row(row, service_down_time).up
