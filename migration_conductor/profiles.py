"""Migration profiles: built in, defined in one YAML file, validated, chosen.

A profile is a named availability contract (DESIGN "Migration profiles"): how long the
guest may be stopped, how long the migration may take, what ends it when that budget
runs out, and what the conductor may use to get there (post-copy, auto-converge,
bandwidth, parallel connections, compression). Two are built in:

- ``default``, the project's: the forecast chooses the strategy; a guest that pre-copy
  cannot move in one pass (it dirties memory while it is sent) goes by post-copy after
  that first pass, which ends in bounded time and, under the TCG of the lab, is the
  only way a dirtying guest arrives intact (LAB.md); budget 300 s per GiB, then
  post-copy.
- ``nova-defaults``, Nova's libvirt driver as shipped (nova.conf ``[libvirt]``
  ``live_migration_downtime = 500``, ``live_migration_downtime_steps = 10``,
  ``live_migration_downtime_delay = 75``, ``live_migration_completion_timeout = 800``,
  ``live_migration_timeout_action = abort``, ``live_migration_permit_post_copy =
  False``, ``live_migration_permit_auto_converge = False``, ``live_migration_bandwidth
  = 0``; the guest counted as at least 2 GiB as ``_live_migration_data_gb`` does): plain
  pre-copy, the downtime raised linearly in 10 steps to 500 ms with 75 s per GiB
  between steps, and an abort after 800 s per GiB.

More are defined in ``[migration_profiles] profiles_file``, a YAML mapping of name to
settings (the fields of :class:`~migration_conductor.objects.profile.MigrationProfile`;
every one left out takes the value of the built-in ``default``). The file is read and
every profile checked when the conductor starts: a wrong one stops it with one line
naming the profile and the setting (:class:`ConfigurationError`).

A migration's profile is the caller's choice, else the one its instance names (libvirt
metadata, reported by the agent), else ``[migration_profiles] default_profile``.

Concurrency: a :class:`Profiles` is built once at start and only read afterwards.
"""

import logging
import os

import yaml

from migration_conductor import exception
from migration_conductor import objects
from migration_conductor.objects import fields

LOG = logging.getLogger(__name__)

GIB = 1024 ** 3
PROFILES_FILE_DEFAULT = 'migration-profiles.yaml'
DEFAULT = 'default'
NOVA_DEFAULTS = 'nova-defaults'

# The longest a dirty-rate measure may take (libvirt measures for whole seconds).
MAX_DIRTY_RATE_SAMPLE_S = 60
# The most downtime steps a profile may ask for.
MAX_DOWNTIME_STEPS = 100

_BUILTIN = {
    DEFAULT: dict(
        description='The project\'s default: the forecast chooses; a guest pre-copy '
                    'cannot move in one pass goes by post-copy after the first pass '
                    '(bounded time, downtime of the switch only). Budget 300 s per '
                    'GiB (at least 1 GiB), then post-copy.',
        strategy=fields.Strategy.AUTO, max_downtime_ms=300, downtime_steps=1,
        downtime_step_delay_s_per_gib=0.0, completion_s_per_gib=300.0,
        completion_max_s=0.0, min_guest_gib=1.0, max_precopy_passes=1,
        on_timeout=fields.CompletionAction.POSTCOPY,
        force_complete_mode=fields.CompletionAction.POSTCOPY, postcopy_allowed=True,
        auto_converge_allowed=True, bandwidth_mib=0, parallel_connections=1,
        compression=fields.Compression.NONE, dirty_rate_sample_s=1, time_scale=1.0,
        settle_s=3.0),
    NOVA_DEFAULTS: dict(
        description='Nova\'s libvirt defaults: pre-copy, downtime raised to 500 ms in '
                    '10 steps, 75 s per GiB apart; abort after 800 s per GiB; any '
                    'guest counted as at least 2 GiB; no post-copy, no auto-converge.',
        strategy=fields.Strategy.PRECOPY, max_downtime_ms=500, downtime_steps=10,
        downtime_step_delay_s_per_gib=75.0, completion_s_per_gib=800.0,
        completion_max_s=0.0, min_guest_gib=2.0, max_precopy_passes=0,
        on_timeout=fields.CompletionAction.ABORT,
        force_complete_mode=fields.CompletionAction.PAUSE, postcopy_allowed=False,
        auto_converge_allowed=False, bandwidth_mib=0, parallel_connections=1,
        compression=fields.Compression.NONE, dirty_rate_sample_s=1, time_scale=1.0,
        settle_s=0.0),
}

