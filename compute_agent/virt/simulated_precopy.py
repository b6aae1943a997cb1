"""The arithmetic of a pre-copy live migration, for the simulated driver.

QEMU's pre-copy, reduced to what decides its timing: iteration 1 sends all of the guest's
memory at the bandwidth; meanwhile the guest dirties memory at its dirty rate, and each
next iteration sends what the previous one left dirty. At the end of an iteration, when
what is left could be sent within the maximum downtime, QEMU stops the guest and sends
it (stop-and-copy): that time is the downtime. When the guest dirties as fast as the
bandwidth sends, pre-copy never converges, until the guest is paused (dirty rate 0) or
the job is aborted. With auto-converge, QEMU throttles the guest's vCPUs (20 %, then
+10 % per iteration, at most 99 %) while an iteration dirties more than half of what
it sent.

The model has no clock and no lock: :class:`PrecopyModel.advance` moves it forward by a
given model time, and its owner (one migration thread, under the simulated driver's
lock) decides when. Sizes are bytes, rates bytes per second, times seconds.
"""

THROTTLE_INITIAL = 0.20
THROTTLE_INCREMENT = 0.10
THROTTLE_MAX = 0.99
THROTTLE_TRIGGER = 0.5   # dirtied / sent in an iteration above which QEMU throttles


class PrecopyModel:
    """One pre-copy migration of a guest of ``memory_total`` bytes."""

    def __init__(self, memory_total, bandwidth, max_downtime, auto_converge=False):
        """
        :param memory_total: guest memory, bytes.
        :param bandwidth: bytes/s the migration stream carries (> 0).
        :param max_downtime: seconds the guest may be stopped at the end.
        :param auto_converge: throttle the guest when pre-copy lags.
        """
        if bandwidth <= 0:
            raise ValueError('bandwidth must be positive, not %r' % bandwidth)
        self.memory_total = memory_total
        self.bandwidth = float(bandwidth)
        self.max_downtime = max_downtime
        self.auto_converge = auto_converge
        self.iteration = 1
        self.elapsed = 0.0          # model seconds since the job started
        self.processed = 0.0        # bytes sent so far
        self.dirty_rate = 0.0       # bytes/s the guest dirtied at the last step
        self.throttle = 0.0         # fraction of the guest's vCPU time taken away
        self.converged = False      # the final stop-and-copy is decided
        self.downtime = None        # seconds of the stop-and-copy, once converged
        self.completed = False
        self._to_send = float(memory_total)   # rest of the current iteration
        self._dirtied = 0.0                   # dirtied since this iteration began
        self._sent_in_iteration = 0.0

    @property
    def remaining(self):
        """Bytes still to send: the rest of this iteration and what got dirty meanwhile."""
        if self.completed:
            return 0.0
        return min(self._to_send + self._dirtied, float(self.memory_total))

    @property
    def expected_downtime(self):
        """Seconds the guest would be stopped if pre-copy ended now."""
        return self.remaining / self.bandwidth

    def advance(self, seconds, guest_dirty_rate):
        """Let ``seconds`` of model time pass with the guest dirtying at that rate.

        Stops early at convergence (the caller then runs the stop-and-copy).

        :param guest_dirty_rate: bytes/s the running guest dirties (0 when paused),
            before any auto-converge throttling.
        :returns: True once the migration has converged.
        """
        self.dirty_rate = guest_dirty_rate * (1.0 - self.throttle)
        while seconds > 0 and not self.converged:
            to_end = self._to_send / self.bandwidth
            step = min(seconds, to_end)
            sent = step * self.bandwidth
            self._to_send -= sent
            self._sent_in_iteration += sent
            self.processed += sent
            self._dirtied = min(self._dirtied + self.dirty_rate * step,
                                float(self.memory_total))
            self.elapsed += step
            seconds -= step
            if step >= to_end:
                self._end_iteration()
                self.dirty_rate = guest_dirty_rate * (1.0 - self.throttle)
        return self.converged

    def _end_iteration(self):
        left = self._dirtied
        if left / self.bandwidth <= self.max_downtime:
            self.converged = True
            self.downtime = left / self.bandwidth
            self._to_send, self._dirtied = left, 0.0
            return
        if self.auto_converge and left > THROTTLE_TRIGGER * self._sent_in_iteration:
            self.throttle = (THROTTLE_INITIAL if self.throttle == 0 else
                             min(self.throttle + THROTTLE_INCREMENT, THROTTLE_MAX))
        self.iteration += 1
        self._to_send, self._dirtied, self._sent_in_iteration = left, 0.0, 0.0

    def complete(self):
        """Account the stop-and-copy (the caller has waited ``downtime``)."""
        if not self.converged:
            raise RuntimeError('pre-copy has not converged')
        self.processed += self._to_send
        self.elapsed += self.downtime
        self._to_send = 0.0
        self.dirty_rate = 0.0
        self.completed = True

    def stats(self, job_type):
        """The job statistics dict (see ComputeDriver.get_job_stats) of this model."""
        done = self.completed
        return {
            'type': job_type,
            'memory_total': self.memory_total,
            'memory_processed': int(self.processed),
            'memory_remaining': int(self.remaining),
            'disk_total': 0,
            'disk_processed': 0,
            'disk_remaining': 0,
            'dirty_rate': int(self.dirty_rate),
            'iteration': self.iteration,
            'expected_downtime_ms': None if done else int(self.expected_downtime * 1000),
            'downtime_ms': int(round(self.downtime * 1000)) if done else None,
            'total_time_ms': int(self.elapsed * 1000),
            'postcopy': False,
        }
