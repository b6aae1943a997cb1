"""The forecast against figures recorded on the lab (checked in: data/lab_forecasts.json).

The rows come from one run of ``bench/convergence.py`` (its file is named in the data):
the same 512 MiB TCG guest (128 MiB touched) idle, moderate and faster than the 32 MiB/s
link, moved by plain libvirt and by the conductor under ``nova-defaults`` and
``default``; each conductor row holds the Migration's forecast with its inputs (memory
counted, the dirty rate libvirt measured, the bandwidth) and what happened (libvirt's
job duration and bytes sent).

What the lab confirms of the model, asserted here:

- the convergence verdict from the measured dirty rate is what plain libvirt did at
  that rate (completed, or never converged within 90 s);
- once the bytes are known, time is bytes over the bandwidth: the job's duration is
  within 10 % of the bytes it really sent over the bandwidth, pre-copy or post-copy;
- the forecast never promises less: its bytes and duration are at least the lab's.

What it does not (yet) get right, and the reason each figure is off (see the README's
benchmark section): the bytes of the first pass are counted from QEMU's resident memory,
which holds QEMU's own memory too (about 110 MB more than the guest pages sent here), and
post-copy's rest is counted as the dirty rate over the whole first pass, while a guest
re-dirties only its working set (128 MiB here).
"""

import json
import os

import pytest

from migration_conductor import forecast

DATA = os.path.join(os.path.dirname(__file__), 'data', 'lab_forecasts.json')
# libvirt's own maximum downtime, which plain libvirt ran with.
LIBVIRT_DEFAULT_DOWNTIME_S = 0.3

with open(DATA) as _stream:
    LAB = json.load(_stream)
RUNS = LAB['runs']
FORECAST_RUNS = [run for run in RUNS if run['forecast']]
# Runs whose job completed (the migration did, or its guest was found dead at the
# finish), so that libvirt's figures are those of a whole move; not a job that failed
# in post-copy (its guest died on the way) nor one aborted by its budget.
MEASURED_RUNS = [run for run in FORECAST_RUNS
                 if run['status'] == 'completed' or 'finish failed' in (run['error'] or '')]


def _predict(recorded):
    if recorded['strategy'] == 'postcopy-after-first-pass':
        return forecast.postcopy_after_first_pass(
            recorded['memory_bytes'], recorded['dirty_rate'] or 0, recorded['bandwidth'])
    return forecast.precopy(recorded['memory_bytes'], recorded['dirty_rate'] or 0,
                            recorded['bandwidth'], recorded['max_downtime_ms'] / 1000.0)


def test_the_recorded_rows_cover_every_rate_and_mode():
    cases = {(run['rate'], run['mode']) for run in RUNS}
    assert cases == {(rate, mode) for rate in ('idle', 'moderate', 'fast')
                     for mode in ('libvirt', 'nova-defaults', 'default')}
    assert len(MEASURED_RUNS) >= 10


@pytest.mark.parametrize('run', FORECAST_RUNS,
                         ids=lambda run: '%s-%s-%d' % (run['rate'], run['mode'], run['run']))
def test_the_model_gives_each_recorded_forecast_from_its_recorded_inputs(run):
    recorded = run['forecast']
    prediction = _predict(recorded)
    assert prediction.duration_s == pytest.approx(recorded['duration_s'], abs=1e-3)
    assert prediction.bytes == recorded['bytes']
    assert prediction.passes == recorded['passes']


@pytest.mark.parametrize('rate', ['idle', 'moderate', 'fast'])
def test_the_verdict_from_the_measured_dirty_rate_is_what_plain_libvirt_did(rate):
    measured = [run['forecast'] for run in FORECAST_RUNS
                if run['rate'] == rate and run['forecast']['dirty_rate'] is not None]
    plain = [run for run in RUNS if run['rate'] == rate and run['mode'] == 'libvirt']
    assert measured and plain
    outcomes = {run['completed'] for run in plain}
    assert len(outcomes) == 1, 'plain libvirt did not end alike at rate %s' % rate
    [completed] = outcomes
    for recorded in measured:
        verdict = forecast.precopy(recorded['memory_bytes'], recorded['dirty_rate'],
                                   recorded['bandwidth'], LIBVIRT_DEFAULT_DOWNTIME_S)
        assert verdict.converges is completed, (rate, recorded['dirty_rate'])


@pytest.mark.parametrize('run', MEASURED_RUNS,
                         ids=lambda run: '%s-%s-%d' % (run['rate'], run['mode'], run['run']))
def test_the_job_lasts_the_bytes_it_sent_over_the_bandwidth(run):
    recorded = run['forecast']
    transfer_s = run['bytes'] / recorded['bandwidth']
    assert recorded['actual_duration_s'] == pytest.approx(transfer_s, rel=0.10)


@pytest.mark.parametrize('run', MEASURED_RUNS,
                         ids=lambda run: '%s-%s-%d' % (run['rate'], run['mode'], run['run']))
def test_the_forecast_never_promises_less_than_the_lab_took(run):
    recorded = run['forecast']
    assert recorded['bytes'] >= run['bytes']
    assert recorded['duration_s'] >= recorded['actual_duration_s']
