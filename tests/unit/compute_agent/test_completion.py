"""The source agent's automatic completion: each decision of a plan, on a fake job."""

import pytest

from compute_agent import completion
from migration_conductor import exception
from migration_conductor import objects

objects.register_all()


class FakeDriver:
    def __init__(self, postcopy_fails=False):
        self.calls = []
        self.postcopy_fails = postcopy_fails

    def set_max_downtime(self, uuid, ms):
        self.calls.append(('downtime', ms))

    def start_postcopy(self, uuid):
        self.calls.append(('postcopy',))
        if self.postcopy_fails:
            raise exception.HypervisorUnavailable(uri='x', reason='no answer')

    def pause_instance(self, uuid):
        self.calls.append(('pause',))

    def abort_job(self, uuid):
        self.calls.append(('abort',))
        return True


class FakeJob:
    migration_uuid = '11111111-0000-4000-8000-000000000001'
    instance_uuid = '22222222-0000-4000-8000-000000000001'
    started_at = 0.0
    force_completed = False
    postcopy = False


class FakeJobs:
    host = 'src'

    def __init__(self, driver):
        self._driver = driver
        self.events = []

    def report_event(self, job, event):
        self.events.append(event)


def _controller(driver=None, **plan):
    values = dict(profile='p', strategy='precopy', downtime_at_s=[0],
                  downtime_ms=[300], budget_s=None, on_timeout='abort',
                  postcopy_allowed=False, postcopy_confirm_s=2.0)
    values.update(plan)
    jobs = FakeJobs(driver or FakeDriver())
    return completion.CompletionController(jobs, FakeJob(), objects.CompletionPlan(
        **values)), jobs


def _stats(elapsed, iteration=1, postcopy=False):
    return {'type': 'unbounded', 'total_time_ms': int(elapsed * 1000),
            'iteration': iteration, 'memory_processed': 0, 'postcopy': postcopy}


def test_downtime_steps_are_applied_when_due_and_reported():
    controller, jobs = _controller(downtime_at_s=[0, 10, 20], downtime_ms=[50, 100, 150])
    for elapsed in (1, 9, 10.5, 11, 25):
        controller.step(_stats(elapsed))
    # The first step is the job's start value; a late reading applies the newest due.
    assert jobs._driver.calls == [('downtime', 100), ('downtime', 150)]
    assert [e.kind for e in jobs.events] == ['downtime-step', 'downtime-step']
    assert 'raised to 150 ms (step 2 of 2' in jobs.events[-1].message


def test_post_copy_after_the_first_pass_is_confirmed_from_the_statistics():
    controller, jobs = _controller(strategy='postcopy-after-first-pass',
                                   postcopy_allowed=True)
    controller.step(_stats(3, iteration=1))
    assert jobs._driver.calls == []
    controller.step(_stats(5, iteration=2))
    assert jobs._driver.calls == [('postcopy',)] and not controller.in_postcopy
    controller.step(_stats(5.4, iteration=2))       # not switched yet: asked once
    assert jobs._driver.calls == [('postcopy',)]
    controller.step(_stats(5.6, iteration=2, postcopy=True))
    assert controller.in_postcopy and controller._job.postcopy
    assert [e.kind for e in jobs.events] == ['postcopy-requested', 'postcopy-started']
    # In post-copy nothing more is done, budget or not.
    controller.step(_stats(1000, iteration=3, postcopy=True))
    assert jobs._driver.calls == [('postcopy',)]


def test_a_switch_that_never_shows_is_reported_and_the_budget_pauses_instead():
    controller, jobs = _controller(budget_s=10, on_timeout='postcopy',
                                   postcopy_allowed=True)
    controller.step(_stats(11))
    controller.step(_stats(12))
    controller.step(_stats(13.5))     # 2.5 s after the request: not confirmed
    assert jobs._driver.calls == [('postcopy',), ('pause',)]
    assert [e.kind for e in jobs.events] == ['postcopy-requested', 'action-failed',
                                             'paused']
    assert controller._job.force_completed


def test_a_request_that_fails_still_waits_for_the_statistics():
    controller, jobs = _controller(FakeDriver(postcopy_fails=True),
                                   strategy='postcopy-after-first-pass',
                                   postcopy_allowed=True)
    controller.step(_stats(5, iteration=2))
    controller.step(_stats(6, iteration=2, postcopy=True))
    assert [e.kind for e in jobs.events] == ['action-failed', 'postcopy-started']


@pytest.mark.parametrize('action,call,kind', [('abort', 'abort', 'abort-requested'),
                                              ('pause', 'pause', 'paused')])
def test_the_budget_applies_its_action_once(action, call, kind):
    controller, jobs = _controller(budget_s=10, on_timeout=action)
    controller.step(_stats(9.9))
    assert jobs._driver.calls == []
    controller.step(_stats(10.1))
    controller.step(_stats(11))
    assert jobs._driver.calls == [(call,)]
    assert [e.kind for e in jobs.events] == [kind]
    assert 'the completion budget of 10 s ran out' in jobs.events[0].message


def test_a_pre_copy_that_takes_more_passes_than_allowed_switches_to_post_copy():
    """The forecast expected one pass (it underestimated the guest's dirty rate): the
    second pass is not let to end by itself."""
    controller, jobs = _controller(strategy='precopy', postcopy_allowed=True,
                                   postcopy_after_pass=1)
    controller.step(_stats(3, iteration=1))
    assert jobs._driver.calls == []
    controller.step(_stats(6, iteration=2))
    assert jobs._driver.calls == [('postcopy',)]
    assert 'the first pass over memory is done' in jobs.events[0].message
    plain, plain_jobs = _controller(strategy='precopy', postcopy_allowed=True)
    plain.step(_stats(6, iteration=5))
    assert plain_jobs._driver.calls == []


def test_nothing_is_asked_of_a_job_an_operator_already_switched_to_post_copy():
    """A force-complete switched the job; its stream then broke, so the statistics no
    longer say post-copy while the agent resumes it: the plan asks for no switch, no
    pause and no abort, whatever the pass or the budget."""
    controller, jobs = _controller(strategy='postcopy-after-first-pass',
                                   postcopy_allowed=True, budget_s=10,
                                   on_timeout='abort')
    controller._job.postcopy = True
    controller.step(_stats(2, iteration=1, postcopy=True))
    for elapsed, iteration in ((3, 2), (12, 3), (100, 4)):
        controller.step(_stats(elapsed, iteration=iteration))
    # Nor is the switch reported twice (the force-complete reported it).
    assert jobs._driver.calls == [] and jobs.events == []
