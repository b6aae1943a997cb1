#!/usr/bin/env bash
# Regenerate the sample configuration file (a unit test fails when it is stale).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m oslo_config.generator \
    --config-file etc/migration-conductor/config-generator.conf
echo "wrote etc/migration-conductor/migration-conductor.conf.sample"
