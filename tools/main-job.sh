#!/usr/bin/env bash
# The main job, on embedded defaults (in-process transport, SQLite), from a fresh
# Debian 12 machine (run as root): install what is missing, start two lab libvirt hosts
# with one beating guest each, let migctl run the conductor and one agent per host in
# its own process (all-in-one mode), show the hosts and the guests each runs, then
# live-migrate a guest that dirties memory to the host the scheduler picks, with its
# progress, its real downtime, and its heartbeat going on at the destination.
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

[libvirt]
# The lab's shared pool (mc-shared) is one directory on a local file system.
trust_shared_pools = true
CONF
cat "$STATE/migration-conductor.conf"

step "migctl host list (conductor and agents start inside migctl)"
.venv/bin/migctl --config-file "$STATE/migration-conductor.conf" host list

step "migctl instance list"
.venv/bin/migctl --config-file "$STATE/migration-conductor.conf" instance list

MIGCTL=(.venv/bin/migctl --config-file "$STATE/migration-conductor.conf")
guest_uuid=$($PY -m tools.lab status --json | $PY -c '
import json, sys
print([g["uuid"] for g in json.load(sys.stdin)["guests"] if g["name"] == "main-guest-1"][0])')
source_host=$($PY -m tools.lab status --json | $PY -c '
import json, sys
print([g["host"] for g in json.load(sys.stdin)["guests"] if g["name"] == "main-guest-1"][0])')

step "heartbeat of main-guest-1 before the migration (on $source_host)"
$PY -m tools.lab guest-console main-guest-1 --lines 2

step "migctl migration start $guest_uuid (the scheduler picks the destination)"
"${MIGCTL[@]}" migration start "$guest_uuid" -c uuid -c status -c source_host \
    -c dest_host -c memory_processed -c downtime_ms -c total_time_ms -c error

step "migctl instance list (after the migration)"
"${MIGCTL[@]}" instance list

step "heartbeat of main-guest-1 after the migration (it kept beating)"
sleep 3
$PY -m tools.lab status | grep -E "^main-guest-1"
$PY -m tools.lab guest-console main-guest-1 --lines 3

step "the migration's story in $STATE/migration-conductor.log"
grep -E "Migration .* instance $guest_uuid" "$STATE/migration-conductor.log" \
    | grep -vE "progress on " | cut -d' ' -f4- | sed -E 's/ \[[^]]*\]//' | cut -c1-200 \
    | tail -n 25
echo "(progress lines: grep 'progress on ' $STATE/migration-conductor.log)"
