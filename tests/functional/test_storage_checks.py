"""Storage pre-checks end to end: shared pools migrate, local disks are copied or
refused with a typed error.

The conductor and three simulated agents run in this process (the ``cloud`` fixture of
test_live_migration). Shared storage is a pool of the same UUID on several hosts, local
storage a pool of its own UUID on each (the convention of compute_agent.virt.driver).
A disk the destination does not share is copied (block migration ``auto`` or ``true``)
into the destination's pool at the same directory, the original deleted once the guest
runs there; refused, nothing changes: the guest stays on its source, the instance is
unlocked, no claim is left.
"""

import functools
import os
import time

import pytest

from compute_agent import manager as agent_manager

from tests.functional import test_live_migration as live

cloud = live.cloud   # the fixture, shared

SHARED_POOL = 'aaaaaaaa-0000-4000-8000-00000000000a'
SHARED_PATH = '/nfs/guests/%s/disk.qcow2'
LOCAL_PATH = '/var/lib/guests/%s/disk.qcow2'
MIB = 2 ** 20


def shared_guest(cloud, name, hosts=live.HOSTS):
    """A guest on sim-1 whose disk is in a pool shared by ``hosts``."""
    path = SHARED_PATH % name
    for host in hosts:
        cloud.agents[host].driver.add_pool(SHARED_POOL, [path])
    return _guest(cloud, name, path, SHARED_POOL)


def local_guest(cloud, name, pools_elsewhere=True, allocation=None, free_bytes=None,
                **spec):
    """A guest on sim-1 whose disk (``allocation`` bytes, None: unknown) is in a local
    pool; the other hosts have an empty local pool at the same directory (or none),
    with ``free_bytes`` free ({host: bytes}; missing: they cannot tell)."""
    path = LOCAL_PATH % name
    for index, host in enumerate(live.HOSTS):
        if index == 0 or pools_elsewhere:
            cloud.agents[host].driver.add_pool(
                'bbbbbbbb-0000-4000-8000-%012d' % index, [path] if index == 0 else [],
                directory=os.path.dirname(path),
                free_bytes=(free_bytes or {}).get(host))
    return _guest(cloud, name, path, 'bbbbbbbb-0000-4000-8000-%012d' % 0,
                  allocation=allocation, **spec)


def volumes(cloud, host):
    return cloud.agents[host].driver.volume_paths()


def _guest(cloud, name, path, pool_uuid, allocation=None, **spec):
    agent = cloud.agents['sim-1']
    uuid = agent.driver.add_domain(name, **spec, disks=[
        {'target': 'vda', 'path': path, 'format': 'qcow2', 'pool_uuid': pool_uuid,
         'allocation': allocation}])
    cloud.conductor.register_host(cloud.admin, agent.manager.build_host_report())
    return uuid


def migrate(cloud, uuid, block_migration, host='sim-2'):
    return live.wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, host=host, block_migration=block_migration).uuid)


def assert_refused(migration, host, reason):
    assert migration.status == 'failed'
    assert (migration.error.code, migration.error.phase, migration.error.host) == (
        'storage_incompatible', 'check-destination', host)
    assert reason in migration.error.message


def migrate_past_sim2(cloud, block_migration, make_guest):
    """Migrate the guest ``make_guest()`` defines to the scheduler's choice, sim-3
    given less free memory so that sim-2 is tried first; assert that sim-2 refused and
    the migration completed on sim-3. Returns the guest's UUID."""
    cloud.agents['sim-3'].driver.add_domain('filler', memory_mb=8192)
    cloud.agents['sim-3'].report_now()
    uuid = make_guest()
    del cloud.messages[:]
    migration = live.wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, block_migration=block_migration).uuid)
    assert (migration.status, migration.dest_host) == ('completed', 'sim-3'), \
        migration.error
    assert checked_destinations(cloud) == ['sim-2', 'sim-3']
    return uuid


def checked_destinations(cloud):
    """The hosts the conductor asked to check_destination, in order."""
    return [server for sender, _kind, _topic, server, method in cloud.messages
            if sender.startswith('conductor') and method == 'check_destination']


