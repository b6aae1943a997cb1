"""Migration profiles end to end on simulated hosts: forecast, strategy, completion.

The profiles are those of ``tests/migration-profiles.yaml``; the simulated clock runs
50 times faster than the wall clock, and the profiles' budgets count the job's own
(model) time, as libvirt's ``time_elapsed`` does. A "stubborn" guest (4 GiB dirtied at
4 GiB/s over a 1 GiB/s stream) never converges in pre-copy.
"""

import time

import pytest

from db import api as db_api
from migration_conductor import exception
from tests.functional import conftest
from tests.functional.test_live_migration import add_guest
from tests.functional.test_live_migration import add_stubborn_guest
from tests.functional.test_live_migration import claims
from tests.functional.test_live_migration import wait_for
from tests.functional.test_live_migration import where

HOSTS = ('sim-1', 'sim-2')


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    """Two simulated hosts shared by the tests of this module (each its own guests)."""
    with conftest.simulated_cloud(tmp_path_factory.mktemp('profiles'),
                                  hosts=HOSTS) as handle:
        yield handle


@pytest.fixture(autouse=True)
def empty_hosts(cloud):
    """Each test starts with hosts that hold no guest (they share the cloud)."""
    yield
    for agent in cloud.agents.values():
        for domain in agent.driver.list_instances():
            agent.driver.remove_domain(domain['uuid'])
        cloud.conductor.register_host(cloud.admin, agent.manager.build_host_report())


def _migrate(cloud, uuid, profile, **kwargs):
    return cloud.conductor.live_migrate(cloud.admin, uuid, host='sim-2', profile=profile,
                                        **kwargs)


def _events(migration):
    return [event.kind for event in migration.events]


