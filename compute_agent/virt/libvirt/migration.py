"""Live migration with libvirt: flags, parameters, the blocking job and its statistics.

The functions take the driver's :class:`~compute_agent.virt.libvirt.host.Host` and a
``virDomain``; they never import ``libvirt`` (its constants come from ``host``).

What the lab showed (libvirt 9.0, QEMU 7.2, peer-to-peer, see
``tests/integration/test_libvirt_migration.py``):

- While the job runs, only the SOURCE gives statistics; on the destination the incoming
  domain is paused (reason "migration") and ``jobStats`` fails with "migration
  statistics are available only on the source host".
- After success the source domain is gone (UNDEFINE_SOURCE) and with it anything it
  knew; the DESTINATION keeps the completed job's statistics (real downtime, bytes
  sent) until they are read once without ``KEEP_COMPLETED``, so we always pass it.
- After an abort (error "operation aborted") the source keeps no completed statistics.
- Pausing the source during the job (force complete) makes pre-copy converge; the
  destination then resumes the guest itself: it runs there at the end. It stays paused
  on the destination only when it was already paused when the job started.

Concurrency: :func:`migrate` blocks its thread inside ``migrateToURI3`` for the whole
job. NOTE: unlike every other libvirt call of the agent that call is NOT bounded, since a
migration legitimately lasts as long as it needs; :func:`abort` (``abortJob``) from
another thread ends it, and the job itself lives in libvirtd and QEMU, so it goes on
even if the agent dies (LAB.md). The other functions are short bounded calls that any
thread may make at any time.
"""

import logging
import time

from compute_agent.virt import driver
from compute_agent.virt.libvirt import host as libvirt_host
from migration_conductor import exception

LOG = logging.getLogger(__name__)

# QEMU counts dirty pages in target pages: 4 KiB on x86, when libvirt does not say.
DEFAULT_PAGE_SIZE = 4096
# Seconds past its period a dirty rate measure may take to be reported.
DIRTY_RATE_GRACE = 2.0


def migration_flags(options, trust_shared_pools=False):
    """The ``VIR_MIGRATE_*`` flags of a peer-to-peer live migration.

    :param options: normalized options (see driver.normalize_migration_options).
    :param trust_shared_pools: the disks not copied were judged shared by pool identity
        (the destination's storage check); skip libvirt's own guess from the file
        system type (see the option ``[libvirt] trust_shared_pools``). The disks copied
        are safe either way.
    """
    flags = (libvirt_host.MIGRATE_LIVE | libvirt_host.MIGRATE_PEER2PEER
             | libvirt_host.MIGRATE_PERSIST_DEST | libvirt_host.MIGRATE_UNDEFINE_SOURCE)
    if options['block_migration']:
        flags |= libvirt_host.MIGRATE_NON_SHARED_DISK
    if trust_shared_pools:
        flags |= libvirt_host.MIGRATE_UNSAFE
    if options['auto_converge']:
        flags |= libvirt_host.MIGRATE_AUTO_CONVERGE
    if options['postcopy']:
        flags |= libvirt_host.MIGRATE_POSTCOPY
    if (options['parallel_connections'] or 1) > 1:
        flags |= libvirt_host.MIGRATE_PARALLEL
    if options['compression'] not in (None, 'none'):
        flags |= libvirt_host.MIGRATE_COMPRESSED
    if options['postcopy_resume']:
        flags |= libvirt_host.MIGRATE_POSTCOPY | libvirt_host.MIGRATE_POSTCOPY_RESUME
    return flags


def migration_params(migrate_uri, options, limit_postcopy=False):
    """The typed parameters of ``migrateToURI3``.

    :param limit_postcopy: hold post-copy to the bandwidth limit too (see the option
        ``[libvirt] limit_postcopy_bandwidth``).
    """
    params = {}
    if migrate_uri:
        params[libvirt_host.PARAM_URI] = migrate_uri
    if options['bandwidth_mib']:
        params[libvirt_host.PARAM_BANDWIDTH] = int(options['bandwidth_mib'])
        if limit_postcopy and (options['postcopy'] or options['postcopy_resume']):
            # NOTE: libvirt's bandwidth limit binds pre-copy only; without this one a
            # post-copy sends the rest as fast as the link goes (the lab: 350 MB in
            # 1 s after the switch on a 32 MiB/s limit). Both are MiB/s.
            params[libvirt_host.PARAM_BANDWIDTH_POSTCOPY] = int(options['bandwidth_mib'])
    if options['listen_address']:
        params[libvirt_host.PARAM_LISTEN_ADDRESS] = options['listen_address']
    if options['block_migration'] and options['migrate_disks'] is not None:
        # NOTE: only these are copied; without the list libvirt copies every disk,
        # shared ones included (over themselves).
        params[libvirt_host.PARAM_MIGRATE_DISKS] = list(options['migrate_disks'])
    if (options['parallel_connections'] or 1) > 1:
        params[libvirt_host.PARAM_PARALLEL_CONNECTIONS] = int(
            options['parallel_connections'])
    if options['compression'] not in (None, 'none'):
        params[libvirt_host.PARAM_COMPRESSION] = options['compression']
    return params


