"""Who may use each policy rule, the service context, and the generated sample.

Every rule of :func:`migration_conductor.policy.list_rules` is checked, allowed and
refused, against the contexts of each kind of caller: an operator (admin), a compute
agent (service) and anyone else (a project member, an anonymous caller). The table
``ALLOWED`` says who may use each rule; a rule that is not in it fails its test, so a
rule added later cannot go untested.
"""

import configparser
import importlib
import os
import subprocess
import sys
import threading

from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_policy.opts
import oslo_policy.policy
import pytest
import yaml

from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import policy

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(TOP, 'etc', 'migration-conductor', 'policy.yaml.sample')
GENERATOR = os.path.join(TOP, 'tools', 'generate-policy-sample.sh')

ADMIN, SERVICE, MEMBER = 'admin', 'service', 'member'

# Rule name -> the kinds of caller it allows; every other kind is refused.
ALLOWED = {
    'admin_api': {ADMIN},
    'service_api': {ADMIN, SERVICE},
    'migration_conductor:host:list': {ADMIN},
    'migration_conductor:host:get': {ADMIN},
    'migration_conductor:instance:list': {ADMIN},
    'migration_conductor:instance:delete': {ADMIN},
    'migration_conductor:migration:create': {ADMIN},
    'migration_conductor:migration:create:host': {ADMIN},
    'migration_conductor:migration:get': {ADMIN},
    'migration_conductor:profile:list': {ADMIN},
    'migration_conductor:profile:get': {ADMIN},
    'migration_conductor:migration:list': {ADMIN},
    'migration_conductor:migration:abort': {ADMIN},
    'migration_conductor:migration:force_complete': {ADMIN},
    'migration_conductor:host:report': {ADMIN, SERVICE},
}


def _contexts():
    """Kind of caller -> {description: context}.

    NOTE: oslo.policy reads a RequestContext through ``to_policy_values()``, which
    carries the roles but not ``is_admin``: ``is_admin:True`` in ``admin_api`` matches no
    context, and an admin passes by its ``admin`` role.
    """
    return {
        ADMIN: {
            'get_admin_context()': mc_context.get_admin_context(),
            'role admin in a project': mc_context.RequestContext(
                user_id='operator', project_id='ops', roles=['admin']),
        },
        SERVICE: {
            'get_service_context()': mc_context.get_service_context(),
            'get_service_context() of a service user': mc_context.get_service_context(
                user_id='agent-sim-1', project_id='service'),
        },
        MEMBER: {
            'role member': mc_context.RequestContext(
                user_id='u', project_id='p', roles=['member']),
            'roles reader and member': mc_context.RequestContext(
                user_id='u', project_id='p', roles=['reader', 'member']),
            'anonymous (no roles)': mc_context.RequestContext(),
        },
    }


@pytest.fixture
def enforcer(tmp_path):
    """The conductor's Enforcer on the defaults in code, whatever /etc holds."""
    conf = cfg.ConfigOpts()
    for group, opts in oslo_policy.opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([], project='migration-conductor-unit-tests', default_config_files=[],
         default_config_dirs=[])
    conf.set_override('policy_file', str(tmp_path / 'no-policy.yaml'), group='oslo_policy')
    conf.set_override('policy_dirs', [], group='oslo_policy')
    return policy.Enforcer(conf)


# --- every rule, allowed and refused --------------------------------------------------

def _allowed(enforcer, ctxt, rule):
    """True if ``ctxt`` may use ``rule``, False if refused with PolicyNotAuthorized."""
    try:
        enforcer.authorize(ctxt, rule)
    except exception.PolicyNotAuthorized as refusal:
        assert rule in str(refusal)
        return False
    return True


@pytest.mark.parametrize('rule', [rule.name for rule in policy.list_rules()])
def test_rule_allows_only_the_callers_of_the_table(enforcer, rule):
    if rule not in ALLOWED:
        pytest.fail('add rule %s to the table ALLOWED in tests/unit/test_policy.py (who '
                    'may use it: %s)' % (rule, ', '.join((ADMIN, SERVICE, MEMBER))))
    expected, found = {}, {}
    for kind, contexts in _contexts().items():
        for description, ctxt in contexts.items():
            expected[kind, description] = kind in ALLOWED[rule]
            found[kind, description] = _allowed(enforcer, ctxt, rule)
    assert found == expected