@pytest.mark.parametrize('block_migration', ['auto', 'false'])
def test_a_guest_on_a_shared_pool_migrates(cloud, block_migration):
    uuid = shared_guest(cloud, 'g-shared-%s' % block_migration)
    migration = migrate(cloud, uuid, block_migration)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, uuid) == {'sim-2': 'running'}
    # The disk went with the guest (it is on the shared pool: nothing was copied).
    assert [d['path'] for d in cloud.agents['sim-2'].driver.get_instance_disks(uuid)] == [
        SHARED_PATH % ('g-shared-%s' % block_migration)]
    assert live.claims(cloud) == {}


@pytest.mark.parametrize('block_migration', ['auto', 'false', 'true'])
def test_a_diskless_guest_passes_every_storage_check(cloud, block_migration):
    # As the lab's guests: kernel and initramfs, no disk.
    uuid = live.add_guest(cloud, 'sim-1', 'g-diskless-%s' % block_migration)
    migration = migrate(cloud, uuid, block_migration)
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, uuid) == {'sim-2': 'running'}


def test_a_guest_on_a_local_pool_with_block_migration_false_is_refused(cloud):
    uuid = local_guest(cloud, 'g-local-false')
    migration = migrate(cloud, uuid, 'false')
    assert_refused(migration, 'sim-2', 'disk vda (%s) is on storage the destination '
                   'does not share, and block migration was refused'
                   % (LOCAL_PATH % 'g-local-false'))
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


@pytest.mark.parametrize('block_migration', ['auto', 'true'])
def test_a_guest_on_a_local_pool_is_copied_and_its_original_deleted(cloud, monkeypatch,
                                                                    block_migration):
    name = 'g-local-%s' % block_migration
    uuid = local_guest(cloud, name)
    started = []
    manager_class = type(cloud.agents['sim-1'].manager)
    original_start = manager_class.start_migration

    def record_start(self, context, migration_uuid, instance_uuid, *args, spec=None,
                     **kwargs):
        started.append((spec.options.block_migration, spec.options.migrate_disks))
        return original_start(self, context, migration_uuid, instance_uuid, *args,
                              spec=spec, **kwargs)
    monkeypatch.setattr(manager_class, 'start_migration', record_start)

    migration = migrate(cloud, uuid, block_migration)
    assert migration.status == 'completed', migration.error
    assert started == [(True, ['vda'])]
    assert live.where(cloud, uuid) == {'sim-2': 'running'}
    assert LOCAL_PATH % name in volumes(cloud, 'sim-2')
    assert LOCAL_PATH % name not in volumes(cloud, 'sim-1')
    assert live.claims(cloud) == {}


def test_a_disk_no_candidate_can_take_a_copy_of_is_refused(cloud):
    uuid = local_guest(cloud, 'g-local-nowhere', pools_elsewhere=False)
    del cloud.messages[:]
    # The scheduler chooses: each candidate refuses in turn, the last one is recorded.
    migration = live.wait_for(cloud, cloud.conductor.live_migrate(
        cloud.admin, uuid, block_migration='auto').uuid)
    assert_refused(migration, migration.error.host, 'disk vda (%s) cannot be copied here: '
                   'no active storage pool at %s to create its copy in'
                   % (LOCAL_PATH % 'g-local-nowhere',
                      os.path.dirname(LOCAL_PATH % 'g-local-nowhere')))
    assert migration.error.host in ('sim-2', 'sim-3')
    assert sorted(checked_destinations(cloud)) == ['sim-2', 'sim-3']
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_a_pool_without_room_for_the_copy_sends_the_flow_to_the_next(cloud):
    # sim-2's pool is too small.
    name = 'g-local-room'
    migrate_past_sim2(cloud, 'auto', lambda: local_guest(
        cloud, name, allocation=300 * MIB,
        free_bytes={'sim-2': 200 * MIB, 'sim-3': 300 * MIB}))
    assert LOCAL_PATH % name in volumes(cloud, 'sim-3')
    assert LOCAL_PATH % name not in volumes(cloud, 'sim-2')
    assert live.claims(cloud) == {}


