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
"""

import oslo_messaging as messaging

from migration_conductor import rpc

RPC_API_VERSION = '1.3'

# The newest API version served by an agent of each service version
# (compute_agent.manager.SERVICE_VERSION, which the conductor knows from its reports).
SERVICE_VERSION_CAPS = {1: '1.1', 2: '1.2', 3: '1.3'}
# The first service version whose agents, as sources, copy only the disks named
# (migrate_disks) and delete the originals afterwards.
BLOCK_MIGRATION_SERVICE_VERSION = 3


def version_cap_for(service_version):
    """The newest API version an agent reporting ``service_version`` serves.

    An agent that never said (None) is taken for the oldest one that migrates; one
    newer than this client serves at least what this client knows.
    """
    if service_version is not None and service_version > max(SERVICE_VERSION_CAPS):
        return RPC_API_VERSION
    return SERVICE_VERSION_CAPS.get(service_version,
                                    SERVICE_VERSION_CAPS[min(SERVICE_VERSION_CAPS)])


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

    def _call(self, context, host, method, version, timeout=None, version_cap=None,
              **kwargs):
        cctxt = self.client.prepare(server=host, version=version, timeout=timeout,
                                    version_cap=version_cap or RPC_API_VERSION)
        return cctxt.call(context, method, **kwargs)

    def get_host_report(self, context, host):
        """Return the HostReport of ``host`` read from its hypervisor now."""
        return self._call(context, host, 'get_host_report', '1.0')

    def check_source(self, context, host, migration_uuid, instance_uuid):
        return self._call(context, host, 'check_source', '1.1',
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def check_destination(self, context, host, migration_uuid, instance_uuid, source,
                          block_migration, service_version=None):
        """Ask ``host`` whether it can take the guest ``source`` describes.

        :param source: what check_source answered on the source.
        :param block_migration: 'auto', 'true' or 'false' (the request's choice).
        :param service_version: the service version ``host`` reported. An agent that
            serves only 1.1 (service version 1) is called without block_migration: it
            does not judge storage, and its answer has no ``block_migration`` (nothing
            is copied).
        :returns: a dict with ``host`` and, from 1.2 on, ``block_migration`` (bool);
            from service version 3 on, ``copy_disks`` (the disks a block migration
            copies: target, path, format).
        """
        cap = version_cap_for(service_version)
        kwargs = {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid,
                  'source': source}
        version = '1.1'
        if self.client.prepare(server=host, version_cap=cap).can_send_version('1.2'):
            version = '1.2'
            kwargs['block_migration'] = block_migration
        return self._call(context, host, 'check_destination', version, version_cap=cap,
                          **kwargs)

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

    def finish_on_destination(self, context, host, migration_uuid, instance_uuid,
                              timeout=None):
        return self._call(context, host, 'finish_on_destination', '1.1', timeout=timeout,
                          migration_uuid=migration_uuid, instance_uuid=instance_uuid)

    def cleanup_source(self, context, host, migration_uuid, instance_uuid, disks=None,
                       timeout=None):
        """:param disks: paths of the disks the migration copied (1.3; only agents of
        service version 3 copy disks, so only they are sent any)."""
        return self._call(context, host, 'cleanup_source', '1.3' if disks else '1.1',
                          timeout=timeout, migration_uuid=migration_uuid,
                          instance_uuid=instance_uuid,
                          **({'disks': disks} if disks else {}))

    def rollback_destination(self, context, host, migration_uuid, instance_uuid,
                             disks=None):
        """:param disks: as for :meth:`cleanup_source`."""
        return self._call(context, host, 'rollback_destination',
                          '1.3' if disks else '1.1', migration_uuid=migration_uuid,
                          instance_uuid=instance_uuid,
                          **({'disks': disks} if disks else {}))
