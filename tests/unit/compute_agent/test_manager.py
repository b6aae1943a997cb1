"""AgentManager's storage checks: the disks the source reports and the destination's
decision for each block_migration choice, on two simulated hosts.

The destination shares a disk iff it has an active pool of the same UUID with a volume
at the same path (see compute_agent.virt.driver); a shared pool is modelled by adding
the same pool to both hosts, a local one by pools of distinct UUIDs.
"""

import logging
import uuid as uuidlib

from oslo_config import cfg
from oslo_messaging.rpc import dispatcher
import pytest

from compute_agent import manager
from compute_agent.virt import simulated
from migration_conductor import cmd
from migration_conductor import exception
from migration_conductor import rpc

MIGRATION = '11111111-0000-4000-8000-000000000001'
SHARED_POOL = 'aaaaaaaa-0000-4000-8000-000000000001'
SOURCE_LOCAL_POOL = 'bbbbbbbb-0000-4000-8000-000000000001'
DEST_LOCAL_POOL = 'bbbbbbbb-0000-4000-8000-000000000002'
MIB = 2 ** 20
SHARED_DISK = {'target': 'vda', 'path': '/nfs/guests/g/disk.qcow2', 'format': 'qcow2',
               'pool_uuid': SHARED_POOL, 'allocation': 1024 * MIB}
LOCAL_DIR = '/var/lib/guests/g'
LOCAL_DISK = {'target': 'vdb', 'path': LOCAL_DIR + '/data.raw', 'format': 'raw',
              'pool_uuid': SOURCE_LOCAL_POOL, 'allocation': 300 * MIB}
COPY = {'target': 'vdb', 'path': LOCAL_DISK['path'], 'format': 'raw'}


class Hosts:
    """A source and a destination agent over simulated hosts of unique names."""

    def __init__(self):
        conf = cfg.ConfigOpts()
        cmd.register_all(conf, database=False)
        conf([], project='migration-conductor-unit-tests')
        suffix = uuidlib.uuid4().hex[:8]
        self.drivers = [simulated.SimulatedDriver('%s-%s' % (name, suffix), conf)
                        for name in ('src', 'dst')]
        self.source, self.dest = (manager.AgentManager(d.host, d, conf)
                                  for d in self.drivers)
        for agent in (self.source, self.dest):
            agent.tracker.restore([])
        # The shared pool is on both hosts; each has a local pool of its own UUID at the
        # same directory, the source's holding its local disk.
        for driver in self.drivers:
            driver.add_pool(SHARED_POOL, [SHARED_DISK['path']])
        self.drivers[0].add_pool(SOURCE_LOCAL_POOL, [LOCAL_DISK['path']],
                                 directory=LOCAL_DIR)
        self.drivers[1].add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR)

    def guest(self, disks):
        """Define a guest with ``disks`` on the source; return its source facts."""
        uuid = self.drivers[0].add_domain('g', disks=disks)
        return uuid, self.source.check_source(None, MIGRATION, uuid)

    def check(self, disks, block_migration):
        """The destination's answer, as a dict (copy_disks: target, path, format)."""
        uuid, facts = self.guest(disks)
        return uuid, answer(self.dest.check_destination(None, MIGRATION, uuid, facts,
                                                        block_migration))

    def refusal(self, disks, block_migration):
        """The StorageIncompatible the destination answers (the endpoint wraps it)."""
        with pytest.raises(dispatcher.ExpectedException) as info:
            self.check(disks, block_migration)
        return storage_refusal(info.value)

    def cleanup(self):
        for driver in self.drivers:
            driver.cleanup()


def answer(check):
    """A DestinationCheck as the dict the storage tests compare."""
    return {'host': check.host, 'block_migration': check.block_migration,
            'copy_disks': [{'target': d.target, 'path': d.path, 'format': d.format}
                           for d in check.copy_disks]}


def storage_refusal(expected):
    error = expected.exc_info[1]
    assert isinstance(error, exception.StorageIncompatible), error
    return error


@pytest.fixture
def hosts():
    made = Hosts()
    yield made
    made.cleanup()
    rpc.cleanup()


def test_the_source_reports_the_disks_and_their_pools(hosts):
    _uuid, facts = hosts.guest([LOCAL_DISK, {'target': 'vda', 'path': '/x/disk'}])
    assert facts.disks.to_driver() == [
        {'target': 'vda', 'path': '/x/disk', 'format': None, 'pool_uuid': None,
         'allocation': None},
        LOCAL_DISK]


