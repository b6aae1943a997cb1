"""The forecast against the pre-copy model, and the strategy it chooses."""

import pytest

from migration_conductor import exception
from migration_conductor import forecast
from migration_conductor import profiles

MIB = 1024 * 1024
GIB = 1024 * MIB


def _profile(name='default', **settings):
    profile = profiles.Profiles().get(name).obj_clone()
    for key, value in settings.items():
        setattr(profile, key, value)
    return profile


def test_an_idle_guest_converges_in_one_pass_at_the_bound():
    prediction = forecast.precopy(GIB, 0, 100 * MIB, 0.3)
    assert prediction.converges and prediction.passes == 1
    assert prediction.duration_s == pytest.approx(GIB / (100 * MIB))
    assert prediction.downtime_ms == 0 and prediction.bytes == GIB


def test_pre_copy_passes_shrink_geometrically():
    # Dirtying at a quarter of the bandwidth: pass n sends memory / 4**(n-1).
    prediction = forecast.precopy(GIB, 25 * MIB, 100 * MIB, 0.3)
    assert prediction.converges
    sent, passes, to_send = 0, 0, float(GIB)
    while True:
        passes += 1
        sent += to_send
        to_send /= 4
        if to_send / (100 * MIB) <= 0.3:
            break
    assert prediction.passes == passes
    assert prediction.bytes == pytest.approx(sent + to_send, rel=1e-6)
    assert prediction.downtime_ms == round(to_send / (100 * MIB) * 1000)


def test_a_guest_dirtying_faster_than_the_stream_never_converges():
    prediction = forecast.precopy(512 * MIB, 130 * MIB, 32 * MIB, 0.3)
    assert not prediction.converges


def test_auto_converge_throttles_until_it_converges():
    plain = forecast.precopy(512 * MIB, 40 * MIB, 32 * MIB, 0.3)
    throttled = forecast.precopy(512 * MIB, 40 * MIB, 32 * MIB, 0.3, auto_converge=True)
    assert not plain.converges and throttled.converges
    assert throttled.passes > 2


def test_postcopy_after_the_first_pass_ends_after_one_pass_and_the_pull():
    prediction = forecast.postcopy_after_first_pass(512 * MIB, 130 * MIB, 32 * MIB)
    # Pass 1 takes 16 s and the guest dirties all of its memory meanwhile.
    assert prediction.duration_s == pytest.approx(32.0)
    assert prediction.downtime_ms == forecast.POSTCOPY_SWITCH_DOWNTIME_MS


def _make(profile, rate_mib, bandwidth_mib=32, memory=512 * MIB):
    return forecast.make(profile, 'i', memory, None if rate_mib is None
                         else int(rate_mib * MIB), bandwidth_mib * MIB, 'the limit')


def test_the_default_profile_moves_an_idle_guest_by_pre_copy():
    result = _make(_profile(), 0)
    assert (result.strategy, result.passes, result.converges) == ('precopy', 1, True)
    assert result.bound_s == 16.0 and result.duration_s == 16.0
    assert result.budget_s == 300


def test_the_default_profile_moves_a_busy_guest_by_post_copy_after_one_pass():
    result = _make(_profile(), 4)   # converges, but only after more than one pass
    assert result.strategy == 'postcopy-after-first-pass'
    assert 'pre-copy converges only after' in result.reason
    assert _make(_profile(), 130).strategy == 'postcopy-after-first-pass'


def test_without_post_copy_auto_converge_is_chosen_when_it_meets_the_contract():
    profile = _profile(postcopy_allowed=False, on_timeout='abort',
                       force_complete_mode='pause')
    assert _make(profile, 40).strategy == 'auto-converge'


def test_a_profile_that_forbids_every_way_is_refused():
    profile = _profile(postcopy_allowed=False, auto_converge_allowed=False,
                       on_timeout='abort', force_complete_mode='pause')
    with pytest.raises(exception.ProfileCannotBeMet,
                       match='does not converge within 300 ms, and the profile allows '
                             'neither post-copy nor a pause'):
        _make(profile, 130)


def test_a_pause_profile_takes_pre_copy_and_says_the_downtime_will_exceed():
    profile = _profile(postcopy_allowed=False, auto_converge_allowed=False,
                       on_timeout='pause', force_complete_mode='pause')
    result = _make(profile, 130)
    assert result.strategy == 'precopy' and not result.converges
    assert 'then a pause when the budget runs out' in result.reason


def test_an_unmeasured_guest_is_taken_for_idle_and_said_so():
    result = _make(_profile('nova-defaults'), None)
    assert result.strategy == 'precopy' and result.dirty_rate is None
    assert 'not measured' in result.dirty_rate_source and 'not measured' in result.reason


def test_the_comparison_with_what_happened():
    result = _make(_profile(), 0)
    forecast.compare(result, {'total_time_ms': 20000, 'memory_processed': 600 * MIB,
                              'downtime_ms': 40})
    assert result.actual_duration_s == 20.0
    assert result.duration_error == pytest.approx(-0.2)
    assert (result.actual_bytes, result.actual_downtime_ms) == (600 * MIB, 40)


def test_only_the_memory_the_guest_holds_is_counted_to_send():
    """Pages a guest never touched are zero pages: a 512 MiB guest whose QEMU holds
    200 MiB sends about 200 MiB in its first pass (the budget still counts 512)."""
    result = forecast.make(_profile(), 'i', 512 * MIB, 0, 32 * MIB, 'the limit',
                           resident_bytes=200 * MIB)
    assert result.memory_bytes == 200 * MIB and result.bound_s == 6.25
    assert result.duration_s == pytest.approx(6.25)
    assert result.budget_s == 300
