#!/usr/bin/env bash
# Regenerate the sample policy file (a unit test fails when it is stale).
#
# Usage: tools/generate-policy-sample.sh [OUTPUT]
#   OUTPUT defaults to etc/migration-conductor/policy.yaml.sample;
#   PYTHON picks the interpreter (default .venv/bin/python).
#
# The text is what `oslopolicy-sample-generator --namespace migration_conductor` prints.
# NOTE: the rules are read from migration_conductor.policy.list_rules() in this checkout,
# not looked up through the oslo.policy.policies entry point: an editable install's
# entry points are those of the checkout it was installed from, as of its last
# `pip install -e`, so a lookup could silently write the rules of another tree (or none).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
output=${1:-$top/etc/migration-conductor/policy.yaml.sample}
case $output in /*) ;; *) output=$PWD/$output ;; esac
cd "$top"
PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} "${PYTHON:-.venv/bin/python}" - "$output" <<'PY'
import sys

from oslo_policy import generator

from migration_conductor import policy

# The formatting oslopolicy-sample-generator applies to each namespace's rules.
sections = generator._sort_and_format_by_section(
    {'migration_conductor': policy.list_rules()})
with open(sys.argv[1], 'w') as sample:
    sample.writelines(sections)
PY
echo "wrote $output"
