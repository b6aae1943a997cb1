"""The first-come-first-served plan of the per-host slot queues (pure functions)."""

from migration_conductor import slots

W = slots.Waiter
LIMITS = {'out': 1, 'in': 1}


def test_free_hosts_let_every_waiter_go():
    assert slots.plan([W('m1', 'a', 'b'), W('m2', 'c', 'd')], {}, LIMITS) == ['m1', 'm2']


def test_a_later_waiter_never_takes_the_slot_an_earlier_one_waits_for():
    # m1 waits for b's inbound slot (busy); a's outbound slot is free, but it is
    # m1's turn on a: m2 (a -> c) waits behind it, though c is free.
    in_use = {('b', 'in'): 1}
    assert slots.plan([W('m1', 'a', 'b'), W('m2', 'a', 'c')], in_use, LIMITS) == []
    # With room for two on a, m2 goes while m1 waits.
    assert slots.plan([W('m1', 'a', 'b'), W('m2', 'a', 'c')], in_use,
                      {'out': 2, 'in': 1}) == ['m2']


def test_waiters_on_other_hosts_are_not_held_up_by_a_busy_host():
    in_use = {('a', 'out'): 1}
    waiters = [W('m1', 'a', 'b'), W('m2', 'a', 'c'), W('m3', 'x', 'y')]
    assert slots.plan(waiters, in_use, LIMITS) == ['m3']


def test_the_plan_never_exceeds_a_limit():
    waiters = [W('m%d' % i, 'h%d' % (i % 3), 'h%d' % ((i + 1) % 3)) for i in range(12)]
    limits = {'out': 2, 'in': 1}
    granted = slots.plan(waiters, {}, limits)
    chosen = [w for w in waiters if w.uuid in granted]
    for host in ('h0', 'h1', 'h2'):
        assert sum(1 for w in chosen if w.source == host) <= 2
        assert sum(1 for w in chosen if w.dest == host) <= 1
    assert granted == ['m0', 'm1', 'm2']


def test_positions_count_the_earlier_waiters_of_the_same_hosts():
    waiters = [W('m1', 'a', 'b'), W('m2', 'c', 'b'), W('m3', 'a', 'd'), W('m4', 'x', 'y')]
    assert slots.positions(waiters) == {'m1': 1, 'm2': 2, 'm3': 2, 'm4': 1}
