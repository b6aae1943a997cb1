#!/usr/bin/env bash
# The main job, on embedded defaults (in-process transport, SQLite), from a fresh
# Debian 12 machine (run as root): install what is missing, start two lab libvirt hosts
# with one beating guest each, then let migctl run the conductor and one agent per host
# in its own process (all-in-one mode) and show the hosts and the guests each runs.
# The lab stays up afterwards; `.venv/bin/python -m tools.lab stop` ends it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
PY=.venv/bin/python
STATE=${MC_MAIN_STATE:-$top/state/main-job}

step() { printf '\n== %s\n' "$*"; }

step "install (OS packages, .venv, lab kernel and guest image)"
bash tools/bootstrap.sh
$PY -m tools.lab install

step "lab: two libvirt hosts, one guest each"
$PY -m tools.lab start --hosts 2
$PY -m tools.lab guest-start main-guest-1 --host lab-1 --memory-mib 512 --touch-mib 64 --dirty-pps 1000
$PY -m tools.lab guest-start main-guest-2 --host lab-2 --memory-mib 512 --touch-mib 64 --dirty-pps 1000
$PY -m tools.lab status

step "configuration (embedded defaults: in-process transport, SQLite under $STATE)"
mkdir -p "$STATE"
agents=$($PY -m tools.lab status --json | $PY -c '
import json, sys
hosts = json.load(sys.stdin)["hosts"]
print(",".join("%s=%s" % (h["name"], h["uri"]) for h in hosts if h["running"]))')
cat > "$STATE/migration-conductor.conf" <<CONF
[DEFAULT]
state_path = $STATE
log_file = $STATE/migration-conductor.log

[all_in_one]
agents = $agents
CONF
cat "$STATE/migration-conductor.conf"

step "migctl host list (conductor and agents start inside migctl)"
.venv/bin/migctl --config-file "$STATE/migration-conductor.conf" host list

step "migctl instance list"
.venv/bin/migctl --config-file "$STATE/migration-conductor.conf" instance list

step "conductor log: $STATE/migration-conductor.log (last lines)"
grep -E "registered|found on host" "$STATE/migration-conductor.log" | tail -n 6 | cut -c1-220
