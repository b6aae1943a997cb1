#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root):
# OS packages and .venv, the real services (RabbitMQ, MariaDB, PostgreSQL, Redis),
# the lab's kernel and guest image, then every tier of tests. pytest's summary line is
# the last line printed; extra arguments go to pytest (e.g. tests/unit, -k name).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash tools/bootstrap.sh
bash tools/services.sh
.venv/bin/python -m tools.lab install

export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -p no:cacheprovider -rfE --durations=10 "${@:-tests}"
