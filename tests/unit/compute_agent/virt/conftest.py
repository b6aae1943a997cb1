"""Fixtures of the virt driver tests: simulated hosts in this process."""

import uuid

from oslo_config import cfg
import pytest

from compute_agent.virt import simulated
from migration_conductor.conf import simulated as simulated_conf


@pytest.fixture
def make_host():
    """make_host(**simulated_options) -> a new SimulatedDriver on a unique host name.

    Migrations run a hundred times faster than modelled (time_scale 0.01) unless told
    otherwise; every host is unregistered at the end of the test.
    """
    made = []

    def make(name=None, **options):
        conf = cfg.ConfigOpts()
        simulated_conf.register_opts(conf)
        conf([], project='migration-conductor-unit-tests')
        options.setdefault('time_scale', 0.01)
        for key, value in options.items():
            conf.set_override(key, value, group='simulated')
        host = simulated.SimulatedDriver(name or 'sim-%s' % uuid.uuid4().hex[:8], conf)
        host.init_host()
        made.append(host)
        return host

    yield make
    for host in made:
        host.cleanup()