def migrate(host, dom, host_name, instance_uuid, dest_uri, migrate_uri, options,
            trust_shared_pools=False, limit_postcopy=False):
    """Run the migration job of ``dom`` to ``dest_uri``; return when it has ended.

    :param trust_shared_pools: see :func:`migration_flags`.
    :param limit_postcopy: see :func:`migration_params`.

    :raises MigrationJobCancelled: the job was aborted; the guest stays here.
    :raises MigrationJobFailed: it did not start or failed.
    """
    options = driver.normalize_migration_options(options, instance_uuid)
    flags = migration_flags(options, trust_shared_pools)
    params = migration_params(migrate_uri, options, limit_postcopy)
    if options['max_downtime_ms'] is not None and not options['postcopy_resume']:
        # NOTE: set before the job starts (libvirt has no parameter for it in
        # migrateToURI3); QEMU keeps it for the job, as the lab checked.
        try:
            host.call('set the maximum downtime', dom.migrateSetMaxDowntime,
                      int(options['max_downtime_ms']), 0)
        except (libvirt_host.libvirtError, exception.HypervisorUnavailable) as exc:
            raise exception.MigrationJobFailed(
                instance_uuid=instance_uuid, host=host_name,
                reason='cannot set the maximum downtime: %s' % _describe(exc)) from exc
    LOG.info('Instance %(i)s: live migration from host %(host)s to %(dest)s starts '
             '(data via %(uri)s, listen %(listen)s, bandwidth %(bw)s MiB/s, max downtime '
             '%(dt)s ms, block %(block)s, auto-converge %(ac)s, post-copy permitted '
             '%(pc)s, libvirt\'s shared storage check %(safe)s)',
             {'i': instance_uuid, 'host': host_name, 'dest': dest_uri,
              'uri': migrate_uri or 'default', 'listen': options['listen_address'] or 'any',
              'bw': options['bandwidth_mib'] or 'unlimited',
              'dt': options['max_downtime_ms'] or 'default',
              'block': ('%s (%s)' % (options['block_migration'],
                                     ', '.join(options['migrate_disks'] or ['all disks']))
                        if options['block_migration'] else False),
              'ac': options['auto_converge'],
              'pc': options['postcopy'],
              'safe': 'skipped' if flags & libvirt_host.MIGRATE_UNSAFE else 'on'})
    started = time.monotonic()
    try:
        dom.migrateToURI3(dest_uri, params, flags)
    except libvirt_host.libvirtError as exc:
        took = time.monotonic() - started
        if exc.get_error_code() == libvirt_host.ERR_OPERATION_ABORTED:
            LOG.warning('Instance %s: live migration from host %s to %s aborted after '
                        '%.1f s', instance_uuid, host_name, dest_uri, took)
            raise exception.MigrationJobCancelled(
                instance_uuid=instance_uuid, host=host_name) from exc
        reason = _describe(exc)
        if options['postcopy_resume'] and exc.get_error_code() in (
                libvirt_host.ERR_NO_DOMAIN, libvirt_host.ERR_OPERATION_INVALID):
            LOG.error('Instance %s: the post-copy migration from host %s to %s cannot '
                      'be resumed: %s', instance_uuid, host_name, dest_uri, reason)
            raise exception.PostcopyUnrecoverable(instance_uuid=instance_uuid,
                                                  host=host_name, reason=reason) from exc
        if exc.get_error_code() == libvirt_host.ERR_MIGRATE_UNSAFE:
            reason += ('; the destination judged the disks shared (same pool UUID and path '
                       'on both hosts) but libvirt does not recognise their file system as '
                       'shared: if those pools really are one storage, set [libvirt] '
                       'trust_shared_pools = true on the source\'s agent')
        LOG.error('Instance %s: live migration from host %s to %s failed after %.1f s: '
                  '%s', instance_uuid, host_name, dest_uri, took, reason)
        raise exception.MigrationJobFailed(instance_uuid=instance_uuid, host=host_name,
                                           reason=reason) from exc
    LOG.info('Instance %s: live migration from host %s to %s completed in %.1f s',
             instance_uuid, host_name, dest_uri, time.monotonic() - started)