def test_a_copy_no_pool_has_room_for_is_refused_with_the_figures(cloud):
    name = 'g-local-full'
    uuid = local_guest(cloud, name, allocation=300 * MIB,
                       free_bytes={'sim-2': 200 * MIB})
    migration = migrate(cloud, uuid, 'auto')
    assert_refused(migration, 'sim-2', 'the storage pool at %s has 200.0 MiB free, the '
                   'copy of vda (%s, 300.0 MiB) needs 300.0 MiB'
                   % (os.path.dirname(LOCAL_PATH % name), LOCAL_PATH % name))
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')
    assert volumes(cloud, 'sim-2') == []


def test_a_copy_of_unknown_size_is_not_refused_for_room(cloud):
    # A source agent that predates the disks' sizes reports none: nothing to count.
    uuid = local_guest(cloud, 'g-local-unsized', free_bytes={'sim-2': 0})
    migration = migrate(cloud, uuid, 'auto')
    assert migration.status == 'completed', migration.error
    assert live.where(cloud, uuid) == {'sim-2': 'running'}


def test_an_aborted_block_migration_deletes_the_copy_and_keeps_the_original(cloud):
    path = LOCAL_PATH % 'g-local-abort'
    # As live.add_stubborn_guest: its pre-copy never converges.
    uuid = local_guest(cloud, 'g-local-abort', memory_mb=4096, dirty_rate_mib=4096)
    migration_uuid = cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2').uuid
    live.wait_for(cloud, migration_uuid, statuses=('running',))
    deadline = time.monotonic() + 10            # created when the job starts
    while path not in volumes(cloud, 'sim-2'):
        assert time.monotonic() < deadline, volumes(cloud, 'sim-2')
        time.sleep(0.02)
    cloud.conductor.abort_migration(cloud.admin, migration_uuid)
    assert live.wait_for(cloud, migration_uuid).status == 'cancelled'
    assert path not in volumes(cloud, 'sim-2')
    assert path in volumes(cloud, 'sim-1')
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_a_source_agent_too_old_to_copy_only_some_disks_is_refused(cloud, monkeypatch):
    uuid = local_guest(cloud, 'g-local-old')
    monkeypatch.setattr(agent_manager, 'SERVICE_VERSION', 2)
    for agent in cloud.agents.values():     # a call: recorded when it returns
        cloud.conductor.register_host(cloud.admin, agent.manager.build_host_report())
    migration = migrate(cloud, uuid, 'auto')
    assert_refused(migration, 'sim-2', 'its disks vda need block migration, which the '
                   'agent of the source sim-1 (service version 2) does not do: upgrade it')
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_block_migration_true_on_shared_storage_is_refused(cloud):
    uuid = shared_guest(cloud, 'g-shared-true')
    migration = migrate(cloud, uuid, 'true')
    assert_refused(migration, 'sim-2', 'block migration was requested but every disk is '
                   'on storage the destination shares')
    live.assert_on_source_untouched(cloud, uuid, 'sim-1')


def test_a_candidate_without_the_shared_pool_sends_the_flow_to_the_next(cloud):
    # sim-2 lacks the pool.
    uuid = migrate_past_sim2(cloud, 'false', lambda: shared_guest(
        cloud, 'g-next', hosts=('sim-1', 'sim-3')))
    assert live.where(cloud, uuid) == {'sim-3': 'running'}
    assert live.claims(cloud) == {}


def test_the_destination_decision_reaches_the_job_on_the_source(cloud, monkeypatch):
    """block_migration of the job comes from the destination's check, not the request."""
    manager_class = type(cloud.agents['sim-2'].manager)
    original_check = manager_class.check_destination
    original_start = manager_class.start_migration
    started = []

    @functools.wraps(original_check)
    def check_says_copy(self, *args, **kwargs):
        check = original_check(self, *args, **kwargs)
        check.block_migration = True
        return check

    @functools.wraps(original_start)
    def record_start(self, context, migration_uuid, instance_uuid, *args, spec=None,
                     **kwargs):
        started.append(spec.options.block_migration)
        return original_start(self, context, migration_uuid, instance_uuid, *args,
                              spec=spec, **kwargs)

    monkeypatch.setattr(manager_class, 'check_destination', check_says_copy)
    monkeypatch.setattr(manager_class, 'start_migration', record_start)
    uuid = shared_guest(cloud, 'g-decided')
    migration = migrate(cloud, uuid, 'auto')
    assert migration.status == 'completed', migration.error
    assert started == [True]
