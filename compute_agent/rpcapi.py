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
"""

import oslo_messaging as messaging

from migration_conductor import rpc

RPC_API_VERSION = '1.1'


class AgentAPI:
    """Calls to one agent: topic ``[agent] topic``, server = the agent's host name.

    Every migration call is idempotent on the agent's side, so the conductor may repeat
    one after a timeout or a restart.
    """

    def __init__(self, conf):
        self._conf = conf
        target = messaging.Target(topic=conf.agent.topic, version=RPC_API_VERSION)
        self.client = rpc.get_client(conf, target, 'conductor:%s' % conf.host,
                                     version_cap=RPC_API_VERSION,
                                     timeout=conf.conductor.rpc_response_timeout)

    def _call(self, context, host, method, version, timeout=None, **kwargs):
        cctxt = self.client.prepare(server=host, version=version, timeout=timeout)
        return cctxt.call(context, method, **kwargs)

    def get_host_report(self, context, host):
        """Return the HostReport of ``host`` read from its hypervisor now."""
        return self._call(context, host, 'get_host_report', '1.0')

    def check_source(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'check_source', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def check_destination(self, context, host, migration_uuid, instance_uuid, source):
        return self._call(context, host, 'check_destination', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                          source=source)

    def claim_resources(self, context, host, migration_uuid, instance_uuid, memory_mb,
                        vcpus):
        return self._call(context, host, 'claim_resources', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                          memory_mb=memory_mb, vcpus=vcpus)

    def release_resources(self, context, host, migration_uuid):
        return self._call(context, host, 'release_resources', '1.1',
                          migration_uuid=migration_uuid)

    def prepare_destination(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'prepare_destination', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def start_migration(self, context, host, migration_uuid, instance_uuid, dest_uri,
                        migrate_uri, options):
        return self._call(context, host, 'start_migration', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid,
                          dest_uri=dest_uri, migrate_uri=migrate_uri, options=options)

    def get_migration_job(self, context, host, migration_uuid, instance_uuid,
                          timeout=None):
        return self._call(context, host, 'get_migration_job', '1.1', timeout=timeout,
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def abort_migration(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'abort_migration', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def force_complete_migration(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'force_complete_migration', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def get_instance_state(self, context, host, instance_uuid, timeout=None):
        return self._call(context, host, 'get_instance_state', '1.1', timeout=timeout,
                          instance_uuid=instance_uuid)

    def finish_on_destination(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'finish_on_destination', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def cleanup_source(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'cleanup_source', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def rollback_destination(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'rollback_destination', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)
