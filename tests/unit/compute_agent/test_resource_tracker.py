"""ResourceTracker: claims restored after a restart, and the wait for that restore."""

import threading
import time

import pytest

from compute_agent import resource_tracker
from migration_conductor import exception

HOST = 'node2'
M1, M2, M3 = ('11111111-0000-4000-8000-00000000000%d' % i for i in (1, 2, 3))
I1, I2, I3 = ('22222222-0000-4000-8000-00000000000%d' % i for i in (1, 2, 3))


class FakeDriver:
    """A host of 8192 MiB and 4 CPUs that runs ``domains``."""

    def __init__(self):
        self.domains = []

    def get_host_inventory(self):
        return {'memory_mb': 8192, 'vcpus': 4}

    def list_instances(self):
        return list(self.domains)


def make_tracker(restore_timeout=5):
    # 8192 - 1024 reserved = 7168 MiB and 4 * 2.0 = 8 vCPUs for guests.
    return resource_tracker.ResourceTracker(HOST, FakeDriver(), 1024, 2.0,
                                            restore_timeout)


def claim_of(migration_uuid, instance_uuid, memory_mb=4096, vcpus=2):
    return {'migration_uuid': migration_uuid, 'instance_uuid': instance_uuid,
            'memory_mb': memory_mb, 'vcpus': vcpus}


def test_restored_claim_counts_against_the_free_room():
    tracker = make_tracker()
    tracker.restore([claim_of(M1, I1, memory_mb=4096)])
    with pytest.raises(exception.InsufficientResources) as info:
        tracker.claim(M2, I2, 4096, 1)
    assert info.value.kwargs['free'] == 7168 - 4096
    with pytest.raises(exception.InsufficientResources):
        tracker.check(M2, I2, 4096, 1)
    assert [c['migration_uuid'] for c in tracker.claims()] == [M1]
    # What is left still fits.
    assert tracker.claim(M2, I2, 3072, 1)['memory_mb'] == 3072


def test_restore_does_not_check_the_room_it_was_promised_before():
    tracker = make_tracker()
    restored = tracker.restore([claim_of(M1, I1, memory_mb=6144),
                                claim_of(M2, I2, memory_mb=6144)])
    assert [c['migration_uuid'] for c in restored] == [M1, M2]
    assert sorted((c['migration_uuid'], c['host'], c['memory_mb'], c['vcpus'])
                  for c in tracker.claims()) == [(M1, HOST, 6144, 2), (M2, HOST, 6144, 2)]


def test_restore_is_idempotent():
    tracker = make_tracker()
    claims = [claim_of(M1, I1), claim_of(M2, I2, memory_mb=1024, vcpus=1)]
    assert len(tracker.restore(claims)) == 2
    before = tracker.claims()
    assert tracker.restore(claims) == []
    assert tracker.claims() == before


def test_restore_does_not_replace_a_claim_already_held():
    tracker = make_tracker()
    tracker.restore([])
    held = tracker.claim(M1, I1, 2048, 1)
    restored = tracker.restore([claim_of(M1, I1, memory_mb=4096, vcpus=4),
                                claim_of(M2, I2, memory_mb=1024, vcpus=1)])
    assert [c['migration_uuid'] for c in restored] == [M2]
    assert {c['migration_uuid']: c for c in tracker.claims()}[M1] == held


def test_restore_does_not_bring_back_a_claim_released_before_it():
    tracker = make_tracker()
    assert tracker.release(M1) is False      # e.g. a rollback served before the restore
    assert [c['migration_uuid'] for c in tracker.restore(
        [claim_of(M1, I1), claim_of(M2, I2)])] == [M2]
    assert [c['migration_uuid'] for c in tracker.claims()] == [M2]


def test_claim_and_check_wait_for_the_restore():
    tracker = make_tracker()
    outcome = {}
    started = threading.Event()

    def claim_early():
        started.set()
        try:
            outcome['claim'] = tracker.claim(M2, I2, 4096, 1)
        except exception.InsufficientResources as exc:
            outcome['refused'] = exc

    thread = threading.Thread(target=claim_early)
    thread.start()
    assert started.wait(5)
    thread.join(0.2)
    assert thread.is_alive(), 'the claim did not wait for the restore'
    tracker.restore([claim_of(M1, I1, memory_mb=4096)])
    thread.join(5)
    assert not thread.is_alive()
    # Served only once the restored claim counted: there is no room left for it.
    assert 'claim' not in outcome and outcome['refused'].kwargs['free'] == 3072


def test_claim_and_check_are_refused_when_the_restore_does_not_come():
    tracker = make_tracker(restore_timeout=0.1)
    with pytest.raises(exception.DestinationRefused) as info:
        tracker.claim(M1, I1, 1024, 1)
    assert HOST in str(info.value) and 'restarted' in str(info.value)
    with pytest.raises(exception.DestinationRefused):
        tracker.check(M1, I1, 1024, 1)
    assert tracker.claims() == []


# --- reconcile: claims the conductor no longer lists -----------------------------------

def test_reconcile_drops_a_claim_the_conductor_no_longer_lists():
    tracker = make_tracker()
    tracker.restore([])
    tracker.claim(M1, I1, 4096, 2)
    tracker.claim(M2, I2, 1024, 1)
    asked_at = time.monotonic()

    dropped = tracker.reconcile([claim_of(M2, I2, memory_mb=1024, vcpus=1)], asked_at)

    assert [c['migration_uuid'] for c in dropped] == [M1]
    assert [c['migration_uuid'] for c in tracker.claims()] == [M2]
    # The room is free again: the same 4096 MiB can be claimed by another migration.
    tracker.claim(M3, I3, 4096, 2)


def test_reconcile_keeps_a_claim_taken_while_the_listing_was_on_its_way():
    tracker = make_tracker()
    tracker.restore([])
    asked_at = time.monotonic()
    tracker.claim(M1, I1, 4096, 2)      # after the question, so not in the answer

    assert tracker.reconcile([], asked_at) == []
    assert [c['migration_uuid'] for c in tracker.claims()] == [M1]


def test_reconcile_judges_restored_claims_too():
    tracker = make_tracker()
    tracker.restore([claim_of(M1, I1)])
    assert tracker.reconcile([claim_of(M1, I1)], time.monotonic()) == []
    assert [c['migration_uuid'] for c in tracker.reconcile([], time.monotonic())] == [M1]
    assert tracker.claims() == []