def job_stats(host, dom):
    """The statistics of the domain's current job (see ComputeDriver.get_job_stats).

    :returns: the stats dict, or None when the domain vanished meanwhile.
    :raises libvirtError, HypervisorUnavailable: libvirt failed otherwise.
    """
    try:
        raw = host.call('read job statistics', dom.jobStats, 0)
    except libvirt_host.libvirtError as exc:
        code = exc.get_error_code()
        if code == libvirt_host.ERR_NO_DOMAIN:
            return None
        if code not in (libvirt_host.ERR_OPERATION_UNSUPPORTED,
                        libvirt_host.ERR_OPERATION_INVALID):
            raise
        # No statistics: the destination of an incoming migration, or an inactive
        # domain (also the source between QEMU's stop and the undefine at the end).
        detail = _state_detail(host, dom)
        if detail is _GONE:
            return None
        if detail == libvirt_host.INCOMING:
            return driver.empty_job_stats('unbounded')
        if detail == libvirt_host.MIGRATED:
            return driver.empty_job_stats('completed')
        return driver.empty_job_stats('none')
    stats = convert_stats(raw)
    if stats['type'] in driver.ACTIVE_JOB_TYPES:
        stats['postcopy'] = _state_detail(host, dom) == libvirt_host.POSTCOPY
    return stats


def completed_job_stats(host, dom):
    """The statistics of the domain's last completed job here, or None.

    NOTE: KEEP_COMPLETED, or libvirt forgets them once read and a retried RPC call
    would find nothing.
    """
    try:
        raw = host.call('read completed job statistics', dom.jobStats,
                        libvirt_host.JOB_STATS_COMPLETED
                        | libvirt_host.JOB_STATS_KEEP_COMPLETED)
    except libvirt_host.libvirtError as exc:
        if exc.get_error_code() == libvirt_host.ERR_NO_DOMAIN:
            return None
        raise
    stats = convert_stats(raw)
    return None if stats['type'] == 'none' else stats


def set_max_downtime(host, dom, downtime_ms):
    """Change the downtime allowed to the running job (shared connection)."""
    host.call('set the maximum downtime', dom.migrateSetMaxDowntime, int(downtime_ms), 0)


def start_postcopy(host, dom, timeout):
    """Ask the running job to switch to post-copy, waiting at most ``timeout`` s.

    NOTE: bounded: once on the lab this call never returned while the job went on in
    pre-copy (LAB.md); whether the switch happened is read from the job's statistics
    by the caller, never assumed from this call returning.
    """
    host.call('switch to post-copy', dom.migrateStartPostCopy, 0, timeout=timeout)


def measure_dirty_rate(host, dom, seconds):
    """Bytes per second the domain dirties, measured by libvirt over ``seconds``.

    :returns: the rate, or None when the measure did not finish in time.
    """
    conn = host.get_connection()
    host.call('start the dirty rate measure', dom.startDirtyRateCalc, int(seconds), 0)
    deadline = time.monotonic() + seconds + DIRTY_RATE_GRACE
    time.sleep(seconds)
    while True:
        stats = host.call('read the dirty rate', conn.domainListGetStats, [dom],
                          libvirt_host.DOMAIN_STATS_DIRTYRATE, 0)
        values = stats[0][1] if stats else {}
        if values.get('dirtyrate.calc_status') == libvirt_host.DIRTYRATE_MEASURED:
            return int(values.get('dirtyrate.megabytes_per_second', 0)) * 1024 * 1024
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def abort(host, dom):
    """Abort the domain's job; return False when no job was running."""
    try:
        host.call('abort the job', dom.abortJob)
    except libvirt_host.libvirtError as exc:
        # "no job is active on the domain", or the domain is gone.
        if exc.get_error_code() in (libvirt_host.ERR_OPERATION_INVALID,
                                    libvirt_host.ERR_NO_DOMAIN):
            return False
        raise
    return True


def convert_stats(raw):
    """Turn libvirt's ``jobStats`` dict into the driver's stats dict.

    libvirt's ``downtime`` is the expected downtime while the job runs and the real one
    once it completed; ``memory_dirty_rate`` is in pages per second.
    """
    stats = driver.empty_job_stats(libvirt_host.JOB_TYPES.get(raw.get('type'), 'unknown'))
    for key in ('memory_total', 'memory_processed', 'memory_remaining', 'disk_total',
                'disk_processed', 'disk_remaining'):
        stats[key] = raw.get(key)
    rate = raw.get('memory_dirty_rate')
    if rate is not None:
        stats['dirty_rate'] = rate * (raw.get('memory_page_size') or DEFAULT_PAGE_SIZE)
    stats['iteration'] = raw.get('memory_iteration')
    if stats['type'] == 'completed':
        stats['downtime_ms'] = raw.get('downtime')
    elif stats['type'] in driver.ACTIVE_JOB_TYPES:
        stats['expected_downtime_ms'] = raw.get('downtime')
    stats['total_time_ms'] = raw.get('time_elapsed')
    return stats


_GONE = object()


def _state_detail(host, dom):
    try:
        return host.get_state(dom)[1]
    except libvirt_host.libvirtError as exc:
        if exc.get_error_code() == libvirt_host.ERR_NO_DOMAIN:
            return _GONE
        raise


def _describe(exc):
    if isinstance(exc, libvirt_host.libvirtError):
        return libvirt_host.error_message(exc)
    return str(exc)