# What each setting is, for `migctl profile show` and the errors (one line each).
SETTINGS = {
    'description': 'what the profile is for',
    'strategy': 'auto (the forecast chooses among what is allowed), precopy, '
                'auto-converge or postcopy-after-first-pass',
    'max_downtime_ms': 'the longest the guest may be stopped at the switch-over, ms',
    'downtime_steps': 'steps in which the downtime allowed grows to max_downtime_ms '
                      '(1: all of it at once)',
    'downtime_step_delay_s_per_gib': 'seconds per GiB of guest between two downtime '
                                     'steps',
    'completion_s_per_gib': 'the completion budget, seconds per GiB of guest (0: none)',
    'completion_max_s': 'a cap on the completion budget, seconds (0: none)',
    'min_guest_gib': 'the least GiB a guest counts for in the per-GiB figures',
    'max_precopy_passes': 'passes over memory pre-copy may take before the forecast '
                          'prefers post-copy (0: any number)',
    'on_timeout': 'what ends a migration whose budget ran out: abort, postcopy or pause',
    'force_complete_mode': 'what an operator\'s force-complete does by default: '
                           'postcopy or pause',
    'postcopy_allowed': 'post-copy may be used (the destination runs the guest before '
                        'all memory arrived: a destination failure then loses it)',
    'auto_converge_allowed': 'QEMU may throttle the guest\'s vCPUs to converge',
    'bandwidth_mib': 'bandwidth limit of the migration, MiB/s (0: none)',
    'parallel_connections': 'streams of the migration (multifd when more than 1)',
    'compression': 'none, xbzrle, zlib or zstd (zlib and zstd need parallel '
                   'connections)',
    'dirty_rate_sample_s': 'seconds the guest\'s dirty rate is measured before the '
                           'start (0: not measured; the forecast assumes an idle guest)',
    'settle_s': 'seconds the destination watches the guest after the switch-over: one '
                'that crashes, panics or stops then ends the migration error (0: not '
                'watched)',
    'time_scale': 'factor applied to every wait of the profile (downtime steps, '
                  'budget); below 1 only to shorten them in benchmarks',
}

_BOOLEANS = ('postcopy_allowed', 'auto_converge_allowed')
_STRINGS = ('description',)
_CHOICES = {'strategy': fields.Strategy.ALL,
            'on_timeout': fields.CompletionAction.ALL,
            'force_complete_mode': fields.CompletionAction.FORCE_MODES,
            'compression': fields.Compression.ALL}
_INTEGERS = {'max_downtime_ms': (1, 60000), 'downtime_steps': (1, MAX_DOWNTIME_STEPS),
             'max_precopy_passes': (0, 1000), 'bandwidth_mib': (0, 1024 * 1024),
             'parallel_connections': (1, 64),
             'dirty_rate_sample_s': (0, MAX_DIRTY_RATE_SAMPLE_S)}
_NUMBERS = {'downtime_step_delay_s_per_gib': (0.0, 86400.0),
            'completion_s_per_gib': (0.0, 86400.0), 'completion_max_s': (0.0, 864000.0),
            'min_guest_gib': (0.0, 1024.0), 'time_scale': (0.001, 1.0),
            'settle_s': (0.0, 600.0)}


def _bad(source, name, reason):
    return exception.ConfigurationError(
        setting='[migration_profiles] profiles_file %s: profile %r' % (source, name),
        reason=reason)


