"""Client side of the agents' RPC API, used by the conductor only.

Agents never call each other: this client is imported by conductor code, never by
``compute_agent`` modules that run in the agent.

API version history (the endpoint in :mod:`compute_agent.manager` carries the same
number; a test checks they agree):

* 1.0 - Initial version: get_host_report.
* 1.1 - Live migration: check_source, check_destination, claim_resources,
  release_resources, prepare_destination, start_migration, get_migration_job,
  abort_migration, force_complete_migration, get_instance_state,
  finish_on_destination, cleanup_source, rollback_destination.
* 1.2 - check_destination takes block_migration and judges the guest's storage.
* 1.3 - Block migration: check_destination returns copy_disks, start_migration's
  options take migrate_disks, cleanup_source and rollback_destination take disks.
* 1.4 - Typed contract: versioned objects both ways (SourceFacts, DestinationCheck,
  ResourceClaim, DestinationInfo, MigrationSpec, MigrationJob, DestinationFinish,
  DiskList); start_migration takes a MigrationSpec; the source agent's monitor reports
  the job's progress and end to the conductor by itself.
* 1.5 - Migration profiles: check_source takes dirty_rate_sample_s (SourceFacts 1.1
  carry the dirty rate); start_migration's MigrationSpec 1.1 carries the completion
  plan the monitor applies (and options 1.1: parallel connections, compression);
  force_complete_migration takes mode (pause or postcopy); finish_on_destination
  takes settle_s (the guest is watched that long after the switch-over).

Only this class decides what an agent is sent: each call is prepared for the newest
version both the agent (its reported service version, :data:`SERVICE_VERSION_CAPS`) and
the operator's pin (``[upgrade_levels] compute_agent``) allow, and an agent older than
1.4 is sent, and answers, the plain dicts of its release; every method returns the
objects of 1.4 whatever the agent answered.
"""

import logging
import threading
import time

import oslo_messaging as messaging

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor import rpc

LOG = logging.getLogger(__name__)

RPC_API_VERSION = '1.5'
TYPED_VERSION = '1.4'
PROFILES_VERSION = '1.5'
# What an agent of RPC 1.4 knows of each object sent to it.
_MANIFEST_1_4 = {'MigrationSpec': '1.0', 'MigrationOptions': '1.0',
                 'SourceFacts': '1.0'}

# The newest API version served by an agent of each service version
# (compute_agent.manager.SERVICE_VERSION, which the conductor knows from its reports).
SERVICE_VERSION_CAPS = {1: '1.1', 2: '1.2', 3: '1.3', 4: '1.4', 5: '1.5'}
# The first service version whose agents, as sources, copy only the disks named
# (migrate_disks) and delete the originals afterwards.
BLOCK_MIGRATION_SERVICE_VERSION = 3
# Seconds a host's reported service version is used before it is read again.
SERVICE_VERSION_TTL = 10


def version_cap_for(service_version):
    """The newest API version an agent reporting ``service_version`` serves.

    An agent that never said (None) is taken for the oldest one that migrates; one
    newer than this client serves at least what this client knows.
    """
    if service_version is not None and service_version > max(SERVICE_VERSION_CAPS):
        return RPC_API_VERSION
    return SERVICE_VERSION_CAPS.get(service_version,
                                    SERVICE_VERSION_CAPS[min(SERVICE_VERSION_CAPS)])


def _older(a, b):
    return tuple(int(x) for x in a.split('.')) < tuple(int(x) for x in b.split('.'))


def check_pin(value):
    """Validate ``[upgrade_levels] compute_agent``; return it (None when unset).

    :raises ConfigurationError: not a version of this API.
    """
    if not value:
        return None
    parts = value.split('.')
    if (len(parts) != 2 or not all(p.isdigit() for p in parts)
            or _older(RPC_API_VERSION, value) or _older(value, '1.1')):
        raise exception.ConfigurationError(
            setting='[upgrade_levels] compute_agent',
            reason='%r is not a version of the agents\' RPC API between 1.1 and %s'
                   % (value, RPC_API_VERSION))
    return value