def test_table_names_no_rule_that_is_gone():
    gone = set(ALLOWED) - {rule.name for rule in policy.list_rules()}
    assert not gone, 'remove rule(s) %s from the table ALLOWED' % ', '.join(sorted(gone))


def test_table_gives_services_the_agents_rule_only_and_members_nothing():
    # The table's promises, stated apart so that editing one row cannot weaken them:
    # every operator rule (hosts, instances, migrations) is refused to agents.
    assert {name for name, kinds in ALLOWED.items() if SERVICE in kinds} == {
        'service_api', 'migration_conductor:host:report'}
    assert all(ADMIN in kinds for kinds in ALLOWED.values())
    assert not any(MEMBER in kinds for kinds in ALLOWED.values())


def test_unknown_rule_is_an_error_not_a_pass(enforcer):
    with pytest.raises(oslo_policy.policy.PolicyNotRegistered):
        enforcer.authorize(mc_context.get_admin_context(), 'migration_conductor:no:such')


# --- the service context ---------------------------------------------------------------

def test_service_context_has_the_service_role_and_is_not_admin():
    ctxt = mc_context.get_service_context()
    assert ctxt.roles == ['service']
    assert ctxt.is_admin is False
    assert isinstance(ctxt, mc_context.RequestContext)


def test_service_context_survives_the_wire_unchanged():
    ctxt = mc_context.get_service_context(user_id='agent', request_id='req-1')
    again = mc_context.RequestContext.from_dict(ctxt.to_dict())
    assert (again.roles, again.is_admin, again.user_id, again.request_id) == (
        ['service'], False, 'agent', 'req-1')


def test_service_context_takes_request_fields_but_never_admin():
    ctxt = mc_context.get_service_context(user_id='agent', project_id='service',
                                          roles=['service', 'reader'])
    assert (ctxt.user_id, ctxt.project_id, ctxt.roles, ctxt.is_admin) == (
        'agent', 'service', ['service', 'reader'], False)
    with pytest.raises(ValueError, match='get_admin_context'):
        mc_context.get_service_context(is_admin=True)


def test_service_context_does_not_replace_the_thread_current_context():
    # In a thread of its own, whose current context dies with it.
    found = []

    def serve_a_request():
        request = mc_context.RequestContext(request_id='req-of-the-caller')
        mc_context.get_service_context()
        found.append(oslo_context.get_current() is request)

    worker = threading.Thread(target=serve_a_request)
    worker.start()
    worker.join()
    assert found == [True]


# --- the entry point and the sample ------------------------------------------------------

def test_policies_entry_point_is_list_rules():
    """setup.cfg names list_rules (read from the file: installed metadata may be stale)."""
    setup = configparser.ConfigParser()
    setup.read(os.path.join(TOP, 'setup.cfg'))
    lines = [line.strip() for line in
             setup['options.entry_points']['oslo.policy.policies'].splitlines()
             if line.strip()]
    assert lines == ['migration_conductor = migration_conductor.policy:list_rules']
    module, _, attribute = lines[0].split(' = ')[1].partition(':')
    assert getattr(importlib.import_module(module), attribute) is policy.list_rules


def test_sample_policy_is_current(tmp_path):
    out = tmp_path / 'policy.yaml.sample'
    done = subprocess.run(['bash', GENERATOR, str(out)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHON=sys.executable))
    assert done.returncode == 0, 'tools/generate-policy-sample.sh failed: %s' % done.stderr
    with open(SAMPLE) as expected:
        assert out.read_text() == expected.read(), (
            'etc/migration-conductor/policy.yaml.sample is stale: run '
            'bash tools/generate-policy-sample.sh')


def test_sample_uncommented_is_a_policy_file_of_the_defaults():
    with open(SAMPLE) as sample:
        rules = yaml.safe_load(''.join(
            line[1:] if line.startswith('#"') else '' for line in sample))
    assert rules == {rule.name: rule.check_str for rule in policy.list_rules()}