def _check_setting(source, name, key, value):
    if key in _BOOLEANS:
        if not isinstance(value, bool):
            raise _bad(source, name, '%s must be true or false, not %r' % (key, value))
    elif key in _STRINGS:
        if not isinstance(value, str):
            raise _bad(source, name, '%s must be a string, not %r' % (key, value))
    elif key in _CHOICES:
        if value not in _CHOICES[key]:
            raise _bad(source, name, '%s must be one of %s, not %r'
                       % (key, ', '.join(_CHOICES[key]), value))
    else:
        low, high = _INTEGERS.get(key) or _NUMBERS[key]
        integer = key in _INTEGERS
        if (isinstance(value, bool) or not isinstance(value, int if integer else
                                                      (int, float))
                or not low <= value <= high):
            raise _bad(source, name, '%s must be %s from %s to %s, not %r'
                       % (key, 'an integer' if integer else 'a number', low, high,
                          value))


def _check_profile(source, name, settings):
    """The complete settings of profile ``name``, checked (defaults filled in)."""
    if not isinstance(settings, dict):
        raise _bad(source, name, 'its settings must be a mapping, not %r' % (settings,))
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise _bad(source, name, 'unknown setting(s) %s (settings: %s)'
                   % (', '.join(map(str, unknown)), ', '.join(SETTINGS)))
    values = dict(_BUILTIN[DEFAULT], description='')
    values.update(settings)
    for key, value in values.items():
        _check_setting(source, name, key, value)
    allowed = {fields.Strategy.POSTCOPY_AFTER_FIRST_PASS: values['postcopy_allowed'],
               fields.Strategy.AUTO_CONVERGE: values['auto_converge_allowed']}
    if not allowed.get(values['strategy'], True):
        raise _bad(source, name, 'strategy %s needs %s: true' % (
            values['strategy'],
            'postcopy_allowed' if values['strategy'] ==
            fields.Strategy.POSTCOPY_AFTER_FIRST_PASS else 'auto_converge_allowed'))
    for key in ('on_timeout', 'force_complete_mode'):
        if values[key] == fields.CompletionAction.POSTCOPY and not values[
                'postcopy_allowed']:
            raise _bad(source, name, '%s is postcopy but postcopy_allowed is false'
                       % key)
    if (values['compression'] in fields.Compression.MULTIFD_ONLY
            and values['parallel_connections'] < 2):
        raise _bad(source, name, 'compression %s needs parallel_connections of 2 or '
                   'more (QEMU compresses only a multifd stream so)'
                   % values['compression'])
    if values['parallel_connections'] > 1 and values['postcopy_allowed']:
        raise _bad(source, name, 'parallel_connections above 1 cannot be combined with '
                   'post-copy (QEMU 7.2 refuses multifd with post-copy)')
    if values['downtime_steps'] > 1 and not values['downtime_step_delay_s_per_gib']:
        raise _bad(source, name, 'downtime_steps above 1 needs a '
                   'downtime_step_delay_s_per_gib above 0')
    return values