class AgentAPI:
    """Calls to one agent: topic ``[agent] topic``, server = the agent's host name.

    Every migration call is idempotent on the agent's side, so the conductor may repeat
    one after a timeout or a restart.
    """

    def __init__(self, conf, service_version_of=None):
        """:param service_version_of: callable(host) -> the service version that host's
            agent last reported (None when unknown); without it every agent is taken
            to serve this client's version (tests).
        :raises ConfigurationError: ``[upgrade_levels] compute_agent`` is not a version.
        """
        self._conf = conf
        self._lookup_service_version = service_version_of
        self._versions = {}     # host -> (service version, monotonic time read)
        self._versions_lock = threading.Lock()
        self._pin = check_pin(conf.upgrade_levels.compute_agent)
        target = messaging.Target(topic=conf.agent.topic, version=RPC_API_VERSION)
        self.client = rpc.get_client(conf, target, 'conductor:%s' % conf.host,
                                     version_cap=self._pin or RPC_API_VERSION,
                                     timeout=conf.conductor.rpc_response_timeout)

    # --- what an agent is sent --------------------------------------------------------

    def _service_version_of(self, host):
        """The service version ``host`` reported, read at most every
        :data:`SERVICE_VERSION_TTL` seconds.

        NOTE: every call asked the database (up to three reads per agent call, about
        a third of the added time from a request to the libvirt call in the bench); an
        agent upgraded meanwhile is sent the older form for a few seconds more, which
        it still takes.
        """
        now = time.monotonic()
        with self._versions_lock:
            cached = self._versions.get(host)
        if cached is not None and now - cached[1] < SERVICE_VERSION_TTL:
            return cached[0]
        version = self._lookup_service_version(host)
        with self._versions_lock:
            self._versions[host] = (version, now)
        return version

    def version_cap(self, host):
        """The newest version ``host`` may be sent: its agent's and the pin's lowest."""
        cap = RPC_API_VERSION
        if self._lookup_service_version is not None:
            cap = version_cap_for(self._service_version_of(host))
        if self._pin is not None and _older(self._pin, cap):
            cap = self._pin
        return cap

    def can_send_version(self, host, version):
        return self.client.prepare(server=host, version_cap=self.version_cap(host)) \
            .can_send_version(version)

    def reports_progress(self, host):
        """Whether the agent of ``host``, as a source, reports its jobs by itself
        (1.4); an older one must be asked."""
        return self.can_send_version(host, TYPED_VERSION)

    def block_migration_refusal(self, host):
        """Why the agent of ``host`` cannot be the source of a block migration, or
        None: agents before service version 3 copy every disk, shared ones included."""
        if self._lookup_service_version is None:
            return None
        version = self._service_version_of(host)
        if (version or 0) >= BLOCK_MIGRATION_SERVICE_VERSION:
            return None
        return ('the agent of the source %s (service version %s) does not do: upgrade '
                'it' % (host, version))

    def _call(self, context, host, method, version, timeout=None, **kwargs):
        cctxt = self.client.prepare(server=host, version=version, timeout=timeout,
                                    version_cap=self.version_cap(host))
        return cctxt.call(context, method, **kwargs)

    @staticmethod
    def _for_1_4(obj):
        """``obj`` as an agent of RPC 1.4 knows it: a primitive of the versions of
        :data:`_MANIFEST_1_4` (its serializer turns it back into the object)."""
        return obj.obj_to_primitive(target_version=_MANIFEST_1_4[obj.obj_name()],
                                    version_manifest=_MANIFEST_1_4)

    def _typed(self, host):
        return self.can_send_version(host, TYPED_VERSION)

    # --- host -----------------------------------------------------------------------------

    def get_host_report(self, context, host):
        """Return the HostReport of ``host`` read from its hypervisor now."""
        return self._call(context, host, 'get_host_report', '1.0')

    # --- pre-checks and claims ------------------------------------------------------------

    def check_source(self, context, host, migration_uuid, instance_uuid, timeout=None,
                     dirty_rate_sample_s=0):
        """:param dirty_rate_sample_s: measure the guest's dirty rate that long (an
            agent older than 1.5 measures nothing: SourceFacts.dirty_rate is None).
        :returns: SourceFacts."""
        kwargs = {}
        version = '1.1'
        if dirty_rate_sample_s and self.can_send_version(host, PROFILES_VERSION):
            version = PROFILES_VERSION
            kwargs['dirty_rate_sample_s'] = dirty_rate_sample_s
        answer = self._call(context, host, 'check_source', version, timeout=timeout,
                            migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                            **kwargs)
        if isinstance(answer, objects.SourceFacts):
            return answer
        return objects.SourceFacts.from_legacy(host, answer)

    def check_destination(self, context, host, migration_uuid, instance_uuid, source,
                          block_migration, timeout=None):
        """Ask ``host`` whether it can take the guest ``source`` describes.

        :param source: SourceFacts (check_source's answer).
        :param block_migration: 'auto', 'true' or 'false' (the request's choice). An
            agent that serves only 1.1 is called without it: it does not judge storage
            and nothing is copied.
        :returns: DestinationCheck.
        """
        kwargs = {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid}
        if self.can_send_version(host, PROFILES_VERSION):
            version = PROFILES_VERSION
            kwargs.update(source=source, block_migration=block_migration)
        elif self._typed(host):
            version = TYPED_VERSION
            kwargs.update(source=self._for_1_4(source), block_migration=block_migration)
        elif self.can_send_version(host, '1.2'):
            version = '1.2'
            kwargs.update(source=source.legacy(), block_migration=block_migration)
        else:
            version = '1.1'
            kwargs.update(source=source.legacy())
        answer = self._call(context, host, 'check_destination', version, timeout=timeout,
                            **kwargs)
        if isinstance(answer, objects.DestinationCheck):
            return answer
        return objects.DestinationCheck.from_legacy(host, answer)

    def claim_resources(self, context, host, migration_uuid, instance_uuid, memory_mb,
                        vcpus, timeout=None):
        """:returns: ResourceClaim."""
        answer = self._call(context, host, 'claim_resources', '1.1', timeout=timeout,
                            migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                            memory_mb=memory_mb, vcpus=vcpus)
        if isinstance(answer, objects.ResourceClaim):
            return answer
        return objects.ResourceClaim.from_legacy(answer, host=host)

    def release_resources(self, context, host, migration_uuid, timeout=None):
        return self._call(context, host, 'release_resources', '1.1', timeout=timeout,
                          migration_uuid=migration_uuid)

    def prepare_destination(self, context, host, migration_uuid, instance_uuid,
                            timeout=None):
        """:returns: DestinationInfo."""
        answer = self._call(context, host, 'prepare_destination', '1.1', timeout=timeout,
                            migration_uuid=migration_uuid, instance_uuid=instance_uuid)
        if isinstance(answer, objects.DestinationInfo):
            return answer
        return objects.DestinationInfo.from_legacy(host, answer)

    # --- the migration job ----------------------------------------------------------------

    def start_migration(self, context, host, spec, timeout=None):
        """Start the job ``spec`` describes on the source ``host``.

        :param spec: MigrationSpec.
        :returns: MigrationJob (the job runs, or already ended).
        """
        if self.can_send_version(host, PROFILES_VERSION):
            answer = self._call(context, host, 'start_migration', PROFILES_VERSION,
                                timeout=timeout, migration_uuid=spec.migration_uuid,
                                instance_uuid=spec.instance_uuid, spec=spec)
        elif self._typed(host):
            if spec.plan is not None:
                LOG.warning('Migration %s instance %s: the source %s is older than RPC '
                            '%s: its monitor will not apply the profile %s (only watch '
                            'the job)', spec.migration_uuid, spec.instance_uuid, host,
                            PROFILES_VERSION, spec.plan.profile)
            answer = self._call(context, host, 'start_migration', TYPED_VERSION,
                                timeout=timeout, migration_uuid=spec.migration_uuid,
                                instance_uuid=spec.instance_uuid,
                                spec=self._for_1_4(spec))
        else:
            answer = self._call(context, host, 'start_migration', '1.1', timeout=timeout,
                                migration_uuid=spec.migration_uuid,
                                instance_uuid=spec.instance_uuid, dest_uri=spec.dest_uri,
                                migrate_uri=spec.migrate_uri,
                                options=spec.options.to_driver())
        return self._job(host, spec.migration_uuid, spec.instance_uuid, answer)

    def get_migration_job(self, context, host, migration_uuid, instance_uuid,
                          timeout=None, report_interval=None):
        """Ask the source ``host`` about a migration's job (read from libvirt).

        :param report_interval: (1.4) a job the agent does not watch yet (it restarted)
            is watched again and reported at this interval.
        :returns: MigrationJob.
        """
        kwargs = {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid}
        version = '1.1'
        if self._typed(host):
            version = TYPED_VERSION
            kwargs['report_interval'] = report_interval
        answer = self._call(context, host, 'get_migration_job', version, timeout=timeout,
                            **kwargs)
        return self._job(host, migration_uuid, instance_uuid, answer)

    @staticmethod
    def _job(host, migration_uuid, instance_uuid, answer):
        if isinstance(answer, objects.MigrationJob):
            return answer
        return objects.MigrationJob.from_legacy(migration_uuid, instance_uuid, host,
                                                answer)

    def abort_migration(self, context, host, migration_uuid, instance_uuid, timeout=None):
        return self._call(context, host, 'abort_migration', '1.1', timeout=timeout,
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def force_complete_migration(self, context, host, migration_uuid, instance_uuid,
                                 mode='pause', timeout=None):
        """Make the job complete by ``pause`` or (1.5) ``postcopy``.

        :raises HypervisorCallFailed: the agent could not (post-copy not confirmed).
        :raises ForceCompleteModeRefused: post-copy asked of an agent older than 1.5.
        """
        if mode == 'pause':
            return self._call(context, host, 'force_complete_migration', '1.1',
                              timeout=timeout, migration_uuid=migration_uuid,
                              instance_uuid=instance_uuid)
        if not self.can_send_version(host, PROFILES_VERSION):
            raise exception.ForceCompleteModeRefused(
                migration_uuid=migration_uuid, mode=mode,
                reason='the source %s is older than RPC %s' % (host, PROFILES_VERSION))
        return self._call(context, host, 'force_complete_migration', PROFILES_VERSION,
                          timeout=timeout, migration_uuid=migration_uuid,
                          instance_uuid=instance_uuid, mode=mode)

    # --- finish and roll back -------------------------------------------------------------

    def get_instance_state(self, context, host, instance_uuid, timeout=None):
        """Power state of the guest on ``host``, or None when it is not defined there."""
        return self._call(context, host, 'get_instance_state', '1.1', timeout=timeout,
                          instance_uuid=instance_uuid)

    def finish_on_destination(self, context, host, migration_uuid, instance_uuid,
                              timeout=None, settle_s=0):
        """:param settle_s: (1.5) watch the guest that long before answering (an
            older agent answers at once).
        :returns: DestinationFinish.
        :raises GuestDiedAfterSwitchOver: the guest stopped within the settle period.
        """
        kwargs = {}
        version = '1.1'
        if settle_s and self.can_send_version(host, PROFILES_VERSION):
            version = PROFILES_VERSION
            kwargs['settle_s'] = settle_s
        answer = self._call(context, host, 'finish_on_destination', version,
                            timeout=timeout, migration_uuid=migration_uuid,
                            instance_uuid=instance_uuid, **kwargs)
        if isinstance(answer, objects.DestinationFinish):
            return answer
        return objects.DestinationFinish.from_legacy(host, answer)

    def _disks_kwargs(self, host, disks):
        """``disks`` (a DiskList, maybe empty) as the agent of ``host`` takes them."""
        if not disks:
            return '1.1', {}
        if self._typed(host):
            return TYPED_VERSION, {'disks': disks}
        return '1.3', {'disks': disks.paths}

    def cleanup_source(self, context, host, migration_uuid, instance_uuid, disks=None,
                       timeout=None):
        """:param disks: DiskList of the disks the migration copied (their originals
        are deleted); only agents of service version 3 on copy disks, so only they are
        sent any."""
        version, kwargs = self._disks_kwargs(host, disks)
        return self._call(context, host, 'cleanup_source', version, timeout=timeout,
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                          **kwargs)

    def rollback_destination(self, context, host, migration_uuid, instance_uuid,
                             disks=None, timeout=None):
        """:param disks: as for :meth:`cleanup_source` (the copies are deleted)."""
        version, kwargs = self._disks_kwargs(host, disks)
        return self._call(context, host, 'rollback_destination', version,
                          timeout=timeout, migration_uuid=migration_uuid,
                          instance_uuid=instance_uuid, **kwargs)
