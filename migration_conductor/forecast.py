"""The forecast before a live migration starts, and the strategy chosen from it.

DESIGN "Migration profiles": the conductor predicts, from the guest's dirty rate
(measured by libvirt on the source just before) and the bandwidth the stream gets,
whether pre-copy converges within the profile's maximum downtime, how long it takes,
how many bytes it sends and how long the guest is stopped; then it chooses the strategy
up front among what the profile allows, or refuses the migration when the profile
forbids every way to meet its contract.

The pre-copy model is QEMU's, pass by pass: pass 1 sends the whole memory at the
bandwidth while the guest dirties memory at its dirty rate; each next pass sends what
the previous one left dirty (never more than the whole memory); once what is left
could be sent within the maximum downtime, the guest is stopped and it is sent (the
downtime). Auto-converge throttles the guest's vCPUs, as QEMU does, by 20 % and then
10 % more after each pass that dirtied more than half of what it sent (at most 99 %).
Post-copy after the first pass: pass 1, then the switch (the guest stopped for the
device state, :data:`POSTCOPY_SWITCH_DOWNTIME_MS`), then what pass 1 left dirty is
pulled by the destination at the bandwidth.

The contract is met by a strategy whose forecast ends within the maximum downtime and
within the completion budget. The choice, for a profile whose strategy is ``auto``:

1. pre-copy, when it meets the contract within ``max_precopy_passes`` passes (0: any);
2. else post-copy after the first pass, when allowed;
3. else auto-converge, when allowed and it meets the contract;
4. else pre-copy anyway when it meets the contract in more passes, or when the
   profile's ``on_timeout`` finishes the migration whatever happens (pause: the
   downtime then exceeds the maximum, which such a profile accepts);
5. else the migration is refused (:class:`ProfileCannotBeMet`), before anything moves.

A dirty rate that was not measured is taken as 0 (an idle guest) and said so: the
forecast is then optimistic and the monitor's budget is what protects the contract.

Pure functions: no I/O, no clock.
"""

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor import profiles as profiles_mod
from migration_conductor.objects import fields

Strategy = fields.Strategy

# Passes after which a pre-copy that has not converged is taken as never converging.
MAX_PASSES = 30
# The guest's stop at the switch to post-copy (its device state), as an estimate; the
# real figure is compared after the end.
POSTCOPY_SWITCH_DOWNTIME_MS = 20
THROTTLE_INITIAL = 0.20
THROTTLE_INCREMENT = 0.10
THROTTLE_MAX = 0.99
THROTTLE_TRIGGER = 0.5


class Prediction:
    """The outcome of one strategy: ``converges`` within the maximum downtime, in
    ``passes`` passes, taking ``duration_s``, sending ``bytes``, stopping the guest
    ``downtime_ms``."""

    def __init__(self, converges, passes, duration_s, sent, downtime_ms):
        self.converges = converges
        self.passes = passes
        self.duration_s = duration_s
        self.bytes = int(sent)
        self.downtime_ms = downtime_ms

    def within(self, budget_s):
        return self.converges and (budget_s is None or self.duration_s <= budget_s)


def precopy(memory, dirty_rate, bandwidth, max_downtime_s, auto_converge=False):
    """Predict a pre-copy (optionally auto-converging) migration; see the module doc.

    :param memory: bytes to send in pass 1 (memory and copied disks).
    :param dirty_rate: bytes per second the guest dirties.
    :param bandwidth: bytes per second the stream carries (> 0).
    :returns: Prediction; when it does not converge, its figures are those of
        :data:`MAX_PASSES` passes and its downtime that of a pause at that point.
    """
    to_send, elapsed, sent, throttle = float(memory), 0.0, 0.0, 0.0
    for passes in range(1, MAX_PASSES + 1):
        seconds = to_send / bandwidth
        elapsed += seconds
        sent += to_send
        dirtied = min(dirty_rate * (1.0 - throttle) * seconds, float(memory))
        if dirtied / bandwidth <= max_downtime_s:
            downtime = dirtied / bandwidth
            return Prediction(True, passes, elapsed + downtime, sent + dirtied,
                              int(round(downtime * 1000)))
        if auto_converge and dirtied > THROTTLE_TRIGGER * to_send:
            throttle = (THROTTLE_INITIAL if throttle == 0 else
                        min(throttle + THROTTLE_INCREMENT, THROTTLE_MAX))
        elif dirtied >= to_send:
            break   # the guest dirties as fast as the stream sends: never converges
        to_send = dirtied
    return Prediction(False, passes, elapsed, sent, int(round(to_send / bandwidth * 1000)))


def postcopy_after_first_pass(memory, dirty_rate, bandwidth):
    """Predict pass 1 of pre-copy, the switch, then the rest pulled by post-copy."""
    first = memory / bandwidth
    left = min(dirty_rate * first, float(memory))
    return Prediction(True, 1, first + left / bandwidth, memory + left,
                      POSTCOPY_SWITCH_DOWNTIME_MS)


