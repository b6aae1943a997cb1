"""Client side of the conductor's RPC API (used by agents, migctl and nova-api).

API version history (the endpoint in :mod:`migration_conductor.manager` carries the same
number; a test checks they agree):

* 1.0 - Initial version: register_host, report_host_state, list_hosts, get_host,
  list_instances.
* 1.1 - Live migration: live_migrate, get_migration, list_migrations,
  abort_migration, force_complete_migration.
* 1.2 - migration_job_ended: agents say at once that a job ended.
* 1.3 - list_host_claims: a restarted agent learns the claims it must hold.
* 1.4 - ping: a caller (migctl) learns at once whether a conductor answers.

Every method ``prepare()``s the lowest version that carries it, so a newer client can
talk to an older conductor as long as it does not need a newer method.
"""

import oslo_messaging as messaging

from migration_conductor import rpc

RPC_API_VERSION = '1.4'


class ConductorAPI:
    """Calls and casts to the conductor topic (``[conductor] topic``)."""

    def __init__(self, conf, sender, timeout=None):
        """:param sender: who calls, e.g. ``agent:<host>`` or ``migctl``."""
        self._conf = conf
        target = messaging.Target(topic=conf.conductor.topic, version=RPC_API_VERSION)
        self.client = rpc.get_client(conf, target, sender, version_cap=RPC_API_VERSION,
                                     timeout=timeout)

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

    def live_migrate(self, context, instance_uuid, host=None, force=False,
                     block_migration='auto'):
        """Accept a live migration of ``instance_uuid``; returns the Migration.

        :param host: destination; None lets the scheduler choose.
        :param force: with ``host``: skip the scheduler's filters (safety checks only).
        :param block_migration: ``auto``, ``true`` or ``false``.
        """
        cctxt = self.client.prepare(version='1.1')
        return cctxt.call(context, 'live_migrate', instance_uuid=instance_uuid, host=host,
                          force=force, block_migration=block_migration)

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

    def force_complete_migration(self, context, migration_uuid):
        cctxt = self.client.prepare(version='1.1')
        return cctxt.call(context, 'force_complete_migration',
                          migration_uuid=migration_uuid)

    def migration_job_ended(self, context, migration_uuid, instance_uuid, state):
        """The source agent's notice that a migration job ended (cast)."""
        cctxt = self.client.prepare(version='1.2')
        cctxt.cast(context, 'migration_job_ended', migration_uuid=migration_uuid,
                   instance_uuid=instance_uuid, state=state)

    def list_host_claims(self, context, host, timeout=None):
        """The claims ``host`` must hold for migrations towards it (call).

        :returns: list of dicts ``{'migration_uuid', 'instance_uuid', 'memory_mb',
            'vcpus'}``.
        """
        cctxt = self.client.prepare(version='1.3', timeout=timeout)
        return cctxt.call(context, 'list_host_claims', host=host)

    def ping(self, context, timeout=None):
        """(1.4) Return ``{'host', 'api_version'}`` of a conductor that answers (call).

        :raises MessagingTimeout: no conductor answered within ``timeout``.
        """
        cctxt = self.client.prepare(version='1.4', timeout=timeout)
        return cctxt.call(context, 'ping')