def test_a_diskless_guest_reports_no_disk(hosts):
    _uuid, facts = hosts.guest(None)
    assert facts.disks.to_driver() == []


# --- the decision table: every disk shared (or none) ... ---------------------------------

@pytest.mark.parametrize('block_migration', ['auto', 'false'])
@pytest.mark.parametrize('disks', [[SHARED_DISK], []], ids=['shared', 'diskless'])
def test_shared_or_no_disks_pass_with_auto_and_false(hosts, disks, block_migration):
    _uuid, result = hosts.check(disks, block_migration)
    assert result == {'host': hosts.dest.host, 'block_migration': False,
                      'copy_disks': []}


def test_true_is_refused_when_every_disk_is_shared(hosts):
    error = hosts.refusal([SHARED_DISK], 'true')
    assert error.code == 'storage_incompatible'
    assert error.kwargs['host'] == hosts.dest.host
    assert error.kwargs['reason'] == (
        'block migration was requested but every disk is on storage the destination '
        'shares')


def test_true_passes_for_a_diskless_guest(hosts):
    _uuid, result = hosts.check([], 'true')
    assert result == {'host': hosts.dest.host, 'block_migration': False,
                      'copy_disks': []}


# --- ... or some disk not shared ---------------------------------------------------------

def test_false_is_refused_when_a_disk_is_not_shared(hosts):
    assert hosts.refusal([SHARED_DISK, LOCAL_DISK], 'false').kwargs['reason'] == (
        'disk vdb (/var/lib/guests/g/data.raw) is on storage the destination does not '
        'share, and block migration was refused')


@pytest.mark.parametrize('block_migration', ['auto', 'true'])
def test_auto_and_true_copy_the_disks_not_shared_and_only_those(hosts, block_migration):
    _uuid, result = hosts.check([LOCAL_DISK, SHARED_DISK], block_migration)
    assert result == {'host': hosts.dest.host, 'block_migration': True,
                      'copy_disks': [COPY]}


def test_a_copy_needs_a_pool_at_its_directory_and_no_file_at_its_path(hosts):
    dest = hosts.drivers[1]
    dest.add_pool(DEST_LOCAL_POOL, directory='/elsewhere')
    assert hosts.refusal([LOCAL_DISK], 'auto').kwargs['reason'] == (
        'disk vdb (/var/lib/guests/g/data.raw) cannot be copied here: no active storage '
        'pool at /var/lib/guests/g to create its copy in')
    dest.add_pool(DEST_LOCAL_POOL, [LOCAL_DISK['path']], directory=LOCAL_DIR)
    assert hosts.refusal([LOCAL_DISK], 'true').kwargs['reason'] == (
        'disk vdb (/var/lib/guests/g/data.raw) cannot be copied here: a volume already '
        'exists at /var/lib/guests/g/data.raw')


def test_the_copies_into_a_pool_must_fit_in_its_free_space(hosts):
    dest = hosts.drivers[1]
    second = dict(LOCAL_DISK, target='vdc', path=LOCAL_DIR + '/more.raw',
                  allocation=100 * MIB)
    hosts.drivers[0].add_pool(SOURCE_LOCAL_POOL, [LOCAL_DISK['path'], second['path']],
                              directory=LOCAL_DIR)
    # 400 MiB fit exactly; a byte less and the two copies together are refused.
    dest.add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR, free_bytes=400 * MIB)
    _uuid, result = hosts.check([LOCAL_DISK, second], 'auto')
    assert [d['target'] for d in result['copy_disks']] == ['vdb', 'vdc']
    hosts.drivers[0].remove_domain(_uuid)
    dest.add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR, free_bytes=400 * MIB - 1)
    assert hosts.refusal([LOCAL_DISK, second], 'true').kwargs['reason'] == (
        'the storage pool at /var/lib/guests/g has 399.9 MiB free, the copy of vdb '
        '(/var/lib/guests/g/data.raw, 300.0 MiB), vdc (/var/lib/guests/g/more.raw, '
        '100.0 MiB) needs 400.0 MiB')


def test_a_disk_of_unknown_path_is_refused_for_a_copy_beside_the_room_check(hosts):
    unknown = {'target': 'vdc', 'path': None, 'allocation': 100 * MIB}
    hosts.drivers[1].add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR, free_bytes=1)
    assert hosts.refusal([unknown, LOCAL_DISK], 'auto').kwargs['reason'] == (
        'disk vdc (path unknown) cannot be copied here: its path is unknown; the storage '
        'pool at /var/lib/guests/g has 0.0 MiB free, the copy of vdb '
        '(/var/lib/guests/g/data.raw, 300.0 MiB) needs 300.0 MiB')