def make(profile, instance_uuid, memory_bytes, dirty_rate, bandwidth,
         bandwidth_source, disk_bytes=0, resident_bytes=None):
    """The forecast of a migration under ``profile``, with its chosen strategy.

    :param dirty_rate: bytes per second measured on the source, or None.
    :param resident_bytes: the guest memory its QEMU holds (pages never touched are
        zero pages, sent for next to nothing); None: the whole memory is counted.
    :param bandwidth: bytes per second; ``bandwidth_source`` says where it came from
        (``profile``, ``measured`` or ``assumed``).
    :returns: MigrationForecast.
    :raises ProfileCannotBeMet: the profile forbids every way to meet its contract.
    """
    rate = dirty_rate or 0
    to_send = memory_bytes if resident_bytes is None else min(memory_bytes,
                                                              resident_bytes)
    total = to_send + disk_bytes
    max_downtime_s = profile.max_downtime_ms / 1000.0
    # NOTE: the budget counts the guest's whole size, as Nova's does.
    budget = profiles_mod.completion_budget(profile, memory_bytes, disk_bytes)
    plain = precopy(total, rate, bandwidth, max_downtime_s)
    strategy, prediction, reason = _choose(profile, plain, total, rate, bandwidth,
                                           max_downtime_s, budget)
    if strategy is None:
        raise exception.ProfileCannotBeMet(profile=profile.name,
                                           instance_uuid=instance_uuid, reason=reason)
    measured = ('measured' if dirty_rate is not None else
                'not measured (taken as 0)')
    return objects.MigrationForecast(
        memory_bytes=total, dirty_rate=dirty_rate, dirty_rate_source=measured,
        bandwidth=int(bandwidth), max_downtime_ms=profile.max_downtime_ms,
        converges=plain.converges, passes=prediction.passes,
        duration_s=round(prediction.duration_s, 3), bytes=prediction.bytes,
        downtime_ms=prediction.downtime_ms, bound_s=round(total / bandwidth, 3),
        budget_s=None if budget is None else round(budget, 3), strategy=strategy,
        reason='%s (bandwidth %s: %.0f MiB/s; dirty rate %s: %.1f MiB/s)' % (
            reason, bandwidth_source, bandwidth / 2 ** 20, measured, rate / 2 ** 20))


def _choose(profile, plain, memory, rate, bandwidth, max_downtime_s, budget):
    """(strategy, prediction, reason), or (None, None, reason) when refused."""
    if profile.strategy != Strategy.AUTO:
        prediction = {
            Strategy.PRECOPY: lambda: plain,
            Strategy.AUTO_CONVERGE: lambda: precopy(memory, rate, bandwidth,
                                                    max_downtime_s, auto_converge=True),
            Strategy.POSTCOPY_AFTER_FIRST_PASS: lambda: postcopy_after_first_pass(
                memory, rate, bandwidth),
        }[profile.strategy]()
        return profile.strategy, prediction, 'the profile sets it'
    passes_ok = (not profile.max_precopy_passes
                 or plain.passes <= profile.max_precopy_passes)
    if plain.within(budget) and passes_ok:
        return Strategy.PRECOPY, plain, 'pre-copy converges in %d pass(es)' % plain.passes
    why = ('pre-copy converges only after %d passes' % plain.passes if plain.within(budget)
           else 'pre-copy does not converge within %d ms' % profile.max_downtime_ms
           if not plain.converges else
           'pre-copy would take %.0f s, over the budget of %.0f s'
           % (plain.duration_s, budget))
    if profile.postcopy_allowed:
        return (Strategy.POSTCOPY_AFTER_FIRST_PASS,
                postcopy_after_first_pass(memory, rate, bandwidth),
                why + ': post-copy after the first pass')
    if profile.auto_converge_allowed:
        throttled = precopy(memory, rate, bandwidth, max_downtime_s, auto_converge=True)
        if throttled.within(budget):
            return Strategy.AUTO_CONVERGE, throttled, why + ': auto-converge'
    if plain.within(budget):
        return Strategy.PRECOPY, plain, why + ' (post-copy not allowed)'
    if profile.on_timeout == fields.CompletionAction.PAUSE:
        return (Strategy.PRECOPY, plain, why + ': pre-copy, then a pause when the '
                'budget runs out (the downtime then exceeds %d ms)'
                % profile.max_downtime_ms)
    return None, None, why + ', and the profile allows %s' % (
        'neither post-copy nor a pause' if not profile.auto_converge_allowed else
        'no post-copy or pause, and auto-converge would not meet it either')


def compare(forecast, migration_row):
    """Fill in what happened next to the forecast (a finished migration's row)."""
    started, finished = migration_row.get('started_at'), migration_row.get('finished_at')
    actual = None
    if migration_row.get('total_time_ms') is not None:
        actual = migration_row['total_time_ms'] / 1000.0
    elif started is not None and finished is not None:
        actual = (finished - started).total_seconds()
    forecast.actual_duration_s = None if actual is None else round(actual, 3)
    forecast.actual_bytes = migration_row.get('memory_processed')
    forecast.actual_downtime_ms = migration_row.get('downtime_ms')
    forecast.duration_error = (
        None if actual is None or not forecast.duration_s
        else round((forecast.duration_s - actual) / actual, 3) if actual > 0 else None)
    return forecast
