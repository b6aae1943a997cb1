"""inventory.claims_for_host on SQLite: the claims a destination must hold."""

import logging

from oslo_utils import uuidutils
import pytest

from db import api as db_api
from migration_conductor import context
from migration_conductor import inventory
from migration_conductor.objects import migration_states as states
from tests import db_fixtures

sqlite_api = db_fixtures.sqlite_api   # the fixture, shared


@pytest.fixture
def ctx(sqlite_api):
    return context.get_admin_context()


def _instance(ctx, memory_mb=2048, vcpus=2):
    uuid = uuidutils.generate_uuid()
    db_api.instance_upsert(ctx, {'uuid': uuid, 'host': 'node1', 'memory_mb': memory_mb,
                                 'vcpus': vcpus})
    return uuid


def _migration(ctx, instance_uuid, status, dest_host='node2'):
    return db_api.migration_create(ctx, {'instance_uuid': instance_uuid,
                                         'source_host': 'node1', 'dest_host': dest_host,
                                         'status': status})['uuid']


def test_one_claim_per_migration_towards_the_host_in_a_claim_held_state(ctx):
    held = {}
    for status in sorted(states.CLAIM_HELD_STATES):
        instance = _instance(ctx, memory_mb=1024 + len(held), vcpus=1 + len(held))
        held[_migration(ctx, instance, status)] = (instance, 1024 + len(held),
                                                   1 + len(held))
    # No claim: before the claim, after the end, or towards another host.
    for status in set(states.ALL_STATES) - states.CLAIM_HELD_STATES:
        _migration(ctx, _instance(ctx), status)
    elsewhere = _migration(ctx, _instance(ctx), states.RUNNING, dest_host='node3')

    claims = inventory.claims_for_host(ctx, 'node2')
    assert all(type(c) is dict and set(c) == {'migration_uuid', 'instance_uuid',
                                               'memory_mb', 'vcpus'} for c in claims)
    assert {c['migration_uuid']: (c['instance_uuid'], c['memory_mb'], c['vcpus'])
            for c in claims} == held
    assert len(claims) == len(held) == 7
    assert [c['migration_uuid'] for c in inventory.claims_for_host(ctx, 'node3')] == [
        elsewhere]
    assert inventory.claims_for_host(ctx, 'node9') == []


def test_a_migration_whose_instance_size_is_unknown_is_skipped_and_logged(ctx, caplog):
    gone = uuidutils.generate_uuid()          # no instance row: its size is unknown
    orphan = _migration(ctx, gone, states.RUNNING)
    kept = _migration(ctx, _instance(ctx), states.QUEUED)
    with caplog.at_level(logging.WARNING, logger=inventory.__name__):
        claims = inventory.claims_for_host(ctx, 'node2')
    assert [c['migration_uuid'] for c in claims] == [kept]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert orphan in warnings[0] and gone in warnings[0]
