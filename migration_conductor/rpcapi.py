"""Client side of the conductor's RPC API (used by agents, migctl and nova-api).

API version history (the endpoint in :mod:`migration_conductor.manager` carries the same
number; a test checks they agree):

* 1.0 - Initial version: register_host, report_host_state, list_hosts, get_host,
  list_instances.
* 1.1 - Live migration: live_migrate, get_migration, list_migrations,
  abort_migration, force_complete_migration.
* 1.2 - migration_job_ended: agents say at once that a job ended.
* 1.3 - list_host_claims: a restarted agent learns the claims it must hold.
* 1.4 - The job monitor runs in the source agent: migration_progress (its reports),
  migration_job_ended takes the MigrationJob; get_host_migrations (the claims a
  restarted agent holds and the jobs it watches again, as objects); ping;
  delete_instance (forget an instance its host no longer reports).
* 1.5 - Migration profiles: live_migrate takes profile, force_complete_migration takes
  mode (pause or postcopy); list_profiles, get_profile; migration_event (the source
  agent's monitor reports its decisions); Migration 1.2 (profile, strategy, forecast,
  events).

Every method ``prepare()``s the lowest version that carries it, so a newer client can
talk to an older conductor as long as it does not need a newer method; the version cap
is ``[upgrade_levels] conductor`` when set (a conductor of the previous release still
runs), and then the methods that need 1.4 fall back to what 1.3 offers.
"""

import oslo_messaging as messaging

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor import rpc

RPC_API_VERSION = '1.5'
# Seconds between two reports of a job watched again, when the conductor is too old to
# say (RPC 1.3).
_LEGACY_REPORT_INTERVAL = 1.0


