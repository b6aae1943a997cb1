"""The service context, the policy entry point and the generated sample."""

import configparser
import importlib
import os
import subprocess
import sys
import threading

from oslo_context import context as oslo_context
import pytest
import yaml

from migration_conductor import context as mc_context
from migration_conductor import policy

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(TOP, 'etc', 'migration-conductor', 'policy.yaml.sample')
GENERATOR = os.path.join(TOP, 'tools', 'generate-policy-sample.sh')


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