def test_a_pool_that_cannot_tell_its_free_space_or_a_disk_of_unknown_size_pass(hosts):
    dest = hosts.drivers[1]
    dest.add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR, free_bytes=None)
    uuid, result = hosts.check([LOCAL_DISK], 'auto')
    assert result['copy_disks'] == [COPY]
    hosts.drivers[0].remove_domain(uuid)
    dest.add_pool(DEST_LOCAL_POOL, directory=LOCAL_DIR, free_bytes=0)
    _uuid, result = hosts.check([dict(LOCAL_DISK, allocation=None)], 'auto')
    assert result['copy_disks'] == [COPY]


def test_copies_are_deleted_by_a_rollback_and_originals_by_the_cleanup(hosts):
    source, dest = hosts.drivers
    uuid, _result = hosts.check([LOCAL_DISK], 'auto')
    dest.add_pool(DEST_LOCAL_POOL, [LOCAL_DISK['path']], directory=LOCAL_DIR)  # copied
    hosts.dest.rollback_destination(None, MIGRATION, uuid, disks=[LOCAL_DISK['path']])
    assert dest.volume_paths() == [SHARED_DISK['path']]
    # The source keeps its disk while the guest runs there.
    with pytest.raises(dispatcher.ExpectedException):
        hosts.source.cleanup_source(None, MIGRATION, uuid, disks=[LOCAL_DISK['path']])
    assert LOCAL_DISK['path'] in source.volume_paths()
    source.remove_domain(uuid)          # as after the switch-over
    hosts.source.cleanup_source(None, MIGRATION, uuid, disks=[LOCAL_DISK['path']])
    assert source.volume_paths() == [SHARED_DISK['path']]


def test_every_disk_not_shared_is_named(hosts):
    outside = {'target': 'vdc', 'path': '/srv/other.img'}
    assert hosts.refusal([LOCAL_DISK, outside], 'false').kwargs['reason'].startswith(
        'disks vdb (/var/lib/guests/g/data.raw), vdc (/srv/other.img) are on storage')


# --- what "shared" means --------------------------------------------------------------

def test_a_disk_in_no_pool_or_in_an_inactive_pool_is_not_shared(hosts):
    dest = hosts.drivers[1]
    assert dest.shares_disk(SHARED_DISK)
    assert not dest.shares_disk(dict(SHARED_DISK, pool_uuid=None))
    assert not dest.shares_disk(dict(SHARED_DISK, path='/nfs/guests/g/other.qcow2'))
    dest.add_pool(DEST_LOCAL_POOL, [LOCAL_DISK['path']], directory=LOCAL_DIR)
    assert not dest.shares_disk(LOCAL_DISK)   # same path, other pool UUID
    dest.add_pool(SHARED_POOL, [SHARED_DISK['path']], active=False)
    assert not dest.shares_disk(SHARED_DISK)


def test_the_storage_decision_is_logged_once_with_the_ids(hosts, caplog):
    with caplog.at_level(logging.INFO, logger=manager.__name__):
        uuid, _result = hosts.check([SHARED_DISK], 'auto')
    lines = [r.getMessage() for r in caplog.records if 'storage' in r.getMessage()]
    assert len(lines) == 1, lines
    assert MIGRATION in lines[0] and uuid in lines[0]
    assert 'block migration False (requested auto)' in lines[0]


def test_a_source_that_reports_no_disks_is_not_judged(hosts):
    # An agent of service version 1 as the source: nothing to judge, nothing copied.
    uuid, facts = hosts.guest([LOCAL_DISK])
    facts.disks = None
    result = answer(hosts.dest.check_destination(None, MIGRATION, uuid, facts, 'false'))
    assert result == {'host': hosts.dest.host, 'block_migration': False,
                      'copy_disks': []}


def test_an_old_conductor_gets_the_auto_decision(hosts):
    uuid, facts = hosts.guest([LOCAL_DISK])
    # RPC 1.1: the source's facts as a dict, no block_migration.
    result = answer(hosts.dest.check_destination(None, MIGRATION, uuid, facts.legacy()))
    assert result['copy_disks'] == [COPY]
