"""Migration profiles: the built-in ones, the file's, their checks and the choice."""

import pytest
from oslo_config import cfg

from migration_conductor import conf as mc_conf
from migration_conductor import exception
from migration_conductor import objects
from migration_conductor import profiles

GIB = 1024 ** 3


def _conf(tmp_path, text=None, name='migration-profiles.yaml', default='default'):
    conf = cfg.ConfigOpts()
    mc_conf.register_opts(conf)
    conf([], project='migration-conductor-unit-tests')
    path = name
    if text is not None:
        path = str(tmp_path / name)
        (tmp_path / name).write_text(text)
    conf.set_override('profiles_file', path, group='migration_profiles')
    conf.set_override('default_profile', default, group='migration_profiles')
    return conf


def test_nova_defaults_follow_novas_libvirt_options():
    nova = profiles.Profiles().get(profiles.NOVA_DEFAULTS)
    assert (nova.strategy, nova.max_downtime_ms, nova.downtime_steps) == \
        ('precopy', 500, 10)
    assert nova.on_timeout == 'abort' and not nova.postcopy_allowed
    assert not nova.auto_converge_allowed and nova.bandwidth_mib == 0
    # A 1 GiB guest counts as 2 GiB: 800 s per GiB, steps 150 s apart (75 s per GiB).
    assert profiles.completion_budget(nova, GIB) == 1600
    schedule = profiles.downtime_schedule(nova, GIB)
    assert schedule[0] == (0, 50) and schedule[1] == (150, 95)
    assert schedule[-1] == (1500, 500) and len(schedule) == 11
    # A 4 GiB guest counts for itself.
    assert profiles.completion_budget(nova, 4 * GIB) == 3200


def test_time_scale_shortens_every_wait():
    nova = profiles.Profiles().get(profiles.NOVA_DEFAULTS).obj_clone()
    nova.time_scale = 0.1
    assert profiles.completion_budget(nova, GIB) == pytest.approx(160)
    assert profiles.downtime_schedule(nova, GIB)[1] == (15, 95)


def test_a_file_adds_profiles_and_fills_in_the_default_settings(tmp_path):
    loaded = profiles.load(_conf(tmp_path, 'gold:\n  max_downtime_ms: 100\n'
                                 '  postcopy_allowed: false\n  on_timeout: pause\n'
                                 '  force_complete_mode: pause\n', default='gold'))
    gold = loaded.get('gold')
    assert (gold.max_downtime_ms, gold.on_timeout, gold.builtin) == (100, 'pause', False)
    assert gold.completion_s_per_gib == loaded.get('default').completion_s_per_gib
    assert [p.name for p in loaded.list()] == ['default', 'nova-defaults', 'gold']
    assert loaded.default == 'gold'


def test_a_missing_default_file_means_the_built_in_profiles_only(tmp_path):
    loaded = profiles.load(_conf(tmp_path))
    assert [p.name for p in loaded.list()] == ['default', 'nova-defaults']


@pytest.mark.parametrize('text,words', [
    ('gold:\n  max_downtime_ms: 0\n', "profile 'gold': max_downtime_ms must be an "
                                      "integer from 1 to 60000, not 0"),
    ('gold:\n  max_downtime: 10\n', "unknown setting(s) max_downtime"),
    ('gold:\n  on_timeout: retry\n', "on_timeout must be one of abort, postcopy, pause"),
    ('gold:\n  postcopy_allowed: false\n', 'on_timeout is postcopy but postcopy_allowed '
                                           'is false'),
    ('gold:\n  strategy: auto-converge\n  auto_converge_allowed: false\n',
     'strategy auto-converge needs auto_converge_allowed: true'),
    ('gold:\n  compression: zstd\n', 'compression zstd needs parallel_connections'),
    ('gold:\n  parallel_connections: 4\n', 'cannot be combined with post-copy'),
    ('gold:\n  downtime_steps: 5\n  downtime_step_delay_s_per_gib: 0\n',
     'downtime_steps above 1 needs'),
    ('gold:\n  time_scale: 2\n', 'time_scale must be a number from 0.001 to 1.0'),
    ('gold:\n  postcopy_allowed: "yes"\n', 'postcopy_allowed must be true or false'),
    ('default:\n  max_downtime_ms: 10\n', 'this name is built in'),
    ('gold: 3\n', 'its settings must be a mapping'),
])
def test_a_bad_profile_stops_the_conductor_with_one_line_naming_it(tmp_path, text,
                                                                 words):
    with pytest.raises(exception.ConfigurationError) as caught:
        profiles.load(_conf(tmp_path, text))
    message = str(caught.value)
    assert '\n' not in message
    assert 'migration-profiles.yaml' in message and words in message, message


def test_an_unknown_default_and_a_missing_named_file_are_configuration_errors(tmp_path):
    with pytest.raises(exception.ConfigurationError, match='default_profile.*no '
                                                           "profile 'gold'"):
        profiles.load(_conf(tmp_path, default='gold'))
    with pytest.raises(exception.ConfigurationError, match='does not exist'):
        profiles.load(_conf(tmp_path, name='other.yaml'))
    with pytest.raises(exception.ConfigurationError, match='cannot be read'):
        profiles.load(_conf(tmp_path, 'gold: [\n'))


def test_the_callers_choice_then_the_instances_then_the_default():
    loaded = profiles.Profiles()
    assert loaded.choose('nova-defaults', 'default')[0].name == 'nova-defaults'
    assert loaded.choose(None, 'nova-defaults') == (loaded.get('nova-defaults'),
                                                    'instance')
    # An instance naming a profile that does not exist gets the default (logged).
    assert loaded.choose(None, 'gone') == (loaded.get('default'), 'default')
    with pytest.raises(exception.ProfileNotFound, match='gone.*default, nova-defaults'):
        loaded.choose('gone')


def test_profiles_cross_rpc_as_objects():
    again = objects.MigrationProfile.obj_from_primitive(
        profiles.Profiles().get('default').obj_to_primitive())
    assert again.max_precopy_passes == 1 and again.on_timeout == 'postcopy'