class ConductorAPI:
    """Calls and casts to the conductor topic (``[conductor] topic``)."""

    def __init__(self, conf, sender, timeout=None):
        """:param sender: who calls, e.g. ``agent:<host>`` or ``migctl``.
        :raises ConfigurationError: ``[upgrade_levels] conductor`` is not a version.
        """
        self._conf = conf
        cap = conf.upgrade_levels.conductor or RPC_API_VERSION
        parts = cap.split('.')
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise exception.ConfigurationError(
                setting='[upgrade_levels] conductor',
                reason='%r is not an RPC API version such as 1.3' % cap)
        target = messaging.Target(topic=conf.conductor.topic, version=RPC_API_VERSION)
        self.client = rpc.get_client(conf, target, sender, version_cap=cap,
                                     timeout=timeout)

    def can_send_version(self, version):
        return self.client.prepare().can_send_version(version)

    def ping(self, context, timeout=None):
        """Whether a conductor serves the topic: ``{'host', 'api_version'}`` (call).

        :raises MessagingTimeout: no conductor answered within ``timeout``.
        """
        cctxt = self.client.prepare(version='1.4', timeout=timeout)
        return cctxt.call(context, 'ping')

    def register_host(self, context, report, timeout=None):
        """Register an agent's host (call); returns the recorded ComputeHost."""
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(context, 'register_host', report=report)

    def report_host_state(self, context, report):
        """Heartbeat with the host's inventory and guests (cast)."""
        cctxt = self.client.prepare(version='1.0')
        cctxt.cast(context, 'report_host_state', report=report)

    def list_hosts(self, context):
        """Return a ComputeHostList of every known host, with ``up`` set."""
        cctxt = self.client.prepare(version='1.0')
        return cctxt.call(context, 'list_hosts')

    def get_host(self, context, host):
        """Return one ComputeHost; raises HostNotFound."""
        cctxt = self.client.prepare(version='1.0')
        return cctxt.call(context, 'get_host', host=host)

    def list_instances(self, context, host=None):
        """Return an InstanceList, optionally only those on ``host``."""
        cctxt = self.client.prepare(version='1.0')
        return cctxt.call(context, 'list_instances', host=host)

    def delete_instance(self, context, instance):
        """(1.4) Forget an instance that is ``missing``; returns it as it was.

        :param instance: its UUID, or its name if unique.
        """
        cctxt = self.client.prepare(version='1.4')
        return cctxt.call(context, 'delete_instance', instance=instance)

    def live_migrate(self, context, instance_uuid, host=None, force=False,
                     block_migration='auto', profile=None):
        """Accept a live migration of ``instance_uuid``; returns the Migration.

        :param host: destination; None lets the scheduler choose.
        :param force: with ``host``: skip the scheduler's filters (safety checks only).
        :param block_migration: ``auto``, ``true`` or ``false``.
        :param profile: (1.5) the migration profile to apply; None: the instance's,
            else the conductor's default.
        """
        kwargs = {}
        version = '1.1'
        if profile is not None:
            version = self._needs('1.5', 'a migration profile')
            kwargs['profile'] = profile
        cctxt = self.client.prepare(version=version)
        return cctxt.call(context, 'live_migrate', instance_uuid=instance_uuid, host=host,
                          force=force, block_migration=block_migration, **kwargs)

    def _needs(self, version, what):
        """``version``, or Invalid when the conductor is pinned below it."""
        if not self.can_send_version(version):
            raise exception.Invalid(reason='%s needs conductor API %s; [upgrade_levels] '
                                    'conductor is %s' % (what, version,
                                                         self._conf.upgrade_levels.conductor))
        return version

    def list_profiles(self, context):
        """(1.5) Every migration profile (a MigrationProfileList)."""
        cctxt = self.client.prepare(version=self._needs('1.5', 'listing profiles'))
        return cctxt.call(context, 'list_profiles')

    def get_profile(self, context, name):
        """(1.5) One MigrationProfile; raises ProfileNotFound."""
        cctxt = self.client.prepare(version=self._needs('1.5', 'showing a profile'))
        return cctxt.call(context, 'get_profile', name=name)

    def get_migration(self, context, migration_uuid):
        cctxt = self.client.prepare(version='1.1')
        return cctxt.call(context, 'get_migration', migration_uuid=migration_uuid)

    def list_migrations(self, context, status=None, host=None, instance_uuid=None,
                        limit=None):
        cctxt = self.client.prepare(version='1.1')
        return cctxt.call(context, 'list_migrations', status=status, host=host,
                          instance_uuid=instance_uuid, limit=limit)

    def abort_migration(self, context, migration_uuid):
        cctxt = self.client.prepare(version='1.1')
        return cctxt.call(context, 'abort_migration', migration_uuid=migration_uuid)

    def force_complete_migration(self, context, migration_uuid, mode=None):
        """Make a running migration complete; ``mode`` (1.5): ``pause`` or
        ``postcopy`` (None: the profile's ``force_complete_mode``)."""
        if mode is None:
            cctxt = self.client.prepare(version='1.1')
            return cctxt.call(context, 'force_complete_migration',
                              migration_uuid=migration_uuid)
        cctxt = self.client.prepare(version=self._needs('1.5', 'a force-complete mode'))
        return cctxt.call(context, 'force_complete_migration',
                          migration_uuid=migration_uuid, mode=mode)

    # --- what source agents report about their jobs (casts without retries: a lost
    # report is followed by the next, and the conductor asks when it hears nothing) ---

    def migration_progress(self, context, job):
        """(1.4) One progress reading of a running job (a MigrationJob); nothing is
        sent to a conductor older than 1.4 (it asks the agent instead)."""
        if not self.can_send_version('1.4'):
            return
        cctxt = self.client.prepare(version='1.4', retry=0)
        cctxt.cast(context, 'migration_progress', job=job)

    def migration_job_ended(self, context, job):
        """The source agent's notice that a migration job ended (a MigrationJob)."""
        if self.can_send_version('1.4'):
            cctxt = self.client.prepare(version='1.4', retry=1)
            cctxt.cast(context, 'migration_job_ended', migration_uuid=job.migration_uuid,
                       instance_uuid=job.instance_uuid, state=job.state, job=job)
        else:
            cctxt = self.client.prepare(version='1.2', retry=1)
            cctxt.cast(context, 'migration_job_ended', migration_uuid=job.migration_uuid,
                       instance_uuid=job.instance_uuid, state=job.state)

    def migration_event(self, context, event):
        """(1.5) A decision of a job's monitor (a MigrationEvent); not sent to an older
        conductor (the agent's log has it)."""
        if not self.can_send_version('1.5'):
            return
        cctxt = self.client.prepare(version='1.5', retry=1)
        cctxt.cast(context, 'migration_event', event=event)

    def list_host_claims(self, context, host, timeout=None):
        """(1.3) The claims ``host`` must hold for migrations towards it (call).

        :returns: list of dicts ``{'migration_uuid', 'instance_uuid', 'memory_mb',
            'vcpus'}``.
        """
        cctxt = self.client.prepare(version='1.3', timeout=timeout)
        return cctxt.call(context, 'list_host_claims', host=host)

    def get_host_migrations(self, context, host, timeout=None):
        """The migrations that concern ``host`` after its agent (re)started (call).

        :returns: HostMigrations: the claims to hold, the outgoing jobs to watch again.
            From a 1.3 conductor: its claims, and no job (it asks the agent itself).
        """
        if self.can_send_version('1.4'):
            cctxt = self.client.prepare(version='1.4', timeout=timeout)
            return cctxt.call(context, 'get_host_migrations', host=host)
        claims = self.list_host_claims(context, host, timeout=timeout)
        return objects.HostMigrations(
            host=host, claims=objects.ResourceClaimList(objects=[
                objects.ResourceClaim.from_legacy(claim, host=host) for claim in claims]),
            outgoing=objects.MigrationJobList(objects=[]),
            report_interval=_LEGACY_REPORT_INTERVAL)