def test_a_stubborn_guest_completes_by_post_copy_after_its_first_pass(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-postcopy')
    migration = wait_for(cloud, _migrate(cloud, uuid, 'postcopy-first-pass').uuid)
    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    assert (migration.profile, migration.strategy) == ('postcopy-first-pass',
                                                       'postcopy-after-first-pass')
    forecast = migration.forecast
    assert forecast.dirty_rate == 4096 * 1024 * 1024 and not forecast.converges
    assert forecast.actual_duration_s is not None and forecast.duration_error is not None
    kinds = _events(migration)
    assert kinds[0] == 'forecast'
    assert kinds.index('postcopy-requested') < kinds.index('postcopy-started')
    started = next(e for e in migration.events if e.kind == 'postcopy-started')
    assert started.host == 'sim-1' and 'seen in its statistics' in started.message
    # The switch came after the first pass (libvirt's second iteration).
    requested = next(e for e in migration.events if e.kind == 'postcopy-requested')
    assert 'the first pass over memory is done' in requested.message
    assert claims(cloud) == {}


def test_a_stubborn_guest_under_a_pause_profile_is_paused_when_the_budget_ends(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-pause')
    migration = wait_for(cloud, _migrate(cloud, uuid, 'pause-on-budget').uuid)
    assert migration.status == 'completed', migration.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    paused = [e for e in migration.events if e.kind == 'paused']
    assert len(paused) == 1 and 'budget of 4 s ran out' in paused[0].message
    assert paused[0].job_elapsed_s >= 4
    assert migration.forecast.reason.startswith('the profile sets it')


def test_a_stubborn_guest_under_an_abort_profile_stays_running_on_the_source(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-abort')
    migration = wait_for(cloud, _migrate(cloud, uuid, 'abort-on-budget').uuid)
    assert migration.status == 'failed'
    assert migration.error.code == 'completion_budget_exceeded'
    assert 'budget of 12 s ran out' in migration.error.message
    assert where(cloud, uuid) == {'sim-1': 'running'}
    assert 'abort-requested' in _events(migration)
    assert claims(cloud) == {}
    # The forecast took the unmeasured guest for idle, and said so.
    assert migration.forecast.dirty_rate is None
    assert migration.forecast.strategy == 'precopy'


def test_a_profile_that_cannot_be_met_is_refused_before_anything_moves(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-strict')
    migration = wait_for(cloud, _migrate(cloud, uuid, 'strict').uuid)
    assert migration.status == 'failed'
    assert migration.error.code == 'profile_cannot_be_met'
    assert 'does not converge within 300 ms' in migration.error.message
    assert migration.started_at is None and migration.memory_total is None
    assert where(cloud, uuid) == {'sim-1': 'running'}
    assert claims(cloud) == {}
    assert db_api.migration_progress_list(cloud.admin, migration.uuid) == []


def test_an_idle_guest_under_the_strict_profile_moves_by_pre_copy(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g-idle', memory_mb=512)
    migration = wait_for(cloud, _migrate(cloud, uuid, 'strict').uuid)
    assert migration.status == 'completed', migration.error
    assert (migration.strategy, migration.forecast.passes) == ('precopy', 1)
    assert migration.forecast.dirty_rate == 0


def test_the_instances_metadata_names_its_profile(cloud):
    agent = cloud.agents['sim-1']
    uuid = agent.driver.add_domain('g-meta', memory_mb=512,
                                   migration_profile='pause-on-budget')
    cloud.conductor.register_host(cloud.admin, agent.manager.build_host_report())
    migration = wait_for(cloud, cloud.conductor.live_migrate(cloud.admin, uuid,
                                                             host='sim-2').uuid)
    assert migration.status == 'completed', migration.error
    assert migration.profile == 'pause-on-budget'
    # The caller's choice comes first.
    other = add_guest(cloud, 'sim-1', 'g-meta-2')
    assert _migrate(cloud, other, 'strict').profile == 'strict'
    wait_for(cloud, db_api.migration_list(cloud.admin, instance_uuid=other)[0]['uuid'])


def test_an_unknown_profile_is_refused_and_nothing_is_created(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g-unknown')
    before = len(db_api.migration_list(cloud.admin))
    with pytest.raises(exception.ProfileNotFound, match='gold.*nova-defaults'):
        _migrate(cloud, uuid, 'gold')
    assert len(db_api.migration_list(cloud.admin)) == before
    assert db_api.instance_get(cloud.admin, uuid)['task_state'] is None


def test_force_complete_by_post_copy_under_a_profile_that_forbids_it_is_refused(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-forbidden')
    migration = _migrate(cloud, uuid, 'precopy-only')
    wait_for(cloud, migration.uuid, statuses=('running',))
    with pytest.raises(exception.ForceCompleteModeRefused,
                       match='profile precopy-only does not allow post-copy'):
        cloud.conductor.force_complete_migration(cloud.admin, migration.uuid,
                                                 mode='postcopy')
    with pytest.raises(exception.Invalid, match='mode must be one of postcopy, pause'):
        cloud.conductor.force_complete_migration(cloud.admin, migration.uuid,
                                                 mode='sideways')
    current = cloud.conductor.get_migration(cloud.admin, migration.uuid)
    assert current.status == 'running' and 'postcopy-started' not in _events(current)
    assert where(cloud, uuid)['sim-1'] == 'running'
    cloud.conductor.abort_migration(cloud.admin, migration.uuid)
    assert wait_for(cloud, migration.uuid).status == 'cancelled'


def test_force_complete_by_post_copy_switches_then_nothing_can_abort_it(cloud):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-force-postcopy')
    migration = _migrate(cloud, uuid, 'postcopy-on-demand')
    wait_for(cloud, migration.uuid, statuses=('running',))
    forced = cloud.conductor.force_complete_migration(cloud.admin, migration.uuid,
                                                      mode='postcopy')
    assert forced.status in ('running-postcopy', 'completing', 'completed')
    if forced.status == 'running-postcopy':
        with pytest.raises(exception.MigrationNotAbortable):
            cloud.conductor.abort_migration(cloud.admin, migration.uuid)
    ended = wait_for(cloud, migration.uuid)
    assert ended.status == 'completed', ended.error
    assert where(cloud, uuid) == {'sim-2': 'running'}
    assert 'force-complete by an operator' in ' '.join(e.message for e in ended.events)


def test_a_guest_that_panics_on_arrival_ends_in_error_not_completed(cloud):
    uuid = add_guest(cloud, 'sim-1', 'g-panics', memory_mb=512)
    migration = _migrate(cloud, uuid, 'pause-on-budget')      # settles for 3 s
    dest = cloud.agents['sim-2'].driver
    # The fault lands in the settle period: the guest runs on the destination and the
    # migration is not completed yet.
    wait_for(cloud, migration.uuid, statuses=('completing',))
    time.sleep(0.5)     # the finish call has confirmed it runs and watches it (3 s)
    assert dest.find_instance(uuid) == 'running'
    assert cloud.conductor.get_migration(cloud.admin, migration.uuid).status == \
        'completing'
    dest.crash_domain(uuid)
    ended = wait_for(cloud, migration.uuid)
    assert ended.status == 'error'
    assert ended.error.code == 'guest_died', ended.error
    assert 'crashed or panicked' in ended.error.message
    assert db_api.instance_get(cloud.admin, uuid)['task_state'] is None


def test_profiles_are_listed_and_shown(cloud):
    names = [p.name for p in cloud.conductor.list_profiles(cloud.admin)]
    assert names[:2] == ['default', 'nova-defaults'] and 'strict' in names
    nova = cloud.conductor.get_profile(cloud.admin, 'nova-defaults')
    assert (nova.builtin, nova.max_downtime_ms, nova.completion_s_per_gib) == \
        (True, 500, 800.0)
    with pytest.raises(exception.ProfileNotFound):
        cloud.conductor.get_profile(cloud.admin, 'gold')


@pytest.mark.parametrize('lose_guest', [False, True])
def test_a_post_copy_whose_stream_breaks_is_resumed_or_ends_in_error(cloud, lose_guest):
    uuid = add_stubborn_guest(cloud, 'sim-1', 'g-cut-%s' % lose_guest)
    # The fault lands in post-copy: the stream breaks as the pull begins.
    cloud.agents['sim-1'].driver.cut_stream_in_postcopy(uuid, lose_guest=lose_guest)
    migration = wait_for(cloud, _migrate(cloud, uuid, 'postcopy-first-pass').uuid)
    kinds = _events(migration)
    assert 'postcopy-interrupted' in kinds
    if not lose_guest:
        assert migration.status == 'completed', migration.error
        assert 'postcopy-recovered' in kinds
        assert where(cloud, uuid) == {'sim-2': 'running'}
    else:
        assert migration.status == 'error'
        assert migration.error.code == 'postcopy_failed'
        assert 'the guest is lost' in migration.error.message
        assert kinds.count('postcopy-interrupted') == 1    # nothing left to resume
        # The source's copy stays paused, never resumed; nothing runs anywhere.
        assert where(cloud, uuid) == {'sim-1': 'paused'}
