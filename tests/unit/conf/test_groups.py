"""Two configurations in one process never see each other's overrides."""

from oslo_config import cfg
import pytest

from migration_conductor import conf as mc_conf

OPTIONS = [('conductor', 'service_down_time', 7), ('agent', 'heartbeat_interval', 3),
           ('libvirt', 'connection_uri', 'qemu+tcp://x/system'),
           ('all_in_one', 'startup_timeout', 5), ('simulated', 'vcpus', 3)]


@pytest.mark.parametrize('group,name,value', OPTIONS)
def test_override_stays_in_its_configuration(group, name, value):
    reference = cfg.ConfigOpts()
    mc_conf.register_opts(reference)
    reference([])
    default = getattr(getattr(reference, group), name)
    # An override set before another configuration registers the same group...
    first = cfg.ConfigOpts()
    mc_conf.register_opts(first)
    first([])
    first.set_override(name, value, group=group)
    second = cfg.ConfigOpts()
    mc_conf.register_opts(second)
    second([])
    # ...stays in its own configuration.
    assert getattr(getattr(first, group), name) == value
    assert getattr(getattr(second, group), name) == default != value