class Profiles:
    """The profiles of a conductor: the built-in ones and those of the file."""

    def __init__(self, definitions=None, default=DEFAULT, source='(none)'):
        """:param definitions: {name: settings} as read from the file.
        :param default: the name of the default profile.
        :raises ConfigurationError: a profile or the default is wrong (one line).
        """
        self._profiles = {}
        for name, settings in _BUILTIN.items():
            self._profiles[name] = self._build(name, dict(settings), builtin=True)
        for name, settings in (definitions or {}).items():
            if not isinstance(name, str) or not name.strip() or len(name) > 64:
                raise _bad(source, name, 'a profile name is a string of 1 to 64 '
                                         'characters')
            if name in _BUILTIN:
                raise _bad(source, name, 'this name is built in; give the profile '
                                         'another name')
            self._profiles[name] = self._build(
                name, _check_profile(source, name, settings), builtin=False)
        if default not in self._profiles:
            raise exception.ConfigurationError(
                setting='[migration_profiles] default_profile',
                reason='no profile %r (profiles: %s)' % (default, self.names()))
        self.default = default

    @staticmethod
    def _build(name, values, builtin):
        return objects.MigrationProfile(name=name, builtin=builtin, **values)

    def names(self):
        return ', '.join(sorted(self._profiles))

    def list(self):
        """Every profile, the built-in ones first, each group by name."""
        return sorted(self._profiles.values(), key=lambda p: (not p.builtin, p.name))

    def get(self, name):
        """:raises ProfileNotFound: no such profile."""
        try:
            return self._profiles[name]
        except (KeyError, TypeError):
            raise exception.ProfileNotFound(profile=name, known=self.names())

    def choose(self, requested=None, instance_profile=None):
        """The profile of a migration and why: (profile, 'request'|'instance'|'default').

        :raises ProfileNotFound: the requested profile does not exist (an instance's
            unknown profile only logs a warning: the default applies).
        """
        if requested:
            return self.get(requested), 'request'
        if instance_profile:
            if instance_profile in self._profiles:
                return self._profiles[instance_profile], 'instance'
            LOG.warning('An instance names migration profile %r, which does not exist '
                        '(profiles: %s); the default %s applies', instance_profile,
                        self.names(), self.default)
        return self._profiles[self.default], 'default'


def load(conf):
    """The profiles ``conf`` defines.

    :raises ConfigurationError: the file cannot be read or parsed, or a profile in it
        is wrong (one line naming it).
    """
    group = conf.migration_profiles
    path = group.profiles_file
    found = path if os.path.isabs(path) else conf.find_file(path)
    definitions = {}
    if found and os.path.exists(found):
        try:
            with open(found) as stream:
                definitions = yaml.safe_load(stream) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise exception.ConfigurationError(
                setting='[migration_profiles] profiles_file %s' % found,
                reason='cannot be read: %s' % ' '.join(str(exc).split()))
        if not isinstance(definitions, dict):
            raise exception.ConfigurationError(
                setting='[migration_profiles] profiles_file %s' % found,
                reason='must be a mapping of profile name to settings')
    elif path != PROFILES_FILE_DEFAULT:
        # Only the default name may be absent: a file an operator named must exist.
        raise exception.ConfigurationError(
            setting='[migration_profiles] profiles_file',
            reason='%s does not exist' % (found or path))
    profiles = Profiles(definitions, default=group.default_profile,
                        source=found or '(none)')
    LOG.info('Migration profiles: %s (default %s, from %s)', profiles.names(),
             profiles.default, found or 'the built-in ones only')
    return profiles


def data_gib(profile, memory_bytes, disk_bytes=0):
    """GiB a guest counts for in the profile's per-GiB figures."""
    return max((memory_bytes + disk_bytes) / GIB, profile.min_guest_gib)


def completion_budget(profile, memory_bytes, disk_bytes=0):
    """Seconds of the completion budget for this guest, or None (no budget)."""
    budget = None
    if profile.completion_s_per_gib:
        budget = profile.completion_s_per_gib * data_gib(profile, memory_bytes,
                                                          disk_bytes)
    if profile.completion_max_s:
        budget = min(budget or profile.completion_max_s, profile.completion_max_s)
    return None if budget is None else budget * profile.time_scale


def downtime_schedule(profile, memory_bytes, disk_bytes=0):
    """[(at_s, downtime_ms), ...]: the downtime allowed grows linearly in
    ``downtime_steps`` steps to ``max_downtime_ms``, one step every
    ``downtime_step_delay_s_per_gib`` seconds per GiB (Nova's schedule: the first step
    is max / steps, and there are steps + 1 of them)."""
    steps = profile.downtime_steps
    maximum = profile.max_downtime_ms
    if steps <= 1:
        return [(0, maximum)]
    delay = (profile.downtime_step_delay_s_per_gib * data_gib(profile, memory_bytes,
                                                              disk_bytes)
             * profile.time_scale)
    base = maximum / steps
    offset = (maximum - base) / steps
    return [(int(delay * i), int(base + offset * i)) for i in range(steps + 1)]
